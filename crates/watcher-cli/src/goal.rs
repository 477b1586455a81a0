//! `watcher goal list|show`.

use crate::arguments::*;
use crate::client::Client;
use crate::columns;
use crate::output::Out;
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum GoalCmd {
    /// List goals.
    List(ListOpts),
    /// Show a goal (UUID or name).
    Show { goal: String },
}

/// `watcher goal ...`
pub(crate) fn goal(client: &Client, out: &Out, cmd: GoalCmd) -> anyhow::Result<i32> {
    match cmd {
        GoalCmd::List(o) => {
            let cols = if o.detail {
                columns::GOAL
            } else {
                columns::GOAL_LIST
            };
            out.list(&list_items(client, "goals", &o, cols, &[])?, cols)?
        }
        GoalCmd::Show { goal } => {
            out.show(&client.get(&format!("/v1/goals/{goal}"))?, columns::GOAL)?
        }
    }
    Ok(0)
}
