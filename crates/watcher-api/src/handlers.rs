//! Route handlers. Each validates its input completely before writing
//! anything, so bad input changes nothing.

use super::error::ApiError;
use super::version::{Version, MAX, MIN};
use super::{views, AppState};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::collections::HashMap;
use uuid::Uuid;
use watcher_core::schedule::Schedule;
use watcher_core::*;
use watcher_decision::model::ClusterModel;
use watcher_decision::scope::ComputeScope;
use watcher_decision::strategies;
use watcher_store::*;

type Q = Query<HashMap<String, String>>;
type ApiResult = Result<Response, ApiError>;

/// Everything a list handler reads; one extractor so that the list and
/// `/detail` routes can share one handler.
pub struct ListRequest {
    state: AppState,
    q: HashMap<String, String>,
    headers: HeaderMap,
    ver: Version,
}

impl axum::extract::FromRequestParts<AppState> for ListRequest {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        let Query(q) = Q::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("Invalid query string: {e}")))?;
        let ver = parts
            .extensions
            .get::<Version>()
            .copied()
            .unwrap_or(super::version::MIN);
        Ok(ListRequest {
            state: state.clone(),
            q,
            headers: parts.headers.clone(),
            ver,
        })
    }
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:9322");
    format!("http://{host}")
}

fn show_deleted(headers: &HeaderMap) -> bool {
    headers.get("x-show-deleted").is_some_and(|v| !v.is_empty())
}

fn parse_uuid(kind: &str, s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s)
        .map_err(|_| ApiError::bad_request(format!("Expected a UUID for {kind} but received {s}.")))
}

fn parse_json(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|_| ApiError::bad_request("Request is not in valid JSON format"))
}

/// Reads limit/marker/sort_key/sort_dir and checks them; `sort_keys` maps
/// the API names a resource accepts to SQL columns.
fn list_query(
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    sort_keys: &[(&str, &'static str)],
) -> Result<(ListQuery, String), ApiError> {
    const MAX_LIMIT: usize = 1000;
    let limit = match q.get("limit") {
        None => MAX_LIMIT,
        Some(l) => {
            let n: i64 = l.parse().map_err(|_| {
                ApiError::bad_request(format!("Invalid limit '{l}': must be a positive integer."))
            })?;
            if n <= 0 {
                return Err(ApiError::bad_request("Limit must be positive"));
            }
            (n as usize).min(MAX_LIMIT)
        }
    };
    let marker = q
        .get("marker")
        .map(|m| parse_uuid("marker", m))
        .transpose()?;
    let key = q.get("sort_key").map(String::as_str).unwrap_or("id");
    let sort = if key == "id" {
        SortKey("x.id")
    } else {
        let col = sort_keys
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, c)| *c)
            .ok_or_else(|| {
                let names: Vec<&str> = sort_keys.iter().map(|(k, _)| *k).collect();
                ApiError::bad_request(format!(
                    "Invalid sort_key '{key}'; valid keys: id, {}",
                    names.join(", ")
                ))
            })?;
        SortKey(col)
    };
    let descending = match q.get("sort_dir").map(String::as_str) {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid sort direction: {other}. Acceptable values are 'asc' or 'desc'"
            )))
        }
    };
    let query = ListQuery {
        limit,
        marker,
        sort,
        descending,
        show_deleted: show_deleted(headers),
    };
    Ok((query, key.to_string()))
}

/// `{"<name>": [...], "next": "..."}` with `next` only on a full page.
fn collection<T>(
    name: &str,
    list: &[T],
    uuid: impl Fn(&T) -> Uuid,
    view: impl Fn(&T) -> Value,
    page: &Page,
) -> Response {
    let mut body = serde_json::Map::new();
    let q = &page.query;
    if list.len() == q.limit && q.limit > 0 {
        if let Some(last) = list.last().map(&uuid) {
            let dir = if q.descending { "desc" } else { "asc" };
            let path = if page.detail {
                format!("{name}/detail")
            } else {
                name.to_string()
            };
            body.insert(
                "next".into(),
                json!(format!(
                    "{}/v1/{path}?sort_key={}&sort_dir={dir}&limit={}&marker={last}",
                    page.base, page.key, q.limit
                )),
            );
        }
    }
    body.insert(name.into(), Value::Array(list.iter().map(view).collect()));
    Json(Value::Object(body)).into_response()
}

/// One list request's paging, ordering and link base.
struct Page {
    query: ListQuery,
    key: String,
    base: String,
    detail: bool,
}

