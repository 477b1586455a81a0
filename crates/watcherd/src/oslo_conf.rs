//! Upstream's `watcher.conf`, read as oslo.config reads it, and mapped onto
//! watcherd's settings: an operator switching from upstream Watcher points
//! watcherd at the file the deployment tool rendered (`--config-file`,
//! `--config-dir`) instead of translating it by hand.
//!
//! The reading follows oslo.config's INI parser: `[section]` headers,
//! `option = value` or `option: value`, `#` and `;` comment lines, indented
//! continuation lines, matching quotes around a value removed, dashes in
//! option names read as underscores, a later value winning over an earlier
//! one (files in the order given, a directory's `*.conf` files sorted by
//! name). What each option becomes is in [`MAPPING`] and the few special
//! cases of [`OsloConf::to_table`]; an option watcherd does not know is
//! reported (the caller logs it once), never fatal, as oslo.config ignores
//! options nobody registered. A value of the wrong type is an error naming
//! the file, its line, the section and the option.

use crate::config::ConfigError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where oslo.config reads from, in the order given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OsloSource {
    /// `--config-file FILE`.
    File(PathBuf),
    /// `--config-dir DIR`: its `*.conf` files, sorted by name.
    Dir(PathBuf),
}

/// One option's value and where it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct OsloValue {
    pub value: String,
    pub file: PathBuf,
    pub line: usize,
}

impl OsloValue {
    fn invalid(&self, section: &str, option: &str, why: &str) -> ConfigError {
        ConfigError::Invalid(format!(
            "{}:{}: [{section}] {option} = {:?}: {why}",
            self.file.display(),
            self.line,
            self.value
        ))
    }
}

/// Every option read, by `(section, option)`, the last value winning.
#[derive(Debug, Default, Clone)]
pub struct OsloConf {
    values: BTreeMap<(String, String), OsloValue>,
}

/// What became of one option of the files.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    /// Set watcherd's setting of this name (`keystone.auth_url`, ...).
    Mapped(&'static str),
    /// Known to upstream, not used by watcherd, for this reason.
    Unused(&'static str),
    /// Unknown to watcherd: logged once at start, ignored.
    Unknown,
}

/// One line of `--print-config`'s account, and of the start-up log.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub section: String,
    pub option: String,
    pub at: String,
    pub fate: Fate,
}

impl std::fmt::Display for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (section, option, at) = (&self.section, &self.option, &self.at);
        match &self.fate {
            Fate::Mapped(to) => write!(f, "[{section}] {option} ({at}) -> {to}"),
            Fate::Unused(why) => write!(f, "[{section}] {option} ({at}): not used: {why}"),
            Fate::Unknown => write!(
                f,
                "[{section}] {option} ({at}): unknown to watcherd, ignored"
            ),
        }
    }
}

