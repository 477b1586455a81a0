//! Audit scopes, in upstream's format: a list whose `compute` entry holds
//! rules, e.g.
//!
//! ```json
//! [{"compute": [{"availability_zones": [{"name": "az1"}]},
//!               {"host_aggregates": [{"id": 1}, {"name": "fast"}]},
//!               {"exclude": [{"instances": [{"uuid": "..."}]},
//!                            {"compute_nodes": [{"name": "compute-3"}]},
//!                            {"host_aggregates": [{"name": "gpu"}]},
//!                            {"instance_metadata": [{"optimize": false}]},
//!                            {"projects": [{"uuid": "..."}]}]}]}]
//! ```
//!
//! Zones and aggregates choose the nodes (`*` alone means all; a rule that
//! matches nothing leaves no node, as upstream); excluded nodes leave the
//! model with their instances; excluded instances stay but are never moved.
//!
//! The `storage` entry, as upstream's storage scope:
//!
//! ```json
//! [{"storage": [{"availability_zones": [{"name": "nova"}]},
//!               {"volume_types": [{"name": "fast"}]},
//!               {"exclude": [{"storage_pools": [{"name": "host@backend#pool"}]},
//!                            {"volumes": [{"uuid": "..."}]},
//!                            {"projects": [{"uuid": "..."}]}]}]}]
//! ```
//!
//! Zones and volume types choose the storage backends (`host@backend`)
//! whose pools stay; excluded pools leave with their volumes; excluded
//! volumes (by UUID or project) leave the model, so no strategy moves them.
//! Unlike upstream, a malformed scope is refused when the template or audit
//! is created, and instance-metadata exclusions always apply (upstream needs
//! `check_optimize_metadata`).

use serde_json::Value;
use std::collections::HashSet;
use watcher_cloud::{ComputeNode, Instance, StoragePool, Volume};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ComputeScope {
    /// `None`: every node.
    allowed_nodes: Option<HashSet<String>>,
    excluded_nodes: HashSet<String>,
    excluded_instances: HashSet<String>,
    excluded_projects: HashSet<String>,
    excluded_metadata: Vec<(String, String)>,
}

fn list<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>, String> {
    v.as_array()
        .ok_or_else(|| format!("{what} must be a list of objects"))
}

/// The value of `key` in each `{key: ...}` of `items`.
fn names<'a>(items: &'a [Value], key: &str, what: &str) -> Result<Vec<&'a Value>, String> {
    items
        .iter()
        .map(|i| {
            i.get(key)
                .ok_or_else(|| format!("each of {what} needs a '{key}', e.g. {{\"{key}\": ...}}"))
        })
        .collect()
}

/// The `key` of each `{key: ...}` in the list `v`, as text.
fn texts(v: &Value, key: &str, what: &str) -> Result<Vec<String>, String> {
    Ok(names(list(v, what)?, key, what)?
        .into_iter()
        .map(text)
        .collect())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The rule's only key, from the kinds upstream knows.
fn rule_kind<'a>(
    rule: &'a Value,
    kinds: &[&str],
    what: &str,
) -> Result<(&'a str, &'a Value), String> {
    let obj = rule
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| format!("each {what} rule must be an object with one key"))?;
    let (k, v) = obj.iter().next().expect("one key");
    if !kinds.contains(&k.as_str()) {
        return Err(format!(
            "unknown {what} rule '{k}'; known: {}",
            kinds.join(", ")
        ));
    }
    Ok((k.as_str(), v))
}

const INCLUDE: &[&str] = &["availability_zones", "host_aggregates", "exclude"];
const EXCLUDE: &[&str] = &[
    "instances",
    "compute_nodes",
    "host_aggregates",
    "instance_metadata",
    "projects",
];

/// Checks a scope's shape without looking at the cloud.
pub fn validate(scope: &Value) -> Result<(), String> {
    ComputeScope::resolve(scope, &[])?;
    StorageScope::resolve(scope, &[]).map(|_| ())
}

const STORAGE_INCLUDE: &[&str] = &["availability_zones", "volume_types", "exclude"];
const STORAGE_EXCLUDE: &[&str] = &["storage_pools", "volumes", "projects"];

