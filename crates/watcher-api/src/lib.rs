//! The Watcher v1 REST API (axum).
//!
//! Paths and JSON shapes follow upstream so that python-watcherclient works
//! unchanged; `docs/api-compatibility.md` lists where we differ and why.
//! Bookmark paths (`/action_plans/<uuid>`) and trailing slashes
//! (`/v1/actions/?...`) are rewritten before routing.

pub mod auth;
mod bare_errors;
pub mod caller;
mod dashboard;
mod error;
pub mod health;
pub mod openapi;
pub mod policy;
pub mod request_log;
pub(crate) mod routes;
pub mod same_origin;
pub mod server;
pub mod version;
mod views;

pub use error::{error_body, ApiError};

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use watcher_store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// The cloud, for the data model.
    pub cloud: std::sync::Arc<dyn watcher_cloud::Cloud>,
    pub auth: auth::Auth,
    /// The `/metrics` histograms.
    pub tally: health::SharedTally,
    /// How callers reach us (TLS, a trusted proxy), for links.
    pub origin: request_log::Origin,
    /// Who may call without authentication, as browsers tell it.
    pub sites: std::sync::Arc<same_origin::Sites>,
}

/// Largest request body accepted; larger ones get 413.
pub const MAX_BODY: usize = 1024 * 1024;

// Long because it is the route table: one line per endpoint, checked against the OpenAPI document by a test.
pub fn router(state: AppState) -> Router {
    use routes::*;
    let origin = state.origin.clone();
    let v1 = Router::new()
        .route("/", get(v1_root))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(openapi::document()) }),
        )
        .route("/goals", get(|r: ListRequest| list_goals(r, false)))
        .route("/goals/detail", get(|r: ListRequest| list_goals(r, true)))
        .route("/goals/{ident}", get(show_goal))
        .route(
            "/strategies",
            get(|r: ListRequest| list_strategies(r, false)),
        )
        .route(
            "/strategies/detail",
            get(|r: ListRequest| list_strategies(r, true)),
        )
        .route("/strategies/{ident}", get(show_strategy))
        .route("/strategies/{ident}/state", get(strategy_state))
        .route(
            "/audits",
            get(|r: ListRequest| list_audits(r, false)).post(create_audit),
        )
        .route("/audits/detail", get(|r: ListRequest| list_audits(r, true)))
        .route(
            "/audits/{ident}",
            get(show_audit).patch(patch_audit).delete(delete_audit),
        )
        .route(
            "/audit_templates",
            get(|r: ListRequest| list_audit_templates(r, false)).post(create_audit_template),
        )
        .route(
            "/audit_templates/detail",
            get(|r: ListRequest| list_audit_templates(r, true)),
        )
        .route(
            "/audit_templates/{ident}",
            get(show_audit_template)
                .patch(patch_audit_template)
                .delete(delete_audit_template),
        )
        .route("/services", get(|r: ListRequest| list_services(r, false)))
        .route(
            "/services/detail",
            get(|r: ListRequest| list_services(r, true)),
        )
        .route("/services/{ident}", get(show_service))
        .route("/data_model", get(data_model))
        .route("/webhooks/{ident}", post(trigger_webhook))
        .route(
            "/scoring_engines",
            get(|r: ListRequest| list_scoring_engines(r, false)),
        )
        .route(
            "/scoring_engines/detail",
            get(|r: ListRequest| list_scoring_engines(r, true)),
        )
        .route("/scoring_engines/{ident}", get(show_scoring_engine))
        .route("/action_plans", get(|r: ListRequest| list_plans(r, false)))
        .route(
            "/action_plans/detail",
            get(|r: ListRequest| list_plans(r, true)),
        )
        .route(
            "/action_plans/{uuid}",
            get(show_plan).patch(patch_plan).delete(delete_plan),
        )
        .route("/action_plans/{uuid}/start", post(start_plan))
        .route("/x-watcherd/action_plans/{uuid}/pause", post(pause_plan))
        .route("/x-watcherd/action_plans/{uuid}/resume", post(resume_plan))
        .route("/action_plans/{uuid}/history", get(plan_history))
        .route("/actions", get(|r: ListRequest| list_actions(r, false)))
        .route(
            "/actions/detail",
            get(|r: ListRequest| list_actions(r, true)),
        )
        .route("/actions/{uuid}", get(show_action).patch(patch_action))
        .route_layer(axum::middleware::from_fn_with_state(
            state.auth.clone(),
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn(microversion));
    // The dashboard: its pages, and the same v1 API for what they change.
    let dashboard = dashboard::routes().nest("/dashboard/v1", v1.clone()).layer(
        axum::middleware::from_fn_with_state(state.clone(), dashboard::guard),
    );
    Router::new()
        .route("/", get(root))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .nest("/v1", v1)
        .merge(dashboard)
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.sites.clone(),
            same_origin::guard,
        ))
        .layer(axum::middleware::from_fn(watcher_error_bodies))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(server::refuse_large_headers))
        .layer(axum::middleware::from_fn_with_state(
            origin,
            request_log::log_request,
        ))
        .with_state(state)
}

