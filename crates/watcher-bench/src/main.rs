//! watcher-bench: the numbers in docs/benchmarks.md.
//!
//! Run with `cargo run --release --bin watcher-bench` (add `-- --quick` for a
//! short smoke run, `-- strategies` for the decision engine's table only,
//! `-- postgres URL` for the split deployment's figures on PostgreSQL;
//! `--help` lists them).
//! Prints its tables; every figure is measured here, now.

use anyhow::{bail, Context};
use async_trait::async_trait;
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use watcher_applier::actions::{ActionRegistry, ActionSettings};
use watcher_applier::runner::{RunContext, RunEnd};
use watcher_applier::Limits;
use watcher_cloud::scenario::Scenario;
use watcher_cloud::simulated::SimulatedCloud;
use watcher_cloud::*;
use watcher_core::*;
use watcher_store::*;
use watcherd::config::Config;
use watcherd::service::{Service, ServiceOptions};

struct Opts {
    actions: usize,
    /// PENDING actions behind the running sleep in cancel case (a).
    pending: usize,
    runs: usize,
    requests: usize,
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("watcher-bench-{name}-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A recommended plan made straight in the store (no decision engine).
async fn make_plan(store: &Store, actions: Vec<NewAction>) -> anyhow::Result<Uuid> {
    let goal = store.get_goal("unclassified").await?;
    let strategy = store.get_strategy("actuator").await?;
    let audit = store
        .create_audit(NewAudit {
            uuid: Uuid::new_v4(),
            name: "bench".into(),
            audit_type: AuditType::Oneshot,
            goal_id: goal.id,
            strategy_id: Some(strategy.id),
            parameters: json!({}),
            interval: None,
            scope: json!([]),
            auto_trigger: false,
            force: true,
            start_time: None,
            end_time: None,
        })
        .await?;
    store
        .transition_audit(
            audit.uuid,
            AuditState::Pending,
            AuditState::Ongoing,
            Actor::DecisionEngine,
            "bench",
            None,
            None,
        )
        .await?;
    let plan = store
        .create_plan(NewPlan {
            uuid: Uuid::new_v4(),
            audit_uuid: audit.uuid,
            strategy_name: "actuator".into(),
            actions,
            efficacy_indicators: vec![],
            global_efficacy: vec![],
            hostname: "bench".into(),
            next_run_time: None,
        })
        .await?;
    Ok(plan.uuid)
}

/// `plans` RECOMMENDED plans of `actions` nops each written at `location`
/// (its catalogue first), before any watcherd runs on it; their uuids.
fn plans_of_nops(
    location: &DatabaseLocation,
    plans: usize,
    actions: usize,
) -> anyhow::Result<Vec<Uuid>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = Store::open(location, Durability::Normal)?;
        watcher_decision::sync_catalogue(&store).await?;
        let mut uuids = vec![];
        for _ in 0..plans {
            uuids.push(make_plan(&store, nops(actions, false)).await?);
        }
        store.truncate_wal().await?;
        anyhow::Ok(uuids)
    })
}

fn nops(n: usize, chain: bool) -> Vec<NewAction> {
    let mut out: Vec<NewAction> = Vec::with_capacity(n);
    for i in 0..n {
        let parents = if chain && i > 0 {
            vec![out[i - 1].uuid]
        } else {
            vec![]
        };
        out.push(NewAction {
            uuid: Uuid::new_v4(),
            action_type: "nop".into(),
            input_parameters: json!({"message": null}),
            parents,
        });
    }
    out
}

/// Creates `plans` plans of `n` actions through one store while a second
/// store on the same database (another process, as far as the database
/// can tell) cancels recommended plans one after another: the creation
/// times, and the commit time of every cancel that overlapped a creation.
async fn big_plan_creation(
    n: usize,
    plans: usize,
    database: Option<&str>,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let dir = temp_dir("big-plan");
    let location = match database {
        Some(url) => DatabaseLocation::parse(url)?,
        None => DatabaseLocation::File(dir.join("watcher.db")),
    };
    let creator = Store::open(&location, Durability::Normal)?;
    watcher_decision::sync_catalogue(&creator).await?;
    let canceller = Store::open(&location, Durability::Normal)?;
    // Enough victims for a cancel every millisecond or so during every creation.
    let mut victims = Vec::new();
    for _ in 0..plans * 400 {
        victims.push(make_plan(&canceller, nops(1, false)).await?);
    }
    let creating = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = CancellationToken::new();
    let cancels = {
        let (creating, done) = (creating.clone(), done.clone());
        tokio::spawn(async move {
            let mut overlapped = Vec::new();
            for plan in victims {
                if done.is_cancelled() {
                    break;
                }
                let during = creating.load(std::sync::atomic::Ordering::SeqCst);
                let t = Instant::now();
                canceller
                    .transition_plan(
                        plan,
                        ActionPlanState::Recommended,
                        ActionPlanState::Cancelled,
                        Actor::Api,
                        "bench",
                        PlanUpdate::default(),
                    )
                    .await?;
                if during || creating.load(std::sync::atomic::Ordering::SeqCst) {
                    overlapped.push(t.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            anyhow::Ok(overlapped)
        })
    };
    let mut create = Vec::new();
    for _ in 0..plans {
        let actions = nops(n, false);
        creating.store(true, std::sync::atomic::Ordering::SeqCst);
        let t = Instant::now();
        make_plan(&creator, actions).await?;
        create.push(t.elapsed());
        creating.store(false, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done.cancel();
    let overlapped = cancels.await??;
    let _ = std::fs::remove_dir_all(&dir);
    Ok((create, overlapped))
}

/// Actions per second of one plan of `n` nops, every change durably recorded.
/// On `database`, or a new SQLite file.
async fn throughput(n: usize, chain: bool, database: Option<&str>) -> anyhow::Result<(f64, usize)> {
    let dir = temp_dir("throughput");
    let location = match database {
        Some(url) => DatabaseLocation::parse(url)?,
        None => DatabaseLocation::File(dir.join("bench.db")),
    };
    let store = Store::open(&location, Durability::Normal)?;
    watcher_decision::sync_catalogue(&store).await?;
    let plan = make_plan(&store, nops(n, chain)).await?;
    store
        .transition_plan(
            plan,
            ActionPlanState::Recommended,
            ActionPlanState::Pending,
            Actor::Api,
            "bench",
            PlanUpdate::default(),
        )
        .await?;
    let p = store
        .transition_plan(
            plan,
            ActionPlanState::Pending,
            ActionPlanState::Ongoing,
            Actor::Applier,
            "bench",
            PlanUpdate::default(),
        )
        .await?;
    let mut limits = Limits::default();
    if !chain {
        limits.per_plan = 512;
        limits.per_type.insert("nop".into(), 512);
    }
    let runner = RunContext {
        store: store.clone(),
        cloud: Arc::new(SimulatedCloud::new(&Scenario::demo())),
        registry: ActionRegistry::default(),
        limits,
        settings: ActionSettings::default(),
        shutdown_grace: Duration::from_secs(1),
        rollback_on_cancel: false,
        // The real applier's fenced start (one lookup per action) is measured too.
        owner: Some("bench".into()),
    };
    let t = Instant::now();
    let end = runner
        .run(
            p,
            CancellationToken::new(),
            CancellationToken::new(),
            CancellationToken::new(),
        )
        .await?;
    let secs = t.elapsed().as_secs_f64();
    if end != RunEnd::Finished(ActionPlanState::Succeeded) {
        bail!("plan ended {end:?}");
    }
    let history = store.plan_history(plan).await?.len();
    let _ = std::fs::remove_dir_all(&dir);
    Ok((n as f64 / secs, history))
}

/// A write burst on an embedded SQLite file while readers list continuously
/// (each list a read snapshot the checkpointer must wait for): the largest
/// WAL seen during it, and the WAL's size once writes have paused.
async fn wal_burst(audits: usize) -> anyhow::Result<(Duration, u64, u64)> {
    use watcher_store::{AuditFilter, ListQuery};
    let dir = temp_dir("wal-burst");
    let path = dir.join("bench.db");
    let store = Store::open(&DatabaseLocation::File(path.clone()), Durability::Normal)?;
    watcher_decision::sync_catalogue(&store).await?;
    let goal = store.get_goal("dummy").await?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let max_wal = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let (stop, max_wal, path) = (stop.clone(), max_wal.clone(), path.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                max_wal.fetch_max(
                    watcher_store::wal_bytes(&path),
                    std::sync::atomic::Ordering::Relaxed,
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let q = ListQuery {
                        limit: 1000,
                        ..ListQuery::default()
                    };
                    let _ = store.list_audits(AuditFilter::default(), q).await;
                }
            })
        })
        .collect();
    let t = Instant::now();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            let n = audits / 8;
            let goal_id = goal.id;
            tokio::spawn(async move {
                for i in 0..n {
                    store
                        .create_audit(NewAudit {
                            uuid: Uuid::new_v4(),
                            name: format!("burst-{w}-{i}"),
                            audit_type: AuditType::Oneshot,
                            goal_id,
                            strategy_id: None,
                            parameters: json!({"padding": "x".repeat(200)}),
                            interval: None,
                            scope: json!([]),
                            auto_trigger: false,
                            force: false,
                            start_time: None,
                            end_time: None,
                        })
                        .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for w in writers {
        w.await??;
    }
    let burst = t.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        let _ = r.await;
    }
    let _ = sampler.join();
    // Writes have paused: within two checkpoint intervals the WAL is empty.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = watcher_store::wal_bytes(&path);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok((
        burst,
        max_wal.load(std::sync::atomic::Ordering::Relaxed),
        after,
    ))
}

/// Wraps a cloud and records when abort requests reach it.
struct RecordingCloud {
    inner: SimulatedCloud,
    aborts: Mutex<Vec<Instant>>,
}

#[async_trait]
impl Cloud for RecordingCloud {
    fn kind(&self) -> &'static str {
        "recording"
    }
    async fn compute_nodes(&self) -> Result<Vec<ComputeNode>, CloudError> {
        self.inner.compute_nodes().await
    }
    async fn flavors(&self) -> Result<Vec<Flavor>, CloudError> {
        self.inner.flavors().await
    }
    async fn instances(&self) -> Result<Vec<Instance>, CloudError> {
        self.inner.instances().await
    }
    async fn instance(&self, uuid: &str) -> Result<Option<Instance>, CloudError> {
        self.inner.instance(uuid).await
    }
    async fn volume(&self, uuid: &str) -> Result<Option<Volume>, CloudError> {
        self.inner.volume(uuid).await
    }
    async fn compute_service(&self, host: &str) -> Result<Option<ComputeService>, CloudError> {
        self.inner.compute_service(host).await
    }
    async fn live_migrate(&self, i: &str, d: Option<&str>) -> Result<OperationId, CloudError> {
        self.inner.live_migrate(i, d).await
    }
    async fn cold_migrate(&self, i: &str, d: Option<&str>) -> Result<OperationId, CloudError> {
        self.inner.cold_migrate(i, d).await
    }
    async fn find_migration(
        &self,
        i: &str,
        live: bool,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<OperationId>, CloudError> {
        self.inner.find_migration(i, live, since).await
    }
    async fn resize(&self, i: &str, f: &str) -> Result<OperationId, CloudError> {
        self.inner.resize(i, f).await
    }
    async fn retype_volume(&self, v: &str, t: &str) -> Result<OperationId, CloudError> {
        self.inner.retype_volume(v, t).await
    }
    async fn migrate_volume(&self, v: &str, p: &str) -> Result<OperationId, CloudError> {
        self.inner.migrate_volume(v, p).await
    }
    async fn set_compute_service(
        &self,
        h: &str,
        e: bool,
        r: Option<&str>,
    ) -> Result<(), CloudError> {
        self.inner.set_compute_service(h, e, r).await
    }
    async fn operation(&self, op: &str) -> Result<OperationState, CloudError> {
        self.inner.operation(op).await
    }
    async fn abort(&self, op: &str) -> Result<(), CloudError> {
        self.aborts.lock().unwrap().push(Instant::now());
        self.inner.abort(op).await
    }
    async fn force_complete(&self, op: &str) -> Result<(), CloudError> {
        self.inner.force_complete(op).await
    }
    async fn confirm(&self, op: &str) -> Result<(), CloudError> {
        self.inner.confirm(op).await
    }
    async fn revert(&self, op: &str) -> Result<(), CloudError> {
        self.inner.revert(op).await
    }
}

fn http(method: &str, url: &str, body: Option<&Value>) -> anyhow::Result<Value> {
    let req = ureq::request(method, url).set("Content-Type", "application/json");
    let resp = match body {
        Some(b) => req.send_string(&b.to_string()),
        None => req.call(),
    }
    .with_context(|| format!("{method} {url}"))?;
    Ok(serde_json::from_str(&resp.into_string()?).unwrap_or(Value::Null))
}

/// Waits (in the runtime) for a committed state change matching `pred`, and
/// returns when it was seen.
async fn wait_event(
    rx: &mut tokio::sync::broadcast::Receiver<StoreEvent>,
    pred: impl Fn(&StoreEvent) -> bool,
) -> Instant {
    wait_event_within(rx, Duration::from_secs(30), pred).await
}

/// [`wait_event`] with its own patience.
async fn wait_event_within(
    rx: &mut tokio::sync::broadcast::Receiver<StoreEvent>,
    patience: Duration,
    pred: impl Fn(&StoreEvent) -> bool,
) -> Instant {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ev)) if pred(&ev) => return Instant::now(),
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => panic!("event stream ended: {e}"),
            Err(_) => panic!("no matching event within {patience:?}"),
        }
    }
}