/// The storage part of an audit scope, resolved against the cloud's pools.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StorageScope {
    /// Storage backends (`host@backend`) whose pools stay; `None`: all.
    allowed_backends: Option<HashSet<String>>,
    excluded_pools: HashSet<String>,
    excluded_volumes: HashSet<String>,
    excluded_projects: HashSet<String>,
}

/// A pool's backend: `host@backend` of `host@backend#pool`.
fn backend_of(pool: &str) -> &str {
    pool.split('#').next().unwrap_or(pool)
}

impl StorageScope {
    pub fn resolve(scope: &Value, pools: &[StoragePool]) -> Result<StorageScope, String> {
        let mut out = StorageScope::default();
        let entries = list(scope, "the scope")?;
        let Some(storage) = entries.iter().find_map(|e| e.get("storage")) else {
            return Ok(out);
        };
        let choose = |out: &mut StorageScope, keep: &dyn Fn(&StoragePool) -> bool| {
            out.allowed_backends
                .get_or_insert_with(HashSet::new)
                .extend(
                    pools
                        .iter()
                        .filter(|p| keep(p))
                        .map(|p| backend_of(&p.name).to_string()),
                );
        };
        for rule in list(storage, "the storage scope")? {
            match rule_kind(rule, STORAGE_INCLUDE, "storage scope")? {
                ("availability_zones", v) => {
                    let zones = texts(v, "name", "availability_zones")?;
                    let all = wildcard(&zones, "availability zones")?;
                    choose(&mut out, &|p| all || zones.contains(&p.availability_zone));
                }
                ("volume_types", v) => {
                    let types = texts(v, "name", "volume_types")?;
                    let all = wildcard(&types, "volume_types")?;
                    choose(&mut out, &|p| {
                        all || p.volume_types.iter().any(|t| types.contains(t))
                    });
                }
                (_, v) => {
                    for ex in list(v, "exclude")? {
                        let (kind, v) = rule_kind(ex, STORAGE_EXCLUDE, "storage exclude")?;
                        let (key, set) = match kind {
                            "storage_pools" => ("name", &mut out.excluded_pools),
                            "volumes" => ("uuid", &mut out.excluded_volumes),
                            _ => ("uuid", &mut out.excluded_projects),
                        };
                        set.extend(texts(v, key, kind)?);
                    }
                }
            }
        }
        Ok(out)
    }

    pub fn keeps_pool(&self, name: &str) -> bool {
        self.allowed_backends
            .as_ref()
            .is_none_or(|a| a.contains(backend_of(name)))
            && !self.excluded_pools.contains(name)
    }

    /// A volume stays in the model when its pool does and neither it nor
    /// its project is excluded.
    pub fn keeps_volume(&self, v: &Volume) -> bool {
        self.keeps_pool(&v.pool)
            && !self.excluded_volumes.contains(&v.uuid)
            && !self.excluded_projects.contains(&v.project_id)
    }
}

/// Nodes matching a list of aggregates (`id` or `name`, `*` alone for all).
fn aggregate_nodes(items: &[Value], nodes: &[ComputeNode]) -> Result<HashSet<String>, String> {
    let mut ids = vec![];
    let mut wanted = vec![];
    for i in items {
        match (i.get("id"), i.get("name")) {
            (Some(id), _) => ids.push(text(id)),
            (None, Some(n)) => wanted.push(text(n)),
            _ => return Err("each host aggregate needs an 'id' or a 'name'".into()),
        }
    }
    let all = wildcard(&ids, "host aggregates")? || wildcard(&wanted, "host aggregates")?;
    Ok(nodes
        .iter()
        .filter(|n| {
            all || n
                .aggregates
                .iter()
                .any(|a| ids.contains(&a.id.to_string()) || wanted.contains(&a.name))
        })
        .map(|n| n.name.clone())
        .collect())
}

