//! The operators' dashboard, served by watcherd under `/dashboard`.
//!
//! Pages are rendered on the server ([`pages`]) from the store, with one
//! small script (`dashboard.js`) and one style sheet embedded in the
//! binary: no front-end build, nothing fetched from elsewhere. The page of
//! a plan follows the history through server-sent events
//! (`/dashboard/events`, each event's id the history `seq`, so a browser
//! that reconnects, after a restart of watcherd say, resumes where it was)
//! and re-reads its main part on each change.
//!
//! Every state change a page asks for goes through the v1 API itself,
//! mounted again under `/dashboard/v1`: the same handlers, transition
//! tables, store operations and policy. What the dashboard adds in front
//! of both is [`guard`]: in noauth mode it answers loopback callers only;
//! in Keystone mode it needs a login (`/dashboard/login`: user, password,
//! project, domain -> a Keystone token kept in an HttpOnly, SameSite=Strict
//! cookie) and applies the API's policy to the pages too, which show only
//! the buttons the caller may use; every request that changes something
//! carries the page's CSRF token.

mod audits;
mod catalogue;
mod pages;

use crate::error::refuse;
use crate::AppState;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;
use uuid::Uuid;
use watcher_core::{Entity, HistoryEntry};

/// The cookie holding the CSRF token of a browser's session.
const CSRF_COOKIE: &str = "watcher_csrf";
/// The cookie holding the Keystone token of a logged-in browser.
const TOKEN_COOKIE: &str = "watcher_token";
/// The header a page's script sends it back in.
const CSRF_HEADER: &str = "x-csrf-token";

/// The pages, their assets and the event stream.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(overview))
        .route("/dashboard/action_plans/{uuid}", get(plan_page))
        .route("/dashboard/audits", get(audit_list))
        .route("/dashboard/audits/new", get(new_audit))
        .route("/dashboard/audits/{uuid}", get(audit_page))
        .route("/dashboard/audit_templates", get(templates))
        .route("/dashboard/goals", get(goals))
        .route("/dashboard/services", get(services))
        .route("/dashboard/cluster", get(cluster))
        .route("/dashboard/events", get(events))
        .route("/dashboard/login", get(login_form).post(login))
        .route("/dashboard/logout", axum::routing::post(logout))
        .route("/dashboard/assets/dashboard.js", get(script))
        .route("/dashboard/assets/dashboard.css", get(style))
}

/// In front of every dashboard request (pages and `/dashboard/v1`).
pub async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let open = path == "/dashboard/login" || path.starts_with("/dashboard/assets/");
    if matches!(state.auth, crate::auth::Auth::NoAuth) {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        if !peer.is_some_and(|ip| ip.is_loopback()) {
            return refuse(
                StatusCode::FORBIDDEN,
                "Without authentication (auth_strategy = \"noauth\") the dashboard answers only on \
                 loopback; use an SSH tunnel, or configure Keystone to open it to others.",
            );
        }
    }
    // The login form posts its token as a field (a form sends no header);
    // its handler checks it.
    if !matches!(*req.method(), Method::GET | Method::HEAD) && path != "/dashboard/login" {
        let sent = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        let kept = cookie(req.headers(), CSRF_COOKIE);
        let same_site = req
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|s| s == "same-origin");
        if sent.is_none() || sent != kept.as_deref() || !same_site {
            return refuse(
                StatusCode::FORBIDDEN,
                "This request did not come from a dashboard page (missing or wrong CSRF token); \
                 reload the page and try again.",
            );
        }
    }
    if let crate::auth::Auth::Keystone(ks) = &state.auth {
        if !open {
            let Some(token) = cookie(req.headers(), TOKEN_COOKIE) else {
                return to_login(&req);
            };
            if path.starts_with("/dashboard/v1/") {
                // The API's own authentication and policy take it from here.
                if let Ok(v) = HeaderValue::from_str(&token) {
                    req.headers_mut().insert("x-auth-token", v);
                }
            } else {
                let caller = match ks.caller(token).await {
                    Ok(c) => c,
                    Err(refusal) if refusal.status() == StatusCode::UNAUTHORIZED => {
                        return to_login(&req)
                    }
                    Err(refusal) => return refusal,
                };
                let rule = page_rule(&path);
                if path != "/dashboard/logout" && !ks.allows(rule, &caller) {
                    return refuse(
                        StatusCode::FORBIDDEN,
                        &format!("Policy doesn't allow {rule} to be performed."),
                    );
                }
                req.extensions_mut().insert(caller);
            }
        }
    }
    next.run(req).await
}

