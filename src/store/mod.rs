//! The store: the single source of truth.
//!
//! Every state change is one transaction that does a compare-and-set on the
//! expected current state (`UPDATE .. WHERE uuid = ? AND state = ?`), writes
//! a history row, and applies its cascades. Zero rows updated is a lost race
//! and comes back as [`StoreError::Conflict`], never as a silent overwrite.
//!
//! All writes go through one writer thread that owns the write connection and
//! commits in groups: each request runs inside its own SAVEPOINT, so a
//! failing request leaves no trace, and everything queued while a commit was
//! in flight shares the next commit. A request is answered only after its
//! commit, so "Ok" always means durable. After the commit the writer
//! publishes [`StoreEvent`]s; they only wake other components up, who then
//! re-read the database.
//!
//! Reads use a small pool of read connections (WAL mode lets them run beside
//! the writer). An in-memory database has a single connection, so its reads
//! go through the writer thread too.

mod operations;
mod schema;

pub use operations::*;

use crate::core::{ActionPlanState, ActionState, AuditState, UnknownState};
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use tokio::sync::{broadcast, oneshot};
use uuid::Uuid;

/// Errors of the store. Conflicts and illegal transitions are expected
/// outcomes that callers turn into API errors; `Database` is unexpected.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {id} could not be found")]
    NotFound { kind: &'static str, id: String },
    /// The compare-and-set lost: the row is not in the state the caller expected.
    #[error("{kind} {id} is {current}, expected {expected}")]
    Conflict {
        kind: &'static str,
        id: String,
        expected: String,
        current: String,
    },
    #[error("State transition not allowed: ({from} -> {to})")]
    IllegalTransition { from: String, to: String },
    /// An action may only start while its plan is ONGOING: this is how a
    /// cancel written by the API stops the applier from starting anything.
    #[error("action plan {plan} is {state}; no action may start")]
    PlanNotRunning { plan: Uuid, state: ActionPlanState },
    /// The plan's lease belongs to another applier now: this one must not
    /// start anything more in it.
    #[error("action plan {plan} is run by applier {owner} now")]
    NotOwner { plan: Uuid, owner: String },
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the store has shut down")]
    Closed,
}

impl From<UnknownState> for StoreError {
    fn from(e: UnknownState) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// A committed change, published after the commit. Carries just enough for
/// a listener to decide whether to re-read the database.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreEvent {
    PlanState {
        uuid: Uuid,
        state: ActionPlanState,
    },
    ActionState {
        plan: Uuid,
        uuid: Uuid,
        state: ActionState,
    },
    /// Many actions of one plan moved to `state` at once (a cancel, a delete).
    ActionsMoved {
        plan: Uuid,
        state: ActionState,
        count: usize,
    },
    AuditState {
        uuid: Uuid,
        state: AuditState,
    },
}

/// How hard SQLite pushes each commit to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// WAL with `synchronous=NORMAL`: a commit survives a crash of watcherd;
    /// the last commits may be lost on power loss. SQLite's recommended mode for WAL.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit group is fsynced.
    Full,
}

type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A write request. Called with `None` when its group could not begin a
/// transaction: it then answers with an error without running.
type WriteJob = Box<dyn FnOnce(Option<(&Connection, &mut Vec<StoreEvent>)>) -> Completion + Send>;
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

enum WriterMsg {
    Write(WriteJob),
    Read(ReadJob),
}

/// Largest number of requests that share one commit.
const MAX_GROUP: usize = 512;

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Mutex<mpsc::Sender<WriterMsg>>,
    readers: Option<ReadPool>,
    events: broadcast::Sender<StoreEvent>,
}

struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// Where the database lives, parsed from a `--database` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    Memory,
    File(PathBuf),
}

impl DatabaseLocation {
    /// Accepts `sqlite::memory:`, `sqlite://PATH`, `sqlite:PATH` or a bare path.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        if url == "sqlite::memory:" || url == ":memory:" {
            return Ok(DatabaseLocation::Memory);
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Err(StoreError::Invalid(
                "PostgreSQL is not supported by this build yet; use a SQLite file \
                 (sqlite:///path/to/watcher.db) or sqlite::memory:"
                    .into(),
            ));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() {
            return Err(StoreError::Invalid("empty database path".into()));
        }
        Ok(DatabaseLocation::File(PathBuf::from(path)))
    }
}

fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // Pages come from the mapping instead of one read() each.
    conn.pragma_update(None, "mmap_size", 256 * 1024 * 1024)?;
    Ok(conn)
}

fn configure_writer(conn: &Connection, durability: Durability) -> Result<(), StoreError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Checkpoints copy the WAL into the database and fsync it: tens of
    // milliseconds that would land on whichever commit crossed the
    // threshold (a cancel, say). The checkpointer thread does them instead.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(())
}

