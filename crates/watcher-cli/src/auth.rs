//! How the CLI finds watcherd and proves who it is, as every OpenStack
//! CLI does: a `clouds.yaml` entry (`--os-cloud`), the `OS_*` variables of
//! an openrc file, or a token with an endpoint (`--os-token` with
//! `--os-endpoint-override`); with none of these, no authentication, for a
//! watcherd on this machine (the embedded mode).
//!
//! A Keystone token is kept in the user's cache directory (mode 0600) for
//! its lifetime, so a script of twenty commands logs in once.

use clap::Args;
use serde::{Deserialize, Serialize};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use watcher_core::Secret;
use watcher_keystone::{Credentials, IssuedToken, KeystoneError, Session};
use watcher_tls::TlsOptions;

/// Where watcherd is when nothing else says.
pub const LOOPBACK: &str = "http://127.0.0.1:9322";
/// The catalog's service type of the Watcher API.
const SERVICE_TYPE: &str = "infra-optim";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Keystone(#[from] KeystoneError),
    #[error("{0}")]
    Config(String),
}

/// The authentication options, named as in every OpenStack CLI.
#[derive(Args, Clone, Default, Debug)]
#[command(next_help_heading = "Authentication (as every OpenStack CLI)")]
pub struct AuthArgs {
    /// The cloud to use from clouds.yaml (./clouds.yaml, ~/.config/openstack/, /etc/openstack/).
    #[arg(
        long = "os-cloud",
        env = "OS_CLOUD",
        global = true,
        value_name = "NAME"
    )]
    pub cloud: Option<String>,
    /// Keystone's URL, e.g. https://keystone.example:5000/v3.
    #[arg(
        long = "os-auth-url",
        env = "OS_AUTH_URL",
        global = true,
        value_name = "URL"
    )]
    pub auth_url: Option<String>,
    /// password (default), token, v3applicationcredential, or none.
    #[arg(
        long = "os-auth-type",
        env = "OS_AUTH_TYPE",
        global = true,
        value_name = "TYPE"
    )]
    pub auth_type: Option<String>,
    #[arg(
        long = "os-username",
        env = "OS_USERNAME",
        global = true,
        value_name = "NAME"
    )]
    pub username: Option<String>,
    #[arg(
        long = "os-password",
        env = "OS_PASSWORD",
        global = true,
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
    #[arg(
        long = "os-project-name",
        env = "OS_PROJECT_NAME",
        global = true,
        value_name = "NAME"
    )]
    pub project_name: Option<String>,
    #[arg(
        long = "os-project-id",
        env = "OS_PROJECT_ID",
        global = true,
        value_name = "ID"
    )]
    pub project_id: Option<String>,
    #[arg(
        long = "os-user-domain-name",
        env = "OS_USER_DOMAIN_NAME",
        global = true,
        value_name = "NAME"
    )]
    pub user_domain_name: Option<String>,
    #[arg(
        long = "os-user-domain-id",
        env = "OS_USER_DOMAIN_ID",
        global = true,
        value_name = "ID"
    )]
    pub user_domain_id: Option<String>,
    #[arg(
        long = "os-project-domain-name",
        env = "OS_PROJECT_DOMAIN_NAME",
        global = true,
        value_name = "NAME"
    )]
    pub project_domain_name: Option<String>,
    #[arg(
        long = "os-project-domain-id",
        env = "OS_PROJECT_DOMAIN_ID",
        global = true,
        value_name = "ID"
    )]
    pub project_domain_id: Option<String>,
    /// A Keystone token: sent as it is with --os-endpoint-override, else
    /// exchanged at --os-auth-url for one scoped to the project.
    #[arg(
        long = "os-token",
        visible_alias = "os-auth-token",
        env = "OS_TOKEN",
        global = true,
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    #[arg(
        long = "os-application-credential-id",
        env = "OS_APPLICATION_CREDENTIAL_ID",
        global = true,
        value_name = "ID"
    )]
    pub application_credential_id: Option<String>,
    #[arg(
        long = "os-application-credential-name",
        env = "OS_APPLICATION_CREDENTIAL_NAME",
        global = true,
        value_name = "NAME"
    )]
    pub application_credential_name: Option<String>,
    #[arg(
        long = "os-application-credential-secret",
        env = "OS_APPLICATION_CREDENTIAL_SECRET",
        global = true,
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub application_credential_secret: Option<String>,
    /// The catalog's region.
    #[arg(
        long = "os-region-name",
        env = "OS_REGION_NAME",
        global = true,
        value_name = "REGION"
    )]
    pub region_name: Option<String>,
    /// Which endpoints of the catalog: public (default), internal or admin.
    #[arg(
        long = "os-interface",
        visible_alias = "os-endpoint-type",
        env = "OS_INTERFACE",
        global = true,
        value_name = "INTERFACE"
    )]
    pub interface: Option<String>,
    /// watcherd's URL, instead of the catalog's (alias --endpoint, WATCHER_URL).
    #[arg(
        long = "os-endpoint-override",
        visible_alias = "endpoint",
        env = "OS_ENDPOINT_OVERRIDE",
        global = true,
        value_name = "URL"
    )]
    pub endpoint_override: Option<String>,
    /// The CA bundle that signed Keystone's and watcherd's certificates.
    #[arg(
        long = "os-cacert",
        env = "OS_CACERT",
        global = true,
        value_name = "FILE"
    )]
    pub cacert: Option<PathBuf>,
    /// Client certificate, for servers that ask for one.
    #[arg(long = "os-cert", env = "OS_CERT", global = true, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    #[arg(long = "os-key", env = "OS_KEY", global = true, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Do not verify servers' certificates (tests only).
    #[arg(long, env = "OS_INSECURE", global = true)]
    pub insecure: bool,
    /// Log in every time instead of keeping the token (and its catalog) in
    /// ~/.cache/watcher.
    #[arg(long, visible_alias = "no-cache", global = true)]
    pub no_token_cache: bool,
}

