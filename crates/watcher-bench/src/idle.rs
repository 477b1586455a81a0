//! What watcherd costs when nothing runs, and its memory around big work.

use crate::fixtures::{grow_history, make_plan, nops, plans_of_nops, temp_dir, Opts};
use crate::processes::{
    actuator_plan, cancel_and_settle, cpu_ticks, http, poll_until, rss_kib, spawn_watcherd,
};
use crate::report::{ms, pct};
use anyhow::Context;
use serde_json::json;
use std::time::{Duration, Instant};
use watcher_store::*;

/// What a watcherd costs when nothing happens but history is large.
pub(crate) struct IdleCost {
    pub(crate) plans: usize,
    pub(crate) history: i64,
    pub(crate) cpu_percent: f64,
    pub(crate) rss_kib: u64,
    pub(crate) lists: Vec<(String, Duration, Duration)>,
    /// Starting and cancelling new plans next to this history, and the same
    /// on an empty database.
    pub(crate) start_cancel: StartCancel,
    pub(crate) start_cancel_empty: StartCancel,
}

/// POST start -> the first action ONGOING, and PATCH CANCELLING -> the plan
/// CANCELLED (a running sleep aborted), each as seen by a client polling.
pub(crate) struct StartCancel {
    pub(crate) start: Vec<Duration>,
    pub(crate) cancel: Vec<Duration>,
}

/// `runs` times: an actuator audit of two 30 s sleeps through the API, its
/// plan started, then cancelled once a sleep runs.
pub(crate) fn start_and_cancel(url: &str, runs: usize) -> anyhow::Result<StartCancel> {
    let mut out = StartCancel {
        start: vec![],
        cancel: vec![],
    };
    let sleep = json!({"action_type": "sleep", "input_parameters": {"duration": 30}});
    for _ in 0..runs {
        let plan = actuator_plan(url, json!([sleep, sleep]))?;
        let t = Instant::now();
        http(
            "POST",
            &format!("{url}/v1/action_plans/{plan}/start"),
            Some(&json!({})),
        )?;
        poll_until(|| {
            let a = http(
                "GET",
                &format!("{url}/v1/actions?action_plan_uuid={plan}"),
                None,
            )?;
            Ok(a["actions"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["state"] == "ONGOING"))
                .then_some(()))
        })?;
        out.start.push(t.elapsed());
        let t = Instant::now();
        let state = cancel_and_settle(url, &plan)?;
        anyhow::ensure!(state == "CANCELLED", "plan {plan} ended {state}");
        out.cancel.push(t.elapsed());
    }
    Ok(out)
}

