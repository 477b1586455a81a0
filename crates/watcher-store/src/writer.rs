//! The writer thread: one connection, requests in groups, each in its own
//! savepoint, one commit a group, events published after the commit.

use crate::error::StoreError;
use crate::events::{Announcer, StoreEvent, CANCEL_CHANNEL, HISTORY_CHANNEL};
use crate::location::{check_integrity, open_mysql, open_postgres, open_sqlite, DatabaseLocation};
use crate::sql::{args, Conn, Dialect};
use crate::wal::{checkpoint, wal_bytes, WAL_HIGH_WATER_BYTES};
use rusqlite::OpenFlags;
use std::sync::{mpsc, Arc, Mutex};
use tokio::sync::oneshot;
use watcher_core::backoff::LogGate;
use watcher_core::ActionPlanState;

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

pub(crate) type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// One run of a write request in the group's transaction.
type WriteRun = Box<dyn FnMut(&Conn, &mut Vec<StoreEvent>) -> Completion + Send>;

/// A write request. `run` runs it in its own savepoint and returns what
/// answers its caller once the group's commit is known; it runs again
/// when the server rolled the whole group back on its own (MariaDB's
/// deadlocks and Galera's certification conflicts), and only the answer
/// of the run that committed is sent. `fail` answers with an error
/// without running it (the group could not begin a transaction).
pub(crate) struct WriteJob {
    run: WriteRun,
    fail: Box<dyn FnOnce(StoreError) + Send>,
}

/// How many times a group the server rolled back is run again before its
/// callers are told the database is unavailable, and the first pause
/// between two runs (doubling), as oslo.db retries upstream's.
const ROLLED_BACK_RETRIES: u32 = 10;
const ROLLED_BACK_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);
pub(crate) type ReadJob = Box<dyn FnOnce(&Conn) + Send>;

pub(crate) enum WriterMsg {
    Write(WriteJob),
    Read(ReadJob),
}

/// Largest number of requests that share one commit.
const MAX_GROUP: usize = 512;

pub(crate) fn configure_sqlite_writer(
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

/// The connection of the writer thread.
fn open_connection(
    location: &DatabaseLocation,
    durability: Durability,
) -> Result<Conn, StoreError> {
    match location {
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
        DatabaseLocation::Mysql(url) => open_mysql(url),
    }
}

/// A write request running `f` in its own savepoint, and where its answer
/// will arrive once its group has committed.
pub(crate) fn write_job<R, F>(mut f: F) -> (WriteJob, oneshot::Receiver<Result<R, StoreError>>)
where
    R: Send + 'static,
    F: FnMut(&Conn, &mut Vec<StoreEvent>) -> Result<R, StoreError> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let slot = Arc::new(Mutex::new(Some(tx)));
    let answer = slot.clone();
    let take = |slot: &Mutex<Option<oneshot::Sender<Result<R, StoreError>>>>| {
        slot.lock().unwrap_or_else(|e| e.into_inner()).take()
    };
    let run = Box::new(
        move |conn: &Conn, events: &mut Vec<StoreEvent>| -> Completion {
            let result = run_in_savepoint(conn, events, &mut f);
            let slot = slot.clone();
            Box::new(move |commit: Result<(), StoreError>| {
                if let Some(tx) = take(&slot) {
                    let _ = tx.send(commit.and(result));
                }
            })
        },
    );
    let fail = Box::new(move |e: StoreError| {
        if let Some(tx) = take(&answer) {
            let _ = tx.send(Err(e));
        }
    });
    (WriteJob { run, fail }, rx)
}

fn run_in_savepoint<R>(
    conn: &Conn,
    events: &mut Vec<StoreEvent>,
    mut f: impl FnMut(&Conn, &mut Vec<StoreEvent>) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    conn.batch("SAVEPOINT request")?;
    let mut local = Vec::new();
    match f(conn, &mut local) {
        Ok(r) => {
            conn.batch("RELEASE SAVEPOINT request")?;
            events.extend(local);
            Ok(r)
        }
        Err(e) => {
            conn.batch("ROLLBACK TO SAVEPOINT request; RELEASE SAVEPOINT request")?;
            Err(e)
        }
    }
}

/// The writer thread: one connection, requests in groups, one commit a group.
pub(crate) struct Writer {
    /// `None` after the connection broke, until it is opened again.
    pub(crate) conn: Option<Conn>,
    pub(crate) location: DatabaseLocation,
    pub(crate) durability: Durability,
    pub(crate) events: Announcer,
    pub(crate) checkpoint: mpsc::Sender<()>,
    /// The bulk writer ([`Store::write_bulk`]): one write per transaction,
    /// begun without the writers' lock.
    pub(crate) bulk: bool,
    /// While the database fails, each group fails the same way: said once
    /// a minute.
    pub(crate) gate: LogGate,
}

