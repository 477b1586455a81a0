//! Wiring of the embedded daemon: store, cloud (simulated or OpenStack), decision engine,
//! applier and API in one process, sharing one shutdown token.

use crate::config::{AuthStrategy, CloudKind, Config};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use watcher_api::AppState;
use watcher_applier::Applier;
use watcher_cloud::openstack::OpenStackCloud;
use watcher_cloud::scenario::Scenario;
use watcher_cloud::{Cloud, CloudError};
use watcher_decision::metrics::{MetricsSource, PrometheusMetrics, SimulatedMetrics};
use watcher_decision::Datasource;
use watcher_decision::DecisionEngine;
use watcher_keystone::{Credentials, KeystoneError};
use watcher_store::{DatabaseLocation, Hearing, Store};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] watcher_store::StoreError),
    #[error(transparent)]
    Scenario(#[from] watcher_cloud::scenario::ScenarioError),
    #[error(transparent)]
    Policy(#[from] watcher_api::policy::PolicyError),
    #[error("cannot read the policy file {path}: {source}")]
    PolicyFile {
        path: String,
        source: std::io::Error,
    },
    /// A TLS file that cannot be used (the message names the setting).
    #[error(transparent)]
    Tls(#[from] watcher_tls::TlsError),
    #[error("notifications: {0}")]
    Notifications(String),
    #[error("cannot connect to the OpenStack cloud: {0}")]
    Cloud(String),
    #[error(transparent)]
    SimulatedCloud(#[from] watcher_cloud::simulated::KeeperError),
    #[error("keystone (auth_strategy = 'keystone'): {0}")]
    Keystone(String),
    // The OS's reason is part of the message, not a source: an error
    // printed with its causes would say it twice.
    #[error("cannot listen on {addr}: {reason}. Is another watcherd running? Pick another address with --listen.")]
    Listen {
        addr: SocketAddr,
        reason: std::io::Error,
    },
}

/// A started daemon.
pub struct Service {
    /// Where the API listens; None for a process without the API.
    pub addr: Option<SocketAddr>,
    pub store: Store,
    pub shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// What to run besides the configuration's defaults; benchmarks and tests
/// use it to bring their own cloud or to leave the decision engine out.
#[derive(Default, Clone)]
pub struct ServiceOptions {
    /// A cloud to use instead of the configured simulated one.
    pub cloud: Option<Arc<dyn Cloud>>,
    /// Leave the decision engine out (plans are then made by the caller,
    /// or by a `watcherd decision-engine` process on the same database).
    pub without_decision_engine: bool,
    /// Leave the applier out (`watcherd api`, `watcherd decision-engine`).
    pub without_applier: bool,
    /// Serve no API (`watcherd decision-engine`, `watcherd applier`).
    pub without_api: bool,
}

impl Service {
    pub async fn start(config: &Config) -> Result<Service, ServiceError> {
        Service::start_with(config, ServiceOptions::default()).await
    }

    // Long because it is the wiring of every layer in the order they must start (store,
    // catalogue, cloud, engines, API); each step is a call, and the order is the point.
    pub async fn start_with(
        config: &Config,
        options: ServiceOptions,
    ) -> Result<Service, ServiceError> {
        config.check()?;
        let location = DatabaseLocation::parse(&config.database_url())?;
        let store = Store::open(&location, config.durability)?;
        watcher_decision::sync_catalogue(&store).await?;
        let scenario = match &config.cloud_scenario {
            Some(path) => Scenario::load(path)?,
            None => Scenario::demo(),
        };
        let cloud = match options.cloud.clone() {
            Some(cloud) => cloud,
            None => connect_cloud(config, &scenario, &store).await?,
        };
        let shutdown = CancellationToken::new();
        if config.shared_database || store.is_server_database() {
            store.watch_other_processes(if options.without_applier {
                Hearing::Relaxed
            } else {
                Hearing::Prompt
            })?;
        }
        let listener = match options.without_api {
            true => None,
            false => Some(bind(config.listen).await?),
        };
        let addr = listener
            .as_ref()
            .map(|l| {
                l.local_addr().map_err(|reason| ServiceError::Listen {
                    addr: config.listen,
                    reason,
                })
            })
            .transpose()?;
        // Checked whether or not this process serves the API: a broken
        // policy file stops every process at start, not only the API's.
        let auth = api_auth(config)?;
        if !options.without_api {
            keystone_login(&auth, config).await?;
        }
        // Registered before the API answers, so `GET /v1/services` is never
        // empty for a process that is up.
        if !options.without_applier {
            store.heartbeat("watcher-applier", &config.host).await?;
        }
        if !options.without_decision_engine {
            store
                .heartbeat("watcher-decision-engine", &config.host)
                .await?;
        }
        let mut tasks = vec![];
        if !options.without_applier {
            let settings = config.applier.settings(&config.host);
            let applier = Applier::new(store.clone(), cloud.clone(), settings, shutdown.clone());
            tasks.push(tokio::spawn(applier.run()));
        }
        if let Some(listener) = listener {
            let state = AppState {
                cloud: cloud.clone(),
                auth,
                store: store.clone(),
                tally: Default::default(),
                origin: watcher_api::request_log::Origin {
                    tls: config.tls_cert.is_some(),
                    proxy_headers: config.enable_proxy_headers_parsing,
                },
                sites: Arc::new(watcher_api::same_origin::Sites {
                    noauth: config.auth_strategy == AuthStrategy::Noauth,
                    listen: Some(config.listen),
                    allowed_hosts: config.api.allowed_hosts.clone(),
                }),
            };
            let stop = shutdown.clone();
            let tls = config.api_tls()?;
            let limits = config.api.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = watcher_api::serve(listener, tls, state, limits, stop).await {
                    tracing::error!(error = %e, "API server stopped");
                }
            }));
            if options.without_applier && options.without_decision_engine {
                // A standalone API process shows in `GET /v1/services` too.
                tasks.push(spawn_api_heartbeat(&store, &config.host, &shutdown));
            }
        }
        if !options.without_decision_engine {
            let engine = DecisionEngine::new(
                store.clone(),
                cloud.clone(),
                metrics_source(config, &scenario)?,
                config.decision_engine.settings(&config.host),
                shutdown.clone(),
            );
            tasks.push(tokio::spawn(engine.run()));
            if config.purge.deleted_after_days > 0.0 {
                tasks.push(spawn_retention(&store, &config.purge, &shutdown));
            }
        }
        if config.notifications.enabled() {
            let relay = watcher_notifications::Relay::new(
                store.clone(),
                config.notifications.clone(),
                &config.host,
                shutdown.clone(),
            )
            .map_err(|e| ServiceError::Notifications(e.to_string()))?;
            if let Err(e) = relay.start_cursor().await {
                // The relay's task tries again; the first changes may then
                // go unnotified, as before notifications were enabled.
                tracing::warn!(error = %e, "notifications: cannot create the cursor yet");
            }
            tasks.push(tokio::spawn(relay.run()));
        }
        Ok(Service {
            addr,
            store,
            shutdown,
            tasks,
        })
    }

    /// Stops everything: the API stops accepting, the applier starts nothing
    /// more and gives running actions their grace period.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        if let Err(e) = self.store.truncate_wal().await {
            tracing::warn!(error = %e, "could not empty the WAL at stop");
        }
    }
}

