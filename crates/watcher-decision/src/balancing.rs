//! The workload_balancing goal: `workload_balance` and `workload_stabilization`.
//!
//! Upstream's strategy moves one instance per audit (the first that fits);
//! this one keeps going: while a node is at or above the threshold, the
//! instance that brings it closest to the cluster's mean without undershooting
//! moves to the least loaded node that stays under the threshold with it.
//! Each instance moves at most once, so the plan is bounded by the number of
//! instances and never oscillates.

use super::metrics::{Metric, MetricValues};
use super::model::ClusterModel;
use super::placement::Placement;
use crate::solution::{EfficacyIndicator, Solution, StrategyError};
use serde_json::{json, Value};

/// Upstream's `workload_balance` parameters (`choice` spelled as JSON schema's `enum`).
pub fn workload_balance_spec() -> Value {
    json!({
        "properties": {
            "metrics": {"description": "Workload balance based on metrics: cpu or ram utilization", "type": "string", "enum": ["instance_cpu_usage", "instance_ram_usage"], "default": "instance_cpu_usage"},
            "threshold": {"description": "Workload threshold for migration - used for source and destination hosts. It is always a percentage value.", "type": "number", "default": 25.0, "minimum": 0.0, "maximum": 100.0},
            "period": {"description": "aggregate time period of ceilometer", "type": "number", "default": 300, "minimum": 1},
            "granularity": {"description": "The time between two measures in an aggregated timeseries of a metric.", "type": "number", "default": 300, "minimum": 1}
        }
    })
}

/// Population standard deviation of the nodes' use, in percent.
fn std_dev(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt()
}

// Long because it follows upstream's workload_balance step by step (threshold, source node, instance choice, destination), so the two can be read side by side.
pub fn workload_balance(
    params: &Value,
    model: &ClusterModel,
    metrics: &MetricValues,
) -> Result<Solution, StrategyError> {
    let by_ram = params.get("metrics").and_then(Value::as_str) == Some("instance_ram_usage");
    let threshold = params
        .get("threshold")
        .and_then(Value::as_f64)
        .unwrap_or(25.0);
    let mut p = Placement::new(model)?;
    // Workload: cores in use (CPU) or MB in use (RAM), per instance.
    let mut work = Vec::with_capacity(model.instances.len());
    for (i, inst) in model.instances.iter().enumerate() {
        work.push(if by_ram {
            metrics.instance(Metric::InstanceRamUsage, &inst.uuid, &inst.name)?
        } else {
            p.demand(i).vcpus as f64
                * metrics.instance(Metric::InstanceCpuUsage, &inst.uuid, &inst.name)?
                / 100.0
        });
    }
    let nodes: Vec<usize> = (0..model.nodes.len())
        .filter(|&n| model.nodes[n].available())
        .collect();
    let capacity: Vec<f64> = model
        .nodes
        .iter()
        .map(|n| {
            if by_ram {
                n.ram_mb.total as f64
            } else {
                n.vcpus.total as f64
            }
            .max(1.0)
        })
        .collect();
    let mut load = vec![0.0; model.nodes.len()];
    for &n in &nodes {
        load[n] = p.instances_on(n).iter().map(|&i| work[i]).sum();
    }
    let percent = |load: &[f64], n: usize| load[n] / capacity[n] * 100.0;
    let utilisation =
        |load: &[f64]| -> Vec<f64> { nodes.iter().map(|&n| percent(load, n)).collect() };
    let before = std_dev(&utilisation(&load));
    let mean = if nodes.is_empty() {
        0.0
    } else {
        nodes.iter().map(|&n| load[n]).sum::<f64>() / nodes.len() as f64
    };

    let mut moved = vec![false; model.instances.len()];
    let mut stuck = vec![false; model.nodes.len()];
    // The most loaded node at or above the threshold that may still improve.
    let next_source = |load: &[f64], stuck: &[bool]| {
        nodes
            .iter()
            .copied()
            .filter(|&n| !stuck[n] && percent(load, n) >= threshold)
            .max_by(|&a, &b| {
                percent(load, a)
                    .total_cmp(&percent(load, b))
                    .then(b.cmp(&a))
            })
    };
    while let Some(source) = next_source(&load, &stuck) {
        let excess = load[source] - mean;
        // Candidates: what can leave without taking the node below the mean,
        // closest to the excess first.
        let mut candidates: Vec<usize> = p
            .instances_on(source)
            .iter()
            .copied()
            .filter(|&i| !moved[i] && p.movable(i) && excess - work[i] >= 0.0)
            .collect();
        candidates.sort_by(|&a, &b| {
            (excess - work[a])
                .total_cmp(&(excess - work[b]))
                .then(a.cmp(&b))
        });
        let mut done = false;
        for i in candidates {
            let destination = nodes
                .iter()
                .copied()
                .filter(|&d| {
                    d != source
                        && percent(&load, d) < threshold
                        && (load[d] + work[i]) < threshold / 100.0 * capacity[d]
                        && p.fits(i, d)
                })
                .min_by(|&a, &b| {
                    percent(&load, a)
                        .total_cmp(&percent(&load, b))
                        .then(a.cmp(&b))
                });
            if let Some(d) = destination {
                p.relocate(i, d);
                load[source] -= work[i];
                load[d] += work[i];
                moved[i] = true;
                done = true;
                break;
            }
        }
        if !done {
            stuck[source] = true;
        }
    }

    let after = std_dev(&utilisation(&load));
    Ok(balancing_solution(&p, before, after))
}