/// Copies the WAL back into the database off the write path, every
/// `CHECKPOINT_EVERY` or sooner when the writer reports a large group.
fn checkpointer_loop(path: PathBuf, wake: mpsc::Receiver<()>) {
    let conn = match open_connection(&path, OpenFlags::default()) {
        Ok(c) => c,
        Err(e) => return tracing::error!(error = %e, "checkpointer cannot open the database"),
    };
    loop {
        match wake.recv_timeout(CHECKPOINT_EVERY) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    for (i, sql) in schema::MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version > current {
            // Several processes may start on one file at once: the write
            // lock is taken first and the version read again under it.
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let done: i64 = conn.query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                [],
                |r| r.get(0),
            )?;
            if done >= version {
                conn.execute_batch("COMMIT")?;
                continue;
            }
            conn.execute_batch(&format!(
                "{sql}; INSERT INTO schema_version VALUES ({version}); COMMIT;"
            ))
            .inspect_err(|_| {
                let _ = conn.execute_batch("ROLLBACK");
            })?;
        }
    }
    Ok(())
}

/// seq, entity, uuid, plan, new state: what an event needs of a history row.
type TailRow = (i64, String, String, Option<String>, String);

/// Turns history rows written by other processes into events, so that a
/// process sharing the database file hears of their changes within
/// `every` (there is no cross-process notification in SQLite). Its own
/// changes come round again too; every listener is idempotent. Runs for
/// the life of the process.
fn history_tail_loop(
    path: PathBuf,
    events: broadcast::Sender<StoreEvent>,
    every: std::time::Duration,
) {
    let conn = match open_connection(&path, OpenFlags::SQLITE_OPEN_READ_ONLY) {
        Ok(c) => c,
        Err(e) => return tracing::error!(error = %e, "history tail cannot open the database"),
    };
    let mut last: i64 = conn
        .query_row("SELECT COALESCE(MAX(seq), 0) FROM state_history", [], |r| {
            r.get(0)
        })
        .unwrap_or(0);
    loop {
        std::thread::sleep(every);
        let rows: Result<Vec<TailRow>, _> = conn
            .prepare_cached(
                "SELECT seq, entity, uuid, action_plan_uuid, to_state FROM state_history \
                 WHERE seq > ?1 ORDER BY seq LIMIT 10000",
            )
            .and_then(|mut st| {
                st.query_map([last], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect()
            });
        let Ok(rows) = rows else { continue };
        for (seq, entity, uuid, plan, to) in rows {
            last = seq;
            let Ok(uuid) = Uuid::parse_str(&uuid) else {
                continue;
            };
            let event = match entity.as_str() {
                "action_plan" => to
                    .parse()
                    .ok()
                    .map(|state| StoreEvent::PlanState { uuid, state }),
                "audit" => to
                    .parse()
                    .ok()
                    .map(|state| StoreEvent::AuditState { uuid, state }),
                "action" => match (plan.and_then(|p| Uuid::parse_str(&p).ok()), to.parse().ok()) {
                    (Some(plan), Some(state)) => {
                        Some(StoreEvent::ActionState { plan, uuid, state })
                    }
                    _ => None,
                },
                _ => None,
            };
            if let Some(e) = event {
                let _ = events.send(e);
            }
        }
    }
}

impl Store {
    /// Opens (creating if needed) the database and starts the writer thread.
    pub fn open(location: &DatabaseLocation, durability: Durability) -> Result<Store, StoreError> {
        let (conn, readers) = match location {
            DatabaseLocation::Memory => (Connection::open_in_memory()?, None),
            DatabaseLocation::File(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Invalid(format!(
                            "cannot create the database directory {}: {e}",
                            dir.display()
                        ))
                    })?;
                }
                let conn = open_connection(path, OpenFlags::default())?;
                (
                    conn,
                    Some(ReadPool {
                        path: path.clone(),
                        idle: Mutex::new(Vec::new()),
                    }),
                )
            }
        };
        configure_writer(&conn, durability)?;
        migrate(&conn)?;
        let (events, _) = broadcast::channel(4096);
        let (tx, rx) = mpsc::channel::<WriterMsg>();
        let events_tx = events.clone();
        // The checkpointer stops when the writer (holding its sender) stops.
        let (wake_tx, wake_rx) = mpsc::channel::<()>();
        if let DatabaseLocation::File(path) = location {
            let path = path.clone();
            std::thread::Builder::new()
                .name("store-checkpointer".into())
                .spawn(move || checkpointer_loop(path, wake_rx))
                .map_err(|e| {
                    StoreError::Invalid(format!("cannot start the checkpointer thread: {e}"))
                })?;
        }
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(conn, rx, events_tx, wake_tx))
            .map_err(|e| StoreError::Invalid(format!("cannot start the writer thread: {e}")))?;
        Ok(Store {
            inner: Arc::new(Inner {
                writer: Mutex::new(tx),
                readers,
                events,
            }),
        })
    }

    /// Hears of changes other processes make to the same database file
    /// (several watcherd processes on one machine), polling its history
    /// every `every`. Nothing to do for an in-memory database.
    pub fn watch_other_processes(&self, every: std::time::Duration) -> Result<(), StoreError> {
        let Some(readers) = &self.inner.readers else {
            return Ok(());
        };
        let (path, events) = (readers.path.clone(), self.inner.events.clone());
        std::thread::Builder::new()
            .name("store-history-tail".into())
            .spawn(move || history_tail_loop(path, events, every))
            .map_err(|e| StoreError::Invalid(format!("cannot start the history tail: {e}")))?;
        Ok(())
    }

    /// A receiver of committed changes. A lagging receiver gets
    /// `RecvError::Lagged` and must re-read what it cares about.
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.inner.events.subscribe()
    }

    fn send(&self, msg: WriterMsg) -> Result<(), StoreError> {
        self.inner
            .writer
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
        F: FnOnce(&Connection, &mut Vec<StoreEvent>) -> Result<R, StoreError> + Send + 'static,
    {
        self.enqueue(f).await.map_err(|_| StoreError::Closed)?
    }

    /// Queues a write now and returns where its answer will arrive. Writes
    /// are applied in the order they are queued, so a caller can queue
    /// several and await them later.
    pub(crate) fn enqueue<R, F>(&self, f: F) -> oneshot::Receiver<Result<R, StoreError>>
    where
        R: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<StoreEvent>) -> Result<R, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: WriteJob = Box::new(move |ctx| {
            let result = match ctx {
                Some((conn, events)) => run_in_savepoint(conn, events, f),
                None => Err(StoreError::Invalid(
                    "the database could not begin a transaction".into(),
                )),
            };
            Box::new(move |commit: Result<(), StoreError>| {
                let _ = tx.send(commit.and(result));
            })
        });
        // If the writer is gone, `tx` is dropped with the job and the
        // receiver reports the store closed.
        let _ = self.send(WriterMsg::Write(job));
        rx
    }

    /// Runs a read-only query on a pooled connection.
    pub(crate) async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let Some(_) = &self.inner.readers else {
            let (tx, rx) = oneshot::channel();
            self.send(WriterMsg::Read(Box::new(move |conn| {
                let _ = tx.send(f(conn));
            })))?;
            return rx.await.map_err(|_| StoreError::Closed)?;
        };
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pool = inner.readers.as_ref().expect("checked above");
            let conn = pool.idle.lock().expect("read pool lock").pop();
            let conn = match conn {
                Some(c) => c,
                None => open_connection(
                    &pool.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?,
            };
            let result = f(&conn);
            let mut idle = pool.idle.lock().expect("read pool lock");
            if idle.len() < 8 {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("read task failed: {e}")))?
    }
}

