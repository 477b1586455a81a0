//! The saving_energy goal: `saving_energy`, which keeps a pool of empty
//! compute nodes powered on for new instances and powers the other empty
//! ones off (or on again when the pool is too small).

use super::model::ClusterModel;
use super::placement::Placement;
use crate::solution::{proposed, Solution, StrategyError};
use serde_json::{json, Value};

/// Upstream's `saving_energy` parameters.
pub fn saving_energy_spec() -> Value {
    json!({
        "properties": {
            "free_used_percent": {"description": "a rational number, which describes the quotient of min_free_hosts_num/nodes_with_VMs_num where nodes_with_VMs_num is the number of nodes with VMs", "type": "number", "default": 10.0, "minimum": 0.0},
            "min_free_hosts_num": {"description": "minimum number of hosts without VMs but still powered on", "type": "number", "default": 1, "minimum": 0}
        }
    })
}

/// Keeps `max(nodes with instances x free_used_percent %, min_free_hosts_num)`
/// empty nodes powered on. Upstream picks the nodes to switch at random;
/// here the choice is stable: nodes are powered off from the end of the
/// name order and on from its start, so repeated audits do not flap.
/// Only enabled nodes are counted and switched.
pub fn saving_energy(params: &Value, model: &ClusterModel) -> Result<Solution, StrategyError> {
    let percent = params
        .get("free_used_percent")
        .and_then(Value::as_f64)
        .unwrap_or(10.0);
    let min_free = params
        .get("min_free_hosts_num")
        .and_then(Value::as_f64)
        .unwrap_or(1.0);
    if model.nodes.iter().any(|n| n.powered_on.is_none()) {
        return Err(StrategyError::Invalid(
            "this cloud reports no power state for its compute nodes; saving_energy needs power \
             management (upstream uses Ironic or MAAS)"
                .into(),
        ));
    }
    let p = Placement::new(model)?;
    let mut with_instances = 0usize;
    let mut free_on = vec![];
    let mut free_off = vec![];
    for (n, node) in model.nodes.iter().enumerate() {
        if !node.service_enabled {
            continue;
        }
        if !p.instances_on(n).is_empty() {
            with_instances += 1;
        } else if node.powered_on == Some(true) {
            free_on.push(node.name.clone());
        } else {
            free_off.push(node.name.clone());
        }
    }
    free_on.sort();
    free_off.sort();
    let need = (with_instances as f64 * percent / 100.0)
        .max(min_free)
        .floor() as usize;
    let power = |node: &str, state: &str| {
        proposed(
            "change_node_power_state",
            json!({"resource_id": node, "resource_name": node, "state": state}),
        )
    };
    let actions = if free_on.len() > need {
        free_on[need..]
            .iter()
            .rev()
            .map(|n| power(n, "off"))
            .collect()
    } else {
        let missing = need - free_on.len();
        free_off
            .iter()
            .take(missing)
            .map(|n| power(n, "on"))
            .collect()
    };
    Ok(Solution {
        actions,
        ..Default::default()
    })
}
