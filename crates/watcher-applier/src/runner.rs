//! Runs one action plan: its DAG, its limits, its cancellation.
//!
//! One loop owns the plan. Action tasks only run plugins and write their
//! own PENDING -> ONGOING start (which fails once the plan is CANCELLING);
//! every other action write is the loop's, so within a plan there is a
//! single writer and no lost update. Between the API and the applier the
//! plan row's compare-and-set decides.
//!
//! Cancellation is a tree of tokens: the plan's token (fired when the store
//! says CANCELLING) and one child per running action. On cancel the loop
//! starts nothing more, moves PENDING actions to CANCELLED, moves running
//! ones to CANCELLING and fires their tokens, then waits for each to report.

use super::actions::{
    ActionContext, ActionRegistry, ActionSettings, Outcome, Precondition, Reconciled,
};
use super::Limits;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};
use uuid::Uuid;
use watcher_cloud::{Cloud, OperationId};
use watcher_core::actions::ActionTypeError;
use watcher_core::{Action, ActionPlan, ActionPlanState, ActionState, Actor, EntityState};
use watcher_store::{PlanUpdate, Store, StoreError};

/// How a plan run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    Finished(ActionPlanState),
    /// Stopped by shutdown; the plan stays ONGOING or CANCELLING for the
    /// next start to reconcile and resume.
    Interrupted,
    /// Stopped at once because this applier's lease on the plan ran out
    /// (or another applier holds it now): its action tasks were dropped
    /// without a cancel, so nothing was aborted and nothing more was
    /// written; whoever holds the plan next reconciles it with the cloud.
    Fenced,
}

/// A run's action tasks, so that a fenced run can drop them: a cancel of
/// their tokens would abort their operations, which are no longer this
/// applier's to touch.
#[derive(Clone, Default)]
struct ActionTasks(Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>);

impl ActionTasks {
    fn add(&self, task: tokio::task::JoinHandle<()>) {
        let mut tasks = self.0.lock().expect("action tasks lock");
        // Finished ones are dropped now and then: a plan of 10,000 actions
        // keeps only those still running.
        if tasks.len() >= 64 && tasks.len().is_power_of_two() {
            tasks.retain(|t| !t.is_finished());
        }
        tasks.push(task);
    }

