//! The OpenAPI 3 description of the API, served at `/v1/openapi.json`.
//!
//! [`ROUTES`] lists every route with its methods; `tests/openapi.rs` checks
//! that it names exactly the paths `router()` registers and that each method
//! is really served, so the document cannot drift from the code.

use serde_json::{json, Map, Value};

/// One documented operation.
pub struct Operation {
    pub method: &'static str,
    /// Path under `/v1`, with `{ident}`-style parameters as in the router.
    pub path: &'static str,
    pub summary: &'static str,
    /// Success status.
    pub ok: u16,
}

const fn op(method: &'static str, path: &'static str, summary: &'static str, ok: u16) -> Operation {
    Operation {
        method,
        path,
        summary,
        ok,
    }
}

pub const ROUTES: &[Operation] = &[
    op("get", "/", "The v1 document: links to the collections", 200),
    op("get", "/openapi.json", "This document", 200),
    op("get", "/goals", "List goals", 200),
    op("get", "/goals/detail", "List goals with every field", 200),
    op("get", "/goals/{ident}", "Show a goal (UUID or name)", 200),
    op("get", "/strategies", "List strategies (filter: goal)", 200),
    op(
        "get",
        "/strategies/detail",
        "List strategies with every field",
        200,
    ),
    op(
        "get",
        "/strategies/{ident}",
        "Show a strategy (UUID or name)",
        200,
    ),
    op(
        "get",
        "/strategies/{ident}/state",
        "What the strategy needs to run",
        200,
    ),
    op(
        "get",
        "/audits",
        "List audits (filters: goal, strategy)",
        200,
    ),
    op(
        "post",
        "/audits",
        "Create an audit (ONESHOT, CONTINUOUS with an interval in seconds or cron, EVENT)",
        201,
    ),
    op("get", "/audits/detail", "List audits with every field", 200),
    op(
        "get",
        "/audits/{ident}",
        "Show an audit (UUID or name)",
        200,
    ),
    op(
        "patch",
        "/audits/{ident}",
        "Change an audit's state, name, interval, start/end time or auto_trigger (JSON patch)",
        200,
    ),
    op("delete", "/audits/{ident}", "Delete a finished audit", 204),
    op(
        "get",
        "/audit_templates",
        "List audit templates (filters: goal, strategy)",
        200,
    ),
    op("post", "/audit_templates", "Create an audit template", 201),
    op(
        "get",
        "/audit_templates/detail",
        "List audit templates with every field",
        200,
    ),
    op(
        "get",
        "/audit_templates/{ident}",
        "Show an audit template (UUID or name)",
        200,
    ),
    op(
        "patch",
        "/audit_templates/{ident}",
        "Change an audit template (JSON patch)",
        200,
    ),
    op(
        "delete",
        "/audit_templates/{ident}",
        "Delete an audit template",
        204,
    ),
    op(
        "get",
        "/action_plans",
        "List action plans (filters: audit_uuid, strategy)",
        200,
    ),
    op(
        "get",
        "/action_plans/detail",
        "List action plans with every field",
        200,
    ),
    op("get", "/action_plans/{uuid}", "Show an action plan", 200),
    op(
        "patch",
        "/action_plans/{uuid}",
        "Start or cancel an action plan (JSON patch of /state: PENDING, CANCELLED, CANCELLING)",
        200,
    ),
    op(
        "delete",
        "/action_plans/{uuid}",
        "Delete an action plan that is not running",
        204,
    ),
    op(
        "post",
        "/action_plans/{uuid}/start",
        "Start a RECOMMENDED action plan",
        200,
    ),
    op(
        "get",
        "/action_plans/{uuid}/history",
        "Every state change of the plan and its actions (extension)",
        200,
    ),
    op(
        "post",
        "/x-watcherd/action_plans/{uuid}/pause",
        "Pause an ONGOING action plan: nothing more starts, running actions finish, or \
         are aborted to run again on resume (extension; optional body {\"reason\": \"...\", \
         \"abort_running\": false})",
        200,
    ),
    op(
        "post",
        "/x-watcherd/action_plans/{uuid}/resume",
        "Resume a PAUSED action plan where it stopped (extension; optional body \
         {\"reason\": \"...\"})",
        200,
    ),
    op(
        "get",
        "/actions",
        "List actions (filters: action_plan_uuid, audit_uuid)",
        200,
    ),
    op(
        "get",
        "/actions/detail",
        "List actions with every field",
        200,
    ),
    op("get", "/actions/{uuid}", "Show an action", 200),
    op(
        "patch",
        "/actions/{uuid}",
        "Skip a PENDING action (microversion >= 1.5)",
        200,
    ),
    op(
        "post",
        "/webhooks/{ident}",
        "Run an EVENT audit (UUID or name); the body is ignored",
        202,
    ),
    op(
        "get",
        "/data_model",
        "The compute data model: servers and their hosts (microversion >= 1.3)",
        200,
    ),
    op(
        "get",
        "/services",
        "List watcherd components with ACTIVE/FAILED",
        200,
    ),
    op(
        "get",
        "/services/detail",
        "List services with every field",
        200,
    ),
    op(
        "get",
        "/services/{ident}",
        "Show a service (integer id or name)",
        200,
    ),
    op("get", "/scoring_engines", "List scoring engines", 200),
    op(
        "get",
        "/scoring_engines/detail",
        "List scoring engines with every field",
        200,
    ),
    op(
        "get",
        "/scoring_engines/{ident}",
        "Show a scoring engine",
        200,
    ),
];

