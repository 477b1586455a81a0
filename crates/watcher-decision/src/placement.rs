//! Where every instance is while a strategy plans moves, with each node's
//! allocated vCPUs, RAM and disk kept up to date: the one capacity check
//! strategies share, so no plan can overcommit a host.
//!
//! Nodes and instances are indexed by position in the model; everything is
//! vectors, so a 1,000-host, 20,000-instance model plans in milliseconds.

use super::model::ClusterModel;
use crate::solution::{migrate_action, Proposed, StrategyError};
use std::collections::HashMap;
use watcher_cloud::{ComputeNode, Flavor, Instance};

/// Allocated resources: vCPUs, MB of RAM, GB of disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Alloc {
    pub vcpus: i64,
    pub ram_mb: i64,
    pub disk_gb: i64,
}

impl Alloc {
    fn add(&mut self, o: Alloc) {
        self.vcpus += o.vcpus;
        self.ram_mb += o.ram_mb;
        self.disk_gb += o.disk_gb;
    }
    pub(crate) fn sub(&mut self, o: Alloc) {
        self.vcpus -= o.vcpus;
        self.ram_mb -= o.ram_mb;
        self.disk_gb -= o.disk_gb;
    }
}

/// What an instance of flavor `f` takes of its host. A server booted from a
/// volume keeps its root disk in Cinder: none of its host's local disk (as
/// upstream's model counts it).
pub fn demand_of(inst: &Instance, f: &Flavor) -> Alloc {
    Alloc {
        vcpus: f.vcpus as i64,
        ram_mb: f.ram_mb as i64,
        disk_gb: if inst.boot_from_volume {
            0
        } else {
            f.disk_gb as i64
        },
    }
}

/// A planned move: instance index, from node index, to node index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    pub instance: usize,
    pub from: usize,
    pub to: usize,
}

pub struct Placement<'m> {
    pub model: &'m ClusterModel,
    /// Node index of each instance (in `model.instances` order).
    host: Vec<usize>,
    /// Node index each instance started on.
    origin: Vec<usize>,
    demand: Vec<Alloc>,
    used: Vec<Alloc>,
    capacity: Vec<Alloc>,
    /// Instances per node, kept in step with `host`.
    on_node: Vec<Vec<usize>>,
}

impl<'m> Placement<'m> {
    /// The model's current placement. Instances on nodes outside the model
    /// (outside the scope) are not in a scoped model; an instance whose
    /// flavor the cloud no longer lists cannot be sized, so it is refused
    /// by name rather than counted as free space.
    pub fn new(model: &'m ClusterModel) -> Result<Placement<'m>, StrategyError> {
        let index: HashMap<&str, usize> = model
            .nodes
            .iter()
            .enumerate()
            .map(|(n, node)| (node.name.as_str(), n))
            .collect();
        let capacity: Vec<Alloc> = model
            .nodes
            .iter()
            .map(|n| Alloc {
                vcpus: n.vcpus.capacity() as i64,
                ram_mb: n.ram_mb.capacity() as i64,
                disk_gb: n.disk_gb.capacity() as i64,
            })
            .collect();
        let mut used = vec![Alloc::default(); model.nodes.len()];
        let mut on_node = vec![vec![]; model.nodes.len()];
        let mut host = Vec::with_capacity(model.instances.len());
        let mut demand = Vec::with_capacity(model.instances.len());
        for (i, inst) in model.instances.iter().enumerate() {
            let n = *index.get(inst.host.as_str()).ok_or_else(|| {
                StrategyError::Invalid(format!(
                    "instance {} is on {}, a host the model does not have",
                    inst.name, inst.host
                ))
            })?;
            let f = model.flavors.get(&inst.flavor).ok_or_else(|| {
                StrategyError::Invalid(format!(
                    "instance {} has flavor {}, which the cloud does not list; its size is unknown",
                    inst.name, inst.flavor
                ))
            })?;
            let d = demand_of(inst, f);
            used[n].add(d);
            on_node[n].push(i);
            host.push(n);
            demand.push(d);
        }
        Ok(Placement {
            model,
            origin: host.clone(),
            host,
            demand,
            used,
            capacity,
            on_node,
        })
    }

    pub fn node(&self, n: usize) -> &'m ComputeNode {
        &self.model.nodes[n]
    }