fn run_in_savepoint<R>(
    conn: &Connection,
    events: &mut Vec<StoreEvent>,
    f: impl FnOnce(&Connection, &mut Vec<StoreEvent>) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    conn.execute_batch("SAVEPOINT request")?;
    let mut local = Vec::new();
    match f(conn, &mut local) {
        Ok(r) => {
            conn.execute_batch("RELEASE request")?;
            events.extend(local);
            Ok(r)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO request; RELEASE request")?;
            Err(e)
        }
    }
}

fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<WriterMsg>,
    events: broadcast::Sender<StoreEvent>,
    checkpoint: mpsc::Sender<()>,
) {
    let mut since_checkpoint = 0usize;
    let mut pending: Vec<WriterMsg> = Vec::new();
    while let Ok(first) = rx.recv() {
        pending.push(first);
        while pending.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(m) => pending.push(m),
                Err(_) => break,
            }
        }
        let mut completions: Vec<Completion> = Vec::with_capacity(pending.len());
        let mut batch_events = Vec::new();
        let began = conn.execute_batch("BEGIN IMMEDIATE");
        for msg in pending.drain(..) {
            match msg {
                WriterMsg::Read(job) => job(&conn),
                WriterMsg::Write(job) => {
                    if let Err(e) = &began {
                        tracing::error!(error = %e, "cannot begin a transaction");
                        job(None)(Ok(()));
                    } else {
                        completions.push(job(Some((&conn, &mut batch_events))));
                    }
                }
            }
        }
        if began.is_err() {
            continue;
        }
        match conn.execute_batch("COMMIT") {
            Ok(()) => {
                since_checkpoint += completions.len();
                if since_checkpoint >= 2_000 {
                    since_checkpoint = 0;
                    let _ = checkpoint.send(());
                }
                for done in completions {
                    done(Ok(()));
                }
                for ev in batch_events {
                    let _ = events.send(ev);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "commit failed; the whole group is rolled back");
                let _ = conn.execute_batch("ROLLBACK");
                for done in completions {
                    done(Err(StoreError::Invalid(format!("commit failed: {e}"))));
                }
            }
        }
    }
}

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
}

impl Heartbeat {
    pub fn new(store: Store, name: &'static str, host: String) -> Heartbeat {
        Heartbeat {
            store,
            name,
            host,
            last: None,
        }
    }

    pub async fn beat(&mut self) {
        if self.last.is_some_and(|t| t.elapsed() < HEARTBEAT_EVERY) {
            return;
        }
        match self.store.heartbeat(self.name, &self.host).await {
            Ok(()) => self.last = Some(std::time::Instant::now()),
            Err(e) => tracing::warn!(service = self.name, error = %e, "could not record heartbeat"),
        }
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
