//! The applier: claims plans, runs them, cancels them, and resumes them
//! after a restart.
//!
//! The store is the truth; its events only wake the applier up. On a
//! PENDING event it tries to claim the plan (a compare-and-set PENDING ->
//! ONGOING); on a CANCELLING event it re-reads the plan and fires that plan's
//! cancellation token. A slow sweep does the same from the database alone,
//! so a lost event delays nothing by more than one sweep.

pub mod actions;
mod runner;
mod settings;

pub use settings::{ApplierConfig, ApplierSettings, Limits};

use actions::ActionRegistry;
use runner::{Pause, RunContext, RunEnd};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};
use uuid::Uuid;
use watcher_cloud::Cloud;
use watcher_core::backoff::Backoff;
use watcher_core::StateChange;
use watcher_core::{ActionPlan, ActionPlanState, Actor};
use watcher_store::{Heartbeat, PlanUpdate, Store, StoreError, StoreEvent, Takeover};

struct Runs {
    cancel: CancellationToken,
    /// Whether the plan is PAUSED (the run starts nothing while it is).
    pause: tokio::sync::watch::Sender<Pause>,
    /// Fired when the plan is no longer this applier's to run
    /// ([`Applier::fence_lapsed_leases`]).
    fence: CancellationToken,
    /// Until when the database holds the plan leased to this applier, as
    /// far as this applier knows: the last claim or renewal that committed,
    /// counted from before it was sent.
    leased_until: std::time::Instant,
}

/// The applier service.
#[derive(Clone)]
pub struct Applier {
    inner: Arc<Inner>,
}

/// Returns the memory freed by finished runs to the system. A plan of
/// 10,000 actions leaves most of its peak in the allocator's free lists
/// (tokio's worker threads each have an arena) and in SQLite's page
/// caches; at the first sweep tick with nothing running, it is handed back,
/// off the async threads (once per idle spell, not per plan).
async fn give_memory_back(store: Store) {
    store.release_memory().await;
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    let _ = tokio::task::spawn_blocking(|| {
        // SAFETY: malloc_trim only walks glibc's own arenas under their locks.
        unsafe { libc::malloc_trim(0) }
    })
    .await;
}

/// The clock backoffs read: tokio's, so tests can pause it.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Whether a background job under `backoff` may run now.
fn ready(backoff: &Mutex<Backoff>) -> bool {
    backoff.lock().expect("backoff lock").ready(now())
}

/// Records how a background job under `backoff` went: a failure is
/// logged as its backoff allows, a recovery once.
fn settle(backoff: &Mutex<Backoff>, job: &str, result: Result<(), StoreError>) {
    let mut backoff = backoff.lock().expect("backoff lock");
    match result {
        Ok(()) => {
            if let Some(n) = backoff.succeeded() {
                info!(failures = n, "{job} works again");
            }
        }
        Err(e) => {
            let r = backoff.failed(&e.to_string(), now());
            if let Some(held_back) = r.log {
                warn!(error = %e, failures = r.failures, not_logged = held_back, retry_in = ?r.wait, "{job} failed; retrying with backoff");
            }
        }
    }
}

struct Inner {
    store: Store,
    runner: RunContext,
    settings: ApplierSettings,
    running: Mutex<HashMap<Uuid, Runs>>,
    /// Plans whose last run failed (the database refusing writes, say):
    /// without it a failing run would be resumed at once, for ever.
    failing: Mutex<HashMap<Uuid, Backoff>>,
    /// The sweep's own failures (it cannot read the database).
    sweeps: Mutex<Backoff>,
    /// Failures to look for appliers that are gone (PostgreSQL).
    presence_looks: Mutex<Backoff>,
    /// Set when the last running plan ends: the next sweep tick, if still
    /// idle, hands the memory of the runs back ([`give_memory_back`]).
    memory_to_give_back: AtomicBool,
    /// A sweep is queued ([`Applier::request_sweep`]); one runs at a time.
    sweep_pending: AtomicBool,
    sweeping: tokio::sync::Mutex<()>,
    claiming: tokio::sync::Mutex<()>,
    /// A look for gone appliers is under way.
    looking: AtomicBool,
    /// Woken when a plan ends, so waiting PENDING plans are claimed at once.
    slot_freed: Notify,
    shutdown: CancellationToken,
    tasks: tokio_util::task::TaskTracker,
    /// Appliers whose presence lock was free at the last look (PostgreSQL):
    /// free twice in a row, a second apart, means gone.
    gone: Mutex<std::collections::HashSet<String>>,
}

