//! Services: each process's heartbeat and what `/v1/services` lists.

use crate::sql::{args, Row, Value as SqlValue};
use crate::*;
use watcher_core::*;

const SERVICE_SELECT: &str = "SELECT x.id, x.name, x.host, x.last_seen_up, x.created_at, \
    x.updated_at, x.deleted_at FROM services x";

fn service_from_row(row: &Row) -> Result<ServiceRecord, StoreError> {
    Ok(ServiceRecord {
        id: row.get("id")?,
        name: row.get("name")?,
        host: row.get("host")?,
        last_seen_up: row.opt_time("last_seen_up")?,
        created_at: row.time("created_at")?,
        updated_at: row.opt_time("updated_at")?,
        deleted_at: row.opt_time("deleted_at")?,
    })
}

impl Store {
    // ----- services -----------------------------------------------------------

    /// Records that component `name` on `host` is alive now.
    pub async fn heartbeat(&self, name: &str, host: &str) -> Result<(), StoreError> {
        let (name, host) = (name.to_string(), host.to_string());
        self.write(move |conn, _| {
            let now = now_micros();
            conn.execute("INSERT INTO services (name, host, last_seen_up, created_at) VALUES (?1, ?2, ?3, ?3) \
                 ON CONFLICT(name, host) DO UPDATE SET last_seen_up = excluded.last_seen_up, updated_at = excluded.last_seen_up", args![name, host, now])?;
            Ok(())
        })
        .await
    }

    /// Services ordered by id; `marker` is the last id of the previous page.
    pub async fn list_services(
        &self,
        limit: usize,
        marker: Option<i64>,
        descending: bool,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        self.read(move |conn| {
            let (cmp, dir) = if descending { ("<", "DESC") } else { (">", "ASC") };
            let sql = format!(
                "{SERVICE_SELECT} WHERE x.deleted_at IS NULL AND (CAST(?1 AS BIGINT) IS NULL OR x.id {cmp} ?1) ORDER BY x.id {dir} LIMIT {limit}"
            );
            conn.query_map(&sql, vec![marker.map(SqlValue::Int).unwrap_or(SqlValue::Null)], service_from_row)
        })
        .await
    }

    /// A service by id or by name (the first of that name).
    pub async fn get_service(&self, ident: &str) -> Result<ServiceRecord, StoreError> {
        let ident = ident.to_string();
        self.read(move |conn| {
            let (clause, arg) = match ident.parse::<i64>() {
                Ok(id) => ("x.id = ?1".to_string(), SqlValue::Int(id)),
                Err(_) => (conn.dialect().name_eq("x.name", "?1"), SqlValue::Text(ident.clone())),
            };
            conn.query_row_opt(&format!("{SERVICE_SELECT} WHERE {clause} AND x.deleted_at IS NULL ORDER BY x.id LIMIT 1"), [arg], service_from_row)?
                .ok_or(StoreError::NotFound { kind: "Service", id: ident.clone() })
        })
        .await
    }
}
