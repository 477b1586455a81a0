//! `nop`: logs its message; the action of tests and dry runs.

use super::*;

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
