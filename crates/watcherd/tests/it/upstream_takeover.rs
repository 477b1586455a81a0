//! Taking over an upstream Watcher 17 database in place: `watcherd db
//! upgrade` on the MariaDB database upstream's `watcher.conf` names, holding
//! upstream's schema (as its migrations made it) and objects of every kind
//! and state (`tests/fixtures/upstream-watcher-17-objects.sql`). Refused while
//! upstream still runs and at a revision watcherd does not know, with
//! nothing changed; then every object served by watcherd as upstream
//! served it, the plan upstream left ONGOING finished by watcherd's
//! recovery, and upstream's own tables untouched throughout.

use watcher_testkit as common;

use common::*;
use mysql::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::process::Command;

const OBJECTS: &str = include_str!("../fixtures/upstream-watcher-17-objects.sql");

/// A fresh database on the test server holding the fixture, and the
/// upstream `watcher.conf` naming it (written in `root`).
fn upstream_database(root: &Path) -> (String, PathBuf) {
    let url = mariadb_database(&root.join("watcher.db"));
    let mut conn = mysql::Conn::new(mysql::Opts::from_url(&url).unwrap()).unwrap();
    conn.query_drop(UPSTREAM_WATCHER_17_SCHEMA).unwrap();
    conn.query_drop(OBJECTS).unwrap();
    let conf = root.join("watcher.conf");
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\nenable_authentication = false\nhost = new-controller\nlog_dir = {}\n\
             [database]\nconnection = {}?charset=utf8\n[api]\nhost = 127.0.0.1\nport = 0\n",
            root.display(),
            url.replace("mysql://", "mysql+pymysql://")
        ),
    )
    .unwrap();
    (url, conf)
}

fn sql(url: &str, statement: &str) -> Vec<mysql::Row> {
    let mut conn = mysql::Conn::new(mysql::Opts::from_url(url).unwrap()).unwrap();
    conn.query(statement).unwrap()
}

fn count(url: &str, table: &str) -> i64 {
    let rows = sql(url, &format!("SELECT COUNT(*) FROM {table}"));
    rows[0].get(0).unwrap()
}

/// `watcherd db upgrade --config-file CONF ARGS`: success, stdout, stderr.
fn db_upgrade(conf: &Path, args: &[&str]) -> (bool, String, String) {
    watcherd_db(conf, "upgrade", args)
}