/// The policy rule a page reads under, as the API call that reads the same.
fn page_rule(path: &str) -> &'static str {
    let rest = path.strip_prefix("/dashboard").unwrap_or(path);
    match rest.split('/').nth(1).unwrap_or("") {
        "action_plans" => "action_plan:get",
        "audits" if rest == "/audits" => "audit:get_all",
        "audits" => "audit:get",
        "audit_templates" => "audit_template:get_all",
        "goals" => "strategy:get_all",
        "services" => "service:get_all",
        "cluster" => "data_model:get_all",
        _ => "action_plan:get_all",
    }
}

/// Where a browser without a (valid) login goes: the login form for a
/// page, a 401 for anything else.
fn to_login(req: &Request) -> Response {
    let wants_page = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_page && req.method() == Method::GET {
        (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, "/dashboard/login")],
        )
            .into_response()
    } else {
        refuse(
            StatusCode::UNAUTHORIZED,
            "Log in to the dashboard first (/dashboard/login).",
        )
    }
}

/// What the caller may change, for the buttons a page shows.
pub struct Permissions {
    pub start: bool,
    pub cancel: bool,
    pub pause: bool,
    pub resume: bool,
    pub archive: bool,
    pub skip: bool,
    pub create_audit: bool,
    pub update_audit: bool,
    pub delete_audit: bool,
    /// Logged in through Keystone (the page offers to log out).
    pub session: bool,
}

impl Permissions {
    fn of(state: &AppState, caller: Option<&crate::caller::Caller>) -> Permissions {
        use crate::auth::Auth;
        // Without authentication everything is allowed; under Keystone,
        // what the policy gives the caller (nothing without one).
        let may = |rule: &str| match (&state.auth, caller) {
            (Auth::NoAuth, _) => true,
            (Auth::Keystone(ks), Some(c)) => ks.allows(rule, c),
            (Auth::Keystone(_), None) => false,
        };
        Permissions {
            start: may("action_plan:start"),
            cancel: may("action_plan:update"),
            pause: may("action_plan:pause"),
            resume: may("action_plan:resume"),
            archive: may("action_plan:delete"),
            skip: may("action:update"),
            create_audit: may("audit:create"),
            update_audit: may("audit:update"),
            delete_audit: may("audit:delete"),
            session: matches!(state.auth, Auth::Keystone(_)),
        }
    }
}

#[derive(serde::Deserialize)]
struct LoginForm {
    user: String,
    password: String,
    project: String,
    domain: String,
    csrf: String,
}

async fn login_form(headers: HeaderMap) -> Response {
    page(&headers, |token| {
        pages::login(token, None, "admin", "Default", "")
    })
}

async fn login(
    State(s): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let crate::auth::Auth::Keystone(ks) = &s.auth else {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, "/dashboard")]).into_response();
    };
    if cookie(&headers, CSRF_COOKIE).as_deref() != Some(form.csrf.as_str()) {
        return refuse(
            StatusCode::FORBIDDEN,
            "This login did not come from the dashboard's form (missing or wrong CSRF token); \
             reload the page and try again.",
        );
    }
    let login = crate::auth::Login {
        user: form.user.clone(),
        password: form.password.into(),
        project: form.project.clone(),
        domain: form.domain.clone(),
    };
    let ks2 = ks.clone();
    let answer = tokio::task::spawn_blocking(move || ks2.login_blocking(&login)).await;
    let problem = match answer {
        Ok(Ok(Some(token))) => {
            let secure = if crate::routes::base_url(&headers).starts_with("https://") {
                "; Secure"
            } else {
                ""
            };
            let c = format!(
                "{TOKEN_COOKIE}={token}; Path=/dashboard; HttpOnly; SameSite=Strict{secure}"
            );
            let mut resp =
                (StatusCode::SEE_OTHER, [(header::LOCATION, "/dashboard")]).into_response();
            if let Ok(v) = HeaderValue::from_str(&c) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            return resp;
        }
        Ok(Ok(None)) => {
            "Keystone refused these credentials: check the user, password, project and domain."
                .to_string()
        }
        Ok(Err(e)) => format!("Keystone could not be asked: {e}"),
        Err(e) => e.to_string(),
    };
    let mut resp = page(&headers, |token| {
        pages::login(
            token,
            Some(&problem),
            &form.project,
            &form.domain,
            &form.user,
        )
    });
    *resp.status_mut() = StatusCode::UNAUTHORIZED;
    resp
}