/// The cloud the configuration names: OpenStack (credentials from the
/// environment or clouds.yaml), a `watcherd sim-cloud` process, or the
/// embedded simulated cloud of `scenario`, kept in the database.
async fn connect_cloud(
    config: &Config,
    scenario: &Scenario,
    store: &Store,
) -> Result<Arc<dyn Cloud>, ServiceError> {
    Ok(match config.cloud {
        CloudKind::OpenStack => {
            let credentials = Credentials::resolve(&config.watcher_clients_auth)
                .map_err(|e| ServiceError::Cloud(e.to_string()))?;
            let source = credentials.source.clone();
            let wait = Duration::from_secs_f64(config.keystone.startup_wait_secs.max(0.0));
            let cloud = retry_while_transient(
                "the OpenStack cloud",
                wait,
                || {
                    let credentials = credentials.clone();
                    async move {
                        tokio::task::spawn_blocking(move || OpenStackCloud::connect(credentials))
                            .await
                            .map_err(|e| CloudError::Transient(e.to_string()))?
                    }
                },
                |e| matches!(e, CloudError::Transient(_)),
            )
            .await
            .map_err(|e| ServiceError::Cloud(format!("{e} (credentials from {source})")))?;
            Arc::new(cloud)
        }
        CloudKind::SimCloud => Arc::new(watcher_cloud::remote::RemoteCloud::new(
            &config.sim_cloud_url,
        )),
        CloudKind::Simulated => Arc::new(crate::sim_cloud_state::resume(store, scenario).await?),
    })
}

/// Where strategies read their metrics.
fn metrics_source(
    config: &Config,
    scenario: &Scenario,
) -> Result<Arc<dyn MetricsSource>, ServiceError> {
    let d = &config.decision_engine;
    Ok(match d.datasource {
        Datasource::Prometheus => Arc::new(PrometheusMetrics::new(
            &d.prometheus_url,
            &d.prometheus_tls,
            Duration::from_secs_f64(d.prometheus_timeout_secs),
        )?),
        // On another cloud than the scenario's, values are drawn per instance UUID.
        Datasource::Simulated => Arc::new(SimulatedMetrics::new(scenario)),
    })
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServiceError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|reason| ServiceError::Listen { addr, reason })
}

