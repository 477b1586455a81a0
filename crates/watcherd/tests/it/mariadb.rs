//! MariaDB as upstream Watcher's deployments run it: a server that dies
//! mid-plan and comes back, TLS verified against the deployment's CA (and
//! refused without it), and upstream's own `watcher.conf` naming a database
//! that holds upstream Watcher's tables, which watcherd leaves alone.
//!
//! Each test runs a MariaDB server of its own (mariadb-install-db in a
//! temporary directory, its own port). The store's suites run on the
//! machine's server too (`WATCHER_TEST_DATABASE=mysql` in `.ci/run`).

use watcher_testkit as common;

use common::*;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `watcherd ARGS` that must fail to start: its one-line error.
fn start_error(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(watcherd_binary())
        .args(args)
        .env_remove("WATCHER_CONFIG")
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "watcherd {args:?} started: {stderr}");
    stderr
}

#[cfg_attr(
    not(test_mariadb),
    ignore = "needs MariaDB's server programs: set WATCHER_TEST_MARIADB=mysql://root@127.0.0.1:3306 (.ci/run does)"
)]
#[test]
fn a_mariadb_server_killed_mid_plan_answers_503_meanwhile_and_the_plan_still_finishes() {
    let root = temp_dir("mariadb-restart");
    let db = PrivateMariadb::start(&root);
    let dir = root.join("watcherd");
    std::fs::create_dir_all(&dir).unwrap();
    let d = Daemon::start_with_config(
        &dir,
        write_config_on(&dir, &db.url("watcher", "charset=utf8"), "", "", ""),
        None,
    );
    // InnoDB recovers what was committed; every process reconnects.
    plan_through_a_database_outage(&d, || db.kill(), || db.run());
}

#[cfg_attr(
    not(test_mariadb),
    ignore = "needs MariaDB's server programs: set WATCHER_TEST_MARIADB=mysql://root@127.0.0.1:3306 (.ci/run does)"
)]
#[test]
fn tls_to_mariadb_is_verified_against_the_ca_and_a_wrong_or_missing_one_is_refused() {
    let root = temp_dir("mariadb-tls");
    let ca = TestCa::new(&root, "mariadb");
    let other = TestCa::new(&root, "other");
    let db = PrivateMariadb::start_with(&root, Some(&ca));
    // The server takes TLS connections only; the plain client of the kit
    // talks to it through its socket.
    let plain = db.url("watcher", "");
    let verified = format!(
        "{plain}?charset=utf8&ssl_ca={}&ssl_verify_identity=true",
        ca.ca_cert.display()
    );

    let e = start_error(&root, &["--database", &plain, "--data-dir", "."]);
    assert!(e.contains("cannot connect to MariaDB"), "{e}");
    // MariaDB says no more than "access denied"; watcherd says what to try.
    assert!(e.contains("add ssl_ca=FILE"), "{e}");
    assert!(!e.contains("t-pass"), "the password stays out: {e}");
    let wrong = format!("{plain}?ssl_ca={}", other.ca_cert.display());
    let e = start_error(&root, &["--database", &wrong, "--data-dir", "."]);
    assert!(e.contains("cannot connect to MariaDB"), "{e}");
    assert!(e.to_lowercase().contains("certificate"), "{e}");

    let dir = root.join("watcherd");
    std::fs::create_dir_all(&dir).unwrap();
    let d = Daemon::start_with_config(&dir, write_config_on(&dir, &verified, "", "", ""), None);
    let plan = d.recommend("dummy", "dummy", json!({"para1": 1}));
    d.start_plan(&plan);
    assert_eq!(
        d.wait_state(&plan, &["SUCCEEDED", "FAILED"])["state"],
        "SUCCEEDED"
    );
    // Every connection of watcherd's is encrypted (the server would not
    // take another), and there are some.
    let sessions: i64 = db
        .sql("SELECT COUNT(*) FROM information_schema.processlist WHERE db = 'watcher'")
        .trim()
        .parse()
        .unwrap();
    assert!(sessions >= 2, "{sessions} sessions");
}

