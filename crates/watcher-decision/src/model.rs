//! The cluster data model a strategy works on: compute nodes, instances,
//! flavors, storage pools and volumes, read from the cloud once per audit
//! (neither cloud offers change events we could keep it fresh from), then
//! cut down to the audit's scope before any strategy sees them.

use super::scope::{ComputeScope, StorageScope};
use std::collections::{HashMap, HashSet};
use watcher_cloud::{
    retry_transient, Cloud, CloudError, ComputeNode, Flavor, Instance, StoragePool, Volume,
};

#[derive(Debug, Clone, Default)]
pub struct ClusterModel {
    pub nodes: Vec<ComputeNode>,
    pub instances: Vec<Instance>,
    pub flavors: HashMap<String, Flavor>,
    /// Instances the scope excludes: they stay where they are, and still
    /// take their host's capacity.
    pub excluded: HashSet<String>,
    /// Block storage (empty on a cloud without it).
    pub pools: Vec<StoragePool>,
    pub volumes: Vec<Volume>,
}

impl ClusterModel {
    /// Reads the cloud, retrying its transient errors.
    pub async fn from_cloud(cloud: &dyn Cloud) -> Result<ClusterModel, CloudError> {
        Ok(ClusterModel {
            nodes: retry_transient(|| cloud.compute_nodes()).await?,
            instances: retry_transient(|| cloud.instances()).await?,
            flavors: retry_transient(|| cloud.flavors())
                .await?
                .into_iter()
                .map(|f| (f.name.clone(), f))
                .collect(),
            excluded: HashSet::new(),
            pools: retry_transient(|| cloud.storage_pools()).await?,
            volumes: retry_transient(|| cloud.volumes()).await?,
        })
    }

    /// The model with only the scope's nodes (and their instances), and the
    /// scope's excluded instances marked.
    pub fn scoped(mut self, scope: &ComputeScope) -> ClusterModel {
        self.nodes.retain(|n| scope.keeps_node(&n.name));
        let kept: HashSet<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        self.instances.retain(|i| kept.contains(i.host.as_str()));
        self.excluded = self
            .instances
            .iter()
            .filter(|i| scope.excludes_instance(i))
            .map(|i| i.uuid.clone())
            .collect();
        self
    }

    /// The model with only the storage scope's pools and volumes.
    pub fn storage_scoped(mut self, scope: &StorageScope) -> ClusterModel {
        self.pools.retain(|p| scope.keeps_pool(&p.name));
        self.volumes.retain(|v| scope.keeps_volume(v));
        self
    }

    pub fn node(&self, name: &str) -> Option<&ComputeNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn is_excluded(&self, instance: &Instance) -> bool {
        self.excluded.contains(&instance.uuid)
    }
}
