//! A simulated cloud: a real implementation of [`Cloud`], not a test double.
//!
//! Operations advance with time (tokio's clock, so tests can pause it):
//! progress is computed from the elapsed time whenever someone looks, and
//! the effect (an instance changing host, a flavor changing) is applied at
//! that moment. Capacity is claimed on the destination when a migration
//! starts, as Nova's scheduler does, and released if it is aborted or fails.
//! Faults are drawn from a seeded generator, so a seed replays the same run.
//!
//! Given a [`StateKeeper`], the cloud saves what each change touched before
//! the call that made it returns, and starts from what was saved: a
//! restarted watcherd finds instances where they were and migrations still
//! running (see [`persistence`]).

mod cloud;
mod persistence;
mod state;
#[cfg(test)]
mod tests;

pub use persistence::{KeeperError, Resumed, SavedRow, StateKeeper};
pub use state::RowKind;

use crate::rng::SplitMix64;
use crate::scenario::Scenario;
use crate::*;
use state::*;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

pub struct SimulatedCloud {
    state: Mutex<State>,
    keeper: Option<Arc<dyn StateKeeper>>,
}

/// One operation as the sim-cloud's control API lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OperationInfo {
    pub id: String,
    pub kind: String,
    /// The instance or volume it moves.
    pub resource: String,
    pub state: OperationState,
    /// Seconds since the Unix epoch when the first abort request arrived.
    pub abort_requested_at: Option<f64>,
}

impl SimulatedCloud {
    /// Every operation the cloud knows, oldest first (for tests and the
    /// sim-cloud's control API).
    pub fn operations(&self) -> Vec<OperationInfo> {
        let mut st = self.state.lock().expect("simulated cloud lock");
        st.advance_all(Instant::now());
        let mut out: Vec<OperationInfo> = st
            .ops
            .iter()
            .map(|(id, op)| {
                let (kind, resource) = match &op.kind {
                    OpKind::LiveMigration { instance, .. } => ("live_migration", instance),
                    OpKind::ColdMigration { instance, .. } => ("cold_migration", instance),
                    OpKind::Resize { instance, .. } => ("resize", instance),
                    OpKind::VolumeMigration { volume, .. } => ("volume_migration", volume),
                };
                OperationInfo {
                    id: id.clone(),
                    kind: kind.into(),
                    resource: resource.clone(),
                    state: phase_state(op, Instant::now()),
                    abort_requested_at: op.abort_requested.and_then(|t| {
                        t.duration_since(std::time::UNIX_EPOCH)
                            .ok()
                            .map(|d| d.as_secs_f64())
                    }),
                }
            })
            .collect();
        out.sort_by_key(|o| o.id.trim_start_matches("op-").parse::<u64>().unwrap_or(0));
        out
    }

    /// Makes a running operation fail now, as a hypervisor error would
    /// (tests of recovery use it while watcherd is down).
    pub fn fail_operation(&self, op: &str) -> Result<(), CloudError> {
        let mut st = self.state.lock().expect("simulated cloud lock");
        let now = Instant::now();
        st.advance(op, now);
        let o = st.op_mut(op).ok_or_else(|| not_found("Operation", op))?;
        if !matches!(o.phase, OpPhase::Running) {
            return Err(CloudError::AlreadyFinished(op.to_string()));
        }
        o.fails_at = Some(progress_of(o, now));
        st.advance(op, now);
        Ok(())
    }

    pub fn new(scenario: &Scenario) -> SimulatedCloud {
        let flavors = scenario
            .flavors
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    FlavorSize {
                        vcpus: f.vcpus,
                        ram_mb: f.ram_mb,
                        disk_gb: f.disk_gb,
                    },
                )
            })
            .collect();
        let mut aggregate_ids: Vec<&String> = vec![];
        for a in scenario.hosts.iter().flat_map(|h| &h.aggregates) {
            if !aggregate_ids.contains(&a) {
                aggregate_ids.push(a);
            }
        }
        let hosts = scenario
            .hosts
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    Host {
                        vcpus: h.vcpus,
                        ram_mb: h.ram_mb,
                        disk_gb: h.disk_gb,
                        enabled: h.enabled,
                        disabled_reason: None,
                        availability_zone: h.availability_zone.clone(),
                        aggregates: h
                            .aggregates
                            .iter()
                            .map(|name| super::Aggregate {
                                id: aggregate_ids
                                    .iter()
                                    .position(|a| *a == name)
                                    .map_or(0, |i| i as i64 + 1),
                                name: name.clone(),
                            })
                            .collect(),
                        powered_on: h.powered_on,
                    },
                )
            })
            .collect();
        let instances = scenario
            .instances
            .iter()
            .map(|i| {
                (
                    i.uuid.clone(),
                    Instance {
                        uuid: i.uuid.clone(),
                        name: i.name.clone(),
                        host: i.host.clone(),
                        flavor: i.flavor.clone(),
                        status: "ACTIVE".into(),
                        project_id: i.project_id.clone(),
                        metadata: i.metadata.clone(),
                        boot_from_volume: i.boot_from_volume,
                    },
                )
            })
            .collect();
        let volumes = scenario
            .volumes
            .iter()
            .map(|v| {
                (
                    v.uuid.clone(),
                    Volume {
                        uuid: v.uuid.clone(),
                        name: v.name.clone(),
                        pool: v.pool.clone(),
                        size_gb: v.size_gb,
                        status: if v.attached_to.is_some() {
                            "in-use"
                        } else {
                            "available"
                        }
                        .into(),
                        attached_to: v.attached_to.clone(),
                        project_id: v.project_id.clone(),
                        volume_type: v.volume_type.clone(),
                    },
                )
            })
            .collect();
        SimulatedCloud {
            state: Mutex::new(State {
                flavors,
                hosts,
                instances,
                volumes,
                pools: scenario.pools.clone(),
                ops: HashMap::new(),
                next_op: 1,
                rng: SplitMix64::new(scenario.seed),
                timing: scenario.timing.clone(),
                faults: scenario.faults.clone(),
                fingerprint: persistence::fingerprint(scenario),
                dirty: BTreeSet::new(),
                saves: 0,
            }),
            keeper: None,
        }
    }

    fn with_state<R>(
        &self,
        f: impl FnOnce(&mut State) -> Result<R, CloudError>,
    ) -> Result<R, CloudError> {
        self.state.lock().expect("simulated cloud lock").call(f)
    }

    /// Like `with_state`, for a call that changes the cloud: what it
    /// touched is saved with the keeper before the call answers, so an
    /// operation id handed out is one a restarted watcherd will find.
    async fn mutate<R>(
        &self,
        f: impl FnOnce(&mut State) -> Result<R, CloudError>,
    ) -> Result<R, CloudError> {
        let (result, save) = {
            let mut st = self.state.lock().expect("simulated cloud lock");
            let result = st.call(f);
            let save = match &self.keeper {
                Some(keeper) => Some((keeper.clone(), st.take_changes())),
                // Nothing keeps the rows: the marks would only pile up.
                None => {
                    st.dirty.clear();
                    None
                }
            };
            (result, save)
        };
        if let Some((keeper, (saves, rows))) = save {
            let touched: Vec<(RowKind, String)> =
                rows.iter().map(|r| (r.kind, r.id.clone())).collect();
            if let Err(e) = keeper.save(saves, rows).await {
                // The change stands in memory; saving it again with the
                // next change keeps the stored cloud catching up.
                tracing::warn!(error = %e, "the simulated cloud could not save its state");
                let mut st = self.state.lock().expect("simulated cloud lock");
                st.dirty.extend(touched);
            }
        }
        result
    }
}
