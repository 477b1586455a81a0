//! Action executors: how each type of the action catalogue
//! (`watcher_core::actions`, which names, describes and validates them) runs:
//! check its pre-conditions, run, abort when its cancellation token fires,
//! and tell after a restart what became of an interrupted run.
//!
//! `execute` has one of four outcomes. On cancel an action reports
//! `Cancelled` (aborted, effect undone), `Succeeded` (it finished before the
//! abort could take effect) or `Failed` (the abort failed; the message says
//! why). Side effects are journaled before the cloud is asked for them.

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

pub struct Nop;

#[async_trait]
impl ActionPlugin for Nop {
    fn action_type(&self) -> &'static str {
        "nop"
    }
    fn can_abort(&self) -> bool {
        true
    }
    async fn pre_condition(&self, ctx: &ActionContext) -> Result<(), Precondition> {
        let flag = |f: &str| ctx.params.get(f).and_then(Value::as_bool).unwrap_or(false);
        if flag("skip_pre_condition") {
            return Err(Precondition::Skip("skip_pre_condition is set".into()));
        }
        if flag("fail_pre_condition") {
            return Err(Precondition::Fail("fail_pre_condition is set".into()));
        }
        Ok(())
    }
    async fn post_condition(&self, ctx: &ActionContext) -> Result<(), ActionError> {
        if ctx
            .params
            .get("fail_post_condition")
            .and_then(Value::as_bool)
            == Some(true)
        {
            return Err(ActionError::Condition("fail_post_condition is set".into()));
        }
        Ok(())
    }
    async fn execute(
        &self,
        ctx: &ActionContext,
        _: &CancellationToken,
        _: Option<OperationId>,
    ) -> Outcome {
        tracing::info!(message = ctx.str("message").unwrap_or(""), "nop");
        if ctx.params.get("fail_execute").and_then(Value::as_bool) == Some(true) {
            return Outcome::Failed("fail_execute is set".into());
        }
        Outcome::Succeeded(None)
    }
}

// ----- sleep -----------------------------------------------------------------

pub struct Sleep;

#[async_trait]
impl ActionPlugin for Sleep {
    fn action_type(&self) -> &'static str {
        "sleep"
    }
    fn can_abort(&self) -> bool {
        true
    }
    async fn execute(
        &self,
        ctx: &ActionContext,
        cancel: &CancellationToken,
        _: Option<OperationId>,
    ) -> Outcome {
        let secs = ctx
            .params
            .get("duration")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let started = tokio::time::Instant::now();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs_f64(secs)) => Outcome::Succeeded(None),
            _ = cancel.cancelled() => Outcome::Cancelled(format!(
                "Sleep aborted after {:.1} s of {secs} s.",
                started.elapsed().as_secs_f64()
            )),
        }
    }
}

// ----- migrate ---------------------------------------------------------------

pub struct Migrate;

/// Follows a live migration until it settles, aborting it if `cancel` fires
/// (or forcing it to complete, when it is past `force_above` of its progress).
///
/// The cancel never waits: a status poll in flight (which a slow cloud may
/// answer only after its timeout and retries) and the progress write after
/// it are dropped the moment the token fires, and the abort goes out with
/// the progress of the last poll that did answer.
async fn follow_live_migration(
    ctx: &ActionContext,
    cancel: &CancellationToken,
    op: &str,
    dest: &str,
    source: &str,
    force_above: Option<f64>,
) -> Outcome {
    let mut reported = -1.0;
    let mut last_progress: Option<f64> = None;
    loop {
        let polled = tokio::select! {
            biased;
            _ = cancel.cancelled() => None,
            state = async {
                let state = retry_transient(|| ctx.cloud.operation(op)).await;
                if let Ok(s) = &state {
                    ctx.report_progress(s, &mut reported).await;
                }
                state
            } => Some(state),
        };
        let state = match polled {
            None => return on_cancel(ctx, op, dest, source, force_above, last_progress).await,
            Some(Ok(s)) => s,
            Some(Err(e)) => return Outcome::Failed(format!("lost track of migration {op}: {e}")),
        };
        match state {
            OperationState::Completed => return Outcome::Succeeded(None),
            OperationState::Failed(m) => {
                return Outcome::Failed(format!("live migration failed: {m}"))
            }
            OperationState::Aborted => {
                return Outcome::Failed("live migration was aborted outside watcher".into())
            }
            OperationState::Running { progress, .. } => last_progress = Some(progress),
            _ => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(ctx.settings.poll_interval) => {}
            _ = cancel.cancelled() => {
                return on_cancel(ctx, op, dest, source, force_above, last_progress).await;
            }
        }
    }
}

/// A cancelled live migration: force-completed when the policy says it is
/// far enough along, aborted otherwise.
async fn on_cancel(
    ctx: &ActionContext,
    op: &str,
    dest: &str,
    source: &str,
    force_above: Option<f64>,
    last_progress: Option<f64>,
) -> Outcome {
    if let Some(done) = force_complete_instead(ctx, op, dest, force_above, last_progress).await {
        return done;
    }
    abort_live_migration(ctx, op, dest, source, last_progress).await
}