/// The workload_balancing goal's solution: the migrations, upstream's
/// indicators, and the share of instances moved as global efficacy.
fn balancing_solution(p: &Placement, before: f64, after: f64) -> Solution {
    let actions = p.migration_actions();
    let migrations = actions.len() as f64;
    let instances = p.model.instances.len() as f64;
    let indicator =
        |name: &str, description: &str, unit: Option<&str>, value: f64| EfficacyIndicator {
            name: name.into(),
            description: description.into(),
            unit: unit.map(str::to_string),
            value,
        };
    Solution {
        actions,
        efficacy_indicators: vec![
            indicator(
                "instance_migrations_count",
                "The number of VM migrations to be performed.",
                None,
                migrations,
            ),
            indicator(
                "instances_count",
                "The total number of audited instances in strategy.",
                None,
                instances,
            ),
            indicator(
                "standard_deviation_after_audit",
                "The value of resulted standard deviation.",
                None,
                after,
            ),
            indicator(
                "standard_deviation_before_audit",
                "The value of original standard deviation.",
                None,
                before,
            ),
        ],
        global_efficacy: vec![indicator(
            "live_migrations_count",
            "Ratio of migrated virtual machines to audited virtual machines",
            Some("%"),
            if instances == 0.0 {
                0.0
            } else {
                migrations / instances * 100.0
            },
        )],
    }
}

