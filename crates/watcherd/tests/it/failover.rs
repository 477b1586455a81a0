//! Several appliers on one database (SQLite, several processes) and one
//! cloud (`watcherd sim-cloud`): plans are leased, an applier that dies
//! loses its plans to another within the lease time, and racing appliers
//! never run a plan twice.

use watcher_testkit as common;

use common::{scenario_file, shared_config, temp_dir, wait_for, Daemon, SimCloud};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const WEB_1: &str = "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001";

/// A watcherd named `host` in `dir`, on the shared `db` and `sim`.
fn applier(dir: &Path, host: &str, db: &Path, sim: &SimCloud) -> Daemon {
    let config = shared_config(
        dir,
        host,
        db,
        &sim.cloud_config(),
        "[applier]\nsweep_interval_secs = 0.5\npoll_interval_ms = 20\nshutdown_grace_secs = 0.5\nlease_secs = 2",
    );
    Daemon::start_with_config(dir, config, None)
}

/// Kills (-9) whichever of `applier-a` and `applier-b` holds the plan
/// (`owner`): the survivor and its host name.
fn kill_holder<'a>(
    a: &'a mut Daemon,
    b: &'a mut Daemon,
    owner: &str,
) -> (&'a Daemon, &'static str) {
    if owner == "applier-a" {
        a.kill9();
        (b, "applier-b")
    } else {
        b.kill9();
        (a, "applier-a")
    }
}

