//! The server_consolidation goal: `basic`, `vm_workload_consolidation` and
//! `node_resource_consolidation`.
//!
//! All three release a node only when every instance on it can leave (upstream
//! moves instances off a node even when some must stay, which costs
//! migrations and releases nothing), never move an instance twice (chains
//! collapse, see [`Placement::moves`]), never move onto a disabled node, and
//! never let a node's allocation exceed its capacity.

use super::metrics::{Metric, MetricValues};
use super::model::ClusterModel;
use super::placement::{migration_type, Placement};
use crate::goals::server_consolidation_spec;
use crate::solution::{migrate_action, proposed, Solution, StrategyError};
use serde_json::{json, Value};
use watcher_core::EfficacyIndicator;

/// Upstream's reason on a node a consolidation released.
const REASON_FOR_DISABLE: &str = "watcher_disabled";

/// Upstream's `basic` parameters.
pub fn basic_spec() -> Value {
    json!({
        "properties": {
            "migration_attempts": {"description": "Maximum number of combinations to be tried by the strategy while searching for potential candidates. To remove the limit, set it to 0 (by default)", "type": "number", "default": 0, "minimum": 0},
            "period": {"description": "The time interval in seconds for getting statistic aggregation", "type": "number", "default": 7200, "minimum": 1},
            "granularity": {"description": "The time between two measures in an aggregated timeseries of a metric.", "type": "number", "default": 300, "minimum": 1},
            "aggregation_method": {
                "description": "Function used to aggregate multiple measures into an aggregate. For example, the min aggregation method will aggregate the values of different measures to the minimum value of all the measures in the time range.",
                "type": "object",
                "properties": {
                    "instance": {"type": "string", "default": "mean"},
                    "compute_node": {"type": "string", "default": "mean"},
                    "node": {"type": "string", "default": ""}
                },
                "default": {"instance": "mean", "compute_node": "mean", "node": ""}
            }
        }
    })
}

/// Upstream's `vm_workload_consolidation` parameters.
pub fn vm_workload_consolidation_spec() -> Value {
    json!({
        "properties": {
            "period": {"description": "The time interval in seconds for getting statistic aggregation", "type": "number", "default": 3600, "minimum": 1},
            "granularity": {"description": "The time between two measures in an aggregated timeseries of a metric.", "type": "number", "default": 300, "minimum": 1}
        }
    })
}

fn disable_action(node: &str) -> crate::solution::Proposed {
    proposed(
        "change_nova_service_state",
        json!({"resource_id": node, "resource_name": node, "state": "disabled",
               "disabled_reason": REASON_FOR_DISABLE}),
    )
}

/// The plan's migrations (one per moved instance) then the disabling of
/// the released nodes.
fn solution(p: &Placement, released: &[usize]) -> Solution {
    let mut actions = p.migration_actions();
    let migrations = actions.len();
    actions.extend(released.iter().map(|&n| disable_action(&p.node(n).name)));
    let enabled = p.model.nodes.iter().filter(|n| n.available()).count();
    let (efficacy_indicators, global_efficacy) =
        consolidation_efficacy(enabled, released.len(), migrations);
    Solution {
        actions,
        efficacy_indicators,
        global_efficacy,
    }
}

/// Measured load a strategy keeps next to the allocation: whether an
/// instance's load fits on a node, and moving it there.
trait Load {
    fn fits(&self, i: usize, node: usize) -> bool;
    fn shift(&mut self, i: usize, from: usize, to: usize);
}

/// Allocation only (`basic`).
struct AllocationOnly;

impl Load for AllocationOnly {
    fn fits(&self, _: usize, _: usize) -> bool {
        true
    }
    fn shift(&mut self, _: usize, _: usize, _: usize) {}
}

