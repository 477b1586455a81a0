//! `watcher audit create|list|show|update|delete`, with `--wait` and
//! `--start` of our own.

use crate::arguments::*;
use crate::client::Client;
use crate::columns;
use crate::output::Out;
use crate::plan::report_final;
use crate::progress::wait_for_plan;
use crate::states::{audit_state, audit_type, plan_state};
use anyhow::bail;
use clap::Subcommand;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use watcher_core::{ActionPlanState, AuditState, AuditType};

#[derive(Subcommand)]
pub(crate) enum AuditCmd {
    /// Create an audit; the decision engine turns it into an action plan.
    Create {
        /// Goal (UUID or name).
        #[arg(short, long)]
        goal: Option<String>,
        /// Strategy (UUID or name); default: the goal's first strategy.
        #[arg(short, long)]
        strategy: Option<String>,
        /// Audit template (UUID or name) whose goal, strategy and scope to use.
        #[arg(short = 'a', long = "audit-template")]
        audit_template: Option<String>,
        /// Strategy parameter as key=value; repeat for several.
        #[arg(short = 'p', long = "parameter", value_name = "KEY=VALUE")]
        parameters: Vec<String>,
        /// Audit type: ONESHOT, CONTINUOUS or EVENT.
        #[arg(short = 't', long = "audit_type", default_value = "ONESHOT")]
        audit_type: String,
        /// For CONTINUOUS audits: seconds between runs, or a cron expression
        /// such as '0 */6 * * *' (UTC).
        #[arg(short, long)]
        interval: Option<String>,
        /// For CONTINUOUS audits: no run before this time (ISO 8601, UTC unless an offset is given).
        #[arg(long)]
        start_time: Option<String>,
        /// For CONTINUOUS audits: the audit ends (SUCCEEDED) at this time.
        #[arg(long)]
        end_time: Option<String>,
        /// Audit name; default: the strategy's name and the time.
        #[arg(long)]
        name: Option<String>,
        /// Start the resulting action plan at once.
        #[arg(long)]
        auto_trigger: bool,
        /// Run even while another action plan is ONGOING.
        #[arg(long)]
        force: bool,
        /// Ours: wait for the audit and print the action plan it made.
        #[arg(long)]
        wait: bool,
        /// Ours: wait for the plan, start it and follow it to its end.
        #[arg(long)]
        start: bool,
    },
    /// List audits.
    List {
        #[command(flatten)]
        by: GoalStrategy,
        #[command(flatten)]
        opts: ListOpts,
    },
    /// Show an audit (UUID or name).
    Show { audit: String },
    /// Change an audit: add, replace or remove PATH=VALUE (cancel one
    /// with `replace state=CANCELLED`).
    Update {
        audit: String,
        #[command(flatten)]
        change: PatchArgs,
    },
    /// Delete audits.
    Delete {
        #[arg(required = true)]
        audits: Vec<String>,
    },
}

/// Upstream shows an audit without a strategy as strategy "auto".
pub(crate) fn with_auto_strategy(mut audit: Value) -> Value {
    if audit.get("strategy_name").is_none_or(Value::is_null) {
        audit["strategy_name"] = json!("auto");
    }
    audit
}

