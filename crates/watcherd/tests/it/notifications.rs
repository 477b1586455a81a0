//! Notifications on the machine's real RabbitMQ (127.0.0.1:5672, guest):
//! what a cancelled plan sends, in order, and that a broker outage delays
//! notifications without blocking a plan or losing a message. Each test
//! uses its own topic, so its queues are its own.

use watcher_testkit as common;

use common::{broker, drain, rabbit_url, temp_dir, wait_for, CutProxy, Daemon, PrivateRabbit};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

fn start(dir: &std::path::Path, url: &str, topic: &str) -> Daemon {
    let config = common::write_config_with(
        dir,
        "",
        "",
        &format!(
            "[notifications]\ntransport_url = \"{url}\"\ntopics = [\"{topic}\"]\ntimeout_secs = 2\n"
        ),
    );
    Daemon::start_with_config(dir, config, None)
}

fn events_of(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["event_type"].as_str().unwrap().to_string())
        .collect()
}

fn position(events: &[String], e: &str) -> usize {
    events
        .iter()
        .position(|x| x == e)
        .unwrap_or_else(|| panic!("no {e} in {events:?}"))
}

#[cfg_attr(
    not(test_rabbitmq),
    ignore = "needs RabbitMQ: set WATCHER_TEST_RABBITMQ=rabbit://guest:guest@127.0.0.1:5672/ (.ci/run does)"
)]
#[test]
fn a_cancelled_plan_sends_upstreams_notifications_in_order() {
    let topic = format!("watcher-test-{}", uuid::Uuid::new_v4());
    let mut c = broker();
    let dir = temp_dir("notifications-cancel");
    let d = start(&dir, &rabbit_url(), &topic);
    let plan = d.recommend("dummy", "dummy", json!({"para1": 600}));
    d.start_plan(&plan);
    d.wait_action_state(&plan, "sleep", "ONGOING");
    assert_eq!(d.patch_state(&plan, "CANCELLING").0, 200);
    d.wait_state(&plan, &["CANCELLED"]);

    let queue = format!("{topic}.info");
    let mut messages = vec![];
    wait_for(Duration::from_secs(15), || {
        messages.extend(drain(&mut c, &queue));
        events_of(&messages)
            .contains(&"action_plan.cancel.end".to_string())
            .then_some(())
    });
    let events = events_of(&messages);
    // The plan's life, in the order it happened.
    let order = [
        "audit.create",
        "audit.strategy.start",
        "audit.strategy.end",
        "audit.planner.start",
        "action_plan.create",
        "action.create",
        "audit.planner.end",
        "action_plan.execution.start",
        "action.execution.start",
        "action_plan.cancel.start",
        "action.cancel.start",
        "action.cancel.end",
        "action_plan.cancel.end",
    ];
    let at: Vec<usize> = order.iter().map(|e| position(&events, e)).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{events:?}");
    // One action.create for each action, in the plan's order, right after
    // the plan's (the store wrote one creation row for them all).
    let plan_created = position(&events, "action_plan.create");
    let created: Vec<&Value> = messages[plan_created + 1..]
        .iter()
        .take_while(|m| m["event_type"] == "action.create")
        .map(|m| &m["payload"]["watcher_object.data"]["uuid"])
        .collect();
    let actions: Vec<Value> = d
        .actions(&plan)
        .into_iter()
        .map(|a| a["uuid"].clone())
        .collect();
    assert_eq!(created, actions.iter().collect::<Vec<_>>());
    assert_eq!(
        events.iter().filter(|e| *e == "action.create").count(),
        actions.len()
    );
    let ids: HashSet<&str> = messages
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), messages.len(), "message ids repeat");
    let cancel = &messages[position(&events, "action_plan.cancel.end")];
    assert_eq!(cancel["publisher_id"], "infra-optim:test-host");
    assert_eq!(cancel["priority"], "INFO");
    let payload = &cancel["payload"];
    assert_eq!(payload["watcher_object.name"], "ActionPlanCancelPayload");
    assert_eq!(payload["watcher_object.namespace"], "watcher");
    let data = &payload["watcher_object.data"];
    assert_eq!(data["uuid"], plan.as_str());
    assert_eq!(data["state"], "CANCELLED");
    assert_eq!(data["fault"], Value::Null);
    assert_eq!(data["audit"]["watcher_object.name"], "TerseAuditPayload");
    assert_eq!(data["strategy"]["watcher_object.data"]["name"], "dummy");
    let update = messages
        .iter()
        .find(|m| {
            m["event_type"] == "action_plan.update"
                && m["payload"]["watcher_object.data"]["state_update"]["watcher_object.data"]
                    ["state"]
                    == "CANCELLING"
        })
        .expect("an update for ONGOING -> CANCELLING");
    let su = &update["payload"]["watcher_object.data"]["state_update"]["watcher_object.data"];
    assert_eq!(su["old_state"], "ONGOING");
    let planner = &messages[position(&events, "audit.planner.end")]["payload"];
    assert_eq!(planner["watcher_object.name"], "AuditActionPayload");
    assert_eq!(planner["watcher_object.data"]["state"], "ONGOING");
    assert_eq!(
        planner["watcher_object.data"]["goal"]["watcher_object.data"]["name"],
        "dummy"
    );
    assert_eq!(planner["watcher_object.data"]["fault"], Value::Null);
    // Nothing on the error topic: nothing failed.
    assert!(drain(&mut c, &format!("{topic}.error")).is_empty());

    // An audit whose strategy fails: audit.strategy.error, on the error
    // topic, with the reason.
    let (status, audit) = d.req(
        "POST",
        "/v1/audits",
        Some(&json!({"audit_type": "ONESHOT", "goal": "cluster_maintaining", "strategy": "host_maintenance",
                     "parameters": {"maintenance_node": "nowhere"}})),
    );
    assert_eq!(status, 201, "{audit}");
    let errors = wait_for(Duration::from_secs(15), || {
        let e = drain(&mut c, &format!("{topic}.error"));
        (!e.is_empty()).then_some(e)
    });
    assert_eq!(events_of(&errors), ["audit.strategy.error"]);
    let data = &errors[0]["payload"]["watcher_object.data"];
    assert_eq!(data["uuid"], audit["uuid"]);
    assert_eq!(errors[0]["priority"], "ERROR");
    let fault = &data["fault"]["watcher_object.data"];
    assert!(
        fault["exception_message"]
            .as_str()
            .unwrap()
            .contains("nowhere"),
        "{fault}"
    );
    for q in ["info", "error"] {
        c.delete_queue(&format!("{topic}.{q}")).unwrap();
    }
}

