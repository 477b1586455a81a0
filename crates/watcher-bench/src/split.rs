//! The split deployment (`watcherd api`, `applier`, `sim-cloud` as
//! processes): cross-process cancel, failover, many appliers, PostgreSQL.

use crate::applier::throughput;
use crate::fixtures::{plans_of_nops, temp_dir};
use crate::processes::{actuator_plan, cancel_and_settle, http, poll_until, spawn_part, Proc};
use crate::report::{ms, pct};
use anyhow::Context;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use uuid::Uuid;
use watcher_store::*;

/// A split deployment: `watcherd api`, `watcherd decision-engine` and
/// `appliers` × `watcherd applier` as processes on one database
/// (`database`, or a new SQLite file), the cloud another (`watcherd
/// sim-cloud`: live migrations of 600 s, aborts of 50 ms). `applier_toml`
/// goes under the appliers' `[applier]` table.
pub(crate) struct Split {
    pub(crate) url: String,
    pub(crate) sim: String,
    /// The appliers by host (`bench-applier-N`), to kill one.
    pub(crate) appliers: Vec<(String, Proc)>,
    pub(crate) _others: Vec<Proc>,
}

pub(crate) fn split_deployment(
    database: Option<&str>,
    appliers: usize,
    applier_toml: &str,
) -> anyhow::Result<Split> {
    let dir = temp_dir("split");
    let mut scenario = watcher_cloud::scenario::DEMO_SCENARIO.to_string();
    scenario = scenario.replace("live_migration_secs = 8.0", "live_migration_secs = 600.0");
    scenario = scenario.replace("abort_secs = 0.4", "abort_secs = 0.05");
    let scenario_path = dir.join("scenario.toml");
    std::fs::write(&scenario_path, scenario)?;
    let applier_config = dir.join("applier.toml");
    std::fs::write(&applier_config, format!("[applier]\n{applier_toml}\n"))?;
    let (sim_proc, line) = spawn_part(&[
        "sim-cloud",
        "--cloud-scenario",
        scenario_path.to_str().context("path")?,
    ])?;
    let sim = line
        .strip_prefix("sim-cloud listening on ")
        .context("sim-cloud did not start")?
        .to_string();
    let db = database
        .map(str::to_string)
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("watcher.db").display()));
    let part =
        |role: &str, host: String, config: Option<&Path>| -> anyhow::Result<(Proc, String)> {
            let mut args: Vec<String> = vec![role.into()];
            if let Some(c) = config {
                args.extend(["--config".into(), c.to_str().context("path")?.into()]);
            }
            args.extend([
                "--database".into(),
                db.clone(),
                "--cloud".into(),
                "sim-cloud".into(),
                "--sim-cloud-url".into(),
                sim.clone(),
                "--host".into(),
                host,
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--log".into(),
                "warn".into(),
            ]);
            spawn_part(&args.iter().map(String::as_str).collect::<Vec<_>>())
        };
    let (api, line) = part("api", "bench-api".into(), None)?;
    let url = line
        .strip_prefix("watcherd listening on ")
        .context("watcherd api did not start")?
        .to_string();
    let mut others = vec![sim_proc, api];
    let mut applier_procs = vec![];
    for i in 0..appliers {
        let host = format!("bench-applier-{i}");
        let proc_ = part("applier", host.clone(), Some(&applier_config))?.0;
        applier_procs.push((host, proc_));
    }
    others.push(part("decision-engine", "bench-de".into(), None)?.0);
    Ok(Split {
        url,
        sim,
        appliers: applier_procs,
        _others: others,
    })
}

/// Failover on PostgreSQL: two appliers; each run starts a plan of one
/// live migration, kills the applier running it with -9 once the migration
/// runs at the cloud, and cancels the plan right after. Time from the kill
/// to the plan CANCELLED (the other applier takes it over, aborts the
/// migration). Appliers killed are started again for the next run.
pub(crate) fn failover(database: &str, runs: usize) -> anyhow::Result<Vec<Duration>> {
    let mut split = split_deployment(Some(database), 2, "lease_secs = 60")?;
    let mut out = vec![];
    for _ in 0..runs {
        let url = split.url.clone();
        let plan = actuator_plan(
            &url,
            json!([{"action_type": "migrate", "input_parameters": {
                "migration_type": "live", "resource_id": "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001",
                "source_node": "compute-1", "destination_node": "compute-2"}}]),
        )?;
        http(
            "POST",
            &format!("{url}/v1/action_plans/{plan}/start"),
            Some(&json!({})),
        )?;
        let holder = poll_until(|| {
            let a = http(
                "GET",
                &format!("{url}/v1/actions?action_plan_uuid={plan}"),
                None,
            )?;
            let running = a["actions"][0]["state"] == "ONGOING";
            let p = http("GET", &format!("{url}/v1/action_plans/{plan}"), None)?;
            Ok(running
                .then(|| p["hostname"].as_str().map(str::to_string))
                .flatten())
        })?;
        // The migration is at the cloud once its id is journaled; a moment more.
        std::thread::sleep(Duration::from_millis(300));
        let i = split
            .appliers
            .iter()
            .position(|(h, _)| *h == holder)
            .context("the plan's applier")?;
        let t = Instant::now();
        let (_, mut victim) = split.appliers.remove(i);
        let _ = victim.0.kill();
        let _ = victim.0.wait();
        cancel_and_settle(&url, &plan)?;
        out.push(t.elapsed());
        // Back to two appliers, under the same name (it finds nothing to resume).
        let restarted = spawn_part(&[
            "applier",
            "--database",
            database,
            "--cloud",
            "sim-cloud",
            "--sim-cloud-url",
            &split.sim,
            "--host",
            &holder,
            "--listen",
            "127.0.0.1:0",
            "--log",
            "warn",
        ])?
        .0;
        split.appliers.push((holder, restarted));
    }
    Ok(out)
}

