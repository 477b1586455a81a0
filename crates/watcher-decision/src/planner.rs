//! Upstream's three planners, which turn a strategy's actions into the
//! `parents` DAG:
//!
//! - weight: actions grouped by type weight (heaviest first), each type cut
//!   into chunks of its parallelization, and every action of a chunk made a
//!   child of every action of the chunk before;
//! - workload_stabilization: heaviest type first, everything in parallel
//!   except that a resize waits for the earlier actions on its instance;
//! - node_resource_consolidation: the disabling of nodes first, then each
//!   node's migrations one after the other (nodes in parallel), then the
//!   re-enabling of nodes after every node's last migration.
//!
//! The applier's limits (per plan, per host, per type) bound what really
//! runs at once whatever the planner allowed.

use crate::solution::Proposed;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;
use watcher_core::NewAction;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WeightPlanner {
    pub weights: BTreeMap<String, u32>,
    pub parallelization: BTreeMap<String, usize>,
}

impl Default for WeightPlanner {
    fn default() -> Self {
        let weights = [
            ("nop", 70),
            ("volume_migrate", 60),
            ("change_nova_service_state", 50),
            ("sleep", 40),
            ("stop", 35),
            ("migrate", 30),
            ("resize", 20),
            ("change_node_power_state", 9),
        ];
        let parallelization = [
            ("nop", 1),
            ("sleep", 1),
            ("change_nova_service_state", 1),
            ("migrate", 2),
            ("resize", 2),
            ("stop", 2),
            ("volume_migrate", 2),
            ("change_node_power_state", 2),
        ];
        WeightPlanner {
            weights: weights.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            parallelization: parallelization
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        }
    }
}

/// Which planner a strategy's solution goes through (upstream's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlannerKind {
    Weight,
    WorkloadStabilization,
    NodeResourceConsolidation,
}

fn new_action(p: &Proposed, parents: Vec<Uuid>) -> NewAction {
    NewAction {
        uuid: Uuid::new_v4(),
        action_type: p.action_type.clone(),
        input_parameters: p.input_parameters.clone(),
        parents,
    }
}

fn text<'a>(p: &'a Proposed, key: &str) -> &'a str {
    p.input_parameters
        .get(key)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
}

impl WeightPlanner {
    /// The DAG for `proposed` by the planner `kind`; the weights (and, for
    /// the weight planner, the parallelization) are this configuration's.
    pub fn schedule_with(&self, kind: PlannerKind, proposed: Vec<Proposed>) -> Vec<NewAction> {
        match kind {
            PlannerKind::Weight => self.schedule(proposed),
            PlannerKind::WorkloadStabilization => self.stabilization(proposed),
            PlannerKind::NodeResourceConsolidation => node_resource_consolidation(proposed),
        }
    }

    fn stabilization(&self, mut proposed: Vec<Proposed>) -> Vec<NewAction> {
        let weight = |p: &Proposed| self.weights.get(&p.action_type).copied().unwrap_or(0);
        proposed.sort_by_key(|p| std::cmp::Reverse(weight(p)));
        let mut on_instance: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
        let mut out = Vec::with_capacity(proposed.len());
        for p in &proposed {
            let instance = text(p, "resource_id").to_string();
            let parents = if p.action_type == "resize" {
                on_instance.get(&instance).cloned().unwrap_or_default()
            } else {
                vec![]
            };
            let a = new_action(p, parents);
            if matches!(p.action_type.as_str(), "migrate" | "resize") {
                on_instance.entry(instance).or_default().push(a.uuid);
            }
            out.push(a);
        }
        out
    }

    pub fn schedule(&self, proposed: Vec<Proposed>) -> Vec<NewAction> {
        let mut by_type: Vec<(u32, String, Vec<Proposed>)> = Vec::new();
        for p in proposed {
            match by_type.iter_mut().find(|(_, t, _)| *t == p.action_type) {
                Some((_, _, v)) => v.push(p),
                None => {
                    let w = self.weights.get(&p.action_type).copied().unwrap_or(0);
                    by_type.push((w, p.action_type.clone(), vec![p]));
                }
            }
        }
        // Stable: equal weights keep the strategy's order.
        by_type.sort_by_key(|t| std::cmp::Reverse(t.0));
        let mut out = Vec::new();
        let mut previous: Vec<Uuid> = Vec::new();
        for (_, ty, actions) in by_type {
            let chunk = self.parallelization.get(&ty).copied().unwrap_or(1).max(1);
            for group in actions.chunks(chunk) {
                let ids: Vec<Uuid> = group.iter().map(|_| Uuid::new_v4()).collect();
                for (p, id) in group.iter().zip(&ids) {
                    out.push(NewAction {
                        uuid: *id,
                        action_type: p.action_type.clone(),
                        input_parameters: p.input_parameters.clone(),
                        parents: previous.clone(),
                    });
                }
                previous = ids;
            }
        }
        out
    }
}

