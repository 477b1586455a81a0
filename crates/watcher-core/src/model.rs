//! Records as the store keeps them and the API shows them.

use super::states::{ActionPlanState, ActionState, Actor, AuditState, AuditType};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EfficacySpec {
    pub name: String,
    pub description: String,
    pub unit: Option<String>,
    pub schema: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Goal {
    pub id: i64,
    pub uuid: Uuid,
    pub name: String,
    pub display_name: String,
    pub efficacy_specification: Vec<EfficacySpec>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Strategy {
    pub id: i64,
    pub uuid: Uuid,
    pub name: String,
    pub display_name: String,
    pub goal_id: i64,
    pub goal_uuid: Uuid,
    pub goal_name: String,
    pub parameters_spec: Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Audit {
    pub id: i64,
    pub uuid: Uuid,
    pub name: String,
    pub audit_type: AuditType,
    pub state: AuditState,
    pub goal_uuid: Uuid,
    pub goal_name: String,
    pub strategy_uuid: Option<Uuid>,
    pub strategy_name: Option<String>,
    pub parameters: Value,
    pub interval: Option<String>,
    pub scope: Value,
    pub auto_trigger: bool,
    pub force: bool,
    /// An EVENT audit whose webhook fired and whose run has not started yet.
    pub triggered: bool,
    pub next_run_time: Option<DateTime<Utc>>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub hostname: Option<String>,
    pub status_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EfficacyIndicator {
    pub name: String,
    pub description: String,
    pub unit: Option<String>,
    pub value: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ActionPlan {
    pub id: i64,
    pub uuid: Uuid,
    pub audit_uuid: Uuid,
    pub strategy_uuid: Uuid,
    pub strategy_name: String,
    pub state: ActionPlanState,
    pub efficacy_indicators: Vec<EfficacyIndicator>,
    pub global_efficacy: Vec<EfficacyIndicator>,
    pub hostname: Option<String>,
    pub status_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Action {
    pub id: i64,
    pub uuid: Uuid,
    pub action_plan_uuid: Uuid,
    pub action_type: String,
    pub input_parameters: Value,
    pub parents: Vec<Uuid>,
    pub state: ActionState,
    pub status_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Which kind of record a history row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    ActionPlan,
    Action,
    Audit,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::ActionPlan => "action_plan",
            Entity::Action => "action",
            Entity::Audit => "audit",
        }
    }

    pub fn parse(s: &str) -> Option<Entity> {
        match s {
            "action_plan" => Some(Entity::ActionPlan),
            "action" => Some(Entity::Action),
            "audit" => Some(Entity::Audit),
            _ => None,
        }
    }
}

/// One state change, written in the same transaction as the change itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryEntry {
    pub seq: i64,
    pub entity: Entity,
    pub uuid: Uuid,
    /// The plan the row belongs to (the plan itself for plan rows); None for audits.
    pub action_plan_uuid: Option<Uuid>,
    /// None when the record was created in `to`.
    pub from_state: Option<String>,
    pub to_state: String,
    pub actor: Actor,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// A new action as a planner hands it to the store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAction {
    pub uuid: Uuid,
    pub action_type: String,
    pub input_parameters: Value,
    pub parents: Vec<Uuid>,
}

/// A watcherd component that reports it is alive (`GET /v1/services`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceRecord {
    pub id: i64,
    /// `watcher-applier` or `watcher-decision-engine`, as upstream.
    pub name: String,
    pub host: String,
    pub last_seen_up: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A reusable audit definition (`watcher audittemplate ...`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditTemplate {
    pub id: i64,
    pub uuid: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub goal_id: i64,
    pub goal_uuid: Uuid,
    pub goal_name: String,
    pub strategy_id: Option<i64>,
    pub strategy_uuid: Option<Uuid>,
    pub strategy_name: Option<String>,
    pub scope: Value,
    pub default_parameters: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}
