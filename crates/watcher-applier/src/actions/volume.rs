//! `volume_migrate`: migrate or retype a volume through Cinder; such
//! moves cannot be aborted, so a cancel waits for them.

use super::*;

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
            if !pools.iter().any(|p| p.serves(t)) {
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
