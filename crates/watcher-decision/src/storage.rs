//! Block-storage strategies: `storage_capacity_balance` (workload_balancing).

use super::model::ClusterModel;
use crate::solution::{proposed, Proposed, Solution, StrategyError};
use serde_json::{json, Value};
use watcher_cloud::{StoragePool, Volume};

/// The action that moves `v` from `src` to `dest`: a migrate when the
/// volume's type does not pin it to its backend (no type, or a type no
/// backend claims, such as `__DEFAULT__`) or when `dest` serves the type;
/// else a retype to the first type `dest`'s backend serves, which Cinder
/// carries out by migrating it there. None when `dest` serves no type a
/// pinned volume could take. (Upstream compares the types' other extra
/// specs too; the model does not read them, so the first one is taken.)
pub fn volume_move(v: &Volume, src: &StoragePool, dest: &StoragePool) -> Option<Proposed> {
    let pinned = v
        .volume_type
        .as_ref()
        .filter(|t| src.volume_types.contains(t) && !dest.volume_types.contains(t));
    Some(match pinned {
        None => migrate_volume(v, &dest.name),
        Some(_) => retype_volume(v, dest.volume_types.first()?),
    })
}

pub fn migrate_volume(v: &Volume, pool: &str) -> Proposed {
    proposed(
        "volume_migrate",
        json!({"migration_type": "migrate", "resource_id": v.uuid, "resource_name": v.name,
               "destination_node": pool}),
    )
}

pub fn retype_volume(v: &Volume, new_type: &str) -> Proposed {
    proposed(
        "volume_migrate",
        json!({"migration_type": "retype", "resource_id": v.uuid, "resource_name": v.name,
               "destination_type": new_type}),
    )
}

/// Upstream's `storage_capacity_balance` parameters.
pub fn storage_capacity_balance_spec() -> Value {
    json!({
        "properties": {
            "volume_threshold": {"description": "volume threshold for capacity balance", "type": "number", "default": 80.0, "minimum": 0.0, "maximum": 100.0}
        }
    })
}

/// Free and allocated capacity while volumes are planned to move.
struct PoolRoom {
    pool: StoragePool,
}

impl PoolRoom {
    fn used(&self) -> f64 {
        self.pool.total_capacity_gb - self.pool.free_capacity_gb
    }
    /// Whether `size` GB fit here while staying under `threshold` (a
    /// fraction) and within thin-provisioning's over-subscription.
    fn takes(&self, size: f64, threshold: f64) -> bool {
        let p = &self.pool;
        p.total_capacity_gb * p.max_over_subscription_ratio >= p.allocated_capacity_gb + size
            && p.free_capacity_gb - size > (1.0 - threshold) * p.total_capacity_gb
    }
    fn add(&mut self, size: f64) {
        self.pool.free_capacity_gb -= size;
        self.pool.allocated_capacity_gb += size;
    }
    fn remove(&mut self, size: f64) {
        self.pool.free_capacity_gb += size;
        self.pool.allocated_capacity_gb -= size;
    }
}

/// `storage_capacity_balance`: every pool at or above `volume_threshold` %
/// used gives up available (detached) volumes, smallest first, to the pools
/// under it with the most free space, until it is under the threshold. A
/// destination takes a volume only if it stays under the threshold itself.
/// Attached volumes are not moved (as upstream). A volume whose type pins
/// it to its backend is retyped to a type of the destination's backend
/// ([`volume_move`]).
pub fn storage_capacity_balance(
    params: &Value,
    model: &ClusterModel,
) -> Result<Solution, StrategyError> {
    let threshold = params
        .get("volume_threshold")
        .and_then(Value::as_f64)
        .unwrap_or(80.0)
        / 100.0;
    let mut pools: Vec<PoolRoom> = model
        .pools
        .iter()
        .filter(|p| p.total_capacity_gb.is_finite() && p.total_capacity_gb > 0.0)
        .map(|p| PoolRoom { pool: p.clone() })
        .collect();
    let over: Vec<usize> = {
        let mut o: Vec<usize> = (0..pools.len())
            .filter(|&i| pools[i].used() >= pools[i].pool.total_capacity_gb * threshold)
            .collect();
        o.sort_by(|&a, &b| {
            let ratio = |i: usize| pools[i].used() / pools[i].pool.total_capacity_gb;
            ratio(b).total_cmp(&ratio(a)).then(a.cmp(&b))
        });
        o
    };
    let mut actions = vec![];
    for &src in &over {
        let name = pools[src].pool.name.clone();
        let mut volumes: Vec<_> = model
            .volumes
            .iter()
            .filter(|v| v.pool == name && v.status == "available")
            .collect();
        volumes.sort_by(|a, b| a.size_gb.cmp(&b.size_gb).then(a.name.cmp(&b.name)));
        for v in volumes {
            if pools[src].used() < pools[src].pool.total_capacity_gb * threshold {
                break;
            }
            let size = v.size_gb as f64;
            // The destination with the largest share of free space that
            // can take the volume (by migrate, or by retype to its type).
            let dest = (0..pools.len())
                .filter(|&d| d != src && !over.contains(&d) && pools[d].takes(size, threshold))
                .filter_map(|d| Some((d, volume_move(v, &pools[src].pool, &pools[d].pool)?)))
                .max_by(|(a, _), (b, _)| {
                    let free =
                        |i: usize| pools[i].pool.free_capacity_gb / pools[i].pool.total_capacity_gb;
                    free(*a).total_cmp(&free(*b)).then(b.cmp(a))
                });
            if let Some((d, action)) = dest {
                pools[d].add(size);
                pools[src].remove(size);
                actions.push(action);
            }
        }
    }
    Ok(Solution {
        actions,
        ..Default::default()
    })
}