/// Tries to move every instance of `source` to `destinations` (first fit
/// in that order, instances by `order` descending). All or nothing: on
/// failure placement and load are left as they were and None is returned;
/// on success, the nodes that received instances.
fn empty_node(
    p: &mut Placement,
    load: &mut dyn Load,
    source: usize,
    destinations: &[usize],
    order: &dyn Fn(&Placement, usize) -> f64,
) -> Option<Vec<usize>> {
    let mut instances = p.instances_on(source).to_vec();
    if instances.iter().any(|&i| !p.movable(i)) {
        return None;
    }
    instances.sort_by(|&a, &b| order(p, b).total_cmp(&order(p, a)).then(a.cmp(&b)));
    let mut placed: Vec<(usize, usize)> = vec![];
    for &i in &instances {
        match destinations
            .iter()
            .copied()
            .find(|&d| d != source && p.fits(i, d) && load.fits(i, d))
        {
            Some(d) => {
                p.relocate(i, d);
                load.shift(i, source, d);
                placed.push((i, d));
            }
            None => {
                for &(i, d) in &placed {
                    p.relocate(i, source);
                    load.shift(i, d, source);
                }
                return None;
            }
        }
    }
    Some(placed.into_iter().map(|(_, d)| d).collect())
}

/// `basic`: nodes ordered by measured CPU use; from the least used, each
/// node whose instances all fit on busier nodes is emptied onto them (the
/// busiest that fits first) and disabled. A node that received instances is
/// never emptied afterwards, so no instance moves twice.
pub fn basic(
    params: &Value,
    model: &ClusterModel,
    metrics: &MetricValues,
) -> Result<Solution, StrategyError> {
    let attempts = params
        .get("migration_attempts")
        .and_then(Value::as_f64)
        .unwrap_or(0.0) as usize;
    let mut p = Placement::new(model)?;
    let mut candidates: Vec<(usize, f64)> = vec![];
    for (n, node) in model.nodes.iter().enumerate() {
        if node.available() && !p.instances_on(n).is_empty() {
            candidates.push((n, metrics.host(Metric::HostCpuUsage, &node.name)?));
        }
    }
    candidates.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    // Destinations: the busiest first.
    let mut destinations: Vec<usize> = candidates.iter().rev().map(|c| c.0).collect();
    let mut kept = vec![false; model.nodes.len()];
    let mut released = vec![];
    let mut failures = 0;
    for &(source, _) in &candidates {
        if kept[source] {
            continue;
        }
        if attempts > 0 && failures >= attempts {
            break;
        }
        let by_size = |p: &Placement, i: usize| {
            let d = p.demand(i);
            d.vcpus as f64 * 1e9 + d.ram_mb as f64
        };
        match empty_node(&mut p, &mut AllocationOnly, source, &destinations, &by_size) {
            Some(used) => {
                for d in used {
                    kept[d] = true;
                }
                destinations.retain(|&d| d != source);
                released.push(source);
            }
            None => failures += 1,
        }
    }
    Ok(solution(&p, &released))
}

/// Measured use of one instance or node: cores, MB of RAM, GB of disk.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    cpu: f64,
    ram: f64,
    disk: f64,
}

impl Usage {
    fn plus(self, o: Usage) -> Usage {
        Usage {
            cpu: self.cpu + o.cpu,
            ram: self.ram + o.ram,
            disk: self.disk + o.disk,
        }
    }
    fn minus(self, o: Usage) -> Usage {
        Usage {
            cpu: self.cpu - o.cpu,
            ram: self.ram - o.ram,
            disk: self.disk - o.disk,
        }
    }
    fn within(self, cap: Usage) -> bool {
        self.cpu <= cap.cpu && self.ram <= cap.ram && self.disk <= cap.disk
    }
}

/// Measured use per instance and per node, against node capacity.
struct MeasuredLoad {
    instance: Vec<Usage>,
    node: Vec<Usage>,
    capacity: Vec<Usage>,
}

impl Load for MeasuredLoad {
    fn fits(&self, i: usize, n: usize) -> bool {
        self.node[n].plus(self.instance[i]).within(self.capacity[n])
    }
    fn shift(&mut self, i: usize, from: usize, to: usize) {
        self.node[from] = self.node[from].minus(self.instance[i]);
        self.node[to] = self.node[to].plus(self.instance[i]);
    }
}

