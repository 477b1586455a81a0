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
use std::path::{Path, PathBuf};
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
    plan_through_a_database_outage(
        &d,
        || pg.stop(),
        || {
            // Every loop meets the outage (sweeps, heartbeats, the history
            // tail, the plan's run): each says so, then waits longer between
            // tries and repeats itself once a minute at most. Nothing spins.
            let before = d.log().len();
            std::thread::sleep(Duration::from_secs(6));
            let log = d.log();
            let noisy: Vec<&str> = log[before..]
                .lines()
                .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
                .collect();
            assert!(
                noisy.len() < 10,
                "{} warnings in 6 s: {noisy:#?}",
                noisy.len()
            );
            pg.pg_ctl_start();
        },
    );
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

    // The cancel's own lane: its commit carries the plan's uuid on
    // `watcher_cancel`, which no backlog of other changes delays.
    let mut listener = postgres::Client::connect(&database, postgres::NoTls).unwrap();
    listener.batch_execute("LISTEN watcher_cancel").unwrap();
    let (status, _) = api.patch_state(&plan, "CANCELLING");
    assert_eq!(status, 200);
    let asked = Instant::now();
    {
        use postgres::fallible_iterator::FallibleIterator;
        let mut notifications = listener.notifications();
        let n = notifications
            .timeout_iter(Duration::from_secs(5))
            .next()
            .unwrap()
            .expect("no notification on watcher_cancel");
        assert_eq!(n.payload(), plan);
    }
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

/// Applier settings of the failover tests: quick sweeps and polls, and a
/// 60 s lease, so that a takeover within seconds can only come from the
/// presence lock.
const FAILOVER_APPLIER: &str = "[applier]\nsweep_interval_secs = 0.5\npoll_interval_ms = 20\n\
    shutdown_grace_secs = 0.5\nlease_secs = 60";

/// The config of the split part `name` (in its own directory under `root`)
/// on `database`, managing `sim`'s cloud.
fn failover_part(root: &Path, name: &str, database: &str, sim: &SimCloud) -> PathBuf {
    shared_config_on(
        &root.join(name),
        name,
        database,
        &sim.cloud_config(),
        FAILOVER_APPLIER,
    )
}

/// The plan's history has a row whose reason contains `text`.
fn assert_history_says(api: &Daemon, plan: &str, text: &str) {
    let history = api.get(&format!("/v1/action_plans/{plan}/history"))["history"].clone();
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["reason"].as_str().unwrap().contains(text)),
        "{history}"
    );
}

/// An applier killed with -9 mid-migration, and a cancel sent right after:
/// on PostgreSQL the other applier learns within seconds that the dead
/// one's session ended (its presence lock is free), not when the 60 s lease
/// runs out, takes the plan over and aborts the migration.
#[cfg_attr(
    not(test_postgres),
    ignore = "needs PostgreSQL: set WATCHER_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432 (.ci/run does)"
)]
#[test]
fn a_killed_appliers_plan_is_taken_over_in_seconds_and_a_cancel_meanwhile_settles() {
    require_postgres();
    let root = temp_dir("pg-presence");
    let sim = SimCloud::start(&scenario_file(
        &root,
        "live_migration_secs = 60.0\nabort_secs = 0.2",
        "",
    ));
    let database = postgres_database(&root.join("watcher.db"));
    let config = |name: &str| failover_part(&root, name, &database, &sim);
    let api = Daemon::start_command(&root.join("api-1"), config("api-1"), None, Some("api"));
    let _de = Part::start("decision-engine", &config("de-1"));
    let mut appliers = [
        Part::start("applier", &config("ap-1")),
        Part::start("applier", &config("ap-2")),
    ];
    let plan = running_live_migration(&api, &sim);
    let owner = api.plan(&plan)["hostname"].as_str().unwrap().to_string();
    let (dead, survivor) = if owner == "ap-1" {
        (0, "ap-2")
    } else {
        (1, "ap-1")
    };
    appliers[dead].kill9();
    let killed = Instant::now();
    assert_eq!(api.patch_state(&plan, "CANCELLING").0, 200);
    let p = wait_for(Duration::from_secs(30), || {
        let p = api.plan(&plan);
        ["CANCELLED", "FAILED", "SUCCEEDED"]
            .contains(&p["state"].as_str().unwrap())
            .then_some(p)
    });
    let took = killed.elapsed();
    assert_eq!(p["state"], "CANCELLED", "{p}");
    assert_eq!(p["hostname"], survivor);
    // Two looks a second apart and the abort: far below the 60 s lease.
    assert!(took < Duration::from_secs(10), "settled after {took:?}");
    assert_history_says(&api, &plan, &format!("applier {owner} is gone"));
    // The migration was aborted, not started again.
    let ops = sim.operations();
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert!(ops[0]["abort_requested_at"].as_f64().is_some(), "{ops:?}");
    assert_history_unbroken(&api, &plan);
}

