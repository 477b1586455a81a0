//! watcher: the command line client of watcherd (and of any Watcher v1 API),
//! with the commands and options of python-watcherclient 4.11 and a few of
//! our own (`actionplan history`, `--wait`, `audit create --start`).

mod action;
mod arguments;
mod audit;
mod auth;
mod client;
mod columns;
mod data_model;
mod goal;
mod output;
mod plan;
mod progress;
mod read_only;
mod states;
mod strategy;
mod table;
mod template;

use action::ActionCmd;
use audit::AuditCmd;
use clap::{CommandFactory, Parser, Subcommand};
use client::{Client, ClientError};
use data_model::DataModelCmd;
use goal::GoalCmd;
use output::Out;
use plan::PlanCmd;
use read_only::SimpleCmd;
use strategy::StrategyCmd;
use template::TemplateCmd;

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
        Command::Goal(cmd) => goal::goal(&client, &out, cmd),
        Command::Strategy(cmd) => strategy::strategy(&client, &out, cmd),
        Command::AuditTemplate(cmd) => template::audit_template(&client, &out, cmd),
        Command::Audit(cmd) => audit::audit(&client, &out, cmd),
        Command::ActionPlan(cmd) => plan::action_plan(&client, &out, cmd),
        Command::Action(cmd) => action::action(&client, &out, cmd),
        Command::ScoringEngine(cmd) => read_only::simple(
            &client,
            &out,
            cmd,
            "scoring_engines",
            columns::SCORING_ENGINE_LIST,
            columns::SCORING_ENGINE,
        ),
        Command::Service(cmd) => read_only::simple(
            &client,
            &out,
            cmd,
            "services",
            columns::SERVICE_LIST,
            columns::SERVICE,
        ),
        Command::DataModel(cmd) => data_model::data_model(&client, &out, cmd),
        Command::Completion { .. } => unreachable!("answered above"),
    }
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
