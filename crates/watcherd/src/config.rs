//! Configuration: defaults that work embedded, overridden by a TOML file,
//! then by `WATCHER_*` environment variables and flags (the binary merges
//! those last two with clap).

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use watcher_api::auth::KeystoneConfig;
use watcher_applier::ApplierConfig;
use watcher_decision::{Datasource, DecisionConfig};
use watcher_keystone::ClientsAuth;
use watcher_store::Durability;

/// The cloud watcherd manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CloudKind {
    /// The embedded simulated cloud, kept in watcherd's database.
    #[default]
    Simulated,
    /// A real OpenStack (credentials from `[watcher_clients_auth]`,
    /// `OS_CLOUD` + clouds.yaml, or the `OS_*` variables).
    #[serde(rename = "openstack")]
    #[value(name = "openstack")]
    OpenStack,
    /// A `watcherd sim-cloud` process, at `sim_cloud_url`.
    SimCloud,
}

impl CloudKind {
    /// The name the configuration and `--cloud` use.
    pub fn as_str(self) -> &'static str {
        match self {
            CloudKind::Simulated => "simulated",
            CloudKind::OpenStack => "openstack",
            CloudKind::SimCloud => "sim-cloud",
        }
    }
}

impl std::fmt::Display for CloudKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How API callers are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthStrategy {
    /// Every caller is an admin: loopback only, unless `insecure_listen`.
    #[default]
    Noauth,
    /// Callers' tokens are validated against Keystone (`[keystone]`).
    Keystone,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the REST API.
    pub listen: SocketAddr,
    /// `sqlite:///path/watcher.db`, `sqlite::memory:`,
    /// `postgres://user:password@host:port/dbname` or
    /// `mysql://user:password@host:port/dbname`; empty means
    /// `watcher.db` in `data_dir`.
    pub database: String,
    pub data_dir: PathBuf,
    /// `simulated` (the default) or `openstack` (credentials from
    /// `OS_CLOUD` + clouds.yaml or the `OS_*` variables).
    pub cloud: CloudKind,
    /// Scenario file of the simulated cloud; empty means the built-in demo cloud.
    pub cloud_scenario: Option<PathBuf>,
    /// With `cloud = "sim-cloud"`: where `watcherd sim-cloud` listens.
    pub sim_cloud_url: String,
    /// Other watcherd processes use this database file too (set by
    /// `watcherd api|decision-engine|applier`): hear their changes within
    /// 50 ms instead of at the next sweep. On PostgreSQL processes always
    /// hear each other (LISTEN/NOTIFY), whatever this says.
    pub shared_database: bool,
    /// This process's name, written as plans' and audits' `hostname`.
    pub host: String,
    pub durability: Durability,
    /// `noauth` (every caller is an admin, so the API refuses to listen
    /// beyond loopback unless `insecure_listen` is set) or `keystone`.
    pub auth_strategy: AuthStrategy,
    pub insecure_listen: bool,
    /// Serve the API over HTTPS with this PEM certificate (chain) and key.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Behind a reverse proxy (HAProxy, Apache, nginx) that sets
    /// `X-Forwarded-Proto` / `X-Forwarded-Host` (or `Forwarded`): build
    /// links from them. Upstream's `enable_proxy_headers_parsing`; leave
    /// off when clients reach watcherd directly, or they choose the links.
    pub enable_proxy_headers_parsing: bool,
    /// Limits of the API's HTTP server (`[api]`): connections, timeouts.
    pub api: watcher_api::server::ServerLimits,
    /// Rules (oslo.policy syntax, flat YAML) over the built-in defaults.
    pub policy_file: Option<PathBuf>,
    /// Used when `auth_strategy = "keystone"`: where callers' tokens are
    /// validated, with watcherd's service credentials.
    pub keystone: KeystoneConfig,
    /// With `cloud = "openstack"`: the credentials watcherd manages the
    /// cloud with (upstream's section of the same name). When its
    /// `auth_url` is empty, `OS_CLOUD` + clouds.yaml, then `OS_*`, are used.
    pub watcher_clients_auth: ClientsAuth,
    pub applier: ApplierConfig,
    pub decision_engine: DecisionConfig,
    /// Notifications on RabbitMQ (off unless `transport_url` is set).
    pub notifications: watcher_notifications::NotificationConfig,
    /// Automatic retention (`[purge]`): soft-deleted records removed for
    /// good, as `watcherd purge` does, by the decision engine's process.
    pub purge: PurgeConfig,
}

