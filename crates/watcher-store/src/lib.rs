//! The store: the single source of truth.
//!
//! Every state change is one transaction that does a compare-and-set on the
//! expected current state (`UPDATE .. WHERE uuid = ? AND state = ?`), writes
//! a history row, and applies its cascades. Zero rows updated is a lost race
//! and comes back as [`StoreError::Conflict`], never as a silent overwrite.
//!
//! Three databases: a SQLite file (embedded, or several processes on one
//! machine), PostgreSQL and MariaDB/MySQL (several machines). The queries are written once
//! ([`sql`]); write transactions exclude each other on both
//! ([`sql::Dialect::begin_write`]), so every state change sees the one
//! before it, and history rows are numbered in commit order.
//!
//! All writes of a process go through one writer thread that owns the write
//! connection and commits in groups: each request runs inside its own
//! SAVEPOINT, so a failing request leaves no trace, and everything queued
//! while a commit was in flight shares the next commit. A request is
//! answered only after its commit, so "Ok" always means durable. After the
//! commit the writer publishes [`StoreEvent`]s; they only wake other
//! components up, who then re-read the database. Other processes hear of
//! the change from the history ([`Store::watch_other_processes`]).
//!
//! Reads use a small pool of read connections (WAL mode lets them run beside
//! the writer on SQLite). An in-memory database has a single connection, so
//! its reads go through the writer thread too.

mod error;
mod events;
mod heartbeat;
mod location;
mod mariadb;
mod pg_connect;
mod reader;
mod schema;
pub(crate) mod sql;
mod tail;
mod values;
mod wal;
mod writer;

// The queries and state changes, one module per noun; each public method
// of `Store` they define is one transaction.
mod actions;
mod audits;
mod cascade;
mod catalogue;
mod history;
mod journal;
mod listing;
mod pause;
mod plans;
mod presence;
mod purge;
mod services;
mod sim_cloud;
mod templates;
mod upstream;
mod upstream_export;
mod upstream_import;

pub use actions::ActionFilter;
pub use audits::{AuditEdit, AuditFilter, NewAudit};
pub use error::StoreError;
pub use events::StoreEvent;
pub use heartbeat::{Heartbeat, HEARTBEAT_EVERY, SERVICE_DOWN_TIME};
pub use history::StateCounts;
pub use journal::JournalEntry;
pub use listing::{ListQuery, SortKey};
pub use location::{DatabaseLocation, MysqlUrl, PostgresUrl, WAL_LIMIT_BYTES};
pub use mariadb::in_mariadb_words;
pub use plans::{NewPlan, PlanFilter, PlanUpdate, Takeover};
pub use presence::Presence;
pub use purge::{PurgeCounts, PurgeRequest};
pub use sim_cloud::SimCloudRow;
pub use tail::Hearing;
pub use templates::TemplateFields;
pub use upstream::{SyncRecord, UpstreamDatabase, KNOWN_REVISIONS};
pub use upstream_export::ExportCounts;
pub use upstream_import::TakeoverCounts;
pub use wal::wal_bytes;
pub use writer::Durability;

use chrono::{DateTime, TimeZone, Utc};
use events::Announcer;
use reader::ReadPool;
use sql::{Conn, Dialect};
use std::sync::{mpsc, Arc, Mutex};
use tokio::sync::{broadcast, oneshot, Semaphore};
use uuid::Uuid;
use watcher_core::backoff::LogGate;
use writer::{write_job, Writer, WriterMsg};

/// While alive, this process's writes wait ([`Store::hold_writes`]).
#[cfg(feature = "test-hooks")]
pub struct WritesHeld(#[allow(dead_code)] std::sync::mpsc::Sender<()>);

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Mutex<mpsc::Sender<WriterMsg>>,
    /// PostgreSQL: a second writer, on its own connection, for writes that
    /// insert many rows before they need the writers' lock
    /// ([`Store::write_bulk`]): neither this process's other writes nor
    /// other processes' wait while those rows go in.
    bulk_writer: Option<Mutex<mpsc::Sender<WriterMsg>>>,
    readers: Option<ReadPool>,
    events: Announcer,
    location: DatabaseLocation,
}

