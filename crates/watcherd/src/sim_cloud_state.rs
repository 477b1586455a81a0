//! The embedded simulated cloud kept in watcherd's database, and its reset.
//!
//! The cloud itself decides what to save and how to read it back
//! (`watcher_cloud::simulated`); this module only carries its rows to and
//! from the store, and refuses a reset that would pull the cloud from under
//! a running watcherd or a plan in flight.

use crate::config::CloudKind;
use std::sync::Arc;
use std::time::Duration;
use watcher_cloud::scenario::Scenario;
use watcher_cloud::simulated::{
    KeeperError, Resumed, RowKind, SavedRow, SimulatedCloud, StateKeeper,
};
use watcher_core::ActionPlanState;
use watcher_store::{SimCloudRow, Store, StoreError};

/// The store as the simulated cloud's keeper.
struct InDatabase(Store);

fn storage(e: StoreError) -> KeeperError {
    KeeperError::Storage(e.to_string())
}

#[async_trait::async_trait]
impl StateKeeper for InDatabase {
    async fn load(&self) -> Result<Vec<SavedRow>, KeeperError> {
        self.0
            .sim_cloud_rows()
            .await
            .map_err(storage)?
            .into_iter()
            .map(|r| {
                let kind = RowKind::parse(&r.kind).ok_or_else(|| KeeperError::Unreadable {
                    kind: "row",
                    id: format!("{}/{}", r.kind, r.id),
                    reason: format!("unknown kind '{}'", r.kind),
                })?;
                Ok(SavedRow {
                    kind,
                    id: r.id,
                    body: r.body,
                })
            })
            .collect()
    }

    async fn save(&self, save_no: u64, rows: Vec<SavedRow>) -> Result<(), KeeperError> {
        let rows = rows
            .into_iter()
            .map(|r| SimCloudRow {
                kind: r.kind.as_str().to_string(),
                id: r.id,
                body: r.body,
            })
            .collect();
        self.0
            .save_sim_cloud_rows(save_no, rows)
            .await
            .map_err(storage)
    }

    async fn clear(&self) -> Result<(), KeeperError> {
        self.0.clear_sim_cloud().await.map(drop).map_err(storage)
    }
}

/// The embedded simulated cloud of `scenario`, as this database last saw it.
pub async fn resume(store: &Store, scenario: &Scenario) -> Result<SimulatedCloud, KeeperError> {
    let (cloud, resumed) =
        SimulatedCloud::resume(scenario, Arc::new(InDatabase(store.clone()))).await?;
    match resumed {
        Resumed::Fresh => tracing::info!("simulated cloud: starting from its scenario"),
        Resumed::Saved {
            operations,
            running,
        } => tracing::info!(
            operations,
            running,
            "simulated cloud: resumed as the database saved it"
        ),
        Resumed::ScenarioChanged => tracing::warn!(
            "simulated cloud: the scenario's hosts, instances, volumes or flavors changed; \
             the saved cloud was forgotten and the new scenario starts afresh"
        ),
    }
    Ok(cloud)
}

/// A watcherd that wrote its heartbeat this recently may be running.
const MAYBE_RUNNING: Duration = Duration::from_secs(2 * watcher_store::HEARTBEAT_EVERY.as_secs());

#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error(
        "this configuration uses cloud = '{0}': only the embedded simulated cloud \
         (cloud = 'simulated') keeps its state in the database"
    )]
    NotEmbedded(CloudKind),
    #[error(
        "action plan {uuid} is {state}: it would resume on a cloud where its operations never \
         happened. Cancel it (watcher actionplan cancel {uuid}) and let it end, then reset"
    )]
    PlanInFlight { uuid: String, state: String },
    #[error(
        "watcherd's applier on {host} reported {secs} s ago: stop watcherd first, since the \
         running cloud would write over the reset. (If it is stopped already, wait {wait} s \
         or pass --force.)"
    )]
    MaybeRunning { host: String, secs: u64, wait: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Puts the embedded simulated cloud back to its scenario: the saved state
/// is removed, and the next start builds the cloud from the scenario. The
/// number of saved rows removed.
pub async fn reset(store: &Store, cloud: CloudKind, force: bool) -> Result<usize, ResetError> {
    if cloud != CloudKind::Simulated {
        return Err(ResetError::NotEmbedded(cloud));
    }
    let in_flight = store
        .plans_in_states(&[ActionPlanState::Ongoing, ActionPlanState::Cancelling])
        .await?;
    if let Some(plan) = in_flight.first() {
        return Err(ResetError::PlanInFlight {
            uuid: plan.uuid.to_string(),
            state: plan.state.as_str().to_string(),
        });
    }
    if !force {
        let now = chrono::Utc::now();
        let appliers = store.list_services(100, None, false).await?;
        let latest = appliers
            .iter()
            .filter(|s| s.name == "watcher-applier")
            .filter_map(|s| s.last_seen_up.map(|t| (s, t)))
            .max_by_key(|(_, t)| *t);
        if let Some((s, seen)) = latest {
            let ago = (now - seen).to_std().unwrap_or_default();
            if ago < MAYBE_RUNNING {
                return Err(ResetError::MaybeRunning {
                    host: s.host.clone(),
                    secs: ago.as_secs(),
                    wait: (MAYBE_RUNNING - ago).as_secs() + 1,
                });
            }
        }
    }
    Ok(store.clear_sim_cloud().await?)
}
