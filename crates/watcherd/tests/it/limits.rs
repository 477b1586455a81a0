//! Clients that misbehave: thousands of idle or half-sent connections
//! against a watcherd limited to 1,024 file descriptors; a real request
//! still gets its answer.

use watcher_testkit as common;

use common::*;
use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn thousands_of_idle_and_trickling_connections_do_not_starve_a_real_request() {
    let dir = temp_dir("limits");
    let config = write_config_with(&dir, "", "", "[api]\nmax_connections = 256\n");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 1024 && exec {} --config {} --log warn",
            watcherd_binary().display(),
            config.display()
        ))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("watcherd.log")).unwrap())
        .spawn()
        .unwrap();
    let url = announced(&mut child, "watcherd listening on ")
        .unwrap_or_else(|line| panic!("did not start: {line}"));
    let addr = url.strip_prefix("http://").unwrap().to_string();
    let mut held = vec![];
    for i in 0..2000 {
        let mut s = TcpStream::connect(&addr).unwrap();
        if i % 2 == 1 {
            // Half a request, never finished.
            let _ = s.write_all(b"GET /v1/goals HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        }
        held.push(s);
    }
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    for _ in 0..5 {
        let resp = agent.get(&format!("{url}/v1/goals")).call();
        assert!(
            matches!(&resp, Ok(r) if r.status() == 200),
            "{resp:?}; log: {}",
            std::fs::read_to_string(dir.join("watcherd.log")).unwrap_or_default()
        );
    }
    drop(held);
    let _ = child.kill();
    let _ = child.wait();
}

/// One request written by hand, so that it can carry what no client
/// library would send; the status line and the body of the answer.
fn raw_request(addr: &str, head: &str) -> (String, String) {
    use std::io::Read;
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let status = answer.lines().next().unwrap_or_default().to_string();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn headers_too_large_get_431_with_watchers_error_body_and_the_limit() {
    let d = Daemon::start("limits-431");
    let addr = d.url.strip_prefix("http://").unwrap().to_string();
    let long = format!(
        "GET /v1/goals HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Auth-Token: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let many = format!(
        "GET /v1/goals HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{}\r\n",
        (0..150)
            .map(|i| format!("X-Extra-{i}: {i}\r\n"))
            .collect::<String>()
    );
    for (head, says) in [
        (long, "Header x-auth-token is 20014 bytes long"),
        (many, "at most 100 are accepted"),
    ] {
        let (status, body) = raw_request(&addr, &head);
        assert!(status.contains(" 431 "), "{status}");
        let body: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        let fault = faultstring(&body);
        assert!(fault.contains(says), "{fault}");
    }
    // Within the limits, the same kind of request is served.
    let fine = format!(
        "GET /v1/goals HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Extra: {}\r\n\r\n",
        "a".repeat(8_000)
    );
    assert!(raw_request(&addr, &fine).0.contains(" 200 "));
    assert!(d.log().contains("431"), "the refusal is in the access log");
}

/// Heads hyper will not even buffer, and bytes that are not HTTP, are
/// answered before any handler runs; the answer still has Watcher's body.
#[test]
fn requests_hyper_refuses_alone_get_watchers_error_body_too() {
    let d = Daemon::start("limits-hyper");
    let addr = d.url.strip_prefix("http://").unwrap().to_string();
    let huge = format!(
        "GET /v1/goals HTTP/1.1\r\nHost: 127.0.0.1\r\n{}\r\n",
        (0..20)
            .map(|i| format!("X-Big-{i}: {}\r\n", "b".repeat(10_000)))
            .collect::<String>()
    );
    let crowd = format!(
        "GET /v1/goals HTTP/1.1\r\nHost: 127.0.0.1\r\n{}\r\n",
        (0..300)
            .map(|i| format!("X-Extra-{i}: {i}\r\n"))
            .collect::<String>()
    );
    for (head, code, says) in [
        (huge, " 431 ", "headers are larger than the 64 KiB"),
        (crowd, " 431 ", "headers are larger than the 64 KiB"),
        (
            "NOT HTTP AT ALL\r\n\r\n".to_string(),
            " 400 ",
            "not valid HTTP/1.1",
        ),
    ] {
        let (status, body) = raw_request(&addr, &head);
        assert!(status.contains(code), "{status}");
        let body: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
        let fault = faultstring(&body);
        assert!(fault.contains(says), "{fault}");
    }
    // The server goes on serving.
    let fine = "GET /v1/goals HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    assert!(raw_request(&addr, fine).0.contains(" 200 "));
}
