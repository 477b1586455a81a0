//! The catalogue of strategies (name, goal, parameters, planner, the
//! metrics each needs) and `execute`, which runs one and checks every
//! proposed action against the action catalogue. The goals are in
//! `goals.rs`, what strategies produce in `solution.rs`.

use crate::dummy::{
    actuator, actuator_spec, dummy_spec, dummy_with_resize, dummy_with_scorer,
    dummy_with_scorer_spec,
};
use crate::host_maintenance::{host_maintenance, host_maintenance_spec};
use crate::metrics::{Metric, MetricValues};
use crate::model::ClusterModel;
pub use crate::parameters::apply_parameters;
use crate::planner::PlannerKind;
use crate::solution::proposed;
pub use crate::solution::{Proposed, Solution, StrategyError};
use crate::{balancing, consolidation, energy, noisy_neighbor, storage, thermal, zone_migration};
use serde_json::{json, Value};

pub struct StrategyDef {
    pub name: &'static str,
    pub display_name: &'static str,
    pub goal: &'static str,
    pub parameters_spec: fn() -> Value,
    /// What the decision engine collects before the strategy runs.
    pub metrics: &'static [Metric],
    /// How its actions are ordered into a DAG.
    pub planner: PlannerKind,
}

pub const STRATEGIES: &[StrategyDef] = &[
    StrategyDef {
        name: "dummy",
        display_name: "Dummy strategy",
        goal: "dummy",
        parameters_spec: dummy_spec,
        metrics: &[],
        planner: PlannerKind::Weight,
    },
    StrategyDef {
        name: "dummy_with_resize",
        display_name: "Dummy strategy with resize",
        goal: "dummy",
        parameters_spec: dummy_spec,
        metrics: &[],
        planner: PlannerKind::Weight,
    },
    StrategyDef {
        name: "dummy_with_scorer",
        display_name: "Dummy Strategy using sample Scoring Engines",
        goal: "dummy",
        parameters_spec: dummy_with_scorer_spec,
        metrics: &[Metric::HostCpuUsage],
        planner: PlannerKind::Weight,
    },
    StrategyDef {
        name: "actuator",
        display_name: "Actuator",
        goal: "unclassified",
        parameters_spec: actuator_spec,
        metrics: &[],
        planner: PlannerKind::Weight,
    },
    StrategyDef {
        name: "basic",
        display_name: "Basic offline consolidation",
        goal: "server_consolidation",
        parameters_spec: consolidation::basic_spec,
        metrics: &[Metric::HostCpuUsage],
        planner: PlannerKind::Weight,
    },
    StrategyDef {
        name: "vm_workload_consolidation",
        display_name: "VM Workload Consolidation Strategy",
        goal: "server_consolidation",
        parameters_spec: consolidation::vm_workload_consolidation_spec,
        metrics: &[
            Metric::InstanceCpuUsage,
            Metric::InstanceRamUsage,
            Metric::HostCpuUsage,
            Metric::HostRamUsage,
        ],
        planner: PlannerKind::Weight,
    },
    StrategyDef {
        name: "node_resource_consolidation",
        display_name: "Node Resource Consolidation strategy",
        goal: "server_consolidation",
        parameters_spec: consolidation::node_resource_consolidation_spec,
        metrics: &[],
        planner: PlannerKind::NodeResourceConsolidation,
    },
    StrategyDef {
        name: "workload_balance",
        display_name: "Workload Balance Migration Strategy",
        goal: "workload_balancing",
        parameters_spec: balancing::workload_balance_spec,
        metrics: &[Metric::InstanceCpuUsage, Metric::InstanceRamUsage],
        planner: PlannerKind::WorkloadStabilization,
    },
    StrategyDef {
        name: "workload_stabilization",
        display_name: "Workload stabilization",
        goal: "workload_balancing",
        parameters_spec: balancing::workload_stabilization_spec,
        metrics: &[
            Metric::InstanceCpuUsage,
            Metric::InstanceRamUsage,
            Metric::HostCpuUsage,
            Metric::HostRamUsage,
        ],
        planner: PlannerKind::WorkloadStabilization,
    },
    StrategyDef {
        name: "storage_capacity_balance",
        display_name: "Storage Capacity Balance Strategy",
        goal: "workload_balancing",
        parameters_spec: storage::storage_capacity_balance_spec,
        metrics: &[],
        planner: PlannerKind::WorkloadStabilization,
    },
    StrategyDef {
        name: "outlet_temperature",
        display_name: "Outlet temperature based strategy",
        goal: "thermal_optimization",
        parameters_spec: thermal::outlet_temperature_spec,
        metrics: &[Metric::HostOutletTemp],
        planner: PlannerKind::Weight,
    },
    StrategyDef {
        name: "uniform_airflow",
        display_name: "Uniform airflow migration strategy",
        goal: "airflow_optimization",
        parameters_spec: thermal::uniform_airflow_spec,
        metrics: &[
            Metric::HostAirflow,
            Metric::HostInletTemp,
            Metric::HostPower,
        ],
        planner: PlannerKind::Weight,
    },
    StrategyDef {
        name: "noisy_neighbor",
        display_name: "Noisy Neighbor",
        goal: "noisy_neighbor",
        parameters_spec: noisy_neighbor::noisy_neighbor_spec,
        metrics: &[
            Metric::InstanceL3CacheUsage,
            Metric::InstanceL3CachePrevious,
        ],
        planner: PlannerKind::Weight,
    },
    StrategyDef {
        name: "saving_energy",
        display_name: "Saving Energy Strategy",
        goal: "saving_energy",
        parameters_spec: energy::saving_energy_spec,
        metrics: &[],
        planner: PlannerKind::Weight,
    },
    StrategyDef {
        name: "zone_migration",
        display_name: "Zone migration",
        goal: "hardware_maintenance",
        parameters_spec: zone_migration::zone_migration_spec,
        metrics: &[],
        planner: PlannerKind::Weight,
    },
    StrategyDef {
        name: "host_maintenance",
        display_name: "Host Maintenance Strategy",
        goal: "cluster_maintaining",
        parameters_spec: host_maintenance_spec,
        metrics: &[],
        planner: PlannerKind::Weight,
    },
];