/// The `force_complete_above` policy: a live migration this far along is
/// cheaper to finish than to roll back. `None` when the policy does not
/// apply (or force-complete was refused): then it is aborted. Decided on
/// the last progress the cloud reported, so that it costs no poll.
async fn force_complete_instead(
    ctx: &ActionContext,
    op: &str,
    dest: &str,
    force_above: Option<f64>,
    last_progress: Option<f64>,
) -> Option<Outcome> {
    let threshold = force_above?;
    // Before the first poll has answered the progress is unknown: taken as
    // none, so only a threshold of 0 forces it.
    let progress = Some(last_progress.unwrap_or(0.0)).filter(|p| *p >= threshold)?;
    if let Err(e) = retry_transient(|| ctx.cloud.force_complete(op)).await {
        tracing::warn!(error = %e, "force-complete refused; aborting instead");
        return None;
    }
    let deadline = tokio::time::Instant::now() + ctx.settings.abort_deadline;
    loop {
        let state = match retry_transient(|| ctx.cloud.operation(op)).await {
            Ok(s) => s,
            Err(e) => {
                return Some(Outcome::Failed(format!(
                    "lost track of migration {op}: {e}"
                )))
            }
        };
        match state {
            OperationState::Completed => {
                return Some(Outcome::Succeeded(Some(format!(
                    "Cancel requested at {:.0}% (force_complete_above = {threshold}): the live \
                     migration was forced to complete on {dest} rather than rolled back.",
                    progress * 100.0
                ))))
            }
            OperationState::Failed(m) => {
                return Some(Outcome::Failed(format!(
                    "Live migration failed after force-complete: {m}"
                )))
            }
            OperationState::Aborted => {
                return Some(Outcome::Cancelled(
                    "Live migration rolled back although force-complete was requested.".into(),
                ))
            }
            _ if tokio::time::Instant::now() >= deadline => {
                return Some(Outcome::Failed(format!(
                    "Force-completed live migration did not settle within {:.1} s.",
                    ctx.settings.abort_deadline.as_secs_f64()
                )))
            }
            _ => tokio::time::sleep(ctx.settings.poll_interval).await,
        }
    }
}

/// Aborts a live migration (the first request to the cloud after the
/// cancel) and classifies how it settled.
async fn abort_live_migration(
    ctx: &ActionContext,
    op: &str,
    dest: &str,
    source: &str,
    last_progress: Option<f64>,
) -> Outcome {
    let progress = last_progress
        .map(|p| format!(" at {:.0}%", p * 100.0))
        .unwrap_or_default();
    tracing::debug!(operation = op, "asking the cloud to abort");
    let (refused, past_no_return) = match retry_transient(|| ctx.cloud.abort(op)).await {
        Ok(()) | Err(CloudError::AlreadyFinished(_)) => (None, false),
        Err(e @ CloudError::PastPointOfNoReturn(_)) => (Some(e.to_string()), true),
        Err(e @ CloudError::Conflict(_)) => (Some(e.to_string()), false),
        Err(e) => (Some(format!("abort request failed: {e}")), false),
    };
    let deadline = tokio::time::Instant::now() + ctx.settings.abort_deadline;
    loop {
        let settled = match retry_transient(|| ctx.cloud.operation(op)).await {
            Ok(s) if s.is_settled() => s,
            Ok(_) if tokio::time::Instant::now() >= deadline => {
                return Outcome::Failed(format!(
                    "Abort of the live migration{progress} did not settle within {:.1} s.",
                    ctx.settings.abort_deadline.as_secs_f64()
                ))
            }
            Ok(_) => {
                tokio::time::sleep(ctx.settings.poll_interval).await;
                continue;
            }
            Err(e) => {
                return Outcome::Failed(format!("lost track of migration {op} during abort: {e}"))
            }
        };
        return match (settled, refused) {
            (OperationState::Aborted, _) => Outcome::Cancelled(format!(
                "Live migration aborted{progress}; instance back on {source}."
            )),
            (OperationState::Completed, None) => Outcome::Succeeded(Some(format!(
                "Cancel requested, but the live migration finished on {dest} before the abort took effect."
            ))),
            (OperationState::Completed, Some(_)) if past_no_return => Outcome::Succeeded(Some(format!(
                "Cancel requested, but the live migration was past its point of no return; it completed on {dest}."
            ))),
            (OperationState::Completed, Some(why)) => Outcome::Failed(format!(
                "Could not abort the live migration ({why}); it completed on {dest}."
            )),
            (OperationState::Failed(m), _) => Outcome::Failed(format!("Live migration failed during abort: {m}")),
            (other, _) => Outcome::Failed(format!("Live migration ended in an unexpected state: {other:?}")),
        };
    }
}