/// `watcher audit ...`
// Long because one arm per subcommand of `watcher audit`, each a few calls.
pub(crate) fn audit(client: &Client, out: &Out, cmd: AuditCmd) -> anyhow::Result<i32> {
    match cmd {
        AuditCmd::Create {
            goal,
            strategy,
            audit_template,
            parameters,
            audit_type,
            interval,
            start_time,
            end_time,
            name,
            auto_trigger,
            force,
            wait,
            start,
        } => {
            let v = client.version();
            if start_time.is_some() || end_time.is_some() {
                client.require_version((1, 1), "--start-time and --end-time")?;
            }
            let mut body =
                json!({"audit_type": audit_type.to_uppercase(), "auto_trigger": auto_trigger});
            if force {
                client.require_version((1, 2), "--force")?;
            }
            if v >= (1, 2) {
                body["force"] = json!(force);
            }
            if let Some(t) = audit_template {
                let uuid = if uuid::Uuid::parse_str(&t).is_ok() {
                    t
                } else {
                    let found = client.get(&format!("/v1/audit_templates/{t}"))?;
                    found["uuid"].as_str().unwrap_or(&t).to_string()
                };
                body["audit_template_uuid"] = json!(uuid);
            } else if goal.is_none() {
                bail!("say what to optimize: --goal GOAL (see `watcher goal list`) or --audit-template TEMPLATE");
            }
            for (key, value) in [
                ("goal", goal),
                ("strategy", strategy),
                ("name", name),
                ("interval", interval),
                ("start_time", start_time),
                ("end_time", end_time),
            ] {
                if let Some(v) = value {
                    body[key] = json!(v);
                }
            }
            if !parameters.is_empty() {
                body["parameters"] = parse_parameters(&parameters)?;
            }
            let created = with_auto_strategy(client.post("/v1/audits", &body)?);
            if !(wait || start) {
                out.show(&created, &columns::audit(v))?;
                return Ok(0);
            }
            let uuid = created["uuid"].as_str().unwrap_or_default().to_string();
            let plan = wait_for_audit_plan(client, &uuid)?;
            let plan_uuid = plan["uuid"].as_str().unwrap_or_default().to_string();
            if !start {
                out.show(&plan, &columns::plan(client.version()))?;
                eprintln!("Start it with `watcher actionplan start {plan_uuid} --wait`.");
                return Ok(0);
            }
            if plan_state(&plan) == Some(ActionPlanState::Recommended) {
                client.post(&format!("/v1/action_plans/{plan_uuid}/start"), &json!({}))?;
            }
            eprintln!("Started {plan_uuid}; following it (Ctrl-C stops following, not the plan).");
            let p = wait_for_plan(client, &plan_uuid)?;
            return report_final(client, out, &p);
        }
        AuditCmd::List { by, opts } => {
            let cols = if opts.detail {
                columns::audit(client.version())
            } else {
                columns::AUDIT_LIST.to_vec()
            };
            let extra = by.query();
            let items: Vec<Value> = list_items(client, "audits", &opts, &cols, &extra)?
                .into_iter()
                .map(with_auto_strategy)
                .collect();
            out.list(&items, &cols)?
        }
        AuditCmd::Show { audit } => out.show(
            &client.get(&format!("/v1/audits/{audit}"))?,
            &columns::audit(client.version()),
        )?,
        AuditCmd::Update { audit, change } => out.show(
            &client.patch(
                &format!("/v1/audits/{audit}"),
                &patch(&change, &["/interval"])?,
            )?,
            &columns::audit(client.version()),
        )?,
        AuditCmd::Delete { audits } => {
            for a in audits {
                client.delete(&format!("/v1/audits/{a}"))?;
                out.note(&format!("Deleted audit {a}"));
            }
        }
    }
    Ok(0)
}

/// Waits for a ONESHOT audit to end and returns the action plan it made.
pub(crate) fn wait_for_audit_plan(client: &Client, audit: &str) -> anyhow::Result<Value> {
    let started = Instant::now();
    loop {
        let a = client.get(&format!("/v1/audits/{audit}"))?;
        let state = audit_state(&a);
        match state {
            Some(AuditState::Succeeded) => {
                let plans = client.get(&format!("/v1/action_plans?audit_uuid={audit}"))?;
                let Some(first) = plans["action_plans"]
                    .as_array()
                    .and_then(|p| p.first().cloned())
                else {
                    bail!("audit {audit} SUCCEEDED without an action plan: nothing to optimize");
                };
                let uuid = first["uuid"].as_str().unwrap_or_default();
                return Ok(client.get(&format!("/v1/action_plans/{uuid}"))?);
            }
            Some(
                s @ (AuditState::Failed
                | AuditState::Cancelled
                | AuditState::Deleted
                | AuditState::Suspended),
            ) => {
                let why = a["status_message"].as_str().unwrap_or("");
                bail!(
                    "audit {audit} ended {s}{}{why}",
                    if why.is_empty() { "" } else { ": " }
                );
            }
            Some(AuditState::Ongoing) if audit_type(&a) != Some(AuditType::Oneshot) => {
                bail!("audit {audit} is {}: it keeps running, so there is no one plan to wait for; see `watcher actionplan list --audit {audit}`", a["audit_type"].as_str().unwrap_or("?"));
            }
            _ => {}
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("audit {audit} has not ended after 10 minutes; see `watcher audit show {audit}`");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
