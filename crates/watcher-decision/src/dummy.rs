//! The small strategies of tests and demonstrations: `dummy`,
//! `dummy_with_scorer`, `dummy_with_resize`, `actuator`.

use crate::metrics::{Metric, MetricValues};
use crate::model::ClusterModel;
use crate::solution::{migrate_action, proposed, Proposed, StrategyError};
use serde_json::{json, Value};

/// Upstream's dummy parameters, except that `para1` may go up to an hour
/// (upstream caps it at 10.2 s, too short to watch a cancel happen).
pub(crate) fn dummy_spec() -> Value {
    json!({
        "properties": {
            "para1": {"description": "number parameter example", "type": "number", "default": 3.2, "minimum": 1.0, "maximum": 3600.0},
            "para2": {"description": "string parameter example", "type": "string", "default": "hello"}
        }
    })
}

pub(crate) fn dummy_with_scorer_spec() -> Value {
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
pub(crate) fn dummy_with_scorer(
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

pub(crate) fn actuator_spec() -> Value {
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

/// `actuator`: the actions the audit's parameters list, as they are.
pub(crate) fn actuator(params: &Value) -> Result<Vec<Proposed>, StrategyError> {
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
pub(crate) fn dummy_with_resize(params: &Value, model: &ClusterModel) -> Vec<Proposed> {
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