fn page(
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    sort_keys: &[(&str, &'static str)],
    detail: bool,
) -> Result<Page, ApiError> {
    let (query, key) = list_query(q, headers, sort_keys)?;
    Ok(Page {
        query,
        key,
        base: base_url(headers),
        detail,
    })
}

// ----- roots ---------------------------------------------------------------------

pub async fn root(headers: HeaderMap) -> Json<Value> {
    let base = base_url(&headers);
    let v = json!({"id": "v1", "status": "CURRENT", "min_version": MIN.to_string(), "max_version": MAX.to_string(),
        "links": [{"href": format!("{base}/v1/"), "rel": "self"}]});
    Json(json!({
        "name": "OpenStack Watcher API",
        "description": "Watcher is an OpenStack project which aims to improve physical resources usage through better VM placement.",
        "versions": [v.clone()],
        "default_version": v,
    }))
}

pub async fn v1_root(headers: HeaderMap, Extension(ver): Extension<Version>) -> Json<Value> {
    let base = base_url(&headers);
    let mut doc = serde_json::Map::new();
    doc.insert("id".into(), json!("v1"));
    doc.insert(
        "media_types".into(),
        json!([{"base": "application/json", "type": "application/vnd.openstack.watcher.v1+json"}]),
    );
    doc.insert("links".into(), json!([{"href": format!("{base}/v1/"), "rel": "self"},
        {"href": "http://docs.openstack.org/developer/watcher/dev/api-spec-v1.html", "rel": "describedby", "type": "text/html"}]));
    let mut resources = vec![
        "audit_templates",
        "audits",
        "actions",
        "action_plans",
        "scoring_engines",
        "services",
    ];
    if ver.at_least(1, 3) {
        resources.push("data_model");
    }
    if ver.at_least(1, 4) {
        resources.push("webhooks");
    }
    for r in resources {
        doc.insert(r.into(), json!([{"href": format!("{base}/v1/{r}/"), "rel": "self"}, {"href": format!("{base}/{r}/"), "rel": "bookmark"}]));
    }
    Json(Value::Object(doc))
}

// ----- goals and strategies --------------------------------------------------------

const GOAL_SORT: &[(&str, &str)] = &[
    ("uuid", "x.uuid"),
    ("name", "x.name"),
    ("display_name", "x.display_name"),
];
const STRATEGY_SORT: &[(&str, &str)] = &[
    ("uuid", "x.uuid"),
    ("name", "x.name"),
    ("display_name", "x.display_name"),
    ("goal_uuid", "g.uuid"),
    ("goal_name", "g.name"),
];

pub async fn list_goals(r: ListRequest, detail: bool) -> ApiResult {
    let ListRequest {
        state, q, headers, ..
    } = r;
    let page = page(&q, &headers, GOAL_SORT, detail)?;
    let goals = state.store.list_goals(page.query.clone()).await?;

    Ok(collection(
        "goals",
        &goals,
        |g| g.uuid,
        |g| views::goal(g, &page.base, detail),
        &page,
    ))
}

pub async fn show_goal(
    State(s): State<AppState>,
    Path(ident): Path<String>,
    h: HeaderMap,
) -> ApiResult {
    let g = s.store.get_goal(&ident).await?;
    Ok(Json(views::goal(&g, &base_url(&h), true)).into_response())
}

pub async fn list_strategies(r: ListRequest, detail: bool) -> ApiResult {
    let ListRequest {
        state, q, headers, ..
    } = r;
    let page = page(&q, &headers, STRATEGY_SORT, detail)?;
    let list = state
        .store
        .list_strategies(q.get("goal").cloned(), page.query.clone())
        .await?;

    Ok(collection(
        "strategies",
        &list,
        |s| s.uuid,
        |s| views::strategy(s, &page.base, detail),
        &page,
    ))
}

pub async fn show_strategy(
    State(s): State<AppState>,
    Path(ident): Path<String>,
    h: HeaderMap,
) -> ApiResult {
    let st = s.store.get_strategy(&ident).await?;
    Ok(Json(views::strategy(&st, &base_url(&h), true)).into_response())
}

pub async fn strategy_state(State(s): State<AppState>, Path(ident): Path<String>) -> ApiResult {
    let st = s.store.get_strategy(&ident).await?;
    Ok(Json(json!([
        {"type": "Datasource", "state": "available", "mandatory": "", "comment": "simulated cloud metrics"},
        {"type": "Name", "state": st.name, "mandatory": "", "comment": ""},
    ]))
    .into_response())
}

// ----- audits ------------------------------------------------------------------------

const AUDIT_SORT: &[(&str, &str)] = &[
    ("uuid", "x.uuid"),
    ("name", "x.name"),
    ("audit_type", "x.audit_type"),
    ("state", "x.state"),
    ("goal_uuid", "g.uuid"),
    ("goal_name", "g.name"),
    ("strategy_uuid", "s.uuid"),
    ("strategy_name", "s.name"),
    ("created_at", "x.created_at"),
    ("updated_at", "x.updated_at"),
];

pub async fn list_audits(r: ListRequest, detail: bool) -> ApiResult {
    let ListRequest {
        state,
        q,
        headers,
        ver,
    } = r;
    let page = page(&q, &headers, AUDIT_SORT, detail)?;
    let filter = AuditFilter {
        goal: q.get("goal").cloned(),
        strategy: q.get("strategy").cloned(),
    };
    let list = state.store.list_audits(filter, page.query.clone()).await?;

    Ok(collection(
        "audits",
        &list,
        |a| a.uuid,
        |a| views::audit(a, &page.base, detail, ver),
        &page,
    ))
}

pub async fn show_audit(
    State(s): State<AppState>,
    Path(ident): Path<String>,
    h: HeaderMap,
    Extension(v): Extension<Version>,
) -> ApiResult {
    let a = s.store.get_audit(&ident, show_deleted(&h)).await?;
    Ok(Json(views::audit(&a, &base_url(&h), true, v)).into_response())
}

pub async fn create_audit(
    State(s): State<AppState>,
    h: HeaderMap,
    Extension(ver): Extension<Version>,
    body: Bytes,
) -> ApiResult {
    let body = parse_json(&body)?;
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("The audit must be a JSON object."))?;
    const ALLOWED: &[&str] = &[
        "audit_type",
        "audit_template_uuid",
        "goal",
        "strategy",
        "name",
        "parameters",
        "interval",
        "auto_trigger",
        "start_time",
        "end_time",
        "force",
    ];
    const READ_ONLY: &[&str] = &[
        "state",
        "scope",
        "hostname",
        "uuid",
        "created_at",
        "updated_at",
        "deleted_at",
        "status_message",
    ];
    for k in obj.keys() {
        if READ_ONLY.contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Cannot set read only field: {k}."
            )));
        }
        if !ALLOWED.contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Unknown attribute for argument audit: {k}"
            )));
        }
    }
    let text = |k: &str| -> Result<Option<String>, ApiError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(ApiError::bad_request(format!("Invalid input for field/attribute {k}. Value: {other}. Wrong type, expected a string."))),
        }
    };
    let flag = |k: &str| -> Result<bool, ApiError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(ApiError::bad_request(format!("Invalid input for field/attribute {k}. Value: {other}. Wrong type, expected a boolean."))),
        }
    };
    let audit_type: AuditType = match text("audit_type")? {
        None => {
            return Err(ApiError::bad_request(
                "Mandatory field missing: audit_type.",
            ))
        }
        Some(t) => t
            .parse()
            .map_err(|_| ApiError::bad_request(format!("Audit type {t} could not be found")))?,
    };
    // python-watcherclient sends the interval as a string; a JSON number is
    // read the same way.
    let interval = match obj.get("interval") {
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => text("interval")?,
    };
    let interval = match (audit_type, interval) {
        (AuditType::Continuous, None) => {
            return Err(ApiError::bad_request(
                "Interval of audit must be specified for CONTINUOUS.",
            ))
        }
        (AuditType::Continuous, Some(i)) => Some(checked_interval(&i)?),
        (_, Some(_)) => {
            return Err(ApiError::bad_request(format!(
                "Interval of audit must not be set for {audit_type}."
            )))
        }
        (_, None) => None,
    };
    let times_given = ["start_time", "end_time"]
        .iter()
        .any(|k| obj.get(*k).is_some_and(|v| !v.is_null()));
    if times_given && !ver.at_least(1, 1) {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "start_time and end_time need API microversion 1.1 or higher.",
        ));
    }
    if times_given && audit_type == AuditType::Oneshot {
        return Err(ApiError::bad_request(
            "Start or End time of audit must not be set for ONESHOT.",
        ));
    }
    let start_time = text("start_time")?
        .map(|t| parse_time("start_time", &t))
        .transpose()?;
    let end_time = text("end_time")?
        .map(|t| parse_time("end_time", &t))
        .transpose()?;
    check_time_window(start_time, end_time)?;
    let template = match text("audit_template_uuid")? {
        Some(t) => {
            if obj.get("goal").is_some_and(|g| !g.is_null()) {
                return Err(ApiError::bad_request(
                    "Give either a goal or an audit_template_uuid, not both.",
                ));
            }
            let uuid = parse_uuid("audit_template_uuid", &t)?;
            Some(s.store.get_audit_template(&uuid.to_string()).await?)
        }
        None => None,
    };
    let (goal_ident, strategy_ident) = match &template {
        Some(t) => (
            t.goal_uuid.to_string(),
            text("strategy")?.or(t.strategy_uuid.map(|u| u.to_string())),
        ),
        None => (
            text("goal")?.ok_or_else(|| {
                ApiError::bad_request("A goal or audit_template_uuid must be provided.")
            })?,
            text("strategy")?,
        ),
    };
    let (goal, strategy) =
        resolve_goal_strategy(&s, &goal_ident, strategy_ident.as_deref()).await?;
    // A template's default parameters sit under the audit's own.
    let mut given = template
        .as_ref()
        .and_then(|t| t.default_parameters.clone())
        .unwrap_or_else(|| json!({}));
    match obj.get("parameters") {
        None | Some(Value::Null) => {}
        Some(Value::Object(p)) => {
            for (k, v) in p {
                given[k] = v.clone();
            }
        }
        Some(_) => return Err(ApiError::bad_request("parameters must be a JSON object.")),
    }
    let parameters = strategies::apply_parameters(&strategy.parameters_spec, &given)
        .map_err(ApiError::bad_request)?;
    let name = match text("name")? {
        Some(n) => checked_name("audit", n)?,
        None => {
            let n = format!(
                "{}-{}",
                strategy.name,
                chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f")
            );
            n.chars().take(63).collect()
        }
    };
    let new = NewAudit {
        uuid: Uuid::new_v4(),
        name,
        audit_type,
        goal_id: goal.id,
        strategy_id: Some(strategy.id),
        parameters,
        interval,
        scope: template
            .as_ref()
            .map(|t| t.scope.clone())
            .unwrap_or_else(|| json!([])),
        auto_trigger: flag("auto_trigger")?,
        force: flag("force")?,
        start_time,
        end_time,
    };
    let audit = s.store.create_audit(new).await?;
    let base = base_url(&h);
    let location = format!("{base}/v1/audits/{}", audit.uuid);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(views::audit(&audit, &base, true, ver)),
    )
        .into_response())
}

