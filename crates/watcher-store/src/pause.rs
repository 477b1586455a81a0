//! Pause and resume of a running plan (watcherd's own): PAUSED starts no
//! action. A paused plan is *held* while its run lets running actions
//! finish (its applier keeps `hostname` and the lease, and another takes
//! it over if that applier dies), and *released* once nothing runs
//! (`hostname` and lease cleared). Whether it is held decides, in the
//! transaction of the operator's request, where a resume or a cancel goes:
//!
//! - resume: held -> ONGOING (the same run goes on); released -> PENDING
//!   (whichever applier claims it first continues it);
//! - cancel: held -> CANCELLING (the run aborts what runs); released ->
//!   CANCELLED at once, its PENDING actions with it.

use crate::history::{record_history, NewHistory};
use crate::plans::{get_plan_conn, transition_plan_conn};
use crate::sql::{args, Conn};
use crate::*;
use uuid::Uuid;
use watcher_core::*;

/// Whether an applier holds `plan` (a paused plan's run still finishing).
fn held(conn: &Conn, plan: Uuid) -> Result<bool, StoreError> {
    let holder: Option<String> = conn.query_row(
        "SELECT hostname FROM action_plans WHERE uuid = ?1",
        args![plan],
        |r| r.get(0),
    )?;
    Ok(holder.is_some())
}

impl Store {
    /// ONGOING -> PAUSED, by the operator: the applier starts nothing more
    /// and lets running actions finish, or with `abort_running` aborts them
    /// as a cancel would (they run again on resume).
    pub async fn pause_plan(
        &self,
        plan: Uuid,
        reason: String,
        abort_running: bool,
    ) -> Result<ActionPlan, StoreError> {
        self.write(move |conn, events| {
            let change = StateChange::new(
                ActionPlanState::Ongoing,
                ActionPlanState::Paused,
                Actor::Api,
                reason.clone(),
            );
            transition_plan_conn(conn, events, plan, &change, PlanUpdate::default())?;
            conn.execute(
                "UPDATE action_plans SET pause_aborts = ?1 WHERE uuid = ?2",
                args![abort_running, plan],
            )?;
            get_plan_conn(conn, plan, false)
        })
        .await
    }

    /// Whether the pause of `plan` asked to abort its running actions.
    pub async fn pause_aborts(&self, plan: Uuid) -> Result<bool, StoreError> {
        self.read(move |conn| {
            conn.query_row(
                "SELECT pause_aborts FROM action_plans WHERE uuid = ?1",
                args![plan],
                |r| r.get(0),
            )
        })
        .await
    }

    /// PAUSED -> ONGOING while its run is alive, else PAUSED -> PENDING.
    pub async fn resume_plan(&self, plan: Uuid, reason: String) -> Result<ActionPlan, StoreError> {
        self.write(move |conn, events| {
            let to = if held(conn, plan)? {
                ActionPlanState::Ongoing
            } else {
                ActionPlanState::Pending
            };
            let change = StateChange::new(ActionPlanState::Paused, to, Actor::Api, reason.clone());
            transition_plan_conn(conn, events, plan, &change, PlanUpdate::default())?;
            get_plan_conn(conn, plan, false)
        })
        .await
    }

    /// A cancel of a PAUSED plan: CANCELLING while its run is alive (it
    /// aborts what still runs), else CANCELLED at once with its PENDING
    /// actions.
    pub async fn cancel_paused_plan(
        &self,
        plan: Uuid,
        reason: String,
    ) -> Result<ActionPlan, StoreError> {
        self.write(move |conn, events| {
            let to = if held(conn, plan)? {
                ActionPlanState::Cancelling
            } else {
                ActionPlanState::Cancelled
            };
            let change = StateChange::new(ActionPlanState::Paused, to, Actor::Api, reason.clone());
            transition_plan_conn(conn, events, plan, &change, PlanUpdate::default())?;
            get_plan_conn(conn, plan, false)
        })
        .await
    }

    /// The run of a PAUSED plan has nothing running: `host` lets it go.
    /// None when released; else the plan's state now (resumed, cancelled,
    /// or no longer this applier's), for the run to act on.
    pub async fn release_paused_plan(
        &self,
        plan: Uuid,
        host: String,
    ) -> Result<Option<ActionPlanState>, StoreError> {
        self.write(move |conn, events| {
            let n = conn.execute(
                "UPDATE action_plans SET hostname = NULL, lease_expires_at = NULL, updated_at = ?1 \
                 WHERE uuid = ?2 AND state = ?3 AND hostname = ?4 AND deleted_at IS NULL",
                args![now_micros(), plan, ActionPlanState::Paused, host.clone()],
            )?;
            if n == 0 {
                return Ok(Some(crate::cascade::plan_state(conn, plan)?));
            }
            let paused = EntityState::ActionPlan(ActionPlanState::Paused);
            record_history(
                conn,
                &NewHistory {
                    uuid: plan,
                    plan: Some(plan),
                    from: Some(paused),
                    to: paused,
                    actor: Actor::Applier,
                    reason: &format!(
                        "paused: nothing runs any more; applier {host} lets it go until it is resumed"
                    ),
                    at: now_micros(),
                },
            )?;
            events.push(StoreEvent::PlanState {
                uuid: plan,
                state: ActionPlanState::Paused,
            });
            Ok(None)
        })
        .await
    }
}
