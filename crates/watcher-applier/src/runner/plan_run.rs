//! One run of one plan: its state, and the loop's steps as methods. The
//! loop ([`PlanRun::drive`]) only waits for the next event and hands it to
//! a step.

use super::dag::{dag, release_children, Node, ReadyQueues};
use super::task::{Report, Reports};
use super::{ActionTasks, Pause, RunContext, RunEnd};
use crate::actions::Outcome;
use std::collections::{HashMap, HashSet};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;
use watcher_core::StateChange;
use watcher_core::{Action, ActionPlan, ActionPlanState, ActionState, Actor};
use watcher_store::StoreError;

/// A write queued without waiting for its commit.
pub(super) type PendingWrite = oneshot::Receiver<Result<(), StoreError>>;

/// An action the run has started (or is following after a restart).
struct Running {
    token: CancellationToken,
    /// Whether the loop has written ONGOING -> CANCELLING for it.
    cancelling: bool,
    /// Whether it was interrupted by shutdown rather than by a cancel.
    interrupted: bool,
    /// Whether a pause that asked for it aborted it: it runs again on resume.
    requeued: bool,
}

/// How recording a report left the action.
enum Settle {
    /// Final (or settled before it started): its children may go.
    Done,
    /// Interrupted by shutdown with its effect undone: it runs again.
    BackToPending,
    /// The store refused its start: the plan stopped being ONGOING.
    PlanStopped,
}

pub(super) struct PlanRun<'a> {
    pub(super) ctx: &'a RunContext,
    pub(super) plan: Uuid,
    pub(super) nodes: Vec<Node>,
    /// Parent of every action's token; cancelled when the run ends.
    scope: CancellationToken,
    tasks: ActionTasks,
    /// Where action tasks report, and where the loop reads them.
    tx: Reports,
    rx: mpsc::UnboundedReceiver<(usize, Report)>,
    running: HashMap<usize, Running>,
    /// Writes queued without waiting; awaited before the plan's final state.
    pub(super) writes: Vec<PendingWrite>,
    ready: ReadyQueues,
    running_by_type: HashMap<String, usize>,
    running_by_host: HashMap<String, usize>,
    /// The plan is CANCELLING: start nothing, abort what runs.
    pub(super) cancelling: bool,
    /// The cancel has been applied to the actions (once per run).
    cancel_entered: bool,
    /// watcherd is stopping: start nothing, let running actions finish.
    pub(super) shutting_down: bool,
    /// The plan is PAUSED: start nothing, let running actions finish, then
    /// let the plan go.
    pub(super) paused: bool,
    /// When running actions are aborted because the shutdown grace is over.
    grace_deadline: Option<tokio::time::Instant>,
}