#[cfg_attr(
    not(test_mariadb),
    ignore = "needs MariaDB's server programs: set WATCHER_TEST_MARIADB=mysql://root@127.0.0.1:3306 (.ci/run does)"
)]
#[test]
fn upstreams_watcher_conf_names_the_database_and_upstreams_tables_are_left_alone() {
    let root = temp_dir("mariadb-upstream-conf");
    let db = PrivateMariadb::start(&root);
    let url = db.url("watcher", "");
    // Tables by upstream Watcher's names, as its migrations leave them.
    db.sql(
        "CREATE TABLE watcher.audits (id INT PRIMARY KEY, uuid VARCHAR(36), name VARCHAR(63)); \
         INSERT INTO watcher.audits VALUES (7, 'a5b8e2b4-0000-4000-8000-000000000007', 'upstream-audit'); \
         CREATE TABLE watcher.action_plans (id INT PRIMARY KEY, state VARCHAR(20)); \
         INSERT INTO watcher.action_plans VALUES (3, 'RECOMMENDED'); \
         CREATE TABLE watcher.alembic_version (version_num VARCHAR(32) NOT NULL); \
         INSERT INTO watcher.alembic_version VALUES ('d098df6021e2')",
    );
    let before = db.sql("CHECKSUM TABLE watcher.audits, watcher.action_plans");

    let conf = root.join("watcher.conf");
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\nenable_authentication = false\nhost = conf-host\nlog_dir = {}\n\
             [database]\nconnection = {}\n[api]\nhost = 127.0.0.1\nport = 0\n",
            root.display(),
            url.replace("mysql://", "mysql+pymysql://") + "?charset=utf8"
        ),
    )
    .unwrap();
    let d = Daemon::start_bare(
        &root,
        &[
            "--config-file".as_ref(),
            conf.as_os_str(),
            "--data-dir".as_ref(),
            root.as_os_str(),
        ],
    );
    let plan = d.recommend("dummy", "dummy", json!({}));
    d.start_plan(&plan);
    assert_eq!(
        d.wait_state(&plan, &["SUCCEEDED", "FAILED"])["state"],
        "SUCCEEDED"
    );
    // Two audits of watcherd's, none of upstream's among them.
    assert!(d.get("/v1/audits")["audits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["name"] != "upstream-audit"));

    let tables = db.sql("SHOW TABLES FROM watcher");
    assert!(
        tables.lines().any(|t| t == "watcherd_action_plans"),
        "{tables}"
    );
    assert!(
        tables.lines().any(|t| t == "watcherd_writers_lock"),
        "{tables}"
    );
    assert!(
        tables.lines().all(|t| t.starts_with("watcherd_")
            || ["audits", "action_plans", "alembic_version"].contains(&t)),
        "{tables}"
    );
    assert_eq!(
        db.sql("CHECKSUM TABLE watcher.audits, watcher.action_plans"),
        before,
        "upstream's tables are untouched"
    );
    // The operator is told that upstream's objects did not come along.
    let log = d.log();
    assert!(
        log.contains("also holds upstream Watcher's tables") && log.contains("d098df6021e2"),
        "{log}"
    );
}

#[cfg_attr(
    not(test_mariadb),
    ignore = "needs MariaDB's server programs: set WATCHER_TEST_MARIADB=mysql://root@127.0.0.1:3306 (.ci/run does)"
)]
#[test]
fn a_write_the_server_rolls_back_in_a_deadlock_is_run_again_and_the_caller_never_sees_it() {
    use mysql::prelude::Queryable;
    let root = temp_dir("mariadb-deadlock");
    let db = PrivateMariadb::start(&root);
    let url = db.url("watcher", "");
    let dir = root.join("watcherd");
    std::fs::create_dir_all(&dir).unwrap();
    let d = Daemon::start_with_config(&dir, write_config_on(&dir, &url, "", "", ""), None);
    let plan = d.recommend("dummy", "dummy", json!({}));
    let audit = d.plan(&plan)["audit_uuid"].as_str().unwrap().to_string();

    // Another client's transaction, heavier than any of watcherd's (InnoDB
    // rolls back the lighter of two deadlocked transactions), holds the
    // audit's row.
    let connect = || mysql::Conn::new(mysql::Opts::from_url(&url).unwrap()).unwrap();
    let mut other = connect();
    other
        .query_drop("CREATE TABLE scratch (n INT) ENGINE=InnoDB")
        .unwrap();
    other.query_drop("START TRANSACTION").unwrap();
    other
        .query_drop("INSERT INTO scratch SELECT seq FROM seq_1_to_20000")
        .unwrap();
    other
        .query_drop(format!(
            "SELECT id FROM watcherd_audits WHERE uuid = '{audit}' FOR UPDATE"
        ))
        .unwrap();
    std::thread::scope(|s| {
        let rename = s.spawn(|| {
            d.req(
                "PATCH",
                &format!("/v1/audits/{audit}"),
                Some(&json!([{"op": "replace", "path": "/name", "value": "renamed"}])),
            )
        });
        // watcherd's writer holds the writers' lock and waits for the row.
        let mut look = connect();
        wait_for(Duration::from_secs(10), || {
            let waiting: Option<i64> = look
                .query_first(
                    "SELECT COUNT(*) FROM information_schema.processlist \
                     WHERE state = 'Updating' AND info LIKE 'UPDATE watcherd_audits%'",
                )
                .unwrap();
            (waiting == Some(1)).then_some(())
        });
        // Now the other transaction wants the writers' lock: a deadlock.
        // InnoDB rolls watcherd's group back; the other goes on and commits.
        other
            .query_drop("UPDATE watcherd_writers_lock SET locks = locks + 1 WHERE id = 1")
            .unwrap();
        other.query_drop("COMMIT").unwrap();
        let (status, body) = rename.join().unwrap();
        assert_eq!(status, 200, "{body}; log: {}", d.log());
        assert_eq!(body["name"], "renamed");
    });
    assert!(
        d.log()
            .contains("the server rolled the group back; running it again"),
        "{}",
        d.log()
    );
    assert_eq!(d.get(&format!("/v1/audits/{audit}"))["name"], "renamed");
}