impl MeasuredLoad {
    fn from_metrics(p: &Placement, metrics: &MetricValues) -> Result<MeasuredLoad, StrategyError> {
        let model = p.model;
        let mut instance = Vec::with_capacity(model.instances.len());
        for (i, inst) in model.instances.iter().enumerate() {
            let cpu = metrics.instance(Metric::InstanceCpuUsage, &inst.uuid, &inst.name)?;
            let ram = metrics.instance(Metric::InstanceRamUsage, &inst.uuid, &inst.name)?;
            instance.push(Usage {
                cpu: p.demand(i).vcpus as f64 * cpu / 100.0,
                ram,
                disk: p.demand(i).disk_gb as f64,
            });
        }
        // What a node uses besides its instances (hypervisor, agents) is
        // what the host reports beyond their sum; it stays with the node.
        let mut node = Vec::with_capacity(model.nodes.len());
        let mut capacity = Vec::with_capacity(model.nodes.len());
        for (n, host) in model.nodes.iter().enumerate() {
            let sum = p
                .instances_on(n)
                .iter()
                .fold(Usage::default(), |a, &i| a.plus(instance[i]));
            let cpu =
                metrics.host(Metric::HostCpuUsage, &host.name)? * host.vcpus.total as f64 / 100.0;
            let ram = metrics.host(Metric::HostRamUsage, &host.name)?;
            node.push(Usage {
                cpu: sum.cpu.max(cpu),
                ram: sum.ram.max(ram),
                disk: sum.disk,
            });
            capacity.push(Usage {
                cpu: host.vcpus.capacity() as f64,
                ram: host.ram_mb.capacity() as f64,
                disk: host.disk_gb.capacity() as f64,
            });
        }
        Ok(MeasuredLoad {
            instance,
            node,
            capacity,
        })
    }

    /// Enabled nodes, busiest (CPU) first.
    fn busiest_first(&self, nodes: &[usize]) -> Vec<usize> {
        let mut order = nodes.to_vec();
        order.sort_by(|&a, &b| {
            self.node[b]
                .cpu
                .total_cmp(&self.node[a].cpu)
                .then(a.cmp(&b))
        });
        order
    }
}

/// `vm_workload_consolidation`: upstream's phases on measured use (CPU and
/// RAM from the metrics, disk from the flavor) as well as allocation:
/// offload overloaded nodes (least busy instances first), consolidate from
/// the least used node onto busier ones (all-or-nothing per node), collapse
/// chains, then disable every enabled node left empty.
pub fn vm_workload_consolidation(
    _params: &Value,
    model: &ClusterModel,
    metrics: &MetricValues,
) -> Result<Solution, StrategyError> {
    let mut p = Placement::new(model)?;
    let mut load = MeasuredLoad::from_metrics(&p, metrics)?;
    let enabled: Vec<usize> = (0..model.nodes.len())
        .filter(|&n| model.nodes[n].available())
        .collect();

    // Offload: no node above its CPU capacity.
    let order = load.busiest_first(&enabled);
    for &n in &order {
        let mut instances: Vec<usize> = p
            .instances_on(n)
            .iter()
            .copied()
            .filter(|&i| p.movable(i))
            .collect();
        instances.sort_by(|&a, &b| {
            load.instance[a]
                .cpu
                .total_cmp(&load.instance[b].cpu)
                .then(a.cmp(&b))
        });
        for i in instances {
            if load.node[n].cpu <= load.capacity[n].cpu {
                break;
            }
            if let Some(d) = order
                .iter()
                .copied()
                .find(|&d| d != n && p.fits(i, d) && load.fits(i, d))
            {
                p.relocate(i, d);
                load.shift(i, n, d);
            }
        }
    }

    // Consolidation: from the least used node, onto busier ones.
    let ascending: Vec<usize> = load.busiest_first(&enabled).into_iter().rev().collect();
    let mut kept = vec![false; model.nodes.len()];
    let mut emptied = vec![false; model.nodes.len()];
    for (rank, &source) in ascending.iter().enumerate() {
        if kept[source] || p.instances_on(source).is_empty() {
            continue;
        }
        let destinations: Vec<usize> = ascending[rank + 1..]
            .iter()
            .rev()
            .copied()
            .filter(|&d| !emptied[d])
            .collect();
        let cpu_of = |i: usize| load.instance[i].cpu;
        let by_cpu: Vec<f64> = (0..model.instances.len()).map(cpu_of).collect();
        if let Some(used) = empty_node(&mut p, &mut load, source, &destinations, &|_, i| by_cpu[i])
        {
            for d in used {
                kept[d] = true;
            }
            emptied[source] = true;
        }
    }

    let released: Vec<usize> = enabled
        .iter()
        .copied()
        .filter(|&n| p.instances_on(n).is_empty())
        .collect();
    Ok(solution(&p, &released))
}

