//! Authentication (Keystone tokens) and policy.
//!
//! `noauth`: every caller is an admin (the config refuses a non-loopback
//! address then). `keystone`: `X-Auth-Token` is validated against Keystone v3
//! (`GET /v3/auth/tokens` with our service token); validations are cached for
//! `cache_ttl_secs` at most, and never past the token's own expiry, so a
//! revoked token stops working within that time.
//!
//! Policy (`policy.rs`) uses upstream's rule names (`action_plan:update`, ...).

use super::caller::Caller;
use super::error::ApiError;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use watcher_core::Secret;
use watcher_keystone::{expires_at, ClientsAuth, Credentials, KeystoneError, Session};

/// Keystone v3 settings: where to validate tokens, and watcherd's own
/// service credentials for doing so.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KeystoneConfig {
    /// e.g. `http://127.0.0.1:5000/v3`
    pub auth_url: String,
    pub username: String,
    pub password: Secret,
    pub project_name: String,
    pub user_domain_name: String,
    pub project_domain_name: String,
    /// CA bundle trusted besides the system's roots, client certificate
    /// and key, and `insecure` (no verification: test clouds only).
    pub cafile: Option<PathBuf>,
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    pub insecure: bool,
    /// At start, how long to keep trying to log in while Keystone cannot
    /// be reached (it may be booting with us), and, with an OpenStack
    /// cloud, its Keystone and Nova; 0: fail at once. Refused credentials
    /// and an untrusted certificate fail at once anyway.
    pub startup_wait_secs: f64,
    /// How long a validated token is trusted before asking Keystone again
    /// (a revoked token stops working within this time).
    pub cache_ttl_secs: f64,
    /// Upstream's `[api] enable_webhooks_auth`: when false, `POST
    /// /v1/webhooks/{audit}` needs no token, for alarm systems that cannot
    /// send one. Everything else still does.
    pub enable_webhooks_auth: bool,
}

impl Default for KeystoneConfig {
    fn default() -> Self {
        KeystoneConfig {
            auth_url: String::new(),
            username: String::new(),
            password: Secret::default(),
            project_name: "service".into(),
            user_domain_name: "Default".into(),
            project_domain_name: "Default".into(),
            cafile: None,
            certfile: None,
            keyfile: None,
            insecure: false,
            startup_wait_secs: 60.0,
            cache_ttl_secs: 60.0,
            enable_webhooks_auth: true,
        }
    }
}

impl KeystoneConfig {
    /// watcherd's service credentials, checked.
    pub fn credentials(&self) -> Result<Credentials, KeystoneError> {
        ClientsAuth {
            auth_url: self.auth_url.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            project_name: self.project_name.clone(),
            user_domain_name: self.user_domain_name.clone(),
            project_domain_name: self.project_domain_name.clone(),
            cafile: self.cafile.clone(),
            certfile: self.certfile.clone(),
            keyfile: self.keyfile.clone(),
            insecure: self.insecure,
            ..ClientsAuth::default()
        }
        .credentials_of("keystone")
    }
}

/// What the dashboard's login form sends.
pub struct Login {
    pub user: String,
    pub password: watcher_core::secret::Secret,
    pub project: String,
    pub domain: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("The request you have made requires authentication.")]
    Invalid,
    #[error("Keystone could not be reached to validate the token: {0}")]
    Unavailable(String),
}

/// How callers are authenticated.
#[derive(Clone)]
pub enum Auth {
    NoAuth,
    Keystone(Arc<Keystone>),
}

pub struct Keystone {
    config: KeystoneConfig,
    policy: super::policy::Policy,
    /// watcherd's own session, whose token validates callers' tokens.
    session: Session,
    cache: Mutex<HashMap<String, (Caller, Instant)>>,
}

/// Entries kept at most; past it the cache is cleared (tokens re-validate).
const CACHE_MAX: usize = 10_000;

