//! JSON shapes of the v1 resources, per microversion, list or detail form.

use super::version::Version;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use watcher_core::*;

/// `2026-11-25T06:13:47.123456+00:00`, or without the fraction when it is zero.
pub fn timestamp(t: &DateTime<Utc>) -> Value {
    let fmt = if t.timestamp_subsec_micros() == 0 {
        "%Y-%m-%dT%H:%M:%S+00:00"
    } else {
        "%Y-%m-%dT%H:%M:%S%.6f+00:00"
    };
    Value::String(t.format(fmt).to_string())
}

fn opt_timestamp(t: &Option<DateTime<Utc>>) -> Value {
    t.as_ref().map(timestamp).unwrap_or(Value::Null)
}

/// Audit times upstream shows naive (no offset).
fn naive(t: &Option<DateTime<Utc>>) -> Value {
    t.map(|t| Value::String(t.format("%Y-%m-%dT%H:%M:%S").to_string()))
        .unwrap_or(Value::Null)
}

pub fn links(base: &str, resource: &str, id: &str) -> Value {
    json!([
        {"href": format!("{base}/v1/{resource}/{id}"), "rel": "self"},
        {"href": format!("{base}/{resource}/{id}"), "rel": "bookmark"},
    ])
}

fn object(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<Map<_, _>>(),
    )
}

pub fn goal(g: &Goal, base: &str, detail: bool) -> Value {
    let mut v = vec![
        ("uuid", json!(g.uuid)),
        ("name", json!(g.name)),
        ("display_name", json!(g.display_name)),
        ("efficacy_specification", json!(g.efficacy_specification)),
        ("links", links(base, "goals", &g.uuid.to_string())),
    ];
    if detail {
        v.push(("created_at", timestamp(&g.created_at)));
        v.push(("updated_at", opt_timestamp(&g.updated_at)));
        v.push(("deleted_at", Value::Null));
    }
    object(v)
}

pub fn strategy(s: &Strategy, base: &str, detail: bool) -> Value {
    let mut v = vec![
        ("uuid", json!(s.uuid)),
        ("name", json!(s.name)),
        ("display_name", json!(s.display_name)),
        ("goal_uuid", json!(s.goal_uuid)),
        ("goal_name", json!(s.goal_name)),
        ("links", links(base, "strategies", &s.uuid.to_string())),
    ];
    if detail {
        v.push(("parameters_spec", s.parameters_spec.clone()));
    }
    object(v)
}

pub fn audit(a: &Audit, base: &str, detail: bool, ver: Version) -> Value {
    let mut v = vec![
        ("uuid", json!(a.uuid)),
        ("name", json!(a.name)),
        ("audit_type", json!(a.audit_type)),
        ("state", json!(a.state)),
        ("goal_uuid", json!(a.goal_uuid)),
        ("goal_name", json!(a.goal_name)),
        ("strategy_uuid", json!(a.strategy_uuid)),
        ("strategy_name", json!(a.strategy_name)),
        ("interval", json!(a.interval)),
        ("scope", a.scope.clone()),
        ("auto_trigger", json!(a.auto_trigger)),
        ("next_run_time", naive(&a.next_run_time)),
        ("links", links(base, "audits", &a.uuid.to_string())),
    ];
    if detail {
        v.push(("parameters", a.parameters.clone()));
        v.push(("hostname", json!(a.hostname)));
        v.push(("created_at", timestamp(&a.created_at)));
        v.push(("updated_at", opt_timestamp(&a.updated_at)));
        v.push(("deleted_at", opt_timestamp(&a.deleted_at)));
        if ver.at_least(1, 1) {
            v.push(("start_time", naive(&a.start_time)));
            v.push(("end_time", naive(&a.end_time)));
        }
        if ver.at_least(1, 2) {
            v.push(("force", json!(a.force)));
        }
        if ver.at_least(1, 5) {
            v.push(("status_message", json!(a.status_message)));
        }
    }
    object(v)
}

