//! In-process cancel latency: (a) PENDING actions behind a sleep, (b) a
//! live migration aborted at the cloud, (d) an abort while a status poll is slow.

use crate::fixtures::{make_plan, nops, temp_dir, Opts};
use crate::processes::http;
use crate::report::{ms, pct, runtime};
use anyhow::{bail, Context};
use async_trait::async_trait;
use serde_json::json;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;
use watcher_cloud::scenario::Scenario;
use watcher_cloud::simulated::SimulatedCloud;
use watcher_cloud::*;
use watcher_core::*;
use watcher_store::*;
use watcherd::config::Config;
use watcherd::service::{Service, ServiceOptions};

/// Wraps a cloud and records when abort requests reach it.
pub(crate) struct RecordingCloud {
    pub(crate) inner: SimulatedCloud,
    pub(crate) aborts: Mutex<Vec<Instant>>,
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
    async fn set_instance_power(&self, i: &str, on: bool) -> Result<(), CloudError> {
        self.inner.set_instance_power(i, on).await
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

/// Waits (in the runtime) for a committed state change matching `pred`, and
/// returns when it was seen.
pub(crate) async fn wait_event(
    rx: &mut tokio::sync::broadcast::Receiver<StoreEvent>,
    pred: impl Fn(&StoreEvent) -> bool,
) -> Instant {
    wait_event_within(rx, Duration::from_secs(30), pred).await
}

/// [`wait_event`] with its own patience.
pub(crate) async fn wait_event_within(
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

pub(crate) struct Latencies {
    pub(crate) response_to_cancelled: Vec<Duration>,
    pub(crate) sent_to_cancelled: Vec<Duration>,
    pub(crate) response_to_abort: Vec<Duration>,
    pub(crate) sent_to_abort: Vec<Duration>,
}

/// (a) 1,000 PENDING nops behind a running sleep; (b) a running live migration.
// Long because it is one scenario end to end: cancel cases (a) and (b), timed the same way.
/// watcherd in this process (API and applier) over a recording simulated
/// cloud of `scenario`, with its data in `dir`; and its URL.
pub(crate) async fn recording_service(
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
pub(crate) fn live_migration() -> NewAction {
    NewAction {
        uuid: Uuid::new_v4(),
        action_type: "migrate".into(),
        input_parameters: json!({"migration_type": "live", "resource_id": "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001",
               "source_node": "compute-1", "destination_node": "compute-2"}),
        parents: vec![],
    }
}

/// Starts `plan` through the API and returns once `first` is ONGOING.
pub(crate) async fn start_until_running(
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
pub(crate) async fn patch_cancelling(url: &str, plan: Uuid) -> anyhow::Result<(Instant, Instant)> {
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
pub(crate) async fn abort_during_slow_poll(
    runs: usize,
    poll_delay: f64,
) -> anyhow::Result<Vec<Duration>> {
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

pub(crate) async fn cancel_latency(opts: &Opts) -> anyhow::Result<Latencies> {
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

/// `watcher-bench slow-poll`.
pub fn print_slow_poll(runs: usize, poll_delay: f64) -> anyhow::Result<()> {
    let mut d = runtime()?.block_on(abort_during_slow_poll(runs, poll_delay))?;
    println!(
        "cancel (d), live migration, status polls taking {poll_delay} s, PATCH response -> abort at the cloud: p50 {}, max {} ({} runs)",
        ms(pct(&mut d, 0.5)),
        ms(pct(&mut d, 1.0)),
        d.len()
    );
    Ok(())
}