/// Upstream's `workload_stabilization` parameters. `host_choice` and
/// `retry_count` are accepted for compatibility; the search is always full
/// and deterministic (see [`workload_stabilization`]).
pub fn workload_stabilization_spec() -> Value {
    json!({
        "properties": {
            "metrics": {"description": "Metrics used as rates of cluster loads.", "type": "array", "items": {"type": "string", "enum": ["instance_cpu_usage", "instance_ram_usage"]}, "default": ["instance_cpu_usage"]},
            "thresholds": {"description": "Dict where key is a metric and value is a trigger value.", "type": "object", "properties": {"instance_cpu_usage": {"type": "number", "minimum": 0, "maximum": 1}, "instance_ram_usage": {"type": "number", "minimum": 0, "maximum": 1}}, "default": {"instance_cpu_usage": 0.1, "instance_ram_usage": 0.1}},
            "weights": {"description": "These weights used to calculate common standard deviation. Name of weight contains meter name and _weight suffix.", "type": "object", "properties": {"instance_cpu_usage_weight": {"type": "number", "minimum": 0, "maximum": 1}, "instance_ram_usage_weight": {"type": "number", "minimum": 0, "maximum": 1}}, "default": {"instance_cpu_usage_weight": 1.0, "instance_ram_usage_weight": 1.0}},
            "instance_metrics": {"description": "Mapping to get hardware statistics using instance metrics", "type": "object", "default": {"instance_cpu_usage": "host_cpu_usage", "instance_ram_usage": "host_ram_usage"}},
            "host_choice": {"description": "Method of host's choice. There are cycle, retry and fullsearch methods. Cycle will iterate hosts in cycle. Retry will get some hosts random (count defined in retry_count option). Fullsearch will return each host from list.", "type": "string", "enum": ["cycle", "retry", "fullsearch"], "default": "retry"},
            "retry_count": {"description": "Count of random returned hosts", "type": "number", "minimum": 1, "default": 1},
            "periods": {"description": "These periods are used to get statistic aggregation for instance and host metrics. The period is simply a repeating interval of time into which the samples are grouped for aggregation. Watcher uses only the last period of all received ones.", "type": "object", "properties": {"instance": {"type": "integer", "minimum": 0}, "compute_node": {"type": "integer", "minimum": 0}, "node": {"type": "integer", "minimum": 0, "default": 0}}, "default": {"instance": 720, "compute_node": 600, "node": 0}},
            "aggregation_method": {"description": "Function used to aggregate multiple measures into an aggregate.", "type": "object", "properties": {"instance": {"type": "string", "default": "mean"}, "compute_node": {"type": "string", "default": "mean"}, "node": {"type": "string", "default": ""}}, "default": {"instance": "mean", "compute_node": "mean", "node": ""}},
            "granularity": {"description": "The time between two measures in an aggregated timeseries of a metric.", "type": "number", "minimum": 0, "default": 300}
        }
    })
}

/// How many of the most and least loaded nodes a stabilization step
/// considers as sources and destinations: moving load from the top to the
/// bottom is what lowers a standard deviation, and it keeps a step cheap
/// on thousands of hosts.
const STABILIZATION_FAN: usize = 8;

/// One metric's per-node load (a fraction of the node's capacity) with the
/// sums its standard deviation needs, updated in O(1) per move.
struct Spread {
    load: Vec<f64>,
    /// Each instance's share of its node's capacity, per node capacity:
    /// `inst[i] / cap[n]` is what it adds to node n.
    inst: Vec<f64>,
    cap: Vec<f64>,
    sum: f64,
    sumsq: f64,
    count: f64,
}

impl Spread {
    fn sd(&self) -> f64 {
        if self.count == 0.0 {
            return 0.0;
        }
        let mean = self.sum / self.count;
        (self.sumsq / self.count - mean * mean).max(0.0).sqrt()
    }
    /// The standard deviation if instance `i` moved from `s` to `d`.
    fn sd_after(&self, i: usize, s: usize, d: usize) -> f64 {
        let (ls, ld) = (self.load[s], self.load[d]);
        let (ns, nd) = (
            ls - self.inst[i] / self.cap[s],
            ld + self.inst[i] / self.cap[d],
        );
        let sum = self.sum - ls - ld + ns + nd;
        let sumsq = self.sumsq - ls * ls - ld * ld + ns * ns + nd * nd;
        let mean = sum / self.count;
        (sumsq / self.count - mean * mean).max(0.0).sqrt()
    }
    fn apply(&mut self, i: usize, s: usize, d: usize) {
        let (ls, ld) = (self.load[s], self.load[d]);
        let (ns, nd) = (
            ls - self.inst[i] / self.cap[s],
            ld + self.inst[i] / self.cap[d],
        );
        self.sum += ns + nd - ls - ld;
        self.sumsq += ns * ns + nd * nd - ls * ls - ld * ld;
        self.load[s] = ns;
        self.load[d] = nd;
    }
}

