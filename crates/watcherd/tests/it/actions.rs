//! How each action type behaves when its plan is cancelled, and the limits.

use watcher_testkit as common;

use common::*;
use serde_json::{json, Value};

const VM1: &str = "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001";
const VM2: &str = "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0002";
const VOLUME: &str = "b3c1d2e4-0f5a-4e6b-8c7d-9e0f1a2b0001";

fn run_and_cancel(d: &Daemon, actions: Value, running_type: &str) -> (Value, Value) {
    let plan = d.actuator(actions);
    d.start_plan(&plan);
    d.wait_action_state(&plan, running_type, "ONGOING");
    assert_eq!(d.patch_state(&plan, "CANCELLING").0, 200);
    let p = d.wait_state(&plan, &["CANCELLED", "FAILED", "SUCCEEDED"]);
    let a = d
        .actions(&plan)
        .into_iter()
        .find(|a| a["action_type"] == running_type)
        .unwrap();
    (p, a)
}

#[test]
fn a_cancelled_resize_is_reverted_once_it_awaits_confirmation() {
    let dir = temp_dir("resize");
    let scenario = scenario_file(&dir, "resize_secs = 0.5", "");
    let d = Daemon::start_in(&dir, "", Some(&scenario));
    let (p, a) = run_and_cancel(
        &d,
        json!([{"action_type": "resize", "input_parameters": {"resource_id": VM1, "flavor": "m1.medium"}}]),
        "resize",
    );
    assert_eq!(a["state"], "CANCELLED", "{a}");
    assert_eq!(a["status_message"], "resize reverted on cancel.");
    assert_eq!(p["state"], "CANCELLED");
}

#[test]
fn a_cancelled_volume_migration_is_awaited_and_reported_as_finished() {
    let dir = temp_dir("volume");
    let scenario = scenario_file(&dir, "volume_migration_secs = 0.5", "");
    let d = Daemon::start_in(&dir, "", Some(&scenario));
    let (p, a) = run_and_cancel(
        &d,
        json!([{"action_type": "volume_migrate", "input_parameters": {
        "resource_id": VOLUME, "migration_type": "migrate", "destination_node": "ceph-slow@rbd#slow"}}]),
        "volume_migrate",
    );
    assert_eq!(a["state"], "SUCCEEDED", "{a}");
    assert!(
        a["status_message"]
            .as_str()
            .unwrap()
            .contains("cannot be aborted"),
        "{a}"
    );
    assert_eq!(p["state"], "CANCELLED");
}

#[test]
fn a_volume_migration_still_running_at_the_deadline_fails_the_cancelled_plan() {
    let dir = temp_dir("volume-deadline");
    let scenario = scenario_file(&dir, "volume_migration_secs = 30.0", "");
    let d = Daemon::start_in(&dir, "non_abortable_deadline_secs = 0.3", Some(&scenario));
    let (p, a) = run_and_cancel(
        &d,
        json!([{"action_type": "volume_migrate", "input_parameters": {
        "resource_id": VOLUME, "migration_type": "migrate", "destination_node": "ceph-slow@rbd#slow"}}]),
        "volume_migrate",
    );
    assert_eq!(a["state"], "FAILED", "{a}");
    assert!(
        a["status_message"]
            .as_str()
            .unwrap()
            .contains("still running 0.3 s after the cancel"),
        "{a}"
    );
    assert_eq!(p["state"], "FAILED");
}

