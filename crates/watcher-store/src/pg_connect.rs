//! Connecting to PostgreSQL from a URL as libpq reads it, TLS included.
//!
//! `sslmode` takes libpq's six values with libpq's meaning: `disable`;
//! `allow` and `prefer` (the default) use TLS when the server offers it and
//! verify nothing; `require` insists on TLS and, as libpq does when a root
//! certificate is given, verifies the chain with `sslrootcert`;
//! `verify-ca` verifies the chain; `verify-full` the chain and the host
//! name. `sslrootcert` (a PEM file, or `system` for the system's roots
//! alone), `sslcert` and `sslkey` (a client certificate) are read here:
//! the PostgreSQL driver knows only the first three modes and none of the
//! files, so they are taken out of the URL before it parses the rest.

use crate::StoreError;
use postgres::config::SslMode;
use std::path::PathBuf;
use std::time::Duration;
use tokio_postgres_rustls::MakeRustlsConnect;
use watcher_core::secret::{percent_decode, redact_url};
use watcher_tls::TlsOptions;

/// What to connect to and how.
pub struct PgTarget {
    pub(crate) config: postgres::Config,
    /// None: plain TCP (`sslmode=disable`).
    pub(crate) tls: Option<MakeRustlsConnect>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

// Long because one arm per libpq parameter it takes out of the URL, each short.
pub(crate) fn parse(url: &str) -> Result<PgTarget, StoreError> {
    let invalid = |what: String| {
        StoreError::Invalid(format!(
            "database URL {}: {what}; expected \
             postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=verify-full&sslrootcert=FILE]",
            redact_url(url)
        ))
    };
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = vec![];
    let mut mode = Mode::Prefer;
    let mut tls = TlsOptions::default();
    let mut system_roots_only = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        match k {
            "sslmode" => {
                mode = match v.as_str() {
                    "disable" => Mode::Disable,
                    "allow" | "prefer" => Mode::Prefer,
                    "require" => Mode::Require,
                    "verify-ca" => Mode::VerifyCa,
                    "verify-full" => Mode::VerifyFull,
                    other => {
                        return Err(invalid(format!(
                            "sslmode '{other}' is unknown (disable, allow, prefer, require, verify-ca, verify-full)"
                        )))
                    }
                }
            }
            "sslrootcert" if v == "system" => system_roots_only = true,
            "sslrootcert" => tls.cafile = Some(PathBuf::from(v)),
            "sslcert" => tls.certfile = Some(PathBuf::from(v)),
            "sslkey" => tls.keyfile = Some(PathBuf::from(v)),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config: postgres::Config = rest.parse().map_err(|e| invalid(format!("{e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    config
        .application_name("watcherd")
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30));
    let has_root = tls.cafile.is_some() || system_roots_only;
    if matches!(mode, Mode::VerifyCa | Mode::VerifyFull) && !has_root {
        return Err(invalid(format!(
            "sslmode={} needs sslrootcert=FILE (the CA that signed the server's certificate, \
             or 'system' for the system's roots)",
            if mode == Mode::VerifyCa {
                "verify-ca"
            } else {
                "verify-full"
            }
        )));
    }
    let setting = "database sslrootcert/sslcert/sslkey";
    let client = match mode {
        Mode::Disable => {
            config.ssl_mode(SslMode::Disable);
            return Ok(PgTarget { config, tls: None });
        }
        Mode::Prefer => {
            config.ssl_mode(SslMode::Prefer);
            tls.client_config_unverified(setting)
        }
        Mode::Require if !has_root => {
            config.ssl_mode(SslMode::Require);
            tls.client_config_unverified(setting)
        }
        Mode::Require | Mode::VerifyCa => {
            config.ssl_mode(SslMode::Require);
            tls.client_config_without_hostname_check(setting)
        }
        Mode::VerifyFull => {
            config.ssl_mode(SslMode::Require);
            tls.client_config(setting)
        }
    }
    .map_err(|e| StoreError::Invalid(e.to_string()))?;
    Ok(PgTarget {
        config,
        tls: Some(MakeRustlsConnect::new((*client).clone())),
    })
}

impl PgTarget {
    pub(crate) fn connect(&self) -> Result<postgres::Client, postgres::Error> {
        match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(postgres::NoTls),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_ssl_modes_are_understood() {
        assert!(parse("postgres://w@db/w?sslmode=disable")
            .unwrap()
            .tls
            .is_none());
        assert!(parse("postgres://w@db/w").unwrap().tls.is_some());
        assert!(
            parse("postgres://w@db/w?sslmode=require&application_name=x")
                .unwrap()
                .tls
                .is_some()
        );
        let e = parse("postgres://w:pw@db/w?sslmode=verify-full")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("needs sslrootcert"), "{e}");
        assert!(!e.contains("pw@"), "{e}");
        assert!(
            parse("postgres://w@db/w?sslmode=verify-full&sslrootcert=system")
                .unwrap()
                .tls
                .is_some()
        );
        let e = parse("postgres://w@db/w?sslmode=verify-full&sslrootcert=%2Fnone%2Fca.pem")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("cannot read /none/ca.pem"), "{e}");
        let e = parse("postgres://w@db/w?sslmode=sometimes")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("sslmode 'sometimes' is unknown"), "{e}");
    }
}