/// A CONTINUOUS audit's interval: seconds or a cron expression that fires.
fn checked_interval(text: &str) -> Result<String, ApiError> {
    text.parse::<Schedule>()
        .map(|_| text.trim().to_string())
        .map_err(|why| {
            ApiError::bad_request(format!(
                "Invalid interval: {why}. Give a number of seconds (e.g. 3600) or a cron \
                 expression (e.g. '0 */6 * * *')."
            ))
        })
}

/// An ISO 8601 time as python-watcherclient passes it on: with an offset,
/// or without one (then UTC, where upstream uses its server's local zone).
fn parse_time(field: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc());
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(text, format) {
            return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
        }
    }
    Err(ApiError::bad_request(format!(
        "Invalid {field} '{text}': give an ISO 8601 time such as 2026-12-01T08:00:00 (UTC) \
         or 2026-12-01T09:00:00+01:00."
    )))
}

fn check_time_window(
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
) -> Result<(), ApiError> {
    match (start, end) {
        (Some(s), Some(e)) if e <= s => Err(ApiError::bad_request(
            "The end_time of an audit must be after its start_time.",
        )),
        _ => Ok(()),
    }
}

/// A name as upstream stores it: 1 to 63 characters, no control characters.
fn checked_name(kind: &str, n: String) -> Result<String, ApiError> {
    if n.trim().is_empty() || n.chars().count() > 63 || n.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "The {kind} name must be 1 to 63 characters, with no control characters."
        )));
    }
    Ok(n)
}

/// The goal, and the strategy (given, or the goal's first), which must
/// belong to the goal.
async fn resolve_goal_strategy(
    s: &AppState,
    goal: &str,
    strategy: Option<&str>,
) -> Result<(Goal, Strategy), ApiError> {
    let goal = s.store.get_goal(goal).await?;
    let strategy = match strategy {
        Some(st) => {
            let st = s.store.get_strategy(st).await?;
            if st.goal_id != goal.id {
                return Err(ApiError::bad_request(format!(
                    "Strategy {} is not available for goal {}.",
                    st.name, goal.name
                )));
            }
            st
        }
        // Upstream refuses parameters without a strategy; we use the goal's first strategy instead.
        None => {
            let query = ListQuery {
                limit: 1,
                ..Default::default()
            };
            let list = s
                .store
                .list_strategies(Some(goal.name.clone()), query)
                .await?;
            list.into_iter().next().ok_or_else(|| {
                ApiError::bad_request(format!("No strategy achieves goal {}.", goal.name))
            })?
        }
    };
    Ok((goal, strategy))
}

// ----- action plans ---------------------------------------------------------------

const PLAN_SORT: &[(&str, &str)] = &[
    ("uuid", "x.uuid"),
    ("state", "x.state"),
    ("audit_uuid", "a.uuid"),
    ("strategy_uuid", "s.uuid"),
    ("strategy_name", "s.name"),
    ("created_at", "x.created_at"),
    ("updated_at", "x.updated_at"),
];

