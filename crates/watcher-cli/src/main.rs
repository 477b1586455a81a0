//! watcher: the command line client of watcherd (and of any Watcher v1 API).

mod auth;
mod client;
mod table;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use client::{Client, ClientError};
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "watcher",
    version,
    about = "Drive Watcher: goals, audits, action plans and their actions",
    after_help = "On a real cloud, log in as with every OpenStack CLI:\n  watcher --os-cloud mycloud actionplan list      (an entry of clouds.yaml)\n  source admin-openrc; watcher actionplan list    (the OS_* variables)\nwatcherd is then found in Keystone's catalog (service type infra-optim).\nThe token is kept in ~/.cache/watcher for its lifetime.\n\nOn this machine (the embedded mode, no authentication):\n  watcher actionplan list                          (http://127.0.0.1:9322)\n  watcher --endpoint http://host:9322 goal list\n\nExamples:\n  watcher audit create -g dummy -p para1=30\n  watcher actionplan start <plan-uuid> --wait\n  watcher actionplan cancel <plan-uuid>\n  watcher action list --action-plan <plan-uuid>\n\nExit codes: 0 success; 1 an error; of --wait: 3 FAILED, 4 CANCELLED;\nof cancel: 5 the plan had already ended (its state is printed)."
)]
struct Cli {
    /// Output format.
    #[arg(short = 'f', long = "format", global = true, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// API microversion, e.g. 1.5; default: the highest both watcherd and
    /// this client know.
    #[arg(
        long = "os-infra-optim-api-version",
        visible_alias = "api-version",
        global = true,
        env = "OS_INFRA_OPTIM_API_VERSION",
        value_name = "VERSION"
    )]
    api_version: Option<String>,
    #[command(flatten)]
    auth: auth::AuthArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Format {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Optimization goals.
    #[command(subcommand)]
    Goal(GoalCmd),
    /// Strategies that achieve goals.
    #[command(subcommand)]
    Strategy(StrategyCmd),
    /// Audits: requests for an optimization, which produce action plans.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Action plans: start, follow, cancel.
    #[command(subcommand, name = "actionplan")]
    ActionPlan(PlanCmd),
    /// Actions of action plans.
    #[command(subcommand)]
    Action(ActionCmd),
}

#[derive(Args)]
struct ListOpts {
    /// Show all fields.
    #[arg(long)]
    detail: bool,
    /// Maximum number of items.
    #[arg(long)]
    limit: Option<u32>,
    /// Field to sort by.
    #[arg(long)]
    sort_key: Option<String>,
    /// asc or desc.
    #[arg(long)]
    sort_dir: Option<String>,
    /// UUID of the last item of the previous page.
    #[arg(long)]
    marker: Option<String>,
}

#[derive(Subcommand)]
enum GoalCmd {
    /// List goals.
    List(ListOpts),
    /// Show a goal (UUID or name).
    Show { goal: String },
}

