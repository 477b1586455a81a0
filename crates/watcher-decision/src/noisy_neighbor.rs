//! The noisy_neighbor goal: `noisy_neighbor`.
//!
//! On a host, a high-priority instance whose share of the L3 cache fell by
//! more than `cache_threshold` % while a lower-priority one's grew by as
//! much is being crowded out: the noisy one moves elsewhere. Priority comes
//! from the instance's `watcher-priority` metadata (lower is more important;
//! 5 when unset). One migration per audit, as upstream: the effect shows
//! only in the next period's measures.

use super::metrics::{Metric, MetricValues};
use super::model::ClusterModel;
use super::placement::Placement;
use crate::solution::{Solution, StrategyError};
use serde_json::{json, Value};

const DEFAULT_PRIORITY: i64 = 5;

/// Upstream's `noisy_neighbor` parameters.
pub fn noisy_neighbor_spec() -> Value {
    json!({
        "properties": {
            "cache_threshold": {"description": "Performance drop in L3_cache threshold for migration", "type": "number", "default": 35.0, "minimum": 0.0, "maximum": 100.0},
            "period": {"description": "Aggregate time period of ceilometer and gnocchi", "type": "number", "default": 100.0, "minimum": 1}
        }
    })
}

pub fn noisy_neighbor(
    params: &Value,
    model: &ClusterModel,
    metrics: &MetricValues,
) -> Result<Solution, StrategyError> {
    let t = params
        .get("cache_threshold")
        .and_then(Value::as_f64)
        .unwrap_or(35.0)
        / 100.0;
    let mut p = Placement::new(model)?;
    let priority = |i: usize| -> i64 {
        p.instance(i)
            .metadata
            .get("watcher-priority")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_PRIORITY)
    };
    let cache = |i: usize| -> Result<(f64, f64), StrategyError> {
        let inst = p.instance(i);
        Ok((
            metrics.instance(Metric::InstanceL3CachePrevious, &inst.uuid, &inst.name)?,
            metrics.instance(Metric::InstanceL3CacheUsage, &inst.uuid, &inst.name)?,
        ))
    };
    // (priority of the victim, host, noisy instance), best victim first.
    let mut found: Vec<(i64, usize, usize)> = vec![];
    let mut quiet: Vec<usize> = vec![];
    for n in 0..model.nodes.len() {
        let mut on: Vec<usize> = p.instances_on(n).to_vec();
        on.sort_by_key(|&i| (priority(i), i));
        let mut pair = None;
        if on.len() > 1 {
            'victims: for (k, &victim) in on.iter().enumerate() {
                let (before, now) = cache(victim)?;
                if now >= (1.0 - t) * before {
                    continue;
                }
                // The noisy one: lower priority, its share grew.
                for &noisy in on[k + 1..].iter().rev() {
                    if priority(noisy) <= priority(victim) || !p.movable(noisy) {
                        continue;
                    }
                    let (before, now) = cache(noisy)?;
                    if now > (1.0 + t) * before {
                        pair = Some((priority(victim), n, noisy));
                        break 'victims;
                    }
                }
            }
        }
        match pair {
            Some(x) => found.push(x),
            None if model.nodes[n].available() => quiet.push(n),
            None => {}
        }
    }
    found.sort();
    if let Some(&(_, source, noisy)) = found.first() {
        // The quiet host with the most vCPUs left.
        let dest = quiet
            .iter()
            .copied()
            .filter(|&d| d != source && p.fits(noisy, d))
            .max_by_key(|&d| (p.capacity(d).vcpus - p.used(d).vcpus, std::cmp::Reverse(d)));
        if let Some(d) = dest {
            p.relocate(noisy, d);
        }
    }
    Ok(Solution {
        actions: p.migration_actions(),
        ..Default::default()
    })
}
