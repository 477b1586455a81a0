//! Runs one action plan: its DAG, its limits, its cancellation.
//!
//! One loop owns the plan ([`plan_run::PlanRun`]). Action tasks only run
//! plugins and write their own PENDING -> ONGOING start (which fails once
//! the plan is CANCELLING); every other action write is the loop's, so
//! within a plan there is a single writer and no lost update. Between the
//! API and the applier the plan row's compare-and-set decides.
//!
//! Cancellation is a tree of tokens: the plan's token (fired when the store
//! says CANCELLING) and one child per running action. On cancel the loop
//! starts nothing more, moves PENDING actions to CANCELLED, moves running
//! ones to CANCELLING and fires their tokens, then waits for each to report.
//!
//! - `mod.rs`: [`RunContext`], what every run of an applier shares, and the
//!   entry point [`RunContext::run`];
//! - `plan_run.rs`: one run's state and the loop's steps;
//! - `conclusion.rs`: the end of a run (rollback, the plan's final state);
//! - `task.rs`: an action's task (pre-conditions, start, plugin) and the
//!   reconciliation of an action interrupted by a restart;
//! - `dag.rs`: the plan's actions as a DAG.

mod conclusion;
mod dag;
mod plan_run;
mod task;

use crate::actions::{ActionContext, ActionRegistry, ActionSettings};
use crate::Limits;
use plan_run::PlanRun;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use watcher_cloud::Cloud;
use watcher_core::{Action, ActionPlan, ActionPlanState};
use watcher_store::{Store, StoreError};

/// Whether the plan is paused, as the run hears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    /// Not paused (ONGOING or CANCELLING).
    No,
    /// PAUSED: start nothing, let running actions finish.
    Yes,
    /// PAUSED by a pause that asked to abort the running actions: they are
    /// aborted as a cancel would and run again on resume.
    Aborting,
}

/// How a plan run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    Finished(ActionPlanState),
    /// Stopped by shutdown; the plan stays ONGOING or CANCELLING for the
    /// next start to reconcile and resume.
    Interrupted,
    /// The plan is PAUSED and nothing of it runs: this applier let it go
    /// (no holder, no lease) until an operator resumes it.
    Paused,
    /// Stopped at once because this applier's lease on the plan ran out
    /// (or another applier holds it now): its action tasks were dropped
    /// without a cancel, so nothing was aborted and nothing more was
    /// written; whoever holds the plan next reconciles it with the cloud.
    Fenced,
}

/// What every plan run of one applier shares, and never changes: the
/// store, the cloud, the executors and the limits. A run's changing state
/// is its [`PlanRun`]'s.
pub struct RunContext {
    pub store: Store,
    pub cloud: Arc<dyn Cloud>,
    pub registry: ActionRegistry,
    pub limits: Limits,
    pub settings: ActionSettings,
    /// How long running actions get to finish on shutdown before they are aborted.
    pub shutdown_grace: Duration,
    /// After a cancel, undo SUCCEEDED actions that know how.
    pub rollback_on_cancel: bool,
    /// The applier whose lease the plans must be under for an action to
    /// start (None: no check, for single-process tools).
    pub owner: Option<String>,
}

impl RunContext {
    /// Runs `plan` (already ONGOING, CANCELLING or PAUSED and owned by this
    /// applier) to its end. `cancel` fires when the store says CANCELLING;
    /// `paused` says whether it is PAUSED now; `shutdown`
    /// when watcherd is stopping; `fence` when the plan is no longer this
    /// applier's (its lease ran out): then the run stops at once, even in
    /// the middle of a write that hangs, and touches the cloud no more.
    pub async fn run(
        &self,
        plan: ActionPlan,
        cancel: CancellationToken,
        mut paused: tokio::sync::watch::Receiver<Pause>,
        shutdown: CancellationToken,
        fence: CancellationToken,
    ) -> Result<RunEnd, StoreError> {
        let span = tracing::info_span!("plan", plan = %plan.uuid);
        let tasks = ActionTasks::default();
        let run = async {
            let actions = self.store.plan_actions(plan.uuid).await?;
            PlanRun::new(self, &plan, actions, &cancel, tasks.clone())
                .drive(&cancel, &mut paused, &shutdown)
                .await
        }
        .instrument(span);
        tokio::select! {
            biased;
            _ = fence.cancelled() => {
                // The tasks go before the run's scope token, which fires
                // when `run` is dropped at the end of this select.
                tasks.drop_all().await;
                Ok(RunEnd::Fenced)
            }
            end = run => end,
        }
    }

    /// What a plugin needs to act on `action`.
    fn context(&self, action: &Action) -> ActionContext {
        ActionContext {
            plan: action.action_plan_uuid,
            action: action.uuid,
            params: action.input_parameters.clone(),
            cloud: self.cloud.clone(),
            store: self.store.clone(),
            settings: self.settings.clone(),
        }
    }
}

/// A run's action tasks, so that a fenced run can drop them: a cancel of
/// their tokens would abort their operations, which are no longer this
/// applier's to touch.
#[derive(Clone, Default)]
struct ActionTasks(Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>);

impl ActionTasks {
    fn add(&self, task: tokio::task::JoinHandle<()>) {
        let mut tasks = self.0.lock().expect("action tasks lock");
        // Finished ones are dropped now and then: a plan of 10,000 actions
        // keeps only those still running.
        if tasks.len() >= 64 && tasks.len().is_power_of_two() {
            tasks.retain(|t| !t.is_finished());
        }
        tasks.push(task);
    }

    /// Drops every task and waits until none can run again.
    async fn drop_all(&self) {
        let tasks = std::mem::take(&mut *self.0.lock().expect("action tasks lock"));
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}
