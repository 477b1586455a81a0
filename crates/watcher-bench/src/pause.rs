//! Pause and resume across processes on PostgreSQL: the API, two appliers
//! and the decision engine as processes, one wide plan of nops running; a
//! thousand times over, the plan is paused (and is it really: no action
//! started after the pause committed?), then resumed. Timed from the
//! plan's own history, read straight from the database: pause committed ->
//! the applier let it go (nothing runs, nothing starts), resume committed
//! -> the first action started again.

use crate::fixtures::plans_of_nops;
use crate::processes::http;
use crate::report::{ms, pct, print_rows};
use crate::split::split_deployment;
use anyhow::{bail, Context};
use serde_json::json;
use std::time::{Duration, Instant};
use watcher_store::DatabaseLocation;

/// What one history row says, as far as this bench needs.
struct Row {
    seq: i64,
    entity: String,
    to_state: String,
    reason: String,
    at: i64,
}

/// The plan's history rows after `after`, in commit order.
fn rows_after(db: &mut postgres::Client, plan: &str, after: i64) -> anyhow::Result<Vec<Row>> {
    Ok(db
        .query(
            "SELECT seq, entity, to_state, reason, at FROM state_history \
             WHERE action_plan_uuid = $1 AND seq > $2 ORDER BY seq LIMIT 5000",
            &[&plan, &after],
        )?
        .iter()
        .map(|r| Row {
            seq: r.get(0),
            entity: r.get(1),
            to_state: r.get(2),
            reason: r.get(3),
            at: r.get(4),
        })
        .collect())
}

/// Polls the plan's history after `after` until `found` picks a row.
fn wait_row(
    db: &mut postgres::Client,
    plan: &str,
    after: i64,
    what: &str,
    found: impl Fn(&Row) -> bool,
) -> anyhow::Result<Row> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut from = after;
    loop {
        for r in rows_after(db, plan, from)? {
            from = r.seq;
            if found(&r) {
                return Ok(r);
            }
        }
        if Instant::now() > deadline {
            bail!("no {what} in plan {plan}'s history within 30 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Pauses and resumes per plan, and the plans' size: enough nops for each
/// resume to run a few before the next pause.
const TRIALS_PER_PLAN: usize = 50;
const PLAN_ACTIONS: usize = 1_000;

pub fn print_pause(database: &str, trials: usize) -> anyhow::Result<()> {
    if !database.starts_with("postgres") {
        bail!("the pause benchmark reads the history from PostgreSQL: give a postgres:// URL");
    }
    // Plans of a size an operator pauses (a night of maintenance), each
    // paused and resumed TRIALS_PER_PLAN times: a resume re-reads its plan,
    // so one plan of 60,000 actions would time the read, not the resume.
    let plans: Vec<String> = plans_of_nops(
        &DatabaseLocation::parse(database)?,
        trials.div_ceil(TRIALS_PER_PLAN),
        PLAN_ACTIONS,
    )?
    .iter()
    .map(ToString::to_string)
    .collect();
    let split = split_deployment(Some(database), 2, "")?;
    let url = &split.url;
    let mut db = postgres::Client::connect(database, postgres::NoTls)
        .with_context(|| format!("cannot reach {database}"))?;
    let (mut to_pause, mut to_let_go, mut to_resume, mut to_claim, mut to_restart) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut started_while_paused = 0usize;
    for (n, plan) in plans.iter().enumerate() {
        http(
            "POST",
            &format!("{url}/v1/action_plans/{plan}/start"),
            Some(&json!({})),
        )?;
        let mut last = wait_row(&mut db, plan, 0, "action start", |r| {
            r.entity == "action" && r.to_state == "ONGOING"
        })?
        .seq;
        let here = TRIALS_PER_PLAN.min(trials - n * TRIALS_PER_PLAN);
        for _ in 0..here {
            let sent = Instant::now();
            http(
                "POST",
                &format!("{url}/v1/x-watcherd/action_plans/{plan}/pause"),
                Some(&json!({"reason": "bench"})),
            )?;
            to_pause.push(sent.elapsed());
            let paused = wait_row(&mut db, plan, last, "pause", |r| {
                r.entity == "action_plan"
                    && r.to_state == "PAUSED"
                    && r.reason.starts_with("paused by operator")
            })?;
            let let_go = wait_row(&mut db, plan, paused.seq, "let-go", |r| {
                r.reason.contains("lets it go")
            })?;
            to_let_go.push(Duration::from_micros((let_go.at - paused.at).max(0) as u64));
            let sent = Instant::now();
            http(
                "POST",
                &format!("{url}/v1/x-watcherd/action_plans/{plan}/resume"),
                None,
            )?;
            to_resume.push(sent.elapsed());
            let resumed = wait_row(&mut db, plan, let_go.seq, "resume", |r| {
                r.entity == "action_plan" && r.reason.starts_with("resumed by operator")
            })?;
            // Between the pause and the resume, nothing started.
            started_while_paused += rows_after(&mut db, plan, paused.seq)?
                .iter()
                .filter(|r| r.seq < resumed.seq && r.entity == "action" && r.to_state == "ONGOING")
                .count();
            let claimed = wait_row(&mut db, plan, resumed.seq, "claim after the resume", |r| {
                r.entity == "action_plan" && r.to_state == "ONGOING"
            })?;
            to_claim.push(Duration::from_micros(
                (claimed.at - resumed.at).max(0) as u64
            ));
            let first = wait_row(&mut db, plan, resumed.seq, "start after the resume", |r| {
                r.entity == "action" && r.to_state == "ONGOING"
            })?;
            to_restart.push(Duration::from_micros((first.at - resumed.at).max(0) as u64));
            // A few actions run before the next pause.
            last = wait_row(&mut db, plan, first.seq + 10, "more starts", |r| {
                r.entity == "action" && r.to_state == "ONGOING"
            })?
            .seq;
        }
        let _ = crate::processes::cancel_and_settle(url, plan);
    }
    let row = |name: &str, v: &mut Vec<Duration>, target: &'static str| {
        (
            format!("{name} ({trials} trials)"),
            format!(
                "p50 {}, p99 {}, max {}",
                ms(pct(v, 0.5)),
                ms(pct(v, 0.99)),
                ms(pct(v, 1.0))
            ),
            target,
        )
    };
    println!(
        "pause and resume across processes on PostgreSQL: API, 2 appliers, decision engine; \
         plans of {PLAN_ACTIONS} nops, {TRIALS_PER_PLAN} trials each"
    );
    print_rows(&[
        (
            "actions started after a pause committed, before its resume".into(),
            format!("{started_while_paused} in {trials} trials"),
            "0 in 1,000",
        ),
        row("POST pause -> 200 (client)", &mut to_pause, "-"),
        row(
            "pause committed -> applier let the plan go (history times)",
            &mut to_let_go,
            "p99 < 10 ms",
        ),
        row("POST resume -> 200 (client)", &mut to_resume, "-"),
        row(
            "resume committed -> an applier claimed the plan (history times)",
            &mut to_claim,
            "p99 < 10 ms",
        ),
        row(
            "resume committed -> first action started again (history times)",
            &mut to_restart,
            "-",
        ),
    ]);
    Ok(())
}