pub async fn list_plans(r: ListRequest, detail: bool) -> ApiResult {
    let ListRequest {
        state,
        q,
        headers,
        ver,
    } = r;
    let page = page(&q, &headers, PLAN_SORT, detail)?;
    let filter = PlanFilter {
        audit_uuid: q
            .get("audit_uuid")
            .map(|a| parse_uuid("audit_uuid", a))
            .transpose()?,
        strategy: q.get("strategy").cloned(),
    };
    let list = state.store.list_plans(filter, page.query.clone()).await?;

    Ok(collection(
        "action_plans",
        &list,
        |p| p.uuid,
        |p| views::action_plan(p, &page.base, detail, ver),
        &page,
    ))
}

pub async fn show_plan(
    State(s): State<AppState>,
    Path(id): Path<String>,
    h: HeaderMap,
    Extension(v): Extension<Version>,
) -> ApiResult {
    let uuid = parse_uuid("action plan", &id)?;
    let p = s.store.get_plan(uuid, show_deleted(&h)).await?;
    Ok(Json(views::action_plan(&p, &base_url(&h), true, v)).into_response())
}

/// A JSON-patch document as upstream validates it.
struct PatchOp {
    op: String,
    path: String,
    value: Option<Value>,
}

const INTERNAL_PATHS: &[&str] = &[
    "/created_at",
    "/id",
    "/links",
    "/updated_at",
    "/deleted_at",
    "/uuid",
    "/status_message",
];

/// Actions may carry an operator's reason in `/status_message` (>= 1.5).
const ACTION_INTERNAL_PATHS: &[&str] = &[
    "/created_at",
    "/id",
    "/links",
    "/updated_at",
    "/deleted_at",
    "/uuid",
];

