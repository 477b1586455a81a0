//! The store: the single source of truth.
//!
//! Every state change is one transaction that does a compare-and-set on the
//! expected current state (`UPDATE .. WHERE uuid = ? AND state = ?`), writes
//! a history row, and applies its cascades. Zero rows updated is a lost race
//! and comes back as [`StoreError::Conflict`], never as a silent overwrite.
//!
//! Two databases: a SQLite file (embedded, or several processes on one
//! machine) and PostgreSQL (several machines). The queries are written once
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

mod pg_connect;
mod schema;
pub(crate) mod sql;

// The queries and state changes, by noun; each public method is one
// transaction.
mod actions;
mod audits;
mod catalogue;
mod history;
mod journal;
mod listing;
mod plans;
mod presence;
mod purge;
mod services;
mod sim_cloud;
mod templates;

pub use actions::*;
pub use audits::*;
pub use history::*;
pub use journal::*;
pub use listing::*;
pub use plans::*;
pub use presence::*;
pub use purge::*;
pub use sim_cloud::*;
pub use templates::*;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::OpenFlags;
use sql::{args, Conn, Dialect, PgConn};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, oneshot, Semaphore};
use uuid::Uuid;
use watcher_core::backoff::{Backoff, LogGate};
use watcher_core::secret::redact_url;
use watcher_core::{ActionPlanState, ActionState, AuditState, EntityState, UnknownState};

/// Errors of the store. Conflicts and illegal transitions are expected
/// outcomes that callers turn into API errors; `Unavailable` passes when the
/// database is back; `Database` is unexpected.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {id} could not be found")]
    NotFound { kind: &'static str, id: String },
    /// The compare-and-set lost: the row is not in the state the caller expected.
    #[error("{} {id} is {current}, expected {expected}", expected.entity().kind())]
    Conflict {
        id: String,
        expected: EntityState,
        current: EntityState,
    },
    /// A name that must be unique is taken by a live record.
    #[error("{kind} name {name} is taken")]
    NameTaken { kind: &'static str, name: String },
    /// Another applier took the plan over, or it finished, before this
    /// takeover's compare-and-set.
    #[error("action plan {plan} was taken over or finished meanwhile (it was leased to {holder})")]
    LeaseLost { plan: Uuid, holder: String },
    #[error("State transition not allowed: ({from} -> {to})")]
    IllegalTransition { from: EntityState, to: EntityState },
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
    /// The database cannot be reached (PostgreSQL restarting, the network
    /// cut) or is too busy: nothing was written; retry later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the store has shut down")]
    Closed,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
        match e.sqlite_error_code() {
            Some(DatabaseBusy | DatabaseLocked) => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Database(e.to_string()),
        }
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        let Some(db) = e.as_db_error() else {
            // No answer from the server: the connection is gone or never
            // came. Anything else (a value that would not encode, say) is ours.
            let text = with_causes(&e);
            let mut cause: Option<&dyn std::error::Error> = Some(&e);
            let mut io = false;
            while let Some(c) = cause {
                io |= c.is::<std::io::Error>();
                cause = c.source();
            }
            return if e.is_closed() || io || text.contains("connect") || text.contains("timeout") {
                StoreError::Unavailable(text)
            } else {
                StoreError::Database(text)
            };
        };
        let code = db.code().code();
        // 08: connection exceptions; 57P0x: the server is shutting down or
        // starting; 55P03: a lock not had in time; 53: out of resources.
        if code.starts_with("08")
            || code.starts_with("57P")
            || code == "55P03"
            || code.starts_with("53")
        {
            StoreError::Unavailable(format!("{} ({code})", db.message()))
        } else {
            StoreError::Database(format!("{} ({code})", db.message()))
        }
    }
}

/// An error and what caused it ("error connecting to server: Connection
/// refused"): the client's own message alone does not say what to fix.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
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

