//! The action catalogue: what each action type is, independent of how it
//! runs. Its name and description (as upstream's `/v1/actions` show them),
//! the checks of its `input_parameters`, and the hosts it touches (for the
//! applier's per-host limits). The decision engine validates the plans it
//! proposes here and the API describes actions from here; the applier's
//! executors (`watcher_applier::actions`) cover exactly these types, which a
//! test there checks.

use crate::params::{self, object};
use serde_json::Value;

/// One action type of the catalogue.
pub struct ActionType {
    pub name: &'static str,
    pub description: &'static str,
    validate: fn(&Value) -> Result<(), String>,
    hosts: fn(&Value) -> Vec<String>,
}

impl ActionType {
    /// The hosts an action of this type touches, from its parameters.
    pub fn hosts(&self, params: &Value) -> Vec<String> {
        (self.hosts)(params)
    }
}

/// An action the catalogue refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionTypeError {
    #[error("unknown action type '{name}'; known types: {}", known_types().join(", "))]
    Unknown { name: String },
    #[error("invalid input for {action_type}: {reason}")]
    InvalidInput {
        action_type: &'static str,
        /// Names the field, e.g. `'duration' must be a number, not "ten"`.
        reason: String,
    },
}

/// Every action type watcherd knows.
pub static CATALOGUE: &[ActionType] = &[
    ActionType {
        name: "nop",
        description: "Logging a NOP message",
        validate: validate_nop,
        hosts: no_hosts,
    },
    ActionType {
        name: "sleep",
        description: "Wait for a given interval in seconds.",
        validate: validate_sleep,
        hosts: no_hosts,
    },
    ActionType {
        name: "migrate",
        description: "Moving a VM instance from source_node to destination_node",
        validate: validate_migrate,
        hosts: migration_hosts,
    },
    ActionType {
        name: "resize",
        description: "Resize a server with specified flavor.",
        validate: validate_resize,
        hosts: no_hosts,
    },
    ActionType {
        name: "change_nova_service_state",
        description: "Disables or enables the nova-compute service.A disabled nova-compute service can not be selected by the nova for future deployment of new server.",
        validate: validate_change_nova_service_state,
        hosts: named_host,
    },
    ActionType {
        name: "change_node_power_state",
        description: "Compute node power on/off",
        validate: validate_change_node_power_state,
        hosts: named_host,
    },
    ActionType {
        name: "volume_migrate",
        description: "Moving a volume to destination_node or type",
        validate: validate_volume_migrate,
        hosts: no_hosts,
    },
    ActionType {
        name: "stop",
        description: "Stop a VM instance",
        validate: validate_stop,
        hosts: no_hosts,
    },
];

/// The catalogue's entry for `name`.
pub fn lookup(name: &str) -> Result<&'static ActionType, ActionTypeError> {
    CATALOGUE
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| ActionTypeError::Unknown { name: name.into() })
}

/// Checks an action as a strategy proposes it or a plan carries it.
pub fn validate(action_type: &str, params: &Value) -> Result<(), ActionTypeError> {
    let t = lookup(action_type)?;
    (t.validate)(params).map_err(|reason| ActionTypeError::InvalidInput {
        action_type: t.name,
        reason,
    })
}

/// The description upstream shows for `action_type` ("" for an unknown one).
pub fn description(action_type: &str) -> &'static str {
    lookup(action_type).map(|t| t.description).unwrap_or("")
}

/// The names of the catalogue, sorted.
pub fn known_types() -> Vec<&'static str> {
    let mut names: Vec<_> = CATALOGUE.iter().map(|t| t.name).collect();
    names.sort_unstable();
    names
}

/// The fields `nop` takes; the flags after `message` make it skip or fail
/// on purpose (upstream's test hooks).
pub const NOP_FIELDS: &[&str] = &[
    "message",
    "skip_pre_condition",
    "fail_pre_condition",
    "fail_execute",
    "fail_post_condition",
];

const MIGRATE_FIELDS: &[&str] = &[
    "migration_type",
    "resource_id",
    "resource_name",
    "source_node",
    "destination_node",
    "force_complete_above",
];

fn no_hosts(_: &Value) -> Vec<String> {
    vec![]
}

