//! A logged-in session: a token renewed before it expires, version
//! discovery, and endpoint lookup in the token's catalog.

use crate::credentials::Credentials;
use crate::http;
use crate::KeystoneError;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use watcher_core::secret::{redact_url, redact_urls_in};
use watcher_core::Secret;

/// A token Keystone issued, with what came with it.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub id: Secret,
    pub expires: DateTime<Utc>,
    /// The token's service catalog.
    pub catalog: Value,
}

/// A logged-in session. Blocking: call from a blocking thread.
pub struct Session {
    pub credentials: Credentials,
    agent: ureq::Agent,
    /// The Identity v3 URL, found from `auth_url` at the first login.
    v3: OnceLock<String>,
    token: Mutex<Option<IssuedToken>>,
}

impl Session {
    /// A session whose TLS settings are checked now (no request is made).
    pub fn new(credentials: Credentials) -> Result<Session, KeystoneError> {
        let agent = http::agent(
            &credentials.tls,
            &format!("{} TLS", credentials.source),
            Duration::from_secs(30),
        )
        .map_err(|e| KeystoneError::Config(e.to_string()))?;
        Ok(Session {
            credentials,
            agent,
            v3: OnceLock::new(),
            token: Mutex::new(None),
        })
    }

    /// The Identity v3 base URL: `auth_url` itself when it ends in `/v3`,
    /// otherwise found in the version document Keystone serves at
    /// `auth_url` (what keystoneauth's discovery does).
    pub fn v3_url(&self) -> Result<String, KeystoneError> {
        if let Some(u) = self.v3.get() {
            return Ok(u.clone());
        }
        let base = self.credentials.auth_url.trim_end_matches('/').to_string();
        let found = if base.ends_with("/v3") {
            base
        } else {
            let body: Value = match self.agent.get(&base).call() {
                Ok(r) => r
                    .into_json()
                    .map_err(|e| KeystoneError::transport(&base, e))?,
                // Keystone answers its root with 300 Multiple Choices.
                Err(ureq::Error::Status(300, r)) => r
                    .into_json()
                    .map_err(|e| KeystoneError::transport(&base, e))?,
                Err(ureq::Error::Status(code, _)) => {
                    return Err(KeystoneError::Unavailable {
                        url: redact_url(&base),
                        message: format!("version discovery answered HTTP {code}"),
                    })
                }
                Err(e) => return Err(KeystoneError::transport(&base, e)),
            };
            let href = v3_from_versions(&body).ok_or_else(|| {
                KeystoneError::Config(format!(
                    "{}: auth_url {} offers no Identity v3 API (its version document lists none); \
                     give the v3 URL, e.g. https://keystone:5000/v3",
                    self.credentials.source,
                    redact_url(&base)
                ))
            })?;
            on_origin_of(&base, &href)
        };
        Ok(self.v3.get_or_init(|| found).clone())
    }

    pub fn tokens_url(&self) -> Result<String, KeystoneError> {
        Ok(format!("{}/auth/tokens", self.v3_url()?))
    }

    /// A valid token, logging in again a minute before expiry or when
    /// `fresh` (after a 401).
    pub fn token(&self, fresh: bool) -> Result<String, KeystoneError> {
        Ok(self.current(fresh)?.id.expose().to_string())
    }

    /// Logs in now: at start, so that refused credentials or an untrusted
    /// certificate stop the process with a clear message.
    pub fn login(&self) -> Result<(), KeystoneError> {
        self.current(true).map(|_| ())
    }