impl<'a> PlanRun<'a> {
    /// A run of `plan` with its `actions`; the action tokens hang under a
    /// child of `cancel`.
    pub(super) fn new(
        ctx: &'a RunContext,
        plan: &ActionPlan,
        actions: Vec<Action>,
        cancel: &CancellationToken,
        tasks: ActionTasks,
    ) -> PlanRun<'a> {
        let (tx, rx) = mpsc::unbounded_channel();
        PlanRun {
            ctx,
            plan: plan.uuid,
            nodes: dag(actions),
            scope: cancel.child_token(),
            tasks,
            tx,
            rx,
            running: HashMap::new(),
            writes: Vec::new(),
            ready: HashMap::new(),
            running_by_type: HashMap::new(),
            running_by_host: HashMap::new(),
            cancelling: plan.state == ActionPlanState::Cancelling,
            cancel_entered: false,
            shutting_down: false,
            paused: plan.state == ActionPlanState::Paused,
            grace_deadline: None,
        }
    }

    /// The loop: resume what a previous run left, then wait for an action's
    /// report, the cancel, the shutdown or the end of the shutdown's grace,
    /// and hand each to its step until nothing runs and nothing will start.
    pub(super) async fn drive(
        mut self,
        cancel: &CancellationToken,
        pause: &mut tokio::sync::watch::Receiver<Pause>,
        shutdown: &CancellationToken,
    ) -> Result<RunEnd, StoreError> {
        // The action tokens hang under this scope, which is cancelled when
        // this function returns for any reason: no action task outlives its run.
        let _abort_on_exit = self.scope.clone().drop_guard();
        let heard = *pause.borrow_and_update();
        self.hear_pause(heard);
        self.resume_interrupted_actions().await?;
        loop {
            if !self.cancelling && cancel.is_cancelled() {
                self.cancelling = true;
            }
            self.enter_cancel_once().await?;
            self.start_ready_actions();
            if self.is_over() {
                if self.paused && !self.cancelling && !self.shutting_down && self.has_pending() {
                    match self.let_go().await? {
                        None => return Ok(RunEnd::Paused),
                        // Resumed (or cancelled) before the let-go committed: go on.
                        Some(ActionPlanState::Ongoing) => self.paused = false,
                        Some(ActionPlanState::Cancelling) => self.cancelling = true,
                        Some(other) => {
                            warn!(state = %other, "paused plan changed state under the applier; stopping");
                            return Ok(RunEnd::Interrupted);
                        }
                    }
                    continue;
                }
                break;
            }
            let grace = async {
                match self.grace_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                Some((i, report)) = self.rx.recv() => {
                    // An abort may report before this loop has seen the cancel:
                    // record CANCELLING first so the outcome's transition is legal.
                    if cancel.is_cancelled() {
                        self.cancelling = true;
                        self.enter_cancel_once().await?;
                    }
                    if let Some(end) = self.record(i, report).await? {
                        return Ok(end);
                    }
                }
                _ = cancel.cancelled(), if !self.cancelling => self.cancelling = true,
                Ok(()) = pause.changed() => {
                    let heard = *pause.borrow_and_update();
                    info!(pause = ?heard, running = self.running.len(), "pause or resume");
                    self.hear_pause(heard);
                }
                _ = shutdown.cancelled(), if !self.shutting_down => self.begin_shutdown(),
                _ = grace => self.abort_after_grace(),
            }
        }
        self.conclude().await
    }

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
                        .ctx
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
        let action = &self.nodes[i].action;
        let op = self
            .ctx
            .store
            .journal(action.uuid)
            .await?
            .and_then(|j| j.operation_id);
        let token = self.scope.child_token();
        let cancelling = action.state == ActionState::Cancelling;
        if cancelling {
            token.cancel();
        }
        self.ctx
            .spawn_action(action, i, token.clone(), op, self.tx.clone(), &self.tasks);
        self.take_slots(i);
        self.running.insert(
            i,
            Running {
                token,
                cancelling,
                interrupted: false,
                requeued: false,
            },
        );
        Ok(())
    }

    /// On the first look at a CANCELLING plan: nothing more starts, PENDING
    /// actions become CANCELLED, running ones CANCELLING with their tokens
    /// fired.
    async fn enter_cancel_once(&mut self) -> Result<(), StoreError> {
        if !self.cancelling || self.cancel_entered {
            return Ok(());
        }
        self.cancel_entered = true;
        self.ready.clear();
        let store = &self.ctx.store;
        let moved = store
            .transition_plan_actions(
                self.plan,
                StateChange::new(
                    ActionState::Pending,
                    ActionState::Cancelled,
                    Actor::Applier,
                    "action plan cancelled",
                ),
                Some("Cancelled before it started: the action plan was cancelled.".into()),
            )
            .await?;
        let moved: HashSet<Uuid> = moved.into_iter().collect();
        for n in self.nodes.iter_mut() {
            if moved.contains(&n.action.uuid) {
                n.action.state = ActionState::Cancelled;
            }
        }
        // The action tokens are children of the plan's token, so aborts have
        // begun already; what remains is to record CANCELLING before any
        // outcome is recorded (the loop records outcomes only after this).
        for (i, r) in self.running.iter_mut() {
            if r.cancelling {
                continue;
            }
            let node = &mut self.nodes[*i];
            match store
                .transition_action(
                    self.plan,
                    node.action.uuid,
                    StateChange::new(
                        ActionState::Ongoing,
                        ActionState::Cancelling,
                        Actor::Applier,
                        "action plan cancelled: aborting",
                    ),
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
            aborting = self.running.len(),
            "cancel: pending actions cancelled, running ones aborting"
        );
        Ok(())
    }

    /// Starts every ready action the limits allow, unless the plan is
    /// cancelling or watcherd stopping.
    fn start_ready_actions(&mut self) {
        if self.cancelling || self.shutting_down || self.paused {
            return;
        }
        let limits = &self.ctx.limits;
        let types: Vec<String> = self.ready.keys().cloned().collect();
        for t in types {
            let type_limit = limits.for_type(&t);
            let mut queue = self.ready.remove(&t).unwrap_or_default();
            let mut skipped = std::collections::VecDeque::new();
            while self.running.len() < limits.per_plan
                && self.running_by_type.get(&t).copied().unwrap_or(0) < type_limit
            {
                let Some(i) = queue.pop_front() else { break };
                let node = &self.nodes[i];
                if self.running.contains_key(&i) || node.action.state != ActionState::Pending {
                    continue;
                }
                let host_busy = node
                    .hosts
                    .iter()
                    .any(|h| self.running_by_host.get(h).copied().unwrap_or(0) >= limits.per_host);
                if host_busy {
                    skipped.push_back(i);
                    if skipped.len() >= 64 {
                        break;
                    }
                    continue;
                }
                let token = self.scope.child_token();
                self.ctx.spawn_action(
                    &node.action,
                    i,
                    token.clone(),
                    None,
                    self.tx.clone(),
                    &self.tasks,
                );
                self.take_slots(i);
                self.running.insert(
                    i,
                    Running {
                        token,
                        cancelling: false,
                        interrupted: false,
                        requeued: false,
                    },
                );
            }
            while let Some(i) = skipped.pop_back() {
                queue.push_front(i);
            }
            if !queue.is_empty() {
                self.ready.insert(t, queue);
            }
        }
    }

    /// Action `i` runs: it counts against its type's and its hosts' limits.
    fn take_slots(&mut self, i: usize) {
        let node = &self.nodes[i];
        *self
            .running_by_type
            .entry(node.action.action_type.clone())
            .or_default() += 1;
        for h in &node.hosts {
            *self.running_by_host.entry(h.clone()).or_default() += 1;
        }
    }

    /// Action `i` stopped running: its slots are free again.
    fn free_slots(&mut self, i: usize) {
        let node = &self.nodes[i];
        if let Some(n) = self.running_by_type.get_mut(&node.action.action_type) {
            *n = n.saturating_sub(1);
        }
        for h in &node.hosts {
            if let Some(n) = self.running_by_host.get_mut(h) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Nothing runs and nothing more will start.
    fn is_over(&self) -> bool {
        self.running.is_empty()
            && (self.ready.is_empty() || self.cancelling || self.shutting_down || self.paused)
    }

    /// A pause, its abort of the running actions, or a resume.
    fn hear_pause(&mut self, heard: Pause) {
        self.paused = heard != Pause::No;
        if heard == Pause::Aborting && !self.cancelling {
            for r in self.running.values_mut().filter(|r| !r.requeued) {
                r.requeued = true;
                r.token.cancel();
            }
        }
    }

    fn has_pending(&self) -> bool {
        self.nodes
            .iter()
            .any(|n| n.action.state == ActionState::Pending)
    }

    /// A PAUSED plan with nothing running is let go (no holder, no lease),
    /// once the writes of its finished actions have committed. None when
    /// it was; else the plan's state now.
    async fn let_go(&mut self) -> Result<Option<ActionPlanState>, StoreError> {
        for w in self.writes.drain(..) {
            w.await.map_err(|_| StoreError::Closed)??;
        }
        let Some(host) = self.ctx.owner.clone() else {
            return Ok(None);
        };
        self.ctx.store.release_paused_plan(self.plan, host).await
    }

    /// Records what action `i` reported. `Some` ends the run early: the
    /// plan changed state under this applier.
    async fn record(&mut self, i: usize, report: Report) -> Result<Option<RunEnd>, StoreError> {
        let r = self.running.remove(&i);
        self.free_slots(i);
        let from = match &r {
            Some(r) if r.cancelling => ActionState::Cancelling,
            _ => ActionState::Ongoing,
        };
        let interrupted = r.as_ref().is_some_and(|r| r.interrupted);
        let requeued = r.as_ref().is_some_and(|r| r.requeued);
        match self
            .record_report(i, from, report, interrupted, requeued)
            .await?
        {
            Settle::Done => release_children(&mut self.nodes, i, &mut self.ready),
            // Aborted by a pause: it waits in the queue for the resume.
            Settle::BackToPending if requeued => {
                let t = self.nodes[i].action.action_type.clone();
                self.ready.entry(t).or_default().push_front(i);
            }
            Settle::BackToPending => {}
            Settle::PlanStopped => return self.after_refused_start(i).await,
        }
        Ok(None)
    }

    /// Writes what action `i`'s task reported. Completion writes are queued,
    /// not awaited, so a finished action's write and its children's starts
    /// share a commit; they are awaited before the plan's final write.
    async fn record_report(
        &mut self,
        i: usize,
        from: ActionState,
        report: Report,
        interrupted: bool,
        requeued: bool,
    ) -> Result<Settle, StoreError> {
        let outcome = match report {
            // Refused because the plan stopped; the cancel path settles it.
            Report::NotStarted => return Ok(Settle::PlanStopped),
            Report::Skipped(m) => {
                let msg = format!("Action was skipped automatically: {m}");
                let reason = "pre-condition: nothing to do";
                return self
                    .settle_unstarted(i, ActionState::Skipped, reason, msg)
                    .await;
            }
            Report::PreconditionFailed(m) => {
                let msg = format!("Action failed in pre_condition: {m}");
                let reason = "pre-condition failed";
                return self
                    .settle_unstarted(i, ActionState::Failed, reason, msg)
                    .await;
            }
            Report::Finished(outcome) => outcome,
        };
        let (plan, uuid) = (self.plan, self.nodes[i].action.uuid);
        let store = &self.ctx.store;
        let cancelling = from == ActionState::Cancelling;
        let (to, reason, message) = match outcome {
            // Aborted by shutdown, or by a pause that asked for it, with its
            // effect undone: it runs again at the next start, or on resume.
            Outcome::Cancelled(m) if (interrupted || requeued) && !cancelling => {
                let (actor, reason) = if requeued {
                    (Actor::Applier, "aborted by the pause; runs again on resume")
                } else {
                    (
                        Actor::Recovery,
                        "interrupted by shutdown; runs again at the next start",
                    )
                };
                store
                    .transition_action(
                        plan,
                        uuid,
                        StateChange::new(from, ActionState::Pending, actor, reason),
                        Some(m),
                    )
                    .await?;
                self.nodes[i].action.state = ActionState::Pending;
                return Ok(Settle::BackToPending);
            }
            Outcome::Succeeded(m) => (
                ActionState::Succeeded,
                if cancelling {
                    "finished before the abort took effect"
                } else {
                    "succeeded"
                },
                m,
            ),
            Outcome::Failed(m) => (
                ActionState::Failed,
                if cancelling { "abort failed" } else { "failed" },
                Some(m),
            ),
            Outcome::Cancelled(m) => (ActionState::Cancelled, "aborted on cancel", Some(m)),
        };
        self.writes.push(store.enqueue_transition_action(
            plan,
            uuid,
            StateChange::new(from, to, Actor::Applier, reason),
            message,
        ));
        self.nodes[i].action.state = to;
        Ok(Settle::Done)
    }

    /// A pre-condition verdict for action `i`, which never started; a cancel
    /// may have settled the action first, which is fine.
    async fn settle_unstarted(
        &mut self,
        i: usize,
        to: ActionState,
        reason: &str,
        message: String,
    ) -> Result<Settle, StoreError> {
        let action = &mut self.nodes[i].action;
        match self
            .ctx
            .store
            .transition_action(
                self.plan,
                action.uuid,
                StateChange::new(ActionState::Pending, to, Actor::Applier, reason),
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

    /// The store refused to start action `i`: find out why before going on.
    async fn after_refused_start(&mut self, i: usize) -> Result<Option<RunEnd>, StoreError> {
        let store = &self.ctx.store;
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
            // Paused before it started: it waits in the queue for the resume.
            ActionPlanState::Paused => {
                self.paused = true;
                let t = self.nodes[i].action.action_type.clone();
                self.ready.entry(t).or_default().push_front(i);
            }
            other => {
                warn!(state = %other, "plan changed state under the applier; stopping");
                return Ok(Some(RunEnd::Interrupted));
            }
        }
        Ok(None)
    }

    fn begin_shutdown(&mut self) {
        self.shutting_down = true;
        self.grace_deadline = Some(tokio::time::Instant::now() + self.ctx.shutdown_grace);
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
}
