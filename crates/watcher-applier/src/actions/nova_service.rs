//! `change_nova_service_state`: enable or disable a compute service.

use super::*;

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
