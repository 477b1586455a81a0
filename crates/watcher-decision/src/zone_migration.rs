//! The hardware_maintenance goal: `zone_migration`, which moves the
//! instances off given compute nodes and the volumes off given storage
//! pools, a bounded number per audit (`parallel_*`), in priority order.

use super::model::ClusterModel;
use super::placement::{migration_type, Placement};
use super::storage;
use crate::solution::Proposed;
use crate::solution::{proposed, EfficacyIndicator, Solution, StrategyError};
use serde_json::{json, Value};
use std::collections::HashMap;
use watcher_cloud::{Instance, Volume};

/// Upstream's `zone_migration` parameters.
pub fn zone_migration_spec() -> Value {
    json!({
        "properties": {
            "compute_nodes": {"description": "Compute nodes to migrate.", "type": "array", "items": {"type": "object", "properties": {"src_node": {"description": "Compute node from which instances migrate", "type": "string"}, "dst_node": {"description": "Compute node to which instances migrate", "type": "string"}}, "required": ["src_node"], "additionalProperties": false}},
            "storage_pools": {"description": "Storage pools to migrate.", "type": "array", "items": {"type": "object", "properties": {"src_pool": {"description": "Storage pool from which volumes migrate", "type": "string"}, "dst_pool": {"description": "Storage pool to which volumes migrate", "type": "string"}, "src_type": {"description": "Volume type from which volumes migrate", "type": "string"}, "dst_type": {"description": "Volume type to which volumes migrate", "type": "string"}}, "additionalProperties": false}},
            "parallel_total": {"description": "The number of actions to be run in parallel in total", "type": "integer", "minimum": 0, "default": 6},
            "parallel_per_node": {"description": "The number of actions to be run in parallel per compute node", "type": "integer", "minimum": 0, "default": 2},
            "parallel_per_pool": {"description": "The number of actions to be run in parallel per storage host", "type": "integer", "minimum": 0, "default": 2},
            "priority": {"description": "List prioritizes instances and volumes", "type": "object", "properties": {"project": {"type": "array", "items": {"type": "string"}}, "compute_node": {"type": "array", "items": {"type": "string"}}, "storage_pool": {"type": "array", "items": {"type": "string"}}, "compute": {"enum": ["vcpu_num", "mem_size", "disk_size", "created_at"]}, "storage": {"enum": ["size", "created_at"]}}, "additionalProperties": false},
            "with_attached_volume": {"description": "instance migrates just after attached volumes or not", "type": "boolean", "default": false}
        }
    })
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Position in a priority list; unlisted things come after listed ones.
fn rank(list: &[String], item: &str) -> usize {
    list.iter().position(|x| x == item).unwrap_or(list.len())
}

/// How many actions this audit may still plan: 0 means no limit.
struct Budget {
    total: usize,
    per_node: usize,
    per_pool: usize,
    used_total: usize,
    used: HashMap<String, usize>,
}

impl Budget {
    fn allows(&self, key: &str, limit: usize) -> bool {
        (self.total == 0 || self.used_total < self.total)
            && (limit == 0 || self.used.get(key).copied().unwrap_or(0) < limit)
    }
    fn spend(&mut self, key: &str) {
        self.used_total += 1;
        *self.used.entry(key.to_string()).or_default() += 1;
    }
}

impl Budget {
    /// The `parallel_*` parameters.
    fn parse(params: &Value) -> Budget {
        let limit = |k: &str, d: usize| {
            params
                .get(k)
                .and_then(Value::as_u64)
                .map_or(d, |v| v as usize)
        };
        Budget {
            total: limit("parallel_total", 6),
            per_node: limit("parallel_per_node", 2),
            per_pool: limit("parallel_per_pool", 2),
            used_total: 0,
            used: HashMap::new(),
        }
    }
}

/// `zone_migration`: volumes first (they are the slower), then instances,
/// each in priority order (listed projects first, then listed nodes or
/// pools, then by the `compute` or `storage` key, largest first). An
/// instance with a `dst_node` moves there only if it fits (upstream does
/// not check); without one Nova's scheduler chooses. Volume type changes
/// (`dst_type`) are refused: this driver cannot retype.
pub fn zone_migration(params: &Value, model: &ClusterModel) -> Result<Solution, StrategyError> {
    let targets = Targets::parse(params, model)?;
    let priority = Priority::parse(params);
    let mut budget = Budget::parse(params);
    let mut p = Placement::new(model)?;
    let volumes = priority.volumes(model, &targets);
    let instances = priority.instances(model, &targets, &p);
    let live_total = instances
        .iter()
        .filter(|&&i| migration_type(&model.instances[i]) == Some("live"))
        .count();
    let mut counts = Counts {
        live_total,
        cold_total: instances.len() - live_total,
        volume_total: volumes.len(),
        ..Counts::default()
    };
    let mut actions = vec![];
    plan_volumes(
        model,
        volumes,
        &targets,
        &mut budget,
        &mut counts,
        &mut actions,
    );
    plan_instances(
        model,
        instances,
        &targets,
        &mut p,
        &mut budget,
        &mut counts,
        &mut actions,
    );
    Ok(efficacy(actions, &counts))
}

/// The nodes and pools to empty, each with where to (a node's destination
/// is optional: without one Nova's scheduler chooses).
struct Targets {
    nodes: Vec<(String, Option<String>)>,
    pools: Vec<PoolTarget>,
}

/// One `storage_pools` entry, as upstream: the volumes of `src` (of type
/// `src_type` when given) go to `dst_pool` or are retyped to `dst_type`.
struct PoolTarget {
    src: String,
    src_type: Option<String>,
    dst_pool: Option<String>,
    dst_type: Option<String>,
}

impl Targets {
    /// Upstream's choice for a volume: the entry for its pool and type,
    /// else the entry for its pool without a type.
    fn pool_target(&self, v: &Volume) -> Option<&PoolTarget> {
        let of_pool = || self.pools.iter().filter(|t| t.src == v.pool);
        of_pool()
            .find(|t| t.src_type.is_some() && t.src_type == v.volume_type)
            .or_else(|| of_pool().find(|t| t.src_type.is_none()))
    }
}

impl Targets {
    fn parse(params: &Value, model: &ClusterModel) -> Result<Targets, StrategyError> {
        let invalid = StrategyError::Invalid;
        let nodes: Vec<(String, Option<String>)> = params
            .get("compute_nodes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|n| {
                (
                    n["src_node"].as_str().unwrap_or_default().to_string(),
                    n["dst_node"].as_str().map(str::to_string),
                )
            })
            .collect();
        let mut pools: Vec<PoolTarget> = vec![];
        for p in params
            .get("storage_pools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let text = |k: &str| p[k].as_str().map(str::to_string);
            let src = text("src_pool").unwrap_or_default();
            let (dst_pool, dst_type) = (text("dst_pool"), text("dst_type"));
            if dst_pool.is_some() == dst_type.is_some() {
                return Err(invalid(format!(
                    "storage_pools: {src} needs a dst_pool (to migrate) or a dst_type (to retype), not both"
                )));
            }
            pools.push(PoolTarget {
                src,
                src_type: text("src_type"),
                dst_pool,
                dst_type,
            });
        }
        if nodes.is_empty() && pools.is_empty() {
            return Err(invalid(
                "give compute_nodes or storage_pools: there is nothing to migrate".into(),
            ));
        }
        for (src, dst) in &nodes {
            for name in std::iter::once(src).chain(dst) {
                if model.node(name).is_none() {
                    return Err(invalid(format!(
                        "compute node {name} does not exist or is outside the audit scope"
                    )));
                }
            }
        }
        for t in &pools {
            for name in std::iter::once(&t.src).chain(&t.dst_pool) {
                if !model.pools.iter().any(|p| &p.name == name) {
                    return Err(invalid(format!("storage pool {name} does not exist")));
                }
            }
            if let Some(dst_type) = &t.dst_type {
                if !model.pools.iter().any(|p| p.serves(dst_type)) {
                    return Err(invalid(format!(
                        "storage_pools: no pool serves volume type {dst_type}"
                    )));
                }
            }
        }
        Ok(Targets { nodes, pools })
    }
}

