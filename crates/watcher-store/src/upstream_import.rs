//! `watcherd db upgrade`'s takeover of an upstream Watcher's objects:
//! copied into watcherd's tables, whole, in one transaction.
//!
//! Copied by UUID (goals and strategies by name, services by name and
//! host), so that running it again after a return to upstream brings
//! upstream's newer state over ours. Upstream's objects keep their UUIDs,
//! names, times, states and soft deletions; its goals' and strategies'
//! UUIDs replace the ones watcherd's catalogue gave the same names, as
//! every object upstream served refers to those. Upstream kept no history:
//! each object gets one row saying the state upstream left it in, which the
//! notification relay does not send (the objects did not change). Plans
//! upstream left ONGOING or CANCELLING get an expired lease: the first
//! applier takes them over and reconciles their actions with the cloud, as
//! after a crash of one of its own.

use crate::history::{record_history, NewHistory};
use crate::sql::{args, Conn, Row};
use crate::upstream::{database_name, known_revision, micros, record_sync, upstream_table};
use crate::*;
use std::collections::HashMap;
use uuid::Uuid;
use watcher_core::*;

/// What a takeover copied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TakeoverCounts {
    pub goals: usize,
    pub strategies: usize,
    pub audit_templates: usize,
    pub audits: usize,
    pub action_plans: usize,
    pub actions: usize,
    pub services: usize,
    /// Scoring engines whose UUIDs were kept (the engines are built in).
    pub scoring_engines: usize,
    /// Of the above, soft-deleted ones (kept deleted).
    pub deleted: usize,
    /// Plans upstream left ONGOING or CANCELLING, handed to the appliers'
    /// recovery.
    pub to_reconcile: Vec<Uuid>,
}

/// The common columns of upstream's rows, in micros.
fn times() -> String {
    format!(
        "{} AS created_at, {} AS updated_at, {} AS deleted_at",
        micros("COALESCE(x.created_at, x.updated_at, x.deleted_at, UTC_TIMESTAMP())"),
        micros("x.updated_at"),
        micros("x.deleted_at")
    )
}

fn parse_state<S: std::str::FromStr>(kind: &str, uuid: &str, s: &str) -> Result<S, StoreError> {
    s.parse().map_err(|_| {
        StoreError::Invalid(format!(
            "upstream's {kind} {uuid} is in state {s:?}, which watcherd does not know; nothing was copied"
        ))
    })
}

fn deleted_at(row: &Row) -> Result<Option<i64>, StoreError> {
    row.get("deleted_at")
}

/// Upstream's JSON text columns hold NULL for "nothing".
fn json_text(row: &Row, column: &str, empty: &str) -> Result<String, StoreError> {
    let text: Option<String> = row.get(column)?;
    match text {
        Some(t) if serde_json::from_str::<serde_json::Value>(&t).is_ok() => Ok(t),
        Some(t) if !t.trim().is_empty() => Err(StoreError::Invalid(format!(
            "upstream's {column} {t:?} is not JSON; nothing was copied"
        ))),
        _ => Ok(empty.to_string()),
    }
}

impl Store {
    /// Copies every object of upstream's tables into watcherd's, in one
    /// transaction: all of them, or (on any error) none.
    pub async fn take_over_upstream(&self) -> Result<TakeoverCounts, StoreError> {
        self.write(|conn, _| take_over(conn)).await
    }
}