/// A split deployment on PostgreSQL (API, decision engine, applier
/// `ap-cut`) whose applier reaches the database through a [`CutProxy`];
/// `other` starts a second applier, `ap-2`, that reaches it directly.
struct BehindProxy {
    sim: SimCloud,
    proxy: CutProxy,
    api: Daemon,
    _de: Part,
    cut: Part,
    other: Box<dyn Fn() -> Part>,
}

impl BehindProxy {
    fn start(name: &str, scenario: &str, applier: &'static str) -> BehindProxy {
        let root = temp_dir(name);
        let sim = SimCloud::start(&scenario_file(&root, scenario, ""));
        let database = postgres_database(&root.join("watcher.db"));
        let server = postgres_server();
        let authority = server.rsplit('@').next().unwrap().to_string();
        let proxy = CutProxy::start(&authority);
        proxy.set_up(true);
        let (cloud, api_dir) = (sim.cloud_config(), root.join("api-1"));
        let config = move |name: &str, database: &str| {
            shared_config_on(&root.join(name), name, database, &cloud, applier)
        };
        let api = Daemon::start_command(&api_dir, config("api-1", &database), None, Some("api"));
        let _de = Part::start("decision-engine", &config("de-1", &database));
        let through_proxy = database.replacen(&authority, &format!("127.0.0.1:{}", proxy.port), 1);
        let cut = Part::start("applier", &config("ap-cut", &through_proxy));
        let other = Box::new(move || Part::start("applier", &config("ap-2", &database)));
        BehindProxy {
            sim,
            proxy,
            api,
            _de,
            cut,
            other,
        }
    }
}

/// The network between an applier and PostgreSQL cut mid-migration (both
/// ends see it): the server ends the applier's sessions, another applier
/// takes the plan over in seconds and follows the migration to its end;
/// once the network is back the cut applier starts nothing of it again.
#[cfg_attr(
    not(test_postgres),
    ignore = "needs PostgreSQL: set WATCHER_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432 (.ci/run does)"
)]
#[test]
fn a_network_cut_hands_the_plan_to_another_applier_and_never_to_both() {
    require_postgres();
    // Every field bound: one left to `..` would be dropped (its process
    // killed) at the end of this statement.
    let BehindProxy {
        sim,
        proxy,
        api,
        _de,
        cut: _cut,
        other,
    } = BehindProxy::start("pg-cut", "live_migration_secs = 8.0", FAILOVER_APPLIER);
    let plan = running_live_migration(&api, &sim);
    assert_eq!(api.plan(&plan)["hostname"], "ap-cut");
    let _other = other();

    proxy.set_up(false);
    let cut = Instant::now();
    wait_for(Duration::from_secs(20), || {
        (api.plan(&plan)["hostname"] == "ap-2").then_some(())
    });
    assert!(
        cut.elapsed() < Duration::from_secs(10),
        "{:?}",
        cut.elapsed()
    );
    let p = api.wait_state(&plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "SUCCEEDED", "{p}");
    proxy.set_up(true);
    // The cut applier reconnects and finds the plan someone else's: the
    // migration ran once, and every action change after the takeover was
    // ap-2's.
    assert_eq!(sim.operations().len(), 1, "{:?}", sim.operations());
    assert_history_unbroken(&api, &plan);
    assert_history_says(&api, &plan, "applier ap-cut is gone");
}

