//! One SQL interface over SQLite, PostgreSQL and MariaDB.
//!
//! The store's queries are written once, in the SQL SQLite and PostgreSQL
//! both accept (`?N` placeholders, `ON CONFLICT`, `RETURNING`, row-value
//! comparisons), and run through [`Conn`]. For PostgreSQL the placeholders
//! are rewritten to `$N` and each value is encoded as the type PostgreSQL
//! inferred for its parameter, so the callers bind plain integers, text and
//! NULLs on all three; for MariaDB [`crate::mariadb`] rewrites each
//! statement once. The few statements that differ ask [`Conn::dialect`].

use super::StoreError;
use crate::mariadb::MysqlConn;
pub(crate) use crate::values::{args, marks, numbered_marks, IntoArgs, Row, Value};
use postgres::types::{IsNull, ToSql, Type};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

/// Where the few statements that differ between the databases go apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
    Mysql,
}

impl Dialect {
    /// Starts a write transaction that excludes every other writer until
    /// it ends. On SQLite that is `BEGIN IMMEDIATE`. On PostgreSQL, an
    /// advisory lock taken before anything else: all writers of all
    /// processes then commit one after another, so history `seq` numbers
    /// are handed out in commit order (a reader that has seen row N has
    /// seen every row before it: the notification relay and the history
    /// tail never skip a row), and the read-check-write steps of the store
    /// see no concurrent writer, as on SQLite.
    /// On MariaDB, an update of the one row of `writers_lock`, the first
    /// statement of the transaction: the same order, and on a Galera
    /// cluster two writers on different nodes conflict at certification
    /// (one is refused and retried) instead of both committing.
    pub fn begin_write(self) -> String {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE".into(),
            Dialect::Postgres => format!("BEGIN; {}", Self::LOCK_WRITERS),
            Dialect::Mysql => format!("START TRANSACTION; {}", Self::MYSQL_LOCK_WRITERS),
        }
    }

    /// Starts a write transaction that takes the writers' lock only when
    /// [`Conn::lock_writers`] asks for it (PostgreSQL; SQLite cannot write
    /// without its lock, so this is [`Dialect::begin_write`] there).
    pub fn begin_unlocked(self) -> String {
        match self {
            Dialect::Sqlite => self.begin_write(),
            Dialect::Postgres => "BEGIN".into(),
            Dialect::Mysql => "START TRANSACTION".into(),
        }
    }

    /// The transaction-scoped advisory lock every PostgreSQL write
    /// transaction takes (key 0x0057_4154_4348_4552, "WATCHER").
    const LOCK_WRITERS: &'static str = "SELECT pg_advisory_xact_lock(24560153135695186)";

    /// MariaDB's writers' lock: its row is made with the schema.
    const MYSQL_LOCK_WRITERS: &'static str =
        "UPDATE writers_lock SET locks = locks + 1 WHERE id = 1";

    /// `column` equal to the argument `arg` (`?` or `?N`), ASCII letters compared
    /// without regard to case, the way upstream Watcher finds names on
    /// MySQL. Both databases fold ASCII only (SQLite's `lower` without ICU;
    /// PostgreSQL's under the "C" collation, whatever the database's
    /// locale), so a name is found the same way on either.
    pub fn name_eq(self, column: &str, arg: &str) -> String {
        match self {
            Dialect::Sqlite => format!("lower({column}) = lower({arg})"),
            Dialect::Postgres => {
                format!(r#"lower({column} COLLATE "C") = lower(CAST({arg} AS TEXT) COLLATE "C")"#)
            }
            // MariaDB's LOWER folds every letter (É to é): ASCII letters
            // are folded one by one instead, so that a name is found the
            // same way on all three databases.
            Dialect::Mysql => format!("{} = {}", ascii_lower(column), ascii_lower(arg)),
        }
    }

    /// The larger of two values (`MAX(a, b)` in SQLite, `GREATEST` in PostgreSQL).
    pub fn greatest(self) -> &'static str {
        match self {
            Dialect::Sqlite => "MAX",
            Dialect::Postgres | Dialect::Mysql => "GREATEST",
        }
    }
}

/// `expr` with its ASCII capitals made small and nothing else changed
/// (MariaDB has no function for it: 26 REPLACEs, on the short names only).
fn ascii_lower(expr: &str) -> String {
    ('A'..='Z').fold(expr.to_string(), |e, c| {
        format!("REPLACE({e}, '{c}', '{}')", c.to_ascii_lowercase())
    })
}

/// An open connection to either database. Used by one thread at a time.
pub(crate) enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<PgConn>),
    Mysql(Box<MysqlConn>),
}

pub(crate) struct PgConn {
    client: RefCell<postgres::Client>,
    /// Prepared statements by their text as the store wrote it.
    statements: RefCell<HashMap<String, postgres::Statement>>,
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

/// A value encoded as whatever PostgreSQL inferred for its parameter.
#[derive(Debug)]
struct PgParam<'a>(&'a Value);