fn take_over(conn: &Conn) -> Result<TakeoverCounts, StoreError> {
    let revision = known_revision(conn)?;
    let db = database_name(conn)?;
    let t = |name: &str| upstream_table(&db, name);
    let history_before: i64 =
        conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM state_history", (), |r| {
            r.get(0)
        })?;
    let mut counts = TakeoverCounts::default();

    // Goals and strategies, by name: upstream's UUIDs win.
    let mut goal_ids: HashMap<i64, i64> = HashMap::new();
    let goals = conn.query_map(
        &format!(
            "SELECT x.id, x.uuid, x.name, x.display_name, x.efficacy_specification, {} FROM {} x \
             ORDER BY x.deleted_at IS NULL, x.id",
            times(),
            t("goals")
        ),
        (),
        |r| Ok(r.clone()),
    )?;
    for g in &goals {
        let spec: String = g
            .get::<Option<String>>("efficacy_specification")?
            .unwrap_or_default();
        let spec = if serde_json::from_str::<Vec<EfficacySpec>>(&spec).is_ok() {
            spec
        } else {
            "[]".into()
        };
        let deleted = deleted_at(g)?;
        conn.execute(
            "INSERT INTO goals (uuid, name, display_name, efficacy_specification, created_at, updated_at, deleted_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(name) DO UPDATE SET uuid = excluded.uuid",
            args![
                g.get::<Option<String>>("uuid")?.unwrap_or_else(|| Uuid::new_v4().to_string()),
                g.get::<String>("name")?,
                g.get::<String>("display_name")?,
                spec,
                g.get::<i64>("created_at")?,
                g.get::<Option<i64>>("updated_at")?,
                deleted
            ],
        )?;
        let ours: i64 = conn.query_row(
            "SELECT id FROM goals WHERE name = ?1",
            args![g.get::<String>("name")?],
            |r| r.get(0),
        )?;
        goal_ids.insert(g.get("id")?, ours);
        counts.goals += 1;
        counts.deleted += usize::from(deleted.is_some());
    }
    let mut strategy_ids: HashMap<i64, i64> = HashMap::new();
    let strategies = conn.query_map(
        &format!(
            "SELECT x.id, x.uuid, x.name, x.display_name, x.goal_id, x.parameters_spec, {} FROM {} x \
             ORDER BY x.deleted_at IS NULL, x.id",
            times(),
            t("strategies")
        ),
        (),
        |r| Ok(r.clone()),
    )?;
    for s in &strategies {
        let goal = mapped(&goal_ids, s.get("goal_id")?, "strategy", "goal")?;
        let deleted = deleted_at(s)?;
        conn.execute(
            "INSERT INTO strategies (uuid, name, display_name, goal_id, parameters_spec, created_at, updated_at, deleted_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(name) DO UPDATE SET uuid = excluded.uuid",
            args![
                s.get::<Option<String>>("uuid")?.unwrap_or_else(|| Uuid::new_v4().to_string()),
                s.get::<String>("name")?,
                s.get::<String>("display_name")?,
                goal,
                json_text(s, "parameters_spec", "{}")?,
                s.get::<i64>("created_at")?,
                s.get::<Option<i64>>("updated_at")?,
                deleted
            ],
        )?;
        let ours: i64 = conn.query_row(
            "SELECT id FROM strategies WHERE name = ?1",
            args![s.get::<String>("name")?],
            |r| r.get(0),
        )?;
        strategy_ids.insert(s.get("id")?, ours);
        counts.strategies += 1;
        counts.deleted += usize::from(deleted.is_some());
    }

    // Audit templates, by UUID.
    let templates = conn.query_map(
        &format!(
            "SELECT x.uuid, x.name, x.description, x.goal_id, x.strategy_id, x.scope, \
             x.default_parameters, {} FROM {} x ORDER BY x.id",
            times(),
            t("audit_templates")
        ),
        (),
        |r| Ok(r.clone()),
    )?;
    for a in &templates {
        let deleted = deleted_at(a)?;
        let strategy = a
            .get::<Option<i64>>("strategy_id")?
            .map(|s| mapped(&strategy_ids, s, "audit template", "strategy"))
            .transpose()?;
        conn.execute(
            "INSERT INTO audit_templates (uuid, name, description, goal_id, strategy_id, scope, \
             default_parameters, created_at, updated_at, deleted_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT(uuid) DO UPDATE SET \
             name = excluded.name, description = excluded.description, goal_id = excluded.goal_id, \
             strategy_id = excluded.strategy_id, scope = excluded.scope, \
             default_parameters = excluded.default_parameters, updated_at = excluded.updated_at, \
             deleted_at = excluded.deleted_at",
            args![
                a.get::<String>("uuid")?,
                a.get::<Option<String>>("name")?.unwrap_or_default(),
                a.get::<Option<String>>("description")?,
                mapped(&goal_ids, a.get("goal_id")?, "audit template", "goal")?,
                strategy,
                json_text(a, "scope", "[]")?,
                a.get::<Option<String>>("default_parameters")?,
                a.get::<i64>("created_at")?,
                a.get::<Option<i64>>("updated_at")?,
                deleted
            ],
        )?;
        counts.audit_templates += 1;
        counts.deleted += usize::from(deleted.is_some());
    }

    // Audits, by UUID, with a history row for the state upstream left.
    let mut audit_ids: HashMap<i64, i64> = HashMap::new();
    let audits = conn.query_map(
        &format!(
            "SELECT x.id, x.uuid, x.name, x.audit_type, x.state, x.parameters, x.interval, x.goal_id, \
             x.strategy_id, x.scope, x.auto_trigger, x.force, {} AS next_run_time, {} AS start_time, \
             {} AS end_time, x.hostname, x.status_message, {} FROM {} x ORDER BY x.id",
            micros("x.next_run_time"),
            micros("x.start_time"),
            micros("x.end_time"),
            times(),
            t("audits")
        ),
        (),
        |r| Ok(r.clone()),
    )?;
    for a in &audits {
        let uuid: String = a.get("uuid")?;
        let state: AuditState = parse_state("audit", &uuid, &a.get::<String>("state")?)?;
        let audit_type: AuditType = parse_state("audit", &uuid, &a.get::<String>("audit_type")?)?;
        let deleted = deleted_at(a)?;
        let strategy = a
            .get::<Option<i64>>("strategy_id")?
            .map(|s| mapped(&strategy_ids, s, "audit", "strategy"))
            .transpose()?;
        // A decision engine runs the CONTINUOUS audits of its own host; one
        // upstream's engine ran is adopted by the first of watcherd's.
        let scheduled = audit_type == AuditType::Continuous
            && matches!(state, AuditState::Pending | AuditState::Ongoing)
            && deleted.is_none();
        let hostname: Option<String> = if scheduled { None } else { a.get("hostname")? };
        let before = state_before(conn, "audits", &uuid)?;
        conn.execute(
            "INSERT INTO audits (uuid, name, audit_type, state, goal_id, strategy_id, parameters, \
             interval, scope, auto_trigger, force, next_run_time, start_time, end_time, hostname, \
             status_message, created_at, updated_at, deleted_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19) \
             ON CONFLICT(uuid) DO UPDATE SET name = excluded.name, audit_type = excluded.audit_type, \
             state = excluded.state, goal_id = excluded.goal_id, strategy_id = excluded.strategy_id, \
             parameters = excluded.parameters, interval = excluded.interval, scope = excluded.scope, \
             auto_trigger = excluded.auto_trigger, force = excluded.force, \
             next_run_time = excluded.next_run_time, start_time = excluded.start_time, \
             end_time = excluded.end_time, hostname = excluded.hostname, \
             status_message = excluded.status_message, updated_at = excluded.updated_at, \
             deleted_at = excluded.deleted_at",
            args![
                uuid.clone(),
                a.get::<Option<String>>("name")?.unwrap_or_default(),
                audit_type,
                state,
                mapped(&goal_ids, a.get("goal_id")?, "audit", "goal")?,
                strategy,
                json_text(a, "parameters", "{}")?,
                a.get::<Option<String>>("interval")?,
                json_text(a, "scope", "[]")?,
                a.get::<Option<i64>>("auto_trigger")?.unwrap_or(0),
                a.get::<Option<i64>>("force")?.unwrap_or(0),
                a.get::<Option<i64>>("next_run_time")?,
                a.get::<Option<i64>>("start_time")?,
                a.get::<Option<i64>>("end_time")?,
                hostname,
                a.get::<Option<String>>("status_message")?,
                a.get::<i64>("created_at")?,
                a.get::<Option<i64>>("updated_at")?,
                deleted
            ],
        )?;
        let ours: i64 = conn.query_row(
            "SELECT id FROM audits WHERE uuid = ?1",
            args![uuid.clone()],
            |r| r.get(0),
        )?;
        audit_ids.insert(a.get("id")?, ours);
        record_taken_over(conn, before, &uuid, None, state.into(), a)?;
        counts.audits += 1;
        counts.deleted += usize::from(deleted.is_some());
    }

    // Action plans with their efficacy indicators (a table of upstream's,
    // a column of watcherd's), by UUID.
    let mut indicators: HashMap<i64, Vec<EfficacyIndicator>> = HashMap::new();
    for r in conn.query_map(
        &format!(
            "SELECT x.action_plan_id, x.name, x.description, x.unit, \
             CAST(COALESCE(x.data, x.value, 0) AS CHAR) AS amount FROM {} x ORDER BY x.id",
            t("efficacy_indicators")
        ),
        (),
        |r| Ok(r.clone()),
    )? {
        let amount: String = r.get("amount")?;
        indicators
            .entry(r.get("action_plan_id")?)
            .or_default()
            .push(EfficacyIndicator {
                name: r.get::<Option<String>>("name")?.unwrap_or_default(),
                description: r.get::<Option<String>>("description")?.unwrap_or_default(),
                unit: r.get("unit")?,
                value: amount.trim().parse().unwrap_or(0.0),
            });
    }
    let mut plan_ids: HashMap<i64, (i64, String)> = HashMap::new();
    let plans = conn.query_map(
        &format!(
            "SELECT x.id, x.uuid, x.audit_id, x.strategy_id, x.state, x.global_efficacy, x.hostname, \
             x.status_message, {} FROM {} x ORDER BY x.id",
            times(),
            t("action_plans")
        ),
        (),
        |r| Ok(r.clone()),
    )?;
    for p in &plans {
        let uuid: String = p.get("uuid")?;
        let upstream_id: i64 = p.get("id")?;
        let state: ActionPlanState = parse_state("action plan", &uuid, &p.get::<String>("state")?)?;
        let deleted = deleted_at(p)?;
        // A plan upstream left running: an expired lease hands it to the
        // first applier's recovery.
        let running = matches!(
            state,
            ActionPlanState::Ongoing | ActionPlanState::Cancelling
        ) && deleted.is_none();
        let before = state_before(conn, "action_plans", &uuid)?;
        conn.execute(
            "INSERT INTO action_plans (uuid, audit_id, strategy_id, state, efficacy_indicators, \
             global_efficacy, hostname, status_message, created_at, updated_at, deleted_at, lease_expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT(uuid) DO UPDATE SET \
             audit_id = excluded.audit_id, strategy_id = excluded.strategy_id, state = excluded.state, \
             efficacy_indicators = excluded.efficacy_indicators, global_efficacy = excluded.global_efficacy, \
             hostname = excluded.hostname, status_message = excluded.status_message, \
             updated_at = excluded.updated_at, deleted_at = excluded.deleted_at, \
             lease_expires_at = excluded.lease_expires_at",
            args![
                uuid.clone(),
                mapped(&audit_ids, p.get("audit_id")?, "action plan", "audit")?,
                mapped(&strategy_ids, p.get("strategy_id")?, "action plan", "strategy")?,
                state,
                serde_json::to_string(&indicators.remove(&upstream_id).unwrap_or_default())?,
                global_efficacy(p)?,
                p.get::<Option<String>>("hostname")?,
                p.get::<Option<String>>("status_message")?,
                p.get::<i64>("created_at")?,
                p.get::<Option<i64>>("updated_at")?,
                deleted,
                running.then_some(0_i64)
            ],
        )?;
        let ours: i64 = conn.query_row(
            "SELECT id FROM action_plans WHERE uuid = ?1",
            args![uuid.clone()],
            |r| r.get(0),
        )?;
        plan_ids.insert(upstream_id, (ours, uuid.clone()));
        record_taken_over(conn, before, &uuid, Some(&uuid), state.into(), p)?;
        if running {
            counts
                .to_reconcile
                .push(Uuid::parse_str(&uuid).map_err(|e| StoreError::Corrupt(e.to_string()))?);
        }
        counts.action_plans += 1;
        counts.deleted += usize::from(deleted.is_some());
    }

    // Actions, by UUID.
    let actions = conn.query_map(
        &format!(
            "SELECT x.uuid, x.action_plan_id, x.action_type, x.input_parameters, x.state, x.parents, \
             x.status_message, {} FROM {} x ORDER BY x.id",
            times(),
            t("actions")
        ),
        (),
        |r| Ok(r.clone()),
    )?;
    for a in &actions {
        let uuid: String = a.get("uuid")?;
        let state: ActionState = parse_state("action", &uuid, &a.get::<String>("state")?)?;
        let upstream_plan: i64 = a.get("action_plan_id")?;
        let (plan, plan_uuid) = plan_ids.get(&upstream_plan).cloned().ok_or_else(|| {
            StoreError::Invalid(format!(
                "upstream's action {uuid} belongs to plan id {upstream_plan}, which upstream's tables do not hold; nothing was copied"
            ))
        })?;
        let deleted = deleted_at(a)?;
        let before = state_before(conn, "actions", &uuid)?;
        conn.execute(
            "INSERT INTO actions (uuid, action_plan_id, action_type, input_parameters, parents, state, \
             status_message, created_at, updated_at, deleted_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT(uuid) DO UPDATE SET \
             action_plan_id = excluded.action_plan_id, action_type = excluded.action_type, \
             input_parameters = excluded.input_parameters, parents = excluded.parents, \
             state = excluded.state, status_message = excluded.status_message, \
             updated_at = excluded.updated_at, deleted_at = excluded.deleted_at",
            args![
                uuid.clone(),
                plan,
                a.get::<String>("action_type")?,
                json_text(a, "input_parameters", "{}")?,
                json_text(a, "parents", "[]")?,
                state,
                a.get::<Option<String>>("status_message")?,
                a.get::<i64>("created_at")?,
                a.get::<Option<i64>>("updated_at")?,
                deleted
            ],
        )?;
        record_taken_over(conn, before, &uuid, Some(&plan_uuid), state.into(), a)?;
        counts.actions += 1;
        counts.deleted += usize::from(deleted.is_some());
    }

    // Services, by name and host (as upstream's unique key, live ones).
    let services = conn.query_map(
        &format!(
            "SELECT x.name, x.host, {} AS last_seen_up, {} FROM {} x WHERE x.deleted_at IS NULL ORDER BY x.id",
            micros("x.last_seen_up"),
            times(),
            t("services")
        ),
        (),
        |r| Ok(r.clone()),
    )?;
    for s in &services {
        conn.execute(
            "INSERT INTO services (name, host, last_seen_up, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(name, host) DO UPDATE SET \
             last_seen_up = excluded.last_seen_up, updated_at = excluded.updated_at",
            args![
                s.get::<String>("name")?,
                s.get::<String>("host")?,
                s.get::<Option<i64>>("last_seen_up")?,
                s.get::<i64>("created_at")?,
                s.get::<Option<i64>>("updated_at")?
            ],
        )?;
        counts.services += 1;
    }

    // Scoring engines are built in: their UUIDs, by name.
    for e in conn.query_map(
        &format!(
            "SELECT x.name, x.uuid FROM {} x WHERE x.deleted_at IS NULL ORDER BY x.id",
            t("scoring_engines")
        ),
        (),
        |r| Ok(r.clone()),
    )? {
        conn.execute(
            "INSERT INTO scoring_engine_uuids (name, uuid) VALUES (?1, ?2) \
             ON CONFLICT(name) DO UPDATE SET uuid = excluded.uuid",
            args![e.get::<String>("name")?, e.get::<String>("uuid")?],
        )?;
        counts.scoring_engines += 1;
    }

    // The objects did not change: their rows are not news to notify.
    let history_after: i64 =
        conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM state_history", (), |r| {
            r.get(0)
        })?;
    conn.execute(
        "UPDATE notification_cursor SET last_seq = ?2 WHERE id = 1 AND last_seq >= ?1",
        args![history_before, history_after],
    )?;
    record_sync(conn, "import", &revision, &counts.summary())?;
    Ok(counts)
}