    /// Drops every task and waits until none can run again.
    async fn drop_all(&self) {
        let tasks = std::mem::take(&mut *self.0.lock().expect("action tasks lock"));
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

pub struct PlanRunner {
    pub store: Store,
    pub cloud: Arc<dyn Cloud>,
    pub registry: ActionRegistry,
    pub limits: Limits,
    pub settings: ActionSettings,
    /// How long running actions get to finish on shutdown before they are aborted.
    pub shutdown_grace: Duration,
    /// After a cancel, undo SUCCEEDED actions that know how.
    pub rollback_on_cancel: bool,
    /// The applier whose lease the plans must be under for an action to
    /// start (None: no check, for single-process tools).
    pub owner: Option<String>,
}

/// What an action task reports to the loop.
enum Report {
    /// The start was refused: the plan is no longer ONGOING, or the action
    /// was no longer PENDING.
    NotStarted,
    Skipped(String),
    PreconditionFailed(String),
    Finished(Outcome),
}

struct Node {
    action: Action,
    children: Vec<usize>,
    waiting_on: usize,
    hosts: Vec<String>,
}

struct Running {
    token: CancellationToken,
    /// Whether the loop has written ONGOING -> CANCELLING for it.
    cancelling: bool,
    /// Whether it was interrupted by shutdown rather than by a cancel.
    interrupted: bool,
}

type PendingWrite = oneshot::Receiver<Result<(), StoreError>>;

/// A plan's actions as a DAG: each node knows its children and how many
/// parents it still waits on, and the hosts it touches (per-host limits).
fn dag(actions: Vec<Action>) -> Vec<Node> {
    let index: HashMap<Uuid, usize> = actions
        .iter()
        .enumerate()
        .map(|(i, a)| (a.uuid, i))
        .collect();
    let mut nodes: Vec<Node> = actions
        .into_iter()
        .map(|a| {
            let hosts = watcher_core::actions::lookup(&a.action_type)
                .map(|t| t.hosts(&a.input_parameters))
                .unwrap_or_default();
            Node {
                action: a,
                children: vec![],
                waiting_on: 0,
                hosts,
            }
        })
        .collect();
    for i in 0..nodes.len() {
        let parents = nodes[i].action.parents.clone();
        for p in parents.iter().filter_map(|p| index.get(p)) {
            nodes[*p].children.push(i);
            nodes[i].waiting_on += 1;
        }
    }
    nodes
}

/// One run of one plan: the loop's state, and its steps as methods. The
/// loop (`PlanRunner::run_inner`) only waits for the next event and hands
/// it to a step.
struct PlanRun<'a> {
    runner: &'a PlanRunner,
    plan: Uuid,
    nodes: Vec<Node>,
    /// Parent of every action's token; cancelled when the run ends.
    scope: CancellationToken,
    tasks: ActionTasks,
    /// Where action tasks report.
    tx: mpsc::UnboundedSender<(usize, Report)>,
    running: HashMap<usize, Running>,
    /// Writes queued without waiting; awaited before the plan's final state.
    writes: Vec<PendingWrite>,
    /// PENDING actions whose parents have all settled, by action type.
    ready: HashMap<String, VecDeque<usize>>,
    running_by_type: HashMap<String, usize>,
    running_by_host: HashMap<String, usize>,
    /// The plan is CANCELLING: start nothing, abort what runs.
    cancelling: bool,
    /// The cancel has been applied to the actions (once per run).
    cancel_entered: bool,
    /// watcherd is stopping: start nothing, let running actions finish.
    shutting_down: bool,
    /// When running actions are aborted because the shutdown grace is over.
    grace_deadline: Option<tokio::time::Instant>,
}

impl PlanRun<'_> {
    /// Settled actions release their children; actions a previous run left
    /// ONGOING or CANCELLING are reconciled with the cloud (and followed if
    /// still running there). Then the ready set is built, once.
    async fn resume_interrupted_actions(&mut self) -> Result<(), StoreError> {
        let mut released = vec![];
        for i in 0..self.nodes.len() {
            match self.nodes[i].action.state {
                s if s.is_finished() => released.push(i),
                ActionState::Ongoing | ActionState::Cancelling => {
                    match self
                        .runner
                        .reconcile(&self.nodes[i].action, self.cancelling)
                        .await?
                    {
                        Some(final_state) => {
                            self.nodes[i].action.state = final_state;
                            if final_state.is_finished() {
                                released.push(i);
                            }
                        }
                        None => self.follow(i).await?,
                    }
                }
                _ => {}
            }
        }
        // Only count parents down here: the ready set is built once below, so
        // no action is queued twice.
        for i in released {
            for c in self.nodes[i].children.clone() {
                self.nodes[c].waiting_on = self.nodes[c].waiting_on.saturating_sub(1);
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if n.action.state == ActionState::Pending && n.waiting_on == 0 {
                self.ready
                    .entry(n.action.action_type.clone())
                    .or_default()
                    .push_back(i);
            }
        }
        Ok(())
    }

    /// Follows action `i`, still running in the cloud after a restart, from
    /// its journaled operation.
    async fn follow(&mut self, i: usize) -> Result<(), StoreError> {
        let runner = self.runner;
        let action = &self.nodes[i].action;
        let op = runner
            .store
            .journal(action.uuid)
            .await?
            .and_then(|j| j.operation_id);
        let token = self.scope.child_token();
        let cancelling = action.state == ActionState::Cancelling;
        if cancelling {
            token.cancel();
        }
        runner.spawn_action(action, i, token.clone(), op, self.tx.clone(), &self.tasks);
        runner.take_slots(
            &self.nodes[i],
            &mut self.running_by_type,
            &mut self.running_by_host,
        );
        self.running.insert(
            i,
            Running {
                token,
                cancelling,
                interrupted: false,
            },
        );
        Ok(())
    }

    /// On the first look at a CANCELLING plan: PENDING actions become
    /// CANCELLED, running ones CANCELLING with their tokens fired.
    async fn enter_cancel_once(&mut self) -> Result<(), StoreError> {
        if self.cancelling && !self.cancel_entered {
            self.cancel_entered = true;
            self.runner
                .enter_cancel(
                    self.plan,
                    &mut self.nodes,
                    &mut self.ready,
                    &mut self.running,
                )
                .await?;
        }
        Ok(())
    }

    fn start_ready_actions(&mut self) {
        if !self.cancelling && !self.shutting_down {
            self.runner.start_ready(
                &self.nodes,
                &mut self.ready,
                &mut self.running,
                &mut self.running_by_type,
                &mut self.running_by_host,
                &self.scope,
                &self.tx,
                &self.tasks,
            );
        }
    }

    /// Nothing runs and nothing more will start.
    fn is_over(&self) -> bool {
        self.running.is_empty() && (self.ready.is_empty() || self.cancelling || self.shutting_down)
    }

    /// Records what action `i` reported. `Some` ends the run early: the
    /// plan changed state under this applier.
    async fn record(&mut self, i: usize, report: Report) -> Result<Option<RunEnd>, StoreError> {
        let r = self.running.remove(&i);
        self.runner.free_slots(
            &self.nodes[i],
            &mut self.running_by_type,
            &mut self.running_by_host,
        );
        let from = match &r {
            Some(r) if r.cancelling => ActionState::Cancelling,
            _ => ActionState::Ongoing,
        };
        let interrupted = r.as_ref().is_some_and(|r| r.interrupted);
        let settle = self
            .runner
            .record_report(
                self.plan,
                &mut self.nodes[i].action,
                from,
                report,
                interrupted,
                &mut self.writes,
            )
            .await?;
        match settle {
            Settle::Done => release_children(&mut self.nodes, i, &mut self.ready),
            Settle::BackToPending => {}
            Settle::PlanStopped => return self.after_refused_start(i).await,
        }
        Ok(None)
    }

    /// The store refused to start action `i`: find out why before going on.
    async fn after_refused_start(&mut self, i: usize) -> Result<Option<RunEnd>, StoreError> {
        let store = &self.runner.store;
        match store.get_plan(self.plan, true).await?.state {
            ActionPlanState::Ongoing => {
                // The action itself was not PENDING any more: take the store's word.
                let now = store
                    .get_action(self.nodes[i].action.uuid, true)
                    .await?
                    .state;
                self.nodes[i].action.state = now;
                if now.is_finished() {
                    release_children(&mut self.nodes, i, &mut self.ready);
                }
            }
            ActionPlanState::Cancelling => self.cancelling = true,
            other => {
                warn!(state = %other, "plan changed state under the applier; stopping");
                return Ok(Some(RunEnd::Interrupted));
            }
        }
        Ok(None)
    }

    fn begin_shutdown(&mut self) {
        self.shutting_down = true;
        self.grace_deadline = Some(tokio::time::Instant::now() + self.runner.shutdown_grace);
        info!(
            running = self.running.len(),
            "shutdown: starting nothing more, waiting for running actions"
        );
    }

    fn abort_after_grace(&mut self) {
        self.grace_deadline = None;
        for r in self.running.values_mut() {
            r.interrupted = true;
            r.token.cancel();
        }
        warn!(
            running = self.running.len(),
            "shutdown grace period over: aborting running actions"
        );
    }

    /// After the loop: wait for queued writes, then either leave the plan
    /// for the next start (shutdown) or roll back and write its final state.
    async fn conclude(mut self) -> Result<RunEnd, StoreError> {
        for w in self.writes.drain(..) {
            w.await.map_err(|_| StoreError::Closed)??;
        }
        let any = |pred: fn(ActionState) -> bool| self.nodes.iter().any(|n| pred(n.action.state));
        if self.shutting_down && !self.cancelling && any(|s| s == ActionState::Pending) {
            info!("plan interrupted by shutdown; it resumes at the next start");
            return Ok(RunEnd::Interrupted);
        }
        if any(|s| matches!(s, ActionState::Ongoing | ActionState::Cancelling)) {
            return Ok(RunEnd::Interrupted);
        }
        if self.cancelling && self.runner.rollback_on_cancel {
            self.runner.roll_back(self.plan, &mut self.nodes).await?;
        }
        self.runner
            .finish_plan(self.plan, &self.nodes, self.cancelling)
            .await
            .map(RunEnd::Finished)
    }
}

impl PlanRunner {
    /// Runs `plan` (already ONGOING or CANCELLING and owned by this applier)
    /// to its end. `cancel` fires when the store says CANCELLING; `shutdown`
    /// when watcherd is stopping; `fence` when the plan is no longer this
    /// applier's (its lease ran out): then the run stops at once, even in
    /// the middle of a write that hangs, and touches the cloud no more.
    pub async fn run(
        &self,
        plan: ActionPlan,
        cancel: CancellationToken,
        shutdown: CancellationToken,
        fence: CancellationToken,
    ) -> Result<RunEnd, StoreError> {
        let span = tracing::info_span!("plan", plan = %plan.uuid);
        let tasks = ActionTasks::default();
        let run = self
            .run_inner(plan, cancel, shutdown, tasks.clone())
            .instrument(span);
        tokio::select! {
            biased;
            _ = fence.cancelled() => {
                // The tasks go before the run's scope token, which fires
                // when `run` is dropped at the end of this select.
                tasks.drop_all().await;
                Ok(RunEnd::Fenced)
            }
            end = run => end,
        }
    }

