//! The decision engine: runs audits, turns a strategy's solution into an
//! action plan with the weight planner, and expires old recommendations.

pub mod balancing;
pub mod consolidation;
mod dummy;
pub mod energy;
mod goals;
mod host_maintenance;
pub mod metrics;
pub mod model;
pub mod noisy_neighbor;
mod parameters;
pub mod placement;
pub mod planner;
pub mod scope;
pub mod scoring;
pub mod solution;
pub mod storage;
pub mod strategies;
pub mod thermal;
pub mod zone_migration;

use chrono::{DateTime, Utc};
use model::ClusterModel;
use scope::{ComputeScope, StorageScope};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;
use watcher_cloud::Cloud;
use watcher_core::backoff::Backoff;
use watcher_core::schedule::Schedule;
use watcher_core::StateChange;
use watcher_core::{ActionPlanState, Actor, Audit, AuditState, AuditType};
use watcher_store::{Heartbeat, NewPlan, PlanUpdate, Store, StoreError, StoreEvent};

/// Where strategies read their metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Datasource {
    /// Derived from the simulated cloud's scenario (or from instance UUIDs
    /// on other clouds).
    #[default]
    Simulated,
    /// Prometheus, at `prometheus_url`.
    Prometheus,
}

/// The decision engine's settings (`[decision_engine]` of watcherd's configuration).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DecisionConfig {
    pub action_plan_expiry_hours: f64,
    pub sweep_interval_secs: f64,
    pub planner: planner::WeightPlanner,
    /// Where strategies' metrics come from.
    pub datasource: Datasource,
    /// Prometheus's address, e.g. `http://prometheus:9090` (with `datasource = "prometheus"`).
    pub prometheus_url: String,
    /// TLS towards an `https://` Prometheus: `cafile`, `certfile`,
    /// `keyfile`, `insecure`.
    pub prometheus_tls: watcher_tls::TlsOptions,
    /// How long one query may take, connection included; a Prometheus that
    /// does not answer in time fails the audit with that reason.
    pub prometheus_timeout_secs: f64,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        DecisionConfig {
            action_plan_expiry_hours: 24.0,
            sweep_interval_secs: 5.0,
            planner: planner::WeightPlanner::default(),
            datasource: Datasource::Simulated,
            prometheus_url: String::new(),
            prometheus_tls: Default::default(),
            prometheus_timeout_secs: 30.0,
        }
    }
}