impl OsloConf {
    /// Reads the sources in order. A file or directory that does not exist
    /// is an error, as it is for oslo.config.
    pub fn read(sources: &[OsloSource]) -> Result<OsloConf, ConfigError> {
        let mut conf = OsloConf::default();
        for source in sources {
            match source {
                OsloSource::File(path) => conf.read_file(path)?,
                OsloSource::Dir(dir) => {
                    let entries = std::fs::read_dir(dir).map_err(|source| ConfigError::Read {
                        path: dir.display().to_string(),
                        source,
                    })?;
                    let mut files: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file())
                        .collect();
                    files.sort();
                    for f in files {
                        conf.read_file(&f)?;
                    }
                }
            }
        }
        Ok(conf)
    }

    fn read_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        for (section, option, value, line) in parse(&text, path)? {
            let v = OsloValue {
                value,
                file: path.to_path_buf(),
                line,
            };
            self.values.insert((section, option), v);
        }
        Ok(())
    }

    fn get(&self, section: &str, option: &str) -> Option<&OsloValue> {
        self.values.get(&(section.to_string(), option.to_string()))
    }

    /// The settings the files give, as a TOML table of watcherd's
    /// configuration (missing keys keep their defaults), and what became
    /// of every option read.
    pub fn to_table(&self) -> Result<(toml::Table, Vec<Account>), ConfigError> {
        let mut table = toml::Table::new();
        let mut fates: BTreeMap<(String, String), Fate> = BTreeMap::new();
        for m in MAPPING {
            if let Some(v) = self.get(m.section, m.option) {
                let value = m.kind.convert(v, m.section, m.option)?;
                set(&mut table, m.to, value);
                fates.insert(key(m.section, m.option), Fate::Mapped(m.to));
            }
        }
        self.special_cases(&mut table, &mut fates)?;
        for (section, option, why) in UNUSED {
            if self.get(section, option).is_some() {
                fates
                    .entry(key(section, option))
                    .or_insert(Fate::Unused(why));
            }
        }
        let accounts = self
            .values
            .iter()
            .map(|((section, option), v)| Account {
                section: section.clone(),
                option: option.clone(),
                at: format!("{}:{}", v.file.display(), v.line),
                fate: fates
                    .get(&(section.clone(), option.clone()))
                    .cloned()
                    .unwrap_or(Fate::Unknown),
            })
            .collect();
        Ok((table, accounts))
    }

    /// The options that do not map one to one.
    // Long because it is the list of upstream's options that combine or
    // depend on one another, each a few lines.
    fn special_cases(
        &self,
        table: &mut toml::Table,
        fates: &mut BTreeMap<(String, String), Fate>,
    ) -> Result<(), ConfigError> {
        // [api] host and port: one address.
        let host = self.get("api", "host").map(|v| v.value.clone());
        let port = match self.get("api", "port") {
            Some(v) => Some(Kind::Int.convert(v, "api", "port")?),
            None => None,
        };
        if host.is_some() || port.is_some() {
            let host = host.unwrap_or_else(|| "127.0.0.1".into());
            let port = port.and_then(|p| p.as_integer()).unwrap_or(9322);
            let addr = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            if addr.parse::<std::net::SocketAddr>().is_err() {
                let v = self.get("api", "host").expect("host given");
                return Err(v.invalid(
                    "api",
                    "host",
                    "not an IP address (watcherd listens on an address, not a name)",
                ));
            }
            set(table, "listen", toml::Value::String(addr));
            self.mark(fates, "api", "host", "listen");
            self.mark(fates, "api", "port", "listen");
        }
        // [api] enable_ssl_api: HTTPS with oslo.service's [ssl] files.
        if let Some(v) = self.get("api", "enable_ssl_api") {
            if Kind::Bool.convert(v, "api", "enable_ssl_api")?.as_bool() == Some(true) {
                for (option, to) in [("cert_file", "tls_cert"), ("key_file", "tls_key")] {
                    let file = self.get("ssl", option).ok_or_else(|| {
                        v.invalid(
                            "api",
                            "enable_ssl_api",
                            &format!("HTTPS needs [ssl] {option}"),
                        )
                    })?;
                    set(table, to, toml::Value::String(file.value.clone()));
                    self.mark(fates, "ssl", option, to);
                }
            }
            self.mark(fates, "api", "enable_ssl_api", "tls_cert, tls_key");
        }
        // [DEFAULT] enable_authentication: Keystone or none.
        if let Some(v) = self.get("DEFAULT", "enable_authentication") {
            let on = Kind::Bool.convert(v, "DEFAULT", "enable_authentication")?;
            let strategy = if on.as_bool() == Some(true) {
                "keystone"
            } else {
                "noauth"
            };
            set(table, "auth_strategy", toml::Value::String(strategy.into()));
            self.mark(fates, "DEFAULT", "enable_authentication", "auth_strategy");
        } else if self.get("keystone_authtoken", "auth_url").is_some() {
            // Upstream's default is on.
            set(
                table,
                "auth_strategy",
                toml::Value::String("keystone".into()),
            );
        }
        // [database] connection: SQLAlchemy's URL, its driver dropped.
        if let Some(v) = self.get("database", "connection") {
            let url = sqlalchemy_url(&v.value);
            set(table, "database", toml::Value::String(url));
            self.mark(fates, "database", "connection", "database");
        }
        // Notifications: oslo.messaging's driver decides whether any are sent;
        // their own transport_url, else [DEFAULT]'s.
        let driver = self
            .get("oslo_messaging_notifications", "driver")
            .map(|v| v.value.trim().to_string())
            .unwrap_or_default();
        let sends = driver
            .split(',')
            .any(|d| matches!(d.trim(), "messaging" | "messagingv2"));
        let url = self
            .get("oslo_messaging_notifications", "transport_url")
            .or_else(|| self.get("DEFAULT", "transport_url"));
        if sends {
            if let Some(url) = url {
                set(
                    table,
                    "notifications.transport_url",
                    toml::Value::String(url.value.clone()),
                );
            }
        }
        for (section, option) in [
            ("oslo_messaging_notifications", "driver"),
            ("oslo_messaging_notifications", "transport_url"),
            ("DEFAULT", "transport_url"),
        ] {
            if sends {
                self.mark(fates, section, option, "notifications.transport_url");
            } else if self.get(section, option).is_some() {
                fates.insert(
                    key(section, option),
                    Fate::Unused("no notification driver (messaging, messagingv2) is set: watcherd sends none, as upstream; it needs no RPC"),
                );
            }
        }
        // [watcher_clients_auth] manages a real OpenStack.
        if self.get("watcher_clients_auth", "auth_url").is_some() {
            set(table, "cloud", toml::Value::String("openstack".into()));
        }
        // Region and interface: [watcher_clients_auth]'s own, else the first
        // service section's (watcherd uses one for every service).
        for (option, to, list) in [
            ("region_name", "watcher_clients_auth.region_name", false),
            ("valid_interfaces", "watcher_clients_auth.interface", true),
            ("interface", "watcher_clients_auth.interface", false),
        ] {
            for section in [
                "watcher_clients_auth",
                "nova",
                "placement",
                "cinder",
                "keystone",
            ] {
                let Some(v) = self.get(section, option) else {
                    continue;
                };
                let value = if list {
                    v.value
                        .split(',')
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_string()
                } else {
                    v.value.trim().to_string()
                };
                let interface = value.trim_end_matches("URL").to_ascii_lowercase();
                let value = if to.ends_with("interface") {
                    interface
                } else {
                    value
                };
                if !has(table, to) {
                    set(table, to, toml::Value::String(value));
                }
                self.mark(fates, section, option, to);
            }
        }
        // [prometheus_client]: the address of the datasource.
        if let Some(h) = self.get("prometheus_client", "host") {
            let port = match self.get("prometheus_client", "port") {
                Some(v) => Kind::Int
                    .convert(v, "prometheus_client", "port")?
                    .as_integer()
                    .unwrap_or(9090),
                None => 9090,
            };
            let tls = self.get("prometheus_client", "cafile").is_some()
                || self.get("prometheus_client", "client_cert").is_some();
            let scheme = if tls { "https" } else { "http" };
            let host = h.value.trim();
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.to_string()
            };
            set(
                table,
                "decision_engine.prometheus_url",
                toml::Value::String(format!("{scheme}://{host}:{port}")),
            );
            set(
                table,
                "decision_engine.datasource",
                toml::Value::String("prometheus".into()),
            );
            self.mark(
                fates,
                "prometheus_client",
                "host",
                "decision_engine.prometheus_url",
            );
            self.mark(
                fates,
                "prometheus_client",
                "port",
                "decision_engine.prometheus_url",
            );
        }
        // [DEFAULT] debug and the log's place are the command line's
        // defaults (main.rs), not settings of the service.
        if let Some(v) = self.get("DEFAULT", "debug") {
            Kind::Bool.convert(v, "DEFAULT", "debug")?;
            self.mark(fates, "DEFAULT", "debug", "--log debug");
        }
        self.mark(
            fates,
            "DEFAULT",
            "log_dir",
            "--log-file <log_dir>/watcherd.log",
        );
        self.mark(fates, "DEFAULT", "log_file", "--log-file");
        Ok(())
    }

    fn mark(
        &self,
        fates: &mut BTreeMap<(String, String), Fate>,
        section: &str,
        option: &str,
        to: &'static str,
    ) {
        if self.get(section, option).is_some() {
            fates.insert(key(section, option), Fate::Mapped(to));
        }
    }

    /// `[DEFAULT] debug`, as oslo.log reads it.
    pub fn debug(&self) -> bool {
        self.get("DEFAULT", "debug")
            .and_then(|v| Kind::Bool.convert(v, "DEFAULT", "debug").ok())
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }

    /// Where oslo.log would write: `log_file` (under `log_dir` when
    /// relative), else `<log_dir>/watcherd.log`; none means standard error.
    pub fn log_file(&self) -> Option<PathBuf> {
        let dir = self
            .get("DEFAULT", "log_dir")
            .map(|v| PathBuf::from(v.value.trim()));
        match (self.get("DEFAULT", "log_file"), dir) {
            (Some(f), Some(dir)) => Some(dir.join(f.value.trim())),
            (Some(f), None) => Some(PathBuf::from(f.value.trim())),
            (None, Some(dir)) => Some(dir.join("watcherd.log")),
            (None, None) => None,
        }
    }
}