/// How often an applier on PostgreSQL looks for appliers that are gone.
const PRESENCE_EVERY: Duration = Duration::from_secs(1);

impl Applier {
    pub fn new(
        store: Store,
        cloud: Arc<dyn Cloud>,
        settings: ApplierSettings,
        shutdown: CancellationToken,
    ) -> Applier {
        let runner = RunContext {
            store: store.clone(),
            cloud,
            registry: ActionRegistry::default(),
            limits: settings.limits.clone(),
            settings: settings.actions.clone(),
            shutdown_grace: settings.shutdown_grace,
            rollback_on_cancel: settings.rollback_on_cancel,
            owner: Some(settings.host.clone()),
        };
        Applier {
            inner: Arc::new(Inner {
                store,
                runner,
                settings,
                running: Mutex::new(HashMap::new()),
                failing: Mutex::new(HashMap::new()),
                sweeps: Mutex::new(Backoff::new(
                    Duration::from_secs(1),
                    Duration::from_secs(10),
                )),
                presence_looks: Mutex::new(Backoff::new(PRESENCE_EVERY, Duration::from_secs(10))),
                memory_to_give_back: AtomicBool::new(false),
                sweep_pending: AtomicBool::new(false),
                sweeping: tokio::sync::Mutex::new(()),
                claiming: tokio::sync::Mutex::new(()),
                looking: AtomicBool::new(false),
                slot_freed: Notify::new(),
                shutdown,
                tasks: tokio_util::task::TaskTracker::new(),
                gone: Mutex::new(Default::default()),
            }),
        }
    }

