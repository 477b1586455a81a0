//! `sleep`: waits its duration, aborted at once by a cancel.

use super::*;

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
