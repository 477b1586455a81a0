//! The writer thread: one connection, requests in groups, each in its own
//! savepoint, one commit a group, events published after the commit.

use crate::error::StoreError;
use crate::events::{Announcer, StoreEvent, CANCEL_CHANNEL, HISTORY_CHANNEL};
use crate::location::{check_integrity, open_mysql, open_postgres, open_sqlite, DatabaseLocation};
use crate::sql::{args, Conn, Dialect};
use crate::wal::{checkpoint, wal_bytes, WAL_HIGH_WATER_BYTES};
use rusqlite::OpenFlags;
use std::sync::mpsc;
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
/// A write request. Called with `Err` when its group could not begin a
/// transaction: it then answers with that error without running.
pub(crate) type WriteJob =
    Box<dyn FnOnce(Result<(&Conn, &mut Vec<StoreEvent>), StoreError>) -> Completion + Send>;
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
pub(crate) fn write_job<R, F>(f: F) -> (WriteJob, oneshot::Receiver<Result<R, StoreError>>)
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

    /// Runs and commits one group; the number of writes committed.
    // Long because one group's transaction: begin, each write in its savepoint, commit or
    // roll back, answer the callers, publish the events; the order of these steps is the
    // durability guarantee, so they read best in one place.
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
