//! `stop`: power off an instance through Nova (`os-stop`), as upstream's
//! 2025.2 action: an instance that no longer exists or is already SHUTOFF
//! is skipped, one that vanishes meanwhile counts as stopped, and a
//! cancel cannot take a stop back: it is awaited. Rolled back by starting
//! the instance again.

use super::*;

pub struct Stop;

const SHUTOFF: &str = "SHUTOFF";

/// Upstream's rule: an instance that vanished is stopped enough.
fn vanished(instance: &str) -> Outcome {
    Outcome::Succeeded(Some(format!(
        "Instance {instance} no longer exists: nothing left to stop."
    )))
}

/// Waits until `instance` is SHUTOFF (or gone), up to `deadline`.
async fn await_shutoff(ctx: &ActionContext, instance: &str, deadline: Duration) -> Outcome {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        match retry_transient(|| ctx.cloud.instance(instance)).await {
            Ok(None) => return vanished(instance),
            Ok(Some(i)) if i.status == SHUTOFF => return Outcome::Succeeded(None),
            Ok(Some(i)) if tokio::time::Instant::now() >= until => {
                return Outcome::Failed(format!(
                    "instance {} did not stop within {} s; it is {}",
                    i.name,
                    deadline.as_secs(),
                    i.status
                ))
            }
            Ok(Some(_)) => {}
            Err(e) => return Outcome::Failed(e.to_string()),
        }
        tokio::time::sleep(ctx.settings.poll_interval).await;
    }
}

#[async_trait]
impl ActionPlugin for Stop {
    fn action_type(&self) -> &'static str {
        "stop"
    }
    fn can_abort(&self) -> bool {
        false
    }
    async fn pre_condition(&self, ctx: &ActionContext) -> Result<(), Precondition> {
        let id = ctx.str("resource_id").unwrap_or_default();
        match retry_transient(|| ctx.cloud.instance(id)).await {
            Ok(None) => Err(Precondition::Skip(format!("instance {id} not found"))),
            Ok(Some(i)) if i.status == SHUTOFF => Err(Precondition::Skip(format!(
                "instance {} is already stopped",
                i.name
            ))),
            Ok(Some(_)) => Ok(()),
            Err(e) => Err(Precondition::Fail(e.to_string())),
        }
    }
    async fn execute(
        &self,
        ctx: &ActionContext,
        cancel: &CancellationToken,
        _: Option<OperationId>,
    ) -> Outcome {
        let instance = ctx.str("resource_id").unwrap_or_default().to_string();
        let intent = json!({"operation": "stop", "instance": instance});
        let asked = ctx
            .journaled(intent, cancel, || async {
                ctx.cloud.set_instance_power(&instance, false).await?;
                Ok(format!("stop/{instance}"))
            })
            .await;
        match asked {
            Ok(_) => {}
            Err(ActionError::Cloud(CloudError::NotFound { .. })) => return vanished(&instance),
            // Already stopping (a restart asked again): wait for it below.
            Err(ActionError::Cloud(CloudError::Conflict(_))) => {}
            Err(e) => return not_started("stop", e),
        }
        // A cancel does not undo a stop: it is awaited, as long as an
        // action that cannot be aborted is.
        await_shutoff(ctx, &instance, ctx.settings.non_abortable_deadline).await
    }
    fn can_revert(&self) -> bool {
        true
    }
    /// Starts the instance again.
    async fn revert(&self, ctx: &ActionContext) -> Result<String, ActionError> {
        let instance = ctx.str("resource_id").unwrap_or_default().to_string();
        ctx.store
            .journal_intent(
                ctx.action,
                json!({"operation": "rollback_stop", "instance": instance}),
            )
            .await?;
        retry_transient(|| ctx.cloud.set_instance_power(&instance, true)).await?;
        Ok(format!(
            "Rolled back on cancel: instance {instance} started again."
        ))
    }
    async fn reconcile(&self, ctx: &ActionContext, journal: Option<&JournalEntry>) -> Reconciled {
        if journal.is_none() {
            return Reconciled::NotStarted;
        }
        let instance = ctx.str("resource_id").unwrap_or_default();
        match ctx.cloud.instance(instance).await {
            Ok(None) => Reconciled::Finished(Outcome::Succeeded(None)),
            Ok(Some(i)) if i.status == SHUTOFF => Reconciled::Finished(Outcome::Succeeded(None)),
            // Asking again is harmless: a stop under way answers Conflict,
            // which execute waits through.
            _ => Reconciled::NotStarted,
        }
    }
}