fn node_resource_consolidation(proposed: Vec<Proposed>) -> Vec<NewAction> {
    let is_state = |p: &Proposed, state: &str| {
        p.action_type == "change_nova_service_state" && text(p, "state") == state
    };
    let disables: Vec<NewAction> = proposed
        .iter()
        .filter(|p| is_state(p, "disabled"))
        .map(|p| new_action(p, vec![]))
        .collect();
    let after_disables: Vec<Uuid> = disables.iter().map(|a| a.uuid).collect();
    let mut out = disables;
    // Each source node's migrations in a chain, in the strategy's order.
    let mut last_of_node: Vec<(String, Uuid)> = vec![];
    for p in proposed.iter().filter(|p| p.action_type == "migrate") {
        let node = text(p, "source_node").to_string();
        let mut parents = after_disables.clone();
        if let Some((_, prev)) = last_of_node.iter().find(|(n, _)| *n == node) {
            parents.push(*prev);
        }
        let a = new_action(p, parents);
        match last_of_node.iter_mut().find(|(n, _)| *n == node) {
            Some(entry) => entry.1 = a.uuid,
            None => last_of_node.push((node, a.uuid)),
        }
        out.push(a);
    }
    let after_migrations: Vec<Uuid> = last_of_node.iter().map(|(_, u)| *u).collect();
    // Anything else (enables, and types this planner does not order) last.
    for p in proposed
        .iter()
        .filter(|p| p.action_type != "migrate" && !is_state(p, "disabled"))
    {
        out.push(new_action(p, after_migrations.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(t: &str) -> Proposed {
        Proposed {
            action_type: t.into(),
            input_parameters: json!({}),
        }
    }

    #[test]
    fn heavier_types_come_first_and_chunks_chain() {
        let plan = WeightPlanner::default().schedule(vec![
            p("sleep"),
            p("migrate"),
            p("nop"),
            p("migrate"),
            p("migrate"),
            p("nop"),
        ]);
        let types: Vec<&str> = plan.iter().map(|a| a.action_type.as_str()).collect();
        assert_eq!(
            types,
            ["nop", "nop", "sleep", "migrate", "migrate", "migrate"]
        );
        assert!(plan[0].parents.is_empty());
        assert_eq!(plan[1].parents, vec![plan[0].uuid]);
        assert_eq!(plan[2].parents, vec![plan[1].uuid]);
        // migrate parallelization 2: two siblings, then one child of both.
        assert_eq!(plan[3].parents, vec![plan[2].uuid]);
        assert_eq!(plan[4].parents, vec![plan[2].uuid]);
        assert_eq!(plan[5].parents, vec![plan[3].uuid, plan[4].uuid]);
    }

    fn with(t: &str, params: serde_json::Value) -> Proposed {
        Proposed {
            action_type: t.into(),
            input_parameters: params,
        }
    }

    #[test]
    fn node_resource_consolidation_disables_then_chains_per_node_then_enables() {
        let plan = WeightPlanner::default().schedule_with(
            PlannerKind::NodeResourceConsolidation,
            vec![
                with(
                    "change_nova_service_state",
                    json!({"resource_id": "n3", "state": "disabled"}),
                ),
                with("migrate", json!({"resource_id": "a", "source_node": "n3"})),
                with("migrate", json!({"resource_id": "b", "source_node": "n4"})),
                with("migrate", json!({"resource_id": "c", "source_node": "n3"})),
                with(
                    "change_nova_service_state",
                    json!({"resource_id": "n3", "state": "enabled"}),
                ),
            ],
        );
        let (disable, a, b, c, enable) = (&plan[0], &plan[1], &plan[2], &plan[3], &plan[4]);
        assert!(disable.parents.is_empty());
        assert_eq!(a.parents, vec![disable.uuid]);
        assert_eq!(b.parents, vec![disable.uuid]);
        assert_eq!(c.parents, vec![disable.uuid, a.uuid]);
        assert_eq!(enable.parents, vec![c.uuid, b.uuid]);
    }

    #[test]
    fn workload_stabilization_runs_migrations_in_parallel_and_resizes_after_their_instance() {
        let plan = WeightPlanner::default().schedule_with(
            PlannerKind::WorkloadStabilization,
            vec![
                with("resize", json!({"resource_id": "a"})),
                with("migrate", json!({"resource_id": "a", "source_node": "n1"})),
                with("migrate", json!({"resource_id": "b", "source_node": "n1"})),
            ],
        );
        let types: Vec<&str> = plan.iter().map(|a| a.action_type.as_str()).collect();
        assert_eq!(types, ["migrate", "migrate", "resize"]);
        assert!(plan[0].parents.is_empty() && plan[1].parents.is_empty());
        assert_eq!(plan[2].parents, vec![plan[0].uuid]);
    }
}
