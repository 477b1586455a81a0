//! What a web page in the operator's browser must not do: drive watcherd.
//!
//! A browser sends requests to whatever address a page names, loopback
//! included, from the operator's own machine. Without authentication
//! (`auth_strategy = "noauth"`) watcherd cannot tell such a request from
//! the operator's CLI by its credentials, so it tells them apart by what
//! browsers say of them, before any handler runs:
//!
//! - a request that changes something (any method but GET, HEAD and
//!   OPTIONS) is refused (403) when the browser marks it as sent by
//!   another site: an `Origin` that is not this request's own host, or a
//!   `Sec-Fetch-Site` other than `same-origin` or `none`;
//! - a request whose `Host` is a name this watcherd was not told it has
//!   (loopback names, IP addresses it can be reached at, `[api]
//!   allowed_hosts`) is refused (421), so that a page whose name was
//!   rebound to 127.0.0.1 (DNS rebinding) cannot read the answers either.
//!
//! And in every mode a request body is read as JSON only when it is sent
//! as JSON (`Content-Type: application/json`, or `+json`; `body_not_json`,
//! which the API's body extractor `routes::JsonBody` applies): a form or
//! `text/plain` body, which a page may send to another site without the
//! browser asking first (a "simple" request), is refused (415).
//!
//! CLIs (ours, python-watcherclient, `openstack optimize`), Horizon's
//! server-side calls and tempest send no `Origin` or `Sec-Fetch-*` and
//! send their bodies as JSON, so they pass unchanged. The dashboard's own
//! pages are same-origin.

use crate::error::refuse;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Who may call without authentication, as far as browsers tell.
#[derive(Debug, Clone, Default)]
pub struct Sites {
    /// Without authentication: the checks of this module apply.
    pub noauth: bool,
    /// Where the API listens: its IP is a name of this watcherd, and when
    /// it is unspecified (`0.0.0.0`), so is every IP address.
    pub listen: Option<SocketAddr>,
    /// More names (`[api] allowed_hosts`), e.g. the name a proxy in front
    /// of an unauthenticated watcherd is reached by; `host` or `host:port`.
    pub allowed_hosts: Vec<String>,
}

impl Sites {
    /// Whether `host` (a `Host` header: `name`, `name:port`, `[v6]:port`)
    /// names this watcherd.
    fn knows(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        if self
            .allowed_hosts
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&host))
        {
            return true;
        }
        let name = strip_port(&host);
        if name == "localhost"
            || self
                .allowed_hosts
                .iter()
                .any(|a| a.eq_ignore_ascii_case(name))
        {
            return true;
        }
        let Ok(ip) = name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        else {
            // A name nobody configured: what a rebinding page sends.
            return false;
        };
        ip.is_loopback()
            || self
                .listen
                .is_some_and(|l| l.ip().is_unspecified() || l.ip() == ip)
    }
}

/// `host` without its `:port` (an IPv6 literal keeps its brackets).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether a browser says this request comes from another site.
fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = header(headers, "sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return true;
        }
    }
    match header(headers, header::ORIGIN.as_str()) {
        None => false,
        Some(origin) => {
            // `scheme://host[:port]`, or "null" from a sandboxed or local page.
            let host = origin.split_once("://").map(|(_, h)| h);
            let own = header(headers, header::HOST.as_str());
            !matches!((host, own), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
        }
    }
}

/// Whether the request carries a body that is not declared as JSON. The
/// API reads bodies through `routes::JsonBody`, which refuses them (415).
pub(crate) fn body_not_json(headers: &HeaderMap) -> bool {
    let length =
        header(headers, header::CONTENT_LENGTH.as_str()).and_then(|l| l.trim().parse::<u64>().ok());
    let chunked = header(headers, header::TRANSFER_ENCODING.as_str()).is_some();
    if length.unwrap_or(0) == 0 && !chunked {
        return false;
    }
    let Some(kind) = header(headers, header::CONTENT_TYPE.as_str()) else {
        return true;
    };
    let essence = kind
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    !(essence == "application/json"
        || essence.starts_with("application/") && essence.ends_with("+json"))
}

