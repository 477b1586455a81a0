//! CONTINUOUS audits: validated intervals, runs on schedule, each run's plan
//! replaces the older recommendation, suspend/resume/cancel, end_time.

use watcher_testkit as common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn create(d: &Daemon, body: Value) -> (u16, Value) {
    d.req("POST", "/v1/audits", Some(&body))
}

fn plans(d: &Daemon, audit: &str) -> Vec<Value> {
    d.get(&format!("/v1/action_plans/detail?audit_uuid={audit}"))["action_plans"]
        .as_array()
        .unwrap()
        .clone()
}

fn audit(d: &Daemon, uuid: &str) -> Value {
    d.get(&format!("/v1/audits/{uuid}"))
}

fn patch_audit(d: &Daemon, uuid: &str, path: &str, value: Value) -> (u16, Value) {
    d.req(
        "PATCH",
        &format!("/v1/audits/{uuid}"),
        Some(&json!([{"op": "replace", "path": path, "value": value}])),
    )
}

#[test]
fn each_run_recommends_a_plan_and_cancels_the_older_recommendation() {
    let d = Daemon::start("continuous-runs");
    let (status, a) = create(
        &d,
        json!({"audit_type": "CONTINUOUS", "interval": "1", "goal": "dummy", "strategy": "dummy",
               "auto_trigger": false, "force": false}),
    );
    assert_eq!(status, 201, "{a}");
    assert_eq!(a["interval"], "1");
    let uuid = a["uuid"].as_str().unwrap().to_string();

    // Three runs: each leaves exactly one RECOMMENDED plan, the newest.
    let all = wait_for(Duration::from_secs(20), || {
        let p = plans(&d, &uuid);
        (p.len() >= 3).then_some(p)
    });
    let a = audit(&d, &uuid);
    assert_eq!(a["state"], "ONGOING", "{a}");
    assert!(a["next_run_time"].is_string(), "{a}");
    let recommended: Vec<&Value> = all.iter().filter(|p| p["state"] == "RECOMMENDED").collect();
    assert!(recommended.len() <= 1, "{all:?}");
    let cancelled = all.iter().filter(|p| p["state"] == "CANCELLED").count();
    assert!(cancelled >= all.len() - 1 - recommended.len(), "{all:?}");
    // A replaced plan's actions are cancelled with it, and its history says why.
    let old = all.iter().find(|p| p["state"] == "CANCELLED").unwrap();
    let old = old["uuid"].as_str().unwrap();
    assert!(d.actions(old).iter().all(|a| a["state"] == "CANCELLED"));
    let history = d.get(&format!("/v1/action_plans/{old}/history"));
    assert!(
        history.to_string().contains("replaced by action plan"),
        "{history}"
    );

    // Suspended: the planned time passes without a run.
    let (status, body) = patch_audit(&d, &uuid, "/state", json!("SUSPENDED"));
    assert_eq!(status, 200, "{body}");
    let count = plans(&d, &uuid).len();
    let next = audit(&d, &uuid)["next_run_time"]
        .as_str()
        .unwrap()
        .to_string();
    let next = chrono::NaiveDateTime::parse_from_str(&next, "%Y-%m-%dT%H:%M:%S%.f")
        .unwrap()
        .and_utc();
    wait_for(Duration::from_secs(10), || {
        (chrono::Utc::now() > next + chrono::Duration::milliseconds(1500)).then_some(())
    });
    assert_eq!(plans(&d, &uuid).len(), count);

    // Resumed: it runs again.
    let (status, body) = patch_audit(&d, &uuid, "/state", json!("ONGOING"));
    assert_eq!(status, 200, "{body}");
    wait_for(Duration::from_secs(10), || {
        (plans(&d, &uuid).len() > count).then_some(())
    });

    // Cancelled: it stops for good, and can then be deleted.
    let (status, body) = patch_audit(&d, &uuid, "/state", json!("CANCELLED"));
    assert_eq!(status, 200, "{body}");
    let count = plans(&d, &uuid).len();
    let at = chrono::Utc::now() + chrono::Duration::seconds(2);
    wait_for(Duration::from_secs(10), || {
        (chrono::Utc::now() > at).then_some(())
    });
    assert!(plans(&d, &uuid).len() <= count + 1); // a run already under way may finish
    assert_eq!(audit(&d, &uuid)["state"], "CANCELLED");
    let (status, _) = d.req("DELETE", &format!("/v1/audits/{uuid}"), None);
    assert_eq!(status, 204);
}