#[cfg_attr(
    not(test_rabbitmq),
    ignore = "needs RabbitMQ: set WATCHER_TEST_RABBITMQ=rabbit://guest:guest@127.0.0.1:5672/ (.ci/run does)"
)]
#[test]
fn a_broker_outage_delays_notifications_but_never_a_plan_and_loses_none() {
    let topic = format!("watcher-test-{}", uuid::Uuid::new_v4());
    let proxy = CutProxy::start("127.0.0.1:5672");
    let dir = temp_dir("notifications-outage");
    let d = start(
        &dir,
        &format!("rabbit://guest:guest@127.0.0.1:{}/", proxy.port),
        &topic,
    );
    // The broker is unreachable: plans run as usual.
    let plan = d.actuator(json!([
        {"action_type": "nop", "input_parameters": {"message": "one"}},
        {"action_type": "nop", "input_parameters": {"message": "two"}}
    ]));
    d.start_plan(&plan);
    let done = d.wait_state(&plan, &["SUCCEEDED", "FAILED"]);
    assert_eq!(done["state"], "SUCCEEDED", "{done}");
    assert!(d.log().contains("broker unavailable"), "{}", d.log());

    // Nothing reached the broker meanwhile.
    let mut c = broker();
    let queue = format!("{topic}.info");
    c.declare("watcher", &queue).unwrap();
    assert!(drain(&mut c, &queue).is_empty());

    // Back: everything arrives, once, in order.
    proxy.set_up(true);
    let mut messages = vec![];
    wait_for(Duration::from_secs(40), || {
        messages.extend(drain(&mut c, &queue));
        events_of(&messages)
            .contains(&"action_plan.execution.end".to_string())
            .then_some(())
    });
    let events = events_of(&messages);
    let start = position(&events, "action_plan.execution.start");
    let end = position(&events, "action_plan.execution.end");
    assert!(start < end, "{events:?}");
    assert_eq!(
        events
            .iter()
            .filter(|e| *e == "action.execution.end")
            .count(),
        2,
        "{events:?}"
    );
    let ids: HashSet<&str> = messages
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), messages.len(), "duplicates: {events:?}");
    for q in ["info", "error"] {
        let _ = c.delete_queue(&format!("{topic}.{q}"));
    }
}

/// A whole watcherd on the shared database `db`, relaying to `topic`.
fn start_shared(dir: &std::path::Path, host: &str, db: &std::path::Path, topic: &str) -> Daemon {
    let config = common::shared_config(
        dir,
        host,
        db,
        "shared_database = true",
        &format!(
            "[applier]\nsweep_interval_secs = 0.5\npoll_interval_ms = 20\n\n\
             [notifications]\ntransport_url = \"{}\"\ntopics = [\"{topic}\"]\ntimeout_secs = 2\nlease_secs = 1",
            rabbit_url()
        ),
    );
    Daemon::start_with_config(dir, config, None)
}