/// Waits for an operation that ends awaiting confirmation (cold migration,
/// resize), then confirms it, or reverts it if `cancel` fired meanwhile.
async fn confirm_or_revert(
    ctx: &ActionContext,
    cancel: &CancellationToken,
    op: &str,
    what: &str,
) -> Outcome {
    let deadline_after_cancel = ctx.settings.non_abortable_deadline;
    let mut cancel_deadline: Option<tokio::time::Instant> = None;
    loop {
        if cancel_deadline.is_none() && cancel.is_cancelled() {
            cancel_deadline = Some(tokio::time::Instant::now() + deadline_after_cancel);
        }
        match retry_transient(|| ctx.cloud.operation(op)).await {
            Ok(OperationState::AwaitingConfirmation) => {
                return if cancel_deadline.is_some() {
                    match retry_transient(|| ctx.cloud.revert(op)).await {
                        Ok(()) => Outcome::Cancelled(format!("{what} reverted on cancel.")),
                        Err(e) => {
                            Outcome::Failed(format!("could not revert the {what} on cancel: {e}"))
                        }
                    }
                } else {
                    match retry_transient(|| ctx.cloud.confirm(op)).await {
                        Ok(()) => Outcome::Succeeded(None),
                        Err(e) => Outcome::Failed(format!("could not confirm the {what}: {e}")),
                    }
                };
            }
            Ok(OperationState::Completed) => return Outcome::Succeeded(None),
            Ok(OperationState::Failed(m)) => return Outcome::Failed(format!("{what} failed: {m}")),
            Ok(OperationState::Aborted) => {
                return Outcome::Cancelled(format!("{what} was reverted."))
            }
            Ok(_) => {}
            Err(e) => return Outcome::Failed(format!("lost track of the {what} {op}: {e}")),
        }
        if let Some(d) = cancel_deadline {
            if tokio::time::Instant::now() >= d {
                return Outcome::Failed(format!(
                    "{what} cannot be aborted and was still running {:.1} s after the cancel.",
                    deadline_after_cancel.as_secs_f64()
                ));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(ctx.settings.poll_interval) => {}
            _ = cancel.cancelled(), if cancel_deadline.is_none() => {}
        }
    }
}

/// After a restart: where is the instance a migration was moving?
async fn reconcile_migration(ctx: &ActionContext, journal: Option<&JournalEntry>) -> Reconciled {
    let Some(journal) = journal else {
        return Reconciled::NotStarted;
    };
    let instance = journal
        .intent
        .get("instance")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // Died between the cloud's answer and the journal's write: the cloud
    // knows the migration, by instance and start time.
    let found = match &journal.operation_id {
        Some(_) => None,
        None => {
            let live = journal
                .intent
                .get("operation")
                .and_then(Value::as_str)
                .is_some_and(|o| o.contains("live"));
            match retry_transient(|| {
                ctx.cloud
                    .find_migration(instance, live, journal.intended_at)
            })
            .await
            {
                Ok(Some(op)) => {
                    if let Err(e) = ctx.store.journal_operation(ctx.action, op.clone()).await {
                        tracing::warn!(error = %e, "could not journal the migration found after a restart");
                    }
                    Some(op)
                }
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "could not look the migration up after a restart; judging by the instance");
                    None
                }
            }
        }
    };
    if let Some(op) = journal.operation_id.as_ref().or(found.as_ref()) {
        match retry_transient(|| ctx.cloud.operation(op)).await {
            Ok(
                OperationState::Running { .. }
                | OperationState::Aborting
                | OperationState::AwaitingConfirmation,
            ) => return Reconciled::Running(op.clone()),
            Ok(OperationState::Completed) => {
                return Reconciled::Finished(Outcome::Succeeded(Some(
                    "Completed while the applier was down.".into(),
                )))
            }
            Ok(OperationState::Aborted) => return Reconciled::NotStarted,
            Ok(OperationState::Failed(m)) => {
                return Reconciled::Finished(Outcome::Failed(format!(
                    "failed while the applier was down: {m}"
                )))
            }
            Err(_) => {} // the cloud forgot it; look at the instance instead
        }
    }
    let source = journal
        .intent
        .get("source")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let dest = journal.intent.get("destination").and_then(Value::as_str);
    match ctx.cloud.instance(instance).await {
        Ok(Some(i)) if i.status == "ACTIVE" && i.host == source => Reconciled::NotStarted,
        Ok(Some(i))
            if i.status == "ACTIVE" && (Some(i.host.as_str()) == dest || dest.is_none()) =>
        {
            Reconciled::Finished(Outcome::Succeeded(Some(format!(
                "Found on {} after a restart; the migration had completed.",
                i.host
            ))))
        }
        Ok(Some(i)) => Reconciled::Finished(Outcome::Failed(format!(
            "Outcome unknown after a restart: instance is {} on {}.",
            i.status, i.host
        ))),
        Ok(None) => Reconciled::Finished(Outcome::Failed(
            "instance disappeared while the applier was down".into(),
        )),
        Err(e) => Reconciled::Finished(Outcome::Failed(format!(
            "could not ask the cloud after a restart: {e}"
        ))),
    }
}

