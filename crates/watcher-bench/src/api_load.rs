//! The API under abusive clients: idle and half-sent connections, and
//! requests in flight that are never read.

use crate::fixtures::{plans_of_nops, temp_dir};
use crate::processes::{rss_kib, spawn_limited};
use crate::report::{ms, pct};
use std::time::{Duration, Instant};
use watcher_store::*;

/// watcherd limited to 1,024 file descriptors, `connections` idle or
/// half-sent connections held open against it: latencies of `requests`
/// normal requests made meanwhile.
pub(crate) fn idle_flood(connections: usize, requests: usize) -> anyhow::Result<Vec<Duration>> {
    use std::io::Write;
    let dir = temp_dir("idle-flood");
    let (_watcherd, url) = spawn_limited(&dir)?;
    let addr = url.trim_start_matches("http://").to_string();
    let mut held = Vec::with_capacity(connections);
    for i in 0..connections {
        let mut s = std::net::TcpStream::connect(&addr)?;
        if i % 2 == 1 {
            let _ = s.write_all(b"GET /v1/goals HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        }
        held.push(s);
    }
    let lat = normal_requests(&url, requests)?;
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(lat)
}

/// `requests` GET /v1/goals one after the other: each one's latency.
pub(crate) fn normal_requests(url: &str, requests: usize) -> anyhow::Result<Vec<Duration>> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let mut lat = Vec::with_capacity(requests);
    for _ in 0..requests {
        let t = Instant::now();
        agent
            .get(&format!("{url}/v1/goals"))
            .call()?
            .into_string()?;
        lat.push(t.elapsed());
    }
    Ok(lat)
}

/// `connections` clients each send a whole request for a thousand actions
/// with their details (about 0.6 MB to answer) and never read the answer,
/// against a watcherd limited to 1,024 file descriptors with 1,000 actions
/// stored: its RSS idle, its peak while they are all held, and normal
/// requests' latency meanwhile.
pub(crate) fn requests_in_flight(connections: usize) -> anyhow::Result<(u64, u64, Vec<Duration>)> {
    use std::io::Write;
    let dir = temp_dir("in-flight");
    plans_of_nops(&DatabaseLocation::File(dir.join("watcher.db")), 1, 1000)?;
    let (watcherd, url) = spawn_limited(&dir)?;
    let pid = watcherd.0.id();
    std::thread::sleep(Duration::from_secs(2));
    let idle = rss_kib(pid)?;
    let addr = url.trim_start_matches("http://").to_string();
    let mut held = Vec::with_capacity(connections);
    let mut peak = idle;
    for i in 0..connections {
        let mut s = std::net::TcpStream::connect(&addr)?;
        let _ =
            s.write_all(b"GET /v1/actions/detail?limit=1000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        held.push(s);
        if i % 500 == 0 {
            peak = peak.max(rss_kib(pid)?);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        peak = peak.max(rss_kib(pid)?);
        std::thread::sleep(Duration::from_millis(100));
    }
    let lat = normal_requests(&url, 100)?;
    peak = peak.max(rss_kib(pid)?);
    drop(held);
    drop(watcherd);
    let _ = std::fs::remove_dir_all(&dir);
    Ok((idle, peak, lat))
}

/// `watcher-bench idle-flood`.
pub fn print_idle_flood(connections: usize, requests: usize) -> anyhow::Result<()> {
    let mut lat = idle_flood(connections, requests)?;
    println!(
        "GET /v1/goals with {connections} idle or half-sent connections held, ulimit -n 1024: p50 {}, p99 {}, max {} ({} requests)",
        ms(pct(&mut lat, 0.5)),
        ms(pct(&mut lat, 0.99)),
        ms(pct(&mut lat, 1.0)),
        lat.len()
    );
    Ok(())
}

/// `watcher-bench in-flight`.
pub fn print_in_flight(connections: usize) -> anyhow::Result<()> {
    let (idle, peak, mut lat) = requests_in_flight(connections)?;
    println!(
        "| {connections} requests for 1,000 actions' details in flight, never read, ulimit -n 1024 | RSS {:.1} MiB idle, {:.1} MiB at most; GET /v1/goals meanwhile p50 {}, p99 {} | memory bounded; normal requests answered |",
        idle as f64 / 1024.0,
        peak as f64 / 1024.0,
        ms(pct(&mut lat, 0.5)),
        ms(pct(&mut lat, 0.99))
    );
    Ok(())
}
