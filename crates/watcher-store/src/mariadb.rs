//! MariaDB and MySQL: the database upstream Watcher's deployments already
//! run, as a third store beside SQLite and PostgreSQL.
//!
//! The store's statements are written once (in `sql.rs`); here they are
//! put in MariaDB's words when first run, and the result is kept with the
//! connection:
//!
//! - `?N` placeholders become bare `?`, the arguments repeated and reordered
//!   to match (MariaDB numbers nothing);
//! - every table of ours is named with the prefix `watcherd_`: an upstream
//!   Watcher's database has tables called `audits`, `action_plans`,
//!   `actions` and so on, and watcherd's live beside them in the same
//!   database (what the operator's grants already allow) without touching
//!   them;
//! - the column names MariaDB reserves (`interval`, `force`) are quoted;
//! - `ON CONFLICT (..) DO UPDATE SET c = excluded.c` becomes
//!   `ON DUPLICATE KEY UPDATE c = VALUES(c)`, `ON CONFLICT DO NOTHING` an
//!   `INSERT IGNORE`, `CAST(.. AS BIGINT)` a `CAST(.. AS SIGNED)`, and an
//!   `INSERT .. RETURNING id` the insert's own `LAST_INSERT_ID()` (MySQL
//!   has no `RETURNING`).
//!
//! Statements that cannot be said this way ask the `Dialect` of `sql.rs`.

use crate::error::{with_causes, StoreError};
use crate::values::{Row, Value};
use mysql::prelude::Queryable;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use watcher_core::secret::{percent_decode, redact_url};

/// The prefix of every table watcherd makes in a MariaDB database.
pub(crate) const TABLE_PREFIX: &str = "watcherd_";

/// The tables of ours, as the statements name them.
const TABLES: &[&str] = &[
    "goals",
    "strategies",
    "audits",
    "action_plans",
    "actions",
    "state_history",
    "action_journal",
    "services",
    "audit_templates",
    "notification_cursor",
    "sim_cloud_rows",
    "schema_version",
    "writers_lock",
    "upstream_syncs",
    "scoring_engine_uuids",
];

/// Column names that are reserved words in MariaDB and MySQL.
const RESERVED: &[&str] = &["interval", "force"];

/// A statement in MariaDB's words and how to bind its arguments.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Translated {
    pub text: String,
    /// For each `?` of `text`, the index of the store's argument it takes.
    pub order: Vec<usize>,
    /// An `INSERT .. RETURNING id`: answered with the insert's id.
    pub returning_id: bool,
}

/// Puts one statement of the store in MariaDB's words.
pub(crate) fn translate(sql: &str) -> Translated {
    let mut sql = sql.trim().trim_end_matches(';').trim_end().to_string();
    let mut returning_id = false;
    if let Some(head) = sql.strip_suffix("RETURNING id") {
        if head.trim_start().starts_with("INSERT") {
            returning_id = true;
            sql = head.trim_end().to_string();
        }
    }
    if let Some(at) = sql.find("ON CONFLICT") {
        let rest = &sql[at..];
        if rest.contains("DO NOTHING") {
            sql = sql[..at]
                .trim_end()
                .replacen("INSERT INTO", "INSERT IGNORE INTO", 1);
        } else if let Some(set) = rest.find("DO UPDATE SET") {
            sql = format!(
                "{}ON DUPLICATE KEY UPDATE{}",
                &sql[..at],
                &rest[set + "DO UPDATE SET".len()..]
            );
        }
    }
    let (text, order) = rewrite_tokens(&sql);
    Translated {
        text,
        order,
        returning_id,
    }
}