/// `internal` lists the paths that may never be patched on this resource.
fn parse_patch(body: &Value, internal: &[&str]) -> Result<Vec<PatchOp>, ApiError> {
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
fn patch_repr(ops: &[PatchOp]) -> String {
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

pub async fn patch_plan(
    State(s): State<AppState>,
    Path(id): Path<String>,
    h: HeaderMap,
    Extension(ver): Extension<Version>,
    body: Bytes,
) -> ApiResult {
    let uuid = parse_uuid("action plan", &id)?;
    let ops = parse_patch(&parse_json(&body)?, INTERNAL_PATHS)?;
    let plan = s.store.get_plan(uuid, false).await?;
    let mut target: Option<ActionPlanState> = Some(plan.state);
    for op in &ops {
        if op.path != "/state" {
            continue;
        }
        target = match (&*op.op, &op.value) {
            ("remove", _) => None,
            (_, Some(Value::String(v))) => Some(v.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "Couldn't apply patch '{}'. Reason: Invalid state: {v}",
                    patch_repr(&ops)
                ))
            })?),
            (_, Some(other)) => {
                return Err(ApiError::bad_request(format!(
                    "Couldn't apply patch '{}'. Reason: Invalid state: {other}",
                    patch_repr(&ops)
                )))
            }
            _ => None,
        };
    }
    let refuse = |from: ActionPlanState, to: &str| {
        ApiError::bad_request(format!(
            "Couldn't apply patch '{}'. Reason: State transition not allowed: ({from} -> {to})",
            patch_repr(&ops)
        ))
    };
    let Some(target) = target else {
        return Err(refuse(plan.state, "None"));
    };
    let base = base_url(&h);
    let cancel = matches!(
        target,
        ActionPlanState::Cancelled | ActionPlanState::Cancelling
    );
    // A cancel is an intent, not a pair of states: it is re-evaluated if the
    // applier moved the plan between our read and our write.
    let mut current = plan.state;
    for _ in 0..5 {
        let to = if cancel {
            match current {
                ActionPlanState::Recommended | ActionPlanState::Pending => {
                    ActionPlanState::Cancelled
                }
                ActionPlanState::Ongoing => ActionPlanState::Cancelling,
                // A second cancel is not an error: the plan is returned as it is.
                ActionPlanState::Cancelling | ActionPlanState::Cancelled => {
                    let p = s.store.get_plan(uuid, false).await?;
                    return Ok(Json(views::action_plan(&p, &base, true, ver)).into_response());
                }
                _ => target,
            }
        } else {
            target
        };
        if to == ActionPlanState::Deleted || !plan_transition_allowed(current, to, Actor::Api) {
            return Err(refuse(current, to.as_str()));
        }
        let reason = if cancel {
            "cancelled by operator"
        } else {
            "started by operator"
        };
        match s
            .store
            .transition_plan(uuid, current, to, Actor::Api, reason, PlanUpdate::default())
            .await
        {
            Ok(p) => return Ok(Json(views::action_plan(&p, &base, true, ver)).into_response()),
            Err(StoreError::Conflict { current: now, .. }) => {
                current = now
                    .plan()
                    .ok_or_else(|| ApiError::conflict("The action plan changed state; retry."))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict(
        "The action plan kept changing state; retry.",
    ))
}

pub async fn start_plan(
    State(s): State<AppState>,
    Path(id): Path<String>,
    h: HeaderMap,
    Extension(ver): Extension<Version>,
) -> ApiResult {
    let uuid = parse_uuid("action plan", &id)?;
    let plan = s.store.get_plan(uuid, false).await?;
    if plan.state != ActionPlanState::Recommended {
        return Err(ApiError::bad_request(format!(
            "Couldn't start when state is '{}'.",
            plan.state
        )));
    }
    match s
        .store
        .transition_plan(
            uuid,
            ActionPlanState::Recommended,
            ActionPlanState::Pending,
            Actor::Api,
            "started by operator",
            PlanUpdate::default(),
        )
        .await
    {
        Ok(p) => Ok(Json(views::action_plan(&p, &base_url(&h), true, ver)).into_response()),
        Err(StoreError::Conflict { current, .. }) => Err(ApiError::bad_request(format!(
            "Couldn't start when state is '{current}'."
        ))),
        Err(e) => Err(e.into()),
    }
}

pub async fn delete_plan(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let uuid = parse_uuid("action plan", &id)?;
    let plan = s.store.get_plan(uuid, false).await?;
    if !plan.state.is_deletable() {
        return Err(ApiError::bad_request(format!(
            "Couldn't delete when state is '{}'.",
            plan.state
        )));
    }
    match s
        .store
        .transition_plan(
            uuid,
            plan.state,
            ActionPlanState::Deleted,
            Actor::Api,
            "deleted by operator",
            PlanUpdate::default(),
        )
        .await
    {
        Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(StoreError::Conflict { current, .. }) => Err(ApiError::bad_request(format!(
            "Couldn't delete when state is '{current}'."
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Our extension: every state change of the plan and its actions.
pub async fn plan_history(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let uuid = parse_uuid("action plan", &id)?;
    s.store.get_plan(uuid, true).await?;
    let rows = s.store.plan_history(uuid).await?;
    Ok(
        Json(json!({"history": rows.iter().map(views::history_entry).collect::<Vec<_>>()}))
            .into_response(),
    )
}

// ----- actions -------------------------------------------------------------------------

const ACTION_SORT: &[(&str, &str)] = &[
    ("uuid", "x.uuid"),
    ("action_type", "x.action_type"),
    ("state", "x.state"),
    ("action_plan_uuid", "p.uuid"),
    ("created_at", "x.created_at"),
    ("updated_at", "x.updated_at"),
];

pub async fn list_actions(r: ListRequest, detail: bool) -> ApiResult {
    let ListRequest {
        state,
        q,
        headers,
        ver,
    } = r;
    let page = page(&q, &headers, ACTION_SORT, detail)?;
    let filter = ActionFilter {
        action_plan_uuid: q
            .get("action_plan_uuid")
            .map(|a| parse_uuid("action_plan_uuid", a))
            .transpose()?,
        audit_uuid: q
            .get("audit_uuid")
            .map(|a| parse_uuid("audit_uuid", a))
            .transpose()?,
    };
    if filter.action_plan_uuid.is_some() && filter.audit_uuid.is_some() {
        return Err(ApiError::bad_request(
            "Filtering actions on both audit and action-plan is prohibited",
        ));
    }
    let list = state.store.list_actions(filter, page.query.clone()).await?;

    Ok(collection(
        "actions",
        &list,
        |a| a.uuid,
        |a| {
            views::action(
                a,
                &page.base,
                detail,
                ver,
                watcher_core::actions::description(&a.action_type),
            )
        },
        &page,
    ))
}

pub async fn show_action(
    State(s): State<AppState>,
    Path(id): Path<String>,
    h: HeaderMap,
    Extension(v): Extension<Version>,
) -> ApiResult {
    let uuid = parse_uuid("action", &id)?;
    let a = s.store.get_action(uuid, show_deleted(&h)).await?;
    Ok(Json(views::action(
        &a,
        &base_url(&h),
        true,
        v,
        watcher_core::actions::description(&a.action_type),
    ))
    .into_response())
}

/// Skip (microversion >= 1.5): PENDING -> SKIPPED while the plan is
/// RECOMMENDED or PENDING; 409 otherwise, as upstream.
pub async fn patch_action(
    State(s): State<AppState>,
    Path(id): Path<String>,
    h: HeaderMap,
    Extension(ver): Extension<Version>,
    body: Bytes,
) -> ApiResult {
    if !ver.at_least(1, 5) {
        return Err(ApiError::bad_request(
            "API microversion 1.5 or higher is required.",
        ));
    }
    let uuid = parse_uuid("action", &id)?;
    let ops = parse_patch(&parse_json(&body)?, ACTION_INTERNAL_PATHS)?;
    let mut state: Option<ActionState> = None;
    let mut reason: Option<String> = None;
    for op in &ops {
        if op.op == "remove" {
            return Err(ApiError::bad_request(format!("Cannot remove {}.", op.path)));
        }
        match (op.path.as_str(), &op.value) {
            ("/state", Some(Value::String(v))) => {
                state = Some(
                    v.parse()
                        .map_err(|_| ApiError::bad_request(format!("Invalid state: {v}")))?,
                )
            }
            ("/status_message", Some(Value::String(v))) => reason = Some(v.clone()),
            (p, _) => {
                return Err(ApiError::bad_request(format!(
                    "{} is not an allowed attribute or has a wrong value.",
                    &p[1..]
                )))
            }
        }
    }
    let action = s.store.get_action(uuid, false).await?;
    let to = state.unwrap_or(action.state);
    if to != action.state && !(action.state == ActionState::Pending && to == ActionState::Skipped) {
        return Err(ApiError::conflict(format!(
            "State transition not allowed: ({} -> {to})",
            action.state
        )));
    }
    if to != ActionState::Skipped {
        return Err(ApiError::conflict(
            "status_message can only be changed on a SKIPPED action.",
        ));
    }
    let message = match reason {
        Some(r) => format!("Action skipped by user. Reason: {r}"),
        None => "Action skipped by user.".to_string(),
    };
    match s.store.skip_action(uuid, message).await {
        Ok(a) => Ok(Json(views::action(
            &a,
            &base_url(&h),
            true,
            ver,
            watcher_core::actions::description(&a.action_type),
        ))
        .into_response()),
        Err(StoreError::PlanNotRunning { state, .. }) => Err(ApiError::conflict(format!(
            "State update not allowed for actionplan state: {state}"
        ))),
        Err(StoreError::Conflict { current, .. }) => Err(ApiError::conflict(format!(
            "State transition not allowed: ({current} -> SKIPPED)"
        ))),
        Err(e) => Err(e.into()),
    }
}

// ----- audits: update and delete ----------------------------------------------------

/// Audit PATCH: `/state` along upstream's audit table (e.g. cancel with
/// `replace /state CANCELLED`), and `/name`.
pub async fn patch_audit(
    State(s): State<AppState>,
    Path(ident): Path<String>,
    h: HeaderMap,
    Extension(ver): Extension<Version>,
    body: Bytes,
) -> ApiResult {
    let ops = parse_patch(&parse_json(&body)?, INTERNAL_PATHS)?;
    let audit = s.store.get_audit(&ident, false).await?;
    let mut state = audit.state;
    let mut edit = AuditEdit::default();
    let refuse = |why: String| {
        ApiError::bad_request(format!(
            "Couldn't apply patch '{}'. Reason: {why}",
            patch_repr(&ops)
        ))
    };
    for op in &ops {
        match (op.path.as_str(), op.op.as_str(), &op.value) {
            ("/interval", _, _) if audit.audit_type != AuditType::Continuous => {
                return Err(refuse(format!(
                    "Interval of audit must not be set for {}.",
                    audit.audit_type
                )))
            }
            ("/interval", "remove", _) | ("/interval", _, None | Some(Value::Null)) => {
                return Err(refuse("a CONTINUOUS audit needs an interval".into()))
            }
            ("/interval", _, Some(Value::String(v))) => edit.interval = Some(checked_interval(v)?),
            ("/interval", _, Some(Value::Number(n))) => {
                edit.interval = Some(checked_interval(&n.to_string())?)
            }
            ("/start_time" | "/end_time", _, _) if audit.audit_type == AuditType::Oneshot => {
                return Err(refuse(
                    "Start or End time of audit must not be set for ONESHOT.".into(),
                ))
            }
            ("/start_time" | "/end_time", _, _) if !ver.at_least(1, 1) => {
                return Err(ApiError::new(
                    StatusCode::NOT_ACCEPTABLE,
                    "start_time and end_time need API microversion 1.1 or higher.",
                ))
            }
            (p @ ("/start_time" | "/end_time"), o, v) => {
                let value = match (o, v) {
                    ("remove", _) | (_, None | Some(Value::Null)) => None,
                    (_, Some(Value::String(t))) => Some(parse_time(&p[1..], t)?),
                    _ => return Err(refuse(format!("{} must be a time string", &p[1..]))),
                };
                if p == "/start_time" {
                    edit.start_time = Some(value);
                } else {
                    edit.end_time = Some(value);
                }
            }
            ("/auto_trigger", "remove", _) => edit.auto_trigger = Some(false),
            ("/auto_trigger", _, Some(Value::Bool(b))) => edit.auto_trigger = Some(*b),
            ("/auto_trigger", _, _) => {
                return Err(refuse("auto_trigger must be true or false".into()))
            }
            ("/state", "remove", _) | ("/state", _, Some(Value::Null)) => {
                return Err(ApiError::bad_request(format!(
                    "Couldn't apply patch '{}'. Reason: the state cannot be removed",
                    patch_repr(&ops)
                )))
            }
            ("/state", _, Some(Value::String(v))) => {
                state = v.parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "Couldn't apply patch '{}'. Reason: Invalid state: {v}",
                        patch_repr(&ops)
                    ))
                })?
            }
            ("/name", "remove", _) => {
                return Err(ApiError::bad_request("The audit name cannot be removed."))
            }
            ("/name", _, Some(Value::String(v))) => {
                edit.name = Some(checked_name("audit", v.clone())?)
            }
            ("/name", _, _) => {
                return Err(ApiError::bad_request("The audit name must be a string."))
            }
            (p, _, _) => {
                return Err(ApiError::bad_request(format!(
                    "Couldn't apply patch '{}'. Reason: {} cannot be changed by this build",
                    patch_repr(&ops),
                    &p[1..]
                )))
            }
        }
    }
    check_time_window(
        edit.start_time.unwrap_or(audit.start_time),
        edit.end_time.unwrap_or(audit.end_time),
    )?;
    if state != audit.state
        && (state == AuditState::Deleted
            || !audit_transition_allowed(audit.state, state, Actor::Api))
    {
        return Err(ApiError::bad_request(format!(
            "Couldn't apply patch '{}'. Reason: State transition not allowed: ({} -> {state})",
            patch_repr(&ops),
            audit.state
        )));
    }
    let mut updated = audit.clone();
    if state != audit.state {
        updated = s
            .store
            .transition_audit(
                audit.uuid,
                audit.state,
                state,
                Actor::Api,
                "changed by operator",
                None,
                None,
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict { current, .. } => ApiError::conflict(format!(
                    "The audit changed state meanwhile (now {current}); retry."
                )),
                other => other.into(),
            })?;
    }
    if edit.name.is_some()
        || edit.interval.is_some()
        || edit.start_time.is_some()
        || edit.end_time.is_some()
        || edit.auto_trigger.is_some()
    {
        updated = s.store.update_audit(audit.uuid, edit).await?;
    }
    Ok(Json(views::audit(&updated, &base_url(&h), true, ver)).into_response())
}

pub async fn delete_audit(State(s): State<AppState>, Path(ident): Path<String>) -> ApiResult {
    let audit = s.store.get_audit(&ident, false).await?;
    if !audit_transition_allowed(audit.state, AuditState::Deleted, Actor::Api) {
        return Err(ApiError::bad_request(format!(
            "Couldn't delete when state is '{}'.",
            audit.state
        )));
    }
    match s
        .store
        .transition_audit(
            audit.uuid,
            audit.state,
            AuditState::Deleted,
            Actor::Api,
            "deleted by operator",
            None,
            None,
        )
        .await
    {
        Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(StoreError::Conflict { current, .. }) => Err(ApiError::bad_request(format!(
            "Couldn't delete when state is '{current}'."
        ))),
        Err(e) => Err(e.into()),
    }
}

// ----- services and scoring engines ----------------------------------------------------

pub async fn list_services(r: ListRequest, detail: bool) -> ApiResult {
    let ListRequest {
        state, q, headers, ..
    } = r;
    let limit = match q.get("limit") {
        None => 1000,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n > 0 => (n as usize).min(1000),
            _ => return Err(ApiError::bad_request("Limit must be positive")),
        },
    };
    // Services page by their integer id, as upstream.
    let marker = q
        .get("marker")
        .map(|m| {
            m.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "Invalid marker '{m}': services page by integer id."
                ))
            })
        })
        .transpose()?;
    let descending = match q.get("sort_dir").map(String::as_str) {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid sort direction: {other}. Acceptable values are 'asc' or 'desc'"
            )))
        }
    };
    if let Some(k) = q.get("sort_key").filter(|k| k.as_str() != "id") {
        return Err(ApiError::bad_request(format!(
            "Invalid sort_key '{k}'; services sort by id."
        )));
    }
    let base = base_url(&headers);
    let list = state.store.list_services(limit, marker, descending).await?;
    let mut body = serde_json::Map::new();
    if list.len() == limit {
        if let Some(last) = list.last() {
            let path = if detail {
                "services/detail"
            } else {
                "services"
            };
            let dir = if descending { "desc" } else { "asc" };
            body.insert(
                "next".into(),
                json!(format!(
                    "{base}/v1/{path}?sort_key=id&sort_dir={dir}&limit={limit}&marker={}",
                    last.id
                )),
            );
        }
    }
    body.insert(
        "services".into(),
        Value::Array(
            list.iter()
                .map(|x| views::service(x, &base, detail))
                .collect(),
        ),
    );
    Ok(Json(Value::Object(body)).into_response())
}

