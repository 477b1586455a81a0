//! What the benchmarks start from: plans of nops made straight in the
//! store, history rows, temporary directories, the run's sizes.

use serde_json::json;
use std::path::PathBuf;
use uuid::Uuid;
use watcher_core::*;
use watcher_store::*;

pub(crate) struct Opts {
    pub(crate) actions: usize,
    /// PENDING actions behind the running sleep in cancel case (a).
    pub(crate) pending: usize,
    pub(crate) runs: usize,
    pub(crate) requests: usize,
}

pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("watcher-bench-{name}-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A recommended plan made straight in the store (no decision engine).
pub(crate) async fn make_plan(store: &Store, actions: Vec<NewAction>) -> anyhow::Result<Uuid> {
    let goal = store.get_goal("unclassified").await?;
    let strategy = store.get_strategy("actuator").await?;
    let audit = store
        .create_audit(NewAudit {
            uuid: Uuid::new_v4(),
            name: "bench".into(),
            audit_type: AuditType::Oneshot,
            goal_id: goal.id,
            strategy_id: Some(strategy.id),
            parameters: json!({}),
            interval: None,
            scope: json!([]),
            auto_trigger: false,
            force: true,
            start_time: None,
            end_time: None,
        })
        .await?;
    store
        .transition_audit(
            audit.uuid,
            StateChange::new(
                AuditState::Pending,
                AuditState::Ongoing,
                Actor::DecisionEngine,
                "bench",
            ),
            None,
            None,
        )
        .await?;
    let plan = store
        .create_plan(NewPlan {
            uuid: Uuid::new_v4(),
            audit_uuid: audit.uuid,
            strategy_name: "actuator".into(),
            actions,
            efficacy_indicators: vec![],
            global_efficacy: vec![],
            hostname: "bench".into(),
            next_run_time: None,
        })
        .await?;
    Ok(plan.uuid)
}

/// `plans` RECOMMENDED plans of `actions` nops each written at `location`
/// (its catalogue first), before any watcherd runs on it; their uuids.
pub(crate) fn plans_of_nops(
    location: &DatabaseLocation,
    plans: usize,
    actions: usize,
) -> anyhow::Result<Vec<Uuid>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = Store::open(location, Durability::Normal)?;
        watcher_decision::sync_catalogue(&store).await?;
        let mut uuids = vec![];
        for _ in 0..plans {
            uuids.push(make_plan(&store, nops(actions, false)).await?);
        }
        store.truncate_wal().await?;
        anyhow::Ok(uuids)
    })
}

pub(crate) fn nops(n: usize, chain: bool) -> Vec<NewAction> {
    let mut out: Vec<NewAction> = Vec::with_capacity(n);
    for i in 0..n {
        let parents = if chain && i > 0 {
            vec![out[i - 1].uuid]
        } else {
            vec![]
        };
        out.push(NewAction {
            uuid: Uuid::new_v4(),
            action_type: "nop".into(),
            input_parameters: json!({"message": null}),
            parents,
        });
    }
    out
}

/// Adds history rows (copies of the first ones, renumbered) until the file
/// at `db` holds `rows`: a long-lived cloud's history, without running it.
pub(crate) fn grow_history(db: &std::path::Path, rows: i64) -> anyhow::Result<i64> {
    let conn = rusqlite::Connection::open(db)?;
    loop {
        let have: i64 = conn.query_row("SELECT COUNT(*) FROM state_history", [], |r| r.get(0))?;
        if have >= rows {
            return Ok(have);
        }
        conn.execute(
            "INSERT INTO state_history (entity, uuid, action_plan_uuid, from_state, to_state, actor, reason, at) \
             SELECT entity, uuid, action_plan_uuid, from_state, to_state, actor, reason, at \
             FROM state_history ORDER BY seq LIMIT ?1",
            [(rows - have).min(have)],
        )?;
    }
}
