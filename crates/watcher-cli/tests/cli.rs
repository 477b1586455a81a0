//! The `watcher` command line client against the real watcherd.

use watcher_testkit as common;

use common::*;
use serde_json::Value;
use std::process::{Command, Output};

fn watcher(d: &Daemon, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_watcher"))
        .args(args)
        .env("WATCHER_URL", &d.url)
        .output()
        .expect("run watcher")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn lists_are_tables_by_default_and_json_on_request() {
    let d = Daemon::start("cli-format");
    let o = watcher(&d, &["goal", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.starts_with("+---") && text.contains("| dummy "),
        "{text}"
    );
    let o = watcher(&d, &["goal", "list", "-f", "json"]);
    let goals: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(goals
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["name"] == "dummy"));
}

#[test]
fn start_wait_exits_0_on_success_and_4_when_cancelled() {
    let d = Daemon::start("cli-wait");
    let o = watcher(&d, &["audit", "create", "-g", "dummy", "-p", "para1=1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = wait_for(std::time::Duration::from_secs(10), || {
        let o = watcher(&d, &["actionplan", "list", "-f", "json"]);
        let v: Value = serde_json::from_slice(&o.stdout).ok()?;
        v.get(0).map(|p| p["uuid"].as_str().unwrap().to_string())
    });
    let o = watcher(&d, &["actionplan", "start", &plan, "--wait"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("SUCCEEDED"));
    assert!(
        stderr(&o).contains("3/3 actions"),
        "progress is reported: {}",
        stderr(&o)
    );

    let plan = d.recommend("dummy", "dummy", serde_json::json!({"para1": 60}));
    let url = d.url.clone();
    let p2 = plan.clone();
    let waiter = std::thread::spawn(move || {
        Command::new(env!("CARGO_BIN_EXE_watcher"))
            .args(["actionplan", "start", &p2, "--wait"])
            .env("WATCHER_URL", url)
            .output()
            .unwrap()
    });
    d.wait_action_state(&plan, "sleep", "ONGOING");
    let o = watcher(&d, &["actionplan", "cancel", &plan]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = waiter.join().unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("ended CANCELLED"), "{}", stderr(&o));
    let o = watcher(&d, &["actionplan", "history", &plan]);
    assert!(
        stdout(&o).contains("cancelled by operator"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn errors_say_what_went_wrong_and_what_to_do() {
    let d = Daemon::start("cli-errors");
    let o = watcher(&d, &["actionplan", "show", "not-a-uuid"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not a valid actionplan UUID"),
        "{}",
        stderr(&o)
    );
    let o = watcher(
        &d,
        &["actionplan", "show", "00000000-0000-0000-0000-000000000000"],
    );
    assert!(
        stderr(&o).contains("could not be found (HTTP 404)"),
        "{}",
        stderr(&o)
    );
    let o = Command::new(env!("CARGO_BIN_EXE_watcher"))
        .args(["--endpoint", "http://127.0.0.1:1", "goal", "list"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("Is watcherd running?"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn watcherd_refuses_a_broken_policy_file_and_says_where() {
    let dir = temp_dir("bad-policy");
    std::fs::write(
        dir.join("policy.yaml"),
        "\"action_plan:update\": \"role:admin or\"\n",
    )
    .unwrap();
    let top = format!("policy_file = \"{}\"", dir.join("policy.yaml").display());
    let config = write_config_with(&dir, &top, "", "");
    let o = Command::new(watcher_testkit::watcherd_binary())
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("policy") && err.contains("line 1"), "{err}");
}

#[test]
fn continuous_audits_are_created_with_their_schedule_and_bad_ones_are_explained() {
    let d = Daemon::start("cli-continuous");
    let o = watcher(
        &d,
        &[
            "audit",
            "create",
            "-g",
            "dummy",
            "-t",
            "continuous",
            "-i",
            "0 3 * * *",
            "-f",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let a: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(a["audit_type"], "CONTINUOUS");
    assert_eq!(a["interval"], "0 3 * * *");
    let o = watcher(
        &d,
        &[
            "audit",
            "create",
            "-g",
            "dummy",
            "-t",
            "CONTINUOUS",
            "-i",
            "hourly",
        ],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cron expression"), "{}", stderr(&o));
}
