//! The database primary fails over under a running plan: a PostgreSQL
//! primary with a synchronous streaming standby (two servers of the test's
//! own), watcherd given both in libpq's multi-host URL with
//! `target_session_attrs=read-write`, the primary killed -9 mid-plan and the
//! standby promoted. watcherd finds the new primary by itself, answers 503
//! meanwhile, honours a cancel sent across the switch, runs no action
//! twice and loses no transition it reported.

use watcher_testkit as common;

use common::pg_replication::ReplicatedPostgres;
use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The history rows of a plan: `(uuid, from, to)`.
fn transitions(d: &Daemon, plan: &str) -> Vec<(String, String, String)> {
    d.get(&format!("/v1/action_plans/{plan}/history"))["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (s("uuid"), s("from_state"), s("to_state"))
        })
        .collect()
}

/// Kills the primary while a plan of eight 1 s sleeps runs (one done, one
/// running), promotes the standby, and, with `cancel`, cancels the plan
/// across the switch (first during the gap, refused with 503; then again
/// until accepted). Returns the daemon, the plan, the transitions seen
/// before the crash and the time from the promotion to the first write.
fn failover_mid_plan(
    root: &std::path::Path,
    pair: &ReplicatedPostgres,
    cancel: bool,
) -> (Daemon, String, Vec<(String, String, String)>, Duration) {
    let dir = root.join("watcherd");
    std::fs::create_dir_all(&dir).unwrap();
    let d = Daemon::start_with_config(&dir, write_config_on(&dir, &pair.url(), "", "", ""), None);
    let sleeps: Vec<Value> = (0..8)
        .map(|_| json!({"action_type": "sleep", "input_parameters": {"duration": 1.0}}))
        .collect();
    let plan = d.actuator(json!(sleeps));
    d.start_plan(&plan);
    // One sleep done, the next running: transitions committed before the
    // crash, one action in flight across it.
    wait_for(Duration::from_secs(20), || {
        let done = d
            .actions(&plan)
            .iter()
            .filter(|a| a["state"] == "SUCCEEDED")
            .count();
        (done >= 1).then_some(())
    });
    let before = transitions(&d, &plan);

    pair.kill_primary();
    // The gap: nothing can be written, and watcherd says so.
    wait_for(Duration::from_secs(20), || {
        (d.raw("GET", "/healthz", "").0 == 503).then_some(())
    });
    let path = format!("/v1/action_plans/{plan}");
    let patch = json!([{"op": "replace", "path": "/state", "value": "CANCELLING"}]);
    let write = || {
        if cancel {
            d.req("PATCH", &path, Some(&patch))
        } else {
            d.req(
                "POST",
                "/v1/audit_templates",
                Some(&json!({"name": format!("t-{}", uuid::Uuid::new_v4()), "goal": "dummy"})),
            )
        }
    };
    let (status, body) = write();
    assert_eq!(
        status, 503,
        "a write during the gap is refused, not lost: {body}"
    );
    assert!(faultstring(&body).contains("retry"), "{body}");

    let promoted = Instant::now();
    pair.promote_standby();
    // The client retries, as the 503 says.
    let first_write = wait_for(Duration::from_secs(30), || {
        let (status, _) = write();
        (status == 200 || status == 201).then(|| promoted.elapsed())
    });
    eprintln!("promotion -> first write accepted: {first_write:?}");
    (d, plan, before, first_write)
}

/// What every failover must leave: nothing reported committed before the
/// crash missing on the new primary (synchronous replication), a history
/// that is a path, no action started twice, health back.
fn assert_nothing_lost_nothing_twice(d: &Daemon, plan: &str, before: &[(String, String, String)]) {
    let after = transitions(d, plan);
    for t in before {
        assert!(after.contains(t), "{t:?} lost in the failover: {after:?}");
    }
    assert_history_unbroken(d, plan);
    let mut started: HashMap<&str, usize> = HashMap::new();
    for (uuid, _, to) in &after {
        if to == "ONGOING" && uuid != plan {
            *started.entry(uuid).or_default() += 1;
        }
    }
    assert!(started.values().all(|n| *n == 1), "{after:?}");
    // Health is measured by a real write at most once a second.
    wait_for(Duration::from_secs(5), || {
        (d.raw("GET", "/healthz", "").0 == 200).then_some(())
    });
}

