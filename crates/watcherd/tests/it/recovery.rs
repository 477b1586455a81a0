//! Crashes and stops: no plan is left stuck, nothing is lost.

use watcher_testkit as common;

use common::*;
use serde_json::{json, Value};

fn recovery_rows(d: &Daemon, plan: &str) -> Vec<Value> {
    d.get(&format!("/v1/action_plans/{plan}/history"))["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["actor"] == "recovery")
        .cloned()
        .collect()
}

#[test]
fn a_plan_interrupted_by_kill_9_resumes_after_a_restart_and_succeeds() {
    let dir = temp_dir("kill9");
    let mut d = Daemon::start_in(&dir, "", None);
    let plan = d.actuator(json!([
        {"action_type": "nop", "input_parameters": {"message": "first"}},
        {"action_type": "sleep", "input_parameters": {"duration": 1.5}}
    ]));
    d.start_plan(&plan);
    d.wait_action_state(&plan, "sleep", "ONGOING");
    d.kill9();

    let d = Daemon::start_in(&dir, "", None);
    let p = d.wait_state(&plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "SUCCEEDED", "{p}");
    let rows = recovery_rows(&d, &plan);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0]["from_state"].as_str(), rows[0]["to_state"].as_str()),
        (Some("ONGOING"), Some("PENDING"))
    );
    // The nop that had finished did not run again.
    let nop_starts = d.get(&format!("/v1/action_plans/{plan}/history"))["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["to_state"] == "ONGOING" && h["resource"] == "action")
        .count();
    assert_eq!(nop_starts, 3, "nop once, sleep twice");
}

#[test]
fn sigterm_gives_running_actions_a_grace_period_then_the_next_start_resumes_the_plan() {
    let dir = temp_dir("sigterm");
    let mut d = Daemon::start_in(&dir, "", None);
    let plan = d.actuator(json!([{"action_type": "sleep", "input_parameters": {"duration": 30}}]));
    d.start_plan(&plan);
    d.wait_action_state(&plan, "sleep", "ONGOING");
    let status = d.terminate();
    assert!(status.success(), "watcherd exited with {status}");

    // The sleep was aborted at the end of the grace period and recorded as
    // interrupted; the plan still belongs to this host, ONGOING.
    let d = Daemon::start_in(&dir, "", None);
    let rows = recovery_rows(&d, &plan);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0]["reason"].as_str().unwrap().contains("shutdown"),
        "{rows:?}"
    );
    d.wait_action_state(&plan, "sleep", "ONGOING");
    assert_eq!(d.plan(&plan)["state"], "ONGOING");
    assert_eq!(d.patch_state(&plan, "CANCELLING").0, 200);
    assert_eq!(
        d.wait_state(&plan, &["CANCELLED", "FAILED"])["state"],
        "CANCELLED"
    );
}

// The embedded simulated cloud keeps its state in watcherd's database: a
// restart finds the same cloud, migrations included, as it would find a
// real one. What it holds is observed the way an operator would: through
// what the next action finds (its pre-condition names the instance's host).

const EMBEDDED_WEB_1: &str = "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001";

fn migrate_web_1(d: &Daemon, from: &str, to: &str) -> String {
    d.actuator(json!([
        {"action_type": "migrate", "input_parameters": {"migration_type": "live",
            "resource_id": EMBEDDED_WEB_1, "source_node": from, "destination_node": to}}
    ]))
}

fn run_to_end(d: &Daemon, plan: &str) -> Value {
    d.start_plan(plan);
    d.wait_state(plan, &["SUCCEEDED", "FAILED", "CANCELLED"])
}

fn saved_operations(dir: &std::path::Path) -> i64 {
    query_i64(
        dir,
        "SELECT COUNT(*) FROM sim_cloud_rows WHERE kind = 'operation'",
    )
}

/// watcherd in `dir` killed with -9 while web-1's live migration from
/// compute-1 to compute-2 runs, once the embedded cloud has saved it; the plan.
fn killed_mid_migration(dir: &std::path::Path, scenario: &std::path::Path) -> String {
    let mut d = Daemon::start_in(dir, "", Some(scenario));
    let plan = migrate_web_1(&d, "compute-1", "compute-2");
    d.start_plan(&plan);
    d.wait_action_state(&plan, "migrate", "ONGOING");
    wait_for(std::time::Duration::from_secs(10), || {
        (saved_operations(dir) == 1).then_some(())
    });
    d.kill9();
    plan
}

