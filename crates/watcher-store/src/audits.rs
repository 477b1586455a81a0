//! Audits: creation, edits, triggers, schedules and their state machine.

use crate::history::{check_transition, record_history, NewHistory};
use crate::listing::{build_list_sql, Where};
use crate::sql::{args, Conn, Row, Value as SqlValue};
use crate::*;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;
use watcher_core::*;

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub goal: Option<String>,
    pub strategy: Option<String>,
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

const AUDIT_SELECT: &str = "SELECT x.id, x.uuid, x.name, x.audit_type, x.state, g.uuid AS goal_uuid, \
    g.name AS goal_name, s.uuid AS strategy_uuid, s.name AS strategy_name, x.parameters, x.interval, x.scope, x.auto_trigger, x.force, \
    x.next_run_time, x.start_time, x.end_time, x.hostname, x.status_message, \
    x.created_at, x.updated_at, x.deleted_at, x.triggered \
    FROM audits x JOIN goals g ON g.id = x.goal_id LEFT JOIN strategies s ON s.id = x.strategy_id";

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

pub(crate) fn get_audit_conn(
    conn: &Conn,
    ident: &str,
    show_deleted: bool,
) -> Result<Audit, StoreError> {
    let (condition, ident) = match Uuid::parse_str(ident) {
        Ok(u) => ("x.uuid = ?1".to_string(), u.to_string()),
        Err(_) => (conn.dialect().name_eq("x.name", "?1"), ident.to_string()),
    };
    let sql = format!(
        "{AUDIT_SELECT} WHERE {condition}{} ORDER BY x.id DESC LIMIT 1",
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

impl Store {
    // ----- audits ----------------------------------------------------------

    pub async fn create_audit(&self, new: NewAudit) -> Result<Audit, StoreError> {
        self.write(move |conn, events| {
            let now = now_micros();
            conn.execute(
                "INSERT INTO audits (uuid, name, audit_type, state, goal_id, strategy_id, parameters, \
                 interval, scope, auto_trigger, force, start_time, end_time, created_at) \
                 VALUES (?1, ?2, ?3, ?14, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
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
                    now,
                    AuditState::Pending
                ],
            )?;
            record_history(
                conn,
                &NewHistory {
                    uuid: new.uuid,
                    plan: None,
                    from: None,
                    to: AuditState::Pending.into(),
                    actor: Actor::Api,
                    reason: "audit created",
                    at: now,
                },
            )?;
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
            let filters = Where::on(conn)
                .goal_and_strategy(filter.goal.as_deref(), filter.strategy.as_deref());
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
                    "{AUDIT_SELECT} WHERE x.audit_type = ?2 AND x.state IN (?3, ?4) \
                     AND (x.hostname IS NULL OR x.hostname = ?1) AND x.deleted_at IS NULL ORDER BY x.id"
                ),
                args![host, AuditType::Continuous, AuditState::Pending, AuditState::Ongoing],
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
    pub async fn transition_audit(
        &self,
        uuid: Uuid,
        change: StateChange<AuditState>,
        status_message: Option<String>,
        hostname: Option<String>,
    ) -> Result<Audit, StoreError> {
        self.write(move |conn, events| {
            check_transition(&change)?;
            let (from, to) = (change.from, change.to);
            let now = now_micros();
            let deleted_at = (to == AuditState::Deleted).then_some(now);
            let n = conn.execute(
                "UPDATE audits SET state = ?1, updated_at = ?2, status_message = COALESCE(?3, status_message), \
                 hostname = COALESCE(?4, hostname), deleted_at = COALESCE(?5, deleted_at), \
                 triggered = CASE WHEN ?1 = ?8 THEN 0 ELSE triggered END \
                 WHERE uuid = ?6 AND state = ?7 AND deleted_at IS NULL",
                args![
                    to,
                    now,
                    status_message.as_deref().map(bound_status_message),
                    hostname,
                    deleted_at,
                    uuid,
                    from,
                    AuditState::Ongoing
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
            record_history(
                conn,
                &NewHistory {
                    uuid,
                    plan: None,
                    from: Some(from.into()),
                    to: to.into(),
                    actor: change.actor,
                    reason: &change.reason,
                    at: now,
                },
            )?;
            events.push(StoreEvent::AuditState { uuid, state: to });
            get_audit_conn(conn, &uuid.to_string(), true)
        })
        .await
    }
}
