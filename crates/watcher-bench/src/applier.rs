//! The applier's throughput on one plan of nops.

use crate::fixtures::{make_plan, nops, temp_dir};
use crate::report::runtime;
use anyhow::bail;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use watcher_applier::{Applier, ApplierConfig};
use watcher_cloud::scenario::Scenario;
use watcher_cloud::simulated::SimulatedCloud;
use watcher_core::*;
use watcher_store::*;

/// Actions per second of one plan of `n` nops, every change durably recorded.
/// On `database`, or a new SQLite file.
pub(crate) async fn throughput(
    n: usize,
    chain: bool,
    database: Option<&str>,
) -> anyhow::Result<(f64, usize)> {
    let dir = temp_dir("throughput");
    let location = match database {
        Some(url) => DatabaseLocation::parse(url)?,
        None => DatabaseLocation::File(dir.join("bench.db")),
    };
    let store = Store::open(&location, Durability::Normal)?;
    watcher_decision::sync_catalogue(&store).await?;
    let plan = make_plan(&store, nops(n, chain)).await?;
    let mut config = ApplierConfig {
        shutdown_grace_secs: 1.0,
        ..ApplierConfig::default()
    };
    if !chain {
        config.limits.per_plan = 512;
        config.limits.per_type.insert("nop".into(), 512);
    }
    // The real applier, as watcherd runs it: the claim on the PENDING
    // event, the fenced start of each action (one lookup per action), the
    // group commits. The clock starts at the PENDING commit.
    let shutdown = CancellationToken::new();
    let cloud = Arc::new(SimulatedCloud::new(&Scenario::demo()));
    let applier = Applier::new(
        store.clone(),
        cloud,
        config.settings("bench"),
        shutdown.clone(),
    );
    let mut events = store.subscribe();
    let running = tokio::spawn(applier.run());
    let t = Instant::now();
    store
        .transition_plan(
            plan,
            StateChange::new(
                ActionPlanState::Recommended,
                ActionPlanState::Pending,
                Actor::Api,
                "bench",
            ),
            PlanUpdate::default(),
        )
        .await?;
    let end = loop {
        match events.recv().await {
            Ok(StoreEvent::PlanState { uuid, state }) if uuid == plan && state.is_finished() => {
                break state
            }
            Ok(_) => {}
            // Every action's change is an event: the channel overflows,
            // and the plan's row says where it is.
            Err(RecvError::Lagged(_)) => {
                let state = store.get_plan(plan, true).await?.state;
                if state.is_finished() {
                    break state;
                }
            }
            Err(RecvError::Closed) => bail!("the store closed"),
        }
    };
    let secs = t.elapsed().as_secs_f64();
    shutdown.cancel();
    running.await?;
    if end != ActionPlanState::Succeeded {
        bail!("plan ended {end}");
    }
    let history = store.plan_history(plan).await?.len();
    let _ = std::fs::remove_dir_all(&dir);
    Ok((n as f64 / secs, history))
}

/// `watcher-bench throughput`.
pub fn print_throughput(actions: usize, chain: bool) -> anyhow::Result<()> {
    let (rate, history) = runtime()?.block_on(throughput(actions, chain, None))?;
    println!(
        "applier: {actions} nops, {}: {rate:.0} actions/s ({history} history rows)",
        if chain {
            "one sequential chain"
        } else {
            "512 at once"
        }
    );
    Ok(())
}
