//! The history tail: other processes' commits turned into events (LISTEN
//! on PostgreSQL, polling the history's key on MariaDB and in a shared
//! SQLite file).

use crate::error::StoreError;
use crate::events::{Announcer, StoreEvent, CANCEL_CHANNEL, HISTORY_CHANNEL};
use crate::location::DatabaseLocation;
use crate::sql::{args, Conn, Dialect};
use std::time::Duration;
use uuid::Uuid;
use watcher_core::backoff::Backoff;
use watcher_core::ActionPlanState;

/// How often a process polls a shared SQLite file for other processes'
/// changes (SQLite has no cross-process notification).
const SQLITE_TAIL_EVERY: Duration = Duration::from_millis(50);
/// How often a process polls MariaDB's history for other processes'
/// changes, by how soon it must hear of them ([`Hearing`]). MariaDB has no
/// LISTEN/NOTIFY; one read of the history's primary key past the last row
/// seen needs nothing the deployment does not have, and bounds how late a
/// cancel is heard by an applier in another process. RabbitMQ would carry
/// it sooner, but a message lost with a broker node would need this poll
/// anyway. Each read costs the server about a third of a millisecond of
/// CPU (`docs/benchmarks.md`): only appliers read at the fast pace.
const MYSQL_TAIL_PROMPT: Duration = Duration::from_millis(20);
const MYSQL_TAIL_RELAXED: Duration = Duration::from_millis(250);

/// How soon a process must hear of other processes' changes where it
/// polls for them (MariaDB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hearing {
    /// Within a few tens of milliseconds: an applier, which a cancel
    /// written by another process must reach at once.
    Prompt,
    /// Within a quarter of a second: the API (its dashboard's live page)
    /// and the decision engine, which also sweep the database.
    Relaxed,
}

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
pub(crate) fn history_tail_loop(location: DatabaseLocation, events: Announcer, hearing: Hearing) {
    let mysql_every = match hearing {
        Hearing::Prompt => MYSQL_TAIL_PROMPT,
        Hearing::Relaxed => MYSQL_TAIL_RELAXED,
    };
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
            Conn::Mysql(_) if idle => std::thread::sleep(mysql_every),
            Conn::Sqlite(_) | Conn::Mysql(_) => {}
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