#[cfg_attr(
    not(test_rabbitmq),
    ignore = "needs RabbitMQ: set WATCHER_TEST_RABBITMQ=rabbit://guest:guest@127.0.0.1:5672/ (.ci/run does)"
)]
#[test]
fn processes_sharing_a_database_elect_one_relay_and_the_other_takes_over() {
    let topic = format!("watcher-test-{}", uuid::Uuid::new_v4());
    let root = temp_dir("notifications-shared");
    let db = root.join("watcher.db");
    let mut c = broker();
    let queue = format!("{topic}.info");
    c.declare("watcher", &queue).unwrap();
    let mut a = start_shared(&root.join("a"), "relay-a", &db, &topic);
    let mut b = start_shared(&root.join("b"), "relay-b", &db, &topic);
    let run_plan = |d: &Daemon| {
        let plan =
            d.actuator(json!([{"action_type": "nop", "input_parameters": {"message": "x"}}]));
        d.start_plan(&plan);
        d.wait_state(&plan, &["SUCCEEDED"]);
        plan
    };
    let first = run_plan(&a);
    let mut messages = vec![];
    let ends = |messages: &[Value], plan: &str| {
        messages.iter().any(|m| {
            m["event_type"] == "action_plan.execution.end"
                && m["payload"]["watcher_object.data"]["uuid"] == plan
        })
    };
    wait_for(Duration::from_secs(15), || {
        messages.extend(drain(&mut c, &queue));
        ends(&messages, &first).then_some(())
    });
    // Two processes, one relay: nothing twice.
    std::thread::sleep(Duration::from_millis(1500));
    messages.extend(drain(&mut c, &queue));
    let ids: HashSet<&str> = messages
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        messages.len(),
        "sent twice: {:?}",
        events_of(&messages)
    );

    // The relay dies; the other process's relay takes over within the lease.
    let leader = if a.log().contains("this process now relays") {
        "a"
    } else {
        "b"
    };
    let survivor = if leader == "a" {
        a.kill9();
        &b
    } else {
        b.kill9();
        &a
    };
    let second = run_plan(survivor);
    wait_for(Duration::from_secs(15), || {
        messages.extend(drain(&mut c, &queue));
        ends(&messages, &second).then_some(())
    });
    for q in ["info", "error"] {
        let _ = c.delete_queue(&format!("{topic}.{q}"));
    }
}

#[cfg_attr(
    not(test_rabbitmq),
    ignore = "needs RabbitMQ: set WATCHER_TEST_RABBITMQ=rabbit://guest:guest@127.0.0.1:5672/ (.ci/run does)"
)]
#[test]
fn a_rabbitmq_restart_mid_plan_delays_notifications_and_loses_none() {
    let root = temp_dir("notifications-restart");
    let rabbit = PrivateRabbit::start(&root);
    let topic = "watcher-restart";
    let d = start(&root, &rabbit.url(), topic);
    let queue = format!("{topic}.info");
    let mut c = rabbit.connect().unwrap();
    c.declare("watcher", &queue).unwrap();
    let plan = d.actuator(json!([
        {"action_type": "nop", "input_parameters": {"message": "one"}},
        {"action_type": "nop", "input_parameters": {"message": "two"}}
    ]));
    // The plan's creation has gone out; then the broker stops, for real,
    // and the whole run happens while it is down.
    let mut messages = vec![];
    wait_for(Duration::from_secs(20), || {
        messages.extend(drain(&mut c, &queue));
        events_of(&messages)
            .contains(&"action_plan.create".to_string())
            .then_some(())
    });
    drop(c);
    rabbit.stop();
    d.start_plan(&plan);
    // The plan does not wait for the broker.
    let done = d.wait_state(&plan, &["SUCCEEDED", "FAILED"]);
    assert_eq!(done["state"], "SUCCEEDED", "{done}");
    wait_for(Duration::from_secs(20), || {
        d.log().contains("broker unavailable").then_some(())
    });

    rabbit.run();
    let mut c = rabbit.connect().unwrap();
    wait_for(Duration::from_secs(60), || {
        // The relay declares the queue again when it reconnects; until then
        // the queue is not there, and this declares it.
        c.declare("watcher", &queue).unwrap();
        messages.extend(drain(&mut c, &queue));
        events_of(&messages)
            .contains(&"action_plan.execution.end".to_string())
            .then_some(())
    });
    let events = events_of(&messages);
    assert!(
        position(&events, "action_plan.execution.start")
            < position(&events, "action_plan.execution.end"),
        "{events:?}"
    );
    // Both actions' ends arrived; a message sent twice (at least once) has
    // the same id both times.
    let ends: HashSet<&str> = messages
        .iter()
        .filter(|m| m["event_type"] == "action.execution.end")
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ends.len(), 2, "{events:?}");
    let mut by_id: std::collections::HashMap<&str, &Value> = Default::default();
    for m in &messages {
        if let Some(seen) = by_id.insert(m["message_id"].as_str().unwrap(), m) {
            assert_eq!(seen["payload"], m["payload"], "one id, two messages");
        }
    }
}