    pub(crate) fn login_body(&self) -> Value {
        let c = &self.credentials;
        let domain = |id: &str, name: &str| {
            if id.is_empty() {
                json!({"name": name})
            } else {
                json!({"id": id})
            }
        };
        let scope = if c.project_id.is_empty() {
            json!({"project": {"name": c.project_name,
                "domain": domain(&c.project_domain_id, &c.project_domain_name)}})
        } else {
            json!({"project": {"id": c.project_id}})
        };
        if !c.token.is_empty() {
            return json!({"auth": {
                "identity": {"methods": ["token"], "token": {"id": c.token.expose()}},
                "scope": scope}});
        }
        if c.uses_application_credential() {
            let mut cred = json!({"secret": c.application_credential_secret.expose()});
            if c.application_credential_id.is_empty() {
                cred["name"] = json!(c.application_credential_name);
                cred["user"] = json!({"name": c.username,
                    "domain": domain(&c.user_domain_id, &c.user_domain_name)});
            } else {
                cred["id"] = json!(c.application_credential_id);
            }
            return json!({"auth": {"identity": {
                "methods": ["application_credential"], "application_credential": cred}}});
        }
        json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": c.username, "domain": domain(&c.user_domain_id, &c.user_domain_name),
                "password": c.password.expose()}}},
            "scope": scope
        }})
    }

    fn current(&self, fresh: bool) -> Result<IssuedToken, KeystoneError> {
        if !fresh {
            if let Some(t) = self.token.lock().expect("token lock").clone() {
                if t.expires - chrono::Duration::seconds(60) > Utc::now() {
                    return Ok(t);
                }
            }
        }
        let c = &self.credentials;
        let url = self.tokens_url()?;
        let resp = match self
            .agent
            .post(&url)
            .set("Content-Type", "application/json")
            .send_string(&self.login_body().to_string())
        {
            Ok(r) => r,
            Err(ureq::Error::Status(code @ (400 | 401 | 403 | 404), r)) => {
                return Err(KeystoneError::Refused {
                    user: if !c.token.is_empty() {
                        "the given token".to_string()
                    } else if c.uses_application_credential() {
                        format!(
                            "application credential {}{}",
                            c.application_credential_id, c.application_credential_name
                        )
                    } else {
                        c.username.clone()
                    },
                    project: c.project_name.clone(),
                    message: format!(
                        "{code} {}",
                        redact_urls_in(&r.into_string().unwrap_or_default())
                    ),
                })
            }
            Err(e) => return Err(KeystoneError::transport(&url, e)),
        };
        let id = resp
            .header("X-Subject-Token")
            .ok_or_else(|| KeystoneError::Unavailable {
                url: redact_url(&url),
                message: "no X-Subject-Token in the answer".into(),
            })?
            .to_string();
        let body: Value = resp
            .into_json()
            .map_err(|e| KeystoneError::transport(&url, e))?;
        let token = IssuedToken {
            id: id.into(),
            expires: expires_at(&body).unwrap_or_else(|| Utc::now() + chrono::Duration::minutes(5)),
            catalog: body["token"]["catalog"].clone(),
        };
        *self.token.lock().expect("token lock") = Some(token.clone());
        Ok(token)
    }

    /// The endpoint of `service_type` for our interface and region.
    pub fn endpoint(&self, service_type: &str) -> Result<String, KeystoneError> {
        let t = self.current(false)?;
        find_endpoint(
            &t.catalog,
            service_type,
            &self.credentials.interface,
            self.credentials.region_name.as_deref(),
        )
    }

    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    /// The token in use, if one was issued or adopted: for a client that
    /// keeps it between runs (the CLI's token cache).
    pub fn issued(&self) -> Option<IssuedToken> {
        self.token.lock().expect("token lock").clone()
    }

    /// Uses a token issued earlier (kept by the caller) until it nears its
    /// expiry or `token(true)` asks for a fresh one.
    pub fn adopt(&self, token: IssuedToken) {
        *self.token.lock().expect("token lock") = Some(token);
    }
}

/// `href`'s path on `base`'s scheme and host. Behind a TLS-terminating
/// proxy Keystone often advertises its own internal `http://` address in
/// the version document; the address the operator configured is the one
/// that reaches it (and the one whose certificate we verify).
pub(crate) fn on_origin_of(base: &str, href: &str) -> String {
    let origin = |u: &str| -> Option<usize> {
        let after = u.find("://")? + 3;
        Some(u[after..].find('/').map_or(u.len(), |i| after + i))
    };
    match (origin(base), origin(href)) {
        (Some(b), Some(h)) => format!("{}{}", &base[..b], &href[h..]),
        _ => href.to_string(),
    }
}

/// The v3 URL of a Keystone version document: `{"versions": {"values":
/// [...]}}` (the root, 300) or `{"version": {...}}` (a versioned URL).
pub(crate) fn v3_from_versions(body: &Value) -> Option<String> {
    let single = body.get("version").map(|v| vec![v.clone()]);
    let values = body["versions"]["values"]
        .as_array()
        .cloned()
        .or(single)
        .unwrap_or_default();
    values
        .iter()
        .filter(|v| v["id"].as_str().is_some_and(|id| id.starts_with("v3")))
        .filter(|v| v["status"] != "deprecated")
        .find_map(|v| {
            v["links"].as_array()?.iter().find_map(|l| {
                (l["rel"] == "self")
                    .then(|| {
                        l["href"]
                            .as_str()
                            .map(|h| h.trim_end_matches('/').to_string())
                    })
                    .flatten()
            })
        })
}

pub fn expires_at(token: &Value) -> Option<DateTime<Utc>> {
    token["token"]["expires_at"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

pub(crate) fn find_endpoint(
    catalog: &Value,
    service_type: &str,
    interface: &str,
    region: Option<&str>,
) -> Result<String, KeystoneError> {
    let none = || KeystoneError::NoEndpoint {
        service_type: service_type.into(),
        interface: interface.into(),
        region: region
            .map(|r| format!(" in region {r}"))
            .unwrap_or_default(),
    };
    let services = catalog.as_array().ok_or_else(none)?;
    services
        .iter()
        .filter(|s| s["type"] == service_type)
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .find(|e| {
            e["interface"] == interface
                && region.is_none_or(|r| e["region"] == r || e["region_id"] == r)
        })
        .and_then(|e| {
            e["url"]
                .as_str()
                .map(|u| u.trim_end_matches('/').to_string())
        })
        .ok_or_else(none)
}
