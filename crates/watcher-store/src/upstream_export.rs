//! `watcherd db export-upstream`: the way back. watcherd's objects written
//! into upstream Watcher's tables in the same database, in place, in one
//! transaction, so that upstream Watcher 17 started again on them serves
//! what watcherd served and carries on from there.
//!
//! By UUID, as the takeover: a row upstream has is updated, one it lacks
//! is inserted (with upstream's own id), nothing of upstream's is removed
//! that watcherd did not remove (soft deletions travel as upstream's:
//! `deleted_at` and `deleted` = the row's id). Goals and strategies are
//! upstream's plugins: watcherd's are matched by name and never rewritten
//! (upstream's sync would retire a changed one, and the audits on it).
//! What upstream has no column for stays behind: the history, the action
//! journal, the applier's lease, an EVENT audit's pending trigger. Text
//! longer than upstream's columns is cut, and characters outside
//! upstream's three-byte UTF-8 replaced, each noted in what this returns;
//! JSON keeps them, escaped. A running or paused plan (ONGOING, CANCELLING, PAUSED)
//! cannot be handed over: the export refuses until it has finished.

use crate::sql::{args, Conn, Row, Value};
use crate::upstream::{database_name, known_revision, record_sync, upstream_table};
use crate::*;
use std::collections::HashMap;
use uuid::Uuid;
use watcher_core::*;

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportCounts {
    pub audit_templates: usize,
    pub audits: usize,
    pub action_plans: usize,
    pub actions: usize,
    /// Goals and strategies upstream did not have (its sync at start
    /// retires those its plugins do not know).
    pub catalogue_added: usize,
    /// Of the objects written, soft-deleted ones.
    pub deleted: usize,
    /// Values changed to fit upstream's columns, one line each.
    pub notes: Vec<String>,
}

impl ExportCounts {
    /// One line for the record and the log.
    pub fn summary(&self) -> String {
        format!(
            "{} audit templates, {} audits, {} action plans, {} actions ({} of them deleted); \
             {} goals or strategies added; {} values cut to fit",
            self.audit_templates,
            self.audits,
            self.action_plans,
            self.actions,
            self.deleted,
            self.catalogue_added,
            self.notes.len()
        )
    }
}

/// A column value for upstream's table: as it is, or a time in micros
/// written as upstream's naive UTC `DATETIME`.
enum Col {
    Is(Value),
    Time(Option<i64>),
}

/// Text column `column` of `row`, fitted to upstream's `max` characters
/// (noted as "`what` column").
fn fitted(
    row: &Row,
    column: &str,
    max: usize,
    what: &str,
    notes: &mut Vec<String>,
) -> Result<Col, StoreError> {
    let label = format!("{what} {}", column.replace('_', " "));
    Ok(text(fit(row.get(column)?, max, &label, notes)))
}

/// JSON column `column` of `row`, in words upstream's tables can hold.
fn json_col(row: &Row, column: &str) -> Result<Col, StoreError> {
    Ok(text(Some(json_for_upstream(row.get(column)?))))
}

fn is_deleted(row: &Row) -> Result<bool, StoreError> {
    Ok(row.get::<Option<i64>>("deleted_at")?.is_some())
}

fn text(v: Option<String>) -> Col {
    Col::Is(v.map_or(Value::Null, Value::Text))
}

fn int(v: i64) -> Col {
    Col::Is(Value::Int(v))
}

/// Writes one row of upstream's `table` found by `uuid`: updated where
/// upstream has it, inserted where not. Its id in upstream's table.
fn put(conn: &Conn, table: &str, uuid: &str, cols: Vec<(&str, Col)>) -> Result<i64, StoreError> {
    let existing: Option<i64> = conn
        .query_opt(
            &format!("SELECT id FROM {table} WHERE uuid = ?1"),
            args![uuid],
        )?
        .map(|r| r.get(0))
        .transpose()?;
    let mut values = Vec::with_capacity(cols.len() + 1);
    let mut marks = Vec::with_capacity(cols.len());
    for (n, (_, col)) in cols.iter().enumerate() {
        let mark = format!("?{}", n + 1);
        match col {
            Col::Is(v) => {
                values.push(v.clone());
                marks.push(mark);
            }
            Col::Time(t) => {
                values.push(t.map_or(Value::Null, Value::Int));
                marks.push(format!(
                    "TIMESTAMPADD(MICROSECOND, {mark}, '1970-01-01 00:00:00')"
                ));
            }
        }
    }
    let names: Vec<&str> = cols.iter().map(|(c, _)| *c).collect();
    match existing {
        Some(id) => {
            let sets: Vec<String> = names
                .iter()
                .zip(&marks)
                .map(|(c, m)| format!("{c} = {m}"))
                .collect();
            values.push(Value::Int(id));
            conn.execute(
                &format!(
                    "UPDATE {table} SET {} WHERE id = ?{}",
                    sets.join(", "),
                    values.len()
                ),
                values,
            )?;
            Ok(id)
        }
        None => {
            values.push(Value::Text(uuid.to_string()));
            conn.execute(
                &format!(
                    "INSERT INTO {table} ({}, uuid) VALUES ({}, ?{})",
                    names.join(", "),
                    marks.join(", "),
                    values.len()
                ),
                values,
            )?;
            conn.query_row(
                &format!("SELECT id FROM {table} WHERE uuid = ?1"),
                args![uuid],
                |r| r.get(0),
            )
        }
    }
}

