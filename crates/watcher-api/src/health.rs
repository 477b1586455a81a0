//! `/healthz` and `/metrics` (our additions): what an operator's load
//! balancer and Prometheus ask. Both answer without a token, like `/`.
//!
//! Metrics come from the database: gauges are counted at scrape time;
//! histograms (action durations by type, cancel latency) are counters fed
//! by the history rows written since this process started, read
//! incrementally at each scrape, so they follow Prometheus's counter rules
//! (they restart at zero with the process).

use super::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Arc;
use tokio::sync::Mutex;
use uuid::Uuid;
use watcher_core::{ActionPlanState, ActionState, EntityState, HistoryEntry};

/// Upper bounds (seconds) of the action-duration buckets.
const DURATION_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];
/// Upper bounds (seconds) of the cancel-latency buckets: a cancel is
/// expected in milliseconds, an abort of a live migration in seconds.
const CANCEL_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len()];
        }
        for (c, b) in self.counts.iter_mut().zip(bounds) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in bounds.iter().enumerate() {
            let c = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// The histograms and where in the history they stand.
#[derive(Debug, Default)]
pub struct Tally {
    cursor: Option<i64>,
    /// When each running action started; when each cancelling plan was asked to stop.
    started: HashMap<Uuid, chrono::DateTime<chrono::Utc>>,
    cancelling: HashMap<Uuid, chrono::DateTime<chrono::Utc>>,
    durations: BTreeMap<String, Histogram>,
    cancel_latency: Histogram,
    /// Plans taken over from an applier whose lease expired.
    takeovers: u64,
}

pub type SharedTally = Arc<Mutex<Tally>>;

impl Tally {
    /// Feeds the rows written since the last scrape (or, at the first,
    /// starts from now).
    async fn catch_up(&mut self, state: &AppState) -> Result<(), watcher_store::StoreError> {
        let Some(mut cursor) = self.cursor else {
            self.cursor = Some(state.store.history_position().await?.0);
            return Ok(());
        };
        loop {
            let rows = state.store.history_after(cursor, 2000).await?;
            let Some(last) = rows.last().map(|r| r.seq) else {
                break;
            };
            let ended: Vec<Uuid> = rows
                .iter()
                .filter(|r| r.ends_action_run())
                .map(|r| r.uuid)
                .collect();
            let types = state.store.action_types(ended).await?;
            for r in &rows {
                self.feed(r, &types);
            }
            cursor = last;
            self.cursor = Some(last);
        }
        Ok(())
    }

    fn feed(&mut self, r: &HistoryEntry, types: &HashMap<Uuid, String>) {
        use ActionPlanState as P;
        if r.is_takeover() {
            self.takeovers += 1;
            return;
        }
        match (r.from_state, r.to_state) {
            (_, EntityState::Action(ActionState::Ongoing)) => {
                self.started.insert(r.uuid, r.at);
            }
            _ if r.ends_action_run() => {
                if let Some(t0) = self.started.remove(&r.uuid) {
                    let ty = types
                        .get(&r.uuid)
                        .cloned()
                        .unwrap_or_else(|| "unknown".into());
                    let secs = (r.at - t0).num_microseconds().unwrap_or(0) as f64 / 1e6;
                    self.durations
                        .entry(ty)
                        .or_default()
                        .observe(DURATION_BUCKETS, secs);
                }
            }
            (_, EntityState::ActionPlan(P::Cancelling)) => {
                self.cancelling.insert(r.uuid, r.at);
            }
            (Some(EntityState::ActionPlan(P::Cancelling)), _) => {
                if let Some(t0) = self.cancelling.remove(&r.uuid) {
                    let secs = (r.at - t0).num_microseconds().unwrap_or(0) as f64 / 1e6;
                    self.cancel_latency.observe(CANCEL_BUCKETS, secs);
                }
            }
            _ => {}
        }
    }
}

/// 200 when the database answers, 503 otherwise, with what each part says.
pub async fn healthz(State(state): State<AppState>) -> Response {
    let database = state.store.history_position().await;
    let writable = probe_write(&state.store).await;
    let services = state.store.list_services(100, None, false).await;
    let mut checks = serde_json::Map::new();
    let ok = database.is_ok() && writable.is_ok();
    checks.insert(
        "database".into(),
        json!(match (&database, &writable) {
            (Ok(_), Ok(())) => "ok".to_string(),
            (Err(e), _) => e.to_string(),
            (Ok(_), Err(e)) => format!("reads work but writes fail: {e}"),
        }),
    );
    if let Ok(list) = &services {
        for s in list {
            checks.insert(
                format!("{}@{}", s.name, s.host),
                json!(super::views::service_status(s)),
            );
        }
    }
    if let Ok((newest, Some(cursor))) = database {
        checks.insert("notification_backlog".into(), json!(newest - cursor));
    }
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({"status": if ok { "ok" } else { "unavailable" }, "checks": checks})),
    )
        .into_response()
}

