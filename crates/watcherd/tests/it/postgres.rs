//! PostgreSQL as the shared database of a production deployment: a server
//! restart while a plan runs (the API answers 503, every process
//! reconnects, the plan finishes with a complete history), and wake-ups
//! across processes carried by LISTEN/NOTIFY rather than by sweeps.
//!
//! The restart test runs its own PostgreSQL server (initdb in a temporary
//! directory, its own port) so that stopping it leaves the machine's alone.
//! The other tests use the machine's server (`WATCHER_TEST_POSTGRES`).

use watcher_testkit as common;

use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The machine's PostgreSQL (`WATCHER_TEST_POSTGRES`) must answer: these
/// tests are built ignored without it, so here it is required.
fn require_postgres() {
    let server = required_env("WATCHER_TEST_POSTGRES", "PostgreSQL");
    if let Err(e) = postgres::Client::connect(&format!("{server}/postgres"), postgres::NoTls) {
        panic!("PostgreSQL at WATCHER_TEST_POSTGRES={server} does not answer: {e}");
    }
}

#[cfg_attr(
    not(test_postgres),
    ignore = "needs PostgreSQL: set WATCHER_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432 (.ci/run does)"
)]
#[test]
fn a_postgresql_restart_mid_plan_answers_503_meanwhile_and_the_plan_still_finishes() {
    require_postgres();
    let root = temp_dir("pg-restart");
    let pg = PrivatePostgres::start(&root);
    let dir = root.join("watcherd");
    std::fs::create_dir_all(&dir).unwrap();
    let d = Daemon::start_with_config(&dir, write_config_on(&dir, &pg.url(), "", "", ""), None);
    let sleeps: Vec<Value> = (0..4)
        .map(|_| json!({"action_type": "sleep", "input_parameters": {"duration": 1.0}}))
        .collect();
    let plan = d.actuator(json!(sleeps));
    d.start_plan(&plan);
    d.wait_action_state(&plan, "sleep", "ONGOING");

    pg.stop();
    let (status, body) = d.req("GET", &format!("/v1/action_plans/{plan}"), None);
    assert_eq!(status, 503, "{body}");
    assert!(
        faultstring(&body).contains("database is unavailable"),
        "{body}"
    );
    let (status, _) = d.raw("GET", "/healthz", "");
    assert_eq!(status, 503);
    // The running sleep ends during the outage: its result cannot be
    // written, and the plan's run stops there.
    wait_for(Duration::from_secs(20), || {
        d.log().contains("plan run failed").then_some(())
    });

    pg.pg_ctl_start();
    let p = wait_for(Duration::from_secs(30), || {
        let (status, p) = d.req("GET", &format!("/v1/action_plans/{plan}"), None);
        (status == 200
            && ["SUCCEEDED", "FAILED", "CANCELLED"].contains(&p["state"].as_str().unwrap()))
        .then_some(p)
    });
    assert_eq!(p["state"], "SUCCEEDED", "{p}; log: {}", d.log());
    let actions = d.actions(&plan);
    assert_eq!(actions.len(), 4);
    assert!(
        actions.iter().all(|a| a["state"] == "SUCCEEDED"),
        "{actions:?}"
    );
    assert_history_unbroken(&d, &plan);
    let (status, _) = d.raw("GET", "/healthz", "");
    assert_eq!(status, 200);
}

