//! Upstream's weight planner: actions grouped by type weight (heaviest
//! first), each type cut into chunks of its parallelization, and every
//! action of a chunk made a child of every action of the chunk before.

use super::strategies::Proposed;
use crate::core::NewAction;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

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

impl WeightPlanner {
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
}
