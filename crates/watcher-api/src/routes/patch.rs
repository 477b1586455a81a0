//! JSON-patch bodies as upstream's PATCH endpoints take them: parsed and
//! checked once, before anything is written.

use super::*;

/// A JSON-patch document as upstream validates it.
pub(super) struct PatchOp {
    pub(super) op: String,
    pub(super) path: String,
    pub(super) value: Option<Value>,
}

pub(super) const INTERNAL_PATHS: &[&str] = &[
    "/created_at",
    "/id",
    "/links",
    "/updated_at",
    "/deleted_at",
    "/uuid",
    "/status_message",
];

/// Actions may carry an operator's reason in `/status_message` (>= 1.5).
pub(super) const ACTION_INTERNAL_PATHS: &[&str] = &[
    "/created_at",
    "/id",
    "/links",
    "/updated_at",
    "/deleted_at",
    "/uuid",
];

/// `internal` lists the paths that may never be patched on this resource.
pub(super) fn parse_patch(body: &Value, internal: &[&str]) -> Result<Vec<PatchOp>, ApiError> {
    let ops = body
        .as_array()
        .ok_or_else(|| ApiError::bad_request("The patch must be a JSON array of operations."))?;
    let mut out = Vec::new();
    for op in ops {
        let o = op
            .as_object()
            .ok_or_else(|| ApiError::bad_request("Each patch operation must be a JSON object."))?;
        let kind = o.get("op").and_then(Value::as_str).unwrap_or("");
        if !matches!(kind, "add" | "replace" | "remove") {
            return Err(ApiError::bad_request(format!(
                "Invalid patch operation '{kind}': must be add, replace or remove."
            )));
        }
        let path = o.get("path").and_then(Value::as_str).unwrap_or("");
        let valid_path = path.starts_with('/')
            && path[1..].split('/').all(|seg| {
                !seg.is_empty()
                    && seg
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            });
        if !valid_path {
            return Err(ApiError::bad_request(format!(
                "Invalid patch path '{path}'."
            )));
        }
        if internal.contains(&path) {
            return Err(ApiError::bad_request(format!(
                "'{path}' is an internal attribute and can not be updated"
            )));
        }
        let value = o.get("value").cloned();
        if kind != "remove" && value.is_none() {
            return Err(ApiError::bad_request(format!(
                "'add' and 'replace' operations need a value ({path})."
            )));
        }
        out.push(PatchOp {
            op: kind.into(),
            path: path.into(),
            value,
        });
    }
    Ok(out)
}

/// Python's repr of the patch, as upstream quotes it in errors.
pub(super) fn patch_repr(ops: &[PatchOp]) -> String {
    let items: Vec<String> = ops
        .iter()
        .map(|o| {
            let v = match &o.value {
                Some(Value::String(s)) => format!(", 'value': '{s}'"),
                Some(v) => format!(", 'value': {v}"),
                None => String::new(),
            };
            format!("{{'path': '{}', 'op': '{}'{v}}}", o.path, o.op)
        })
        .collect();
    format!("[{}]", items.join(", "))
}
