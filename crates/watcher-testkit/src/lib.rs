//! Helpers for black-box tests: start the real `watcherd` binary on a free
//! port with its own SQLite file, talk HTTP to it, wait for conditions.

pub mod databases;
pub mod keystone;
pub mod mariadb_server;
pub mod pg_replication;
pub mod servers;

pub use databases::{
    database_url, execute_sql, mariadb_database, mariadb_server, plan_through_a_database_outage,
    postgres_database, postgres_server, query_i64, UPSTREAM_WATCHER_17_SCHEMA,
};
pub use mariadb_server::{GaleraCluster, PrivateMariadb};
use serde_json::{json, Value};
pub use servers::{CutProxy, PrivatePostgres, PrivateRabbit, Stunnel, TestCa};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace's root (where `scenarios/`, `docs/` and `build/` are).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/watcher-testkit sits two levels below the root")
        .to_path_buf()
}

/// A binary of the workspace built beside the running test (`target/<profile>/NAME`).
/// `cargo test` at the root builds them all before any test runs.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary sits in target/<profile>/deps")
        .join(name);
    assert!(
        path.exists(),
        "{} is not built: run the tests from the workspace root (`cargo test`), \
         which builds every binary, or `cargo build --bin {name}` first",
        path.display()
    );
    path
}

/// The `watcherd` binary under test.
pub fn watcherd_binary() -> PathBuf {
    workspace_binary("watcherd")
}

pub struct Daemon {
    pub child: Child,
    pub url: String,
    pub dir: PathBuf,
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("watcherd-test-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Test settings: quick sweeps, quick polling. `applier_extra` is TOML
/// appended inside `[applier]` (it may open `[applier.limits]` too).
pub fn write_config(dir: &Path, applier_extra: &str) -> PathBuf {
    write_config_with(dir, "", applier_extra, "")
}

/// `top` goes before any table, `tables` after `[applier]`.
pub fn write_config_with(dir: &Path, top: &str, applier_extra: &str, tables: &str) -> PathBuf {
    let database = database_url(&dir.join("watcher.db"));
    write_config_on(dir, &database, top, applier_extra, tables)
}

/// [`write_config_with`] on the database at `database` (a URL).
pub fn write_config_on(
    dir: &Path,
    database: &str,
    top: &str,
    applier_extra: &str,
    tables: &str,
) -> PathBuf {
    let path = dir.join("watcherd.toml");
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\ndatabase = \"{}\"\nhost = \"test-host\"\n{top}\n\n\
         [applier]\nsweep_interval_secs = 0.5\npoll_interval_ms = 20\nshutdown_grace_secs = 0.5\n{applier_extra}\n{tables}\n",
        dir.display(),
        database
    );
    std::fs::write(&path, text).unwrap();
    path
}

impl Daemon {
    /// Starts watcherd with its data (and config) in `dir`.
    pub fn start_in(dir: &Path, applier_extra: &str, scenario: Option<&Path>) -> Daemon {
        Daemon::start_with_config(dir, write_config(dir, applier_extra), scenario)
    }

    pub fn start_with_config(dir: &Path, config: PathBuf, scenario: Option<&Path>) -> Daemon {
        Daemon::start_command(dir, config, scenario, None)
    }

    /// `watcherd [subcommand] --config ...`, e.g. the `api` of a split deployment.
    pub fn start_command(
        dir: &Path,
        config: PathBuf,
        scenario: Option<&Path>,
        subcommand: Option<&str>,
    ) -> Daemon {
        Daemon::start_with_args(dir, config, scenario, subcommand, &[])
    }

