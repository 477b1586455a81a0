//! An upstream Watcher's tables beside watcherd's in one MariaDB database
//! (`goals`, `audits`, `action_plans`, ... and `watcherd_*`): what they are
//! (their alembic revision, whether upstream still runs), and the record of
//! each copy between them: `watcherd db upgrade` takes upstream's objects
//! over (`upstream_import.rs`), `watcherd db export-upstream` writes
//! watcherd's back for a return to upstream (`upstream_export.rs`).

use crate::sql::{args, Conn, Dialect};
use crate::*;

/// Upstream's schema revisions (alembic heads) whose tables this module
/// reads and writes, with the release that made them.
pub const KNOWN_REVISIONS: &[(&str, &str)] = &[("f56ba02662b4", "Watcher 17.0 (2025.2)")];

/// An upstream Watcher's tables found beside watcherd's.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamDatabase {
    /// Its alembic revision.
    pub revision: String,
    /// The release that made it, when watcherd knows the revision.
    pub release: Option<&'static str>,
    /// Upstream's services seen up within the last `seen_within` seconds
    /// (name, host, seconds ago): still running, most likely.
    pub live_services: Vec<(String, String, i64)>,
    /// The last copy between the two, if any.
    pub last_sync: Option<SyncRecord>,
}

/// One copy between upstream's tables and watcherd's.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRecord {
    /// `import` (upstream to watcherd) or `export` (watcherd to upstream).
    pub direction: String,
    pub revision: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// A column of upstream's (a naive UTC `DATETIME`) as microseconds since
/// the epoch, independent of the session's time zone.
pub(crate) fn micros(column: &str) -> String {
    format!("TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {column})")
}

/// Upstream's table `table` in database `db`: named with its database, so
/// that it is not taken for watcherd's table of the same name.
pub(crate) fn upstream_table(db: &str, table: &str) -> String {
    format!("`{}`.{table}", db.replace('`', "``"))
}

pub(crate) fn database_name(conn: &Conn) -> Result<String, StoreError> {
    conn.query_row("SELECT DATABASE()", (), |r| r.get(0))
}

/// The revision of upstream's tables in this database, if it has them.
pub(crate) fn upstream_revision(conn: &Conn) -> Option<String> {
    if conn.dialect() != Dialect::Mysql {
        return None;
    }
    conn.query_opt("SELECT version_num FROM alembic_version LIMIT 1", ())
        .ok()
        .flatten()
        .and_then(|r| r.get(0).ok())
}

fn last_sync(conn: &Conn) -> Result<Option<SyncRecord>, StoreError> {
    conn.query_opt(
        "SELECT direction, revision, at FROM upstream_syncs ORDER BY id DESC LIMIT 1",
        (),
    )?
    .map(|r| {
        Ok(SyncRecord {
            direction: r.get(0)?,
            revision: r.get(1)?,
            at: r.time(2)?,
        })
    })
    .transpose()
}

/// The revision of upstream's tables, if watcherd knows it; else why not.
pub(crate) fn known_revision(conn: &Conn) -> Result<String, StoreError> {
    let revision = upstream_revision(conn).ok_or_else(|| {
        StoreError::Invalid(
            "this database holds no upstream Watcher tables (no alembic_version)".into(),
        )
    })?;
    if KNOWN_REVISIONS.iter().any(|(r, _)| *r == revision) {
        return Ok(revision);
    }
    Err(StoreError::Invalid(format!(
        "upstream Watcher's tables are at alembic revision {revision}, which watcherd does not \
         know (it knows {}): bring them to Watcher 17 first with upstream's \
         `watcher-db-manage upgrade`; nothing was copied",
        KNOWN_REVISIONS
            .iter()
            .map(|(r, n)| format!("{r}, {n}"))
            .collect::<Vec<_>>()
            .join("; ")
    )))
}

/// Records a copy made in this transaction.
pub(crate) fn record_sync(
    conn: &Conn,
    direction: &str,
    revision: &str,
    summary: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO upstream_syncs (direction, revision, at, summary) VALUES (?1, ?2, ?3, ?4)",
        args![direction, revision, now_micros(), summary],
    )?;
    Ok(())
}

/// Says once at start when the database also holds upstream Watcher's
/// tables that were not taken over: an operator switching over must not
/// believe their audits and plans came along by themselves.
pub(crate) fn note_at_start(conn: &Conn) {
    let Some(revision) = upstream_revision(conn) else {
        return; // not an upstream Watcher's database
    };
    match last_sync(conn) {
        Ok(Some(last)) if last.direction == "import" => tracing::info!(
            alembic_revision = %revision,
            taken_over_at = %last.at,
            "this database also holds upstream Watcher's tables, whose objects were taken over"
        ),
        _ if KNOWN_REVISIONS.iter().any(|(r, _)| *r == revision) => tracing::warn!(
            alembic_revision = %revision,
            "this database also holds upstream Watcher's tables; their audits, plans and \
             templates are not served until `watcherd db upgrade` takes them over (stop \
             upstream Watcher first)"
        ),
        _ => tracing::warn!(
            alembic_revision = %revision,
            "this database also holds upstream Watcher's tables, at a revision watcherd cannot \
             take over (it knows Watcher 17's); watcherd neither reads nor changes them"
        ),
    }
}

impl Store {
    /// Upstream Watcher's tables in this database, if there are any
    /// (MariaDB or MySQL only: upstream's deployments run on them), with
    /// the services of upstream's seen up within `seen_within` seconds.
    pub async fn upstream_database(
        &self,
        seen_within: i64,
    ) -> Result<Option<UpstreamDatabase>, StoreError> {
        self.read(move |conn| {
            let Some(revision) = upstream_revision(conn) else {
                return Ok(None);
            };
            let db = database_name(conn)?;
            let live_services = conn.query_map(
                &format!(
                    "SELECT name, host, TIMESTAMPDIFF(SECOND, last_seen_up, UTC_TIMESTAMP()) \
                     FROM {} WHERE deleted_at IS NULL AND last_seen_up IS NOT NULL \
                     AND last_seen_up > UTC_TIMESTAMP() - INTERVAL ?1 SECOND ORDER BY host, name",
                    upstream_table(&db, "services")
                ),
                args![seen_within],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let release = KNOWN_REVISIONS
                .iter()
                .find(|(r, _)| *r == revision)
                .map(|(_, name)| *name);
            Ok(Some(UpstreamDatabase {
                revision,
                release,
                live_services,
                last_sync: last_sync(conn)?,
            }))
        })
        .await
    }
}
