//! Metrics the strategies read, behind one data-source trait: the simulated
//! cloud's (deterministic from the scenario) or Prometheus's.
//!
//! A strategy names the metrics it needs; the decision engine collects them
//! for the whole scoped model in one call before the strategy runs, so a
//! source can batch (Prometheus answers one query per metric for every host)
//! and the strategy itself stays synchronous and fast. A value the source
//! does not have fails the audit with a message naming the metric and the
//! host or instance, instead of upstream's silent fallback to 100 %.

use super::model::ClusterModel;
use async_trait::async_trait;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use watcher_cloud::rng::SplitMix64;
use watcher_cloud::scenario::Scenario;

/// The metrics strategies use, under upstream's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Percent of the host's vCPUs in use.
    HostCpuUsage,
    /// MB of the host's memory in use.
    HostRamUsage,
    /// Degrees Celsius at the host's air outlet.
    HostOutletTemp,
    /// Degrees Celsius at the host's air inlet.
    HostInletTemp,
    /// Airflow through the host, in 0.1 CFM (upstream's unit).
    HostAirflow,
    /// Watts drawn by the host.
    HostPower,
    /// Percent of the instance's vCPUs in use.
    InstanceCpuUsage,
    /// MB of the instance's memory in use.
    InstanceRamUsage,
    /// KB of L3 cache the instance occupies (Intel CMT), over the period.
    InstanceL3CacheUsage,
    /// The same over the period before (noisy_neighbor compares the two).
    InstanceL3CachePrevious,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::HostCpuUsage => "host_cpu_usage",
            Metric::HostRamUsage => "host_ram_usage",
            Metric::HostOutletTemp => "host_outlet_temp",
            Metric::HostInletTemp => "host_inlet_temp",
            Metric::HostAirflow => "host_airflow",
            Metric::HostPower => "host_power",
            Metric::InstanceCpuUsage => "instance_cpu_usage",
            Metric::InstanceRamUsage => "instance_ram_usage",
            Metric::InstanceL3CacheUsage => "instance_l3_cache_usage",
            Metric::InstanceL3CachePrevious => "instance_l3_cache_usage (previous period)",
        }
    }

    pub fn is_host(self) -> bool {
        !matches!(
            self,
            Metric::InstanceCpuUsage
                | Metric::InstanceRamUsage
                | Metric::InstanceL3CacheUsage
                | Metric::InstanceL3CachePrevious
        )
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    #[error(
        "the {source_kind} datasource has no {metric} for {kind} {resource}; \
         check that it is collected for every host and instance in the audit's scope"
    )]
    Missing {
        metric: &'static str,
        kind: &'static str,
        resource: String,
        source_kind: &'static str,
    },
    #[error("the {source_kind} datasource cannot be read: {message}")]
    Unavailable {
        source_kind: &'static str,
        message: String,
    },
}

/// Collected values: host metrics by host name, instance metrics by UUID.
#[derive(Debug, Clone, Default)]
pub struct MetricValues {
    source_kind: &'static str,
    values: HashMap<(Metric, String), f64>,
}

impl MetricValues {
    pub fn new(source_kind: &'static str) -> Self {
        MetricValues {
            source_kind,
            values: HashMap::new(),
        }
    }

    pub fn insert(&mut self, metric: Metric, resource: &str, value: f64) {
        self.values.insert((metric, resource.to_string()), value);
    }

    fn get(&self, metric: Metric, resource: &str) -> Option<f64> {
        self.values.get(&(metric, resource.to_string())).copied()
    }

    pub fn host(&self, metric: Metric, host: &str) -> Result<f64, MetricsError> {
        self.get(metric, host).ok_or_else(|| MetricsError::Missing {
            metric: metric.name(),
            kind: "host",
            resource: host.to_string(),
            source_kind: self.source_kind,
        })
    }

    /// `name` only makes the message readable.
    pub fn instance(&self, metric: Metric, uuid: &str, name: &str) -> Result<f64, MetricsError> {
        self.get(metric, uuid).ok_or_else(|| MetricsError::Missing {
            metric: metric.name(),
            kind: "instance",
            resource: format!("{name} ({uuid})"),
            source_kind: self.source_kind,
        })
    }
}

