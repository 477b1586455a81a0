//! watcherd: the Watcher service. Embedded mode runs the API, the decision
//! engine, the applier, a SQLite database and a simulated cloud in one process.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use watcherd::config::Config;
use watcherd::oslo_conf::{Fate, OsloSource};
use watcherd::service::{Service, ServiceOptions};
use watcherd::sources::Loaded;

#[derive(Parser, Debug)]
#[command(
    name = "watcherd",
    version,
    about = "OpenStack Watcher service: audits, action plans, and an applier whose cancel really stops them",
    long_about = "Runs the whole Watcher service in one process: the v1 REST API, the decision \
engine, the applier and a SQLite database, against a simulated cloud (the default) or a \
real OpenStack cloud (--cloud openstack). The subcommands split it into processes sharing \
one database: a SQLite file on one machine, PostgreSQL (--database postgres://...) or \
MariaDB/MySQL (--database mysql://...) on several.\n\n\
Settings come from defaults, then an upstream watcher.conf (--config-file, --config-dir), \
then --config FILE (TOML), then WATCHER_* environment variables, then flags. \
`watcherd --print-config` shows the result."
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML configuration file (over the --config-file ones when both are given).
    #[arg(long, global = true, env = "WATCHER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Upstream Watcher's watcher.conf (oslo.config's INI format), read as
    /// upstream reads it; several may be given, later ones winning.
    #[arg(long = "config-file", global = true, value_name = "FILE")]
    config_file: Vec<PathBuf>,
    /// A directory of upstream *.conf files, read in name order where it
    /// stands among the --config-file flags (as oslo.config does).
    #[arg(long = "config-dir", global = true, value_name = "DIR")]
    config_dir: Vec<PathBuf>,
    /// Address of the REST API [default: 127.0.0.1:9322].
    #[arg(long, global = true, env = "WATCHER_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Database URL: sqlite:///path/watcher.db, sqlite::memory:,
    /// postgres://USER:PASSWORD@HOST:PORT/DB or mysql://USER:PASSWORD@HOST:PORT/DB
    /// [default: watcher.db in the data directory].
    #[arg(long, global = true, env = "WATCHER_DATABASE", value_name = "URL")]
    database: Option<String>,
    /// Directory for the default database file [default: ~/.local/share/watcherd].
    #[arg(long, global = true, env = "WATCHER_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The cloud to manage: simulated, openstack (credentials from OS_CLOUD and
    /// clouds.yaml, or the OS_* variables of an openrc file), or sim-cloud (a
    /// `watcherd sim-cloud` process, at --sim-cloud-url) [default: simulated].
    #[arg(long, global = true, env = "WATCHER_CLOUD", value_name = "KIND")]
    cloud: Option<watcherd::config::CloudKind>,
    /// With --cloud sim-cloud: the URL `watcherd sim-cloud` printed.
    #[arg(long, global = true, env = "WATCHER_SIM_CLOUD_URL", value_name = "URL")]
    sim_cloud_url: Option<String>,
    /// Simulated cloud scenario (TOML) [default: the built-in demo cloud].
    #[arg(
        long,
        global = true,
        env = "WATCHER_CLOUD_SCENARIO",
        value_name = "FILE"
    )]
    cloud_scenario: Option<PathBuf>,
    /// Name of this process, shown as the plans' hostname [default: the machine's hostname].
    #[arg(long, global = true, env = "WATCHER_HOST")]
    host: Option<String>,
    /// Print the effective configuration as TOML and exit (passwords,
    /// tokens and keys as ***).
    #[arg(long, global = true)]
    print_config: bool,
    /// With --print-config: print passwords, tokens and keys in clear.
    #[arg(long, global = true, requires = "print_config")]
    show_secrets: bool,
    /// Serve the API over HTTPS with this PEM certificate (chain); needs --tls-key.
    #[arg(
        long,
        global = true,
        env = "WATCHER_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(
        long,
        global = true,
        env = "WATCHER_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Log lines as text (for people) or json (one object per line, for
    /// log shippers).
    #[arg(
        long,
        global = true,
        env = "WATCHER_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    /// Log filter: a level, then target=level pairs, e.g. info or warn,watcher_applier=debug (targets match by prefix: watcher=debug is every layer) [default: info, or info,watcher=debug when watcher.conf says debug = true].
    #[arg(long, global = true, env = "WATCHER_LOG")]
    log: Option<String>,
    /// Append the log to this file instead of standard error [default: upstream's
    /// log_file or log_dir/watcherd.log when a watcher.conf sets them].
    #[arg(long, global = true, env = "WATCHER_LOG_FILE", value_name = "FILE")]
    log_file: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Only the REST API, for a deployment split into processes sharing one
    /// database (with `watcherd decision-engine` and `watcherd applier`).
    Api,
    /// Only the decision engine (audits to plans), on a shared database.
    DecisionEngine,
    /// Only the applier (runs, cancels and resumes plans), on a shared database.
    Applier,
    /// Run only the simulated cloud, as its own process, for `--cloud sim-cloud`:
    /// the cloud then outlives watcherd, as a real one does (crash tests).
    /// (--listen defaults to 127.0.0.1:0 here; --cloud-scenario gives its cloud.)
    SimCloud,
    /// Remove soft-deleted records for good (upstream's `watcher-db-manage
    /// purge`): deleted audit templates, audits, action plans and their
    /// actions and history; with orphans, the plans of deleted audits that
    /// cannot run. Batches of whole plans: running plans and cancels go on.
    Purge(PurgeArgs),
    /// Database commands (upstream's `watcher-db-manage`): `db upgrade`
    /// brings watcherd's tables up to date and takes over the objects of an
    /// upstream Watcher whose tables are in the same database.
    #[command(subcommand)]
    Db(DbCommand),
    /// Put the embedded simulated cloud back to its scenario (the demo's
    /// starting point): instances on their first hosts, services enabled, no
    /// operations. The cloud is kept in the database between runs; stop
    /// watcherd first. Plans and history stay.
    ResetSimCloud {
        /// Reset even though an applier reported within the last 20 s
        /// (after a watcherd that was just stopped).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
enum DbCommand {
    /// Bring watcherd's tables up to date; if the database also holds an
    /// upstream Watcher's tables (Watcher 17), copy every object of theirs
    /// into watcherd's, once, in one transaction. Stop upstream Watcher
    /// first. Upstream's tables are left as they are.
    Upgrade {
        /// Copy even though upstream's services reported within the last
        /// 90 s, or its objects were taken over before (upstream's state
        /// then replaces watcherd's, object by object).
        #[arg(long)]
        force: bool,
    },
    /// The way back: write every object of watcherd's into the upstream
    /// Watcher 17 tables of the same database, so that upstream Watcher
    /// started on them serves what watcherd served. Stop watcherd first;
    /// running plans must have finished.
    ExportUpstream {
        /// Write even though watcherd's services reported within the last 90 s.
        #[arg(long)]
        force: bool,
    },
}

#[derive(clap::Args, Debug)]
struct PurgeArgs {
    /// Keep records deleted within the last DAYS days [default: purge all deleted records].
    #[arg(short = 'd', long, value_name = "DAYS")]
    age_in_days: Option<u32>,
    /// Purge at most N objects (whole plans with their actions, then audits, then templates).
    #[arg(short = 'n', long, value_name = "N")]
    max_number: Option<usize>,
    /// Only records under this goal (UUID or name).
    #[arg(short = 't', long, value_name = "GOAL")]
    goal: Option<String>,
    /// Keep orphans: the plans, not deleted themselves, of deleted audits.
    #[arg(short = 'e', long)]
    exclude_orphans: bool,
    /// Count what would be purged; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask for confirmation (for cron jobs and scripts).
    #[arg(short = 'y', long)]
    yes: bool,
}

/// `watcherd purge`: counts, asks, purges, and prints what went.
async fn purge(config: &Config, args: &PurgeArgs) -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    let location = watcher_store::DatabaseLocation::parse(&config.database_url())?;
    let store = watcher_store::Store::open(&location, config.durability)?;
    let orphans_note = if args.exclude_orphans {
        "orphans excluded"
    } else {
        "may include orphans"
    };
    let request = watcher_store::PurgeRequest {
        deleted_before: args
            .age_in_days
            .map(|d| chrono::Utc::now() - chrono::Duration::days(d.into())),
        goal: args.goal.clone(),
        include_orphans: !args.exclude_orphans,
        max_objects: args.max_number,
        dry_run: true,
    };
    let planned = store.purge(request.clone()).await?;
    if planned.objects() == 0 {
        println!("Nothing to purge ({orphans_note}).");
        return Ok(());
    }
    if args.dry_run {
        println!("Objects that would be purged ({orphans_note}):");
        print_purge_counts(&planned);
        return Ok(());
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            anyhow::bail!(
                "{} objects would be purged; add --yes to purge without a prompt, or --dry-run to list them",
                planned.objects()
            );
        }
        print_purge_counts(&planned);
        print!(
            "There are {} objects set for deletion. Continue? [y/N] ",
            planned.objects()
        );
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
            println!("Nothing purged.");
            return Ok(());
        }
    }
    let done = store
        .purge(watcher_store::PurgeRequest {
            dry_run: false,
            ..request
        })
        .await?;
    store.truncate_wal().await?;
    println!("Purge results summary ({orphans_note}):");
    print_purge_counts(&done);
    Ok(())
}

