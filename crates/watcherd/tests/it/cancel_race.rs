//! A cancel racing with starts, finishes and other cancels, hundreds of
//! times with random (seeded) timing; every invariant is checked each time.

use watcher_testkit as common;

use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use watcher_cloud::rng::SplitMix64;
use watcher_core::*;

const ROUNDS: usize = 300;

fn check_invariants(d: &Daemon, plan: &str) -> String {
    let p = d.plan(plan);
    let state: ActionPlanState = p["state"].as_str().unwrap().parse().unwrap();
    assert!(
        matches!(
            state,
            ActionPlanState::Cancelled | ActionPlanState::Succeeded
        ),
        "plan {plan} ended {state}: {p}"
    );
    let actions = d.actions(plan);
    for a in &actions {
        let s: ActionState = a["state"].as_str().unwrap().parse().unwrap();
        assert!(
            s.is_finished(),
            "action {} is {s} in a finished plan",
            a["uuid"]
        );
    }
    let history = d.get(&format!("/v1/action_plans/{plan}/history"))["history"]
        .as_array()
        .unwrap()
        .clone();
    // No action starts after the cancel was written.
    let cancel_seq = history
        .iter()
        .find(|h| {
            h["resource"] == "action_plan"
                && h["actor"] == "api"
                && matches!(h["to_state"].as_str(), Some("CANCELLING" | "CANCELLED"))
        })
        .map(|h| h["seq"].as_i64().unwrap());
    if let Some(cancel_seq) = cancel_seq {
        for h in &history {
            if h["resource"] == "action" && h["to_state"] == "ONGOING" {
                assert!(
                    h["seq"].as_i64().unwrap() < cancel_seq,
                    "action {} started after the cancel: {h}",
                    h["uuid"]
                );
            }
        }
    }
    // History is complete: each record's rows chain from creation to its
    // current state, and every step is in the transition tables.
    let mut last: HashMap<String, String> = HashMap::new();
    for h in &history {
        let uuid = h["uuid"].as_str().unwrap().to_string();
        let from = h["from_state"].as_str().map(str::to_string);
        let to = h["to_state"].as_str().unwrap().to_string();
        assert_eq!(from.as_ref(), last.get(&uuid), "broken chain at {h}");
        let actor: Actor = serde_json::from_value(h["actor"].clone()).unwrap();
        if let Some(from) = &from {
            let allowed = if h["resource"] == "action" {
                action_transition_allowed(from.parse().unwrap(), to.parse().unwrap(), actor)
            } else {
                plan_transition_allowed(from.parse().unwrap(), to.parse().unwrap(), actor)
            };
            assert!(allowed, "transition not in the tables: {h}");
        }
        last.insert(uuid, to);
    }
    assert_eq!(last.get(plan).map(String::as_str), Some(state.as_str()));
    for a in &actions {
        assert_eq!(
            last.get(a["uuid"].as_str().unwrap()),
            Some(&a["state"].as_str().unwrap().to_string())
        );
    }
    state.to_string()
}

fn plan_actions() -> Value {
    let mut actions = vec![];
    for i in 0..4 {
        actions
            .push(json!({"action_type": "nop", "input_parameters": {"message": format!("n{i}")}}));
    }
    actions.push(json!({"action_type": "sleep", "input_parameters": {"duration": 0.003}}));
    actions.push(json!({"action_type": "sleep", "input_parameters": {"duration": 0.002}}));
    Value::Array(actions)
}

#[test]
fn a_cancel_at_any_moment_leaves_every_plan_consistent() {
    let dir = temp_dir("race");
    let d = Daemon::start_in(&dir, "max_concurrent_plans = 8\n[applier.limits]\nper_plan = 4\n[applier.limits.per_type]\nnop = 2", None);
    let mut rng = SplitMix64::new(0x5eed);
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for round in 0..ROUNDS {
        let plan = d.actuator(plan_actions());
        d.start_plan(&plan);
        let delay_us = rng.next_u64() % 9_000;
        std::thread::sleep(Duration::from_micros(delay_us));
        // Exactly what python-watcherclient's `actionplan cancel` does.
        let current = d.plan(&plan);
        let target = if current["state"] == "ONGOING" {
            "CANCELLING"
        } else {
            "CANCELLED"
        };
        let (status, body) = d.patch_state(&plan, target);
        if round % 3 == 0 {
            // A second, concurrent-ish cancel must not be an error.
            let again = d.patch_state(&plan, "CANCELLING").0;
            assert!(again == 200 || again == 400, "second cancel got {again}");
        }
        match status {
            200 => {}
            // Too late: the plan had already finished.
            400 => assert!(faultstring(&body).contains("SUCCEEDED"), "{body}"),
            other => panic!("cancel got {other}: {body}"),
        }
        d.wait_state(&plan, &["CANCELLED", "SUCCEEDED", "FAILED"]);
        *outcomes.entry(check_invariants(&d, &plan)).or_default() += 1;
    }
    // The timing spread must really have exercised both sides of the race.
    assert!(
        outcomes.get("CANCELLED").copied().unwrap_or(0) > 10,
        "{outcomes:?}"
    );
    eprintln!("outcomes over {ROUNDS} rounds: {outcomes:?}");
}
