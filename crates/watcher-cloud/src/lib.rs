//! The cloud the applier acts on, behind one trait.
//!
//! The trait is shaped after what Nova and Cinder offer, so that an
//! OpenStack driver can implement it: long operations return an operation
//! id, are followed by polling [`Cloud::operation`], and may be aborted,
//! force-completed, or (for resizes and cold migrations) confirmed or
//! reverted. [`simulated::SimulatedCloud`] is a real implementation with
//! capacity, timing, progress and deterministic faults.

pub mod openstack;
pub mod remote;
pub mod rng;
pub mod scenario;
pub mod simulated;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// The cloud's id of a long-running operation (a Nova migration id, say).
pub type OperationId = String;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputeNode {
    /// The hypervisor's id (Nova's hypervisor UUID).
    pub uuid: String,
    pub name: String,
    /// Each resource as Placement accounts it (on a cloud without
    /// Placement inventories: the hypervisor's figures, nothing reserved,
    /// no overcommit, as upstream).
    pub vcpus: Inventory,
    pub ram_mb: Inventory,
    pub disk_gb: Inventory,
    pub service_enabled: bool,
    /// Nova's view of the compute service: heartbeating ("up") or not.
    pub service_up: bool,
    pub disabled_reason: Option<String>,
    /// Nova's availability zone of the host's compute service.
    pub availability_zone: String,
    /// The host aggregates the host belongs to.
    pub aggregates: Vec<Aggregate>,
    /// Whether the machine is powered on; None when the cloud has no
    /// power management for compute nodes.
    pub powered_on: Option<bool>,
}

impl ComputeNode {
    /// Whether strategies may move instances off or onto the host: its
    /// compute service is enabled and up (upstream's "available" nodes).
    pub fn available(&self) -> bool {
        self.service_enabled && self.service_up
    }
}

/// One resource class of a host as Placement accounts it: allocations on
/// it may add up to (total - reserved) x allocation_ratio.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub total: u64,
    pub reserved: u64,
    pub allocation_ratio: f64,
}

impl Inventory {
    /// All of `total`, nothing reserved, no overcommit.
    pub fn whole(total: u64) -> Inventory {
        Inventory {
            total,
            reserved: 0,
            allocation_ratio: 1.0,
        }
    }

    /// What allocations may add up to, as Placement checks them; whole
    /// units, since every allocation is.
    pub fn capacity(&self) -> u64 {
        (self.total.saturating_sub(self.reserved) as f64 * self.allocation_ratio).floor() as u64
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub uuid: String,
    pub name: String,
    pub host: String,
    pub flavor: String,
    /// Nova's vm/task status in one word: ACTIVE, MIGRATING, RESIZE, VERIFY_RESIZE, ERROR.
    pub status: String,
    pub project_id: String,
    pub metadata: std::collections::BTreeMap<String, String>,
    /// Booted from a volume: its root disk is in Cinder, so it uses none of
    /// its host's local disk (its flavor's disk does not count there).
    #[serde(default)]
    pub boot_from_volume: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    pub uuid: String,
    pub name: String,
    pub pool: String,
    pub size_gb: u64,
    /// Cinder's status: available, in-use, migrating, error...
    pub status: String,
    /// The server it is attached to, if any.
    pub attached_to: Option<String>,
    pub project_id: String,
    /// Its volume type (Cinder's `volume_type`), when it has one.
    #[serde(default)]
    pub volume_type: Option<String>,
}

/// A block-storage pool (Cinder's `host@backend#pool`) and its capacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoragePool {
    pub name: String,
    pub total_capacity_gb: f64,
    pub free_capacity_gb: f64,
    pub allocated_capacity_gb: f64,
    pub max_over_subscription_ratio: f64,
    /// The availability zone of the pool's cinder-volume service.
    #[serde(default)]
    pub availability_zone: String,
    /// The volume types bound to the pool's backend (their
    /// `volume_backend_name` extra spec is the pool's).
    #[serde(default)]
    pub volume_types: Vec<String>,
    /// The volume types bound to no backend (no `volume_backend_name`):
    /// Cinder's scheduler may place them on any pool, this one included.
    #[serde(default)]
    pub unbound_types: Vec<String>,
}

impl StoragePool {
    /// Whether a volume of type `t` may be on this pool: its backend's own
    /// types, and the types bound to no backend.
    pub fn serves(&self, t: &str) -> bool {
        self.volume_types
            .iter()
            .chain(&self.unbound_types)
            .any(|x| x == t)
    }
}

