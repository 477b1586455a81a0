//! A small Keystone v3 client: password login, a token renewed before it
//! expires, and endpoint lookup in the token's catalog. Used by the API to
//! validate callers' tokens and by the OpenStack cloud driver.
//!
//! Credentials come, as for every OpenStack tool, from `clouds.yaml`
//! (`OS_CLOUD` names the entry) or from the `OS_*` environment variables.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

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
    #[error("the catalog has no {interface} endpoint of type {service_type}{region}")]
    NoEndpoint {
        service_type: String,
        interface: String,
        region: String,
    },
    #[error("{0}")]
    Config(String),
}

/// Who logs in, and where.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Credentials {
    /// e.g. `http://127.0.0.1:5000/v3`
    pub auth_url: String,
    pub username: String,
    pub password: String,
    pub project_name: String,
    pub user_domain_name: String,
    pub project_domain_name: String,
    pub region_name: Option<String>,
    /// `public` (default), `internal` or `admin`.
    pub interface: String,
}

impl Credentials {
    /// From `OS_CLOUD` and clouds.yaml if `OS_CLOUD` is set, else from the
    /// `OS_*` variables of an openrc file.
    pub fn from_environment() -> Result<Credentials, KeystoneError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(cloud) = var("OS_CLOUD") {
            let file = clouds_yaml_path().ok_or_else(|| {
                KeystoneError::Config(format!(
                    "OS_CLOUD={cloud} but no clouds.yaml was found (looked in OS_CLIENT_CONFIG_FILE, \
                     ./clouds.yaml, ~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml)"
                ))
            })?;
            let text = std::fs::read_to_string(&file).map_err(|e| {
                KeystoneError::Config(format!("cannot read {}: {e}", file.display()))
            })?;
            return Credentials::from_clouds_yaml(&text, &cloud)
                .map_err(|e| KeystoneError::Config(format!("{}: {e}", file.display())));
        }
        let need = |k: &str| {
            var(k).ok_or_else(|| {
                KeystoneError::Config(format!(
                    "{k} is not set: source an openrc file or set OS_CLOUD to an entry of clouds.yaml"
                ))
            })
        };
        Ok(Credentials {
            auth_url: need("OS_AUTH_URL")?,
            username: need("OS_USERNAME")?,
            password: need("OS_PASSWORD")?,
            project_name: var("OS_PROJECT_NAME")
                .or_else(|| var("OS_TENANT_NAME"))
                .ok_or_else(|| KeystoneError::Config("OS_PROJECT_NAME is not set".into()))?,
            user_domain_name: var("OS_USER_DOMAIN_NAME").unwrap_or_else(|| "Default".into()),
            project_domain_name: var("OS_PROJECT_DOMAIN_NAME").unwrap_or_else(|| "Default".into()),
            region_name: var("OS_REGION_NAME"),
            interface: var("OS_INTERFACE").unwrap_or_else(|| "public".into()),
        })
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
        let need = |k: &str| get(auth, k).ok_or_else(|| format!("cloud '{cloud}' has no auth.{k}"));
        Ok(Credentials {
            auth_url: need("auth_url")?,
            username: need("username")?,
            password: need("password")?,
            project_name: need("project_name")?,
            user_domain_name: get(auth, "user_domain_name").unwrap_or_else(|| "Default".into()),
            project_domain_name: get(auth, "project_domain_name")
                .unwrap_or_else(|| "Default".into()),
            region_name: get(entry, "region_name"),
            interface: get(entry, "interface").unwrap_or_else(|| "public".into()),
        })
    }
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

#[derive(Debug, Clone)]
struct Token {
    id: String,
    expires: DateTime<Utc>,
    catalog: Value,
}

/// A logged-in session. Blocking: call from a blocking thread.
pub struct Session {
    pub credentials: Credentials,
    agent: ureq::Agent,
    token: Mutex<Option<Token>>,
}

impl Session {
    pub fn new(credentials: Credentials) -> Session {
        Session {
            credentials,
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                .timeout(Duration::from_secs(30))
                .build(),
            token: Mutex::new(None),
        }
    }

    pub fn tokens_url(&self) -> String {
        format!(
            "{}/auth/tokens",
            self.credentials.auth_url.trim_end_matches('/')
        )
    }

    /// A valid token, logging in again a minute before expiry or when
    /// `fresh` (after a 401).
    pub fn token(&self, fresh: bool) -> Result<String, KeystoneError> {
        Ok(self.current(fresh)?.id)
    }

    fn current(&self, fresh: bool) -> Result<Token, KeystoneError> {
        if !fresh {
            if let Some(t) = self.token.lock().expect("token lock").clone() {
                if t.expires - chrono::Duration::seconds(60) > Utc::now() {
                    return Ok(t);
                }
            }
        }
        let c = &self.credentials;
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": c.username, "domain": {"name": c.user_domain_name}, "password": c.password}}},
            "scope": {"project": {"name": c.project_name, "domain": {"name": c.project_domain_name}}}
        }});
        let url = self.tokens_url();
        let resp = match self
            .agent
            .post(&url)
            .set("Content-Type", "application/json")
            .send_string(&body.to_string())
        {
            Ok(r) => r,
            Err(ureq::Error::Status(code @ (400 | 401 | 403 | 404), r)) => {
                return Err(KeystoneError::Refused {
                    user: c.username.clone(),
                    project: c.project_name.clone(),
                    message: format!("{code} {}", r.into_string().unwrap_or_default()),
                })
            }
            Err(e) => {
                return Err(KeystoneError::Unavailable {
                    url,
                    message: e.to_string(),
                })
            }
        };
        let id = resp
            .header("X-Subject-Token")
            .ok_or_else(|| KeystoneError::Unavailable {
                url: url.clone(),
                message: "no X-Subject-Token in the answer".into(),
            })?
            .to_string();
        let body: Value = resp.into_json().map_err(|e| KeystoneError::Unavailable {
            url,
            message: e.to_string(),
        })?;
        let token = Token {
            id,
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
        assert_eq!(c.password, "se:cret");
        assert_eq!(c.user_domain_name, "Default");
        assert_eq!(c.region_name.as_deref(), Some("RegionOne"));
        assert_eq!(c.interface, "internal");
        let err = Credentials::from_clouds_yaml(text, "other").unwrap_err();
        assert!(err.contains("auth.username"), "{err}");
        let err = Credentials::from_clouds_yaml(text, "nope").unwrap_err();
        assert!(err.contains("no cloud named 'nope'"), "{err}");
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