/// `*` alone means everything; `*` with other entries is refused, as upstream.
fn wildcard(entries: &[String], what: &str) -> Result<bool, String> {
    if entries.iter().any(|e| e == "*") {
        if entries.len() == 1 {
            return Ok(true);
        }
        return Err(format!("the wildcard '*' must be the only entry of {what}"));
    }
    Ok(false)
}

impl ComputeScope {
    /// Resolves a scope against the cloud's nodes.
    pub fn resolve(scope: &Value, nodes: &[ComputeNode]) -> Result<ComputeScope, String> {
        let mut out = ComputeScope::default();
        let entries = list(scope, "the scope")?;
        let Some(compute) = entries.iter().find_map(|e| e.get("compute")) else {
            for e in entries {
                if !e.is_object() {
                    return Err("the scope must be a list of objects".into());
                }
            }
            return Ok(out);
        };
        for rule in list(compute, "the compute scope")? {
            match rule_kind(rule, INCLUDE, "compute scope")? {
                ("availability_zones", v) => {
                    let zones = texts(v, "name", "availability_zones")?;
                    let all = wildcard(&zones, "availability zones")?;
                    let chosen = nodes
                        .iter()
                        .filter(|n| all || zones.contains(&n.availability_zone))
                        .map(|n| n.name.clone());
                    out.allowed_nodes
                        .get_or_insert_with(HashSet::new)
                        .extend(chosen);
                }
                ("host_aggregates", v) => {
                    let chosen = aggregate_nodes(list(v, "host_aggregates")?, nodes)?;
                    out.allowed_nodes
                        .get_or_insert_with(HashSet::new)
                        .extend(chosen);
                }
                (_, v) => {
                    for ex in list(v, "exclude")? {
                        match rule_kind(ex, EXCLUDE, "exclude")? {
                            ("instances", v) => {
                                out.excluded_instances
                                    .extend(texts(v, "uuid", "instances")?)
                            }
                            ("compute_nodes", v) => {
                                out.excluded_nodes
                                    .extend(texts(v, "name", "compute_nodes")?)
                            }
                            ("host_aggregates", v) => out
                                .excluded_nodes
                                .extend(aggregate_nodes(list(v, "host_aggregates")?, nodes)?),
                            ("projects", v) => {
                                out.excluded_projects.extend(texts(v, "uuid", "projects")?)
                            }
                            (_, v) => {
                                for m in list(v, "instance_metadata")? {
                                    let m = m
                                        .as_object()
                                        .ok_or("each instance_metadata entry must be an object")?;
                                    out.excluded_metadata.extend(
                                        m.iter().map(|(k, v)| (k.clone(), text(v).to_lowercase())),
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    pub fn keeps_node(&self, name: &str) -> bool {
        self.allowed_nodes.as_ref().is_none_or(|a| a.contains(name))
            && !self.excluded_nodes.contains(name)
    }

    /// Upstream's metadata rule: every given key present with the given
    /// value (compared as lowercase text).
    pub fn excludes_instance(&self, i: &Instance) -> bool {
        self.excluded_instances.contains(&i.uuid)
            || self.excluded_projects.contains(&i.project_id)
            || (!self.excluded_metadata.is_empty()
                && self.excluded_metadata.iter().all(|(k, v)| {
                    i.metadata
                        .get(k)
                        .is_some_and(|have| have.to_lowercase() == *v)
                }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use watcher_cloud::{Aggregate, Inventory};

    fn node(name: &str, az: &str, aggs: &[(i64, &str)]) -> ComputeNode {
        ComputeNode {
            powered_on: None,
            uuid: name.into(),
            name: name.into(),
            vcpus: Inventory::whole(8),
            ram_mb: Inventory::whole(8192),
            disk_gb: Inventory::whole(100),
            service_enabled: true,
            service_up: true,
            disabled_reason: None,
            availability_zone: az.into(),
            aggregates: aggs
                .iter()
                .map(|(id, n)| Aggregate {
                    id: *id,
                    name: n.to_string(),
                })
                .collect(),
        }
    }

    fn instance(uuid: &str, project: &str, meta: &[(&str, &str)]) -> Instance {
        Instance {
            uuid: uuid.into(),
            name: uuid.into(),
            host: "a".into(),
            flavor: "f".into(),
            status: "ACTIVE".into(),
            project_id: project.into(),
            metadata: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            boot_from_volume: false,
        }
    }

    fn nodes() -> Vec<ComputeNode> {
        vec![
            node("a", "az1", &[(1, "fast")]),
            node("b", "az1", &[(2, "gpu")]),
            node("c", "az2", &[(1, "fast")]),
        ]
    }

    fn kept(scope: Value) -> Vec<String> {
        let s = ComputeScope::resolve(&scope, &nodes()).unwrap();
        nodes()
            .into_iter()
            .filter(|n| s.keeps_node(&n.name))
            .map(|n| n.name)
            .collect()
    }

    #[test]
    fn zones_and_aggregates_choose_nodes_and_exclusions_remove_them() {
        assert_eq!(kept(json!([])), ["a", "b", "c"]);
        assert_eq!(kept(json!([{"storage": []}])), ["a", "b", "c"]);
        assert_eq!(
            kept(json!([{"compute": [{"availability_zones": [{"name": "az1"}]}]}])),
            ["a", "b"]
        );
        assert_eq!(
            kept(json!([{"compute": [{"host_aggregates": [{"id": 1}]}]}])),
            ["a", "c"]
        );
        assert_eq!(
            kept(json!([{"compute": [{"host_aggregates": [{"name": "*"}]}]}])),
            ["a", "b", "c"]
        );
        assert_eq!(
            kept(json!([{"compute": [{"availability_zones": [{"name": "nowhere"}]}]}])),
            Vec::<String>::new()
        );
        assert_eq!(
            kept(json!([{"compute": [
                {"availability_zones": [{"name": "*"}]},
                {"exclude": [{"compute_nodes": [{"name": "b"}]}, {"host_aggregates": [{"name": "fast"}]}]}
            ]}])),
            Vec::<String>::new()
        );
        assert_eq!(
            kept(json!([{"compute": [{"exclude": [{"compute_nodes": [{"name": "b"}]}]}]}])),
            ["a", "c"]
        );
    }

    #[test]
    fn instances_are_excluded_by_uuid_project_or_all_given_metadata() {
        let s = ComputeScope::resolve(
            &json!([{"compute": [{"exclude": [
                {"instances": [{"uuid": "i1"}]},
                {"projects": [{"uuid": "p2"}]},
                {"instance_metadata": [{"optimize": false}, {"tier": "db"}]}
            ]}]}]),
            &nodes(),
        )
        .unwrap();
        assert!(s.excludes_instance(&instance("i1", "p1", &[])));
        assert!(s.excludes_instance(&instance("i2", "p2", &[])));
        assert!(s.excludes_instance(&instance(
            "i3",
            "p1",
            &[("optimize", "False"), ("tier", "db")]
        )));
        assert!(!s.excludes_instance(&instance("i4", "p1", &[("optimize", "false")])));
        assert!(!s.excludes_instance(&instance("i5", "p1", &[])));
    }

    #[test]
    fn malformed_scopes_say_what_is_wrong() {
        for (scope, words) in [
            (json!({"compute": []}), "must be a list"),
            (
                json!([{"compute": [{"zones": []}]}]),
                "unknown compute scope rule 'zones'",
            ),
            (
                json!([{"compute": [{"availability_zones": [{"id": 1}]}]}]),
                "needs a 'name'",
            ),
            (
                json!([{"compute": [{"host_aggregates": [{"name": "*"}, {"name": "x"}]}]}]),
                "wildcard",
            ),
            (
                json!([{"compute": [{"exclude": [{"volumes": []}]}]}]),
                "unknown exclude rule 'volumes'",
            ),
            (
                json!([{"compute": [{"exclude": [{"instances": [{"name": "x"}]}]}]}]),
                "needs a 'uuid'",
            ),
            (
                json!([{"compute": [{"availability_zones": [], "host_aggregates": []}]}]),
                "one key",
            ),
        ] {
            let err = validate(&scope).unwrap_err();
            assert!(err.contains(words), "{scope}: {err}");
        }
    }
}