    async fn run_inner(
        &self,
        plan: ActionPlan,
        cancel: CancellationToken,
        shutdown: CancellationToken,
        tasks: ActionTasks,
    ) -> Result<RunEnd, StoreError> {
        let actions = self.store.plan_actions(plan.uuid).await?;
        // Action tokens hang under this scope, which is cancelled when this
        // function returns for any reason: no action task outlives its run.
        let scope = cancel.child_token();
        let _abort_on_exit = scope.clone().drop_guard();
        let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Report)>();
        let mut run = PlanRun {
            runner: self,
            plan: plan.uuid,
            nodes: dag(actions),
            scope,
            tasks,
            tx,
            running: HashMap::new(),
            writes: Vec::new(),
            ready: HashMap::new(),
            running_by_type: HashMap::new(),
            running_by_host: HashMap::new(),
            cancelling: plan.state == ActionPlanState::Cancelling,
            cancel_entered: false,
            shutting_down: false,
            grace_deadline: None,
        };
        run.resume_interrupted_actions().await?;
        loop {
            if !run.cancelling && cancel.is_cancelled() {
                run.cancelling = true;
            }
            run.enter_cancel_once().await?;
            run.start_ready_actions();
            if run.is_over() {
                break;
            }
            let grace = async {
                match run.grace_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                Some((i, report)) = rx.recv() => {
                    // An abort may report before this loop has seen the cancel:
                    // record CANCELLING first so the outcome's transition is legal.
                    if cancel.is_cancelled() {
                        run.cancelling = true;
                        run.enter_cancel_once().await?;
                    }
                    if let Some(end) = run.record(i, report).await? {
                        return Ok(end);
                    }
                }
                _ = cancel.cancelled(), if !run.cancelling => run.cancelling = true,
                _ = shutdown.cancelled(), if !run.shutting_down => run.begin_shutdown(),
                _ = grace => run.abort_after_grace(),
            }
        }
        run.conclude().await
    }

