//! The end of a run: wait for queued writes, then leave the plan for the
//! next start (shutdown), or roll back (`rollback_on_cancel`) and write the
//! plan's final state, derived from its actions.

use super::dag::topological_order;
use super::plan_run::PlanRun;
use super::RunEnd;
use tracing::info;
use watcher_core::StateChange;
use watcher_core::{ActionPlanState, ActionState, Actor, EntityState};
use watcher_store::{PlanUpdate, StoreError};

impl PlanRun<'_> {
    /// After the loop: wait for queued writes, then either leave the plan
    /// for the next start (shutdown) or roll back and write its final state.
    pub(super) async fn conclude(mut self) -> Result<RunEnd, StoreError> {
        for w in self.writes.drain(..) {
            w.await.map_err(|_| StoreError::Closed)??;
        }
        let any = |pred: fn(ActionState) -> bool| self.nodes.iter().any(|n| pred(n.action.state));
        if self.shutting_down && !self.cancelling && any(|s| s == ActionState::Pending) {
            info!("plan interrupted by shutdown; it resumes at the next start");
            return Ok(RunEnd::Interrupted);
        }
        if any(|s| matches!(s, ActionState::Ongoing | ActionState::Cancelling)) {
            return Ok(RunEnd::Interrupted);
        }
        if self.cancelling && self.ctx.rollback_on_cancel {
            self.roll_back().await?;
        }
        self.finish_plan().await.map(RunEnd::Finished)
    }

    /// `rollback_on_cancel`: undoes SUCCEEDED actions in reverse dependency
    /// order, one at a time, recording each as CANCELLED (undone) or FAILED.
    async fn roll_back(&mut self) -> Result<(), StoreError> {
        for i in topological_order(&self.nodes).into_iter().rev() {
            let node = &self.nodes[i];
            if node.action.state != ActionState::Succeeded {
                continue;
            }
            let Some(plugin) = self.ctx.registry.get(&node.action.action_type) else {
                continue;
            };
            if !plugin.can_revert() {
                continue;
            }
            let ctx = self.ctx.context(&node.action);
            let (to, reason, message) = match plugin.revert(&ctx).await {
                Ok(m) => (ActionState::Cancelled, "rolled back on cancel", m),
                Err(e) => (
                    ActionState::Failed,
                    "rollback on cancel failed",
                    format!(
                        "Rollback on cancel failed: {e}; the action's effect is still in place."
                    ),
                ),
            };
            info!(action = %node.action.uuid, state = %to, "rollback");
            self.ctx
                .store
                .transition_action(
                    self.plan,
                    node.action.uuid,
                    StateChange::new(ActionState::Succeeded, to, Actor::Applier, reason),
                    Some(message),
                )
                .await?;
            self.nodes[i].action.state = to;
        }
        Ok(())
    }

    /// The plan's final transition, derived from its actions (any FAILED
    /// makes it FAILED): from, to, the history's reason, the status message.
    fn final_state(&self) -> (ActionPlanState, ActionPlanState, &'static str, String) {
        let nodes = &self.nodes;
        let failed: Vec<String> = nodes
            .iter()
            .filter(|n| n.action.state == ActionState::Failed)
            .map(|n| format!("{} ({})", n.action.uuid, n.action.action_type))
            .collect();
        let skipped = nodes.iter().any(|n| n.action.state == ActionState::Skipped);
        let count = |s: ActionState| nodes.iter().filter(|n| n.action.state == s).count();
        // Paused while its last actions ran: it ends from PAUSED.
        let running = if self.paused {
            ActionPlanState::Paused
        } else {
            ActionPlanState::Ongoing
        };
        match (self.cancelling, failed.is_empty()) {
            (true, true) => (
                ActionPlanState::Cancelling,
                ActionPlanState::Cancelled,
                "cancel complete",
                format!(
                    "Cancelled: {} action(s) cancelled, {} had already finished.",
                    count(ActionState::Cancelled),
                    count(ActionState::Succeeded) + count(ActionState::Skipped)
                ),
            ),
            (true, false) => (
                ActionPlanState::Cancelling,
                ActionPlanState::Failed,
                "cancel finished with failed actions",
                format!(
                    "Cancel finished but {} action(s) failed: {}",
                    failed.len(),
                    failed.join(", ")
                ),
            ),
            (false, true) => (
                running,
                ActionPlanState::Succeeded,
                "all actions finished",
                if skipped {
                    "One or more actions were skipped.".into()
                } else {
                    String::new()
                },
            ),
            (false, false) => (
                running,
                ActionPlanState::Failed,
                "one or more actions failed",
                format!("{} action(s) failed: {}", failed.len(), failed.join(", ")),
            ),
        }
    }

    /// Writes the plan's final state. A cancel that committed after the
    /// last action settled finds nothing to abort: the plan ends as its
    /// actions say, from CANCELLING, with that said in its message.
    async fn finish_plan(&self) -> Result<ActionPlanState, StoreError> {
        let (from, to, reason, message) = self.final_state();
        let store = &self.ctx.store;
        let update = |message: String| PlanUpdate {
            status_message: (!message.is_empty()).then_some(message),
            hostname: None,
            lease_until: None,
        };
        match store
            .transition_plan(
                self.plan,
                StateChange::new(from, to, Actor::Applier, reason),
                update(message.clone()),
            )
            .await
        {
            Ok(_) => {
                info!(state = %to, "plan finished");
                Ok(to)
            }
            // Paused, or resumed, after the last action settled: it ends
            // from the state it is in.
            Err(StoreError::Conflict {
                current: EntityState::ActionPlan(now),
                ..
            }) if from != ActionPlanState::Cancelling
                && now != from
                && matches!(now, ActionPlanState::Ongoing | ActionPlanState::Paused) =>
            {
                store
                    .transition_plan(
                        self.plan,
                        StateChange::new(now, to, Actor::Applier, reason),
                        update(message),
                    )
                    .await?;
                info!(state = %to, "plan finished");
                Ok(to)
            }
            Err(StoreError::Conflict { current, .. })
                if current == EntityState::ActionPlan(ActionPlanState::Cancelling)
                    && from != ActionPlanState::Cancelling =>
            {
                let message = format!("Cancel arrived after every action had finished. {message}");
                store
                    .transition_plan(
                        self.plan,
                        StateChange::new(
                            ActionPlanState::Cancelling,
                            to,
                            Actor::Applier,
                            "cancel arrived after the last action",
                        ),
                        update(message),
                    )
                    .await?;
                Ok(to)
            }
            Err(e) => Err(e),
        }
    }
}
