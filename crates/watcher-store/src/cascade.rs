//! The writes that cross the line between plans and actions, used by
//! both: a plan's state as a write sees it, and a set-based move of a
//! plan's actions (a cancel, a delete).

use crate::history::check_transition;
use crate::sql::{args, Conn};
use crate::*;
use uuid::Uuid;
use watcher_core::*;

pub(crate) fn plan_state(conn: &Conn, uuid: Uuid) -> Result<ActionPlanState, StoreError> {
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

/// Moves every action of `plan` that is in `from` to `to`, with a history
/// row each. Returns the actions moved.
pub(crate) fn move_actions(
    conn: &Conn,
    events: &mut Vec<StoreEvent>,
    plan: Uuid,
    change: &StateChange<ActionState>,
    status_message: Option<&str>,
    now: i64,
) -> Result<Vec<Uuid>, StoreError> {
    check_transition(change)?;
    let (from, to) = (change.from, change.to);
    // Set-based: one history INSERT and one UPDATE for the whole group, so
    // cancelling a plan with thousands of PENDING actions stays fast.
    let plan_id: i64 = conn.query_row(
        "SELECT id FROM action_plans WHERE uuid = ?1",
        [plan.to_string()],
        |r| r.get(0),
    )?;
    conn.execute("INSERT INTO state_history (entity, uuid, action_plan_uuid, from_state, to_state, actor, reason, at) \
         SELECT ?8, uuid, ?1, ?2, ?3, ?4, ?5, ?6 FROM actions \
         WHERE action_plan_id = ?7 AND state = ?2 ORDER BY id", args![plan, from, to, change.actor, change.reason, now, plan_id, Entity::Action])?;
    let deleted_at = (to == ActionState::Deleted).then_some(now);
    let status_message = status_message.map(bound_status_message);
    let update =
        "UPDATE actions SET state = ?1, updated_at = ?2, deleted_at = COALESCE(?3, deleted_at), \
         status_message = COALESCE(?4, status_message) WHERE action_plan_id = ?5 AND state = ?6";
    let update_args = args![to, now, deleted_at, status_message, plan_id, from];
    let uuids: Vec<Uuid> = if conn.dialect() == Dialect::Mysql {
        // No UPDATE .. RETURNING: the rows are read first, under the
        // writers' lock, so no other writer moves them in between.
        let uuids = conn.query_map(
            "SELECT uuid FROM actions WHERE action_plan_id = ?1 AND state = ?2 ORDER BY id",
            args![plan_id, from],
            |r| r.uuid(0),
        )?;
        conn.execute(update, update_args)?;
        uuids
    } else {
        conn.query_map(&format!("{update} RETURNING uuid"), update_args, |r| {
            r.uuid(0)
        })?
    };
    if !uuids.is_empty() {
        events.push(StoreEvent::ActionsMoved {
            plan,
            state: to,
            count: uuids.len(),
        });
    }
    Ok(uuids)
}