/// How hard SQLite pushes each commit to disk (PostgreSQL follows its
/// server's `synchronous_commit`).
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
/// A write request. Called with `Err` when its group could not begin a
/// transaction: it then answers with that error without running.
type WriteJob =
    Box<dyn FnOnce(Result<(&Conn, &mut Vec<StoreEvent>), StoreError>) -> Completion + Send>;
type ReadJob = Box<dyn FnOnce(&Conn) + Send>;

enum WriterMsg {
    Write(WriteJob),
    Read(ReadJob),
}

/// Largest number of requests that share one commit.
const MAX_GROUP: usize = 512;

/// The PostgreSQL channel a commit that changed a state notifies; every
/// process listens on it and re-reads the history.
const HISTORY_CHANNEL: &str = "watcher_history";
/// PostgreSQL: the uuid of each plan that became CANCELLING, sent with the
/// commit, so that other processes hear of a cancel at once even while
/// their history tail is thousands of rows behind under load.
const CANCEL_CHANNEL: &str = "watcher_cancel";

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

/// Where committed changes are announced: every change on one channel, and
/// each plan's CANCELLING again on a lane of its own. Under heavy load the
/// first overflows (every action's change is an event) and a receiver
/// must re-read the database; a cancel must not wait for that.
#[derive(Clone)]
struct Announcer {
    all: broadcast::Sender<StoreEvent>,
    cancels: broadcast::Sender<Uuid>,
}

impl Announcer {
    fn new() -> Announcer {
        Announcer {
            all: broadcast::channel(4096).0,
            cancels: broadcast::channel(1024).0,
        }
    }

    fn announce(&self, ev: StoreEvent) {
        if let StoreEvent::PlanState {
            uuid,
            state: ActionPlanState::Cancelling,
        } = ev
        {
            let _ = self.cancels.send(uuid);
        }
        let _ = self.all.send(ev);
    }
}

struct ReadPool {
    location: DatabaseLocation,
    idle: Mutex<Vec<Conn>>,
    /// Bounds the read connections open at once (PostgreSQL counts every one
    /// against `max_connections`).
    permits: Arc<Semaphore>,
}

impl Drop for ReadPool {
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|e| e.into_inner()));
        // PostgreSQL's client blocks while it closes a connection, which
        // it must not do on the async thread that dropped the last handle.
        if idle.iter().any(|c| c.dialect() == Dialect::Postgres) {
            let _ = std::thread::Builder::new()
                .name("store-close".into())
                .spawn(move || drop(idle));
        }
    }
}

/// Where the database lives, parsed from a `--database` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    Memory,
    File(PathBuf),
    /// A `postgres://` URL, as libpq takes it.
    Postgres(PostgresUrl),
}

/// A PostgreSQL URL read once: its connection settings and TLS
/// configuration (which reads the system's CA bundle) are built when the
/// URL is parsed and shared by every connection opened from it.
#[derive(Clone)]
pub struct PostgresUrl {
    url: String,
    target: Arc<pg_connect::PgTarget>,
}

impl PostgresUrl {
    /// The URL as given (with its password: not for messages).
    pub fn as_str(&self) -> &str {
        &self.url
    }
}

impl PartialEq for PostgresUrl {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
    }
}

impl Eq for PostgresUrl {}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(&self.url))
    }
}

impl DatabaseLocation {
    /// Accepts `sqlite::memory:`, `sqlite://PATH`, `sqlite:PATH`, a bare
    /// path, or `postgres://user@host:port/dbname` (`postgresql://` too).
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        if url == "sqlite::memory:" || url == ":memory:" {
            return Ok(DatabaseLocation::Memory);
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseLocation::Postgres(PostgresUrl {
                target: Arc::new(pg_connect::parse(url)?),
                url: url.to_string(),
            }));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            if scheme != "sqlite" {
                return Err(StoreError::Invalid(format!(
                    "database URL {}: the scheme '{scheme}' is not supported; use \
                     sqlite:///PATH, sqlite::memory: or postgres://USER@HOST[:PORT]/DATABASE",
                    redact_url(url)
                )));
            }
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

