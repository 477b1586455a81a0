//! Queries and state changes. Each public method is one transaction.

use super::sql::{args, Conn, Row, Value as SqlValue};
use super::{now_micros, Store, StoreError, StoreEvent};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;
use watcher_core::*;

/// Live records per state, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct StateCounts {
    pub action_plans: Vec<(String, i64)>,
    pub actions: Vec<(String, i64)>,
    pub audits: Vec<(String, i64)>,
}

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

#[derive(Debug, Clone, Default)]
pub struct PlanFilter {
    pub audit_uuid: Option<Uuid>,
    pub strategy: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ActionFilter {
    pub action_plan_uuid: Option<Uuid>,
    pub audit_uuid: Option<Uuid>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub goal: Option<String>,
    pub strategy: Option<String>,
}

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

/// A new audit as the API validated it.
#[derive(Debug, Clone)]
pub struct NewAudit {
    pub uuid: Uuid,
    pub name: String,
    pub audit_type: AuditType,
    pub goal_id: i64,
    pub strategy_id: Option<i64>,
    pub parameters: Value,
    pub interval: Option<String>,
    pub scope: Value,
    pub auto_trigger: bool,
    pub force: bool,
    pub start_time: Option<chrono::DateTime<chrono::Utc>>,
    pub end_time: Option<chrono::DateTime<chrono::Utc>>,
}

/// The fields of an audit an operator may change; `None` leaves one as it is
/// (for the times, `Some(None)` clears it).
#[derive(Debug, Clone, Default)]
pub struct AuditEdit {
    pub name: Option<String>,
    pub interval: Option<String>,
    pub start_time: Option<Option<DateTime<Utc>>>,
    pub end_time: Option<Option<DateTime<Utc>>>,
    pub auto_trigger: Option<bool>,
}

/// What the decision engine hands over to create a plan.
#[derive(Debug, Clone)]
pub struct NewPlan {
    pub uuid: Uuid,
    pub audit_uuid: Uuid,
    pub strategy_name: String,
    pub actions: Vec<NewAction>,
    pub efficacy_indicators: Vec<EfficacyIndicator>,
    pub global_efficacy: Vec<EfficacyIndicator>,
    pub hostname: String,
    /// For a CONTINUOUS audit: when it runs next. Its audit then stays
    /// ONGOING and its older RECOMMENDED plans are cancelled, in the same
    /// transaction as the new plan.
    pub next_run_time: Option<DateTime<Utc>>,
}

/// A journaled side effect of an action: written before the cloud is asked
/// to do anything, completed with the cloud's operation id once known.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    pub action_uuid: Uuid,
    pub intent: Value,
    pub operation_id: Option<String>,
    /// When the intent was written: the operation, if it started, started
    /// after this.
    pub intended_at: DateTime<Utc>,
}

/// Optional fields a plan transition also sets.
#[derive(Debug, Clone, Default)]
pub struct PlanUpdate {
    pub status_message: Option<String>,
    pub hostname: Option<String>,
    /// With `hostname`: the claiming applier's lease, until then (micros).
    pub lease_until: Option<i64>,
}

const PLAN_SELECT: &str = "SELECT x.id, x.uuid, a.uuid AS audit_uuid, s.uuid AS strategy_uuid, s.name AS strategy_name, x.state, \
    x.efficacy_indicators, x.global_efficacy, x.hostname, x.status_message, \
    x.created_at, x.updated_at, x.deleted_at \
    FROM action_plans x JOIN audits a ON a.id = x.audit_id JOIN strategies s ON s.id = x.strategy_id";

const ACTION_SELECT: &str =
    "SELECT x.id, x.uuid, p.uuid AS action_plan_uuid, x.action_type, x.input_parameters, \
    x.parents, x.state, x.status_message, x.created_at, x.updated_at, x.deleted_at \
    FROM actions x JOIN action_plans p ON p.id = x.action_plan_id";

const AUDIT_SELECT: &str = "SELECT x.id, x.uuid, x.name, x.audit_type, x.state, g.uuid AS goal_uuid, \
    g.name AS goal_name, s.uuid AS strategy_uuid, s.name AS strategy_name, x.parameters, x.interval, x.scope, x.auto_trigger, x.force, \
    x.next_run_time, x.start_time, x.end_time, x.hostname, x.status_message, \
    x.created_at, x.updated_at, x.deleted_at, x.triggered \
    FROM audits x JOIN goals g ON g.id = x.goal_id LEFT JOIN strategies s ON s.id = x.strategy_id";

const SERVICE_SELECT: &str = "SELECT x.id, x.name, x.host, x.last_seen_up, x.created_at, \
    x.updated_at, x.deleted_at FROM services x";

const TEMPLATE_SELECT: &str = "SELECT x.id, x.uuid, x.name, x.description, x.goal_id, g.uuid AS goal_uuid, \
    g.name AS goal_name, x.strategy_id, s.uuid AS strategy_uuid, s.name AS strategy_name, x.scope, x.default_parameters, x.created_at, x.updated_at, x.deleted_at \
    FROM audit_templates x JOIN goals g ON g.id = x.goal_id LEFT JOIN strategies s ON s.id = x.strategy_id";

const GOAL_SELECT: &str = "SELECT x.id, x.uuid, x.name, x.display_name, \
    x.efficacy_specification, x.created_at, x.updated_at FROM goals x";

const STRATEGY_SELECT: &str = "SELECT x.id, x.uuid, x.name, x.display_name, x.goal_id, \
    g.uuid AS goal_uuid, g.name AS goal_name, x.parameters_spec, x.created_at \
    FROM strategies x JOIN goals g ON g.id = x.goal_id";

fn plan_from_row(row: &Row) -> Result<ActionPlan, StoreError> {
    Ok(ActionPlan {
        id: row.get("id")?,
        uuid: row.uuid("uuid")?,
        audit_uuid: row.uuid("audit_uuid")?,
        strategy_uuid: row.uuid("strategy_uuid")?,
        strategy_name: row.get("strategy_name")?,
        state: row.parsed("state")?,
        efficacy_indicators: row.json("efficacy_indicators")?,
        global_efficacy: row.json("global_efficacy")?,
        hostname: row.get("hostname")?,
        status_message: row.get("status_message")?,
        created_at: row.time("created_at")?,
        updated_at: row.opt_time("updated_at")?,
        deleted_at: row.opt_time("deleted_at")?,
    })
}

fn action_from_row(row: &Row) -> Result<Action, StoreError> {
    Ok(Action {
        id: row.get("id")?,
        uuid: row.uuid("uuid")?,
        action_plan_uuid: row.uuid("action_plan_uuid")?,
        action_type: row.get("action_type")?,
        input_parameters: row.json("input_parameters")?,
        parents: row.json("parents")?,
        state: row.parsed("state")?,
        status_message: row.get("status_message")?,
        created_at: row.time("created_at")?,
        updated_at: row.opt_time("updated_at")?,
        deleted_at: row.opt_time("deleted_at")?,
    })
}