/// The token-level rewrites: placeholders, table names, reserved words,
/// `excluded.c`, `AS BIGINT`; quoted text is left alone and comments dropped.
fn rewrite_tokens(sql: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut order = vec![];
    let chars: Vec<char> = sql.chars().collect();
    let (mut i, mut next) = (0usize, 0usize);
    let mut last_word = String::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i = (i + 1).min(chars.len());
                out.extend(&chars[start..i]);
                continue;
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '?' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let n = if start == i {
                    next += 1;
                    next
                } else {
                    chars[start..i]
                        .iter()
                        .collect::<String>()
                        .parse()
                        .unwrap_or(1)
                };
                order.push(n.saturating_sub(1));
                out.push('?');
                continue;
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let qualified = start > 0 && chars[start - 1] == '.';
                if word == "excluded" && chars.get(i) == Some(&'.') {
                    let col_start = i + 1;
                    let mut j = col_start;
                    while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                        j += 1;
                    }
                    let col: String = chars[col_start..j].iter().collect();
                    out.push_str(&format!("VALUES({})", quote_reserved(&col)));
                    i = j;
                } else if TABLES.contains(&word.as_str()) && !qualified {
                    out.push_str(TABLE_PREFIX);
                    out.push_str(&word);
                } else if word == "BIGINT" && last_word == "AS" {
                    out.push_str("SIGNED");
                } else {
                    out.push_str(&quote_reserved(&word));
                }
                last_word = word;
                continue;
            }
            c => out.push(c),
        }
        i += 1;
    }
    (out, order)
}

fn quote_reserved(word: &str) -> String {
    if RESERVED.contains(&word) {
        format!("`{word}`")
    } else {
        word.to_string()
    }
}

/// Splits a batch of statements on the semicolons between them (not those
/// in quotes or comments).
pub(crate) fn split_statements(sql: &str) -> Vec<String> {
    let mut out = vec![];
    let mut current = String::new();
    let mut chars = sql.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                current.push(c);
            }
            '-' if !quoted && chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        current.push('\n');
                        break;
                    }
                }
            }
            ';' if !quoted => out.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    out.push(current);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A batch of the store's statements (tables named as the store names
/// them) in MariaDB's words, one statement each: for tools and tests that
/// look at a watcherd database on MariaDB behind its back.
pub fn in_mariadb_words(sql: &str) -> Vec<String> {
    split_statements(sql)
        .iter()
        .map(|s| translate(s).text)
        .collect()
}

/// What to connect to: a `mysql://` URL as SQLAlchemy and PyMySQL read it.
#[derive(Clone)]
pub struct MysqlTarget {
    opts: mysql::Opts,
    /// Every host of the URL, in order; `opts` names the first.
    hosts: Vec<(String, u16)>,
}

/// `host[:port]` or `[v6][:port]`; MariaDB's port when none is given.
fn parse_host(hostport: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| "an IPv6 address without its ']'".to_string())?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    let port: u16 = match port {
        None | Some("") => 3306,
        Some(p) => p
            .parse()
            .map_err(|_| format!("port '{p}' is not a number"))?,
    };
    let host = if host.is_empty() {
        "localhost".to_string()
    } else {
        host
    };
    Ok((host, port))
}

/// The query parameters of upstream's URLs that are understood here.
const KNOWN_PARAMETERS: &str = "charset, ssl_ca, ssl_cert, ssl_key, ssl_verify_cert, \
     ssl_verify_identity, ssl, connect_timeout, read_timeout, write_timeout, unix_socket";