/// Upstream's `node_resource_consolidation` parameters.
pub fn node_resource_consolidation_spec() -> Value {
    json!({
        "properties": {
            "host_choice": {"description": "The way to select the server migration destination node. The value 'auto' means that Nova scheduler selects the destination node, and 'specify' means the strategy specifies the destination.", "type": "string", "enum": ["auto", "specify"], "default": "auto"}
        }
    })
}

/// Upstream's reason on nodes this strategy disables.
const REASON_FOR_NODE_RESOURCE: &str = "Watcher node resource consolidation strategy";

/// `node_resource_consolidation`: allocation only, no metrics. From the
/// node with the fewest vCPUs allocated, each node whose instances all fit
/// on fuller nodes is emptied. With `host_choice = specify` the migrations
/// name their destination. With `auto` (the default) Nova's scheduler
/// chooses: the emptied nodes and the nodes that were already empty are
/// disabled first so that it cannot pick them, and enabled again once the
/// migrations are done (the node_resource_consolidation planner orders it).
// Long because upstream's algorithm: choose the nodes to release, place their instances,
// then the disable/enable actions around the moves.
pub fn node_resource_consolidation(
    params: &Value,
    model: &ClusterModel,
) -> Result<Solution, StrategyError> {
    let specify = params.get("host_choice").and_then(Value::as_str) == Some("specify");
    let mut p = Placement::new(model)?;
    let enabled: Vec<usize> = (0..model.nodes.len())
        .filter(|&n| model.nodes[n].available())
        .collect();
    let mut candidates: Vec<usize> = enabled
        .iter()
        .copied()
        .filter(|&n| !p.instances_on(n).is_empty())
        .collect();
    candidates.sort_by_key(|&n| (p.used(n).vcpus, n));
    let free: Vec<usize> = enabled
        .iter()
        .copied()
        .filter(|&n| p.instances_on(n).is_empty())
        .collect();
    let mut destinations: Vec<usize> = candidates.iter().rev().copied().collect();
    let mut kept = vec![false; model.nodes.len()];
    let mut released = vec![];
    let by_vcpus = |p: &Placement, i: usize| p.demand(i).vcpus as f64;
    for &source in &candidates {
        if kept[source] {
            continue;
        }
        if let Some(used) = empty_node(
            &mut p,
            &mut AllocationOnly,
            source,
            &destinations,
            &by_vcpus,
        ) {
            for d in used {
                kept[d] = true;
            }
            destinations.retain(|&d| d != source);
            released.push(source);
        }
    }
    let moves = p.moves();
    let state_action = |n: usize, state: &str| {
        let name = &model.nodes[n].name;
        let mut input = json!({"resource_id": name, "resource_name": name, "state": state});
        if state == "disabled" {
            input["disabled_reason"] = json!(REASON_FOR_NODE_RESOURCE);
        }
        proposed("change_nova_service_state", input)
    };
    let mut actions = vec![];
    let steer: Vec<usize> = if specify || moves.is_empty() {
        vec![]
    } else {
        free.iter().chain(&released).copied().collect()
    };
    actions.extend(steer.iter().map(|&n| state_action(n, "disabled")));
    for m in &moves {
        let inst = p.instance(m.instance);
        let mut a = migrate_action(
            inst,
            migration_type(inst).unwrap_or("live"),
            &p.node(m.from).name,
            &p.node(m.to).name,
        );
        if !specify {
            if let Some(o) = a.input_parameters.as_object_mut() {
                o.remove("destination_node");
            }
        }
        actions.push(a);
    }
    actions.extend(steer.iter().map(|&n| state_action(n, "enabled")));
    let (efficacy_indicators, global_efficacy) =
        consolidation_efficacy(enabled.len(), released.len(), moves.len());
    Ok(Solution {
        actions,
        efficacy_indicators,
        global_efficacy,
    })
}