/// watcherd's state of `uuid` in `table` before the copy (None: new).
fn state_before(conn: &Conn, table: &str, uuid: &str) -> Result<Option<String>, StoreError> {
    conn.query_opt(
        &format!("SELECT state FROM {table} WHERE uuid = ?1"),
        args![uuid],
    )?
    .map(|r| r.get(0))
    .transpose()
}

/// The history row of an object copied in `state`, at the time upstream
/// last changed it: its first when it is new to watcherd, a change made
/// under upstream when watcherd had it in another state (a return to
/// upstream and back), none when the state is the one watcherd had.
fn record_taken_over(
    conn: &Conn,
    before: Option<String>,
    uuid: &str,
    plan: Option<&str>,
    state: EntityState,
    row: &Row,
) -> Result<(), StoreError> {
    let parse = |u: &str| {
        Uuid::parse_str(u).map_err(|e| StoreError::Invalid(format!("upstream's UUID {u:?}: {e}")))
    };
    let from = match before {
        None => None,
        Some(s) if s == state.as_str() => return Ok(()),
        Some(s) => Some(EntityState::parse(state.entity(), &s).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "{uuid} is in state {s:?}, which watcherd does not know"
            ))
        })?),
    };
    let at: Option<i64> = row.get("updated_at")?;
    record_history(
        conn,
        &NewHistory {
            uuid: parse(uuid)?,
            plan: plan.map(parse).transpose()?,
            from,
            to: state,
            actor: Actor::Upstream,
            reason: if from.is_none() {
                "taken over from upstream Watcher, in the state it left (it kept no history)"
            } else {
                "changed under upstream Watcher, taken over again"
            },
            at: at.map_or_else(|| row.get("created_at"), Ok)?,
        },
    )
}