/// (c) The split deployment's cancel, with one applier: time from the
/// PATCH response (API process) to the abort request reaching the cloud,
/// through the applier process; clocks are the same machine's.
pub(crate) fn cross_process_cancel(
    runs: usize,
    database: Option<&str>,
) -> anyhow::Result<Vec<Duration>> {
    let split = split_deployment(database, 1, "")?;
    cancels_at_cloud(&split, runs, None)
}

/// `runs` cancels (or as many as fit until `stop` is set) of a plan of one
/// live migration, each timed from the PATCH response to the abort request
/// reaching the cloud.
// Long because it is one scenario end to end: make, start, wait, cancel, settle.
pub(crate) fn cancels_at_cloud(
    split: &Split,
    runs: usize,
    stop: Option<&std::sync::atomic::AtomicBool>,
) -> anyhow::Result<Vec<Duration>> {
    let (url, sim) = (&split.url, &split.sim);
    let ops = |sim: &str| -> anyhow::Result<Vec<Value>> {
        let v = ureq::get(&format!("{sim}/control/operations"))
            .call()?
            .into_json::<Vec<Value>>()?;
        Ok(v)
    };
    let mut out = vec![];
    for _ in 0..runs {
        if stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::Acquire)) {
            break;
        }
        let plan = actuator_plan(
            url,
            json!([{"action_type": "migrate", "input_parameters": {
                "migration_type": "live", "resource_id": "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001",
                "source_node": "compute-1", "destination_node": "compute-2"}}]),
        )?;
        let known = ops(sim)?.len();
        http(
            "POST",
            &format!("{url}/v1/action_plans/{plan}/start"),
            Some(&json!({})),
        )?;
        // Running at the cloud: a new operation.
        let op = loop {
            let all = ops(sim)?;
            if all.len() > known {
                break all[known]["id"].as_str().context("op id")?.to_string();
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let patch = json!([{"op": "replace", "path": "/state", "value": "CANCELLING"}]);
        http(
            "PATCH",
            &format!("{url}/v1/action_plans/{plan}"),
            Some(&patch),
        )?;
        let answered = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs_f64();
        let aborted = loop {
            let o = ops(sim)?
                .into_iter()
                .find(|o| o["id"] == op.as_str())
                .context("op")?;
            if let Some(t) = o["abort_requested_at"].as_f64() {
                break t;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        out.push(Duration::from_secs_f64((aborted - answered).max(0.0)));
        // Wait for the plan to settle (the instance back home) before the next run.
        loop {
            let p = http("GET", &format!("{url}/v1/action_plans/{plan}"), None)?;
            if p["state"] == "CANCELLED" || p["state"] == "FAILED" {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(out)
}

/// Four appliers (or `appliers`) on PostgreSQL together: `plans` plans of
/// `actions` nops started at once through the API, their actions per
/// second from the first start to the last SUCCEEDED; meanwhile, cancels
/// of live migrations timed from the PATCH response to the abort at the
/// cloud (only those made while the load ran).
pub(crate) fn many_appliers(
    database: &str,
    appliers: usize,
    plans: usize,
    actions: usize,
) -> anyhow::Result<(f64, Vec<Duration>)> {
    use std::sync::atomic::{AtomicBool, Ordering};
    // The plans first: a decision engine running meanwhile would take
    // their audits for its own.
    let uuids = plans_of_nops(&DatabaseLocation::parse(database)?, plans, actions)?;
    // Six plans an applier: the sixteen plans of nops never take every
    // slot, so the migrations to cancel are claimed at once, not after a
    // plan of nops has ended (which left four or five cancels per run).
    let split = split_deployment(
        Some(database),
        appliers,
        "max_concurrent_plans = 6\n[applier.limits]\nper_plan = 128\n\
         [applier.limits.per_type]\nnop = 128\nmigrate = 2\n",
    )?;
    let loaded = AtomicBool::new(false);
    let (rate, cancels) = std::thread::scope(|scope| {
        let cancels = scope.spawn(|| cancels_at_cloud(&split, usize::MAX, Some(&loaded)));
        let load = (|| {
            let url = &split.url;
            let t = Instant::now();
            for plan in &uuids {
                http(
                    "POST",
                    &format!("{url}/v1/action_plans/{plan}/start"),
                    Some(&json!({})),
                )?;
            }
            let deadline = Instant::now() + Duration::from_secs(900);
            let mut left: Vec<&Uuid> = uuids.iter().collect();
            while !left.is_empty() {
                anyhow::ensure!(Instant::now() < deadline, "plans did not end within 900 s");
                std::thread::sleep(Duration::from_millis(50));
                let mut still = vec![];
                for plan in left {
                    let p = http("GET", &format!("{url}/v1/action_plans/{plan}"), None)?;
                    match p["state"].as_str() {
                        Some("SUCCEEDED") => {}
                        Some("FAILED" | "CANCELLED") => {
                            anyhow::bail!("plan {plan} ended {}", p["state"])
                        }
                        _ => still.push(plan),
                    }
                }
                left = still;
            }
            anyhow::Ok((plans * actions) as f64 / t.elapsed().as_secs_f64())
        })();
        loaded.store(true, Ordering::Release);
        let cancels = cancels.join().expect("cancel thread");
        anyhow::Ok((load?, cancels?))
    })?;
    Ok((rate, cancels))
}

/// The split deployment's figures on the database server at `url`
/// (PostgreSQL or MariaDB): the applier's throughput with every change
/// committed there, and the cancel across processes, woken by
/// LISTEN/NOTIFY on PostgreSQL and by the history poll on MariaDB.
pub(crate) fn postgres_table(url: &str, quick: bool) -> anyhow::Result<()> {
    let server = if url.starts_with("mysql") {
        "MariaDB"
    } else {
        "PostgreSQL"
    };
    let n = if quick { 1_000 } else { 10_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (seq, seq_hist) = rt.block_on(throughput(n, true, Some(url)))?;
    let (par, par_hist) = rt.block_on(throughput(n, false, Some(url)))?;
    let mut cross = cross_process_cancel(if quick { 10 } else { 100 }, Some(url))?;
    println!("| measure ({server}) | result | target |");
    println!("|---|---|---|");
    println!("| applier: {n} nops, one sequential chain | {seq:.0} actions/s ({seq_hist} history rows) | |");
    println!("| applier: {n} nops, no parents (512 at once) | {par:.0} actions/s ({par_hist} history rows) | |");
    println!(
        "| cancel (c): split processes, PATCH response -> abort at the cloud, p50 ({} runs) | {} | |",
        cross.len(),
        ms(pct(&mut cross, 0.5))
    );
    println!(
        "| cancel (c): split processes, PATCH response -> abort at the cloud, p99 | {} | p99 < 100 ms |",
        ms(pct(&mut cross, 0.99))
    );
    Ok(())
}

/// `watcher-bench cross-process`.
pub fn print_cross_process(quick: bool) -> anyhow::Result<()> {
    let mut c = cross_process_cancel(if quick { 10 } else { 100 }, None)?;
    println!(
        "cancel (c), split processes, PATCH response -> abort at the cloud: p50 {}, p99 {} ({} runs)",
        ms(pct(&mut c, 0.5)),
        ms(pct(&mut c, 0.99)),
        c.len()
    );
    Ok(())
}

/// `watcher-bench many-appliers`.
pub fn print_many_appliers(
    database: &str,
    appliers: usize,
    plans: usize,
    actions: usize,
) -> anyhow::Result<()> {
    let (rate, mut cancels) = many_appliers(database, appliers, plans, actions)?;
    println!(
        "| {appliers} appliers, {plans} plans of {actions} nops started at once | {rate:.0} actions/s | >= 1000 actions/s |"
    );
    println!(
        "| cancel meanwhile, PATCH response -> abort at the cloud ({} runs) | p50 {}, p99 {}, max {} | p99 < 10 ms |",
        cancels.len(),
        ms(pct(&mut cancels, 0.5)),
        ms(pct(&mut cancels, 0.99)),
        ms(pct(&mut cancels, 1.0))
    );
    Ok(())
}

/// `watcher-bench failover`.
pub fn print_failover(database: &str, runs: usize) -> anyhow::Result<()> {
    let mut t = failover(database, runs)?;
    println!(
        "| applier killed with -9 mid-migration, cancel right after: kill -> CANCELLED ({} runs) | p50 {}, max {} | detected within 2 s; settles as on a live applier plus the abort |",
        t.len(),
        ms(pct(&mut t, 0.5)),
        ms(pct(&mut t, 1.0))
    );
    Ok(())
}