fn migration_hosts(params: &Value) -> Vec<String> {
    ["source_node", "destination_node"]
        .iter()
        .filter_map(|f| params.get(*f).and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// The compute host a service or power action names (`resource_name`, else
/// `resource_id`, as upstream reads it).
pub fn named_host_of(params: &Value) -> String {
    params
        .get("resource_name")
        .or_else(|| params.get("resource_id"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn named_host(params: &Value) -> Vec<String> {
    vec![named_host_of(params)]
}

fn validate_nop(params: &Value) -> Result<(), String> {
    let p = object(params, NOP_FIELDS)?;
    params::optional_str(p, "message")?;
    for flag in &NOP_FIELDS[1..] {
        params::optional_bool(p, flag)?;
    }
    Ok(())
}

fn validate_sleep(params: &Value) -> Result<(), String> {
    let p = object(params, &["duration"])?;
    let d = params::required_number(p, "duration")?;
    if !(0.0..=86_400.0 * 7.0).contains(&d) {
        return Err(format!(
            "'duration' must be between 0 and 604800 seconds, not {d}"
        ));
    }
    Ok(())
}

fn validate_migrate(params: &Value) -> Result<(), String> {
    let p = object(params, MIGRATE_FIELDS)?;
    params::one_of(p, "migration_type", &["live", "cold"])?;
    params::uuid_field(p, "resource_id")?;
    params::required_str(p, "source_node")?;
    params::optional_str(p, "destination_node")?;
    params::optional_str(p, "resource_name")?;
    if let Some(v) = p.get("force_complete_above") {
        match v.as_f64() {
            Some(f) if (0.0..=1.0).contains(&f) => {}
            _ => {
                return Err(format!(
                    "force_complete_above must be a fraction from 0 to 1 (of the migration's progress), not {v}"
                ))
            }
        }
    }
    Ok(())
}

fn validate_resize(params: &Value) -> Result<(), String> {
    let p = object(params, &["resource_id", "flavor", "resource_name"])?;
    params::uuid_field(p, "resource_id")?;
    params::required_str(p, "flavor")?;
    params::optional_str(p, "resource_name")?;
    Ok(())
}

fn validate_stop(params: &Value) -> Result<(), String> {
    let p = object(params, &["resource_id"])?;
    params::uuid_field(p, "resource_id")?;
    Ok(())
}

fn validate_change_nova_service_state(params: &Value) -> Result<(), String> {
    let p = object(
        params,
        &["resource_id", "resource_name", "state", "disabled_reason"],
    )?;
    params::required_str(p, "resource_id")?;
    params::one_of(p, "state", &["up", "down", "enabled", "disabled"])?;
    params::optional_str(p, "resource_name")?;
    params::optional_str(p, "disabled_reason")?;
    Ok(())
}

fn validate_change_node_power_state(params: &Value) -> Result<(), String> {
    let p = object(params, &["resource_id", "resource_name", "state"])?;
    params::required_str(p, "resource_id")?;
    params::one_of(p, "state", &["on", "off"])?;
    params::optional_str(p, "resource_name")?;
    Ok(())
}

fn validate_volume_migrate(params: &Value) -> Result<(), String> {
    let p = object(
        params,
        &[
            "resource_id",
            "resource_name",
            "migration_type",
            "destination_node",
            "destination_type",
        ],
    )?;
    params::uuid_field(p, "resource_id")?;
    let kind = params::one_of(p, "migration_type", &["swap", "retype", "migrate"])?;
    params::optional_str(p, "resource_name")?;
    params::optional_str(p, "destination_type")?;
    let pool = params::optional_str(p, "destination_node")?;
    if kind != "retype" && pool.is_none() {
        return Err(format!(
            "'destination_node' is required for a {kind} migration"
        ));
    }
    if kind == "retype" && params::optional_str(p, "destination_type")?.is_none() {
        return Err("'destination_type' is required for a retype".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn invalid_inputs_are_refused_with_the_field_named() {
        let err = validate("sleep", &json!({"duration": "ten"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("'duration'"), "{err}");
        let err = validate(
            "migrate",
            &json!({"migration_type": "warp", "resource_id": "x", "source_node": "a"}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("'migration_type'"), "{err}");
        let err = validate("teleport", &json!({})).unwrap_err();
        assert_eq!(
            err,
            ActionTypeError::Unknown {
                name: "teleport".into()
            }
        );
        assert!(err.to_string().contains("unknown action type 'teleport'"));
        assert!(validate("nop", &json!({"message": "hi"})).is_ok());
    }

    #[test]
    fn a_migration_touches_its_source_and_destination() {
        let t = lookup("migrate").unwrap();
        let hosts = t.hosts(&json!({"source_node": "a", "destination_node": "b"}));
        assert_eq!(hosts, ["a", "b"]);
        assert_eq!(
            lookup("change_nova_service_state")
                .unwrap()
                .hosts(&json!({"resource_id": "id", "resource_name": "c"})),
            ["c"]
        );
        assert!(lookup("sleep").unwrap().hosts(&json!({})).is_empty());
    }
}