fn key(section: &str, option: &str) -> (String, String) {
    (section.to_string(), option.to_string())
}

/// SQLAlchemy's `dialect+driver://` becomes `dialect://`; SQLite's
/// `sqlite:////abs` and `sqlite:///rel` keep their meaning.
fn sqlalchemy_url(url: &str) -> String {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match scheme.split('+').next().unwrap_or(scheme) {
        // SQLAlchemy's `sqlite:///rel.db` is relative, `sqlite:////abs.db`
        // absolute, `sqlite://` in memory.
        "sqlite" => match rest.strip_prefix('/') {
            None | Some("") => "sqlite::memory:".to_string(),
            Some(path) if path.starts_with('/') => format!("sqlite://{path}"),
            Some(path) => format!("sqlite:{path}"),
        },
        "postgresql" => format!("postgres://{rest}"),
        dialect => format!("{dialect}://{rest}"),
    }
}

/// The types of oslo.config's options, converted as oslo.config does.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    Bool,
    Int,
    Float,
    /// `a, b, c`.
    List,
    /// `key:value, key:value` with integer values.
    IntDict,
}

impl Kind {
    fn convert(
        self,
        v: &OsloValue,
        section: &str,
        option: &str,
    ) -> Result<toml::Value, ConfigError> {
        let s = v.value.trim();
        Ok(match self {
            Kind::Str => toml::Value::String(s.to_string()),
            Kind::Bool => toml::Value::Boolean(match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "on" | "yes" => true,
                "false" | "0" | "off" | "no" => false,
                _ => return Err(v.invalid(section, option, "not a boolean (true or false)")),
            }),
            Kind::Int => toml::Value::Integer(
                s.parse()
                    .map_err(|_| v.invalid(section, option, "not an integer"))?,
            ),
            Kind::Float => toml::Value::Float(
                s.parse()
                    .map_err(|_| v.invalid(section, option, "not a number"))?,
            ),
            Kind::List => toml::Value::Array(
                s.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(|x| toml::Value::String(x.into()))
                    .collect(),
            ),
            Kind::IntDict => {
                let mut t = toml::Table::new();
                for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let (k, n) = pair.split_once(':').ok_or_else(|| {
                        v.invalid(section, option, "not a dictionary (key:value, key:value)")
                    })?;
                    let n: i64 = n.trim().parse().map_err(|_| {
                        v.invalid(
                            section,
                            option,
                            &format!("the value of {} is not an integer", k.trim()),
                        )
                    })?;
                    t.insert(k.trim().to_string(), toml::Value::Integer(n));
                }
                toml::Value::Table(t)
            }
        })
    }
}