/// Where metrics come from.
#[async_trait]
pub trait MetricsSource: Send + Sync {
    fn kind(&self) -> &'static str;

    /// Values of `metrics` for every node and instance of `model`, averaged
    /// over the last `period`.
    async fn collect(
        &self,
        model: &ClusterModel,
        metrics: &[Metric],
        period: Duration,
    ) -> Result<MetricValues, MetricsError>;
}

/// The simulated cloud's metrics. Each instance has a steady CPU and RAM
/// use: the scenario's `cpu_util` / `ram_util` when given, otherwise drawn
/// from the scenario's seed and the instance's UUID (the same cloud always
/// gives the same numbers). Host metrics follow from the instances the
/// model places on the host, so they stay consistent as instances move:
/// power, outlet temperature and airflow grow linearly with CPU use.
#[derive(Debug, Clone, Default)]
pub struct SimulatedMetrics {
    seed: u64,
    cpu_util: HashMap<String, f64>,
    ram_util: HashMap<String, f64>,
    /// (previous, current) L3 cache use in KB.
    l3_cache: HashMap<String, (f64, f64)>,
    inlet_temp: HashMap<String, f64>,
}

/// A host's draw when idle and at full CPU, in watts.
const IDLE_WATTS: f64 = 100.0;
const FULL_WATTS: f64 = 350.0;
/// Inlet temperature when the scenario gives none, and the outlet's rise at full CPU.
const DEFAULT_INLET_C: f64 = 22.0;
const OUTLET_RISE_C: f64 = 20.0;
/// Airflow (0.1 CFM) of an idle host and its growth at full CPU.
const IDLE_AIRFLOW: f64 = 200.0;
const AIRFLOW_RISE: f64 = 400.0;

impl SimulatedMetrics {
    pub fn new(scenario: &Scenario) -> Self {
        let mut m = SimulatedMetrics {
            seed: scenario.seed,
            ..Default::default()
        };
        for i in &scenario.instances {
            if let Some(c) = i.cpu_util {
                m.cpu_util.insert(i.uuid.clone(), c);
            }
            if let Some(r) = i.ram_util {
                m.ram_util.insert(i.uuid.clone(), r);
            }
            if let Some(c) = i.l3_cache_kb {
                let previous = i.l3_cache_previous_kb.unwrap_or(c);
                m.l3_cache.insert(i.uuid.clone(), (previous, c));
            }
        }
        for h in &scenario.hosts {
            if let Some(t) = h.inlet_temp {
                m.inlet_temp.insert(h.name.clone(), t);
            }
        }
        m
    }

    /// A stable draw in [0, 1) for one resource and one purpose.
    fn draw(&self, uuid: &str, salt: u64) -> f64 {
        // FNV-1a of the UUID, mixed with the seed by SplitMix64.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in uuid.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        SplitMix64::new(h ^ self.seed.rotate_left(17) ^ salt).next_f64()
    }

    /// Percent of its vCPUs an instance uses: 5 to 85 % unless the scenario says.
    pub fn instance_cpu(&self, uuid: &str) -> f64 {
        self.cpu_util
            .get(uuid)
            .copied()
            .unwrap_or_else(|| 5.0 + 80.0 * self.draw(uuid, 1))
    }

    /// Percent of its flavor's RAM an instance uses: 40 to 95 % unless the scenario says.
    pub fn instance_ram_percent(&self, uuid: &str) -> f64 {
        self.ram_util
            .get(uuid)
            .copied()
            .unwrap_or_else(|| 40.0 + 55.0 * self.draw(uuid, 2))
    }

