//! A plan's actions as a DAG: each node knows its children, how many
//! parents it still waits on, and the hosts it touches (per-host limits).

use std::collections::{HashMap, VecDeque};
use uuid::Uuid;
use watcher_core::{Action, ActionState};

pub(super) struct Node {
    pub(super) action: Action,
    pub(super) children: Vec<usize>,
    pub(super) waiting_on: usize,
    pub(super) hosts: Vec<String>,
}

/// PENDING actions whose parents have all settled, by action type.
pub(super) type ReadyQueues = HashMap<String, VecDeque<usize>>;

pub(super) fn dag(actions: Vec<Action>) -> Vec<Node> {
    let index: HashMap<Uuid, usize> = actions
        .iter()
        .enumerate()
        .map(|(i, a)| (a.uuid, i))
        .collect();
    let mut nodes: Vec<Node> = actions
        .into_iter()
        .map(|a| {
            let hosts = watcher_core::actions::lookup(&a.action_type)
                .map(|t| t.hosts(&a.input_parameters))
                .unwrap_or_default();
            Node {
                action: a,
                children: vec![],
                waiting_on: 0,
                hosts,
            }
        })
        .collect();
    for i in 0..nodes.len() {
        let parents = nodes[i].action.parents.clone();
        for p in parents.iter().filter_map(|p| index.get(p)) {
            nodes[*p].children.push(i);
            nodes[i].waiting_on += 1;
        }
    }
    nodes
}

/// Parents before children (Kahn's algorithm); creation order among equals.
pub(super) fn topological_order(nodes: &[Node]) -> Vec<usize> {
    let mut waiting: Vec<usize> = vec![0; nodes.len()];
    for n in nodes {
        for &c in &n.children {
            waiting[c] += 1;
        }
    }
    let mut queue: VecDeque<usize> = (0..nodes.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = queue.pop_front() {
        order.push(i);
        for &c in &nodes[i].children {
            waiting[c] -= 1;
            if waiting[c] == 0 {
                queue.push_back(c);
            }
        }
    }
    order
}

/// Action `i` settled: each child waits on one parent less, and a PENDING
/// child that waits on none is ready.
pub(super) fn release_children(nodes: &mut [Node], i: usize, ready: &mut ReadyQueues) {
    let children = nodes[i].children.clone();
    for c in children {
        let n = &mut nodes[c];
        n.waiting_on = n.waiting_on.saturating_sub(1);
        if n.waiting_on == 0 && n.action.state == ActionState::Pending {
            ready
                .entry(n.action.action_type.clone())
                .or_default()
                .push_back(c);
        }
    }
}