struct Latencies {
    response_to_cancelled: Vec<Duration>,
    sent_to_cancelled: Vec<Duration>,
    response_to_abort: Vec<Duration>,
    sent_to_abort: Vec<Duration>,
}

/// (a) 1,000 PENDING nops behind a running sleep; (b) a running live migration.
// Long because it is one scenario end to end: cancel cases (a) and (b), timed the same way.
/// watcherd in this process (API and applier) over a recording simulated
/// cloud of `scenario`, with its data in `dir`; and its URL.
async fn recording_service(
    dir: &Path,
    scenario: &Scenario,
) -> anyhow::Result<(Service, Arc<RecordingCloud>, String)> {
    let cloud = Arc::new(RecordingCloud {
        inner: SimulatedCloud::new(scenario),
        aborts: Mutex::new(vec![]),
    });
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.to_path_buf(),
        host: "bench".into(),
        ..Config::default()
    };
    let service = Service::start_with(
        &config,
        ServiceOptions {
            cloud: Some(cloud.clone()),
            without_decision_engine: true,
            ..Default::default()
        },
    )
    .await?;
    watcher_decision::sync_catalogue(&service.store).await?;
    let url = format!(
        "http://{}",
        service.addr.context("the bench's service serves the API")?
    );
    Ok((service, cloud, url))
}

/// One live migration, to cancel.
fn live_migration() -> NewAction {
    NewAction {
        uuid: Uuid::new_v4(),
        action_type: "migrate".into(),
        input_parameters: json!({"migration_type": "live", "resource_id": "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001",
               "source_node": "compute-1", "destination_node": "compute-2"}),
        parents: vec![],
    }
}

/// Starts `plan` through the API and returns once `first` is ONGOING.
async fn start_until_running(
    service: &Service,
    url: &str,
    plan: Uuid,
    first: Uuid,
) -> anyhow::Result<()> {
    let mut rx = service.store.subscribe();
    let u = url.to_string();
    tokio::task::spawn_blocking(move || {
        http(
            "POST",
            &format!("{u}/v1/action_plans/{plan}/start"),
            Some(&json!({})),
        )
    })
    .await??;
    wait_event(&mut rx, |e| matches!(e, StoreEvent::ActionState { uuid, state: ActionState::Ongoing, .. } if *uuid == first)).await;
    Ok(())
}

/// Cancels `plan` through the API: when the PATCH was sent, and when its
/// answer came.
async fn patch_cancelling(url: &str, plan: Uuid) -> anyhow::Result<(Instant, Instant)> {
    let u = url.to_string();
    tokio::task::spawn_blocking(move || -> anyhow::Result<(Instant, Instant)> {
        let sent = Instant::now();
        http(
            "PATCH",
            &format!("{u}/v1/action_plans/{plan}"),
            Some(&json!([{"op": "replace", "path": "/state", "value": "CANCELLING"}])),
        )?;
        Ok((sent, Instant::now()))
    })
    .await?
}

