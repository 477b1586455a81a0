//! What a strategy produces, shared by every strategy: the actions it
//! proposes, its efficacy, and its errors.

use serde_json::{json, Value};
use watcher_cloud::Instance;
pub use watcher_core::EfficacyIndicator;

/// An action a strategy proposes, before planning.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposed {
    pub action_type: String,
    pub input_parameters: Value,
}

pub(crate) fn proposed(action_type: &str, input_parameters: Value) -> Proposed {
    Proposed {
        action_type: action_type.into(),
        input_parameters,
    }
}

/// The one shape of a migration every strategy proposes.
pub(crate) fn migrate_action(
    inst: &Instance,
    migration_type: &str,
    source: &str,
    destination: &str,
) -> Proposed {
    proposed(
        "migrate",
        json!({"migration_type": migration_type, "resource_id": inst.uuid, "resource_name": inst.name,
               "source_node": source, "destination_node": destination}),
    )
}

/// A strategy's result.
#[derive(Debug, Clone, Default)]
pub struct Solution {
    pub actions: Vec<Proposed>,
    pub efficacy_indicators: Vec<EfficacyIndicator>,
    pub global_efficacy: Vec<EfficacyIndicator>,
}

#[derive(Debug, thiserror::Error)]
pub enum StrategyError {
    #[error("{0}")]
    Invalid(String),
    #[error("the cloud could not be read: {0}")]
    Cloud(#[from] watcher_cloud::CloudError),
    #[error("{0}")]
    Metrics(#[from] super::metrics::MetricsError),
}
