//! Pause and resume of a running plan (watcherd's own operations, under
//! `/v1/x-watcherd/`), end to end against the real watcherd binary: a
//! pause starts nothing more and lets running actions finish, PENDING ones
//! stay PENDING; a resume goes on where it stopped; a cancel of a paused
//! plan works at once; a pause survives kill -9; bad requests change
//! nothing.

use watcher_testkit as common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// A chain of three sleeps of `secs` each (one sleep at a time).
fn sleeps(d: &Daemon, secs: f64) -> String {
    d.actuator(json!([
        {"action_type": "sleep", "input_parameters": {"duration": secs}},
        {"action_type": "sleep", "input_parameters": {"duration": secs}},
        {"action_type": "sleep", "input_parameters": {"duration": secs}},
    ]))
}

fn pause(d: &Daemon, plan: &str, body: Option<&Value>) -> (u16, Value) {
    d.req(
        "POST",
        &format!("/v1/x-watcherd/action_plans/{plan}/pause"),
        body,
    )
}

fn resume(d: &Daemon, plan: &str) -> (u16, Value) {
    d.req(
        "POST",
        &format!("/v1/x-watcherd/action_plans/{plan}/resume"),
        None,
    )
}

fn action_states(d: &Daemon, plan: &str) -> Vec<String> {
    d.actions(plan)
        .iter()
        .map(|a| a["state"].as_str().unwrap().to_string())
        .collect()
}

fn history(d: &Daemon, plan: &str) -> Vec<Value> {
    d.get(&format!("/v1/action_plans/{plan}/history"))["history"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until the applier has let the paused plan go (nothing runs).
fn wait_let_go(d: &Daemon, plan: &str) {
    wait_for(Duration::from_secs(20), || {
        history(d, plan)
            .iter()
            .any(|r| r["reason"].as_str().unwrap_or("").contains("lets it go"))
            .then_some(())
    });
}

#[test]
fn a_pause_starts_nothing_more_and_a_resume_goes_on_where_it_stopped() {
    let d = Daemon::start("pause-resume");
    let plan = sleeps(&d, 1.0);
    d.start_plan(&plan);
    d.wait_action_state(&plan, "sleep", "ONGOING");
    // The dashboard offers the pause of a running plan, through this API.
    let page = |d: &Daemon| {
        d.raw("GET", &format!("/dashboard/action_plans/{plan}"), "")
            .1
    };
    let ext = format!("/dashboard/v1/x-watcherd/action_plans/{plan}");
    assert!(
        page(&d).contains(&format!("data-url=\"{ext}/pause\"")),
        "{}",
        page(&d)
    );
    assert!(!page(&d).contains(&format!("{ext}/resume")));
    let (status, body) = pause(&d, &plan, Some(&json!({"reason": "traffic is back"})));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "PAUSED");

    // The running sleep finishes; the other two stay PENDING, and the plan
    // stays PAUSED with nobody holding it.
    wait_let_go(&d, &plan);
    let mut states = action_states(&d, &plan);
    states.sort();
    assert_eq!(states, ["PENDING", "PENDING", "SUCCEEDED"]);
    let p = d.plan(&plan);
    assert_eq!(p["state"], "PAUSED");
    assert!(p["hostname"].is_null(), "{p}");
    // ... and its resume, or its cancel, once paused.
    let shown = page(&d);
    assert!(
        shown.contains(&format!("data-url=\"{ext}/resume\"")),
        "{shown}"
    );
    assert!(!shown.contains(&format!("{ext}/pause")));
    assert!(
        shown.contains("Cancel plan") && shown.contains("state-paused"),
        "{shown}"
    );
    // No action started after the pause committed.
    let rows = history(&d, &plan);
    let paused_at = rows.iter().position(|r| r["to_state"] == "PAUSED").unwrap();
    assert_eq!(rows[paused_at]["actor"], "api");
    assert_eq!(
        rows[paused_at]["reason"],
        "paused by operator: traffic is back"
    );
    assert!(
        !rows[paused_at..]
            .iter()
            .any(|r| r["resource"] == "action" && r["to_state"] == "ONGOING"),
        "{rows:?}"
    );

    // Bad requests change nothing: a second pause, PATCH to PAUSED, a
    // resume with a malformed reason.
    let (status, body) = pause(&d, &plan, None);
    assert_eq!(status, 409, "{body}");
    assert!(body["error_message"]
        .as_str()
        .unwrap()
        .contains("only an ONGOING action plan can be paused"));
    let (status, _) = d.patch_state(&plan, "PENDING");
    assert_eq!(status, 400);
    let (status, _) = d.req(
        "POST",
        &format!("/v1/x-watcherd/action_plans/{plan}/resume"),
        Some(&json!({"reason": 42})),
    );
    assert_eq!(status, 400);
    assert_eq!(d.plan(&plan)["state"], "PAUSED");

    // Resumed: released, so PENDING, claimed, and run to its end.
    let (status, body) = resume(&d, &plan);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "PENDING");
    assert_eq!(
        d.wait_state(&plan, &["SUCCEEDED", "FAILED", "CANCELLED"])["state"],
        "SUCCEEDED"
    );
    assert_eq!(action_states(&d, &plan), ["SUCCEEDED"; 3]);
    assert_history_unbroken(&d, &plan);
    let (status, _) = resume(&d, &plan);
    assert_eq!(status, 409);
    let (status, _) = pause(&d, "7f3a0000-0000-4000-8000-000000000000", None);
    assert_eq!(status, 404);
}

