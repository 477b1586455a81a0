//! The catalogue of goals, with upstream's efficacy specifications.

use serde_json::{json, Value};
use watcher_core::EfficacySpec;

fn spec(name: &str, description: &str, unit: Option<&str>, schema: Value) -> EfficacySpec {
    EfficacySpec {
        name: name.into(),
        description: description.into(),
        unit: unit.map(str::to_string),
        schema,
    }
}

/// Upstream's ServerConsolidation efficacy specification.
pub(crate) fn server_consolidation_spec() -> Vec<EfficacySpec> {
    let count = json!({"type": "integer", "minimum": 0});
    vec![
        spec(
            "compute_nodes_count",
            "The total number of enabled compute nodes.",
            None,
            count.clone(),
        ),
        spec(
            "released_compute_nodes_count",
            "The number of compute nodes to be released.",
            None,
            count.clone(),
        ),
        spec(
            "instance_migrations_count",
            "The number of VM migrations to be performed.",
            None,
            count,
        ),
    ]
}

/// Upstream's WorkloadBalancing efficacy specification.
fn workload_balancing_spec() -> Vec<EfficacySpec> {
    let count = json!({"type": "integer", "minimum": 0});
    let number = json!({"type": "number"});
    vec![
        spec(
            "instance_migrations_count",
            "The number of VM migrations to be performed.",
            None,
            count.clone(),
        ),
        spec(
            "instances_count",
            "The total number of audited instances in strategy.",
            None,
            count,
        ),
        spec(
            "standard_deviation_after_audit",
            "The value of resulted standard deviation.",
            None,
            number.clone(),
        ),
        spec(
            "standard_deviation_before_audit",
            "The value of original standard deviation.",
            None,
            number,
        ),
    ]
}

/// Upstream's HardwareMaintenance efficacy specification.
fn hardware_maintenance_spec() -> Vec<EfficacySpec> {
    let count = json!({"type": "integer", "minimum": 0});
    [
        (
            "live_migrate_instance_count",
            "The number of instances actually live migrated.",
        ),
        (
            "planned_live_migrate_instance_count",
            "The number of instances planned to live migrate.",
        ),
        (
            "cold_migrate_instance_count",
            "The number of instances actually cold migrated.",
        ),
        (
            "planned_cold_migrate_instance_count",
            "The number of instances planned to cold migrate.",
        ),
        (
            "volume_migrate_count",
            "The number of detached volumes actually migrated.",
        ),
        (
            "planned_volume_migrate_count",
            "The number of detached volumes planned to migrate.",
        ),
        (
            "volume_update_count",
            "The number of attached volumes actually migrated.",
        ),
        (
            "planned_volume_update_count",
            "The number of attached volumes planned to migrate.",
        ),
    ]
    .iter()
    .map(|(n, d)| spec(n, d, None, count.clone()))
    .collect()
}

fn no_indicators() -> Vec<EfficacySpec> {
    vec![]
}

pub struct GoalDef {
    pub name: &'static str,
    pub display_name: &'static str,
    pub efficacy_specification: fn() -> Vec<EfficacySpec>,
}

pub const GOALS: &[GoalDef] = &[
    GoalDef {
        name: "dummy",
        display_name: "Dummy goal",
        efficacy_specification: no_indicators,
    },
    GoalDef {
        name: "unclassified",
        display_name: "Unclassified",
        efficacy_specification: no_indicators,
    },
    GoalDef {
        name: "server_consolidation",
        display_name: "Server Consolidation",
        efficacy_specification: server_consolidation_spec,
    },
    GoalDef {
        name: "thermal_optimization",
        display_name: "Thermal Optimization",
        efficacy_specification: no_indicators,
    },
    GoalDef {
        name: "workload_balancing",
        display_name: "Workload Balancing",
        efficacy_specification: workload_balancing_spec,
    },
    GoalDef {
        name: "airflow_optimization",
        display_name: "Airflow Optimization",
        efficacy_specification: no_indicators,
    },
    GoalDef {
        name: "noisy_neighbor",
        display_name: "Noisy Neighbor",
        efficacy_specification: no_indicators,
    },
    GoalDef {
        name: "saving_energy",
        display_name: "Saving Energy",
        efficacy_specification: no_indicators,
    },
    GoalDef {
        name: "hardware_maintenance",
        display_name: "Hardware Maintenance",
        efficacy_specification: hardware_maintenance_spec,
    },
    GoalDef {
        name: "cluster_maintaining",
        display_name: "Cluster Maintaining",
        efficacy_specification: no_indicators,
    },
];