pub async fn show_service(
    State(s): State<AppState>,
    Path(ident): Path<String>,
    h: HeaderMap,
) -> ApiResult {
    let svc = s.store.get_service(&ident).await?;
    Ok(Json(views::service(&svc, &base_url(&h), true)).into_response())
}

/// The scoring engines this build ships (`decision::scoring`), paged and
/// sorted like every collection.
pub async fn list_scoring_engines(r: ListRequest, detail: bool) -> ApiResult {
    use watcher_decision::scoring::SCORING_ENGINES;
    let (lq, base) = list_query(&r.q, &r.headers, &[("uuid", "uuid"), ("name", "name")])?;
    let mut list: Vec<_> = SCORING_ENGINES.iter().collect();
    match lq.sort.0 {
        "uuid" => list.sort_by_key(|e| e.uuid),
        "name" => list.sort_by_key(|e| e.name),
        _ => list.sort_by_key(|e| e.id),
    }
    if lq.descending {
        list.reverse();
    }
    if let Some(m) = lq.marker {
        let m = m.to_string();
        match list.iter().position(|e| e.uuid == m) {
            Some(p) => list.drain(..=p).for_each(drop),
            None => {
                return Err(ApiError::not_found(format!(
                    "ScoringEngine {m} could not be found"
                )))
            }
        }
    }
    list.truncate(lq.limit);
    Ok(Json(json!({"scoring_engines": list
        .iter()
        .map(|e| views::scoring_engine(e, &base, detail))
        .collect::<Vec<_>>()}))
    .into_response())
}

