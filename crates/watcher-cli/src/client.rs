//! A small blocking client of the v1 API, for the `watcher` CLI.

use serde_json::Value;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error; `message` is its faultstring.
    #[error("{message} (HTTP {status})")]
    Api { status: u16, message: String },
    #[error("cannot reach watcherd at {endpoint}: {detail}. Is watcherd running? Set --endpoint or WATCHER_URL.")]
    Unreachable { endpoint: String, detail: String },
    #[error("unexpected answer from watcherd: {0}")]
    Protocol(String),
}

pub struct Client {
    endpoint: String,
    version: String,
    agent: ureq::Agent,
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
    pub fn new(endpoint: &str, version: &str) -> Client {
        let endpoint = endpoint
            .trim_end_matches('/')
            .trim_end_matches("/v1")
            .to_string();
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build();
        Client {
            endpoint,
            version: version.to_string(),
            agent,
        }
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, ClientError> {
        let url = format!("{}{}", self.endpoint, path);
        let req = self
            .agent
            .request(method, &url)
            .set("Accept", "application/json")
            .set(
                "OpenStack-API-Version",
                &format!("infra-optim {}", self.version),
            )
            .set("User-Agent", "watcher-rs-cli");
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
            Err(ureq::Error::Status(status, resp)) => {
                let text = resp.into_string().unwrap_or_default();
                Err(ClientError::Api {
                    status,
                    message: fault_message(&text),
                })
            }
            Err(ureq::Error::Transport(t)) => Err(ClientError::Unreachable {
                endpoint: self.endpoint.clone(),
                detail: t.to_string(),
            }),
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
