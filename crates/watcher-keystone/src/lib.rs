//! A small Keystone v3 client: password login, a token renewed before it
//! expires, and endpoint lookup in the token's catalog. Used by the API to
//! validate callers' tokens, by the OpenStack cloud driver and by the
//! `watcher` CLI.
//!
//! Credentials come, as for every OpenStack tool, from `clouds.yaml`
//! (`OS_CLOUD` names the entry) or from the `OS_*` environment variables.

use watcher_core::secret::{redact_url, redact_urls_in};

mod credentials;
pub mod http;
mod session;
#[cfg(test)]
mod tests;

pub use credentials::{ClientsAuth, Credentials};
pub use session::{expires_at, IssuedToken, Session};

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum KeystoneError {
    /// Keystone refused the credentials.
    #[error("Keystone refused the credentials of {user} (project {project}): {message}")]
    Refused {
        user: String,
        project: String,
        message: String,
    },
    /// Keystone could not be reached or answered with an error.
    #[error("Keystone at {url} could not be reached: {message}")]
    Unavailable { url: String, message: String },
    /// The server's certificate is not trusted: waiting will not help.
    #[error("Keystone at {url}: its TLS certificate is not trusted ({message}); set the CA that signed it (cafile, clouds.yaml cacert or OS_CACERT)")]
    Untrusted { url: String, message: String },
    #[error("the catalog has no {interface} endpoint of type {service_type}{region}")]
    NoEndpoint {
        service_type: String,
        interface: String,
        region: String,
    },
    #[error("{0}")]
    Config(String),
}

impl KeystoneError {
    /// An error that waiting may cure (Keystone still booting).
    pub fn is_transient(&self) -> bool {
        matches!(self, KeystoneError::Unavailable { .. })
    }

    /// The error of a failed request to `url`.
    fn transport(url: &str, e: impl std::fmt::Display) -> KeystoneError {
        let (url, message) = (redact_url(url), redact_urls_in(&e.to_string()));
        if watcher_tls::is_certificate_error(&message) {
            KeystoneError::Untrusted { url, message }
        } else {
            KeystoneError::Unavailable { url, message }
        }
    }
}