async fn logout() -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "watcher_token=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    resp
}

/// A cookie's value.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A page, with the browser's CSRF token (a new one, set in an HttpOnly,
/// SameSite=Strict cookie, when it has none yet).
fn page(headers: &HeaderMap, render: impl FnOnce(&str) -> maud::Markup) -> Response {
    let (token, new) = match cookie(headers, CSRF_COOKIE) {
        Some(t) if t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()) => (t, false),
        _ => (Uuid::new_v4().simple().to_string(), true),
    };
    let mut resp = Html(render(&token).into_string()).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        ),
    );
    if new {
        let c = format!("{CSRF_COOKIE}={token}; Path=/dashboard; HttpOnly; SameSite=Strict");
        if let Ok(v) = HeaderValue::from_str(&c) {
            h.insert(header::SET_COOKIE, v);
        }
    }
    resp
}

type Params = Query<HashMap<String, String>>;

/// What every page handler needs: the state, the caller (Keystone mode),
/// the headers (the CSRF cookie) and the query (`part=main`).
struct PageRequest {
    s: AppState,
    caller: Option<crate::caller::Caller>,
    headers: HeaderMap,
    q: HashMap<String, String>,
}

impl axum::extract::FromRequestParts<AppState> for PageRequest {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Query(q) = Params::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(PageRequest {
            s: state.clone(),
            caller: parts.extensions.get::<crate::caller::Caller>().cloned(),
            headers: parts.headers.clone(),
            q,
        })
    }
}

impl PageRequest {
    fn may(&self) -> Permissions {
        Permissions::of(&self.s, self.caller.as_ref())
    }

    /// A page that follows `events`, its main part alone when the script
    /// asks for it again (`?part=main`).
    fn live(
        &self,
        title: &str,
        events: &str,
        main: impl FnOnce(&Permissions) -> maud::Markup,
    ) -> Response {
        let may = self.may();
        let part = self.q.get("part").is_some_and(|p| p == "main");
        page(&self.headers, |token| {
            let main = main(&may);
            if part {
                main
            } else {
                pages::layout(title, token, events, &may, main)
            }
        })
    }
}

type PageResult = Result<Response, crate::ApiError>;

/// Every change, for the pages that are not about one plan.
const ALL_EVENTS: &str = "/dashboard/events";

async fn overview(r: PageRequest) -> PageResult {
    let data = pages::Overview::load(&r.s.store).await?;
    Ok(r.live("Overview", ALL_EVENTS, |_| data.main()))
}

async fn plan_page(r: PageRequest, Path(uuid): Path<String>) -> PageResult {
    let uuid = crate::routes::parse_uuid("action plan", &uuid)?;
    let data = pages::PlanPage::load(&r.s.store, uuid).await?;
    let events = format!("/dashboard/events?plan={uuid}");
    Ok(r.live(&format!("Action plan {uuid}"), &events, |may| {
        data.main(may)
    }))
}

async fn audit_list(r: PageRequest) -> PageResult {
    let data = audits::AuditList::load(&r.s.store).await?;
    Ok(r.live("Audits", ALL_EVENTS, |may| data.main(may)))
}

