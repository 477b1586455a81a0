//! The workload_balancing goal: `workload_balance`.
//!
//! Upstream's strategy moves one instance per audit (the first that fits);
//! this one keeps going: while a node is at or above the threshold, the
//! instance that brings it closest to the cluster's mean without undershooting
//! moves to the least loaded node that stays under the threshold with it.
//! Each instance moves at most once, so the plan is bounded by the number of
//! instances and never oscillates.

use super::metrics::{Metric, MetricValues};
use super::model::ClusterModel;
use super::placement::{migration_type, Placement};
use super::strategies::{migrate_action, EfficacyIndicator, Solution, StrategyError};
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
        .filter(|&n| model.nodes[n].service_enabled)
        .collect();
    let capacity: Vec<f64> = model
        .nodes
        .iter()
        .map(|n| {
            if by_ram {
                n.ram_mb as f64
            } else {
                n.vcpus as f64
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

    let moves = p.moves();
    let after = std_dev(&utilisation(&load));
    let actions = moves
        .iter()
        .map(|m| {
            let inst = p.instance(m.instance);
            migrate_action(
                inst,
                migration_type(inst).unwrap_or("live"),
                &p.node(m.from).name,
                &p.node(m.to).name,
            )
        })
        .collect();
    let instances = model.instances.len();
    let indicator =
        |name: &str, description: &str, unit: Option<&str>, value: f64| EfficacyIndicator {
            name: name.into(),
            description: description.into(),
            unit: unit.map(str::to_string),
            value,
        };
    Ok(Solution {
        actions,
        efficacy_indicators: vec![
            indicator(
                "instance_migrations_count",
                "The number of VM migrations to be performed.",
                None,
                moves.len() as f64,
            ),
            indicator(
                "instances_count",
                "The total number of audited instances in strategy.",
                None,
                instances as f64,
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
            if instances == 0 {
                0.0
            } else {
                moves.len() as f64 / instances as f64 * 100.0
            },
        )],
    })
}