impl ToSql for PgParam<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match (self.0, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Int(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::BOOL) => (*i != 0).to_sql(ty, out),
            (Value::Int(i), &Type::TEXT | &Type::VARCHAR) => i.to_string().to_sql(ty, out),
            (Value::Text(s), &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME) => {
                s.to_sql(ty, out)
            }
            (v, ty) => Err(format!("cannot bind {v:?} to a parameter of type {ty}").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// `?N` becomes `$N`, and a bare `?` the next number; quoted text is left alone.
fn postgres_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let (mut quoted, mut next) = (false, 0usize);
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    next += 1;
                    digits = next.to_string();
                }
                out.push('$');
                out.push_str(&digits);
            }
            c => out.push(c),
        }
    }
    out
}

fn pg_value(row: &postgres::Row, i: usize) -> Result<Value, StoreError> {
    let ty = row.columns()[i].type_();
    let v = match *ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)?
            .map(|v| Value::Int(v.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)?
            .map(|v| Value::Int(v.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)?
            .map(|v| Value::Int(v.into())),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            row.try_get::<_, Option<String>>(i)?.map(Value::Text)
        }
        // `pg_advisory_xact_lock` and the like answer `void`.
        Type::VOID => None,
        ref other => {
            return Err(StoreError::Corrupt(format!(
                "column {i} has type {other}, which the store does not read"
            )))
        }
    };
    Ok(v.unwrap_or(Value::Null))
}

fn sqlite_row(row: &rusqlite::Row, columns: &Arc<[String]>) -> rusqlite::Result<Row> {
    use rusqlite::types::ValueRef;
    let mut values = Vec::with_capacity(columns.len());
    for i in 0..columns.len() {
        values.push(match row.get_ref(i)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Int(i),
            // The schema has no REAL column; an expression could give one.
            ValueRef::Real(f) => Value::Int(f as i64),
            ValueRef::Text(t) | ValueRef::Blob(t) => {
                Value::Text(String::from_utf8_lossy(t).into_owned())
            }
        });
    }
    Ok(Row::new(columns.clone(), values))
}

impl PgConn {
    pub fn new(client: postgres::Client) -> PgConn {
        PgConn {
            client: RefCell::new(client),
            statements: RefCell::new(HashMap::new()),
        }
    }

    fn statement(&self, sql: &str) -> Result<postgres::Statement, StoreError> {
        if let Some(st) = self.statements.borrow().get(sql) {
            return Ok(st.clone());
        }
        let st = self
            .client
            .borrow_mut()
            .prepare(&postgres_placeholders(sql))?;
        let mut statements = self.statements.borrow_mut();
        // List queries carry their page size in the text: bound the cache
        // (each entry is a prepared statement on the server too).
        if statements.len() >= 512 {
            statements.clear();
        }
        statements.insert(sql.to_string(), st.clone());
        Ok(st)
    }

    /// Runs `call` with the prepared statement of `sql` and `args` bound.
    fn run<T>(
        &self,
        sql: &str,
        args: &[Value],
        call: impl FnOnce(
            &mut postgres::Client,
            &postgres::Statement,
            &[&(dyn ToSql + Sync)],
        ) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let st = self.statement(sql)?;
        let params: Vec<PgParam> = args.iter().map(PgParam).collect();
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        Ok(call(&mut self.client.borrow_mut(), &st, &refs)?)
    }

    pub fn is_closed(&self) -> bool {
        self.client.borrow().is_closed()
    }