#[async_trait]
impl ActionPlugin for Migrate {
    fn action_type(&self) -> &'static str {
        "migrate"
    }
    fn can_abort(&self) -> bool {
        true
    }
    async fn pre_condition(&self, ctx: &ActionContext) -> Result<(), Precondition> {
        let id = ctx.str("resource_id").unwrap_or_default();
        let source = ctx.str("source_node").unwrap_or_default();
        let instance = retry_transient(|| ctx.cloud.instance(id))
            .await
            .map_err(|e| Precondition::Fail(e.to_string()))?
            .ok_or_else(|| Precondition::Skip(format!("instance {id} no longer exists")))?;
        if instance.host != source {
            return Err(Precondition::Skip(format!(
                "instance {} is on {}, not on source_node {source}",
                instance.name, instance.host
            )));
        }
        if let Some(dest) = ctx.str("destination_node") {
            match retry_transient(|| ctx.cloud.compute_service(dest)).await {
                Ok(Some(s)) if s.enabled => {}
                Ok(Some(_)) => {
                    return Err(Precondition::Fail(format!(
                        "destination {dest} is disabled"
                    )))
                }
                Ok(None) => {
                    return Err(Precondition::Fail(format!(
                        "destination {dest} does not exist"
                    )))
                }
                Err(e) => return Err(Precondition::Fail(e.to_string())),
            }
        }
        if ctx.str("migration_type") == Some("live") && instance.status != "ACTIVE" {
            return Err(Precondition::Fail(format!(
                "instance {} is {}; only ACTIVE instances can be live-migrated",
                instance.name, instance.status
            )));
        }
        Ok(())
    }
    async fn execute(
        &self,
        ctx: &ActionContext,
        cancel: &CancellationToken,
        resume: Option<OperationId>,
    ) -> Outcome {
        let instance = ctx.str("resource_id").unwrap_or_default().to_string();
        let source = ctx.str("source_node").unwrap_or_default().to_string();
        let dest = ctx.str("destination_node").map(str::to_string);
        let live = ctx.str("migration_type") == Some("live");
        let op = match resume {
            Some(op) => op,
            None => {
                let intent = json!({
                    "operation": if live { "live_migrate" } else { "cold_migrate" },
                    "instance": instance, "source": source, "destination": dest,
                });
                let started = ctx
                    .journaled(intent, cancel, || async {
                        if live {
                            ctx.cloud.live_migrate(&instance, dest.as_deref()).await
                        } else {
                            ctx.cloud.cold_migrate(&instance, dest.as_deref()).await
                        }
                    })
                    .await;
                match started {
                    Ok(op) => op,
                    Err(e) => return not_started("migration", e),
                }
            }
        };
        if live {
            let dest_name = dest
                .clone()
                .unwrap_or_else(|| "the scheduler's choice".into());
            let force_above = ctx
                .params
                .get("force_complete_above")
                .and_then(Value::as_f64);
            follow_live_migration(ctx, cancel, &op, &dest_name, &source, force_above).await
        } else {
            confirm_or_revert(ctx, cancel, &op, "cold migration").await
        }
    }
    async fn reconcile(&self, ctx: &ActionContext, journal: Option<&JournalEntry>) -> Reconciled {
        reconcile_migration(ctx, journal).await
    }
    fn can_revert(&self) -> bool {
        true
    }
    /// Migrates the instance back to `source_node`, the same way it left.
    async fn revert(&self, ctx: &ActionContext) -> Result<String, ActionError> {
        let instance = ctx.str("resource_id").unwrap_or_default().to_string();
        let source = ctx.str("source_node").unwrap_or_default().to_string();
        let live = ctx.str("migration_type") == Some("live");
        let now = retry_transient(|| ctx.cloud.instance(&instance))
            .await?
            .ok_or_else(|| {
                ActionError::Condition(format!("instance {instance} no longer exists"))
            })?;
        if now.host == source {
            return Ok(format!(
                "Nothing to roll back: the instance is on {source}."
            ));
        }
        let intent = json!({"operation": if live { "rollback_live_migrate" } else { "rollback_cold_migrate" },
                            "instance": instance, "source": now.host, "destination": source});
        let op = ctx
            .journaled(intent, &CancellationToken::new(), || async {
                if live {
                    ctx.cloud.live_migrate(&instance, Some(&source)).await
                } else {
                    ctx.cloud.cold_migrate(&instance, Some(&source)).await
                }
            })
            .await?;
        match await_operation(ctx, &op, ctx.settings.non_abortable_deadline).await? {
            OperationState::Completed => {
                Ok(format!("Rolled back on cancel: migrated back to {source}."))
            }
            OperationState::AwaitingConfirmation => {
                retry_transient(|| ctx.cloud.confirm(&op)).await?;
                Ok(format!("Rolled back on cancel: migrated back to {source}."))
            }
            OperationState::Failed(m) => Err(ActionError::Condition(format!(
                "migration back to {source} failed: {m}"
            ))),
            other => Err(ActionError::Condition(format!(
                "migration back to {source} ended {other:?}"
            ))),
        }
    }
}