/// Rewrites bookmark paths under `/v1` and drops trailing slashes, as
/// upstream's router accepts both.
pub fn normalize_path(mut req: Request) -> Request {
    let uri = req.uri();
    let path = uri.path();
    let mut new_path = if path.len() > 1 {
        path.trim_end_matches('/').to_string()
    } else {
        path.to_string()
    };
    if new_path.is_empty() {
        new_path = "/".into();
    }
    if new_path != "/"
        && new_path != "/v1"
        && !new_path.starts_with("/v1/")
        && new_path != "/healthz"
        && new_path != "/metrics"
        && new_path != "/dashboard"
        && !new_path.starts_with("/dashboard/")
    {
        new_path = format!("/v1{new_path}");
    }
    if new_path != path {
        let pq = match uri.query() {
            Some(q) => format!("{new_path}?{q}"),
            None => new_path,
        };
        if let Ok(new_uri) = Uri::builder().path_and_query(pq).build() {
            *req.uri_mut() = new_uri;
        }
    }
    req
}

/// Negotiates the microversion and sets upstream's headers on every /v1 response.
async fn microversion(mut req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get(version::HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut resp = match version::parse(header.as_deref()) {
        Ok(v) => {
            req.extensions_mut().insert(v);
            let mut resp = next.run(req).await;
            if let Ok(value) = HeaderValue::from_str(&format!("infra-optim {v}")) {
                resp.headers_mut().insert(version::HEADER, value);
            }
            resp
        }
        Err(message) => ApiError::new(StatusCode::NOT_ACCEPTABLE, message).into_response(),
    };
    let h = resp.headers_mut();
    h.insert(
        "openstack-api-minimum-version",
        HeaderValue::from_static("1.0"),
    );
    h.insert(
        "openstack-api-maximum-version",
        HeaderValue::from_static("1.7"),
    );
    h.insert("vary", HeaderValue::from_static("OpenStack-API-Version"));
    resp
}

/// Errors produced outside our handlers (axum's 405, 413 for a body over
/// [`MAX_BODY`], a malformed query string) get Watcher's error body too, so
/// clients always find a faultstring.
async fn watcher_error_bodies(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let mut message = String::from_utf8_lossy(&text).trim().to_string();
    if message.is_empty() {
        message = status.canonical_reason().unwrap_or("error").to_string();
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        message = format!("Request body is larger than {MAX_BODY} bytes.");
    }
    let mut out = ApiError::new(status, message).into_response();
    for (k, v) in parts.headers.iter() {
        if k != axum::http::header::CONTENT_TYPE && k != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("The resource {} could not be found.", uri.path()))
}

/// Serves the API on `listener` until `shutdown` fires: HTTPS with `tls`,
/// plain HTTP without, under `limits` (`server.rs`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<std::sync::Arc<watcher_tls::rustls::ServerConfig>>,
    state: AppState,
    limits: server::ServerLimits,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let svc = tower::util::MapRequest::new(router(state), normalize_path);
    server::serve(listener, tls, svc, limits, shutdown).await
}
