//! Actions: their reads, starts, state changes (one, or a plan's at once), skips and progress.

use crate::cascade::{move_actions, plan_state};
use crate::history::{check_transition, record_history, NewHistory};
use crate::listing::{build_list_sql, Where};
use crate::sql::{args, Conn, Row, Value as SqlValue};
use crate::*;
use std::collections::HashMap;
use uuid::Uuid;
use watcher_core::*;

#[derive(Debug, Clone, Default)]
pub struct ActionFilter {
    pub action_plan_uuid: Option<Uuid>,
    pub audit_uuid: Option<Uuid>,
}

const ACTION_SELECT: &str =
    "SELECT x.id, x.uuid, p.uuid AS action_plan_uuid, x.action_type, x.input_parameters, \
    x.parents, x.state, x.status_message, x.created_at, x.updated_at, x.deleted_at \
    FROM actions x JOIN action_plans p ON p.id = x.action_plan_id";

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

fn change_action(
    conn: &Conn,
    events: &mut Vec<StoreEvent>,
    (plan, uuid): (Uuid, Uuid),
    change: &StateChange<ActionState>,
    status_message: Option<&str>,
) -> Result<(), StoreError> {
    check_transition(change)?;
    let (from, to) = (change.from, change.to);
    let now = now_micros();
    let n = conn.execute(
        // The message explains the latest state, so each change replaces it.
        "UPDATE actions SET state = ?1, updated_at = ?2, status_message = ?3 \
             WHERE uuid = ?4 AND state = ?5 AND deleted_at IS NULL",
        args![
            to,
            now,
            status_message.map(bound_status_message),
            uuid,
            from
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
        &NewHistory {
            uuid,
            plan: Some(plan),
            from: Some(from.into()),
            to: to.into(),
            actor: change.actor,
            reason: &change.reason,
            at: now,
        },
    )?;
    events.push(StoreEvent::ActionState {
        plan,
        uuid,
        state: to,
    });
    Ok(())
}

impl Store {
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
            let filters = Where::on(conn)
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
            if let Some(owner) = &owner {
                let holder: Option<String> = conn.query_row(
                    "SELECT hostname FROM action_plans WHERE uuid = ?1",
                    [plan.to_string()],
                    |r| r.get(0),
                )?;
                if let Some(h) = holder.filter(|h| h != owner) {
                    return Err(StoreError::NotOwner { plan, owner: h });
                }
            }
            let start = StateChange::new(
                ActionState::Pending,
                ActionState::Ongoing,
                Actor::Applier,
                "started",
            );
            change_action(conn, events, (plan, uuid), &start, None)
        })
        .await
    }

    /// Compare-and-set of one action's state, with its history row.
    pub async fn transition_action(
        &self,
        plan: Uuid,
        uuid: Uuid,
        change: StateChange<ActionState>,
        status_message: Option<String>,
    ) -> Result<(), StoreError> {
        self.enqueue_transition_action(plan, uuid, change, status_message)
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Like [`Store::transition_action`], but queued now and answered later:
    /// see [`Store::enqueue`].
    pub fn enqueue_transition_action(
        &self,
        plan: Uuid,
        uuid: Uuid,
        change: StateChange<ActionState>,
        status_message: Option<String>,
    ) -> tokio::sync::oneshot::Receiver<Result<(), StoreError>> {
        self.enqueue(move |conn, events| {
            change_action(
                conn,
                events,
                (plan, uuid),
                &change,
                status_message.as_deref(),
            )
        })
    }

    /// Moves every action of the plan in `from` to `to`; returns those moved.
    pub async fn transition_plan_actions(
        &self,
        plan: Uuid,
        change: StateChange<ActionState>,
        status_message: Option<String>,
    ) -> Result<Vec<Uuid>, StoreError> {
        self.write(move |conn, events| {
            move_actions(
                conn,
                events,
                plan,
                &change,
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
                let skip = StateChange::new(
                    action.state,
                    ActionState::Skipped,
                    Actor::Api,
                    "skipped by operator",
                );
                change_action(conn, events, (plan, uuid), &skip, Some(&status_message))?;
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

    /// How many live actions each of these plans has in each state: one
    /// grouped query, however many plans and actions.
    pub async fn action_counts(
        &self,
        plans: Vec<Uuid>,
    ) -> Result<HashMap<Uuid, Vec<(ActionState, i64)>>, StoreError> {
        self.read(move |conn| {
            let mut out: HashMap<Uuid, Vec<(ActionState, i64)>> = HashMap::new();
            for chunk in plans.chunks(400) {
                let marks = crate::sql::marks(chunk.len());
                let rows = conn.query_map(
                    &format!(
                        "SELECT p.uuid, x.state, COUNT(*) AS n FROM actions x \
                         JOIN action_plans p ON p.id = x.action_plan_id \
                         WHERE p.uuid IN ({marks}) AND x.deleted_at IS NULL \
                         GROUP BY p.uuid, x.state"
                    ),
                    chunk
                        .iter()
                        .map(|u| SqlValue::Text(u.to_string()))
                        .collect::<Vec<_>>(),
                    |r| {
                        Ok((
                            r.uuid(0)?,
                            r.parsed::<ActionState>("state")?,
                            r.get::<i64>("n")?,
                        ))
                    },
                )?;
                for (plan, state, n) in rows {
                    out.entry(plan).or_default().push((state, n));
                }
            }
            Ok(out)
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
                let marks = crate::sql::marks(chunk.len());
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

    /// Progress of a running action, shown as its `status_message`. Not a
    /// state change, so no history row; ignored once the action has moved on.
    pub async fn set_action_progress(&self, uuid: Uuid, message: String) -> Result<(), StoreError> {
        self.write(move |conn, _| {
            conn.execute(
                "UPDATE actions SET status_message = ?1 WHERE uuid = ?2 AND state = ?3",
                args![bound_status_message(&message), uuid, ActionState::Ongoing],
            )?;
            Ok(())
        })
        .await
    }
}
