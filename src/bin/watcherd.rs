//! watcherd: the Watcher service. Embedded mode runs the API, the decision
//! engine, the applier, a SQLite database and a simulated cloud in one process.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use watcher::config::Config;
use watcher::service::Service;

#[derive(Parser, Debug)]
#[command(
    name = "watcherd",
    version,
    about = "OpenStack Watcher service: audits, action plans, and an applier whose cancel really stops them",
    long_about = "Runs the whole Watcher service in one process: the v1 REST API, the decision \
engine, the applier and a SQLite database, against a simulated cloud (the default) or a \
real OpenStack cloud (--cloud openstack).\n\n\
Settings come from defaults, then --config FILE (TOML), then WATCHER_* environment \
variables, then flags. `watcherd --print-config` shows the result."
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML configuration file.
    #[arg(long, env = "WATCHER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address of the REST API [default: 127.0.0.1:9322].
    #[arg(long, env = "WATCHER_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Database URL: sqlite:///path/watcher.db or sqlite::memory: [default: watcher.db in the data directory].
    #[arg(long, env = "WATCHER_DATABASE", value_name = "URL")]
    database: Option<String>,
    /// Directory for the default database file [default: ~/.local/share/watcherd].
    #[arg(long, env = "WATCHER_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The cloud to manage: simulated, openstack (credentials from OS_CLOUD and
    /// clouds.yaml, or the OS_* variables of an openrc file), or sim-cloud (a
    /// `watcherd sim-cloud` process, at --sim-cloud-url) [default: simulated].
    #[arg(long, env = "WATCHER_CLOUD", value_name = "KIND")]
    cloud: Option<String>,
    /// With --cloud sim-cloud: the URL `watcherd sim-cloud` printed.
    #[arg(long, env = "WATCHER_SIM_CLOUD_URL", value_name = "URL")]
    sim_cloud_url: Option<String>,
    /// Simulated cloud scenario (TOML) [default: the built-in demo cloud].
    #[arg(long, env = "WATCHER_CLOUD_SCENARIO", value_name = "FILE")]
    cloud_scenario: Option<PathBuf>,
    /// Name of this process, shown as the plans' hostname [default: the machine's hostname].
    #[arg(long, env = "WATCHER_HOST")]
    host: Option<String>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Log filter, e.g. info or watcher=debug.
    #[arg(long, env = "WATCHER_LOG", default_value = "info")]
    log: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run only the simulated cloud, as its own process, for `--cloud sim-cloud`:
    /// the cloud then outlives watcherd, as a real one does (crash tests).
    SimCloud {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Scenario (TOML) [default: the built-in demo cloud].
        #[arg(long, value_name = "FILE")]
        cloud_scenario: Option<PathBuf>,
    },
}

/// `watcherd sim-cloud`: serves the simulated cloud until stopped.
async fn sim_cloud(listen: SocketAddr, scenario: Option<PathBuf>) -> anyhow::Result<()> {
    use watcher::cloud::scenario::Scenario;
    let scenario = match scenario {
        Some(p) => Scenario::load(&p)?,
        None => Scenario::demo(),
    };
    let cloud = std::sync::Arc::new(watcher::cloud::simulated::SimulatedCloud::new(&scenario));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!("sim-cloud listening on http://{}", listener.local_addr()?);
    axum::serve(listener, watcher::cloud::remote::router(cloud))
        .with_graceful_shutdown(wait_for_signal())
        .await?;
    Ok(())
}

fn effective_config(args: &Args) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
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
        config.cloud = c.clone();
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
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Command::SimCloud {
        listen,
        cloud_scenario,
    }) = args.command
    {
        return sim_cloud(listen, cloud_scenario).await;
    }
    let config = effective_config(&args)?;
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log).context("invalid --log filter")?,
        )
        .with_writer(std::io::stderr)
        .init();
    let service = Service::start(&config).await?;
    // Tests and scripts read this line to find the port.
    println!("watcherd listening on http://{}", service.addr);
    tracing::info!(database = %config.database_url(), host = %config.host, "watcherd started");
    wait_for_signal().await;
    tracing::info!("stopping: no new action starts; running ones get their grace period");
    service.stop().await;
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
