//! The read pool: connections that read beside the writer (WAL mode on
//! SQLite), bounded in number.

use crate::location::DatabaseLocation;
use crate::sql::{Conn, Dialect};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

pub(crate) struct ReadPool {
    pub(crate) location: DatabaseLocation,
    pub(crate) idle: Mutex<Vec<Conn>>,
    /// Bounds the read connections open at once (PostgreSQL counts every one
    /// against `max_connections`).
    pub(crate) permits: Arc<Semaphore>,
}

impl Drop for ReadPool {
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|e| e.into_inner()));
        // The servers' clients block while they close a connection, which
        // it must not do on the async thread that dropped the last handle.
        if idle.iter().any(|c| c.dialect() != Dialect::Sqlite) {
            let _ = std::thread::Builder::new()
                .name("store-close".into())
                .spawn(move || drop(idle));
        }
    }
}
