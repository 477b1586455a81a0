//! Audit templates.

use crate::listing::{build_list_sql, find_by_ident, Where};
use crate::sql::{args, Conn, Row};
use crate::*;
use serde_json::Value;
use uuid::Uuid;
use watcher_core::*;

/// An audit template as the API validated it (create and update alike).
#[derive(Debug, Clone)]
pub struct TemplateFields {
    pub name: String,
    pub description: Option<String>,
    pub goal_id: i64,
    pub strategy_id: Option<i64>,
    pub scope: Value,
    pub default_parameters: Option<Value>,
}

const TEMPLATE_SELECT: &str = "SELECT x.id, x.uuid, x.name, x.description, x.goal_id, g.uuid AS goal_uuid, \
    g.name AS goal_name, x.strategy_id, s.uuid AS strategy_uuid, s.name AS strategy_name, x.scope, x.default_parameters, x.created_at, x.updated_at, x.deleted_at \
    FROM audit_templates x JOIN goals g ON g.id = x.goal_id LEFT JOIN strategies s ON s.id = x.strategy_id";

fn template_from_row(row: &Row) -> Result<AuditTemplate, StoreError> {
    let defaults: Option<String> = row.get("default_parameters")?;
    Ok(AuditTemplate {
        id: row.get("id")?,
        uuid: row.uuid("uuid")?,
        name: row.get("name")?,
        description: row.get("description")?,
        goal_id: row.get("goal_id")?,
        goal_uuid: row.uuid("goal_uuid")?,
        goal_name: row.get("goal_name")?,
        strategy_id: row.get("strategy_id")?,
        strategy_uuid: row.opt_uuid("strategy_uuid")?,
        strategy_name: row.get("strategy_name")?,
        scope: row.json("scope")?,
        default_parameters: defaults.and_then(|d| serde_json::from_str(&d).ok()),
        created_at: row.time("created_at")?,
        updated_at: row.opt_time("updated_at")?,
        deleted_at: row.opt_time("deleted_at")?,
    })
}

/// Inserts or (`update`) updates a template, refusing a name that a
/// different live template already has.
fn write_template(
    conn: &Conn,
    update: bool,
    uuid: Uuid,
    f: &TemplateFields,
) -> Result<(), StoreError> {
    let clash: Option<String> = conn.query_row_opt(
        &format!(
            "SELECT uuid FROM audit_templates WHERE {} AND deleted_at IS NULL AND uuid != ?2",
            conn.dialect().name_eq("name", "?1")
        ),
        args![f.name, uuid.to_string()],
        |r| r.get(0),
    )?;
    if clash.is_some() {
        return Err(StoreError::NameTaken {
            kind: "AuditTemplate",
            name: f.name.clone(),
        });
    }
    let defaults = f.default_parameters.as_ref().map(|d| d.to_string());
    let now = now_micros();
    match update {
        false => {
            conn.execute(
                "INSERT INTO audit_templates (uuid, name, description, goal_id, strategy_id, scope, default_parameters, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                args![uuid.to_string(), f.name, f.description, f.goal_id, f.strategy_id, f.scope.to_string(), defaults, now],
            )?;
        }
        true => {
            let n = conn.execute(
                "UPDATE audit_templates SET name = ?2, description = ?3, goal_id = ?4, strategy_id = ?5, scope = ?6, \
                 default_parameters = ?7, updated_at = ?8 WHERE uuid = ?1 AND deleted_at IS NULL",
                args![uuid.to_string(), f.name, f.description, f.goal_id, f.strategy_id, f.scope.to_string(), defaults, now],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    kind: "AuditTemplate",
                    id: uuid.to_string(),
                });
            }
        }
    }
    Ok(())
}

impl Store {
    // ----- audit templates ------------------------------------------------------

    /// Creates a template; a live template of the same name is a conflict.
    pub async fn create_audit_template(
        &self,
        fields: TemplateFields,
    ) -> Result<AuditTemplate, StoreError> {
        self.write(move |conn, _| {
            let uuid = Uuid::new_v4();
            write_template(conn, false, uuid, &fields)?;
            find_by_ident(
                conn,
                TEMPLATE_SELECT,
                &uuid.to_string(),
                "AuditTemplate",
                template_from_row,
            )
        })
        .await
    }

    /// Replaces a template's fields.
    pub async fn update_audit_template(
        &self,
        uuid: Uuid,
        fields: TemplateFields,
    ) -> Result<AuditTemplate, StoreError> {
        self.write(move |conn, _| {
            write_template(conn, true, uuid, &fields)?;
            find_by_ident(
                conn,
                TEMPLATE_SELECT,
                &uuid.to_string(),
                "AuditTemplate",
                template_from_row,
            )
        })
        .await
    }

    pub async fn delete_audit_template(&self, uuid: Uuid) -> Result<(), StoreError> {
        self.write(move |conn, _| {
            let n = conn.execute(
                "UPDATE audit_templates SET deleted_at = ?1 WHERE uuid = ?2 AND deleted_at IS NULL",
                args![now_micros(), uuid.to_string()],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    kind: "AuditTemplate",
                    id: uuid.to_string(),
                });
            }
            Ok(())
        })
        .await
    }

    /// A live template by UUID or name.
    pub async fn get_audit_template(&self, ident: &str) -> Result<AuditTemplate, StoreError> {
        let ident = ident.to_string();
        self.read(move |conn| {
            find_by_ident(
                conn,
                TEMPLATE_SELECT,
                &ident,
                "AuditTemplate",
                template_from_row,
            )
        })
        .await
    }

    pub async fn list_audit_templates(
        &self,
        filter: AuditFilter,
        query: ListQuery,
    ) -> Result<Vec<AuditTemplate>, StoreError> {
        self.read(move |conn| {
            let filters = Where::on(conn)
                .goal_and_strategy(filter.goal.as_deref(), filter.strategy.as_deref());
            let (sql, args) = build_list_sql(
                TEMPLATE_SELECT,
                "audit_templates",
                &query,
                filters,
                conn,
                "AuditTemplate",
            )?;
            conn.query_map(&sql, args, template_from_row)
        })
        .await
    }
}
