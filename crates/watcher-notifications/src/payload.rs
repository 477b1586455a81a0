//! Rendering a history row into upstream's notifications: which event types
//! a state change means, and their versioned `watcher_object` payloads.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use watcher_core::{
    Action, ActionPlan, ActionPlanState, ActionState, Audit, AuditState, Entity, EntityState,
    HistoryEntry, Strategy,
};
use watcher_store::Store;

/// An event type and its priority.
pub type Event = (&'static str, &'static str);

/// The decision engine's phases of an audit run (`audit.strategy.*`,
/// `audit.planner.*`) as they bracket a history row. They are not state
/// changes, so they have no row of their own: they are rendered with the
/// row that commits the run's outcome, in upstream's order, with that
/// row's time. A plan's creation is a run that succeeded (strategy start
/// and end and planner start before the plan's notifications, planner end
/// after its actions'); an audit going ONGOING -> FAILED is one whose
/// strategy failed (start and error, before the audit's update).
pub fn run_phases(from: Option<EntityState>, to: EntityState) -> (Vec<Event>, Vec<Event>) {
    match (from, to) {
        (None, EntityState::ActionPlan(_)) => (
            vec![
                ("audit.strategy.start", "INFO"),
                ("audit.strategy.end", "INFO"),
                ("audit.planner.start", "INFO"),
            ],
            vec![("audit.planner.end", "INFO")],
        ),
        (Some(EntityState::Audit(AuditState::Ongoing)), EntityState::Audit(AuditState::Failed)) => {
            (
                vec![
                    ("audit.strategy.start", "INFO"),
                    ("audit.strategy.error", "ERROR"),
                ],
                vec![],
            )
        }
        _ => (vec![], vec![]),
    }
}

/// One notification, ready to go in oslo.messaging's v2 envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub message_id: String,
    pub publisher_id: String,
    pub event_type: String,
    /// `INFO` or `ERROR`.
    pub priority: &'static str,
    pub payload: Value,
    pub timestamp: String,
}

impl Notification {
    /// The AMQP body, as oslo.messaging's `messagingv2` driver writes it.
    pub fn envelope(&self) -> String {
        let message = json!({
            "message_id": self.message_id,
            "publisher_id": self.publisher_id,
            "event_type": self.event_type,
            "priority": self.priority,
            "payload": self.payload,
            "timestamp": self.timestamp,
        });
        json!({"oslo.version": "2.0", "oslo.message": message.to_string()}).to_string()
    }
}

/// The event types (and priorities) one state change means, `*.update`
/// first: create and delete for the ends of a record's life, execution
/// and cancel phases for plans and actions.
pub fn events(from: Option<EntityState>, to: EntityState) -> Vec<(String, &'static str)> {
    use EntityState::{Action as A, ActionPlan as P, Audit};
    let object = to.entity().as_str();
    let deleted = matches!(
        to,
        P(ActionPlanState::Deleted) | A(ActionState::Deleted) | Audit(AuditState::Deleted)
    );
    let mut out = vec![];
    match from {
        None => return vec![(format!("{object}.create"), "INFO")],
        Some(_) if deleted => return vec![(format!("{object}.delete"), "INFO")],
        Some(_) => out.push((format!("{object}.update"), "INFO")),
    }
    let phase = match (from, to) {
        (Some(P(from)), P(to)) => plan_phase(from, to),
        (Some(A(from)), A(to)) => action_phase(from, to),
        _ => None,
    };
    if let Some((phase, priority)) = phase {
        out.push((format!("{object}.{phase}"), priority));
    }
    out
}

/// The execution or cancel phase a plan's change starts or ends.
fn plan_phase(from: ActionPlanState, to: ActionPlanState) -> Option<Event> {
    use ActionPlanState::*;
    match (from, to) {
        // A resumed plan starts its execution again (PAUSED -> PENDING ->
        // ONGOING); one paused while its last actions ran ends from PAUSED.
        (Pending | Recommended, Ongoing) => Some(("execution.start", "INFO")),
        (Ongoing | Paused, Succeeded) => Some(("execution.end", "INFO")),
        (Ongoing | Paused, Failed) => Some(("execution.error", "ERROR")),
        (Ongoing | Paused, Cancelling) => Some(("cancel.start", "INFO")),
        (Cancelling | Paused, Cancelled) => Some(("cancel.end", "INFO")),
        (Cancelling, Failed) => Some(("cancel.error", "ERROR")),
        _ => None,
    }
}