    /// Every metric for `model`, computed synchronously (the benchmarks call this).
    pub fn values(&self, model: &ClusterModel) -> MetricValues {
        let mut out = MetricValues::new("simulated");
        let mut used_cores: HashMap<&str, f64> = HashMap::new();
        let mut used_ram: HashMap<&str, f64> = HashMap::new();
        for i in &model.instances {
            let cpu = self.instance_cpu(&i.uuid);
            let (vcpus, ram) = model
                .flavors
                .get(&i.flavor)
                .map_or((0.0, 0.0), |f| (f.vcpus as f64, f.ram_mb as f64));
            let ram_used = ram * self.instance_ram_percent(&i.uuid) / 100.0;
            out.insert(Metric::InstanceCpuUsage, &i.uuid, cpu);
            out.insert(Metric::InstanceRamUsage, &i.uuid, ram_used);
            // Steady unless the scenario says otherwise: 1 to 9 MB.
            let (previous, current) = self.l3_cache.get(&i.uuid).copied().unwrap_or_else(|| {
                let c = 1024.0 + 8192.0 * self.draw(&i.uuid, 3);
                (c, c)
            });
            out.insert(Metric::InstanceL3CacheUsage, &i.uuid, current);
            out.insert(Metric::InstanceL3CachePrevious, &i.uuid, previous);
            *used_cores.entry(i.host.as_str()).or_default() += vcpus * cpu / 100.0;
            *used_ram.entry(i.host.as_str()).or_default() += ram_used;
        }
        for n in &model.nodes {
            let cores = used_cores.get(n.name.as_str()).copied().unwrap_or(0.0);
            let load = if n.vcpus.total == 0 {
                0.0
            } else {
                (cores / n.vcpus.total as f64).min(1.0)
            };
            let inlet = self
                .inlet_temp
                .get(&n.name)
                .copied()
                .unwrap_or(DEFAULT_INLET_C);
            out.insert(Metric::HostCpuUsage, &n.name, load * 100.0);
            out.insert(
                Metric::HostRamUsage,
                &n.name,
                used_ram.get(n.name.as_str()).copied().unwrap_or(0.0),
            );
            out.insert(Metric::HostInletTemp, &n.name, inlet);
            out.insert(
                Metric::HostOutletTemp,
                &n.name,
                inlet + OUTLET_RISE_C * load,
            );
            out.insert(
                Metric::HostAirflow,
                &n.name,
                IDLE_AIRFLOW + AIRFLOW_RISE * load,
            );
            out.insert(
                Metric::HostPower,
                &n.name,
                IDLE_WATTS + (FULL_WATTS - IDLE_WATTS) * load,
            );
        }
        out
    }
}

#[async_trait]
impl MetricsSource for SimulatedMetrics {
    fn kind(&self) -> &'static str {
        "simulated"
    }

    async fn collect(
        &self,
        model: &ClusterModel,
        _metrics: &[Metric],
        _period: Duration,
    ) -> Result<MetricValues, MetricsError> {
        Ok(self.values(model))
    }
}

/// One element of an instant vector: its labels and value.
type Sample = (HashMap<String, String>, f64);

/// Prometheus's HTTP query API, with upstream's metric names and labels:
/// hosts by the `fqdn` label (node_exporter), instances by the `resource`
/// label (ceilometer's exporter). Unlike upstream, which sends one query per
/// host and per instance, each metric is one query for all of them.
#[derive(Debug, Clone)]
pub struct PrometheusMetrics {
    /// e.g. `http://prometheus:9090`
    pub url: String,
    pub fqdn_label: String,
    pub instance_label: String,
    agent: ureq::Agent,
    timeout: Duration,
}

impl PrometheusMetrics {
    /// Checks the TLS settings now; makes no request. Each query gives up
    /// after `timeout`.
    pub fn new(
        url: &str,
        tls: &watcher_tls::TlsOptions,
        timeout: Duration,
    ) -> Result<Self, watcher_tls::TlsError> {
        Ok(PrometheusMetrics {
            url: url.trim_end_matches('/').to_string(),
            fqdn_label: "fqdn".into(),
            instance_label: "resource".into(),
            agent: watcher_keystone::http::agent(tls, "decision_engine.prometheus_tls", timeout)?,
            timeout,
        })
    }

