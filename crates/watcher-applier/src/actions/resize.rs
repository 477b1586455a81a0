//! `resize`: a new flavor for an instance, confirmed, or reverted on cancel.

use super::migrate::confirm_or_revert;
use super::*;

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
