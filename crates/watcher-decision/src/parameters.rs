//! A strategy's parameters checked against its `parameters_spec` (the
//! subset of JSON schema upstream's specs use), defaults filled.

use serde_json::{json, Map, Value};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dummy::dummy_spec;

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
        let spec = crate::zone_migration::zone_migration_spec();
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
            &crate::consolidation::basic_spec(),
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
