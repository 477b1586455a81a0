//! A small Keystone v3 client: password login, a token renewed before it
//! expires, and endpoint lookup in the token's catalog. Used by the API to
//! validate callers' tokens, by the OpenStack cloud driver and by the
//! `watcher` CLI.
//!
//! Credentials come, as for every OpenStack tool, from `clouds.yaml`
//! (`OS_CLOUD` names the entry) or from the `OS_*` environment variables.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use watcher_core::secret::{redact_url, redact_urls_in};
use watcher_core::Secret;
use watcher_tls::TlsOptions;

pub mod http;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum KeystoneError {
    /// Keystone refused the credentials.
    #[error("Keystone refused the credentials of {user} (project {project}): {message}")]
    Refused {
        user: String,
        project: String,
        message: String,
    },
    /// Keystone could not be reached or answered with an error.
    #[error("Keystone at {url} could not be reached: {message}")]
    Unavailable { url: String, message: String },
    /// The server's certificate is not trusted: waiting will not help.
    #[error("Keystone at {url}: its TLS certificate is not trusted ({message}); set the CA that signed it (cafile, clouds.yaml cacert or OS_CACERT)")]
    Untrusted { url: String, message: String },
    #[error("the catalog has no {interface} endpoint of type {service_type}{region}")]
    NoEndpoint {
        service_type: String,
        interface: String,
        region: String,
    },
    #[error("{0}")]
    Config(String),
}

impl KeystoneError {
    /// An error that waiting may cure (Keystone still booting).
    pub fn is_transient(&self) -> bool {
        matches!(self, KeystoneError::Unavailable { .. })
    }

    /// The error of a failed request to `url`.
    fn transport(url: &str, e: impl std::fmt::Display) -> KeystoneError {
        let (url, message) = (redact_url(url), redact_urls_in(&e.to_string()));
        if watcher_tls::is_certificate_error(&message) {
            KeystoneError::Untrusted { url, message }
        } else {
            KeystoneError::Unavailable { url, message }
        }
    }
}

/// Who logs in, and where.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Credentials {
    /// e.g. `https://keystone:5000/v3`, or without `/v3` (found by
    /// version discovery).
    pub auth_url: String,
    pub username: String,
    pub password: Secret,
    pub project_name: String,
    /// Used instead of `project_name` (and its domain) when set.
    pub project_id: String,
    pub user_domain_name: String,
    /// Used instead of `user_domain_name` when set.
    pub user_domain_id: String,
    pub project_domain_name: String,
    /// Used instead of `project_domain_name` when set.
    pub project_domain_id: String,
    /// Token auth (`auth_type = token`): a token exchanged at login for
    /// one scoped to the project, whose catalog is then used.
    pub token: Secret,
    /// Application credential (`auth_type = v3applicationcredential`): the
    /// id, or the name with `username` and `user_domain_name`; the project
    /// is the credential's own.
    pub application_credential_id: String,
    pub application_credential_name: String,
    pub application_credential_secret: Secret,
    pub region_name: Option<String>,
    /// `public` (default), `internal` or `admin`.
    pub interface: String,
    pub tls: TlsOptions,
    /// Where these came from, for messages (a setting's name, a file, the
    /// environment).
    pub source: String,
}

/// `[watcher_clients_auth]`: the credentials watcherd manages the cloud
/// with, as upstream's section of the same name. Set `auth_url` to use it;
/// otherwise `OS_CLOUD` + clouds.yaml, then the `OS_*` variables, are read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClientsAuth {
    /// `password` or `v3applicationcredential`.
    pub auth_type: String,
    pub auth_url: String,
    pub username: String,
    pub password: Secret,
    pub project_name: String,
    pub user_domain_name: String,
    pub project_domain_name: String,
    pub application_credential_id: String,
    pub application_credential_name: String,
    pub application_credential_secret: Secret,
    pub region_name: String,
    /// `public`, `internal` or `admin`: which endpoints of the catalog.
    pub interface: String,
    pub cafile: Option<PathBuf>,
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    pub insecure: bool,
}