#[test]
fn a_cancel_of_a_paused_plan_works_at_once_held_or_not() {
    let d = Daemon::start("pause-cancel");
    // Released: CANCELLED at once, its PENDING actions with it.
    let plan = sleeps(&d, 0.5);
    d.start_plan(&plan);
    d.wait_action_state(&plan, "sleep", "ONGOING");
    assert_eq!(pause(&d, &plan, None).0, 200);
    wait_let_go(&d, &plan);
    let (status, body) = d.patch_state(&plan, "CANCELLED");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "CANCELLED");
    let mut states = action_states(&d, &plan);
    states.sort();
    assert_eq!(states, ["CANCELLED", "CANCELLED", "SUCCEEDED"]);
    assert_history_unbroken(&d, &plan);

    // Held (its sleep still running): CANCELLING, the sleep aborted.
    let plan = sleeps(&d, 30.0);
    d.start_plan(&plan);
    d.wait_action_state(&plan, "sleep", "ONGOING");
    assert_eq!(pause(&d, &plan, None).0, 200);
    let (status, body) = d.patch_state(&plan, "CANCELLED");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "CANCELLING");
    let p = wait_for(Duration::from_secs(5), || {
        let p = d.plan(&plan);
        (p["state"] != "CANCELLING").then_some(p)
    });
    assert_eq!(p["state"], "CANCELLED", "{p}");
    assert!(action_states(&d, &plan).iter().all(|s| s == "CANCELLED"));
    assert_history_unbroken(&d, &plan);
}

#[test]
fn a_resume_while_the_paused_run_still_finishes_goes_on_in_the_same_run() {
    let d = Daemon::start("pause-resume-held");
    let plan = sleeps(&d, 1.5);
    d.start_plan(&plan);
    d.wait_action_state(&plan, "sleep", "ONGOING");
    assert_eq!(pause(&d, &plan, None).0, 200);
    let (status, body) = resume(&d, &plan);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "ONGOING");
    assert_eq!(
        d.wait_state(&plan, &["SUCCEEDED", "FAILED", "CANCELLED"])["state"],
        "SUCCEEDED"
    );
    assert_history_unbroken(&d, &plan);
    assert!(!d.log().contains("lets it go"));
}

#[test]
fn a_paused_plan_survives_kill_9_with_an_action_running_and_resumes_after() {
    let dir = temp_dir("pause-kill");
    let mut d = Daemon::start_in(&dir, "", None);
    let plan = sleeps(&d, 2.0);
    d.start_plan(&plan);
    d.wait_action_state(&plan, "sleep", "ONGOING");
    assert_eq!(pause(&d, &plan, None).0, 200);
    d.kill9();

    // The next start reconciles the running sleep, starts nothing, and
    // lets the plan go, still PAUSED.
    let d = Daemon::start_in(&dir, "", None);
    wait_let_go(&d, &plan);
    assert_eq!(d.plan(&plan)["state"], "PAUSED");
    assert!(
        !action_states(&d, &plan).iter().any(|s| s == "ONGOING"),
        "{:?}",
        action_states(&d, &plan)
    );
    assert_eq!(resume(&d, &plan).0, 200);
    assert_eq!(
        d.wait_state(&plan, &["SUCCEEDED", "FAILED", "CANCELLED"])["state"],
        "SUCCEEDED"
    );
    assert_history_unbroken(&d, &plan);
}

#[test]
fn a_pause_that_aborts_puts_running_actions_back_and_the_resume_runs_them_again() {
    let d = Daemon::start("pause-abort");
    let plan = sleeps(&d, 30.0);
    d.start_plan(&plan);
    d.wait_action_state(&plan, "sleep", "ONGOING");
    let (status, body) = pause(&d, &plan, Some(&json!({"abort_running": "yes"})));
    assert_eq!(status, 400, "{body}");
    assert_eq!(d.plan(&plan)["state"], "ONGOING");
    let (status, body) = pause(&d, &plan, Some(&json!({"abort_running": true})));
    assert_eq!(status, 200, "{body}");
    // The 30 s sleep is aborted at once and waits, PENDING, with the others.
    wait_let_go(&d, &plan);
    assert_eq!(action_states(&d, &plan), ["PENDING"; 3]);
    let rows = history(&d, &plan);
    assert!(
        rows.iter().any(|r| r["resource"] == "action"
            && r["from_state"] == "ONGOING"
            && r["to_state"] == "PENDING"
            && r["actor"] == "applier"
            && r["reason"] == "aborted by the pause; runs again on resume"),
        "{rows:?}"
    );
    // Resumed, the aborted sleep runs again; a cancel ends the test.
    assert_eq!(resume(&d, &plan).0, 200);
    d.wait_action_state(&plan, "sleep", "ONGOING");
    assert_eq!(d.patch_state(&plan, "CANCELLED").0, 200);
    assert_eq!(
        d.wait_state(&plan, &["CANCELLED", "FAILED", "SUCCEEDED"])["state"],
        "CANCELLED"
    );
    assert_history_unbroken(&d, &plan);
}