#[derive(Subcommand)]
enum StrategyCmd {
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

#[derive(Subcommand)]
enum AuditCmd {
    /// Create an audit; the decision engine turns it into an action plan.
    Create {
        /// Goal (UUID or name).
        #[arg(short, long)]
        goal: String,
        /// Strategy (UUID or name); default: the goal's first strategy.
        #[arg(short, long)]
        strategy: Option<String>,
        /// Strategy parameter as key=value; repeat for several.
        #[arg(short = 'p', long = "parameter", value_name = "KEY=VALUE")]
        parameters: Vec<String>,
        /// Audit type.
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
    },
    /// List audits.
    List(ListOpts),
    /// Show an audit (UUID or name).
    Show { audit: String },
}

#[derive(Subcommand)]
enum PlanCmd {
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
    /// Start a RECOMMENDED action plan.
    Start {
        plan: String,
        /// Follow the plan until it finishes, with a progress bar.
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
    /// Delete finished or not-started action plans.
    Delete { plans: Vec<String> },
    /// Every state change of the plan and its actions, with who and why.
    History { plan: String },
    /// Follow a running action plan until it finishes.
    Wait { plan: String },
}

#[derive(Subcommand)]
enum ActionCmd {
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
    /// Skip a PENDING action of a plan that has not started.
    Update {
        action: String,
        /// New state (only SKIPPED).
        #[arg(long)]
        state: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
}

const PLAN_LIST: &[(&str, &str)] = &[
    ("UUID", "uuid"),
    ("Audit", "audit_uuid"),
    ("State", "state"),
    ("Updated At", "updated_at"),
    ("Global efficacy", "global_efficacy"),
];
const PLAN_SHOW: &[(&str, &str)] = &[
    ("UUID", "uuid"),
    ("Created At", "created_at"),
    ("Updated At", "updated_at"),
    ("Deleted At", "deleted_at"),
    ("Audit", "audit_uuid"),
    ("Strategy", "strategy_name"),
    ("State", "state"),
    ("Efficacy indicators", "efficacy_indicators"),
    ("Global efficacy", "global_efficacy"),
    ("Hostname", "hostname"),
    ("Status Message", "status_message"),
];
const ACTION_LIST: &[(&str, &str)] = &[
    ("UUID", "uuid"),
    ("Parents", "parents"),
    ("State", "state"),
    ("Action Plan", "action_plan_uuid"),
    ("Action", "action_type"),
];
const ACTION_DETAIL: &[(&str, &str)] = &[
    ("UUID", "uuid"),
    ("Parents", "parents"),
    ("State", "state"),
    ("Action Plan", "action_plan_uuid"),
    ("Action", "action_type"),
    ("Parameters", "input_parameters"),
    ("Status Message", "status_message"),
];
const ACTION_SHOW: &[(&str, &str)] = &[
    ("UUID", "uuid"),
    ("Created At", "created_at"),
    ("Updated At", "updated_at"),
    ("Deleted At", "deleted_at"),
    ("Parents", "parents"),
    ("Action Plan", "action_plan_uuid"),
    ("Action", "action_type"),
    ("Description", "description"),
    ("Parameters", "input_parameters"),
    ("State", "state"),
    ("Status Message", "status_message"),
];
const AUDIT_LIST: &[(&str, &str)] = &[
    ("UUID", "uuid"),
    ("Name", "name"),
    ("Audit Type", "audit_type"),
    ("State", "state"),
    ("Goal", "goal_name"),
    ("Strategy", "strategy_name"),
];
const AUDIT_SHOW: &[(&str, &str)] = &[
    ("UUID", "uuid"),
    ("Name", "name"),
    ("Created At", "created_at"),
    ("Updated At", "updated_at"),
    ("State", "state"),
    ("Audit Type", "audit_type"),
    ("Interval", "interval"),
    ("Next Run Time", "next_run_time"),
    ("Start Time", "start_time"),
    ("End Time", "end_time"),
    ("Parameters", "parameters"),
    ("Goal", "goal_name"),
    ("Strategy", "strategy_name"),
    ("Auto Trigger", "auto_trigger"),
    ("Force", "force"),
    ("Hostname", "hostname"),
    ("Status Message", "status_message"),
];
const GOAL_LIST: &[(&str, &str)] = &[
    ("UUID", "uuid"),
    ("Name", "name"),
    ("Display name", "display_name"),
];
const GOAL_SHOW: &[(&str, &str)] = &[
    ("UUID", "uuid"),
    ("Name", "name"),
    ("Display name", "display_name"),
    ("Efficacy specification", "efficacy_specification"),
];
const STRATEGY_LIST: &[(&str, &str)] = &[
    ("UUID", "uuid"),
    ("Name", "name"),
    ("Display name", "display_name"),
    ("Goal", "goal_name"),
];
const STRATEGY_SHOW: &[(&str, &str)] = &[
    ("UUID", "uuid"),
    ("Name", "name"),
    ("Display name", "display_name"),
    ("Goal", "goal_name"),
    ("Parameters spec", "parameters_spec"),
];
const HISTORY: &[(&str, &str)] = &[
    ("At", "at"),
    ("Resource", "resource"),
    ("UUID", "uuid"),
    ("From", "from_state"),
    ("To", "to_state"),
    ("By", "actor"),
    ("Reason", "reason"),
];

struct Out {
    format: Format,
}

impl Out {
    fn list(&self, items: &Value, columns: &[(&str, &str)]) {
        match self.format {
            Format::Json => println!(
                "{}",
                serde_json::to_string_pretty(items).unwrap_or_default()
            ),
            Format::Table => print!(
                "{}",
                table::list(items.as_array().map(Vec::as_slice).unwrap_or(&[]), columns)
            ),
        }
    }
    fn show(&self, item: &Value, fields: &[(&str, &str)]) {
        match self.format {
            Format::Json => println!("{}", serde_json::to_string_pretty(item).unwrap_or_default()),
            Format::Table => print!("{}", table::show(item, fields)),
        }
    }
}

fn query(opts: &ListOpts, extra: &[(&str, Option<&String>)]) -> String {
    let mut q: Vec<String> = Vec::new();
    for (k, v) in extra {
        if let Some(v) = v {
            q.push(format!("{k}={v}"));
        }
    }
    if let Some(l) = opts.limit {
        q.push(format!("limit={l}"));
    }
    for (k, v) in [
        ("sort_key", &opts.sort_key),
        ("sort_dir", &opts.sort_dir),
        ("marker", &opts.marker),
    ] {
        if let Some(v) = v {
            q.push(format!("{k}={v}"));
        }
    }
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

fn list_path(resource: &str, opts: &ListOpts, extra: &[(&str, Option<&String>)]) -> String {
    let detail = if opts.detail { "/detail" } else { "" };
    format!("/v1/{resource}{detail}{}", query(opts, extra))
}

fn parse_parameters(items: &[String]) -> anyhow::Result<Value> {
    let mut map = serde_json::Map::new();
    for item in items {
        let (k, v) = item
            .split_once('=')
            .with_context(|| format!("parameter '{item}' must look like key=value"))?;
        // Numbers, booleans and JSON stay typed; anything else is a string.
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        map.insert(k.to_string(), value);
    }
    Ok(Value::Object(map))
}

fn check_uuid(kind: &str, s: &str) -> anyhow::Result<()> {
    if uuid::Uuid::parse_str(s).is_err() {
        bail!("'{s}' is not a valid {kind} UUID; see `watcher {kind} list`");
    }
    Ok(())
}

/// Exit code for a plan's final state under --wait.
fn exit_code(state: &str) -> i32 {
    match state {
        "SUCCEEDED" => 0,
        "FAILED" => 3,
        "CANCELLED" => 4,
        _ => 1,
    }
}

const FINISHED: &[&str] = &["SUCCEEDED", "FAILED", "CANCELLED", "SUPERSEDED", "DELETED"];
/// Exit code of `actionplan cancel` on a plan that had already ended.
const ALREADY_ENDED: i32 = 5;

/// Follows a plan until it finishes: a progress bar on a terminal, one line
/// per change otherwise. Returns the final plan.
fn wait_for_plan(client: &Client, plan: &str) -> anyhow::Result<Value> {
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_line = String::new();
    loop {
        let p = client.get(&format!("/v1/action_plans/{plan}"))?;
        let actions = client.get(&format!("/v1/actions/detail?action_plan_uuid={plan}"))?;
        let actions = actions["actions"].as_array().cloned().unwrap_or_default();
        let state = p["state"].as_str().unwrap_or("?").to_string();
        let done = actions
            .iter()
            .filter(|a| {
                matches!(
                    a["state"].as_str(),
                    Some("SUCCEEDED" | "FAILED" | "CANCELLED" | "SKIPPED")
                )
            })
            .count();
        let current: Vec<String> = actions
            .iter()
            .filter(|a| matches!(a["state"].as_str(), Some("ONGOING" | "CANCELLING")))
            .map(|a| {
                let (t, st) = (
                    a["action_type"].as_str().unwrap_or("?"),
                    a["state"].as_str().unwrap_or("?"),
                );
                match a["status_message"].as_str() {
                    Some(m) if !m.is_empty() => format!("{t} ({st}: {m})"),
                    _ => format!("{t} ({st})"),
                }
            })
            .collect();
        let total = actions.len().max(1);
        let secs = started.elapsed().as_secs();
        let bar_width = 24;
        let filled = done * bar_width / total;
        let line = format!(
            "[{}{}] {done}/{} actions | plan {state}{} | {:02}:{:02}",
            "#".repeat(filled),
            "-".repeat(bar_width - filled),
            actions.len(),
            if current.is_empty() {
                String::new()
            } else {
                format!(" | running: {}", current.join(", "))
            },
            secs / 60,
            secs % 60
        );
        if tty {
            eprint!("\r\x1b[2K{line}");
            let _ = std::io::stderr().flush();
        } else {
            let key = format!("{done} {state} {}", current.join(","));
            if key != last_line {
                eprintln!("{line}");
                last_line = key;
            }
        }
        if FINISHED.contains(&state.as_str()) {
            if tty {
                eprintln!();
            }
            return Ok(p);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// For a cancel: a plan that had already ended is shown and said so, with
/// exit code [`ALREADY_ENDED`]; `None` if it has not ended.
fn already_ended(out: &Out, plan: &Value) -> Option<i32> {
    let state = plan["state"].as_str().unwrap_or("?");
    if !FINISHED.contains(&state) {
        return None;
    }
    out.show(plan, PLAN_SHOW);
    let uuid = plan["uuid"].as_str().unwrap_or("?");
    eprintln!("Action plan {uuid} had already ended {state}; there is nothing to cancel.");
    if state != "CANCELLED" {
        eprintln!(
            "Its actions stay as they ended: see `watcher action list --action-plan {uuid} --detail`."
        );
    }
    Some(ALREADY_ENDED)
}

fn report_final(out: &Out, plan: &Value) -> i32 {
    out.show(plan, PLAN_SHOW);
    let state = plan["state"].as_str().unwrap_or("?");
    let code = exit_code(state);
    if code != 0 {
        let why = plan["status_message"].as_str().unwrap_or("");
        eprintln!(
            "Action plan {} ended {state}{}{}\nSee `watcher action list --action-plan {} --detail`.",
            plan["uuid"].as_str().unwrap_or("?"),
            if why.is_empty() { "" } else { ": " },
            why,
            plan["uuid"].as_str().unwrap_or("?"),
        );
    }
    code
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let version = cli
        .api_version
        .clone()
        .or_else(|| std::env::var("WATCHER_API_VERSION").ok());
    let client = Client::new(cli.auth.resolve()?, version.as_deref())?;
    let out = Out { format: cli.format };
    match cli.command {
        Command::Goal(cmd) => goal(&client, &out, cmd),
        Command::Strategy(cmd) => strategy(&client, &out, cmd),
        Command::Audit(cmd) => audit(&client, &out, cmd),
        Command::ActionPlan(cmd) => action_plan(&client, &out, cmd),
        Command::Action(cmd) => action(&client, &out, cmd),
    }
}

/// `watcher goal ...`
fn goal(client: &Client, out: &Out, cmd: GoalCmd) -> anyhow::Result<i32> {
    match cmd {
        GoalCmd::List(o) => out.list(
            &client.get(&list_path("goals", &o, &[]))?["goals"],
            GOAL_LIST,
        ),
        GoalCmd::Show { goal } => out.show(&client.get(&format!("/v1/goals/{goal}"))?, GOAL_SHOW),
    }
    Ok(0)
}

/// `watcher strategy ...`
fn strategy(client: &Client, out: &Out, cmd: StrategyCmd) -> anyhow::Result<i32> {
    match cmd {
        StrategyCmd::List { goal, opts } => out.list(
            &client.get(&list_path("strategies", &opts, &[("goal", goal.as_ref())]))?["strategies"],
            STRATEGY_LIST,
        ),
        StrategyCmd::Show { strategy } => out.show(
            &client.get(&format!("/v1/strategies/{strategy}"))?,
            STRATEGY_SHOW,
        ),
        StrategyCmd::State { strategy } => out.list(
            &client.get(&format!("/v1/strategies/{strategy}/state"))?,
            &[
                ("Type", "type"),
                ("State", "state"),
                ("Mandatory", "mandatory"),
                ("Comment", "comment"),
            ],
        ),
    }
    Ok(0)
}

/// `watcher audit ...`
fn audit(client: &Client, out: &Out, cmd: AuditCmd) -> anyhow::Result<i32> {
    match cmd {
        AuditCmd::Create {
            goal,
            strategy,
            parameters,
            audit_type,
            interval,
            start_time,
            end_time,
            name,
            auto_trigger,
            force,
        } => {
            let v = client.version();
            if v < (1, 1) && (start_time.is_some() || end_time.is_some()) {
                bail!("--start-time and --end-time need API version 1.1 or later (this session uses {}.{})", v.0, v.1);
            }
            let mut body = json!({"audit_type": audit_type.to_uppercase(), "goal": goal, "auto_trigger": auto_trigger});
            if v >= (1, 2) {
                body["force"] = json!(force);
            } else if force {
                bail!(
                    "--force needs API version 1.2 or later (this session uses {}.{})",
                    v.0,
                    v.1
                );
            }
            for (key, value) in [
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
            out.show(&client.post("/v1/audits", &body)?, AUDIT_SHOW);
        }
        AuditCmd::List(o) => out.list(
            &client.get(&list_path("audits", &o, &[]))?["audits"],
            AUDIT_LIST,
        ),
        AuditCmd::Show { audit } => {
            out.show(&client.get(&format!("/v1/audits/{audit}"))?, AUDIT_SHOW)
        }
    }
    Ok(0)
}

/// `watcher actionplan ...`
fn action_plan(client: &Client, out: &Out, cmd: PlanCmd) -> anyhow::Result<i32> {
    match cmd {
        PlanCmd::List { audit, opts } => out.list(
            &client.get(&list_path(
                "action_plans",
                &opts,
                &[("audit_uuid", audit.as_ref())],
            ))?["action_plans"],
            PLAN_LIST,
        ),
        PlanCmd::Show { plan } => {
            check_uuid("actionplan", &plan)?;
            out.show(&client.get(&format!("/v1/action_plans/{plan}"))?, PLAN_SHOW)
        }
        PlanCmd::Start { plan, wait } => {
            check_uuid("actionplan", &plan)?;
            let p = client.post(&format!("/v1/action_plans/{plan}/start"), &json!({}))?;
            if !wait {
                out.show(&p, PLAN_SHOW);
                return Ok(0);
            }
            eprintln!("Started {plan}; following it (Ctrl-C stops following, not the plan).");
            let p = wait_for_plan(client, &plan)?;
            return Ok(report_final(out, &p));
        }
        PlanCmd::Wait { plan } => {
            check_uuid("actionplan", &plan)?;
            let p = wait_for_plan(client, &plan)?;
            return Ok(report_final(out, &p));
        }
        PlanCmd::Cancel { plan, wait } => {
            check_uuid("actionplan", &plan)?;
            let current = client.get(&format!("/v1/action_plans/{plan}"))?;
            if let Some(code) = already_ended(out, &current) {
                return Ok(code);
            }
            let target = if current["state"] == "ONGOING" {
                "CANCELLING"
            } else {
                "CANCELLED"
            };
            let p = match client.patch(
                &format!("/v1/action_plans/{plan}"),
                &json!([{"op": "replace", "path": "/state", "value": target}]),
            ) {
                Ok(p) => p,
                // It ended between our read and the cancel.
                Err(e @ ClientError::Api { status: 400, .. }) => {
                    let now = client.get(&format!("/v1/action_plans/{plan}"))?;
                    return already_ended(out, &now).ok_or(e.into());
                }
                Err(e) => return Err(e.into()),
            };
            if wait {
                let p = wait_for_plan(client, &plan)?;
                return Ok(report_final(out, &p));
            }
            out.show(&p, PLAN_SHOW);
        }
        PlanCmd::Delete { plans } => {
            if plans.is_empty() {
                bail!("name at least one action plan to delete");
            }
            for plan in plans {
                check_uuid("actionplan", &plan)?;
                client.delete(&format!("/v1/action_plans/{plan}"))?;
                if out.format == Format::Table {
                    println!("Deleted action plan {plan}");
                }
            }
        }
        PlanCmd::History { plan } => {
            check_uuid("actionplan", &plan)?;
            out.list(
                &client.get(&format!("/v1/action_plans/{plan}/history"))?["history"],
                HISTORY,
            )
        }
    }
    Ok(0)
}

/// `watcher action ...`
fn action(client: &Client, out: &Out, cmd: ActionCmd) -> anyhow::Result<i32> {
    match cmd {
        ActionCmd::List {
            action_plan,
            audit,
            opts,
        } => {
            let path = list_path(
                "actions",
                &opts,
                &[
                    ("action_plan_uuid", action_plan.as_ref()),
                    ("audit_uuid", audit.as_ref()),
                ],
            );
            let cols = if opts.detail {
                ACTION_DETAIL
            } else {
                ACTION_LIST
            };
            out.list(&client.get(&path)?["actions"], cols)
        }
        ActionCmd::Show { action } => {
            check_uuid("action", &action)?;
            out.show(&client.get(&format!("/v1/actions/{action}"))?, ACTION_SHOW)
        }
        ActionCmd::Update {
            action,
            state,
            reason,
        } => {
            check_uuid("action", &action)?;
            let v = client.version();
            if v < (1, 5) {
                bail!(
                    "action update needs API version 1.5 or later (this session uses {}.{})",
                    v.0,
                    v.1
                );
            }
            let mut ops = vec![json!({"op": "replace", "path": "/state", "value": state})];
            if let Some(r) = reason {
                ops.push(json!({"op": "replace", "path": "/status_message", "value": r}));
            }
            out.show(
                &client.patch(&format!("/v1/actions/{action}"), &Value::Array(ops))?,
                ACTION_SHOW,
            )
        }
    }
    Ok(0)
}

fn main() {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            match e.downcast_ref::<ClientError>() {
                Some(ClientError::Api { message, status }) => {
                    eprintln!("ERROR: {message} (HTTP {status})")
                }
                _ => eprintln!("ERROR: {e:#}"),
            }
            std::process::exit(1);
        }
    }
}
