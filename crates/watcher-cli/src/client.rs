//! A small blocking client of the v1 API, for the `watcher` CLI.

use crate::auth::{AuthError, Target};
use serde_json::Value;
use std::cell::RefCell;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error; `message` is its faultstring.
    #[error("{message} (HTTP {status})")]
    Api { status: u16, message: String },
    #[error("cannot reach watcherd at {endpoint}: {detail}. Is watcherd running? Set --os-endpoint-override (or WATCHER_URL), or log in with --os-cloud / OS_AUTH_URL to find it in the catalog.")]
    Unreachable { endpoint: String, detail: String },
    #[error("watcherd at {endpoint}: its TLS certificate is not trusted ({detail}); give the CA that signed it with --os-cacert FILE (or OS_CACERT, or cacert in clouds.yaml)")]
    Untrusted { endpoint: String, detail: String },
    #[error("watcherd at {endpoint} asks who you are (HTTP 401): log in with --os-cloud NAME (clouds.yaml) or the OS_* variables of an openrc file, or pass --os-token")]
    Unauthenticated { endpoint: String },
    #[error("watcherd supports API versions {min} to {max}, not {asked}: ask for one of these with --os-infra-optim-api-version, or leave it out to use the highest both sides know")]
    Version {
        asked: String,
        min: String,
        max: String,
    },
    #[error("{0}")]
    Auth(#[from] AuthError),
    /// Asked for something this session cannot send (a version it cannot
    /// read, a feature below its version): said before any request.
    #[error("{0}")]
    Usage(String),
    #[error("unexpected answer from watcherd: {0}")]
    Protocol(String),
}

/// The highest API microversion this client knows.
pub const CLIENT_MAX_VERSION: (u32, u32) = (1, 7);

pub struct Client {
    endpoint: String,
    target: Target,
    /// The version sent; settled by the first answer when negotiated.
    version: RefCell<String>,
    /// Asked for by the user (`--os-infra-optim-api-version`): never
    /// lowered, a refusal is an error.
    pinned: bool,
}

/// `1.4` -> (1, 4).
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Extracts the faultstring from Watcher's double-encoded error body.
pub fn fault_message(body: &str) -> String {
    let outer: Option<Value> = serde_json::from_str(body).ok();
    let inner = outer
        .as_ref()
        .and_then(|o| o.get("error_message"))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok());
    inner
        .as_ref()
        .and_then(|i| i.get("faultstring"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| body.chars().take(300).collect())
}

impl Client {
    /// A client of the watcherd `target` names. `version`: the
    /// microversion asked for, or `None`/`latest` for the highest both
    /// sides know (the first answer settles it).
    pub fn new(target: Target, version: Option<&str>) -> Result<Client, ClientError> {
        let endpoint = target
            .endpoint
            .trim_end_matches('/')
            .trim_end_matches("/v1")
            .to_string();
        let asked = version.filter(|v| !v.is_empty() && *v != "latest" && *v != "1.latest");
        let version = match asked {
            Some(v) => {
                if parse_version(v).is_none() {
                    return Err(ClientError::Usage(format!(
                        "'{v}' is not an API version: give MAJOR.MINOR, e.g. 1.7"
                    )));
                }
                v.to_string()
            }
            None => format!("{}.{}", CLIENT_MAX_VERSION.0, CLIENT_MAX_VERSION.1),
        };
        Ok(Client {
            endpoint,
            target,
            version: RefCell::new(version),
            pinned: asked.is_some(),
        })
    }

    /// The microversion in use.
    pub fn version(&self) -> (u32, u32) {
        parse_version(&self.version.borrow()).unwrap_or(CLIENT_MAX_VERSION)
    }