impl Writer {
    pub(crate) fn run(mut self, rx: mpsc::Receiver<WriterMsg>) {
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
    pub(crate) fn connection(&mut self) -> Result<&Conn, StoreError> {
        if self.conn.as_ref().is_none_or(|c| !c.is_usable()) {
            self.conn = None;
            self.conn = Some(open_connection(&self.location, self.durability)?);
            tracing::debug!("the store's write connection is open");
        }
        Ok(self.conn.as_ref().expect("opened above"))
    }

    /// Runs and commits one group; the number of writes committed. A group
    /// the server rolled back on its own is run again, whole.
    fn run_group(&mut self, pending: &mut Vec<WriterMsg>) -> usize {
        let (events, bulk) = (self.events.clone(), self.bulk);
        let mut jobs: Vec<WriteJob> = Vec::with_capacity(pending.len());
        let mut pause = ROLLED_BACK_PAUSE;
        let mut reconnected = false;
        for attempt in 0..=ROLLED_BACK_RETRIES {
            if let Err(e) = self.connection().map(|_| ()) {
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
                        jobs.push(job);
                    }
                }
                for job in jobs {
                    (job.fail)(StoreError::Unavailable(reason.clone()));
                }
                return 0;
            }
            // The connection and the log gate are borrowed apart.
            let conn = self.conn.as_ref().expect("opened by connection()");
            let began = conn.batch(&if bulk {
                conn.dialect().begin_unlocked()
            } else {
                conn.dialect().begin_write()
            });
            let mut completions: Vec<Completion> = Vec::with_capacity(pending.len() + jobs.len());
            let mut batch_events = Vec::new();
            // Reads run once, in their place in the queue.
            for msg in pending.drain(..) {
                match msg {
                    WriterMsg::Read(job) => job(conn),
                    WriterMsg::Write(job) => jobs.push(job),
                }
            }
            if let Err(e) = began {
                // The connection died while idle (a server restart, a
                // failover): nothing ran; again on a new one, once.
                if !conn.is_usable() && !reconnected && attempt < ROLLED_BACK_RETRIES {
                    reconnected = true;
                    tracing::info!(error = %e, "the database connection was lost while idle; opening a new one");
                    continue;
                }
                // The writers' lock itself lost a conflict (Galera): the
                // same as a group rolled back at its commit.
                if conn.rolled_back_by_server() && attempt < ROLLED_BACK_RETRIES {
                    let _ = conn.batch("ROLLBACK");
                    tracing::info!(error = %e, attempt = attempt + 1, "the server rolled the group back; running it again");
                    pause_before_retry(&mut pause);
                    continue;
                }
                tracing::warn!(error = %e, "cannot begin a transaction");
                for job in jobs {
                    (job.fail)(StoreError::Unavailable(format!(
                        "the database could not begin a transaction: {e}"
                    )));
                }
                return 0;
            }
            for job in &mut jobs {
                completions.push((job.run)(conn, &mut batch_events));
            }
            // A connection lost before the commit was sent committed
            // nothing (the server rolls the transaction back when the
            // session ends): the group runs again once, on a new one. One
            // lost in the commit itself may have committed, and is not.
            let lost = !conn.is_usable();
            let committed = if lost {
                Err(StoreError::Unavailable(
                    "the connection to the database was lost".into(),
                ))
            } else {
                commit(conn, bulk, &batch_events)
            };
            let retry = committed.is_err()
                && attempt < ROLLED_BACK_RETRIES
                && ((lost && !reconnected) || conn.rolled_back_by_server());
            match committed {
                Ok(()) => {
                    let n = completions.len();
                    for done in completions {
                        done(Ok(()));
                    }
                    for ev in batch_events {
                        events.announce(ev);
                    }
                    return n;
                }
                Err(e) if retry && lost => {
                    reconnected = true;
                    tracing::info!(error = %e, writes = jobs.len(), "the database connection was lost before the commit; running the group again on a new one");
                }
                Err(e) if retry => {
                    let _ = conn.batch("ROLLBACK");
                    tracing::info!(error = %e, attempt = attempt + 1, writes = jobs.len(), "the server rolled the group back; running it again");
                    pause_before_retry(&mut pause);
                }
                Err(e) => {
                    if let Some(held_back) =
                        self.gate.admit(&e.to_string(), std::time::Instant::now())
                    {
                        tracing::error!(error = %e, not_logged = held_back, "commit failed; the whole group is rolled back");
                    }
                    let _ = conn.batch("ROLLBACK");
                    for done in completions {
                        done(Err(match &e {
                            StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
                            other => StoreError::Database(format!("commit failed: {other}")),
                        }));
                    }
                    return 0;
                }
            }
        }
        unreachable!("the last attempt answers")
    }
}

/// Waits `pause` before a group runs again, and doubles it (at most half
/// a second), so that two nodes' writers do not keep meeting.
fn pause_before_retry(pause: &mut std::time::Duration) {
    std::thread::sleep(*pause);
    *pause = (*pause * 2).min(std::time::Duration::from_millis(500));
}

/// Ends a group's transaction: takes the writers' lock if the bulk writer's
/// job did not, tells other processes (PostgreSQL's NOTIFY is delivered
/// with the commit), and commits.
fn commit(conn: &Conn, bulk: bool, batch_events: &[StoreEvent]) -> Result<(), StoreError> {
    // The bulk writer's job took the writers' lock before its history
    // rows; taking it again here (it is reentrant) makes sure its
    // commit is ordered like every other, even for a job that forgot.
    if bulk {
        conn.lock_writers()?;
    }
    if conn.dialect() == Dialect::Postgres && !batch_events.is_empty() {
        for ev in batch_events {
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
        conn.batch(&format!("NOTIFY {HISTORY_CHANNEL}"))?;
    }
    conn.batch("COMMIT")
}