fn changes(req: &Request) -> bool {
    !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
}

/// In front of every request: without authentication, a name this
/// watcherd does not have (421) and a change from another site (403) are
/// refused.
pub async fn guard(State(sites): State<Arc<Sites>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let changes = changes(&req);
    if sites.noauth {
        if let Some(host) = header(headers, header::HOST.as_str()) {
            if !sites.knows(host) {
                return refuse(
                    StatusCode::MISDIRECTED_REQUEST,
                    &format!(
                        "This watcherd has no authentication and does not answer to the name \
                         '{}'. Reach it by 127.0.0.1 or localhost, or add the name to \
                         [api] allowed_hosts.",
                        strip_port(host)
                    ),
                );
            }
        }
        if changes && cross_site(headers) {
            return refuse(
                StatusCode::FORBIDDEN,
                "Refused a change sent by a web page of another site: without authentication \
                 watcherd takes changes only from clients (the watcher CLI, python-watcherclient) \
                 and from its own dashboard.",
            );
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn loopback_names_the_listen_address_and_allowed_names_are_known_others_not() {
        let sites = Sites {
            noauth: true,
            listen: Some("192.0.2.7:9322".parse().unwrap()),
            allowed_hosts: vec!["watcher.example.org".into(), "proxy:8080".into()],
        };
        for known in [
            "127.0.0.1:9322",
            "127.0.0.2",
            "localhost:9322",
            "LOCALHOST",
            "[::1]:9322",
            "192.0.2.7:9322",
            "watcher.example.org",
            "watcher.example.org:443",
            "proxy:8080",
        ] {
            assert!(sites.knows(known), "{known}");
        }
        for unknown in [
            "evil.example:9322",
            "192.0.2.8:9322",
            "proxy:8081",
            "localhost.evil.example",
        ] {
            assert!(!sites.knows(unknown), "{unknown}");
        }
        let everywhere = Sites {
            listen: Some("0.0.0.0:9322".parse().unwrap()),
            ..sites
        };
        assert!(everywhere.knows("192.0.2.8:9322"));
        assert!(!everywhere.knows("evil.example:9322"));
    }

    #[test]
    fn browsers_marks_of_another_site_are_read() {
        assert!(!cross_site(&headers(&[])));
        assert!(!cross_site(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!cross_site(&headers(&[("sec-fetch-site", "none")])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        // Another port of the same machine is the same site, not the same origin.
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-site")])));
        let own = [
            ("host", "127.0.0.1:9322"),
            ("origin", "http://127.0.0.1:9322"),
        ];
        assert!(!cross_site(&headers(&own)));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:9322"),
            ("origin", "http://evil.example")
        ])));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:9322"),
            ("origin", "http://127.0.0.1:8000")
        ])));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:9322"),
            ("origin", "null")
        ])));
    }

    #[test]
    fn only_json_bodies_are_read() {
        let json = [
            ("content-length", "2"),
            ("content-type", "application/json; charset=utf-8"),
        ];
        assert!(!body_not_json(&headers(&json)));
        assert!(!body_not_json(&headers(&[
            ("content-length", "2"),
            ("content-type", "application/json-patch+json")
        ])));
        assert!(body_not_json(&headers(&[
            ("content-length", "2"),
            ("content-type", "text/plain")
        ])));
        assert!(body_not_json(&headers(&[
            ("content-length", "2"),
            ("content-type", "application/x-www-form-urlencoded")
        ])));
        assert!(body_not_json(&headers(&[("content-length", "2")])));
        assert!(body_not_json(&headers(&[
            ("transfer-encoding", "chunked"),
            ("content-type", "text/plain")
        ])));
        // No body: nothing to read as JSON (POST /start, a webhook).
        assert!(!body_not_json(&headers(&[])));
        assert!(!body_not_json(&headers(&[
            ("content-length", "0"),
            ("content-type", "text/plain")
        ])));
    }
}
