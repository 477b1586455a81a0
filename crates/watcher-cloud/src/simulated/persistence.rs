//! The simulated cloud's state kept outside the process, row by row.
//!
//! Each change saves only what it touched (a host, an instance, a volume,
//! an operation) and the cloud's counters, so the cost of a save does not
//! grow with the number of operations run. Time-driven effects (a migration
//! completing) are saved with the next change; a restart that finds an
//! operation saved as running recomputes it from the wall clock and reaches
//! the same end, as the real cloud would have while watcherd was down.

use super::state::{Host, Op, OpKind, OpPhase, RowKind, State};
use super::SimulatedCloud;
use crate::scenario::Scenario;
use crate::{CloudError, Instance, Volume};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// One saved piece of the cloud; `body` is JSON the cloud alone reads.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedRow {
    pub kind: RowKind,
    pub id: String,
    pub body: String,
}

/// Where the embedded simulated cloud keeps its state (watcherd's database).
#[async_trait]
pub trait StateKeeper: Send + Sync {
    /// Every row saved so far.
    async fn load(&self) -> Result<Vec<SavedRow>, KeeperError>;
    /// Inserts or replaces `rows` in one transaction. A stored row is only
    /// replaced by one of a higher `save_no`: saves may commit out of order.
    async fn save(&self, save_no: u64, rows: Vec<SavedRow>) -> Result<(), KeeperError>;
    /// Forgets every row: the cloud starts again from its scenario.
    async fn clear(&self) -> Result<(), KeeperError>;
}

#[derive(Debug, thiserror::Error)]
pub enum KeeperError {
    /// The keeper's storage failed (the database message).
    #[error("{0}")]
    Storage(String),
    #[error(
        "the simulated cloud's saved {kind} {id} cannot be read ({reason}); \
         `watcherd reset-sim-cloud` starts it again from its scenario"
    )]
    Unreadable {
        kind: &'static str,
        id: String,
        reason: String,
    },
}

impl From<KeeperError> for CloudError {
    fn from(e: KeeperError) -> CloudError {
        CloudError::Transient(e.to_string())
    }
}

/// What [`SimulatedCloud::resume`] started from.
#[derive(Debug, Clone, PartialEq)]
pub enum Resumed {
    /// Nothing saved: the scenario as written.
    Fresh,
    /// The saved cloud; `running` operations were still under way when it
    /// was saved (they go on from the wall clock).
    Saved { operations: usize, running: usize },
    /// The saved cloud came from another scenario (its hosts, instances,
    /// volumes or flavors changed): it was forgotten for the new one.
    ScenarioChanged,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    scenario: String,
    next_op: u64,
    rng: u64,
    saves: u64,
}

