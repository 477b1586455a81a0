//! Route handlers, one module per resource. Each validates its input completely before writing
//! anything, so bad input changes nothing; the helpers every resource shares (lists, paging, links,
//! parsing) are here.

use crate::error::ApiError;
use crate::version::{Version, MAX, MIN};
use crate::{views, AppState};
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

mod action_plans;
mod actions;
mod audit_templates;
mod audits;
mod data_model;
mod goals;
mod patch;
mod services;

pub use action_plans::*;
pub use actions::*;
pub use audit_templates::*;
pub use audits::*;
pub use data_model::*;
pub use goals::*;
use patch::*;
pub use services::*;

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

/// `scheme://host` the caller reached us at, for links: set by
/// `request_log::log_request` (TLS, trusted proxy headers).
pub(crate) fn base_url(headers: &HeaderMap) -> String {
    if let Some(origin) = headers
        .get(crate::request_log::ORIGIN)
        .and_then(|h| h.to_str().ok())
    {
        return origin.to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:9322");
    format!("http://{host}")
}

fn show_deleted(headers: &HeaderMap) -> bool {
    headers.get("x-show-deleted").is_some_and(|v| !v.is_empty())
}

pub(crate) fn parse_uuid(kind: &str, s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s)
        .map_err(|_| ApiError::bad_request(format!("Expected a UUID for {kind} but received {s}.")))
}

/// A request body read as JSON, only when it is sent as JSON: a form or
/// `text/plain` body (what a web page may send to another site without
/// asking) gets 415, a body that is not JSON Watcher's 400.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> axum::extract::FromRequest<S> for JsonBody {
    type Rejection = axum::response::Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        if crate::same_origin::body_not_json(req.headers()) {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "The request body must be JSON, sent with Content-Type: application/json.",
            )
            .into_response());
        }
        // A body over the limit: axum's 413, which `watcher_error_bodies`
        // words as Watcher does.
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        serde_json::from_slice(&body).map(JsonBody).map_err(|_| {
            ApiError::bad_request("Request is not in valid JSON format").into_response()
        })
    }
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
fn collection<'a, T, V: serde::Serialize>(
    name: &str,
    list: &'a [T],
    uuid: impl Fn(&T) -> Uuid,
    view: impl Fn(&'a T) -> V,
    page: &Page,
) -> Response {
    let q = &page.query;
    let mut next = None;
    if list.len() == q.limit && q.limit > 0 {
        if let Some(last) = list.last().map(&uuid) {
            let dir = if q.descending { "desc" } else { "asc" };
            let path = if page.detail {
                format!("{name}/detail")
            } else {
                name.to_string()
            };
            next = Some(format!(
                "{}/v1/{path}?sort_key={}&sort_dir={dir}&limit={}&marker={last}",
                page.base, page.key, q.limit
            ));
        }
    }
    Json(Collection {
        name,
        items: Items { list, view },
        next,
    })
    .into_response()
}

/// A list's body, written as it is serialized (each item straight from its
/// view, no tree of the whole list); its two keys in alphabetical order,
/// as a JSON map of them would be.
struct Collection<'n, 'a, T, F> {
    name: &'n str,
    items: Items<'a, T, F>,
    next: Option<String>,
}

struct Items<'a, T, F> {
    list: &'a [T],
    view: F,
}

impl<'a, T, V: serde::Serialize, F: Fn(&'a T) -> V> serde::Serialize for Items<'a, T, F> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.list.iter().map(&self.view))
    }
}

impl<'a, T, V: serde::Serialize, F: Fn(&'a T) -> V> serde::Serialize for Collection<'_, 'a, T, F> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        let next_first = self.name > "next";
        if next_first {
            if let Some(next) = &self.next {
                map.serialize_entry("next", next)?;
            }
        }
        map.serialize_entry(self.name, &self.items)?;
        if !next_first {
            if let Some(next) = &self.next {
                map.serialize_entry("next", next)?;
            }
        }
        map.end()
    }
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

/// The version document; a browser (asking for HTML) is sent to the dashboard.
pub async fn root(headers: HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, "/dashboard")]).into_response();
    }
    versions(&headers).into_response()
}

fn versions(headers: &HeaderMap) -> Json<Value> {
    let base = base_url(headers);
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
    // watcherd's own operations: under a prefix of their own, outside the
    // microversions, so that upstream's next ones cannot collide with them.
    let ext = format!("{base}/v1{}", crate::auth::EXTENSION_PREFIX);
    doc.insert(
        "x-watcherd".into(),
        json!({
            "description": "watcherd's own operations, beside upstream's API; no microversion applies to them",
            "operations": [
                {"name": "pause", "method": "POST", "href": format!("{ext}/action_plans/{{uuid}}/pause")},
                {"name": "resume", "method": "POST", "href": format!("{ext}/action_plans/{{uuid}}/resume")},
            ],
            "links": [{"href": format!("{base}/v1/openapi.json"), "rel": "describedby", "type": "application/json"}],
        }),
    );
    Json(Value::Object(doc))
}