/// How requests are authenticated.
pub enum Auth {
    /// Nothing sent: a watcherd without authentication.
    None,
    /// A token sent as it is (`--os-token` with `--os-endpoint-override`).
    Static(Secret),
    /// A Keystone session, its token kept in `cache`.
    Keystone {
        session: Box<Session>,
        cache: Option<TokenCache>,
    },
}

/// Where requests go and with what.
pub struct Target {
    pub endpoint: String,
    pub auth: Auth,
    pub agent: ureq::Agent,
}

impl Target {
    /// The token to send, if any; `fresh` after watcherd said 401.
    pub fn token(&self, fresh: bool) -> Result<Option<Secret>, AuthError> {
        match &self.auth {
            Auth::None => Ok(None),
            Auth::Static(t) => Ok(Some(t.clone())),
            Auth::Keystone { session, cache } => {
                let t = session.token(fresh)?;
                if fresh {
                    if let (Some(cache), Some(issued)) = (cache, session.issued()) {
                        cache.save(&issued);
                    }
                }
                Ok(Some(Secret::new(t)))
            }
        }
    }

    /// Whether a 401 can be cured by logging in again.
    pub fn can_log_in_again(&self) -> bool {
        matches!(self.auth, Auth::Keystone { .. })
    }
}

impl AuthArgs {
    fn tls(&self) -> TlsOptions {
        TlsOptions {
            cafile: self.cacert.clone(),
            certfile: self.cert.clone(),
            keyfile: self.key.clone(),
            insecure: self.insecure,
        }
    }

    /// `--os-token`, `OS_TOKEN` or upstream's `OS_AUTH_TOKEN`.
    fn token(&self) -> Option<String> {
        self.token
            .clone()
            .or_else(|| std::env::var("OS_AUTH_TOKEN").ok())
            .filter(|t| !t.is_empty())
    }

