//! The audits' pages: the list, one audit with its plans, and the form
//! that creates one, its fields made from the chosen strategy's
//! `parameters_spec` (the API checks what is sent, and its message is
//! shown as it is).

use super::pages::{action_button, patch_state, plan_link, short, state_badge, when};
use super::Permissions;
use maud::{html, Markup};
use serde_json::Value;
use uuid::Uuid;
use watcher_core::{ActionPlan, Audit, AuditState, Strategy};
use watcher_store::{AuditFilter, ListQuery, PlanFilter, SortKey, Store, StoreError};

/// How many audits the list shows (the newest).
const AUDIT_ROWS: usize = 50;

pub struct AuditList {
    audits: Vec<Audit>,
}

impl AuditList {
    pub async fn load(store: &Store) -> Result<AuditList, StoreError> {
        let query = ListQuery {
            limit: AUDIT_ROWS,
            sort: SortKey("x.created_at"),
            descending: true,
            ..Default::default()
        };
        Ok(AuditList {
            audits: store.list_audits(AuditFilter::default(), query).await?,
        })
    }

    pub fn main(&self, may: &Permissions) -> Markup {
        html! {
            h1 { "Audits" }
            @if may.create_audit { p { a href="/dashboard/audits/new" { "New audit" } } }
            @if self.audits.is_empty() { p .empty { "No audit yet." } }
            @else {
                div .scroll { table {
                    thead { tr { th { "Audit" } th { "Name" } th { "Type" } th { "State" } th { "Goal" } th { "Strategy" } th { "Created" } } }
                    tbody { @for a in &self.audits {
                        tr {
                            td { a href={"/dashboard/audits/" (a.uuid)} { code { (short(&a.uuid)) } } }
                            td { (a.name) } td { (a.audit_type.to_string()) } td { (state_badge(a.state.as_str())) }
                            td { (a.goal_name) } td { (a.strategy_name.as_deref().unwrap_or("")) }
                            td { (when(&a.created_at)) }
                        }
                    } }
                } }
            }
        }
    }
}

pub struct AuditPage {
    audit: Audit,
    plans: Vec<ActionPlan>,
}

impl AuditPage {
    pub async fn load(store: &Store, uuid: Uuid) -> Result<AuditPage, StoreError> {
        let audit = store.get_audit(&uuid.to_string(), false).await?;
        let filter = PlanFilter {
            audit_uuid: Some(uuid),
            ..Default::default()
        };
        let plans = store.list_plans(filter, ListQuery::default()).await?;
        Ok(AuditPage { audit, plans })
    }

    pub fn main(&self, may: &Permissions) -> Markup {
        use AuditState::*;
        let a = &self.audit;
        let url = format!("/dashboard/v1/audits/{}", a.uuid);
        html! {
            h1 { "Audit " code { (a.uuid) } }
            dl .facts {
                dt { "Name" } dd { (a.name) }
                dt { "State" } dd #audit-state data-state=(a.state.as_str()) { (state_badge(a.state.as_str())) }
                dt { "Type" } dd { (a.audit_type.to_string()) @if let Some(i) = &a.interval { " every " (i) } }
                dt { "Goal" } dd { (a.goal_name) }
                dt { "Strategy" } dd { (a.strategy_name.as_deref().unwrap_or("(the goal's first)")) }
                dt { "Parameters" } dd { code { (a.parameters.to_string()) } }
                @if let Some(m) = &a.status_message { dt { "Status" } dd { (m) } }
            }
            div .buttons {
                @if matches!(a.state, Pending | Ongoing | Suspended) && may.update_audit {
                    (action_button("Cancel audit", "PATCH", &url,
                        Some(&patch_state(Cancelled.as_str(), None)),
                        "Cancel this audit? It makes no further plan; plans it already made stay as they are."))
                }
                @if matches!(a.state, Succeeded | Failed | Cancelled | Suspended) && may.delete_audit {
                    (action_button("Delete audit", "DELETE", &url, None,
                        "Delete this audit? It leaves the lists; its plans stay."))
                }
            }
            h2 { "Its action plans" }
            @if self.plans.is_empty() { p .empty { "None yet." } }
            @else { ul { @for p in &self.plans {
                li { (plan_link(p)) " " (state_badge(p.state.as_str())) " " (when(&p.created_at)) }
            } } }
        }
    }
}

/// The creation form: first the strategy, then its parameters.
pub struct NewAudit {
    strategies: Vec<Strategy>,
    chosen: Option<Strategy>,
}

impl NewAudit {
    pub async fn load(store: &Store, chosen: Option<&str>) -> Result<NewAudit, StoreError> {
        let strategies = store.list_strategies(None, ListQuery::default()).await?;
        let chosen = match chosen {
            Some(name) => Some(store.get_strategy(name).await?),
            None => None,
        };
        Ok(NewAudit { strategies, chosen })
    }

    pub fn main(&self) -> Markup {
        html! {
            h1 { "New audit" }
            form method="get" action="/dashboard/audits/new" .stack {
                label { "Strategy (and its goal)"
                    select name="strategy" {
                        @for s in &self.strategies {
                            option value=(s.name) selected[self.chosen.as_ref().is_some_and(|c| c.name == s.name)] {
                                (s.display_name) " (" (s.goal_name) ")"
                            }
                        }
                    }
                }
                button type="submit" { "Choose" }
            }
            @if let Some(s) = &self.chosen {
                (parameters_form(s))
            }
        }
    }
}

/// The audit's fields and one input per property of the strategy's
/// `parameters_spec` (numbers, booleans, choices, text; objects and lists
/// as JSON), defaults filled in.
fn parameters_form(s: &Strategy) -> Markup {
    let props = s.parameters_spec["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    html! {
        form #new-audit .stack data-api="/dashboard/v1/audits" data-goal=(s.goal_name) data-strategy=(s.name) {
            h2 { (s.display_name) }
            label { "Name (optional)" input name="name" maxlength="63"; }
            label { "Type"
                select name="audit_type" {
                    option value="ONESHOT" { "ONESHOT" }
                    option value="CONTINUOUS" { "CONTINUOUS" }
                    option value="EVENT" { "EVENT" }
                }
            }
            label { "Interval (CONTINUOUS: seconds or a cron expression)" input name="interval"; }
            @for (name, p) in &props {
                (parameter_input(name, p))
            }
            button type="submit" { "Create audit" }
        }
    }
}

fn parameter_input(name: &str, p: &Value) -> Markup {
    let kind = p["type"].as_str().unwrap_or("string");
    let default = &p["default"];
    let description = p["description"].as_str().unwrap_or("");
    html! {
        label {
            (name) " " small { (description) }
            @if let Some(choices) = p["enum"].as_array() {
                select data-param=(name) data-type="string" {
                    @for c in choices {
                        @let c = c.as_str().unwrap_or_default();
                        option value=(c) selected[default.as_str() == Some(c)] { (c) }
                    }
                }
            } @else if kind == "boolean" {
                input type="checkbox" data-param=(name) data-type="boolean" checked[default.as_bool() == Some(true)];
            } @else if kind == "number" || kind == "integer" {
                input type="number" step="any" data-param=(name) data-type="number"
                    value=[default.as_f64().map(|v| v.to_string())];
            } @else if kind == "string" {
                input data-param=(name) data-type="string" value=[default.as_str()];
            } @else {
                textarea data-param=(name) data-type="json" rows="2" {
                    @if !default.is_null() { (default.to_string()) }
                }
            }
        }
    }
}
