//! A web page in the operator's browser cannot drive a loopback watcherd
//! that runs without authentication: the exact requests such a page can
//! send are refused with Watcher's error body, and change nothing; the
//! clients that are meant to drive it pass.

use watcher_testkit as common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};

/// Sends `head` (request line and headers, without the blank line) and
/// `body` as they are, on a connection of its own; the status and body.
fn send(d: &Daemon, head: &str, body: &str) -> (u16, Value) {
    let addr = d.url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let request = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let json = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

fn audits(d: &Daemon) -> usize {
    d.get("/v1/audits")["audits"].as_array().unwrap().len()
}

const ACTUATOR: &str = r#"{"audit_type": "ONESHOT", "goal": "unclassified", "strategy": "actuator", "auto_trigger": true, "parameters": {"actions": [{"action_type": "change_nova_service_state", "input_parameters": {"resource_id": "compute-1", "state": "disabled"}}]}}"#;

#[test]
fn a_cross_site_page_can_neither_create_an_audit_nor_start_a_plan() {
    let d = Daemon::start("same-origin-cross-site");
    let host = d.url.trim_start_matches("http://").to_string();
    let plan = d.recommend("dummy", "dummy", json!({}));
    let before = audits(&d);
    // What a page of evil.example sends with fetch(url, {method: "POST",
    // mode: "no-cors", body}): a "simple" request, text/plain.
    let (status, body) = send(
        &d,
        &format!(
            "POST /v1/audits HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain;charset=UTF-8\r\n\
             Origin: http://evil.example\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors"
        ),
        ACTUATOR,
    );
    assert_eq!(status, 403, "{body}");
    assert!(faultstring(&body).contains("another site"), "{body}");
    // The same page, declaring JSON (a browser would ask first, and get no
    // CORS answer; a page that could send it still is another site).
    let (status, _) = send(
        &d,
        &format!(
            "POST /v1/audits HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Origin: http://evil.example"
        ),
        ACTUATOR,
    );
    assert_eq!(status, 403);
    // A page of another port of this machine is another origin.
    let (status, _) = send(
        &d,
        &format!(
            "POST /v1/action_plans/{plan}/start HTTP/1.1\r\nHost: {host}\r\n\
             Origin: http://127.0.0.1:8000\r\nSec-Fetch-Site: same-site"
        ),
        "",
    );
    assert_eq!(status, 403);
    let (status, _) = send(
        &d,
        &format!(
            "POST /v1/action_plans/{plan}/start HTTP/1.1\r\nHost: {host}\r\n\
             Origin: http://evil.example\r\nSec-Fetch-Site: cross-site"
        ),
        "",
    );
    assert_eq!(status, 403);
    // Nothing changed.
    assert_eq!(audits(&d), before);
    assert_eq!(d.plan(&plan)["state"], "RECOMMENDED");
    // A form post (no Origin from an old browser, a form's body) is not
    // read as JSON.
    let (status, body) = send(
        &d,
        &format!(
            "POST /v1/audits HTTP/1.1\r\nHost: {host}\r\n\
             Content-Type: application/x-www-form-urlencoded"
        ),
        "audit_type=ONESHOT&goal=dummy",
    );
    assert_eq!(status, 415, "{body}");
    assert!(faultstring(&body).contains("application/json"), "{body}");
    assert_eq!(audits(&d), before);
    // The clients meant to drive it: no Origin, JSON bodies.
    let (status, body) = send(
        &d,
        &format!("POST /v1/audits HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json"),
        r#"{"audit_type": "ONESHOT", "goal": "dummy", "strategy": "dummy"}"#,
    );
    assert_eq!(status, 201, "{body}");
    // The dashboard's own pages are same-origin (its CSRF check is its own).
    let (status, _) = send(
        &d,
        &format!(
            "POST /v1/action_plans/{plan}/start HTTP/1.1\r\nHost: {host}\r\n\
             Origin: http://{host}\r\nSec-Fetch-Site: same-origin"
        ),
        "",
    );
    assert_eq!(status, 200);
}

#[test]
fn a_rebound_name_is_not_answered_without_authentication() {
    let d = Daemon::start("same-origin-rebinding");
    let port = d.url.rsplit(':').next().unwrap().to_string();
    // A page of evil.example whose name now resolves to 127.0.0.1 reads
    // its "own" origin: the Host is its name.
    let (status, body) = send(
        &d,
        &format!("GET /v1/action_plans HTTP/1.1\r\nHost: evil.example:{port}"),
        "",
    );
    assert_eq!(status, 421, "{body}");
    assert!(faultstring(&body).contains("evil.example"), "{body}");
    assert!(faultstring(&body).contains("allowed_hosts"), "{body}");
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let (status, body) = send(&d, &format!("GET /v1/goals HTTP/1.1\r\nHost: {host}"), "");
        assert_eq!(status, 200, "{host}: {body}");
    }
}