/// Text for a column of upstream's of at most `max` characters in
/// three-byte UTF-8, noted when it had to change.
fn fit(value: Option<String>, max: usize, what: &str, notes: &mut Vec<String>) -> Option<String> {
    let original = value?;
    let bmp: String = original
        .chars()
        .map(|c| if (c as u32) > 0xFFFF { '\u{FFFD}' } else { c })
        .collect();
    let cut: String = bmp.chars().take(max).collect();
    if cut != original {
        notes.push(format!("{what}: {original:?} written as {cut:?}"));
    }
    Some(cut)
}

/// JSON text with the characters upstream's columns cannot hold escaped
/// (`\ud83d\ude00`): the same JSON, readable by upstream.
fn json_for_upstream(json: String) -> String {
    if json.chars().all(|c| (c as u32) <= 0xFFFF) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    let mut units = [0u16; 2];
    for c in json.chars() {
        if (c as u32) > 0xFFFF {
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The soft deletion as upstream writes it: `deleted` 0 for a live row; a
/// deleted one gets its own id at the end ([`settle_deleted`]), and until
/// then a number no live row or other deleted one has.
fn deleted_mark(row: &Row) -> Result<i64, StoreError> {
    Ok(if is_deleted(row)? {
        -row.get::<i64>("id")?
    } else {
        0
    })
}

fn settle_deleted(conn: &Conn, table: &str) -> Result<(), StoreError> {
    conn.execute(
        &format!("UPDATE {table} SET deleted = id WHERE deleted < 0"),
        (),
    )?;
    Ok(())
}

fn times(row: &Row) -> Result<Vec<(&'static str, Col)>, StoreError> {
    Ok(vec![
        ("created_at", Col::Time(Some(row.get("created_at")?))),
        ("updated_at", Col::Time(row.get("updated_at")?)),
        ("deleted_at", Col::Time(row.get("deleted_at")?)),
        ("deleted", int(deleted_mark(row)?)),
    ])
}

fn all(conn: &Conn, sql: &str) -> Result<Vec<Row>, StoreError> {
    conn.query_map(sql, (), |r| Ok(r.clone()))
}

impl Store {
    /// Writes every object of watcherd's into upstream's tables, in one
    /// transaction: all of them, or (on any error) none.
    pub async fn export_to_upstream(&self) -> Result<ExportCounts, StoreError> {
        self.write(|conn, _| export(conn)).await
    }
}

fn export(conn: &Conn) -> Result<ExportCounts, StoreError> {
    let revision = known_revision(conn)?;
    let running: Vec<String> = conn.query_map(
        "SELECT uuid FROM action_plans WHERE state IN (?1, ?2, ?3) AND deleted_at IS NULL ORDER BY id",
        args![
            ActionPlanState::Ongoing,
            ActionPlanState::Cancelling,
            ActionPlanState::Paused
        ],
        |r| r.get(0),
    )?;
    if !running.is_empty() {
        return Err(StoreError::Invalid(format!(
            "plans are running or paused: {}; let them finish, resume or cancel them (upstream \
             knows no PAUSED, and its applier would not know how far they got), then export \
             again; nothing was written",
            running.join(", ")
        )));
    }
    let db = database_name(conn)?;
    let t = |name: &str| upstream_table(&db, name);
    let mut c = ExportCounts::default();

    // The catalogue: upstream's rows by name, never rewritten.
    let mut goal_ids: HashMap<i64, i64> = HashMap::new();
    for g in all(conn, "SELECT * FROM goals ORDER BY id")? {
        let id = catalogue_id(conn, &t("goals"), &g, &mut c, |g, notes| {
            Ok(vec![
                (
                    "display_name",
                    text(fit(g.get("display_name")?, 63, "goal display name", notes)),
                ),
                (
                    "efficacy_specification",
                    json_col(g, "efficacy_specification")?,
                ),
            ])
        })?;
        goal_ids.insert(g.get("id")?, id);
    }
    let mut strategy_ids: HashMap<i64, i64> = HashMap::new();
    for s in all(conn, "SELECT * FROM strategies ORDER BY id")? {
        let goal_id = goal(&goal_ids, s.get("goal_id")?)?;
        let id = catalogue_id(conn, &t("strategies"), &s, &mut c, |s, notes| {
            Ok(vec![
                (
                    "display_name",
                    text(fit(
                        s.get("display_name")?,
                        63,
                        "strategy display name",
                        notes,
                    )),
                ),
                ("goal_id", int(goal_id)),
                ("parameters_spec", json_col(s, "parameters_spec")?),
            ])
        })?;
        strategy_ids.insert(s.get("id")?, id);
    }
    let strategy = |id: Option<i64>| -> Result<Col, StoreError> {
        Ok(match id {
            None => Col::Is(Value::Null),
            Some(id) => int(*strategy_ids.get(&id).ok_or_else(|| {
                StoreError::Corrupt(format!("a row refers to strategy id {id}, which is gone"))
            })?),
        })
    };

    // Deleted rows first: a live one may reuse a deleted one's name.
    for a in all(
        conn,
        "SELECT * FROM audit_templates ORDER BY deleted_at IS NULL, id",
    )? {
        let uuid: String = a.get("uuid")?;
        let mut cols = times(&a)?;
        let what = format!("audit template {uuid}");
        cols.extend([
            ("name", fitted(&a, "name", 63, &what, &mut c.notes)?),
            (
                "description",
                fitted(&a, "description", 255, &what, &mut c.notes)?,
            ),
            ("goal_id", int(goal(&goal_ids, a.get("goal_id")?)?)),
            ("strategy_id", strategy(a.get("strategy_id")?)?),
            ("scope", json_col(&a, "scope")?),
            (
                "default_parameters",
                text(
                    a.get::<Option<String>>("default_parameters")?
                        .map(json_for_upstream),
                ),
            ),
        ]);
        put(conn, &t("audit_templates"), &uuid, cols)?;
        c.audit_templates += 1;
        c.deleted += usize::from(is_deleted(&a)?);
    }

    let mut audit_ids: HashMap<i64, i64> = HashMap::new();
    for a in all(conn, "SELECT * FROM audits ORDER BY id")? {
        let uuid: String = a.get("uuid")?;
        let what = format!("audit {uuid}");
        let mut cols = times(&a)?;
        cols.extend([
            ("name", fitted(&a, "name", 63, &what, &mut c.notes)?),
            ("audit_type", text(a.get("audit_type")?)),
            ("state", text(a.get("state")?)),
            ("parameters", json_col(&a, "parameters")?),
            ("interval", fitted(&a, "interval", 36, &what, &mut c.notes)?),
            ("goal_id", int(goal(&goal_ids, a.get("goal_id")?)?)),
            ("strategy_id", strategy(a.get("strategy_id")?)?),
            ("scope", json_col(&a, "scope")?),
            ("auto_trigger", int(a.get("auto_trigger")?)),
            ("force", int(a.get("force")?)),
            ("next_run_time", Col::Time(a.get("next_run_time")?)),
            ("start_time", Col::Time(a.get("start_time")?)),
            ("end_time", Col::Time(a.get("end_time")?)),
            (
                "hostname",
                fitted(&a, "hostname", 255, &what, &mut c.notes)?,
            ),
            (
                "status_message",
                fitted(&a, "status_message", 255, &what, &mut c.notes)?,
            ),
        ]);
        let id = put(conn, &t("audits"), &uuid, cols)?;
        audit_ids.insert(a.get("id")?, id);
        c.audits += 1;
        c.deleted += usize::from(is_deleted(&a)?);
    }

    let mut plan_ids: HashMap<i64, i64> = HashMap::new();
    for p in all(conn, "SELECT * FROM action_plans ORDER BY id")? {
        let uuid: String = p.get("uuid")?;
        let what = format!("action plan {uuid}");
        let audit: i64 = p.get("audit_id")?;
        let mut cols = times(&p)?;
        cols.extend([
            (
                "audit_id",
                int(*audit_ids.get(&audit).ok_or_else(|| {
                    StoreError::Corrupt(format!("{what} refers to audit id {audit}, which is gone"))
                })?),
            ),
            ("strategy_id", strategy(Some(p.get("strategy_id")?))?),
            ("state", text(p.get("state")?)),
            ("global_efficacy", json_col(&p, "global_efficacy")?),
            (
                "hostname",
                fitted(&p, "hostname", 255, &what, &mut c.notes)?,
            ),
            (
                "status_message",
                fitted(&p, "status_message", 255, &what, &mut c.notes)?,
            ),
        ]);
        let id = put(conn, &t("action_plans"), &uuid, cols)?;
        plan_ids.insert(p.get("id")?, id);
        // The indicators: a column of watcherd's, rows of upstream's.
        conn.execute(
            &format!(
                "DELETE FROM {} WHERE action_plan_id = ?1",
                t("efficacy_indicators")
            ),
            args![id],
        )?;
        let indicators: Vec<EfficacyIndicator> = p.json("efficacy_indicators")?;
        for i in indicators {
            conn.execute(
                &format!(
                    "INSERT INTO {} (created_at, deleted, uuid, name, description, unit, value, data, \
                     action_plan_id) VALUES (TIMESTAMPADD(MICROSECOND, ?1, '1970-01-01 00:00:00'), \
                     0, ?2, ?3, ?4, ?5, ROUND(?6), ?6, ?7)",
                    t("efficacy_indicators")
                ),
                args![
                    p.get::<i64>("created_at")?,
                    Uuid::new_v4().to_string(),
                    fit(Some(i.name), 63, &format!("{what} indicator name"), &mut c.notes),
                    fit(Some(i.description), 255, &format!("{what} indicator description"), &mut c.notes),
                    fit(i.unit, 63, &format!("{what} indicator unit"), &mut c.notes),
                    // MariaDB reads a decimal string as the number.
                    i.value.to_string(),
                    id
                ],
            )?;
        }
        c.action_plans += 1;
        c.deleted += usize::from(is_deleted(&p)?);
    }

    for a in all(conn, "SELECT * FROM actions ORDER BY id")? {
        let uuid: String = a.get("uuid")?;
        let what = format!("action {uuid}");
        let plan: i64 = a.get("action_plan_id")?;
        let mut cols = times(&a)?;
        cols.extend([
            (
                "action_plan_id",
                int(*plan_ids.get(&plan).ok_or_else(|| {
                    StoreError::Corrupt(format!("{what} refers to plan id {plan}, which is gone"))
                })?),
            ),
            ("action_type", text(a.get("action_type")?)),
            ("input_parameters", json_col(&a, "input_parameters")?),
            ("state", text(a.get("state")?)),
            ("parents", json_col(&a, "parents")?),
            (
                "status_message",
                fitted(&a, "status_message", 255, &what, &mut c.notes)?,
            ),
        ]);
        put(conn, &t("actions"), &uuid, cols)?;
        c.actions += 1;
        c.deleted += usize::from(is_deleted(&a)?);
    }

    for table in [
        "goals",
        "strategies",
        "audit_templates",
        "audits",
        "action_plans",
        "actions",
    ] {
        settle_deleted(conn, &t(table))?;
    }
    record_sync(conn, "export", &revision, &c.summary())?;
    Ok(c)
}

/// The id in upstream's `table` (goals or strategies) of watcherd's
/// catalogue row `row`: upstream's live row of that name, or its row of
/// that UUID; else a row added with the name and what `cols` gives.
fn catalogue_id(
    conn: &Conn,
    table: &str,
    row: &Row,
    c: &mut ExportCounts,
    cols: impl FnOnce(&Row, &mut Vec<String>) -> Result<Vec<(&'static str, Col)>, StoreError>,
) -> Result<i64, StoreError> {
    let (name, uuid): (String, String) = (row.get("name")?, row.get("uuid")?);
    let found: Option<i64> = conn
        .query_opt(
            &format!(
                "SELECT id FROM {table} WHERE (name = ?1 AND deleted = 0) OR uuid = ?2 \
                 ORDER BY deleted = 0 DESC LIMIT 1"
            ),
            args![name.clone(), uuid.clone()],
        )?
        .map(|r| r.get(0))
        .transpose()?;
    if let Some(id) = found {
        return Ok(id);
    }
    c.catalogue_added += 1;
    let mut all = times(row)?;
    all.push((
        "name",
        text(fit(Some(name), 63, "catalogue name", &mut c.notes)),
    ));
    all.extend(cols(row, &mut c.notes)?);
    put(conn, table, &uuid, all)
}

fn goal(ids: &HashMap<i64, i64>, id: i64) -> Result<i64, StoreError> {
    ids.get(&id)
        .copied()
        .ok_or_else(|| StoreError::Corrupt(format!("a row refers to goal id {id}, which is gone")))
}
