//! The one way watcherd builds an HTTP client: ureq over rustls with the
//! trust settings of `watcher_tls`, and timeouts on connect and on the
//! whole request, so a peer that stops answering is an error, not a hang.

use std::time::Duration;
use watcher_tls::{TlsError, TlsOptions};

/// An agent for the service whose TLS settings are `tls`; `setting` names
/// them in errors (e.g. `watcher_clients_auth.cafile`).
pub fn agent(tls: &TlsOptions, setting: &str, timeout: Duration) -> Result<ureq::Agent, TlsError> {
    Ok(ureq::AgentBuilder::new()
        .tls_config(tls.client_config(setting)?)
        .timeout_connect(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .build())
}

/// An agent for `http://` peers that have no TLS settings (the sim-cloud).
pub fn plain_agent(timeout: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .build()
}
