//! The metrics path against a real Prometheus (Debian's package, started
//! here on a free port with a generated configuration) scraping an exporter
//! this test runs. The exporter serves the series upstream's Prometheus
//! datasource reads (node_exporter's `node_cpu_seconds_total` and
//! `node_memory_*` by `fqdn`, ceilometer's `ceilometer_cpu` and
//! `ceilometer_memory_usage` by `resource`) with the values the simulated
//! datasource gives the same golden cloud; so an audit through Prometheus
//! must propose exactly the migrations the strategy proposes in process.
//! Then Prometheus is stopped, and frozen: the audit fails, saying why, in
//! bounded time.

use watcher_testkit as common;

use crate::strategies::{audit_outcome_with, golden};
use common::{temp_dir, wait_for, Daemon};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use watcher_cloud::scenario::Scenario;
use watcher_cloud::simulated::SimulatedCloud;
use watcher_decision::metrics::{Metric, SimulatedMetrics};
use watcher_decision::model::ClusterModel;
use watcher_decision::strategies::{apply_parameters, execute, STRATEGIES};

/// The window each audit asks for: the exporter must have been scraped
/// over all of it before an audit runs (rate() over a window mostly
/// without samples would understate the usage).
const PERIOD_SECS: u64 = 6;

fn model_of(scenario: &Scenario) -> ClusterModel {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(ClusterModel::from_cloud(&SimulatedCloud::new(scenario)))
        .unwrap()
}

/// The exposition text at `now_ms`: counters grow at the rate the
/// simulated values give, and every sample carries its timestamp, so that
/// Prometheus's rate() is the exact slope whatever the scrape jitter.
fn exposition(model: &ClusterModel, metrics: &SimulatedMetrics, now_ms: u128) -> String {
    let values = metrics.values(model);
    let t = now_ms as f64 / 1000.0;
    let mut out = String::new();
    for n in &model.nodes {
        let cpu = values.host(Metric::HostCpuUsage, &n.name).unwrap();
        let used_mb = values.host(Metric::HostRamUsage, &n.name).unwrap();
        let total = n.ram_mb.total as f64 * 1048576.0;
        let fqdn = format!("{}.example.org", n.name);
        out += &format!(
            "node_cpu_seconds_total{{fqdn=\"{fqdn}\",cpu=\"0\",mode=\"idle\"}} {} {now_ms}\n",
            t * (1.0 - cpu / 100.0)
        );
        out += &format!("node_memory_MemTotal_bytes{{fqdn=\"{fqdn}\"}} {total} {now_ms}\n");
        out += &format!(
            "node_memory_MemAvailable_bytes{{fqdn=\"{fqdn}\"}} {} {now_ms}\n",
            total - used_mb * 1048576.0
        );
    }
    for i in &model.instances {
        let vcpus = model.flavors[&i.flavor].vcpus as f64;
        let cpu = values
            .instance(Metric::InstanceCpuUsage, &i.uuid, &i.name)
            .unwrap();
        let ram = values
            .instance(Metric::InstanceRamUsage, &i.uuid, &i.name)
            .unwrap();
        out += &format!(
            "ceilometer_cpu{{resource=\"{}\"}} {} {now_ms}\n",
            i.uuid,
            t * 1e9 * vcpus * cpu / 100.0
        );
        out += &format!(
            "ceilometer_memory_usage{{resource=\"{}\"}} {ram} {now_ms}\n",
            i.uuid
        );
    }
    out
}