    /// Runs until shutdown, then waits for running plans to reach a safe point.
    pub async fn run(self) {
        let mut events = self.inner.store.subscribe();
        let mut cancels = self.inner.store.subscribe_cancels();
        // Held until this applier stops: while it is, the others know it lives.
        let presence = {
            let (store, host) = (self.inner.store.clone(), self.inner.settings.host.clone());
            tokio::task::spawn_blocking(move || store.hold_presence(&host))
                .await
                .ok()
                .flatten()
        };
        let mut presence_tick = tokio::time::interval(PRESENCE_EVERY);
        if let Err(e) = self.resume_owned_plans().await {
            error!(error = %e, "could not resume the plans this applier owned");
        }
        let mut heartbeat = Heartbeat::new(
            self.inner.store.clone(),
            "watcher-applier",
            self.inner.settings.host.clone(),
        );
        heartbeat.beat().await;
        self.sweep().await;
        let (every, stop) = (
            self.inner.settings.sweep_interval,
            self.inner.shutdown.clone(),
        );
        self.inner.tasks.spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => heartbeat.beat().await,
                    _ = stop.cancelled() => break,
                }
            }
        });
        let mut sweep = tokio::time::interval(every);
        // The loop only dispatches: sweeps, heartbeats and presence looks
        // wait on the database in tasks of their own, so that a cancel's
        // event is taken the moment it arrives, even under heavy load.
        loop {
            tokio::select! {
                biased;
                cancel = cancels.recv() => match cancel {
                    Ok(uuid) => self.signal_cancel(uuid),
                    // Over a thousand cancels at once: the sweep reads them.
                    Err(RecvError::Lagged(_)) => self.request_sweep(),
                    Err(RecvError::Closed) => break,
                },
                ev = events.recv() => match ev {
                    Ok(StoreEvent::PlanState { uuid, state }) => self.on_plan_event(uuid, state),
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        // Expected under heavy load (every action's change
                        // is an event); the sweep reads what was missed.
                        debug!(missed = n, "missed store events; sweeping the database");
                        self.request_sweep();
                    }
                    Err(RecvError::Closed) => break,
                },
                _ = self.inner.shutdown.cancelled() => break,
                _ = sweep.tick() => {
                    self.fence_lapsed_leases();
                    self.request_sweep();
                    if self.inner.running.lock().expect("running lock").is_empty()
                        && self.inner.memory_to_give_back.swap(false, Ordering::AcqRel)
                    {
                        self.inner.tasks.spawn(give_memory_back(self.inner.store.clone()));
                    }
                }
                _ = self.inner.slot_freed.notified() => self.request_sweep(),
                _ = presence_tick.tick(), if presence.is_some() => self.look_for_gone_appliers(),
            }
        }
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        drop(presence);
        info!("applier stopped");
    }

    /// A sweep in a task of its own: at most one waits while one runs.
    fn request_sweep(&self) {
        if self.inner.sweep_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        self.inner.tasks.spawn(async move {
            let _one_at_a_time = this.inner.sweeping.lock().await;
            this.inner.sweep_pending.store(false, Ordering::Release);
            this.sweep().await;
        });
    }

    /// [`Applier::take_over_gone`] in a task of its own, unless one runs.
    fn look_for_gone_appliers(&self) {
        if self.inner.looking.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        self.inner.tasks.spawn(async move {
            this.take_over_gone().await;
            this.inner.looking.store(false, Ordering::Release);
        });
    }

    /// A plan waiting to run is claimed in a task of its own (a claim
    /// waits on the database).
    fn on_plan_event(&self, uuid: Uuid, state: ActionPlanState) {
        let this = self.clone();
        match state {
            ActionPlanState::Pending => {
                self.inner.tasks.spawn(async move {
                    this.claim_on_event(uuid, ActionPlanState::Pending).await
                });
            }
            ActionPlanState::Recommended => {
                self.inner.tasks.spawn(async move {
                    if let Ok(plan) = this.inner.store.get_plan(uuid, false).await {
                        if this.auto_trigger(&plan).await {
                            this.claim_on_event(uuid, ActionPlanState::Recommended)
                                .await;
                        }
                    }
                });
            }
            // A pause, or a resume of a plan whose run is still alive:
            // the run hears it at once (a commit's event, not a re-read).
            ActionPlanState::Ongoing => {
                self.hear_pause(uuid, |p| *p != Pause::No, Pause::No);
            }
            ActionPlanState::Paused => {
                if !self.hear_pause(uuid, |p| *p == Pause::No, Pause::Yes) {
                    return;
                }
                // Whether the pause also aborts what runs: one read, after
                // the run has already stopped starting actions.
                self.inner.tasks.spawn(async move {
                    if let Ok(true) = this.inner.store.pause_aborts(uuid).await {
                        this.hear_pause(uuid, |p| *p == Pause::Yes, Pause::Aborting);
                    }
                });
            }
            // A cancel has a lane of its own (`subscribe_cancels`, taken
            // first in `run`): every commit of CANCELLING, this process's
            // or another's, is announced there too, so it is not handled
            // a second time here. The sweep remains the safety net.
            _ => {}
        }
    }

    /// Tells the run of `uuid`, if this applier has one, that the plan is
    /// now `to` when `from` holds of what it last heard; whether it did.
    fn hear_pause(&self, uuid: Uuid, from: impl Fn(&Pause) -> bool, to: Pause) -> bool {
        let running = self.inner.running.lock().expect("running lock");
        let Some(r) = running.get(&uuid) else {
            return false;
        };
        r.pause.send_if_modified(|p| {
            if from(p) {
                *p = to;
                true
            } else {
                false
            }
        })
    }

    async fn auto_trigger(&self, plan: &ActionPlan) -> bool {
        match self
            .inner
            .store
            .get_audit(&plan.audit_uuid.to_string(), true)
            .await
        {
            Ok(a) => a.auto_trigger,
            Err(_) => false,
        }
    }

    /// Fires the cancel token of a plan this applier runs. The caller saw
    /// the plan CANCELLING in a committed row (an event comes only from a
    /// commit, a sweep reads the database), and a cancel is never undone:
    /// no re-read stands between the commit and the abort.
    fn signal_cancel(&self, uuid: Uuid) {
        let token = self
            .inner
            .running
            .lock()
            .expect("running lock")
            .get(&uuid)
            .map(|r| r.cancel.clone());
        if let Some(token) = token.filter(|t| !t.is_cancelled()) {
            info!(plan = %uuid, "cancel requested");
            token.cancel();
        }
    }

    async fn claim_on_event(&self, uuid: Uuid, from: ActionPlanState) {
        if let Err(e) = self.try_claim(uuid, from).await {
            // The next sweep tries again (under its backoff).
            warn!(plan = %uuid, error = %e, "could not claim plan");
        }
    }

    /// Claims and runs what the database says is waiting; fires tokens of
    /// plans the database says are cancelling. After a failure the next
    /// sweeps wait (1 s doubling to 10 s), and the same error is logged
    /// once a minute: a database that is down costs no hot loop.
    async fn sweep(&self) {
        if self.inner.shutdown.is_cancelled() || !ready(&self.inner.sweeps) {
            return;
        }
        settle(&self.inner.sweeps, "the sweep", self.sweep_once().await);
    }

    async fn sweep_once(&self) -> Result<(), StoreError> {
        self.renew_leases().await?;
        self.take_over_expired().await?;
        // Only what can need the applier: plans in flight, and the
        // recommendations whose audit asked to start them (indexed: the
        // recommendations waiting for a person cost nothing here).
        let store = &self.inner.store;
        let (mut plans, auto) = tokio::try_join!(
            store.plans_in_states(&[
                ActionPlanState::Pending,
                ActionPlanState::Ongoing,
                ActionPlanState::Cancelling,
                ActionPlanState::Paused,
            ]),
            store.auto_trigger_plans(),
        )?;
        plans.extend(auto);
        for p in plans {
            match p.state {
                ActionPlanState::Pending => {
                    self.try_claim(p.uuid, ActionPlanState::Pending).await?
                }
                ActionPlanState::Recommended => {
                    self.try_claim(p.uuid, ActionPlanState::Recommended).await?
                }
                ActionPlanState::Ongoing
                | ActionPlanState::Cancelling
                | ActionPlanState::Paused
                    if self.is_orphan(&p) =>
                {
                    // The list is older than this moment: a run that ended
                    // since has finished its plan. Look again before
                    // taking it for an orphan.
                    let p = match store.get_plan(p.uuid, false).await {
                        Ok(now)
                            if matches!(
                                now.state,
                                ActionPlanState::Ongoing
                                    | ActionPlanState::Cancelling
                                    | ActionPlanState::Paused
                            ) && self.is_orphan(&now) =>
                        {
                            now
                        }
                        _ => continue,
                    };
                    // Ours, but no run holds it (its run ended on an error):
                    // resume it rather than leave it stuck.
                    if self
                        .inner
                        .failing
                        .lock()
                        .expect("failing lock")
                        .contains_key(&p.uuid)
                    {
                        debug!(plan = %p.uuid, "resuming a plan whose last run failed");
                    } else {
                        warn!(plan = %p.uuid, state = %p.state, "resuming a plan no run was holding");
                    }
                    // Its lease is renewed by the next sweep, within the lease.
                    self.spawn_run(p, std::time::Instant::now());
                }
                ActionPlanState::Cancelling => self.signal_cancel(p.uuid),
                _ => {}
            }
        }
        Ok(())
    }

    fn lease_until(&self) -> i64 {
        (chrono::Utc::now()
            + chrono::Duration::from_std(self.inner.settings.lease).unwrap_or_default())
        .timestamp_micros()
    }

    /// Keeps the plans this applier runs leased to it. A plan whose lease
    /// it lost (it stalled longer than the lease) is run by another applier
    /// now: the store refuses to start its actions here (fencing).
    async fn renew_leases(&self) -> Result<(), StoreError> {
        let plans: Vec<Uuid> = self
            .inner
            .running
            .lock()
            .expect("running lock")
            .keys()
            .copied()
            .collect();
        if plans.is_empty() {
            return Ok(());
        }
        let sent = std::time::Instant::now();
        let lost = self
            .inner
            .store
            .renew_leases(
                self.inner.settings.host.clone(),
                plans.clone(),
                self.lease_until(),
            )
            .await?;
        let mut running = self.inner.running.lock().expect("running lock");
        for p in plans {
            let Some(run) = running.get_mut(&p) else {
                continue;
            };
            if lost.contains(&p) {
                // Either finished (the run is ending: stopping it changes
                // nothing) or another applier has it (this one stalled
                // longer than the lease): either way no longer ours to run.
                debug!(plan = %p, "lease not renewed: the plan ended or another applier has it");
                run.fence.cancel();
            } else {
                run.leased_until = sent + self.inner.settings.lease;
            }
        }
        Ok(())
    }

    /// Stops, without touching the cloud, every run whose lease this
    /// applier could not renew in time (the database unreachable, or the
    /// network to it silently dropping packets): once the lease has run
    /// out another applier may take the plan over, and two appliers must
    /// never act on one plan. Needs no database, so it works while every
    /// query hangs; a plan fenced while no other applier took it is
    /// resumed by the sweep (reconciled, as after a restart) once the
    /// database answers.
    fn fence_lapsed_leases(&self) {
        let now = std::time::Instant::now();
        for (plan, run) in self.inner.running.lock().expect("running lock").iter() {
            if now >= run.leased_until && !run.fence.is_cancelled() {
                error!(plan = %plan, lease = ?self.inner.settings.lease, "could not renew the lease of this plan in time (is the database reachable?): stopped running it, without aborting anything; another applier takes it over, or this one resumes it when the database answers");
                run.fence.cancel();
            }
        }
    }

    /// Takes over plans whose applier stopped renewing its lease (it died,
    /// or its machine did), reconciling their running actions with the
    /// cloud as after a restart.
    async fn take_over_expired(&self) -> Result<(), StoreError> {
        let now = chrono::Utc::now().timestamp_micros();
        let expired = self.inner.store.plans_with_expired_lease(now).await?;
        for p in expired {
            let me = &self.inner.settings.host;
            let Some(holder) = p.hostname.clone() else {
                continue;
            };
            if &holder == me || !self.has_slot() {
                continue;
            }
            self.take_over(p.uuid, holder, Takeover::LeaseExpired)
                .await?;
        }
        Ok(())
    }

    /// PostgreSQL: takes over the plans of appliers whose presence lock
    /// was free at this look and at the one before (a second apart; once
    /// could be an applier retaking its lock after a server restart).
    async fn take_over_gone(&self) {
        if !ready(&self.inner.presence_looks) {
            return;
        }
        let result = self.take_over_gone_once().await;
        settle(
            &self.inner.presence_looks,
            "the look for appliers that are gone",
            result,
        );
    }

    async fn take_over_gone_once(&self) -> Result<(), StoreError> {
        let me = self.inner.settings.host.clone();
        let gone = self.inner.store.gone_appliers(me).await?;
        let confirmed: Vec<String> = {
            let mut seen = self.inner.gone.lock().expect("gone lock");
            let confirmed = gone.iter().filter(|h| seen.contains(*h)).cloned().collect();
            *seen = gone.into_iter().collect();
            confirmed
        };
        if confirmed.is_empty() || !self.has_slot() {
            return Ok(());
        }
        let plans = self
            .inner
            .store
            .plans_in_states(&[
                ActionPlanState::Ongoing,
                ActionPlanState::Cancelling,
                ActionPlanState::Paused,
            ])
            .await?;
        for p in plans {
            match p.hostname {
                Some(holder) if confirmed.contains(&holder) && self.has_slot() => {
                    self.take_over(p.uuid, holder, Takeover::ApplierGone)
                        .await?
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Takes `plan` over from `holder` and runs it, reconciling its running
    /// actions with the cloud as after a restart.
    async fn take_over(&self, plan: Uuid, holder: String, why: Takeover) -> Result<(), StoreError> {
        let _one_at_a_time = self.inner.claiming.lock().await;
        if !self.has_slot() {
            return Ok(());
        }
        let me = self.inner.settings.host.clone();
        let sent = std::time::Instant::now();
        match self
            .inner
            .store
            .take_over_plan(plan, holder.clone(), me, self.lease_until(), why)
            .await
        {
            Ok(plan) => {
                match why {
                    Takeover::LeaseExpired => {
                        warn!(plan = %plan.uuid, from = %holder, "took over a plan whose applier's lease expired")
                    }
                    Takeover::ApplierGone => {
                        warn!(plan = %plan.uuid, from = %holder, "took over a plan whose applier is gone")
                    }
                }
                self.spawn_run(plan, sent);
                Ok(())
            }
            // Another applier was faster, or the holder renewed meanwhile.
            Err(StoreError::LeaseLost { .. } | StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn is_orphan(&self, plan: &ActionPlan) -> bool {
        plan.hostname.as_deref() == Some(self.inner.settings.host.as_str())
            && !self
                .inner
                .running
                .lock()
                .expect("running lock")
                .contains_key(&plan.uuid)
            && self
                .inner
                .failing
                .lock()
                .expect("failing lock")
                .get(&plan.uuid)
                .is_none_or(|b| b.ready(now()))
    }

    fn has_slot(&self) -> bool {
        self.inner.running.lock().expect("running lock").len()
            < self.inner.settings.max_concurrent_plans
    }

    /// Claims a plan and runs it; losing the race to another applier or
    /// a cancel is no error.
    async fn try_claim(&self, uuid: Uuid, from: ActionPlanState) -> Result<(), StoreError> {
        // One claim at a time (sweeps and events claim from their own
        // tasks): the slot counted free is still free when the run starts.
        let _one_at_a_time = self.inner.claiming.lock().await;
        if self.inner.shutdown.is_cancelled() || !self.has_slot() {
            return Ok(());
        }
        let update = PlanUpdate {
            status_message: None,
            hostname: Some(self.inner.settings.host.clone()),
            lease_until: Some(self.lease_until()),
        };
        let sent = std::time::Instant::now();
        match self
            .inner
            .store
            .transition_plan(
                uuid,
                StateChange::new(
                    from,
                    ActionPlanState::Ongoing,
                    Actor::Applier,
                    "claimed by applier",
                ),
                update,
            )
            .await
        {
            Ok(plan) => {
                self.spawn_run(plan, sent);
                Ok(())
            }
            // Someone else claimed or cancelled it first.
            Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// After a restart: plans left ONGOING or CANCELLING by this host are
    /// reconciled with the cloud and resumed, never blindly cancelled; a
    /// PAUSED one it still held has its running actions reconciled, then
    /// is let go.
    async fn resume_owned_plans(&self) -> Result<(), StoreError> {
        let plans = self
            .inner
            .store
            .plans_in_states(&[
                ActionPlanState::Ongoing,
                ActionPlanState::Cancelling,
                ActionPlanState::Paused,
            ])
            .await?;
        for plan in plans {
            let host = self.inner.settings.host.as_str();
            // A released PAUSED plan (no holder) is nobody's until resumed.
            let mine = match plan.state {
                ActionPlanState::Paused => plan.hostname.as_deref() == Some(host),
                _ => plan.hostname.as_deref().is_none_or(|h| h == host),
            };
            if mine {
                info!(plan = %plan.uuid, state = %plan.state, "resuming a plan interrupted by a stop");
                // Its lease is renewed by the first sweep, within the lease.
                self.spawn_run(plan, std::time::Instant::now());
            }
        }
        Ok(())
    }

    /// Logs how a run ended; a failed run is resumed by the sweep only
    /// after its backoff.
    fn record_outcome(&self, uuid: Uuid, outcome: Result<RunEnd, StoreError>) {
        let mut failing = self.inner.failing.lock().expect("failing lock");
        if outcome.is_ok() {
            failing.remove(&uuid);
        }
        match outcome {
            Ok(RunEnd::Finished(state)) => info!(plan = %uuid, state = %state, "plan run ended"),
            Ok(RunEnd::Interrupted) => {
                info!(plan = %uuid, "plan run interrupted; it resumes at the next start")
            }
            Ok(RunEnd::Fenced) => {
                info!(plan = %uuid, "plan run stopped: the plan is no longer this applier's")
            }
            Ok(RunEnd::Paused) => {
                info!(plan = %uuid, "plan paused: nothing runs; it goes on when resumed")
            }
            Err(e) => {
                // Resumed after 1 s, then twice as long each time up
                // to 5 s: a database that refuses writes is retried
                // often enough to resume soon after it recovers, and
                // costs a log line a minute, not a hot loop.
                let r = failing
                    .entry(uuid)
                    .or_insert_with(|| Backoff::new(Duration::from_secs(1), Duration::from_secs(5)))
                    .failed(&e.to_string(), now());
                if let Some(held_back) = r.log {
                    error!(plan = %uuid, error = %e, attempts = r.failures, not_logged = held_back, retry_in = ?r.wait, "plan run failed; a sweep resumes it once the database answers");
                }
            }
        }
    }

    /// Runs `plan`, which this applier has just claimed, taken over or
    /// found its own: `leased_at` is when the write that leased it was sent.
    fn spawn_run(&self, plan: ActionPlan, leased_at: std::time::Instant) {
        let (cancel, fence) = (CancellationToken::new(), CancellationToken::new());
        if plan.state == ActionPlanState::Cancelling {
            cancel.cancel();
        }
        let (pause, paused) =
            tokio::sync::watch::channel(if plan.state == ActionPlanState::Paused {
                Pause::Yes
            } else {
                Pause::No
            });
        {
            let mut running = self.inner.running.lock().expect("running lock");
            if running.contains_key(&plan.uuid) {
                return;
            }
            running.insert(
                plan.uuid,
                Runs {
                    cancel: cancel.clone(),
                    pause,
                    fence: fence.clone(),
                    leased_until: leased_at + self.inner.settings.lease,
                },
            );
        }
        let this = self.clone();
        let shutdown = self.inner.shutdown.clone();
        self.inner.tasks.spawn(async move {
            let uuid = plan.uuid;
            let outcome = this
                .inner
                .runner
                .run(plan, cancel, paused, shutdown, fence)
                .await;
            this.record_outcome(uuid, outcome);
            let idle = {
                let mut running = this.inner.running.lock().expect("running lock");
                running.remove(&uuid);
                running.is_empty()
            };
            this.inner.slot_freed.notify_one();
            if idle {
                this.inner
                    .memory_to_give_back
                    .store(true, Ordering::Release);
            }
        });
    }
}