/// An operation with wall-clock times in place of the process's clock.
#[derive(Serialize, Deserialize)]
struct SavedOp {
    #[serde(flatten)]
    kind: OpKind,
    started_epoch: f64,
    started_at: chrono::DateTime<chrono::Utc>,
    duration_secs: f64,
    phase: SavedPhase,
    fails_at: Option<f64>,
    abort_requested_epoch: Option<f64>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
enum SavedPhase {
    Running,
    Aborting { since_epoch: f64 },
    AwaitingConfirmation,
    Completed,
    Aborted,
    Failed { message: String },
}

fn epoch_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The wall-clock time of a moment of the process's clock.
fn to_epoch(t: Instant) -> f64 {
    epoch_secs(SystemTime::now()) - Instant::now().saturating_duration_since(t).as_secs_f64()
}

/// The process's clock at a wall-clock time in the past. A time from before
/// this machine booted cannot be represented: the oldest representable one
/// is taken, which is just as far past any operation's end.
fn from_epoch(epoch: f64) -> Instant {
    let now = Instant::now();
    let mut ago = Duration::from_secs_f64((epoch_secs(SystemTime::now()) - epoch).max(0.0));
    loop {
        if let Some(t) = now.checked_sub(ago) {
            return t;
        }
        ago /= 2;
    }
}

/// A fingerprint of what the cloud's rows are built from: another
/// topology makes saved rows meaningless, other timings or faults do not.
pub(super) fn fingerprint(scenario: &Scenario) -> String {
    let topology = serde_json::json!([
        scenario.flavors,
        scenario.hosts,
        scenario.instances,
        scenario.pools,
        scenario.volumes
    ]);
    // FNV-1a: stable across builds, unlike the standard library's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topology.to_string().bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn body<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("simulated cloud rows serialize")
}

impl State {
    /// The rows changed since the last call, with the counters, numbered.
    pub(super) fn take_changes(&mut self) -> (u64, Vec<SavedRow>) {
        self.saves += 1;
        let mut rows = vec![SavedRow {
            kind: RowKind::Meta,
            id: String::new(),
            body: body(&Meta {
                scenario: self.fingerprint.clone(),
                next_op: self.next_op,
                rng: self.rng.0,
                saves: self.saves,
            }),
        }];
        for (kind, id) in std::mem::take(&mut self.dirty) {
            let body = match kind {
                RowKind::Meta => continue,
                RowKind::Host => self.hosts.get(&id).map(body),
                RowKind::Instance => self.instances.get(&id).map(body),
                RowKind::Volume => self.volumes.get(&id).map(body),
                RowKind::Operation => self.ops.get(&id).map(|o| body(&saved_op(o))),
            };
            if let Some(body) = body {
                rows.push(SavedRow { kind, id, body });
            }
        }
        (self.saves, rows)
    }

