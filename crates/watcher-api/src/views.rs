//! JSON shapes of the v1 resources, per microversion, list or detail form.

use super::version::Version;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use uuid::Uuid;
use watcher_core::*;

/// `2026-11-25T06:13:47.123456+00:00`, or without the fraction when it is zero.
pub fn timestamp(t: &DateTime<Utc>) -> Value {
    Value::String(time_text(t, true))
}

/// A time as upstream writes it: with the offset (`+00:00`, and the
/// microseconds unless zero) or naive. Written field by field: chrono's
/// `format` parses its pattern again on every call, which was a twentieth
/// of a long list's rendering.
fn time_text(t: &DateTime<Utc>, offset: bool) -> String {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write;
    let mut s = String::with_capacity(32);
    let _ = write!(
        s,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if offset {
        let micros = t.timestamp_subsec_micros();
        if micros != 0 {
            let _ = write!(s, ".{micros:06}");
        }
        s.push_str("+00:00");
    }
    s
}

fn opt_timestamp(t: &Option<DateTime<Utc>>) -> Value {
    t.as_ref().map(timestamp).unwrap_or(Value::Null)
}

/// Audit times upstream shows naive (no offset).
fn naive(t: &Option<DateTime<Utc>>) -> Value {
    t.map(|t| Value::String(time_text(&t, false)))
        .unwrap_or(Value::Null)
}

pub fn links(base: &str, resource: &str, id: &str) -> Value {
    serde_json::to_value(Links { base, resource, id }).expect("links are plain strings")
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

/// An audit as upstream shows it: serialized straight from the record,
/// without a JSON tree in between (a list of 1,000 audits with their scope
/// and parameters was mostly allocations). The fields are in alphabetical
/// order, as the other resources' maps write theirs.
#[derive(serde::Serialize)]
pub struct AuditView<'a> {
    audit_type: &'a AuditType,
    auto_trigger: bool,
    #[serde(skip_serializing_if = "Field::is_absent")]
    created_at: Field<Time>,
    #[serde(skip_serializing_if = "Field::is_absent")]
    deleted_at: Field<Option<Time>>,
    #[serde(skip_serializing_if = "Field::is_absent")]
    end_time: Field<Option<Naive>>,
    #[serde(skip_serializing_if = "Field::is_absent")]
    force: Field<bool>,
    goal_name: &'a str,
    goal_uuid: &'a Uuid,
    #[serde(skip_serializing_if = "Field::is_absent")]
    hostname: Field<&'a Option<String>>,
    interval: &'a Option<String>,
    links: Links<'a, Uuid>,
    name: &'a str,
    next_run_time: Option<Naive>,
    #[serde(skip_serializing_if = "Field::is_absent")]
    parameters: Field<&'a Value>,
    scope: &'a Value,
    #[serde(skip_serializing_if = "Field::is_absent")]
    start_time: Field<Option<Naive>>,
    state: &'a AuditState,
    #[serde(skip_serializing_if = "Field::is_absent")]
    status_message: Field<&'a Option<String>>,
    strategy_name: &'a Option<String>,
    strategy_uuid: &'a Option<Uuid>,
    #[serde(skip_serializing_if = "Field::is_absent")]
    updated_at: Field<Option<Time>>,
    uuid: &'a Uuid,
}

pub fn audit<'a>(a: &'a Audit, base: &'a str, detail: bool, ver: Version) -> AuditView<'a> {
    let at = |t: &Option<DateTime<Utc>>| t.map(Time);
    let naive = |t: &Option<DateTime<Utc>>| t.map(Naive);
    AuditView {
        audit_type: &a.audit_type,
        auto_trigger: a.auto_trigger,
        created_at: Field::shown_if(detail, Time(a.created_at)),
        deleted_at: Field::shown_if(detail, at(&a.deleted_at)),
        end_time: Field::shown_if(detail && ver.at_least(1, 1), naive(&a.end_time)),
        force: Field::shown_if(detail && ver.at_least(1, 2), a.force),
        goal_name: &a.goal_name,
        goal_uuid: &a.goal_uuid,
        hostname: Field::shown_if(detail, &a.hostname),
        interval: &a.interval,
        links: Links {
            base,
            resource: "audits",
            id: a.uuid,
        },
        name: &a.name,
        next_run_time: naive(&a.next_run_time),
        parameters: Field::shown_if(detail, &a.parameters),
        scope: &a.scope,
        start_time: Field::shown_if(detail && ver.at_least(1, 1), naive(&a.start_time)),
        state: &a.state,
        status_message: Field::shown_if(detail && ver.at_least(1, 5), &a.status_message),
        strategy_name: &a.strategy_name,
        strategy_uuid: &a.strategy_uuid,
        updated_at: Field::shown_if(detail, at(&a.updated_at)),
        uuid: &a.uuid,
    }
}

/// A field a view shows only in some forms (detail, a microversion):
/// absent is left out, shown is written even when it holds `null`.
pub enum Field<T> {
    Absent,
    Shown(T),
}

impl<T> Field<T> {
    fn shown_if(shown: bool, v: T) -> Field<T> {
        if shown {
            Field::Shown(v)
        } else {
            Field::Absent
        }
    }

    fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }
}

impl<T: serde::Serialize> serde::Serialize for Field<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Absent => s.serialize_none(),
            Field::Shown(v) => v.serialize(s),
        }
    }
}

/// A time written as [`timestamp`] writes it.
#[derive(Clone, Copy)]
pub struct Time(DateTime<Utc>);

impl serde::Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&time_text(&self.0, true))
    }
}

/// A time written naive, as upstream writes an audit's.
#[derive(Clone, Copy)]
pub struct Naive(DateTime<Utc>);

impl serde::Serialize for Naive {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&time_text(&self.0, false))
    }
}

/// A resource's `links`: itself under `/v1` and its bookmark.
pub struct Links<'a, I> {
    base: &'a str,
    resource: &'a str,
    id: I,
}

impl<I: std::fmt::Display> serde::Serialize for Links<'_, I> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Link<'a> {
            href: &'a str,
            rel: &'static str,
        }
        let (base, resource, id) = (self.base, self.resource, &self.id);
        let own = format!("{base}/v1/{resource}/{id}");
        let bookmark = format!("{base}/{resource}/{id}");
        [
            Link {
                href: &own,
                rel: "self",
            },
            Link {
                href: &bookmark,
                rel: "bookmark",
            },
        ]
        .serialize(s)
    }
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
    uuid: &str,
    base: &str,
    detail: bool,
) -> Value {
    let mut v = vec![
        ("uuid", json!(uuid)),
        ("name", json!(e.name)),
        ("description", json!(e.description)),
        ("links", links(base, "scoring_engines", uuid)),
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