    /// What a plugin needs to act on `action`.
    fn context(&self, action: &Action) -> ActionContext {
        ActionContext {
            plan: action.action_plan_uuid,
            action: action.uuid,
            params: action.input_parameters.clone(),
            cloud: self.cloud.clone(),
            store: self.store.clone(),
            settings: self.settings.clone(),
        }
    }

    /// Starts every ready action the limits allow.
    #[allow(clippy::too_many_arguments)]
    fn start_ready(
        &self,
        nodes: &[Node],
        ready: &mut HashMap<String, VecDeque<usize>>,
        running: &mut HashMap<usize, Running>,
        by_type: &mut HashMap<String, usize>,
        by_host: &mut HashMap<String, usize>,
        scope: &CancellationToken,
        tx: &mpsc::UnboundedSender<(usize, Report)>,
        tasks: &ActionTasks,
    ) {
        let types: Vec<String> = ready.keys().cloned().collect();
        for t in types {
            let type_limit = self.limits.for_type(&t);
            let queue = ready.get_mut(&t).expect("key exists");
            let mut skipped = VecDeque::new();
            while running.len() < self.limits.per_plan
                && by_type.get(&t).copied().unwrap_or(0) < type_limit
            {
                let Some(i) = queue.pop_front() else { break };
                let node = &nodes[i];
                if running.contains_key(&i) || node.action.state != ActionState::Pending {
                    continue;
                }
                let host_busy = node
                    .hosts
                    .iter()
                    .any(|h| by_host.get(h).copied().unwrap_or(0) >= self.limits.per_host);
                if host_busy {
                    skipped.push_back(i);
                    if skipped.len() >= 64 {
                        break;
                    }
                    continue;
                }
                let token = scope.child_token();
                self.take_slots(node, by_type, by_host);
                self.spawn_action(&node.action, i, token.clone(), None, tx.clone(), tasks);
                running.insert(
                    i,
                    Running {
                        token,
                        cancelling: false,
                        interrupted: false,
                    },
                );
            }
            while let Some(i) = skipped.pop_back() {
                queue.push_front(i);
            }
            if queue.is_empty() {
                ready.remove(&t);
            }
        }
    }