impl Default for ClientsAuth {
    fn default() -> Self {
        ClientsAuth {
            auth_type: "password".into(),
            auth_url: String::new(),
            username: String::new(),
            password: Secret::default(),
            project_name: String::new(),
            user_domain_name: "Default".into(),
            project_domain_name: "Default".into(),
            application_credential_id: String::new(),
            application_credential_name: String::new(),
            application_credential_secret: Secret::default(),
            region_name: String::new(),
            interface: "public".into(),
            cafile: None,
            certfile: None,
            keyfile: None,
            insecure: false,
        }
    }
}

impl ClientsAuth {
    pub fn is_set(&self) -> bool {
        !self.auth_url.is_empty()
    }

    pub fn tls(&self) -> TlsOptions {
        TlsOptions {
            cafile: self.cafile.clone(),
            certfile: self.certfile.clone(),
            keyfile: self.keyfile.clone(),
            insecure: self.insecure,
        }
    }

    /// The credentials of this section, checked.
    pub fn credentials(&self) -> Result<Credentials, KeystoneError> {
        self.credentials_of("watcher_clients_auth")
    }

    /// The same for a section of another name (`keystone`), which
    /// messages then name.
    pub fn credentials_of(&self, section: &str) -> Result<Credentials, KeystoneError> {
        let mut c = Credentials {
            auth_url: self.auth_url.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            project_name: self.project_name.clone(),
            user_domain_name: self.user_domain_name.clone(),
            project_domain_name: self.project_domain_name.clone(),
            application_credential_id: self.application_credential_id.clone(),
            application_credential_name: self.application_credential_name.clone(),
            application_credential_secret: self.application_credential_secret.clone(),
            region_name: Some(self.region_name.clone()).filter(|r| !r.is_empty()),
            interface: self.interface.clone(),
            tls: self.tls(),
            source: section.into(),
            ..Default::default()
        };
        match self.auth_type.as_str() {
            "password" | "v3password" => {
                c.application_credential_secret = Secret::default();
            }
            "v3applicationcredential" => {}
            other => {
                return Err(KeystoneError::Config(format!(
                "{section}.auth_type '{other}' is unknown; use 'password' or 'v3applicationcredential'"
            )))
            }
        }
        c.check()?;
        Ok(c)
    }
}

impl Credentials {
    /// `[watcher_clients_auth]` when it is set; otherwise `OS_CLOUD` and
    /// clouds.yaml; otherwise the `OS_*` variables of an openrc file.
    pub fn resolve(section: &ClientsAuth) -> Result<Credentials, KeystoneError> {
        if section.is_set() {
            section.credentials()
        } else {
            Credentials::from_environment()
        }
    }

    fn uses_application_credential(&self) -> bool {
        !self.application_credential_secret.is_empty()
    }

    /// Refuses credentials that cannot log in, naming what is missing.
    pub fn check(&self) -> Result<(), KeystoneError> {
        let missing = |what: &str| {
            Err(KeystoneError::Config(format!(
                "{}: {what} is not set",
                self.source
            )))
        };
        if self.auth_url.is_empty() {
            return missing("auth_url");
        }
        if !(self.auth_url.starts_with("http://") || self.auth_url.starts_with("https://")) {
            return Err(KeystoneError::Config(format!(
                "{}: auth_url {} is not an http:// or https:// URL",
                self.source,
                redact_url(&self.auth_url)
            )));
        }
        if !self.token.is_empty() {
            if self.project_name.is_empty() && self.project_id.is_empty() {
                return missing("project_name (or project_id) to scope the token to");
            }
        } else if self.uses_application_credential() {
            if self.application_credential_id.is_empty()
                && (self.application_credential_name.is_empty() || self.username.is_empty())
            {
                return missing(
                    "application_credential_id (or application_credential_name with username)",
                );
            }
        } else {
            if self.username.is_empty() {
                return missing("username");
            }
            if self.password.is_empty() {
                return missing("password");
            }
            if self.project_name.is_empty() && self.project_id.is_empty() {
                return missing("project_name");
            }
        }
        self.tls
            .check(&format!("{} TLS", self.source))
            .map_err(|e| KeystoneError::Config(e.to_string()))
    }