/// `watcherd db COMMAND --config-file CONF ARGS`: success, stdout, stderr.
fn watcherd_db(conf: &Path, command: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(watcherd_binary())
        .args(["db", command, "--config-file"])
        .arg(conf)
        .args(args)
        .env_remove("WATCHER_CONFIG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Upstream's tables, checksummed.
fn upstream_checksum(url: &str) -> String {
    sql(
        url,
        "CHECKSUM TABLE goals, strategies, audit_templates, audits, action_plans, actions, \
         efficacy_indicators, services, alembic_version",
    )
    .iter()
    .map(|r| format!("{:?}", r.get::<Option<i64>, _>(1).flatten()))
    .collect::<Vec<_>>()
    .join(",")
}

#[cfg_attr(
    not(test_mariadb),
    ignore = "needs a MariaDB server: set WATCHER_TEST_MARIADB=mysql://root@127.0.0.1:3306 (.ci/run does)"
)]
#[test]
fn an_upstream_watcher_17_database_is_taken_over_whole_and_upstream_tables_are_untouched() {
    let root = temp_dir("upstream-takeover");
    let (url, conf) = upstream_database(&root);
    // The RECOMMENDED plan is fresh (an old one is superseded on sight, as
    // upstream's expiry would).
    sql(
        &url,
        "UPDATE action_plans SET created_at = UTC_TIMESTAMP() WHERE id = 1",
    );

    // Upstream still runs: its applier reported a moment ago.
    sql(
        &url,
        "UPDATE services SET last_seen_up = UTC_TIMESTAMP() WHERE id = 1",
    );
    let (ok, _, err) = db_upgrade(&conf, &[]);
    assert!(!ok, "took over while upstream ran: {err}");
    assert!(
        err.contains("upstream Watcher still runs")
            && err.contains("watcher-applier on upstream-controller")
            && err.contains("Nothing was copied"),
        "{err}"
    );
    assert_eq!(count(&url, "watcherd_audits"), 0);
    sql(
        &url,
        "UPDATE services SET last_seen_up = '2026-11-07 02:00:00' WHERE id = 1",
    );
    let before = upstream_checksum(&url);

    let (ok, out, err) = db_upgrade(&conf, &[]);
    assert!(ok, "{out}{err}");
    for line in [
        "audit templates          2",
        "audits                   4",
        "action plans             5",
        "actions                  9",
        "services                 2",
        "scoring engines          2",
        "(5 of them soft-deleted, and kept so)",
        "e5c0ffee-0000-4000-8000-000000000004",
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}");
    }
    // A CONTINUOUS audit keeps its schedule (read before watcherd runs it).
    let next: i64 = sql(
        &url,
        "SELECT next_run_time FROM watcherd_audits WHERE uuid = 'd4c0ffee-0000-4000-8000-000000000002'",
    )[0]
    .get(0)
    .unwrap();
    assert_eq!(
        chrono::DateTime::from_timestamp_micros(next)
            .unwrap()
            .to_rfc3339(),
        "2026-11-07T03:00:00+00:00"
    );
    // Once only: a second run copies nothing.
    let (ok, again, _) = db_upgrade(&conf, &[]);
    assert!(
        ok && again.contains("taken over on") && again.contains("nothing copied"),
        "{again}"
    );

    let d = Daemon::start_bare(&root, &["--config-file".as_ref(), conf.as_os_str()]);
    // Templates, audits, plans and actions, field by field.
    let t = d.get("/v1/audit_templates/c3c0ffee-0000-4000-8000-000000000001");
    assert_eq!(t["name"], "nightly-dummy");
    assert_eq!(t["description"], "Nightly rebalance");
    assert_eq!(t["goal_uuid"], "a1c0ffee-0000-4000-8000-000000000001");
    assert_eq!(t["strategy_uuid"], "b2c0ffee-0000-4000-8000-000000000001");
    assert_eq!(t["created_at"], "2026-11-03T10:00:00+00:00");
    let live_templates = d.get("/v1/audit_templates")["audit_templates"].clone();
    assert_eq!(
        live_templates.as_array().unwrap().len(),
        1,
        "{live_templates}"
    );
    assert_eq!(
        d.get("/v1/goals/dummy")["uuid"],
        "a1c0ffee-0000-4000-8000-000000000001"
    );
    assert_eq!(
        d.get("/v1/strategies/dummy")["uuid"],
        "b2c0ffee-0000-4000-8000-000000000001"
    );

    // The scoring engines are built in, under upstream's UUIDs.
    let scorer = d.get("/v1/scoring_engines/5c0fe000-0000-4000-8000-000000000001");
    assert_eq!(scorer["name"], "dummy_scorer");
    assert_eq!(
        d.get("/v1/scoring_engines/dummy_avg_scorer")["uuid"],
        "5c0fe000-0000-4000-8000-000000000002"
    );
    let continuous = d.get("/v1/audits/d4c0ffee-0000-4000-8000-000000000002");
    assert_eq!(continuous["audit_type"], "CONTINUOUS");
    assert_eq!(continuous["interval"], "3600");
    assert_eq!(continuous["auto_trigger"], true);
    assert_eq!(continuous["parameters"]["para2"], "hi");
    // ... and is run by watcherd's decision engine, which schedules the next.
    wait_for(std::time::Duration::from_secs(10), || {
        let a = d.get("/v1/audits/d4c0ffee-0000-4000-8000-000000000002");
        (a["next_run_time"] != "2026-11-07T03:00:00" && !a["next_run_time"].is_null()).then_some(())
    });
    let failed = d.get("/v1/audits/d4c0ffee-0000-4000-8000-000000000004");
    assert_eq!(failed["state"], "FAILED");
    assert_eq!(failed["status_message"], "compute model not available");
    assert_eq!(failed["goal_name"], "server_consolidation");
    let audits = d.get("/v1/audits")["audits"].clone();
    assert!(
        audits
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["uuid"] != "d4c0ffee-0000-4000-8000-000000000003"),
        "a deleted audit is listed: {audits}"
    );

    let recommended = d.get("/v1/action_plans/e5c0ffee-0000-4000-8000-000000000001");
    assert_eq!(recommended["state"], "RECOMMENDED");
    let values: Vec<f64> = recommended["efficacy_indicators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, [1.5, 4.0]);
    assert_eq!(
        recommended["global_efficacy"][0]["name"],
        "number_of_actions"
    );
    let cancelled = d.get("/v1/actions/07c0ffee-0000-4000-8000-000000000005");
    assert_eq!(cancelled["state"], "CANCELLED");
    assert_eq!(cancelled["status_message"], "Action was cancelled");
    assert_eq!(
        cancelled["parents"][0],
        "07c0ffee-0000-4000-8000-000000000004"
    );
    assert_eq!(cancelled["input_parameters"]["duration"], 30.0);
    let done = d.get("/v1/action_plans/e5c0ffee-0000-4000-8000-000000000002");
    assert_eq!(done["state"], "SUCCEEDED");
    assert_eq!(done["hostname"], "upstream-controller");
    let services = d.get("/v1/services")["services"].clone();
    assert!(
        services
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "watcher-applier" && s["host"] == "upstream-controller"),
        "{services}"
    );

    // The plan upstream left ONGOING: taken over by recovery, its running
    // action found without effect and run again, the rest run.
    let ongoing = "e5c0ffee-0000-4000-8000-000000000004";
    assert_eq!(
        d.wait_state(ongoing, &["SUCCEEDED", "FAILED", "CANCELLED"])["state"],
        "SUCCEEDED"
    );
    assert_history_unbroken(&d, ongoing);
    let history = d.get(&format!("/v1/action_plans/{ongoing}/history"))["history"].clone();
    let rows = history.as_array().unwrap();
    assert_eq!(rows[0]["actor"], "upstream", "{history}");
    assert_eq!(rows[0]["to_state"], "ONGOING", "{history}");
    assert!(rows.iter().any(|r| r["actor"] == "recovery"), "{history}");
    // The first action, SUCCEEDED under upstream, was not run again.
    assert!(
        !rows
            .iter()
            .any(|r| r["uuid"] == "07c0ffee-0000-4000-8000-000000000006"
                && r["to_state"] == "ONGOING"),
        "{history}"
    );

    // A RECOMMENDED plan taken over runs under watcherd.
    d.start_plan("e5c0ffee-0000-4000-8000-000000000001");
    assert_eq!(
        d.wait_state(
            "e5c0ffee-0000-4000-8000-000000000001",
            &["SUCCEEDED", "FAILED"]
        )["state"],
        "SUCCEEDED"
    );
    assert_eq!(upstream_checksum(&url), before, "upstream's tables changed");
    let log = d.log();
    assert!(log.contains("whose objects were taken over"), "{log}");
    assert!(!log.contains(" 500 "), "{log}");
}