#[test]
fn embedded_cloud_a_migration_running_at_the_crash_is_followed_after_the_restart() {
    let dir = temp_dir("embedded-running");
    let scenario = scenario_file(&dir, "live_migration_secs = 4.0", "");
    let plan = killed_mid_migration(&dir, &scenario);

    let d = Daemon::start_in(&dir, "", Some(&scenario));
    let p = d.wait_state(&plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "SUCCEEDED", "{p}");
    assert!(
        recovery_rows(&d, &plan).is_empty(),
        "the migration was still running: followed, nothing to correct"
    );
    assert_eq!(saved_operations(&dir), 1, "reattached, not started again");
    // The instance really is on compute-2 now: a migration back from there passes its check.
    let back = migrate_web_1(&d, "compute-2", "compute-1");
    assert_eq!(run_to_end(&d, &back)["state"], "SUCCEEDED");
}

#[test]
fn embedded_cloud_a_migration_that_ended_while_watcherd_was_down_is_recorded_as_it_happened() {
    let dir = temp_dir("embedded-completed");
    let scenario = scenario_file(&dir, "live_migration_secs = 1.5", "");
    let plan = killed_mid_migration(&dir, &scenario);
    // Down for longer than the migration takes: the cloud went on without us.
    std::thread::sleep(std::time::Duration::from_secs(2));

    let d = Daemon::start_in(&dir, "", Some(&scenario));
    let p = d.wait_state(&plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "SUCCEEDED", "{p}");
    assert_eq!(saved_operations(&dir), 1, "not started again");
    let back = migrate_web_1(&d, "compute-2", "compute-1");
    assert_eq!(run_to_end(&d, &back)["state"], "SUCCEEDED");
}

#[test]
fn a_live_migration_the_cloud_forgot_is_reconciled_from_the_journal_and_the_instance() {
    let dir = temp_dir("kill9-forgotten");
    let scenario = scenario_file(&dir, "live_migration_secs = 30.0", "");
    let plan = killed_mid_migration(&dir, &scenario);
    // A cloud that lost the operation (as one rebuilt from scratch would):
    // the instance is back on its source, ACTIVE, and nothing knows the id.
    execute_sql(
        &dir,
        "DELETE FROM sim_cloud_rows WHERE kind IN ('operation', 'instance')",
    );

    let d = Daemon::start_in(&dir, "", Some(&scenario));
    let rows = wait_for(std::time::Duration::from_secs(10), || {
        let rows = recovery_rows(&d, &plan);
        (!rows.is_empty()).then_some(rows)
    });
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["to_state"], "PENDING", "{rows:?}");
    // It runs again, as a new migration.
    wait_for(std::time::Duration::from_secs(10), || {
        (saved_operations(&dir) == 1).then_some(())
    });
    assert_eq!(d.patch_state(&plan, "CANCELLING").0, 200);
    assert_eq!(
        d.wait_state(&plan, &["CANCELLED", "FAILED"])["state"],
        "CANCELLED"
    );
}