/// Serves [`exposition`] of `scenario` on a free port; returns its address.
fn exporter(scenario: &Scenario) -> String {
    let model = model_of(scenario);
    let metrics = SimulatedMetrics::new(scenario);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis();
            let body = exposition(&model, &metrics, now);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

/// A Prometheus server of its own, scraping `target` every 250 ms.
struct Prometheus {
    child: Child,
    url: String,
}

impl Prometheus {
    fn start(dir: &Path, target: &str) -> Prometheus {
        let binary = common::required_env("WATCHER_TEST_PROMETHEUS", "Prometheus");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 250ms\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: cloud\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        let url = format!("http://127.0.0.1:{port}");
        wait_for(Duration::from_secs(30), || {
            ureq::get(&format!("{url}/-/ready")).call().ok().map(|_| ())
        });
        Prometheus { child, url }
    }

    /// How many series answer `query` now.
    fn count(&self, query: &str) -> usize {
        let r: Value = ureq::get(&format!("{}/api/v1/query", self.url))
            .query("query", query)
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        r["data"]["result"].as_array().map_or(0, Vec::len)
    }

    fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {signal}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (instance, destination) of a plan's migrations, or of a solution's.
fn migrations(actions: &[Value]) -> BTreeSet<(String, String)> {
    actions
        .iter()
        .filter(|a| a["action_type"] == "migrate")
        .map(|a| {
            let p = &a["input_parameters"];
            (
                p["resource_id"].as_str().unwrap().to_string(),
                p["destination_node"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[cfg_attr(
    not(test_prometheus),
    ignore = "needs Prometheus: set WATCHER_TEST_PROMETHEUS to its binary (.ci/run installs Debian's package)"
)]
#[test]
fn strategies_plan_from_a_real_prometheus_and_one_that_is_down_or_frozen_fails_the_audit() {
    let period = json!(PERIOD_SECS);
    let cases = [
        (
            "balance",
            "workload_balancing",
            "workload_balance",
            json!({"threshold": 25, "period": period}),
        ),
        (
            "balance",
            "workload_balancing",
            "workload_stabilization",
            json!({"periods": {"instance": period, "compute_node": period}}),
        ),
        (
            "consolidation",
            "server_consolidation",
            "basic",
            json!({"period": period}),
        ),
        (
            "consolidation",
            "server_consolidation",
            "vm_workload_consolidation",
            json!({"period": period}),
        ),
    ];
    for scenario_name in ["balance", "consolidation"] {
        let scenario = Scenario::load(&golden(scenario_name)).unwrap();
        let dir = temp_dir(&format!("prometheus-{scenario_name}"));
        let prometheus = Prometheus::start(&dir, &exporter(&scenario));
        let config = common::write_config_with(
            &dir,
            "",
            "",
            &format!(
                "[decision_engine]\ndatasource = \"prometheus\"\nprometheus_url = \"{}\"\nprometheus_timeout_secs = 2\n",
                prometheus.url
            ),
        );
        let d = Daemon::start_with_config(&dir, config, Some(&golden(scenario_name)));
        // Samples over a whole window (4 a second) before the first audit;
        // Prometheus starts scraping a few seconds after it is ready.
        let model = model_of(&scenario);
        let full = format!(
            "count_over_time(ceilometer_cpu[{PERIOD_SECS}s]) >= {}",
            PERIOD_SECS * 4 - 1
        );
        wait_for(Duration::from_secs(60), || {
            (prometheus.count(&full) == model.instances.len()).then_some(())
        });
        let metrics = SimulatedMetrics::new(&scenario).values(&model);
        for (_, goal, strategy, params) in cases.iter().filter(|c| c.0 == scenario_name) {
            let def = STRATEGIES.iter().find(|s| s.name == *strategy).unwrap();
            let checked = apply_parameters(&(def.parameters_spec)(), params).unwrap();
            let expected = execute(strategy, &checked, &model, &metrics).unwrap();
            let expected: Vec<Value> = expected
                .actions
                .iter()
                .map(|a| json!({"action_type": a.action_type, "input_parameters": a.input_parameters}))
                .collect();
            let expected = migrations(&expected);
            assert!(
                !expected.is_empty(),
                "{strategy} proposes nothing on {scenario_name}"
            );

            let audit = audit_outcome_with(&d, goal, strategy, params.clone());
            assert_eq!(audit["state"], "SUCCEEDED", "{strategy}: {audit}");
            let plan = d.plan_of(audit["uuid"].as_str().unwrap());
            assert_eq!(
                migrations(&d.actions(&plan)),
                expected,
                "{strategy} through Prometheus"
            );
        }

        if scenario_name == "consolidation" {
            // Frozen (SIGSTOP): each query gives up after the 2 s set above.
            prometheus.signal("-STOP");
            let t = Instant::now();
            let audit = audit_outcome_with(
                &d,
                "server_consolidation",
                "basic",
                json!({"period": period}),
            );
            prometheus.signal("-CONT");
            assert_eq!(audit["state"], "FAILED", "{audit}");
            let reason = audit["status_message"].as_str().unwrap_or_default();
            assert!(
                reason.contains("prometheus") && reason.contains("timed out"),
                "{reason}"
            );
            assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
            // Down: refused at once.
            drop(prometheus);
            let audit = audit_outcome_with(
                &d,
                "server_consolidation",
                "basic",
                json!({"period": period}),
            );
            assert_eq!(audit["state"], "FAILED", "{audit}");
            let reason = audit["status_message"].as_str().unwrap_or_default();
            assert!(
                reason.contains("prometheus") && reason.contains("onnection refused"),
                "{reason}"
            );
        }
    }
}
