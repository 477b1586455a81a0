//! The states the API answers with, parsed into watcher-core's types, so
//! that the CLI decides on states (exit codes, what a cancel asks for, when
//! a wait ends) with the same enums and rules as watcherd. A state this
//! client does not know (a newer server's) parses to `None`.

use serde_json::Value;
use watcher_core::{ActionPlanState, ActionState, AuditState, AuditType};

pub fn plan_state(plan: &Value) -> Option<ActionPlanState> {
    plan["state"].as_str()?.parse().ok()
}

pub fn action_state(action: &Value) -> Option<ActionState> {
    action["state"].as_str()?.parse().ok()
}

pub fn audit_state(audit: &Value) -> Option<AuditState> {
    audit["state"].as_str()?.parse().ok()
}

pub fn audit_type(audit: &Value) -> Option<AuditType> {
    audit["audit_type"].as_str()?.parse().ok()
}