/// Upstream's `basic` algorithm (strategies/basic_consolidation.py), kept
/// to compare against on the same input (benchmarks, tests): returns
/// (released nodes, migrations). It scores every node that has instances,
/// disabled ones included, and from the least used one moves each ACTIVE
/// instance to the first node in descending score order with room, even
/// when the node cannot be emptied, and even onto nodes it will empty
/// later (those instances then move again).
#[cfg(feature = "reference")]
pub fn upstream_basic_reference(
    model: &ClusterModel,
    metrics: &MetricValues,
) -> Result<(usize, usize), StrategyError> {
    let mut p = Placement::new(model)?;
    let mut scores: Vec<(usize, f64)> = vec![];
    for (n, node) in model.nodes.iter().enumerate() {
        if !p.instances_on(n).is_empty() {
            scores.push((n, metrics.host(Metric::HostCpuUsage, &node.name)?));
        }
    }
    // Python's sort(reverse=True) is stable on ties, as is this.
    scores.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (mut released, mut migrations) = (0, 0);
    while let Some(&(source, _)) = scores.last() {
        let mut instances: Vec<(usize, f64)> = vec![];
        for &i in p.instances_on(source) {
            let inst = p.instance(i);
            if inst.status == "ACTIVE" {
                instances.push((
                    i,
                    metrics.instance(Metric::InstanceCpuUsage, &inst.uuid, &inst.name)?,
                ));
            }
        }
        instances.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut moved = 0;
        for (i, _) in instances {
            if model.is_excluded(p.instance(i)) {
                continue;
            }
            if let Some(&(d, _)) = scores.iter().find(|&&(d, _)| d != source && p.fits(i, d)) {
                p.relocate(i, d);
                migrations += 1;
                moved += 1;
                if p.instances_on(source).is_empty() {
                    released += 1;
                }
            }
        }
        if moved == 0 {
            scores.pop();
        }
    }
    Ok((released, migrations))
}

/// The server_consolidation goal's indicators and global efficacy.
pub(crate) fn consolidation_efficacy(
    enabled_nodes: usize,
    released: usize,
    migrations: usize,
) -> (Vec<EfficacyIndicator>, Vec<EfficacyIndicator>) {
    let specs = server_consolidation_spec();
    let value = |name: &str| match name {
        "compute_nodes_count" => enabled_nodes as f64,
        "released_compute_nodes_count" => released as f64,
        _ => migrations as f64,
    };
    let indicators = specs
        .iter()
        .map(|s| EfficacyIndicator {
            name: s.name.clone(),
            description: s.description.clone(),
            unit: s.unit.clone(),
            value: value(&s.name),
        })
        .collect();
    let ratio = if enabled_nodes == 0 {
        0.0
    } else {
        released as f64 / enabled_nodes as f64 * 100.0
    };
    let global = vec![EfficacyIndicator {
        name: "released_nodes_ratio".into(),
        description:
            "Ratio of released compute nodes divided by the total number of enabled compute nodes."
                .into(),
        unit: Some("%".into()),
        value: ratio,
    }];
    (indicators, global)
}