    /// The PromQL that gives `metric` for every host or instance, or None
    /// for metrics Prometheus has no source for (upstream's map is the same).
    pub fn query(&self, metric: Metric, period: Duration) -> Option<String> {
        let p = period.as_secs().max(1);
        let (host, inst) = (&self.fqdn_label, &self.instance_label);
        Some(match metric {
            Metric::HostCpuUsage => format!(
                "100 - (avg by ({host}) (rate(node_cpu_seconds_total{{mode='idle'}}[{p}s])) * 100)"
            ),
            // MB in use: total minus the mean available memory.
            Metric::HostRamUsage => format!(
                "(avg by ({host}) (node_memory_MemTotal_bytes) - avg by ({host}) \
                 (avg_over_time(node_memory_MemAvailable_bytes[{p}s]))) / 1048576"
            ),
            // CPU seconds per second over all of the instance's vCPUs;
            // divided by its vCPU count once the answer is in.
            Metric::InstanceCpuUsage => {
                format!("avg by ({inst}) (rate(ceilometer_cpu[{p}s])) / 1e9")
            }
            Metric::InstanceRamUsage => {
                format!("avg by ({inst}) (avg_over_time(ceilometer_memory_usage[{p}s]))")
            }
            Metric::HostOutletTemp
            | Metric::HostInletTemp
            | Metric::HostAirflow
            | Metric::HostPower
            | Metric::InstanceL3CacheUsage
            | Metric::InstanceL3CachePrevious => return None,
        })
    }

    /// Why Prometheus could not be asked, in a sentence that names the
    /// server (not the whole query URL) and what to check.
    fn unreachable(&self, t: &ureq::Transport) -> String {
        let server = watcher_core::secret::redact_urls_in(&self.url);
        let io = std::error::Error::source(t)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .map(std::io::Error::kind);
        match (t.kind(), io) {
            (_, Some(std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)) => format!(
                "{server} timed out: no answer within {:?} (decision_engine.prometheus_timeout_secs)",
                self.timeout
            ),
            (ureq::ErrorKind::ConnectionFailed, Some(std::io::ErrorKind::ConnectionRefused)) => {
                format!("{server} refused the connection (Connection refused): is Prometheus running there?")
            }
            _ => format!(
                "{server}: {}",
                watcher_core::secret::redact_urls_in(&t.to_string())
            ),
        }
    }

    fn run(&self, query: &str) -> Result<Vec<Sample>, String> {
        let resp = self
            .agent
            .get(&format!("{}/api/v1/query", self.url))
            .query("query", query)
            .call();
        let body: Value = match resp {
            Ok(r) => r.into_json().map_err(|e| e.to_string())?,
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                return Err(format!("HTTP {code}: {}", text.trim()));
            }
            Err(ureq::Error::Transport(t)) => return Err(self.unreachable(&t)),
        };
        if body["status"] != "success" {
            return Err(format!(
                "query {query:?} failed: {}",
                body["error"].as_str().unwrap_or("no error message")
            ));
        }
        let mut out = vec![];
        for r in body["data"]["result"].as_array().into_iter().flatten() {
            let labels = r["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            // An instant vector's value is [time, "number"]; NaN (no
            // samples in the window) counts as missing.
            if let Some(v) = r["value"][1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|v| v.is_finite())
            {
                out.push((labels, v));
            }
        }
        Ok(out)
    }