#[test]
fn a_name_the_operator_allows_is_answered() {
    let dir = temp_dir("same-origin-allowed");
    let config = write_config_with(
        &dir,
        "",
        "",
        "[api]\nallowed_hosts = [\"watcher.example.org\"]\n",
    );
    let d = Daemon::start_with_config(&dir, config, None);
    let (status, _) = send(
        &d,
        "GET /v1/goals HTTP/1.1\r\nHost: watcher.example.org",
        "",
    );
    assert_eq!(status, 200);
    let (status, _) = send(&d, "GET /v1/goals HTTP/1.1\r\nHost: other.example.org", "");
    assert_eq!(status, 421);
}

/// Serves `page` to every GET on a port of its own, on a thread that
/// lives as long as the test; its URL.
fn serve_page(page: String) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut request = [0u8; 4096];
            let _ = conn.read(&mut request);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    url
}

#[cfg_attr(
    not(test_chromium),
    ignore = "needs Chromium: set WATCHER_TEST_CHROMEDRIVER=/usr/bin/chromedriver (.ci/run installs Debian's chromium and chromium-driver)"
)]
#[test]
fn a_page_from_another_local_port_changes_nothing_in_a_real_browser() {
    let d = Daemon::start("same-origin-browser");
    let plan = d.recommend("dummy", "dummy", json!({}));
    let before = audits(&d);
    // What a hostile page can do without the browser asking watcherd
    // first: a no-cors fetch with a text/plain body, and a form posted
    // into a frame. Each marks the title when its answer has come back.
    let page = format!(
        r#"<!doctype html><html><head><title>loading</title></head><body>
<form id="f" method="POST" enctype="text/plain" target="sink"
      action="{url}/v1/action_plans/{plan}/start"><input name='{{"a":"' value='"}}'></form>
<iframe name="sink" id="sink"></iframe>
<script>
const marks = [];
const mark = (m) => {{ marks.push(m); document.title = marks.sort().join(","); }};
document.getElementById("sink").addEventListener("load", () => mark("posted"));
fetch("{url}/v1/audits", {{method: "POST", mode: "no-cors", body: {body}}})
  .then(() => mark("fetched"), () => mark("fetch-failed"));
document.getElementById("f").submit();
</script></body></html>"#,
        url = d.url,
        body = serde_json::to_string(ACTUATOR).unwrap(),
    );
    let attacker = serve_page(page);
    let b = crate::dashboard::Browser::start();
    b.open(&format!("{attacker}/"));
    let title = wait_for(std::time::Duration::from_secs(20), || {
        let t = b.script("return document.title");
        let t = t.as_str().unwrap_or_default().to_string();
        t.contains("fetch")
            .then_some(t)
            .filter(|t| t.contains("posted"))
    });
    assert_eq!(
        title, "fetched,posted",
        "both requests were sent and answered"
    );
    assert_eq!(audits(&d), before, "the page created an audit");
    assert_eq!(
        d.plan(&plan)["state"],
        "RECOMMENDED",
        "the page started the plan"
    );
    // The operator's own dashboard on the same browser still works.
    b.open(&format!("{}/dashboard/action_plans/{plan}", d.url));
    b.click("button[data-url$='/start']");
    b.confirm();
    d.wait_state(&plan, &["SUCCEEDED"]);
}