    /// From `OS_CLOUD` and clouds.yaml if `OS_CLOUD` is set, else from the
    /// `OS_*` variables of an openrc file.
    pub fn from_environment() -> Result<Credentials, KeystoneError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(cloud) = var("OS_CLOUD") {
            let c = Credentials::from_cloud(&cloud)?;
            c.check()?;
            return Ok(c);
        }
        let c = Credentials::from_os_variables(var);
        c.check()?;
        Ok(c)
    }

    /// The entry `cloud` of the first clouds.yaml found where every
    /// OpenStack tool looks (`OS_CLIENT_CONFIG_FILE`, `./clouds.yaml`,
    /// `~/.config/openstack/clouds.yaml`, `/etc/openstack/clouds.yaml`),
    /// certificate paths made absolute; not checked (the caller may add
    /// to it first).
    pub fn from_cloud(cloud: &str) -> Result<Credentials, KeystoneError> {
        let file = clouds_yaml_path().ok_or_else(|| {
            KeystoneError::Config(format!(
                "cloud '{cloud}' is asked for (OS_CLOUD or --os-cloud) but no clouds.yaml was found (looked in OS_CLIENT_CONFIG_FILE, \
                 ./clouds.yaml, ~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml)"
            ))
        })?;
        let text = std::fs::read_to_string(&file)
            .map_err(|e| KeystoneError::Config(format!("cannot read {}: {e}", file.display())))?;
        let mut c = Credentials::from_clouds_yaml(&text, cloud)
            .map_err(|e| KeystoneError::Config(format!("{}: {e}", file.display())))?;
        c.source = format!("clouds.yaml entry '{cloud}' ({})", file.display());
        // Relative certificate paths are relative to clouds.yaml.
        let dir = file.parent().unwrap_or(Path::new("."));
        for p in [&mut c.tls.cafile, &mut c.tls.certfile, &mut c.tls.keyfile]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
        Ok(c)
    }

    /// The `OS_*` variables of an openrc file, read through `var` (the
    /// environment, or a command line's options over it); not checked.
    pub fn from_os_variables(var: impl Fn(&str) -> Option<String>) -> Credentials {
        Credentials {
            auth_url: var("OS_AUTH_URL").unwrap_or_default(),
            username: var("OS_USERNAME").unwrap_or_default(),
            password: var("OS_PASSWORD").unwrap_or_default().into(),
            project_name: var("OS_PROJECT_NAME")
                .or_else(|| var("OS_TENANT_NAME"))
                .unwrap_or_default(),
            project_id: var("OS_PROJECT_ID")
                .or_else(|| var("OS_TENANT_ID"))
                .unwrap_or_default(),
            user_domain_name: var("OS_USER_DOMAIN_NAME").unwrap_or_else(|| "Default".into()),
            user_domain_id: var("OS_USER_DOMAIN_ID").unwrap_or_default(),
            project_domain_name: var("OS_PROJECT_DOMAIN_NAME").unwrap_or_else(|| "Default".into()),
            project_domain_id: var("OS_PROJECT_DOMAIN_ID").unwrap_or_default(),
            token: var("OS_TOKEN")
                .or_else(|| var("OS_AUTH_TOKEN"))
                .filter(|_| var("OS_AUTH_TYPE").is_some_and(|t| t.ends_with("token")))
                .unwrap_or_default()
                .into(),
            application_credential_id: var("OS_APPLICATION_CREDENTIAL_ID").unwrap_or_default(),
            application_credential_name: var("OS_APPLICATION_CREDENTIAL_NAME").unwrap_or_default(),
            application_credential_secret: var("OS_APPLICATION_CREDENTIAL_SECRET")
                .unwrap_or_default()
                .into(),
            region_name: var("OS_REGION_NAME"),
            interface: var("OS_INTERFACE").unwrap_or_else(|| "public".into()),
            tls: TlsOptions {
                cafile: var("OS_CACERT").map(PathBuf::from),
                certfile: var("OS_CERT").map(PathBuf::from),
                keyfile: var("OS_KEY").map(PathBuf::from),
                insecure: var("OS_INSECURE").is_some_and(|v| is_true(&v)),
            },
            source: "the OS_* variables (no [watcher_clients_auth] auth_url, no OS_CLOUD)".into(),
        }
    }

    /// The entry `cloud` of a clouds.yaml file.
    pub fn from_clouds_yaml(text: &str, cloud: &str) -> Result<Credentials, String> {
        let doc = parse_yaml_mapping(text)?;
        let entry = doc
            .get("clouds")
            .and_then(|c| c.get(cloud))
            .ok_or_else(|| format!("no cloud named '{cloud}' under 'clouds:'"))?;
        let auth = entry
            .get("auth")
            .ok_or_else(|| format!("cloud '{cloud}' has no 'auth:' section"))?;
        let get = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let auth_type = get(entry, "auth_type").unwrap_or_default();
        let app_cred = auth_type.contains("applicationcredential");
        let token_auth = auth_type == "token" || auth_type == "v3token";
        let need = |k: &str| get(auth, k).ok_or_else(|| format!("cloud '{cloud}' has no auth.{k}"));
        let project = || match get(auth, "project_id") {
            Some(_) => Ok(get(auth, "project_name").unwrap_or_default()),
            None => need("project_name"),
        };
        let (username, password, project_name) = if app_cred {
            (
                get(auth, "username").unwrap_or_default(),
                String::new(),
                String::new(),
            )
        } else if token_auth {
            (String::new(), String::new(), project()?)
        } else {
            (need("username")?, need("password")?, project()?)
        };
        Ok(Credentials {
            auth_url: need("auth_url")?,
            username,
            password: password.into(),
            project_name,
            project_id: get(auth, "project_id").unwrap_or_default(),
            user_domain_name: get(auth, "user_domain_name").unwrap_or_else(|| "Default".into()),
            user_domain_id: get(auth, "user_domain_id").unwrap_or_default(),
            project_domain_name: get(auth, "project_domain_name")
                .unwrap_or_else(|| "Default".into()),
            project_domain_id: get(auth, "project_domain_id").unwrap_or_default(),
            token: if token_auth {
                need("token")?.into()
            } else {
                Secret::default()
            },
            application_credential_id: get(auth, "application_credential_id").unwrap_or_default(),
            application_credential_name: get(auth, "application_credential_name")
                .unwrap_or_default(),
            application_credential_secret: if app_cred {
                need("application_credential_secret")?.into()
            } else {
                Secret::default()
            },
            region_name: get(entry, "region_name"),
            interface: get(entry, "interface").unwrap_or_else(|| "public".into()),
            tls: TlsOptions {
                cafile: get(entry, "cacert").map(PathBuf::from),
                certfile: get(entry, "cert").map(PathBuf::from),
                keyfile: get(entry, "key").map(PathBuf::from),
                insecure: get(entry, "verify").is_some_and(|v| !is_true(&v))
                    || get(entry, "insecure").is_some_and(|v| is_true(&v)),
            },
            source: format!("clouds.yaml entry '{cloud}'"),
        })
    }
}

