//! watcher: the command line client of watcherd (and of any Watcher v1 API),
//! with the commands and options of python-watcherclient 4.11 and a few of
//! our own (`actionplan history`, `--wait`, `audit create --start`).

mod auth;
mod client;
mod columns;
mod output;
mod progress;
mod table;

use anyhow::{bail, Context};
use clap::{Args, CommandFactory, Parser, Subcommand};
use client::{Client, ClientError};
use output::{Columns, Out};
use progress::{wait_for_plan, FINISHED};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "watcher",
    version,
    about = "Drive Watcher: goals, audits, action plans and their actions",
    after_help = "On a real cloud, log in as with every OpenStack CLI:\n  watcher --os-cloud mycloud actionplan list      (an entry of clouds.yaml)\n  source admin-openrc; watcher actionplan list    (the OS_* variables)\nwatcherd is then found in Keystone's catalog (service type infra-optim).\nThe token is kept in ~/.cache/watcher for its lifetime.\n\nOn this machine (the embedded mode, no authentication):\n  watcher actionplan list                          (http://127.0.0.1:9322)\n  watcher --endpoint http://host:9322 goal list\n\nExamples:\n  watcher audit create -g dummy -p para1=30 --wait\n  watcher actionplan start <plan-uuid> --wait\n  watcher actionplan cancel <plan-uuid>\n  watcher action list --action-plan <plan-uuid> --detail\n  watcher completion bash > /etc/bash_completion.d/watcher\n\nExit codes: 0 success; 1 an error; of --wait: 3 FAILED, 4 CANCELLED;\nof cancel: 5 the plan had already ended (its state is printed)."
)]
struct Cli {
    #[command(flatten)]
    output: output::OutputArgs,
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

#[derive(Subcommand)]
enum Command {
    /// Optimization goals.
    #[command(subcommand)]
    Goal(GoalCmd),
    /// Strategies that achieve goals.
    #[command(subcommand)]
    Strategy(StrategyCmd),
    /// Audit templates: saved goal, strategy, scope and parameters.
    #[command(subcommand, name = "audittemplate")]
    AuditTemplate(TemplateCmd),
    /// Audits: requests for an optimization, which produce action plans.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Action plans: start, follow, cancel.
    #[command(subcommand, name = "actionplan")]
    ActionPlan(PlanCmd),
    /// Actions of action plans.
    #[command(subcommand)]
    Action(ActionCmd),
    /// Scoring engines.
    #[command(subcommand, name = "scoringengine")]
    ScoringEngine(SimpleCmd),
    /// Watcher's own services (API, decision engine, applier).
    #[command(subcommand)]
    Service(SimpleCmd),
    /// The cluster model the decision engine sees.
    #[command(subcommand, name = "datamodel")]
    DataModel(DataModelCmd),
    /// Print a shell completion script (bash, zsh, fish).
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Args)]
struct ListOpts {
    /// Show all fields.
    #[arg(long)]
    detail: bool,
    /// Maximum number of items; 0 fetches every page.
    #[arg(long)]
    limit: Option<u32>,
    /// Field (or column title) to sort by.
    #[arg(long)]
    sort_key: Option<String>,
    /// asc (default) or desc.
    #[arg(long, value_parser = ["asc", "desc"])]
    sort_dir: Option<String>,
    /// UUID of the last item of the previous page.
    #[arg(long)]
    marker: Option<String>,
}

/// The filters of audit and audit template lists.
#[derive(Args)]
struct GoalStrategy {
    /// Only those of this goal (UUID or name).
    #[arg(long)]
    goal: Option<String>,
    /// Only those of this strategy (UUID or name).
    #[arg(long)]
    strategy: Option<String>,
}

