//! Who logs in, and where: `[watcher_clients_auth]`, `OS_CLOUD` and
//! clouds.yaml, or the `OS_*` variables.

use crate::KeystoneError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use watcher_core::secret::redact_url;
use watcher_core::Secret;
use watcher_tls::TlsOptions;

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

    pub(crate) fn uses_application_credential(&self) -> bool {
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
