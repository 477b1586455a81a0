//! The thermal_optimization and airflow_optimization goals:
//! `outlet_temperature` and `uniform_airflow`.
//!
//! Both plan as upstream does, a little at a time (the effect of a move on a
//! temperature cannot be forecast, so they are meant for CONTINUOUS audits),
//! with the shared capacity check and without moving excluded or non-running
//! instances (upstream's uniform_airflow moves every instance of a host,
//! excluded ones included, when the host is cool enough).

use super::metrics::{Metric, MetricValues};
use super::model::ClusterModel;
use super::placement::Placement;
use crate::solution::{Solution, StrategyError};
use serde_json::{json, Value};

/// Upstream's `outlet_temperature` parameters.
pub fn outlet_temperature_spec() -> Value {
    json!({
        "properties": {
            "threshold": {"description": "temperature threshold for migration", "type": "number", "default": 35.0},
            "period": {"description": "The time interval in seconds for getting statistic aggregation", "type": "number", "default": 30, "minimum": 1},
            "granularity": {"description": "The time between two measures in an aggregated timeseries of a metric.", "type": "number", "default": 300, "minimum": 1}
        }
    })
}

/// Upstream's `uniform_airflow` parameters.
pub fn uniform_airflow_spec() -> Value {
    json!({
        "properties": {
            "threshold_airflow": {"description": "airflow threshold for migration, Unit is 0.1CFM", "type": "number", "default": 400.0},
            "threshold_inlet_t": {"description": "inlet temperature threshold for migration decision", "type": "number", "default": 28.0},
            "threshold_power": {"description": "system power threshold for migration decision", "type": "number", "default": 350.0},
            "period": {"description": "aggregate time period of ceilometer", "type": "number", "default": 300, "minimum": 1},
            "granularity": {"description": "The time between two measures in an aggregated timeseries of a metric.", "type": "number", "default": 300, "minimum": 1}
        }
    })
}

fn number(params: &Value, key: &str, default: f64) -> f64 {
    params.get(key).and_then(Value::as_f64).unwrap_or(default)
}

/// A node index and its value of a metric.
type NodeValue = (usize, f64);

/// Enabled nodes with their value of `metric`, split at `threshold`:
/// (at or above, hottest first; below, coolest first).
fn split_by(
    p: &Placement,
    metrics: &MetricValues,
    metric: Metric,
    threshold: f64,
) -> Result<(Vec<NodeValue>, Vec<NodeValue>), StrategyError> {
    let (mut hot, mut cool) = (vec![], vec![]);
    for (n, node) in p.model.nodes.iter().enumerate() {
        if !node.available() {
            continue;
        }
        let v = metrics.host(metric, &node.name)?;
        if v >= threshold {
            hot.push((n, v));
        } else {
            cool.push((n, v));
        }
    }
    hot.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    cool.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    Ok((hot, cool))
}

fn solution_of(p: &Placement) -> Solution {
    Solution {
        actions: p.migration_actions(),
        ..Default::default()
    }
}

/// `outlet_temperature`: one instance leaves the hottest host at or above
/// the threshold for the coolest host below it that has room.
pub fn outlet_temperature(
    params: &Value,
    model: &ClusterModel,
    metrics: &MetricValues,
) -> Result<Solution, StrategyError> {
    let threshold = number(params, "threshold", 35.0);
    let mut p = Placement::new(model)?;
    let (hot, cool) = split_by(&p, metrics, Metric::HostOutletTemp, threshold)?;
    'hosts: for &(source, _) in &hot {
        for &i in p.instances_on(source).to_vec().iter() {
            if !p.movable(i) || p.instance(i).status != "ACTIVE" {
                continue;
            }
            if let Some(&(d, _)) = cool.iter().find(|&&(d, _)| p.fits(i, d)) {
                p.relocate(i, d);
                break 'hosts;
            }
        }
    }
    Ok(solution_of(&p))
}

/// `uniform_airflow`: from the host with the most airflow at or above the
/// threshold, every instance leaves when the host is cool and lightly
/// powered (inlet and power under their thresholds, so it can be emptied),
/// otherwise one; destinations are the hosts under the airflow threshold,
/// least airflow first, largest instance first. All or nothing: if one
/// instance finds no room, nothing moves from that host.
pub fn uniform_airflow(
    params: &Value,
    model: &ClusterModel,
    metrics: &MetricValues,
) -> Result<Solution, StrategyError> {
    let mut p = Placement::new(model)?;
    let (hot, cool) = split_by(
        &p,
        metrics,
        Metric::HostAirflow,
        number(params, "threshold_airflow", 400.0),
    )?;
    let destinations: Vec<usize> = cool.iter().map(|c| c.0).collect();
    for &(source, _) in &hot {
        let mut movable: Vec<usize> = p
            .instances_on(source)
            .iter()
            .copied()
            .filter(|&i| p.movable(i) && p.instance(i).status == "ACTIVE")
            .collect();
        if movable.is_empty() {
            continue;
        }
        let name = &model.nodes[source].name;
        let empty_it = metrics.host(Metric::HostPower, name)?
            < number(params, "threshold_power", 350.0)
            && metrics.host(Metric::HostInletTemp, name)?
                < number(params, "threshold_inlet_t", 28.0);
        movable.sort_by_key(|&i| (std::cmp::Reverse(p.demand(i).vcpus), i));
        if !empty_it {
            movable.truncate(1);
        }
        let mut placed = vec![];
        for &i in &movable {
            match destinations.iter().copied().find(|&d| p.fits(i, d)) {
                Some(d) => {
                    p.relocate(i, d);
                    placed.push(i);
                }
                None => {
                    for &j in &placed {
                        p.relocate(j, source);
                    }
                    placed.clear();
                    break;
                }
            }
        }
        if !placed.is_empty() {
            break;
        }
    }
    Ok(solution_of(&p))
}