impl GoalStrategy {
    fn query(&self) -> [(&'static str, Option<&String>); 2] {
        [
            ("goal", self.goal.as_ref()),
            ("strategy", self.strategy.as_ref()),
        ]
    }
}

/// `<op> <path=value>...` of the update commands.
#[derive(Args)]
struct PatchArgs {
    #[arg(value_parser = ["add", "replace", "remove"])]
    op: String,
    #[arg(required = true, value_name = "PATH=VALUE")]
    attributes: Vec<String>,
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
enum TemplateCmd {
    /// List audit templates.
    List {
        #[command(flatten)]
        by: GoalStrategy,
        #[command(flatten)]
        opts: ListOpts,
    },
    /// Show an audit template (UUID or name).
    Show { template: String },
    /// Create an audit template.
    Create {
        name: String,
        /// Goal (UUID or name).
        goal: String,
        /// Strategy (UUID or name).
        #[arg(short, long)]
        strategy: Option<String>,
        #[arg(short, long)]
        description: Option<String>,
        /// The audit scope: a file with the scope's list (JSON, or YAML
        /// written in flow style).
        #[arg(long, value_name = "FILE")]
        scope: Option<std::path::PathBuf>,
        /// Default strategy parameter for audits made from it (API 1.7).
        #[arg(short = 'p', long = "default-parameter", value_name = "KEY=VALUE")]
        default_parameters: Vec<String>,
    },
    /// Change an audit template: add, replace or remove PATH=VALUE.
    Update {
        template: String,
        #[command(flatten)]
        change: PatchArgs,
    },
    /// Delete audit templates.
    Delete {
        #[arg(required = true)]
        templates: Vec<String>,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
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

#[derive(Subcommand)]
enum SimpleCmd {
    /// List them.
    List(ListOpts),
    /// Show one (UUID, id or name).
    Show { name: String },
}

#[derive(Subcommand)]
enum DataModelCmd {
    /// List the servers of the model with their hosts.
    List {
        /// compute (the only model served).
        #[arg(long = "type", default_value = "compute", value_parser = ["compute", "storage", "baremetal"])]
        model_type: String,
        /// Only what this audit's scope covers.
        #[arg(long)]
        audit: Option<String>,
        /// Every field.
        #[arg(long)]
        detail: bool,
    },
}

/// The query of a list request, in upstream's order.
fn query(
    opts: &ListOpts,
    columns: Columns,
    extra: &[(&str, Option<&String>)],
) -> anyhow::Result<String> {
    let mut q: Vec<String> = Vec::new();
    for (k, v) in extra {
        if let Some(v) = v {
            q.push(format!("{k}={v}"));
        }
    }
    if let Some(l) = opts.limit.filter(|l| *l > 0) {
        q.push(format!("limit={l}"));
    }
    if let Some(key) = &opts.sort_key {
        let Some(field) = columns::sort_field(key, columns) else {
            let valid: Vec<String> = columns
                .iter()
                .flat_map(|(t, f)| [t.to_string(), f.to_string()])
                .collect();
            bail!(
                "{key} is an invalid field for sorting, valid values for --sort-key are: {}",
                valid.join(", ")
            );
        };
        q.push(format!("sort_key={field}"));
    }
    for (k, v) in [("sort_dir", &opts.sort_dir), ("marker", &opts.marker)] {
        if let Some(v) = v {
            q.push(format!("{k}={v}"));
        }
    }
    Ok(if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    })
}

/// The items of a list: one page, or with `--limit 0` every page (the
/// `next` links).
fn list_items(
    client: &Client,
    resource: &str,
    opts: &ListOpts,
    columns: Columns,
    extra: &[(&str, Option<&String>)],
) -> anyhow::Result<Vec<Value>> {
    let detail = if opts.detail { "/detail" } else { "" };
    let mut path = format!("/v1/{resource}{detail}{}", query(opts, columns, extra)?);
    let mut items = vec![];
    loop {
        let page = client.get(&path)?;
        items.extend(page[resource].as_array().cloned().unwrap_or_default());
        let next = page["next"].as_str().filter(|n| !n.is_empty());
        match next.and_then(|n| n.find("/v1/").map(|i| n[i..].to_string())) {
            Some(n) if opts.limit == Some(0) => path = n,
            _ => return Ok(items),
        }
    }
}

/// KEY=VALUE items as a map, each value JSON when it reads as JSON.
fn parse_parameters(items: &[String]) -> anyhow::Result<Value> {
    let mut map = serde_json::Map::new();
    for item in items {
        let (k, v) = item
            .split_once('=')
            .with_context(|| format!("parameter '{item}' must look like key=value"))?;
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        map.insert(k.to_string(), value);
    }
    Ok(Value::Object(map))
}

/// A JSON Patch from `op` and PATH=VALUE items, as upstream builds it:
/// a leading `/` added, values JSON-decoded unless their path is in `raw`.
fn patch(change: &PatchArgs, raw: &[&str]) -> anyhow::Result<Value> {
    let op = change.op.as_str();
    let mut ops = vec![];
    for attr in &change.attributes {
        let attr = if attr.starts_with('/') {
            attr.clone()
        } else {
            format!("/{attr}")
        };
        if op == "remove" {
            ops.push(json!({"op": op, "path": attr}));
            continue;
        }
        let (path, value) = attr
            .split_once('=')
            .with_context(|| format!("attributes must be a list of PATH=VALUE, not \"{attr}\""))?;
        let value = if raw.contains(&path) {
            Value::String(value.to_string())
        } else {
            serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()))
        };
        ops.push(json!({"op": op, "path": path, "value": value}));
    }
    Ok(Value::Array(ops))
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

/// Exit code of `actionplan cancel` on a plan that had already ended.
const ALREADY_ENDED: i32 = 5;

/// For a cancel: a plan that had already ended is shown and said so, with
/// exit code [`ALREADY_ENDED`]; `None` if it has not ended.
fn already_ended(client: &Client, out: &Out, plan: &Value) -> anyhow::Result<Option<i32>> {
    let state = plan["state"].as_str().unwrap_or("?");
    if !FINISHED.contains(&state) {
        return Ok(None);
    }
    out.show(plan, &columns::plan(client.version()))?;
    let uuid = plan["uuid"].as_str().unwrap_or("?");
    eprintln!("Action plan {uuid} had already ended {state}; there is nothing to cancel.");
    if state != "CANCELLED" {
        eprintln!(
            "Its actions stay as they ended: see `watcher action list --action-plan {uuid} --detail`."
        );
    }
    Ok(Some(ALREADY_ENDED))
}

fn report_final(client: &Client, out: &Out, plan: &Value) -> anyhow::Result<i32> {
    out.show(plan, &columns::plan(client.version()))?;
    let state = plan["state"].as_str().unwrap_or("?");
    let code = exit_code(state);
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

fn run(cli: Cli) -> anyhow::Result<i32> {
    if let Command::Completion { shell } = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "watcher",
            &mut std::io::stdout(),
        );
        return Ok(0);
    }
    let version = cli
        .api_version
        .clone()
        .or_else(|| std::env::var("WATCHER_API_VERSION").ok());
    let client = Client::new(cli.auth.resolve()?, version.as_deref())?;
    let out = Out { args: cli.output };
    match cli.command {
        Command::Goal(cmd) => goal(&client, &out, cmd),
        Command::Strategy(cmd) => strategy(&client, &out, cmd),
        Command::AuditTemplate(cmd) => audit_template(&client, &out, cmd),
        Command::Audit(cmd) => audit(&client, &out, cmd),
        Command::ActionPlan(cmd) => action_plan(&client, &out, cmd),
        Command::Action(cmd) => action(&client, &out, cmd),
        Command::ScoringEngine(cmd) => simple(
            &client,
            &out,
            cmd,
            "scoring_engines",
            columns::SCORING_ENGINE_LIST,
            columns::SCORING_ENGINE,
        ),
        Command::Service(cmd) => simple(
            &client,
            &out,
            cmd,
            "services",
            columns::SERVICE_LIST,
            columns::SERVICE,
        ),
        Command::DataModel(cmd) => data_model(&client, &out, cmd),
        Command::Completion { .. } => unreachable!("answered above"),
    }
}

/// `watcher goal ...`
fn goal(client: &Client, out: &Out, cmd: GoalCmd) -> anyhow::Result<i32> {
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

/// `watcher strategy ...`
fn strategy(client: &Client, out: &Out, cmd: StrategyCmd) -> anyhow::Result<i32> {
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
                    Value::String(output::python_json(p, 2))
                }
                _ => json!({}),
            };
            out.show(&s, columns::STRATEGY)?
        }
        StrategyCmd::State { strategy } => {
            let mut states = client.get(&format!("/v1/strategies/{strategy}/state"))?;
            for req in states.as_array_mut().into_iter().flatten() {
                if req["state"].is_array() {
                    req["state"] = Value::String(output::python_json(&req["state"], 2));
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

/// `watcher audittemplate ...`
fn audit_template(client: &Client, out: &Out, cmd: TemplateCmd) -> anyhow::Result<i32> {
    match cmd {
        TemplateCmd::List { by, opts } => {
            let cols = if opts.detail {
                columns::AUDIT_TEMPLATE
            } else {
                columns::AUDIT_TEMPLATE_LIST
            };
            let extra = by.query();
            out.list(
                &list_items(client, "audit_templates", &opts, cols, &extra)?,
                cols,
            )?
        }
        TemplateCmd::Show { template } => out.show(
            &client.get(&format!("/v1/audit_templates/{template}"))?,
            columns::AUDIT_TEMPLATE,
        )?,
        TemplateCmd::Create {
            name,
            goal,
            strategy,
            description,
            scope,
            default_parameters,
        } => {
            let mut body = json!({"name": name, "goal": goal});
            if let Some(s) = strategy {
                body["strategy"] = json!(s);
            }
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            if let Some(file) = scope {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read the scope file {}", file.display()))?;
                body["scope"] = serde_json::from_str(&text).with_context(|| {
                    format!(
                        "{}: write the scope as JSON (YAML's flow style), e.g. \
                         [{{\"compute\": [{{\"host_aggregates\": [{{\"id\": 1}}]}}]}}]",
                        file.display()
                    )
                })?;
            }
            if !default_parameters.is_empty() {
                client.require_version((1, 7), "--default-parameter")?;
                body["default_parameters"] = parse_parameters(&default_parameters)?;
            }
            out.show(
                &client.post("/v1/audit_templates", &body)?,
                columns::AUDIT_TEMPLATE,
            )?
        }
        TemplateCmd::Update { template, change } => out.show(
            &client.patch(
                &format!("/v1/audit_templates/{template}"),
                &patch(&change, &[])?,
            )?,
            columns::AUDIT_TEMPLATE,
        )?,
        TemplateCmd::Delete { templates } => {
            for t in templates {
                client.delete(&format!("/v1/audit_templates/{t}"))?;
                out.note(&format!("Deleted audit template {t}"));
            }
        }
    }
    Ok(0)
}

/// Upstream shows an audit without a strategy as strategy "auto".
fn with_auto_strategy(mut audit: Value) -> Value {
    if audit.get("strategy_name").is_none_or(Value::is_null) {
        audit["strategy_name"] = json!("auto");
    }
    audit
}

/// `watcher audit ...`
fn audit(client: &Client, out: &Out, cmd: AuditCmd) -> anyhow::Result<i32> {
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
            if plan["state"] == "RECOMMENDED" {
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
fn wait_for_audit_plan(client: &Client, audit: &str) -> anyhow::Result<Value> {
    let started = Instant::now();
    loop {
        let a = client.get(&format!("/v1/audits/{audit}"))?;
        match a["state"].as_str().unwrap_or("?") {
            "SUCCEEDED" => {
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
            s @ ("FAILED" | "CANCELLED" | "DELETED" | "SUSPENDED") => {
                let why = a["status_message"].as_str().unwrap_or("");
                bail!(
                    "audit {audit} ended {s}{}{why}",
                    if why.is_empty() { "" } else { ": " }
                );
            }
            "ONGOING" if a["audit_type"] != "ONESHOT" => {
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

/// `watcher actionplan ...`
fn action_plan(client: &Client, out: &Out, cmd: PlanCmd) -> anyhow::Result<i32> {
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

/// `watcher action ...`
fn action(client: &Client, out: &Out, cmd: ActionCmd) -> anyhow::Result<i32> {
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

/// `watcher scoringengine|service list|show`
fn simple(
    client: &Client,
    out: &Out,
    cmd: SimpleCmd,
    resource: &str,
    list: Columns,
    detail: Columns,
) -> anyhow::Result<i32> {
    match cmd {
        SimpleCmd::List(o) => {
            let cols = if o.detail { detail } else { list };
            out.list(&list_items(client, resource, &o, cols, &[])?, cols)?
        }
        SimpleCmd::Show { name } => {
            out.show(&client.get(&format!("/v1/{resource}/{name}"))?, detail)?
        }
    }
    Ok(0)
}

/// `watcher datamodel list`
fn data_model(client: &Client, out: &Out, cmd: DataModelCmd) -> anyhow::Result<i32> {
    let DataModelCmd::List {
        model_type,
        audit,
        detail,
    } = cmd;
    let mut path = format!("/v1/data_model/?data_model_type={model_type}");
    if let Some(a) = audit {
        path += &format!("&audit_uuid={a}");
    }
    let model = client.get(&path)?;
    let cols = if detail {
        columns::COMPUTE_MODEL
    } else {
        columns::COMPUTE_MODEL_LIST
    };
    out.list(
        model["context"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]),
        cols,
    )?;
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
