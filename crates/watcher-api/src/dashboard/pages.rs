//! The dashboard's pages: what each shows, read from the store, rendered
//! with maud (every value escaped). A page's `main` is also what its
//! script fetches again (`?part=main`) when the history moves.

use super::Permissions;
use maud::{html, Markup, DOCTYPE};
use std::collections::HashMap;
use uuid::Uuid;
use watcher_core::{Action, ActionPlan, ActionPlanState, ActionState, HistoryEntry};
use watcher_store::{ActionFilter, ListQuery, PlanFilter, SortKey, Store, StoreError};

/// The frame of every page: the CSRF token for the script, the event
/// stream the page follows, navigation.
pub fn layout(title: &str, csrf: &str, events: &str, may: &Permissions, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                (head(title))
                meta name="csrf-token" content=(csrf);
                script src="/dashboard/assets/dashboard.js" defer {}
            }
            body data-events=(events) {
                header {
                    nav aria-label="Main" {
                        a href="/dashboard" class="brand" { "Watcher" }
                        a href="/dashboard" { "Overview" }
                        a href="/dashboard/audits" { "Audits" }
                        a href="/dashboard/audit_templates" { "Templates" }
                        a href="/dashboard/goals" { "Goals" }
                        a href="/dashboard/cluster" { "Cluster" }
                        a href="/dashboard/services" { "Services" }
                        a href="/v1/" { "API" }
                        @if may.session {
                            button type="button" .link data-method="POST" data-url="/dashboard/logout"
                                data-then="/dashboard/login" { "Log out" }
                        }
                    }
                    p #live role="status" aria-live="polite" { "connecting..." }
                }
                p #error role="alert" hidden {}
                main #main { (main) }
            }
        }
    }
}

/// What every page's head holds.
fn head(title: &str) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " - Watcher" }
        // No icon to fetch (the browser would ask for /favicon.ico).
        link rel="icon" href="data:,";
        link rel="stylesheet" href="/dashboard/assets/dashboard.css";
    }
}

pub(super) fn state_badge(state: &str) -> Markup {
    html! { span class={"state state-" (state.to_lowercase())} { (state) } }
}