    fn wants_keystone(&self) -> bool {
        self.cloud.is_some() || self.auth_url.is_some()
    }

    /// The credentials: the clouds.yaml entry if one is named, with every
    /// option or `OS_*` variable given over it.
    // Long because one line per option or OS_* variable laid over the clouds.yaml entry,
    // as the OpenStack clients do.
    fn credentials(&self) -> Result<Credentials, AuthError> {
        let mut c = match &self.cloud {
            Some(cloud) => Credentials::from_cloud(cloud)?,
            None => Credentials {
                user_domain_name: "Default".into(),
                project_domain_name: "Default".into(),
                interface: "public".into(),
                source: "the --os-* options and OS_* variables".into(),
                ..Default::default()
            },
        };
        let set = |field: &mut String, v: &Option<String>| {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                *field = v.clone();
            }
        };
        set(&mut c.auth_url, &self.auth_url);
        set(&mut c.username, &self.username);
        set(&mut c.project_name, &self.project_name);
        set(&mut c.project_id, &self.project_id);
        set(&mut c.user_domain_name, &self.user_domain_name);
        set(&mut c.user_domain_id, &self.user_domain_id);
        set(&mut c.project_domain_name, &self.project_domain_name);
        set(&mut c.project_domain_id, &self.project_domain_id);
        set(
            &mut c.application_credential_id,
            &self.application_credential_id,
        );
        set(
            &mut c.application_credential_name,
            &self.application_credential_name,
        );
        set(&mut c.interface, &self.interface);
        if let Some(p) = &self.password {
            c.password = Secret::new(p.clone());
        }
        if let Some(s) = &self.application_credential_secret {
            c.application_credential_secret = Secret::new(s.clone());
        }
        if let Some(r) = self.region_name.as_ref().filter(|r| !r.is_empty()) {
            c.region_name = Some(r.clone());
        }
        c.interface = normalize_interface(&c.interface);
        let tls = self.tls();
        c.tls.cafile = tls.cafile.or(c.tls.cafile.take());
        c.tls.certfile = tls.certfile.or(c.tls.certfile.take());
        c.tls.keyfile = tls.keyfile.or(c.tls.keyfile.take());
        c.tls.insecure |= tls.insecure;
        let auth_type = self.auth_type.as_deref().unwrap_or_else(|| {
            if self.token().is_some() && c.application_credential_secret.is_empty() {
                "token"
            } else {
                ""
            }
        });
        match auth_type {
            "" | "password" | "v3password" => {
                c.token = Secret::default();
                if auth_type.is_empty() {
                    return Ok(c); // clouds.yaml's own auth_type stands
                }
                c.application_credential_secret = Secret::default();
            }
            "token" | "v3token" => {
                if let Some(t) = self.token() {
                    c.token = Secret::new(t);
                }
                if c.token.is_empty() {
                    return Err(AuthError::Config(
                        "--os-auth-type token needs a token: --os-token or OS_TOKEN".into(),
                    ));
                }
            }
            "v3applicationcredential" => c.token = Secret::default(),
            other => {
                return Err(AuthError::Config(format!(
                    "--os-auth-type {other} is not supported; use password, token, \
                     v3applicationcredential or none"
                )))
            }
        }
        Ok(c)
    }

    /// Decides where requests go and how they are authenticated, logging
    /// in to Keystone (or taking a cached token) when that is the way.
    pub fn resolve(&self) -> Result<Target, AuthError> {
        let endpoint_override = self
            .endpoint_override
            .clone()
            .or_else(|| std::env::var("WATCHER_URL").ok())
            .filter(|e| !e.is_empty());
        let tls = self.tls();
        let agent = |tls: &TlsOptions| {
            watcher_keystone::http::agent(tls, "--os-cacert", Duration::from_secs(60))
                .map_err(|e| AuthError::Config(e.to_string()))
        };
        let none = self.auth_type.as_deref() == Some("none");
        if none || !self.wants_keystone() {
            let endpoint = endpoint_override.unwrap_or_else(|| LOOPBACK.to_string());
            let auth = match (self.token(), none) {
                (Some(t), false) => Auth::Static(Secret::new(t)),
                _ => Auth::None,
            };
            return Ok(Target {
                endpoint,
                auth,
                agent: agent(&tls)?,
            });
        }
        if let (Some(t), Some(endpoint)) = (self.token(), &endpoint_override) {
            if self.auth_type.is_none() {
                // What upstream's client does with a token and an endpoint:
                // no Keystone at all.
                return Ok(Target {
                    endpoint: endpoint.clone(),
                    auth: Auth::Static(Secret::new(t)),
                    agent: agent(&tls)?,
                });
            }
        }
        let credentials = self.credentials()?;
        credentials.check()?;
        let agent = agent(&credentials.tls)?;
        let cache = (!self.no_token_cache)
            .then(|| TokenCache::for_credentials(&credentials))
            .flatten();
        let session = Session::new(credentials)?;
        let cached = cache.as_ref().and_then(TokenCache::load);
        let from_cache = cached.is_some();
        if let Some(t) = cached {
            session.adopt(t);
        }
        let before = session.issued().map(|t| t.id);
        let endpoint = match endpoint_override {
            Some(e) => {
                session.token(false)?;
                e
            }
            None => {
                // A cached catalog may be older than Watcher's endpoint (it
                // was registered or moved since): when it has none, or the
                // one it names does not answer as watcherd, log in once
                // more and take the fresh catalog's.
                let stale = |e: &Result<String, KeystoneError>| match e {
                    Err(KeystoneError::NoEndpoint { .. }) => true,
                    Ok(url) => !answers_as_watcher(&agent, url),
                    Err(_) => false,
                };
                let mut found = session.endpoint(SERVICE_TYPE);
                if from_cache && stale(&found) {
                    session.token(true)?;
                    found = session.endpoint(SERVICE_TYPE);
                }
                found.map_err(|e| match e {
                    KeystoneError::NoEndpoint { .. } => AuthError::Config(format!(
                        "{e}: is Watcher registered in Keystone (openstack endpoint list \
                         --service infra-optim)? Otherwise give watcherd's URL with \
                         --os-endpoint-override"
                    )),
                    e => e.into(),
                })?
            }
        };
        if let (Some(cache), Some(now)) = (&cache, session.issued()) {
            if before.as_ref() != Some(&now.id) {
                cache.save(&now);
            }
        }
        Ok(Target {
            endpoint,
            auth: Auth::Keystone {
                session: Box::new(session),
                cache,
            },
            agent,
        })
    }
}

