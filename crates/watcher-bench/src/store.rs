//! The store alone: big plans written while another process cancels, and
//! the WAL under a burst of writes.

use crate::fixtures::{make_plan, nops, temp_dir};
use crate::report::{ms, pct, runtime};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use watcher_core::*;
use watcher_store::*;

/// Creates `plans` plans of `n` actions through one store while a second
/// store on the same database (another process, as far as the database
/// can tell) cancels recommended plans one after another: the creation
/// times, and the commit time of every cancel that overlapped a creation.
pub(crate) async fn big_plan_creation(
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
                        StateChange::new(
                            ActionPlanState::Recommended,
                            ActionPlanState::Cancelled,
                            Actor::Api,
                            "bench",
                        ),
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

/// A write burst on an embedded SQLite file while readers list continuously
/// (each list a read snapshot the checkpointer must wait for): the largest
/// WAL seen during it, and the WAL's size once writes have paused.
// Long because the writers, the readers and the WAL sampler are set up and joined here,
// each a few lines.
pub(crate) async fn wal_burst(audits: usize) -> anyhow::Result<(Duration, u64, u64)> {
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

/// `watcher-bench big-plan`.
pub fn print_big_plan(actions: usize, plans: usize, database: Option<&str>) -> anyhow::Result<()> {
    let rt = runtime()?;
    let (mut create, mut cancels) = rt.block_on(big_plan_creation(actions, plans, database))?;
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
    Ok(())
}

/// `watcher-bench wal-burst`.
pub fn print_wal_burst(audits: usize) -> anyhow::Result<()> {
    let (took, max, after) = runtime()?.block_on(wal_burst(audits))?;
    println!(
        "WAL under a burst of {audits} audits in {:.1} s (4 readers listing): largest {:.1} MiB, {:.1} MiB once writes paused",
        took.as_secs_f64(),
        max as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    Ok(())
}