pub(super) fn when(t: &chrono::DateTime<chrono::Utc>) -> Markup {
    html! { time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M:%S")) } }
}

pub(super) fn plan_link(p: &ActionPlan) -> Markup {
    html! { a href={"/dashboard/action_plans/" (p.uuid)} { code { (short(&p.uuid)) } } }
}

/// A UUID's first eight characters, as lists show them.
pub(super) fn short(u: &Uuid) -> String {
    u.to_string()[..8].to_string()
}

/// A button that asks the API (under `/dashboard/v1`) for a change, after
/// a confirmation that says what will happen.
/// The JSON patch of a button that moves a record to `state`, with a
/// status message when given.
pub(super) fn patch_state(state: &str, status_message: Option<&str>) -> String {
    let mut ops = vec![serde_json::json!({"op": "replace", "path": "/state", "value": state})];
    if let Some(m) = status_message {
        ops.push(serde_json::json!({"op": "add", "path": "/status_message", "value": m}));
    }
    serde_json::Value::Array(ops).to_string()
}

pub(super) fn action_button(
    label: &str,
    method: &str,
    url: &str,
    body: Option<&str>,
    confirm: &str,
) -> Markup {
    html! {
        button type="button" data-method=(method) data-url=(url) data-body=[body] data-confirm=(confirm) {
            (label)
        }
    }
}

/// How far a plan's actions are: finished of all, and the running ones.
struct Progress {
    finished: usize,
    total: usize,
    running: usize,
}

impl Progress {
    fn of(actions: &[Action]) -> Progress {
        let mut counts: HashMap<ActionState, i64> = HashMap::new();
        for a in actions {
            *counts.entry(a.state).or_default() += 1;
        }
        Progress::from_counts(counts)
    }

    /// From the number of actions in each state.
    fn from_counts(counts: impl IntoIterator<Item = (ActionState, i64)>) -> Progress {
        let mut p = Progress {
            finished: 0,
            total: 0,
            running: 0,
        };
        for (state, n) in counts {
            let n = n.max(0) as usize;
            p.total += n;
            if state.is_finished() {
                p.finished += n;
            }
            if state == ActionState::Ongoing {
                p.running += n;
            }
        }
        p
    }

    fn render(&self) -> Markup {
        html! {
            progress max=(self.total.max(1)) value=(self.finished) {}
            " " (self.finished) " of " (self.total) " finished"
            @if self.running > 0 { ", " (self.running) " running" }
        }
    }
}

fn list(states: &[ActionPlanState], limit: usize, newest_first: bool) -> (PlanFilter, ListQuery) {
    (
        PlanFilter {
            states: states.to_vec(),
            ..Default::default()
        },
        ListQuery {
            limit,
            sort: SortKey(if newest_first { "x.updated_at" } else { "x.id" }),
            descending: newest_first,
            ..Default::default()
        },
    )
}

async fn actions_of(store: &Store, plan: Uuid) -> Result<Vec<Action>, StoreError> {
    let filter = ActionFilter {
        action_plan_uuid: Some(plan),
        ..Default::default()
    };
    store
        .list_actions(
            filter,
            ListQuery {
                limit: 100_000,
                ..Default::default()
            },
        )
        .await
}

/// How many of each list the overview shows.
const OVERVIEW_ROWS: usize = 20;

pub struct Overview {
    counts: Vec<(String, i64)>,
    running: Vec<(ActionPlan, Progress)>,
    recommended: Vec<ActionPlan>,
    ended_badly: Vec<ActionPlan>,
}

impl Overview {
    pub async fn load(store: &Store) -> Result<Overview, StoreError> {
        use ActionPlanState::*;
        let counts = store.state_counts().await?.action_plans;
        let (f, q) = list(
            &[Ongoing, Cancelling, Pending, Paused],
            OVERVIEW_ROWS,
            false,
        );
        let plans = store.list_plans(f, q).await?;
        // One grouped count for every running plan's progress.
        let mut by_plan = store
            .action_counts(plans.iter().map(|p| p.uuid).collect())
            .await?;
        let running = plans
            .into_iter()
            .map(|p| {
                let progress = Progress::from_counts(by_plan.remove(&p.uuid).unwrap_or_default());
                (p, progress)
            })
            .collect();
        let (f, q) = list(&[Recommended], OVERVIEW_ROWS, true);
        let recommended = store.list_plans(f, q).await?;
        let (f, q) = list(&[Failed, Cancelled], OVERVIEW_ROWS, true);
        let ended_badly = store.list_plans(f, q).await?;
        Ok(Overview {
            counts,
            running,
            recommended,
            ended_badly,
        })
    }

    pub fn main(&self) -> Markup {
        html! {
            h1 { "Action plans" }
            ul .counts aria-label="Plans by state" {
                @for (state, n) in &self.counts {
                    li { (state_badge(state)) " " strong { (n) } }
                }
            }
            section {
                h2 { "Running" }
                @if self.running.is_empty() { p .empty { "No plan is running." } }
                @else {
                    div .scroll { table {
                        thead { tr { th { "Plan" } th { "State" } th { "Strategy" } th { "Progress" } } }
                        tbody { @for (p, progress) in &self.running {
                            tr { td { (plan_link(p)) } td { (state_badge(p.state.as_str())) }
                                 td { (p.strategy_name) } td { (progress.render()) } }
                        } }
                    } }
                }
            }
            section {
                h2 { "Recommended" }
                @if self.recommended.is_empty() { p .empty { "No plan waits to be started." } }
                @else {
                    div .scroll { table {
                        thead { tr { th { "Plan" } th { "Strategy" } th { "Created" } } }
                        tbody { @for p in &self.recommended {
                            tr { td { (plan_link(p)) } td { (p.strategy_name) } td { (when(&p.created_at)) } }
                        } }
                    } }
                }
            }
            section {
                h2 { "Recent failures and cancels" }
                @if self.ended_badly.is_empty() { p .empty { "None." } }
                @else {
                    div .scroll { table {
                        thead { tr { th { "Plan" } th { "State" } th { "Why" } th { "When" } } }
                        tbody { @for p in &self.ended_badly {
                            tr { td { (plan_link(p)) } td { (state_badge(p.state.as_str())) }
                                 td { (p.status_message.as_deref().unwrap_or("")) }
                                 td { (when(p.updated_at.as_ref().unwrap_or(&p.created_at))) } }
                        } }
                    } }
                }
            }
        }
    }
}

pub struct PlanPage {
    plan: ActionPlan,
    actions: Vec<Action>,
    history: Vec<HistoryEntry>,
}

impl PlanPage {
    pub async fn load(store: &Store, plan: Uuid) -> Result<PlanPage, StoreError> {
        let p = store.get_plan(plan, false).await?;
        let actions = actions_of(store, plan).await?;
        let history = store.plan_history(plan).await?;
        Ok(PlanPage {
            plan: p,
            actions,
            history,
        })
    }

    pub fn main(&self, may: &Permissions) -> Markup {
        use ActionPlanState::*;
        let p = &self.plan;
        let url = format!("/dashboard/v1/action_plans/{}", p.uuid);
        let n = self.actions.len();
        html! {
            h1 { "Action plan " code { (p.uuid) } }
            dl .facts {
                dt { "State" } dd #plan-state data-state=(p.state.as_str()) { (state_badge(p.state.as_str())) }
                dt { "Strategy" } dd { (p.strategy_name) }
                dt { "Audit" } dd { code { (p.audit_uuid) } }
                dt { "Progress" } dd { (Progress::of(&self.actions).render()) }
                @if let Some(m) = &p.status_message { dt { "Status" } dd { (m) } }
            }
            div .buttons {
                @if p.state == Recommended && may.start {
                    (action_button("Start", "POST", &format!("{url}/start"), None,
                        &format!("Start this plan? Its {n} actions will run on the cloud, as their dependencies allow.")))
                }
                @if p.state == Ongoing && may.pause {
                    (action_button("Pause", "POST",
                        &format!("/dashboard/v1/x-watcherd/action_plans/{}/pause", p.uuid), None,
                        "Pause this plan? No new action will start; running ones finish (a live migration under way completes); pending ones wait until you resume it."))
                }
                @if p.state == Paused && may.resume {
                    (action_button("Resume", "POST",
                        &format!("/dashboard/v1/x-watcherd/action_plans/{}/resume", p.uuid), None,
                        "Resume this plan? Its pending actions run again, as their dependencies allow; finished ones are not run again."))
                }
                @if matches!(p.state, Recommended | Pending | Ongoing | Paused) && may.cancel {
                    (action_button("Cancel plan", "PATCH", &url,
                        Some(&patch_state(Cancelling.as_str(), None)),
                        "Cancel this plan? No new action will start; pending actions become CANCELLED; running ones are aborted (a live migration rolls back; a volume migration, which cannot be aborted, is awaited). Finished actions stay as they are."))
                }
                @if p.state.is_deletable() && may.archive {
                    (action_button("Archive", "DELETE", &url, None,
                        "Archive this plan? It leaves the lists; its record and history stay until purged."))
                }
            }
            @if !p.efficacy_indicators.is_empty() || !p.global_efficacy.is_empty() {
                section {
                    h2 { "Efficacy" }
                    ul { @for e in p.global_efficacy.iter().chain(&p.efficacy_indicators) {
                        li { (e.description) ": " strong { (e.value) } " " (e.unit.as_deref().unwrap_or("")) }
                    } }
                }
            }
            section {
                h2 { "Actions" }
                (dag(&self.actions))
                div .scroll { table #actions {
                    thead { tr { th { "Action" } th { "Type" } th { "On" } th { "State" } th { "Status" } th {} } }
                    tbody { @for a in &self.actions {
                        tr data-action=(a.uuid) data-state=(a.state.as_str()) {
                            td { code { (short(&a.uuid)) } }
                            td { (a.action_type) }
                            td { (subject(a)) }
                            td { (state_badge(a.state.as_str())) }
                            td .status { (a.status_message.as_deref().unwrap_or("")) }
                            td { @if a.state == ActionState::Pending && matches!(p.state, Recommended | Pending) && may.skip {
                                (action_button("Skip", "PATCH", &format!("/dashboard/v1/actions/{}", a.uuid),
                                    Some(&patch_state(ActionState::Skipped.as_str(), Some("skipped from the dashboard"))),
                                    "Skip this action? It will not run; the actions after it still run."))
                            } }
                        }
                    } }
                } }
            }
            section {
                h2 { "History" }
                ol .timeline { @for h in &self.history {
                    li {
                        (when(&h.at)) " " (h.entity.as_str()) " " code { (short(&h.uuid)) } ": "
                        (h.from_state.map(|s| s.as_str()).unwrap_or("created")) " -> " strong { (h.to_state.as_str()) }
                        " by " (h.actor) " (" (h.reason) ")"
                    }
                } }
            }
        }
    }
}

