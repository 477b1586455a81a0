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

impl Entity {
    /// The record's name in messages and error bodies ("ActionPlan", ...).
    pub fn kind(self) -> &'static str {
        match self {
            Entity::ActionPlan => "ActionPlan",
            Entity::Action => "Action",
            Entity::Audit => "Audit",
        }
    }
}

/// A state of one of the three state machines, with the machine it
/// belongs to: what the store saw or expected, and what history rows hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityState {
    ActionPlan(ActionPlanState),
    Action(ActionState),
    Audit(AuditState),
}

impl EntityState {
    pub fn entity(self) -> Entity {
        match self {
            EntityState::ActionPlan(_) => Entity::ActionPlan,
            EntityState::Action(_) => Entity::Action,
            EntityState::Audit(_) => Entity::Audit,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EntityState::ActionPlan(s) => s.as_str(),
            EntityState::Action(s) => s.as_str(),
            EntityState::Audit(s) => s.as_str(),
        }
    }

    /// `s` read as a state of `entity`'s machine.
    pub fn parse(entity: Entity, s: &str) -> Option<EntityState> {
        match entity {
            Entity::ActionPlan => s.parse().ok().map(EntityState::ActionPlan),
            Entity::Action => s.parse().ok().map(EntityState::Action),
            Entity::Audit => s.parse().ok().map(EntityState::Audit),
        }
    }

    /// The plan state, for a plan's row.
    pub fn plan(self) -> Option<ActionPlanState> {
        match self {
            EntityState::ActionPlan(s) => Some(s),
            _ => None,
        }
    }
}

/// Written as its name ("ONGOING"), as the API and notifications show states.
impl Serialize for EntityState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for EntityState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ActionPlanState> for EntityState {
    fn from(s: ActionPlanState) -> Self {
        EntityState::ActionPlan(s)
    }
}

impl From<ActionState> for EntityState {
    fn from(s: ActionState) -> Self {
        EntityState::Action(s)
    }
}

impl From<AuditState> for EntityState {
    fn from(s: AuditState) -> Self {
        EntityState::Audit(s)
    }
}

/// One state change, written in the same transaction as the change itself.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub seq: i64,
    pub entity: Entity,
    pub uuid: Uuid,
    /// The plan the row belongs to (the plan itself for plan rows); None for audits.
    pub action_plan_uuid: Option<Uuid>,
    /// None when the record was created in `to`.
    pub from_state: Option<EntityState>,
    pub to_state: EntityState,
    pub actor: Actor,
    pub reason: String,
    pub at: DateTime<Utc>,
}

impl HistoryEntry {
    /// Whether this row records a plan taken over by another applier (its
    /// lease ran out). Such a row is the only plan row whose state does not
    /// change: the plan keeps its state and changes hands.
    pub fn is_takeover(&self) -> bool {
        self.entity == Entity::ActionPlan && self.from_state == Some(self.to_state)
    }

    /// Whether this row ends an action's run: it leaves ONGOING or
    /// CANCELLING for a final state.
    pub fn ends_action_run(&self) -> bool {
        use ActionState as A;
        matches!(
            (self.from_state, self.to_state),
            (
                Some(EntityState::Action(A::Ongoing | A::Cancelling)),
                EntityState::Action(A::Succeeded | A::Failed | A::Cancelled)
            )
        )
    }
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