// ----- resize ----------------------------------------------------------------

pub struct Resize;

#[async_trait]
impl ActionPlugin for Resize {
    fn action_type(&self) -> &'static str {
        "resize"
    }
    fn can_abort(&self) -> bool {
        true
    }
    async fn pre_condition(&self, ctx: &ActionContext) -> Result<(), Precondition> {
        let id = ctx.str("resource_id").unwrap_or_default();
        match retry_transient(|| ctx.cloud.instance(id)).await {
            Ok(Some(i)) if Some(i.flavor.as_str()) == ctx.str("flavor") => Err(Precondition::Skip(
                format!("instance {} already has flavor {}", i.name, i.flavor),
            )),
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(Precondition::Skip(format!(
                "instance {id} no longer exists"
            ))),
            Err(e) => Err(Precondition::Fail(e.to_string())),
        }
    }
    async fn execute(
        &self,
        ctx: &ActionContext,
        cancel: &CancellationToken,
        resume: Option<OperationId>,
    ) -> Outcome {
        let instance = ctx.str("resource_id").unwrap_or_default().to_string();
        let flavor = ctx.str("flavor").unwrap_or_default().to_string();
        let op = match resume {
            Some(op) => op,
            None => {
                let old_flavor = match retry_transient(|| ctx.cloud.instance(&instance)).await {
                    Ok(Some(i)) => i.flavor,
                    Ok(None) => {
                        return Outcome::Failed(format!("instance {instance} no longer exists"))
                    }
                    Err(e) => return Outcome::Failed(e.to_string()),
                };
                // The old flavor is journaled so that a rollback can restore it.
                let intent = json!({"operation": "resize", "instance": instance, "flavor": flavor, "old_flavor": old_flavor});
                match ctx
                    .journaled(intent, cancel, || ctx.cloud.resize(&instance, &flavor))
                    .await
                {
                    Ok(op) => op,
                    Err(e) => return not_started("resize", e),
                }
            }
        };
        confirm_or_revert(ctx, cancel, &op, "resize").await
    }
    fn can_revert(&self) -> bool {
        true
    }
    /// Resizes back to the flavor journaled before the resize.
    async fn revert(&self, ctx: &ActionContext) -> Result<String, ActionError> {
        let instance = ctx.str("resource_id").unwrap_or_default().to_string();
        let journal = ctx.store.journal(ctx.action).await?;
        let old = journal
            .as_ref()
            .and_then(|j| j.intent.get("old_flavor"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                ActionError::Condition("the flavor before the resize was not recorded".into())
            })?;
        let op = ctx
            .journaled(
                json!({"operation": "rollback_resize", "instance": instance, "flavor": old}),
                &CancellationToken::new(),
                || ctx.cloud.resize(&instance, &old),
            )
            .await?;
        match await_operation(ctx, &op, ctx.settings.non_abortable_deadline).await? {
            OperationState::AwaitingConfirmation => {
                retry_transient(|| ctx.cloud.confirm(&op)).await?;
                Ok(format!("Rolled back on cancel: resized back to {old}."))
            }
            OperationState::Completed => {
                Ok(format!("Rolled back on cancel: resized back to {old}."))
            }
            OperationState::Failed(m) => Err(ActionError::Condition(format!(
                "resize back to {old} failed: {m}"
            ))),
            other => Err(ActionError::Condition(format!(
                "resize back to {old} ended {other:?}"
            ))),
        }
    }
    async fn reconcile(&self, ctx: &ActionContext, journal: Option<&JournalEntry>) -> Reconciled {
        let Some(op) = journal.and_then(|j| j.operation_id.clone()) else {
            return Reconciled::NotStarted;
        };
        match ctx.cloud.operation(&op).await {
            Ok(OperationState::Completed) => Reconciled::Finished(Outcome::Succeeded(None)),
            Ok(OperationState::Failed(m)) => Reconciled::Finished(Outcome::Failed(m)),
            Ok(OperationState::Aborted) | Err(_) => Reconciled::NotStarted,
            Ok(_) => Reconciled::Running(op),
        }
    }
}

// ----- change_nova_service_state ----------------------------------------------

pub struct ChangeNovaServiceState;