fn list_parameters() -> Value {
    json!([
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}, "description": "Page size (at most 1000)"},
        {"name": "marker", "in": "query", "schema": {"type": "string"}, "description": "Last item of the previous page"},
        {"name": "sort_key", "in": "query", "schema": {"type": "string"}},
        {"name": "sort_dir", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"]}},
    ])
}

/// The whole document.
// Long because it is the OpenAPI document itself, written as data.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let full = format!("/v1{}", if r.path == "/" { "" } else { r.path });
        let entry = paths.entry(full).or_insert_with(|| json!({}));
        let mut params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let is_list = r.method == "get"
            && !r.path.contains('{')
            && r.path != "/"
            && r.path != "/openapi.json";
        if is_list {
            params.extend(list_parameters().as_array().cloned().unwrap_or_default());
        }
        let mut responses = Map::new();
        responses.insert(
            r.ok.to_string(),
            if r.ok == 204 {
                json!({"description": "Done; no body"})
            } else {
                json!({"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}})
            },
        );
        responses.insert(
            "default".into(),
            json!({"$ref": "#/components/responses/Error"}),
        );
        let mut operation =
            json!({"summary": r.summary, "parameters": params, "responses": responses});
        if matches!(r.method, "post" | "patch") {
            let schema = if r.method == "patch" {
                json!({"$ref": "#/components/schemas/JsonPatch"})
            } else {
                json!({"type": "object"})
            };
            operation["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": schema}}});
        }
        entry[r.method] = operation;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "OpenStack Watcher API (watcherd)",
            "version": "1.7",
            "description": "Watcher's v1 API as served by watcherd. Send `OpenStack-API-Version: infra-optim X.Y` (1.0 to 1.7). Bookmark paths without /v1 and trailing slashes are accepted too.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "JsonPatch": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["op", "path"],
                        "properties": {
                            "op": {"type": "string", "enum": ["add", "replace", "remove"]},
                            "path": {"type": "string", "pattern": "^(/[\\w-]+)+$"},
                            "value": {},
                        },
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error_message"],
                    "properties": {"error_message": {
                        "type": "string",
                        "description": "A JSON string holding {faultcode, faultstring, debuginfo}",
                    }},
                },
            },
            "responses": {
                "Error": {
                    "description": "Watcher error body (400, 404, 405, 406, 409, 413, 500, 503)",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_document_once() {
        let doc = document();
        let mut n = 0;
        for (_, ops) in doc["paths"].as_object().unwrap() {
            n += ops.as_object().unwrap().len();
        }
        assert_eq!(n, ROUTES.len());
        assert!(doc["paths"]["/v1/action_plans/{uuid}"]["patch"]["requestBody"].is_object());
    }
}