/// The `priority` parameter: listed projects first, then listed nodes or
/// pools, then by the `compute` or `storage` key, largest first.
struct Priority {
    projects: Vec<String>,
    node_order: Vec<String>,
    pool_order: Vec<String>,
    compute_key: String,
    storage_key: String,
}

impl Priority {
    fn parse(params: &Value) -> Priority {
        let priority = params.get("priority").cloned().unwrap_or(Value::Null);
        let key = |k: &str| {
            priority
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Priority {
            projects: strings(priority.get("project")),
            node_order: strings(priority.get("compute_node")),
            pool_order: strings(priority.get("storage_pool")),
            compute_key: key("compute"),
            storage_key: key("storage"),
        }
    }

    /// The volumes on the pools to empty, in priority order.
    fn volumes<'m>(&self, model: &'m ClusterModel, targets: &Targets) -> Vec<&'m Volume> {
        let mut volumes: Vec<&Volume> = model
            .volumes
            .iter()
            .filter(|v| targets.pool_target(v).is_some())
            .filter(|v| v.status == "available" || v.status == "in-use")
            .collect();
        volumes.sort_by_key(|v| {
            (
                rank(&self.projects, &v.project_id),
                rank(&self.pool_order, &v.pool),
                if self.storage_key == "size" {
                    std::cmp::Reverse(v.size_gb)
                } else {
                    std::cmp::Reverse(0)
                },
            )
        });
        volumes
    }

    /// The movable instances on the nodes to empty, in priority order.
    fn instances(&self, model: &ClusterModel, targets: &Targets, p: &Placement) -> Vec<usize> {
        let nodes = &targets.nodes;
        let compute_key = self.compute_key.as_str();
        let mut instances: Vec<usize> = (0..model.instances.len())
            .filter(|&i| nodes.iter().any(|(s, _)| *s == model.instances[i].host))
            .filter(|&i| p.movable(i))
            .collect();
        let size = |inst: &Instance| -> u64 {
            model
                .flavors
                .get(&inst.flavor)
                .map_or(0, |f| match compute_key {
                    "vcpu_num" => f.vcpus as u64,
                    "mem_size" => f.ram_mb,
                    "disk_size" => f.disk_gb,
                    _ => 0,
                })
        };
        instances.sort_by_key(|&i| {
            let inst = &model.instances[i];
            (
                rank(&self.projects, &inst.project_id),
                rank(&self.node_order, &inst.host),
                std::cmp::Reverse(size(inst)),
                i,
            )
        });
        instances
    }
}

