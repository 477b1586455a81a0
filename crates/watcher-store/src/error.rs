//! `StoreError`: what a store call can come back with, typed so that the
//! API maps each kind to its HTTP code in one place.

use uuid::Uuid;
use watcher_core::{ActionPlanState, EntityState, UnknownState};

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
        use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked, DiskFull};
        match e.sqlite_error_code() {
            Some(DatabaseBusy | DatabaseLocked) => StoreError::Unavailable(e.to_string()),
            // SQLite rolled the transaction back: nothing half-written, and
            // it writes again once there is room.
            Some(DiskFull) => StoreError::Unavailable(format!(
                "{e}: the disk under the database file is full; free space on it"
            )),
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

impl From<mysql::Error> for StoreError {
    fn from(e: mysql::Error) -> Self {
        let mysql::Error::MySqlError(db) = &e else {
            // No answer from the server (the connection gone, never made,
            // or its TLS refused), or a statement the driver would not send.
            return match e {
                mysql::Error::DriverError(
                    mysql::DriverError::MismatchedStmtParams(..)
                    | mysql::DriverError::Params(_)
                    | mysql::DriverError::MixedParams,
                ) => StoreError::Database(with_causes(&e)),
                mysql::Error::UrlError(_) => StoreError::Invalid(with_causes(&e)),
                _ => StoreError::Unavailable(with_causes(&e)),
            };
        };
        match db.code {
            // A deadlock, a lock not had in time, a Galera certification
            // conflict (reported as a deadlock, or as the writer's savepoint
            // gone): the transaction was rolled back whole, and the same
            // writes succeed when tried again.
            1213 | 1205 | 1305 => StoreError::Unavailable(format!("{} ({})", db.message, db.code)),
            // Too many connections, the server shutting down, the session
            // killed, a Galera node not in the primary component, the
            // server read-only (a replica, or a primary being switched).
            1040 | 1053 | 1927 | 1047 | 1290 | 1836 | 4031 => {
                StoreError::Unavailable(format!("{} ({})", db.message, db.code))
            }
            _ => StoreError::Database(format!("{} ({})", db.message, db.code)),
        }
    }
}

/// An error and what caused it ("error connecting to server: Connection
/// refused"): the client's own message alone does not say what to fix.
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_unavailable_not_an_internal_error() {
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        match StoreError::from(full) {
            StoreError::Unavailable(m) => assert!(m.contains("disk"), "{m}"),
            other => panic!("{other:?}"),
        }
        let other = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            None,
        );
        assert!(matches!(StoreError::from(other), StoreError::Database(_)));
    }
}
