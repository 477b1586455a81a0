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

mod ini;
mod options;

use crate::config::ConfigError;
use ini::parse;
use options::{Kind, MAPPING, UNUSED};
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
        // keystoneauth's plugin names, with or without their `v3`.
        if let Some(v) = self.get("watcher_clients_auth", "auth_type") {
            let plugin = match v.value.trim() {
                "password" | "v3password" => "password",
                "applicationcredential" | "v3applicationcredential" => "v3applicationcredential",
                other => other,
            };
            set(
                table,
                "watcher_clients_auth.auth_type",
                toml::Value::String(plugin.into()),
            );
            self.mark(
                fates,
                "watcher_clients_auth",
                "auth_type",
                "watcher_clients_auth.auth_type",
            );
        }
        // [oslo_policy] policy_file: a relative name is looked up beside the
        // file that names it first, as oslo.config looks in its config
        // directories.
        if let Some(v) = self.get("oslo_policy", "policy_file") {
            let name = PathBuf::from(v.value.trim());
            let beside = v.file.parent().map(|d| d.join(&name));
            let path = match beside {
                Some(b) if name.is_relative() && b.exists() => b,
                _ => name,
            };
            set(
                table,
                "policy_file",
                toml::Value::String(path.display().to_string()),
            );
            self.mark(fates, "oslo_policy", "policy_file", "policy_file");
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
            self.mark(fates, "DEFAULT", "debug", "--log info,watcher=debug");
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

#[cfg(test)]
mod tests;
