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

mod persistence;

pub use persistence::{KeeperError, Resumed, RowKind, SavedRow, StateKeeper};

use super::scenario::{Faults, PoolSpec, Scenario, Timing};
use super::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// A small deterministic generator (SplitMix64): enough for fault draws,
/// and it keeps a random-number crate out of the build.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    // Long because it lays out the whole simulated cloud from a scenario (nodes, flavors, instances, pools, volumes, services) in one place.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }
}

#[derive(Debug, Clone)]
struct Flavor {
    vcpus: u32,
    ram_mb: u64,
    disk_gb: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Host {
    vcpus: u32,
    ram_mb: u64,
    disk_gb: u64,
    enabled: bool,
    disabled_reason: Option<String>,
    availability_zone: String,
    aggregates: Vec<super::Aggregate>,
    powered_on: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum OpKind {
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
enum OpPhase {
    Running,
    Aborting { since: Instant },
    AwaitingConfirmation,
    Completed,
    Aborted,
    Failed(String),
}

#[derive(Debug, Clone)]
struct Op {
    kind: OpKind,
    started: Instant,
    /// The wall clock at the start, for `find_migration`.
    started_at: chrono::DateTime<chrono::Utc>,
    duration: Duration,
    phase: OpPhase,
    /// Progress at which this operation fails, drawn when it starts.
    fails_at: Option<f64>,
    /// When the first abort request arrived (wall clock, for benchmarks
    /// that time a cancel across processes).
    abort_requested: Option<std::time::SystemTime>,
}

struct State {
    flavors: HashMap<String, Flavor>,
    hosts: BTreeMap<String, Host>,
    instances: BTreeMap<String, Instance>,
    volumes: BTreeMap<String, Volume>,
    pools: Vec<PoolSpec>,
    ops: HashMap<String, Op>,
    next_op: u64,
    rng: SplitMix64,
    timing: Timing,
    faults: Faults,
    /// The scenario's topology, to recognise rows saved from another one.
    fingerprint: String,
    /// What changed since the last save, for the keeper.
    dirty: BTreeSet<(RowKind, String)>,
    /// Numbers saves, so that a row is never replaced by an older one when
    /// two saves commit out of order.
    saves: u64,
}

pub struct SimulatedCloud {
    state: Mutex<State>,
    keeper: Option<Arc<dyn StateKeeper>>,
}

/// A stable UUID for a simulated host, derived from its name.
fn host_uuid(name: &str) -> String {
    let mut a = SplitMix64::new(0x5157_4154_4348_4552);
    let mut h = 0u64;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    let mut r = SplitMix64::new(h ^ a.next_u64());
    uuid::Uuid::from_u64_pair(r.next_u64(), r.next_u64()).to_string()
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn not_found(kind: &'static str, id: &str) -> CloudError {
    CloudError::NotFound {
        kind,
        id: id.to_string(),
    }
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
                    Flavor {
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

impl State {
    /// One call to the cloud's API: operations are brought up to now and,
    /// as a real API does now and then, the call may fail with a 503.
    fn call<R>(
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

    fn instance_mut(&mut self, uuid: &str) -> Option<&mut Instance> {
        let i = self.instances.get_mut(uuid)?;
        self.dirty.insert((RowKind::Instance, uuid.to_string()));
        Some(i)
    }

    /// A copy of a volume, or NotFound.
    fn volume(&self, uuid: &str) -> Result<Volume, CloudError> {
        self.volumes
            .get(uuid)
            .cloned()
            .ok_or_else(|| not_found("Volume", uuid))
    }

    fn volume_mut(&mut self, uuid: &str) -> Option<&mut Volume> {
        let v = self.volumes.get_mut(uuid)?;
        self.dirty.insert((RowKind::Volume, uuid.to_string()));
        Some(v)
    }

    fn host_mut(&mut self, name: &str) -> Option<&mut Host> {
        let h = self.hosts.get_mut(name)?;
        self.dirty.insert((RowKind::Host, name.to_string()));
        Some(h)
    }

    fn op_mut(&mut self, id: &str) -> Option<&mut Op> {
        let o = self.ops.get_mut(id)?;
        self.dirty.insert((RowKind::Operation, id.to_string()));
        Some(o)
    }

    /// Free capacity of a host, counting instances on it and claims of
    /// migrations heading to it.
    fn free(&self, host: &str) -> (i64, i64, i64) {
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

    fn fits(&self, host: &str, instance: &Instance) -> bool {
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

    fn pick_destination(&self, instance: &Instance) -> Option<String> {
        self.hosts
            .iter()
            .filter(|(name, h)| **name != instance.host && h.enabled && h.powered_on)
            .filter(|(name, _)| self.fits(name, instance))
            .max_by_key(|(name, _)| self.free(name).1)
            .map(|(name, _)| name.clone())
    }

    fn migration_target(
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
    fn start_migration(
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

    fn start_op(&mut self, kind: OpKind, duration: Duration) -> OperationId {
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

    fn set_instance_status(&mut self, uuid: &str, status: &str) {
        if let Some(i) = self.instance_mut(uuid) {
            i.status = status.to_string();
        }
    }

    fn advance_all(&mut self, now: Instant) {
        let ids: Vec<String> = self.ops.keys().cloned().collect();
        for id in ids {
            self.advance(&id, now);
        }
    }

    /// Brings one operation up to `now`, applying its effect when it ends.
    fn advance(&mut self, id: &str, now: Instant) {
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
fn phase_state(o: &Op, now: Instant) -> OperationState {
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

fn progress_of(op: &Op, now: Instant) -> f64 {
    if op.duration.is_zero() {
        return 1.0;
    }
    (now.duration_since(op.started).as_secs_f64() / op.duration.as_secs_f64()).min(1.0)
}

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

    async fn flavors(&self) -> Result<Vec<super::Flavor>, CloudError> {
        self.with_state(|st| {
            let mut out: Vec<super::Flavor> = st
                .flavors
                .iter()
                .map(|(name, f)| super::Flavor {
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

#[cfg(test)]
mod tests {
    use super::*;

    const VM: &str = "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001";

    #[tokio::test(start_paused = true)]
    async fn a_live_migration_moves_the_instance_when_it_completes() {
        let cloud = SimulatedCloud::new(&Scenario::demo());
        let op = cloud.live_migrate(VM, Some("compute-2")).await.unwrap();
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(matches!(
            cloud.operation(&op).await.unwrap(),
            OperationState::Running { .. }
        ));
        assert_eq!(cloud.instance(VM).await.unwrap().unwrap().host, "compute-1");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            cloud.operation(&op).await.unwrap(),
            OperationState::Completed
        );
        assert_eq!(cloud.instance(VM).await.unwrap().unwrap().host, "compute-2");
    }

    #[tokio::test(start_paused = true)]
    async fn an_aborted_live_migration_leaves_the_instance_on_its_source() {
        let cloud = SimulatedCloud::new(&Scenario::demo());
        let op = cloud.live_migrate(VM, Some("compute-2")).await.unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        cloud.abort(&op).await.unwrap();
        assert_eq!(
            cloud.operation(&op).await.unwrap(),
            OperationState::Aborting
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(cloud.operation(&op).await.unwrap(), OperationState::Aborted);
        let vm = cloud.instance(VM).await.unwrap().unwrap();
        assert_eq!(
            (vm.host.as_str(), vm.status.as_str()),
            ("compute-1", "ACTIVE")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_abort_past_the_point_of_no_return_is_refused_and_the_migration_completes() {
        let cloud = SimulatedCloud::new(&Scenario::demo());
        let op = cloud.live_migrate(VM, Some("compute-2")).await.unwrap();
        tokio::time::advance(Duration::from_millis(7_600)).await;
        let err = cloud.abort(&op).await.unwrap_err();
        assert!(matches!(err, CloudError::PastPointOfNoReturn(_)), "{err}");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            cloud.operation(&op).await.unwrap(),
            OperationState::Completed
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_without_capacity_is_refused() {
        let mut s = Scenario::demo();
        s.hosts[2].vcpus = 4; // compute-3 already runs 2 vcpus
        let cloud = SimulatedCloud::new(&s);
        let err = cloud
            .live_migrate("6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0003", Some("compute-3"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("capacity"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reverted_resize_restores_the_old_flavor() {
        let cloud = SimulatedCloud::new(&Scenario::demo());
        let op = cloud.resize(VM, "m1.medium").await.unwrap();
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(
            cloud.operation(&op).await.unwrap(),
            OperationState::AwaitingConfirmation
        );
        cloud.revert(&op).await.unwrap();
        assert_eq!(
            cloud.instance(VM).await.unwrap().unwrap().flavor,
            "m1.small"
        );
    }

    #[test]
    fn the_same_seed_draws_the_same_faults() {
        let draws = |seed| {
            let mut r = SplitMix64::new(seed);
            (0..8).map(|_| r.chance(0.5)).collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
    }
}
