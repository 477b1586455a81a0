//! The v1 API's shapes, codes and error bodies; bad input changes nothing.

use watcher_testkit as common;

use common::*;
use serde_json::{json, Value};

#[test]
fn unknown_uuids_get_404_with_watchers_error_body() {
    let d = Daemon::start("api-404");
    let (status, body) = d.req(
        "GET",
        "/v1/action_plans/00000000-0000-0000-0000-000000000000",
        None,
    );
    assert_eq!(status, 404);
    assert_eq!(
        faultstring(&body),
        "ActionPlan 00000000-0000-0000-0000-000000000000 could not be found"
    );
    let inner: Value = serde_json::from_str(body["error_message"].as_str().unwrap()).unwrap();
    assert_eq!(inner["faultcode"], "Client");
    let (status, _) = d.req(
        "GET",
        "/v1/actions/00000000-0000-0000-0000-000000000000",
        None,
    );
    assert_eq!(status, 404);
    let (status, body) = d.req("GET", "/v1/action_plans/not-a-uuid", None);
    assert_eq!(status, 400, "{body}");
}

#[test]
fn malformed_json_and_bad_patches_are_refused_and_change_nothing() {
    let d = Daemon::start("api-bad-input");
    let plan = d.recommend("dummy", "dummy", json!({}));
    let history = |d: &Daemon| d.get(&format!("/v1/action_plans/{plan}/history"));
    let before = history(&d);
    let (status, body) = d.raw("PATCH", &format!("/v1/action_plans/{plan}"), "[{\"op\": ");
    assert_eq!(status, 400);
    assert!(
        body.contains("Request is not in valid JSON format"),
        "{body}"
    );
    let bad: Vec<Value> = vec![
        json!({"op": "replace", "path": "/state", "value": "PENDING"}),
        json!([{"op": "move", "path": "/state", "value": "PENDING"}]),
        json!([{"op": "replace", "path": "/state", "value": "NOT_A_STATE"}]),
        json!([{"op": "replace", "path": "/uuid", "value": "x"}]),
        json!([{"op": "replace", "path": "/state"}]),
        json!([{"op": "replace", "path": "/state", "value": "ONGOING"}]),
        json!([{"op": "replace", "path": "/state", "value": "SUCCEEDED"}]),
        json!([{"op": "replace", "path": "/hostname", "value": "evil"}]),
        json!([{"op": "replace", "path": "/state'; DROP TABLE actions; --", "value": "PENDING"}]),
    ];
    for b in bad {
        let (status, body) = d.req("PATCH", &format!("/v1/action_plans/{plan}"), Some(&b));
        assert_eq!(status, 400, "{b} -> {body}");
        faultstring(&body);
    }
    assert_eq!(history(&d), before);
    assert_eq!(d.plan(&plan)["state"], "RECOMMENDED");
}

#[test]
fn an_illegal_transition_names_both_states_like_upstream() {
    let d = Daemon::start("api-transition");
    let plan = d.actuator(json!([{"action_type": "nop", "input_parameters": {"message": "x"}}]));
    d.start_plan(&plan);
    d.wait_state(&plan, &["SUCCEEDED"]);
    let (status, body) = d.patch_state(&plan, "PENDING");
    assert_eq!(status, 400);
    assert_eq!(
        faultstring(&body),
        "Couldn't apply patch '[{'path': '/state', 'op': 'replace', 'value': 'PENDING'}]'. Reason: State transition not allowed: (SUCCEEDED -> PENDING)"
    );
    let (status, body) = d.req(
        "POST",
        &format!("/v1/action_plans/{plan}/start"),
        Some(&json!({})),
    );
    assert_eq!(status, 400);
    assert_eq!(
        faultstring(&body),
        "Couldn't start when state is 'SUCCEEDED'."
    );
}

#[test]
fn running_plans_cannot_be_deleted_and_finished_ones_can() {
    let d = Daemon::start("api-delete");
    let plan = d.recommend("dummy", "dummy", json!({"para1": 30}));
    d.start_plan(&plan);
    d.wait_state(&plan, &["ONGOING"]);
    let (status, body) = d.req("DELETE", &format!("/v1/action_plans/{plan}"), None);
    assert_eq!(status, 400);
    assert_eq!(
        faultstring(&body),
        "Couldn't delete when state is 'ONGOING'."
    );
    d.patch_state(&plan, "CANCELLING");
    d.wait_state(&plan, &["CANCELLED"]);
    let (status, _) = d.req("DELETE", &format!("/v1/action_plans/{plan}"), None);
    assert_eq!(status, 204);
    assert_eq!(
        d.req("GET", &format!("/v1/action_plans/{plan}"), None).0,
        404
    );
}

