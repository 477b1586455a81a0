//! The simulated cloud's state: hosts, instances, volumes and operations,
//! the capacity check, and how operations advance with time.

use crate::rng::SplitMix64;
use crate::scenario::{Faults, PoolSpec, Timing};
use crate::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub(super) struct FlavorSize {
    pub(super) vcpus: u32,
    pub(super) ram_mb: u64,
    pub(super) disk_gb: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Host {
    pub(super) vcpus: u32,
    pub(super) ram_mb: u64,
    pub(super) disk_gb: u64,
    pub(super) enabled: bool,
    pub(super) disabled_reason: Option<String>,
    pub(super) availability_zone: String,
    pub(super) aggregates: Vec<Aggregate>,
    pub(super) powered_on: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum OpKind {
    LiveMigration {
        instance: String,
        source: String,
        dest: String,
    },
    ColdMigration {
        instance: String,
        source: String,
        dest: String,
    },
    Resize {
        instance: String,
        old_flavor: String,
        new_flavor: String,
    },
    VolumeMigration {
        volume: String,
        source: String,
        dest: String,
        /// A retype that needs a move: the type the volume gets on arrival.
        #[serde(default)]
        new_type: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub(super) enum OpPhase {
    Running,
    Aborting { since: Instant },
    AwaitingConfirmation,
    Completed,
    Aborted,
    Failed(String),
}

#[derive(Debug, Clone)]
pub(super) struct Op {
    pub(super) kind: OpKind,
    pub(super) started: Instant,
    /// The wall clock at the start, for `find_migration`.
    pub(super) started_at: chrono::DateTime<chrono::Utc>,
    pub(super) duration: Duration,
    pub(super) phase: OpPhase,
    /// Progress at which this operation fails, drawn when it starts.
    pub(super) fails_at: Option<f64>,
    /// When the first abort request arrived (wall clock, for benchmarks
    /// that time a cancel across processes).
    pub(super) abort_requested: Option<std::time::SystemTime>,
}

pub(super) struct State {
    pub(super) flavors: HashMap<String, FlavorSize>,
    pub(super) hosts: BTreeMap<String, Host>,
    pub(super) instances: BTreeMap<String, Instance>,
    pub(super) volumes: BTreeMap<String, Volume>,
    pub(super) pools: Vec<PoolSpec>,
    pub(super) ops: HashMap<String, Op>,
    pub(super) next_op: u64,
    pub(super) rng: SplitMix64,
    pub(super) timing: Timing,
    pub(super) faults: Faults,
    /// The scenario's topology, to recognise rows saved from another one.
    pub(super) fingerprint: String,
    /// What changed since the last save, for the keeper.
    pub(super) dirty: BTreeSet<(RowKind, String)>,
    /// Numbers saves, so that a row is never replaced by an older one when
    /// two saves commit out of order.
    pub(super) saves: u64,
}

/// A stable UUID for a simulated host, derived from its name.
pub(super) fn host_uuid(name: &str) -> String {
    let mut a = SplitMix64::new(0x5157_4154_4348_4552);
    let mut h = 0u64;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    let mut r = SplitMix64::new(h ^ a.next_u64());
    uuid::Uuid::from_u64_pair(r.next_u64(), r.next_u64()).to_string()
}

pub(super) fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

pub(super) fn not_found(kind: &'static str, id: &str) -> CloudError {
    CloudError::NotFound {
        kind,
        id: id.to_string(),
    }
}

impl State {
    /// One call to the cloud's API: operations are brought up to now and,
    /// as a real API does now and then, the call may fail with a 503.
    pub(super) fn call<R>(
        &mut self,
        f: impl FnOnce(&mut State) -> Result<R, CloudError>,
    ) -> Result<R, CloudError> {
        self.advance_all(Instant::now());
        let rate = self.faults.transient_error_rate;
        if self.rng.chance(rate) {
            return Err(CloudError::Transient("simulated API error 503".into()));
        }
        f(self)
    }

    pub(super) fn instance_mut(&mut self, uuid: &str) -> Option<&mut Instance> {
        let i = self.instances.get_mut(uuid)?;
        self.dirty.insert((RowKind::Instance, uuid.to_string()));
        Some(i)
    }

    /// A copy of a volume, or NotFound.
    pub(super) fn volume(&self, uuid: &str) -> Result<Volume, CloudError> {
        self.volumes
            .get(uuid)
            .cloned()
            .ok_or_else(|| not_found("Volume", uuid))
    }

    pub(super) fn volume_mut(&mut self, uuid: &str) -> Option<&mut Volume> {
        let v = self.volumes.get_mut(uuid)?;
        self.dirty.insert((RowKind::Volume, uuid.to_string()));
        Some(v)
    }

    pub(super) fn host_mut(&mut self, name: &str) -> Option<&mut Host> {
        let h = self.hosts.get_mut(name)?;
        self.dirty.insert((RowKind::Host, name.to_string()));
        Some(h)
    }

    pub(super) fn op_mut(&mut self, id: &str) -> Option<&mut Op> {
        let o = self.ops.get_mut(id)?;
        self.dirty.insert((RowKind::Operation, id.to_string()));
        Some(o)
    }

    /// Free capacity of a host, counting instances on it and claims of
    /// migrations heading to it.
    pub(super) fn free(&self, host: &str) -> (i64, i64, i64) {
        let h = &self.hosts[host];
        let (mut c, mut r, mut d) = (h.vcpus as i64, h.ram_mb as i64, h.disk_gb as i64);
        // A server booted from a volume uses no local disk.
        let mut take = |i: &Instance| {
            if let Some(f) = self.flavors.get(&i.flavor) {
                c -= f.vcpus as i64;
                r -= f.ram_mb as i64;
                d -= if i.boot_from_volume {
                    0
                } else {
                    f.disk_gb as i64
                };
            }
        };
        for i in self.instances.values().filter(|i| i.host == host) {
            take(i);
        }
        for op in self.ops.values() {
            if !matches!(op.phase, OpPhase::Running | OpPhase::Aborting { .. }) {
                continue;
            }
            match &op.kind {
                OpKind::LiveMigration { instance, dest, .. }
                | OpKind::ColdMigration { instance, dest, .. }
                    if dest == host =>
                {
                    take(&self.instances[instance]);
                }
                _ => {}
            }
        }
        (c, r, d)
    }

    pub(super) fn fits(&self, host: &str, instance: &Instance) -> bool {
        let Some(f) = self.flavors.get(&instance.flavor) else {
            return false;
        };
        let disk = if instance.boot_from_volume {
            0
        } else {
            f.disk_gb as i64
        };
        let (c, r, d) = self.free(host);
        c >= f.vcpus as i64 && r >= f.ram_mb as i64 && d >= disk
    }

    pub(super) fn pick_destination(&self, instance: &Instance) -> Option<String> {
        self.hosts
            .iter()
            .filter(|(name, h)| **name != instance.host && h.enabled && h.powered_on)
            .filter(|(name, _)| self.fits(name, instance))
            .max_by_key(|(name, _)| self.free(name).1)
            .map(|(name, _)| name.clone())
    }

    pub(super) fn migration_target(
        &self,
        uuid: &str,
        destination: Option<&str>,
    ) -> Result<(Instance, String), CloudError> {
        let inst = self
            .instances
            .get(uuid)
            .ok_or_else(|| not_found("Instance", uuid))?
            .clone();
        if inst.status != "ACTIVE" {
            return Err(CloudError::Refused(format!(
                "instance {} is {}, not ACTIVE",
                inst.name, inst.status
            )));
        }
        let dest = match destination {
            Some(d) => {
                let host = self.hosts.get(d).ok_or_else(|| not_found("Host", d))?;
                if d == inst.host {
                    return Err(CloudError::Refused(format!(
                        "instance {} is already on {d}",
                        inst.name
                    )));
                }
                if !host.enabled {
                    return Err(CloudError::Refused(format!("host {d} is disabled")));
                }
                if !host.powered_on {
                    return Err(CloudError::Refused(format!("host {d} is powered off")));
                }
                if !self.fits(d, &inst) {
                    return Err(CloudError::Refused(format!(
                        "host {d} has not enough capacity for {} ({})",
                        inst.name, inst.flavor
                    )));
                }
                d.to_string()
            }
            None => self.pick_destination(&inst).ok_or_else(|| {
                CloudError::Refused(format!("no host has capacity for {}", inst.name))
            })?,
        };
        Ok((inst, dest))
    }

    /// Starts a live or cold migration after the checks both share.
    pub(super) fn start_migration(
        &mut self,
        instance: &str,
        destination: Option<&str>,
        live: bool,
    ) -> Result<OperationId, CloudError> {
        let (inst, dest) = self.migration_target(instance, destination)?;
        let (source, uuid) = (inst.host, inst.uuid);
        let (status, kind, secs_) = if live {
            (
                "MIGRATING",
                OpKind::LiveMigration {
                    instance: uuid,
                    source,
                    dest,
                },
                self.timing.live_migration_secs,
            )
        } else {
            (
                "RESIZE",
                OpKind::ColdMigration {
                    instance: uuid,
                    source,
                    dest,
                },
                self.timing.cold_migration_secs,
            )
        };
        self.set_instance_status(instance, status);
        Ok(self.start_op(kind, secs(secs_)))
    }

    pub(super) fn start_op(&mut self, kind: OpKind, duration: Duration) -> OperationId {
        let fails_at = if self.rng.chance(self.faults.migration_failure_rate) {
            Some(0.1 + 0.8 * self.rng.next_f64())
        } else {
            None
        };
        let id = format!("op-{}", self.next_op);
        self.next_op += 1;
        self.dirty.insert((RowKind::Operation, id.clone()));
        self.ops.insert(
            id.clone(),
            Op {
                kind,
                started: Instant::now(),
                started_at: chrono::Utc::now(),
                duration,
                phase: OpPhase::Running,
                fails_at,
                abort_requested: None,
            },
        );
        id
    }

    pub(super) fn set_instance_status(&mut self, uuid: &str, status: &str) {
        if let Some(i) = self.instance_mut(uuid) {
            i.status = status.to_string();
        }
    }

    pub(super) fn advance_all(&mut self, now: Instant) {
        let ids: Vec<String> = self.ops.keys().cloned().collect();
        for id in ids {
            self.advance(&id, now);
        }
    }

    /// Brings one operation up to `now`, applying its effect when it ends.
    // Long because one arm per kind and phase of operation, each applying its own effect.
    pub(super) fn advance(&mut self, id: &str, now: Instant) {
        let Some(op) = self.ops.get(id).cloned() else {
            return;
        };
        let abort_time = secs(self.timing.abort_secs);
        let progress = progress_of(&op, now);
        let next = match &op.phase {
            OpPhase::Running => match op.fails_at {
                Some(f) if progress >= f => Some(OpPhase::Failed(format!(
                    "simulated migration failure at {:.0}%",
                    f * 100.0
                ))),
                _ if progress >= 1.0 => Some(match op.kind {
                    OpKind::LiveMigration { .. } | OpKind::VolumeMigration { .. } => {
                        OpPhase::Completed
                    }
                    _ => OpPhase::AwaitingConfirmation,
                }),
                _ => None,
            },
            OpPhase::Aborting { since } if now.duration_since(*since) >= abort_time => {
                Some(OpPhase::Aborted)
            }
            _ => None,
        };
        let Some(next) = next else { return };
        match (&op.kind, &next) {
            (OpKind::LiveMigration { instance, dest, .. }, OpPhase::Completed) => {
                if let Some(i) = self.instance_mut(instance) {
                    i.host = dest.clone();
                    i.status = "ACTIVE".into();
                }
            }
            (OpKind::ColdMigration { instance, dest, .. }, OpPhase::AwaitingConfirmation) => {
                if let Some(i) = self.instance_mut(instance) {
                    i.host = dest.clone();
                    i.status = "VERIFY_RESIZE".into();
                }
            }
            (
                OpKind::Resize {
                    instance,
                    new_flavor,
                    ..
                },
                OpPhase::AwaitingConfirmation,
            ) => {
                if let Some(i) = self.instance_mut(instance) {
                    i.flavor = new_flavor.clone();
                    i.status = "VERIFY_RESIZE".into();
                }
            }
            (
                OpKind::VolumeMigration {
                    volume,
                    dest,
                    new_type,
                    ..
                },
                OpPhase::Completed,
            ) => {
                if let Some(v) = self.volume_mut(volume) {
                    v.pool = dest.clone();
                    if new_type.is_some() {
                        v.volume_type = new_type.clone();
                    }
                    v.status = if v.attached_to.is_some() {
                        "in-use"
                    } else {
                        "available"
                    }
                    .into();
                }
            }
            (OpKind::VolumeMigration { volume, .. }, OpPhase::Failed(_)) => {
                if let Some(v) = self.volume_mut(volume) {
                    v.status = "error".into();
                }
            }
            (
                OpKind::LiveMigration { instance, .. }
                | OpKind::ColdMigration { instance, .. }
                | OpKind::Resize { instance, .. },
                OpPhase::Aborted | OpPhase::Failed(_),
            ) => {
                let instance = instance.clone();
                self.set_instance_status(&instance, "ACTIVE");
            }
            _ => {}
        }
        if let Some(op) = self.op_mut(id) {
            op.phase = next;
        }
    }
}

/// What the cloud says of an operation at `now`.
pub(super) fn phase_state(o: &Op, now: Instant) -> OperationState {
    match &o.phase {
        OpPhase::Running => {
            let p = progress_of(o, now);
            let detail = match &o.kind {
                OpKind::LiveMigration { source, dest, .. } => {
                    format!(
                        "live migration {source} -> {dest}: {:.0}% of memory copied",
                        p * 100.0
                    )
                }
                OpKind::ColdMigration { source, dest, .. } => {
                    format!("cold migration {source} -> {dest}: {:.0}%", p * 100.0)
                }
                OpKind::Resize {
                    old_flavor,
                    new_flavor,
                    ..
                } => format!("resize {old_flavor} -> {new_flavor}: {:.0}%", p * 100.0),
                OpKind::VolumeMigration { source, dest, .. } => {
                    format!("volume migration {source} -> {dest}: {:.0}%", p * 100.0)
                }
            };
            OperationState::Running {
                progress: p,
                detail,
            }
        }
        OpPhase::Aborting { .. } => OperationState::Aborting,
        OpPhase::AwaitingConfirmation => OperationState::AwaitingConfirmation,
        OpPhase::Completed => OperationState::Completed,
        OpPhase::Aborted => OperationState::Aborted,
        OpPhase::Failed(m) => OperationState::Failed(m.clone()),
    }
}

pub(super) fn progress_of(op: &Op, now: Instant) -> f64 {
    if op.duration.is_zero() {
        return 1.0;
    }
    (now.duration_since(op.started).as_secs_f64() / op.duration.as_secs_f64()).min(1.0)
}

/// What a saved row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RowKind {
    /// The cloud's counters and the scenario it was built from.
    Meta,
    Host,
    Instance,
    Volume,
    Operation,
}

impl RowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RowKind::Meta => "meta",
            RowKind::Host => "host",
            RowKind::Instance => "instance",
            RowKind::Volume => "volume",
            RowKind::Operation => "operation",
        }
    }

    pub fn parse(s: &str) -> Option<RowKind> {
        [
            RowKind::Meta,
            RowKind::Host,
            RowKind::Instance,
            RowKind::Volume,
            RowKind::Operation,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}
