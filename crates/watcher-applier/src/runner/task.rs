//! An action's task: input checks, pre-conditions, the start (which the
//! store refuses once the plan is CANCELLING), the plugin, and what it
//! reports to the run's loop; and, after a restart, what became of an
//! action that was running.

use super::{ActionTasks, RunContext};
use crate::actions::{Outcome, Precondition, Reconciled};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use watcher_cloud::OperationId;
use watcher_core::actions::ActionTypeError;
use watcher_core::StateChange;
use watcher_core::{Action, ActionState, Actor};
use watcher_store::StoreError;

/// What an action task reports to the loop.
pub(super) enum Report {
    /// The start was refused: the plan is no longer ONGOING, or the action
    /// was no longer PENDING.
    NotStarted,
    Skipped(String),
    PreconditionFailed(String),
    Finished(Outcome),
}

/// Where action tasks report: the action's index in the DAG and its report.
pub(super) type Reports = mpsc::UnboundedSender<(usize, Report)>;

impl RunContext {
    /// Spawns the task that checks pre-conditions, writes the start (which
    /// the store refuses once the plan is CANCELLING) and runs the plugin.
    /// With `resume`, the action is already ONGOING and follows that operation.
    pub(super) fn spawn_action(
        &self,
        action: &Action,
        i: usize,
        token: CancellationToken,
        resume: Option<OperationId>,
        tx: Reports,
        tasks: &ActionTasks,
    ) {
        let Some(plugin) = self.registry.get(&action.action_type) else {
            let msg = format!("unknown action type '{}'", action.action_type);
            let _ = tx.send((i, Report::PreconditionFailed(msg)));
            return;
        };
        let ctx = self.context(action);
        let owner = self.owner.clone();
        let already_running = action.state != ActionState::Pending;
        let span =
            tracing::info_span!("action", action = %action.uuid, r#type = %action.action_type);
        tasks.add(tokio::spawn(
            async move {
                if !already_running {
                    if let Err(e) =
                        watcher_core::actions::validate(plugin.action_type(), &ctx.params)
                    {
                        let reason = match e {
                            ActionTypeError::InvalidInput { reason, .. } => reason,
                            unknown => unknown.to_string(),
                        };
                        let _ = tx.send((
                            i,
                            Report::PreconditionFailed(format!("invalid input: {reason}")),
                        ));
                        return;
                    }
                    match plugin.pre_condition(&ctx).await {
                        Err(Precondition::Skip(m)) => {
                            let _ = tx.send((i, Report::Skipped(m)));
                            return;
                        }
                        Err(Precondition::Fail(m)) => {
                            let _ = tx.send((i, Report::PreconditionFailed(m)));
                            return;
                        }
                        Ok(()) => {}
                    }
                    if let Err(e) = ctx.store.start_action(ctx.plan, ctx.action, owner).await {
                        tracing::debug!(error = %e, "start refused");
                        let _ = tx.send((i, Report::NotStarted));
                        return;
                    }
                }
                let mut outcome = plugin.execute(&ctx, &token, resume).await;
                if let Outcome::Succeeded(_) = outcome {
                    if let Err(m) = plugin.post_condition(&ctx).await {
                        outcome = Outcome::Failed(format!("Action failed in post_condition: {m}"));
                    }
                }
                let _ = tx.send((i, Report::Finished(outcome)));
            }
            .instrument(span),
        ));
    }

    /// After a restart: settles an action found ONGOING or CANCELLING.
    /// Returns its new state, or None if it is still running in the cloud.
    pub(super) async fn reconcile(
        &self,
        action: &Action,
        plan_cancelling: bool,
    ) -> Result<Option<ActionState>, StoreError> {
        let Some(plugin) = self.registry.get(&action.action_type) else {
            return Ok(Some(action.state));
        };
        let ctx = self.context(action);
        let journal = self.store.journal(action.uuid).await?;
        let verdict = plugin.reconcile(&ctx, journal.as_ref()).await;
        let from = action.state;
        let (to, reason, message) = match verdict {
            Reconciled::Running(_) => return Ok(None),
            Reconciled::NotStarted if plan_cancelling || from == ActionState::Cancelling => (
                ActionState::Cancelled,
                "restart: the action had no effect in the cloud; plan is cancelling",
                "Cancelled: the applier stopped before this action had any effect.".to_string(),
            ),
            Reconciled::NotStarted => (
                ActionState::Pending,
                "restart: the action had no effect in the cloud; it runs again",
                "Interrupted by an applier restart before it had any effect; running again."
                    .to_string(),
            ),
            Reconciled::Finished(Outcome::Succeeded(m)) => (
                ActionState::Succeeded,
                "restart: the cloud says it completed",
                m.unwrap_or_default(),
            ),
            Reconciled::Finished(Outcome::Failed(m)) => {
                (ActionState::Failed, "restart: the cloud says it failed", m)
            }
            Reconciled::Finished(Outcome::Cancelled(m)) => (
                ActionState::Cancelled,
                "restart: the cloud says it was rolled back",
                m,
            ),
        };
        let to = if to == ActionState::Pending && from == ActionState::Cancelling {
            ActionState::Cancelled
        } else {
            to
        };
        self.store
            .transition_action(
                action.action_plan_uuid,
                action.uuid,
                StateChange::new(from, to, Actor::Recovery, reason),
                Some(message),
            )
            .await?;
        Ok(Some(to))
    }
}