/// Whether the database takes a write, asked at most once a second (a load
/// balancer may ask many times a second; each answer within the second
/// reuses the last).
async fn probe_write(store: &watcher_store::Store) -> Result<(), String> {
    static LAST: std::sync::Mutex<Option<(std::time::Instant, Result<(), String>)>> =
        std::sync::Mutex::new(None);
    if let Some((at, result)) = LAST.lock().expect("probe lock").clone() {
        if at.elapsed() < std::time::Duration::from_secs(1) {
            return result;
        }
    }
    let result = store.probe_write().await.map_err(|e| e.to_string());
    *LAST.lock().expect("probe lock") = Some((std::time::Instant::now(), result.clone()));
    result
}

/// Prometheus's text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::new();
    let counts = match state.store.state_counts().await {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("# database unavailable: {e}\n"),
            )
                .into_response()
        }
    };
    for (name, help, rows) in [
        (
            "watcher_action_plans",
            "Action plans by state.",
            &counts.action_plans,
        ),
        ("watcher_actions", "Actions by state.", &counts.actions),
        ("watcher_audits", "Audits by state.", &counts.audits),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (s, n) in rows.iter() {
            let _ = writeln!(out, "{name}{{state=\"{s}\"}} {n}");
        }
    }
    if let Ok(list) = state.store.list_services(100, None, false).await {
        let _ = writeln!(out, "# HELP watcher_service_up 1 while the service's heartbeat is fresh.\n# TYPE watcher_service_up gauge");
        for s in &list {
            let up = super::views::service_status(s) == "ACTIVE";
            let _ = writeln!(
                out,
                "watcher_service_up{{name=\"{}\",host=\"{}\"}} {}",
                s.name, s.host, up as u8
            );
        }
    }
    if let Ok((newest, Some(cursor))) = state.store.history_position().await {
        let _ = writeln!(
            out,
            "# HELP watcher_notification_backlog State changes whose notifications the broker has not confirmed yet.\n# TYPE watcher_notification_backlog gauge\nwatcher_notification_backlog {}",
            newest - cursor
        );
    }
    let mut tally = state.tally.lock().await;
    if let Err(e) = tally.catch_up(&state).await {
        let _ = writeln!(out, "# histograms unavailable: {e}");
    }
    let _ = writeln!(out, "# HELP watcher_action_duration_seconds How long actions ran, from ONGOING to their final state.\n# TYPE watcher_action_duration_seconds histogram");
    for (ty, h) in &tally.durations {
        h.render(
            &mut out,
            "watcher_action_duration_seconds",
            &format!("action_type=\"{ty}\""),
            DURATION_BUCKETS,
        );
    }
    let _ = writeln!(out, "# HELP watcher_cancel_latency_seconds From a plan's CANCELLING to its final state (every running action stopped).\n# TYPE watcher_cancel_latency_seconds histogram");
    tally.cancel_latency.render(
        &mut out,
        "watcher_cancel_latency_seconds",
        "",
        CANCEL_BUCKETS,
    );
    let _ = writeln!(
        out,
        "# HELP watcher_lease_takeovers_total Plans taken over from an applier that was gone (its lease expired, or on PostgreSQL its session ended).\n\
         # TYPE watcher_lease_takeovers_total counter\nwatcher_lease_takeovers_total {}",
        tally.takeovers
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