/// Registers the goals and strategies this build knows.
pub async fn sync_catalogue(store: &Store) -> Result<(), StoreError> {
    for g in goals::GOALS {
        store
            .upsert_goal(g.name, g.display_name, (g.efficacy_specification)())
            .await?;
    }
    for s in strategies::STRATEGIES {
        store
            .upsert_strategy(s.name, s.display_name, s.goal, (s.parameters_spec)())
            .await?;
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct DecisionSettings {
    pub host: String,
    /// RECOMMENDED plans older than this become SUPERSEDED (0 disables).
    pub action_plan_expiry: Duration,
    pub sweep_interval: Duration,
    pub planner: planner::WeightPlanner,
}

impl DecisionConfig {
    /// The settings of a decision engine named `host`.
    pub fn settings(&self, host: &str) -> DecisionSettings {
        let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
        DecisionSettings {
            host: host.to_string(),
            action_plan_expiry: secs(self.action_plan_expiry_hours * 3600.0),
            sweep_interval: secs(self.sweep_interval_secs),
            planner: self.planner.clone(),
        }
    }
}

#[derive(Clone)]
pub struct DecisionEngine {
    store: Store,
    cloud: Arc<dyn Cloud>,
    metrics: Arc<dyn metrics::MetricsSource>,
    settings: DecisionSettings,
    shutdown: CancellationToken,
    /// Failures to read the database: the sweep backs off, and the same
    /// error is logged once a minute.
    failures: Arc<std::sync::Mutex<Backoff>>,
}

/// The clock backoffs read: tokio's, so tests can pause it.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl DecisionEngine {
    pub fn new(
        store: Store,
        cloud: Arc<dyn Cloud>,
        metrics: Arc<dyn metrics::MetricsSource>,
        settings: DecisionSettings,
        shutdown: CancellationToken,
    ) -> Self {
        DecisionEngine {
            store,
            cloud,
            metrics,
            settings,
            shutdown,
            failures: Arc::new(std::sync::Mutex::new(Backoff::new(
                Duration::from_secs(1),
                Duration::from_secs(30),
            ))),
        }
    }

    /// Records the outcome of a read the loops depend on; the value when it
    /// worked.
    fn note<T>(&self, what: &str, result: Result<T, StoreError>) -> Option<T> {
        let mut failures = self.failures.lock().expect("failures lock");
        match result {
            Ok(v) => {
                if let Some(n) = failures.succeeded() {
                    info!(failures = n, "the decision engine reads the database again");
                }
                Some(v)
            }
            Err(e) => {
                let r = failures.failed(&e.to_string(), now());
                if let Some(held_back) = r.log {
                    warn!(error = %e, failures = r.failures, not_logged = held_back, retry_in = ?r.wait, "could not read {what}; retrying with backoff");
                }
                None
            }
        }
    }

    pub async fn run(self) {
        let mut events = self.store.subscribe();
        let mut heartbeat = Heartbeat::new(
            self.store.clone(),
            "watcher-decision-engine",
            self.settings.host.clone(),
        );
        heartbeat.beat().await;
        self.recover_interrupted_audits().await;
        let mut sweep = tokio::time::interval(self.settings.sweep_interval);
        // When the next CONTINUOUS audit is due; the sweep catches anything
        // this misses (a clock step, a failed write).
        let mut due: Option<DateTime<Utc>> = None;
        loop {
            let wake = async {
                match due {
                    Some(t) => {
                        let wait = (t - Utc::now()).to_std().unwrap_or_default();
                        tokio::time::sleep(wait).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(StoreEvent::AuditState { uuid, state }) => match state {
                        AuditState::Pending | AuditState::Succeeded => {
                            self.run_audit(uuid).await;
                            due = self.run_continuous().await;
                        }
                        AuditState::Ongoing => due = self.run_continuous().await,
                        _ => {}
                    },
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => due = self.sweep().await,
                    Err(RecvError::Closed) => break,
                },
                _ = sweep.tick() => {
                    heartbeat.beat().await;
                    due = self.sweep().await;
                }
                _ = wake => due = self.run_continuous().await,
                _ = self.shutdown.cancelled() => break,
            }
        }
        info!("decision engine stopped");
    }

    /// A ONESHOT or EVENT audit this engine was computing when it stopped
    /// has no plan (a plan and its audit's SUCCEEDED are one transaction):
    /// it is marked FAILED with the reason, so that it is never left ONGOING.
    /// CONTINUOUS audits simply go on at their next run.
    async fn recover_interrupted_audits(&self) {
        let Ok(audits) = self.store.audits_in_state(AuditState::Ongoing).await else {
            return;
        };
        for a in audits.into_iter().filter(|a| {
            a.audit_type != AuditType::Continuous
                && a.hostname.as_deref() == Some(self.settings.host.as_str())
        }) {
            let _ = self
                .store
                .transition_audit(
                    a.uuid,
                    StateChange::new(
                        AuditState::Ongoing,
                        AuditState::Failed,
                        Actor::Recovery,
                        "the decision engine stopped during the audit",
                    ),
                    Some(
                        "The decision engine stopped while computing this audit; create it again."
                            .into(),
                    ),
                    None,
                )
                .await;
        }
    }

    /// Runs every CONTINUOUS audit that is due and returns when the next
    /// one is.
    async fn run_continuous(&self) -> Option<DateTime<Utc>> {
        let audits = self.note(
            "continuous audits",
            self.store
                .continuous_audits(self.settings.host.clone())
                .await,
        )?;
        let mut next: Option<DateTime<Utc>> = None;
        for audit in audits {
            if let Some(t) = self.continuous_step(audit).await {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        next
    }

    /// One look at a CONTINUOUS audit: finish it after its end time, plan its
    /// first run, or run it when due. Returns when to look again.
    // Long because the three cases of a CONTINUOUS audit (past its end, first run, due)
    // each write their own transition.
    async fn continuous_step(&self, audit: Audit) -> Option<DateTime<Utc>> {
        let now = Utc::now();
        let host = self.settings.host.clone();
        if audit.end_time.is_some_and(|end| end <= now) {
            self.finish_continuous(&audit).await;
            return None;
        }
        let schedule = match audit.interval.as_deref().map(str::parse::<Schedule>) {
            Some(Ok(s)) => s,
            // Only an old database could hold one: the API checks intervals.
            _ => {
                self.fail_continuous(&audit, format!("invalid interval {:?}", audit.interval))
                    .await;
                return None;
            }
        };
        let not_before = audit.start_time.filter(|t| *t > now);
        let planned = match audit.next_run_time {
            Some(t) => t,
            None => {
                // The first run: at once for a number of seconds, at the next
                // matching minute for cron (as upstream), never before start_time.
                let first = match (&schedule, not_before) {
                    (Schedule::Every(_), Some(start)) => start,
                    (Schedule::Every(_), None) => now,
                    (Schedule::Cron(c), start) => c.next_after(start.unwrap_or(now)),
                };
                if first > now {
                    let _ = self
                        .store
                        .schedule_audit(audit.uuid, audit.state, first, host, None)
                        .await;
                    return Some(bounded(first, audit.end_time));
                }
                first
            }
        };
        if planned > now {
            return Some(bounded(planned, audit.end_time));
        }
        let next = schedule.next_after(Some(planned), now);
        if audit.state == AuditState::Pending {
            let started = self
                .store
                .transition_audit(
                    audit.uuid,
                    StateChange::new(
                        AuditState::Pending,
                        AuditState::Ongoing,
                        Actor::DecisionEngine,
                        "continuous audit started",
                    ),
                    None,
                    Some(host.clone()),
                )
                .await;
            if started.is_err() {
                return None; // cancelled meanwhile
            }
        }
        if !audit.force {
            if let Ok(busy) = self
                .store
                .plans_in_states(&[ActionPlanState::Ongoing])
                .await
            {
                if let Some(p) = busy.first() {
                    // Upstream skips the run too; we say so on the audit.
                    let why = format!(
                        "Run of {} skipped: action plan {} is ONGOING; next run at {}.",
                        planned.format("%Y-%m-%dT%H:%M:%SZ"),
                        p.uuid,
                        next.format("%Y-%m-%dT%H:%M:%SZ")
                    );
                    let _ = self
                        .store
                        .schedule_audit(audit.uuid, AuditState::Ongoing, next, host, Some(why))
                        .await;
                    return Some(bounded(next, audit.end_time));
                }
            }
        }
        match self.plan_audit(&audit, Some(next)).await {
            Ok(()) => Some(bounded(next, audit.end_time)),
            Err(message) => {
                self.fail_continuous(&audit, message).await;
                None
            }
        }
    }

    async fn finish_continuous(&self, audit: &Audit) {
        let host = Some(self.settings.host.clone());
        if audit.state == AuditState::Pending
            && self
                .store
                .transition_audit(
                    audit.uuid,
                    StateChange::new(
                        AuditState::Pending,
                        AuditState::Ongoing,
                        Actor::DecisionEngine,
                        "continuous audit started",
                    ),
                    None,
                    host.clone(),
                )
                .await
                .is_err()
        {
            return;
        }
        let _ = self
            .store
            .transition_audit(
                audit.uuid,
                StateChange::new(
                    AuditState::Ongoing,
                    AuditState::Succeeded,
                    Actor::DecisionEngine,
                    "end_time passed",
                ),
                None,
                host,
            )
            .await;
    }

    async fn fail_continuous(&self, audit: &Audit, message: String) {
        warn!(audit = %audit.uuid, error = %message, "continuous audit failed");
        let from = audit.state;
        if from == AuditState::Pending {
            let _ = self
                .store
                .transition_audit(
                    audit.uuid,
                    StateChange::new(
                        from,
                        AuditState::Ongoing,
                        Actor::DecisionEngine,
                        "continuous audit started",
                    ),
                    None,
                    Some(self.settings.host.clone()),
                )
                .await;
        }
        let _ = self
            .store
            .transition_audit(
                audit.uuid,
                StateChange::new(
                    AuditState::Ongoing,
                    AuditState::Failed,
                    Actor::DecisionEngine,
                    "strategy failed",
                ),
                Some(message),
                None,
            )
            .await;
    }

    /// Runs what the database says is waiting. After failures to read it,
    /// sweeps wait (1 s doubling to 30 s) instead of hammering it.
    async fn sweep(&self) -> Option<DateTime<Utc>> {
        if !self.failures.lock().expect("failures lock").ready(now()) {
            return None;
        }
        let pending = self.note(
            "pending audits",
            self.store.audits_in_state(AuditState::Pending).await,
        )?;
        for a in pending
            .into_iter()
            .filter(|a| a.audit_type == AuditType::Oneshot)
        {
            self.run_audit(a.uuid).await;
        }
        let triggered = self.note("triggered audits", self.store.triggered_audits().await)?;
        for a in triggered {
            self.run_audit(a.uuid).await;
        }
        self.expire_recommendations().await;
        self.run_continuous().await
    }

    async fn expire_recommendations(&self) {
        if self.settings.action_plan_expiry.is_zero() {
            return;
        }
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(self.settings.action_plan_expiry)
                .unwrap_or(chrono::Duration::MAX);
        // By index, a bounded batch a sweep: idle cost does not grow with
        // the recommendations kept, and a backlog drains sweep by sweep.
        let Some(expired) = self.note(
            "recommendations to expire",
            self.store.recommended_before(cutoff, 500).await,
        ) else {
            return;
        };
        for uuid in expired {
            let _ = self
                .store
                .transition_plan(
                    uuid,
                    StateChange::new(
                        ActionPlanState::Recommended,
                        ActionPlanState::Superseded,
                        Actor::DecisionEngine,
                        "expired (action_plan_expiry)",
                    ),
                    PlanUpdate::default(),
                )
                .await;
        }
    }

    /// Runs one ONESHOT audit: PENDING -> ONGOING -> (plan created, SUCCEEDED) | FAILED | CANCELLED.
    // Long because one ONESHOT audit's whole path (claim, model, strategy, planner, plan)
    // with the outcome of each step written as it happens.
    async fn run_audit(&self, uuid: Uuid) {
        // A ONESHOT audit runs once, when created; an EVENT audit each time
        // its webhook fires (PENDING the first time, SUCCEEDED after).
        let audit = match self.store.get_audit(&uuid.to_string(), false).await {
            Ok(a) if a.state == AuditState::Pending && a.audit_type == AuditType::Oneshot => a,
            Ok(a)
                if a.audit_type == AuditType::Event
                    && a.triggered
                    && matches!(a.state, AuditState::Pending | AuditState::Succeeded) =>
            {
                a
            }
            Ok(_) => return,
            Err(e) => return warn!(audit = %uuid, error = %e, "could not read audit"),
        };
        if !audit.force {
            let busy = self
                .store
                .plans_in_states(&[ActionPlanState::Ongoing])
                .await
                .map(|p| !p.is_empty())
                .unwrap_or(false);
            // An EVENT audit keeps its trigger and runs once the plan is
            // done (the sweep retries it); upstream drops the event.
            if busy && audit.audit_type == AuditType::Event {
                return;
            }
            if busy {
                let _ = self
                    .store
                    .transition_audit(
                        uuid,
                        StateChange::new(
                            AuditState::Pending,
                            AuditState::Cancelled,
                            Actor::DecisionEngine,
                            "an action plan is ONGOING",
                        ),
                        Some(
                            "Cancelled: another action plan is ONGOING; use force to run anyway."
                                .into(),
                        ),
                        None,
                    )
                    .await;
                return;
            }
        }
        match self
            .store
            .transition_audit(
                uuid,
                StateChange::new(
                    audit.state,
                    AuditState::Ongoing,
                    Actor::DecisionEngine,
                    if audit.triggered {
                        "audit triggered by its webhook"
                    } else {
                        "audit started"
                    },
                ),
                None,
                Some(self.settings.host.clone()),
            )
            .await
        {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => return, // cancelled or taken meanwhile
            Err(e) => return warn!(audit = %uuid, error = %e, "could not start audit"),
        }
        if let Err(message) = self.plan_audit(&audit, None).await {
            warn!(audit = %uuid, error = %message, "audit failed");
            let _ = self
                .store
                .transition_audit(
                    uuid,
                    StateChange::new(
                        AuditState::Ongoing,
                        AuditState::Failed,
                        Actor::DecisionEngine,
                        "strategy failed",
                    ),
                    Some(message),
                    None,
                )
                .await;
        }
    }

    /// Computes the audit's solution and stores it as a plan, unless the
    /// audit is cancelled meanwhile: then reading the cloud, collecting
    /// metrics or waiting for the strategy stops at once (the plan could
    /// not be stored anyway: it is written only while the audit is ONGOING).
    async fn plan_audit(
        &self,
        audit: &Audit,
        next_run_time: Option<DateTime<Utc>>,
    ) -> Result<(), String> {
        // Subscribed before the work starts, so no cancel is missed.
        let mut events = self.store.subscribe();
        tokio::select! {
            done = self.compute_plan(audit, next_run_time) => done,
            _ = self.audit_cancelled(&mut events, audit.uuid) => {
                info!(audit = %audit.uuid, "audit cancelled; its computation stopped");
                Ok(())
            }
            _ = self.shutdown.cancelled() => {
                // Left ONGOING: recovery marks it FAILED with the reason at the next start.
                Ok(())
            }
        }
    }

    /// Returns once the audit is CANCELLED in the database.
    async fn audit_cancelled(&self, events: &mut broadcast::Receiver<StoreEvent>, uuid: Uuid) {
        loop {
            match events.recv().await {
                Ok(StoreEvent::AuditState {
                    uuid: u,
                    state: AuditState::Cancelled,
                }) if u == uuid => return,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    let state = self.store.get_audit(&uuid.to_string(), false).await;
                    if state.is_ok_and(|a| a.state == AuditState::Cancelled) {
                        return;
                    }
                }
                Err(RecvError::Closed) => return std::future::pending().await,
            }
        }
    }

    /// Reads the cloud, runs the strategy and stores its plan; `next_run_time`
    /// is set for a CONTINUOUS audit, whose run this is.
    async fn compute_plan(
        &self,
        audit: &Audit,
        next_run_time: Option<DateTime<Utc>>,
    ) -> Result<(), String> {
        let strategy = match &audit.strategy_name {
            Some(s) => strategies::STRATEGIES.iter().find(|d| d.name == s.as_str()),
            None => strategies::STRATEGIES
                .iter()
                .find(|s| s.goal == audit.goal_name),
        }
        .ok_or_else(|| {
            format!(
                "no strategy {} for goal {}",
                audit.strategy_name.as_deref().unwrap_or("achieves"),
                audit.goal_name
            )
        })?;
        let strategy_name = strategy.name.to_string();
        let model = ClusterModel::from_cloud(self.cloud.as_ref())
            .await
            .map_err(|e| format!("the cloud could not be read: {e}"))?;
        let scope = ComputeScope::resolve(&audit.scope, &model.nodes)
            .map_err(|e| format!("invalid audit scope: {e}"))?;
        let storage = StorageScope::resolve(&audit.scope, &model.pools)
            .map_err(|e| format!("invalid audit scope: {e}"))?;
        let model = model.scoped(&scope).storage_scoped(&storage);
        let values = if strategy.metrics.is_empty() {
            metrics::MetricValues::new(self.metrics.kind())
        } else {
            // workload_stabilization names its window `periods.instance`
            // (upstream also has one for hosts; one window serves both here).
            let p = &audit.parameters;
            let period = p
                .get("period")
                .or_else(|| p.pointer("/periods/instance"))
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(300.0)
                .max(1.0);
            self.metrics
                .collect(&model, strategy.metrics, Duration::from_secs_f64(period))
                .await
                .map_err(|e| e.to_string())?
        };
        // Strategies are pure computation, up to a second on large clouds:
        // off the async workers.
        let (name, params) = (strategy_name.clone(), audit.parameters.clone());
        let solution = tokio::task::spawn_blocking(move || {
            strategies::execute(&name, &params, &model, &values)
        })
        .await
        .map_err(|e| format!("the strategy stopped: {e}"))?
        .map_err(|e| e.to_string())?;
        let actions = self
            .settings
            .planner
            .schedule_with(strategy.planner, solution.actions);
        let plan = self
            .store
            .create_plan(NewPlan {
                uuid: Uuid::new_v4(),
                audit_uuid: audit.uuid,
                strategy_name,
                actions,
                efficacy_indicators: solution.efficacy_indicators,
                global_efficacy: solution.global_efficacy,
                hostname: self.settings.host.clone(),
                next_run_time,
            })
            .await
            .map_err(|e| e.to_string())?;
        info!(audit = %audit.uuid, plan = %plan.uuid, "action plan recommended");
        Ok(())
    }
}

/// When to look at an audit again: its next run, or its end if sooner.
fn bounded(next: DateTime<Utc>, end: Option<DateTime<Utc>>) -> DateTime<Utc> {
    end.map_or(next, |e| e.min(next))
}