#[test]
fn invalid_audits_are_refused_with_the_reason_and_create_nothing() {
    let d = Daemon::start("api-audit");
    let count = |d: &Daemon| d.get("/v1/audits")["audits"].as_array().unwrap().len();
    let cases = [
        (
            json!({"audit_type": "ONESHOT", "goal": "dummy", "parameters": {"para9": 1}}),
            "para9",
        ),
        (
            json!({"audit_type": "ONESHOT", "goal": "dummy", "parameters": {"para1": "lots"}}),
            "para1",
        ),
        (
            json!({"audit_type": "ONESHOT", "goal": "dummy", "state": "SUCCEEDED"}),
            "read only",
        ),
        (
            json!({"audit_type": "ONESHOT", "goal": "dummy", "bogus": 1}),
            "bogus",
        ),
        (
            json!({"audit_type": "SOMETIMES", "goal": "dummy"}),
            "SOMETIMES",
        ),
        (json!({"goal": "dummy"}), "audit_type"),
        (
            json!({"audit_type": "ONESHOT", "goal": "unclassified", "strategy": "actuator",
                "parameters": {"actions": [{"action_type": "sleep", "input_parameters": {"duration": "soon"}}]}}),
            "'duration'",
        ),
    ];
    for (body, expect) in cases {
        let (status, resp) = d.req("POST", "/v1/audits", Some(&body));
        if status == 201 {
            // Strategy-level problems surface when the engine runs the audit.
            let uuid = resp["uuid"].as_str().unwrap();
            let audit = wait_for(std::time::Duration::from_secs(10), || {
                let a = d.get(&format!("/v1/audits/{uuid}"));
                (a["state"] == "FAILED").then_some(a)
            });
            assert!(
                audit["status_message"].as_str().unwrap().contains(expect),
                "{audit}"
            );
            continue;
        }
        assert_eq!(status, 400, "{body} -> {resp}");
        assert!(faultstring(&resp).contains(expect), "{body} -> {resp}");
    }
    assert_eq!(
        count(&d),
        1,
        "only the actuator audit was created, and it FAILED"
    );
    let (status, _) = d.req(
        "POST",
        "/v1/audits",
        Some(&json!({"audit_type": "ONESHOT", "goal": "nope"})),
    );
    assert_eq!(status, 404);
}

#[test]
fn lists_have_links_and_next_only_on_full_pages_and_accept_bookmarks_and_trailing_slashes() {
    let d = Daemon::start("api-lists");
    let p1 = d.recommend("dummy", "dummy", json!({}));
    d.recommend("dummy", "dummy", json!({}));
    let page = d.get("/v1/action_plans?limit=1");
    assert_eq!(page["action_plans"].as_array().unwrap().len(), 1);
    let next = page["next"].as_str().unwrap();
    assert!(
        next.contains("marker=") && next.contains("limit=1"),
        "{next}"
    );
    let all = d.get("/v1/action_plans/?limit=5");
    assert!(all.get("next").is_none());
    assert_eq!(all["action_plans"].as_array().unwrap().len(), 2);
    let item = &all["action_plans"][0];
    assert!(item["efficacy_indicators"].is_array() && item["global_efficacy"].is_array());
    assert_eq!(item["links"][1]["rel"], "bookmark");
    assert_eq!(d.get(&format!("/action_plans/{p1}"))["uuid"], p1.as_str());
    let (status, body) = d.req("GET", "/v1/action_plans?sort_key=password", None);
    assert_eq!(status, 400, "{body}");
    let (status, _) = d.req("GET", "/v1/action_plans?limit=-1", None);
    assert_eq!(status, 400);
    let desc = d.get("/v1/action_plans?sort_key=created_at&sort_dir=desc");
    assert_ne!(desc["action_plans"][0]["uuid"], p1.as_str());
}

#[test]
fn microversions_are_negotiated_with_upstreams_headers() {
    let d = Daemon::start("api-versions");
    let plan = d.recommend("dummy", "dummy", json!({}));
    let get = |v: &str| {
        let r = ureq::get(&format!("{}/v1/action_plans/{plan}", d.url))
            .set("OpenStack-API-Version", v)
            .call();
        match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        }
    };
    let r = get("infra-optim 1.5");
    assert_eq!(r.header("OpenStack-API-Version"), Some("infra-optim 1.5"));
    assert_eq!(r.header("OpenStack-API-Maximum-Version"), Some("1.7"));
    let body: Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
    assert!(body.get("status_message").is_some());
    let body: Value = serde_json::from_str(&get("infra-optim 1.0").into_string().unwrap()).unwrap();
    assert!(body.get("status_message").is_none(), "hidden below 1.5");
    let r = get("infra-optim 1.99");
    assert_eq!(r.status(), 406);
    assert_eq!(r.header("OpenStack-API-Minimum-Version"), Some("1.0"));
    // What upstream cannot read as numbers is 1.0, as upstream answers it.
    for odd in ["infra-optim 1.latest", "infra-optim 1.x", "infra-optim v2"] {
        let r = get(odd);
        assert_eq!(r.status(), 200, "{odd}");
        assert_eq!(
            r.header("OpenStack-API-Version"),
            Some("infra-optim 1.0"),
            "{odd}"
        );
    }
    assert_eq!(get("infra-optim 1.5.1").status(), 406);
}