fn audit_from_row(row: &Row) -> Result<Audit, StoreError> {
    Ok(Audit {
        id: row.get("id")?,
        uuid: row.uuid("uuid")?,
        name: row.get("name")?,
        audit_type: row.parsed("audit_type")?,
        state: row.parsed("state")?,
        goal_uuid: row.uuid("goal_uuid")?,
        goal_name: row.get("goal_name")?,
        strategy_uuid: row.opt_uuid("strategy_uuid")?,
        strategy_name: row.get("strategy_name")?,
        parameters: row.json("parameters")?,
        interval: row.get("interval")?,
        scope: row.json("scope")?,
        auto_trigger: row.get("auto_trigger")?,
        force: row.get("force")?,
        next_run_time: row.opt_time("next_run_time")?,
        start_time: row.opt_time("start_time")?,
        end_time: row.opt_time("end_time")?,
        hostname: row.get("hostname")?,
        status_message: row.get("status_message")?,
        created_at: row.time("created_at")?,
        updated_at: row.opt_time("updated_at")?,
        deleted_at: row.opt_time("deleted_at")?,
        triggered: row.get("triggered")?,
    })
}

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

fn goal_from_row(row: &Row) -> Result<Goal, StoreError> {
    Ok(Goal {
        id: row.get("id")?,
        uuid: row.uuid("uuid")?,
        name: row.get("name")?,
        display_name: row.get("display_name")?,
        efficacy_specification: row.json("efficacy_specification")?,
        created_at: row.time("created_at")?,
        updated_at: row.opt_time("updated_at")?,
    })
}

fn strategy_from_row(row: &Row) -> Result<Strategy, StoreError> {
    Ok(Strategy {
        id: row.get("id")?,
        uuid: row.uuid("uuid")?,
        name: row.get("name")?,
        display_name: row.get("display_name")?,
        goal_id: row.get("goal_id")?,
        goal_uuid: row.uuid("goal_uuid")?,
        goal_name: row.get("goal_name")?,
        parameters_spec: row.json("parameters_spec")?,
        created_at: row.time("created_at")?,
    })
}

fn history_from_row(row: &Row) -> Result<HistoryEntry, StoreError> {
    let entity: String = row.get("entity")?;
    let entity = Entity::parse(&entity)
        .ok_or_else(|| StoreError::Corrupt(format!("history row of unknown entity {entity:?}")))?;
    let state = |column: &str| -> Result<Option<EntityState>, StoreError> {
        match row.get::<Option<String>>(column)? {
            None => Ok(None),
            Some(s) => EntityState::parse(entity, &s).map(Some).ok_or_else(|| {
                StoreError::Corrupt(format!("history row: {s:?} is no {} state", entity.kind()))
            }),
        }
    };
    Ok(HistoryEntry {
        seq: row.get("seq")?,
        entity,
        uuid: row.uuid("uuid")?,
        action_plan_uuid: row.opt_uuid("action_plan_uuid")?,
        from_state: state("from_state")?,
        to_state: state("to_state")?
            .ok_or_else(|| StoreError::Corrupt("history row without to_state".into()))?,
        actor: row.parsed("actor")?,
        reason: row.get("reason")?,
        at: row.time("at")?,
    })
}

/// Writes one history row. Every state change calls this in its own transaction.
#[allow(clippy::too_many_arguments)]
fn record_history(
    conn: &Conn,
    entity: Entity,
    uuid: Uuid,
    plan: Option<Uuid>,
    from: Option<&str>,
    to: &str,
    actor: Actor,
    reason: &str,
    at: i64,
) -> Result<(), StoreError> {
    conn.execute("INSERT INTO state_history (entity, uuid, action_plan_uuid, from_state, to_state, actor, reason, at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", args![
        entity.as_str(),
        uuid.to_string(),
        plan.map(|p| p.to_string()),
        from,
        to,
        actor.as_str(),
        reason,
        at
    ])?;
    Ok(())
}

fn plan_state(conn: &Conn, uuid: Uuid) -> Result<ActionPlanState, StoreError> {
    let s: Option<String> = conn.query_row_opt(
        "SELECT state FROM action_plans WHERE uuid = ?1 AND deleted_at IS NULL",
        [uuid.to_string()],
        |r| r.get(0),
    )?;
    match s {
        Some(s) => Ok(s.parse()?),
        None => Err(StoreError::NotFound {
            kind: "ActionPlan",
            id: uuid.to_string(),
        }),
    }
}

fn get_plan_conn(conn: &Conn, uuid: Uuid, show_deleted: bool) -> Result<ActionPlan, StoreError> {
    let sql = format!(
        "{PLAN_SELECT} WHERE x.uuid = ?1{}",
        if show_deleted {
            ""
        } else {
            " AND x.deleted_at IS NULL"
        }
    );
    conn.query_row_opt(&sql, [uuid.to_string()], plan_from_row)?
        .ok_or(StoreError::NotFound {
            kind: "ActionPlan",
            id: uuid.to_string(),
        })
}

fn get_audit_conn(conn: &Conn, ident: &str, show_deleted: bool) -> Result<Audit, StoreError> {
    let column = if Uuid::parse_str(ident).is_ok() {
        "x.uuid"
    } else {
        "x.name"
    };
    let ident = Uuid::parse_str(ident)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| ident.to_string());
    let sql = format!(
        "{AUDIT_SELECT} WHERE {column} = ?1{} ORDER BY x.id DESC LIMIT 1",
        if show_deleted {
            ""
        } else {
            " AND x.deleted_at IS NULL"
        }
    );
    conn.query_row_opt(&sql, [&ident], audit_from_row)?
        .ok_or(StoreError::NotFound {
            kind: "Audit",
            id: ident,
        })
}

/// Moves every action of `plan` that is in `from` to `to`, with a history
/// row each. Returns the actions moved.
#[allow(clippy::too_many_arguments)]
fn move_actions(
    conn: &Conn,
    events: &mut Vec<StoreEvent>,
    plan: Uuid,
    from: ActionState,
    to: ActionState,
    actor: Actor,
    reason: &str,
    status_message: Option<&str>,
    now: i64,
) -> Result<Vec<Uuid>, StoreError> {
    if !action_transition_allowed(from, to, actor) {
        return Err(StoreError::IllegalTransition {
            from: from.into(),
            to: to.into(),
        });
    }
    // Set-based: one history INSERT and one UPDATE for the whole group, so
    // cancelling a plan with thousands of PENDING actions stays fast.
    let plan_id: i64 = conn.query_row(
        "SELECT id FROM action_plans WHERE uuid = ?1",
        [plan.to_string()],
        |r| r.get(0),
    )?;
    conn.execute("INSERT INTO state_history (entity, uuid, action_plan_uuid, from_state, to_state, actor, reason, at) \
         SELECT 'action', uuid, ?1, ?2, ?3, ?4, ?5, ?6 FROM actions \
         WHERE action_plan_id = ?7 AND state = ?2 ORDER BY id", args![plan.to_string(), from.as_str(), to.as_str(), actor.as_str(), reason, now, plan_id])?;
    let deleted_at = (to == ActionState::Deleted).then_some(now);
    let status_message = status_message.map(bound_status_message);
    let uuids: Vec<Uuid> = conn
        .query_map("UPDATE actions SET state = ?1, updated_at = ?2, deleted_at = COALESCE(?3, deleted_at), \
             status_message = COALESCE(?4, status_message) WHERE action_plan_id = ?5 AND state = ?6 \
             RETURNING uuid", 
            args![to.as_str(), now, deleted_at, status_message, plan_id, from.as_str()],
            |r| r.uuid(0),
        )?;
    if !uuids.is_empty() {
        events.push(StoreEvent::ActionsMoved {
            plan,
            state: to,
            count: uuids.len(),
        });
    }
    Ok(uuids)
}

