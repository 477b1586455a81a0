//! Lists: paging, sorting and filters shared by every list query, and lookups by UUID or name.

use crate::sql::{Conn, Dialect, Row, Value as SqlValue};
use crate::*;
use uuid::Uuid;

/// Paging and ordering of a list, already validated by the caller.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub limit: usize,
    pub marker: Option<Uuid>,
    /// A column expression from [`SortKey`]; never user text.
    pub sort: SortKey,
    pub descending: bool,
    pub show_deleted: bool,
}

/// The SQL column a list is ordered by. Built only from the fixed tables in
/// the API layer, so user input never reaches SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey(pub &'static str);

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            limit: 1000,
            marker: None,
            sort: SortKey("x.id"),
            descending: false,
            show_deleted: false,
        }
    }
}

/// The filters of a list: SQL conditions and their bound values, in the
/// words of the connection's database.
pub(crate) struct Where {
    dialect: Dialect,
    clauses: Vec<String>,
    args: Vec<SqlValue>,
}

impl Where {
    pub(crate) fn on(conn: &Conn) -> Where {
        Where {
            dialect: conn.dialect(),
            clauses: vec![],
            args: vec![],
        }
    }

    /// `condition` holds one `?` for `value`.
    pub(crate) fn eq(mut self, condition: &str, value: Option<String>) -> Self {
        if let Some(v) = value {
            self.clauses.push(condition.to_string());
            self.args.push(SqlValue::Text(v));
        }
        self
    }

    /// `column` equal to one of `values` (no condition when there are none).
    pub(crate) fn any_of(mut self, column: &str, values: Vec<String>) -> Self {
        if !values.is_empty() {
            let marks = vec!["?"; values.len()].join(", ");
            self.clauses.push(format!("{column} IN ({marks})"));
            self.args.extend(values.into_iter().map(SqlValue::Text));
        }
        self
    }

    /// A record named by UUID or by name (names compared as
    /// [`Dialect::name_eq`] does).
    pub(crate) fn ident(self, ident: Option<&str>, uuid_col: &str, name_col: &str) -> Self {
        match ident {
            None => self,
            Some(i) => match Uuid::parse_str(i) {
                Ok(u) => self.eq(&format!("{uuid_col} = ?"), Some(u.to_string())),
                Err(_) => {
                    let condition = self.dialect.name_eq(name_col, "?");
                    self.eq(&condition, Some(i.to_string()))
                }
            },
        }
    }

    /// The `goal` and `strategy` filters of audits and templates (goals as
    /// `g`, strategies as `s` in the query).
    pub(crate) fn goal_and_strategy(self, goal: Option<&str>, strategy: Option<&str>) -> Self {
        self.ident(goal, "g.uuid", "g.name")
            .ident(strategy, "s.uuid", "s.name")
    }
}

pub(crate) fn build_list_sql(
    select: &str,
    table: &str,
    query: &ListQuery,
    filters: Where,
    conn: &Conn,
    kind: &'static str,
) -> Result<(String, Vec<SqlValue>), StoreError> {
    let Where {
        mut clauses,
        mut args,
        ..
    } = filters;
    if !query.show_deleted {
        clauses.push("x.deleted_at IS NULL".into());
    }
    let col = query.sort.0;
    if let Some(marker) = query.marker {
        let exists: Option<i64> = conn.query_row_opt(
            &format!("SELECT id FROM {table} WHERE uuid = ?1"),
            [marker.to_string()],
            |r| r.get(0),
        )?;
        let Some(marker_id) = exists else {
            return Err(StoreError::NotFound {
                kind,
                id: marker.to_string(),
            });
        };
        let cmp = if query.descending { "<" } else { ">" };
        clauses.push(format!(
            "({col}, x.id) {cmp} ((SELECT {col} {from_part} WHERE x.id = ?), ?)",
            from_part = &select[select.find(" FROM ").expect("select has FROM") + 1..],
        ));
        args.push(SqlValue::Int(marker_id));
        args.push(SqlValue::Int(marker_id));
    }
    let dir = if query.descending { "DESC" } else { "ASC" };
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    let sql = format!(
        "{select}{where_sql} ORDER BY {col} {dir}, x.id {dir} LIMIT {}",
        query.limit
    );
    Ok((sql, args))
}

/// One live (not deleted) record by UUID or name.
pub(crate) fn find_by_ident<T>(
    conn: &Conn,
    select: &str,
    ident: &str,
    kind: &'static str,
    map: fn(&Row) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let w = Where::on(conn).ident(Some(ident), "x.uuid", "x.name");
    conn.query_row_opt(
        &format!("{select} WHERE x.deleted_at IS NULL AND {}", w.clauses[0]),
        w.args,
        map,
    )?
    .ok_or(StoreError::NotFound {
        kind,
        id: ident.to_string(),
    })
}