/// Cancel case (d): a live migration on a cloud whose status polls take
/// `poll_delay` seconds; PATCH response -> abort at the cloud, while the
/// applier's poll is in flight.
async fn abort_during_slow_poll(runs: usize, poll_delay: f64) -> anyhow::Result<Vec<Duration>> {
    let dir = temp_dir("slow-poll");
    let mut scenario = Scenario::demo();
    scenario.timing.live_migration_secs = 600.0;
    scenario.timing.abort_secs = 0.0;
    scenario.timing.poll_delay_secs = poll_delay;
    let (service, cloud, url) = recording_service(&dir, &scenario).await?;
    let mut out = vec![];
    for _ in 0..runs {
        let first = live_migration();
        let plan = make_plan(&service.store, vec![first.clone()]).await?;
        start_until_running(&service, &url, plan, first.uuid).await?;
        // The first poll is under way (it answers after `poll_delay`).
        tokio::time::sleep(Duration::from_millis(50)).await;
        let aborts_before = cloud.aborts.lock().unwrap().len();
        let (_, responded) = patch_cancelling(&url, plan).await?;
        let deadline = Instant::now() + Duration::from_secs_f64(poll_delay * 3.0 + 10.0);
        let aborted = loop {
            if let Some(t) = cloud.aborts.lock().unwrap().get(aborts_before) {
                break *t;
            }
            if Instant::now() > deadline {
                bail!("no abort reached the cloud");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        out.push(aborted.saturating_duration_since(responded));
        // Settled only after one more (slow) poll.
        let mut rx = service.store.subscribe();
        if !service
            .store
            .get_plan(plan, false)
            .await?
            .state
            .is_finished()
        {
            wait_event_within(&mut rx, Duration::from_secs_f64(poll_delay * 3.0 + 30.0), |e| matches!(e, StoreEvent::PlanState { uuid, state } if *uuid == plan && state.is_finished())).await;
        }
    }
    service.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}

async fn cancel_latency(opts: &Opts) -> anyhow::Result<Latencies> {
    let dir = temp_dir("cancel");
    let mut scenario = Scenario::demo();
    scenario.timing.live_migration_secs = 60.0;
    scenario.timing.abort_secs = 0.0;
    let (service, cloud, url) = recording_service(&dir, &scenario).await?;
    let mut lat = Latencies {
        response_to_cancelled: vec![],
        sent_to_cancelled: vec![],
        response_to_abort: vec![],
        sent_to_abort: vec![],
    };
    for run in 0..opts.runs * 2 {
        let migration = run % 2 == 1;
        let first = if migration {
            live_migration()
        } else {
            NewAction {
                uuid: Uuid::new_v4(),
                action_type: "sleep".into(),
                input_parameters: json!({"duration": 600}),
                parents: vec![],
            }
        };
        let mut actions = vec![first.clone()];
        if !migration {
            let mut rest = nops(opts.pending, false);
            for a in &mut rest {
                a.parents = vec![first.uuid];
            }
            actions.extend(rest);
        }
        let plan = make_plan(&service.store, actions).await?;
        start_until_running(&service, &url, plan, first.uuid).await?;
        if migration {
            // Let the migration be under way in the cloud, not just recorded.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let aborts_before = cloud.aborts.lock().unwrap().len();
        let mut rx = service.store.subscribe();
        let (sent, responded) = patch_cancelling(&url, plan).await?;
        let done = wait_event(&mut rx, |e| matches!(e, StoreEvent::PlanState { uuid, state } if *uuid == plan && state.is_finished())).await;
        let p = service.store.get_plan(plan, false).await?;
        if p.state != ActionPlanState::Cancelled {
            bail!("plan {plan} ended {} ({:?})", p.state, p.status_message);
        }
        if migration {
            let aborted = *cloud
                .aborts
                .lock()
                .unwrap()
                .get(aborts_before)
                .context("no abort reached the cloud")?;
            lat.response_to_abort
                .push(aborted.saturating_duration_since(responded));
            lat.sent_to_abort
                .push(aborted.saturating_duration_since(sent));
        } else {
            lat.response_to_cancelled
                .push(done.saturating_duration_since(responded));
            lat.sent_to_cancelled
                .push(done.saturating_duration_since(sent));
        }
    }
    service.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(lat)
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Starts the real watcherd binary; returns it and its URL.
/// The real watcherd (embedded mode) with its data in `dir`, and its URL.
fn spawn_watcherd(dir: &Path) -> anyhow::Result<(Proc, String)> {
    let dir = dir.to_str().context("data directory path")?;
    let (proc_, line) = spawn_part(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir,
        "--log",
        "warn",
    ])?;
    let url = line
        .strip_prefix("watcherd listening on ")
        .context("watcherd did not start")?
        .to_string();
    Ok((proc_, url))
}

/// A child process killed when dropped.
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `watcherd ARGS...` and returns it with the first line it prints.
fn spawn_part(args: &[&str]) -> anyhow::Result<(Proc, String)> {
    let exe = std::env::current_exe()?.with_file_name("watcherd");
    // WATCHER_BENCH_LOG=<filter> (e.g. "info"): each part logs at that
    // level to a file of its own under the temporary directory, to find
    // where a latency goes; otherwise the parts' logs are dropped.
    let (args, stderr) = match std::env::var("WATCHER_BENCH_LOG") {
        Ok(filter) => {
            let mut args: Vec<&str> = args.to_vec();
            match args.iter().position(|a| *a == "--log") {
                Some(i) => args[i + 1] = filter.leak(),
                None => args.extend(["--log", filter.leak()]),
            }
            let name = args
                .iter()
                .position(|a| *a == "--host")
                .map_or(args[0], |i| args[i + 1]);
            let path = std::env::temp_dir()
                .join(format!("watcher-bench-{name}-{}.log", std::process::id()));
            eprintln!("{} logs to {}", args[0], path.display());
            (
                args,
                std::process::Stdio::from(std::fs::File::create(path)?),
            )
        }
        Err(_) => (args.to_vec(), std::process::Stdio::null()),
    };
    let mut child = std::process::Command::new(&exe)
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .with_context(|| {
            format!(
                "cannot start {}; build it first (cargo build --release)",
                exe.display()
            )
        })?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    Ok((Proc(child), line.trim().to_string()))
}

/// watcherd limited to 1,024 file descriptors, `connections` idle or
/// half-sent connections held open against it: latencies of `requests`
/// normal requests made meanwhile.
fn idle_flood(connections: usize, requests: usize) -> anyhow::Result<Vec<Duration>> {
    use std::io::Write;
    let dir = temp_dir("idle-flood");
    let (_watcherd, url) = spawn_limited(&dir)?;
    let addr = url.trim_start_matches("http://").to_string();
    let mut held = Vec::with_capacity(connections);
    for i in 0..connections {
        let mut s = std::net::TcpStream::connect(&addr)?;
        if i % 2 == 1 {
            let _ = s.write_all(b"GET /v1/goals HTTP/1.1\r\nHost: x\r\n");
        }
        held.push(s);
    }
    let lat = normal_requests(&url, requests)?;
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(lat)
}

/// `requests` GET /v1/goals one after the other: each one's latency.
fn normal_requests(url: &str, requests: usize) -> anyhow::Result<Vec<Duration>> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let mut lat = Vec::with_capacity(requests);
    for _ in 0..requests {
        let t = Instant::now();
        agent
            .get(&format!("{url}/v1/goals"))
            .call()?
            .into_string()?;
        lat.push(t.elapsed());
    }
    Ok(lat)
}

/// `connections` clients each send a whole request for a thousand actions
/// with their details (about 0.6 MB to answer) and never read the answer,
/// against a watcherd limited to 1,024 file descriptors with 1,000 actions
/// stored: its RSS idle, its peak while they are all held, and normal
/// requests' latency meanwhile.
fn requests_in_flight(connections: usize) -> anyhow::Result<(u64, u64, Vec<Duration>)> {
    use std::io::Write;
    let dir = temp_dir("in-flight");
    plans_of_nops(&DatabaseLocation::File(dir.join("watcher.db")), 1, 1000)?;
    let (watcherd, url) = spawn_limited(&dir)?;
    let pid = watcherd.0.id();
    std::thread::sleep(Duration::from_secs(2));
    let idle = rss_kib(pid)?;
    let addr = url.trim_start_matches("http://").to_string();
    let mut held = Vec::with_capacity(connections);
    let mut peak = idle;
    for i in 0..connections {
        let mut s = std::net::TcpStream::connect(&addr)?;
        let _ = s.write_all(b"GET /v1/actions/detail?limit=1000 HTTP/1.1\r\nHost: x\r\n\r\n");
        held.push(s);
        if i % 500 == 0 {
            peak = peak.max(rss_kib(pid)?);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        peak = peak.max(rss_kib(pid)?);
        std::thread::sleep(Duration::from_millis(100));
    }
    let lat = normal_requests(&url, 100)?;
    peak = peak.max(rss_kib(pid)?);
    drop(held);
    drop(watcherd);
    let _ = std::fs::remove_dir_all(&dir);
    Ok((idle, peak, lat))
}

/// The real watcherd on the data directory `dir`, limited to 1,024 file
/// descriptors (`ulimit -n 1024`, as a modest systemd unit would be).
fn spawn_limited(dir: &Path) -> anyhow::Result<(Proc, String)> {
    let exe = std::env::current_exe()?.with_file_name("watcherd");
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 1024 && exec {} --listen 127.0.0.1:0 --data-dir {} --log warn",
            exe.display(),
            dir.display()
        ))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let watcherd = Proc(child);
    let url = line
        .trim()
        .strip_prefix("watcherd listening on ")
        .context("watcherd did not start")?
        .to_string();
    Ok((watcherd, url))
}

/// What a watcherd costs when nothing happens but history is large.
struct IdleCost {
    plans: usize,
    history: i64,
    cpu_percent: f64,
    rss_kib: u64,
    lists: Vec<(String, Duration, Duration)>,
    /// Starting and cancelling new plans next to this history, and the same
    /// on an empty database.
    start_cancel: StartCancel,
    start_cancel_empty: StartCancel,
}

/// POST start -> the first action ONGOING, and PATCH CANCELLING -> the plan
/// CANCELLED (a running sleep aborted), each as seen by a client polling.
struct StartCancel {
    start: Vec<Duration>,
    cancel: Vec<Duration>,
}

/// CPU time of process `pid` so far, in clock ticks (1/100 s on Linux).
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

/// Polls `f` every millisecond until it answers Some (30 s at most).
fn poll_until<T>(mut f: impl FnMut() -> anyhow::Result<Option<T>>) -> anyhow::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        anyhow::ensure!(Instant::now() < deadline, "not reached within 30 s");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The plan the decision engine makes of an actuator audit of `actions`,
/// created through the API (forced: other plans may be running).
fn actuator_plan(url: &str, actions: Value) -> anyhow::Result<String> {
    let audit = http(
        "POST",
        &format!("{url}/v1/audits"),
        Some(
            &json!({"audit_type": "ONESHOT", "goal": "unclassified", "strategy": "actuator",
            "force": true, "parameters": {"actions": actions}}),
        ),
    )?;
    let audit = audit["uuid"].as_str().context("no audit uuid")?.to_string();
    poll_until(|| {
        let p = http(
            "GET",
            &format!("{url}/v1/action_plans?audit_uuid={audit}"),
            None,
        )?;
        Ok(p["action_plans"][0]["uuid"].as_str().map(str::to_string))
    })
}

/// PATCHes `plan` CANCELLING through the API and waits until it has ended
/// (CANCELLED, or FAILED when an abort failed); that state.
fn cancel_and_settle(url: &str, plan: &str) -> anyhow::Result<String> {
    http(
        "PATCH",
        &format!("{url}/v1/action_plans/{plan}"),
        Some(&json!([{"op": "replace", "path": "/state", "value": "CANCELLING"}])),
    )?;
    poll_until(|| {
        let p = http("GET", &format!("{url}/v1/action_plans/{plan}"), None)?;
        Ok(match p["state"].as_str() {
            Some(s @ ("CANCELLED" | "FAILED")) => Some(s.to_string()),
            _ => None,
        })
    })
}

/// `runs` times: an actuator audit of two 30 s sleeps through the API, its
/// plan started, then cancelled once a sleep runs.
fn start_and_cancel(url: &str, runs: usize) -> anyhow::Result<StartCancel> {
    let mut out = StartCancel {
        start: vec![],
        cancel: vec![],
    };
    let sleep = json!({"action_type": "sleep", "input_parameters": {"duration": 30}});
    for _ in 0..runs {
        let plan = actuator_plan(url, json!([sleep, sleep]))?;
        let t = Instant::now();
        http(
            "POST",
            &format!("{url}/v1/action_plans/{plan}/start"),
            Some(&json!({})),
        )?;
        poll_until(|| {
            let a = http(
                "GET",
                &format!("{url}/v1/actions?action_plan_uuid={plan}"),
                None,
            )?;
            Ok(a["actions"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["state"] == "ONGOING"))
                .then_some(()))
        })?;
        out.start.push(t.elapsed());
        let t = Instant::now();
        let state = cancel_and_settle(url, &plan)?;
        anyhow::ensure!(state == "CANCELLED", "plan {plan} ended {state}");
        out.cancel.push(t.elapsed());
    }
    Ok(out)
}

