//! Action plans: creation (whole, with their actions), state changes, leases and takeovers.

use crate::audits::get_audit_conn;
use crate::cascade::{move_actions, plan_state};
use crate::history::{check_transition, record_history, NewHistory};
use crate::listing::{build_list_sql, Where};
use crate::sql::{args, Conn, Row, Value as SqlValue};
use crate::*;
use chrono::{DateTime, Utc};
use uuid::Uuid;
use watcher_core::*;

#[derive(Debug, Clone, Default)]
pub struct PlanFilter {
    pub audit_uuid: Option<Uuid>,
    pub strategy: Option<String>,
    /// Plans in any of these states; empty: every state.
    pub states: Vec<ActionPlanState>,
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

/// Why an applier takes a plan over from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takeover {
    /// The holder stopped renewing its lease.
    LeaseExpired,
    /// The holder's presence lock is free: its session ended (PostgreSQL).
    ApplierGone,
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

pub(crate) fn get_plan_conn(
    conn: &Conn,
    uuid: Uuid,
    show_deleted: bool,
) -> Result<ActionPlan, StoreError> {
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

/// [`Store::transition_plan`] inside a transaction that may do more.
// Long because the compare-and-set, its history row and the cascades of each target state
// belong to one transaction and are read together.
pub(crate) fn transition_plan_conn(
    conn: &Conn,
    events: &mut Vec<StoreEvent>,
    uuid: Uuid,
    change: &StateChange<ActionPlanState>,
    update: PlanUpdate,
) -> Result<(), StoreError> {
    use ActionPlanState as P;
    check_transition(change)?;
    let (from, to, actor) = (change.from, change.to, change.actor);
    let now = now_micros();
    let deleted_at = (to == P::Deleted).then_some(now);
    let n = conn
        .execute("UPDATE action_plans SET state = ?1, updated_at = ?2, \
             status_message = COALESCE(?3, status_message), hostname = COALESCE(?4, hostname), \
             deleted_at = COALESCE(?5, deleted_at), lease_expires_at = COALESCE(?8, lease_expires_at) \
             WHERE uuid = ?6 AND state = ?7 AND deleted_at IS NULL", args![
            to,
            now,
            update.status_message.as_deref().map(bound_status_message),
            update.hostname,
            deleted_at,
            uuid,
            from,
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
        &NewHistory {
            uuid,
            plan: Some(uuid),
            from: Some(from.into()),
            to: to.into(),
            actor,
            reason: &change.reason,
            at: now,
        },
    )?;
    events.push(StoreEvent::PlanState { uuid, state: to });
    match to {
        P::Cancelled if matches!(from, P::Recommended | P::Pending | P::Paused) => {
            let cancel = StateChange::new(
                ActionState::Pending,
                ActionState::Cancelled,
                actor,
                "action plan cancelled before it ran",
            );
            let message = "Action plan cancelled before this action ran.";
            move_actions(conn, events, uuid, &cancel, Some(message), now)?;
        }
        P::Deleted => {
            for s in [
                ActionState::Pending,
                ActionState::Succeeded,
                ActionState::Failed,
                ActionState::Skipped,
                ActionState::Cancelled,
            ] {
                let delete =
                    StateChange::new(s, ActionState::Deleted, actor, "action plan deleted");
                move_actions(conn, events, uuid, &delete, None, now)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Rows per multi-row INSERT of actions: 6 values each, well under
/// SQLite's 32,766 bound variables and PostgreSQL's 65,535 parameters.
const ACTIONS_PER_INSERT: usize = 500;

/// A plan's actions in a few multi-row INSERTs instead of one statement
/// (one round trip on PostgreSQL) per action: a plan of 10,000 actions
/// holds the write lock for tens of milliseconds, not seconds.
fn insert_actions(
    conn: &Conn,
    plan_id: i64,
    actions: &[NewAction],
    now: i64,
) -> Result<(), StoreError> {
    for chunk in actions.chunks(ACTIONS_PER_INSERT) {
        // ?1 to ?3 are shared by every row; each row's own values follow.
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| {
                let n = 4 + 4 * i;
                format!("(?{n}, ?1, ?{}, ?{}, ?{}, ?3, ?2)", n + 1, n + 2, n + 3)
            })
            .collect();
        let mut values = Vec::with_capacity(3 + 4 * chunk.len());
        values.extend(args![plan_id, now, ActionState::Pending]);
        for a in chunk {
            values.extend(args![
                a.uuid.to_string(),
                a.action_type,
                a.input_parameters.to_string(),
                serde_json::to_string(&a.parents)?
            ]);
        }
        conn.execute(
            &format!(
                "INSERT INTO actions (uuid, action_plan_id, action_type, input_parameters, parents, state, created_at) VALUES {}",
                rows.join(", ")
            ),
            values,
        )?;
    }
    Ok(())
}

impl Store {
    // ----- action plans ----------------------------------------------------

    /// Creates a plan and its actions, and marks its audit SUCCEEDED, in one
    /// transaction: nobody ever sees a plan without all its actions.
    /// A plan without actions is born SUCCEEDED, as upstream does.
    pub async fn create_plan(&self, new: NewPlan) -> Result<ActionPlan, StoreError> {
        self.write_bulk(move |conn, events| {
            let now = now_micros();
            let state = if new.actions.is_empty() {
                ActionPlanState::Succeeded
            } else {
                ActionPlanState::Recommended
            };
            // First the rows nobody sees until the commit, without the
            // writers' lock (PostgreSQL): the plan and its actions.
            let audit = get_audit_conn(conn, &new.audit_uuid.to_string(), false)?;
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
            insert_actions(conn, plan_id, &new.actions, now)?;
            // Then, under the lock, the audit's state read again (a cancel
            // may have come meanwhile), the history and the audit's change.
            conn.lock_writers()?;
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
                    .query_map("SELECT uuid FROM action_plans WHERE audit_id = ?1 AND state = ?3 \
                         AND deleted_at IS NULL AND id <> ?2", args![audit.id, plan_id, ActionPlanState::Recommended], |r| r.uuid(0))?;
                for old in older {
                    let replaced = StateChange::new(
                        ActionPlanState::Recommended,
                        ActionPlanState::Cancelled,
                        Actor::DecisionEngine,
                        format!("replaced by action plan {} of the same continuous audit", new.uuid),
                    );
                    transition_plan_conn(conn, events, old, &replaced, PlanUpdate::default())?;
                }
            }
            // One row, for the actions' creations too (`history.rs`,
            // `actions_created_with`): a row per action here held every
            // other writer for as long as they took.
            record_history(
                conn,
                &NewHistory {
                    uuid: new.uuid,
                    plan: Some(new.uuid),
                    from: None,
                    to: state.into(),
                    actor: Actor::DecisionEngine,
                    reason: &format!("created by audit {}", audit.uuid),
                    at: now,
                },
            )?;
            if continuous {
                conn.execute(
                    "UPDATE audits SET next_run_time = ?1, status_message = NULL, updated_at = ?2 WHERE id = ?3",
                    args![new.next_run_time.map(super::to_micros), now, audit.id],
                )?;
            } else {
                conn.execute(
                    "UPDATE audits SET state = ?3, updated_at = ?1 WHERE id = ?2",
                    args![now, audit.id, AuditState::Succeeded],
                )?;
                record_history(
                    conn,
                    &NewHistory {
                        uuid: audit.uuid,
                        plan: None,
                        from: Some(AuditState::Ongoing.into()),
                        to: AuditState::Succeeded.into(),
                        actor: Actor::DecisionEngine,
                        reason: &format!("produced action plan {}", new.uuid),
                        at: now,
                    },
                )?;
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
            let filters = Where::on(conn)
                .eq("a.uuid = ?", filter.audit_uuid.map(|u| u.to_string()))
                .ident(filter.strategy.as_deref(), "s.uuid", "s.name")
                .any_of(
                    "x.state",
                    filter
                        .states
                        .iter()
                        .map(|s| s.as_str().to_string())
                        .collect(),
                );
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
            let marks = crate::sql::marks(states.len());
            conn.query_map(&format!("{PLAN_SELECT} WHERE x.state IN ({marks}) AND x.deleted_at IS NULL ORDER BY x.id"),
                states.clone(),
                plan_from_row,
            )
        })
        .await
    }

    /// RECOMMENDED plans whose audit has `auto_trigger`: the only ones the
    /// applier's sweep starts on its own (no read per plan of its audit).
    pub async fn auto_trigger_plans(&self) -> Result<Vec<ActionPlan>, StoreError> {
        self.read(|conn| {
            // From the audits that asked for it (a partial index), to their
            // plans by (audit, state): the recommendations waiting for a
            // person are never read. `x.state || ''` keeps SQLite's planner
            // off the state index, which would visit every recommendation
            // (the same words on PostgreSQL, whose statistics decide well).
            conn.query_map(
                &format!(
                    "{PLAN_SELECT} WHERE x.audit_id IN (SELECT id FROM audits WHERE auto_trigger = 1) \
                     AND x.state || '' = ?1 AND x.deleted_at IS NULL ORDER BY x.id"
                ),
                args![ActionPlanState::Recommended],
                plan_from_row,
            )
        })
        .await
    }

    /// The uuids of RECOMMENDED plans created before `cutoff` (at most
    /// `limit`): what expiry supersedes, found by index, not by reading
    /// every recommendation.
    pub async fn recommended_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Uuid>, StoreError> {
        let cutoff = to_micros(cutoff);
        self.read(move |conn| {
            conn.query_map(
                "SELECT uuid FROM action_plans WHERE state = ?3 AND created_at < ?1 \
                 AND deleted_at IS NULL ORDER BY created_at LIMIT ?2",
                args![cutoff, limit as i64, ActionPlanState::Recommended],
                |r| r.uuid("uuid"),
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
        change: StateChange<ActionPlanState>,
        update: PlanUpdate,
    ) -> Result<ActionPlan, StoreError> {
        self.write(move |conn, events| {
            transition_plan_conn(conn, events, uuid, &change, update.clone())?;
            get_plan_conn(conn, uuid, true)
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
            for &p in &plans {
                let n = conn
                    // A running plan without a holder (left by a version
                    // that did not record one) becomes this applier's.
                    .execute("UPDATE action_plans SET lease_expires_at = ?1, hostname = ?3 WHERE uuid = ?2 \
                         AND (hostname = ?3 OR hostname IS NULL) AND state IN (?4, ?5, ?6)",
                         args![until, p, host, ActionPlanState::Ongoing, ActionPlanState::Cancelling,
                               ActionPlanState::Paused])?;
                if n == 0 {
                    lost.push(p);
                }
            }
            Ok(lost)
        })
        .await
    }

    /// Held plans (ONGOING, CANCELLING, or PAUSED with its run still
    /// finishing) whose applier's lease ran out before `now` (micros).
    pub async fn plans_with_expired_lease(&self, now: i64) -> Result<Vec<ActionPlan>, StoreError> {
        self.read(move |conn| {
            conn.query_map(
                &format!(
                    "{PLAN_SELECT} WHERE x.state IN (?2, ?3, ?4) AND x.deleted_at IS NULL \
                     AND x.lease_expires_at IS NOT NULL AND x.lease_expires_at < ?1 ORDER BY x.id"
                ),
                args![
                    now,
                    ActionPlanState::Ongoing,
                    ActionPlanState::Cancelling,
                    ActionPlanState::Paused
                ],
                plan_from_row,
            )
        })
        .await
    }

    /// Takes over a plan whose applier is gone: its lease ran out, or (on
    /// PostgreSQL) its presence lock is free. Compare-and-set on the holder
    /// (and, for a lease, on it still being expired), with a history row
    /// saying who took it from whom and why. `LeaseLost` if another
    /// applier was faster or the holder came back.
    pub async fn take_over_plan(
        &self,
        uuid: Uuid,
        from_host: String,
        to_host: String,
        until: i64,
        why: Takeover,
    ) -> Result<ActionPlan, StoreError> {
        self.write(move |conn, events| {
            let now = now_micros();
            let lease_check = match why {
                Takeover::LeaseExpired => "AND lease_expires_at < ?3",
                Takeover::ApplierGone => "",
            };
            let n = conn.execute(
                &format!(
                    "UPDATE action_plans SET hostname = ?1, lease_expires_at = ?2, updated_at = ?3 \
                     WHERE uuid = ?4 AND hostname = ?5 {lease_check} \
                     AND state IN (?6, ?7, ?8) AND deleted_at IS NULL"
                ),
                args![
                    to_host,
                    until,
                    now,
                    uuid,
                    from_host,
                    ActionPlanState::Ongoing,
                    ActionPlanState::Cancelling,
                    ActionPlanState::Paused
                ],
            )?;
            if n == 0 {
                return Err(StoreError::LeaseLost {
                    plan: uuid,
                    holder: from_host.clone(),
                });
            }
            let plan = get_plan_conn(conn, uuid, false)?;
            let state = EntityState::ActionPlan(plan.state);
            let reason = match why {
                    Takeover::LeaseExpired => {
                        format!("the lease of applier {from_host} expired; taken over by {to_host}")
                    }
                    Takeover::ApplierGone => format!(
                        "applier {from_host} is gone (its database session ended); taken over by {to_host}"
                    ),
            };
            record_history(
                conn,
                &NewHistory {
                    uuid,
                    plan: Some(uuid),
                    from: Some(state),
                    to: state,
                    actor: Actor::Recovery,
                    reason: &reason,
                    at: now,
                },
            )?;
            events.push(StoreEvent::PlanState {
                uuid,
                state: plan.state,
            });
            Ok(plan)
        })
        .await
    }
}