/// Runs a strategy on the (scoped) cluster data model.
pub fn execute(
    strategy: &str,
    params: &Value,
    model: &ClusterModel,
    metrics: &MetricValues,
) -> Result<Solution, StrategyError> {
    let p = |k: &str| params.get(k).cloned().unwrap_or(Value::Null);
    let actions_only = |actions: Vec<Proposed>| Solution {
        actions,
        ..Default::default()
    };
    let solution = match strategy {
        "basic" => consolidation::basic(params, model, metrics)?,
        "vm_workload_consolidation" => {
            consolidation::vm_workload_consolidation(params, model, metrics)?
        }
        "workload_balance" => balancing::workload_balance(params, model, metrics)?,
        "workload_stabilization" => balancing::workload_stabilization(params, model, metrics)?,
        "node_resource_consolidation" => consolidation::node_resource_consolidation(params, model)?,
        "storage_capacity_balance" => storage::storage_capacity_balance(params, model)?,
        "zone_migration" => zone_migration::zone_migration(params, model)?,
        "noisy_neighbor" => noisy_neighbor::noisy_neighbor(params, model, metrics)?,
        "saving_energy" => energy::saving_energy(params, model)?,
        "outlet_temperature" => thermal::outlet_temperature(params, model, metrics)?,
        "uniform_airflow" => thermal::uniform_airflow(params, model, metrics)?,
        "dummy" => actions_only(vec![
            proposed("nop", json!({"message": p("para2")})),
            proposed("nop", json!({"message": "Welcome"})),
            proposed("sleep", json!({"duration": p("para1")})),
        ]),
        "dummy_with_resize" => actions_only(dummy_with_resize(params, model)),
        "dummy_with_scorer" => actions_only(dummy_with_scorer(model, metrics)?),
        "host_maintenance" => actions_only(host_maintenance(params, model)?),
        "actuator" => actions_only(actuator(params)?),
        other => {
            return Err(StrategyError::Invalid(format!(
                "strategy '{other}' is not implemented"
            )))
        }
    };
    for (n, a) in solution.actions.iter().enumerate() {
        watcher_core::actions::validate(&a.action_type, &a.input_parameters)
            .map_err(|e| StrategyError::Invalid(format!("action {n}: {e}")))?;
    }
    Ok(solution)
}