/// Adds history rows (copies of the first ones, renumbered) until the file
/// at `db` holds `rows`: a long-lived cloud's history, without running it.
fn grow_history(db: &std::path::Path, rows: i64) -> anyhow::Result<i64> {
    let conn = rusqlite::Connection::open(db)?;
    loop {
        let have: i64 = conn.query_row("SELECT COUNT(*) FROM state_history", [], |r| r.get(0))?;
        if have >= rows {
            return Ok(have);
        }
        conn.execute(
            "INSERT INTO state_history (entity, uuid, action_plan_uuid, from_state, to_state, actor, reason, at) \
             SELECT entity, uuid, action_plan_uuid, from_state, to_state, actor, reason, at \
             FROM state_history ORDER BY seq LIMIT ?1",
            [(rows - have).min(have)],
        )?;
    }
}

/// Fills a SQLite file with `plans` RECOMMENDED plans (one nop each), then
/// starts the real watcherd on it and measures, with no request coming in,
/// its CPU over `seconds` and its RSS; then the p50 and p99 of list requests.
/// The dashboard's overview and a plan's page, 100 times each, on a
/// database holding `plans` plans of `actions` nops (every tenth cancelled).
fn dashboard_pages(plans: usize, actions: usize) -> anyhow::Result<Vec<(String, Vec<Duration>)>> {
    let dir = temp_dir("dashboard");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let sample = rt.block_on(async {
        let store = Store::open(
            &DatabaseLocation::File(dir.join("watcher.db")),
            Durability::Normal,
        )?;
        watcher_decision::sync_catalogue(&store).await?;
        let fillers: Vec<_> = (0..16)
            .map(|k| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut last = None;
                    for i in (k..plans).step_by(16) {
                        let plan = make_plan(&store, nops(actions, true)).await?;
                        if i % 10 == 0 {
                            store
                                .transition_plan(
                                    plan,
                                    ActionPlanState::Recommended,
                                    ActionPlanState::Cancelled,
                                    Actor::Api,
                                    "cancelled by operator",
                                    PlanUpdate::default(),
                                )
                                .await?;
                        }
                        last = Some(plan);
                    }
                    anyhow::Ok(last)
                })
            })
            .collect();
        let mut sample = None;
        for f in fillers {
            sample = f.await??.or(sample);
        }
        store.truncate_wal().await?;
        anyhow::Ok(sample.context("no plan")?)
    })?;
    drop(rt);
    let (watcherd, url) = spawn_watcherd(&dir)?;
    let agent = ureq::Agent::new();
    let mut out = vec![];
    for (what, path) in [
        ("GET /dashboard", "/dashboard".to_string()),
        (
            "GET /dashboard/action_plans/<uuid>",
            format!("/dashboard/action_plans/{sample}"),
        ),
        ("GET /dashboard/audits", "/dashboard/audits".to_string()),
        ("GET /dashboard/goals", "/dashboard/goals".to_string()),
        (
            "GET /dashboard/events (first bytes)",
            "/dashboard/events?after=0".to_string(),
        ),
    ] {
        let mut lat = vec![];
        for _ in 0..100 {
            let t = Instant::now();
            let resp = agent.get(&format!("{url}{path}")).call()?;
            if path.starts_with("/dashboard/events") {
                // A stream: the first event (history row 1) is the answer.
                let mut first = [0u8; 1];
                std::io::Read::read_exact(&mut resp.into_reader(), &mut first)?;
            } else {
                resp.into_string()?;
            }
            lat.push(t.elapsed());
        }
        out.push((what.to_string(), lat));
    }
    drop(watcherd);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}

