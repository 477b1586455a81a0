//! `watcherd api`, `watcherd decision-engine` and `watcherd applier` as
//! separate processes on one SQLite file, with a `watcherd sim-cloud`: an
//! audit, a plan and a cancel go through all three.

use watcher_testkit as common;

use common::{scenario_file, shared_config, temp_dir, wait_for, Daemon, Part, SimCloud};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn config(dir: &Path, host: &str, db: &Path, sim: &SimCloud) -> PathBuf {
    shared_config(
        dir,
        host,
        db,
        &sim.cloud_config(),
        "[applier]\nsweep_interval_secs = 5\npoll_interval_ms = 20\nshutdown_grace_secs = 0.5\n\n\
         [decision_engine]\nsweep_interval_secs = 5",
    )
}

#[test]
fn an_audit_a_plan_and_a_cancel_cross_three_processes() {
    let root = temp_dir("split");
    let sim = SimCloud::start(&scenario_file(&root, "", ""));
    let db = root.join("watcher.db");
    let api = Daemon::start_command(
        &root.join("api"),
        config(&root.join("api"), "api-1", &db, &sim),
        None,
        Some("api"),
    );
    let _de = Part::start(
        "decision-engine",
        &config(&root.join("de"), "de-1", &db, &sim),
    );
    let _ap = Part::start("applier", &config(&root.join("ap"), "ap-1", &db, &sim));

    // Sweeps are 5 s apart: what follows within them travels by the
    // history tail, across processes.
    let started = Instant::now();
    let plan = api.recommend("dummy", "dummy", json!({"para1": 600}));
    api.start_plan(&plan);
    api.wait_action_state(&plan, "sleep", "ONGOING");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(api.plan(&plan)["hostname"], "ap-1");

    let (status, _) = api.patch_state(&plan, "CANCELLING");
    assert_eq!(status, 200);
    let asked = Instant::now();
    wait_for(Duration::from_secs(4), || {
        (api.plan(&plan)["state"] == "CANCELLED").then_some(())
    });
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );

    let services = api.get("/v1/services")["services"].clone();
    let mut seen: Vec<(String, String, String)> = services
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["host"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    let active = |n: &str, h: &str| (n.to_string(), h.to_string(), "ACTIVE".to_string());
    assert_eq!(
        seen,
        [
            active("watcher-api", "api-1"),
            active("watcher-applier", "ap-1"),
            active("watcher-decision-engine", "de-1")
        ]
    );
}
