//! The dashboard's pages with many plans stored.

use crate::fixtures::{make_plan, nops, temp_dir};
use crate::processes::spawn_watcherd;
use crate::report::{ms, pct};
use anyhow::Context;
use std::time::{Duration, Instant};
use watcher_core::*;
use watcher_store::*;

/// Fills a SQLite file with `plans` RECOMMENDED plans (one nop each), then
/// starts the real watcherd on it and measures, with no request coming in,
/// its CPU over `seconds` and its RSS; then the p50 and p99 of list requests.
/// The dashboard's overview and a plan's page, 100 times each, on a
/// database holding `plans` plans of `actions` nops (every tenth cancelled).
// Long because it fills the database, starts watcherd and times each page, in that order.
pub(crate) fn dashboard_pages(
    plans: usize,
    actions: usize,
) -> anyhow::Result<Vec<(String, Vec<Duration>)>> {
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
                                    StateChange::new(
                                        ActionPlanState::Recommended,
                                        ActionPlanState::Cancelled,
                                        Actor::Api,
                                        "cancelled by operator",
                                    ),
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

/// `watcher-bench dashboard`.
pub fn print_pages(plans: usize, actions: usize) -> anyhow::Result<()> {
    for (what, mut lat) in dashboard_pages(plans, actions)? {
        println!(
            "| {what}, {plans} plans of {actions} actions stored | p50 {}, p99 {} | < 100 ms |",
            ms(pct(&mut lat, 0.5)),
            ms(pct(&mut lat, 0.99))
        );
    }
    Ok(())
}