/// Whether Cinder's scheduler refuses to migrate a volume of `volume_type`
/// to a pool serving `dest`: the type is bound to a backend (some pool's
/// types, among `serving`, include it) that the destination is not.
pub fn type_forbids_pool<'a>(
    volume_type: Option<&str>,
    mut serving: impl Iterator<Item = &'a [String]>,
    dest: &[String],
) -> bool {
    volume_type.is_some_and(|t| {
        serving.any(|types| types.iter().any(|x| x == t)) && !dest.iter().any(|x| x == t)
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flavor {
    pub name: String,
    pub vcpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputeService {
    pub host: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
}

/// Where a long-running operation is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OperationState {
    /// Under way; `progress` from 0 to 1, `detail` for a status message.
    Running { progress: f64, detail: String },
    /// An abort was accepted and the cloud is rolling back.
    Aborting,
    /// Done, waiting for confirm or revert (Nova's VERIFY_RESIZE).
    AwaitingConfirmation,
    /// Done; the effect is in place.
    Completed,
    /// Aborted or reverted; the effect is undone.
    Aborted,
    /// Failed; the message is the cloud's.
    Failed(String),
}

impl OperationState {
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            OperationState::Completed | OperationState::Aborted | OperationState::Failed(_)
        )
    }
}

/// What a cloud answered instead of doing what was asked. Callers decide by
/// variant, never by reading the message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CloudError {
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    /// The cloud will not do it (no capacity, disabled host, wrong status).
    #[error("{0}")]
    Refused(String),
    /// The operation is not in a state that allows the request (an abort
    /// refused while the migration is queued, or for another reason).
    #[error("abort refused: {0}")]
    Conflict(String),
    /// The abort came too late: the operation is past its point of no
    /// return and will complete.
    #[error("abort refused: {0}")]
    PastPointOfNoReturn(String),
    /// This kind of operation has no abort (cold migration, volume migration).
    #[error("{0} cannot be aborted")]
    NotAbortable(String),
    /// The operation had already finished when asked to abort or complete.
    #[error("operation {0} has already finished")]
    AlreadyFinished(String),
    /// A passing fault worth retrying (connection refused, 5xx, busy).
    #[error("transient cloud error: {0}")]
    Transient(String),
}

#[async_trait]
pub trait Cloud: Send + Sync {
    /// A short name for logs ("simulated", "openstack").
    fn kind(&self) -> &'static str;

    async fn compute_nodes(&self) -> Result<Vec<ComputeNode>, CloudError>;
    async fn flavors(&self) -> Result<Vec<Flavor>, CloudError>;
    async fn instances(&self) -> Result<Vec<Instance>, CloudError>;
    async fn instance(&self, uuid: &str) -> Result<Option<Instance>, CloudError>;
    async fn volume(&self, uuid: &str) -> Result<Option<Volume>, CloudError>;
    /// Every volume; none for a cloud without block storage.
    async fn volumes(&self) -> Result<Vec<Volume>, CloudError> {
        Ok(vec![])
    }
    /// Every storage pool; none for a cloud without block storage.
    async fn storage_pools(&self) -> Result<Vec<StoragePool>, CloudError> {
        Ok(vec![])
    }
    async fn compute_service(&self, host: &str) -> Result<Option<ComputeService>, CloudError>;

    async fn live_migrate(
        &self,
        instance: &str,
        destination: Option<&str>,
    ) -> Result<OperationId, CloudError>;
    async fn cold_migrate(
        &self,
        instance: &str,
        destination: Option<&str>,
    ) -> Result<OperationId, CloudError>;
    async fn resize(&self, instance: &str, flavor: &str) -> Result<OperationId, CloudError>;
    async fn migrate_volume(&self, volume: &str, pool: &str) -> Result<OperationId, CloudError>;
    /// Gives a volume another type; the cloud moves it to a pool of the
    /// type's backend when its own is not (Cinder's on-demand migration).
    async fn retype_volume(&self, volume: &str, new_type: &str) -> Result<OperationId, CloudError>;
    async fn set_compute_service(
        &self,
        host: &str,
        enabled: bool,
        reason: Option<&str>,
    ) -> Result<(), CloudError>;

    /// Stops (`on = false`) or starts an instance, as Nova's `os-stop` and
    /// `os-start`: answers once the cloud took the request; the instance's
    /// status shows when it is done (SHUTOFF, ACTIVE). `NotFound` for an
    /// instance that does not exist, `Conflict` for one in a state that
    /// cannot change so (already stopped, migrating).
    async fn set_instance_power(&self, instance: &str, on: bool) -> Result<(), CloudError>;

    /// Powers a compute node on or off (it must hold no instance to go off).
    async fn set_node_power(&self, node: &str, on: bool) -> Result<(), CloudError> {
        let _ = (node, on);
        Err(CloudError::Refused(
            "this cloud driver has no power management for compute nodes (upstream uses Ironic or MAAS)"
                .into(),
        ))
    }

    /// Where an operation is; `NotFound` if the cloud does not know it.
    async fn operation(&self, op: &str) -> Result<OperationState, CloudError>;
    /// The newest live (or cold) migration of `instance` that started at or
    /// after `since`, finished or not: how a restarted applier finds the
    /// operation it started but died before journaling the id of.
    async fn find_migration(
        &self,
        instance: &str,
        live: bool,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<OperationId>, CloudError>;
    /// Asks the cloud to abort a running operation and roll it back.
    async fn abort(&self, op: &str) -> Result<(), CloudError>;
    /// Asks the cloud to finish a running live migration now.
    async fn force_complete(&self, op: &str) -> Result<(), CloudError>;
    async fn confirm(&self, op: &str) -> Result<(), CloudError>;
    async fn revert(&self, op: &str) -> Result<(), CloudError>;
}

/// Retries a cloud call on transient errors, a few times with backoff.
pub async fn retry_transient<T, F, Fut>(call: F) -> Result<T, CloudError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, CloudError>>,
{
    let mut delay = std::time::Duration::from_millis(20);
    for _ in 0..6 {
        match call().await {
            Err(CloudError::Transient(m)) => {
                tracing::debug!(error = %m, "transient cloud error, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(2));
            }
            other => return other,
        }
    }
    call().await
}
