//! The decision engine: runs audits, turns a strategy's solution into an
//! action plan with the weight planner, and expires old recommendations.

pub mod planner;
pub mod strategies;

use crate::applier::actions::ActionRegistry;
use crate::cloud::Cloud;
use crate::core::{ActionPlanState, Actor, Audit, AuditState, AuditType};
use crate::store::{Heartbeat, NewPlan, PlanUpdate, Store, StoreError, StoreEvent};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

/// Registers the goals and strategies this build knows.
pub async fn sync_catalogue(store: &Store) -> Result<(), StoreError> {
    for g in strategies::GOALS {
        store.upsert_goal(g.name, g.display_name, vec![]).await?;
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

#[derive(Clone)]
pub struct DecisionEngine {
    store: Store,
    cloud: Arc<dyn Cloud>,
    registry: ActionRegistry,
    settings: DecisionSettings,
    shutdown: CancellationToken,
}

impl DecisionEngine {
    pub fn new(
        store: Store,
        cloud: Arc<dyn Cloud>,
        settings: DecisionSettings,
        shutdown: CancellationToken,
    ) -> Self {
        DecisionEngine {
            store,
            cloud,
            registry: ActionRegistry::default(),
            settings,
            shutdown,
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
        self.sweep().await;
        let mut sweep = tokio::time::interval(self.settings.sweep_interval);
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(StoreEvent::AuditState { uuid, state: AuditState::Pending | AuditState::Succeeded }) => {
                        self.run_audit(uuid).await
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => self.sweep().await,
                    Err(RecvError::Closed) => break,
                },
                _ = sweep.tick() => {
                    heartbeat.beat().await;
                    self.sweep().await;
                }
                _ = self.shutdown.cancelled() => break,
            }
        }
        info!("decision engine stopped");
    }

    async fn sweep(&self) {
        match self.store.audits_in_state(AuditState::Pending).await {
            Ok(audits) => {
                for a in audits
                    .into_iter()
                    .filter(|a| a.audit_type == AuditType::Oneshot)
                {
                    self.run_audit(a.uuid).await;
                }
            }
            Err(e) => warn!(error = %e, "could not read pending audits"),
        }
        match self.store.triggered_audits().await {
            Ok(audits) => {
                for a in audits {
                    self.run_audit(a.uuid).await;
                }
            }
            Err(e) => warn!(error = %e, "could not read triggered audits"),
        }
        self.expire_recommendations().await;
    }

    async fn expire_recommendations(&self) {
        if self.settings.action_plan_expiry.is_zero() {
            return;
        }
        let Ok(plans) = self
            .store
            .plans_in_states(&[ActionPlanState::Recommended])
            .await
        else {
            return;
        };
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(self.settings.action_plan_expiry)
                .unwrap_or(chrono::Duration::MAX);
        for p in plans.into_iter().filter(|p| p.created_at < cutoff) {
            let _ = self
                .store
                .transition_plan(
                    p.uuid,
                    ActionPlanState::Recommended,
                    ActionPlanState::Superseded,
                    Actor::DecisionEngine,
                    "expired (action_plan_expiry)",
                    PlanUpdate::default(),
                )
                .await;
        }
    }

    /// Runs one ONESHOT audit: PENDING -> ONGOING -> (plan created, SUCCEEDED) | FAILED | CANCELLED.
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
        if !audit.force && audit.audit_type == AuditType::Oneshot {
            let busy = self
                .store
                .plans_in_states(&[ActionPlanState::Ongoing])
                .await
                .map(|p| !p.is_empty());
            if busy.unwrap_or(false) {
                let _ = self
                    .store
                    .transition_audit(
                        uuid,
                        AuditState::Pending,
                        AuditState::Cancelled,
                        Actor::DecisionEngine,
                        "an action plan is ONGOING",
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
                audit.state,
                AuditState::Ongoing,
                Actor::DecisionEngine,
                if audit.triggered {
                    "audit triggered by its webhook"
                } else {
                    "audit started"
                },
                None,
                Some(self.settings.host.clone()),
            )
            .await
        {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => return, // cancelled or taken meanwhile
            Err(e) => return warn!(audit = %uuid, error = %e, "could not start audit"),
        }
        if let Err(message) = self.plan_audit(&audit).await {
            warn!(audit = %uuid, error = %message, "audit failed");
            let _ = self
                .store
                .transition_audit(
                    uuid,
                    AuditState::Ongoing,
                    AuditState::Failed,
                    Actor::DecisionEngine,
                    "strategy failed",
                    Some(message),
                    None,
                )
                .await;
        }
    }

    async fn plan_audit(&self, audit: &Audit) -> Result<(), String> {
        let strategy_name = match &audit.strategy_name {
            Some(s) => s.clone(),
            None => strategies::STRATEGIES
                .iter()
                .find(|s| s.goal == audit.goal_name)
                .map(|s| s.name.to_string())
                .ok_or_else(|| format!("no strategy achieves goal {}", audit.goal_name))?,
        };
        let solution = strategies::execute(
            &strategy_name,
            &audit.parameters,
            self.cloud.as_ref(),
            &self.registry,
        )
        .await
        .map_err(|e| e.to_string())?;
        let actions = self.settings.planner.schedule(solution.actions);
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
            })
            .await
            .map_err(|e| e.to_string())?;
        info!(audit = %audit.uuid, plan = %plan.uuid, "action plan recommended");
        Ok(())
    }
}