fn history(d: &Daemon, plan: &str) -> Vec<Value> {
    d.get(&format!("/v1/action_plans/{plan}/history"))["history"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_dead_appliers_plan_is_taken_over_within_the_lease_and_its_migration_finishes_once() {
    let root = temp_dir("failover");
    let sim = SimCloud::start(&scenario_file(&root, "live_migration_secs = 6.0", ""));
    let db = root.join("watcher.db");
    let mut a = applier(&root.join("a"), "applier-a", &db, &sim);
    let mut b = applier(&root.join("b"), "applier-b", &db, &sim);
    let plan = a.actuator(json!([
        {"action_type": "migrate", "input_parameters": {"migration_type": "live",
            "resource_id": WEB_1, "source_node": "compute-1", "destination_node": "compute-2"}}
    ]));
    a.start_plan(&plan);
    a.wait_action_state(&plan, "migrate", "ONGOING");
    let owner = a.plan(&plan)["hostname"].as_str().unwrap().to_string();
    // Metrics count from the first scrape on.
    for d in [&a, &b] {
        assert_eq!(d.raw("GET", "/metrics", "").0, 200);
    }
    // Kill whichever applier claimed it; the other must take over.
    let (survivor, name) = kill_holder(&mut a, &mut b, &owner);
    let killed = Instant::now();
    wait_for(Duration::from_secs(15), || {
        (survivor.plan(&plan)["hostname"] == name).then_some(())
    });
    let took = killed.elapsed();
    // Lease 2 s + one 0.5 s sweep, with margin for a loaded machine (on
    // PostgreSQL the dead applier's ended session can tell first).
    assert!(took < Duration::from_secs(6), "takeover after {took:?}");
    let p = survivor.wait_state(&plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "SUCCEEDED", "{p}");
    let h = history(survivor, &plan);
    assert!(
        h.iter().any(|r| {
            let reason = r["reason"].as_str().unwrap();
            r["actor"] == "recovery"
                && (reason.contains(&format!("lease of applier {owner} expired"))
                    || reason.contains(&format!("applier {owner} is gone")))
        }),
        "{h:?}"
    );
    let (_, metrics) = survivor.raw("GET", "/metrics", "");
    assert!(
        metrics.contains("watcher_lease_takeovers_total 1"),
        "{metrics}"
    );
    // The migration was followed, not started again.
    let migrations = sim
        .operations()
        .iter()
        .filter(|o| o["resource"] == WEB_1)
        .count();
    assert_eq!(migrations, 1);
    let services = survivor.get("/v1/services")["services"].clone();
    let hosts: Vec<&str> = services
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["host"].as_str().unwrap())
        .collect();
    assert!(
        hosts.contains(&"applier-a") && hosts.contains(&"applier-b"),
        "{services}"
    );
}

#[test]
fn a_paused_plan_whose_applier_dies_is_taken_over_and_let_go_still_paused() {
    let root = temp_dir("failover-paused");
    let sim = SimCloud::start(&scenario_file(&root, "", ""));
    let db = root.join("watcher.db");
    let mut a = applier(&root.join("a"), "applier-a", &db, &sim);
    let mut b = applier(&root.join("b"), "applier-b", &db, &sim);
    // The sleep first (the planner's weights), then the migration.
    let plan = a.actuator(json!([
        {"action_type": "sleep", "input_parameters": {"duration": 30.0}},
        {"action_type": "migrate", "input_parameters": {"migration_type": "live",
            "resource_id": WEB_1, "source_node": "compute-1", "destination_node": "compute-2"}}
    ]));
    a.start_plan(&plan);
    a.wait_action_state(&plan, "sleep", "ONGOING");
    let (status, body) = a.req(
        "POST",
        &format!("/v1/x-watcherd/action_plans/{plan}/pause"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    // The applier holding the paused plan (its sleep still running) dies;
    // the other takes the plan over, reconciles the sleep, starts nothing,
    // and lets the plan go, still PAUSED.
    let owner = a.plan(&plan)["hostname"].as_str().unwrap().to_string();
    let (survivor, name) = kill_holder(&mut a, &mut b, &owner);
    wait_for(Duration::from_secs(20), || {
        history(survivor, &plan)
            .iter()
            .any(|r| {
                r["reason"]
                    .as_str()
                    .unwrap_or("")
                    .contains(&format!("applier {name} lets it go"))
            })
            .then_some(())
    });
    let p = survivor.plan(&plan);
    assert_eq!(p["state"], "PAUSED", "{p}");
    let states: Vec<String> = survivor
        .actions(&plan)
        .iter()
        .map(|a| a["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(states, ["PENDING", "PENDING"], "{p}");
    assert!(sim.operations().iter().all(|o| o["resource"] != WEB_1));
    // Resumed: it runs to its end; the migration ran once at the cloud.
    let (status, _) = survivor.req(
        "POST",
        &format!("/v1/x-watcherd/action_plans/{plan}/resume"),
        None,
    );
    assert_eq!(status, 200);
    // The sleep runs again in full before the migration: cancel instead
    // of waiting for it, once it runs again.
    survivor.wait_action_state(&plan, "sleep", "ONGOING");
    assert_eq!(survivor.patch_state(&plan, "CANCELLED").0, 200);
    let p = survivor.wait_state(&plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "CANCELLED", "{p}");
    common::assert_history_unbroken(survivor, &plan);
}

#[test]
fn racing_appliers_run_each_plan_exactly_once() {
    let root = temp_dir("race-appliers");
    let sim = SimCloud::start(&scenario_file(&root, "", ""));
    let db = root.join("watcher.db");
    let a = applier(&root.join("a"), "applier-a", &db, &sim);
    let b = applier(&root.join("b"), "applier-b", &db, &sim);
    let mut plans = vec![];
    for i in 0..8 {
        let d = if i % 2 == 0 { &a } else { &b };
        let plan = d.actuator(json!([
            {"action_type": "nop", "input_parameters": {"message": format!("plan {i}")}},
            {"action_type": "sleep", "input_parameters": {"duration": 0.2}}
        ]));
        plans.push(plan);
    }
    // Started through both APIs at once: each applier sees every PENDING plan.
    for (i, plan) in plans.iter().enumerate() {
        let d = if i % 2 == 0 { &b } else { &a };
        d.start_plan(plan);
    }
    for plan in &plans {
        let p = a.wait_state(plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
        assert_eq!(p["state"], "SUCCEEDED", "{p}");
        let h = history(&a, plan);
        let claims = h
            .iter()
            .filter(|r| r["resource"] == "action_plan" && r["to_state"] == "ONGOING")
            .count();
        let starts = h
            .iter()
            .filter(|r| r["resource"] == "action" && r["to_state"] == "ONGOING")
            .count();
        assert_eq!((claims, starts), (1, 2), "{plan}: {h:?}");
    }
}
