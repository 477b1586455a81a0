//! `migrate`: live and cold migration of an instance, followed to its end,
//! aborted (or forced to complete past a threshold) on cancel, reconciled
//! from the journal and the cloud after a restart.

use super::*;

pub struct Migrate;

/// Follows a live migration until it settles, aborting it if `cancel` fires
/// (or forcing it to complete, when it is past `force_above` of its progress).
///
/// The cancel never waits: a status poll in flight (which a slow cloud may
/// answer only after its timeout and retries) and the progress write after
/// it are dropped the moment the token fires, and the abort goes out with
/// the progress of the last poll that did answer.
pub(super) async fn follow_live_migration(
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
pub(super) async fn on_cancel(
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
pub(super) async fn force_complete_instead(
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
pub(super) async fn abort_live_migration(
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
pub(super) async fn confirm_or_revert(
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
// Long because it is the recovery table of docs/architecture.md for a migration, one arm
// per row.
pub(super) async fn reconcile_migration(
    ctx: &ActionContext,
    journal: Option<&JournalEntry>,
) -> Reconciled {
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