pub fn action_plan(p: &ActionPlan, base: &str, detail: bool, ver: Version) -> Value {
    let mut v = vec![
        ("uuid", json!(p.uuid)),
        ("audit_uuid", json!(p.audit_uuid)),
        ("strategy_uuid", json!(p.strategy_uuid)),
        ("strategy_name", json!(p.strategy_name)),
        ("state", json!(p.state)),
        ("efficacy_indicators", json!(p.efficacy_indicators)),
        ("global_efficacy", json!(p.global_efficacy)),
        ("updated_at", opt_timestamp(&p.updated_at)),
        ("links", links(base, "action_plans", &p.uuid.to_string())),
    ];
    if detail {
        v.push(("hostname", json!(p.hostname)));
        v.push(("created_at", timestamp(&p.created_at)));
        v.push(("deleted_at", opt_timestamp(&p.deleted_at)));
        if ver.at_least(1, 5) {
            v.push(("status_message", json!(p.status_message)));
        }
    }
    object(v)
}

pub fn action(a: &Action, base: &str, detail: bool, ver: Version, description: &str) -> Value {
    let mut v = vec![
        ("uuid", json!(a.uuid)),
        ("action_plan_uuid", json!(a.action_plan_uuid)),
        ("action_type", json!(a.action_type)),
        ("parents", json!(a.parents)),
        ("state", json!(a.state)),
        ("links", links(base, "actions", &a.uuid.to_string())),
    ];
    if detail {
        v.push(("description", json!(description)));
        v.push(("input_parameters", a.input_parameters.clone()));
        v.push(("created_at", timestamp(&a.created_at)));
        v.push(("updated_at", opt_timestamp(&a.updated_at)));
        v.push(("deleted_at", opt_timestamp(&a.deleted_at)));
        if ver.at_least(1, 5) {
            v.push(("status_message", json!(a.status_message)));
        }
    }
    object(v)
}

pub fn history_entry(h: &HistoryEntry) -> Value {
    json!({
        "seq": h.seq,
        "resource": h.entity.as_str(),
        "uuid": h.uuid,
        "from_state": h.from_state,
        "to_state": h.to_state,
        "actor": h.actor,
        "reason": h.reason,
        "at": timestamp(&h.at),
    })
}

/// ACTIVE while the service's heartbeat is fresh, FAILED after that.
pub fn service_status(s: &ServiceRecord) -> &'static str {
    let alive = s.last_seen_up.unwrap_or(s.created_at);
    let down = chrono::Duration::from_std(watcher_store::SERVICE_DOWN_TIME).unwrap_or_default();
    if chrono::Utc::now() - alive <= down {
        "ACTIVE"
    } else {
        "FAILED"
    }
}

pub fn service(s: &ServiceRecord, base: &str, detail: bool) -> Value {
    let status = service_status(s);
    let mut v = vec![
        ("id", json!(s.id)),
        ("name", json!(s.name)),
        ("host", json!(s.host)),
        ("status", json!(status)),
        ("links", links(base, "services", &s.id.to_string())),
    ];
    if detail {
        v.push(("last_seen_up", naive(&s.last_seen_up)));
        v.push(("created_at", timestamp(&s.created_at)));
        v.push(("updated_at", opt_timestamp(&s.updated_at)));
        v.push(("deleted_at", opt_timestamp(&s.deleted_at)));
    }
    object(v)
}

pub fn scoring_engine(
    e: &watcher_decision::scoring::ScoringEngine,
    base: &str,
    detail: bool,
) -> Value {
    let mut v = vec![
        ("uuid", json!(e.uuid)),
        ("name", json!(e.name)),
        ("description", json!(e.description)),
        ("links", links(base, "scoring_engines", e.uuid)),
    ];
    if detail {
        v.push(("metainfo", json!(e.metainfo)));
    }
    object(v)
}

pub fn audit_template(t: &AuditTemplate, base: &str, detail: bool, ver: Version) -> Value {
    let mut v = vec![
        ("uuid", json!(t.uuid)),
        ("name", json!(t.name)),
        ("goal_uuid", json!(t.goal_uuid)),
        ("goal_name", json!(t.goal_name)),
        ("strategy_uuid", json!(t.strategy_uuid)),
        ("strategy_name", json!(t.strategy_name)),
        ("scope", t.scope.clone()),
        ("links", links(base, "audit_templates", &t.uuid.to_string())),
    ];
    if detail {
        v.push(("description", json!(t.description)));
        v.push(("created_at", timestamp(&t.created_at)));
        v.push(("updated_at", opt_timestamp(&t.updated_at)));
        v.push(("deleted_at", opt_timestamp(&t.deleted_at)));
        if ver.at_least(1, 7) {
            v.push((
                "default_parameters",
                t.default_parameters.clone().unwrap_or_else(|| json!({})),
            ));
        }
    }
    object(v)
}