/// The execution or cancel phase an action's change starts or ends.
fn action_phase(from: ActionState, to: ActionState) -> Option<Event> {
    use ActionState::*;
    match (from, to) {
        (Pending, Ongoing) => Some(("execution.start", "INFO")),
        (Ongoing, Succeeded) => Some(("execution.end", "INFO")),
        (Ongoing, Failed) => Some(("execution.error", "ERROR")),
        (Ongoing, Cancelling) => Some(("cancel.start", "INFO")),
        (Cancelling, Cancelled) => Some(("cancel.end", "INFO")),
        (Cancelling, Failed) => Some(("cancel.error", "ERROR")),
        _ => None,
    }
}

fn object(name: &str, version: &str, data: Value) -> Value {
    json!({
        "watcher_object.name": name,
        "watcher_object.namespace": "watcher",
        "watcher_object.version": version,
        "watcher_object.data": data,
    })
}

fn time(t: &DateTime<Utc>) -> Value {
    json!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// The record's `updated_at` as of the change `row` is: its time, or null
/// for a creation. (The record's current one would make a message published
/// again after a crash differ from the first.)
fn updated_at_of(row: &HistoryEntry) -> Value {
    match row.from_state {
        Some(_) => time(&row.at),
        None => Value::Null,
    }
}

fn opt_time(t: &Option<DateTime<Utc>>) -> Value {
    t.as_ref().map_or(Value::Null, time)
}

fn terse_audit(a: &Audit) -> Value {
    object(
        "TerseAuditPayload",
        "1.3",
        json!({
            "uuid": a.uuid, "name": a.name, "audit_type": a.audit_type.to_string(),
            "state": a.state.to_string(), "parameters": a.parameters, "interval": a.interval,
            "scope": a.scope, "auto_trigger": a.auto_trigger, "next_run_time": opt_time(&a.next_run_time),
            "status_message": a.status_message, "goal_uuid": a.goal_uuid, "strategy_uuid": a.strategy_uuid,
            "created_at": time(&a.created_at), "updated_at": opt_time(&a.updated_at),
            "deleted_at": opt_time(&a.deleted_at),
        }),
    )
}

fn strategy(s: &Strategy) -> Value {
    object(
        "StrategyPayload",
        "1.0",
        json!({
            "uuid": s.uuid, "name": s.name, "display_name": s.display_name,
            "parameters_spec": s.parameters_spec, "created_at": time(&s.created_at),
            "updated_at": Value::Null, "deleted_at": Value::Null,
        }),
    )
}

fn plan_fields(p: &ActionPlan) -> serde_json::Map<String, Value> {
    let v = json!({
        "uuid": p.uuid, "state": p.state.to_string(), "global_efficacy": p.global_efficacy,
        "status_message": p.status_message, "audit_uuid": p.audit_uuid, "strategy_uuid": p.strategy_uuid,
        "created_at": time(&p.created_at), "updated_at": opt_time(&p.updated_at),
        "deleted_at": opt_time(&p.deleted_at),
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!("a JSON object"),
    }
}

/// A failure as upstream's ExceptionPayload, from the record's message.
fn fault(message: &Option<String>, module: &str, function: &str) -> Value {
    object(
        "ExceptionPayload",
        "1.0",
        json!({
            "module_name": module, "function_name": function,
            "exception": "WatcherException",
            "exception_message": message.clone().unwrap_or_default(),
        }),
    )
}

/// The state change as upstream's `*StateUpdatePayload`.
fn state_update(name: &str, row: &HistoryEntry, message: &Option<String>) -> Value {
    object(
        name,
        "1.1",
        json!({"old_state": row.from_state, "state": row.to_state, "status_message": message}),
    )
}

/// The payload class of an event type: `action_plan.cancel.start` ->
/// `ActionPlanCancelPayload`.
fn payload_class(entity: Entity, event: &str) -> String {
    let base = match entity {
        Entity::ActionPlan => "ActionPlan",
        Entity::Action => "Action",
        Entity::Audit => "Audit",
    };
    let kind = match event.split('.').nth(1) {
        Some("create") => "Create",
        Some("delete") => "Delete",
        Some("update") => "Update",
        Some("cancel") => "Cancel",
        _ if entity == Entity::Action => "Execution",
        _ => "Action",
    };
    format!("{base}{kind}Payload")
}

/// The notifications for one history row: a plan's creation row also gives
/// an `action.create` for each of its actions (the store writes no row of
/// their own, `Store::actions_created_with`). A record that can no longer be
/// read (it cannot happen: records are only soft-deleted) gives a payload
/// with what the row itself says; a failed read of the plan's actions is an
/// error, so that the round is tried again rather than publish too little.
pub async fn render(
    store: &Store,
    row: &HistoryEntry,
    nonce: i64,
    publisher: &str,
) -> Result<Vec<Notification>, watcher_store::StoreError> {
    // oslo's format: str(datetime.utcnow()).
    let timestamp = row.at.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
    let (from, to) = (row.from_state, row.to_state);
    let (before, after) = run_phases(from, to);
    // The run's audit: the plan's, or the row's own.
    let audit = match row.entity {
        Entity::ActionPlan if !before.is_empty() => store
            .get_plan(row.uuid, true)
            .await
            .ok()
            .map(|p| p.audit_uuid),
        _ => Some(row.uuid),
    };
    // Message ids: the row's seq and the event's place among the row's
    // (at most 8: three phases, one event, one phase; or two, then one).
    let message_id = |k: usize| {
        uuid::Uuid::from_u64_pair(nonce as u64, ((row.seq as u64) << 3) | k as u64).to_string()
    };
    let notification = |message_id: String, event: &str, priority, payload| Notification {
        message_id,
        publisher_id: publisher.to_string(),
        event_type: event.to_string(),
        priority,
        payload,
        timestamp: timestamp.clone(),
    };
    // Each event in its place: (is an audit run's phase, type, priority).
    let mut slots: Vec<(bool, String, &'static str)> = before
        .iter()
        .map(|(e, p)| (true, e.to_string(), *p))
        .collect();
    slots.extend(events(from, to).into_iter().map(|(e, p)| (false, e, p)));
    let first_after = slots.len();
    slots.extend(after.iter().map(|(e, p)| (true, e.to_string(), *p)));
    let mut out = vec![];
    // One step past the last slot, so that a plan's actions come out even
    // where no phase follows them.
    for k in 0..=slots.len() {
        if k == first_after {
            for action in store.actions_created_with(row.clone()).await? {
                // Unique and the same however often it is rendered: the
                // action's uuid, mixed with this database's nonce (an
                // action is created once).
                let (high, low) = action.uuid.as_u64_pair();
                let id = uuid::Uuid::from_u64_pair(high ^ nonce as u64, low).to_string();
                let body = payload(store, &action, "action.create").await;
                out.push(notification(id, "action.create", "INFO", body));
            }
        }
        let Some((run, event, priority)) = &slots.get(k) else {
            break;
        };
        let body = match (run, audit) {
            (false, _) => payload(store, row, event).await,
            (true, Some(audit)) => run_payload(store, audit, row, event).await,
            (true, None) => continue,
        };
        out.push(notification(message_id(k), event, priority, body));
    }
    Ok(out)
}

/// `AuditActionPayload` of an audit run's phase: the audit as it is during
/// its run (ONGOING), with the fault of a failed strategy.
async fn run_payload(store: &Store, audit: uuid::Uuid, row: &HistoryEntry, event: &str) -> Value {
    let Ok(a) = store.get_audit(&audit.to_string(), true).await else {
        return object(
            "AuditActionPayload",
            "1.2",
            json!({"uuid": audit, "state": AuditState::Ongoing}),
        );
    };
    let mut data = audit_fields(store, &a).await;
    data.insert("state".into(), json!(AuditState::Ongoing));
    let f = if event.ends_with(".error") {
        fault(
            &a.status_message,
            "watcher.decision_engine.audit",
            "execute",
        )
    } else {
        Value::Null
    };
    data.insert("fault".into(), f);
    data.insert("updated_at".into(), time(&row.at));
    object("AuditActionPayload", "1.2", Value::Object(data))
}

/// An audit's fields as upstream's `AuditPayload`: the terse ones, its goal
/// and its strategy.
async fn audit_fields(store: &Store, a: &Audit) -> serde_json::Map<String, Value> {
    let mut data = match terse_audit(a)["watcher_object.data"].clone() {
        Value::Object(m) => m,
        _ => unreachable!("a JSON object"),
    };
    data.insert(
        "goal".into(),
        object(
            "GoalPayload",
            "1.0",
            json!({"uuid": a.goal_uuid, "name": a.goal_name}),
        ),
    );
    if let Some(s) = &a.strategy_uuid {
        if let Ok(s) = store.get_strategy(&s.to_string()).await {
            data.insert("strategy".into(), strategy(&s));
        }
    }
    data
}

// Long because it is a table: one payload shape per entity and event, as upstream's notification objects define them.
async fn payload(store: &Store, row: &HistoryEntry, event: &str) -> Value {
    let class = payload_class(row.entity, event);
    let phase_with_fault =
        event.ends_with(".start") || event.ends_with(".end") || event.ends_with(".error");
    let fallback = || {
        object(
            &class,
            "1.0",
            json!({"uuid": row.uuid, "state": row.to_state}),
        )
    };
    match row.entity {
        Entity::ActionPlan => {
            let Ok(p) = store.get_plan(row.uuid, true).await else {
                return fallback();
            };
            let mut data = plan_fields(&p);
            data.insert("state".into(), json!(row.to_state));
            if let Ok(a) = store.get_audit(&p.audit_uuid.to_string(), true).await {
                data.insert("audit".into(), terse_audit(&a));
            }
            if let Ok(s) = store.get_strategy(&p.strategy_uuid.to_string()).await {
                data.insert("strategy".into(), strategy(&s));
            }
            if event.ends_with(".update") {
                data.insert(
                    "state_update".into(),
                    state_update("ActionPlanStateUpdatePayload", row, &p.status_message),
                );
            }
            if phase_with_fault {
                let f = if event.ends_with(".error") {
                    fault(&p.status_message, "watcher.applier", "execute")
                } else {
                    Value::Null
                };
                data.insert("fault".into(), f);
            }
            data.insert("updated_at".into(), updated_at_of(row));
            object(&class, "1.2", Value::Object(data))
        }
        Entity::Action => {
            let Ok(a) = store.get_action(row.uuid, true).await else {
                return fallback();
            };
            // The plan as it was at this row, not as it is now: a message
            // published again after a crash says what it said the first time.
            let as_of = store
                .plan_state_at(a.action_plan_uuid, row.seq)
                .await
                .ok()
                .flatten();
            let plan = store
                .get_plan(a.action_plan_uuid, true)
                .await
                .ok()
                .map(|p| {
                    let mut fields = plan_fields(&p);
                    if let Some((state, at)) = &as_of {
                        fields.insert("state".into(), json!(state.to_string()));
                        fields.insert("updated_at".into(), opt_time(at));
                    }
                    object("TerseActionPlanPayload", "1.2", Value::Object(fields))
                });
            let mut data = action_fields(&a);
            data.insert("state".into(), json!(row.to_state));
            data.insert("action_plan".into(), plan.unwrap_or(Value::Null));
            if event.ends_with(".update") {
                data.insert(
                    "state_update".into(),
                    state_update("ActionStateUpdatePayload", row, &a.status_message),
                );
            }
            if phase_with_fault {
                let f = if event.ends_with(".error") {
                    fault(&a.status_message, "watcher.applier", "execute")
                } else {
                    Value::Null
                };
                data.insert("fault".into(), f);
            }
            data.insert("updated_at".into(), updated_at_of(row));
            object(&class, "1.1", Value::Object(data))
        }
        Entity::Audit => {
            let Ok(a) = store.get_audit(&row.uuid.to_string(), true).await else {
                return fallback();
            };
            let mut data = audit_fields(store, &a).await;
            data.insert("state".into(), json!(row.to_state));
            if event.ends_with(".update") {
                data.insert(
                    "state_update".into(),
                    state_update("AuditStateUpdatePayload", row, &a.status_message),
                );
            }
            data.insert("updated_at".into(), updated_at_of(row));
            object(&class, "1.2", Value::Object(data))
        }
    }
}

fn action_fields(a: &Action) -> serde_json::Map<String, Value> {
    let v = json!({
        "uuid": a.uuid, "action_type": a.action_type, "input_parameters": a.input_parameters,
        "state": a.state.to_string(), "parents": a.parents, "status_message": a.status_message,
        "created_at": time(&a.created_at), "updated_at": opt_time(&a.updated_at),
        "deleted_at": opt_time(&a.deleted_at),
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!("a JSON object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state change as the history writes it, from state names.
    fn change(entity: Entity, from: Option<&str>, to: &str) -> (Option<EntityState>, EntityState) {
        let state = |s| EntityState::parse(entity, s).unwrap();
        (from.map(state), state(to))
    }

    #[test]
    fn a_state_change_means_upstreams_event_types() {
        let names = |e, f, t| -> Vec<String> {
            let (from, to) = change(e, f, t);
            events(from, to).into_iter().map(|x| x.0).collect()
        };
        assert_eq!(
            names(Entity::ActionPlan, None, "RECOMMENDED"),
            ["action_plan.create"]
        );
        assert_eq!(
            names(Entity::ActionPlan, Some("ONGOING"), "CANCELLING"),
            ["action_plan.update", "action_plan.cancel.start"]
        );
        assert_eq!(
            names(Entity::Action, Some("CANCELLING"), "CANCELLED"),
            ["action.update", "action.cancel.end"]
        );
        // A pause is an update; a paused plan's end still ends its execution.
        assert_eq!(
            names(Entity::ActionPlan, Some("ONGOING"), "PAUSED"),
            ["action_plan.update"]
        );
        assert_eq!(
            names(Entity::ActionPlan, Some("PAUSED"), "SUCCEEDED"),
            ["action_plan.update", "action_plan.execution.end"]
        );
        assert_eq!(
            names(Entity::ActionPlan, Some("PAUSED"), "CANCELLED"),
            ["action_plan.update", "action_plan.cancel.end"]
        );
        assert_eq!(
            {
                let (from, to) = change(Entity::Action, Some("ONGOING"), "FAILED");
                events(from, to)[1].clone()
            },
            ("action.execution.error".to_string(), "ERROR")
        );
        assert_eq!(
            names(Entity::Audit, Some("PENDING"), "ONGOING"),
            ["audit.update"]
        );
        assert_eq!(
            names(Entity::Audit, Some("SUCCEEDED"), "DELETED"),
            ["audit.delete"]
        );
        assert_eq!(
            payload_class(Entity::ActionPlan, "action_plan.cancel.start"),
            "ActionPlanCancelPayload"
        );
        assert_eq!(
            payload_class(Entity::ActionPlan, "action_plan.execution.end"),
            "ActionPlanActionPayload"
        );
        assert_eq!(
            payload_class(Entity::Action, "action.execution.start"),
            "ActionExecutionPayload"
        );
        assert_eq!(
            payload_class(Entity::Audit, "audit.update"),
            "AuditUpdatePayload"
        );
    }

    #[test]
    fn an_audit_runs_phases_bracket_the_rows_that_commit_its_outcome() {
        let names =
            |v: Vec<(&'static str, &'static str)>| v.into_iter().map(|x| x.0).collect::<Vec<_>>();
        let phases = |e, f, t| {
            let (from, to) = change(e, f, t);
            run_phases(from, to)
        };
        let (before, after) = phases(Entity::ActionPlan, None, "RECOMMENDED");
        assert_eq!(
            names(before),
            [
                "audit.strategy.start",
                "audit.strategy.end",
                "audit.planner.start"
            ]
        );
        assert_eq!(names(after), ["audit.planner.end"]);
        let (before, after) = phases(Entity::Audit, Some("ONGOING"), "FAILED");
        assert_eq!(before[1], ("audit.strategy.error", "ERROR"));
        assert!(after.is_empty());
        // Other rows bracket nothing.
        for (entity, from, to) in [
            (Entity::Audit, Some("PENDING"), "ONGOING"),
            (Entity::Audit, Some("ONGOING"), "SUCCEEDED"),
            (Entity::ActionPlan, Some("RECOMMENDED"), "PENDING"),
            (Entity::Action, None, "PENDING"),
        ] {
            assert_eq!(phases(entity, from, to), (vec![], vec![]));
        }
        assert_eq!(
            payload_class(Entity::Audit, "audit.strategy.end"),
            "AuditActionPayload"
        );
    }

    #[test]
    fn the_envelope_is_oslo_messaging_v2() {
        let n = Notification {
            message_id: "m".into(),
            publisher_id: "infra-optim:h".into(),
            event_type: "action_plan.update".into(),
            priority: "INFO",
            payload: json!({"x": 1}),
            timestamp: "2026-11-30 10:00:00.000000".into(),
        };
        let outer: Value = serde_json::from_str(&n.envelope()).unwrap();
        assert_eq!(outer["oslo.version"], "2.0");
        let inner: Value = serde_json::from_str(outer["oslo.message"].as_str().unwrap()).unwrap();
        assert_eq!(inner["event_type"], "action_plan.update");
        assert_eq!(inner["publisher_id"], "infra-optim:h");
        assert_eq!(inner["payload"]["x"], 1);
    }
}
