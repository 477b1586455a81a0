//! The databases the black-box suites run on: a SQLite file, or with
//! `WATCHER_TEST_DATABASE` a fresh database on the machine's PostgreSQL or
//! MariaDB; SQL run behind watcherd's back; and a database outage in the
//! middle of a plan, for each server the tests start of their own.

use crate::{assert_history_unbroken, wait_for, Daemon};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// The database URL for the database file `db` would be: that SQLite file,
/// or with `WATCHER_TEST_DATABASE=postgres` (or `mysql`) a fresh PostgreSQL
/// (or MariaDB) database named after it (the same file, the same database,
/// so the processes of one test share it as they would share the file).
pub fn database_url(db: &Path) -> String {
    match std::env::var("WATCHER_TEST_DATABASE").as_deref() {
        Ok("postgres") => postgres_database(db),
        Ok("mysql") => mariadb_database(db),
        Ok("sqlite") | Err(_) => format!("sqlite://{}", db.display()),
        Ok(other) => panic!("WATCHER_TEST_DATABASE={other}: expected sqlite, postgres or mysql"),
    }
}

/// The name of the test database of `db` on a server: `wt_<hash>`.
fn test_database_name(db: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    db.hash(&mut h);
    format!("wt_{:016x}", h.finish())
}

/// Upstream Watcher 17.0's tables as its migrations make them, with their
/// alembic revision (for the takeover tests and the takeover benchmark).
pub const UPSTREAM_WATCHER_17_SCHEMA: &str =
    include_str!("../fixtures/upstream-watcher-17-schema.sql");

/// The MariaDB server the tests use (`WATCHER_TEST_MARIADB`, default the
/// machine's on 127.0.0.1:3306 as root).
pub fn mariadb_server() -> String {
    std::env::var("WATCHER_TEST_MARIADB").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// A fresh MariaDB database on [`mariadb_server`] named after `db`.
pub fn mariadb_database(db: &Path) -> String {
    let server = mariadb_server();
    fresh_database(db, &server, |name| {
        use mysql::prelude::Queryable;
        let mut admin =
            mysql::Conn::new(mysql::Opts::from_url(&server).unwrap()).unwrap_or_else(|e| {
                panic!("WATCHER_TEST_DATABASE=mysql, but {server} cannot be reached: {e}")
            });
        admin
            .query_drop(format!("DROP DATABASE IF EXISTS {name}"))
            .unwrap();
        admin.query_drop(format!("CREATE DATABASE {name}")).unwrap();
    })
}

/// `server/NAME`, NAME the test database of `db`, made afresh by
/// `recreate` (drop, then create) the first time this process asks: the
/// processes of one test share it, as they would share the file.
fn fresh_database(db: &Path, server: &str, recreate: impl FnOnce(&str)) -> String {
    let name = test_database_name(db);
    static CREATED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut created = CREATED.lock().unwrap_or_else(|e| e.into_inner());
    if !created.contains(&name) {
        recreate(&name);
        created.push(name.clone());
    }
    format!("{server}/{name}")
}

/// A connection to a test database on MariaDB.
fn mariadb_connection(url: &str) -> mysql::Conn {
    mysql::Conn::new(mysql::Opts::from_url(url).unwrap()).unwrap()
}

/// The PostgreSQL server the tests use (`WATCHER_TEST_POSTGRES`, default
/// the machine's on 127.0.0.1:5432).
pub fn postgres_server() -> String {
    std::env::var("WATCHER_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A fresh PostgreSQL database on [`postgres_server`] named after `db`.
pub fn postgres_database(db: &Path) -> String {
    let server = postgres_server();
    fresh_database(db, &server, |name| {
        let mut admin = postgres::Client::connect(&format!("{server}/postgres"), postgres::NoTls)
            .unwrap_or_else(|e| {
                panic!("WATCHER_TEST_DATABASE=postgres, but {server} cannot be reached: {e}")
            });
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
    })
}

/// Runs `sql` on the database of the daemon whose data is in `dir`, behind
/// its back (to stage what a crash leaves, say).
pub fn execute_sql(dir: &Path, sql: &str) {
    let url = database_url(&dir.join("watcher.db"));
    match url.strip_prefix("sqlite://") {
        Some(path) => {
            rusqlite::Connection::open(path)
                .unwrap()
                .execute_batch(sql)
                .unwrap();
        }
        None if url.starts_with("mysql://") => {
            use mysql::prelude::Queryable;
            let mut conn = mariadb_connection(&url);
            for statement in watcher_store::in_mariadb_words(sql) {
                conn.query_drop(statement).unwrap();
            }
        }
        None => postgres::Client::connect(&url, postgres::NoTls)
            .unwrap()
            .batch_execute(sql)
            .unwrap(),
    }
}

/// The first column of the first row of `sql` (a count, say), read from
/// the database of the daemon whose data is in `dir`.
pub fn query_i64(dir: &Path, sql: &str) -> i64 {
    let url = database_url(&dir.join("watcher.db"));
    match url.strip_prefix("sqlite://") {
        Some(path) => rusqlite::Connection::open(path)
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap(),
        None if url.starts_with("mysql://") => {
            use mysql::prelude::Queryable;
            let statement = watcher_store::in_mariadb_words(sql).remove(0);
            mariadb_connection(&url)
                .query_first::<i64, _>(statement)
                .unwrap()
                .unwrap()
        }
        None => postgres::Client::connect(&url, postgres::NoTls)
            .unwrap()
            .query_one(sql, &[])
            .unwrap()
            .get(0),
    }
}

/// A plan of four one-second sleeps that meets a database outage: the
/// server is stopped (`stop`) while the first sleep runs, requests answer
/// 503 with Watcher's body meanwhile and `/healthz` 503, the plan's run
/// stops at the write it cannot make; the server comes back (`start`) and
/// the plan finishes, every action done once, its history whole, `/healthz`
/// 200. Returns the plan.
pub fn plan_through_a_database_outage(
    d: &Daemon,
    stop: impl FnOnce(),
    start: impl FnOnce(),
) -> String {
    let sleeps: Vec<Value> = (0..4)
        .map(|_| json!({"action_type": "sleep", "input_parameters": {"duration": 1.0}}))
        .collect();
    let plan = d.actuator(json!(sleeps));
    d.start_plan(&plan);
    d.wait_action_state(&plan, "sleep", "ONGOING");

    stop();
    let (status, body) = d.req("GET", &format!("/v1/action_plans/{plan}"), None);
    assert_eq!(status, 503, "{body}");
    assert!(
        crate::faultstring(&body).contains("database is unavailable"),
        "{body}"
    );
    assert_eq!(d.raw("GET", "/healthz", "").0, 503);
    // The running sleep ends during the outage: its result cannot be
    // written, and the plan's run stops there.
    wait_for(Duration::from_secs(20), || {
        d.log().contains("plan run failed").then_some(())
    });

    start();
    let p = wait_for(Duration::from_secs(40), || {
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
    assert_history_unbroken(d, &plan);
    assert_eq!(d.raw("GET", "/healthz", "").0, 200);
    plan
}