#[cfg_attr(
    not(test_postgres),
    ignore = "needs PostgreSQL: set WATCHER_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432 (.ci/run does)"
)]
#[test]
fn a_cancel_written_by_one_api_process_reaches_another_processs_applier_by_notify() {
    require_postgres();
    let root = temp_dir("pg-notify");
    let sim = SimCloud::start(&scenario_file(&root, "", ""));
    let database = postgres_database(&root.join("watcher.db"));
    // Sweeps 30 s apart, and the re-read without a notification every 2 s:
    // what arrives within a second travelled by NOTIFY.
    let config = |name: &str| {
        shared_config_on(
            &root.join(name),
            name,
            &database,
            &sim.cloud_config(),
            "[applier]\nsweep_interval_secs = 30\npoll_interval_ms = 20\nshutdown_grace_secs = 0.5\n\n\
             [decision_engine]\nsweep_interval_secs = 30",
        )
    };
    let api = Daemon::start_command(&root.join("api-1"), config("api-1"), None, Some("api"));
    let _de = Part::start("decision-engine", &config("de-1"));
    let _ap = Part::start("applier", &config("ap-1"));

    let plan = api.recommend("dummy", "dummy", json!({"para1": 600}));
    let asked = Instant::now();
    api.start_plan(&plan);
    api.wait_action_state(&plan, "sleep", "ONGOING");
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(api.plan(&plan)["hostname"], "ap-1");

    let (status, _) = api.patch_state(&plan, "CANCELLING");
    assert_eq!(status, 200);
    let asked = Instant::now();
    wait_for(Duration::from_secs(5), || {
        (api.plan(&plan)["state"] == "CANCELLED").then_some(())
    });
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
}

/// A database that answers reads but refuses writes (made read-only behind
/// watcherd's back): `/healthz` says so with 503, the failing plan run is
/// retried with backoff (a few log lines, not thousands), and once writes
/// are accepted again the plan finishes and `/healthz` is 200.
#[cfg_attr(
    not(test_postgres),
    ignore = "needs PostgreSQL: set WATCHER_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432 (.ci/run does)"
)]
#[test]
fn a_database_that_refuses_writes_is_unhealthy_and_retried_calmly() {
    require_postgres();
    let root = temp_dir("pg-read-only");
    let database = postgres_database(&root.join("watcher.db"));
    let name = database.rsplit('/').next().unwrap().to_string();
    let admin = || {
        postgres::Client::connect(&format!("{}/postgres", postgres_server()), postgres::NoTls)
            .unwrap()
    };
    let set_read_only = |on: bool| {
        let mut c = admin();
        c.batch_execute(&format!(
            "ALTER DATABASE {name} SET default_transaction_read_only = {on}"
        ))
        .unwrap();
        // Every session of watcherd starts again, under the new default.
        c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .unwrap();
    };
    let d = Daemon::start_with_config(&root, write_config_on(&root, &database, "", "", ""), None);
    let sleeps: Vec<Value> = (0..3)
        .map(|_| json!({"action_type": "sleep", "input_parameters": {"duration": 1.0}}))
        .collect();
    let plan = d.actuator(json!(sleeps));
    d.start_plan(&plan);
    d.wait_action_state(&plan, "sleep", "ONGOING");
    set_read_only(true);
    // (The first answers may report the connections watcherd just lost.)
    wait_for(Duration::from_secs(20), || {
        let (status, body) = d.raw("GET", "/healthz", "");
        (status == 503 && body.contains("reads work but writes fail")).then_some(())
    });
    // Reads still work.
    assert_eq!(
        d.req("GET", &format!("/v1/action_plans/{plan}"), None).0,
        200
    );
    // The run fails on its next write and is retried with backoff.
    wait_for(Duration::from_secs(20), || {
        d.log().contains("plan run failed").then_some(())
    });
    let before = d.log().lines().count();
    std::thread::sleep(Duration::from_secs(5));
    let during = d.log().lines().count() - before;
    assert!(during < 40, "{during} log lines in 5 s: {}", d.log());

    set_read_only(false);
    let p = wait_for(Duration::from_secs(60), || {
        let (status, p) = d.req("GET", &format!("/v1/action_plans/{plan}"), None);
        (status == 200 && ["SUCCEEDED", "FAILED"].contains(&p["state"].as_str().unwrap()))
            .then_some(p)
    });
    assert_eq!(p["state"], "SUCCEEDED", "{p}; log: {}", d.log());
    wait_for(Duration::from_secs(10), || {
        (d.raw("GET", "/healthz", "").0 == 200).then_some(())
    });
}