#[cfg_attr(
    not(test_mariadb),
    ignore = "needs a MariaDB server: set WATCHER_TEST_MARIADB=mysql://root@127.0.0.1:3306 (.ci/run does)"
)]
#[test]
fn an_upstream_revision_watcherd_does_not_know_is_refused_and_nothing_changes() {
    let root = temp_dir("upstream-takeover-unknown");
    let (url, conf) = upstream_database(&root);
    sql(
        &url,
        "UPDATE alembic_version SET version_num = '0123456789ab'",
    );
    let before = upstream_checksum(&url);
    let (ok, out, err) = db_upgrade(&conf, &["--force"]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("alembic revision 0123456789ab")
            && err.contains("watcher-db-manage upgrade")
            && err.contains("Nothing was copied"),
        "{err}"
    );
    assert_eq!(count(&url, "watcherd_audits"), 0);
    assert_eq!(count(&url, "watcherd_upstream_syncs"), 0);
    assert_eq!(upstream_checksum(&url), before);
    // Malformed rows are refused whole too: one action of a state nobody
    // knows leaves watcherd's tables empty.
    sql(
        &url,
        "UPDATE alembic_version SET version_num = 'f56ba02662b4'; \
         UPDATE actions SET state = 'HALFWAY' WHERE id = 8",
    );
    let (ok, _, err) = db_upgrade(&conf, &[]);
    assert!(!ok);
    assert!(
        err.contains("07c0ffee-0000-4000-8000-000000000008") && err.contains("\"HALFWAY\""),
        "{err}"
    );
    assert_eq!(count(&url, "watcherd_audits"), 0);
    assert_eq!(count(&url, "watcherd_upstream_syncs"), 0);
}