pub async fn show_scoring_engine(Path(ident): Path<String>, h: HeaderMap) -> ApiResult {
    match watcher_decision::scoring::find(&ident) {
        Some(e) => Ok(Json(views::scoring_engine(e, &base_url(&h), true)).into_response()),
        None => Err(ApiError::not_found(format!(
            "ScoringEngine {ident} could not be found"
        ))),
    }
}

// ----- audit templates ---------------------------------------------------------------

const TEMPLATE_SORT: &[(&str, &str)] = &[
    ("uuid", "x.uuid"),
    ("name", "x.name"),
    ("goal_uuid", "g.uuid"),
    ("goal_name", "g.name"),
    ("strategy_uuid", "s.uuid"),
    ("strategy_name", "s.name"),
    ("created_at", "x.created_at"),
    ("updated_at", "x.updated_at"),
];

pub async fn list_audit_templates(r: ListRequest, detail: bool) -> ApiResult {
    let ListRequest {
        state,
        q,
        headers,
        ver,
    } = r;
    let page = page(&q, &headers, TEMPLATE_SORT, detail)?;
    let filter = AuditFilter {
        goal: q.get("goal").cloned(),
        strategy: q.get("strategy").cloned(),
    };
    let list = state
        .store
        .list_audit_templates(filter, page.query.clone())
        .await?;

    Ok(collection(
        "audit_templates",
        &list,
        |t| t.uuid,
        |t| views::audit_template(t, &page.base, detail, ver),
        &page,
    ))
}

pub async fn show_audit_template(
    State(s): State<AppState>,
    Path(ident): Path<String>,
    h: HeaderMap,
    Extension(v): Extension<Version>,
) -> ApiResult {
    let t = s.store.get_audit_template(&ident).await?;
    Ok(Json(views::audit_template(&t, &base_url(&h), true, v)).into_response())
}

/// Checks a template document (a create body, or a template after a patch)
/// and resolves its goal and strategy.
async fn template_fields(
    s: &AppState,
    doc: &serde_json::Map<String, Value>,
    ver: Version,
) -> Result<TemplateFields, ApiError> {
    const ALLOWED: &[&str] = &[
        "name",
        "description",
        "goal",
        "strategy",
        "scope",
        "default_parameters",
    ];
    if let Some(k) = doc.keys().find(|k| !ALLOWED.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "Unknown attribute for argument audit_template: {k}"
        )));
    }
    let text = |k: &str| -> Result<Option<String>, ApiError> {
        match doc.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(v)) => Ok(Some(v.clone())),
            Some(other) => Err(ApiError::bad_request(format!("Invalid input for field/attribute {k}. Value: {other}. Wrong type, expected a string."))),
        }
    };
    let name = checked_name(
        "audit template",
        text("name")?.ok_or_else(|| ApiError::bad_request("Mandatory field missing: name."))?,
    )?;
    let goal =
        text("goal")?.ok_or_else(|| ApiError::bad_request("Mandatory field missing: goal."))?;
    let strategy_given = text("strategy")?;
    let (goal, strategy) = resolve_goal_strategy(s, &goal, strategy_given.as_deref()).await?;
    let scope = match doc.get("scope") {
        None | Some(Value::Null) => json!([]),
        Some(v @ Value::Array(_)) => {
            watcher_decision::scope::validate(v)
                .map_err(|e| ApiError::bad_request(format!("Invalid scope: {e}.")))?;
            v.clone()
        }
        Some(_) => return Err(ApiError::bad_request("scope must be a list.")),
    };
    let default_parameters = match doc.get("default_parameters") {
        None | Some(Value::Null) => None,
        Some(_) if !ver.at_least(1, 7) => {
            return Err(ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                "default_parameters needs API microversion 1.7 or higher.",
            ))
        }
        Some(d @ Value::Object(_)) => {
            strategies::apply_parameters(&strategy.parameters_spec, d)
                .map_err(ApiError::bad_request)?;
            Some(d.clone())
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "default_parameters must be a JSON object.",
            ))
        }
    };
    Ok(TemplateFields {
        name,
        description: text("description")?,
        goal_id: goal.id,
        strategy_id: strategy_given.map(|_| strategy.id),
        scope,
        default_parameters,
    })
}