fn print_purge_counts(c: &watcher_store::PurgeCounts) {
    for (what, n) in [
        ("audit templates", c.audit_templates),
        ("audits", c.audits),
        ("action plans", c.action_plans),
        ("actions", c.actions),
        ("total", c.objects()),
    ] {
        println!("  {what:<16}{n:>10}");
    }
    if c.history_rows > 0 {
        println!("  (and {} history rows)", c.history_rows);
    }
    if c.limited {
        println!("  --max-number stopped the purge before everything that matched");
    }
}

/// `watcherd sim-cloud`: serves the simulated cloud until stopped.
async fn sim_cloud(listen: SocketAddr, scenario: Option<PathBuf>) -> anyhow::Result<()> {
    use watcher_cloud::scenario::Scenario;
    let scenario = match scenario {
        Some(p) => Scenario::load(&p)?,
        None => Scenario::demo(),
    };
    let cloud = std::sync::Arc::new(watcher_cloud::simulated::SimulatedCloud::new(&scenario));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!("sim-cloud listening on http://{}", listener.local_addr()?);
    axum::serve(listener, watcher_cloud::remote::router(cloud))
        .with_graceful_shutdown(wait_for_signal())
        .await?;
    Ok(())
}

/// The --config-file and --config-dir flags in the order they were given:
/// oslo.config reads a directory where it stands among the files.
fn oslo_sources(args: &Args) -> Vec<OsloSource> {
    let mut files = args.config_file.iter().cloned();
    let mut dirs = args.config_dir.iter().cloned();
    let mut sources: Vec<OsloSource> = std::env::args_os()
        .filter_map(|a| {
            let a = a.to_string_lossy().into_owned();
            if a == "--config-file" || a.starts_with("--config-file=") {
                files.next().map(OsloSource::File)
            } else if a == "--config-dir" || a.starts_with("--config-dir=") {
                dirs.next().map(OsloSource::Dir)
            } else {
                None
            }
        })
        .collect();
    // Whatever the scan did not see (spelled otherwise), in clap's order.
    sources.extend(files.map(OsloSource::File));
    sources.extend(dirs.map(OsloSource::Dir));
    sources
}

