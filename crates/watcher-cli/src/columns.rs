//! The columns of each resource, with the titles python-watcherclient 4.11
//! gives them (its `resource_fields.py`): scripts written for either client
//! read the same keys from `-f json`. Columns of fields a microversion
//! brought are left out below it, as upstream does.

use crate::output::Columns;

pub const GOAL_LIST: Columns = &[
    ("UUID", "uuid"),
    ("Name", "name"),
    ("Display name", "display_name"),
];
pub const GOAL: Columns = &[
    ("UUID", "uuid"),
    ("Name", "name"),
    ("Display name", "display_name"),
    ("Efficacy specification", "efficacy_specification"),
];

pub const STRATEGY_LIST: Columns = &[
    ("UUID", "uuid"),
    ("Name", "name"),
    ("Display name", "display_name"),
    ("Goal", "goal_name"),
];
pub const STRATEGY: Columns = &[
    ("UUID", "uuid"),
    ("Name", "name"),
    ("Display name", "display_name"),
    ("Goal", "goal_name"),
    ("Parameters spec", "parameters_spec"),
];
pub const STRATEGY_STATE: Columns = &[
    ("Type", "type"),
    ("State", "state"),
    ("Mandatory", "mandatory"),
    ("Comment", "comment"),
];

pub const AUDIT_TEMPLATE_LIST: Columns = &[
    ("UUID", "uuid"),
    ("Name", "name"),
    ("Goal", "goal_name"),
    ("Strategy", "strategy_name"),
];
pub const AUDIT_TEMPLATE: Columns = &[
    ("UUID", "uuid"),
    ("Created At", "created_at"),
    ("Updated At", "updated_at"),
    ("Deleted At", "deleted_at"),
    ("Description", "description"),
    ("Name", "name"),
    ("Goal", "goal_name"),
    ("Strategy", "strategy_name"),
    ("Audit Scope", "scope"),
    ("Default Parameters", "default_parameters"),
];

pub const AUDIT_LIST: Columns = &[
    ("UUID", "uuid"),
    ("Name", "name"),
    ("Audit Type", "audit_type"),
    ("State", "state"),
    ("Goal", "goal_name"),
    ("Strategy", "strategy_name"),
    ("Auto Trigger", "auto_trigger"),
];
const AUDIT: Columns = &[
    ("UUID", "uuid"),
    ("Name", "name"),
    ("Created At", "created_at"),
    ("Updated At", "updated_at"),
    ("Deleted At", "deleted_at"),
    ("State", "state"),
    ("Audit Type", "audit_type"),
    ("Parameters", "parameters"),
    ("Interval", "interval"),
    ("Goal", "goal_name"),
    ("Strategy", "strategy_name"),
    ("Audit Scope", "scope"),
    ("Auto Trigger", "auto_trigger"),
    ("Next Run Time", "next_run_time"),
    ("Hostname", "hostname"),
    ("Start Time", "start_time"),
    ("End Time", "end_time"),
    ("Force", "force"),
    ("Status Message", "status_message"),
];

pub const PLAN_LIST: Columns = &[
    ("UUID", "uuid"),
    ("Audit", "audit_uuid"),
    ("State", "state"),
    ("Updated At", "updated_at"),
    ("Global efficacy", "global_efficacy"),
];
const PLAN: Columns = &[
    ("UUID", "uuid"),
    ("Created At", "created_at"),
    ("Updated At", "updated_at"),
    ("Deleted At", "deleted_at"),
    ("Audit", "audit_uuid"),
    ("Strategy", "strategy_name"),
    ("State", "state"),
    ("Efficacy indicators", "efficacy_indicators"),
    ("Global efficacy", "global_efficacy"),
    ("Hostname", "hostname"),
    ("Status Message", "status_message"),
];

pub const ACTION_LIST: Columns = &[
    ("UUID", "uuid"),
    ("Parents", "parents"),
    ("State", "state"),
    ("Action Plan", "action_plan_uuid"),
    ("Action", "action_type"),
];
const ACTION: Columns = &[
    ("UUID", "uuid"),
    ("Created At", "created_at"),
    ("Updated At", "updated_at"),
    ("Deleted At", "deleted_at"),
    ("Parents", "parents"),
    ("State", "state"),
    ("Action Plan", "action_plan_uuid"),
    ("Action", "action_type"),
    ("Parameters", "input_parameters"),
    ("Description", "description"),
    ("Status Message", "status_message"),
];

pub const SCORING_ENGINE_LIST: Columns = &[
    ("UUID", "uuid"),
    ("Name", "name"),
    ("Description", "description"),
];
pub const SCORING_ENGINE: Columns = &[
    ("UUID", "uuid"),
    ("Name", "name"),
    ("Description", "description"),
    ("Metainfo", "metainfo"),
];

pub const SERVICE_LIST: Columns = &[
    ("ID", "id"),
    ("Name", "name"),
    ("Host", "host"),
    ("Status", "status"),
];
pub const SERVICE: Columns = &[
    ("ID", "id"),
    ("Name", "name"),
    ("Host", "host"),
    ("Status", "status"),
    ("Last seen up", "last_seen_up"),
];

pub const COMPUTE_MODEL_LIST: Columns = &[
    ("Server UUID", "server_uuid"),
    ("Server Name", "server_name"),
    ("Server State", "server_state"),
    ("Node UUID", "node_uuid"),
    ("Node Host Name", "node_hostname"),
];
pub const COMPUTE_MODEL: Columns = &[
    ("Server_UUID", "server_uuid"),
    ("Server Name", "server_name"),
    ("Server Vcpus", "server_vcpus"),
    ("Server Memory", "server_memory"),
    ("Server Disk", "server_disk"),
    ("Server State", "server_state"),
    ("Node UUID", "node_uuid"),
    ("Node Host Name", "node_hostname"),
    ("Node Vcpus", "node_vcpus"),
    ("Node Vcpu Ratio", "node_vcpu_ratio"),
    ("Node Memory", "node_memory"),
    ("Node Memory Ratio", "node_memory_ratio"),
    ("Node Disk", "node_disk"),
    ("Node Disk Ratio", "node_disk_ratio"),
    ("Node State", "node_state"),
];

/// Ours: `actionplan history`.
pub const HISTORY: Columns = &[
    ("At", "at"),
    ("Resource", "resource"),
    ("UUID", "uuid"),
    ("From", "from_state"),
    ("To", "to_state"),
    ("By", "actor"),
    ("Reason", "reason"),
];

/// `columns` without the titles of fields newer than `version`.
fn at_version(columns: Columns<'static>, version: (u32, u32)) -> Vec<(&'static str, &'static str)> {
    columns
        .iter()
        .filter(|(title, _)| match *title {
            "Start Time" | "End Time" => version >= (1, 1),
            "Force" => version >= (1, 2),
            "Status Message" => version >= (1, 5),
            _ => true,
        })
        .copied()
        .collect()
}

pub fn audit(version: (u32, u32)) -> Vec<(&'static str, &'static str)> {
    at_version(AUDIT, version)
}

pub fn plan(version: (u32, u32)) -> Vec<(&'static str, &'static str)> {
    at_version(PLAN, version)
}

pub fn action(version: (u32, u32)) -> Vec<(&'static str, &'static str)> {
    at_version(ACTION, version)
}

/// `--sort-key` takes a field or a column title, as upstream's client does.
pub fn sort_field(key: &str, columns: Columns) -> Option<String> {
    columns
        .iter()
        .find(|(title, field)| *title == key || *field == key)
        .map(|(_, field)| field.to_string())
}