/// The filters of a list: SQL conditions and their bound values.
#[derive(Default)]
struct Where {
    clauses: Vec<String>,
    args: Vec<SqlValue>,
}

impl Where {
    /// `condition` holds one `?` for `value`.
    fn eq(mut self, condition: &str, value: Option<String>) -> Self {
        if let Some(v) = value {
            self.clauses.push(condition.to_string());
            self.args.push(SqlValue::Text(v));
        }
        self
    }

    /// A record named by UUID or by name.
    fn ident(self, ident: Option<&str>, uuid_col: &str, name_col: &str) -> Self {
        match ident {
            None => self,
            Some(i) => match Uuid::parse_str(i) {
                Ok(u) => self.eq(&format!("{uuid_col} = ?"), Some(u.to_string())),
                Err(_) => self.eq(&format!("{name_col} = ?"), Some(i.to_string())),
            },
        }
    }
}

fn build_list_sql(
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
fn find_by_ident<T>(
    conn: &Conn,
    select: &str,
    ident: &str,
    kind: &'static str,
    map: fn(&Row) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let w = Where::default().ident(Some(ident), "x.uuid", "x.name");
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

impl Store {
    // ----- catalogue -----------------------------------------------------

    /// Registers a goal, keeping its UUID if it exists already.
    pub async fn upsert_goal(
        &self,
        name: &str,
        display_name: &str,
        spec: Vec<EfficacySpec>,
    ) -> Result<(), StoreError> {
        let (name, display_name) = (name.to_string(), display_name.to_string());
        let spec = serde_json::to_string(&spec)?;
        self.write(move |conn, _| {
            let now = now_micros();
            conn.execute(
                "INSERT INTO goals (uuid, name, display_name, efficacy_specification, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(name) DO UPDATE SET \
                 display_name = excluded.display_name, efficacy_specification = excluded.efficacy_specification",
                args![Uuid::new_v4().to_string(), name, display_name, spec, now],
            )?;
            Ok(())
        })
        .await
    }

    /// Registers a strategy of an existing goal, keeping its UUID if it exists already.
    pub async fn upsert_strategy(
        &self,
        name: &str,
        display_name: &str,
        goal: &str,
        parameters_spec: Value,
    ) -> Result<(), StoreError> {
        let (name, display_name, goal) =
            (name.to_string(), display_name.to_string(), goal.to_string());
        let spec = serde_json::to_string(&parameters_spec)?;
        self.write(move |conn, _| {
            let now = now_micros();
            conn.execute(
                "INSERT INTO strategies (uuid, name, display_name, goal_id, parameters_spec, created_at) \
                 VALUES (?1, ?2, ?3, (SELECT id FROM goals WHERE name = ?4), ?5, ?6) \
                 ON CONFLICT(name) DO UPDATE SET display_name = excluded.display_name, \
                 goal_id = excluded.goal_id, parameters_spec = excluded.parameters_spec",
                args![Uuid::new_v4().to_string(), name, display_name, goal, spec, now],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn list_goals(&self, query: ListQuery) -> Result<Vec<Goal>, StoreError> {
        self.read(move |conn| {
            let (sql, args) =
                build_list_sql(GOAL_SELECT, "goals", &query, Where::default(), conn, "Goal")?;
            conn.query_map(&sql, args, goal_from_row)
        })
        .await
    }

    /// A goal by UUID or name.
    pub async fn get_goal(&self, ident: &str) -> Result<Goal, StoreError> {
        let ident = ident.to_string();
        self.read(move |conn| find_by_ident(conn, GOAL_SELECT, &ident, "Goal", goal_from_row))
            .await
    }

    pub async fn list_strategies(
        &self,
        goal: Option<String>,
        query: ListQuery,
    ) -> Result<Vec<Strategy>, StoreError> {
        self.read(move |conn| {
            let filters = Where::default().ident(goal.as_deref(), "g.uuid", "g.name");
            let (sql, args) = build_list_sql(
                STRATEGY_SELECT,
                "strategies",
                &query,
                filters,
                conn,
                "Strategy",
            )?;
            conn.query_map(&sql, args, strategy_from_row)
        })
        .await
    }

    /// A strategy by UUID or name.
    pub async fn get_strategy(&self, ident: &str) -> Result<Strategy, StoreError> {
        let ident = ident.to_string();
        self.read(move |conn| {
            find_by_ident(conn, STRATEGY_SELECT, &ident, "Strategy", strategy_from_row)
        })
        .await
    }

    // ----- audits ----------------------------------------------------------

    pub async fn create_audit(&self, new: NewAudit) -> Result<Audit, StoreError> {
        self.write(move |conn, events| {
            let now = now_micros();
            conn.execute(
                "INSERT INTO audits (uuid, name, audit_type, state, goal_id, strategy_id, parameters, \
                 interval, scope, auto_trigger, force, start_time, end_time, created_at) \
                 VALUES (?1, ?2, ?3, 'PENDING', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                args![
                    new.uuid.to_string(),
                    new.name,
                    new.audit_type.as_str(),
                    new.goal_id,
                    new.strategy_id,
                    new.parameters.to_string(),
                    new.interval,
                    new.scope.to_string(),
                    new.auto_trigger,
                    new.force,
                    new.start_time.map(super::to_micros),
                    new.end_time.map(super::to_micros),
                    now
                ],
            )?;
            record_history(conn, Entity::Audit, new.uuid, None, None, "PENDING", Actor::Api, "audit created", now)?;
            events.push(StoreEvent::AuditState { uuid: new.uuid, state: AuditState::Pending });
            get_audit_conn(conn, &new.uuid.to_string(), false)
        })
        .await
    }

    pub async fn get_audit(&self, ident: &str, show_deleted: bool) -> Result<Audit, StoreError> {
        let ident = ident.to_string();
        self.read(move |conn| get_audit_conn(conn, &ident, show_deleted))
            .await
    }

    pub async fn list_audits(
        &self,
        filter: AuditFilter,
        query: ListQuery,
    ) -> Result<Vec<Audit>, StoreError> {
        self.read(move |conn| {
            let filters = Where::default()
                .ident(filter.goal.as_deref(), "g.uuid", "g.name")
                .ident(filter.strategy.as_deref(), "s.uuid", "s.name");
            let (sql, args) =
                build_list_sql(AUDIT_SELECT, "audits", &query, filters, conn, "Audit")?;
            conn.query_map(&sql, args, audit_from_row)
        })
        .await
    }

    /// Audits in `state`, oldest first.
    pub async fn audits_in_state(&self, state: AuditState) -> Result<Vec<Audit>, StoreError> {
        self.read(move |conn| {
            conn.query_map(
                &format!("{AUDIT_SELECT} WHERE x.state = ? AND x.deleted_at IS NULL ORDER BY x.id"),
                vec![SqlValue::Text(state.as_str().into())],
                audit_from_row,
            )
        })
        .await
    }

    /// A webhook for an EVENT audit: marks it triggered (durably, so a
    /// restart does not lose it) and wakes the decision engine.
    pub async fn trigger_audit(&self, ident: &str) -> Result<Audit, StoreError> {
        let ident = ident.to_string();
        self.write(move |conn, events| {
            let audit = get_audit_conn(conn, &ident, false)?;
            if audit.audit_type != AuditType::Event {
                return Err(StoreError::Invalid(format!(
                    "Audit type {} not allowed: only EVENT audits have webhooks",
                    audit.audit_type
                )));
            }
            if !matches!(audit.state, AuditState::Pending | AuditState::Succeeded) {
                return Err(StoreError::Invalid(format!(
                    "Audit state {} not allowed: a webhook needs a PENDING or SUCCEEDED audit",
                    audit.state
                )));
            }
            conn.execute(
                "UPDATE audits SET triggered = 1, updated_at = ?1 WHERE id = ?2",
                args![now_micros(), audit.id],
            )?;
            events.push(StoreEvent::AuditState {
                uuid: audit.uuid,
                state: audit.state,
            });
            get_audit_conn(conn, &audit.uuid.to_string(), false)
        })
        .await
    }

    /// EVENT audits whose webhook fired, oldest first.
    pub async fn triggered_audits(&self) -> Result<Vec<Audit>, StoreError> {
        self.read(move |conn| {
            conn.query_map(
                &format!(
                    "{AUDIT_SELECT} WHERE x.triggered = 1 AND x.deleted_at IS NULL ORDER BY x.id"
                ),
                vec![],
                audit_from_row,
            )
        })
        .await
    }

    /// Changes an audit's editable fields (not its state: no history row).
    /// A new interval or start time drops the planned run, so the decision
    /// engine plans the next one by the new rule.
    pub async fn update_audit(&self, uuid: Uuid, edit: AuditEdit) -> Result<Audit, StoreError> {
        self.write(move |conn, events| {
            let audit = get_audit_conn(conn, &uuid.to_string(), false)?;
            let reschedule = edit.interval.is_some() || edit.start_time.is_some();
            let n = conn.execute(
                "UPDATE audits SET name = COALESCE(?1, name), interval = COALESCE(?2, interval), \
                 start_time = CASE WHEN ?3 THEN ?4 ELSE start_time END, \
                 end_time = CASE WHEN ?5 THEN ?6 ELSE end_time END, \
                 auto_trigger = COALESCE(?7, auto_trigger), \
                 next_run_time = CASE WHEN ?8 THEN NULL ELSE next_run_time END, \
                 updated_at = ?9 WHERE id = ?10 AND deleted_at IS NULL",
                args![
                    edit.name,
                    edit.interval,
                    edit.start_time.is_some(),
                    edit.start_time.flatten().map(super::to_micros),
                    edit.end_time.is_some(),
                    edit.end_time.flatten().map(super::to_micros),
                    edit.auto_trigger,
                    reschedule,
                    now_micros(),
                    audit.id
                ],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    kind: "Audit",
                    id: uuid.to_string(),
                });
            }
            // Wakes the decision engine so that it plans by the new schedule.
            events.push(StoreEvent::AuditState {
                uuid,
                state: audit.state,
            });
            get_audit_conn(conn, &uuid.to_string(), false)
        })
        .await
    }

    /// CONTINUOUS audits this decision engine runs or may claim: PENDING or
    /// ONGOING, owned by `host` or by nobody yet.
    pub async fn continuous_audits(&self, host: String) -> Result<Vec<Audit>, StoreError> {
        self.read(move |conn| {
            conn.query_map(&format!(
                    "{AUDIT_SELECT} WHERE x.audit_type = 'CONTINUOUS' AND x.state IN ('PENDING', 'ONGOING') \
                     AND (x.hostname IS NULL OR x.hostname = ?) AND x.deleted_at IS NULL ORDER BY x.id"
                ),
                vec![SqlValue::Text(host)],
                audit_from_row,
            )
        })
        .await
    }

    /// Plans an audit's next run, if it is still in `state` (a cancel or a
    /// suspension written meanwhile wins). `status_message` replaces the
    /// audit's message when given.
    pub async fn schedule_audit(
        &self,
        uuid: Uuid,
        state: AuditState,
        next_run_time: DateTime<Utc>,
        hostname: String,
        status_message: Option<String>,
    ) -> Result<Audit, StoreError> {
        self.write(move |conn, _| {
            let n = conn.execute(
                "UPDATE audits SET next_run_time = ?1, hostname = ?2, \
                 status_message = COALESCE(?3, status_message), updated_at = ?4 \
                 WHERE uuid = ?5 AND state = ?6 AND deleted_at IS NULL",
                args![
                    super::to_micros(next_run_time),
                    hostname,
                    status_message.as_deref().map(bound_status_message),
                    now_micros(),
                    uuid.to_string(),
                    state.as_str()
                ],
            )?;
            let current = get_audit_conn(conn, &uuid.to_string(), true)?;
            if n == 0 {
                return Err(StoreError::Conflict {
                    id: uuid.to_string(),
                    expected: state.into(),
                    current: current.state.into(),
                });
            }
            Ok(current)
        })
        .await
    }

    /// Compare-and-set of an audit's state, with its history row.
    #[allow(clippy::too_many_arguments)]
    pub async fn transition_audit(
        &self,
        uuid: Uuid,
        from: AuditState,
        to: AuditState,
        actor: Actor,
        reason: &str,
        status_message: Option<String>,
        hostname: Option<String>,
    ) -> Result<Audit, StoreError> {
        let reason = reason.to_string();
        self.write(move |conn, events| {
            if !audit_transition_allowed(from, to, actor) {
                return Err(StoreError::IllegalTransition {
            from: from.into(),
            to: to.into(),
        });
            }
            let now = now_micros();
            let deleted_at = (to == AuditState::Deleted).then_some(now);
            let n = conn.execute(
                "UPDATE audits SET state = ?1, updated_at = ?2, status_message = COALESCE(?3, status_message), \
                 hostname = COALESCE(?4, hostname), deleted_at = COALESCE(?5, deleted_at), \
                 triggered = CASE WHEN ?1 = 'ONGOING' THEN 0 ELSE triggered END \
                 WHERE uuid = ?6 AND state = ?7 AND deleted_at IS NULL",
                args![
                    to.as_str(),
                    now,
                    status_message.as_deref().map(bound_status_message),
                    hostname,
                    deleted_at,
                    uuid.to_string(),
                    from.as_str()
                ],
            )?;
            if n == 0 {
                let current = get_audit_conn(conn, &uuid.to_string(), false)?;
                return Err(StoreError::Conflict {
                    id: uuid.to_string(),
                    expected: from.into(),
                    current: current.state.into(),
                });
            }
            record_history(conn, Entity::Audit, uuid, None, Some(from.as_str()), to.as_str(), actor, &reason, now)?;
            events.push(StoreEvent::AuditState { uuid, state: to });
            get_audit_conn(conn, &uuid.to_string(), true)
        })
        .await
    }

    // ----- action plans ----------------------------------------------------

    /// Creates a plan and its actions, and marks its audit SUCCEEDED, in one
    /// transaction: nobody ever sees a plan without all its actions.
    /// A plan without actions is born SUCCEEDED, as upstream does.
    pub async fn create_plan(&self, new: NewPlan) -> Result<ActionPlan, StoreError> {
        self.write(move |conn, events| {
            let now = now_micros();
            let audit = get_audit_conn(conn, &new.audit_uuid.to_string(), false)?;
            if audit.state != AuditState::Ongoing {
                return Err(StoreError::Conflict {
                    id: audit.uuid.to_string(),
                    expected: AuditState::Ongoing.into(),
                    current: audit.state.into(),
                });
            }
            let continuous = audit.audit_type == AuditType::Continuous;
            if continuous {
                // Upstream's rule: a new run's plan replaces this audit's
                // recommendations nobody started.
                let older: Vec<Uuid> = conn
                    .query_map("SELECT uuid FROM action_plans WHERE audit_id = ?1 AND state = 'RECOMMENDED' \
                         AND deleted_at IS NULL", [audit.id], |r| r.uuid(0))?;
                for old in older {
                    transition_plan_conn(conn, events, old, ActionPlanState::Recommended,
                        ActionPlanState::Cancelled, Actor::DecisionEngine,
                        &format!("replaced by action plan {} of the same continuous audit", new.uuid),
                        PlanUpdate::default())?;
                }
            }
            let state = if new.actions.is_empty() {
                ActionPlanState::Succeeded
            } else {
                ActionPlanState::Recommended
            };
            let plan_id: i64 = conn.query_row(
                "INSERT INTO action_plans (uuid, audit_id, strategy_id, state, efficacy_indicators, \
                 global_efficacy, created_at) VALUES (?1, ?2, (SELECT id FROM strategies WHERE name = ?3), \
                 ?4, ?5, ?6, ?7) RETURNING id",
                args![
                    new.uuid.to_string(),
                    audit.id,
                    new.strategy_name,
                    state.as_str(),
                    serde_json::to_string(&new.efficacy_indicators)?,
                    serde_json::to_string(&new.global_efficacy)?,
                    now
                ],
                |r| r.get(0),
            )?;
            record_history(conn, Entity::ActionPlan, new.uuid, Some(new.uuid), None, state.as_str(),
                Actor::DecisionEngine, &format!("created by audit {}", audit.uuid), now)?;
            {
                for a in &new.actions {
                    conn.execute("INSERT INTO actions (uuid, action_plan_id, action_type, input_parameters, parents, state, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, 'PENDING', ?6)", args![
                        a.uuid.to_string(),
                        plan_id,
                        a.action_type,
                        a.input_parameters.to_string(),
                        serde_json::to_string(&a.parents)?,
                        now
                    ])?;
                    record_history(conn, Entity::Action, a.uuid, Some(new.uuid), None, "PENDING",
                        Actor::DecisionEngine, "planned", now)?;
                }
            }
            if continuous {
                conn.execute(
                    "UPDATE audits SET next_run_time = ?1, status_message = NULL, updated_at = ?2 WHERE id = ?3",
                    args![new.next_run_time.map(super::to_micros), now, audit.id],
                )?;
            } else {
                conn.execute(
                    "UPDATE audits SET state = 'SUCCEEDED', updated_at = ?1 WHERE id = ?2",
                    args![now, audit.id],
                )?;
                record_history(conn, Entity::Audit, audit.uuid, None, Some("ONGOING"), "SUCCEEDED",
                    Actor::DecisionEngine, &format!("produced action plan {}", new.uuid), now)?;
                events.push(StoreEvent::AuditState { uuid: audit.uuid, state: AuditState::Succeeded });
            }
            events.push(StoreEvent::PlanState { uuid: new.uuid, state });
            get_plan_conn(conn, new.uuid, false)
        })
        .await
    }

    pub async fn get_plan(&self, uuid: Uuid, show_deleted: bool) -> Result<ActionPlan, StoreError> {
        self.read(move |conn| get_plan_conn(conn, uuid, show_deleted))
            .await
    }

    pub async fn list_plans(
        &self,
        filter: PlanFilter,
        query: ListQuery,
    ) -> Result<Vec<ActionPlan>, StoreError> {
        self.read(move |conn| {
            let filters = Where::default()
                .eq("a.uuid = ?", filter.audit_uuid.map(|u| u.to_string()))
                .ident(filter.strategy.as_deref(), "s.uuid", "s.name");
            let (sql, args) = build_list_sql(
                PLAN_SELECT,
                "action_plans",
                &query,
                filters,
                conn,
                "ActionPlan",
            )?;
            conn.query_map(&sql, args, plan_from_row)
        })
        .await
    }

    /// UUIDs of live plans in any of `states`, oldest first.
    pub async fn plans_in_states(
        &self,
        states: &[ActionPlanState],
    ) -> Result<Vec<ActionPlan>, StoreError> {
        let states: Vec<SqlValue> = states
            .iter()
            .map(|s| SqlValue::Text(s.as_str().into()))
            .collect();
        self.read(move |conn| {
            let marks = vec!["?"; states.len()].join(",");
            conn.query_map(&format!("{PLAN_SELECT} WHERE x.state IN ({marks}) AND x.deleted_at IS NULL ORDER BY x.id"),
                states,
                plan_from_row,
            )
        })
        .await
    }

    /// Compare-and-set of a plan's state with its history row and cascades:
    /// a plan cancelled before it ran cancels its PENDING actions; a deleted
    /// plan deletes its actions. Returns the plan as it is after the change.
    pub async fn transition_plan(
        &self,
        uuid: Uuid,
        from: ActionPlanState,
        to: ActionPlanState,
        actor: Actor,
        reason: &str,
        update: PlanUpdate,
    ) -> Result<ActionPlan, StoreError> {
        let reason = reason.to_string();
        self.write(move |conn, events| {
            transition_plan_conn(conn, events, uuid, from, to, actor, &reason, update)?;
            get_plan_conn(conn, uuid, true)
        })
        .await
    }

    // ----- actions -----------------------------------------------------------

    pub async fn get_action(&self, uuid: Uuid, show_deleted: bool) -> Result<Action, StoreError> {
        self.read(move |conn| {
            let sql = format!(
                "{ACTION_SELECT} WHERE x.uuid = ?1{}",
                if show_deleted {
                    ""
                } else {
                    " AND x.deleted_at IS NULL"
                }
            );
            conn.query_row_opt(&sql, [uuid.to_string()], action_from_row)?
                .ok_or(StoreError::NotFound {
                    kind: "Action",
                    id: uuid.to_string(),
                })
        })
        .await
    }

    pub async fn list_actions(
        &self,
        filter: ActionFilter,
        query: ListQuery,
    ) -> Result<Vec<Action>, StoreError> {
        self.read(move |conn| {
            let filters = Where::default()
                .eq("p.uuid = ?", filter.action_plan_uuid.map(|u| u.to_string()))
                .eq(
                    "p.audit_id = (SELECT id FROM audits WHERE uuid = ?)",
                    filter.audit_uuid.map(|u| u.to_string()),
                );
            let (sql, args) =
                build_list_sql(ACTION_SELECT, "actions", &query, filters, conn, "Action")?;
            conn.query_map(&sql, args, action_from_row)
        })
        .await
    }

    /// Every live action of a plan in creation order (the applier's view).
    pub async fn plan_actions(&self, plan: Uuid) -> Result<Vec<Action>, StoreError> {
        self.read(move |conn| {
            conn.query_map(
                &format!("{ACTION_SELECT} WHERE p.uuid = ? AND x.deleted_at IS NULL ORDER BY x.id"),
                vec![SqlValue::Text(plan.to_string())],
                action_from_row,
            )
        })
        .await
    }

    /// PENDING -> ONGOING, allowed only while the plan is ONGOING. Because
    /// the API's cancel is a compare-and-set on the same plan row, either the
    /// cancel commits first and this fails with `PlanNotRunning`, or this
    /// commits first and the applier knows the action is running: no action
    /// can ever start after the CANCELLING write.
    ///
    /// With `owner`, the plan must still be leased to that applier (fencing:
    /// an applier that lost its lease starts nothing more).
    pub async fn start_action(
        &self,
        plan: Uuid,
        uuid: Uuid,
        owner: Option<String>,
    ) -> Result<(), StoreError> {
        self.write(move |conn, events| {
            let state = plan_state(conn, plan)?;
            if state != ActionPlanState::Ongoing {
                return Err(StoreError::PlanNotRunning { plan, state });
            }
            if let Some(owner) = owner {
                let holder: Option<String> = conn.query_row(
                    "SELECT hostname FROM action_plans WHERE uuid = ?1",
                    [plan.to_string()],
                    |r| r.get(0),
                )?;
                if let Some(h) = holder.filter(|h| *h != owner) {
                    return Err(StoreError::NotOwner { plan, owner: h });
                }
            }
            change_action(
                conn,
                events,
                plan,
                uuid,
                ActionState::Pending,
                ActionState::Ongoing,
                Actor::Applier,
                "started",
                None,
            )
        })
        .await
    }

    /// Compare-and-set of one action's state, with its history row.
    #[allow(clippy::too_many_arguments)]
    pub async fn transition_action(
        &self,
        plan: Uuid,
        uuid: Uuid,
        from: ActionState,
        to: ActionState,
        actor: Actor,
        reason: &str,
        status_message: Option<String>,
    ) -> Result<(), StoreError> {
        self.enqueue_transition_action(plan, uuid, from, to, actor, reason, status_message)
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Like [`Store::transition_action`], but queued now and answered later:
    /// see [`Store::enqueue`].
    #[allow(clippy::too_many_arguments)]
    pub fn enqueue_transition_action(
        &self,
        plan: Uuid,
        uuid: Uuid,
        from: ActionState,
        to: ActionState,
        actor: Actor,
        reason: &str,
        status_message: Option<String>,
    ) -> tokio::sync::oneshot::Receiver<Result<(), StoreError>> {
        let reason = reason.to_string();
        self.enqueue(move |conn, events| {
            change_action(
                conn,
                events,
                plan,
                uuid,
                from,
                to,
                actor,
                &reason,
                status_message.as_deref(),
            )
        })
    }

    /// Moves every action of the plan in `from` to `to`; returns those moved.
    #[allow(clippy::too_many_arguments)]
    pub async fn transition_plan_actions(
        &self,
        plan: Uuid,
        from: ActionState,
        to: ActionState,
        actor: Actor,
        reason: &str,
        status_message: Option<String>,
    ) -> Result<Vec<Uuid>, StoreError> {
        let reason = reason.to_string();
        self.write(move |conn, events| {
            move_actions(
                conn,
                events,
                plan,
                from,
                to,
                actor,
                &reason,
                status_message.as_deref(),
                now_micros(),
            )
        })
        .await
    }

    /// An operator's skip (PENDING -> SKIPPED), allowed while the plan is
    /// RECOMMENDED or PENDING; both checks and the write are one transaction.
    pub async fn skip_action(
        &self,
        uuid: Uuid,
        status_message: String,
    ) -> Result<Action, StoreError> {
        self.write(move |conn, events| {
            let action = conn
                .query_row_opt(
                    &format!("{ACTION_SELECT} WHERE x.uuid = ?1 AND x.deleted_at IS NULL"),
                    [uuid.to_string()],
                    action_from_row,
                )?
                .ok_or(StoreError::NotFound {
                    kind: "Action",
                    id: uuid.to_string(),
                })?;
            let plan = action.action_plan_uuid;
            let state = plan_state(conn, plan)?;
            if !matches!(
                state,
                ActionPlanState::Recommended | ActionPlanState::Pending
            ) {
                return Err(StoreError::PlanNotRunning { plan, state });
            }
            if action.state != ActionState::Skipped {
                change_action(
                    conn,
                    events,
                    plan,
                    uuid,
                    action.state,
                    ActionState::Skipped,
                    Actor::Api,
                    "skipped by operator",
                    Some(&status_message),
                )?;
            } else {
                conn.execute(
                    "UPDATE actions SET status_message = ?1, updated_at = ?2 WHERE uuid = ?3",
                    args![
                        bound_status_message(&status_message),
                        now_micros(),
                        uuid.to_string()
                    ],
                )?;
            }
            conn.query_row(
                &format!("{ACTION_SELECT} WHERE x.uuid = ?1"),
                [uuid.to_string()],
                action_from_row,
            )
        })
        .await
    }

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
            let filters = Where::default()
                .ident(filter.goal.as_deref(), "g.uuid", "g.name")
                .ident(filter.strategy.as_deref(), "s.uuid", "s.name");
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
                Ok(id) => ("x.id = ?1", SqlValue::Int(id)),
                Err(_) => ("x.name = ?1", SqlValue::Text(ident.clone())),
            };
            conn.query_row_opt(&format!("{SERVICE_SELECT} WHERE {clause} AND x.deleted_at IS NULL ORDER BY x.id LIMIT 1"), [arg], service_from_row)?
                .ok_or(StoreError::NotFound { kind: "Service", id: ident })
        })
        .await
    }

    // ----- history and journal -------------------------------------------------

    /// Every state change of a plan and its actions, in commit order.
    pub async fn plan_history(&self, plan: Uuid) -> Result<Vec<HistoryEntry>, StoreError> {
        self.read(move |conn| {
            conn.query_map("SELECT seq, entity, uuid, action_plan_uuid, from_state, to_state, actor, reason, at \
                 FROM state_history WHERE action_plan_uuid = ? ORDER BY seq",
                vec![SqlValue::Text(plan.to_string())],
                history_from_row,
            )
        })
        .await
    }

    /// The notification relay's cursor: created on first use at the newest
    /// history row (history from before notifications were enabled is not
    /// sent), with `nonce` as this database's message-id prefix.
    pub async fn notification_cursor(&self, nonce: i64) -> Result<(i64, i64), StoreError> {
        self.write(move |conn, _| {
            conn.execute(
                "INSERT INTO notification_cursor (id, last_seq, nonce) \
                 VALUES (1, (SELECT COALESCE(MAX(seq), 0) FROM state_history), ?1) ON CONFLICT DO NOTHING",
                [nonce],
            )?;
            conn.query_row(
                "SELECT last_seq, nonce FROM notification_cursor WHERE id = 1",
                (),
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .await
    }

    /// Takes or renews the relay lease for `host` until `until` (micros):
    /// the cursor's position if this relay leads now, None if another
    /// relay's lease is still running.
    pub async fn lead_notifications(
        &self,
        host: String,
        until: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.write(move |conn, _| {
            let n = conn.execute(
                "UPDATE notification_cursor SET holder = ?1, lease_expires_at = ?2 WHERE id = 1 \
                 AND (holder IS NULL OR holder = ?1 OR lease_expires_at < ?3)",
                args![host, until, now_micros()],
            )?;
            if n == 0 {
                return Ok(None);
            }
            Ok(Some(conn.query_row(
                "SELECT last_seq FROM notification_cursor WHERE id = 1",
                (),
                |r| r.get(0),
            )?))
        })
        .await
    }

    /// Records that every history row up to `seq` has been published, if
    /// `host` still holds the relay lease (a relay that lost it must not
    /// move the cursor of the one that took over).
    pub async fn advance_notification_cursor(
        &self,
        host: String,
        seq: i64,
    ) -> Result<bool, StoreError> {
        self.write(move |conn, _| {
            let n = conn.execute(
                &format!(
                    "UPDATE notification_cursor SET last_seq = {}(last_seq, ?1) WHERE id = 1 AND holder = ?2",
                    conn.dialect().greatest()
                ),
                args![seq, host],
            )?;
            Ok(n == 1)
        })
        .await
    }

    /// Extends this applier's leases on the plans it runs; returns the plans
    /// whose lease it no longer holds (another applier took them over).
    pub async fn renew_leases(
        &self,
        host: String,
        plans: Vec<Uuid>,
        until: i64,
    ) -> Result<Vec<Uuid>, StoreError> {
        self.write(move |conn, _| {
            let mut lost = vec![];
            for p in plans {
                let n = conn
                    .execute("UPDATE action_plans SET lease_expires_at = ?1 WHERE uuid = ?2 AND hostname = ?3 \
                         AND state IN ('ONGOING', 'CANCELLING')", args![until, p.to_string(), host])?;
                if n == 0 {
                    lost.push(p);
                }
            }
            Ok(lost)
        })
        .await
    }

    /// ONGOING or CANCELLING plans whose applier's lease ran out before `now` (micros).
    pub async fn plans_with_expired_lease(&self, now: i64) -> Result<Vec<ActionPlan>, StoreError> {
        self.read(move |conn| {
            conn.query_map(&format!(
                    "{PLAN_SELECT} WHERE x.state IN ('ONGOING', 'CANCELLING') AND x.deleted_at IS NULL \
                     AND x.lease_expires_at IS NOT NULL AND x.lease_expires_at < ? ORDER BY x.id"
                ),
                vec![SqlValue::Int(now)],
                plan_from_row,
            )
        })
        .await
    }

    /// Takes over a plan whose lease ran out: compare-and-set on its holder
    /// and on the lease still being expired, with a history row saying who
    /// took it from whom. Conflict if another applier was faster.
    pub async fn take_over_plan(
        &self,
        uuid: Uuid,
        from_host: String,
        to_host: String,
        until: i64,
    ) -> Result<ActionPlan, StoreError> {
        self.write(move |conn, events| {
            let now = now_micros();
            let n = conn.execute(
                "UPDATE action_plans SET hostname = ?1, lease_expires_at = ?2, updated_at = ?3 \
                     WHERE uuid = ?4 AND hostname = ?5 AND lease_expires_at < ?3 \
                     AND state IN ('ONGOING', 'CANCELLING') AND deleted_at IS NULL",
                args![to_host, until, now, uuid.to_string(), from_host],
            )?;
            if n == 0 {
                return Err(StoreError::LeaseLost {
                    plan: uuid,
                    holder: from_host,
                });
            }
            let plan = get_plan_conn(conn, uuid, false)?;
            let state = plan.state.as_str();
            record_history(
                conn,
                Entity::ActionPlan,
                uuid,
                Some(uuid),
                Some(state),
                state,
                Actor::Recovery,
                &format!("the lease of applier {from_host} expired; taken over by {to_host}"),
                now,
            )?;
            events.push(StoreEvent::PlanState {
                uuid,
                state: plan.state,
            });
            Ok(plan)
        })
        .await
    }

    /// How many live plans, actions and audits are in each state.
    pub async fn state_counts(&self) -> Result<StateCounts, StoreError> {
        self.read(|conn| {
            let count = |table: &str| -> Result<Vec<(String, i64)>, StoreError> {
                let sql = format!(
                    "SELECT state, COUNT(*) FROM {table} WHERE deleted_at IS NULL GROUP BY state ORDER BY state"
                );
                conn.query_map(&sql, (), |r| Ok((r.get(0)?, r.get(1)?)))
            };
            Ok(StateCounts {
                action_plans: count("action_plans")?,
                actions: count("actions")?,
                audits: count("audits")?,
            })
        })
        .await
    }

    /// The newest history row's number, and the notification cursor if
    /// notifications were ever enabled.
    pub async fn history_position(&self) -> Result<(i64, Option<i64>), StoreError> {
        self.read(|conn| {
            let newest: i64 =
                conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM state_history", (), |r| {
                    r.get(0)
                })?;
            let cursor: Option<i64> = conn.query_row_opt(
                "SELECT last_seq FROM notification_cursor WHERE id = 1",
                (),
                |r| r.get(0),
            )?;
            Ok((newest, cursor))
        })
        .await
    }

    /// The type of each of these actions (deleted ones included).
    pub async fn action_types(
        &self,
        uuids: Vec<Uuid>,
    ) -> Result<HashMap<Uuid, String>, StoreError> {
        self.read(move |conn| {
            let mut out = HashMap::new();
            for chunk in uuids.chunks(400) {
                let marks = vec!["?"; chunk.len()].join(",");
                let rows = conn.query_map(
                    &format!("SELECT uuid, action_type FROM actions WHERE uuid IN ({marks})"),
                    chunk
                        .iter()
                        .map(|u| SqlValue::Text(u.to_string()))
                        .collect::<Vec<_>>(),
                    |r| Ok((r.uuid(0)?, r.get::<String>(1)?)),
                )?;
                out.extend(rows);
            }
            Ok(out)
        })
        .await
    }

    /// History rows after `seq`, oldest first.
    pub async fn history_after(
        &self,
        seq: i64,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.read(move |conn| {
            conn.query_map("SELECT seq, entity, uuid, action_plan_uuid, from_state, to_state, actor, reason, at \
                 FROM state_history WHERE seq > ? ORDER BY seq LIMIT ?",
                vec![SqlValue::Int(seq), SqlValue::Int(limit as i64)],
                history_from_row,
            )
        })
        .await
    }

    /// Progress of a running action, shown as its `status_message`. Not a
    /// state change, so no history row; ignored once the action has moved on.
    pub async fn set_action_progress(&self, uuid: Uuid, message: String) -> Result<(), StoreError> {
        self.write(move |conn, _| {
            conn.execute(
                "UPDATE actions SET status_message = ?1 WHERE uuid = ?2 AND state = 'ONGOING'",
                args![bound_status_message(&message), uuid.to_string()],
            )?;
            Ok(())
        })
        .await
    }

    /// Records what an action is about to ask of the cloud, before asking.
    pub async fn journal_intent(&self, action: Uuid, intent: Value) -> Result<(), StoreError> {
        self.write(move |conn, _| {
            conn.execute(
                "INSERT INTO action_journal (action_uuid, intent, recorded_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(action_uuid) DO UPDATE SET intent = excluded.intent, operation_id = NULL, \
                 updated_at = excluded.recorded_at",
                args![action.to_string(), intent.to_string(), now_micros()],
            )?;
            Ok(())
        })
        .await
    }

    /// Records the cloud's id for the operation an intent started.
    pub async fn journal_operation(
        &self,
        action: Uuid,
        operation_id: String,
    ) -> Result<(), StoreError> {
        self.write(move |conn, _| {
            // updated_at stays the intent's time (`JournalEntry::intended_at`).
            conn.execute(
                "UPDATE action_journal SET operation_id = ?1 WHERE action_uuid = ?2",
                args![operation_id, action.to_string()],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn journal(&self, action: Uuid) -> Result<Option<JournalEntry>, StoreError> {
        self.read(move |conn| {
            conn.query_row_opt(
                // A later intent of the same action sets updated_at.
                "SELECT action_uuid, intent, operation_id, COALESCE(updated_at, recorded_at) \
                 FROM action_journal WHERE action_uuid = ?1",
                [action.to_string()],
                |r| {
                    Ok(JournalEntry {
                        action_uuid: r.uuid(0)?,
                        intent: r.json(1)?,
                        operation_id: r.get(2)?,
                        intended_at: r.time(3)?,
                    })
                },
            )
        })
        .await
    }
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
        "SELECT uuid FROM audit_templates WHERE name = ?1 AND deleted_at IS NULL AND uuid != ?2",
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

#[allow(clippy::too_many_arguments)]
fn change_action(
    conn: &Conn,
    events: &mut Vec<StoreEvent>,
    plan: Uuid,
    uuid: Uuid,
    from: ActionState,
    to: ActionState,
    actor: Actor,
    reason: &str,
    status_message: Option<&str>,
) -> Result<(), StoreError> {
    if !action_transition_allowed(from, to, actor) {
        return Err(StoreError::IllegalTransition {
            from: from.into(),
            to: to.into(),
        });
    }
    let now = now_micros();
    let n = conn.execute(
        // The message explains the latest state, so each change replaces it.
        "UPDATE actions SET state = ?1, updated_at = ?2, status_message = ?3 \
             WHERE uuid = ?4 AND state = ?5 AND deleted_at IS NULL",
        args![
            to.as_str(),
            now,
            status_message.map(bound_status_message),
            uuid.to_string(),
            from.as_str()
        ],
    )?;
    if n == 0 {
        let current: Option<String> = conn.query_row_opt(
            "SELECT state FROM actions WHERE uuid = ?1",
            [uuid.to_string()],
            |r| r.get(0),
        )?;
        return Err(match current {
            None => StoreError::NotFound {
                kind: "Action",
                id: uuid.to_string(),
            },
            Some(current) => StoreError::Conflict {
                id: uuid.to_string(),
                expected: from.into(),
                current: EntityState::Action(current.parse()?),
            },
        });
    }
    record_history(
        conn,
        Entity::Action,
        uuid,
        Some(plan),
        Some(from.as_str()),
        to.as_str(),
        actor,
        reason,
        now,
    )?;
    events.push(StoreEvent::ActionState {
        plan,
        uuid,
        state: to,
    });
    Ok(())
}

/// [`Store::transition_plan`] inside a transaction that may do more.
#[allow(clippy::too_many_arguments)]
fn transition_plan_conn(
    conn: &Conn,
    events: &mut Vec<StoreEvent>,
    uuid: Uuid,
    from: ActionPlanState,
    to: ActionPlanState,
    actor: Actor,
    reason: &str,
    update: PlanUpdate,
) -> Result<(), StoreError> {
    use ActionPlanState as P;
    if !plan_transition_allowed(from, to, actor) {
        return Err(StoreError::IllegalTransition {
            from: from.into(),
            to: to.into(),
        });
    }
    let now = now_micros();
    let deleted_at = (to == P::Deleted).then_some(now);
    let n = conn
        .execute("UPDATE action_plans SET state = ?1, updated_at = ?2, \
             status_message = COALESCE(?3, status_message), hostname = COALESCE(?4, hostname), \
             deleted_at = COALESCE(?5, deleted_at), lease_expires_at = COALESCE(?8, lease_expires_at) \
             WHERE uuid = ?6 AND state = ?7 AND deleted_at IS NULL", args![
            to.as_str(),
            now,
            update.status_message.as_deref().map(bound_status_message),
            update.hostname,
            deleted_at,
            uuid.to_string(),
            from.as_str(),
            update.lease_until
        ])?;
    if n == 0 {
        let current = plan_state(conn, uuid)?;
        return Err(StoreError::Conflict {
            id: uuid.to_string(),
            expected: from.into(),
            current: current.into(),
        });
    }
    record_history(
        conn,
        Entity::ActionPlan,
        uuid,
        Some(uuid),
        Some(from.as_str()),
        to.as_str(),
        actor,
        reason,
        now,
    )?;
    events.push(StoreEvent::PlanState { uuid, state: to });
    match to {
        P::Cancelled if matches!(from, P::Recommended | P::Pending) => {
            move_actions(
                conn,
                events,
                uuid,
                ActionState::Pending,
                ActionState::Cancelled,
                actor,
                "action plan cancelled before it ran",
                Some("Action plan cancelled before this action ran."),
                now,
            )?;
        }
        P::Deleted => {
            for s in [
                ActionState::Pending,
                ActionState::Succeeded,
                ActionState::Failed,
                ActionState::Skipped,
                ActionState::Cancelled,
            ] {
                move_actions(
                    conn,
                    events,
                    uuid,
                    s,
                    ActionState::Deleted,
                    actor,
                    "action plan deleted",
                    None,
                    now,
                )?;
            }
        }
        _ => {}
    }
    Ok(())
}
