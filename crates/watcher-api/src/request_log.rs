//! One log line per request, the request id, and the public origin.
//!
//! Every request gets `X-Openstack-Request-Id: req-<uuid>` on its answer,
//! as upstream's oslo.middleware sends, and every log line the request's
//! handling writes carries that id (a tracing span around the handler).
//! When the request is done one INFO line says method, path, status,
//! duration, and, once Keystone has authenticated the caller, the user and
//! project: who cancelled what is in the logs. Bodies and query strings
//! are never logged (a query may carry names an operator typed).

use crate::caller::Caller;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;

pub const REQUEST_ID: &str = "x-openstack-request-id";

/// The header through which the origin middleware hands the public base
/// URL to the handlers. Whatever a client sends under this name is
/// dropped first, so it cannot be forged.
pub(crate) const ORIGIN: &str = "x-watcher-origin";

/// How the API is reached, for the links it returns.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The API itself serves HTTPS (`--tls-cert`).
    pub tls: bool,
    /// Trust `X-Forwarded-Proto` / `X-Forwarded-Host` (and `Forwarded`)
    /// from a reverse proxy: upstream's `enable_proxy_headers_parsing`.
    /// Only behind a proxy that sets them, or callers choose the links.
    pub proxy_headers: bool,
}

impl Origin {
    /// `scheme://host` of this request as its caller sees it.
    fn of(&self, headers: &HeaderMap) -> String {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(',').next().unwrap_or(v).trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut scheme = if self.tls { "https" } else { "http" }.to_string();
        let mut host = header("host").unwrap_or_else(|| "127.0.0.1:9322".into());
        if self.proxy_headers {
            if let Some(forwarded) = header("forwarded") {
                for pair in forwarded.split(';') {
                    match pair.trim().split_once('=') {
                        Some(("proto", v)) => scheme = v.trim_matches('"').to_string(),
                        Some(("host", v)) => host = v.trim_matches('"').to_string(),
                        _ => {}
                    }
                }
            }
            if let Some(p) = header("x-forwarded-proto") {
                scheme = p;
            }
            if let Some(h) = header("x-forwarded-host") {
                host = h;
            }
        }
        if scheme != "http" && scheme != "https" {
            scheme = "http".into();
        }
        format!("{scheme}://{host}")
    }
}

/// The outermost layer: request id, span, origin, the log line.
pub async fn log_request(State(origin): State<Origin>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = format!("req-{}", uuid::Uuid::new_v4());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let public = origin.of(req.headers());
    let headers = req.headers_mut();
    headers.remove(ORIGIN);
    if let Ok(v) = HeaderValue::from_str(&public) {
        headers.insert(ORIGIN, v);
    }
    // oslo.middleware's global request id: kept when it is well formed.
    let global = headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            v.strip_prefix("req-")
                .is_some_and(|u| uuid::Uuid::parse_str(u).is_ok())
        })
        .map(str::to_string);
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    let caller = resp.extensions().get::<Caller>().cloned();
    let (user, project) = caller
        .map(|c| {
            (
                c.user_id.unwrap_or_default(),
                c.project_id.unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        tracing::info!(
            target: "watcher_api::access",
            method = %method,
            path = %path,
            status,
            duration_ms = format_args!("{elapsed_ms:.1}"),
            user_id = %user,
            project_id = %project,
            global_request_id = global.as_deref().unwrap_or(""),
            "{method} {path} {status}"
        )
    });
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn forwarded_headers_count_only_when_trusted() {
        let h = headers(&[
            ("host", "10.0.0.5:9322"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "watcher.example.com"),
        ]);
        let direct = Origin::default();
        assert_eq!(direct.of(&h), "http://10.0.0.5:9322");
        let proxied = Origin {
            proxy_headers: true,
            ..Origin::default()
        };
        assert_eq!(proxied.of(&h), "https://watcher.example.com");
        let rfc7239 = headers(&[
            ("host", "internal"),
            (
                "forwarded",
                "for=1.2.3.4;proto=https;host=\"w.example:443\"",
            ),
        ]);
        assert_eq!(proxied.of(&rfc7239), "https://w.example:443");
        let tls = Origin {
            tls: true,
            ..Origin::default()
        };
        assert_eq!(tls.of(&headers(&[("host", "w:9322")])), "https://w:9322");
        let junk = headers(&[("host", "w"), ("x-forwarded-proto", "javascript")]);
        assert_eq!(proxied.of(&junk), "http://w");
    }
}