/// An option that sets one of watcherd's settings as it is.
struct Mapped {
    section: &'static str,
    option: &'static str,
    to: &'static str,
    kind: Kind,
}

const fn m(section: &'static str, option: &'static str, to: &'static str, kind: Kind) -> Mapped {
    Mapped {
        section,
        option,
        to,
        kind,
    }
}

/// Upstream Watcher 17's options with a watcherd setting of the same meaning.
const MAPPING: &[Mapped] = &[
    m("DEFAULT", "host", "host", Kind::Str),
    m(
        "DEFAULT",
        "notification_level",
        "notifications.level",
        Kind::Str,
    ),
    m(
        "api",
        "enable_webhooks_auth",
        "keystone.enable_webhooks_auth",
        Kind::Bool,
    ),
    m(
        "keystone_authtoken",
        "auth_url",
        "keystone.auth_url",
        Kind::Str,
    ),
    m(
        "keystone_authtoken",
        "username",
        "keystone.username",
        Kind::Str,
    ),
    m(
        "keystone_authtoken",
        "password",
        "keystone.password",
        Kind::Str,
    ),
    m(
        "keystone_authtoken",
        "project_name",
        "keystone.project_name",
        Kind::Str,
    ),
    m(
        "keystone_authtoken",
        "user_domain_name",
        "keystone.user_domain_name",
        Kind::Str,
    ),
    m(
        "keystone_authtoken",
        "project_domain_name",
        "keystone.project_domain_name",
        Kind::Str,
    ),
    m("keystone_authtoken", "cafile", "keystone.cafile", Kind::Str),
    m(
        "keystone_authtoken",
        "certfile",
        "keystone.certfile",
        Kind::Str,
    ),
    m(
        "keystone_authtoken",
        "keyfile",
        "keystone.keyfile",
        Kind::Str,
    ),
    m(
        "keystone_authtoken",
        "insecure",
        "keystone.insecure",
        Kind::Bool,
    ),
    m(
        "watcher_clients_auth",
        "auth_type",
        "watcher_clients_auth.auth_type",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "auth_url",
        "watcher_clients_auth.auth_url",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "username",
        "watcher_clients_auth.username",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "password",
        "watcher_clients_auth.password",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "project_name",
        "watcher_clients_auth.project_name",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "user_domain_name",
        "watcher_clients_auth.user_domain_name",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "project_domain_name",
        "watcher_clients_auth.project_domain_name",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "application_credential_id",
        "watcher_clients_auth.application_credential_id",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "application_credential_name",
        "watcher_clients_auth.application_credential_name",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "application_credential_secret",
        "watcher_clients_auth.application_credential_secret",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "cafile",
        "watcher_clients_auth.cafile",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "certfile",
        "watcher_clients_auth.certfile",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "keyfile",
        "watcher_clients_auth.keyfile",
        Kind::Str,
    ),
    m(
        "watcher_clients_auth",
        "insecure",
        "watcher_clients_auth.insecure",
        Kind::Bool,
    ),
    m("oslo_policy", "policy_file", "policy_file", Kind::Str),
    m(
        "oslo_messaging_notifications",
        "topics",
        "notifications.topics",
        Kind::List,
    ),
    m(
        "oslo_messaging_rabbit",
        "ssl",
        "notifications.ssl",
        Kind::Bool,
    ),
    m(
        "oslo_messaging_rabbit",
        "ssl_ca_file",
        "notifications.ssl_ca_file",
        Kind::Str,
    ),
    m(
        "oslo_messaging_rabbit",
        "ssl_cert_file",
        "notifications.ssl_cert_file",
        Kind::Str,
    ),
    m(
        "oslo_messaging_rabbit",
        "ssl_key_file",
        "notifications.ssl_key_file",
        Kind::Str,
    ),
    m(
        "oslo_messaging_rabbit",
        "heartbeat_timeout_threshold",
        "notifications.heartbeat_timeout_threshold",
        Kind::Int,
    ),
    m(
        "watcher_applier",
        "workers",
        "applier.max_concurrent_plans",
        Kind::Int,
    ),
    m(
        "watcher_workflow_engines.taskflow",
        "max_workers",
        "applier.limits.per_plan",
        Kind::Int,
    ),
    m(
        "watcher_decision_engine",
        "action_plan_expiry",
        "decision_engine.action_plan_expiry_hours",
        Kind::Float,
    ),
    m(
        "watcher_planners.weight",
        "weights",
        "decision_engine.planner.weights",
        Kind::IntDict,
    ),
    m(
        "watcher_planners.weight",
        "parallelization",
        "decision_engine.planner.parallelization",
        Kind::IntDict,
    ),
    m(
        "prometheus_client",
        "cafile",
        "decision_engine.prometheus_tls.cafile",
        Kind::Str,
    ),
    m(
        "prometheus_client",
        "client_cert",
        "decision_engine.prometheus_tls.certfile",
        Kind::Str,
    ),
    m(
        "prometheus_client",
        "client_key",
        "decision_engine.prometheus_tls.keyfile",
        Kind::Str,
    ),
];