    /// [`Daemon::start_command`] with more arguments (`--log-format json`).
    pub fn start_with_args(
        dir: &Path,
        config: PathBuf,
        scenario: Option<&Path>,
        subcommand: Option<&str>,
        args: &[&str],
    ) -> Daemon {
        let mut cmd = Command::new(watcherd_binary());
        if let Some(sub) = subcommand {
            cmd.arg(sub);
        }
        cmd.arg("--config")
            .arg(&config)
            .arg("--log")
            .arg("warn,watcher=info");
        if let Some(s) = scenario {
            cmd.arg("--cloud-scenario").arg(s);
        }
        cmd.args(args);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("watcherd.log"))
            .unwrap();
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(log)
            .env_remove("WATCHER_LISTEN")
            .spawn()
            .expect("spawn watcherd");
        let url = announced(&mut child, "watcherd listening on ").unwrap_or_else(|line| {
            panic!(
                "watcherd did not start: {line:?}; log: {}",
                std::fs::read_to_string(dir.join("watcherd.log")).unwrap_or_default()
            )
        });
        Daemon {
            child,
            url,
            dir: dir.to_path_buf(),
        }
    }

    /// `watcherd ARGS` and nothing else (no `--config`, no `WATCHER_*`
    /// settings from the environment): upstream's `--config-file`, say.
    /// Its data in `dir`; its log where its own settings put it.
    pub fn start_bare(dir: &Path, args: &[&std::ffi::OsStr]) -> Daemon {
        let mut child = Command::new(watcherd_binary())
            .args(args)
            .env_remove("WATCHER_LISTEN")
            .env_remove("WATCHER_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn watcherd");
        let url = announced(&mut child, "watcherd listening on ")
            .unwrap_or_else(|line| panic!("watcherd {args:?} did not start: {line}"));
        Daemon {
            child,
            url,
            dir: dir.to_path_buf(),
        }
    }