// Long because one arm per URL parameter, each short.
pub(crate) fn parse(url: &str) -> Result<MysqlTarget, StoreError> {
    let invalid = |what: String| {
        StoreError::Invalid(format!(
            "database URL {}: {what}; expected \
             mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?charset=utf8&ssl_ca=FILE]",
            redact_url(url)
        ))
    };
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or_else(|| invalid("no '://'".into()))?;
    let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, database) = base
        .split_once('/')
        .ok_or_else(|| invalid("no database name after the host".into()))?;
    let database = percent_decode(database);
    if database.is_empty() {
        return Err(invalid("no database name after the host".into()));
    }
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, pass) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((u, p)) => (Some(percent_decode(u)), Some(percent_decode(p))),
            None => (Some(percent_decode(u)), None),
        },
        None => (None, None),
    };
    // Several hosts, tried in order (as libpq's `host=a,b`): the nodes of
    // a Galera cluster, without a proxy in front of them.
    let hosts = hostport
        .split(',')
        .map(|hp| parse_host(hp).map_err(&invalid))
        .collect::<Result<Vec<_>, _>>()?;
    let (host, port) = hosts[0].clone();
    let mut builder = mysql::OptsBuilder::new()
        .ip_or_hostname(Some(host))
        .tcp_port(port)
        .user(user)
        .pass(pass)
        .db_name(Some(database))
        .prefer_socket(false)
        .stmt_cache_size(Some(256))
        .tcp_connect_timeout(Some(Duration::from_secs(5)))
        .tcp_keepalive_time_ms(Some(30_000));
    let (mut ca, mut cert, mut key) = (None::<PathBuf>, None::<PathBuf>, None::<PathBuf>);
    let (mut tls, mut verify_cert, mut verify_identity) = (false, None::<bool>, false);
    let flag = |k: &str, v: &str| match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(invalid(format!("{k}={v} is not true or false"))),
    };
    let seconds = |k: &str, v: &str| {
        v.parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| invalid(format!("{k}={v} is not a number of seconds")))
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        match k {
            // Every connection speaks utf8mb4 (what utf8 means to PyMySQL
            // when the server has it); another charset would garble names.
            "charset" => {
                if !["utf8", "utf8mb4", "utf8mb3"].contains(&v.to_ascii_lowercase().as_str()) {
                    return Err(invalid(format!(
                        "charset={v}: watcherd stores text as utf8mb4; use charset=utf8 or utf8mb4"
                    )));
                }
            }
            "ssl_ca" => (ca, tls) = (Some(PathBuf::from(v)), true),
            "ssl_cert" => (cert, tls) = (Some(PathBuf::from(v)), true),
            "ssl_key" => (key, tls) = (Some(PathBuf::from(v)), true),
            "ssl" => tls |= flag(k, &v)?,
            "ssl_verify_cert" => verify_cert = Some(flag(k, &v)?),
            "ssl_verify_identity" => verify_identity = flag(k, &v)?,
            "connect_timeout" => builder = builder.tcp_connect_timeout(Some(seconds(k, &v)?)),
            "read_timeout" => builder = builder.read_timeout(Some(seconds(k, &v)?)),
            "write_timeout" => builder = builder.write_timeout(Some(seconds(k, &v)?)),
            "unix_socket" => builder = builder.socket(Some(v)).prefer_socket(true),
            other => {
                return Err(invalid(format!(
                    "the parameter '{other}' is not understood (known: {KNOWN_PARAMETERS})"
                )))
            }
        }
    }
    if cert.is_some() != key.is_some() {
        return Err(invalid("ssl_cert and ssl_key go together".into()));
    }
    for file in [&ca, &cert, &key].into_iter().flatten() {
        if let Err(e) = std::fs::metadata(file) {
            return Err(invalid(format!("cannot read {}: {e}", file.display())));
        }
    }
    if tls {
        // As PyMySQL: the chain is verified when a CA is given (unless
        // ssl_verify_cert=false), the host name only with
        // ssl_verify_identity=true.
        let verify_cert = verify_cert.unwrap_or(ca.is_some());
        let mut ssl = mysql::SslOpts::default()
            .with_danger_accept_invalid_certs(!verify_cert)
            .with_danger_skip_domain_validation(!verify_identity);
        if let Some(ca) = ca {
            ssl = ssl.with_root_cert_path(Some(ca));
        }
        if let (Some(cert), Some(key)) = (cert, key) {
            ssl = ssl.with_client_identity(Some(mysql::ClientIdentity::new(cert, key)));
        }
        builder = builder.ssl_opts(Some(ssl));
    }
    let init = vec![
        "SET NAMES utf8mb4 COLLATE utf8mb4_bin".to_string(),
        // Strict: a value that does not fit is an error, never cut short;
        // `||` concatenates, as in SQLite and PostgreSQL.
        "SET SESSION sql_mode = 'TRADITIONAL,PIPES_AS_CONCAT'".to_string(),
        // Each statement sees what was committed before it, as on
        // PostgreSQL: a write transaction reads after it holds the
        // writers' lock, so it sees every commit before its own.
        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED".to_string(),
        "SET SESSION innodb_lock_wait_timeout = 20".to_string(),
    ];
    builder = builder.init(init);
    Ok(MysqlTarget {
        opts: builder.into(),
        hosts,
    })
}