/// Upstream's `global_efficacy`: a JSON list of indicators (older rows: a
/// single object, or nothing).
fn global_efficacy(row: &Row) -> Result<String, StoreError> {
    let text = json_text(row, "global_efficacy", "[]")?;
    let value: serde_json::Value = serde_json::from_str(&text)?;
    let list = match value {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Null => vec![],
        one => vec![one],
    };
    let indicators: Vec<EfficacyIndicator> = list
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect();
    Ok(serde_json::to_string(&indicators)?)
}

fn mapped(ids: &HashMap<i64, i64>, id: i64, what: &str, of: &str) -> Result<i64, StoreError> {
    ids.get(&id).copied().ok_or_else(|| {
        StoreError::Invalid(format!(
            "an upstream {what} refers to {of} id {id}, which upstream's tables do not hold; nothing was copied"
        ))
    })
}

impl TakeoverCounts {
    /// One line for the record and the log.
    pub fn summary(&self) -> String {
        format!(
            "{} goals, {} strategies, {} audit templates, {} audits, {} action plans, {} actions, \
             {} services, {} scoring engines ({} of them deleted); {} plans left to the appliers' recovery",
            self.goals,
            self.strategies,
            self.audit_templates,
            self.audits,
            self.action_plans,
            self.actions,
            self.services,
            self.scoring_engines,
            self.deleted,
            self.to_reconcile.len()
        )
    }
}