fn idle_cost(plans: usize, history_rows: i64, seconds: u64) -> anyhow::Result<IdleCost> {
    let dir = temp_dir("idle-cost");
    let db = dir.join("watcher.db");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = Store::open(&DatabaseLocation::File(db.clone()), Durability::Normal)?;
        watcher_decision::sync_catalogue(&store).await?;
        let fillers: Vec<_> = (0..16)
            .map(|k| {
                let store = store.clone();
                tokio::spawn(async move {
                    for _ in (k..plans).step_by(16) {
                        make_plan(&store, nops(1, false)).await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for f in fillers {
            f.await??;
        }
        store.truncate_wal().await?;
        anyhow::Ok(())
    })?;
    drop(rt);
    let history = grow_history(&db, history_rows)?;
    let (watcherd, url) = spawn_watcherd(&dir)?;
    let pid = watcherd.0.id();
    // Start-up work (resuming, the first sweeps) is not idle work.
    std::thread::sleep(Duration::from_secs(5));
    let before = cpu_ticks(pid)?;
    std::thread::sleep(Duration::from_secs(seconds));
    let used = cpu_ticks(pid)? - before;
    // Clock ticks are 1/100 s on Linux.
    let cpu_percent = used as f64 / (seconds as f64 * 100.0) * 100.0;
    let rss_kib = rss_kib(pid)?;
    let agent = ureq::Agent::new();
    let mut lists = vec![];
    let mut paths = vec![];
    for resource in ["action_plans", "audits", "actions"] {
        for query in [
            "",
            "?limit=1000",
            "?limit=1000&sort_key=created_at&sort_dir=desc",
            "?limit=1000&sort_key=state",
            "?limit=1000&sort_key=updated_at",
            "/detail?limit=1000",
        ] {
            paths.push(format!("/v1/{resource}{query}"));
        }
    }
    for path in paths {
        let mut lat = vec![];
        for _ in 0..50 {
            let t = Instant::now();
            agent.get(&format!("{url}{path}")).call()?.into_string()?;
            lat.push(t.elapsed());
        }
        lists.push((
            format!("GET {path}"),
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99),
        ));
    }
    let start_cancel = start_and_cancel(&url, 20)?;
    drop(watcherd);
    let _ = std::fs::remove_dir_all(&dir);
    let empty = temp_dir("idle-cost-empty");
    let (watcherd, url) = spawn_watcherd(&empty)?;
    let start_cancel_empty = start_and_cancel(&url, 20)?;
    drop(watcherd);
    let _ = std::fs::remove_dir_all(&empty);
    Ok(IdleCost {
        plans,
        history,
        cpu_percent,
        rss_kib,
        lists,
        start_cancel,
        start_cancel_empty,
    })
}

/// Memory around big work: the RSS of an idle embedded watcherd, its peak
/// while it runs `plans` plans of `actions` nops at once, and 10 s after
/// they have all ended.
fn memory_after_big_plans(plans: usize, actions: usize) -> anyhow::Result<(u64, u64, u64)> {
    let dir = temp_dir("memory");
    let uuids = plans_of_nops(
        &DatabaseLocation::File(dir.join("watcher.db")),
        plans,
        actions,
    )?;
    let (watcherd, url) = spawn_watcherd(&dir)?;
    let pid = watcherd.0.id();
    std::thread::sleep(Duration::from_secs(5));
    let idle = rss_kib(pid)?;
    for plan in &uuids {
        http(
            "POST",
            &format!("{url}/v1/action_plans/{plan}/start"),
            Some(&json!({})),
        )?;
    }
    let mut peak = idle;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        peak = peak.max(rss_kib(pid)?);
        let mut ended = 0;
        for plan in &uuids {
            let p = http("GET", &format!("{url}/v1/action_plans/{plan}"), None)?;
            if p["state"] == "SUCCEEDED" {
                ended += 1;
            }
        }
        if ended == uuids.len() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the plans did not end within 600 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(10));
    let after = rss_kib(pid)?;
    drop(watcherd);
    let _ = std::fs::remove_dir_all(&dir);
    Ok((idle, peak, after))
}

/// A split deployment: `watcherd api`, `watcherd decision-engine` and
/// `appliers` × `watcherd applier` as processes on one database
/// (`database`, or a new SQLite file), the cloud another (`watcherd
/// sim-cloud`: live migrations of 600 s, aborts of 50 ms). `applier_toml`
/// goes under the appliers' `[applier]` table.
struct Split {
    url: String,
    sim: String,
    /// The appliers by host (`bench-applier-N`), to kill one.
    appliers: Vec<(String, Proc)>,
    _others: Vec<Proc>,
}

fn split_deployment(
    database: Option<&str>,
    appliers: usize,
    applier_toml: &str,
) -> anyhow::Result<Split> {
    let dir = temp_dir("split");
    let mut scenario = watcher_cloud::scenario::DEMO_SCENARIO.to_string();
    scenario = scenario.replace("live_migration_secs = 8.0", "live_migration_secs = 600.0");
    scenario = scenario.replace("abort_secs = 0.4", "abort_secs = 0.05");
    let scenario_path = dir.join("scenario.toml");
    std::fs::write(&scenario_path, scenario)?;
    let applier_config = dir.join("applier.toml");
    std::fs::write(&applier_config, format!("[applier]\n{applier_toml}\n"))?;
    let (sim_proc, line) = spawn_part(&[
        "sim-cloud",
        "--cloud-scenario",
        scenario_path.to_str().context("path")?,
    ])?;
    let sim = line
        .strip_prefix("sim-cloud listening on ")
        .context("sim-cloud did not start")?
        .to_string();
    let db = database
        .map(str::to_string)
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("watcher.db").display()));
    let part =
        |role: &str, host: String, config: Option<&Path>| -> anyhow::Result<(Proc, String)> {
            let mut args: Vec<String> = vec![role.into()];
            if let Some(c) = config {
                args.extend(["--config".into(), c.to_str().context("path")?.into()]);
            }
            args.extend([
                "--database".into(),
                db.clone(),
                "--cloud".into(),
                "sim-cloud".into(),
                "--sim-cloud-url".into(),
                sim.clone(),
                "--host".into(),
                host,
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--log".into(),
                "warn".into(),
            ]);
            spawn_part(&args.iter().map(String::as_str).collect::<Vec<_>>())
        };
    let (api, line) = part("api", "bench-api".into(), None)?;
    let url = line
        .strip_prefix("watcherd listening on ")
        .context("watcherd api did not start")?
        .to_string();
    let mut others = vec![sim_proc, api];
    let mut applier_procs = vec![];
    for i in 0..appliers {
        let host = format!("bench-applier-{i}");
        let proc_ = part("applier", host.clone(), Some(&applier_config))?.0;
        applier_procs.push((host, proc_));
    }
    others.push(part("decision-engine", "bench-de".into(), None)?.0);
    Ok(Split {
        url,
        sim,
        appliers: applier_procs,
        _others: others,
    })
}

/// Failover on PostgreSQL: two appliers; each run starts a plan of one
/// live migration, kills the applier running it with -9 once the migration
/// runs at the cloud, and cancels the plan right after. Time from the kill
/// to the plan CANCELLED (the other applier takes it over, aborts the
/// migration). Appliers killed are started again for the next run.
fn failover(database: &str, runs: usize) -> anyhow::Result<Vec<Duration>> {
    let mut split = split_deployment(Some(database), 2, "lease_secs = 60")?;
    let mut out = vec![];
    for _ in 0..runs {
        let url = split.url.clone();
        let plan = actuator_plan(
            &url,
            json!([{"action_type": "migrate", "input_parameters": {
                "migration_type": "live", "resource_id": "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001",
                "source_node": "compute-1", "destination_node": "compute-2"}}]),
        )?;
        http(
            "POST",
            &format!("{url}/v1/action_plans/{plan}/start"),
            Some(&json!({})),
        )?;
        let holder = poll_until(|| {
            let a = http(
                "GET",
                &format!("{url}/v1/actions?action_plan_uuid={plan}"),
                None,
            )?;
            let running = a["actions"][0]["state"] == "ONGOING";
            let p = http("GET", &format!("{url}/v1/action_plans/{plan}"), None)?;
            Ok(running
                .then(|| p["hostname"].as_str().map(str::to_string))
                .flatten())
        })?;
        // The migration is at the cloud once its id is journaled; a moment more.
        std::thread::sleep(Duration::from_millis(300));
        let i = split
            .appliers
            .iter()
            .position(|(h, _)| *h == holder)
            .context("the plan's applier")?;
        let t = Instant::now();
        let (_, mut victim) = split.appliers.remove(i);
        let _ = victim.0.kill();
        let _ = victim.0.wait();
        cancel_and_settle(&url, &plan)?;
        out.push(t.elapsed());
        // Back to two appliers, under the same name (it finds nothing to resume).
        let restarted = spawn_part(&[
            "applier",
            "--database",
            database,
            "--cloud",
            "sim-cloud",
            "--sim-cloud-url",
            &split.sim,
            "--host",
            &holder,
            "--listen",
            "127.0.0.1:0",
            "--log",
            "warn",
        ])?
        .0;
        split.appliers.push((holder, restarted));
    }
    Ok(out)
}

/// (c) The split deployment's cancel, with one applier: time from the
/// PATCH response (API process) to the abort request reaching the cloud,
/// through the applier process; clocks are the same machine's.
fn cross_process_cancel(runs: usize, database: Option<&str>) -> anyhow::Result<Vec<Duration>> {
    let split = split_deployment(database, 1, "")?;
    cancels_at_cloud(&split, runs, None)
}