/// How the API authenticates callers: not at all, or with Keystone tokens
/// under the policy (the built-in rules, with the policy file's over them).
fn api_auth(config: &Config) -> Result<watcher_api::auth::Auth, ServiceError> {
    use watcher_api::{auth, policy::Policy};
    let policy = match &config.policy_file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| ServiceError::PolicyFile {
                    path: path.display().to_string(),
                    source,
                })?;
            Policy::with_overrides(&text)?
        }
        None => Policy::default(),
    };
    if config.auth_strategy != AuthStrategy::Keystone {
        return Ok(auth::Auth::NoAuth);
    }
    let keystone = auth::Keystone::new(config.keystone.clone(), policy)
        .map_err(|e| ServiceError::Keystone(e.to_string()))?;
    Ok(auth::Auth::Keystone(Arc::new(keystone)))
}

/// Logs in to Keystone with the service credentials before the API
/// answers: refused credentials or an untrusted certificate stop watcherd
/// with their reason instead of turning every request into a 503.
async fn keystone_login(
    auth: &watcher_api::auth::Auth,
    config: &Config,
) -> Result<(), ServiceError> {
    let watcher_api::auth::Auth::Keystone(ks) = auth else {
        return Ok(());
    };
    let wait = Duration::from_secs_f64(config.keystone.startup_wait_secs.max(0.0));
    retry_while_transient(
        "Keystone",
        wait,
        || {
            let ks = ks.clone();
            async move {
                tokio::task::spawn_blocking(move || ks.session().login())
                    .await
                    .map_err(|e| KeystoneError::Config(e.to_string()))?
            }
        },
        KeystoneError::is_transient,
    )
    .await
    .map_err(|e| ServiceError::Keystone(e.to_string()))
}

/// Tries `attempt` until it succeeds, fails for good, or `wait` has passed,
/// backing off from 0.5 s to 5 s between transient failures.
async fn retry_while_transient<
    T,
    E: std::fmt::Display,
    F: std::future::Future<Output = Result<T, E>>,
>(
    what: &str,
    wait: Duration,
    mut attempt: impl FnMut() -> F,
    transient: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut backoff = Duration::from_millis(500);
    loop {
        match attempt().await {
            Err(e) if transient(&e) && tokio::time::Instant::now() + backoff < deadline => {
                tracing::warn!(error = %e, retry_in = ?backoff, "{what} cannot be reached yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// `[purge]`: every `every_secs`, the records deleted more than
/// `deleted_after_days` ago are purged (in batches: running plans and
/// cancels go on meanwhile). Failures are logged and retried next time.
fn spawn_retention(
    store: &Store,
    config: &crate::config::PurgeConfig,
    stop: &CancellationToken,
) -> JoinHandle<()> {
    let (store, config, stop) = (store.clone(), config.clone(), stop.clone());
    tokio::spawn(async move {
        let age = chrono::Duration::milliseconds((config.deleted_after_days * 86_400_000.0) as i64);
        let every = Duration::from_secs(config.every_secs);
        // A failed purge is tried again sooner (10 s, doubling up to the
        // interval), and the same error logged once a minute.
        let mut failures = watcher_core::backoff::Backoff::new(Duration::from_secs(10), every);
        loop {
            let request = watcher_store::PurgeRequest {
                deleted_before: Some(chrono::Utc::now() - age),
                include_orphans: config.include_orphans,
                ..Default::default()
            };
            let wait = match store.purge(request).await {
                Ok(c) => {
                    failures.succeeded();
                    if c.objects() > 0 {
                        tracing::info!(
                            action_plans = c.action_plans,
                            actions = c.actions,
                            audits = c.audits,
                            audit_templates = c.audit_templates,
                            history_rows = c.history_rows,
                            "retention: purged records deleted more than {} days ago",
                            config.deleted_after_days
                        );
                    }
                    every
                }
                Err(e) => {
                    let r = failures.failed(&e.to_string(), tokio::time::Instant::now().into_std());
                    if let Some(held_back) = r.log {
                        tracing::warn!(error = %e, not_logged = held_back, retry_in = ?r.wait, "retention: purge failed; will retry");
                    }
                    r.wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => break,
            }
        }
    })
}

/// The heartbeat of a process that runs only the API.
fn spawn_api_heartbeat(store: &Store, host: &str, stop: &CancellationToken) -> JoinHandle<()> {
    let (store, host, stop) = (store.clone(), host.to_string(), stop.clone());
    tokio::spawn(async move {
        let mut beat = watcher_store::Heartbeat::new(store, "watcher-api", host);
        loop {
            beat.beat().await;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = stop.cancelled() => break,
            }
        }
    })
}
