//! `watcher strategy list|show|state`.

use crate::arguments::*;
use crate::client::Client;
use crate::columns;
use crate::output::Out;
use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Subcommand)]
pub(crate) enum StrategyCmd {
    /// List strategies.
    List {
        /// Only the strategies of this goal (UUID or name).
        #[arg(long)]
        goal: Option<String>,
        #[command(flatten)]
        opts: ListOpts,
    },
    /// Show a strategy (UUID or name), with its parameters.
    Show { strategy: String },
    /// Show what a strategy needs to run.
    State { strategy: String },
}

/// `watcher strategy ...`
pub(crate) fn strategy(client: &Client, out: &Out, cmd: StrategyCmd) -> anyhow::Result<i32> {
    match cmd {
        StrategyCmd::List { goal, opts } => {
            let cols = if opts.detail {
                columns::STRATEGY
            } else {
                columns::STRATEGY_LIST
            };
            let items = list_items(
                client,
                "strategies",
                &opts,
                cols,
                &[("goal", goal.as_ref())],
            )?;
            out.list(&items, cols)?
        }
        StrategyCmd::Show { strategy } => {
            let mut s = client.get(&format!("/v1/strategies/{strategy}"))?;
            // As upstream shows it: the parameters' properties as indented
            // JSON text, `{}` when there are none.
            s["parameters_spec"] = match s["parameters_spec"].get("properties") {
                Some(p) if p.as_object().is_some_and(|m| !m.is_empty()) => {
                    Value::String(crate::output::python_json(p, 2))
                }
                _ => json!({}),
            };
            out.show(&s, columns::STRATEGY)?
        }
        StrategyCmd::State { strategy } => {
            let mut states = client.get(&format!("/v1/strategies/{strategy}/state"))?;
            for req in states.as_array_mut().into_iter().flatten() {
                if req["state"].is_array() {
                    req["state"] = Value::String(crate::output::python_json(&req["state"], 2));
                }
            }
            out.list(
                states.as_array().map(Vec::as_slice).unwrap_or(&[]),
                columns::STRATEGY_STATE,
            )?
        }
    }
    Ok(0)
}
