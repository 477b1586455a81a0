//! `watcherd purge` and `[purge]` retention: deleted records go for good
//! with their actions and history, orphans only when asked, and a plan that
//! may run is never touched, even when its audit was deleted.

use watcher_testkit as common;

use common::*;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// `watcherd purge ARGS` on the database of the daemon in `dir`: exit
/// success, stdout and stderr.
fn purge(dir: &Path, args: &[&str]) -> (bool, String, String) {
    run_watcherd(dir, "purge", args)
}

/// The count in the summary line `what`.
fn count(out: &str, what: &str) -> usize {
    out.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(what)
                .map(|n| n.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {what:?} in {out}"))
}

fn rows(dir: &Path, table: &str, uuid: &str) -> i64 {
    query_i64(
        dir,
        &format!("SELECT COUNT(*) FROM {table} WHERE uuid = '{uuid}'"),
    )
}

fn history_rows(dir: &Path, plan: &str) -> i64 {
    query_i64(
        dir,
        &format!("SELECT COUNT(*) FROM state_history WHERE action_plan_uuid = '{plan}'"),
    )
}

fn audit_of(d: &Daemon, plan: &str) -> String {
    d.plan(plan)["audit_uuid"].as_str().unwrap().to_string()
}

#[test]
fn purge_removes_deleted_records_and_orphans_but_never_a_plan_that_may_run() {
    let dir = temp_dir("purge");
    let d = Daemon::start_in(&dir, "", None);
    let nops = json!([{"action_type": "nop"}, {"action_type": "nop"}, {"action_type": "nop"}]);
    // A: deleted plan (with its audit).  B: live plan of a deleted audit
    // (an orphan).  C: running plan of a deleted audit.  D: untouched.
    let a = d.actuator(nops.clone());
    let b = d.actuator(nops.clone());
    let c = d.actuator(json!([{"action_type": "sleep", "input_parameters": {"duration": 600}}]));
    let live = d.actuator(nops.clone());
    assert_eq!(
        d.req("DELETE", &format!("/v1/action_plans/{a}"), None).0,
        204
    );
    let audit_live = audit_of(&d, &live);
    for plan in [&b, &c] {
        let audit = audit_of(&d, plan);
        let (status, body) = d.req("DELETE", &format!("/v1/audits/{audit}"), None);
        assert_eq!(status, 204, "{body}");
    }
    d.start_plan(&c);
    d.wait_action_state(&c, "sleep", "ONGOING");
    let (status, template) = d.req(
        "POST",
        "/v1/audit_templates",
        Some(&json!({"name": "old", "goal": "unclassified"})),
    );
    assert_eq!(status, 201, "{template}");
    let template = template["uuid"].as_str().unwrap().to_string();
    assert_eq!(
        d.req("DELETE", &format!("/v1/audit_templates/{template}"), None)
            .0,
        204
    );
    assert!(history_rows(&dir, &a) > 0);

    // Scripts must say --yes: without a terminal nothing is asked or purged.
    let (ok, _, err) = purge(&dir, &[]);
    assert!(!ok);
    assert!(err.contains("add --yes"), "{err}");
    assert_eq!(rows(&dir, "action_plans", &a), 1);

    // Within the age limit nothing goes.
    let (ok, out, err) = purge(&dir, &["--age-in-days", "1", "--yes"]);
    assert!(ok, "{err}");
    assert!(out.contains("Nothing to purge"), "{out}");

    // A dry run counts and removes nothing. It would take A and its 3
    // actions, the orphan B and its 3, B's audit (C's stays with C, which
    // may run; A's was not deleted) and the template.
    let (ok, out, err) = purge(&dir, &["--dry-run"]);
    assert!(ok, "{err}");
    assert_eq!(count(&out, "action plans"), 2, "{out}");
    assert_eq!(count(&out, "actions"), 6, "{out}");
    assert_eq!(count(&out, "audits"), 1, "{out}");
    assert_eq!(count(&out, "audit templates"), 1, "{out}");
    assert_eq!(rows(&dir, "action_plans", &a), 1);

    // Orphans excluded: only what was deleted.
    let (ok, out, err) = purge(&dir, &["--exclude-orphans", "--yes"]);
    assert!(ok, "{err}");
    assert_eq!(count(&out, "action plans"), 1, "{out}");
    assert_eq!(count(&out, "actions"), 3, "{out}");
    assert_eq!(count(&out, "audits"), 0, "{out}");
    assert_eq!(rows(&dir, "action_plans", &a), 0);
    assert_eq!(history_rows(&dir, &a), 0);
    assert_eq!(rows(&dir, "action_plans", &b), 1);

    // Then the orphan, its actions, history and audit.
    let audit_b = audit_of(&d, &b);
    let (ok, out, err) = purge(&dir, &["--yes"]);
    assert!(ok, "{err}");
    assert_eq!(count(&out, "action plans"), 1, "{out}");
    assert_eq!(count(&out, "audits"), 1, "{out}");
    assert_eq!(d.req("GET", &format!("/v1/action_plans/{b}"), None).0, 404);
    assert_eq!(rows(&dir, "audits", &audit_b), 0);
    assert_eq!(history_rows(&dir, &b), 0);
    assert_eq!(
        query_i64(
            &dir,
            &format!("SELECT COUNT(*) FROM state_history WHERE uuid = '{audit_b}'")
        ),
        0
    );

    // The running plan and the live one are whole, and the cancel works.
    assert_eq!(d.plan(&live)["state"], "RECOMMENDED");
    assert_eq!(rows(&dir, "audits", &audit_live), 1);
    assert_eq!(d.plan(&c)["state"], "ONGOING");
    assert_eq!(d.patch_state(&c, "CANCELLING").0, 200);
    d.wait_state(&c, &["CANCELLED"]);
    assert_history_unbroken(&d, &c);
    let (ok, out, _) = purge(&dir, &["--yes"]);
    assert!(ok);
    // C ended; its audit is deleted: now it is an orphan like B was.
    assert_eq!(count(&out, "action plans"), 1, "{out}");
    assert_eq!(d.req("GET", &format!("/v1/action_plans/{c}"), None).0, 404);
}

#[test]
fn max_number_purges_whole_plans_within_the_limit_and_a_goal_narrows_it() {
    let dir = temp_dir("purge-max");
    let d = Daemon::start_in(&dir, "", None);
    let plans: Vec<String> = (0..3)
        .map(|_| d.actuator(json!([{"action_type": "nop"}, {"action_type": "nop"}])))
        .collect();
    for p in &plans {
        assert_eq!(
            d.req("DELETE", &format!("/v1/action_plans/{p}"), None).0,
            204
        );
    }
    let (ok, out, err) = purge(&dir, &["--goal", "no-such-goal", "--dry-run"]);
    assert!(!ok);
    assert!(err.contains("no-such-goal"), "{err}{out}");
    let (ok, out, _) = purge(&dir, &["--goal", "server_consolidation", "--dry-run"]);
    assert!(ok);
    assert!(out.contains("Nothing to purge"), "{out}");
    // 7 objects allowed: two whole plans (3 each), not a third half.
    let (ok, out, err) = purge(&dir, &["--max-number", "7", "--yes"]);
    assert!(ok, "{err}");
    assert_eq!(count(&out, "action plans"), 2, "{out}");
    assert_eq!(count(&out, "actions"), 4, "{out}");
    assert!(out.contains("--max-number stopped"), "{out}");
    let (ok, out, _) = purge(&dir, &["--goal", "unclassified", "--yes"]);
    assert!(ok);
    assert_eq!(count(&out, "action plans"), 1, "{out}");
    assert_eq!(query_i64(&dir, "SELECT COUNT(*) FROM action_plans"), 0);
    assert_eq!(query_i64(&dir, "SELECT COUNT(*) FROM actions"), 0);
}

#[test]
fn retention_purges_what_was_deleted_long_enough_ago_on_its_own() {
    let dir = temp_dir("purge-retention");
    let config = write_config_with(
        &dir,
        "",
        "",
        // About a second: a plan deleted now goes at the next round.
        "[purge]\ndeleted_after_days = 0.00001\nevery_secs = 1\n",
    );
    let d = Daemon::start_with_config(&dir, config, None);
    let plan = d.actuator(json!([{"action_type": "nop"}]));
    let kept = d.actuator(json!([{"action_type": "nop"}]));
    assert_eq!(
        d.req("DELETE", &format!("/v1/action_plans/{plan}"), None).0,
        204
    );
    // The log line follows the purge's commit: wait for both.
    wait_for(Duration::from_secs(20), || {
        (rows(&dir, "action_plans", &plan) == 0 && d.log().contains("retention: purged"))
            .then_some(())
    });
    assert_eq!(history_rows(&dir, &plan), 0);
    assert_eq!(d.plan(&kept)["state"], "RECOMMENDED");
}
