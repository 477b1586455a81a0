//! The applier's configuration (`[applier]`), the limits of a plan's
//! execution, and the settings an applier runs with.

use crate::actions::ActionSettings;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The applier's settings (`[applier]` of watcherd's configuration).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApplierConfig {
    pub max_concurrent_plans: usize,
    pub sweep_interval_secs: f64,
    pub shutdown_grace_secs: f64,
    pub poll_interval_ms: u64,
    pub abort_deadline_secs: f64,
    pub non_abortable_deadline_secs: f64,
    /// After a cancel, undo SUCCEEDED actions that know how (off by default).
    pub rollback_on_cancel: bool,
    /// Seconds a plan stays leased to its applier without a renewal (renewed
    /// every sweep); then another applier takes it over.
    pub lease_secs: f64,
    pub limits: Limits,
}

impl Default for ApplierConfig {
    fn default() -> Self {
        ApplierConfig {
            max_concurrent_plans: 4,
            sweep_interval_secs: 2.0,
            shutdown_grace_secs: 10.0,
            poll_interval_ms: 100,
            abort_deadline_secs: 120.0,
            non_abortable_deadline_secs: 300.0,
            rollback_on_cancel: false,
            lease_secs: 30.0,
            limits: Limits::default(),
        }
    }
}

/// Concurrency limits of one plan's execution.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Actions of one plan running at once.
    pub per_plan: usize,
    /// Actions touching one compute host at once (source or destination).
    pub per_host: usize,
    /// Actions of one type running at once (upstream's `parallelization`).
    pub per_type: BTreeMap<String, usize>,
    /// For types not listed in `per_type`.
    pub default_per_type: usize,
}

impl Default for Limits {
    fn default() -> Self {
        let per_type = [
            ("migrate", 2),
            ("resize", 2),
            ("volume_migrate", 2),
            ("change_nova_service_state", 1),
            ("nop", 1),
            ("sleep", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Limits {
            per_plan: 16,
            per_host: 2,
            per_type,
            default_per_type: 2,
        }
    }
}

impl Limits {
    pub fn for_type(&self, action_type: &str) -> usize {
        self.per_type
            .get(action_type)
            .copied()
            .unwrap_or(self.default_per_type)
            .max(1)
    }
}

/// The applier's settings.
#[derive(Debug, Clone)]
pub struct ApplierSettings {
    /// This process's name, written as the plans' `hostname`.
    pub host: String,
    /// Plans run at once by this applier.
    pub max_concurrent_plans: usize,
    pub limits: Limits,
    pub actions: ActionSettings,
    /// How often the database is swept for work a lost event would hide.
    pub sweep_interval: Duration,
    pub shutdown_grace: Duration,
    /// After a cancel, undo SUCCEEDED actions that know how.
    pub rollback_on_cancel: bool,
    /// How long a plan stays this applier's without a renewal; another
    /// applier takes over a plan whose lease ran out.
    pub lease: Duration,
}

impl ApplierConfig {
    /// The settings of an applier named `host` (its plans' `hostname`).
    pub fn settings(&self, host: &str) -> ApplierSettings {
        let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
        ApplierSettings {
            host: host.to_string(),
            max_concurrent_plans: self.max_concurrent_plans,
            limits: self.limits.clone(),
            actions: ActionSettings {
                poll_interval: Duration::from_millis(self.poll_interval_ms.max(1)),
                non_abortable_deadline: secs(self.non_abortable_deadline_secs),
                abort_deadline: secs(self.abort_deadline_secs),
            },
            sweep_interval: secs(self.sweep_interval_secs),
            shutdown_grace: secs(self.shutdown_grace_secs),
            rollback_on_cancel: self.rollback_on_cancel,
            lease: secs(self.lease_secs),
        }
    }
}