    fn collect_blocking(
        &self,
        model: &ClusterModel,
        metrics: &[Metric],
        period: Duration,
    ) -> Result<MetricValues, MetricsError> {
        let unavailable = |message: String| MetricsError::Unavailable {
            source_kind: "prometheus",
            message,
        };
        let mut out = MetricValues::new("prometheus");
        // node_exporter's fqdn may be the host name or its FQDN.
        let host_of = |fqdn: &str| -> Option<&str> {
            model
                .nodes
                .iter()
                .find(|n| n.name == fqdn || fqdn.split('.').next() == Some(n.name.as_str()))
                .map(|n| n.name.as_str())
        };
        let vcpus: HashMap<&str, f64> = model
            .instances
            .iter()
            .map(|i| {
                let v = model.flavors.get(&i.flavor).map_or(1, |f| f.vcpus.max(1));
                (i.uuid.as_str(), v as f64)
            })
            .collect();
        for &metric in metrics {
            let Some(query) = self.query(metric, period) else {
                continue; // reported as missing when a strategy asks for it
            };
            let label = if metric.is_host() {
                &self.fqdn_label
            } else {
                &self.instance_label
            };
            for (labels, v) in self.run(&query).map_err(unavailable)? {
                let Some(key) = labels.get(label) else {
                    continue;
                };
                if metric.is_host() {
                    if let Some(h) = host_of(key) {
                        out.insert(metric, h, v);
                    }
                } else if let Some(n) = vcpus.get(key.as_str()) {
                    let v = if metric == Metric::InstanceCpuUsage {
                        (v * 100.0 / n).min(100.0)
                    } else {
                        v
                    };
                    out.insert(metric, key, v);
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl MetricsSource for PrometheusMetrics {
    fn kind(&self) -> &'static str {
        "prometheus"
    }

    async fn collect(
        &self,
        model: &ClusterModel,
        metrics: &[Metric],
        period: Duration,
    ) -> Result<MetricValues, MetricsError> {
        let (this, model, metrics) = (self.clone(), model.clone(), metrics.to_vec());
        tokio::task::spawn_blocking(move || this.collect_blocking(&model, &metrics, period))
            .await
            .map_err(|e| MetricsError::Unavailable {
                source_kind: "prometheus",
                message: e.to_string(),
            })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn simulated_metrics_are_deterministic_and_hosts_sum_their_instances() {
        let scenario = Scenario::demo();
        let cloud = watcher_cloud::simulated::SimulatedCloud::new(&scenario);
        let model = ClusterModel::from_cloud(&cloud).await.unwrap();
        let a = SimulatedMetrics::new(&scenario).values(&model);
        let b = SimulatedMetrics::new(&scenario).values(&model);
        for i in &model.instances {
            let v = a
                .instance(Metric::InstanceCpuUsage, &i.uuid, &i.name)
                .unwrap();
            assert!((0.0..=100.0).contains(&v), "{v}");
            assert_eq!(
                Some(v),
                b.instance(Metric::InstanceCpuUsage, &i.uuid, &i.name).ok()
            );
        }
        for n in &model.nodes {
            let cores: f64 = model
                .instances
                .iter()
                .filter(|i| i.host == n.name)
                .map(|i| {
                    model.flavors[&i.flavor].vcpus as f64
                        * a.instance(Metric::InstanceCpuUsage, &i.uuid, &i.name)
                            .unwrap()
                        / 100.0
                })
                .sum();
            let host = a.host(Metric::HostCpuUsage, &n.name).unwrap();
            assert!((host - 100.0 * cores / n.vcpus.total as f64).abs() < 1e-9);
            let power = a.host(Metric::HostPower, &n.name).unwrap();
            assert!((IDLE_WATTS..=FULL_WATTS).contains(&power));
        }
        let err = a.host(Metric::HostCpuUsage, "nowhere").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the simulated datasource has no host_cpu_usage for host nowhere; check that it \
             is collected for every host and instance in the audit's scope"
        );
    }

    #[test]
    fn prometheus_queries_use_upstreams_metrics_and_labels() {
        let p = PrometheusMetrics::new(
            "http://prom:9090/",
            &Default::default(),
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(p.url, "http://prom:9090");
        let q = p
            .query(Metric::HostCpuUsage, Duration::from_secs(300))
            .unwrap();
        assert_eq!(
            q,
            "100 - (avg by (fqdn) (rate(node_cpu_seconds_total{mode='idle'}[300s])) * 100)"
        );
        assert!(p
            .query(Metric::InstanceCpuUsage, Duration::from_secs(60))
            .unwrap()
            .contains("ceilometer_cpu[60s]"));
        assert_eq!(p.query(Metric::HostPower, Duration::from_secs(60)), None);
    }
}