    /// Puts saved rows over the scenario's state.
    fn apply(&mut self, rows: Vec<SavedRow>) -> Result<Resumed, KeeperError> {
        let Some(meta) = rows.iter().find(|r| r.kind == RowKind::Meta) else {
            return Ok(Resumed::Fresh);
        };
        let meta: Meta = parse(meta)?;
        if meta.scenario != self.fingerprint {
            return Ok(Resumed::ScenarioChanged);
        }
        self.next_op = meta.next_op;
        self.rng.0 = meta.rng;
        self.saves = meta.saves;
        for row in &rows {
            match row.kind {
                RowKind::Meta => {}
                RowKind::Host => {
                    self.hosts.insert(row.id.clone(), parse::<Host>(row)?);
                }
                RowKind::Instance => {
                    self.instances
                        .insert(row.id.clone(), parse::<Instance>(row)?);
                }
                RowKind::Volume => {
                    self.volumes.insert(row.id.clone(), parse::<Volume>(row)?);
                }
                RowKind::Operation => {
                    self.ops.insert(row.id.clone(), op_from(parse(row)?));
                }
            }
        }
        let running = self
            .ops
            .values()
            .filter(|o| matches!(o.phase, OpPhase::Running | OpPhase::Aborting { .. }))
            .count();
        Ok(Resumed::Saved {
            operations: self.ops.len(),
            running,
        })
    }
}

fn parse<T: serde::de::DeserializeOwned>(row: &SavedRow) -> Result<T, KeeperError> {
    serde_json::from_str(&row.body).map_err(|e| KeeperError::Unreadable {
        kind: row.kind.as_str(),
        id: row.id.clone(),
        reason: e.to_string(),
    })
}

fn saved_op(o: &Op) -> SavedOp {
    SavedOp {
        kind: o.kind.clone(),
        started_epoch: to_epoch(o.started),
        started_at: o.started_at,
        duration_secs: o.duration.as_secs_f64(),
        phase: match &o.phase {
            OpPhase::Running => SavedPhase::Running,
            OpPhase::Aborting { since } => SavedPhase::Aborting {
                since_epoch: to_epoch(*since),
            },
            OpPhase::AwaitingConfirmation => SavedPhase::AwaitingConfirmation,
            OpPhase::Completed => SavedPhase::Completed,
            OpPhase::Aborted => SavedPhase::Aborted,
            OpPhase::Failed(m) => SavedPhase::Failed { message: m.clone() },
        },
        fails_at: o.fails_at,
        abort_requested_epoch: o.abort_requested.map(epoch_secs),
    }
}

fn op_from(s: SavedOp) -> Op {
    Op {
        kind: s.kind,
        started: from_epoch(s.started_epoch),
        started_at: s.started_at,
        duration: Duration::from_secs_f64(s.duration_secs.max(0.0)),
        phase: match s.phase {
            SavedPhase::Running => OpPhase::Running,
            SavedPhase::Aborting { since_epoch } => OpPhase::Aborting {
                since: from_epoch(since_epoch),
            },
            SavedPhase::AwaitingConfirmation => OpPhase::AwaitingConfirmation,
            SavedPhase::Completed => OpPhase::Completed,
            SavedPhase::Aborted => OpPhase::Aborted,
            SavedPhase::Failed { message } => OpPhase::Failed(message),
        },
        fails_at: s.fails_at,
        abort_requested: s
            .abort_requested_epoch
            .map(|e| UNIX_EPOCH + Duration::from_secs_f64(e.max(0.0))),
    }
}

impl SimulatedCloud {
    /// The cloud of `scenario` as `keeper` last saved it, saving every
    /// change from now on. Saved rows of another scenario are forgotten.
    pub async fn resume(
        scenario: &Scenario,
        keeper: Arc<dyn StateKeeper>,
    ) -> Result<(SimulatedCloud, Resumed), KeeperError> {
        let mut cloud = SimulatedCloud::new(scenario);
        let rows = keeper.load().await?;
        let resumed = cloud
            .state
            .get_mut()
            .expect("simulated cloud lock")
            .apply(rows)?;
        if resumed == Resumed::ScenarioChanged {
            keeper.clear().await?;
        }
        cloud.keeper = Some(keeper);
        Ok((cloud, resumed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cloud, OperationState};
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    const VM: &str = "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001";

    /// A keeper in memory, with the same "newer save wins" rule as the
    /// database's.
    #[derive(Default)]
    struct Memory(Mutex<BTreeMap<(RowKind, String), (u64, String)>>);

    #[async_trait]
    impl StateKeeper for Memory {
        async fn load(&self) -> Result<Vec<SavedRow>, KeeperError> {
            Ok(self
                .0
                .lock()
                .unwrap()
                .iter()
                .map(|((kind, id), (_, body))| SavedRow {
                    kind: *kind,
                    id: id.clone(),
                    body: body.clone(),
                })
                .collect())
        }
        async fn save(&self, save_no: u64, rows: Vec<SavedRow>) -> Result<(), KeeperError> {
            let mut m = self.0.lock().unwrap();
            for r in rows {
                let slot = m.entry((r.kind, r.id)).or_insert((0, String::new()));
                if save_no > slot.0 {
                    *slot = (save_no, r.body);
                }
            }
            Ok(())
        }
        async fn clear(&self) -> Result<(), KeeperError> {
            self.0.lock().unwrap().clear();
            Ok(())
        }
    }

    fn slow_demo() -> Scenario {
        let mut s = Scenario::demo();
        s.timing.live_migration_secs = 3600.0;
        s
    }

    /// A keeper holding the slow demo cloud with web-1's migration started;
    /// the operation's id.
    async fn saved_mid_migration() -> (Arc<Memory>, String) {
        let keeper = Arc::new(Memory::default());
        let (cloud, _) = SimulatedCloud::resume(&slow_demo(), keeper.clone())
            .await
            .unwrap();
        let op = cloud.live_migrate(VM, Some("compute-2")).await.unwrap();
        (keeper, op)
    }

    #[tokio::test]
    async fn a_restarted_cloud_finds_its_migration_still_running_and_its_host_disabled() {
        let keeper = Arc::new(Memory::default());
        let (cloud, resumed) = SimulatedCloud::resume(&slow_demo(), keeper.clone())
            .await
            .unwrap();
        assert_eq!(resumed, Resumed::Fresh);
        let op = cloud.live_migrate(VM, Some("compute-2")).await.unwrap();
        cloud
            .set_compute_service("compute-3", false, Some("maintenance"))
            .await
            .unwrap();
        drop(cloud);

        let (again, resumed) = SimulatedCloud::resume(&slow_demo(), keeper.clone())
            .await
            .unwrap();
        assert_eq!(
            resumed,
            Resumed::Saved {
                operations: 1,
                running: 1
            }
        );
        assert!(matches!(
            again.operation(&op).await.unwrap(),
            OperationState::Running { .. }
        ));
        let vm = again.instance(VM).await.unwrap().unwrap();
        assert_eq!(
            (vm.host.as_str(), vm.status.as_str()),
            ("compute-1", "MIGRATING")
        );
        let svc = again.compute_service("compute-3").await.unwrap().unwrap();
        assert_eq!(
            (svc.enabled, svc.disabled_reason.as_deref()),
            (false, Some("maintenance"))
        );
        // Operation ids go on from the saved counter, never reused.
        let next = again
            .live_migrate("6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0003", None)
            .await
            .unwrap();
        assert_ne!(next, op);
        again.abort(&op).await.unwrap();
        drop(again);

        let (third, _) = SimulatedCloud::resume(&slow_demo(), keeper).await.unwrap();
        assert!(matches!(
            third.operation(&op).await.unwrap(),
            OperationState::Aborting | OperationState::Aborted
        ));
    }

    #[tokio::test]
    async fn a_migration_that_ended_while_stopped_has_moved_its_instance() {
        let (keeper, op) = saved_mid_migration().await;
        // Pretend the migration started two hours ago: it has ended since.
        {
            let mut m = keeper.0.lock().unwrap();
            let slot = m.get_mut(&(RowKind::Operation, op.clone())).unwrap();
            let mut saved: serde_json::Value = serde_json::from_str(&slot.1).unwrap();
            let started = saved["started_epoch"].as_f64().unwrap();
            saved["started_epoch"] = (started - 7200.0).into();
            slot.1 = saved.to_string();
        }
        let (again, _) = SimulatedCloud::resume(&slow_demo(), keeper).await.unwrap();
        assert_eq!(
            again.operation(&op).await.unwrap(),
            OperationState::Completed
        );
        let vm = again.instance(VM).await.unwrap().unwrap();
        assert_eq!(
            (vm.host.as_str(), vm.status.as_str()),
            ("compute-2", "ACTIVE")
        );
    }

    #[tokio::test]
    async fn another_scenario_forgets_the_saved_cloud_but_new_timings_keep_it() {
        let (keeper, _) = saved_mid_migration().await;
        let mut faster = slow_demo();
        faster.timing.abort_secs = 0.5;
        let (_, resumed) = SimulatedCloud::resume(&faster, keeper.clone())
            .await
            .unwrap();
        assert!(matches!(resumed, Resumed::Saved { .. }), "{resumed:?}");
        let mut other = slow_demo();
        other.hosts.pop();
        let (cloud, resumed) = SimulatedCloud::resume(&other, keeper.clone())
            .await
            .unwrap();
        assert_eq!(resumed, Resumed::ScenarioChanged);
        assert_eq!(cloud.instance(VM).await.unwrap().unwrap().status, "ACTIVE");
        assert!(keeper.load().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_unreadable_row_is_named_with_the_way_out() {
        let (keeper, _) = saved_mid_migration().await;
        for slot in keeper.0.lock().unwrap().values_mut() {
            if slot.1.contains(VM) && !slot.1.contains("started_epoch") {
                slot.1 = "{not json".into();
            }
        }
        let Err(e) = SimulatedCloud::resume(&slow_demo(), keeper).await else {
            panic!("a damaged row was accepted");
        };
        let e = e.to_string();
        assert!(e.contains(&format!("instance {VM}")), "{e}");
        assert!(e.contains("watcherd reset-sim-cloud"), "{e}");
    }

    #[test]
    fn row_kinds_read_back_what_they_write() {
        for k in [
            RowKind::Meta,
            RowKind::Host,
            RowKind::Instance,
            RowKind::Volume,
            RowKind::Operation,
        ] {
            assert_eq!(RowKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(RowKind::parse("flavor"), None);
    }
}
