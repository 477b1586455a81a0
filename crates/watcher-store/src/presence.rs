//! Appliers' presence on a database server: each applier holds a
//! session-level lock named after its host on a connection of its own, for
//! as long as it lives (PostgreSQL's advisory lock, MariaDB's `GET_LOCK`).
//! The server releases the lock the moment that session ends (a kill -9
//! closes the socket; a network cut is noticed within seconds: by the
//! server's keepalives on PostgreSQL, by a 5 s `wait_timeout` on MariaDB,
//! as the connection is pinged twice a second), so the other appliers learn
//! that an applier is gone by trying its lock, without waiting for its
//! plans' leases to run out.
//!
//! A lock held means alive (or not yet known dead): the safe side. A lock
//! free means the session is gone, or the applier has not taken it yet
//! after a server restart; [`Store::gone_appliers`]'s caller waits for a
//! second look before acting on it.
//!
//! Not on Galera: `GET_LOCK` there is held by one node only and not
//! replicated, so an applier writing through another node would find a
//! living applier's lock free and take its plans while it still runs them.
//! On a Galera node there is no presence; an applier that dies is taken
//! over when its plans' leases run out.

use crate::sql::{args, Conn, Dialect};
use crate::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use watcher_core::ActionPlanState;

/// The first key of presence locks ("WTCH"); the second is the host's hash.
const PRESENCE_CLASS: i32 = 0x5754_4348;

/// The second key of `host`'s presence lock: a stable hash (FNV-1a), the
/// same in every process and every version.
fn host_key(host: &str) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in host.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h as i32
}

/// Holds this applier's presence lock while it lives; dropping it releases
/// the lock (a clean stop hands the plans over at once).
pub struct Presence {
    stop: Arc<AtomicBool>,
}

