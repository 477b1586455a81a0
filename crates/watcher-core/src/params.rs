//! Checks of `input_parameters`, with messages that name the field.
//! Each action lists its fields; unknown fields are refused like upstream's
//! `additionalProperties: false`.

use serde_json::{Map, Value};

pub type Params<'a> = &'a Map<String, Value>;

/// The parameters as an object whose keys are all in `allowed`.
pub fn object<'a>(params: &'a Value, allowed: &[&str]) -> Result<Params<'a>, String> {
    let obj = params
        .as_object()
        .ok_or_else(|| "input_parameters must be a JSON object".to_string())?;
    let mut unknown: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    unknown.sort_unstable();
    if !unknown.is_empty() {
        return Err(format!(
            "unknown input parameter(s): {}; allowed: {}",
            unknown.join(", "),
            allowed.join(", ")
        ));
    }
    Ok(obj)
}

pub fn required_str<'a>(p: Params<'a>, field: &str) -> Result<&'a str, String> {
    match p.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(format!("'{field}' must not be empty")),
        Some(other) => Err(format!("'{field}' must be a string, not {other}")),
        None => Err(format!("'{field}' is required")),
    }
}

pub fn optional_str<'a>(p: Params<'a>, field: &str) -> Result<Option<&'a str>, String> {
    match p.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("'{field}' must be a string, not {other}")),
    }
}

pub fn optional_bool(p: Params, field: &str) -> Result<bool, String> {
    match p.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!("'{field}' must be true or false, not {other}")),
    }
}

pub fn required_number(p: Params, field: &str) -> Result<f64, String> {
    match p.get(field) {
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| format!("'{field}' is not a usable number")),
        Some(other) => Err(format!("'{field}' must be a number, not {other}")),
        None => Err(format!("'{field}' is required")),
    }
}

pub fn one_of<'a>(p: Params<'a>, field: &str, choices: &[&str]) -> Result<&'a str, String> {
    let v = required_str(p, field)?;
    if choices.contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "'{field}' must be one of {}, not '{v}'",
            choices.join(", ")
        ))
    }
}

pub fn uuid_field<'a>(p: Params<'a>, field: &str) -> Result<&'a str, String> {
    let v = required_str(p, field)?;
    uuid::Uuid::parse_str(v)
        .map(|_| v)
        .map_err(|_| format!("'{field}' must be a UUID, not '{v}'"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_named_in_the_error() {
        let v = json!({"duration": 1, "durration": 2});
        let err = object(&v, &["duration"]).unwrap_err();
        assert!(err.contains("durration"), "{err}");
    }

    #[test]
    fn a_missing_required_field_is_named() {
        let v = json!({});
        let p = object(&v, &["duration"]).unwrap();
        assert_eq!(
            required_number(p, "duration").unwrap_err(),
            "'duration' is required"
        );
    }
}