/// Upstream options watcherd reads but does not use, and why.
const UNUSED: &[(&str, &str, &str)] = &[
    (
        "api",
        "workers",
        "one watcherd process serves every request (asynchronous I/O)",
    ),
    (
        "api",
        "max_limit",
        "watcherd's page size cap is upstream's default, 1000",
    ),
    (
        "keystone_authtoken",
        "www_authenticate_uri",
        "watcherd validates tokens at auth_url",
    ),
    (
        "keystone_authtoken",
        "auth_type",
        "watcherd's service user logs in with a password",
    ),
    (
        "keystone_authtoken",
        "memcached_servers",
        "validated tokens are cached in watcherd's memory",
    ),
    (
        "keystone_authtoken",
        "region_name",
        "tokens are validated at auth_url, in no region",
    ),
    (
        "watcher_applier",
        "conductor_topic",
        "watcherd needs no RPC: processes share the database",
    ),
    (
        "watcher_applier",
        "publisher_id",
        "watcherd needs no RPC: processes share the database",
    ),
    (
        "watcher_applier",
        "workflow_engine",
        "watcherd's applier is its own engine",
    ),
    (
        "watcher_applier",
        "rollback_when_actionplan_failed",
        "deprecated upstream as non-working; see applier.rollback_on_cancel",
    ),
    (
        "watcher_decision_engine",
        "conductor_topic",
        "watcherd needs no RPC: processes share the database",
    ),
    (
        "watcher_decision_engine",
        "max_audit_workers",
        "audits run as asynchronous tasks, not worker threads",
    ),
    (
        "watcher_decision_engine",
        "max_general_workers",
        "audits run as asynchronous tasks, not worker threads",
    ),
    (
        "watcher_decision_engine",
        "continuous_audit_interval",
        "CONTINUOUS audits are woken at their next run time",
    ),
    (
        "watcher_decision_engine",
        "check_periodic_interval",
        "expiry runs every decision_engine.sweep_interval_secs",
    ),
    (
        "watcher_planner",
        "planner",
        "watcherd plans with the weight planner",
    ),
    (
        "nova",
        "migration_interval",
        "watcherd polls a migration every applier.poll_interval_ms",
    ),
    (
        "nova",
        "migration_max_retries",
        "watcherd bounds an action by applier.abort_deadline_secs",
    ),
    (
        "oslo_messaging_rabbit",
        "rabbit_ha_queues",
        "notifications are published, never consumed: no queue is declared",
    ),
    (
        "prometheus_client",
        "username",
        "watcherd sends no basic authentication to Prometheus; use client_cert and client_key",
    ),
    (
        "prometheus_client",
        "password",
        "watcherd sends no basic authentication to Prometheus; use client_cert and client_key",
    ),
    (
        "prometheus_client",
        "fqdn_label",
        "watcherd's queries use upstream's default labels, fqdn and resource",
    ),
    (
        "prometheus_client",
        "instance_uuid_label",
        "watcherd's queries use upstream's default labels, fqdn and resource",
    ),
    (
        "collector",
        "collector_plugins",
        "watcherd reads compute and storage from the cloud on every audit",
    ),
    (
        "watcher_cluster_data_model_collectors.compute",
        "period",
        "watcherd reads the cloud on every audit: no model to refresh",
    ),
    (
        "watcher_cluster_data_model_collectors.storage",
        "period",
        "watcherd reads the cloud on every audit: no model to refresh",
    ),
];