impl Drop for Presence {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// How often the presence connection is checked (and retaken after a loss).
const PRESENCE_CHECK: Duration = Duration::from_millis(500);

/// The presence connection: the lock, and server-side keepalives short
/// enough that the server ends the session (releasing the lock) within a
/// few seconds of a network cut.
fn hold(location: &DatabaseLocation, host: &str) -> Result<Conn, StoreError> {
    let conn = location
        .open_reader()?
        .ok_or_else(|| StoreError::Invalid("no presence without a database server".into()))?;
    if conn.dialect() == Dialect::Mysql {
        conn.batch("SET SESSION wait_timeout = 5")?;
        // Waits as PostgreSQL's does (a year is MariaDB's "for ever").
        conn.query_one("SELECT GET_LOCK(?1, 31536000)", [mysql_lock_name(host)])?;
        return Ok(conn);
    }
    conn.batch(
        "SET tcp_keepalives_idle = 1; SET tcp_keepalives_interval = 1; \
         SET tcp_keepalives_count = 2; SET tcp_user_timeout = 3000",
    )?;
    // Blocks while another applier is looking at this lock (a moment), or
    // while a session of this host's previous life is still known to the
    // server: taking over its own plans waits for that.
    conn.execute(
        "SELECT pg_advisory_lock(?1, ?2)",
        args![PRESENCE_CLASS as i64, host_key(host) as i64],
    )?;
    Ok(conn)
}

/// Whether `conn` is a session on a Galera node, whose named locks are its
/// own and not the cluster's. MySQL without Galera has no such variable.
fn on_galera(conn: &Conn) -> bool {
    conn.dialect() == Dialect::Mysql
        && conn
            .query_row("SELECT @@wsrep_on", (), |r| r.get::<i64>(0))
            .is_ok_and(|on| on == 1)
}

/// Why there is no presence on a Galera node, said once by each applier.
const NO_PRESENCE_ON_GALERA: &str = "the database is a Galera cluster, whose named locks are \
     not shared between its nodes: an applier that dies is taken over when its plans' leases \
     run out (applier.lease_secs), not within seconds";

/// `host`'s presence lock on MariaDB (names are at most 64 characters).
fn mysql_lock_name(host: &str) -> String {
    format!("watcherd-presence-{:08x}", host_key(host) as u32)
}

impl Store {
    /// Takes and holds `host`'s presence lock on a thread of its own
    /// (a database server; `None` on SQLite, whose appliers rely on leases).
    /// Returns once the lock is held, or after 5 s if the server cannot be
    /// reached now: the thread keeps trying, and holds it once it can.
    pub fn hold_presence(&self, host: &str) -> Option<Presence> {
        match self.inner.location.dialect() {
            Dialect::Sqlite => return None,
            Dialect::Mysql => {
                // Checked before the lock is taken; gone_appliers checks
                // again for a server that could not be reached now.
                if let Ok(Some(conn)) = self.inner.location.open_reader() {
                    if on_galera(&conn) {
                        tracing::warn!("no applier presence: {NO_PRESENCE_ON_GALERA}");
                        return None;
                    }
                }
            }
            Dialect::Postgres => {}
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (location, host, flag) = (self.inner.location.clone(), host.to_string(), stop.clone());
        let (ready_tx, ready_rx) = mpsc::sync_channel::<()>(1);
        let spawned = std::thread::Builder::new()
            .name("store-presence".into())
            .spawn(move || {
                let mut conn: Option<Conn> = None;
                let mut warned = false;
                while !flag.load(Ordering::SeqCst) {
                    let alive = conn
                        .as_ref()
                        .is_some_and(|c| c.is_usable() && c.batch("SELECT 1").is_ok());
                    if !alive {
                        conn = match hold(&location, &host) {
                            Ok(c) => {
                                if warned {
                                    tracing::info!("applier presence held again");
                                }
                                warned = false;
                                let _ = ready_tx.try_send(());
                                Some(c)
                            }
                            Err(e) => {
                                if !warned {
                                    tracing::warn!(error = %e, "cannot hold the applier's presence on the database; retrying");
                                    warned = true;
                                }
                                None
                            }
                        };
                    }
                    std::thread::sleep(PRESENCE_CHECK);
                }
                // Dropping the connection ends the session: the lock goes.
                drop(conn);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the presence thread; failover waits for leases");
            return None;
        }
        // The first hold is normally immediate; do not delay start-up for
        // an unreachable server (the thread keeps trying).
        let _ = ready_rx.recv_timeout(Duration::from_secs(5));
        Some(Presence { stop })
    }

    /// Hosts other than `me` that hold ONGOING or CANCELLING plans but not
    /// their presence lock (a database server; always empty on SQLite).
    pub async fn gone_appliers(&self, me: String) -> Result<Vec<String>, StoreError> {
        if self.inner.location.dialect() == Dialect::Sqlite {
            return Ok(vec![]);
        }
        self.read(move |conn| {
            let hosts: Vec<String> = conn.query_map(
                "SELECT DISTINCT hostname FROM action_plans WHERE state IN (?2, ?3, ?4) \
                 AND deleted_at IS NULL AND hostname IS NOT NULL AND hostname <> ?1",
                args![
                    me,
                    ActionPlanState::Ongoing,
                    ActionPlanState::Cancelling,
                    ActionPlanState::Paused
                ],
                |r| r.get(0),
            )?;
            let mut gone = vec![];
            if !hosts.is_empty() && on_galera(conn) {
                return Ok(gone);
            }
            for host in hosts {
                if conn.dialect() == Dialect::Mysql {
                    let free: bool =
                        conn.query_row("SELECT IS_FREE_LOCK(?1)", [mysql_lock_name(&host)], |r| {
                            r.get(0)
                        })?;
                    if free {
                        gone.push(host);
                    }
                    continue;
                }
                let key = args![PRESENCE_CLASS as i64, host_key(&host) as i64];
                let free: bool =
                    conn.query_row("SELECT pg_try_advisory_lock(?1, ?2)", key.clone(), |r| {
                        r.get(0)
                    })?;
                if free {
                    conn.query_row("SELECT pg_advisory_unlock(?1, ?2)", key, |r| {
                        r.get::<bool>(0)
                    })?;
                    gone.push(host);
                }
            }
            Ok(gone)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_keys_are_stable_and_differ() {
        // Fixed for ever: processes of different versions must agree.
        assert_eq!(host_key("applier-a"), host_key("applier-a"));
        assert_ne!(host_key("applier-a"), host_key("applier-b"));
        assert_eq!(host_key(""), 0x811c_9dc5_u32 as i32);
    }
}