impl Store {
    /// Opens (creating if needed) the database and starts the writer thread.
    // Long because it starts the store's threads (checkpointer, bulk writer, writer) in
    // the order their channels need, each a few lines.
    pub fn open(location: &DatabaseLocation, durability: Durability) -> Result<Store, StoreError> {
        if let DatabaseLocation::File(path) = location {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Invalid(format!(
                        "cannot create the database directory {}: {e}",
                        dir.display()
                    ))
                })?;
            }
        }
        let readers = match location {
            DatabaseLocation::Memory => None,
            _ => Some(ReadPool {
                location: location.clone(),
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(match location.dialect() {
                    Dialect::Postgres | Dialect::Mysql => 4,
                    Dialect::Sqlite => 8,
                })),
            }),
        };
        let events = Announcer::new();
        let (tx, rx) = mpsc::channel::<WriterMsg>();
        let events_tx = events.clone();
        // The checkpointer stops when the writer (holding its sender) stops.
        let (wake_tx, wake_rx) = mpsc::channel::<()>();
        if let DatabaseLocation::File(path) = location {
            let path = path.clone();
            std::thread::Builder::new()
                .name("store-checkpointer".into())
                .spawn(move || wal::checkpointer_loop(path, wake_rx))
                .map_err(|e| {
                    StoreError::Invalid(format!("cannot start the checkpointer thread: {e}"))
                })?;
        }
        let bulk_writer = match location.dialect() {
            Dialect::Sqlite => None,
            Dialect::Postgres | Dialect::Mysql => {
                let (bulk_tx, bulk_rx) = mpsc::channel::<WriterMsg>();
                let bulk = Writer {
                    conn: None,
                    location: location.clone(),
                    durability,
                    events: events_tx.clone(),
                    checkpoint: wake_tx.clone(),
                    bulk: true,
                    gate: LogGate::default(),
                };
                std::thread::Builder::new()
                    .name("store-bulk-writer".into())
                    .spawn(move || bulk.run(bulk_rx))
                    .map_err(|e| {
                        StoreError::Invalid(format!("cannot start the bulk writer thread: {e}"))
                    })?;
                Some(Mutex::new(bulk_tx))
            }
        };
        let mut writer = Writer {
            conn: None,
            location: location.clone(),
            durability,
            events: events_tx,
            checkpoint: wake_tx,
            bulk: false,
            gate: LogGate::default(),
        };
        // The writer's connection is opened, and the schema migrated, on its
        // own thread: PostgreSQL's client must not block an async thread.
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), StoreError>>(1);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                let opened = writer.connection().and_then(schema::migrate);
                let ok = opened.is_ok();
                let _ = ready_tx.send(opened);
                if ok {
                    writer.run(rx);
                }
            })
            .map_err(|e| StoreError::Invalid(format!("cannot start the writer thread: {e}")))?;
        ready_rx.recv().map_err(|_| StoreError::Closed)??;
        Ok(Store {
            inner: Arc::new(Inner {
                writer: Mutex::new(tx),
                bulk_writer,
                readers,
                events,
                location: location.clone(),
            }),
        })
    }

    /// True when other watcherd processes may share this database as a
    /// matter of course (PostgreSQL, MariaDB); a SQLite file is shared only
    /// when the configuration says so.
    pub fn is_server_database(&self) -> bool {
        self.inner.location.dialect() != Dialect::Sqlite
    }

    /// Hears of changes other processes make to the same database (several
    /// watcherd processes): PostgreSQL's LISTEN/NOTIFY, or polling the
    /// history of MariaDB or a SQLite file. Nothing to do for an in-memory
    /// database. `hearing` says how soon this process must hear: an
    /// applier must hear a cancel at once; the other processes can wait a
    /// little, which spares a polled server most of their reads.
    pub fn watch_other_processes(&self, hearing: Hearing) -> Result<(), StoreError> {
        if self.inner.location == DatabaseLocation::Memory {
            return Ok(());
        }
        let (location, events) = (self.inner.location.clone(), self.inner.events.clone());
        std::thread::Builder::new()
            .name("store-history-tail".into())
            .spawn(move || tail::history_tail_loop(location, events, hearing))
            .map_err(|e| StoreError::Invalid(format!("cannot start the history tail: {e}")))?;
        Ok(())
    }

    /// A receiver of committed changes. A lagging receiver gets
    /// `RecvError::Lagged` and must re-read what it cares about.
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.inner.events.all.subscribe()
    }

    /// The plans that became CANCELLING, on a lane no flood of other
    /// changes overflows (they are announced in [`Store::subscribe`]'s
    /// stream too).
    pub fn subscribe_cancels(&self) -> broadcast::Receiver<Uuid> {
        self.inner.events.cancels.subscribe()
    }

    fn send(&self, msg: WriterMsg) -> Result<(), StoreError> {
        Self::send_to(&self.inner.writer, msg)
    }

    fn send_to(writer: &Mutex<mpsc::Sender<WriterMsg>>, msg: WriterMsg) -> Result<(), StoreError> {
        writer
            .lock()
            .expect("writer sender lock")
            .send(msg)
            .map_err(|_| StoreError::Closed)
    }

    /// Runs `f` in its own savepoint inside the next commit group and answers
    /// once that group has committed.
    pub(crate) async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnMut(&Conn, &mut Vec<StoreEvent>) -> Result<R, StoreError> + Send + 'static,
    {
        self.enqueue(f).await.map_err(|_| StoreError::Closed)?
    }

    /// Holds this process's writer until the guard is dropped: every write
    /// queued meanwhile waits, as behind a long queue under heavy load.
    /// For tests that need a write to be stuck (feature `test-hooks`).
    #[cfg(feature = "test-hooks")]
    pub fn hold_writes(&self) -> WritesHeld {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        drop(self.enqueue(move |_, _| {
            // Returns when the guard's sender is dropped.
            let _ = wait.recv();
            Ok(())
        }));
        WritesHeld(release)
    }

    /// Queues a write now and returns where its answer will arrive. Writes
    /// are applied in the order they are queued, so a caller can queue
    /// several and await them later.
    pub(crate) fn enqueue<R, F>(&self, f: F) -> oneshot::Receiver<Result<R, StoreError>>
    where
        R: Send + 'static,
        F: FnMut(&Conn, &mut Vec<StoreEvent>) -> Result<R, StoreError> + Send + 'static,
    {
        let (job, rx) = write_job(f);
        // If the writer is gone, `tx` is dropped with the job and the
        // receiver reports the store closed.
        let _ = self.send(WriterMsg::Write(job));
        rx
    }

    /// Like [`Store::write`], for a write that first inserts many rows
    /// nobody can see yet and only then needs the writers' lock, which `f`
    /// takes with [`Conn::lock_writers`] before its first history row or
    /// compare-and-set. On PostgreSQL it runs alone in its transaction on
    /// the bulk writer's connection, so the lock is held only for the end
    /// of it; on SQLite it is an ordinary write.
    pub(crate) async fn write_bulk<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnMut(&Conn, &mut Vec<StoreEvent>) -> Result<R, StoreError> + Send + 'static,
    {
        let Some(bulk) = &self.inner.bulk_writer else {
            return self.write(f).await;
        };
        let (job, rx) = write_job(f);
        Self::send_to(bulk, WriterMsg::Write(job))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Copies the WAL into the database and empties it (SQLite files; a
    /// no-op elsewhere): a clean stop leaves no WAL file to replay.
    pub async fn truncate_wal(&self) -> Result<(), StoreError> {
        let DatabaseLocation::File(path) = self.inner.location.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || wal::checkpoint(&path, "TRUNCATE"))
            .await
            .map_err(|e| StoreError::Database(e.to_string()))?
    }

    /// Hands back the page caches of SQLite connections that are idle now
    /// (after big work, when nothing runs): up to 2 MiB per connection that
    /// would otherwise stay for the life of the process. A no-op on
    /// PostgreSQL, whose caches live in the server.
    pub async fn release_memory(&self) {
        if !matches!(self.inner.location, DatabaseLocation::File(_)) {
            return;
        }
        let (tx, rx) = oneshot::channel();
        let shrink = |conn: &Conn| {
            let _ = conn.batch("PRAGMA shrink_memory");
        };
        if self
            .send(WriterMsg::Read(Box::new(move |conn| {
                shrink(conn);
                let _ = tx.send(());
            })))
            .is_ok()
        {
            let _ = rx.await;
        }
        let inner = self.inner.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(pool) = &inner.readers {
                // Taken out while they shrink: a read meanwhile opens another.
                let idle = std::mem::take(&mut *pool.idle.lock().expect("read pool lock"));
                for conn in &idle {
                    shrink(conn);
                }
                let mut back = pool.idle.lock().expect("read pool lock");
                for conn in idle {
                    if back.len() < 8 {
                        back.push(conn);
                    }
                }
            }
        })
        .await;
    }

    /// Runs a read-only query on a pooled connection. A pooled connection
    /// found dead under the query (the server restarted, or failed over,
    /// since it was last used) is replaced and the query run again once:
    /// the first requests after the database is back do not fail.
    pub(crate) async fn read<R, F>(&self, mut f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnMut(&Conn) -> Result<R, StoreError> + Send + 'static,
    {
        let Some(pool) = &self.inner.readers else {
            let (tx, rx) = oneshot::channel();
            self.send(WriterMsg::Read(Box::new(move |conn| {
                let _ = tx.send(f(conn));
            })))?;
            return rx.await.map_err(|_| StoreError::Closed)?;
        };
        let permit = pool
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let pool = inner.readers.as_ref().expect("checked above");
            let open = || {
                pool.location
                    .open_reader()
                    .map(|c| c.expect("only an in-memory database has no readers"))
            };
            let pooled = pool.idle.lock().expect("read pool lock").pop();
            let (mut conn, reused) = match pooled.filter(Conn::is_usable) {
                Some(c) => (c, true),
                None => (open()?, false),
            };
            let mut result = f(&conn);
            if result.is_err() && reused && !conn.is_usable() {
                conn = open()?;
                result = f(&conn);
            }
            if conn.is_usable() {
                let mut idle = pool.idle.lock().expect("read pool lock");
                if idle.len() < 8 {
                    idle.push(conn);
                }
            }
            result
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("read task failed: {e}")))?
    }
}

/// Timestamps are stored as microseconds since the epoch.
pub(crate) fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

pub(crate) fn now_micros() -> i64 {
    to_micros(Utc::now())
}