    pub fn start(name: &str) -> Daemon {
        Daemon::start_in(&temp_dir(name), "", None)
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        unsafe_sigterm(self.child.id());
        self.child.wait().unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("watcherd.log")).unwrap_or_default()
    }

    pub fn req(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let r = ureq::request(method, &format!("{}{path}", self.url))
            .set("OpenStack-API-Version", "infra-optim 1.5")
            .set("Content-Type", "application/json");
        let res = match body {
            Some(b) => r.send_string(&b.to_string()),
            None => r.call(),
        };
        let (status, resp) = match res {
            Ok(resp) => (resp.status(), resp),
            Err(ureq::Error::Status(code, resp)) => (code, resp),
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let text = resp.into_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn raw(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let res = ureq::request(method, &format!("{}{path}", self.url))
            .set("Content-Type", "application/json")
            .send_string(body);
        match res {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(e) => panic!("{e}"),
        }
    }

    pub fn get(&self, path: &str) -> Value {
        let (status, body) = self.req("GET", path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub fn plan(&self, uuid: &str) -> Value {
        self.get(&format!("/v1/action_plans/{uuid}"))
    }

    pub fn actions(&self, plan: &str) -> Vec<Value> {
        self.get(&format!("/v1/actions/detail?action_plan_uuid={plan}"))["actions"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Creates an audit and returns the RECOMMENDED plan it produced.
    pub fn recommend(&self, goal: &str, strategy: &str, parameters: Value) -> String {
        let (status, audit) = self.req(
            "POST",
            "/v1/audits",
            Some(&json!({"audit_type": "ONESHOT", "goal": goal, "strategy": strategy, "parameters": parameters})),
        );
        assert_eq!(status, 201, "{audit}");
        self.plan_of(audit["uuid"].as_str().unwrap())
    }

    /// The (first) plan of an audit, once the audit has made it.
    pub fn plan_of(&self, audit: &str) -> String {
        wait_for(Duration::from_secs(10), || {
            let p = self.get(&format!("/v1/action_plans?audit_uuid={audit}"))["action_plans"][0]
                ["uuid"]
                .clone();
            p.as_str().map(str::to_string)
        })
    }

    /// An actuator plan running exactly `actions`.
    pub fn actuator(&self, actions: Value) -> String {
        self.recommend("unclassified", "actuator", json!({"actions": actions}))
    }

    pub fn start_plan(&self, plan: &str) {
        let (status, body) = self.req(
            "POST",
            &format!("/v1/action_plans/{plan}/start"),
            Some(&json!({})),
        );
        assert_eq!(status, 200, "{body}");
    }

    pub fn patch_state(&self, plan: &str, state: &str) -> (u16, Value) {
        self.req(
            "PATCH",
            &format!("/v1/action_plans/{plan}"),
            Some(&json!([{"op": "replace", "value": state, "path": "/state"}])),
        )
    }

    pub fn wait_state(&self, plan: &str, states: &[&str]) -> Value {
        wait_for(Duration::from_secs(20), || {
            let p = self.plan(plan);
            states.contains(&p["state"].as_str().unwrap()).then_some(p)
        })
    }

    pub fn wait_action_state(&self, plan: &str, action_type: &str, state: &str) {
        wait_for(Duration::from_secs(20), || {
            self.actions(plan)
                .iter()
                .any(|a| a["action_type"] == action_type && a["state"] == state)
                .then_some(())
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

/// `watcherd SUBCOMMAND --config DIR/watcherd.toml ARGS` run to its end
/// (a one-shot command such as `purge`), stdin closed: exit success,
/// stdout and stderr.
pub fn run_watcherd(dir: &Path, subcommand: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(watcherd_binary())
        .arg(subcommand)
        .arg("--config")
        .arg(dir.join("watcherd.toml"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run watcherd {subcommand}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `f` until it returns Some, or panics after `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "condition not met within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The faultstring inside Watcher's double-encoded error body.
/// The value a `Set-Cookie` header sets (`name=value; Path=...` -> `value`).
pub fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}

pub fn faultstring(body: &Value) -> String {
    let inner: Value = serde_json::from_str(
        body["error_message"]
            .as_str()
            .expect("error_message is a string"),
    )
    .unwrap();
    assert!(inner.get("debuginfo").is_some());
    inner["faultstring"].as_str().unwrap().to_string()
}

/// A scenario file: the demo cloud with `overrides` (TOML tables) appended.
pub fn scenario_file(dir: &Path, timing: &str, faults: &str) -> PathBuf {
    let demo = watcher_cloud::scenario::DEMO_SCENARIO;
    let mut text = String::new();
    let mut skip = false;
    for line in demo.lines() {
        if line.starts_with("[timing]") || line.starts_with("[faults]") {
            skip = true;
            continue;
        }
        if line.starts_with('[') {
            skip = false;
        }
        if !skip {
            text.push_str(line);
            text.push('\n');
        }
    }
    let body = format!("[timing]\n{timing}\n[faults]\n{faults}\n");
    // Tables must come before the arrays of tables that follow `seed`.
    let text = text.replacen("\n[[flavors]]", &format!("\n{body}\n[[flavors]]"), 1);
    let path = dir.join("scenario.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `watcherd sim-cloud`: the simulated cloud in its own process, which
/// lives on while a watcherd using it (`cloud = "sim-cloud"`) is killed.
#[allow(dead_code)]
pub struct SimCloud {
    child: Child,
    pub url: String,
}

#[allow(dead_code)]
impl SimCloud {
    pub fn start(scenario: &Path) -> SimCloud {
        let mut child = Command::new(watcherd_binary())
            .arg("sim-cloud")
            .arg("--cloud-scenario")
            .arg(scenario)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn watcherd sim-cloud");
        let url = announced(&mut child, "sim-cloud listening on ")
            .unwrap_or_else(|line| panic!("sim-cloud did not start: {line:?}"));
        SimCloud { child, url }
    }

    /// A watcherd in `dir` managing this cloud.
    pub fn daemon(&self, dir: &Path) -> Daemon {
        let config = write_config_with(dir, &self.cloud_config(), "", "");
        Daemon::start_with_config(dir, config, None)
    }

    /// The cloud's operations: `[{id, kind, resource, state}]`.
    pub fn operations(&self) -> Vec<Value> {
        let text = ureq::get(&format!("{}/control/operations", self.url))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        serde_json::from_str::<Vec<Value>>(&text).unwrap()
    }

    /// One Cloud trait call, as watcherd makes it: `{"ok": ...}` or `{"error": ...}`.
    pub fn call(&self, method: &str, args: Value) -> Value {
        let text = ureq::post(&format!("{}/cloud/{method}", self.url))
            .send_json(args)
            .unwrap()
            .into_string()
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Makes a running operation fail now.
    pub fn fail(&self, op: &str) -> Value {
        let text = ureq::post(&format!("{}/control/fail/{op}", self.url))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

impl Drop for SimCloud {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The config of a watcherd named `host` in `dir` on the shared database
/// file `db` (several processes on one file): `top` goes before any table
/// (e.g. the cloud), `tables` after (e.g. `[applier]` settings).
#[allow(dead_code)]
pub fn shared_config(dir: &Path, host: &str, db: &Path, top: &str, tables: &str) -> PathBuf {
    shared_config_on(dir, host, &database_url(db), top, tables)
}

/// [`shared_config`] on the database at `database` (a URL).
pub fn shared_config_on(
    dir: &Path,
    host: &str,
    database: &str,
    top: &str,
    tables: &str,
) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("watcherd.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nhost = \"{host}\"\ndatabase = \"{}\"\n{top}\n\n{tables}\n",
            dir.display(),
            database
        ),
    )
    .unwrap();
    path
}

#[allow(dead_code)]
impl SimCloud {
    /// The `top` of a `shared_config` whose cloud is this sim-cloud.
    pub fn cloud_config(&self) -> String {
        format!("cloud = \"sim-cloud\"\nsim_cloud_url = \"{}\"", self.url)
    }
}

/// A part of a split deployment that serves no API (`watcherd applier`,
/// `watcherd decision-engine`), killed when dropped. Its log goes next to
/// its config file (`<config>.log`).
#[allow(dead_code)]
pub struct Part(Child, PathBuf);

#[allow(dead_code)]
impl Part {
    pub fn start(role: &str, config: &Path) -> Part {
        let log = config.with_extension("log");
        let mut child = Command::new(watcherd_binary())
            .arg(role)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("watcherd running as"), "{role}: {line:?}");
        Part(child, log)
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The value of a variable that configures an outside service for the
/// tests. A test that needs the service is built ignored when the variable
/// is unset (crates/watcherd/build.rs), so reaching here without it means
/// `--include-ignored` (as CI runs): fail, never pass silently.
pub fn required_env(var: &str, what: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("{what} is needed: set {var} (.ci/run does)"),
    }
}

/// Whether `var` configures a service for this run.
pub fn configured(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| !v.is_empty())
}

/// The RabbitMQ the notification tests use: `WATCHER_TEST_RABBITMQ`, e.g.
/// `rabbit://guest:guest@127.0.0.1:5672/`.
pub fn rabbit_url() -> String {
    required_env("WATCHER_TEST_RABBITMQ", "RabbitMQ")
}

/// Whether this run has a RabbitMQ (`WATCHER_TEST_RABBITMQ`); tests that
/// check notifications only where one is configured ask this.
pub fn rabbitmq_configured() -> bool {
    configured("WATCHER_TEST_RABBITMQ")
}

/// A blocking face of [`watcher_notifications::amqp::Broker`] for tests,
/// which read what watcherd published.
pub struct TestBroker {
    runtime: tokio::runtime::Runtime,
    /// Always Some but in `drop`.
    broker: Option<watcher_notifications::amqp::Broker>,
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        // The client's connection needs its runtime to close.
        if let Some(b) = self.broker.take() {
            self.runtime.block_on(b.close());
        }
    }
}

impl TestBroker {
    /// Connects to `url` (any of its hosts), with TLS settings when given.
    pub fn connect(
        url: &str,
        tls: Option<watcher_tls::TlsOptions>,
    ) -> Result<TestBroker, watcher_notifications::amqp::AmqpError> {
        use watcher_notifications::amqp::{Broker, BrokerOptions, BrokerUrl};
        // The client's reader and writer are tasks: a worker thread keeps
        // them going between calls.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let options = BrokerOptions {
            tls,
            heartbeat_secs: 0,
            timeout: Duration::from_secs(5),
        };
        let broker = runtime.block_on(Broker::connect(&BrokerUrl::parse(url)?, &options, 0))?;
        Ok(TestBroker {
            runtime,
            broker: Some(broker),
        })
    }

    fn broker(&self) -> &watcher_notifications::amqp::Broker {
        self.broker.as_ref().expect("connected")
    }

    pub fn declare(
        &mut self,
        exchange: &str,
        routing_key: &str,
    ) -> Result<(), watcher_notifications::amqp::AmqpError> {
        self.runtime
            .block_on(self.broker().declare(exchange, routing_key))
    }

    pub fn get(
        &mut self,
        queue: &str,
    ) -> Result<Option<Vec<u8>>, watcher_notifications::amqp::AmqpError> {
        self.runtime.block_on(self.broker().get(queue))
    }

    pub fn delete_queue(
        &mut self,
        queue: &str,
    ) -> Result<(), watcher_notifications::amqp::AmqpError> {
        self.runtime.block_on(self.broker().delete_queue(queue))
    }
}

/// A connection to [`rabbit_url`]; it must answer.
pub fn broker() -> TestBroker {
    TestBroker::connect(&rabbit_url(), None)
        .unwrap_or_else(|e| panic!("RabbitMQ at WATCHER_TEST_RABBITMQ does not answer: {e}"))
}

/// The inner oslo message of each notification queued on `queue`.
pub fn drain(c: &mut TestBroker, queue: &str) -> Vec<Value> {
    let mut out = vec![];
    while let Some(body) = c.get(queue).unwrap() {
        let outer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(outer["oslo.version"], "2.0", "{outer}");
        out.push(serde_json::from_str(outer["oslo.message"].as_str().unwrap()).unwrap());
    }
    out
}

/// A plan live-migrating web-1 from compute-1 to compute-2, started, with
/// its migration under way at the cloud.
pub fn running_live_migration(api: &Daemon, sim: &SimCloud) -> String {
    let plan = api.actuator(json!([
        {"action_type": "migrate", "input_parameters": {"migration_type": "live",
            "resource_id": "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001",
            "source_node": "compute-1", "destination_node": "compute-2"}}
    ]));
    api.start_plan(&plan);
    api.wait_action_state(&plan, "migrate", "ONGOING");
    // The action is ONGOING from its journal entry on; the cloud has the
    // migration a moment later.
    wait_for(Duration::from_secs(10), || {
        (sim.operations().len() == 1).then_some(())
    });
    plan
}

/// Each action's (and the plan's) history is a path: every change starts
/// where the one before it ended.
pub fn assert_history_unbroken(api: &Daemon, plan: &str) {
    let rows = api.get(&format!("/v1/action_plans/{plan}/history"))["history"]
        .as_array()
        .unwrap()
        .clone();
    let mut last: std::collections::HashMap<String, String> = Default::default();
    for r in &rows {
        let uuid = r["uuid"].as_str().unwrap().to_string();
        let (from, to) = (r["from_state"].as_str(), r["to_state"].as_str().unwrap());
        if let Some(prev) = last.get(&uuid) {
            assert_eq!(
                from,
                Some(prev.as_str()),
                "broken history of {uuid}: {rows:?}"
            );
        }
        last.insert(uuid, to.to_string());
    }
}

/// What a started process (spawned with its standard output piped) prints
/// on its first line after `prefix`: the URL it listens on. The line
/// itself when it says something else.
pub fn announced(child: &mut Child, prefix: &str) -> Result<String, String> {
    let mut line = String::new();
    let stdout = child.stdout.take().expect("standard output piped");
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    line.trim()
        .strip_prefix(prefix)
        .map(str::to_string)
        .ok_or(line)
}

/// A TCP port nothing listens on now, for a server a test starts itself
/// (PostgreSQL, RabbitMQ, stunnel), which binds it a moment later.
///
/// Taken below the kernel's ephemeral range (32768-60999 here): a port
/// from that range (what binding port 0 gives) can be handed to any
/// outgoing connection meanwhile, and the suites open thousands, so the
/// server then failed with "address in use". Each port is handed out once
/// per test process, and tried with a bind first.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Spread test processes apart so that two suites rarely start at the
    // same port; then walk up, skipping what is in use.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 500) as u16 * 20,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32_000, "no free port left below the ephemeral range");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
