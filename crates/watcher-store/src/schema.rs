//! The database schema, applied in order at start-up. A migration is never
//! edited once released: add a new entry instead.

use crate::error::StoreError;
use crate::sql::{args, Conn, Dialect};

pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE goals (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    efficacy_specification TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER,
    deleted_at INTEGER
);
CREATE TABLE strategies (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    goal_id INTEGER NOT NULL REFERENCES goals(id),
    parameters_spec TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER,
    deleted_at INTEGER
);
CREATE TABLE audits (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    audit_type TEXT NOT NULL,
    state TEXT NOT NULL,
    goal_id INTEGER NOT NULL REFERENCES goals(id),
    strategy_id INTEGER REFERENCES strategies(id),
    parameters TEXT NOT NULL,
    interval TEXT,
    scope TEXT NOT NULL,
    auto_trigger INTEGER NOT NULL,
    force INTEGER NOT NULL,
    next_run_time INTEGER,
    start_time INTEGER,
    end_time INTEGER,
    hostname TEXT,
    status_message TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER,
    deleted_at INTEGER
);
CREATE INDEX audits_state ON audits(state);
CREATE TABLE action_plans (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    audit_id INTEGER NOT NULL REFERENCES audits(id),
    strategy_id INTEGER NOT NULL REFERENCES strategies(id),
    state TEXT NOT NULL,
    efficacy_indicators TEXT NOT NULL,
    global_efficacy TEXT NOT NULL,
    hostname TEXT,
    status_message TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER,
    deleted_at INTEGER
);
CREATE INDEX action_plans_state ON action_plans(state);
CREATE TABLE actions (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    action_plan_id INTEGER NOT NULL REFERENCES action_plans(id),
    action_type TEXT NOT NULL,
    input_parameters TEXT NOT NULL,
    parents TEXT NOT NULL,
    state TEXT NOT NULL,
    status_message TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER,
    deleted_at INTEGER
);
CREATE INDEX actions_plan ON actions(action_plan_id, state);
CREATE TABLE state_history (
    seq INTEGER PRIMARY KEY,
    entity TEXT NOT NULL,
    uuid TEXT NOT NULL,
    action_plan_uuid TEXT,
    from_state TEXT,
    to_state TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX state_history_plan ON state_history(action_plan_uuid, seq);
-- Plan and action rows are found through the plan; only audits need their own.
CREATE INDEX state_history_audit ON state_history(uuid, seq) WHERE entity = 'audit';
CREATE TABLE action_journal (
    action_uuid TEXT PRIMARY KEY,
    intent TEXT NOT NULL,
    operation_id TEXT,
    recorded_at INTEGER NOT NULL,
    updated_at INTEGER
);
"#,
    r#"
CREATE TABLE services (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    host TEXT NOT NULL,
    last_seen_up INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER,
    deleted_at INTEGER,
    UNIQUE (name, host)
);
"#,
    r#"
CREATE TABLE audit_templates (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT,
    goal_id INTEGER NOT NULL REFERENCES goals(id),
    strategy_id INTEGER REFERENCES strategies(id),
    scope TEXT NOT NULL,
    default_parameters TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER,
    deleted_at INTEGER
);
-- Names are unique among live templates; deleted ones keep theirs.
CREATE UNIQUE INDEX audit_templates_live_name ON audit_templates(name) WHERE deleted_at IS NULL;
"#,
    r#"
-- EVENT audits: set by a webhook, cleared when the engine starts the run.
ALTER TABLE audits ADD COLUMN triggered INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
-- Notifications are rendered from state_history (written in the same
-- transaction as each change): the relay's cursor is the last history row
-- published, and `nonce` makes message ids unique to this database.
CREATE TABLE notification_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL,
    nonce INTEGER NOT NULL
);
"#,
    r#"
-- Appliers lease the plans they run; a plan whose lease has expired is
-- taken over by another applier.
ALTER TABLE action_plans ADD COLUMN lease_expires_at INTEGER;
"#,
    r#"
-- One notification relay at a time among processes sharing the database:
-- the relay holding this lease publishes, the others wait.
ALTER TABLE notification_cursor ADD COLUMN holder TEXT;
ALTER TABLE notification_cursor ADD COLUMN lease_expires_at INTEGER;
"#,
    r#"
-- Background work reads only what can change: the plans to expire by age,
-- the plans to start on their own (auto_trigger), without scanning the rest.
CREATE INDEX action_plans_state_created ON action_plans(state, created_at);
CREATE INDEX audits_auto_trigger ON audits(id) WHERE auto_trigger = 1;
CREATE INDEX action_plans_audit_state ON action_plans(audit_id, state);
-- Lists sorted by time read the first page off an index, not a sort of
-- every row.
CREATE INDEX action_plans_created ON action_plans(created_at);
CREATE INDEX action_plans_updated ON action_plans(updated_at);
CREATE INDEX audits_created ON audits(created_at);
CREATE INDEX audits_updated ON audits(updated_at);
CREATE INDEX actions_created ON actions(created_at);
CREATE INDEX actions_updated ON actions(updated_at);
-- Actions listed by state (the plan-first index cannot give that order).
CREATE INDEX actions_state ON actions(state);
"#,
    r#"