#[test]
fn skipping_an_action_needs_a_plan_that_has_not_started() {
    let d = Daemon::start("api-skip");
    let plan = d.recommend("dummy", "dummy", json!({}));
    let action = d.actions(&plan)[0]["uuid"].as_str().unwrap().to_string();
    let ops = json!([{"op": "replace", "path": "/state", "value": "SKIPPED"}, {"op": "replace", "path": "/status_message", "value": "not today"}]);
    let (status, body) = d.req("PATCH", &format!("/v1/actions/{action}"), Some(&ops));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "SKIPPED");
    assert_eq!(
        body["status_message"],
        "Action skipped by user. Reason: not today"
    );
    d.start_plan(&plan);
    let p = d.wait_state(&plan, &["SUCCEEDED", "FAILED"]);
    assert_eq!(p["state"], "SUCCEEDED");
    assert_eq!(p["status_message"], "One or more actions were skipped.");
    let other = d.actions(&plan)[1]["uuid"].as_str().unwrap().to_string();
    let (status, body) = d.req("PATCH", &format!("/v1/actions/{other}"), Some(&ops));
    assert_eq!(status, 409, "{body}");
}

#[test]
fn services_report_the_applier_and_decision_engine_alive_and_scoring_engines_are_listed() {
    let d = Daemon::start("api-services");
    let list = d.get("/v1/services")["services"]
        .as_array()
        .unwrap()
        .clone();
    let mut names: Vec<&str> = list.iter().map(|s| s["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["watcher-applier", "watcher-decision-engine"]);
    assert!(
        list.iter()
            .all(|s| s["status"] == "ACTIVE" && s["host"] == "test-host"),
        "{list:?}"
    );
    let id = list[0]["id"].as_i64().unwrap();
    assert_eq!(d.get(&format!("/v1/services/{id}"))["id"], id);
    assert!(d.get("/v1/services/watcher-applier")["last_seen_up"].is_string());
    assert_eq!(
        d.get("/v1/services?limit=1")["services"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let engines = d.get("/v1/scoring_engines")["scoring_engines"].clone();
    let names: Vec<&str> = engines
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "dummy_scorer",
            "dummy_avg_scorer",
            "dummy_min_scorer",
            "dummy_max_scorer"
        ]
    );
    assert!(engines[0].get("metainfo").is_none(), "{engines}");
    let uuid = engines[0]["uuid"].as_str().unwrap();
    let shown = d.get(&format!("/v1/scoring_engines/{uuid}"));
    assert!(
        shown["metainfo"]
            .as_str()
            .unwrap()
            .contains("cpu-intensive"),
        "{shown}"
    );
    assert_eq!(
        d.get("/v1/scoring_engines/dummy_avg_scorer")["name"],
        "dummy_avg_scorer"
    );
    let page = d.get(&format!("/v1/scoring_engines/detail?limit=1&marker={uuid}"));
    assert_eq!(
        page["scoring_engines"][0]["name"], "dummy_avg_scorer",
        "{page}"
    );
    assert!(page["scoring_engines"][0]["metainfo"].is_string());
    let desc = d.get("/v1/scoring_engines?sort_key=name&sort_dir=desc");
    assert_eq!(desc["scoring_engines"][0]["name"], "dummy_scorer");
    assert_eq!(d.req("GET", "/v1/scoring_engines/x", None).0, 404);
    assert_eq!(
        d.req("GET", "/v1/scoring_engines?sort_key=bogus", None).0,
        400
    );
}

#[test]
fn audits_can_be_renamed_and_deleted_once_finished_but_not_moved_illegally() {
    let d = Daemon::start("api-audit-patch");
    let plan = d.recommend("dummy", "dummy", json!({}));
    let audit = d.plan(&plan)["audit_uuid"].as_str().unwrap().to_string();
    let (status, body) = d.req(
        "PATCH",
        &format!("/v1/audits/{audit}"),
        Some(&json!([{"op": "replace", "path": "/name", "value": "renamed"}])),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(d.get("/v1/audits/renamed")["uuid"], audit.as_str());
    let (status, body) = d.req(
        "PATCH",
        &format!("/v1/audits/{audit}"),
        Some(&json!([{"op": "replace", "path": "/state", "value": "ONGOING"}])),
    );
    assert_eq!(status, 400);
    assert!(
        faultstring(&body).contains("State transition not allowed: (SUCCEEDED -> ONGOING)"),
        "{body}"
    );
    let (status, _) = d.req(
        "PATCH",
        &format!("/v1/audits/{audit}"),
        Some(&json!([{"op": "replace", "path": "/audit_type", "value": "EVENT"}])),
    );
    assert_eq!(status, 400);
    let (status, _) = d.req("DELETE", &format!("/v1/audits/{audit}"), None);
    assert_eq!(status, 204);
    assert_eq!(d.req("GET", &format!("/v1/audits/{audit}"), None).0, 404);
    // Deleting an audit does not delete its plan, as upstream.
    assert_eq!(d.plan(&plan)["state"], "RECOMMENDED");
}

#[test]
fn audit_templates_are_managed_and_audits_created_from_them_take_their_defaults() {
    let d = Daemon::start("api-templates");
    let body = json!({"name": "nightly", "goal": "dummy", "strategy": "dummy", "description": "every night"});
    let (status, t) = d.req("POST", "/v1/audit_templates", Some(&body));
    assert_eq!(status, 201, "{t}");
    assert_eq!(
        (t["goal_name"].as_str(), t["strategy_name"].as_str()),
        (Some("dummy"), Some("dummy"))
    );
    let (status, dup) = d.req("POST", "/v1/audit_templates", Some(&body));
    assert_eq!(status, 409, "{dup}");
    let (status, bad) = d.req(
        "POST",
        "/v1/audit_templates",
        Some(&json!({"name": "x", "goal": "dummy", "strategy": "actuator"})),
    );
    assert_eq!(status, 400);
    assert!(
        faultstring(&bad).contains("not available for goal dummy"),
        "{bad}"
    );
    // default_parameters need 1.7 (the helper sends 1.5).
    let (status, _) = d.req(
        "POST",
        "/v1/audit_templates",
        Some(&json!({"name": "y", "goal": "dummy", "default_parameters": {"para1": 2}})),
    );
    assert_eq!(status, 406);
    let r = ureq::post(&format!("{}/v1/audit_templates", d.url))
        .set("OpenStack-API-Version", "infra-optim 1.7")
        .set("Content-Type", "application/json")
        .send_string(&json!({"name": "with-defaults", "goal": "dummy", "strategy": "dummy", "default_parameters": {"para1": 2}}).to_string())
        .unwrap();
    let with_defaults: Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
    assert_eq!(with_defaults["default_parameters"], json!({"para1": 2}));

    let uuid = t["uuid"].as_str().unwrap();
    let (status, patched) = d.req(
        "PATCH",
        "/v1/audit_templates/nightly",
        Some(&json!([{"op": "replace", "path": "/description", "value": "weekly"}])),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["description"], "weekly");
    assert_eq!(
        d.get("/v1/audit_templates")["audit_templates"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let (status, audit) = d.req("POST", "/v1/audits", Some(&json!({"audit_type": "ONESHOT", "audit_template_uuid": with_defaults["uuid"], "parameters": {"para2": "hi"}})));
    assert_eq!(status, 201, "{audit}");
    assert_eq!(audit["parameters"], json!({"para1": 2, "para2": "hi"}));
    let (status, _) = d.req(
        "POST",
        "/v1/audits",
        Some(&json!({"audit_type": "ONESHOT", "audit_template_uuid": "nightly"})),
    );
    assert_eq!(
        status, 400,
        "the template must be named by UUID, as upstream"
    );

    assert_eq!(
        d.req("DELETE", &format!("/v1/audit_templates/{uuid}"), None)
            .0,
        204
    );
    assert_eq!(d.req("GET", "/v1/audit_templates/nightly", None).0, 404);
    // The name is free again.
    assert_eq!(d.req("POST", "/v1/audit_templates", Some(&body)).0, 201);
}

#[test]
fn hostile_input_gets_a_clear_4xx_with_a_watcher_body_and_changes_nothing() {
    let d = Daemon::start("api-hostile");
    let plan = d.recommend("dummy", "dummy", json!({}));
    let before = d.get(&format!("/v1/action_plans/{plan}/history"));
    let audits_before = d.get("/v1/audits")["audits"].as_array().unwrap().len();

    // A body over 1 MiB.
    let big = format!(
        "[{{\"op\": \"replace\", \"path\": \"/state\", \"value\": \"{}\"}}]",
        "x".repeat(1_100_000)
    );
    let (status, body) = d.raw("PATCH", &format!("/v1/action_plans/{plan}"), &big);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("larger than"), "{body}");
    // Deep nesting.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let (status, body) = d.raw("PATCH", &format!("/v1/action_plans/{plan}"), &deep);
    assert_eq!(status, 400, "{body}");
    // A verb the resource does not have.
    let (status, body) = d.raw("PUT", &format!("/v1/action_plans/{plan}"), "{}");
    assert_eq!(status, 405);
    assert!(body.contains("error_message"), "{body}");
    // Wrong JSON types, SQL in names and filters, control characters.
    for b in [
        json!({"audit_type": "ONESHOT", "goal": 42}),
        json!({"audit_type": "ONESHOT", "goal": "dummy", "auto_trigger": "yes"}),
        json!({"audit_type": "ONESHOT", "goal": "dummy", "name": "a\u{0007}b"}),
        json!({"audit_type": "ONESHOT", "goal": "dummy'; DROP TABLE audits; --"}),
        json!([1, 2, 3]),
    ] {
        let (status, resp) = d.req("POST", "/v1/audits", Some(&b));
        assert!(status == 400 || status == 404, "{b} -> {status} {resp}");
        faultstring(&resp);
    }
    let (status, _) = d.req(
        "GET",
        "/v1/audits?goal=dummy%27%3B%20DROP%20TABLE%20audits%3B%20--",
        None,
    );
    assert_eq!(status, 200);
    let (status, _) = d.req("GET", "/v1/action_plans?limit=99999999999999999999", None);
    assert_eq!(status, 400);
    assert_eq!(
        d.get("/v1/action_plans?limit=100000")["action_plans"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Unicode names are fine.
    let (status, resp) = d.req(
        "POST",
        "/v1/audits",
        Some(&json!({"audit_type": "ONESHOT", "goal": "dummy", "name": "nuit-été-夜"})),
    );
    assert_eq!(status, 201, "{resp}");
    assert_eq!(resp["name"], "nuit-été-夜");

    assert_eq!(d.get(&format!("/v1/action_plans/{plan}/history")), before);
    assert_eq!(
        d.get("/v1/audits")["audits"].as_array().unwrap().len(),
        audits_before + 1
    );
}

#[test]
fn of_many_concurrent_starts_of_one_plan_exactly_one_wins() {
    let d = Daemon::start("api-concurrent");
    let plan = d.recommend("dummy", "dummy", json!({"para1": 30}));
    let url = d.url.clone();
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let url = url.clone();
            let plan = plan.clone();
            std::thread::spawn(move || {
                match ureq::post(&format!("{url}/v1/action_plans/{plan}/start"))
                    .set("Content-Type", "application/json")
                    .send_string("{}")
                {
                    Ok(r) => r.status(),
                    Err(ureq::Error::Status(code, _)) => code,
                    Err(e) => panic!("{e}"),
                }
            })
        })
        .collect();
    let codes: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(codes.iter().filter(|&&c| c == 200).count(), 1, "{codes:?}");
    assert!(codes.iter().all(|&c| c == 200 || c == 400), "{codes:?}");
    let starts = d.get(&format!("/v1/action_plans/{plan}/history"))["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["to_state"] == "PENDING" && h["resource"] == "action_plan")
        .count();
    assert_eq!(starts, 1);
    d.patch_state(&plan, "CANCELLING");
    d.wait_state(&plan, &["CANCELLED"]);
}

#[test]
fn the_data_model_lists_servers_with_their_hosts_from_microversion_1_3() {
    let d = Daemon::start("api-data-model");
    let (status, body) = d.req("GET", "/v1/data_model", None);
    assert_eq!(status, 200, "{body}");
    let ctx = body["context"].as_array().unwrap();
    let web1 = ctx.iter().find(|e| e["server_name"] == "web-1").unwrap();
    assert_eq!(
        (
            web1["node_hostname"].as_str(),
            web1["server_vcpus"].as_u64(),
            web1["server_state"].as_str()
        ),
        (Some("compute-1"), Some(1), Some("active"))
    );
    assert_eq!(
        ctx.iter()
            .filter(|e| e.get("server_uuid").is_some())
            .count(),
        5
    );
    let r = match ureq::get(&format!("{}/v1/data_model", d.url))
        .set("OpenStack-API-Version", "infra-optim 1.2")
        .call()
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(c, _)) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(r, 406);
    assert_eq!(
        d.req("GET", "/v1/data_model?data_model_type=storage", None)
            .0,
        404
    );
}

#[test]
fn an_event_audit_runs_each_time_its_webhook_fires() {
    let d = Daemon::start("api-event");
    let (status, audit) = d.req(
        "POST",
        "/v1/audits",
        Some(&json!({"audit_type": "EVENT", "goal": "dummy", "name": "on-alarm"})),
    );
    assert_eq!(status, 201, "{audit}");
    let uuid = audit["uuid"].as_str().unwrap().to_string();
    let plans = |d: &Daemon| {
        d.get(&format!("/v1/action_plans?audit_uuid={uuid}"))["action_plans"]
            .as_array()
            .unwrap()
            .len()
    };
    // Not run on creation: two sweeps later it still has no plan.
    std::thread::sleep(std::time::Duration::from_millis(1_200));
    assert_eq!(plans(&d), 0);
    assert_eq!(d.get(&format!("/v1/audits/{uuid}"))["state"], "PENDING");

    let (status, _) = d.req(
        "POST",
        "/v1/webhooks/on-alarm",
        Some(&json!({"alarm": "cpu"})),
    );
    assert_eq!(status, 202);
    wait_for(std::time::Duration::from_secs(10), || {
        (plans(&d) == 1).then_some(())
    });
    wait_for(std::time::Duration::from_secs(10), || {
        (d.get(&format!("/v1/audits/{uuid}"))["state"] == "SUCCEEDED").then_some(())
    });
    let (status, _) = d.req("POST", &format!("/v1/webhooks/{uuid}"), None);
    assert_eq!(status, 202);
    wait_for(std::time::Duration::from_secs(10), || {
        (plans(&d) == 2).then_some(())
    });

    let oneshot = d.recommend("dummy", "dummy", json!({}));
    let oneshot_audit = d.plan(&oneshot)["audit_uuid"].as_str().unwrap().to_string();
    let (status, body) = d.req("POST", &format!("/v1/webhooks/{oneshot_audit}"), None);
    assert_eq!(status, 400);
    assert!(faultstring(&body).contains("only EVENT audits"), "{body}");
    assert_eq!(d.req("POST", "/v1/webhooks/nobody", None).0, 404);
}

#[test]
fn an_event_fired_while_a_plan_is_ongoing_waits_for_it_unless_forced() {
    let d = Daemon::start("api-event-busy");
    let running = d.recommend("dummy", "dummy", json!({"para1": 600}));
    d.start_plan(&running);
    d.wait_state(&running, &["ONGOING"]);
    let create = |name: &str, force: bool| {
        let (status, audit) = d.req(
            "POST",
            "/v1/audits",
            Some(&json!({"audit_type": "EVENT", "goal": "dummy", "name": name, "force": force})),
        );
        assert_eq!(status, 201, "{audit}");
        audit["uuid"].as_str().unwrap().to_string()
    };
    let (waiting, forced) = (create("waits", false), create("forced", true));
    let plans = |uuid: &str| {
        d.get(&format!("/v1/action_plans?audit_uuid={uuid}"))["action_plans"]
            .as_array()
            .unwrap()
            .len()
    };
    for uuid in [&waiting, &forced] {
        assert_eq!(d.req("POST", &format!("/v1/webhooks/{uuid}"), None).0, 202);
    }
    // The forced one runs at once; the other waits for the ONGOING plan.
    wait_for(std::time::Duration::from_secs(10), || {
        (plans(&forced) == 1).then_some(())
    });
    assert_eq!(plans(&waiting), 0);
    assert_eq!(d.get(&format!("/v1/audits/{waiting}"))["state"], "PENDING");
    d.patch_state(&running, "CANCELLING");
    d.wait_state(&running, &["CANCELLED"]);
    wait_for(std::time::Duration::from_secs(15), || {
        (plans(&waiting) == 1).then_some(())
    });
}

#[test]
fn an_audit_scope_cuts_the_data_model_and_the_plan_and_bad_scopes_are_refused() {
    let d = Daemon::start("api-scope");
    let (status, body) = d.req(
        "POST",
        "/v1/audit_templates",
        Some(&json!({"name": "bad", "goal": "cluster_maintaining",
                     "scope": [{"compute": [{"zones": [{"name": "az1"}]}]}]})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        faultstring(&body).contains("unknown compute scope rule 'zones'"),
        "{body}"
    );
    assert_eq!(d.get("/v1/audit_templates")["audit_templates"], json!([]));

    // Zone az1 is compute-1 and compute-2; db-1 (on compute-2) is excluded.
    let model = d.get("/v1/data_model");
    let db1 = model["context"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["server_name"] == "db-1")
        .unwrap()["server_uuid"]
        .clone();
    let (status, t) = d.req(
        "POST",
        "/v1/audit_templates",
        Some(
            &json!({"name": "az1-maintenance", "goal": "cluster_maintaining",
                     "strategy": "host_maintenance",
                     "scope": [{"compute": [{"availability_zones": [{"name": "az1"}]},
                                            {"exclude": [{"instances": [{"uuid": db1}]}]}]}]}),
        ),
    );
    assert_eq!(status, 201, "{t}");
    let (status, a) = d.req(
        "POST",
        "/v1/audits",
        Some(
            &json!({"audit_type": "ONESHOT", "audit_template_uuid": t["uuid"],
                     "parameters": {"maintenance_node": "compute-2"}}),
        ),
    );
    assert_eq!(status, 201, "{a}");
    let audit = a["uuid"].as_str().unwrap();
    assert_eq!(a["scope"], t["scope"]);

    let scoped = d.get(&format!("/v1/data_model?audit_uuid={audit}"));
    let ctx = scoped["context"].as_array().unwrap();
    assert!(
        ctx.iter().all(|e| e["node_hostname"] != "compute-3"),
        "{scoped}"
    );
    let db = ctx.iter().find(|e| e["server_name"] == "db-1").unwrap();
    assert_eq!(db["server_watcher_exclude"], true);

    let plan = d.plan_of(audit);
    let moves: Vec<Value> = d
        .actions(&plan)
        .into_iter()
        .filter(|a| a["action_type"] == "migrate")
        .collect();
    // cache-1 moves, db-1 stays, and nothing goes to compute-3 (outside the scope).
    assert_eq!(moves.len(), 1, "{moves:?}");
    assert_eq!(moves[0]["input_parameters"]["resource_name"], "cache-1");
    assert_eq!(
        moves[0]["input_parameters"]["destination_node"],
        "compute-1"
    );
}

#[test]
fn healthz_and_metrics_tell_an_operator_what_runs_and_how_fast_cancels_are() {
    let d = Daemon::start("api-health");
    let (status, body) = d.raw("GET", "/healthz", "");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["checks"]["database"], "ok");
    assert_eq!(health["checks"]["watcher-applier@test-host"], "ACTIVE");
    // The first scrape starts the histograms; then a plan runs and is cancelled.
    let (status, _) = d.raw("GET", "/metrics", "");
    assert_eq!(status, 200);
    let plan = d.recommend("dummy", "dummy", json!({"para1": 600}));
    d.start_plan(&plan);
    d.wait_action_state(&plan, "sleep", "ONGOING");
    d.patch_state(&plan, "CANCELLING");
    d.wait_state(&plan, &["CANCELLED"]);
    let (_, text) = d.raw("GET", "/metrics", "");
    for line in [
        "watcher_action_plans{state=\"CANCELLED\"} 1",
        "watcher_audits{state=\"SUCCEEDED\"} 1",
        "watcher_service_up{name=\"watcher-applier\",host=\"test-host\"} 1",
        "watcher_action_duration_seconds_count{action_type=\"nop\"} 2",
        "watcher_action_duration_seconds_count{action_type=\"sleep\"} 1",
        "watcher_cancel_latency_seconds_count 1",
        "# TYPE watcher_cancel_latency_seconds histogram",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
    // The cancel took well under a second: it is in the 1 s bucket.
    assert!(
        text.contains("watcher_cancel_latency_seconds_bucket{le=\"1\"} 1"),
        "{text}"
    );
}

#[test]
fn every_list_links_its_items_to_themselves_under_every_sort_key() {
    let d = Daemon::start("links-sort-keys");
    let plan = d.recommend("dummy", "dummy", json!({"para1": 1}));
    let template = json!({"name": "links", "goal": "dummy"});
    assert_eq!(d.req("POST", "/v1/audit_templates", Some(&template)).0, 201);
    for resource in [
        "goals",
        "strategies",
        "audit_templates",
        "audits",
        "action_plans",
        "actions",
        "scoring_engines",
        "services",
    ] {
        // The sort keys a resource takes are the ones its refusal lists.
        let (status, body) = d.req("GET", &format!("/v1/{resource}?sort_key=nope"), None);
        assert_eq!(status, 400, "{resource}: {body}");
        let message = faultstring(&body);
        let keys: Vec<String> = match message.rsplit_once("valid keys: ") {
            Some((_, k)) => k.split(", ").map(str::to_string).collect(),
            None if message.contains("sort by id") => vec!["id".into()],
            None => panic!("{resource}: {message}"),
        };
        for key in &keys {
            for list in [resource.to_string(), format!("{resource}/detail")] {
                let page = d.get(&format!("/v1/{list}?sort_key={key}&limit=1"));
                let items = page[resource].as_array().unwrap();
                assert!(!items.is_empty(), "{list} sorted by {key}: {page}");
                for item in items {
                    let id = item.get("uuid").or_else(|| item.get("id")).unwrap();
                    let id = id.as_str().map(str::to_string).unwrap_or(id.to_string());
                    let own = format!("{}/v1/{resource}/{id}", d.url);
                    assert_eq!(item["links"][0]["href"], json!(own), "{list} by {key}");
                    assert_eq!(
                        item["links"][1]["href"],
                        json!(format!("{}/{resource}/{id}", d.url))
                    );
                }
                if let Some(next) = page["next"].as_str() {
                    assert!(next.starts_with(&format!("{}/v1/{list}?", d.url)), "{next}");
                    assert!(next.contains(&format!("sort_key={key}")), "{next}");
                }
            }
        }
    }
    assert_eq!(
        d.get(&format!("/v1/action_plans/{plan}"))["state"],
        "RECOMMENDED"
    );
}

#[test]
fn names_are_found_without_regard_to_case_as_upstream_finds_them_on_mysql() {
    let d = Daemon::start("names-case");
    let plan = d.recommend("dummy", "dummy", json!({"para1": 1}));
    let audit = d.plan(&plan)["audit_uuid"].as_str().unwrap().to_string();
    let (status, body) = d.req(
        "PATCH",
        &format!("/v1/audits/{audit}"),
        Some(&json!([{"op": "replace", "path": "/name", "value": "Night-Run"}])),
    );
    assert_eq!(status, 200, "{body}");
    let template = json!({"name": "Nightly", "goal": "DUMMY", "strategy": "Dummy"});
    let (status, t) = d.req("POST", "/v1/audit_templates", Some(&template));
    assert_eq!(status, 201, "{t}");
    // The stored names are the canonical ones, whatever case named them.
    assert_eq!(
        (t["goal_name"].as_str(), t["strategy_name"].as_str()),
        (Some("dummy"), Some("dummy"))
    );

    for (path, field, expected) in [
        ("/v1/goals/DUMMY", "name", "dummy"),
        ("/v1/strategies/DUMMY", "name", "dummy"),
        ("/v1/strategies/Dummy/state", "", ""),
        ("/v1/scoring_engines/DUMMY_SCORER", "name", "dummy_scorer"),
        ("/v1/audit_templates/NIGHTLY", "name", "Nightly"),
        ("/v1/audits/night-run", "uuid", audit.as_str()),
        ("/v1/services/WATCHER-APPLIER", "name", "watcher-applier"),
    ] {
        let (status, body) = d.req("GET", path, None);
        assert_eq!(status, 200, "{path}: {body}");
        if !field.is_empty() {
            assert_eq!(body[field], expected, "{path}: {body}");
        }
    }
    for (list, key, count) in [
        ("/v1/strategies?goal=DUMMY", "strategies", 3),
        ("/v1/audits?goal=Dummy&strategy=DUMMY", "audits", 1),
        (
            "/v1/audit_templates?goal=DUMMY&strategy=dUmMy",
            "audit_templates",
            1,
        ),
        ("/v1/action_plans?strategy=DUMMY", "action_plans", 1),
    ] {
        let page = d.get(list);
        assert_eq!(page[key].as_array().unwrap().len(), count, "{list}: {page}");
    }
    // A different name is not found. Only ASCII letters fold, on both
    // databases alike (SQLite's lower() knows no other).
    assert_eq!(d.req("GET", "/v1/goals/dummy_", None).0, 404);
    let (status, _) = d.req(
        "PATCH",
        &format!("/v1/audits/{audit}"),
        Some(&json!([{"op": "replace", "path": "/name", "value": "Nuit-Été"}])),
    );
    assert_eq!(status, 200);
    assert_eq!(d.req("GET", "/v1/audits/NUIT-%C3%89t%C3%A9", None).0, 200);
    assert_eq!(d.req("GET", "/v1/audits/nuit-%C3%A9t%C3%A9", None).0, 404);
    assert_eq!(d.get("/v1/strategies?goal=DUMMY_")["strategies"], json!([]));

    // Uniqueness agrees with lookup: a live template's name in other case is taken.
    let (status, dup) = d.req(
        "POST",
        "/v1/audit_templates",
        Some(&json!({"name": "NIGHTLY", "goal": "dummy"})),
    );
    assert_eq!(status, 409, "{dup}");
    let (status, other) = d.req(
        "POST",
        "/v1/audit_templates",
        Some(&json!({"name": "weekly", "goal": "dummy"})),
    );
    assert_eq!(status, 201, "{other}");
    let (status, renamed) = d.req(
        "PATCH",
        "/v1/audit_templates/weekly",
        Some(&json!([{"op": "replace", "path": "/name", "value": "nightly"}])),
    );
    assert_eq!(status, 409, "{renamed}");
    assert_eq!(d.get("/v1/audit_templates/WEEKLY")["name"], "weekly");
}