    /// Waits up to `timeout` for a NOTIFY on a channel this connection
    /// listens on and returns the payloads of those on `channel`, in order.
    ///
    /// A notification on `channel` ends the wait at once; one on another
    /// channel ends it only if `others_wake` (otherwise it is dropped: the
    /// caller reads the table it announces anyway once the wait is over).
    /// A zero `timeout` takes what has arrived without waiting.
    pub fn wait_for_notification(
        &self,
        timeout: std::time::Duration,
        channel: &str,
        others_wake: bool,
    ) -> Result<Vec<String>, StoreError> {
        use postgres::fallible_iterator::FallibleIterator;
        let deadline = std::time::Instant::now() + timeout;
        let mut client = self.client.borrow_mut();
        let mut notifications = client.notifications();
        let mut payloads = vec![];
        let mut woken = false;
        let keep = |n: postgres::Notification, payloads: &mut Vec<String>, woken: &mut bool| {
            if n.channel() == channel {
                payloads.push(n.payload().to_string());
            } else {
                *woken |= others_wake;
            }
        };
        loop {
            while let Some(n) = notifications.iter().next()? {
                keep(n, &mut payloads, &mut woken);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if woken || !payloads.is_empty() || left.is_zero() {
                break;
            }
            match notifications.timeout_iter(left).next()? {
                Some(n) => keep(n, &mut payloads, &mut woken),
                None => break,
            }
        }
        Ok(payloads)
    }
}

impl Conn {
    pub fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Postgres(_) => Dialect::Postgres,
            Conn::Mysql(_) => Dialect::Mysql,
        }
    }

    /// Runs a statement; the number of rows it changed.
    pub fn execute(&self, sql: &str, args: impl IntoArgs) -> Result<usize, StoreError> {
        let args = args.into_args();
        match self {
            Conn::Sqlite(c) => Ok(c
                .prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(&args))?),
            Conn::Postgres(c) => c.run(sql, &args, |client, st, params| {
                client.execute(st, params).map(|n| n as usize)
            }),
            Conn::Mysql(c) => c.execute(sql, &args),
        }
    }

    /// Every row a query returns.
    pub fn query(&self, sql: &str, args: impl IntoArgs) -> Result<Vec<Row>, StoreError> {
        let args = args.into_args();
        match self {
            Conn::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let columns: Arc<[String]> =
                    st.column_names().into_iter().map(String::from).collect();
                let rows = st.query_map(rusqlite::params_from_iter(&args), |r| {
                    sqlite_row(r, &columns)
                })?;
                Ok(rows.collect::<Result<_, _>>()?)
            }
            Conn::Postgres(c) => {
                let rows = c.run(sql, &args, |client, st, params| client.query(st, params))?;
                let Some(first) = rows.first() else {
                    return Ok(vec![]);
                };
                let columns: Arc<[String]> = first
                    .columns()
                    .iter()
                    .map(|c| c.name().to_string())
                    .collect();
                rows.iter()
                    .map(|r| {
                        let values = (0..r.len())
                            .map(|i| pg_value(r, i))
                            .collect::<Result<_, _>>()?;
                        Ok(Row::new(columns.clone(), values))
                    })
                    .collect()
            }
            Conn::Mysql(c) => c.query(sql, &args),
        }
    }

    /// The first row of a query, if any.
    pub fn query_opt(&self, sql: &str, args: impl IntoArgs) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, args)?.into_iter().next())
    }

    /// The first row of a query that always returns one.
    pub fn query_one(&self, sql: &str, args: impl IntoArgs) -> Result<Row, StoreError> {
        self.query_opt(sql, args)?
            .ok_or_else(|| StoreError::Corrupt(format!("no row from: {sql}")))
    }

    /// Every row of a query, each through `map`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        args: impl IntoArgs,
        map: impl FnMut(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        self.query(sql, args)?.iter().map(map).collect()
    }

    /// The first row of a query through `map`, if there is one.
    pub fn query_row_opt<T>(
        &self,
        sql: &str,
        args: impl IntoArgs,
        map: impl FnOnce(&Row) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        self.query_opt(sql, args)?.as_ref().map(map).transpose()
    }

    /// The first row of a query that always returns one, through `map`.
    pub fn query_row<T>(
        &self,
        sql: &str,
        args: impl IntoArgs,
        map: impl FnOnce(&Row) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        map(&self.query_one(sql, args)?)
    }

    /// Runs several statements with no arguments.
    pub fn batch(&self, sql: &str) -> Result<(), StoreError> {
        match self {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Postgres(c) => Ok(c.client.borrow_mut().batch_execute(sql)?),
            Conn::Mysql(c) => c.batch(sql),
        }
    }

    /// Takes the writers' lock in a transaction begun with
    /// [`Dialect::begin_unlocked`]; a no-op where it is held already (it
    /// is reentrant on PostgreSQL and held from `BEGIN IMMEDIATE` on SQLite).
    /// Before it, a transaction may only insert rows nobody else can see
    /// yet: no history row (their `seq` must follow the commit order) and
    /// no compare-and-set.
    pub fn lock_writers(&self) -> Result<(), StoreError> {
        match self.dialect() {
            Dialect::Sqlite => Ok(()),
            Dialect::Postgres => self.batch(Dialect::LOCK_WRITERS),
            Dialect::Mysql => self.batch(Dialect::MYSQL_LOCK_WRITERS),
        }
    }

    /// True when the server rolled the open transaction back on its own
    /// (MariaDB: a deadlock, a lock not had in time, a Galera conflict):
    /// the same writes succeed when run again.
    pub fn rolled_back_by_server(&self) -> bool {
        match self {
            Conn::Mysql(c) => c.rolled_back_by_server(),
            _ => false,
        }
    }

    /// False once the server has gone away (PostgreSQL, MariaDB); the
    /// connection is then dropped and a new one opened.
    pub fn is_usable(&self) -> bool {
        match self {
            Conn::Sqlite(_) => true,
            Conn::Postgres(c) => !c.is_closed(),
            Conn::Mysql(c) => c.is_usable(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_outside_quotes() {
        assert_eq!(
            postgres_placeholders("SELECT ?1, ?2 WHERE a = ?1"),
            "SELECT $1, $2 WHERE a = $1"
        );
        assert_eq!(
            postgres_placeholders("x = ? AND y IN (?,?) AND z = '?'"),
            "x = $1 AND y IN ($2,$3) AND z = '?'"
        );
    }
}
