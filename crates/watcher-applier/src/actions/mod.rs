//! Action executors: how each type of the action catalogue
//! (`watcher_core::actions`, which names, describes and validates them) runs:
//! check its pre-conditions, run, abort when its cancellation token fires,
//! and tell after a restart what became of an interrupted run.
//!
//! `execute` has one of four outcomes. On cancel an action reports
//! `Cancelled` (aborted, effect undone), `Succeeded` (it finished before the
//! abort could take effect) or `Failed` (the abort failed; the message says
//! why). Side effects are journaled before the cloud is asked for them.

mod migrate;
mod node_power;
mod nop;
mod nova_service;
mod resize;
mod sleep;
mod stop;
#[cfg(test)]
mod tests;
mod volume;

pub use migrate::Migrate;
pub use node_power::ChangeNodePowerState;
pub use nop::Nop;
pub use nova_service::ChangeNovaServiceState;
pub use resize::Resize;
pub use sleep::Sleep;
pub use stop::Stop;
pub use volume::VolumeMigrate;

use async_trait::async_trait;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use watcher_cloud::{retry_transient, Cloud, CloudError, OperationId, OperationState};
use watcher_core::actions::named_host_of;
use watcher_store::{JournalEntry, Store, StoreError};

/// How an action run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded(Option<String>),
    Failed(String),
    /// Aborted on cancel, with its effect undone.
    Cancelled(String),
}

/// A pre-condition's verdict when the action should not run.
#[derive(Debug, Clone, PartialEq)]
pub enum Precondition {
    /// Nothing to do (the instance is gone, or already where it should be).
    Skip(String),
    Fail(String),
}

/// What a restarted applier learns about a run it lost track of.
#[derive(Debug, Clone, PartialEq)]
pub enum Reconciled {
    /// The side effect never reached the cloud, or was fully undone: the
    /// action can run again from the start.
    NotStarted,
    /// Still running in the cloud: follow it.
    Running(OperationId),
    Finished(Outcome),
}

/// Why a step of an action failed. Its text is what the action's
/// `status_message` says; callers decide by variant.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The cloud answered with an error.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The journal could not record a side effect before (or after) it
    /// happened, so the action must not go on.
    #[error("could not journal {what}: {source}")]
    Journal {
        what: String,
        #[source]
        source: StoreError,
    },
    /// A condition the action checks did not hold (a post-condition, an
    /// operation that did not settle, a rollback with nothing to go back to).
    #[error("{0}")]
    Condition(String),
    /// The cancel came before the operation was asked of the cloud.
    #[error("cancelled before the operation started")]
    CancelledBeforeStart,
}

/// Timings every action uses.
#[derive(Debug, Clone)]
pub struct ActionSettings {
    /// How often a running cloud operation is polled.
    pub poll_interval: Duration,
    /// How long a cancelled action that cannot be aborted is waited for.
    pub non_abortable_deadline: Duration,
    /// How long an abort may take to settle before the action is FAILED.
    pub abort_deadline: Duration,
}

impl Default for ActionSettings {
    fn default() -> Self {
        ActionSettings {
            poll_interval: Duration::from_millis(100),
            non_abortable_deadline: Duration::from_secs(300),
            abort_deadline: Duration::from_secs(120),
        }
    }
}

/// Everything an action run needs.
#[derive(Clone)]
pub struct ActionContext {
    pub plan: Uuid,
    pub action: Uuid,
    pub params: Value,
    pub cloud: Arc<dyn Cloud>,
    pub store: Store,
    pub settings: ActionSettings,
}

impl ActionContext {
    /// Publishes a running operation's progress as the action's status
    /// message when it moved by a tenth or more since `last` (a fraction).
    async fn report_progress(&self, state: &OperationState, last: &mut f64) {
        if let OperationState::Running { progress, detail } = state {
            if *progress - *last >= 0.1 || (*last < 0.0) {
                *last = *progress;
                if let Err(e) = self
                    .store
                    .set_action_progress(self.action, detail.clone())
                    .await
                {
                    tracing::debug!(error = %e, "could not record progress");
                }
            }
        }
    }

    fn str(&self, field: &str) -> Option<&str> {
        self.params.get(field).and_then(Value::as_str)
    }

    /// Journals `intent`, then starts the operation, then journals its id,
    /// so that a crash at any point leaves what recovery needs.
    ///
    /// A cancel never waits for these writes, which queue behind every
    /// other write of this process (over a second under heavy load): one
    /// that fires while the intent is written stops the start
    /// ([`ActionError::CancelledBeforeStart`]); one that fires while the
    /// id is written gets the id at once, so the abort goes out, and the
    /// write finishes meanwhile. A crash before it commits is recovered
    /// from the intent, as a crash right after the start always was.
    /// Rollbacks, which run after the cancel, pass a token of their own.
    async fn journaled<F, Fut>(
        &self,
        intent: Value,
        cancel: &CancellationToken,
        start: F,
    ) -> Result<OperationId, ActionError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<OperationId, CloudError>>,
    {
        tokio::select! {
            biased;
            written = self.store.journal_intent(self.action, intent) => {
                written.map_err(|source| ActionError::Journal {
                    what: "the intent".into(),
                    source,
                })?
            }
            _ = cancel.cancelled() => return Err(ActionError::CancelledBeforeStart),
        }
        if cancel.is_cancelled() {
            return Err(ActionError::CancelledBeforeStart);
        }
        let op = retry_transient(start).await?;
        let mut write = tokio::spawn({
            let (store, action, op) = (self.store.clone(), self.action, op.clone());
            async move { store.journal_operation(action, op).await }
        });
        tokio::select! {
            biased;
            written = &mut write => match written {
                Ok(Ok(())) => Ok(op),
                Ok(Err(source)) => Err(ActionError::Journal {
                    what: format!("operation {op}"),
                    source,
                }),
                Err(e) => Err(ActionError::Condition(format!(
                    "the journal write of operation {op} did not finish: {e}"
                ))),
            },
            _ = cancel.cancelled() => {
                tokio::spawn(async move {
                    if let Ok(Err(e)) = write.await {
                        tracing::warn!(error = %e, "could not journal the operation of a cancelled action");
                    }
                });
                Ok(op)
            }
        }
    }
}

