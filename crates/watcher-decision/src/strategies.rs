//! The catalogue of goals and strategies, parameter checking, and the
//! strategies small enough to live here (`dummy`, `dummy_with_resize`,
//! `actuator`, `host_maintenance`); the others have their own modules.

use super::metrics::{Metric, MetricValues};
use super::model::ClusterModel;
use super::placement::{demand_of, Alloc};
use super::planner::PlannerKind;
use super::{balancing, consolidation, energy, noisy_neighbor, storage, thermal, zone_migration};
use serde_json::{json, Map, Value};
use watcher_cloud::Instance;
pub use watcher_core::EfficacyIndicator;
use watcher_core::EfficacySpec;

/// An action a strategy proposes, before planning.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposed {
    pub action_type: String,
    pub input_parameters: Value,
}

pub(crate) fn proposed(action_type: &str, input_parameters: Value) -> Proposed {
    Proposed {
        action_type: action_type.into(),
        input_parameters,
    }
}

/// The one shape of a migration every strategy proposes.
pub(crate) fn migrate_action(
    inst: &Instance,
    migration_type: &str,
    source: &str,
    destination: &str,
) -> Proposed {
    proposed(
        "migrate",
        json!({"migration_type": migration_type, "resource_id": inst.uuid, "resource_name": inst.name,
               "source_node": source, "destination_node": destination}),
    )
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

fn spec(name: &str, description: &str, unit: Option<&str>, schema: Value) -> EfficacySpec {
    EfficacySpec {
        name: name.into(),
        description: description.into(),
        unit: unit.map(str::to_string),
        schema,
    }
}

/// Upstream's ServerConsolidation efficacy specification.
fn server_consolidation_spec() -> Vec<EfficacySpec> {
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

/// A strategy's result.
#[derive(Debug, Clone, Default)]
pub struct Solution {
    pub actions: Vec<Proposed>,
    pub efficacy_indicators: Vec<EfficacyIndicator>,
    pub global_efficacy: Vec<EfficacyIndicator>,
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

/// Upstream's dummy parameters, except that `para1` may go up to an hour
/// (upstream caps it at 10.2 s, too short to watch a cancel happen).
fn dummy_spec() -> Value {
    json!({
        "properties": {
            "para1": {"description": "number parameter example", "type": "number", "default": 3.2, "minimum": 1.0, "maximum": 3600.0},
            "para2": {"description": "string parameter example", "type": "string", "default": "hello"}
        }
    })
}

fn dummy_with_scorer_spec() -> Value {
    json!({
        "properties": {
            "param1": {"description": "number parameter example", "type": "number", "default": 3.2, "minimum": 1.0, "maximum": 10.2},
            "param2": {"description": "string parameter example", "type": "string", "default": "hello"}
        }
    })
}

/// Upstream's dummy_with_scorer, on the cloud's own figures instead of
/// random telemetry: the mean host CPU use is classified by `dummy_scorer`
/// and the hosts' CPU uses averaged by `dummy_avg_scorer`; the results go
/// into nop messages, then a 5 s sleep.
fn dummy_with_scorer(
    model: &ClusterModel,
    metrics: &MetricValues,
) -> Result<Vec<Proposed>, StrategyError> {
    use super::scoring::find;
    let mut cpu = vec![];
    for n in &model.nodes {
        cpu.push(metrics.host(Metric::HostCpuUsage, &n.name)?);
    }
    let mean = if cpu.is_empty() {
        0.0
    } else {
        cpu.iter().sum::<f64>() / cpu.len() as f64
    };
    let gib = 1024.0 * 1024.0 * 1024.0;
    let features = json!([mean, 4.0 * gib, 2.0 * gib, 0, 0, 0, 0, 0, 0]);
    let engine = |name: &str, features: &Value| -> Result<Value, StrategyError> {
        let e = find(name)
            .ok_or_else(|| StrategyError::Invalid(format!("no scoring engine {name}")))?;
        (e.calculate)(features).map_err(|m| StrategyError::Invalid(format!("{name}: {m}")))
    };
    let workloads = [
        "idle",
        "cpu-intensive",
        "memory-intensive",
        "disk-intensive",
    ];
    let class = engine("dummy_scorer", &features)?[0].as_u64().unwrap_or(0) as usize;
    let avg = engine(
        "dummy_avg_scorer",
        &json!(if cpu.is_empty() { vec![0.0] } else { cpu }),
    )?[0]
        .as_f64()
        .unwrap_or(0.0);
    Ok(vec![
        proposed(
            "nop",
            json!({"message": "Hello from Dummy Strategy with Scorer!"}),
        ),
        proposed(
            "nop",
            json!({"message": format!("Detected Workload: {}", workloads.get(class).unwrap_or(&"idle"))}),
        ),
        proposed(
            "nop",
            json!({"message": format!("AVG Scorer result: {avg:.2}")}),
        ),
        proposed("sleep", json!({"duration": 5.0})),
    ])
}

fn actuator_spec() -> Value {
    json!({
        "properties": {
            "actions": {
                "description": "Actions to run: [{\"action_type\": ..., \"resource_id\": ..., \"input_parameters\": {...}}]",
                "type": "array",
                "items": {"type": "object"}
            }
        },
        "required": ["actions"]
    })
}

/// Upstream's host_maintenance parameters.
fn host_maintenance_spec() -> Value {
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

#[derive(Debug, thiserror::Error)]
pub enum StrategyError {
    #[error("{0}")]
    Invalid(String),
    #[error("the cloud could not be read: {0}")]
    Cloud(#[from] watcher_cloud::CloudError),
    #[error("{0}")]
    Metrics(#[from] super::metrics::MetricsError),
}

/// Checks `params` against a strategy's `parameters_spec` (the subset of JSON
/// schema upstream's specs use), fills defaults and refuses unknown keys.
/// Strings that hold numbers or booleans are accepted for those types, since
/// `watcher audit create -p k=v` sends what the user typed.
pub fn apply_parameters(spec: &Value, params: &Value) -> Result<Value, String> {
    let props = spec
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let given = match params {
        Value::Null => Map::new(),
        Value::Object(m) => m.clone(),
        _ => return Err("parameters must be a JSON object".into()),
    };
    let mut unknown: Vec<&String> = given.keys().filter(|k| !props.contains_key(*k)).collect();
    unknown.sort();
    if !unknown.is_empty() {
        let names: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
        let mut allowed: Vec<&str> = props.keys().map(String::as_str).collect();
        allowed.sort_unstable();
        return Err(format!(
            "Audit parameter(s) {} not allowed; this strategy accepts: {}",
            names.join(", "),
            if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            }
        ));
    }
    let mut out = Map::new();
    for (name, schema) in &props {
        let value = match given.get(name) {
            Some(v) => coerce(name, schema, v)?,
            None => match schema.get("default") {
                Some(d) => d.clone(),
                None => {
                    let required = spec
                        .get("required")
                        .and_then(Value::as_array)
                        .is_some_and(|r| r.iter().any(|x| x == name));
                    if required {
                        return Err(format!("parameter '{name}' is required"));
                    }
                    continue;
                }
            },
        };
        out.insert(name.clone(), value);
    }
    Ok(Value::Object(out))
}

fn coerce(name: &str, schema: &Value, v: &Value) -> Result<Value, String> {
    let ty = schema.get("type").and_then(Value::as_str).unwrap_or("");
    let value = match (ty, v) {
        ("number" | "integer", Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .map(|n| json!(n))
            .map_err(|_| format!("parameter '{name}' must be a number, not '{s}'"))?,
        ("boolean", Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" => json!(true),
            "false" => json!(false),
            _ => {
                return Err(format!(
                    "parameter '{name}' must be true or false, not '{s}'"
                ))
            }
        },
        ("array" | "object", Value::String(s)) => serde_json::from_str(s)
            .map_err(|_| format!("parameter '{name}' must be a JSON {ty}"))?,
        _ => v.clone(),
    };
    let ok = match ty {
        "number" => value.is_number(),
        "integer" => value.as_f64().is_some_and(|f| f.fract() == 0.0),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    };
    if !ok {
        return Err(format!(
            "parameter '{name}' must be of type {ty}, not {value}"
        ));
    }
    if let (Some(items), Some(choices)) = (
        value.as_array(),
        schema.pointer("/items/enum").and_then(Value::as_array),
    ) {
        if let Some(bad) = items.iter().find(|v| !choices.contains(v)) {
            let list: Vec<String> = choices.iter().map(Value::to_string).collect();
            return Err(format!(
                "parameter '{name}' may hold only {}, not {bad}",
                list.join(", ")
            ));
        }
    }
    if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
        if !choices.contains(&value) {
            let list: Vec<String> = choices.iter().map(Value::to_string).collect();
            return Err(format!(
                "parameter '{name}' must be one of {}, not {value}",
                list.join(", ")
            ));
        }
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
            if n < min {
                return Err(format!(
                    "parameter '{name}' must be at least {min}, not {n}"
                ));
            }
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
            if n > max {
                return Err(format!("parameter '{name}' must be at most {max}, not {n}"));
            }
        }
    }
    nested(name, schema, value)
}

/// The inside of objects and arrays: each item of an array against
/// `items`; an object's known properties against theirs (defaults filled),
/// its `required` ones present, and unknown ones refused when
/// `additionalProperties` is false.
fn nested(name: &str, schema: &Value, value: Value) -> Result<Value, String> {
    match value {
        Value::Array(items) => match schema.get("items").filter(|i| i.is_object()) {
            Some(item_schema) => items
                .iter()
                .enumerate()
                .map(|(i, v)| coerce(&format!("{name}[{i}]"), item_schema, v))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            None => Ok(Value::Array(items)),
        },
        Value::Object(mut map) => {
            let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                return Ok(Value::Object(map));
            };
            if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
                let mut unknown: Vec<&String> =
                    map.keys().filter(|k| !props.contains_key(*k)).collect();
                unknown.sort();
                if let Some(k) = unknown.first() {
                    let mut allowed: Vec<&str> = props.keys().map(String::as_str).collect();
                    allowed.sort_unstable();
                    return Err(format!(
                        "parameter '{name}' has an unknown key '{k}'; allowed: {}",
                        allowed.join(", ")
                    ));
                }
            }
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(r) = required.as_str().filter(|r| !map.contains_key(*r)) {
                    return Err(format!("parameter '{name}' needs '{r}'"));
                }
            }
            for (k, sub) in props {
                match map.get(k) {
                    Some(v) => {
                        let checked = coerce(&format!("{name}.{k}"), sub, v)?;
                        map.insert(k.clone(), checked);
                    }
                    None => {
                        if let Some(d) = sub.get("default") {
                            map.insert(k.clone(), d.clone());
                        }
                    }
                }
            }
            Ok(Value::Object(map))
        }
        other => Ok(other),
    }
}

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

/// `actuator`: the actions the audit's parameters list, as they are.
fn actuator(params: &Value) -> Result<Vec<Proposed>, StrategyError> {
    let list = params
        .get("actions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = vec![];
    for (n, a) in list.iter().enumerate() {
        let ty = a
            .get("action_type")
            .and_then(Value::as_str)
            .ok_or_else(|| StrategyError::Invalid(format!("actions[{n}] has no action_type")))?;
        let mut input = a
            .get("input_parameters")
            .cloned()
            .unwrap_or_else(|| json!({}));
        if let (Some(rid), Some(obj)) = (a.get("resource_id"), input.as_object_mut()) {
            obj.insert("resource_id".into(), rid.clone());
        }
        out.push(proposed(ty, input));
    }
    Ok(out)
}

/// Upstream's dummy_with_resize: two nops, a 5 s sleep, two live
/// migrations and a resize, on instances the cloud really has.
fn dummy_with_resize(params: &Value, model: &ClusterModel) -> Vec<Proposed> {
    let instances: Vec<_> = model
        .instances
        .iter()
        .filter(|i| !model.is_excluded(i))
        .collect();
    let hosts = &model.nodes;
    let mut out = vec![
        proposed(
            "nop",
            json!({"message": params.get("para2").cloned().unwrap_or(Value::Null)}),
        ),
        proposed("nop", json!({"message": "Welcome"})),
        proposed("sleep", json!({"duration": 5.0})),
    ];
    for inst in instances.iter().filter(|i| i.status == "ACTIVE").take(2) {
        if let Some(dest) = hosts.iter().find(|h| h.name != inst.host && h.available()) {
            out.push(migrate_action(inst, "live", &inst.host, &dest.name));
        }
    }
    if let Some(inst) = instances.get(2) {
        let flavor = if inst.flavor == "m1.small" {
            "m1.medium"
        } else {
            "m1.small"
        };
        out.push(proposed(
            "resize",
            json!({"resource_id": inst.uuid, "flavor": flavor}),
        ));
    }
    out
}

/// Empties `maintenance_node`: disables its nova-compute, then moves every
/// instance to `backup_node` when it has room, otherwise to the enabled host
/// with the most free memory that fits. Refuses (rather than half-plans) when
/// an instance fits nowhere. Instances the scope excludes stay; nodes outside
/// the scope are neither maintained nor used as destinations.
// Long because it follows upstream's host_maintenance step by step (backup node, then any node, instance by instance), so the two can be read side by side.
fn host_maintenance(params: &Value, model: &ClusterModel) -> Result<Vec<Proposed>, StrategyError> {
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

    #[test]
    fn defaults_are_filled_and_strings_become_numbers() {
        let out = apply_parameters(&dummy_spec(), &json!({"para1": "30"})).unwrap();
        assert_eq!(out, json!({"para1": 30.0, "para2": "hello"}));
    }

    #[test]
    fn unknown_parameters_are_refused_by_name() {
        let err = apply_parameters(&dummy_spec(), &json!({"para3": 1})).unwrap_err();
        assert!(err.contains("para3") && err.contains("para1"), "{err}");
    }

    #[test]
    fn nested_objects_and_arrays_are_checked_and_filled() {
        let spec = super::zone_migration::zone_migration_spec();
        let err = apply_parameters(&spec, &json!({"compute_nodes": [{"src": "n1"}]})).unwrap_err();
        assert!(
            err.contains("compute_nodes[0]") && err.contains("'src'"),
            "{err}"
        );
        let err =
            apply_parameters(&spec, &json!({"compute_nodes": [{"dst_node": "n1"}]})).unwrap_err();
        assert_eq!(err, "parameter 'compute_nodes[0]' needs 'src_node'");
        let err = apply_parameters(&spec, &json!({"priority": {"compute": "colour"}})).unwrap_err();
        assert!(
            err.contains("priority.compute") && err.contains("vcpu_num"),
            "{err}"
        );
        let out = apply_parameters(
            &super::consolidation::basic_spec(),
            &json!({"aggregation_method": {"instance": "max"}}),
        )
        .unwrap();
        assert_eq!(
            out["aggregation_method"],
            json!({"instance": "max", "compute_node": "mean", "node": ""})
        );
    }

    #[test]
    fn out_of_range_numbers_are_refused() {
        let err = apply_parameters(&dummy_spec(), &json!({"para1": 0.5})).unwrap_err();
        assert!(err.contains("at least"), "{err}");
    }
}

#[cfg(test)]
mod host_maintenance_tests {
    use super::*;
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