/// How many moves each kind had, and how many were planned.
#[derive(Default)]
struct Counts {
    live_total: usize,
    cold_total: usize,
    volume_total: usize,
    planned_live: usize,
    planned_cold: usize,
    planned_volumes: usize,
}

/// A migration per volume, as the pools' budgets allow.
/// Upstream's rule: a retype when the entry names a type the volume does
/// not have, else a migrate to the entry's pool (a volume that already
/// has the type and has no pool to go to stays). A migrate that the
/// volume's type forbids becomes a retype to the destination's type
/// ([`storage::volume_move`]).
fn plan_volumes(
    model: &ClusterModel,
    volumes: Vec<&Volume>,
    targets: &Targets,
    budget: &mut Budget,
    counts: &mut Counts,
    actions: &mut Vec<Proposed>,
) {
    let pool = |name: &str| model.pools.iter().find(|p| p.name == name);
    for v in volumes {
        if !budget.allows(&v.pool, budget.per_pool) {
            continue;
        }
        let t = targets
            .pool_target(v)
            .expect("volumes come from the targets");
        let action = match (&t.dst_type, &t.dst_pool) {
            (Some(dst_type), _) if v.volume_type.as_ref() != Some(dst_type) => {
                Some(storage::retype_volume(v, dst_type))
            }
            (_, Some(dst)) => match (pool(&v.pool), pool(dst)) {
                (Some(src), Some(dest)) => storage::volume_move(v, src, dest),
                _ => None,
            },
            _ => None,
        };
        let Some(action) = action else { continue };
        budget.spend(&v.pool);
        counts.planned_volumes += 1;
        actions.push(action);
    }
}

