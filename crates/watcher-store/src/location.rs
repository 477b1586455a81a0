//! Where the database lives (`DatabaseLocation`, parsed from a `--database`
//! URL) and how its connections are opened and checked.

use crate::error::with_causes;
use crate::error::StoreError;
use crate::mariadb;
use crate::pg_connect;
use crate::sql::{Conn, Dialect, PgConn};
use rusqlite::OpenFlags;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use watcher_core::secret::redact_url;

/// Where the database lives, parsed from a `--database` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    Memory,
    File(PathBuf),
    /// A `postgres://` URL, as libpq takes it.
    Postgres(PostgresUrl),
    /// A `mysql://` URL (MariaDB or MySQL), as SQLAlchemy and PyMySQL take it.
    Mysql(MysqlUrl),
}

/// A database server's URL read once: its connection settings and TLS
/// configuration (which reads the system's CA bundle) are built when the
/// URL is parsed (`T`: PostgreSQL's or MariaDB's) and shared by every
/// connection opened from it. Compared by the URL; shown without its
/// password.
pub struct ServerUrl<T> {
    url: String,
    target: Arc<T>,
}

/// A `postgres://` URL read once.
pub type PostgresUrl = ServerUrl<pg_connect::PgTarget>;
/// A `mysql://` URL read once.
pub type MysqlUrl = ServerUrl<mariadb::MysqlTarget>;

impl<T> ServerUrl<T> {
    /// The URL as given (with its password: not for messages).
    pub fn as_str(&self) -> &str {
        &self.url
    }
}

// By hand: derived, these would ask `T` for what only the `Arc` needs.
impl<T> Clone for ServerUrl<T> {
    fn clone(&self) -> Self {
        ServerUrl {
            url: self.url.clone(),
            target: self.target.clone(),
        }
    }
}

impl<T> PartialEq for ServerUrl<T> {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
    }
}

impl<T> Eq for ServerUrl<T> {}

impl<T> std::fmt::Debug for ServerUrl<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(&self.url))
    }
}

impl DatabaseLocation {
    /// Accepts `sqlite::memory:`, `sqlite://PATH`, `sqlite:PATH`, a bare
    /// path, `postgres://user@host:port/dbname` (`postgresql://` too), or
    /// `mysql://user:password@host:port/dbname` (`mysql+pymysql://` too, as
    /// upstream's `watcher.conf` spells it).
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
            // SQLAlchemy's drivers all speak to the same server.
            if [
                "mysql",
                "mysql+pymysql",
                "mysql+mysqldb",
                "mysql+mysqlconnector",
                "mariadb",
                "mariadb+pymysql",
            ]
            .contains(&scheme)
            {
                return Ok(DatabaseLocation::Mysql(MysqlUrl {
                    target: Arc::new(mariadb::parse(url)?),
                    url: url.to_string(),
                }));
            }
            if scheme != "sqlite" {
                return Err(StoreError::Invalid(format!(
                    "database URL {}: the scheme '{scheme}' is not supported; use \
                     sqlite:///PATH, sqlite::memory:, postgres://USER@HOST[:PORT]/DATABASE \
                     or mysql://USER:PASSWORD@HOST[:PORT]/DATABASE",
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

    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            DatabaseLocation::Postgres(_) => Dialect::Postgres,
            DatabaseLocation::Mysql(_) => Dialect::Mysql,
            _ => Dialect::Sqlite,
        }
    }

    /// A connection for reading; `None` for an in-memory database, whose
    /// only connection is the writer's.
    pub(crate) fn open_reader(&self) -> Result<Option<Conn>, StoreError> {
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
            DatabaseLocation::Mysql(url) => Ok(Some(open_mysql(url)?)),
        }
    }
}

/// The WAL file is kept under this size (`docs/operations.md`).
pub const WAL_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

pub(crate) fn open_sqlite(
    path: &Path,
    flags: OpenFlags,
) -> Result<rusqlite::Connection, StoreError> {
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

pub(crate) fn open_postgres(url: &PostgresUrl) -> Result<PgConn, StoreError> {
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

pub(crate) fn open_mysql(url: &MysqlUrl) -> Result<Conn, StoreError> {
    Ok(Conn::Mysql(Box::new(url.target.connect(&url.url)?)))
}

/// `PRAGMA quick_check` when the writer opens the file: a database
/// damaged on disk stops watcherd at start, naming the file, instead of
/// answering some requests with 500s later.
pub(crate) fn check_integrity(conn: &rusqlite::Connection, path: &Path) -> Result<(), StoreError> {
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
        let Ok(DatabaseLocation::Mysql(my)) =
            DatabaseLocation::parse("mysql+pymysql://watcher:secret@db1/watcher?charset=utf8")
        else {
            panic!("not MariaDB")
        };
        assert!(!format!("{my:?}").contains("secret"));
        let e = DatabaseLocation::parse("oracle://root:secret@db1/watcher").unwrap_err();
        assert!(e.to_string().contains("'oracle' is not supported"), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
        let e = DatabaseLocation::parse("postgres://watcher:secret@db1:notaport/w").unwrap_err();
        assert!(e.to_string().contains("postgres://watcher:***@"), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
    }
}