/// `workload_stabilization`: while the standard deviation of some metric's
/// node load (CPU as a share of the node's vCPUs, RAM of its memory) is
/// above its threshold, make the single migration that lowers the weighted
/// standard deviation most, from one of the most loaded nodes to one of the
/// least loaded; stop when every metric is within its threshold or no move
/// helps. Unlike upstream: allocation is checked (upstream checks only
/// disk), an instance moves at most once, the search is deterministic
/// instead of random (`host_choice = retry`), and the plan does not stop as
/// soon as one of several metrics is within its threshold.
// Long because it follows upstream's workload_stabilization step by step (standard deviation per metric, simulated moves, weights), so the two can be read side by side.
pub fn workload_stabilization(
    params: &Value,
    model: &ClusterModel,
    metrics: &MetricValues,
) -> Result<Solution, StrategyError> {
    let names: Vec<String> = params
        .get("metrics")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| m.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_else(|| vec!["instance_cpu_usage".into()]);
    let mut p = Placement::new(model)?;
    let nodes: Vec<usize> = (0..model.nodes.len())
        .filter(|&n| model.nodes[n].available())
        .collect();
    let mut spreads = vec![];
    let mut thresholds = vec![];
    let mut weights = vec![];
    for name in &names {
        let cpu = name == "instance_cpu_usage";
        let (inst_metric, host_metric) = if cpu {
            (Metric::InstanceCpuUsage, Metric::HostCpuUsage)
        } else {
            (Metric::InstanceRamUsage, Metric::HostRamUsage)
        };
        let mut inst = Vec::with_capacity(model.instances.len());
        for (i, x) in model.instances.iter().enumerate() {
            let v = metrics.instance(inst_metric, &x.uuid, &x.name)?;
            // Cores or MB in use.
            inst.push(if cpu {
                v / 100.0 * p.demand(i).vcpus as f64
            } else {
                v
            });
        }
        let cap: Vec<f64> = model
            .nodes
            .iter()
            .map(|n| if cpu { n.vcpus.total } else { n.ram_mb.total } as f64)
            .map(|c| c.max(1.0))
            .collect();
        let mut load = vec![0.0; model.nodes.len()];
        for &n in &nodes {
            let host = metrics.host(host_metric, &model.nodes[n].name)?;
            load[n] = if cpu { host / 100.0 } else { host / cap[n] };
        }
        let sum = nodes.iter().map(|&n| load[n]).sum();
        let sumsq = nodes.iter().map(|&n| load[n] * load[n]).sum();
        spreads.push(Spread {
            load,
            inst,
            cap,
            sum,
            sumsq,
            count: nodes.len() as f64,
        });
        thresholds.push(
            params
                .pointer(&format!("/thresholds/{name}"))
                .and_then(Value::as_f64)
                .unwrap_or(0.1),
        );
        weights.push(
            params
                .pointer(&format!("/weights/{name}_weight"))
                .and_then(Value::as_f64)
                .unwrap_or(1.0),
        );
    }
    let weighted = |sds: &mut dyn Iterator<Item = f64>| -> f64 {
        sds.zip(&weights).map(|(sd, w)| sd * w).sum()
    };
    let before = weighted(&mut spreads.iter().map(Spread::sd));
    let unbalanced = |spreads: &[Spread]| spreads.iter().zip(&thresholds).any(|(s, t)| s.sd() > *t);
    let mut moved = vec![false; model.instances.len()];
    let mut current = before;
    while !spreads.is_empty() && unbalanced(&spreads) {
        // Sources: the most loaded by the first metric; destinations: the least.
        let mut order = nodes.clone();
        order.sort_by(|&a, &b| {
            spreads[0].load[b]
                .total_cmp(&spreads[0].load[a])
                .then(a.cmp(&b))
        });
        let sources = &order[..order.len().min(STABILIZATION_FAN)];
        let targets: Vec<usize> = order
            .iter()
            .rev()
            .take(STABILIZATION_FAN)
            .copied()
            .collect();
        let mut best: Option<(f64, usize, usize, usize)> = None;
        for &s in sources {
            for &i in p.instances_on(s) {
                if moved[i] || !p.movable(i) {
                    continue;
                }
                for &d in &targets {
                    if d == s || !p.fits(i, d) {
                        continue;
                    }
                    let sd = weighted(&mut spreads.iter().map(|x| x.sd_after(i, s, d)));
                    if sd < current && best.is_none_or(|b| sd < b.0) {
                        best = Some((sd, i, s, d));
                    }
                }
            }
        }
        let Some((sd, i, s, d)) = best else { break };
        p.relocate(i, d);
        for x in &mut spreads {
            x.apply(i, s, d);
        }
        moved[i] = true;
        current = sd;
    }
    Ok(balancing_solution(&p, before, current))
}