    pub fn instance(&self, i: usize) -> &'m Instance {
        &self.model.instances[i]
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.model.nodes.iter().position(|n| n.name == name)
    }

    pub fn host_of(&self, i: usize) -> usize {
        self.host[i]
    }

    pub fn instances_on(&self, n: usize) -> &[usize] {
        &self.on_node[n]
    }

    pub fn demand(&self, i: usize) -> Alloc {
        self.demand[i]
    }

    pub fn used(&self, n: usize) -> Alloc {
        self.used[n]
    }

    pub fn capacity(&self, n: usize) -> Alloc {
        self.capacity[n]
    }

    /// Whether instance `i` fits in what node `n` has left.
    pub fn fits(&self, i: usize, n: usize) -> bool {
        let (d, u, c) = (self.demand[i], self.used[n], self.capacity[n]);
        u.vcpus + d.vcpus <= c.vcpus
            && u.ram_mb + d.ram_mb <= c.ram_mb
            && u.disk_gb + d.disk_gb <= c.disk_gb
    }

    /// Moves instance `i` to node `n` in the plan (the caller checked `fits`).
    pub fn relocate(&mut self, i: usize, n: usize) {
        let from = self.host[i];
        if from == n {
            return;
        }
        let d = self.demand[i];
        self.used[from].sub(d);
        self.used[n].add(d);
        let list = &mut self.on_node[from];
        if let Some(p) = list.iter().position(|&x| x == i) {
            list.swap_remove(p);
        }
        self.on_node[n].push(i);
        self.host[i] = n;
    }

    /// One move per instance that ends somewhere else than it started,
    /// in the order instances appear in the model: chains (A->B, B->C)
    /// collapse to A->C and round trips vanish.
    pub fn moves(&self) -> Vec<Move> {
        (0..self.host.len())
            .filter(|&i| self.host[i] != self.origin[i])
            .map(|i| Move {
                instance: i,
                from: self.origin[i],
                to: self.host[i],
            })
            .collect()
    }

    /// The migrate actions for [`Placement::moves`], in the same order.
    pub fn migration_actions(&self) -> Vec<Proposed> {
        self.moves()
            .iter()
            .map(|m| {
                let inst = self.instance(m.instance);
                migrate_action(
                    inst,
                    migration_type(inst).unwrap_or("live"),
                    &self.node(m.from).name,
                    &self.node(m.to).name,
                )
            })
            .collect()
    }

    /// Whether the instance can be moved by a migration at all: the scope
    /// keeps it, and Nova can migrate it in its state.
    pub fn movable(&self, i: usize) -> bool {
        let inst = self.instance(i);
        !self.model.is_excluded(inst) && migration_type(inst).is_some()
    }
}

/// Live for running instances, cold for stopped ones; none for instances in
/// the middle of something (migrating, resizing, error).
pub fn migration_type(inst: &Instance) -> Option<&'static str> {
    match inst.status.as_str() {
        "ACTIVE" | "PAUSED" => Some("live"),
        "SHUTOFF" | "STOPPED" => Some("cold"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use watcher_cloud::Inventory;

    fn host(name: &str, vcpus: Inventory) -> ComputeNode {
        ComputeNode {
            uuid: name.into(),
            name: name.into(),
            vcpus,
            ram_mb: Inventory::whole(65536),
            disk_gb: Inventory::whole(1000),
            service_enabled: true,
            service_up: true,
            disabled_reason: None,
            availability_zone: "nova".into(),
            aggregates: vec![],
            powered_on: None,
        }
    }

    #[test]
    fn a_host_takes_what_placement_would_allocate_on_it() {
        let inventory = |total, reserved, allocation_ratio| Inventory {
            total,
            reserved,
            allocation_ratio,
        };
        assert_eq!(inventory(8, 2, 1.5).capacity(), 9);
        assert_eq!(inventory(3, 5, 16.0).capacity(), 0);
        assert_eq!(inventory(7, 0, 0.5).capacity(), 3);
        let model = |dest: Inventory| ClusterModel {
            nodes: vec![host("a", Inventory::whole(16)), host("b", dest)],
            instances: vec![Instance {
                uuid: "i".into(),
                name: "i".into(),
                host: "a".into(),
                flavor: "big".into(),
                status: "ACTIVE".into(),
                project_id: "p".into(),
                metadata: Default::default(),
                boot_from_volume: false,
            }],
            flavors: [(
                "big".to_string(),
                Flavor {
                    name: "big".into(),
                    vcpus: 6,
                    ram_mb: 1024,
                    disk_gb: 10,
                },
            )]
            .into(),
            ..Default::default()
        };
        // 8 vCPUs, 4 reserved for the host: 6 do not fit.
        let m = model(inventory(8, 4, 1.0));
        assert!(!Placement::new(&m).unwrap().fits(0, 1));
        // The same host with an allocation ratio of 2: 8 usable, they fit.
        let m = model(inventory(8, 4, 2.0));
        assert!(Placement::new(&m).unwrap().fits(0, 1));
        assert_eq!(Placement::new(&m).unwrap().capacity(1).vcpus, 8);
    }

    #[test]
    fn a_server_booted_from_a_volume_takes_no_local_disk() {
        let mut b = host("b", Inventory::whole(16));
        b.disk_gb = Inventory::whole(5);
        let instance = |name: &str, boot_from_volume| Instance {
            uuid: name.into(),
            name: name.into(),
            host: "a".into(),
            flavor: "m1".into(),
            status: "ACTIVE".into(),
            project_id: "p".into(),
            metadata: Default::default(),
            boot_from_volume,
        };
        let m = ClusterModel {
            nodes: vec![host("a", Inventory::whole(16)), b],
            instances: vec![instance("local", false), instance("bfv", true)],
            flavors: [(
                "m1".to_string(),
                Flavor {
                    name: "m1".into(),
                    vcpus: 1,
                    ram_mb: 512,
                    disk_gb: 20,
                },
            )]
            .into(),
            ..Default::default()
        };
        let p = Placement::new(&m).unwrap();
        assert!(!p.fits(0, 1), "20 GB of local disk on a host with 5");
        assert!(p.fits(1, 1), "its disk is a volume");
        assert_eq!(p.used(0).disk_gb, 20);
    }
}