/// Whether `url` answers as a Watcher API: its root document, without a
/// token. A refused connection or a 404 means the cached catalog points
/// where watcherd no longer is.
fn answers_as_watcher(agent: &ureq::Agent, url: &str) -> bool {
    match agent
        .get(url.trim_end_matches('/'))
        .timeout(Duration::from_secs(10))
        .call()
    {
        Ok(_) => true,
        Err(ureq::Error::Status(404, _)) | Err(ureq::Error::Transport(_)) => false,
        // Anything else (401 from a proxy, 5xx) is the endpoint's to explain.
        Err(ureq::Error::Status(..)) => true,
    }
}

/// `publicURL` (upstream's `--os-endpoint-type` values) -> `public`.
fn normalize_interface(i: &str) -> String {
    i.trim_end_matches("URL").to_ascii_lowercase()
}

/// One user's token on disk: `<cache dir>/watcher/token-<key>.json`, mode
/// 0600 in a 0700 directory, the key a hash of who logs in where (never of
/// a password).
pub struct TokenCache {
    path: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct CachedToken {
    id: String,
    expires_at: chrono::DateTime<chrono::Utc>,
    catalog: serde_json::Value,
}

impl TokenCache {
    fn for_credentials(c: &Credentials) -> Option<TokenCache> {
        let dir = cache_dir()?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (
            &c.auth_url,
            &c.username,
            &c.user_domain_name,
            &c.user_domain_id,
            &c.project_name,
            &c.project_id,
            &c.project_domain_name,
            &c.project_domain_id,
            &c.application_credential_id,
            &c.application_credential_name,
        )
            .hash(&mut h);
        // A token given to exchange is its own user: never share its entry.
        c.token.expose().hash(&mut h);
        Some(TokenCache {
            path: dir.join(format!("token-{:016x}.json", h.finish())),
        })
    }