/// `runs` cancels (or as many as fit until `stop` is set) of a plan of one
/// live migration, each timed from the PATCH response to the abort request
/// reaching the cloud.
// Long because it is one scenario end to end: make, start, wait, cancel, settle.
fn cancels_at_cloud(
    split: &Split,
    runs: usize,
    stop: Option<&std::sync::atomic::AtomicBool>,
) -> anyhow::Result<Vec<Duration>> {
    let (url, sim) = (&split.url, &split.sim);
    let ops = |sim: &str| -> anyhow::Result<Vec<Value>> {
        let v = ureq::get(&format!("{sim}/control/operations"))
            .call()?
            .into_json::<Vec<Value>>()?;
        Ok(v)
    };
    let mut out = vec![];
    for _ in 0..runs {
        if stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::Acquire)) {
            break;
        }
        let plan = actuator_plan(
            url,
            json!([{"action_type": "migrate", "input_parameters": {
                "migration_type": "live", "resource_id": "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001",
                "source_node": "compute-1", "destination_node": "compute-2"}}]),
        )?;
        let known = ops(sim)?.len();
        http(
            "POST",
            &format!("{url}/v1/action_plans/{plan}/start"),
            Some(&json!({})),
        )?;
        // Running at the cloud: a new operation.
        let op = loop {
            let all = ops(sim)?;
            if all.len() > known {
                break all[known]["id"].as_str().context("op id")?.to_string();
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let patch = json!([{"op": "replace", "path": "/state", "value": "CANCELLING"}]);
        http(
            "PATCH",
            &format!("{url}/v1/action_plans/{plan}"),
            Some(&patch),
        )?;
        let answered = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs_f64();
        let aborted = loop {
            let o = ops(sim)?
                .into_iter()
                .find(|o| o["id"] == op.as_str())
                .context("op")?;
            if let Some(t) = o["abort_requested_at"].as_f64() {
                break t;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        out.push(Duration::from_secs_f64((aborted - answered).max(0.0)));
        // Wait for the plan to settle (the instance back home) before the next run.
        loop {
            let p = http("GET", &format!("{url}/v1/action_plans/{plan}"), None)?;
            if p["state"] == "CANCELLED" || p["state"] == "FAILED" {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(out)
}

/// Four appliers (or `appliers`) on PostgreSQL together: `plans` plans of
/// `actions` nops started at once through the API, their actions per
/// second from the first start to the last SUCCEEDED; meanwhile, cancels
/// of live migrations timed from the PATCH response to the abort at the
/// cloud (only those made while the load ran).
fn many_appliers(
    database: &str,
    appliers: usize,
    plans: usize,
    actions: usize,
) -> anyhow::Result<(f64, Vec<Duration>)> {
    use std::sync::atomic::{AtomicBool, Ordering};
    // The plans first: a decision engine running meanwhile would take
    // their audits for its own.
    let uuids = plans_of_nops(&DatabaseLocation::parse(database)?, plans, actions)?;
    // Six plans an applier: the sixteen plans of nops never take every
    // slot, so the migrations to cancel are claimed at once, not after a
    // plan of nops has ended (which left four or five cancels per run).
    let split = split_deployment(
        Some(database),
        appliers,
        "max_concurrent_plans = 6\n[applier.limits]\nper_plan = 128\n\
         [applier.limits.per_type]\nnop = 128\nmigrate = 2\n",
    )?;
    let loaded = AtomicBool::new(false);
    let (rate, cancels) = std::thread::scope(|scope| {
        let cancels = scope.spawn(|| cancels_at_cloud(&split, usize::MAX, Some(&loaded)));
        let load = (|| {
            let url = &split.url;
            let t = Instant::now();
            for plan in &uuids {
                http(
                    "POST",
                    &format!("{url}/v1/action_plans/{plan}/start"),
                    Some(&json!({})),
                )?;
            }
            let deadline = Instant::now() + Duration::from_secs(900);
            let mut left: Vec<&Uuid> = uuids.iter().collect();
            while !left.is_empty() {
                anyhow::ensure!(Instant::now() < deadline, "plans did not end within 900 s");
                std::thread::sleep(Duration::from_millis(50));
                let mut still = vec![];
                for plan in left {
                    let p = http("GET", &format!("{url}/v1/action_plans/{plan}"), None)?;
                    match p["state"].as_str() {
                        Some("SUCCEEDED") => {}
                        Some("FAILED" | "CANCELLED") => {
                            anyhow::bail!("plan {plan} ended {}", p["state"])
                        }
                        _ => still.push(plan),
                    }
                }
                left = still;
            }
            anyhow::Ok((plans * actions) as f64 / t.elapsed().as_secs_f64())
        })();
        loaded.store(true, Ordering::Release);
        let cancels = cancels.join().expect("cancel thread");
        anyhow::Ok((load?, cancels?))
    })?;
    Ok((rate, cancels))
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?)
}

/// Idle RSS, then GET of one action plan from two client threads.
fn process_figures(opts: &Opts) -> anyhow::Result<(u64, f64, Duration, Duration)> {
    let dir = temp_dir("process");
    let (watcherd, url) = spawn_watcherd(&dir)?;
    std::thread::sleep(Duration::from_secs(2));
    let rss = rss_kib(watcherd.0.id())?;
    http(
        "POST",
        &format!("{url}/v1/audits"),
        Some(&json!({"audit_type": "ONESHOT", "goal": "dummy"})),
    )?;
    let mut plan = None;
    for _ in 0..200 {
        let list = http("GET", &format!("{url}/v1/action_plans"), None)?;
        if let Some(u) = list["action_plans"][0]["uuid"].as_str() {
            plan = Some(u.to_string());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let plan = plan.context("no plan was recommended")?;
    let target = format!("{url}/v1/action_plans/{plan}");
    let t = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let target = target.clone();
            let n = opts.requests / 2;
            std::thread::spawn(move || {
                let agent = ureq::Agent::new();
                let mut lat = Vec::with_capacity(n);
                for _ in 0..n {
                    let s = Instant::now();
                    agent
                        .get(&target)
                        .call()
                        .expect("GET")
                        .into_string()
                        .expect("body");
                    lat.push(s.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = threads
        .into_iter()
        .flat_map(|h| h.join().expect("client thread"))
        .collect();
    let rate = lat.len() as f64 / t.elapsed().as_secs_f64();
    drop(watcherd);
    let _ = std::fs::remove_dir_all(&dir);
    Ok((rss, rate, pct(&mut lat, 0.5), pct(&mut lat, 0.99)))
}

/// One strategy on one generated cloud.
struct StrategyRow {
    hosts: usize,
    instances: usize,
    strategy: String,
    time: Duration,
    outcome: String,
}

/// Strategies on generated clouds of each size (20 instances per host on
/// average), timed on their own: the model and metrics are built first
/// (their time is reported in the model row), as the decision engine does.
fn strategy_rows(sizes: &[usize]) -> anyhow::Result<Vec<StrategyRow>> {
    use watcher_decision::consolidation::upstream_basic_reference;
    use watcher_decision::metrics::SimulatedMetrics;
    use watcher_decision::model::ClusterModel;
    use watcher_decision::strategies::{apply_parameters, execute, STRATEGIES};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rows = vec![];
    for &hosts in sizes {
        let scenario = Scenario::generated(hosts, 20, 1, false);
        let started = Instant::now();
        let cloud = SimulatedCloud::new(&scenario);
        let model = rt.block_on(ClusterModel::from_cloud(&cloud))?;
        let metrics = SimulatedMetrics::new(&scenario).values(&model);
        let instances = model.instances.len();
        rows.push(StrategyRow {
            hosts,
            instances,
            strategy: "(cluster model + metrics)".into(),
            time: started.elapsed(),
            outcome: String::new(),
        });
        let value = |s: &watcher_decision::strategies::Solution, n: &str| {
            s.efficacy_indicators
                .iter()
                .find(|i| i.name == n)
                .map_or(0.0, |i| i.value)
        };
        for (name, params) in [
            ("basic", json!({})),
            ("vm_workload_consolidation", json!({})),
            ("workload_balance", json!({"threshold": 35})),
            ("workload_stabilization", json!({})),
            (
                "node_resource_consolidation",
                json!({"host_choice": "specify"}),
            ),
        ] {
            let def = STRATEGIES
                .iter()
                .find(|s| s.name == name)
                .expect("known strategy");
            let params =
                apply_parameters(&(def.parameters_spec)(), &params).map_err(anyhow::Error::msg)?;
            let started = Instant::now();
            let s = execute(name, &params, &model, &metrics)?;
            let time = started.elapsed();
            let outcome = if name == "workload_stabilization" {
                format!(
                    "{} migrations; weighted std dev of CPU load {:.3} -> {:.3}",
                    value(&s, "instance_migrations_count"),
                    value(&s, "standard_deviation_before_audit"),
                    value(&s, "standard_deviation_after_audit"),
                )
            } else if name == "workload_balance" {
                format!(
                    "{} migrations; CPU use std dev {:.1} -> {:.1} points",
                    value(&s, "instance_migrations_count"),
                    value(&s, "standard_deviation_before_audit"),
                    value(&s, "standard_deviation_after_audit"),
                )
            } else {
                format!(
                    "{} nodes released, {} migrations",
                    value(&s, "released_compute_nodes_count"),
                    value(&s, "instance_migrations_count"),
                )
            };
            rows.push(StrategyRow {
                hosts,
                instances,
                strategy: name.into(),
                time,
                outcome,
            });
        }
        let started = Instant::now();
        let (released, migrations) = upstream_basic_reference(&model, &metrics)?;
        rows.push(StrategyRow {
            hosts,
            instances,
            strategy: "upstream's basic algorithm (reference)".into(),
            time: started.elapsed(),
            outcome: format!("{released} nodes released, {migrations} migrations"),
        });
    }
    Ok(rows)
}

fn print_strategy_rows(rows: &[StrategyRow]) {
    println!();
    println!("| hosts | instances | strategy | time | outcome |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.hosts,
            r.instances,
            r.strategy,
            ms(r.time),
            r.outcome
        );
    }
}

/// The split deployment's figures on PostgreSQL at `url`: the applier's
/// throughput with every change committed there, and the cancel across
/// processes, woken by LISTEN/NOTIFY.
fn postgres_table(url: &str, quick: bool) -> anyhow::Result<()> {
    let n = if quick { 1_000 } else { 10_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (seq, seq_hist) = rt.block_on(throughput(n, true, Some(url)))?;
    let (par, par_hist) = rt.block_on(throughput(n, false, Some(url)))?;
    let mut cross = cross_process_cancel(if quick { 10 } else { 100 }, Some(url))?;
    println!("| measure (PostgreSQL) | result | target |");
    println!("|---|---|---|");
    println!("| applier: {n} nops, one sequential chain | {seq:.0} actions/s ({seq_hist} history rows) | |");
    println!("| applier: {n} nops, no parents (512 at once) | {par:.0} actions/s ({par_hist} history rows) | |");
    println!(
        "| cancel (c): split processes, PATCH response -> abort at the cloud, p50 ({} runs) | {} | |",
        cross.len(),
        ms(pct(&mut cross, 0.5))
    );
    println!(
        "| cancel (c): split processes, PATCH response -> abort at the cloud, p99 | {} | p99 < 100 ms |",
        ms(pct(&mut cross, 0.99))
    );
    Ok(())
}

/// The benchmarks of docs/benchmarks.md: every figure measured here, now,
/// and printed as a table.
#[derive(clap::Parser)]
#[command(name = "watcher-bench", version, about, long_about = None)]
struct Cli {
    /// A short smoke run (smaller plans, fewer runs), as CI does.
    #[arg(long)]
    quick: bool,
    /// PENDING actions behind the running sleep in cancel case (a).
    #[arg(long, value_name = "N")]
    pending: Option<usize>,
    #[command(subcommand)]
    only: Option<Only>,
}

#[derive(clap::Subcommand)]
enum Only {
    /// Only the cross-process cancel: `watcherd api`, `applier` and
    /// `sim-cloud` as processes, PATCH response -> abort at the cloud.
    CrossProcess,
    /// Only the decision engine's table (strategies on generated clouds).
    Strategies,
    /// Only the API under abusive clients: CONNECTIONS idle or half-sent
    /// connections against a watcherd limited to 1,024 file descriptors,
    /// and the latency of normal requests meanwhile.
    IdleFlood {
        #[arg(long, default_value_t = 2_000)]
        connections: usize,
        #[arg(long, default_value_t = 100)]
        requests: usize,
    },
    /// Only the idle cost: PLANS recommended plans stored, nothing running:
    /// watcherd's CPU and RSS, and list requests' latency.
    IdleCost {
        #[arg(long, default_value_t = 100_000)]
        plans: usize,
        /// History rows stored (the plans' own, then copies of them).
        #[arg(long, default_value_t = 1_000_000)]
        history: i64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Only several appliers on PostgreSQL together: APPLIERS `watcherd
    /// applier` processes run PLANS plans of ACTIONS nops started at once
    /// (actions/s), while live migrations are cancelled (PATCH response ->
    /// abort at the cloud).
    ManyAppliers {
        #[arg(long)]
        database: String,
        #[arg(long, default_value_t = 4)]
        appliers: usize,
        #[arg(long, default_value_t = 16)]
        plans: usize,
        #[arg(long, default_value_t = 1_000)]
        actions: usize,
    },
    /// Only requests in flight: CONNECTIONS clients each send a request for
    /// 1,000 actions' details and never read it, against a watcherd limited
    /// to 1,024 file descriptors: its RSS, and normal requests meanwhile.
    InFlight {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
    },
    /// Only failover on PostgreSQL: the applier running a live migration is
    /// killed with -9 and the plan cancelled right after; kill -> CANCELLED.
    Failover {
        #[arg(long)]
        database: String,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Only memory around big work: an idle watcherd's RSS, its peak while
    /// PLANS plans of ACTIONS nops run at once, and 10 s after they end.
    Memory {
        #[arg(long, default_value_t = 5)]
        plans: usize,
        #[arg(long, default_value_t = 10_000)]
        actions: usize,
    },
    /// Only the dashboard's pages with PLANS plans of ACTIONS actions each
    /// stored (a tenth of them cancelled): the overview and a plan's page,
    /// time to the whole page on loopback.
    Dashboard {
        #[arg(long, default_value_t = 10_000)]
        plans: usize,
        #[arg(long, default_value_t = 10)]
        actions: usize,
    },
    /// Only the WAL under a write burst: AUDITS audits created by 8
    /// writers while 4 readers list, on an embedded SQLite file.
    WalBurst {
        #[arg(long, default_value_t = 50_000)]
        audits: usize,
    },
    /// Only cancel case (d): a live migration on a cloud whose status polls
    /// take `--poll-delay` seconds, PATCH response -> abort at the cloud.
    SlowPoll {
        #[arg(long, default_value_t = 20.0)]
        poll_delay: f64,
        #[arg(long, default_value_t = 10)]
        runs: usize,
    },
    /// Only the applier's throughput on one plan of nops (embedded SQLite),
    /// e.g. under `valgrind --tool=callgrind` to compare commits by
    /// instruction counts when the machine is too noisy for wall clock.
    Throughput {
        /// Actions in the plan.
        #[arg(long, default_value_t = 10_000)]
        actions: usize,
        /// One sequential chain instead of 512 at once.
        #[arg(long)]
        chain: bool,
    },
    /// Only the creation of big plans: how long a plan of ACTIONS actions
    /// takes to write, and how long a cancel written meanwhile by another
    /// process (its own connection) takes to commit. On DATABASE (a
    /// PostgreSQL URL) or a new SQLite file.
    BigPlan {
        #[arg(long, default_value_t = 10_000)]
        actions: usize,
        #[arg(long, default_value_t = 5)]
        plans: usize,
        #[arg(long)]
        database: Option<String>,
    },
    /// The split deployment's figures on PostgreSQL (applier throughput,
    /// cross-process cancel).
    Postgres {
        /// An empty database (the bench fills it), e.g.
        /// postgres://postgres@127.0.0.1:5432/watcher_bench
        url: String,
    },
}

// Long because it is the benchmark's table: one row per measure, in the order docs/benchmarks.md shows them.
fn main() -> anyhow::Result<()> {
    let cli = <Cli as clap::Parser>::parse();
    let quick = cli.quick;
    match cli.only {
        Some(Only::Postgres { url }) => return postgres_table(&url, quick),
        Some(Only::BigPlan {
            actions,
            plans,
            database,
        }) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let (mut create, mut cancels) =
                rt.block_on(big_plan_creation(actions, plans, database.as_deref()))?;
            println!(
                "create a plan of {actions} actions: p50 {}, max {} ({} plans)",
                ms(pct(&mut create, 0.5)),
                ms(pct(&mut create, 1.0)),
                create.len()
            );
            println!(
                "cancel committed by another process meanwhile: p50 {}, p99 {}, max {} ({} cancels)",
                ms(pct(&mut cancels, 0.5)),
                ms(pct(&mut cancels, 0.99)),
                ms(pct(&mut cancels, 1.0)),
                cancels.len()
            );
            return Ok(());
        }
        Some(Only::CrossProcess) => {
            let mut c = cross_process_cancel(if quick { 10 } else { 100 }, None)?;
            println!(
                "cancel (c), split processes, PATCH response -> abort at the cloud: p50 {}, p99 {} ({} runs)",
                ms(pct(&mut c, 0.5)),
                ms(pct(&mut c, 0.99)),
                c.len()
            );
            return Ok(());
        }
        Some(Only::IdleFlood {
            connections,
            requests,
        }) => {
            let mut lat = idle_flood(connections, requests)?;
            println!(
                "GET /v1/goals with {connections} idle or half-sent connections held, ulimit -n 1024: p50 {}, p99 {}, max {} ({} requests)",
                ms(pct(&mut lat, 0.5)),
                ms(pct(&mut lat, 0.99)),
                ms(pct(&mut lat, 1.0)),
                lat.len()
            );
            return Ok(());
        }
        Some(Only::ManyAppliers {
            database,
            appliers,
            plans,
            actions,
        }) => {
            let (rate, mut cancels) = many_appliers(&database, appliers, plans, actions)?;
            println!(
                "| {appliers} appliers, {plans} plans of {actions} nops started at once | {rate:.0} actions/s | >= 1000 actions/s |"
            );
            println!(
                "| cancel meanwhile, PATCH response -> abort at the cloud ({} runs) | p50 {}, p99 {}, max {} | p99 < 10 ms |",
                cancels.len(),
                ms(pct(&mut cancels, 0.5)),
                ms(pct(&mut cancels, 0.99)),
                ms(pct(&mut cancels, 1.0))
            );
            return Ok(());
        }
        Some(Only::InFlight { connections }) => {
            let (idle, peak, mut lat) = requests_in_flight(connections)?;
            println!(
                "| {connections} requests for 1,000 actions' details in flight, never read, ulimit -n 1024 | RSS {:.1} MiB idle, {:.1} MiB at most; GET /v1/goals meanwhile p50 {}, p99 {} | memory bounded; normal requests answered |",
                idle as f64 / 1024.0,
                peak as f64 / 1024.0,
                ms(pct(&mut lat, 0.5)),
                ms(pct(&mut lat, 0.99))
            );
            return Ok(());
        }
        Some(Only::Failover { database, runs }) => {
            let mut t = failover(&database, runs)?;
            println!(
                "| applier killed with -9 mid-migration, cancel right after: kill -> CANCELLED ({} runs) | p50 {}, max {} | detected within 2 s; settles as on a live applier plus the abort |",
                t.len(),
                ms(pct(&mut t, 0.5)),
                ms(pct(&mut t, 1.0))
            );
            return Ok(());
        }
        Some(Only::Memory { plans, actions }) => {
            let (idle, peak, after) = memory_after_big_plans(plans, actions)?;
            let mib = |k: u64| k as f64 / 1024.0;
            println!(
                "| RSS: idle / peak while {plans} plans of {actions} nops run / 10 s after | {:.1} / {:.1} / {:.1} MiB ({:.2}x idle after) | after <= 2x idle |",
                mib(idle),
                mib(peak),
                mib(after),
                after as f64 / idle.max(1) as f64
            );
            return Ok(());
        }
        Some(Only::Dashboard { plans, actions }) => {
            for (what, mut lat) in dashboard_pages(plans, actions)? {
                println!(
                    "| {what}, {plans} plans of {actions} actions stored | p50 {}, p99 {} | < 100 ms |",
                    ms(pct(&mut lat, 0.5)),
                    ms(pct(&mut lat, 0.99))
                );
            }
            return Ok(());
        }
        Some(Only::IdleCost {
            plans,
            history,
            seconds,
        }) => {
            let c = idle_cost(plans, history, seconds)?;
            println!(
                "| idle watcherd with {} RECOMMENDED plans ({} history rows) | CPU {:.2}% of a core over {seconds} s, RSS {:.1} MiB | CPU < 1%, RSS < 100 MB |",
                c.plans,
                c.history,
                c.cpu_percent,
                c.rss_kib as f64 / 1024.0
            );
            for (what, p50, p99) in c.lists {
                println!(
                    "| {what} | p50 {}, p99 {} | p99 < 20 ms |",
                    ms(p50),
                    ms(p99)
                );
            }
            for (what, mut big, mut empty) in [
                (
                    "POST start -> first action ONGOING",
                    c.start_cancel.start,
                    c.start_cancel_empty.start,
                ),
                (
                    "PATCH CANCELLING -> plan CANCELLED",
                    c.start_cancel.cancel,
                    c.start_cancel_empty.cancel,
                ),
            ] {
                println!(
                    "| {what} (20 runs) | p50 {}, max {} (empty database: p50 {}, max {}) | as on an empty database |",
                    ms(pct(&mut big, 0.5)),
                    ms(pct(&mut big, 1.0)),
                    ms(pct(&mut empty, 0.5)),
                    ms(pct(&mut empty, 1.0))
                );
            }
            return Ok(());
        }
        Some(Only::WalBurst { audits }) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let (took, max, after) = rt.block_on(wal_burst(audits))?;
            println!(
                "WAL under a burst of {audits} audits in {:.1} s (4 readers listing): largest {:.1} MiB, {:.1} MiB once writes paused",
                took.as_secs_f64(),
                max as f64 / 1048576.0,
                after as f64 / 1048576.0
            );
            return Ok(());
        }
        Some(Only::SlowPoll { poll_delay, runs }) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let mut d = rt.block_on(abort_during_slow_poll(runs, poll_delay))?;
            println!(
                "cancel (d), live migration, status polls taking {poll_delay} s, PATCH response -> abort at the cloud: p50 {}, max {} ({} runs)",
                ms(pct(&mut d, 0.5)),
                ms(pct(&mut d, 1.0)),
                d.len()
            );
            return Ok(());
        }
        Some(Only::Throughput { actions, chain }) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let (rate, history) = rt.block_on(throughput(actions, chain, None))?;
            println!(
                "applier: {actions} nops, {}: {rate:.0} actions/s ({history} history rows)",
                if chain {
                    "one sequential chain"
                } else {
                    "512 at once"
                }
            );
            return Ok(());
        }
        Some(Only::Strategies) => {
            let sizes: &[usize] = if quick {
                &[100, 1000]
            } else {
                &[100, 500, 1000, 2000, 5000]
            };
            print_strategy_rows(&strategy_rows(sizes)?);
            return Ok(());
        }
        None => {}
    }
    let mut opts = if quick {
        Opts {
            actions: 1_000,
            pending: 1_000,
            runs: 20,
            requests: 400,
        }
    } else {
        Opts {
            actions: 10_000,
            pending: 1_000,
            runs: 200,
            requests: 4_000,
        }
    };
    if let Some(n) = cli.pending {
        opts.pending = n;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "watcher-bench{} on {} cores",
        if quick { " --quick" } else { "" },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    let (seq, seq_hist) = rt.block_on(throughput(opts.actions, true, None))?;
    let (par, par_hist) = rt.block_on(throughput(opts.actions, false, None))?;
    let mut lat = rt.block_on(cancel_latency(&opts))?;
    let (rss, rate, g50, g99) = process_figures(&opts)?;
    let mut cross = cross_process_cancel(if quick { 10 } else { 100 }, None)?;
    const SLOW_POLL: f64 = 5.0;
    let mut slow = rt.block_on(abort_during_slow_poll(
        if quick { 2 } else { 10 },
        SLOW_POLL,
    ))?;

    let n = opts.actions;
    let rows: Vec<(String, String, &str)> = vec![
        (
            format!("applier: {n} nops, one sequential chain"),
            format!("{seq:.0} actions/s ({seq_hist} history rows)"),
            ">= 5,000 actions/s",
        ),
        (
            format!("applier: {n} nops, no parents (512 at once)"),
            format!("{par:.0} actions/s ({par_hist} history rows)"),
            ">= 20,000 actions/s",
        ),
        (
            format!(
                "cancel (a): 1 sleep + {} PENDING, PATCH response -> CANCELLED, p50 ({} runs)",
                opts.pending,
                lat.response_to_cancelled.len()
            ),
            ms(pct(&mut lat.response_to_cancelled, 0.5)),
            "",
        ),
        (
            "cancel (a): PATCH response -> CANCELLED, p99".into(),
            ms(pct(&mut lat.response_to_cancelled, 0.99)),
            "p99 < 10 ms",
        ),
        (
            "cancel (a): PATCH sent -> CANCELLED, p99".into(),
            ms(pct(&mut lat.sent_to_cancelled, 0.99)),
            "",
        ),
        (
            format!(
                "cancel (b): live migration, PATCH response -> abort at the cloud, p50 ({} runs)",
                lat.response_to_abort.len()
            ),
            ms(pct(&mut lat.response_to_abort, 0.5)),
            "",
        ),
        (
            "cancel (b): PATCH response -> abort at the cloud, p99".into(),
            ms(pct(&mut lat.response_to_abort, 0.99)),
            "p99 < 10 ms",
        ),
        (
            "cancel (b): PATCH sent -> abort at the cloud, p99".into(),
            ms(pct(&mut lat.sent_to_abort, 0.99)),
            "",
        ),
        (
            format!(
                "cancel (c): split processes (api, applier, sim-cloud), PATCH response -> abort at the cloud, p50 ({} runs)",
                cross.len()
            ),
            ms(pct(&mut cross, 0.5)),
            "",
        ),
        (
            "cancel (c): split processes, PATCH response -> abort at the cloud, p99".into(),
            ms(pct(&mut cross, 0.99)),
            "p99 < 100 ms",
        ),
        (
            format!(
                "cancel (d): live migration, status polls taking {SLOW_POLL:.0} s, PATCH response -> abort at the cloud, p50 ({} runs)",
                slow.len()
            ),
            ms(pct(&mut slow, 0.5)),
            "",
        ),
        (
            "cancel (d): same, max".into(),
            ms(pct(&mut slow, 1.0)),
            "< 10 ms",
        ),
        (
            "watcherd idle RSS (embedded: API + decision engine + applier)".into(),
            format!("{:.1} MiB", rss as f64 / 1024.0),
            "",
        ),
        (
            format!(
                "GET /v1/action_plans/{{uuid}}, 2 client threads, {} requests",
                opts.requests
            ),
            format!("{rate:.0} req/s, p50 {}, p99 {}", ms(g50), ms(g99)),
            "",
        ),
    ];
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    println!("| {:w0$} | {:w1$} | target |", "measure", "result");
    println!("|{}|{}|--------|", "-".repeat(w0 + 2), "-".repeat(w1 + 2));
    for (m, r, t) in rows {
        println!("| {m:w0$} | {r:w1$} | {t} |");
    }
    let sizes: &[usize] = if quick {
        &[100, 1000]
    } else {
        &[100, 500, 1000, 2000, 5000]
    };
    print_strategy_rows(&strategy_rows(sizes)?);
    Ok(())
}