#[async_trait]
impl ActionPlugin for ChangeNovaServiceState {
    fn action_type(&self) -> &'static str {
        "change_nova_service_state"
    }
    fn can_abort(&self) -> bool {
        false
    }
    async fn pre_condition(&self, ctx: &ActionContext) -> Result<(), Precondition> {
        let host = named_host_of(&ctx.params);
        let want_enabled = matches!(ctx.str("state"), Some("enabled" | "up"));
        match retry_transient(|| ctx.cloud.compute_service(&host)).await {
            Ok(Some(s)) if s.enabled == want_enabled => Err(Precondition::Skip(format!(
                "nova-compute on {host} is already {}",
                if want_enabled { "enabled" } else { "disabled" }
            ))),
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(Precondition::Skip(format!(
                "no nova-compute service on {host}"
            ))),
            Err(e) => Err(Precondition::Fail(e.to_string())),
        }
    }
    async fn execute(
        &self,
        ctx: &ActionContext,
        _: &CancellationToken,
        _: Option<OperationId>,
    ) -> Outcome {
        let host = named_host_of(&ctx.params);
        let enable = matches!(ctx.str("state"), Some("enabled" | "up"));
        let reason = ctx.str("disabled_reason").map(str::to_string);
        let intent = json!({"operation": "set_compute_service", "host": host, "enabled": enable});
        if let Err(e) = ctx.store.journal_intent(ctx.action, intent).await {
            return Outcome::Failed(format!("could not journal the intent: {e}"));
        }
        match retry_transient(|| {
            ctx.cloud
                .set_compute_service(&host, enable, reason.as_deref())
        })
        .await
        {
            Ok(()) => Outcome::Succeeded(None),
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
    fn can_revert(&self) -> bool {
        true
    }
    /// Puts the service back in the opposite state.
    async fn revert(&self, ctx: &ActionContext) -> Result<String, ActionError> {
        let host = named_host_of(&ctx.params);
        let enabled_by_action = matches!(ctx.str("state"), Some("enabled" | "up"));
        let restore = !enabled_by_action;
        let reason = (!restore).then_some("restored by watcher after a cancelled action plan");
        ctx.store
            .journal_intent(ctx.action, json!({"operation": "rollback_set_compute_service", "host": host, "enabled": restore}))
            .await?;
        retry_transient(|| ctx.cloud.set_compute_service(&host, restore, reason)).await?;
        Ok(format!(
            "Rolled back on cancel: nova-compute on {host} {} again.",
            if restore { "enabled" } else { "disabled" }
        ))
    }
    async fn reconcile(&self, ctx: &ActionContext, journal: Option<&JournalEntry>) -> Reconciled {
        if journal.is_none() {
            return Reconciled::NotStarted;
        }
        let host = named_host_of(&ctx.params);
        let want = matches!(ctx.str("state"), Some("enabled" | "up"));
        match ctx.cloud.compute_service(&host).await {
            Ok(Some(s)) if s.enabled == want => Reconciled::Finished(Outcome::Succeeded(None)),
            _ => Reconciled::NotStarted,
        }
    }
}

// ----- change_node_power_state ---------------------------------------------------

/// Powers a compute node on or off (saving_energy). The cloud refuses to
/// power off a node that still runs instances.
pub struct ChangeNodePowerState;

impl ChangeNodePowerState {
    async fn powered_on(ctx: &ActionContext, host: &str) -> Result<Option<bool>, ActionError> {
        let nodes = retry_transient(|| ctx.cloud.compute_nodes()).await?;
        Ok(nodes
            .into_iter()
            .find(|n| n.name == host)
            .and_then(|n| n.powered_on))
    }
}

#[async_trait]
impl ActionPlugin for ChangeNodePowerState {
    fn action_type(&self) -> &'static str {
        "change_node_power_state"
    }
    fn can_abort(&self) -> bool {
        false
    }
    async fn pre_condition(&self, ctx: &ActionContext) -> Result<(), Precondition> {
        let host = named_host_of(&ctx.params);
        let want = ctx.str("state") == Some("on");
        match Self::powered_on(ctx, &host).await {
            Ok(Some(on)) if on == want => Err(Precondition::Skip(format!(
                "{host} is already powered {}",
                if want { "on" } else { "off" }
            ))),
            Ok(_) => Ok(()),
            Err(e) => Err(Precondition::Fail(e.to_string())),
        }
    }
    async fn execute(
        &self,
        ctx: &ActionContext,
        _: &CancellationToken,
        _: Option<OperationId>,
    ) -> Outcome {
        let host = named_host_of(&ctx.params);
        let on = ctx.str("state") == Some("on");
        let intent = json!({"operation": "set_node_power", "host": host, "on": on});
        if let Err(e) = ctx.store.journal_intent(ctx.action, intent).await {
            return Outcome::Failed(format!("could not journal the intent: {e}"));
        }
        match retry_transient(|| ctx.cloud.set_node_power(&host, on)).await {
            Ok(()) => Outcome::Succeeded(None),
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
    fn can_revert(&self) -> bool {
        true
    }
    async fn revert(&self, ctx: &ActionContext) -> Result<String, ActionError> {
        let host = named_host_of(&ctx.params);
        let restore = ctx.str("state") != Some("on");
        ctx.store
            .journal_intent(
                ctx.action,
                json!({"operation": "rollback_set_node_power", "host": host, "on": restore}),
            )
            .await?;
        retry_transient(|| ctx.cloud.set_node_power(&host, restore)).await?;
        Ok(format!(
            "Rolled back on cancel: {host} powered {} again.",
            if restore { "on" } else { "off" }
        ))
    }
    async fn reconcile(&self, ctx: &ActionContext, journal: Option<&JournalEntry>) -> Reconciled {
        if journal.is_none() {
            return Reconciled::NotStarted;
        }
        let host = named_host_of(&ctx.params);
        let want = ctx.str("state") == Some("on");
        match Self::powered_on(ctx, &host).await {
            Ok(Some(on)) if on == want => Reconciled::Finished(Outcome::Succeeded(None)),
            _ => Reconciled::NotStarted,
        }
    }
}

// ----- volume_migrate ----------------------------------------------------------

pub struct VolumeMigrate;

#[async_trait]
impl ActionPlugin for VolumeMigrate {
    fn action_type(&self) -> &'static str {
        "volume_migrate"
    }
    fn can_abort(&self) -> bool {
        false
    }
    /// Upstream's checks (skip a volume that is gone or already where or
    /// what it should be; fail on an unknown pool or type) and two it
    /// lacks: an attached volume moves only while its server is ACTIVE or
    /// PAUSED, and a migrate is refused before Cinder sees it when the
    /// volume's type is bound to a backend that does not serve the
    /// destination (Cinder would leave the volume in migration error).
    async fn pre_condition(&self, ctx: &ActionContext) -> Result<(), Precondition> {
        let fail = |e: CloudError| Precondition::Fail(e.to_string());
        let id = ctx.str("resource_id").unwrap_or_default();
        let v = match retry_transient(|| ctx.cloud.volume(id))
            .await
            .map_err(fail)?
        {
            Some(v) => v,
            None => return Err(Precondition::Skip(format!("volume {id} no longer exists"))),
        };
        let pools = retry_transient(|| ctx.cloud.storage_pools())
            .await
            .map_err(fail)?;
        if ctx.str("migration_type") == Some("retype") {
            let t = ctx.str("destination_type").unwrap_or_default();
            if v.volume_type.as_deref() == Some(t) {
                return Err(Precondition::Skip(format!(
                    "volume {} is already of type {t}",
                    v.name
                )));
            }
            if !pools.iter().any(|p| p.volume_types.iter().any(|x| x == t)) {
                return Err(Precondition::Fail(format!(
                    "volume type {t} is not served by any pool"
                )));
            }
        } else {
            let dest = ctx.str("destination_node").unwrap_or_default();
            if v.pool == dest {
                return Err(Precondition::Skip(format!(
                    "volume {} is already in {dest}",
                    v.name
                )));
            }
            let Some(pool) = pools.iter().find(|p| p.name == dest) else {
                return Err(Precondition::Fail(format!("pool {dest} does not exist")));
            };
            let serving = pools.iter().map(|p| p.volume_types.as_slice());
            if watcher_cloud::type_forbids_pool(
                v.volume_type.as_deref(),
                serving,
                &pool.volume_types,
            ) {
                return Err(Precondition::Fail(format!(
                    "volume {} has type {}, which {dest} does not serve: Cinder would \
                     refuse the migration; retype it to a type of that backend instead",
                    v.name,
                    v.volume_type.as_deref().unwrap_or_default()
                )));
            }
        }
        if let Some(server) = &v.attached_to {
            let status = match retry_transient(|| ctx.cloud.instance(server)).await {
                Ok(Some(i)) => i.status,
                Ok(None) => "gone".into(),
                Err(e) => return Err(fail(e)),
            };
            if status != "ACTIVE" && status != "PAUSED" {
                return Err(Precondition::Fail(format!(
                    "volume {} is attached to server {server}, which is {status}: Nova swaps \
                     the volume only for an ACTIVE or PAUSED server",
                    v.name
                )));
            }
        }
        Ok(())
    }
    async fn execute(
        &self,
        ctx: &ActionContext,
        cancel: &CancellationToken,
        resume: Option<OperationId>,
    ) -> Outcome {
        let volume = ctx.str("resource_id").unwrap_or_default().to_string();
        let retype = ctx.str("migration_type") == Some("retype");
        let op = match resume {
            Some(op) => op,
            None if retype => {
                let new_type = ctx.str("destination_type").unwrap_or_default().to_string();
                let intent =
                    json!({"operation": "retype_volume", "volume": volume, "type": new_type});
                match ctx
                    .journaled(intent, cancel, || {
                        ctx.cloud.retype_volume(&volume, &new_type)
                    })
                    .await
                {
                    Ok(op) => op,
                    Err(e) => return not_started("volume retype", e),
                }
            }
            None => {
                // `swap` is upstream's older name for moving an attached volume.
                let pool = ctx.str("destination_node").unwrap_or_default().to_string();
                let intent = json!({"operation": "migrate_volume", "volume": volume, "pool": pool});
                match ctx
                    .journaled(intent, cancel, || ctx.cloud.migrate_volume(&volume, &pool))
                    .await
                {
                    Ok(op) => op,
                    Err(e) => return not_started("volume migration", e),
                }
            }
        };
        // Cinder has no abort: on cancel, wait up to the deadline and report.
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut reported = -1.0;
        loop {
            if deadline.is_none() && cancel.is_cancelled() {
                deadline = Some(tokio::time::Instant::now() + ctx.settings.non_abortable_deadline);
            }
            match retry_transient(|| ctx.cloud.operation(&op)).await {
                Ok(OperationState::Completed) => {
                    return Outcome::Succeeded(deadline.map(|_| {
                        "Volume migrations cannot be aborted; it completed after the cancel."
                            .to_string()
                    }))
                }
                Ok(OperationState::Failed(m)) => {
                    return Outcome::Failed(format!("volume migration failed: {m}"))
                }
                Ok(running) => ctx.report_progress(&running, &mut reported).await,
                Err(e) => {
                    return Outcome::Failed(format!("lost track of volume migration {op}: {e}"))
                }
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Outcome::Failed(format!(
                    "Volume migration cannot be aborted and was still running {:.1} s after the cancel.",
                    ctx.settings.non_abortable_deadline.as_secs_f64()
                ));
            }
            tokio::select! {
                _ = tokio::time::sleep(ctx.settings.poll_interval) => {}
                _ = cancel.cancelled(), if deadline.is_none() => {}
            }
        }
    }
    async fn reconcile(&self, ctx: &ActionContext, journal: Option<&JournalEntry>) -> Reconciled {
        let Some(op) = journal.and_then(|j| j.operation_id.clone()) else {
            return Reconciled::NotStarted;
        };
        match ctx.cloud.operation(&op).await {
            Ok(OperationState::Completed) => Reconciled::Finished(Outcome::Succeeded(None)),
            Ok(OperationState::Failed(m)) => Reconciled::Finished(Outcome::Failed(m)),
            Ok(_) => Reconciled::Running(op),
            Err(_) => Reconciled::NotStarted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use watcher_cloud::scenario::Scenario;
    use watcher_cloud::simulated::SimulatedCloud;
    use watcher_store::{DatabaseLocation, Durability};

    /// A context on a database file: its reads do not go through the
    /// writer (an in-memory database's do), so they answer while writes are held.
    fn context() -> (ActionContext, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("watcher-applier-test-{}", Uuid::new_v4()));
        let location = DatabaseLocation::File(dir.join("watcher.db"));
        let ctx = ActionContext {
            plan: Uuid::new_v4(),
            action: Uuid::new_v4(),
            params: json!({}),
            cloud: Arc::new(SimulatedCloud::new(&Scenario::demo())),
            store: Store::open(&location, Durability::Normal).expect("store"),
            settings: ActionSettings::default(),
        };
        (ctx, dir)
    }

    /// Under load a write waits behind this process's queue for a second or
    /// more; the abort must not wait for the operation id's write.
    #[tokio::test]
    async fn a_cancel_gets_the_operation_without_waiting_for_its_journal_write() {
        let (ctx, dir) = context();
        let cancel = CancellationToken::new();
        let held = std::sync::Mutex::new(None);
        let started = ctx.journaled(json!({"operation": "test"}), &cancel, || async {
            // The operation started; this process's writes are stuck and
            // the cancel comes now.
            *held.lock().unwrap() = Some(ctx.store.hold_writes());
            cancel.cancel();
            Ok("op-1".to_string())
        });
        let op = tokio::time::timeout(Duration::from_secs(30), started)
            .await
            .expect("the cancel waited for the journal write")
            .expect("started");
        assert_eq!(op, "op-1");
        assert_eq!(
            ctx.store
                .journal(ctx.action)
                .await
                .unwrap()
                .unwrap()
                .operation_id,
            None
        );
        // The write was not dropped: it lands once the writer moves again.
        drop(held.lock().unwrap().take());
        loop {
            let entry = ctx.store.journal(ctx.action).await.unwrap().unwrap();
            if entry.operation_id.as_deref() == Some("op-1") {
                break;
            }
            tokio::task::yield_now().await;
        }
        drop(ctx);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A cancel while the intent is still being written: the cloud is
    /// never asked, and the action can end CANCELLED with nothing to undo.
    #[tokio::test]
    async fn a_cancel_before_the_intent_is_written_starts_nothing() {
        let (ctx, dir) = context();
        let cancel = CancellationToken::new();
        let held = ctx.store.hold_writes();
        let asked = AtomicBool::new(false);
        let started = ctx.journaled(json!({"operation": "test"}), &cancel, || async {
            asked.store(true, Ordering::SeqCst);
            Ok("op-1".to_string())
        });
        cancel.cancel();
        let e = tokio::time::timeout(Duration::from_secs(30), started)
            .await
            .expect("the cancel waited for the intent's write")
            .expect_err("must not start");
        assert!(matches!(e, ActionError::CancelledBeforeStart), "{e}");
        assert!(!asked.load(Ordering::SeqCst));
        assert!(matches!(not_started("migration", e), Outcome::Cancelled(_)));
        drop((held, ctx));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn there_is_an_executor_for_every_catalogued_action_type_and_no_other() {
        let r = ActionRegistry::default();
        let mut executors: Vec<_> = r.plugins.keys().copied().collect();
        executors.sort_unstable();
        assert_eq!(executors, watcher_core::actions::known_types());
    }
}