#[test]
fn embedded_cloud_reset_brings_the_scenario_back_and_refuses_while_it_would_do_harm() {
    let dir = temp_dir("embedded-reset");
    let scenario = scenario_file(&dir, "live_migration_secs = 30.0", "");
    let plan = killed_mid_migration(&dir, &scenario);

    // A plan in flight would resume on a cloud where its migration never happened.
    let (ok, _, err) = run_watcherd(&dir, "reset-sim-cloud", &["--force"]);
    assert!(!ok);
    assert!(
        err.contains(&format!("action plan {plan} is ONGOING")),
        "{err}"
    );
    assert!(err.contains("watcher actionplan cancel"), "{err}");

    let d = Daemon::start_in(&dir, "", Some(&scenario));
    assert_eq!(d.patch_state(&plan, "CANCELLING").0, 200);
    assert_eq!(
        d.wait_state(&plan, &["CANCELLED", "FAILED"])["state"],
        "CANCELLED"
    );
    // web-1 stayed home (the migration was aborted): move it for real.
    drop(d);
    let scenario = scenario_file(&dir, "live_migration_secs = 0.2", "");
    let mut d = Daemon::start_in(&dir, "", Some(&scenario));
    let moved = migrate_web_1(&d, "compute-1", "compute-2");
    assert_eq!(run_to_end(&d, &moved)["state"], "SUCCEEDED");

    // A watcherd that may still run would write its cloud over the reset.
    let (ok, _, err) = run_watcherd(&dir, "reset-sim-cloud", &[]);
    assert!(!ok);
    assert!(err.contains("stop watcherd first"), "{err}");
    assert!(err.contains("--force"), "{err}");

    let status = d.terminate();
    assert!(status.success(), "{status}");
    let (ok, out, err) = run_watcherd(&dir, "reset-sim-cloud", &["--force"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("back to its scenario"), "{out}");
    assert_eq!(saved_operations(&dir), 0);

    // web-1 is on compute-1 again, as the scenario has it.
    let d = Daemon::start_in(&dir, "", Some(&scenario));
    let again = migrate_web_1(&d, "compute-1", "compute-2");
    assert_eq!(run_to_end(&d, &again)["state"], "SUCCEEDED");
}

// docs/architecture.md, "Recovery": each test kills watcherd with -9 while a
// live migration runs on a `watcherd sim-cloud` process, lets the cloud do
// one thing meanwhile, restarts watcherd, and checks the recorded outcome
// against what the cloud did.

const WEB_1: &str = "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001";

/// A plan of one live migration of web-1, running when this returns, with
/// the cloud's operation id.
fn migrating(sim: &SimCloud, d: &Daemon) -> (String, String) {
    let plan = d.actuator(json!([
        {"action_type": "migrate", "input_parameters": {"migration_type": "live",
            "resource_id": WEB_1, "source_node": "compute-1", "destination_node": "compute-2"}}
    ]));
    d.start_plan(&plan);
    d.wait_action_state(&plan, "migrate", "ONGOING");
    let op = wait_for(std::time::Duration::from_secs(10), || {
        sim.operations()
            .iter()
            .find(|o| o["resource"] == WEB_1)
            .map(|o| o["id"].as_str().unwrap().to_string())
    });
    (plan, op)
}

fn web_1_host(sim: &SimCloud) -> String {
    sim.call("instance", json!({"uuid": WEB_1}))["ok"]["host"]
        .as_str()
        .unwrap()
        .to_string()
}

fn migrations_of_web_1(sim: &SimCloud) -> usize {
    sim.operations()
        .iter()
        .filter(|o| o["resource"] == WEB_1)
        .count()
}

fn op_state(sim: &SimCloud, op: &str) -> Value {
    sim.operations()
        .into_iter()
        .find(|o| o["id"] == op)
        .map(|o| o["state"].clone())
        .unwrap()
}

#[test]
fn recovery_a_migration_that_completed_while_watcherd_was_down_is_succeeded() {
    let dir = temp_dir("recovery-completed");
    let sim = SimCloud::start(&scenario_file(&dir, "live_migration_secs = 1.5", ""));
    let mut d = sim.daemon(&dir);
    let (plan, op) = migrating(&sim, &d);
    d.kill9();
    wait_for(std::time::Duration::from_secs(10), || {
        (op_state(&sim, &op) == "Completed").then_some(())
    });
    let d = sim.daemon(&dir);
    let p = d.wait_state(&plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "SUCCEEDED", "{p}");
    let rows = recovery_rows(&d, &plan);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["to_state"], "SUCCEEDED", "{rows:?}");
    assert_eq!(web_1_host(&sim), "compute-2");
    assert_eq!(
        migrations_of_web_1(&sim),
        1,
        "the migration was started again"
    );
}

#[test]
fn recovery_a_migration_still_running_at_restart_is_followed_to_its_end() {
    let dir = temp_dir("recovery-running");
    let sim = SimCloud::start(&scenario_file(&dir, "live_migration_secs = 4.0", ""));
    let mut d = sim.daemon(&dir);
    let (plan, op) = migrating(&sim, &d);
    d.kill9();
    let d = sim.daemon(&dir);
    assert!(
        op_state(&sim, &op).get("Running").is_some(),
        "still running when watcherd is back"
    );
    let p = d.wait_state(&plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "SUCCEEDED", "{p}");
    assert_eq!(web_1_host(&sim), "compute-2");
    assert_eq!(migrations_of_web_1(&sim), 1, "reattached, not restarted");
    assert!(
        recovery_rows(&d, &plan).is_empty(),
        "nothing to correct: the action stayed ONGOING"
    );
}