    fn take_slots(
        &self,
        node: &Node,
        by_type: &mut HashMap<String, usize>,
        by_host: &mut HashMap<String, usize>,
    ) {
        *by_type.entry(node.action.action_type.clone()).or_default() += 1;
        for h in &node.hosts {
            *by_host.entry(h.clone()).or_default() += 1;
        }
    }

    fn free_slots(
        &self,
        node: &Node,
        by_type: &mut HashMap<String, usize>,
        by_host: &mut HashMap<String, usize>,
    ) {
        if let Some(n) = by_type.get_mut(&node.action.action_type) {
            *n = n.saturating_sub(1);
        }
        for h in &node.hosts {
            if let Some(n) = by_host.get_mut(h) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Spawns the task that checks pre-conditions, writes the start (which
    /// the store refuses once the plan is CANCELLING) and runs the plugin.
    /// With `resume`, the action is already ONGOING and follows that operation.
    fn spawn_action(
        &self,
        action: &Action,
        i: usize,
        token: CancellationToken,
        resume: Option<OperationId>,
        tx: mpsc::UnboundedSender<(usize, Report)>,
        tasks: &ActionTasks,
    ) {
        let Some(plugin) = self.registry.get(&action.action_type) else {
            let msg = format!("unknown action type '{}'", action.action_type);
            let _ = tx.send((i, Report::PreconditionFailed(msg)));
            return;
        };
        let ctx = self.context(action);
        let owner = self.owner.clone();
        let already_running = action.state != ActionState::Pending;
        let span =
            tracing::info_span!("action", action = %action.uuid, r#type = %action.action_type);
        tasks.add(tokio::spawn(
            async move {
                if !already_running {
                    if let Err(e) =
                        watcher_core::actions::validate(plugin.action_type(), &ctx.params)
                    {
                        let reason = match e {
                            ActionTypeError::InvalidInput { reason, .. } => reason,
                            unknown => unknown.to_string(),
                        };
                        let _ = tx.send((
                            i,
                            Report::PreconditionFailed(format!("invalid input: {reason}")),
                        ));
                        return;
                    }
                    match plugin.pre_condition(&ctx).await {
                        Err(Precondition::Skip(m)) => {
                            let _ = tx.send((i, Report::Skipped(m)));
                            return;
                        }
                        Err(Precondition::Fail(m)) => {
                            let _ = tx.send((i, Report::PreconditionFailed(m)));
                            return;
                        }
                        Ok(()) => {}
                    }
                    if let Err(e) = ctx.store.start_action(ctx.plan, ctx.action, owner).await {
                        tracing::debug!(error = %e, "start refused");
                        let _ = tx.send((i, Report::NotStarted));
                        return;
                    }
                }
                let mut outcome = plugin.execute(&ctx, &token, resume).await;
                if let Outcome::Succeeded(_) = outcome {
                    if let Err(m) = plugin.post_condition(&ctx).await {
                        outcome = Outcome::Failed(format!("Action failed in post_condition: {m}"));
                    }
                }
                let _ = tx.send((i, Report::Finished(outcome)));
            }
            .instrument(span),
        ));
    }

    /// The plan is CANCELLING: nothing more starts, PENDING actions are
    /// CANCELLED, running ones go CANCELLING and are asked to abort.
    async fn enter_cancel(
        &self,
        plan: Uuid,
        nodes: &mut [Node],
        ready: &mut HashMap<String, VecDeque<usize>>,
        running: &mut HashMap<usize, Running>,
    ) -> Result<(), StoreError> {
        ready.clear();
        let moved = self
            .store
            .transition_plan_actions(
                plan,
                ActionState::Pending,
                ActionState::Cancelled,
                Actor::Applier,
                "action plan cancelled",
                Some("Cancelled before it started: the action plan was cancelled.".into()),
            )
            .await?;
        let moved: std::collections::HashSet<Uuid> = moved.into_iter().collect();
        for n in nodes.iter_mut() {
            if moved.contains(&n.action.uuid) {
                n.action.state = ActionState::Cancelled;
            }
        }
        // The action tokens are children of the plan's token, so aborts have
        // begun already; what remains is to record CANCELLING before any
        // outcome is recorded (the loop records outcomes only after this).
        for (i, r) in running.iter_mut() {
            if r.cancelling {
                continue;
            }
            let node = &mut nodes[*i];
            match self
                .store
                .transition_action(
                    plan,
                    node.action.uuid,
                    ActionState::Ongoing,
                    ActionState::Cancelling,
                    Actor::Applier,
                    "action plan cancelled: aborting",
                    Some("Aborting: the action plan was cancelled.".into()),
                )
                .await
            {
                Ok(()) => {
                    r.cancelling = true;
                    node.action.state = ActionState::Cancelling;
                }
                // Still PENDING in a pre-condition, or just CANCELLED above: its start will be refused.
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
            r.token.cancel();
        }
        info!(
            cancelled = moved.len(),
            aborting = running.len(),
            "cancel: pending actions cancelled, running ones aborting"
        );
        Ok(())
    }

    /// Writes what a task reported. Completion writes are queued, not
    /// awaited, so a finished action's write and its children's starts share
    /// a commit; they are awaited before the plan's final write.
    async fn record_report(
        &self,
        plan: Uuid,
        action: &mut Action,
        from: ActionState,
        report: Report,
        interrupted: bool,
        writes: &mut Vec<PendingWrite>,
    ) -> Result<Settle, StoreError> {
        let uuid = action.uuid;
        let outcome = match report {
            // Refused because the plan stopped; the cancel path settles it.
            Report::NotStarted => return Ok(Settle::PlanStopped),
            Report::Skipped(m) => {
                let msg = format!("Action was skipped automatically: {m}");
                return self
                    .settle_unstarted(
                        plan,
                        action,
                        ActionState::Skipped,
                        "pre-condition: nothing to do",
                        msg,
                    )
                    .await;
            }
            Report::PreconditionFailed(m) => {
                let msg = format!("Action failed in pre_condition: {m}");
                return self
                    .settle_unstarted(
                        plan,
                        action,
                        ActionState::Failed,
                        "pre-condition failed",
                        msg,
                    )
                    .await;
            }
            Report::Finished(outcome) => outcome,
        };
        let cancelling = from == ActionState::Cancelling;
        let (to, actor, reason, message) = match outcome {
            // Aborted by shutdown with its effect undone: it runs again at the next start.
            Outcome::Cancelled(m) if interrupted && !cancelling => {
                self.store
                    .transition_action(
                        plan,
                        uuid,
                        from,
                        ActionState::Pending,
                        Actor::Recovery,
                        "interrupted by shutdown; runs again at the next start",
                        Some(m),
                    )
                    .await?;
                action.state = ActionState::Pending;
                return Ok(Settle::BackToPending);
            }
            Outcome::Succeeded(m) => (
                ActionState::Succeeded,
                Actor::Applier,
                if cancelling {
                    "finished before the abort took effect"
                } else {
                    "succeeded"
                },
                m,
            ),
            Outcome::Failed(m) => (
                ActionState::Failed,
                Actor::Applier,
                if cancelling { "abort failed" } else { "failed" },
                Some(m),
            ),
            Outcome::Cancelled(m) => (
                ActionState::Cancelled,
                Actor::Applier,
                "aborted on cancel",
                Some(m),
            ),
        };
        writes.push(
            self.store
                .enqueue_transition_action(plan, uuid, from, to, actor, reason, message),
        );
        action.state = to;
        Ok(Settle::Done)
    }

    /// A pre-condition verdict for an action that never started; a cancel
    /// may have settled the action first, which is fine.
    async fn settle_unstarted(
        &self,
        plan: Uuid,
        action: &mut Action,
        to: ActionState,
        reason: &str,
        message: String,
    ) -> Result<Settle, StoreError> {
        match self
            .store
            .transition_action(
                plan,
                action.uuid,
                ActionState::Pending,
                to,
                Actor::Applier,
                reason,
                Some(message),
            )
            .await
        {
            Ok(()) => {
                action.state = to;
                Ok(Settle::Done)
            }
            Err(StoreError::Conflict { .. }) => Ok(Settle::Done),
            Err(e) => Err(e),
        }
    }

    /// After a restart: settles an action found ONGOING or CANCELLING.
    /// Returns its new state, or None if it is still running in the cloud.
    async fn reconcile(
        &self,
        action: &Action,
        plan_cancelling: bool,
    ) -> Result<Option<ActionState>, StoreError> {
        let Some(plugin) = self.registry.get(&action.action_type) else {
            return Ok(Some(action.state));
        };
        let ctx = self.context(action);
        let journal = self.store.journal(action.uuid).await?;
        let verdict = plugin.reconcile(&ctx, journal.as_ref()).await;
        let from = action.state;
        let (to, reason, message) = match verdict {
            Reconciled::Running(_) => return Ok(None),
            Reconciled::NotStarted if plan_cancelling || from == ActionState::Cancelling => (
                ActionState::Cancelled,
                "restart: the action had no effect in the cloud; plan is cancelling",
                "Cancelled: the applier stopped before this action had any effect.".to_string(),
            ),
            Reconciled::NotStarted => (
                ActionState::Pending,
                "restart: the action had no effect in the cloud; it runs again",
                "Interrupted by an applier restart before it had any effect; running again."
                    .to_string(),
            ),
            Reconciled::Finished(Outcome::Succeeded(m)) => (
                ActionState::Succeeded,
                "restart: the cloud says it completed",
                m.unwrap_or_default(),
            ),
            Reconciled::Finished(Outcome::Failed(m)) => {
                (ActionState::Failed, "restart: the cloud says it failed", m)
            }
            Reconciled::Finished(Outcome::Cancelled(m)) => (
                ActionState::Cancelled,
                "restart: the cloud says it was rolled back",
                m,
            ),
        };
        let to = if to == ActionState::Pending && from == ActionState::Cancelling {
            ActionState::Cancelled
        } else {
            to
        };
        self.store
            .transition_action(
                action.action_plan_uuid,
                action.uuid,
                from,
                to,
                Actor::Recovery,
                reason,
                Some(message),
            )
            .await?;
        Ok(Some(to))
    }

    /// `rollback_on_cancel`: undoes SUCCEEDED actions in reverse dependency
    /// order, one at a time, recording each as CANCELLED (undone) or FAILED.
    async fn roll_back(&self, plan: Uuid, nodes: &mut [Node]) -> Result<(), StoreError> {
        for i in topological_order(nodes).into_iter().rev() {
            let node = &nodes[i];
            if node.action.state != ActionState::Succeeded {
                continue;
            }
            let Some(plugin) = self.registry.get(&node.action.action_type) else {
                continue;
            };
            if !plugin.can_revert() {
                continue;
            }
            let ctx = self.context(&node.action);
            let (to, reason, message) = match plugin.revert(&ctx).await {
                Ok(m) => (ActionState::Cancelled, "rolled back on cancel", m),
                Err(e) => (
                    ActionState::Failed,
                    "rollback on cancel failed",
                    format!(
                        "Rollback on cancel failed: {e}; the action's effect is still in place."
                    ),
                ),
            };
            info!(action = %node.action.uuid, state = %to, "rollback");
            self.store
                .transition_action(
                    plan,
                    node.action.uuid,
                    ActionState::Succeeded,
                    to,
                    Actor::Applier,
                    reason,
                    Some(message),
                )
                .await?;
            nodes[i].action.state = to;
        }
        Ok(())
    }

    /// Derives the plan's final state from its actions and writes it.
    // Long because the plan's final state, its message and the late-cancel race are decided together, in one transaction's worth of reasoning.
    async fn finish_plan(
        &self,
        plan: Uuid,
        nodes: &[Node],
        cancelled: bool,
    ) -> Result<ActionPlanState, StoreError> {
        let failed: Vec<String> = nodes
            .iter()
            .filter(|n| n.action.state == ActionState::Failed)
            .map(|n| format!("{} ({})", n.action.uuid, n.action.action_type))
            .collect();
        let skipped = nodes.iter().any(|n| n.action.state == ActionState::Skipped);
        let count = |s: ActionState| nodes.iter().filter(|n| n.action.state == s).count();
        let (from, to, reason, message) = if cancelled {
            if failed.is_empty() {
                (
                    ActionPlanState::Cancelling,
                    ActionPlanState::Cancelled,
                    "cancel complete",
                    format!(
                        "Cancelled: {} action(s) cancelled, {} had already finished.",
                        count(ActionState::Cancelled),
                        count(ActionState::Succeeded) + count(ActionState::Skipped)
                    ),
                )
            } else {
                (
                    ActionPlanState::Cancelling,
                    ActionPlanState::Failed,
                    "cancel finished with failed actions",
                    format!(
                        "Cancel finished but {} action(s) failed: {}",
                        failed.len(),
                        failed.join(", ")
                    ),
                )
            }
        } else if failed.is_empty() {
            (
                ActionPlanState::Ongoing,
                ActionPlanState::Succeeded,
                "all actions finished",
                if skipped {
                    "One or more actions were skipped.".into()
                } else {
                    String::new()
                },
            )
        } else {
            (
                ActionPlanState::Ongoing,
                ActionPlanState::Failed,
                "one or more actions failed",
                format!("{} action(s) failed: {}", failed.len(), failed.join(", ")),
            )
        };
        let update = PlanUpdate {
            status_message: (!message.is_empty()).then_some(message.clone()),
            hostname: None,
            lease_until: None,
        };
        match self
            .store
            .transition_plan(plan, from, to, Actor::Applier, reason, update)
            .await
        {
            Ok(_) => {
                info!(state = %to, "plan finished");
                Ok(to)
            }
            Err(StoreError::Conflict { current, .. })
                if current == EntityState::ActionPlan(ActionPlanState::Cancelling)
                    && from == ActionPlanState::Ongoing =>
            {
                // The cancel arrived after the last action had settled: nothing was left to abort.
                let message = format!("Cancel arrived after every action had finished. {message}");
                let update = PlanUpdate {
                    status_message: Some(message),
                    hostname: None,
                    lease_until: None,
                };
                self.store
                    .transition_plan(
                        plan,
                        ActionPlanState::Cancelling,
                        to,
                        Actor::Applier,
                        "cancel arrived after the last action",
                        update,
                    )
                    .await?;
                Ok(to)
            }
            Err(e) => Err(e),
        }
    }
}

enum Settle {
    Done,
    BackToPending,
    PlanStopped,
}

/// Parents before children (Kahn's algorithm); creation order among equals.
fn topological_order(nodes: &[Node]) -> Vec<usize> {
    let mut waiting: Vec<usize> = vec![0; nodes.len()];
    for n in nodes {
        for &c in &n.children {
            waiting[c] += 1;
        }
    }
    let mut queue: VecDeque<usize> = (0..nodes.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = queue.pop_front() {
        order.push(i);
        for &c in &nodes[i].children {
            waiting[c] -= 1;
            if waiting[c] == 0 {
                queue.push_back(c);
            }
        }
    }
    order
}

fn release_children(nodes: &mut [Node], i: usize, ready: &mut HashMap<String, VecDeque<usize>>) {
    let children = nodes[i].children.clone();
    for c in children {
        let n = &mut nodes[c];
        n.waiting_on = n.waiting_on.saturating_sub(1);
        if n.waiting_on == 0 && n.action.state == ActionState::Pending {
            ready
                .entry(n.action.action_type.clone())
                .or_default()
                .push_back(c);
        }
    }
}
