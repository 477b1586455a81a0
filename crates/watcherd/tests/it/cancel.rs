//! Cancelling action plans, end to end against the real watcherd binary.

use watcher_testkit as common;

use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn states(d: &Daemon, plan: &str) -> Vec<(String, String)> {
    d.actions(plan)
        .iter()
        .map(|a| {
            (
                a["action_type"].as_str().unwrap().to_string(),
                a["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn cancelling_a_running_sleep_aborts_it_at_once_and_the_plan_ends_cancelled() {
    let d = Daemon::start("cancel-sleep");
    let plan = d.recommend("dummy", "dummy", json!({"para1": 30}));
    d.start_plan(&plan);
    d.wait_action_state(&plan, "sleep", "ONGOING");

    let (status, body) = d.patch_state(&plan, "CANCELLING");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "CANCELLING");
    let asked = Instant::now();
    let p = d.wait_state(&plan, &["CANCELLED", "FAILED", "SUCCEEDED"]);
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "cancel took {:?}",
        asked.elapsed()
    );

    assert_eq!(p["state"], "CANCELLED", "{p}");
    assert_eq!(
        states(&d, &plan),
        vec![
            ("nop".into(), "SUCCEEDED".into()),
            ("nop".into(), "SUCCEEDED".into()),
            ("sleep".into(), "CANCELLED".into())
        ]
    );
    let sleep = d
        .actions(&plan)
        .into_iter()
        .find(|a| a["action_type"] == "sleep")
        .unwrap();
    assert!(
        sleep["status_message"]
            .as_str()
            .unwrap()
            .starts_with("Sleep aborted after"),
        "{sleep}"
    );

    // The history tells the story, with who did what.
    let history = d.get(&format!("/v1/action_plans/{plan}/history"))["history"]
        .as_array()
        .unwrap()
        .clone();
    let plan_rows: Vec<(String, String)> = history
        .iter()
        .filter(|h| h["resource"] == "action_plan")
        .map(|h| {
            (
                h["to_state"].as_str().unwrap().into(),
                h["actor"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expect: Vec<(String, String)> = [
        ("RECOMMENDED", "decision_engine"),
        ("PENDING", "api"),
        ("ONGOING", "applier"),
        ("CANCELLING", "api"),
        ("CANCELLED", "applier"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(plan_rows, expect);
    // Each action's creation follows the plan's, in the plan's order, with
    // the plan's seq (the store writes one row for them all).
    let created: Vec<&Value> = history.iter().take(4).collect();
    assert_eq!(created[0]["resource"], "action_plan");
    let actions = d.actions(&plan);
    for (h, a) in created[1..].iter().zip(&actions) {
        assert_eq!(h["resource"], "action", "{h}");
        assert_eq!(h["uuid"], a["uuid"], "{h}");
        assert_eq!(h["from_state"], Value::Null, "{h}");
        assert_eq!(h["to_state"], "PENDING", "{h}");
        assert_eq!(h["actor"], "decision_engine", "{h}");
        assert_eq!(h["seq"], created[0]["seq"], "{h}");
    }
    assert_eq!(
        history
            .iter()
            .filter(|h| h["resource"] == "action" && h["from_state"].is_null())
            .count(),
        actions.len()
    );
}

#[test]
fn cancelling_a_recommended_plan_cancels_every_action_at_once() {
    let d = Daemon::start("cancel-recommended");
    let plan = d.recommend("dummy", "dummy", json!({}));
    let (status, body) = d.patch_state(&plan, "CANCELLED");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "CANCELLED");
    assert!(d.actions(&plan).iter().all(|a| a["state"] == "CANCELLED"));
}

#[test]
fn a_second_cancel_returns_the_plan_as_it_is() {
    let d = Daemon::start("cancel-twice");
    let plan = d.recommend("dummy", "dummy", json!({}));
    assert_eq!(d.patch_state(&plan, "CANCELLED").0, 200);
    // python-watcherclient sends CANCELLED for anything not ONGOING.
    let (status, body) = d.patch_state(&plan, "CANCELLED");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "CANCELLED");
    let (status, _) = d.patch_state(&plan, "CANCELLING");
    assert_eq!(status, 200);
}

#[test]
fn a_pending_plan_waiting_for_a_free_applier_slot_is_cancelled_with_its_actions() {
    let dir = temp_dir("cancel-pending");
    let d = Daemon::start_in(&dir, "max_concurrent_plans = 1", None);
    let busy = d.recommend("dummy", "dummy", json!({"para1": 30}));
    d.start_plan(&busy);
    d.wait_state(&busy, &["ONGOING"]);
    let (status, body) = d.req(
        "POST",
        "/v1/audits",
        Some(&json!({"audit_type": "ONESHOT", "goal": "dummy", "force": true})),
    );
    assert_eq!(status, 201, "{body}");
    let audit = body["uuid"].as_str().unwrap().to_string();
    let waiting = d.plan_of(&audit);
    d.start_plan(&waiting);
    assert_eq!(d.plan(&waiting)["state"], "PENDING");
    let (status, body) = d.patch_state(&waiting, "CANCELLED");
    assert_eq!(status, 200, "{body}");
    assert!(d
        .actions(&waiting)
        .iter()
        .all(|a| a["state"] == "CANCELLED"));
    assert_eq!(d.patch_state(&busy, "CANCELLING").0, 200);
    assert_eq!(
        d.wait_state(&busy, &["CANCELLED", "FAILED"])["state"],
        "CANCELLED"
    );
    // The cancelled PENDING plan never ran, even once the slot was free.
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(d.plan(&waiting)["state"], "CANCELLED");
}

#[test]
fn cancelling_a_live_migration_aborts_it_and_the_instance_stays_on_its_source() {
    let dir = temp_dir("cancel-migration");
    let scenario = scenario_file(&dir, "live_migration_secs = 20.0\nabort_secs = 0.2", "");
    let d = Daemon::start_in(&dir, "", Some(&scenario));
    let plan = d.actuator(json!([
        {"action_type": "migrate", "input_parameters": {"migration_type": "live",
            "resource_id": "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001", "source_node": "compute-1", "destination_node": "compute-2"}}
    ]));
    d.start_plan(&plan);
    d.wait_action_state(&plan, "migrate", "ONGOING");
    // While it runs, its status message follows the cloud's progress.
    wait_for(Duration::from_secs(5), || {
        let m = d.actions(&plan)[0]["status_message"]
            .as_str()
            .unwrap_or("")
            .to_string();
        m.contains("compute-1 -> compute-2").then_some(())
    });
    assert_eq!(d.patch_state(&plan, "CANCELLING").0, 200);
    let p = d.wait_state(&plan, &["CANCELLED", "FAILED", "SUCCEEDED"]);
    assert_eq!(p["state"], "CANCELLED", "{p}");
    let a = &d.actions(&plan)[0];
    assert_eq!(a["state"], "CANCELLED");
    assert!(
        a["status_message"]
            .as_str()
            .unwrap()
            .contains("instance back on compute-1"),
        "{a}"
    );
}

#[test]
fn force_complete_above_finishes_a_migration_far_enough_along_instead_of_aborting_it() {
    let dir = temp_dir("cancel-force");
    let scenario = scenario_file(&dir, "live_migration_secs = 20.0\nabort_secs = 0.2", "");
    let d = Daemon::start_in(&dir, "", Some(&scenario));
    // Two migrations at once: one finishes on cancel whatever its progress
    // (threshold 0), the other only past 99 %, so it is aborted.
    let plan = d.actuator(json!([
        {"action_type": "migrate", "input_parameters": {"migration_type": "live", "force_complete_above": 0.0,
            "resource_id": "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001", "source_node": "compute-1", "destination_node": "compute-2"}},
        {"action_type": "migrate", "input_parameters": {"migration_type": "live", "force_complete_above": 0.99,
            "resource_id": "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0002", "source_node": "compute-1", "destination_node": "compute-3"}}
    ]));
    d.start_plan(&plan);
    wait_for(Duration::from_secs(10), || {
        (d.actions(&plan).iter().all(|a| a["state"] == "ONGOING")).then_some(())
    });
    assert_eq!(d.patch_state(&plan, "CANCELLING").0, 200);
    let p = d.wait_state(&plan, &["CANCELLED", "FAILED", "SUCCEEDED"]);
    assert_eq!(p["state"], "CANCELLED", "{p}");
    let actions = d.actions(&plan);
    let by_dest = |dest: &str| {
        actions
            .iter()
            .find(|a| a["input_parameters"]["destination_node"] == dest)
            .unwrap()
            .clone()
    };
    let forced = by_dest("compute-2");
    assert_eq!(forced["state"], "SUCCEEDED", "{forced}");
    assert!(
        forced["status_message"]
            .as_str()
            .unwrap()
            .contains("forced to complete on compute-2"),
        "{forced}"
    );
    assert_eq!(by_dest("compute-3")["state"], "CANCELLED");
    let model = d.get("/v1/data_model");
    let host = |name: &str| {
        model["context"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["server_name"] == name)
            .unwrap()["node_hostname"]
            .clone()
    };
    assert_eq!(host("web-1"), "compute-2");
    assert_eq!(host("web-2"), "compute-1");

    // A threshold outside 0..1 is refused when the plan is made.
    let (status, body) = d.req(
        "POST",
        "/v1/audits",
        Some(&json!({"audit_type": "ONESHOT", "goal": "unclassified", "strategy": "actuator",
            "parameters": {"actions": [{"action_type": "migrate", "input_parameters": {"migration_type": "live",
            "force_complete_above": 1.5, "resource_id": "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001",
            "source_node": "compute-2"}}]}})),
    );
    assert_eq!(status, 201, "{body}");
    let audit = body["uuid"].as_str().unwrap().to_string();
    let a = wait_for(Duration::from_secs(10), || {
        let a = d.get(&format!("/v1/audits/{audit}"));
        (a["state"] == "FAILED").then_some(a)
    });
    assert!(
        a["status_message"]
            .as_str()
            .unwrap()
            .contains("force_complete_above must be a fraction"),
        "{a}"
    );
}

#[test]
fn an_abort_past_the_point_of_no_return_ends_the_action_succeeded_with_the_reason() {
    let dir = temp_dir("cancel-pnr");
    let scenario = scenario_file(
        &dir,
        "live_migration_secs = 1.5\npoint_of_no_return = 0.0",
        "",
    );
    let d = Daemon::start_in(&dir, "", Some(&scenario));
    let plan = d.actuator(json!([
        {"action_type": "migrate", "input_parameters": {"migration_type": "live",
            "resource_id": "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001", "source_node": "compute-1", "destination_node": "compute-2"}}
    ]));
    d.start_plan(&plan);
    d.wait_action_state(&plan, "migrate", "ONGOING");
    assert_eq!(d.patch_state(&plan, "CANCELLING").0, 200);
    let p = d.wait_state(&plan, &["CANCELLED", "FAILED", "SUCCEEDED"]);
    let a = &d.actions(&plan)[0];
    assert_eq!(a["state"], "SUCCEEDED", "{a}");
    assert!(
        a["status_message"]
            .as_str()
            .unwrap()
            .contains("point of no return"),
        "{a}"
    );
    // Nothing failed, so the cancelled plan is CANCELLED.
    assert_eq!(p["state"], "CANCELLED", "{p}");
}

#[test]
fn a_refused_abort_fails_the_action_and_the_plan_names_it() {
    let dir = temp_dir("cancel-refused");
    let scenario = scenario_file(
        &dir,
        "live_migration_secs = 1.5",
        "abort_refusal_rate = 1.0",
    );
    let d = Daemon::start_in(&dir, "", Some(&scenario));
    let plan = d.actuator(json!([
        {"action_type": "migrate", "input_parameters": {"migration_type": "live",
            "resource_id": "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001", "source_node": "compute-1", "destination_node": "compute-2"}}
    ]));
    d.start_plan(&plan);
    d.wait_action_state(&plan, "migrate", "ONGOING");
    assert_eq!(d.patch_state(&plan, "CANCELLING").0, 200);
    let p = d.wait_state(&plan, &["CANCELLED", "FAILED", "SUCCEEDED"]);
    assert_eq!(p["state"], "FAILED", "{p}");
    let a = &d.actions(&plan)[0];
    assert_eq!(a["state"], "FAILED");
    assert!(
        a["status_message"]
            .as_str()
            .unwrap()
            .contains("Could not abort"),
        "{a}"
    );
    assert!(
        p["status_message"]
            .as_str()
            .unwrap()
            .contains(a["uuid"].as_str().unwrap()),
        "{p}"
    );
}

#[test]
fn a_failed_action_fails_the_plan_and_its_children_still_run() {
    let d = Daemon::start("failed-action");
    let plan = d.actuator(json!([
        {"action_type": "nop", "input_parameters": {"message": "a", "fail_execute": true}},
        {"action_type": "sleep", "input_parameters": {"duration": 0}}
    ]));
    d.start_plan(&plan);
    let p = d.wait_state(&plan, &["SUCCEEDED", "FAILED"]);
    assert_eq!(p["state"], "FAILED");
    assert_eq!(
        states(&d, &plan),
        vec![
            ("nop".into(), "FAILED".into()),
            ("sleep".into(), "SUCCEEDED".into())
        ]
    );
}

#[test]
fn cancelling_a_finished_plan_is_refused_and_changes_nothing() {
    let d = Daemon::start("cancel-finished");
    let plan = d.actuator(json!([{"action_type": "nop", "input_parameters": {"message": "x"}}]));
    d.start_plan(&plan);
    d.wait_state(&plan, &["SUCCEEDED"]);
    let before = d.get(&format!("/v1/action_plans/{plan}/history"));
    let (status, body) = d.patch_state(&plan, "CANCELLED");
    assert_eq!(status, 400);
    assert!(
        faultstring(&body).contains("State transition not allowed: (SUCCEEDED -> CANCELLED)"),
        "{body}"
    );
    assert_eq!(d.get(&format!("/v1/action_plans/{plan}/history")), before);
}

#[test]
fn a_cancel_racing_the_last_action_still_aborts_it() {
    // The plan's only action is running when the cancel arrives: upstream
    // would let it finish and write SUCCEEDED over CANCELLING.
    let d = Daemon::start("cancel-last");
    let plan = d.actuator(json!([{"action_type": "sleep", "input_parameters": {"duration": 5}}]));
    d.start_plan(&plan);
    d.wait_action_state(&plan, "sleep", "ONGOING");
    assert_eq!(d.patch_state(&plan, "CANCELLING").0, 200);
    assert_eq!(
        d.wait_state(&plan, &["CANCELLED", "SUCCEEDED", "FAILED"])["state"],
        "CANCELLED"
    );
    assert_eq!(d.actions(&plan)[0]["state"], "CANCELLED");
}

/// A live migration running on a `watcherd sim-cloud` whose status polls
/// take `poll_delay` seconds, with `force_complete_above` when given; it
/// returns once the migration is under way at the cloud (and watcherd's
/// first poll is in flight).
fn migration_under_slow_polls(
    name: &str,
    poll_delay: f64,
    force_complete_above: Option<f64>,
) -> (SimCloud, Daemon, String) {
    let dir = temp_dir(name);
    let sim = SimCloud::start(&scenario_file(
        &dir,
        &format!("live_migration_secs = 600\nabort_secs = 0.0\npoll_delay_secs = {poll_delay}"),
        "",
    ));
    let d = sim.daemon(&dir);
    let mut input = json!({"migration_type": "live",
        "resource_id": "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001", "source_node": "compute-1", "destination_node": "compute-2"});
    if let Some(f) = force_complete_above {
        input["force_complete_above"] = json!(f);
    }
    let plan = d.actuator(json!([{"action_type": "migrate", "input_parameters": input}]));
    d.start_plan(&plan);
    wait_for(Duration::from_secs(10), || {
        sim.operations()
            .iter()
            .any(|o| o["kind"] == "live_migration")
            .then_some(())
    });
    (sim, d, plan)
}

/// A cloud whose status polls take 20 s: the cancel does not wait for the
/// poll in flight. The abort reaches the cloud long before that poll could
/// have answered (the benchmark measures how long: docs/benchmarks.md).
#[test]
fn a_cancel_aborts_at_once_even_while_a_slow_status_poll_is_in_flight() {
    let (sim, d, plan) = migration_under_slow_polls("cancel-slow-poll", 20.0, None);
    let cancelled_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert_eq!(d.patch_state(&plan, "CANCELLING").0, 200);
    let aborted_at = wait_for(Duration::from_secs(10), || {
        sim.operations()
            .iter()
            .find(|o| o["kind"] == "live_migration")
            .and_then(|o| o["abort_requested_at"].as_f64())
    });
    assert!(
        aborted_at - cancelled_at < 5.0,
        "the abort waited {:.1} s for the poll in flight",
        aborted_at - cancelled_at
    );
    // The outcome needs one more (slow) poll to be known: then CANCELLED.
    let p = wait_for(Duration::from_secs(60), || {
        let p = d.plan(&plan);
        (p["state"] != "CANCELLING" && p["state"] != "ONGOING").then_some(p)
    });
    assert_eq!(p["state"], "CANCELLED", "{p}");
}

/// A cancel that comes before the first status poll has answered: the
/// progress is unknown, taken as none, so `force_complete_above = 0`
/// still forces the migration to finish.
#[test]
fn force_complete_above_zero_applies_before_the_first_poll_answers() {
    let (_sim, d, plan) = migration_under_slow_polls("cancel-force-early", 3.0, Some(0.0));
    assert_eq!(d.patch_state(&plan, "CANCELLING").0, 200);
    d.wait_state(&plan, &["CANCELLED", "FAILED", "SUCCEEDED"]);
    let a = &d.actions(&plan)[0];
    assert_eq!(a["state"], "SUCCEEDED", "{a}");
    assert!(
        a["status_message"]
            .as_str()
            .unwrap()
            .contains("forced to complete"),
        "{a}"
    );
}