fn effective_config(args: &Args) -> anyhow::Result<Loaded> {
    let mut loaded = watcherd::sources::load(args.config.as_deref(), &oslo_sources(args))?;
    let config = &mut loaded.config;
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(d) = &args.database {
        config.database = d.clone();
    }
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    if let Some(c) = &args.cloud {
        config.cloud = *c;
    }
    if let Some(u) = &args.sim_cloud_url {
        config.sim_cloud_url = u.clone();
    }
    if let Some(s) = &args.cloud_scenario {
        config.cloud_scenario = Some(s.clone());
    }
    if let Some(h) = &args.host {
        config.host = h.clone();
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls_cert = Some(cert.clone());
        config.tls_key = Some(key.clone());
    }
    Ok(loaded)
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let json_logs = matches!(args.log_format, LogFormat::Json);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("watcherd: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The reason and its causes on one line, never a backtrace:
            // what an operator reads in journalctl must say what to fix.
            let message = watcher_core::secret::redact_urls_in(&format!("{e:#}"));
            // Once: as a JSON log line for a log collector, else as one
            // plain line (the text log would say it a second time).
            if json_logs {
                tracing::error!(error = %message, "watcherd cannot start");
            } else {
                eprintln!("watcherd: error: {message}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(Command::SimCloud) = &args.command {
        let listen = args.listen.unwrap_or_else(|| ([127, 0, 0, 1], 0).into());
        return sim_cloud(listen, args.cloud_scenario.clone()).await;
    }
    let Loaded {
        mut config,
        accounts,
        debug,
        log_file,
    } = effective_config(&args)?;
    if let Some(Command::Purge(purge_args)) = &args.command {
        return purge(&config, purge_args).await;
    }
    if let Some(Command::Db(DbCommand::Upgrade { force })) = &args.command {
        return watcherd::db_commands::upgrade(&config, *force).await;
    }
    if let Some(Command::Db(DbCommand::ExportUpstream { force })) = &args.command {
        return watcherd::db_commands::export_upstream(&config, *force).await;
    }
    if let Some(Command::ResetSimCloud { force }) = &args.command {
        let location = watcher_store::DatabaseLocation::parse(&config.database_url())?;
        let store = watcher_store::Store::open(&location, config.durability)?;
        let removed = watcherd::sim_cloud_state::reset(&store, config.cloud, *force).await?;
        store.truncate_wal().await?;
        println!(
            "The simulated cloud is back to its scenario ({removed} saved rows removed); it starts so with watcherd."
        );
        return Ok(());
    }
    let options = match &args.command {
        None => ServiceOptions::default(),
        Some(role) => {
            config.shared_database = true;
            ServiceOptions {
                without_api: !matches!(role, Command::Api),
                without_decision_engine: !matches!(role, Command::DecisionEngine),
                without_applier: !matches!(role, Command::Applier),
                ..Default::default()
            }
        }
    };
    if args.print_config {
        // What became of each option of upstream's files, then the result.
        for a in &accounts {
            println!("# {a}");
        }
        print!("{}", config.to_toml(args.show_secrets));
        return Ok(());
    }
    // `Targets` reads the same `level,target=level` filters as EnvFilter
    // without its regex engine (regex-automata, regex-syntax), which were the
    // slowest dependencies to build.
    // Upstream's `debug = true` is watcherd's own debug lines; libraries
    // (hyper, rustls, the AMQP client) stay at info, as oslo.log keeps its
    // `default_log_levels` for theirs.
    let level = match (&args.log, debug) {
        (Some(l), _) => l.as_str(),
        (None, true) => "info,watcher=debug",
        (None, false) => "info",
    };
    let filter: tracing_subscriber::filter::Targets = level
        .parse()
        .context("invalid --log filter (e.g. info, or warn,watcher_applier=debug)")?;
    init_logging(
        filter,
        args.log_format,
        args.log_file.as_ref().or(log_file.as_ref()),
    )?;
    for a in &accounts {
        // Once each, at start: oslo.config ignores what nobody registered.
        match a.fate {
            Fate::Unknown => tracing::warn!(
                section = %a.section,
                option = %a.option,
                at = %a.at,
                "watcher.conf: an option watcherd does not know; ignored"
            ),
            Fate::Unused(why) => tracing::info!(
                section = %a.section,
                option = %a.option,
                "watcher.conf: an option watcherd does not use: {why}"
            ),
            Fate::Mapped(_) => {}
        }
    }
    let service = Service::start_with(&config, options).await?;
    // Tests and scripts read this line to find the port.
    let scheme = if config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    match service.addr {
        // One write for both lines, and no panic when whoever started us
        // has stopped reading (a script that took the first line and
        // closed the pipe): watcherd goes on serving.
        Some(addr) => {
            use std::io::Write as _;
            let _ = write!(
                std::io::stdout(),
                "watcherd listening on {scheme}://{addr}\ndashboard: {scheme}://{addr}/dashboard\n"
            );
            let _ = std::io::stdout().flush();
        }
        None => println!(
            "watcherd running as {} (no API in this process)",
            config.host
        ),
    }
    tracing::info!(database = %watcher_core::secret::redact_url(&config.database_url()), host = %config.host, "watcherd started");
    wait_for_signal().await;
    tracing::info!("stopping: no new action starts; running ones get their grace period");
    service.stop().await;
    Ok(())
}

/// Logs to stderr: text with colours only on a terminal (a journal or a
/// file gets plain lines), or one JSON object per line.
/// The log on standard error, or appended to `file` (upstream's log_dir).
fn init_logging(
    filter: tracing_subscriber::filter::Targets,
    format: LogFormat,
    file: Option<&PathBuf>,
) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let (writer, ansi) = match file {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the log file {}", path.display()))?;
            (BoxMakeWriter::new(std::sync::Mutex::new(f)), false)
        }
        None => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        ),
    };
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .with_ansi(ansi),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer),
            )
            .init(),
    }
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