fn template_conflict(e: StoreError) -> ApiError {
    match e {
        StoreError::NameTaken { name, .. } => {
            ApiError::conflict(format!("An audit_template with name {name} already exists"))
        }
        other => other.into(),
    }
}

pub async fn create_audit_template(
    State(s): State<AppState>,
    h: HeaderMap,
    Extension(ver): Extension<Version>,
    body: Bytes,
) -> ApiResult {
    let body = parse_json(&body)?;
    let doc = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("The audit template must be a JSON object."))?;
    let fields = template_fields(&s, doc, ver).await?;
    let t = s
        .store
        .create_audit_template(fields)
        .await
        .map_err(template_conflict)?;
    let base = base_url(&h);
    let location = format!("{base}/v1/audit_templates/{}", t.uuid);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(views::audit_template(&t, &base, true, ver)),
    )
        .into_response())
}

/// PATCH: the ops are applied to the template's document, which is then
/// checked like a new one.
pub async fn patch_audit_template(
    State(s): State<AppState>,
    Path(ident): Path<String>,
    h: HeaderMap,
    Extension(ver): Extension<Version>,
    body: Bytes,
) -> ApiResult {
    let ops = parse_patch(&parse_json(&body)?, INTERNAL_PATHS)?;
    let t = s.store.get_audit_template(&ident).await?;
    let mut doc = serde_json::Map::new();
    doc.insert("name".into(), json!(t.name));
    doc.insert("description".into(), json!(t.description));
    doc.insert("goal".into(), json!(t.goal_uuid));
    doc.insert("strategy".into(), json!(t.strategy_uuid));
    doc.insert("scope".into(), t.scope.clone());
    if let Some(d) = &t.default_parameters {
        doc.insert("default_parameters".into(), d.clone());
    }
    for op in &ops {
        let key = op.path[1..].to_string();
        if key.contains('/') {
            return Err(ApiError::bad_request(format!(
                "Couldn't apply patch '{}'. Reason: nested paths are not supported",
                patch_repr(&ops)
            )));
        }
        match op.op.as_str() {
            "remove" => {
                doc.remove(&key);
            }
            _ => {
                doc.insert(key, op.value.clone().unwrap_or(Value::Null));
            }
        }
    }
    let fields = template_fields(&s, &doc, ver).await?;
    let t = s
        .store
        .update_audit_template(t.uuid, fields)
        .await
        .map_err(template_conflict)?;
    Ok(Json(views::audit_template(&t, &base_url(&h), true, ver)).into_response())
}

pub async fn delete_audit_template(
    State(s): State<AppState>,
    Path(ident): Path<String>,
) -> ApiResult {
    let t = s.store.get_audit_template(&ident).await?;
    s.store.delete_audit_template(t.uuid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ----- data model -----------------------------------------------------------------------

/// `GET /v1/data_model` (>= 1.3): one flat entry per server with its host's
/// figures, and one per host without servers, as upstream's compute model.
pub async fn data_model(
    State(s): State<AppState>,
    Query(q): Q,
    Extension(ver): Extension<Version>,
) -> ApiResult {
    if !ver.at_least(1, 3) {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "The data model needs API microversion 1.3 or higher.",
        ));
    }
    match q.get("data_model_type").map(String::as_str) {
        None | Some("compute") => {}
        Some(other) => {
            return Err(ApiError::not_found(format!(
                "Data model type {other} could not be found; only 'compute' exists."
            )))
        }
    }
    let audit = match q.get("audit_uuid").or_else(|| q.get("audit")) {
        Some(a) => Some(s.store.get_audit(a, false).await?),
        None => None,
    };
    let unavailable = |e: watcher_cloud::CloudError| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("The cloud could not be read: {e}"),
        )
    };
    let mut model = ClusterModel::from_cloud(s.cloud.as_ref())
        .await
        .map_err(unavailable)?;
    // With an audit, the model its strategy would see: cut to its scope.
    if let Some(a) = &audit {
        let scope = ComputeScope::resolve(&a.scope, &model.nodes)
            .map_err(|e| ApiError::bad_request(format!("The audit's scope is invalid: {e}.")))?;
        model = model.scoped(&scope);
    }
    let ClusterModel {
        nodes,
        instances,
        flavors,
        excluded,
        ..
    } = model;
    let mut context = Vec::new();
    for n in &nodes {
        let node = json!({
            "node_uuid": n.uuid, "node_hostname": n.name, "node_vcpus": n.vcpus, "node_vcpu_ratio": 1.0,
            "node_memory": n.ram_mb, "node_memory_ratio": 1.0, "node_disk": n.disk_gb, "node_disk_ratio": 1.0,
            "node_state": "up", "node_status": if n.service_enabled { "enabled" } else { "disabled" },
            "node_disabled_reason": n.disabled_reason, "node_availability_zone": n.availability_zone,
        });
        let mut any = false;
        for i in instances.iter().filter(|i| i.host == n.name) {
            any = true;
            let f = flavors.get(&i.flavor);
            let mut entry = node.clone();
            let e = entry.as_object_mut().expect("object");
            e.insert("server_uuid".into(), json!(i.uuid));
            e.insert("server_name".into(), json!(i.name));
            e.insert("server_vcpus".into(), json!(f.map(|f| f.vcpus)));
            e.insert("server_memory".into(), json!(f.map(|f| f.ram_mb)));
            e.insert("server_disk".into(), json!(f.map(|f| f.disk_gb)));
            e.insert("server_state".into(), json!(i.status.to_lowercase()));
            e.insert("server_flavor".into(), json!(i.flavor));
            e.insert("server_project_id".into(), json!(i.project_id));
            e.insert("server_metadata".into(), json!(i.metadata));
            e.insert(
                "server_watcher_exclude".into(),
                json!(excluded.contains(&i.uuid)),
            );
            context.push(entry);
        }
        if !any {
            context.push(node);
        }
    }
    Ok(Json(json!({"context": context})).into_response())
}

// ----- webhooks --------------------------------------------------------------------------

/// `POST /v1/webhooks/{audit}`: runs an EVENT audit. The body is ignored.
pub async fn trigger_webhook(State(s): State<AppState>, Path(ident): Path<String>) -> ApiResult {
    s.store.trigger_audit(&ident).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