// Long because it fills the database, starts watcherd, samples it and times the lists, in
// that order.
pub(crate) fn idle_cost(plans: usize, history_rows: i64, seconds: u64) -> anyhow::Result<IdleCost> {
    let dir = temp_dir("idle-cost");
    let db = dir.join("watcher.db");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = Store::open(&DatabaseLocation::File(db.clone()), Durability::Normal)?;
        watcher_decision::sync_catalogue(&store).await?;
        let fillers: Vec<_> = (0..16)
            .map(|k| {
                let store = store.clone();
                tokio::spawn(async move {
                    for _ in (k..plans).step_by(16) {
                        make_plan(&store, nops(1, false)).await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for f in fillers {
            f.await??;
        }
        store.truncate_wal().await?;
        anyhow::Ok(())
    })?;
    drop(rt);
    let history = grow_history(&db, history_rows)?;
    let (watcherd, url) = spawn_watcherd(&dir)?;
    let pid = watcherd.0.id();
    // Start-up work (resuming, the first sweeps) is not idle work.
    std::thread::sleep(Duration::from_secs(5));
    let before = cpu_ticks(pid)?;
    std::thread::sleep(Duration::from_secs(seconds));
    let used = cpu_ticks(pid)? - before;
    // Clock ticks are 1/100 s on Linux.
    let cpu_percent = used as f64 / (seconds as f64 * 100.0) * 100.0;
    let rss_kib = rss_kib(pid)?;
    let agent = ureq::Agent::new();
    let mut lists = vec![];
    let mut paths = vec![];
    for resource in ["action_plans", "audits", "actions"] {
        for query in [
            "",
            "?limit=1000",
            "?limit=1000&sort_key=created_at&sort_dir=desc",
            "?limit=1000&sort_key=state",
            "?limit=1000&sort_key=updated_at",
            "/detail?limit=1000",
        ] {
            paths.push(format!("/v1/{resource}{query}"));
        }
    }
    for path in paths {
        let mut lat = vec![];
        // 200, so that the p99 is a percentile (the second slowest), not
        // the one slowest request of 50.
        for _ in 0..200 {
            let t = Instant::now();
            agent.get(&format!("{url}{path}")).call()?.into_string()?;
            lat.push(t.elapsed());
        }
        lists.push((
            format!("GET {path}"),
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99),
        ));
    }
    let start_cancel = start_and_cancel(&url, 20)?;
    drop(watcherd);
    let _ = std::fs::remove_dir_all(&dir);
    let empty = temp_dir("idle-cost-empty");
    let (watcherd, url) = spawn_watcherd(&empty)?;
    let start_cancel_empty = start_and_cancel(&url, 20)?;
    drop(watcherd);
    let _ = std::fs::remove_dir_all(&empty);
    Ok(IdleCost {
        plans,
        history,
        cpu_percent,
        rss_kib,
        lists,
        start_cancel,
        start_cancel_empty,
    })
}

/// Memory around big work: the RSS of an idle embedded watcherd, its peak
/// while it runs `plans` plans of `actions` nops at once, and 10 s after
/// they have all ended.
pub(crate) fn memory_after_big_plans(
    plans: usize,
    actions: usize,
) -> anyhow::Result<(u64, u64, u64)> {
    let dir = temp_dir("memory");
    let uuids = plans_of_nops(
        &DatabaseLocation::File(dir.join("watcher.db")),
        plans,
        actions,
    )?;
    let (watcherd, url) = spawn_watcherd(&dir)?;
    let pid = watcherd.0.id();
    std::thread::sleep(Duration::from_secs(5));
    let idle = rss_kib(pid)?;
    for plan in &uuids {
        http(
            "POST",
            &format!("{url}/v1/action_plans/{plan}/start"),
            Some(&json!({})),
        )?;
    }
    let mut peak = idle;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        peak = peak.max(rss_kib(pid)?);
        let mut ended = 0;
        for plan in &uuids {
            let p = http("GET", &format!("{url}/v1/action_plans/{plan}"), None)?;
            if p["state"] == "SUCCEEDED" {
                ended += 1;
            }
        }
        if ended == uuids.len() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the plans did not end within 600 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(10));
    let after = rss_kib(pid)?;
    drop(watcherd);
    let _ = std::fs::remove_dir_all(&dir);
    Ok((idle, peak, after))
}

/// Idle RSS, then GET of one action plan from two client threads.
pub(crate) fn process_figures(opts: &Opts) -> anyhow::Result<(u64, f64, Duration, Duration)> {
    let dir = temp_dir("process");
    let (watcherd, url) = spawn_watcherd(&dir)?;
    std::thread::sleep(Duration::from_secs(2));
    let rss = rss_kib(watcherd.0.id())?;
    http(
        "POST",
        &format!("{url}/v1/audits"),
        Some(&json!({"audit_type": "ONESHOT", "goal": "dummy"})),
    )?;
    let mut plan = None;
    for _ in 0..200 {
        let list = http("GET", &format!("{url}/v1/action_plans"), None)?;
        if let Some(u) = list["action_plans"][0]["uuid"].as_str() {
            plan = Some(u.to_string());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let plan = plan.context("no plan was recommended")?;
    let target = format!("{url}/v1/action_plans/{plan}");
    let t = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let target = target.clone();
            let n = opts.requests / 2;
            std::thread::spawn(move || {
                let agent = ureq::Agent::new();
                let mut lat = Vec::with_capacity(n);
                for _ in 0..n {
                    let s = Instant::now();
                    agent
                        .get(&target)
                        .call()
                        .expect("GET")
                        .into_string()
                        .expect("body");
                    lat.push(s.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = threads
        .into_iter()
        .flat_map(|h| h.join().expect("client thread"))
        .collect();
    let rate = lat.len() as f64 / t.elapsed().as_secs_f64();
    drop(watcherd);
    let _ = std::fs::remove_dir_all(&dir);
    Ok((rss, rate, pct(&mut lat, 0.5), pct(&mut lat, 0.99)))
}

/// `watcher-bench memory`.
pub fn print_memory(plans: usize, actions: usize) -> anyhow::Result<()> {
    let (idle, peak, after) = memory_after_big_plans(plans, actions)?;
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "| RSS: idle / peak while {plans} plans of {actions} nops run / 10 s after | {:.1} / {:.1} / {:.1} MiB ({:.2}x idle after) | after <= 2x idle |",
        mib(idle),
        mib(peak),
        mib(after),
        after as f64 / idle.max(1) as f64
    );
    Ok(())
}

/// `watcher-bench idle-cost`.
pub fn print_idle_cost(plans: usize, history: i64, seconds: u64) -> anyhow::Result<()> {
    let c = idle_cost(plans, history, seconds)?;
    println!(
        "| idle watcherd with {} RECOMMENDED plans ({} history rows) | CPU {:.2}% of a core over {seconds} s, RSS {:.1} MiB | CPU < 1%, RSS < 100 MB |",
        c.plans,
        c.history,
        c.cpu_percent,
        c.rss_kib as f64 / 1024.0
    );
    for (what, p50, p99) in c.lists {
        println!(
            "| {what} | p50 {}, p99 {} | p99 < 20 ms |",
            ms(p50),
            ms(p99)
        );
    }
    for (what, mut big, mut empty) in [
        (
            "POST start -> first action ONGOING",
            c.start_cancel.start,
            c.start_cancel_empty.start,
        ),
        (
            "PATCH CANCELLING -> plan CANCELLED",
            c.start_cancel.cancel,
            c.start_cancel_empty.cancel,
        ),
    ] {
        println!(
            "| {what} (20 runs) | p50 {}, max {} (empty database: p50 {}, max {}) | as on an empty database |",
            ms(pct(&mut big, 0.5)),
            ms(pct(&mut big, 1.0)),
            ms(pct(&mut empty, 0.5)),
            ms(pct(&mut empty, 1.0))
        );
    }
    Ok(())
}