async fn audit_page(r: PageRequest, Path(uuid): Path<String>) -> PageResult {
    let uuid = crate::routes::parse_uuid("audit", &uuid)?;
    let data = audits::AuditPage::load(&r.s.store, uuid).await?;
    Ok(r.live(&format!("Audit {uuid}"), ALL_EVENTS, |may| data.main(may)))
}

async fn new_audit(r: PageRequest) -> PageResult {
    let data = audits::NewAudit::load(&r.s.store, r.q.get("strategy").map(String::as_str)).await?;
    // A form follows nothing: a re-read would lose what was typed.
    Ok(r.live("New audit", "", |_| data.main()))
}

async fn templates(r: PageRequest) -> PageResult {
    let data = catalogue::Templates::load(&r.s.store).await?;
    Ok(r.live("Audit templates", ALL_EVENTS, |_| data.main()))
}

async fn goals(r: PageRequest) -> PageResult {
    let data = catalogue::Goals::load(&r.s.store).await?;
    Ok(r.live("Goals", ALL_EVENTS, |_| data.main()))
}

async fn services(r: PageRequest) -> PageResult {
    let data = catalogue::Services::load(&r.s.store).await?;
    Ok(r.live("Services", ALL_EVENTS, |_| data.main()))
}

async fn cluster(r: PageRequest) -> PageResult {
    let model = watcher_decision::model::ClusterModel::from_cloud(r.s.cloud.as_ref())
        .await
        .map_err(|e| {
            crate::ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("The cloud could not be read: {e}"),
            )
        })?;
    Ok(r.live("Cluster", ALL_EVENTS, |_| catalogue::cluster(&model)))
}

/// How many history rows one read of the stream takes at most.
const EVENTS_PAGE: usize = 500;

/// Server-sent events: each history row after the browser's last one (its
/// `Last-Event-ID`, or `after`, or now), of one plan when `plan` is given.
/// The store's change events wake the stream; a read every second covers
/// changes committed by other processes sharing the database.
async fn events(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Params,
) -> Result<Response, crate::ApiError> {
    let plan = match q.get("plan") {
        Some(p) => Some(crate::routes::parse_uuid("plan", p)?),
        None => None,
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(q.get("after").map(String::as_str))
        .and_then(|v| v.parse::<i64>().ok());
    let after = match resume {
        Some(seq) => seq,
        None => s.store.history_position().await?.0,
    };
    let rx = s.store.subscribe();
    let store = s.store.clone();
    // First, how soon to come back after a cut (a restart, the idle timeout).
    let hello = VecDeque::from([Event::default().retry(Duration::from_millis(500))]);
    let stream = futures_util::stream::unfold(
        (rx, after, hello),
        move |(mut rx, mut after, mut pending)| {
            let store = store.clone();
            async move {
                loop {
                    if let Some(e) = pending.pop_front() {
                        return Some((
                            Ok::<Event, std::convert::Infallible>(e),
                            (rx, after, pending),
                        ));
                    }
                    // Read first (a browser catching up gets its backlog at
                    // once), then wait for the next change.
                    let rows = store
                        .history_after(after, EVENTS_PAGE)
                        .await
                        .unwrap_or_default();
                    if rows.is_empty() {
                        tokio::select! {
                            _ = rx.recv() => {}
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                        continue;
                    }
                    for row in rows {
                        after = row.seq;
                        if plan.is_none_or(|p| concerns(&row, p)) {
                            pending.push_back(
                                Event::default()
                                    .id(row.seq.to_string())
                                    .event("history")
                                    .json_data(crate::views::history_entry(&row))
                                    .unwrap_or_default(),
                            );
                        }
                    }
                }
            }
        },
    );
    let mut resp = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Whether a history row is about `plan` (the plan itself or one of its actions).
fn concerns(row: &HistoryEntry, plan: Uuid) -> bool {
    row.action_plan_uuid == Some(plan) || (row.entity == Entity::ActionPlan && row.uuid == plan)
}

async fn script() -> Response {
    asset("text/javascript", include_str!("dashboard.js"))
}

async fn style() -> Response {
    asset("text/css", include_str!("dashboard.css"))
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}
