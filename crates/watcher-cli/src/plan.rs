//! `watcher actionplan list|show|start|cancel|pause|resume|update|delete|history`,
//! with `--wait` and the exit codes of a plan's end.

use crate::arguments::*;
use crate::client::{Client, ClientError};
use crate::columns;
use crate::output::Out;
use crate::progress::wait_for_plan;
use crate::states::plan_state;
use clap::Subcommand;
use serde_json::{json, Value};
use watcher_core::ActionPlanState;

#[derive(Subcommand)]
pub(crate) enum PlanCmd {
    /// List action plans.
    List {
        /// Only the plans of this audit.
        #[arg(long)]
        audit: Option<String>,
        #[command(flatten)]
        opts: ListOpts,
    },
    /// Show an action plan.
    Show { plan: String },
    /// Change an action plan: add, replace or remove PATH=VALUE.
    Update {
        plan: String,
        #[command(flatten)]
        change: PatchArgs,
    },
    /// Start a RECOMMENDED action plan.
    Start {
        plan: String,
        /// Follow the plan until it finishes, with a progress line.
        #[arg(long)]
        wait: bool,
    },
    /// Cancel an action plan: pending actions are cancelled, running ones aborted.
    Cancel {
        plan: String,
        /// Wait until the cancel has settled.
        #[arg(long)]
        wait: bool,
    },
    /// Ours: pause an ONGOING action plan. Nothing more starts; running
    /// actions finish; PENDING ones wait for the resume.
    Pause {
        plan: String,
        /// Why, for the plan's history (at most 255 characters).
        #[arg(long)]
        reason: Option<String>,
        /// Abort the running actions too, as a cancel would (a live
        /// migration rolls back); they run again on resume.
        #[arg(long)]
        abort_running: bool,
    },
    /// Ours: resume a PAUSED action plan where it stopped.
    Resume {
        plan: String,
        /// Why, for the plan's history (at most 255 characters).
        #[arg(long)]
        reason: Option<String>,
        /// Follow the plan until it finishes, with a progress line.
        #[arg(long)]
        wait: bool,
    },
    /// Delete finished or not-started action plans.
    Delete {
        #[arg(required = true)]
        plans: Vec<String>,
    },
    /// Ours: every state change of the plan and its actions, with who and why.
    History { plan: String },
    /// Ours: follow a running action plan until it finishes.
    Wait { plan: String },
}

/// Exit code for a plan's final state under --wait.
pub(crate) fn exit_code(state: Option<ActionPlanState>) -> i32 {
    match state {
        Some(ActionPlanState::Succeeded) => 0,
        Some(ActionPlanState::Failed) => 3,
        Some(ActionPlanState::Cancelled) => 4,
        _ => 1,
    }
}

/// Exit code of `actionplan cancel` on a plan that had already ended.
pub(crate) const ALREADY_ENDED: i32 = 5;

/// For a cancel: a plan that had already ended is shown and said so, with
/// exit code [`ALREADY_ENDED`]; `None` if it has not ended.
pub(crate) fn already_ended(
    client: &Client,
    out: &Out,
    plan: &Value,
) -> anyhow::Result<Option<i32>> {
    if !plan_state(plan).is_some_and(ActionPlanState::is_finished) {
        return Ok(None);
    }
    let state = plan["state"].as_str().unwrap_or("?");
    out.show(plan, &columns::plan(client.version()))?;
    let uuid = plan["uuid"].as_str().unwrap_or("?");
    eprintln!("Action plan {uuid} had already ended {state}; there is nothing to cancel.");
    if plan_state(plan) != Some(ActionPlanState::Cancelled) {
        eprintln!(
            "Its actions stay as they ended: see `watcher action list --action-plan {uuid} --detail`."
        );
    }
    Ok(Some(ALREADY_ENDED))
}

pub(crate) fn report_final(client: &Client, out: &Out, plan: &Value) -> anyhow::Result<i32> {
    out.show(plan, &columns::plan(client.version()))?;
    let state = plan["state"].as_str().unwrap_or("?");
    let code = exit_code(plan_state(plan));
    if code != 0 {
        let why = plan["status_message"].as_str().unwrap_or("");
        let uuid = plan["uuid"].as_str().unwrap_or("?");
        eprintln!(
            "Action plan {uuid} ended {state}{}{why}\nSee `watcher action list --action-plan {uuid} --detail`.",
            if why.is_empty() { "" } else { ": " },
        );
    }
    Ok(code)
}