-- The embedded simulated cloud's state (hosts, instances, volumes,
-- operations, counters), so that a restart finds the same cloud. A row is
-- replaced only by a later save (save_no).
CREATE TABLE sim_cloud_rows (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    save_no INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
"#,
    r#"
-- Copies between an upstream Watcher's tables and watcherd's in the same
-- database (`watcherd db upgrade`, `watcherd db export-upstream`): which
-- way, at what upstream revision, when, and what was copied.
CREATE TABLE upstream_syncs (
    id INTEGER PRIMARY KEY,
    direction TEXT NOT NULL,
    revision TEXT NOT NULL,
    at INTEGER NOT NULL,
    summary TEXT NOT NULL
);
"#,
    r#"
-- The scoring engines are built in; an upstream Watcher's database gave
-- them UUIDs of its own, which a takeover keeps (by name) so that what
-- upstream served stays served.
CREATE TABLE scoring_engine_uuids (
    name TEXT PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE
);
"#,
    r#"
-- A pause that also aborts the running actions (they run again on
-- resume): set with the pause, read by the applier that runs the plan.
ALTER TABLE action_plans ADD COLUMN pause_aborts INTEGER NOT NULL DEFAULT 0;
"#,
];

/// A migration in PostgreSQL's words. The migrations are written once, for
/// SQLite: its `INTEGER PRIMARY KEY` (the rowid) becomes an identity column
/// and every other `INTEGER` a `BIGINT` (SQLite's integers are 64-bit).
pub fn for_postgres(sql: &str) -> String {
    sql.replace(
        "INTEGER PRIMARY KEY",
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    )
    .replace(" INTEGER", " BIGINT")
}

/// Text columns that are keys or in an index: MariaDB indexes a
/// `VARCHAR(255)`, not a `TEXT`. Every other text column is a `LONGTEXT`.
const MYSQL_KEY_COLUMNS: &[&str] = &[
    "uuid",
    "name",
    "state",
    "entity",
    "action_plan_uuid",
    "action_uuid",
    "kind",
    "id",
    "host",
];

/// A migration in MariaDB's words, one statement each, every one of them
/// safe to run again (MariaDB commits each DDL statement on its own, so a
/// migration cut short is finished by the next start): `IF NOT EXISTS`
/// everywhere, `BIGINT AUTO_INCREMENT` keys, `VARCHAR(255)` for text that
/// is indexed, utf8mb4 compared as bytes (as SQLite and PostgreSQL compare
/// text). A partial index becomes an index led by its condition's column;
/// the unique name of live templates a unique index on a generated column
/// that holds the name only while the template is not deleted.
pub fn for_mysql(sql: &str) -> Vec<String> {
    crate::mariadb::split_statements(sql)
        .into_iter()
        .map(|st| {
            // A one-row table's key is checked, never generated.
            let st = st
                .replace("INTEGER PRIMARY KEY CHECK", "BIGINT PRIMARY KEY CHECK")
                .replace("INTEGER PRIMARY KEY", "BIGINT AUTO_INCREMENT PRIMARY KEY")
                .replace(" INTEGER", " BIGINT");
            if let Some(rest) = st.strip_prefix("CREATE TABLE ") {
                let columns: Vec<String> = rest.lines().map(mysql_text_column).collect();
                format!(
                    "CREATE TABLE IF NOT EXISTS {} ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                    columns.join("\n")
                )
            } else if let Some(rest) = st.strip_prefix("ALTER TABLE ") {
                mysql_text_column(&format!("ALTER TABLE {}", rest.replace("ADD COLUMN ", "ADD COLUMN IF NOT EXISTS ")))
            } else if st.starts_with("CREATE UNIQUE INDEX audit_templates_live_name") {
                "ALTER TABLE audit_templates ADD COLUMN IF NOT EXISTS live_name VARCHAR(255) \
                 AS (IF(deleted_at IS NULL, name, NULL)) STORED, \
                 ADD UNIQUE INDEX IF NOT EXISTS audit_templates_live_name (live_name)"
                    .to_string()
            } else if let Some(rest) = st.strip_prefix("CREATE INDEX ") {
                let rest = match rest.split_once(" WHERE ") {
                    None => rest.to_string(),
                    Some((index, condition)) => {
                        let column = condition.split_whitespace().next().unwrap_or_default();
                        index.replacen('(', &format!("({column}, "), 1)
                    }
                };
                format!("CREATE INDEX IF NOT EXISTS {rest}")
            } else {
                st
            }
        })
        .collect()
}