/// What an action works on, from its input: a resource name, else its id.
fn subject(a: &Action) -> String {
    let p = &a.input_parameters;
    let text = |k: &str| p.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let what = text("resource_name")
        .or_else(|| text("resource_id"))
        .unwrap_or_default();
    match (text("source_node"), text("destination_node")) {
        (Some(from), Some(to)) => format!("{what} {from} -> {to}"),
        (_, Some(to)) => format!("{what} -> {to}"),
        _ => what,
    }
}

/// The second line of a node: the state, and for a running action its
/// status message, cut to what the node holds.
fn node_line(a: &Action) -> String {
    const ROOM: usize = 44;
    match (&a.state, &a.status_message) {
        (ActionState::Ongoing, Some(m)) if !m.is_empty() => {
            let m: String = m.chars().take(ROOM).collect();
            if m.chars().count() < ROOM {
                m
            } else {
                format!("{}...", m.chars().take(ROOM - 3).collect::<String>())
            }
        }
        (state, _) => state.as_str().to_string(),
    }
}

/// The plan's DAG as an SVG: actions in columns by depth (an action sits
/// right of all its parents), coloured by state, edges from parent to child.
fn dag(actions: &[Action]) -> Markup {
    const W: i64 = 300;
    const H: i64 = 44;
    const GAP_X: i64 = 40;
    const GAP_Y: i64 = 14;
    let index: HashMap<Uuid, usize> = actions
        .iter()
        .enumerate()
        .map(|(i, a)| (a.uuid, i))
        .collect();
    // Depths in list order: the store returns a plan's actions in creation
    // order, parents before children.
    let mut depth = vec![0usize; actions.len()];
    for (i, a) in actions.iter().enumerate() {
        depth[i] = a
            .parents
            .iter()
            .filter_map(|p| index.get(p))
            .map(|&j| depth[j] + 1)
            .max()
            .unwrap_or(0);
    }
    let mut row_in_column: HashMap<usize, i64> = HashMap::new();
    let mut at = vec![(0i64, 0i64); actions.len()];
    for i in 0..actions.len() {
        let row = row_in_column.entry(depth[i]).or_insert(0);
        at[i] = (depth[i] as i64 * (W + GAP_X), *row * (H + GAP_Y));
        *row += 1;
    }
    let width = at.iter().map(|p| p.0 + W).max().unwrap_or(0);
    let height = at.iter().map(|p| p.1 + H).max().unwrap_or(0);
    html! {
        div .scroll {
            svg #dag role="img" aria-label="The plan's actions and their dependencies"
                width=(width) height=(height) viewBox={"0 0 " (width) " " (height)} {
                @for (i, a) in actions.iter().enumerate() {
                    @for p in &a.parents {
                        @if let Some(&j) = index.get(p) {
                            line .edge x1=(at[j].0 + W) y1=(at[j].1 + H / 2) x2=(at[i].0) y2=(at[i].1 + H / 2) {}
                        }
                    }
                }
                @for (i, a) in actions.iter().enumerate() {
                    g class={"node state-" (a.state.as_str().to_lowercase())} data-action=(a.uuid) {
                        title { (a.action_type) " " (subject(a)) ": " (a.state.as_str())
                                @if let Some(m) = &a.status_message { " - " (m) } }
                        rect x=(at[i].0) y=(at[i].1) width=(W) height=(H) rx="6" {}
                        text x=(at[i].0 + 8) y=(at[i].1 + 18) { (a.action_type) }
                        // A running action shows how far it is (its status
                        // message: a live migration's copied memory, say).
                        text .sub x=(at[i].0 + 8) y=(at[i].1 + 34) { (node_line(a)) }
                    }
                }
            }
        }
    }
}

/// The login form (Keystone mode), with what went wrong the last time.
pub fn login(csrf: &str, problem: Option<&str>, project: &str, domain: &str, user: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head("Log in")) }
            body {
                main #main .login {
                    h1 { "Watcher" }
                    @if let Some(p) = problem { p #error role="alert" { (p) } }
                    form method="post" action="/dashboard/login" {
                        input type="hidden" name="csrf" value=(csrf);
                        label { "User" input name="user" autocomplete="username" required value=(user); }
                        label { "Password" input name="password" type="password" autocomplete="current-password" required; }
                        label { "Project" input name="project" required value=(project); }
                        label { "Domain" input name="domain" required value=(domain); }
                        button type="submit" { "Log in" }
                    }
                }
            }
        }
    }
}