    fn dialect(&self) -> Dialect {
        match self {
            DatabaseLocation::Postgres(_) => Dialect::Postgres,
            _ => Dialect::Sqlite,
        }
    }

    /// A connection for reading; `None` for an in-memory database, whose
    /// only connection is the writer's.
    fn open_reader(&self) -> Result<Option<Conn>, StoreError> {
        match self {
            DatabaseLocation::Memory => Ok(None),
            DatabaseLocation::File(path) => Ok(Some(Conn::Sqlite(open_sqlite(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?))),
            DatabaseLocation::Postgres(url) => {
                let conn = Conn::Postgres(Box::new(open_postgres(url)?));
                // Every read planned for its arguments and the tables as
                // they are now. A connection lives for days while the
                // history grows from nothing to millions of rows, and the
                // generic plan PostgreSQL caches for a prepared statement
                // after five runs is kept until the table is next analyzed:
                // the history tail's page, planned as a scan and a sort on
                // an empty table, took 10-100 ms at 128,000 rows, in every
                // process, on every NOTIFY. The writer keeps generic plans:
                // its statements look rows up by key, and planning each one
                // cost the appliers a quarter of their throughput.
                conn.batch("SET plan_cache_mode = force_custom_plan")?;
                Ok(Some(conn))
            }
        }
    }

    /// The connection of the writer thread.
    fn open_writer(&self, durability: Durability) -> Result<Conn, StoreError> {
        match self {
            DatabaseLocation::Memory => {
                let conn = rusqlite::Connection::open_in_memory()?;
                conn.set_prepared_statement_cache_capacity(128);
                configure_sqlite_writer(&conn, durability)?;
                Ok(Conn::Sqlite(conn))
            }
            DatabaseLocation::File(path) => {
                let conn = open_sqlite(path, OpenFlags::default())?;
                check_integrity(&conn, path)?;
                configure_sqlite_writer(&conn, durability)?;
                Ok(Conn::Sqlite(conn))
            }
            DatabaseLocation::Postgres(url) => {
                let conn = Conn::Postgres(Box::new(open_postgres(url)?));
                // A writer stuck inside a transaction (its process stopped,
                // not killed) must not hold the write lock for ever.
                conn.batch(
                    "SET idle_in_transaction_session_timeout = '30s'; SET lock_timeout = '20s'",
                )?;
                Ok(conn)
            }
        }
    }
}

fn open_sqlite(path: &Path, flags: OpenFlags) -> Result<rusqlite::Connection, StoreError> {
    let conn = rusqlite::Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(128);
    // No memory-mapped reads: a mapped file that shrinks, or a disk that
    // fails under the mapping, kills the process with SIGBUS instead of
    // failing one query. read() costs a little more per page.
    conn.pragma_update(None, "mmap_size", 0)?;
    // After a checkpoint has emptied the WAL, the file is cut back to this.
    conn.pragma_update(None, "journal_size_limit", WAL_LIMIT_BYTES as i64)?;
    Ok(conn)
}

fn open_postgres(url: &PostgresUrl) -> Result<PgConn, StoreError> {
    let client = url.target.connect().map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot connect to PostgreSQL at {}: {}; is the server up, and does the URL \
             name the right host, port, user and database?",
            redact_url(&url.url),
            with_causes(&e)
        ))
    })?;
    Ok(PgConn::new(client))
}

/// `PRAGMA quick_check` when the writer opens the file: a database
/// damaged on disk stops watcherd at start, naming the file, instead of
/// answering some requests with 500s later.
fn check_integrity(conn: &rusqlite::Connection, path: &Path) -> Result<(), StoreError> {
    let damaged = |detail: String| {
        StoreError::Corrupt(format!(
            "the database file {} is damaged ({detail}); restore it from a backup, or move it \
             aside to start with an empty database",
            path.display()
        ))
    };
    let mut stmt = conn
        .prepare("PRAGMA quick_check(5)")
        .map_err(|e| damaged(e.to_string()))?;
    let problems: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<_, _>>())
        .map_err(|e| damaged(e.to_string()))?;
    if problems != ["ok"] {
        return Err(damaged(problems.join("; ")));
    }
    Ok(())
}

