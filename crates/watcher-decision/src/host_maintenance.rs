//! `host_maintenance`: empties a node for maintenance.

use crate::model::ClusterModel;
use crate::placement::{demand_of, Alloc};
use crate::solution::{migrate_action, proposed, Proposed, StrategyError};
use serde_json::{json, Value};

/// Upstream's host_maintenance parameters.
pub(crate) fn host_maintenance_spec() -> Value {
    json!({
        "properties": {
            "maintenance_node": {"description": "The name of the compute node which needs maintenance", "type": "string"},
            "backup_node": {"description": "The name of the compute node which will take the maintenance node's instances", "type": "string"},
            "disable_live_migration": {"description": "Migrate active instances cold instead of live", "type": "boolean", "default": false},
            "disable_cold_migration": {"description": "Do not move inactive instances", "type": "boolean", "default": false},
            "force_complete_above": {"description": "On cancel, force a live migration past this fraction of its progress to complete instead of rolling it back (our addition)", "type": "number", "minimum": 0.0, "maximum": 1.0}
        },
        "required": ["maintenance_node"]
    })
}

/// Empties `maintenance_node`: disables its nova-compute, then moves every
/// instance to `backup_node` when it has room, otherwise to the enabled host
/// with the most free memory that fits. Refuses (rather than half-plans) when
/// an instance fits nowhere. Instances the scope excludes stay; nodes outside
/// the scope are neither maintained nor used as destinations.
// Long because it follows upstream's host_maintenance step by step (backup node, then any node, instance by instance), so the two can be read side by side.
pub(crate) fn host_maintenance(
    params: &Value,
    model: &ClusterModel,
) -> Result<Vec<Proposed>, StrategyError> {
    let invalid = StrategyError::Invalid;
    let maint = params
        .get("maintenance_node")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let backup = params
        .get("backup_node")
        .and_then(Value::as_str)
        .map(str::to_string);
    let no_live = params
        .get("disable_live_migration")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let no_cold = params
        .get("disable_cold_migration")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let nodes = &model.nodes;
    let flavors = &model.flavors;
    let instances = &model.instances;
    let node = model.node(&maint).ok_or_else(|| {
        invalid(format!(
            "maintenance_node {maint} does not exist or is outside the audit scope"
        ))
    })?;
    // Nova migrates nothing off a host whose compute service is down.
    if !node.service_up {
        return Err(invalid(format!(
            "maintenance_node {maint}'s compute service is down: Nova cannot migrate its \
             instances (evacuate them, or bring the service back up first)"
        )));
    }
    if let Some(b) = &backup {
        match model.node(b) {
            None => {
                return Err(invalid(format!(
                    "backup_node {b} does not exist or is outside the audit scope"
                )))
            }
            Some(_) if *b == maint => {
                return Err(invalid(
                    "backup_node must differ from maintenance_node".into(),
                ))
            }
            Some(n) if !n.available() => {
                return Err(invalid(format!(
                    "backup_node {b} is disabled or its compute service is down"
                )))
            }
            Some(_) => {}
        }
    }
    // Free capacity per available host, updated as instances are placed.
    let mut free: std::collections::BTreeMap<String, Alloc> = nodes
        .iter()
        .filter(|n| n.name != maint && n.available())
        .map(|n| {
            let capacity = Alloc {
                vcpus: n.vcpus.capacity() as i64,
                ram_mb: n.ram_mb.capacity() as i64,
                disk_gb: n.disk_gb.capacity() as i64,
            };
            (n.name.clone(), capacity)
        })
        .collect();
    for i in instances {
        if let (Some(f), Some(c)) = (flavors.get(&i.flavor), free.get_mut(&i.host)) {
            c.sub(demand_of(i, f));
        }
    }
    let mut out = vec![];
    if node.service_enabled {
        out.push(proposed(
            "change_nova_service_state",
            json!({"resource_id": maint, "resource_name": maint, "state": "disabled", "disabled_reason": "watcher_maintaining"}),
        ));
    }
    let mut to_move: Vec<_> = instances
        .iter()
        .filter(|i| i.host == maint && !model.is_excluded(i))
        .collect();
    to_move.sort_by(|a, b| a.name.cmp(&b.name));
    for i in to_move {
        let active = i.status == "ACTIVE";
        let migration_type = match (active, no_live, no_cold) {
            (true, false, _) => "live",
            (true, true, false) | (false, _, false) => "cold",
            _ => {
                return Err(invalid(format!(
                    "instance {} cannot move: the migrations it would need are disabled",
                    i.name
                )))
            }
        };
        let f = flavors.get(&i.flavor).ok_or_else(|| {
            invalid(format!(
                "instance {} has unknown flavor {}",
                i.name, i.flavor
            ))
        })?;
        let need = demand_of(i, f);
        let fits = |c: &Alloc| {
            c.vcpus >= need.vcpus && c.ram_mb >= need.ram_mb && c.disk_gb >= need.disk_gb
        };
        let dest = backup
            .clone()
            .filter(|b| free.get(b).is_some_and(fits))
            .or_else(|| {
                free.iter()
                    .filter(|(_, c)| fits(c))
                    .max_by_key(|(_, c)| c.ram_mb)
                    .map(|(n, _)| n.clone())
            })
            .ok_or_else(|| {
                invalid(format!(
                    "no enabled host has room for instance {} ({})",
                    i.name, i.flavor
                ))
            })?;
        free.get_mut(&dest)
            .expect("destination is a known host")
            .sub(need);
        let mut action = migrate_action(i, migration_type, &maint, &dest);
        if let (Some(f), "live") = (params.get("force_complete_above"), migration_type) {
            action.input_parameters["force_complete_above"] = f.clone();
        }
        out.push(action);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parameters::apply_parameters;
    use crate::scope::ComputeScope;
    use watcher_cloud::scenario::Scenario;
    use watcher_cloud::simulated::SimulatedCloud;

    async fn model(cloud: &SimulatedCloud) -> ClusterModel {
        ClusterModel::from_cloud(cloud).await.unwrap()
    }

    #[tokio::test]
    async fn the_scope_keeps_excluded_instances_and_outside_nodes_out_of_the_plan() {
        let cloud = SimulatedCloud::new(&Scenario::demo());
        let all = model(&cloud).await;
        let db = all
            .instances
            .iter()
            .find(|i| i.name == "db-1")
            .unwrap()
            .uuid
            .clone();
        // Only zone az1 (compute-1, compute-2), and db-1 excluded.
        let scope = ComputeScope::resolve(
            &json!([{"compute": [{"availability_zones": [{"name": "az1"}]},
                                 {"exclude": [{"instances": [{"uuid": db}]}]}]}]),
            &all.nodes,
        )
        .unwrap();
        let scoped = all.scoped(&scope);
        let actions = host_maintenance(&json!({"maintenance_node": "compute-2"}), &scoped).unwrap();
        let moved: Vec<&str> = actions[1..]
            .iter()
            .map(|a| a.input_parameters["resource_name"].as_str().unwrap())
            .collect();
        assert_eq!(moved, ["cache-1"]);
        assert!(actions[1..]
            .iter()
            .all(|a| a.input_parameters["destination_node"] == "compute-1"));
        let err = host_maintenance(&json!({"maintenance_node": "compute-3"}), &scoped).unwrap_err();
        assert!(err.to_string().contains("outside the audit scope"), "{err}");
    }

    #[tokio::test]
    async fn the_maintenance_node_is_disabled_and_emptied_onto_hosts_with_room() {
        let cloud = SimulatedCloud::new(&Scenario::demo());
        let params = apply_parameters(
            &host_maintenance_spec(),
            &json!({"maintenance_node": "compute-2"}),
        )
        .unwrap();
        let actions = host_maintenance(&params, &model(&cloud).await).unwrap();
        assert_eq!(actions[0].action_type, "change_nova_service_state");
        let moves: Vec<(&str, &str)> = actions[1..]
            .iter()
            .map(|a| {
                (
                    a.input_parameters["resource_name"].as_str().unwrap(),
                    a.input_parameters["destination_node"].as_str().unwrap(),
                )
            })
            .collect();
        // cache-1 (m1.medium) and db-1 (m1.large) leave compute-2; compute-1 has the most free memory.
        assert_eq!(moves, [("cache-1", "compute-1"), ("db-1", "compute-1")]);
    }

    #[tokio::test]
    async fn a_backup_node_is_used_while_it_has_room_and_missing_room_is_refused() {
        let cloud = SimulatedCloud::new(&Scenario::demo());
        let params = json!({"maintenance_node": "compute-1", "backup_node": "compute-3"});
        let actions = host_maintenance(&params, &model(&cloud).await).unwrap();
        assert!(actions[1..]
            .iter()
            .all(|a| a.input_parameters["destination_node"] == "compute-3"));
        let mut tiny = Scenario::demo();
        for h in &mut tiny.hosts {
            if h.name != "compute-2" {
                h.vcpus = 1;
            }
        }
        let cloud = SimulatedCloud::new(&tiny);
        let err = host_maintenance(
            &json!({"maintenance_node": "compute-2"}),
            &model(&cloud).await,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("no enabled host has room for instance"),
            "{err}"
        );
    }
}
