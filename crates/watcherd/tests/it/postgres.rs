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
use std::process::Command;
use std::time::{Duration, Instant};

/// The machine's PostgreSQL (`WATCHER_TEST_POSTGRES`) must answer: these
/// tests are built ignored without it, so here it is required.
fn require_postgres() {
    let server = required_env("WATCHER_TEST_POSTGRES", "PostgreSQL");
    if let Err(e) = postgres::Client::connect(&format!("{server}/postgres"), postgres::NoTls) {
        panic!("PostgreSQL at WATCHER_TEST_POSTGRES={server} does not answer: {e}");
    }
}

/// A PostgreSQL server of this test's own, stopped when dropped.
struct PrivatePostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    fn start(root: &Path) -> PrivatePostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server programs in /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .max()
            .expect("an initdb under /usr/lib/postgresql/*/bin");
        let dir = root.join("pg");
        std::fs::create_dir_all(&dir).unwrap();
        let pg = PrivatePostgres {
            dir,
            bin,
            port: free_port(),
        };
        // The server refuses to run as root: it runs as the postgres user.
        let _ = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(&pg.dir)
            .status();
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        pg.pg_ctl_start();
        pg
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
        let mut cmd = if is_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let out = cmd.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    /// A fast shutdown: every connection is closed at once, as in a restart.
    fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
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
