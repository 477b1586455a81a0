//! The simulated cloud behind the `Cloud` trait: each call is one
//! `State::call` (or `SimulatedCloud::mutate` when it changes the cloud).

use super::state::*;
use super::SimulatedCloud;
use crate::scenario::PoolSpec;
use crate::*;
use async_trait::async_trait;
use std::time::Duration;
use tokio::time::Instant;

#[async_trait]
impl Cloud for SimulatedCloud {
    fn kind(&self) -> &'static str {
        "simulated"
    }

    async fn compute_nodes(&self) -> Result<Vec<ComputeNode>, CloudError> {
        self.with_state(|st| {
            Ok(st
                .hosts
                .iter()
                .map(|(name, h)| ComputeNode {
                    uuid: host_uuid(name),
                    name: name.clone(),
                    vcpus: Inventory::whole(h.vcpus.into()),
                    ram_mb: Inventory::whole(h.ram_mb),
                    disk_gb: Inventory::whole(h.disk_gb),
                    service_enabled: h.enabled,
                    service_up: true,
                    disabled_reason: h.disabled_reason.clone(),
                    availability_zone: h.availability_zone.clone(),
                    aggregates: h.aggregates.clone(),
                    powered_on: Some(h.powered_on),
                })
                .collect())
        })
    }

    async fn flavors(&self) -> Result<Vec<crate::Flavor>, CloudError> {
        self.with_state(|st| {
            let mut out: Vec<crate::Flavor> = st
                .flavors
                .iter()
                .map(|(name, f)| crate::Flavor {
                    name: name.clone(),
                    vcpus: f.vcpus,
                    ram_mb: f.ram_mb,
                    disk_gb: f.disk_gb,
                })
                .collect();
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    async fn instances(&self) -> Result<Vec<Instance>, CloudError> {
        self.with_state(|st| Ok(st.instances.values().cloned().collect()))
    }

    async fn instance(&self, uuid: &str) -> Result<Option<Instance>, CloudError> {
        self.with_state(|st| Ok(st.instances.get(uuid).cloned()))
    }

    async fn volume(&self, uuid: &str) -> Result<Option<Volume>, CloudError> {
        self.with_state(|st| Ok(st.volumes.get(uuid).cloned()))
    }

    async fn volumes(&self) -> Result<Vec<Volume>, CloudError> {
        self.with_state(|st| Ok(st.volumes.values().cloned().collect()))
    }

    async fn storage_pools(&self) -> Result<Vec<StoragePool>, CloudError> {
        self.with_state(|st| {
            Ok(st
                .pools
                .iter()
                .map(|p| {
                    // Allocation follows the volumes, wherever migrations put them.
                    let allocated: u64 = st
                        .volumes
                        .values()
                        .filter(|v| v.pool == p.name)
                        .map(|v| v.size_gb)
                        .sum();
                    StoragePool {
                        name: p.name.clone(),
                        total_capacity_gb: p.total_capacity_gb as f64,
                        free_capacity_gb: p.total_capacity_gb.saturating_sub(allocated) as f64,
                        allocated_capacity_gb: allocated as f64,
                        max_over_subscription_ratio: p.max_over_subscription_ratio,
                        availability_zone: p.availability_zone.clone(),
                        volume_types: p.volume_types.clone(),
                        // A scenario binds every type to the pools that serve it.
                        unbound_types: vec![],
                    }
                })
                .collect())
        })
    }

    async fn compute_service(&self, host: &str) -> Result<Option<ComputeService>, CloudError> {
        self.with_state(|st| {
            Ok(st.hosts.get(host).map(|h| ComputeService {
                host: host.to_string(),
                enabled: h.enabled,
                disabled_reason: h.disabled_reason.clone(),
            }))
        })
    }

    async fn live_migrate(
        &self,
        instance: &str,
        destination: Option<&str>,
    ) -> Result<OperationId, CloudError> {
        self.mutate(|st| st.start_migration(instance, destination, true))
            .await
    }

    async fn cold_migrate(
        &self,
        instance: &str,
        destination: Option<&str>,
    ) -> Result<OperationId, CloudError> {
        self.mutate(|st| st.start_migration(instance, destination, false))
            .await
    }

    async fn resize(&self, instance: &str, flavor: &str) -> Result<OperationId, CloudError> {
        self.mutate(|st| {
            let inst = st
                .instances
                .get(instance)
                .ok_or_else(|| not_found("Instance", instance))?
                .clone();
            if !st.flavors.contains_key(flavor) {
                return Err(not_found("Flavor", flavor));
            }
            if inst.status != "ACTIVE" {
                return Err(CloudError::Refused(format!(
                    "instance {} is {}, not ACTIVE",
                    inst.name, inst.status
                )));
            }
            st.set_instance_status(instance, "RESIZE");
            let d = secs(st.timing.resize_secs);
            Ok(st.start_op(
                OpKind::Resize {
                    instance: inst.uuid,
                    old_flavor: inst.flavor,
                    new_flavor: flavor.to_string(),
                },
                d,
            ))
        })
        .await
    }

    async fn migrate_volume(&self, volume: &str, pool: &str) -> Result<OperationId, CloudError> {
        self.mutate(|st| {
            let vol = st.volume(volume)?;
            let Some(dest) = st.pools.iter().find(|p| p.name == pool) else {
                return Err(not_found("Pool", pool));
            };
            if vol.pool == pool {
                return Err(CloudError::Refused(format!(
                    "volume {} is already in {pool}",
                    vol.name
                )));
            }
            // As Cinder's scheduler: a type bound to a backend goes nowhere else.
            let serving = st.pools.iter().map(|p| p.volume_types.as_slice());
            if type_forbids_pool(vol.volume_type.as_deref(), serving, &dest.volume_types) {
                return Err(CloudError::Refused(format!(
                    "No valid backend was found: volume type {} is not served by {pool}",
                    vol.volume_type.as_deref().unwrap_or_default()
                )));
            }
            if let Some(v) = st.volume_mut(volume) {
                v.status = "migrating".into();
            }
            let d = secs(st.timing.volume_migration_secs);
            Ok(st.start_op(
                OpKind::VolumeMigration {
                    volume: vol.uuid,
                    source: vol.pool,
                    dest: pool.to_string(),
                    new_type: None,
                },
                d,
            ))
        })
        .await
    }

    async fn retype_volume(&self, volume: &str, new_type: &str) -> Result<OperationId, CloudError> {
        self.mutate(|st| {
            let vol = st.volume(volume)?;
            let serving: Vec<&PoolSpec> = st
                .pools
                .iter()
                .filter(|p| p.volume_types.iter().any(|t| t == new_type))
                .collect();
            if serving.is_empty() {
                return Err(not_found("Volume type", new_type));
            }
            if vol.volume_type.as_deref() == Some(new_type) {
                return Err(CloudError::Refused(format!(
                    "volume {} is already of type {new_type}",
                    vol.name
                )));
            }
            // In place when its pool serves the type; else to the serving
            // pool with the most room (on-demand migration).
            let dest = match serving.iter().find(|p| p.name == vol.pool) {
                Some(p) => p.name.clone(),
                None => {
                    let used = |pool: &str| -> u64 {
                        st.volumes
                            .values()
                            .filter(|v| v.pool == pool)
                            .map(|v| v.size_gb)
                            .sum()
                    };
                    serving
                        .iter()
                        .max_by_key(|p| p.total_capacity_gb.saturating_sub(used(&p.name)))
                        .map(|p| p.name.clone())
                        .expect("a serving pool")
                }
            };
            let d = if dest == vol.pool {
                Duration::ZERO
            } else {
                secs(st.timing.volume_migration_secs)
            };
            if let Some(v) = st.volume_mut(volume) {
                v.status = "retyping".into();
            }
            Ok(st.start_op(
                OpKind::VolumeMigration {
                    volume: vol.uuid,
                    source: vol.pool,
                    dest,
                    new_type: Some(new_type.to_string()),
                },
                d,
            ))
        })
        .await
    }

    async fn set_compute_service(
        &self,
        host: &str,
        enabled: bool,
        reason: Option<&str>,
    ) -> Result<(), CloudError> {
        self.mutate(|st| {
            let h = st.host_mut(host).ok_or_else(|| not_found("Host", host))?;
            h.enabled = enabled;
            h.disabled_reason = if enabled {
                None
            } else {
                reason.map(str::to_string)
            };
            Ok(())
        })
        .await
    }

    async fn set_instance_power(&self, instance: &str, on: bool) -> Result<(), CloudError> {
        self.mutate(|st| {
            let i = st
                .instance_mut(instance)
                .ok_or_else(|| not_found("Instance", instance))?;
            let (from, to) = if on {
                ("SHUTOFF", "ACTIVE")
            } else {
                ("ACTIVE", "SHUTOFF")
            };
            if i.status != from {
                return Err(CloudError::Conflict(format!(
                    "instance {instance} is {}, not {from}",
                    i.status
                )));
            }
            i.status = to.to_string();
            Ok(())
        })
        .await
    }

    async fn set_node_power(&self, node: &str, on: bool) -> Result<(), CloudError> {
        self.mutate(|st| {
            let busy = st.instances.values().filter(|i| i.host == node).count();
            let h = st.host_mut(node).ok_or_else(|| not_found("Host", node))?;
            if !on && busy > 0 {
                return Err(CloudError::Refused(format!(
                    "host {node} still runs {busy} instance(s); it cannot be powered off"
                )));
            }
            h.powered_on = on;
            Ok(())
        })
        .await
    }

    async fn find_migration(
        &self,
        instance: &str,
        live: bool,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<OperationId>, CloudError> {
        self.with_state(|st| {
            Ok(st
                .ops
                .iter()
                .filter(|(_, o)| o.started_at >= since)
                .filter(|(_, o)| match &o.kind {
                    OpKind::LiveMigration { instance: i, .. } => live && i == instance,
                    OpKind::ColdMigration { instance: i, .. } => !live && i == instance,
                    _ => false,
                })
                .max_by_key(|(_, o)| o.started_at)
                .map(|(id, _)| id.clone()))
        })
    }
    async fn operation(&self, op: &str) -> Result<OperationState, CloudError> {
        let delay = self
            .state
            .lock()
            .expect("simulated cloud lock")
            .timing
            .poll_delay_secs;
        if delay > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(delay)).await;
        }
        self.with_state(|st| {
            let o = st.ops.get(op).ok_or_else(|| not_found("Operation", op))?;
            let now = Instant::now();
            Ok(phase_state(o, now))
        })
    }

    async fn abort(&self, op: &str) -> Result<(), CloudError> {
        self.mutate(|st| {
            let now = Instant::now();
            let pnr = st.timing.point_of_no_return;
            let refuse = st.rng.chance(st.faults.abort_refusal_rate);
            let o = st.op_mut(op).ok_or_else(|| not_found("Operation", op))?;
            o.abort_requested
                .get_or_insert_with(std::time::SystemTime::now);
            match (&o.kind, &o.phase) {
                (OpKind::LiveMigration { .. }, OpPhase::Running) => {
                    let p = progress_of(o, now);
                    if p >= pnr {
                        return Err(CloudError::PastPointOfNoReturn(format!(
                            "the migration is {:.0}% done, past its point of no return ({:.0}%)",
                            p * 100.0,
                            pnr * 100.0
                        )));
                    }
                    if refuse {
                        return Err(CloudError::Conflict(
                            "simulated refusal of the abort".into(),
                        ));
                    }
                    o.phase = OpPhase::Aborting { since: now };
                    Ok(())
                }
                (OpKind::LiveMigration { .. }, OpPhase::Aborting { .. }) => Ok(()),
                (OpKind::LiveMigration { .. }, _) => {
                    Err(CloudError::AlreadyFinished(op.to_string()))
                }
                (OpKind::ColdMigration { .. }, _) => {
                    Err(CloudError::NotAbortable("a cold migration".into()))
                }
                (OpKind::Resize { .. }, _) => Err(CloudError::NotAbortable("a resize".into())),
                (OpKind::VolumeMigration { .. }, _) => {
                    Err(CloudError::NotAbortable("a volume migration".into()))
                }
            }
        })
        .await
    }

    async fn force_complete(&self, op: &str) -> Result<(), CloudError> {
        self.mutate(|st| {
            let o = st.op_mut(op).ok_or_else(|| not_found("Operation", op))?;
            match (&o.kind, &o.phase) {
                (OpKind::LiveMigration { .. }, OpPhase::Running) => {
                    // Finishing now: pretend it started one full duration ago.
                    o.started = Instant::now() - o.duration;
                    o.fails_at = None;
                    let id = op.to_string();
                    st.advance(&id, Instant::now());
                    Ok(())
                }
                (OpKind::LiveMigration { .. }, _) => {
                    Err(CloudError::AlreadyFinished(op.to_string()))
                }
                _ => Err(CloudError::Refused(
                    "only a running live migration can be force-completed".into(),
                )),
            }
        })
        .await
    }

    async fn confirm(&self, op: &str) -> Result<(), CloudError> {
        self.mutate(|st| {
            let o = st.op_mut(op).ok_or_else(|| not_found("Operation", op))?;
            if !matches!(o.phase, OpPhase::AwaitingConfirmation) {
                return Err(CloudError::Refused(format!(
                    "operation {op} is not awaiting confirmation"
                )));
            }
            o.phase = OpPhase::Completed;
            let instance = match &o.kind {
                OpKind::ColdMigration { instance, .. } | OpKind::Resize { instance, .. } => {
                    instance.clone()
                }
                _ => return Ok(()),
            };
            st.set_instance_status(&instance, "ACTIVE");
            Ok(())
        })
        .await
    }

    async fn revert(&self, op: &str) -> Result<(), CloudError> {
        self.mutate(|st| {
            let o = st.op_mut(op).ok_or_else(|| not_found("Operation", op))?;
            if !matches!(o.phase, OpPhase::AwaitingConfirmation) {
                return Err(CloudError::Refused(format!(
                    "operation {op} is not awaiting confirmation"
                )));
            }
            o.phase = OpPhase::Aborted;
            match o.kind.clone() {
                OpKind::ColdMigration {
                    instance, source, ..
                } => {
                    if let Some(i) = st.instance_mut(&instance) {
                        i.host = source;
                        i.status = "ACTIVE".into();
                    }
                }
                OpKind::Resize {
                    instance,
                    old_flavor,
                    ..
                } => {
                    if let Some(i) = st.instance_mut(&instance) {
                        i.flavor = old_flavor;
                        i.status = "ACTIVE".into();
                    }
                }
                _ => {}
            }
            Ok(())
        })
        .await
    }
}
