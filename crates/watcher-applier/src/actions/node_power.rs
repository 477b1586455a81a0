//! `change_node_power_state`: power a compute node on or off.

use super::*;

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
