//! Scenario files: a simulated cloud described in TOML.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// The demo cloud built into watcherd.
pub const DEMO_SCENARIO: &str = include_str!("../../scenarios/demo.toml");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub timing: Timing,
    #[serde(default)]
    pub faults: Faults,
    #[serde(default)]
    pub flavors: Vec<FlavorSpec>,
    #[serde(default)]
    pub hosts: Vec<HostSpec>,
    #[serde(default)]
    pub instances: Vec<InstanceSpec>,
    #[serde(default)]
    pub pools: Vec<PoolSpec>,
    #[serde(default)]
    pub volumes: Vec<VolumeSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Timing {
    pub live_migration_secs: f64,
    pub abort_secs: f64,
    pub cold_migration_secs: f64,
    pub resize_secs: f64,
    pub volume_migration_secs: f64,
    pub point_of_no_return: f64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            live_migration_secs: 8.0,
            abort_secs: 0.4,
            cold_migration_secs: 3.0,
            resize_secs: 3.0,
            volume_migration_secs: 6.0,
            point_of_no_return: 0.9,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    pub migration_failure_rate: f64,
    pub abort_refusal_rate: f64,
    pub transient_error_rate: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FlavorSpec {
    pub name: String,
    pub vcpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    pub name: String,
    pub vcpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_zone")]
    pub availability_zone: String,
    /// Names of the host aggregates the host is in; ids are given in order
    /// of first appearance, from 1.
    #[serde(default)]
    pub aggregates: Vec<String>,
}

fn default_zone() -> String {
    "nova".into()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InstanceSpec {
    pub uuid: String,
    pub name: String,
    pub host: String,
    pub flavor: String,
    #[serde(default = "default_project")]
    pub project_id: String,
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, String>,
}

fn default_project() -> String {
    "demo".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    pub uuid: String,
    pub name: String,
    pub pool: String,
    pub size_gb: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("scenario is not valid TOML: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("scenario is inconsistent: {0}")]
    Inconsistent(String),
}

impl Scenario {
    pub fn demo() -> Scenario {
        Scenario::parse(DEMO_SCENARIO).expect("the built-in demo scenario is valid")
    }

    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Scenario::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text)?;
        s.check()?;
        Ok(s)
    }

    /// Every reference names something that exists, and rates are probabilities.
    fn check(&self) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Inconsistent(m));
        for i in &self.instances {
            if !self.hosts.iter().any(|h| h.name == i.host) {
                return bad(format!("instance {} is on unknown host {}", i.name, i.host));
            }
            if !self.flavors.iter().any(|f| f.name == i.flavor) {
                return bad(format!(
                    "instance {} has unknown flavor {}",
                    i.name, i.flavor
                ));
            }
        }
        for v in &self.volumes {
            if !self.pools.iter().any(|p| p.name == v.pool) {
                return bad(format!("volume {} is in unknown pool {}", v.name, v.pool));
            }
        }
        let f = &self.faults;
        for (name, rate) in [
            ("migration_failure_rate", f.migration_failure_rate),
            ("abort_refusal_rate", f.abort_refusal_rate),
            ("transient_error_rate", f.transient_error_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return bad(format!("faults.{name} must be between 0 and 1, not {rate}"));
            }
        }
        let pnr = self.timing.point_of_no_return;
        if !(0.0..=1.0).contains(&pnr) {
            return bad(format!(
                "timing.point_of_no_return must be between 0 and 1, not {pnr}"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_scenario_parses() {
        let s = Scenario::demo();
        assert_eq!(s.hosts.len(), 3);
        assert!(s.instances.len() >= 5);
    }

    #[test]
    fn an_instance_on_an_unknown_host_is_refused_with_its_name() {
        let text = r#"
            [[flavors]]
            name = "f"
            vcpus = 1
            ram_mb = 1
            disk_gb = 1
            [[instances]]
            uuid = "x"
            name = "vm"
            host = "nowhere"
            flavor = "f"
        "#;
        let err = Scenario::parse(text).unwrap_err().to_string();
        assert!(err.contains("vm") && err.contains("nowhere"), "{err}");
    }
}