    /// The cached token if it has more than a minute to live.
    fn load(&self) -> Option<IssuedToken> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let t: CachedToken = serde_json::from_str(&text).ok()?;
        (t.expires_at - chrono::Duration::seconds(60) > chrono::Utc::now()).then(|| IssuedToken {
            id: Secret::new(t.id),
            expires: t.expires_at,
            catalog: t.catalog,
        })
    }

    /// Keeps `t`; a cache that cannot be written only costs a login.
    fn save(&self, t: &IssuedToken) {
        let record = CachedToken {
            id: t.id.expose().to_string(),
            expires_at: t.expires,
            catalog: t.catalog.clone(),
        };
        let Ok(text) = serde_json::to_string(&record) else {
            return;
        };
        let _ = write_private(&self.path, text.as_bytes());
    }
}

fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("watcher"))
}

/// Writes `bytes` to `path` readable by its owner only, replacing it
/// whole (a reader never sees half a token).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(".token-{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_types_of_upstreams_client_name_interfaces() {
        assert_eq!(normalize_interface("publicURL"), "public");
        assert_eq!(normalize_interface("internalURL"), "internal");
        assert_eq!(normalize_interface("admin"), "admin");
    }

    #[test]
    fn options_go_over_the_variables_and_pick_the_auth_type() {
        let args = AuthArgs {
            auth_url: Some("http://ks:5000/v3".into()),
            token: Some("tok".into()),
            project_name: Some("admin".into()),
            ..Default::default()
        };
        let c = args.credentials().unwrap();
        assert_eq!(
            c.token.expose(),
            "tok",
            "a token with an auth URL is token auth"
        );
        c.check().unwrap();
        let args = AuthArgs {
            auth_url: Some("http://ks:5000/v3".into()),
            username: Some("u".into()),
            password: Some("p".into()),
            project_id: Some("0123".into()),
            interface: Some("internalURL".into()),
            ..Default::default()
        };
        let c = args.credentials().unwrap();
        assert!(c.token.is_empty());
        assert_eq!(c.interface, "internal");
        c.check().unwrap();
        let bad = AuthArgs {
            auth_type: Some("kerberos".into()),
            ..args
        };
        let e = bad.credentials().unwrap_err().to_string();
        assert!(e.contains("kerberos is not supported"), "{e}");
    }

    #[test]
    fn cached_tokens_are_private_and_expire() {
        let dir = std::env::temp_dir().join(format!("watcher-cli-cache-{}", std::process::id()));
        let cache = TokenCache {
            path: dir.join("watcher/token-x.json"),
        };
        assert!(cache.load().is_none());
        let t = IssuedToken {
            id: Secret::new("gAAAA-token"),
            expires: chrono::Utc::now() + chrono::Duration::hours(1),
            catalog: serde_json::json!([]),
        };
        cache.save(&t);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cache.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(cache.path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(cache.load().unwrap().id.expose(), "gAAAA-token");
        cache.save(&IssuedToken {
            expires: chrono::Utc::now() + chrono::Duration::seconds(30),
            ..t
        });
        assert!(
            cache.load().is_none(),
            "a token about to expire is not used"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