#[test]
fn recovery_a_migration_whose_id_was_not_journaled_yet_is_found_at_the_cloud_and_followed() {
    let dir = temp_dir("recovery-unjournaled");
    let sim = SimCloud::start(&scenario_file(&dir, "live_migration_secs = 4.0", ""));
    let mut d = sim.daemon(&dir);
    let (plan, _) = migrating(&sim, &d);
    d.kill9();
    // What a crash between the cloud's answer and the journal's write
    // leaves behind: the intent, without the operation's id.
    execute_sql(&dir, "UPDATE action_journal SET operation_id = NULL");
    let d = sim.daemon(&dir);
    let p = d.wait_state(&plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "SUCCEEDED", "{p}");
    assert_eq!(web_1_host(&sim), "compute-2");
    assert_eq!(
        migrations_of_web_1(&sim),
        1,
        "found and followed, not restarted"
    );
}

#[test]
fn recovery_a_migration_rolled_back_while_down_runs_again() {
    let dir = temp_dir("recovery-aborted");
    let sim = SimCloud::start(&scenario_file(
        &dir,
        "live_migration_secs = 3.0\nabort_secs = 0.2",
        "",
    ));
    let mut d = sim.daemon(&dir);
    let (plan, op) = migrating(&sim, &d);
    d.kill9();
    // Someone (an operator with nova) aborts it meanwhile.
    assert!(sim.call("abort", json!({"op": op})).get("ok").is_some());
    wait_for(std::time::Duration::from_secs(10), || {
        (op_state(&sim, &op) == "Aborted").then_some(())
    });
    let d = sim.daemon(&dir);
    let p = d.wait_state(&plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "SUCCEEDED", "{p}");
    let rows = recovery_rows(&d, &plan);
    assert_eq!(rows[0]["to_state"], "PENDING", "{rows:?}");
    assert_eq!(migrations_of_web_1(&sim), 2, "run again once");
    assert_eq!(web_1_host(&sim), "compute-2");
}

#[test]
fn recovery_a_migration_that_failed_while_down_is_failed_with_the_clouds_message() {
    let dir = temp_dir("recovery-failed");
    let sim = SimCloud::start(&scenario_file(&dir, "live_migration_secs = 5.0", ""));
    let mut d = sim.daemon(&dir);
    let (plan, op) = migrating(&sim, &d);
    d.kill9();
    assert!(sim.fail(&op).get("ok").is_some());
    let d = sim.daemon(&dir);
    let p = d.wait_state(&plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "FAILED", "{p}");
    let action = &d.actions(&plan)[0];
    assert_eq!(action["state"], "FAILED");
    assert!(
        action["status_message"]
            .as_str()
            .unwrap()
            .contains("simulated migration failure"),
        "{action}"
    );
    assert_eq!(web_1_host(&sim), "compute-1");
    assert_eq!(migrations_of_web_1(&sim), 1);
}

#[test]
fn recovery_a_cancel_interrupted_by_a_crash_ends_cancelled_with_the_instance_home() {
    let dir = temp_dir("recovery-cancelling");
    let sim = SimCloud::start(&scenario_file(
        &dir,
        "live_migration_secs = 5.0\nabort_secs = 1.0",
        "",
    ));
    let mut d = sim.daemon(&dir);
    let (plan, _) = migrating(&sim, &d);
    // The cancel is recorded, then watcherd dies while the abort rolls back.
    assert_eq!(d.patch_state(&plan, "CANCELLING").0, 200);
    d.kill9();
    let d = sim.daemon(&dir);
    let p = d.wait_state(&plan, &["SUCCEEDED", "FAILED", "CANCELLED"]);
    assert_eq!(p["state"], "CANCELLED", "{p}");
    assert_eq!(d.actions(&plan)[0]["state"], "CANCELLED");
    assert_eq!(web_1_host(&sim), "compute-1");
    assert_eq!(migrations_of_web_1(&sim), 1);
}