/// A migration per instance, as the nodes' budgets allow; one with a
/// destination moves only if it fits there.
fn plan_instances(
    model: &ClusterModel,
    instances: Vec<usize>,
    targets: &Targets,
    p: &mut Placement,
    budget: &mut Budget,
    counts: &mut Counts,
    actions: &mut Vec<Proposed>,
) {
    let nodes = &targets.nodes;
    for i in instances {
        let inst = &model.instances[i];
        if !budget.allows(&inst.host, budget.per_node) {
            continue;
        }
        let dst = nodes
            .iter()
            .find(|(s, _)| *s == inst.host)
            .and_then(|n| n.1.clone());
        if let Some(d) = &dst {
            let n = p.node_index(d).expect("checked above");
            if !p.model.nodes[n].available() || !p.fits(i, n) {
                continue;
            }
            p.relocate(i, n);
        }
        budget.spend(&inst.host);
        let kind = migration_type(inst).expect("movable");
        if kind == "live" {
            counts.planned_live += 1;
        } else {
            counts.planned_cold += 1;
        }
        let mut input = json!({"migration_type": kind, "resource_id": inst.uuid, "resource_name": inst.name,
                               "source_node": inst.host});
        if let Some(d) = dst {
            input["destination_node"] = json!(d);
        }
        actions.push(proposed("migrate", input));
    }
}

/// The plan with upstream's efficacy indicators for zone migration.
// Long because upstream's eight indicators, each computed and described in a few lines.
fn efficacy(actions: Vec<Proposed>, c: &Counts) -> Solution {
    let ind = |name: &str, description: &str, value: usize| EfficacyIndicator {
        name: name.into(),
        description: description.into(),
        unit: None,
        value: value as f64,
    };
    let ratio = |name: &str, description: &str, planned: usize, total: usize| EfficacyIndicator {
        name: name.into(),
        description: description.into(),
        unit: Some("%".into()),
        value: if planned == 0 {
            0.0
        } else {
            planned as f64 / total as f64 * 100.0
        },
    };
    Solution {
        actions,
        efficacy_indicators: vec![
            ind(
                "live_migrate_instance_count",
                "The number of instances actually live migrated.",
                c.live_total,
            ),
            ind(
                "planned_live_migrate_instance_count",
                "The number of instances planned to live migrate.",
                c.planned_live,
            ),
            ind(
                "cold_migrate_instance_count",
                "The number of instances actually cold migrated.",
                c.cold_total,
            ),
            ind(
                "planned_cold_migrate_instance_count",
                "The number of instances planned to cold migrate.",
                c.planned_cold,
            ),
            ind(
                "volume_migrate_count",
                "The number of detached volumes actually migrated.",
                c.volume_total,
            ),
            ind(
                "planned_volume_migrate_count",
                "The number of detached volumes planned to migrate.",
                c.planned_volumes,
            ),
            ind(
                "volume_update_count",
                "The number of attached volumes actually migrated.",
                c.volume_total,
            ),
            ind(
                "planned_volume_update_count",
                "The number of attached volumes planned to migrate.",
                c.planned_volumes,
            ),
        ],
        global_efficacy: vec![
            ratio(
                "live_instance_migrate_ratio",
                "Ratio of actual live migrated instances to planned live migrate instances.",
                c.planned_live,
                c.live_total,
            ),
            ratio(
                "cold_instance_migrate_ratio",
                "Ratio of actual cold migrated instances to planned cold migrate instances.",
                c.planned_cold,
                c.cold_total,
            ),
            ratio(
                "volume_migrate_ratio",
                "Ratio of actual detached volumes migrated to planned detached volumes migrate.",
                c.planned_volumes,
                c.volume_total,
            ),
            ratio(
                "volume_update_ratio",
                "Ratio of actual attached volumes migrated to planned attached volumes migrate.",
                c.planned_volumes,
                c.volume_total,
            ),
        ],
    }
}
