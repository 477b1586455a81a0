//! Scenario files: a simulated cloud described in TOML.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// The demo cloud built into watcherd.
pub const DEMO_SCENARIO: &str = include_str!("../../../scenarios/demo.toml");

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
    /// How long a status poll takes to answer: a slow or overloaded cloud
    /// API (0: at once). The applier's cancel must not wait for it.
    pub poll_delay_secs: f64,
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
            poll_delay_secs: 0.0,
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
    /// Air inlet temperature (°C) for the simulated thermal metrics.
    #[serde(default)]
    pub inlet_temp: Option<f64>,
    /// Whether the machine is on (saving_energy powers empty ones off).
    #[serde(default = "yes")]
    pub powered_on: bool,
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
    /// Mean use of its vCPUs in percent (simulated metrics); drawn from the
    /// seed when absent.
    #[serde(default)]
    pub cpu_util: Option<f64>,
    /// Mean use of its flavor's RAM in percent; drawn from the seed when absent.
    #[serde(default)]
    pub ram_util: Option<f64>,
    /// L3 cache it occupies now (KB), for noisy_neighbor; drawn when absent.
    #[serde(default)]
    pub l3_cache_kb: Option<f64>,
    /// L3 cache it occupied over the period before (KB); same as now when absent.
    #[serde(default)]
    pub l3_cache_previous_kb: Option<f64>,
    /// Booted from a volume: no local disk on its host.
    #[serde(default)]
    pub boot_from_volume: bool,
}

fn default_project() -> String {
    "demo".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    pub name: String,
    #[serde(default = "default_pool_capacity")]
    pub total_capacity_gb: u64,
    /// Cinder's over-subscription ratio for thin provisioning.
    #[serde(default = "one")]
    pub max_over_subscription_ratio: f64,
    #[serde(default = "default_zone")]
    pub availability_zone: String,
    /// Volume types whose backend this pool is.
    #[serde(default)]
    pub volume_types: Vec<String>,
}

fn default_zone() -> String {
    "nova".into()
}

fn default_pool_capacity() -> u64 {
    1000
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    pub uuid: String,
    pub name: String,
    pub pool: String,
    pub size_gb: u64,
    /// UUID of the instance it is attached to (then its status is in-use).
    #[serde(default)]
    pub attached_to: Option<String>,
    #[serde(default = "default_project")]
    pub project_id: String,
    #[serde(default)]
    pub volume_type: Option<String>,
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

    /// A large cloud for benchmarks and property tests: `hosts` hosts of
    /// 64 vCPUs, 256 GiB and 4 TB (every tenth disabled when
    /// `with_disabled`), about `per_host` instances each on average
    /// (between a quarter and twice that, as long as they fit), flavors of
    /// 1, 2, 4 and 8 vCPUs. The same arguments give the same cloud.
    pub fn generated(hosts: usize, per_host: usize, seed: u64, with_disabled: bool) -> Scenario {
        let mut rng = crate::rng::SplitMix64::new(seed);
        let flavors: Vec<FlavorSpec> = [
            ("g.small", 1),
            ("g.medium", 2),
            ("g.large", 4),
            ("g.xlarge", 8),
        ]
        .iter()
        .map(|&(name, vcpus)| FlavorSpec {
            name: name.into(),
            vcpus,
            ram_mb: vcpus as u64 * 4096,
            disk_gb: vcpus as u64 * 20,
        })
        .collect();
        let mut scenario = Scenario {
            seed,
            timing: Timing::default(),
            faults: Faults::default(),
            flavors,
            hosts: vec![],
            instances: vec![],
            pools: vec![],
            volumes: vec![],
        };
        for h in 0..hosts {
            let name = format!("node-{h:05}");
            scenario.hosts.push(HostSpec {
                name: name.clone(),
                vcpus: 64,
                ram_mb: 262_144,
                disk_gb: 4_000,
                enabled: !(with_disabled && h % 10 == 9),
                availability_zone: if h % 2 == 0 { "az1" } else { "az2" }.into(),
                aggregates: vec![],
                inlet_temp: None,
                powered_on: true,
            });
            let count = (per_host as f64 * (0.25 + 1.75 * rng.next_f64())).round() as usize;
            let mut free = 64u32;
            for k in 0..count {
                // Mostly small: 40 % 1 vCPU, 35 % 2, 20 % 4, 5 % 8.
                let r = rng.next_f64();
                let f = if r < 0.4 {
                    0
                } else if r < 0.75 {
                    1
                } else if r < 0.95 {
                    2
                } else {
                    3
                };
                let flavor = &scenario.flavors[f];
                if flavor.vcpus > free {
                    break;
                }
                free -= flavor.vcpus;
                scenario.instances.push(InstanceSpec {
                    uuid: format!("{:08x}-0000-4000-8000-{:012x}", h, k),
                    name: format!("vm-{h:05}-{k:02}"),
                    host: name.clone(),
                    flavor: flavor.name.clone(),
                    project_id: format!("project-{}", k % 7),
                    metadata: Default::default(),
                    cpu_util: None,
                    ram_util: None,
                    l3_cache_kb: None,
                    l3_cache_previous_kb: None,
                    boot_from_volume: false,
                });
            }
        }
        scenario
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
        let hosts: std::collections::HashSet<&str> =
            self.hosts.iter().map(|h| h.name.as_str()).collect();
        let flavors: std::collections::HashSet<&str> =
            self.flavors.iter().map(|f| f.name.as_str()).collect();
        for i in &self.instances {
            if !hosts.contains(i.host.as_str()) {
                return bad(format!("instance {} is on unknown host {}", i.name, i.host));
            }
            if !flavors.contains(i.flavor.as_str()) {
                return bad(format!(
                    "instance {} has unknown flavor {}",
                    i.name, i.flavor
                ));
            }
            for (name, v) in [("cpu_util", i.cpu_util), ("ram_util", i.ram_util)] {
                if let Some(v) = v.filter(|v| !(0.0..=100.0).contains(v)) {
                    return bad(format!(
                        "instance {}: {name} is a percentage (0 to 100), not {v}",
                        i.name
                    ));
                }
            }
        }
        for v in &self.volumes {
            if !self.pools.iter().any(|p| p.name == v.pool) {
                return bad(format!("volume {} is in unknown pool {}", v.name, v.pool));
            }
            if let Some(i) = &v.attached_to {
                if !self.instances.iter().any(|x| &x.uuid == i) {
                    return bad(format!(
                        "volume {} is attached to unknown instance {i}",
                        v.name
                    ));
                }
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