/// `watcher actionplan ...`
// Long because one arm per subcommand of `watcher actionplan`, each a few calls.
pub(crate) fn action_plan(client: &Client, out: &Out, cmd: PlanCmd) -> anyhow::Result<i32> {
    let plan_cols = || columns::plan(client.version());
    match cmd {
        PlanCmd::List { audit, opts } => {
            let cols = if opts.detail {
                plan_cols()
            } else {
                columns::PLAN_LIST.to_vec()
            };
            let items = list_items(
                client,
                "action_plans",
                &opts,
                &cols,
                &[("audit_uuid", audit.as_ref())],
            )?;
            out.list(&items, &cols)?
        }
        PlanCmd::Show { plan } => {
            check_uuid("actionplan", &plan)?;
            out.show(
                &client.get(&format!("/v1/action_plans/{plan}"))?,
                &plan_cols(),
            )?
        }
        PlanCmd::Update { plan, change } => {
            check_uuid("actionplan", &plan)?;
            out.show(
                &client.patch(&format!("/v1/action_plans/{plan}"), &patch(&change, &[])?)?,
                &plan_cols(),
            )?
        }
        PlanCmd::Start { plan, wait } => {
            check_uuid("actionplan", &plan)?;
            let p = client.post(&format!("/v1/action_plans/{plan}/start"), &json!({}))?;
            if !wait {
                out.show(&p, &plan_cols())?;
                return Ok(0);
            }
            eprintln!("Started {plan}; following it (Ctrl-C stops following, not the plan).");
            let p = wait_for_plan(client, &plan)?;
            return report_final(client, out, &p);
        }
        PlanCmd::Wait { plan } => {
            check_uuid("actionplan", &plan)?;
            let p = wait_for_plan(client, &plan)?;
            return report_final(client, out, &p);
        }
        PlanCmd::Cancel { plan, wait } => {
            check_uuid("actionplan", &plan)?;
            let current = client.get(&format!("/v1/action_plans/{plan}"))?;
            if let Some(code) = already_ended(client, out, &current)? {
                return Ok(code);
            }
            let target = if plan_state(&current) == Some(ActionPlanState::Ongoing) {
                ActionPlanState::Cancelling
            } else {
                ActionPlanState::Cancelled
            };
            let p = match client.patch(
                &format!("/v1/action_plans/{plan}"),
                &json!([{"op": "replace", "path": "/state", "value": target}]),
            ) {
                Ok(p) => p,
                // It ended between our read and the cancel.
                Err(e @ ClientError::Api { status: 400, .. }) => {
                    let now = client.get(&format!("/v1/action_plans/{plan}"))?;
                    return already_ended(client, out, &now)?.ok_or(e.into());
                }
                Err(e) => return Err(e.into()),
            };
            if wait {
                let p = wait_for_plan(client, &plan)?;
                return report_final(client, out, &p);
            }
            out.show(&p, &plan_cols())?;
        }
        PlanCmd::Pause {
            plan,
            reason,
            abort_running,
        } => {
            check_uuid("actionplan", &plan)?;
            let p = client.post(
                &format!("/v1/x-watcherd/action_plans/{plan}/pause"),
                &json!({ "reason": reason, "abort_running": abort_running }),
            )?;
            out.show(&p, &plan_cols())?;
            eprintln!(
                "Paused {plan}: nothing more starts; running actions finish. \
                 `watcher actionplan resume {plan}` goes on; `watcher actionplan cancel {plan}` stops it."
            );
        }
        PlanCmd::Resume { plan, reason, wait } => {
            check_uuid("actionplan", &plan)?;
            let p = client.post(
                &format!("/v1/x-watcherd/action_plans/{plan}/resume"),
                &json!({ "reason": reason }),
            )?;
            if !wait {
                out.show(&p, &plan_cols())?;
                return Ok(0);
            }
            eprintln!("Resumed {plan}; following it (Ctrl-C stops following, not the plan).");
            let p = wait_for_plan(client, &plan)?;
            return report_final(client, out, &p);
        }
        PlanCmd::Delete { plans } => {
            for plan in plans {
                check_uuid("actionplan", &plan)?;
                client.delete(&format!("/v1/action_plans/{plan}"))?;
                out.note(&format!("Deleted action plan {plan}"));
            }
        }
        PlanCmd::History { plan } => {
            check_uuid("actionplan", &plan)?;
            let h = client.get(&format!("/v1/action_plans/{plan}/history"))?;
            out.list(
                h["history"].as_array().map(Vec::as_slice).unwrap_or(&[]),
                columns::HISTORY,
            )?
        }
    }
    Ok(0)
}