fn settled(d: &Daemon, plan: &str) -> Value {
    wait_for(Duration::from_secs(30), || {
        let p = d.plan(plan);
        ["CANCELLED", "FAILED", "SUCCEEDED"]
            .contains(&p["state"].as_str().unwrap())
            .then_some(p)
    })
}

#[cfg_attr(
    not(test_postgres),
    ignore = "needs PostgreSQL's server programs: set WATCHER_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432 (.ci/run does)"
)]
#[test]
fn a_promoted_standby_takes_over_mid_plan_and_the_plan_goes_on() {
    let root = temp_dir("pg-failover");
    let pair = ReplicatedPostgres::start(&root);
    let (d, plan, before, _) = failover_mid_plan(&root, &pair, false);
    let p = settled(&d, &plan);
    assert_eq!(p["state"], "SUCCEEDED", "{p}; log: {}", d.log());
    let actions = d.actions(&plan);
    assert!(
        actions.iter().all(|a| a["state"] == "SUCCEEDED"),
        "{actions:?}"
    );
    assert_nothing_lost_nothing_twice(&d, &plan, &before);
}

#[cfg_attr(
    not(test_postgres),
    ignore = "needs PostgreSQL's server programs: set WATCHER_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432 (.ci/run does)"
)]
#[test]
fn a_cancel_sent_across_the_switch_is_honoured() {
    let root = temp_dir("pg-failover-cancel");
    let pair = ReplicatedPostgres::start(&root);
    let (d, plan, before, _) = failover_mid_plan(&root, &pair, true);
    let p = settled(&d, &plan);
    assert_eq!(p["state"], "CANCELLED", "{p}; log: {}", d.log());
    let actions = d.actions(&plan);
    assert!(
        actions.iter().any(|a| a["state"] == "CANCELLED"),
        "pending actions cancelled: {actions:?}"
    );
    assert!(
        actions.iter().filter(|a| a["state"] == "SUCCEEDED").count() >= 1,
        "{actions:?}"
    );
    assert_nothing_lost_nothing_twice(&d, &plan, &before);
}

/// The split deployment (API, decision engine, two appliers, the cloud as
/// a process of its own) across the failover, a live migration running:
/// every process finds the new primary, the migration is started once at
/// the cloud whichever applier ends up following it, and a cancel sent
/// across the switch aborts it.
#[cfg_attr(
    not(test_postgres),
    ignore = "needs PostgreSQL's server programs: set WATCHER_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432 (.ci/run does)"
)]
#[test]
fn split_processes_follow_the_failover_and_a_live_migration_runs_once() {
    let root = temp_dir("pg-failover-split");
    let pair = ReplicatedPostgres::start(&root);
    let sim = SimCloud::start(&scenario_file(
        &root,
        "live_migration_secs = 60.0\nabort_secs = 0.2",
        "",
    ));
    let (url, cloud) = (pair.url(), sim.cloud_config());
    let config = |name: &str| {
        shared_config_on(
            &root.join(name),
            name,
            &url,
            &cloud,
            "[applier]\nsweep_interval_secs = 0.5\npoll_interval_ms = 20\nshutdown_grace_secs = 0.5\nlease_secs = 60",
        )
    };
    let api = Daemon::start_command(&root.join("api-1"), config("api-1"), None, Some("api"));
    let _de = Part::start("decision-engine", &config("de-1"));
    let _appliers = [
        Part::start("applier", &config("ap-1")),
        Part::start("applier", &config("ap-2")),
    ];
    let plan = running_live_migration(&api, &sim);
    let before = transitions(&api, &plan);

    pair.kill_primary();
    wait_for(Duration::from_secs(20), || {
        (api.raw("GET", "/healthz", "").0 == 503).then_some(())
    });
    pair.promote_standby();
    let path = format!("/v1/action_plans/{plan}");
    let patch = json!([{"op": "replace", "path": "/state", "value": "CANCELLING"}]);
    wait_for(Duration::from_secs(30), || {
        (api.req("PATCH", &path, Some(&patch)).0 == 200).then_some(())
    });
    let p = wait_for(Duration::from_secs(30), || {
        let p = api.plan(&plan);
        ["CANCELLED", "FAILED", "SUCCEEDED"]
            .contains(&p["state"].as_str().unwrap())
            .then_some(p)
    });
    assert_eq!(p["state"], "CANCELLED", "{p}");
    // Started once at the cloud, and aborted.
    let ops = sim.operations();
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert!(ops[0]["abort_requested_at"].as_f64().is_some(), "{ops:?}");
    assert_nothing_lost_nothing_twice(&api, &plan, &before);
}