#[cfg_attr(
    not(test_mariadb),
    ignore = "needs MariaDB's server programs: set WATCHER_TEST_MARIADB=mysql://root@127.0.0.1:3306 (.ci/run does)"
)]
#[test]
fn connections_the_server_dropped_are_replaced_under_the_requests_that_meet_them() {
    let root = temp_dir("mariadb-killed-sessions");
    let db = PrivateMariadb::start(&root);
    let dir = root.join("watcherd");
    std::fs::create_dir_all(&dir).unwrap();
    let d = Daemon::start_with_config(
        &dir,
        write_config_on(&dir, &db.url("watcher", ""), "", "", ""),
        None,
    );
    let plan = d.recommend("dummy", "dummy", json!({}));
    let audit = d.plan(&plan)["audit_uuid"].as_str().unwrap().to_string();
    // Fill the read pool: parallel reads each hold a connection.
    let read_all = || {
        std::thread::scope(|s| {
            let reads: Vec<_> = (0..8)
                .map(|_| s.spawn(|| d.req("GET", &format!("/v1/action_plans/{plan}"), None)))
                .collect();
            reads
                .into_iter()
                .map(|r| r.join().unwrap().0)
                .collect::<Vec<u16>>()
        })
    };
    assert!(read_all().iter().all(|s| *s == 200));

    // The server ends every session of watcherd's, as a restart or a
    // failover would; the next requests meet dead connections.
    let sessions = db.sql("SELECT id FROM information_schema.processlist WHERE user = 'watcher'");
    assert!(sessions.lines().count() >= 3, "{sessions}");
    for id in sessions.lines() {
        db.sql(&format!("KILL CONNECTION {id}"));
    }
    let statuses = read_all();
    assert!(
        statuses.iter().all(|s| *s == 200),
        "{statuses:?}; log: {}",
        d.log()
    );
    let (status, body) = d.req(
        "PATCH",
        &format!("/v1/audits/{audit}"),
        Some(&json!([{"op": "replace", "path": "/name", "value": "after-kill"}])),
    );
    assert_eq!(status, 200, "{body}; log: {}", d.log());
}
