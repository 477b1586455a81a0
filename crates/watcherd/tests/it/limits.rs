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
            let _ = s.write_all(b"GET /v1/goals HTTP/1.1\r\nHost: x\r\n");
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