fn configure_sqlite_writer(
    conn: &rusqlite::Connection,
    durability: Durability,
) -> Result<(), StoreError> {
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
/// `CHECKPOINT_EVERY` or sooner when the writer reports a large group; and
/// once the WAL has not changed for a whole interval (writes paused),
/// truncates it to nothing, so that a burst leaves no large file behind.
fn checkpointer_loop(path: PathBuf, wake: mpsc::Receiver<()>) {
    let conn = match open_sqlite(&path, OpenFlags::default()) {
        Ok(c) => c,
        Err(e) => return tracing::error!(error = %e, "checkpointer cannot open the database"),
    };
    // A TRUNCATE holds new writers while it waits for readers: never long.
    let _ = conn.busy_timeout(Duration::from_millis(200));
    let mut last_seen = None;
    let mut gate = LogGate::default();
    loop {
        let mode = match wake.recv_timeout(CHECKPOINT_EVERY) {
            Ok(()) => "PASSIVE",
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let now = wal_state(&path);
                let quiet = now.0 > 0 && last_seen == Some(now);
                last_seen = Some(now);
                if quiet {
                    "TRUNCATE"
                } else if now.0 > 0 {
                    "PASSIVE"
                } else {
                    continue;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        match conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(())) {
            Ok(()) => gate.reset(),
            Err(e) => {
                if let Some(held_back) = gate.admit(&e.to_string(), std::time::Instant::now()) {
                    tracing::warn!(error = %e, not_logged = held_back, "WAL checkpoint failed; will retry");
                }
            }
        }
    }
}

/// Size and modification time of the WAL file: unchanged means unwritten.
fn wal_state(path: &Path) -> (u64, Option<std::time::SystemTime>) {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    match std::fs::metadata(PathBuf::from(wal)) {
        Ok(m) => (m.len(), m.modified().ok()),
        Err(_) => (0, None),
    }
}

const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// The WAL file is kept under this size (`docs/operations.md`).
pub const WAL_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// Past this, the writer itself checkpoints (RESTART) before its next
/// group, waiting for readers: a burst cannot outrun the checkpointer.
const WAL_HIGH_WATER_BYTES: u64 = 48 * 1024 * 1024;

/// A blocking checkpoint (`RESTART` or `TRUNCATE`) on a connection of its
/// own (the writer's may hold statements that would make it fail), waiting
/// up to the busy timeout for readers; an error if it could not complete.
fn checkpoint(path: &Path, mode: &str) -> Result<(), StoreError> {
    let conn = open_sqlite(path, OpenFlags::default())?;
    // A reader in the middle of a query, or the checkpointer thread at
    // work, makes one attempt give up: they finish within moments.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let busy: i64 =
            conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| r.get(0))?;
        if busy == 0 {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(StoreError::Unavailable(format!(
                "the {mode} checkpoint of {} could not finish: readers held the WAL for 5 s",
                path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Size of the WAL file of the database at `path` (0 when there is none).
pub fn wal_bytes(path: &Path) -> u64 {
    wal_state(path).0
}

/// Applies the migrations not applied yet, all in one write transaction:
/// several processes may start on one database at once, and the write lock
/// makes the second wait and then find the work done.
fn migrate(conn: &Conn) -> Result<(), StoreError> {
    let dialect = conn.dialect();
    conn.batch(&dialect.begin_write())?;
    let result = (|| {
        conn.batch("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
        let current: i64 = conn
            .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", ())?
            .get(0)?;
        for (i, sql) in schema::MIGRATIONS.iter().enumerate() {
            let version = i as i64 + 1;
            if version > current {
                match dialect {
                    Dialect::Sqlite => conn.batch(sql)?,
                    Dialect::Postgres => conn.batch(&schema::for_postgres(sql))?,
                }
                conn.execute("INSERT INTO schema_version VALUES (?1)", args![version])?;
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => conn.batch("COMMIT"),
        Err(e) => {
            let _ = conn.batch("ROLLBACK");
            Err(e)
        }
    }
}

/// How often a process polls a shared SQLite file for other processes'
/// changes (SQLite has no cross-process notification).
const SQLITE_TAIL_EVERY: Duration = Duration::from_millis(50);
/// How often a process re-reads PostgreSQL's history although no
/// notification came: the safety net for one lost with a connection.
const POSTGRES_TAIL_EVERY: Duration = Duration::from_secs(2);
/// While history keeps coming on PostgreSQL, the least time between two
/// reads of it: every commit NOTIFYs every process, and while appliers
/// commit hundreds of times a second a read per NOTIFY in each process
/// is database work for a row or two. Cancels do not wait for it: their
/// own channel ends the wait at once.
const POSTGRES_TAIL_GAP: Duration = Duration::from_millis(10);

/// Turns history rows written by other processes into events, so that a
/// process sharing the database hears of their changes: within
/// [`SQLITE_TAIL_EVERY`] on SQLite, on the commit's NOTIFY on PostgreSQL.
/// Its own changes come round again too; every listener is idempotent.
/// Runs for the life of the process, reconnecting as needed.
fn history_tail_loop(location: DatabaseLocation, events: Announcer) {
    let mut last: Option<i64> = None;
    let mut conn: Option<Conn> = None;
    // While the database is away: 1 s doubling to 10 s between tries, the
    // same error said once a minute.
    let mut failures = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
    let failed = |failures: &mut Backoff, what: &str, e: &StoreError| {
        let r = failures.failed(&e.to_string(), std::time::Instant::now());
        if let Some(held_back) = r.log {
            tracing::warn!(error = %e, not_logged = held_back, retry_in = ?r.wait, "history tail cannot {what}; retrying");
        }
        std::thread::sleep(r.wait);
    };
    loop {
        if conn.as_ref().is_none_or(|c| !c.is_usable()) {
            conn = match open_tail(&location) {
                Ok(c) => Some(c),
                Err(e) => {
                    failed(&mut failures, "open the database", &e);
                    continue;
                }
            };
        }
        let c = conn.as_ref().expect("opened above");
        let start = match last {
            Some(l) => l,
            None => match c.query_one("SELECT COALESCE(MAX(seq), 0) FROM state_history", ()) {
                Ok(row) => *last.insert(row.get(0).unwrap_or(0)),
                Err(e) => {
                    failed(&mut failures, "read the history", &e);
                    continue;
                }
            },
        };
        failures.succeeded();
        // Cancels first, between pages of history: they must not wait
        // behind a backlog of other changes.
        let (mut wait, mut idle) = (POSTGRES_TAIL_GAP, false);
        match publish_history_after(c, start, &events) {
            Ok(Some((seq, rows))) => {
                last = Some(seq);
                if rows == TAIL_PAGE {
                    wait = Duration::ZERO; // a backlog: read on at once
                }
            }
            Ok(None) => (wait, idle) = (POSTGRES_TAIL_EVERY, true),
            Err(e) => {
                tracing::debug!(error = %e, "history tail read failed");
                (wait, idle) = (POSTGRES_TAIL_EVERY, true);
            }
        }
        match c {
            Conn::Postgres(pg) => match pg.wait_for_notification(wait, CANCEL_CHANNEL, idle) {
                Ok(cancelled) => {
                    for uuid in cancelled.iter().filter_map(|u| Uuid::parse_str(u).ok()) {
                        tracing::debug!(plan = %uuid, "cancel heard from the database");
                        events.announce(StoreEvent::PlanState {
                            uuid,
                            state: ActionPlanState::Cancelling,
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lost the PostgreSQL notification connection; reconnecting")
                }
            },
            Conn::Sqlite(_) if idle => std::thread::sleep(SQLITE_TAIL_EVERY),
            Conn::Sqlite(_) => {}
        }
    }
}

fn open_tail(location: &DatabaseLocation) -> Result<Conn, StoreError> {
    let conn = location.open_reader()?.ok_or_else(|| {
        StoreError::Invalid("an in-memory database has no other processes".into())
    })?;
    if conn.dialect() == Dialect::Postgres {
        conn.batch(&format!(
            "LISTEN {HISTORY_CHANNEL}; LISTEN {CANCEL_CHANNEL}"
        ))?;
    }
    Ok(conn)
}

/// How many history rows the tail reads at once.
const TAIL_PAGE: usize = 500;

/// Publishes events for the history rows after `seq`; the last row's seq
/// and how many rows there were, if there were any.
fn publish_history_after(
    conn: &Conn,
    seq: i64,
    events: &Announcer,
) -> Result<Option<(i64, usize)>, StoreError> {
    // A small page keeps PostgreSQL on the primary key even before its
    // statistics know how big the history is (with LIMIT 10000 it chose a
    // full scan and a sort, on every NOTIFY, in every process); the tail's
    // connection plans it afresh each time (`open_reader`).
    let rows = conn.query(
        "SELECT seq, entity, uuid, action_plan_uuid, to_state FROM state_history \
         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        args![seq, TAIL_PAGE as i64],
    )?;
    let count = rows.len();
    let mut last = None;
    for row in rows {
        last = Some(row.get::<i64>(0)?);
        let (Ok(entity), Ok(uuid), Ok(plan), Ok(to)) = (
            row.get::<String>(1),
            row.uuid(2),
            row.opt_uuid(3),
            row.get::<String>(4),
        ) else {
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
            "action" => match (plan, to.parse().ok()) {
                (Some(plan), Some(state)) => Some(StoreEvent::ActionState { plan, uuid, state }),
                _ => None,
            },
            _ => None,
        };
        if let Some(e) = event {
            events.announce(e);
        }
    }
    Ok(last.map(|l| (l, count)))
}

impl Store {
    /// Opens (creating if needed) the database and starts the writer thread.
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
                    Dialect::Postgres => 4,
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
                .spawn(move || checkpointer_loop(path, wake_rx))
                .map_err(|e| {
                    StoreError::Invalid(format!("cannot start the checkpointer thread: {e}"))
                })?;
        }
        let bulk_writer = match location.dialect() {
            Dialect::Sqlite => None,
            Dialect::Postgres => {
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
                let opened = writer.connection().and_then(migrate);
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
    /// matter of course (PostgreSQL); a SQLite file is shared only when
    /// the configuration says so.
    pub fn is_server_database(&self) -> bool {
        self.inner.location.dialect() == Dialect::Postgres
    }

    /// Hears of changes other processes make to the same database (several
    /// watcherd processes): PostgreSQL's LISTEN/NOTIFY, or polling a SQLite
    /// file's history. Nothing to do for an in-memory database.
    pub fn watch_other_processes(&self) -> Result<(), StoreError> {
        if self.inner.location == DatabaseLocation::Memory {
            return Ok(());
        }
        let (location, events) = (self.inner.location.clone(), self.inner.events.clone());
        std::thread::Builder::new()
            .name("store-history-tail".into())
            .spawn(move || history_tail_loop(location, events))
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
        F: FnOnce(&Conn, &mut Vec<StoreEvent>) -> Result<R, StoreError> + Send + 'static,
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
        F: FnOnce(&Conn, &mut Vec<StoreEvent>) -> Result<R, StoreError> + Send + 'static,
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
        F: FnOnce(&Conn, &mut Vec<StoreEvent>) -> Result<R, StoreError> + Send + 'static,
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
        tokio::task::spawn_blocking(move || checkpoint(&path, "TRUNCATE"))
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

    /// Runs a read-only query on a pooled connection.
    pub(crate) async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Conn) -> Result<R, StoreError> + Send + 'static,
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
            let conn = pool.idle.lock().expect("read pool lock").pop();
            let conn = match conn.filter(Conn::is_usable) {
                Some(c) => c,
                None => pool
                    .location
                    .open_reader()?
                    .expect("only an in-memory database has no readers"),
            };
            let result = f(&conn);
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

/// A write request running `f` in its own savepoint, and where its answer
/// will arrive once its group has committed.
fn write_job<R, F>(f: F) -> (WriteJob, oneshot::Receiver<Result<R, StoreError>>)
where
    R: Send + 'static,
    F: FnOnce(&Conn, &mut Vec<StoreEvent>) -> Result<R, StoreError> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let job: WriteJob = Box::new(move |ctx| {
        let result = ctx.and_then(|(conn, events)| run_in_savepoint(conn, events, f));
        Box::new(move |commit: Result<(), StoreError>| {
            let _ = tx.send(commit.and(result));
        })
    });
    (job, rx)
}

fn run_in_savepoint<R>(
    conn: &Conn,
    events: &mut Vec<StoreEvent>,
    f: impl FnOnce(&Conn, &mut Vec<StoreEvent>) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    conn.batch("SAVEPOINT request")?;
    let mut local = Vec::new();
    match f(conn, &mut local) {
        Ok(r) => {
            conn.batch("RELEASE request")?;
            events.extend(local);
            Ok(r)
        }
        Err(e) => {
            conn.batch("ROLLBACK TO request; RELEASE request")?;
            Err(e)
        }
    }
}

/// The writer thread: one connection, requests in groups, one commit a group.
struct Writer {
    /// `None` after the connection broke, until it is opened again.
    conn: Option<Conn>,
    location: DatabaseLocation,
    durability: Durability,
    events: Announcer,
    checkpoint: mpsc::Sender<()>,
    /// The bulk writer ([`Store::write_bulk`]): one write per transaction,
    /// begun without the writers' lock.
    bulk: bool,
    /// While the database fails, each group fails the same way: said once
    /// a minute.
    gate: LogGate,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<WriterMsg>) {
        let mut since_checkpoint = 0usize;
        let mut since_wal_check = 0usize;
        let mut pending: Vec<WriterMsg> = Vec::new();
        while let Ok(first) = rx.recv() {
            pending.push(first);
            let limit = if self.bulk { 1 } else { MAX_GROUP };
            while pending.len() < limit {
                match rx.try_recv() {
                    Ok(m) => pending.push(m),
                    Err(_) => break,
                }
            }
            let committed = self.run_group(&mut pending);
            since_checkpoint += committed;
            since_wal_check += committed;
            if since_checkpoint >= 2_000 {
                since_checkpoint = 0;
                let _ = self.checkpoint.send(());
            }
            // A commit writes a few pages: looking every hundred keeps the
            // WAL within a few MiB of the mark, for a stat() each time.
            if since_wal_check >= 100 {
                since_wal_check = 0;
                self.hold_the_wal_back();
            }
        }
    }

    /// When the WAL has grown past the high-water mark (a long burst while
    /// readers kept old snapshots), checkpoints it here, waiting for the
    /// readers, so that the next writes start it over from the beginning.
    fn hold_the_wal_back(&self) {
        let DatabaseLocation::File(path) = &self.location else {
            return;
        };
        if wal_bytes(path) > WAL_HIGH_WATER_BYTES {
            if let Err(e) = checkpoint(path, "RESTART") {
                tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
            }
        }
    }

    /// The open connection, opening a new one if the last one broke.
    fn connection(&mut self) -> Result<&Conn, StoreError> {
        if self.conn.as_ref().is_none_or(|c| !c.is_usable()) {
            self.conn = None;
            self.conn = Some(self.location.open_writer(self.durability)?);
            tracing::debug!("the store's write connection is open");
        }
        Ok(self.conn.as_ref().expect("opened above"))
    }

    /// Runs and commits one group; the number of writes committed.
    fn run_group(&mut self, pending: &mut Vec<WriterMsg>) -> usize {
        let (events, bulk) = (self.events.clone(), self.bulk);
        let conn = match self.connection() {
            Ok(c) => c,
            Err(e) => {
                if let Some(held_back) = self.gate.admit(&e.to_string(), std::time::Instant::now())
                {
                    tracing::warn!(error = %e, not_logged = held_back, "the database is unavailable; writes fail until it is back");
                }
                // The reason without a second "the database is unavailable".
                let reason = match &e {
                    StoreError::Unavailable(m) => m.clone(),
                    other => other.to_string(),
                };
                for msg in pending.drain(..) {
                    if let WriterMsg::Write(job) = msg {
                        job(Err(StoreError::Unavailable(reason.clone())))(Ok(()));
                    }
                }
                return 0;
            }
        };
        let mut completions: Vec<Completion> = Vec::with_capacity(pending.len());
        let mut batch_events = Vec::new();
        let began = conn.batch(&if bulk {
            conn.dialect().begin_unlocked()
        } else {
            conn.dialect().begin_write()
        });
        for msg in pending.drain(..) {
            match msg {
                WriterMsg::Read(job) => job(conn),
                WriterMsg::Write(job) => match &began {
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot begin a transaction");
                        job(Err(StoreError::Unavailable(format!(
                            "the database could not begin a transaction: {e}"
                        ))))(Ok(()));
                    }
                    Ok(()) => completions.push(job(Ok((conn, &mut batch_events)))),
                },
            }
        }
        if began.is_err() {
            return 0;
        }
        // The bulk writer's job took the writers' lock before its history
        // rows; taking it again here (it is reentrant) makes sure its
        // commit is ordered like every other, even for a job that forgot.
        let locked = if bulk { conn.lock_writers() } else { Ok(()) };
        // Other processes listen: the NOTIFY is delivered with the commit.
        let notified = locked.and_then(|()| match (conn.dialect(), batch_events.is_empty()) {
            (Dialect::Postgres, false) => {
                for ev in &batch_events {
                    if let StoreEvent::PlanState {
                        uuid,
                        state: ActionPlanState::Cancelling,
                    } = ev
                    {
                        conn.execute(
                            "SELECT pg_notify(?1, ?2)",
                            args![CANCEL_CHANNEL, uuid.to_string()],
                        )?;
                    }
                }
                conn.batch(&format!("NOTIFY {HISTORY_CHANNEL}"))
            }
            _ => Ok(()),
        });
        match notified.and_then(|()| conn.batch("COMMIT")) {
            Ok(()) => {
                let n = completions.len();
                for done in completions {
                    done(Ok(()));
                }
                for ev in batch_events {
                    events.announce(ev);
                }
                n
            }
            Err(e) => {
                tracing::error!(error = %e, "commit failed; the whole group is rolled back");
                let _ = conn.batch("ROLLBACK");
                let unavailable = matches!(e, StoreError::Unavailable(_));
                for done in completions {
                    done(Err(if unavailable {
                        StoreError::Unavailable(e.to_string())
                    } else {
                        StoreError::Database(format!("commit failed: {e}"))
                    }));
                }
                0
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_select_the_database_and_passwords_stay_out_of_messages() {
        let DatabaseLocation::Postgres(pg) =
            DatabaseLocation::parse("postgres://watcher:secret@db1:5432/watcher").unwrap()
        else {
            panic!("not PostgreSQL")
        };
        assert_eq!(pg.as_str(), "postgres://watcher:secret@db1:5432/watcher");
        assert_eq!(
            DatabaseLocation::parse("sqlite:///var/lib/w.db").unwrap(),
            DatabaseLocation::File("/var/lib/w.db".into())
        );
        assert_eq!(
            redact_url("postgres://watcher:secret@db1/watcher"),
            "postgres://watcher:***@db1/watcher"
        );
        assert_eq!(
            redact_url("postgres://watcher@db1/watcher"),
            "postgres://watcher@db1/watcher"
        );
        let e = DatabaseLocation::parse("mysql://root:secret@db1/watcher").unwrap_err();
        assert!(e.to_string().contains("'mysql' is not supported"), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
        let e = DatabaseLocation::parse("postgres://watcher:secret@db1:notaport/w").unwrap_err();
        assert!(e.to_string().contains("postgres://watcher:***@"), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
    }
}