impl Keystone {
    /// Checks the settings (TLS files included); makes no request.
    pub fn new(
        config: KeystoneConfig,
        policy: super::policy::Policy,
    ) -> Result<Keystone, KeystoneError> {
        let session = Session::new(config.credentials()?)?;
        Ok(Keystone {
            config,
            policy,
            session,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// watcherd's own session (the start-up login uses it).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The caller a token stands for (validated with Keystone off the async
    /// workers, cached), or the answer to give instead: 401 for a token
    /// Keystone does not know, 503 when Keystone cannot be asked.
    pub async fn caller(self: &Arc<Self>, token: String) -> Result<Caller, Response> {
        let ks = self.clone();
        match tokio::task::spawn_blocking(move || ks.validate_blocking(&token)).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(AuthError::Invalid)) => Err(unauthorized(&self.config.auth_url, "The request you have made requires authentication: the token is invalid, expired or revoked.")),
            Ok(Err(e @ AuthError::Unavailable(_))) => {
                tracing::warn!(error = %e, "token validation failed");
                Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response())
            }
            Err(e) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()),
        }
    }

    /// Whether the policy lets `caller` do what `rule` names.
    pub fn allows(&self, rule: &str, caller: &Caller) -> bool {
        self.policy.allowed(rule, caller)
    }

    /// A token for a user's password, project-scoped, from Keystone
    /// (blocking): the dashboard's login. None when Keystone refuses them.
    pub fn login_blocking(&self, login: &Login) -> Result<Option<String>, AuthError> {
        let url = self
            .session
            .tokens_url()
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        let domain = serde_json::json!({"name": login.domain});
        let body = serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": login.user, "domain": domain, "password": login.password.expose()}}},
            "scope": {"project": {"name": login.project, "domain": domain}}}});
        match self.session.agent().post(&url).send_json(body) {
            Ok(resp) => Ok(resp.header("X-Subject-Token").map(str::to_string)),
            Err(ureq::Error::Status(400 | 401 | 403 | 404, _)) => Ok(None),
            Err(e) => Err(AuthError::Unavailable(
                watcher_core::secret::redact_urls_in(&e.to_string()),
            )),
        }
    }

    fn service_token(&self, fresh: bool) -> Result<String, AuthError> {
        self.session
            .token(fresh)
            .map_err(|e| AuthError::Unavailable(format!("service login failed: {e}")))
    }

    /// Validates a user's token (blocking: call from a blocking thread).
    fn validate_blocking(&self, token: &str) -> Result<Caller, AuthError> {
        if let Some((caller, until)) = self.cache.lock().expect("cache lock").get(token).cloned() {
            if Instant::now() < until {
                return Ok(caller);
            }
        }
        let mut service = self.service_token(false)?;
        let mut retried = false;
        let body: Value = loop {
            match self
                .session
                .agent()
                .get(
                    &self
                        .session
                        .tokens_url()
                        .map_err(|e| AuthError::Unavailable(e.to_string()))?,
                )
                .set("X-Auth-Token", &service)
                .set("X-Subject-Token", token)
                .call()
            {
                Ok(resp) => {
                    break resp
                        .into_json()
                        .map_err(|e| AuthError::Unavailable(e.to_string()))?
                }
                Err(ureq::Error::Status(401, _)) if !retried => {
                    // Our own token went stale: log in again, once.
                    retried = true;
                    service = self.service_token(true)?;
                }
                Err(ureq::Error::Status(401 | 404, _)) => return Err(AuthError::Invalid),
                Err(e) => {
                    return Err(AuthError::Unavailable(
                        watcher_core::secret::redact_urls_in(&e.to_string()),
                    ))
                }
            }
        };
        let t = &body["token"];
        let caller = Caller {
            user_id: t["user"]["id"].as_str().map(str::to_string),
            project_id: t["project"]["id"].as_str().map(str::to_string),
            roles: t["roles"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(|x| x["name"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        };
        let ttl = Duration::from_secs_f64(self.config.cache_ttl_secs.max(0.0));
        let left = expires_at(&body)
            .map(|e| (e - Utc::now()).to_std().unwrap_or_default())
            .unwrap_or(ttl);
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(
            token.to_string(),
            (caller.clone(), Instant::now() + ttl.min(left)),
        );
        Ok(caller)
    }
}

/// Where watcherd's own operations live under `/v1`: a namespace upstream
/// will not use, so that its next microversions cannot collide with them.
pub const EXTENSION_PREFIX: &str = "/x-watcherd";

/// The policy rule of a route, with upstream's names.
pub fn rule_for(method: &Method, path: &str) -> Option<String> {
    // The dashboard mounts the same API under /dashboard/v1: same rules.
    let path = path.strip_prefix("/dashboard").unwrap_or(path);
    let p = path.strip_prefix("/v1").unwrap_or(path);
    // watcherd's extensions name their rules as upstream's would be named.
    let p = p.strip_prefix(EXTENSION_PREFIX).unwrap_or(p);
    let segs: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    let resource = match *segs.first()? {
        "goals" => "goal",
        "strategies" => "strategy",
        "audits" => "audit",
        "audit_templates" => "audit_template",
        "action_plans" => "action_plan",
        "actions" => "action",
        "services" => "service",
        "scoring_engines" => "scoring_engine",
        "data_model" => return Some("data_model:get_all".into()),
        "webhooks" => return Some("webhook:trigger".into()),
        _ => return None,
    };
    let verb = match (method.as_str(), segs.get(1).copied(), segs.get(2).copied()) {
        ("GET", None, _) => "get_all",
        ("GET", Some("detail"), None) => "detail",
        ("GET", Some(_), Some("state")) => "state",
        ("GET", Some(_), _) => "get",
        ("POST", None, _) => "create",
        ("POST", Some(_), Some("start")) => "start",
        ("POST", Some(_), Some("pause")) => "pause",
        ("POST", Some(_), Some("resume")) => "resume",
        ("PATCH", Some(_), _) => "update",
        ("DELETE", Some(_), _) => "delete",
        _ => return None,
    };
    Some(format!("{resource}:{verb}"))
}

fn unauthorized(auth_url: &str, message: &str) -> Response {
    let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    let auth_url = watcher_core::secret::redact_url(auth_url);
    if let Ok(v) = HeaderValue::from_str(&format!("Keystone uri=\"{auth_url}\"")) {
        resp.headers_mut().insert("www-authenticate", v);
    }
    resp
}

/// Authenticates and applies policy to every `/v1` request.
pub async fn authenticate(State(auth): State<Auth>, mut req: Request, next: Next) -> Response {
    let Auth::Keystone(ks) = auth else {
        return next.run(req).await;
    };
    let webhook = req.extensions().get::<MatchedPath>().is_some_and(|m| {
        let p = m.as_str();
        p.strip_prefix("/v1").unwrap_or(p).starts_with("/webhooks/")
    });
    if webhook && !ks.config.enable_webhooks_auth && req.method() == Method::POST {
        return next.run(req).await;
    }
    let Some(token) = req
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return unauthorized(
            &ks.config.auth_url,
            "The request you have made requires authentication: send X-Auth-Token.",
        );
    };
    let caller = match ks.caller(token).await {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    if let Some(rule) = rule_for(req.method(), &path) {
        if !ks.policy.allowed(&rule, &caller) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                format!("Policy doesn't allow {rule} to be performed."),
            )
            .into_response();
        }
    }
    req.extensions_mut().insert(caller.clone());
    let mut resp = next.run(req).await;
    // For the request's log line (request_log), which sees only the answer.
    resp.extensions_mut().insert(caller);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_upstreams_rule_names() {
        assert_eq!(
            rule_for(&Method::GET, "/v1/action_plans").as_deref(),
            Some("action_plan:get_all")
        );
        assert_eq!(
            rule_for(&Method::GET, "/v1/action_plans/detail").as_deref(),
            Some("action_plan:detail")
        );
        assert_eq!(
            rule_for(&Method::PATCH, "/v1/action_plans/{uuid}").as_deref(),
            Some("action_plan:update")
        );
        assert_eq!(
            rule_for(&Method::POST, "/v1/action_plans/{uuid}/start").as_deref(),
            Some("action_plan:start")
        );
        assert_eq!(
            rule_for(&Method::GET, "/v1/strategies/{ident}/state").as_deref(),
            Some("strategy:state")
        );
        assert_eq!(
            rule_for(&Method::POST, "/v1/audits").as_deref(),
            Some("audit:create")
        );
        // The dashboard's door to the API is held to the same rules.
        assert_eq!(
            rule_for(&Method::PATCH, "/dashboard/v1/action_plans/{uuid}").as_deref(),
            Some("action_plan:update")
        );
    }
}