/// Sets `path` (`a.b.c`) in `table`, creating the tables on the way.
fn set(table: &mut toml::Table, path: &str, value: toml::Value) {
    let mut parts = path.split('.').peekable();
    let mut t = table;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            t.insert(part.to_string(), value);
            return;
        }
        let entry = t
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        t = entry.as_table_mut().expect("a table");
    }
}

fn has(table: &toml::Table, path: &str) -> bool {
    let mut v: Option<&toml::Value> = None;
    let mut t = Some(table);
    for part in path.split('.') {
        v = t.and_then(|t| t.get(part));
        t = v.and_then(|v| v.as_table());
    }
    v.is_some()
}

/// Lays `over` onto `base`: tables merged key by key, anything else replaced.
pub fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// oslo.config's INI syntax: `(section, option, value, line)` in order.
fn parse(text: &str, path: &Path) -> Result<Vec<(String, String, String, usize)>, ConfigError> {
    let bad =
        |line: usize, why: &str| ConfigError::Invalid(format!("{}:{line}: {why}", path.display()));
    let mut out: Vec<(String, String, String, usize)> = Vec::new();
    let mut section: Option<String> = None;
    // The option a continuation line would extend.
    let mut open = false;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_end();
        if line.is_empty() {
            open = false;
            continue;
        }
        let first = line.chars().next().expect("not empty");
        if first.is_whitespace() {
            let last = out.last_mut().filter(|_| open).ok_or_else(|| {
                bad(
                    n,
                    "an indented line continues no option (remove its indentation?)",
                )
            })?;
            let more = unquote(line.trim());
            if last.2.is_empty() {
                last.2 = more.to_string();
            } else {
                last.2.push('\n');
                last.2.push_str(more);
            }
            continue;
        }
        open = false;
        if first == '#' || first == ';' {
            continue;
        }
        if first == '[' {
            let name = line
                .strip_prefix('[')
                .and_then(|l| l.strip_suffix(']'))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| bad(n, &format!("{line:?} is not a section header ([name])")))?;
            section = Some(if name.eq_ignore_ascii_case("default") {
                "DEFAULT".to_string()
            } else {
                name.to_string()
            });
            continue;
        }
        let split = line
            .find(['=', ':'])
            .ok_or_else(|| bad(n, &format!("{line:?} has no '=' or ':' (option = value)")))?;
        let option = line[..split].trim();
        if option.is_empty() {
            return Err(bad(n, "a value without an option name"));
        }
        let section = section
            .clone()
            .ok_or_else(|| bad(n, "an option before any [section] header"))?;
        let value = unquote(line[split + 1..].trim()).to_string();
        out.push((section, option.replace('-', "_"), value, n));
        open = true;
    }
    Ok(out)
}

/// oslo.config drops quotes that open and close a value alike.
fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

#[cfg(test)]
mod tests;