impl MysqlTarget {
    /// A connection to the first host of the URL that takes one and is
    /// ready for queries (a Galera node outside the cluster's primary
    /// component answers, but refuses every query).
    pub(crate) fn connect(&self, url: &str) -> Result<MysqlConn, StoreError> {
        let mut last = None;
        let mut conn = None;
        for (host, port) in &self.hosts {
            let opts = mysql::OptsBuilder::from_opts(self.opts.clone())
                .ip_or_hostname(Some(host.clone()))
                .tcp_port(*port);
            match mysql::Conn::new(opts).and_then(|mut c| causal_reads(&mut c).map(|()| c)) {
                Ok(c) => {
                    conn = Some(c);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let conn = match (conn, last) {
            (Some(c), _) => c,
            (None, Some(e)) => return Err(self.cannot_connect(url, e)),
            (None, None) => unreachable!("a URL names at least one host"),
        };
        Ok(MysqlConn {
            conn: RefCell::new(conn),
            translated: RefCell::new(HashMap::new()),
            broken: Cell::new(false),
            rolled_back: RefCell::new(None),
        })
    }

    fn cannot_connect(&self, url: &str, e: mysql::Error) -> StoreError {
        let denied = matches!(&e, mysql::Error::MySqlError(db) if db.code == 1045);
        // MariaDB refuses a plain connection to a server that takes TLS
        // only with the same words as a wrong password.
        let hint = if denied && self.opts.get_ssl_opts().is_none() {
            "; check the user and password, and if the server takes TLS \
             connections only, add ssl_ca=FILE to the URL"
        } else {
            "; is the server up, and does the URL name the right host, port, user \
             and database?"
        };
        StoreError::Unavailable(format!(
            "cannot connect to MariaDB at {}: {}{hint}",
            redact_url(url),
            with_causes(&e)
        ))
    }
}

/// Checks that the server serves queries (a Galera node outside the
/// primary component refuses them), and on a Galera node asks for causal
/// reads: a node applies the others' commits a moment after they commit,
/// and a read there could miss a change another node has already
/// confirmed (a cancel, a claim). With `wsrep_sync_wait` a read, an
/// update or a delete first waits until the node has applied every commit
/// before it, as on a single server.
fn causal_reads(conn: &mut mysql::Conn) -> mysql::Result<()> {
    conn.query_drop("SELECT 1")?;
    // MySQL without Galera has no such variable: nothing to ask for.
    if let Ok(Some(1)) = conn.query_first::<i64, _>("SELECT @@wsrep_on") {
        conn.query_drop("SET SESSION wsrep_sync_wait = 3")?;
    }
    Ok(())
}

/// An open MariaDB connection, used by one thread at a time.
pub(crate) struct MysqlConn {
    conn: RefCell<mysql::Conn>,
    /// The statements as the store wrote them, in MariaDB's words.
    translated: RefCell<HashMap<String, Arc<Translated>>>,
    /// Set once the connection failed under a statement: it is replaced.
    broken: Cell<bool>,
    /// Why the server rolled the open transaction back on its own (a
    /// deadlock, a Galera conflict): until the writer ends it, every
    /// statement fails, so that nothing runs outside the transaction and
    /// its lock, and the commit fails too.
    rolled_back: RefCell<Option<String>>,
}

impl MysqlConn {
    fn translated(&self, sql: &str) -> Arc<Translated> {
        if let Some(t) = self.translated.borrow().get(sql) {
            return t.clone();
        }
        let t = Arc::new(translate(sql));
        let mut cache = self.translated.borrow_mut();
        if cache.len() >= 1024 {
            cache.clear();
        }
        cache.insert(sql.to_string(), t.clone());
        t
    }

    fn failed(&self, e: mysql::Error) -> StoreError {
        // 1305: the writer's own savepoint is gone, which only a rollback
        // by the server does (Galera aborts a transaction that conflicts
        // with one replicated from another node, and the next savepoint
        // statement finds nothing).
        let rolled_back =
            matches!(&e, mysql::Error::MySqlError(db) if [1213, 1205, 1305].contains(&db.code));
        // No answer, or a server that will not serve this session any more
        // (shutting down, the session killed, a Galera node outside the
        // primary component): the connection is replaced, on the next host
        // of the URL that serves.
        let connection_lost = match &e {
            mysql::Error::MySqlError(db) => [1047, 1053, 1927, 4031].contains(&db.code),
            _ => true,
        };
        let e = StoreError::from(e);
        if rolled_back {
            let why = match &e {
                StoreError::Unavailable(m) => m.clone(),
                other => other.to_string(),
            };
            *self.rolled_back.borrow_mut() = Some(why);
        } else if connection_lost && matches!(e, StoreError::Unavailable(_)) {
            self.broken.set(true);
        }
        e
    }

    /// Refuses a statement in a transaction the server has rolled back.
    fn check_transaction(&self, statement: &str) -> Result<(), StoreError> {
        let ends = statement.starts_with("START TRANSACTION")
            || (statement.starts_with("ROLLBACK") && !statement.starts_with("ROLLBACK TO"));
        if ends {
            *self.rolled_back.borrow_mut() = None;
            return Ok(());
        }
        match &*self.rolled_back.borrow() {
            Some(why) => Err(StoreError::Unavailable(format!(
                "the server rolled the transaction back: {why}"
            ))),
            None => Ok(()),
        }
    }

    fn params(t: &Translated, args: &[Value]) -> mysql::Params {
        if t.order.is_empty() {
            return mysql::Params::Empty;
        }
        mysql::Params::Positional(
            t.order
                .iter()
                .map(|&i| match args.get(i) {
                    Some(Value::Int(v)) => mysql::Value::Int(*v),
                    Some(Value::Text(s)) => mysql::Value::Bytes(s.clone().into_bytes()),
                    Some(Value::Null) | None => mysql::Value::NULL,
                })
                .collect(),
        )
    }

    pub fn execute(&self, sql: &str, args: &[Value]) -> Result<usize, StoreError> {
        self.check_transaction(sql)?;
        let t = self.translated(sql);
        let mut conn = self.conn.borrow_mut();
        let result = conn
            .exec_iter(t.text.as_str(), Self::params(&t, args))
            .map_err(|e| self.failed(e))?;
        Ok(result.affected_rows() as usize)
    }

    pub fn query(&self, sql: &str, args: &[Value]) -> Result<Vec<Row>, StoreError> {
        self.check_transaction(sql)?;
        let t = self.translated(sql);
        let mut conn = self.conn.borrow_mut();
        let mut result = conn
            .exec_iter(t.text.as_str(), Self::params(&t, args))
            .map_err(|e| self.failed(e))?;
        if t.returning_id {
            let id = result.last_insert_id().unwrap_or(0);
            drop(result);
            return Ok(vec![Row::new(
                Arc::from(vec!["id".to_string()]),
                vec![Value::Int(id as i64)],
            )]);
        }
        let columns: Arc<[String]> = result
            .columns()
            .as_ref()
            .iter()
            .map(|c| c.name_str().into_owned())
            .collect();
        let mut rows = vec![];
        for row in result.by_ref() {
            let row = row.map_err(|e| self.failed(e))?;
            let types: Vec<mysql::consts::ColumnType> =
                row.columns_ref().iter().map(|c| c.column_type()).collect();
            let values = row
                .unwrap()
                .into_iter()
                .zip(types)
                .map(|(v, ty)| value(v, ty))
                .collect();
            rows.push(Row::new(columns.clone(), values));
        }
        Ok(rows)
    }

    /// Runs statements without arguments, one after another.
    pub fn batch(&self, sql: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.borrow_mut();
        for statement in split_statements(sql) {
            self.check_transaction(&statement)?;
            let t = translate(&statement);
            conn.query_drop(t.text).map_err(|e| self.failed(e))?;
        }
        Ok(())
    }

    pub fn is_usable(&self) -> bool {
        !self.broken.get()
    }

    pub fn rolled_back_by_server(&self) -> bool {
        self.rolled_back.borrow().is_some()
    }
}

fn value(v: mysql::Value, ty: mysql::consts::ColumnType) -> Value {
    use mysql::consts::ColumnType::{MYSQL_TYPE_DECIMAL, MYSQL_TYPE_NEWDECIMAL};
    match v {
        mysql::Value::NULL => Value::Null,
        mysql::Value::Int(i) => Value::Int(i),
        mysql::Value::UInt(u) => Value::Int(u as i64),
        mysql::Value::Float(f) => Value::Int(f as i64),
        mysql::Value::Double(f) => Value::Int(f as i64),
        // SUM() of integers is a DECIMAL, sent as its digits.
        mysql::Value::Bytes(b) if matches!(ty, MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL) => {
            let s = String::from_utf8_lossy(&b);
            s.parse::<i64>()
                .map(Value::Int)
                .or_else(|_| s.parse::<f64>().map(|f| Value::Int(f as i64)))
                .unwrap_or(Value::Text(s.into_owned()))
        }
        mysql::Value::Bytes(b) => Value::Text(String::from_utf8_lossy(&b).into_owned()),
        // The schema has no date column; an expression could give one.
        other => Value::Text(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_put_in_mariadbs_words() {
        let t = translate("SELECT id FROM actions a WHERE a.uuid = ?2 AND a.state IN (?1, ?1)");
        assert_eq!(
            t.text,
            "SELECT id FROM watcherd_actions a WHERE a.uuid = ? AND a.state IN (?, ?)"
        );
        assert_eq!(t.order, vec![1, 0, 0]);
        let t =
            translate("UPDATE audits SET interval = ?, force = ? WHERE id = ? AND x = '?1 audits'");
        assert_eq!(
            t.text,
            "UPDATE watcherd_audits SET `interval` = ?, `force` = ? WHERE id = ? AND x = '?1 audits'"
        );
        assert_eq!(t.order, vec![0, 1, 2]);
        let t = translate(
            "INSERT INTO services (name, host) VALUES (?1, ?2) \
             ON CONFLICT(name, host) DO UPDATE SET last_seen_up = excluded.last_seen_up",
        );
        assert_eq!(
            t.text,
            "INSERT INTO watcherd_services (name, host) VALUES (?, ?) \
             ON DUPLICATE KEY UPDATE last_seen_up = VALUES(last_seen_up)"
        );
        let t = translate("INSERT INTO notification_cursor (id) VALUES (1) ON CONFLICT DO NOTHING");
        assert_eq!(
            t.text,
            "INSERT IGNORE INTO watcherd_notification_cursor (id) VALUES (1)"
        );
        let t = translate("INSERT INTO action_plans (uuid) VALUES (?1) RETURNING id");
        assert!(t.returning_id);
        assert_eq!(
            t.text,
            "INSERT INTO watcherd_action_plans (uuid) VALUES (?)"
        );
        let t = translate("SELECT 1 WHERE (CAST(?2 AS BIGINT) IS NULL OR goal_id = ?2)");
        assert_eq!(
            t.text,
            "SELECT 1 WHERE (CAST(? AS SIGNED) IS NULL OR goal_id = ?)"
        );
    }

    #[test]
    fn batches_split_between_statements_not_in_comments_or_quotes() {
        let parts = split_statements(
            "-- the relay's cursor; one row\nCREATE TABLE a (x TEXT);\nINSERT INTO a VALUES ('a;b');\n",
        );
        assert_eq!(
            parts,
            vec!["CREATE TABLE a (x TEXT)", "INSERT INTO a VALUES ('a;b')"]
        );
    }

    #[test]
    fn urls_take_upstreams_parameters_and_refuse_others_without_the_password() {
        let t = parse("mysql://watcher:s%40cret@db.example:3307/watcher?charset=utf8").unwrap();
        assert_eq!(t.opts.get_ip_or_hostname(), "db.example");
        assert_eq!(t.opts.get_db_name(), Some("watcher"));
        assert_eq!(t.opts.get_tcp_port(), 3307);
        assert_eq!(t.opts.get_pass(), Some("s@cret"));
        assert!(t.opts.get_ssl_opts().is_none());
        let t = parse("mysql://w@db1,db2:3307,[::1]:3308/w").unwrap();
        assert_eq!(
            t.hosts,
            vec![
                ("db1".to_string(), 3306),
                ("db2".to_string(), 3307),
                ("::1".to_string(), 3308)
            ]
        );
        let t = parse("mysql://w@[::1]/w?ssl=true&ssl_verify_cert=false").unwrap();
        assert_eq!(t.opts.get_ip_or_hostname(), "::1");
        assert!(t.opts.get_ssl_opts().unwrap().accept_invalid_certs());
        for (url, says) in [
            ("mysql://w:pw@db/w?charset=latin1", "charset=latin1"),
            (
                "mysql://w:pw@db/w?plugin_dir=/x",
                "'plugin_dir' is not understood",
            ),
            ("mysql://w:pw@db:port/w", "port 'port'"),
            ("mysql://w:pw@db", "no database name"),
            (
                "mysql://w:pw@db/w?ssl_ca=/none/ca.pem",
                "cannot read /none/ca.pem",
            ),
            ("mysql://w:pw@db/w?ssl_cert=/etc/hostname", "go together"),
        ] {
            let e = parse(url).err().unwrap().to_string();
            assert!(e.contains(says), "{url}: {e}");
            assert!(!e.contains("pw"), "{e}");
        }
    }
}