/// The network between an applier and PostgreSQL silently drops everything
/// (a blackhole, or a proxy that hangs): no connection closes, so the server
/// still holds the cut applier's presence lock, and only the lease can hand
/// the plan over. The cut applier must stop running it when its lease
/// lapses: here a sleep it was running is run again by the other applier
/// after the takeover, and the cut one's own sleep, which ends during the
/// cut, must not be recorded when the network comes back (it would mark the
/// other applier's run SUCCEEDED before that run ended).
#[cfg_attr(
    not(test_postgres),
    ignore = "needs PostgreSQL: set WATCHER_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432 (.ci/run does)"
)]
#[test]
fn a_silent_blackhole_stops_the_cut_applier_when_its_lease_lapses() {
    require_postgres();
    let BehindProxy {
        sim: _sim,
        proxy,
        api,
        _de,
        cut,
        other,
    } = BehindProxy::start(
        "pg-blackhole",
        "",
        "[applier]\nsweep_interval_secs = 0.5\npoll_interval_ms = 20\n\
         shutdown_grace_secs = 0.5\nlease_secs = 3",
    );
    const SLEEP: f64 = 8.0;
    let plan =
        api.actuator(json!([{"action_type": "sleep", "input_parameters": {"duration": SLEEP}}]));
    api.start_plan(&plan);
    api.wait_action_state(&plan, "sleep", "ONGOING");
    // The cut applier's sleep began before this: it ends before SLEEP from now.
    let cut_sleep_over = Instant::now() + Duration::from_secs_f64(SLEEP);
    assert_eq!(api.plan(&plan)["hostname"], "ap-cut");
    let _other = other();

    proxy.freeze(true);
    let frozen = Instant::now();
    wait_for(Duration::from_secs(30), || {
        (api.plan(&plan)["hostname"] == "ap-2").then_some(())
    });
    assert!(
        frozen.elapsed() < Duration::from_secs(15),
        "{:?}",
        frozen.elapsed()
    );
    wait_for(Duration::from_secs(10), || {
        cut.log()
            .contains("could not renew the lease")
            .then_some(())
    });
    // Back once the cut applier's own sleep is over, while the other's runs.
    wait_for(Duration::from_secs(30), || {
        (Instant::now() >= cut_sleep_over).then_some(())
    });
    assert_eq!(api.actions(&plan)[0]["state"], "ONGOING");
    proxy.freeze(false);
    let p = api.wait_state(&plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "SUCCEEDED", "{p}");
    assert_history_unbroken(&api, &plan);
    // The SUCCEEDED came from the other applier's sleep: SLEEP after its start.
    let history = api.get(&format!("/v1/action_plans/{plan}/history"))["history"]
        .as_array()
        .unwrap()
        .clone();
    let at = |to: &str| {
        let row = history
            .iter()
            .rev()
            .find(|h| h["resource"] == "action" && h["to_state"] == to)
            .unwrap_or_else(|| panic!("no action row to {to}: {history:?}"));
        chrono::DateTime::parse_from_rfc3339(row["at"].as_str().unwrap()).unwrap()
    };
    let ran = (at("SUCCEEDED") - at("ONGOING")).as_seconds_f64();
    assert!(
        ran >= SLEEP - 0.1,
        "the action was recorded SUCCEEDED {ran:.1} s after the last start: \
         the cut applier's run was recorded over the other's; {history:?}"
    );
    assert_history_says(&api, &plan, "the lease of applier ap-cut expired");
}