/// How an action whose operation could not start ends: CANCELLED when the
/// cancel came before the cloud was asked, FAILED otherwise.
fn not_started(what: &str, e: ActionError) -> Outcome {
    match e {
        ActionError::CancelledBeforeStart => Outcome::Cancelled(format!(
            "Cancelled before the {what} was asked of the cloud: nothing to undo."
        )),
        e => Outcome::Failed(format!("{what} could not start: {e}")),
    }
}

#[async_trait]
pub trait ActionPlugin: Send + Sync {
    /// The catalogue's name of the type this plugin runs
    /// (`watcher_core::actions::CATALOGUE`, which validates and describes it).
    fn action_type(&self) -> &'static str;
    /// Whether a running action can be interrupted with its effect undone.
    fn can_abort(&self) -> bool;
    async fn pre_condition(&self, _ctx: &ActionContext) -> Result<(), Precondition> {
        Ok(())
    }
    /// Runs the action. When `cancel` fires, aborts and reports the outcome.
    /// `resume` is an operation a previous run started, to follow instead
    /// of starting a new one.
    async fn execute(
        &self,
        ctx: &ActionContext,
        cancel: &CancellationToken,
        resume: Option<OperationId>,
    ) -> Outcome;
    /// Checked after a successful run; an `Err` makes the action FAILED.
    async fn post_condition(&self, _ctx: &ActionContext) -> Result<(), ActionError> {
        Ok(())
    }
    /// What became of a run interrupted by a crash or shutdown.
    async fn reconcile(&self, _ctx: &ActionContext, _journal: Option<&JournalEntry>) -> Reconciled {
        Reconciled::NotStarted
    }
    /// Whether a SUCCEEDED run can be undone (`rollback_on_cancel`).
    /// Actions without a lasting effect (nop, sleep) have nothing to undo.
    fn can_revert(&self) -> bool {
        false
    }
    /// Undoes a SUCCEEDED run. `Ok` says what was done; `Err` why it failed.
    async fn revert(&self, _ctx: &ActionContext) -> Result<String, ActionError> {
        Err(ActionError::Condition(format!(
            "{} cannot be rolled back",
            self.action_type()
        )))
    }
}

/// Waits for an operation to settle (or await confirmation), up to `limit`.
async fn await_operation(
    ctx: &ActionContext,
    op: &str,
    limit: Duration,
) -> Result<OperationState, ActionError> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match retry_transient(|| ctx.cloud.operation(op)).await {
            Ok(s) if s.is_settled() || s == OperationState::AwaitingConfirmation => return Ok(s),
            Ok(_) if tokio::time::Instant::now() >= deadline => {
                return Err(ActionError::Condition(format!(
                    "operation {op} did not finish within {:.1} s",
                    limit.as_secs_f64()
                )))
            }
            Ok(_) => tokio::time::sleep(ctx.settings.poll_interval).await,
            Err(e) => {
                return Err(ActionError::Condition(format!(
                    "lost track of operation {op}: {e}"
                )))
            }
        }
    }
}

/// The action types watcherd knows, by name.
#[derive(Clone)]
pub struct ActionRegistry {
    plugins: Arc<HashMap<&'static str, Arc<dyn ActionPlugin>>>,
}

impl Default for ActionRegistry {
    fn default() -> Self {
        let all: Vec<Arc<dyn ActionPlugin>> = vec![
            Arc::new(Nop),
            Arc::new(Sleep),
            Arc::new(Migrate),
            Arc::new(Resize),
            Arc::new(ChangeNovaServiceState),
            Arc::new(ChangeNodePowerState),
            Arc::new(VolumeMigrate),
            Arc::new(Stop),
        ];
        ActionRegistry {
            plugins: Arc::new(all.into_iter().map(|p| (p.action_type(), p)).collect()),
        }
    }
}

impl ActionRegistry {
    pub fn get(&self, action_type: &str) -> Option<Arc<dyn ActionPlugin>> {
        self.plugins.get(action_type).cloned()
    }
}

// ----- nop -------------------------------------------------------------------
// ----- sleep -----------------------------------------------------------------
// ----- migrate ---------------------------------------------------------------
// ----- resize ----------------------------------------------------------------
// ----- change_nova_service_state ----------------------------------------------
// ----- change_node_power_state ---------------------------------------------------
// ----- volume_migrate ----------------------------------------------------------