    /// Refuses `what` (an option or command) below the microversion that
    /// brought it, as upstream's client does.
    pub fn require_version(&self, min: (u32, u32), what: &str) -> Result<(), ClientError> {
        let v = self.version();
        if v < min {
            return Err(ClientError::Usage(format!(
                "{what} needs API version {}.{} or later (this session uses {}.{})",
                min.0, min.1, v.0, v.1
            )));
        }
        Ok(())
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, ClientError> {
        let mut fresh_login = false;
        let mut renegotiated = false;
        loop {
            match self.send_once(method, path, body, fresh_login) {
                Err(ClientError::Api { status: 401, .. })
                    if !fresh_login && self.target.can_log_in_again() =>
                {
                    // A cached token revoked or expired early: once more
                    // with a new one.
                    fresh_login = true;
                }
                Err(ClientError::Api { status: 401, .. }) => {
                    return Err(ClientError::Unauthenticated {
                        endpoint: self.endpoint.clone(),
                    })
                }
                Err(ClientError::Version { asked, min, max }) => {
                    let usable = parse_version(&max)
                        .map(|m| m.min(CLIENT_MAX_VERSION))
                        .filter(|v| parse_version(&min).is_some_and(|min| *v >= min));
                    match usable {
                        Some((a, b)) if !self.pinned && !renegotiated => {
                            *self.version.borrow_mut() = format!("{a}.{b}");
                            renegotiated = true;
                        }
                        _ => return Err(ClientError::Version { asked, min, max }),
                    }
                }
                other => return other,
            }
        }
    }

    fn send_once(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        fresh_login: bool,
    ) -> Result<Option<Value>, ClientError> {
        let url = format!("{}{}", self.endpoint, path);
        let version = self.version.borrow().clone();
        let mut req = self
            .target
            .agent
            .request(method, &url)
            .set("Accept", "application/json")
            .set("OpenStack-API-Version", &format!("infra-optim {version}"))
            .set("User-Agent", "watcher-rs-cli");
        if let Some(token) = self.target.token(fresh_login)? {
            req = req.set("X-Auth-Token", token.expose());
        }
        let result = match body {
            Some(b) => req
                .set("Content-Type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        match result {
            Ok(resp) => {
                if resp.status() == 204 {
                    return Ok(None);
                }
                let text = resp
                    .into_string()
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
                if text.is_empty() {
                    return Ok(None);
                }
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|e| ClientError::Protocol(e.to_string()))
            }
            Err(ureq::Error::Status(406, resp))
                if resp.header("OpenStack-API-Maximum-Version").is_some() =>
            {
                let header = |h: &str| resp.header(h).unwrap_or("?").to_string();
                Err(ClientError::Version {
                    asked: version,
                    min: header("OpenStack-API-Minimum-Version"),
                    max: header("OpenStack-API-Maximum-Version"),
                })
            }
            Err(ureq::Error::Status(status, resp)) => {
                let text = resp.into_string().unwrap_or_default();
                Err(ClientError::Api {
                    status,
                    message: fault_message(&text),
                })
            }
            Err(ureq::Error::Transport(t)) => {
                let (endpoint, detail) = (self.endpoint.clone(), t.to_string());
                if watcher_tls::is_certificate_error(&detail) {
                    Err(ClientError::Untrusted { endpoint, detail })
                } else {
                    Err(ClientError::Unreachable { endpoint, detail })
                }
            }
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send("GET", path, None)?
            .ok_or_else(|| ClientError::Protocol("empty body".into()))
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send("POST", path, Some(body))?
            .ok_or_else(|| ClientError::Protocol("empty body".into()))
    }

    pub fn patch(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send("PATCH", path, Some(body))?
            .ok_or_else(|| ClientError::Protocol("empty body".into()))
    }

    pub fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.send("DELETE", path, None).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Auth;
    use std::io::{BufRead, BufReader, Write};

    /// A server that offers versions 1.0 to 1.3 as watcherd does: 406 with
    /// its range for any other; records the versions it was asked for.
    fn old_server() -> (String, std::sync::mpsc::Receiver<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut asked = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line
                        .to_ascii_lowercase()
                        .strip_prefix("openstack-api-version: infra-optim ")
                    {
                        asked = v.trim().to_string();
                    }
                }
                let _ = tx.send(asked.clone());
                let ok = parse_version(&asked).is_some_and(|v| v <= (1, 3));
                let (status, body) = if ok {
                    ("200 OK", "{\"goals\": []}")
                } else {
                    ("406 Not Acceptable", "{}")
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nOpenStack-API-Minimum-Version: 1.0\r\n\
                     OpenStack-API-Maximum-Version: 1.3\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (url, rx)
    }

    fn target(url: &str) -> Target {
        Target {
            endpoint: url.to_string(),
            auth: Auth::None,
            agent: ureq::agent(),
        }
    }

    #[test]
    fn an_older_server_lowers_the_version_once_and_a_pinned_one_is_kept() {
        let (url, asked) = old_server();
        let client = Client::new(target(&url), None).unwrap();
        client.get("/v1/goals").unwrap();
        assert_eq!(asked.recv().unwrap(), "1.7");
        assert_eq!(asked.recv().unwrap(), "1.3");
        assert_eq!(client.version(), (1, 3));
        client.get("/v1/goals").unwrap();
        assert_eq!(asked.recv().unwrap(), "1.3", "settled for the session");

        let pinned = Client::new(target(&url), Some("1.5")).unwrap();
        let e = pinned.get("/v1/goals").unwrap_err().to_string();
        assert!(
            e.contains("supports API versions 1.0 to 1.3, not 1.5"),
            "{e}"
        );
        assert!(Client::new(target(&url), Some("one")).is_err());
    }
}