#[test]
fn a_retype_moves_a_pinned_volume_and_a_migrate_its_type_forbids_fails_before_cinder() {
    let dir = temp_dir("volume-retype");
    let golden = workspace_root().join("scenarios/golden/storage.toml");
    let d = Daemon::start_in(&dir, "", Some(&golden));
    // w1 is of type "slow", which only stor-2's backend serves.
    const W1: &str = "00000000-0000-4000-9000-000000000021";
    let plan = d.actuator(json!([
        {"action_type": "volume_migrate", "input_parameters": {
            "resource_id": W1, "migration_type": "migrate", "destination_node": "stor-1@lvm#fast"}},
    ]));
    d.start_plan(&plan);
    assert_eq!(
        d.wait_state(&plan, &["SUCCEEDED", "FAILED"])["state"],
        "FAILED"
    );
    let a = &d.actions(&plan)[0];
    let message = a["status_message"].as_str().unwrap();
    assert!(
        message.contains("type slow") && message.contains("retype it"),
        "{a}"
    );
    // Retyped to "cold": the simulated Cinder moves it to stor-3, the
    // only pool serving that type.
    let plan = d.actuator(json!([
        {"action_type": "volume_migrate", "input_parameters": {
            "resource_id": W1, "resource_name": "w1", "migration_type": "retype", "destination_type": "cold"}},
    ]));
    d.start_plan(&plan);
    assert_eq!(
        d.wait_state(&plan, &["SUCCEEDED", "FAILED"])["state"],
        "SUCCEEDED"
    );
    // The same retype again: already of that type, skipped.
    let plan = d.actuator(json!([
        {"action_type": "volume_migrate", "input_parameters": {
            "resource_id": W1, "migration_type": "retype", "destination_type": "cold"}},
    ]));
    d.start_plan(&plan);
    assert_eq!(
        d.wait_state(&plan, &["SUCCEEDED", "FAILED"])["state"],
        "SUCCEEDED"
    );
    let a = &d.actions(&plan)[0];
    assert_eq!(a["state"], "SKIPPED", "{a}");
    assert!(
        a["status_message"]
            .as_str()
            .unwrap()
            .contains("already of type cold"),
        "{a}"
    );
    // A type no pool serves fails, naming it.
    let plan = d.actuator(json!([
        {"action_type": "volume_migrate", "input_parameters": {
            "resource_id": W1, "migration_type": "retype", "destination_type": "gold"}},
    ]));
    d.start_plan(&plan);
    assert_eq!(
        d.wait_state(&plan, &["SUCCEEDED", "FAILED"])["state"],
        "FAILED"
    );
    assert!(d.actions(&plan)[0]["status_message"]
        .as_str()
        .unwrap()
        .contains("gold is not served"));
}