/// `name TEXT` as `VARCHAR(255)` or `LONGTEXT` ([`MYSQL_KEY_COLUMNS`]).
fn mysql_text_column(line: &str) -> String {
    let Some(at) = line.find(" TEXT") else {
        return line.to_string();
    };
    let name = line[..at].split_whitespace().last().unwrap_or_default();
    let ty = if MYSQL_KEY_COLUMNS.contains(&name) {
        " VARCHAR(255)"
    } else {
        " LONGTEXT"
    };
    format!("{}{ty}{}", &line[..at], &line[at + " TEXT".len()..])
}

/// Applies the migrations not applied yet, all in one write transaction:
/// several processes may start on one database at once, and the write lock
/// makes the second wait and then find the work done.
pub(crate) fn migrate(conn: &Conn) -> Result<(), StoreError> {
    let dialect = conn.dialect();
    if dialect == Dialect::Mysql {
        return migrate_mysql(conn);
    }
    conn.batch(&dialect.begin_write())?;
    let result = (|| {
        conn.batch("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
        apply_missing(conn, |sql| match dialect {
            Dialect::Postgres => conn.batch(&for_postgres(sql)),
            _ => conn.batch(sql),
        })
    })();
    match result {
        Ok(()) => conn.batch("COMMIT"),
        Err(e) => {
            let _ = conn.batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Applies, through `apply`, each migration after the version recorded in
/// `schema_version`, and records it.
fn apply_missing(
    conn: &Conn,
    apply: impl Fn(&str) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let current: i64 = conn
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", ())?
        .get(0)?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version > current {
            apply(sql)?;
            conn.execute("INSERT INTO schema_version VALUES (?1)", args![version])?;
        }
    }
    Ok(())
}

/// MariaDB's migrations: DDL commits on its own there, so instead of one
/// transaction, a named lock keeps two processes from migrating at once,
/// and every statement is safe to run again ([`for_mysql`]).
fn migrate_mysql(conn: &Conn) -> Result<(), StoreError> {
    let locked: Option<i64> = conn
        .query_one("SELECT GET_LOCK('watcherd-schema', 300)", ())?
        .get(0)?;
    if locked != Some(1) {
        return Err(StoreError::Unavailable(
            "another watcherd has been migrating the schema for 5 minutes".into(),
        ));
    }
    let result = (|| {
        conn.batch(
            "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL) ENGINE=InnoDB; \
             CREATE TABLE IF NOT EXISTS writers_lock (id BIGINT PRIMARY KEY, locks BIGINT NOT NULL) ENGINE=InnoDB; \
             INSERT IGNORE INTO writers_lock VALUES (1, 0)",
        )?;
        apply_missing(conn, |sql| {
            for_mysql(sql)
                .iter()
                .try_for_each(|statement| conn.batch(statement))
        })
    })();
    let _ = conn.query_one("SELECT RELEASE_LOCK('watcherd-schema')", ());
    result?;
    crate::upstream::note_at_start(conn);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_schema_has_identity_keys_and_64_bit_integers() {
        let pg = for_postgres(MIGRATIONS[0]);
        assert!(pg.contains("id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"));
        assert!(pg.contains("created_at BIGINT NOT NULL"));
        assert!(!pg.contains("INTEGER"));
    }

    #[test]
    fn mariadb_schema_indexes_short_text_and_keeps_long_text_whole() {
        let all: Vec<String> = MIGRATIONS.iter().flat_map(|m| for_mysql(m)).collect();
        let goals = &all[0];
        assert!(
            goals.starts_with("CREATE TABLE IF NOT EXISTS goals"),
            "{goals}"
        );
        assert!(
            goals.contains("id BIGINT AUTO_INCREMENT PRIMARY KEY,"),
            "{goals}"
        );
        assert!(
            goals.contains("uuid VARCHAR(255) NOT NULL UNIQUE"),
            "{goals}"
        );
        assert!(
            goals.contains("efficacy_specification LONGTEXT NOT NULL"),
            "{goals}"
        );
        assert!(goals.ends_with("COLLATE=utf8mb4_bin"), "{goals}");
        assert!(all
            .iter()
            .all(|s| !s.contains(" TEXT") && !s.contains("INTEGER")));
        assert!(all.contains(
            &"CREATE INDEX IF NOT EXISTS state_history_audit ON state_history(entity, uuid, seq)"
                .to_string()
        ));
        assert!(all
            .iter()
            .any(|s| s.contains("live_name VARCHAR(255) AS (IF(deleted_at IS NULL, name, NULL))")));
        assert!(all.contains(
            &"ALTER TABLE audits ADD COLUMN IF NOT EXISTS triggered BIGINT NOT NULL DEFAULT 0"
                .to_string()
        ));
    }
}