/// `[purge]`: off unless `deleted_after_days` is set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PurgeConfig {
    /// Records deleted more than this many days ago (fractions allowed)
    /// are purged; 0 keeps them all (upstream's behaviour: purge by hand).
    pub deleted_after_days: f64,
    /// Also the plans of deleted audits (`watcherd purge` without
    /// `--exclude-orphans`).
    pub include_orphans: bool,
    /// How often the retention runs.
    pub every_secs: u64,
}

impl Default for PurgeConfig {
    fn default() -> Self {
        PurgeConfig {
            deleted_after_days: 0.0,
            include_orphans: false,
            every_secs: 3600,
        }
    }
}

pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("watcherd");
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h).join(".local/share/watcherd"),
        None => PathBuf::from("watcherd-data"),
    }
}

fn default_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "watcherd".into())
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:9322".parse().expect("valid address"),
            database: String::new(),
            data_dir: default_data_dir(),
            cloud: CloudKind::Simulated,
            cloud_scenario: None,
            sim_cloud_url: String::new(),
            shared_database: false,
            host: default_host(),
            durability: Durability::Normal,
            auth_strategy: AuthStrategy::Noauth,
            insecure_listen: false,
            tls_cert: None,
            tls_key: None,
            enable_proxy_headers_parsing: false,
            api: Default::default(),
            policy_file: None,
            keystone: KeystoneConfig::default(),
            watcher_clients_auth: ClientsAuth::default(),
            applier: ApplierConfig::default(),
            decision_engine: DecisionConfig::default(),
            notifications: Default::default(),
            purge: PurgeConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("configuration file {path} is invalid: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    /// The database URL with the default filled in.
    pub fn database_url(&self) -> String {
        if self.database.is_empty() {
            format!("sqlite://{}", self.data_dir.join("watcher.db").display())
        } else {
            self.database.clone()
        }
    }

    /// Refuses settings that would be unsafe or meaningless.
    // Long because it is the list of refusals, one short check per setting, each with its
    // own message.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.cloud == CloudKind::SimCloud && !self.sim_cloud_url.starts_with("http://") {
            return Err(ConfigError::Invalid(
                "cloud = \"sim-cloud\" needs sim_cloud_url, the http://host:port `watcherd sim-cloud` printed"
                    .into(),
            ));
        }
        self.notifications.check().map_err(ConfigError::Invalid)?;
        let days = self.purge.deleted_after_days;
        if days.is_nan() || days < 0.0 || self.purge.every_secs == 0 {
            return Err(ConfigError::Invalid(
                "purge.deleted_after_days must be 0 (off) or more, and purge.every_secs at least 1"
                    .into(),
            ));
        }
        let timeout = self.decision_engine.prometheus_timeout_secs;
        if !(timeout.is_finite() && timeout > 0.0 && timeout <= 3600.0) {
            return Err(ConfigError::Invalid(
                "decision_engine.prometheus_timeout_secs must be more than 0 and at most 3600"
                    .into(),
            ));
        }
        if self.decision_engine.datasource == Datasource::Prometheus
            && self.decision_engine.prometheus_url.is_empty()
        {
            return Err(ConfigError::Invalid(
                "decision_engine.datasource = \"prometheus\" needs decision_engine.prometheus_url \
                     (e.g. \"http://prometheus:9090\")"
                    .into(),
            ));
        }
        if self.auth_strategy == AuthStrategy::Keystone {
            self.keystone.credentials().map_err(|e| {
                ConfigError::Invalid(format!(
                    "auth_strategy = 'keystone' needs watcherd's service credentials: {e}"
                ))
            })?;
        }
        if self.watcher_clients_auth.is_set() {
            self.watcher_clients_auth
                .credentials()
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        self.api_tls()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if self.decision_engine.datasource == Datasource::Prometheus {
            self.decision_engine
                .prometheus_tls
                .check("decision_engine.prometheus_tls")
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        watcher_store::DatabaseLocation::parse(&self.database_url())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if self.auth_strategy == AuthStrategy::Noauth
            && !self.listen.ip().is_loopback()
            && !self.insecure_listen
        {
            return Err(ConfigError::Invalid(format!(
                "refusing to listen on {} without authentication: every caller would be an admin. \
                 Listen on 127.0.0.1, or set insecure_listen = true if a proxy authenticates callers.",
                self.listen
            )));
        }
        let a = &self.applier;
        if a.max_concurrent_plans == 0 || a.limits.per_plan == 0 || a.limits.per_host == 0 {
            return Err(ConfigError::Invalid(
                "applier.max_concurrent_plans, applier.limits.per_plan and applier.limits.per_host must be at least 1".into(),
            ));
        }
        for (name, v) in [
            ("applier.sweep_interval_secs", a.sweep_interval_secs),
            (
                "decision_engine.sweep_interval_secs",
                self.decision_engine.sweep_interval_secs,
            ),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(ConfigError::Invalid(format!(
                    "{name} must be a positive number of seconds"
                )));
            }
        }
        Ok(())
    }

    /// The API's TLS configuration, when it serves HTTPS.
    pub fn api_tls(
        &self,
    ) -> Result<Option<std::sync::Arc<watcher_tls::rustls::ServerConfig>>, watcher_tls::TlsError>
    {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => watcher_tls::server_config(cert, key).map(Some),
            (None, None) => Ok(None),
            _ => Err(watcher_tls::TlsError::Invalid {
                setting: "tls_cert/tls_key".into(),
                message: "HTTPS needs both tls_cert and tls_key".into(),
            }),
        }
    }

    /// The configuration as TOML, with every password, token and key
    /// (and the passwords of URLs) as `***` unless `show_secrets`.
    pub fn to_toml(&self, show_secrets: bool) -> String {
        use watcher_core::secret::{redact_url_unless_revealing, revealing};
        let render = || {
            let mut c = self.clone();
            c.database = redact_url_unless_revealing(&c.database);
            c.notifications.transport_url =
                redact_url_unless_revealing(&c.notifications.transport_url);
            toml::to_string_pretty(&c)
                .unwrap_or_else(|e| format!("# cannot render configuration: {e}"))
        };
        if show_secrets {
            revealing(render)
        } else {
            render()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_embedded() {
        let c = Config::default();
        c.check().unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9322");
        assert!(c.database_url().ends_with("watcher.db"));
    }

    #[test]
    fn a_public_address_without_auth_is_refused() {
        let c = Config {
            listen: "0.0.0.0:9322".parse().unwrap(),
            ..Config::default()
        };
        assert!(c
            .check()
            .unwrap_err()
            .to_string()
            .contains("insecure_listen"));
    }

    #[test]
    fn kinds_are_enums_and_an_unknown_one_is_refused_with_the_choices() {
        let c: Config = toml::from_str(
            "cloud = \"sim-cloud\"\nsim_cloud_url = \"http://127.0.0.1:1\"\nauth_strategy = \"keystone\"\n\
             [decision_engine]\ndatasource = \"prometheus\"\n",
        )
        .unwrap();
        assert_eq!(c.cloud, CloudKind::SimCloud);
        assert_eq!(c.auth_strategy, AuthStrategy::Keystone);
        assert_eq!(c.decision_engine.datasource, Datasource::Prometheus);
        for (text, choices) in [
            (
                "cloud = \"nowhere\"",
                "`simulated`, `openstack`, `sim-cloud`",
            ),
            ("auth_strategy = \"ldap\"", "`noauth` or `keystone`"),
            (
                "[decision_engine]\ndatasource = \"gnocchi\"",
                "`simulated` or `prometheus`",
            ),
        ] {
            let e = toml::from_str::<Config>(text).unwrap_err().to_string();
            assert!(e.contains("unknown variant") && e.contains(choices), "{e}");
        }
    }

    #[test]
    fn the_printed_configuration_reads_back() {
        let c = Config::default();
        let back: Config = toml::from_str(&c.to_toml(true)).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn printed_configurations_hide_every_secret_unless_asked() {
        let mut c = Config {
            database: "postgres://watcher:dbpw@db/watcher?sslpassword=keypw".into(),
            ..Config::default()
        };
        c.keystone.password = "kspw".into();
        c.watcher_clients_auth.password = "cloudpw".into();
        c.watcher_clients_auth.application_credential_secret = "appsecret".into();
        c.notifications.transport_url = "rabbit://u:mqpw@h1:5672,u:mqpw2@h2:5672/".into();
        let shown = c.to_toml(false);
        for secret in ["dbpw", "keypw", "kspw", "cloudpw", "appsecret", "mqpw"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("postgres://watcher:***@db/watcher"),
            "{shown}"
        );
        let revealed = c.to_toml(true);
        for secret in ["dbpw", "keypw", "kspw", "cloudpw", "appsecret", "mqpw2"] {
            assert!(revealed.contains(secret), "{secret} not in {revealed}");
        }
        let back: Config = toml::from_str(&revealed).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn unknown_database_schemes_are_refused_before_anything_is_created() {
        let c = Config {
            database: "oracle://root:pw@host/x".into(),
            ..Config::default()
        };
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("'oracle' is not supported"), "{e}");
        assert!(!e.contains("pw@"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("listne = '127.0.0.1:1'").is_err());
    }
}
