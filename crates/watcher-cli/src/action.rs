//! `watcher action list|show|update` (upstream's skip, microversion 1.5).

use crate::arguments::*;
use crate::client::Client;
use crate::columns;
use crate::output::Out;
use anyhow::bail;
use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub(crate) enum ActionCmd {
    /// List actions.
    List {
        /// Only the actions of this action plan.
        #[arg(long)]
        action_plan: Option<String>,
        /// Only the actions of this audit.
        #[arg(long)]
        audit: Option<String>,
        #[command(flatten)]
        opts: ListOpts,
    },
    /// Show an action.
    Show { action: String },
    /// Skip a PENDING action of a plan that has not started (API 1.5).
    Update {
        action: String,
        /// New state (only SKIPPED).
        #[arg(long)]
        state: Option<String>,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
}

/// `watcher action ...`
pub(crate) fn action(client: &Client, out: &Out, cmd: ActionCmd) -> anyhow::Result<i32> {
    match cmd {
        ActionCmd::List {
            action_plan,
            audit,
            opts,
        } => {
            let cols = if opts.detail {
                columns::action(client.version())
            } else {
                columns::ACTION_LIST.to_vec()
            };
            let extra = [
                ("action_plan_uuid", action_plan.as_ref()),
                ("audit_uuid", audit.as_ref()),
            ];
            out.list(&list_items(client, "actions", &opts, &cols, &extra)?, &cols)?
        }
        ActionCmd::Show { action } => {
            check_uuid("action", &action)?;
            out.show(
                &client.get(&format!("/v1/actions/{action}"))?,
                &columns::action(client.version()),
            )?
        }
        ActionCmd::Update {
            action,
            state,
            reason,
        } => {
            check_uuid("action", &action)?;
            client.require_version((1, 5), "action update")?;
            let mut ops = vec![];
            if let Some(s) = state {
                ops.push(json!({"op": "replace", "path": "/state", "value": s}));
            }
            if let Some(r) = reason {
                ops.push(json!({"op": "replace", "path": "/status_message", "value": r}));
            }
            if ops.is_empty() {
                bail!("nothing to update: give --state SKIPPED and/or --reason TEXT");
            }
            out.show(
                &client.patch(&format!("/v1/actions/{action}"), &Value::Array(ops))?,
                &columns::action(client.version()),
            )?
        }
    }
    Ok(0)
}
