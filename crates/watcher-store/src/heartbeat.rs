//! Components' heartbeats: the services list and `/healthz` read them.

use crate::Store;

/// How often a component records that it is alive.
pub const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// A component not heard from for this long is shown FAILED (upstream's `service_down_time`).
pub const SERVICE_DOWN_TIME: std::time::Duration = std::time::Duration::from_secs(90);

/// A component's heartbeat, written at most once per [`HEARTBEAT_EVERY`].
pub struct Heartbeat {
    store: Store,
    name: &'static str,
    host: String,
    last: Option<std::time::Instant>,
    /// The same failure is logged once a minute.
    gate: watcher_core::backoff::LogGate,
}

impl Heartbeat {
    pub fn new(store: Store, name: &'static str, host: String) -> Heartbeat {
        Heartbeat {
            store,
            name,
            host,
            last: None,
            gate: Default::default(),
        }
    }

    pub async fn beat(&mut self) {
        if self.last.is_some_and(|t| t.elapsed() < HEARTBEAT_EVERY) {
            return;
        }
        match self.store.heartbeat(self.name, &self.host).await {
            Ok(()) => {
                self.last = Some(std::time::Instant::now());
                self.gate.reset();
            }
            Err(e) => {
                if let Some(held_back) = self.gate.admit(&e.to_string(), std::time::Instant::now())
                {
                    tracing::warn!(service = self.name, error = %e, not_logged = held_back, "could not record heartbeat");
                }
            }
        }
    }
}