fn is_true(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

fn clouds_yaml_path() -> Option<PathBuf> {
    let mut candidates = vec![];
    if let Ok(f) = std::env::var("OS_CLIENT_CONFIG_FILE") {
        candidates.push(PathBuf::from(f));
    }
    candidates.push(PathBuf::from("clouds.yaml"));
    if let Ok(h) = std::env::var("HOME") {
        candidates.push(Path::new(&h).join(".config/openstack/clouds.yaml"));
    }
    candidates.push(PathBuf::from("/etc/openstack/clouds.yaml"));
    candidates.into_iter().find(|p| p.is_file())
}

/// The subset of YAML clouds.yaml files use: nested mappings of scalars by
/// indentation, comments, quoted strings. Enough to avoid a YAML library.
fn parse_yaml_mapping(text: &str) -> Result<Value, String> {
    let mut root = serde_json::Map::new();
    // (indent, path of keys) of the open mappings.
    let mut stack: Vec<(usize, Vec<String>)> = vec![(0, vec![])];
    for (n, raw) in text.lines().enumerate() {
        let line = match raw.find(" #") {
            Some(i) if !raw[..i].contains(['"', '\'']) => &raw[..i],
            _ => raw,
        };
        if line.trim().is_empty() || line.trim_start().starts_with('#') || line.trim() == "---" {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let (key, value) = line
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("line {}: expected 'key: value'", n + 1))?;
        if key.starts_with('-') {
            return Err(format!("line {}: lists are not supported here", n + 1));
        }
        while stack.len() > 1 && indent <= stack.last().expect("root").0 {
            stack.pop();
        }
        let mut path = stack.last().expect("root").1.clone();
        let key = unquote(key.trim()).to_string();
        let value = value.trim();
        let mut node = &mut root;
        for k in &path {
            node = node
                .entry(k.clone())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .ok_or_else(|| format!("line {}: '{k}' is not a mapping", n + 1))?;
        }
        if value.is_empty() {
            node.insert(key.clone(), json!({}));
            path.push(key);
            stack.push((indent + 1, path));
        } else {
            node.insert(key, json!(unquote(value)));
        }
    }
    Ok(Value::Object(root))
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .or_else(|| s.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
        .unwrap_or(s)
}

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

    fn login_body(&self) -> Value {
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
fn on_origin_of(base: &str, href: &str) -> String {
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
fn v3_from_versions(body: &Value) -> Option<String> {
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

fn find_endpoint(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clouds_yaml_entries_are_read_with_defaults() {
        let text = r#"
# my clouds
clouds:
  other:
    auth:
      auth_url: http://elsewhere:5000/v3
  mini:
    region_name: RegionOne
    interface: internal   # not public
    auth:
      auth_url: "http://127.0.0.1:5000/v3"
      username: admin
      password: 'se:cret'
      project_name: admin
"#;
        let c = Credentials::from_clouds_yaml(text, "mini").unwrap();
        assert_eq!(c.auth_url, "http://127.0.0.1:5000/v3");
        assert_eq!(c.password.expose(), "se:cret");
        assert_eq!(c.user_domain_name, "Default");
        assert_eq!(c.region_name.as_deref(), Some("RegionOne"));
        assert_eq!(c.interface, "internal");
        let err = Credentials::from_clouds_yaml(text, "other").unwrap_err();
        assert!(err.contains("auth.username"), "{err}");
        let err = Credentials::from_clouds_yaml(text, "nope").unwrap_err();
        assert!(err.contains("no cloud named 'nope'"), "{err}");
    }

    #[test]
    fn clouds_yaml_application_credentials_and_tls_are_read() {
        let text = r#"
clouds:
  prod:
    auth_type: v3applicationcredential
    cacert: ca.pem
    cert: /etc/watcher/client.pem
    key: /etc/watcher/client.key
    auth:
      auth_url: https://keystone.example:5000
      application_credential_id: 21dced0fd20347869b93710d2b98aae0
      application_credential_secret: s3cr3t
  lab:
    verify: false
    auth:
      auth_url: https://lab:5000/v3
      username: u
      password: p
      project_name: x
"#;
        let c = Credentials::from_clouds_yaml(text, "prod").unwrap();
        assert!(c.uses_application_credential());
        assert_eq!(c.application_credential_secret.expose(), "s3cr3t");
        assert_eq!(c.tls.cafile.as_deref(), Some(Path::new("ca.pem")));
        assert_eq!(
            c.tls.keyfile.as_deref(),
            Some(Path::new("/etc/watcher/client.key"))
        );
        assert!(!c.tls.insecure);
        let lab = Credentials::from_clouds_yaml(text, "lab").unwrap();
        assert!(lab.tls.insecure);
        assert!(!format!("{lab:?}").contains("password: \"p\""));
    }

    #[test]
    fn token_auth_and_ids_scope_the_login_as_asked() {
        let text = r#"
clouds:
  tok:
    auth_type: token
    auth:
      auth_url: http://ks:5000/v3
      token: gAAAA-given
      project_id: 0123abcd
"#;
        let c = Credentials::from_clouds_yaml(text, "tok").unwrap();
        assert_eq!(c.token.expose(), "gAAAA-given");
        c.check().unwrap();
        let body = Session::new(c).unwrap().login_body();
        assert_eq!(body["auth"]["identity"]["methods"], json!(["token"]));
        assert_eq!(body["auth"]["identity"]["token"]["id"], "gAAAA-given");
        assert_eq!(
            body["auth"]["scope"],
            json!({"project": {"id": "0123abcd"}})
        );

        let c = Credentials {
            auth_url: "http://ks:5000/v3".into(),
            username: "u".into(),
            password: "p".into(),
            project_name: "demo".into(),
            user_domain_id: "default".into(),
            project_domain_id: "default".into(),
            source: "test".into(),
            ..Default::default()
        };
        let body = Session::new(c).unwrap().login_body();
        assert_eq!(
            body["auth"]["identity"]["password"]["user"]["domain"],
            json!({"id": "default"})
        );
        assert_eq!(
            body["auth"]["scope"]["project"],
            json!({"name": "demo", "domain": {"id": "default"}})
        );
        let missing = Credentials {
            token: "t".into(),
            auth_url: "http://ks:5000/v3".into(),
            source: "test".into(),
            ..Default::default()
        };
        let e = missing.check().unwrap_err().to_string();
        assert!(e.contains("project_name (or project_id)"), "{e}");
    }

    #[test]
    fn the_v3_url_is_found_in_keystones_version_documents() {
        let root = json!({"versions": {"values": [
            {"id": "v2.0", "status": "deprecated", "links": [{"rel": "self", "href": "https://ks/v2.0/"}]},
            {"id": "v3.14", "status": "stable", "links": [{"rel": "self", "href": "https://ks/v3/"}]}
        ]}});
        assert_eq!(v3_from_versions(&root).as_deref(), Some("https://ks/v3"));
        let single = json!({"version": {"id": "v3.14", "status": "stable",
            "links": [{"rel": "self", "href": "https://ks/identity/v3/"}]}});
        assert_eq!(
            v3_from_versions(&single).as_deref(),
            Some("https://ks/identity/v3")
        );
        assert_eq!(v3_from_versions(&json!({"error": "x"})), None);
        assert_eq!(
            on_origin_of("https://keystone.example:5001", "http://10.0.0.3:5000/v3"),
            "https://keystone.example:5001/v3"
        );
        assert_eq!(
            on_origin_of("https://cloud/identity/", "http://internal/identity/v3"),
            "https://cloud/identity/v3"
        );
    }

    #[test]
    fn missing_credentials_are_named_with_their_source() {
        let section = ClientsAuth {
            auth_url: "https://ks:5000".into(),
            username: "watcher".into(),
            ..Default::default()
        };
        let e = section.credentials().unwrap_err().to_string();
        assert_eq!(e, "watcher_clients_auth: password is not set");
        let e = ClientsAuth {
            auth_url: "keystone:5000".into(),
            ..section.clone()
        }
        .credentials()
        .unwrap_err()
        .to_string();
        assert!(e.contains("not an http:// or https:// URL"), "{e}");
        let ok = ClientsAuth {
            auth_type: "v3applicationcredential".into(),
            application_credential_id: "abc".into(),
            application_credential_secret: "s".into(),
            ..section
        };
        assert!(ok.credentials().unwrap().uses_application_credential());
    }

    #[test]
    fn endpoints_are_found_by_type_interface_and_region() {
        let catalog = json!([
            {"type": "compute", "endpoints": [
                {"interface": "admin", "region": "RegionOne", "url": "http://admin:8774/v2.1"},
                {"interface": "public", "region": "RegionTwo", "url": "http://two:8774/v2.1"},
                {"interface": "public", "region": "RegionOne", "url": "http://one:8774/v2.1/"}]},
            {"type": "identity", "endpoints": []}
        ]);
        assert_eq!(
            find_endpoint(&catalog, "compute", "public", Some("RegionOne")).unwrap(),
            "http://one:8774/v2.1"
        );
        let err = find_endpoint(&catalog, "block-storage", "public", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the catalog has no public endpoint of type block-storage"
        );
    }
}