#[test]
fn an_audit_ends_at_its_end_time() {
    let d = Daemon::start("continuous-end");
    let end = (chrono::Utc::now() + chrono::Duration::seconds(2))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let (status, a) = create(
        &d,
        json!({"audit_type": "CONTINUOUS", "interval": "1", "goal": "dummy", "end_time": end}),
    );
    assert_eq!(status, 201, "{a}");
    assert_eq!(a["end_time"], format!("{end}"));
    let uuid = a["uuid"].as_str().unwrap().to_string();
    wait_for(Duration::from_secs(15), || {
        (audit(&d, &uuid)["state"] == "SUCCEEDED").then_some(())
    });
    assert!(!plans(&d, &uuid).is_empty());
}

#[test]
fn a_cron_audit_waits_for_its_minute_and_says_when() {
    let d = Daemon::start("continuous-cron");
    let start = (chrono::Utc::now() + chrono::Duration::hours(2))
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string();
    let (status, a) = create(
        &d,
        json!({"audit_type": "CONTINUOUS", "interval": "*/30 * * * *", "goal": "dummy",
               "start_time": start}),
    );
    assert_eq!(status, 201, "{a}");
    let uuid = a["uuid"].as_str().unwrap().to_string();
    let a = wait_for(Duration::from_secs(10), || {
        let a = audit(&d, &uuid);
        a["next_run_time"].is_string().then_some(a)
    });
    // Not before start_time, on a half hour, and nothing run yet.
    let next = a["next_run_time"].as_str().unwrap();
    assert!(next.ends_with(":00:00") || next.ends_with(":30:00"), "{a}");
    assert!(next > start.trim_end_matches("+00:00"), "{next} {start}");
    assert_eq!(a["state"], "PENDING");
    assert!(plans(&d, &uuid).is_empty());

    // A new interval is checked, then replaces the plan of the next run.
    let (status, body) = patch_audit(&d, &uuid, "/interval", json!("0 0 1 1 *"));
    assert_eq!(status, 200, "{body}");
    let a = wait_for(Duration::from_secs(10), || {
        let a = audit(&d, &uuid);
        a["next_run_time"]
            .as_str()
            .is_some_and(|t| t.contains("-01-01T00:00:00"))
            .then_some(a)
    });
    assert_eq!(a["interval"], "0 0 1 1 *");
    let (status, body) = patch_audit(&d, &uuid, "/interval", json!("61 * * * *"));
    assert_eq!(status, 400);
    assert!(faultstring(&body).contains("minute field"), "{body}");
    assert_eq!(audit(&d, &uuid)["interval"], "0 0 1 1 *");
}

#[test]
fn bad_schedules_are_refused_with_the_reason_and_create_nothing() {
    let d = Daemon::start("continuous-bad");
    let cases = [
        (
            json!({"audit_type": "CONTINUOUS", "goal": "dummy"}),
            400,
            "Interval of audit must be specified for CONTINUOUS.",
        ),
        (
            json!({"audit_type": "CONTINUOUS", "goal": "dummy", "interval": "every hour"}),
            400,
            "five fields",
        ),
        (
            json!({"audit_type": "CONTINUOUS", "goal": "dummy", "interval": "0"}),
            400,
            "between 1 and",
        ),
        (
            json!({"audit_type": "CONTINUOUS", "goal": "dummy", "interval": "0 0 30 2 *"}),
            400,
            "never fires",
        ),
        (
            json!({"audit_type": "ONESHOT", "goal": "dummy", "interval": "60"}),
            400,
            "Interval of audit must not be set for ONESHOT.",
        ),
        (
            json!({"audit_type": "ONESHOT", "goal": "dummy", "start_time": "2030-01-01T00:00:00"}),
            400,
            "Start or End time of audit must not be set for ONESHOT.",
        ),
        (
            json!({"audit_type": "CONTINUOUS", "goal": "dummy", "interval": "60",
                   "start_time": "2030-01-02T00:00:00", "end_time": "2030-01-01T00:00:00"}),
            400,
            "must be after its start_time",
        ),
        (
            json!({"audit_type": "CONTINUOUS", "goal": "dummy", "interval": "60",
                   "start_time": "next tuesday"}),
            400,
            "Invalid start_time 'next tuesday'",
        ),
    ];
    for (body, code, words) in cases {
        let (status, resp) = create(&d, body.clone());
        assert_eq!(status, code, "{body} -> {resp}");
        assert!(faultstring(&resp).contains(words), "{body} -> {resp}");
    }
    // start_time needs microversion 1.1.
    let r = ureq::post(&format!("{}/v1/audits", d.url))
        .set("OpenStack-API-Version", "infra-optim 1.0")
        .send_json(
            json!({"audit_type": "CONTINUOUS", "goal": "dummy", "interval": "60",
                          "start_time": "2030-01-01T00:00:00"}),
        );
    assert!(matches!(r, Err(ureq::Error::Status(406, _))), "{r:?}");
    assert_eq!(d.get("/v1/audits")["audits"], json!([]));
}