#[test]
fn service_state_changes_apply_and_are_skipped_when_already_done() {
    let d = Daemon::start("service-state");
    let plan = d.actuator(json!([
        {"action_type": "change_nova_service_state", "input_parameters": {"resource_id": "compute-3", "state": "disabled", "disabled_reason": "maintenance"}},
        {"action_type": "change_nova_service_state", "input_parameters": {"resource_id": "compute-3", "state": "disabled"}}
    ]));
    d.start_plan(&plan);
    assert_eq!(
        d.wait_state(&plan, &["SUCCEEDED", "FAILED"])["state"],
        "SUCCEEDED"
    );
    let states: Vec<(String, String)> = d
        .actions(&plan)
        .iter()
        .map(|a| {
            (
                a["state"].as_str().unwrap().into(),
                a["status_message"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(states[0].0, "SUCCEEDED");
    assert_eq!(states[1].0, "SKIPPED");
    assert!(states[1].1.contains("already disabled"), "{states:?}");
    // A migration to the disabled host now fails its pre-condition.
    let plan = d.actuator(
        json!([{"action_type": "migrate", "input_parameters": {"migration_type": "live",
        "resource_id": VM1, "source_node": "compute-1", "destination_node": "compute-3"}}]),
    );
    d.start_plan(&plan);
    assert_eq!(
        d.wait_state(&plan, &["SUCCEEDED", "FAILED"])["state"],
        "FAILED"
    );
    let a = &d.actions(&plan)[0];
    assert!(
        a["status_message"]
            .as_str()
            .unwrap()
            .contains("compute-3 is disabled"),
        "{a}"
    );
}

#[test]
fn two_migrations_from_one_host_wait_for_each_other_under_a_per_host_limit_of_one() {
    let dir = temp_dir("per-host");
    let scenario = scenario_file(&dir, "live_migration_secs = 0.3", "");
    let d = Daemon::start_in(&dir, "[applier.limits]\nper_host = 1", Some(&scenario));
    let plan = d.actuator(json!([
        {"action_type": "migrate", "input_parameters": {"migration_type": "live", "resource_id": VM1, "source_node": "compute-1", "destination_node": "compute-2"}},
        {"action_type": "migrate", "input_parameters": {"migration_type": "live", "resource_id": VM2, "source_node": "compute-1", "destination_node": "compute-3"}}
    ]));
    // The planner put them side by side: only the limit keeps them apart.
    assert!(d
        .actions(&plan)
        .iter()
        .all(|a| a["parents"].as_array().unwrap().is_empty()));
    d.start_plan(&plan);
    assert_eq!(
        d.wait_state(&plan, &["SUCCEEDED", "FAILED"])["state"],
        "SUCCEEDED"
    );
    let history = d.get(&format!("/v1/action_plans/{plan}/history"))["history"]
        .as_array()
        .unwrap()
        .clone();
    let seqs: Vec<(String, i64)> = history
        .iter()
        .filter(|h| {
            h["resource"] == "action"
                && matches!(h["to_state"].as_str(), Some("ONGOING" | "SUCCEEDED"))
        })
        .map(|h| {
            (
                h["to_state"].as_str().unwrap().to_string(),
                h["seq"].as_i64().unwrap(),
            )
        })
        .collect();
    let order: Vec<&str> = seqs.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        order,
        ["ONGOING", "SUCCEEDED", "ONGOING", "SUCCEEDED"],
        "{history:?}"
    );
}

#[test]
fn with_rollback_on_cancel_finished_actions_are_undone_in_reverse_order() {
    let dir = temp_dir("rollback");
    let scenario = scenario_file(&dir, "live_migration_secs = 0.2\nresize_secs = 1.0", "");
    let d = Daemon::start_in(&dir, "rollback_on_cancel = true", Some(&scenario));
    // Weight planner order: service state (50), migrate (30), resize (20).
    let plan = d.actuator(json!([
        {"action_type": "change_nova_service_state", "input_parameters": {"resource_id": "compute-3", "state": "disabled"}},
        {"action_type": "migrate", "input_parameters": {"migration_type": "live", "resource_id": VM1, "source_node": "compute-1", "destination_node": "compute-2"}},
        {"action_type": "resize", "input_parameters": {"resource_id": VM2, "flavor": "m1.medium"}},
        {"action_type": "nop", "input_parameters": {"message": "no lasting effect"}}
    ]));
    d.start_plan(&plan);
    d.wait_action_state(&plan, "resize", "ONGOING");
    assert_eq!(d.patch_state(&plan, "CANCELLING").0, 200);
    let p = d.wait_state(&plan, &["CANCELLED", "FAILED", "SUCCEEDED"]);
    assert_eq!(p["state"], "CANCELLED", "{p}");
    let by_type = |t: &str| {
        d.actions(&plan)
            .into_iter()
            .find(|a| a["action_type"] == t)
            .unwrap()
    };
    let migrate = by_type("migrate");
    assert_eq!(migrate["state"], "CANCELLED", "{migrate}");
    assert_eq!(
        migrate["status_message"],
        "Rolled back on cancel: migrated back to compute-1."
    );
    let service = by_type("change_nova_service_state");
    assert_eq!(service["state"], "CANCELLED", "{service}");
    assert!(
        service["status_message"]
            .as_str()
            .unwrap()
            .contains("enabled again"),
        "{service}"
    );
    assert_eq!(by_type("nop")["state"], "SUCCEEDED");
    assert_eq!(by_type("resize")["state"], "CANCELLED");
    // Reverse dependency order: the migration (later) is undone before the service change.
    let history = d.get(&format!("/v1/action_plans/{plan}/history"))["history"]
        .as_array()
        .unwrap()
        .clone();
    let undone: Vec<&str> = history
        .iter()
        .filter(|h| h["reason"] == "rolled back on cancel")
        .map(|h| {
            if h["uuid"] == migrate["uuid"] {
                "migrate"
            } else {
                "service"
            }
        })
        .collect();
    assert_eq!(undone, ["migrate", "service"]);
    // The instance really is back: migrating it again from compute-1 works.
    let again = d.actuator(json!([{"action_type": "migrate", "input_parameters": {"migration_type": "live", "resource_id": VM1, "source_node": "compute-1", "destination_node": "compute-3"}}]));
    d.start_plan(&again);
    assert_eq!(
        d.wait_state(&again, &["SUCCEEDED", "FAILED"])["state"],
        "SUCCEEDED",
        "compute-3 is enabled again and VM1 is on compute-1"
    );
    assert_eq!(d.actions(&again)[0]["state"], "SUCCEEDED");
}

#[test]
fn pre_and_post_conditions_skip_or_fail_actions_with_upstreams_messages() {
    let d = Daemon::start("conditions");
    let plan = d.actuator(json!([
        {"action_type": "nop", "input_parameters": {"message": "a", "skip_pre_condition": true}},
        {"action_type": "nop", "input_parameters": {"message": "b", "fail_pre_condition": true}},
        {"action_type": "nop", "input_parameters": {"message": "c", "fail_post_condition": true}}
    ]));
    d.start_plan(&plan);
    let p = d.wait_state(&plan, &["SUCCEEDED", "FAILED"]);
    assert_eq!(p["state"], "FAILED");
    let got: Vec<(String, String)> = d
        .actions(&plan)
        .iter()
        .map(|a| {
            (
                a["state"].as_str().unwrap().into(),
                a["status_message"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(
        got[0],
        (
            "SKIPPED".into(),
            "Action was skipped automatically: skip_pre_condition is set".into()
        )
    );
    assert_eq!(
        got[1],
        (
            "FAILED".into(),
            "Action failed in pre_condition: fail_pre_condition is set".into()
        )
    );
    assert_eq!(
        got[2],
        (
            "FAILED".into(),
            "Action failed in post_condition: fail_post_condition is set".into()
        )
    );
}

#[test]
fn the_dummy_with_resize_strategy_runs_on_the_simulated_cloud() {
    let dir = temp_dir("dummy-resize");
    let scenario = scenario_file(&dir, "live_migration_secs = 0.2\nresize_secs = 0.2", "");
    let d = Daemon::start_in(&dir, "", Some(&scenario));
    let plan = d.recommend("dummy", "dummy_with_resize", json!({}));
    let mut types: Vec<String> = d
        .actions(&plan)
        .iter()
        .map(|a| a["action_type"].as_str().unwrap().to_string())
        .collect();
    types.sort();
    assert_eq!(
        types,
        ["migrate", "migrate", "nop", "nop", "resize", "sleep"]
    );
    d.start_plan(&plan);
    let p = wait_for(std::time::Duration::from_secs(20), || {
        let p = d.plan(&plan);
        matches!(p["state"].as_str(), Some("SUCCEEDED" | "FAILED")).then_some(p)
    });
    assert_eq!(p["state"], "SUCCEEDED", "{p} {:?}", d.actions(&plan));
}

#[test]
fn injected_faults_replay_from_the_seed_transient_errors_are_retried_and_failures_reported() {
    let dir = temp_dir("faults");
    let scenario = scenario_file(
        &dir,
        "live_migration_secs = 0.2",
        "transient_error_rate = 0.3\nmigration_failure_rate = 0.0",
    );
    let d = Daemon::start_in(&dir, "", Some(&scenario));
    let plan = d.actuator(json!([
        {"action_type": "migrate", "input_parameters": {"migration_type": "live", "resource_id": VM1, "source_node": "compute-1", "destination_node": "compute-2"}},
        {"action_type": "migrate", "input_parameters": {"migration_type": "live", "resource_id": VM2, "source_node": "compute-1", "destination_node": "compute-3"}}
    ]));
    d.start_plan(&plan);
    let p = d.wait_state(&plan, &["SUCCEEDED", "FAILED"]);
    assert_eq!(
        p["state"],
        "SUCCEEDED",
        "transient errors are retried: {p} {:?}",
        d.actions(&plan)
    );

    let dir = temp_dir("faults-fail");
    let scenario = scenario_file(
        &dir,
        "live_migration_secs = 0.2",
        "migration_failure_rate = 1.0",
    );
    let d = Daemon::start_in(&dir, "", Some(&scenario));
    let plan = d.actuator(json!([
        {"action_type": "migrate", "input_parameters": {"migration_type": "live", "resource_id": VM1, "source_node": "compute-1", "destination_node": "compute-2"}}
    ]));
    d.start_plan(&plan);
    assert_eq!(
        d.wait_state(&plan, &["SUCCEEDED", "FAILED"])["state"],
        "FAILED"
    );
    let a = &d.actions(&plan)[0];
    assert!(
        a["status_message"]
            .as_str()
            .unwrap()
            .starts_with("live migration failed: simulated migration failure at"),
        "{a}"
    );
}

#[test]
fn host_maintenance_empties_a_host_and_disables_it() {
    let dir = temp_dir("maintenance");
    let scenario = scenario_file(&dir, "live_migration_secs = 0.2", "");
    let d = Daemon::start_in(&dir, "", Some(&scenario));
    let plan = d.recommend(
        "cluster_maintaining",
        "host_maintenance",
        json!({"maintenance_node": "compute-1"}),
    );
    let mut types: Vec<String> = d
        .actions(&plan)
        .iter()
        .map(|a| a["action_type"].as_str().unwrap().to_string())
        .collect();
    types.sort();
    assert_eq!(types, ["change_nova_service_state", "migrate", "migrate"]);
    d.start_plan(&plan);
    assert_eq!(
        d.wait_state(&plan, &["SUCCEEDED", "FAILED"])["state"],
        "SUCCEEDED",
        "{:?}",
        d.actions(&plan)
    );
    // compute-1 is now empty and disabled: maintaining it again has nothing to move or disable.
    let (status, audit) = d.req("POST", "/v1/audits", Some(&json!({"audit_type": "ONESHOT", "goal": "cluster_maintaining", "parameters": {"maintenance_node": "compute-1"}})));
    assert_eq!(status, 201);
    let uuid = audit["uuid"].as_str().unwrap().to_string();
    let plans = wait_for(std::time::Duration::from_secs(10), || {
        let p = d.get(&format!("/v1/action_plans?audit_uuid={uuid}"))["action_plans"].clone();
        (!p.as_array().unwrap().is_empty()).then_some(p)
    });
    assert_eq!(
        plans[0]["state"], "SUCCEEDED",
        "an empty plan is born SUCCEEDED"
    );
    // A missing parameter is refused with its name.
    let (status, body) = d.req(
        "POST",
        "/v1/audits",
        Some(&json!({"audit_type": "ONESHOT", "goal": "cluster_maintaining"})),
    );
    assert_eq!(status, 400);
    assert!(faultstring(&body).contains("maintenance_node"), "{body}");
}

#[test]
fn stop_powers_an_instance_off_and_skips_one_that_is_gone_or_already_off() {
    let d = Daemon::start("action-stop");
    let status = |d: &Daemon, uuid: &str| {
        d.get("/v1/data_model/?data_model_type=compute")["context"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["server_uuid"] == uuid)
            .map(|s| s["server_state"].clone())
    };
    assert_eq!(status(&d, VM1), Some(json!("active")));
    let plan =
        d.actuator(json!([{"action_type": "stop", "input_parameters": {"resource_id": VM1}}]));
    d.start_plan(&plan);
    assert_eq!(
        d.wait_state(&plan, &["SUCCEEDED", "FAILED"])["state"],
        "SUCCEEDED"
    );
    assert_eq!(d.actions(&plan)[0]["state"], "SUCCEEDED");
    assert_eq!(status(&d, VM1), Some(json!("shutoff")));
    // Upstream's rule: already off, or gone, is skipped and the plan succeeds.
    let missing = "00000000-0000-4000-8000-00000000dead";
    let plan = d.actuator(json!([
        {"action_type": "stop", "input_parameters": {"resource_id": VM1}},
        {"action_type": "stop", "input_parameters": {"resource_id": missing}},
    ]));
    d.start_plan(&plan);
    assert_eq!(
        d.wait_state(&plan, &["SUCCEEDED", "FAILED"])["state"],
        "SUCCEEDED"
    );
    let messages: Vec<String> = d
        .actions(&plan)
        .iter()
        .map(|a| {
            assert_eq!(a["state"], "SKIPPED", "{a}");
            a["status_message"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("already stopped")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("not found")),
        "{messages:?}"
    );
    // Bad input fails the audit (as any strategy's invalid action), naming the field.
    let (code, audit) = d.req(
        "POST",
        "/v1/audits",
        Some(&json!({"audit_type": "ONESHOT", "goal": "unclassified", "strategy": "actuator",
            "parameters": {"actions": [{"action_type": "stop", "input_parameters": {"resource_id": "vm-1"}}]}})),
    );
    assert_eq!(code, 201, "{audit}");
    let uuid = audit["uuid"].as_str().unwrap().to_string();
    let failed = wait_for(std::time::Duration::from_secs(10), || {
        let a = d.get(&format!("/v1/audits/{uuid}"));
        (a["state"] == "FAILED").then_some(a)
    });
    let why = failed["status_message"].as_str().unwrap_or_default();
    assert!(why.contains("resource_id"), "{failed}");
}