#[cfg_attr(
    not(test_mariadb),
    ignore = "needs a MariaDB server: set WATCHER_TEST_MARIADB=mysql://root@127.0.0.1:3306 (.ci/run does)"
)]
#[test]
fn the_way_back_writes_what_watcherd_did_into_upstreams_tables_and_comes_again() {
    let root = temp_dir("upstream-way-back");
    let (url, conf) = upstream_database(&root);
    // Upstream's CONTINUOUS audit suspended: its runs (auto-triggered
    // plans) would otherwise come between this test's audits and their
    // plans (an audit made while a plan runs ends without one).
    sql(&url, "UPDATE audits SET state = 'SUSPENDED' WHERE id = 2");
    let (ok, out, err) = db_upgrade(&conf, &[]);
    assert!(ok, "{out}{err}");
    let mut d = Daemon::start_bare(&root, &["--config-file".as_ref(), conf.as_os_str()]);
    // What an operator does meanwhile: a new audit's plan run, another
    // cancelled, a template renamed, another deleted, and the plan
    // upstream left running finished (first: an audit made while a plan
    // runs ends without one, as upstream's).
    let ongoing = "e5c0ffee-0000-4000-8000-000000000004";
    assert_eq!(
        d.wait_state(ongoing, &["SUCCEEDED", "FAILED"])["state"],
        "SUCCEEDED"
    );
    let ran = d.recommend("dummy", "dummy", serde_json::json!({}));
    d.start_plan(&ran);
    assert_eq!(
        d.wait_state(&ran, &["SUCCEEDED", "FAILED"])["state"],
        "SUCCEEDED"
    );
    let cancelled = d.recommend("dummy", "dummy", serde_json::json!({}));
    assert_eq!(d.patch_state(&cancelled, "CANCELLED").0, 200);
    let (status, _) = d.req(
        "PATCH",
        "/v1/audit_templates/c3c0ffee-0000-4000-8000-000000000001",
        Some(&serde_json::json!([{"op": "replace", "path": "/name", "value": "renamed-by-watcherd"}])),
    );
    assert_eq!(status, 200);
    let (status, template) = d.req(
        "POST",
        "/v1/audit_templates",
        Some(&serde_json::json!({"name": "short-lived", "goal": "dummy"})),
    );
    assert_eq!(status, 201, "{template}");
    let short_lived = template["uuid"].as_str().unwrap().to_string();
    let (status, _) = d.req(
        "DELETE",
        &format!("/v1/audit_templates/{short_lived}"),
        None,
    );
    assert_eq!(status, 204);
    let served = d.get(&format!("/v1/action_plans/{ran}"));
    d.terminate();

    // Refused while watcherd's services reported a moment ago.
    let export = |args: &[&str]| watcherd_db(&conf, "export-upstream", args);
    let (ok, _, err) = export(&[]);
    assert!(
        !ok && err.contains("watcherd still runs") && err.contains("Nothing was written"),
        "{err}"
    );
    let (ok, out, err) = export(&["--force"]);
    assert!(ok, "{out}{err}");

    let one = |q: &str| -> Option<String> {
        sql(&url, q)
            .first()
            .and_then(|r| r.get::<Option<String>, _>(0).flatten())
    };
    assert_eq!(
        one(&format!(
            "SELECT state FROM action_plans WHERE uuid = '{ran}'"
        ))
        .as_deref(),
        Some("SUCCEEDED")
    );
    assert_eq!(
        one(&format!(
            "SELECT state FROM action_plans WHERE uuid = '{cancelled}'"
        ))
        .as_deref(),
        Some("CANCELLED")
    );
    assert_eq!(
        one(&format!(
            "SELECT state FROM action_plans WHERE uuid = '{ongoing}'"
        ))
        .as_deref(),
        Some("SUCCEEDED")
    );
    // The new plan's audit points at upstream's own goal row, its actions
    // at the plan, in upstream's words.
    assert_eq!(
        one(&format!(
            "SELECT g.uuid FROM action_plans p JOIN audits a ON a.id = p.audit_id \
             JOIN goals g ON g.id = a.goal_id WHERE p.uuid = '{ran}'"
        ))
        .as_deref(),
        Some("a1c0ffee-0000-4000-8000-000000000001")
    );
    let actions = served["uuid"].as_str().map(|_| {
        sql(
            &url,
            &format!(
                "SELECT COUNT(*) FROM actions x JOIN action_plans p ON p.id = x.action_plan_id \
                 WHERE p.uuid = '{ran}' AND x.state = 'SUCCEEDED' AND x.deleted = 0"
            ),
        )[0]
        .get::<i64, _>(0)
        .unwrap()
    });
    assert!(actions.unwrap() > 0);
    assert_eq!(
        one("SELECT name FROM audit_templates WHERE uuid = 'c3c0ffee-0000-4000-8000-000000000001'")
            .as_deref(),
        Some("renamed-by-watcherd")
    );
    // A deletion as upstream writes one: deleted_at, and `deleted` its id.
    let deleted: Vec<mysql::Row> = sql(
        &url,
        &format!("SELECT deleted = id, deleted_at IS NOT NULL FROM audit_templates WHERE uuid = '{short_lived}'"),
    );
    assert_eq!(deleted[0].get::<i64, _>(0), Some(1));
    assert_eq!(deleted[0].get::<i64, _>(1), Some(1));
    // Rows upstream had and nobody changed are as they were.
    assert_eq!(
        one("SELECT status_message FROM actions WHERE uuid = '07c0ffee-0000-4000-8000-000000000005'")
            .as_deref(),
        Some("Action was cancelled")
    );

    // And forth again: after a return to upstream, `db upgrade` takes its
    // objects over anew (the last copy was the other way).
    sql(
        &url,
        "UPDATE audit_templates SET description = 'changed under upstream' \
         WHERE uuid = 'c3c0ffee-0000-4000-8000-000000000001'",
    );
    let (ok, out, err) = db_upgrade(&conf, &[]);
    assert!(ok && out.contains("Taken over"), "{out}{err}");
    let d = Daemon::start_bare(&root, &["--config-file".as_ref(), conf.as_os_str()]);
    let t = d.get("/v1/audit_templates/c3c0ffee-0000-4000-8000-000000000001");
    assert_eq!(t["description"], "changed under upstream");
    assert_eq!(t["name"], "renamed-by-watcherd");
    assert_eq!(d.plan(&ran)["state"], "SUCCEEDED");
    assert_history_unbroken(&d, &ran);
}
