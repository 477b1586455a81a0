//! Purge: soft-deleted records, and the plans their deletion left behind,
//! removed for good with their actions, journal and history, in short
//! transactions that never touch a plan that may run.
//!
//! Upstream's `watcher-db-manage purge` decides the same way (age since
//! deletion, a goal, orphans, a maximum); it reads everything into memory
//! and deletes object by object. Here the candidates are found by SQL and
//! removed in batches of whole plans (at most [`BATCH_PLANS`] plans or about
//! [`BATCH_ROWS`] actions a transaction), so a purge of 100,000 plans never
//! holds the write lock for more than one batch and a cancel slips between.

use crate::sql::{args, marks, numbered_marks, Conn, Value as SqlValue};
use crate::*;
use chrono::{DateTime, Utc};
use watcher_core::ActionPlanState;

/// What to purge.
#[derive(Debug, Clone, Default)]
pub struct PurgeRequest {
    /// Only records deleted before this instant (`--age-in-days`); all
    /// soft-deleted records when `None`.
    pub deleted_before: Option<DateTime<Utc>>,
    /// Only records under this goal (uuid or name).
    pub goal: Option<String>,
    /// Also the live plans of deleted audits (upstream's orphans), unless
    /// they may run (PENDING, ONGOING, CANCELLING).
    pub include_orphans: bool,
    /// Purge whole plans (with their actions) and audits only while the
    /// count of removed objects stays within this.
    pub max_objects: Option<usize>,
    /// Count only.
    pub dry_run: bool,
}

/// What a purge removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PurgeCounts {
    pub audit_templates: usize,
    pub audits: usize,
    pub action_plans: usize,
    pub actions: usize,
    /// History rows of the removed records (not objects: not counted
    /// against `max_objects`).
    pub history_rows: usize,
    /// True when `max_objects` stopped the purge before every candidate.
    pub limited: bool,
}

impl PurgeCounts {
    /// Objects as upstream counts them (its table's "Total").
    pub fn objects(&self) -> usize {
        self.audit_templates + self.audits + self.action_plans + self.actions
    }
}

/// Plans per transaction.
const BATCH_PLANS: usize = 200;
/// Actions per transaction (a plan bigger than this goes alone).
const BATCH_ROWS: usize = 5_000;

/// The history rows the notification relay has not published yet must
/// stay (their records are read to render the notifications).
const UNPUBLISHED: &str = "h.seq > (SELECT last_seq FROM notification_cursor WHERE id = 1)";

/// The conditions a purged plan meets (alias `p`, its audit `a`); `?1` is
/// the cutoff (micros), `?2` the goal's id or NULL.
fn plan_condition(orphans: bool) -> String {
    let orphan = if orphans {
        " OR (p.deleted_at IS NULL AND a.deleted_at IS NOT NULL AND a.deleted_at < ?1)"
    } else {
        ""
    };
    // Made from the typed states rather than bound: the condition is
    // shared by statements whose placeholders are numbered differently.
    let may_run = [
        ActionPlanState::Pending,
        ActionPlanState::Ongoing,
        ActionPlanState::Cancelling,
    ]
    .map(|s| format!("'{s}'"))
    .join(", ");
    format!(
        "p.state NOT IN ({may_run}) \
         AND (CAST(?2 AS BIGINT) IS NULL OR a.goal_id = ?2) \
         AND ((p.deleted_at IS NOT NULL AND p.deleted_at < ?1){orphan}) \
         AND NOT EXISTS (SELECT 1 FROM state_history h WHERE h.action_plan_uuid = p.uuid AND {UNPUBLISHED})"
    )
}

/// The conditions a purged audit meets (alias `a`): deleted, and without
/// plans (the plans purged before it are gone; a dry run, which removed
/// none, counts those that would be).
fn audit_condition(orphans: bool, dry_run: bool) -> String {
    let plans_left = if dry_run {
        format!("p.audit_id = a.id AND NOT ({})", plan_condition(orphans))
    } else {
        "p.audit_id = a.id".to_string()
    };
    format!(
        "a.deleted_at IS NOT NULL AND a.deleted_at < ?1 AND (CAST(?2 AS BIGINT) IS NULL OR a.goal_id = ?2) \
         AND NOT EXISTS (SELECT 1 FROM state_history h WHERE h.entity = 'audit' AND h.uuid = a.uuid AND {UNPUBLISHED}) \
         AND NOT EXISTS (SELECT 1 FROM action_plans p WHERE {plans_left})"
    )
}

const TEMPLATE_CONDITION: &str =
    "t.deleted_at IS NOT NULL AND t.deleted_at < ?1 AND (CAST(?2 AS BIGINT) IS NULL OR t.goal_id = ?2)";

fn goal_id(conn: &Conn, goal: &str) -> Result<i64, StoreError> {
    conn.query_row_opt(
        &format!(
            "SELECT id FROM goals WHERE uuid = ?1 OR {}",
            conn.dialect().name_eq("name", "?1")
        ),
        [goal],
        |r| r.get(0),
    )?
    .ok_or_else(|| StoreError::NotFound {
        kind: "Goal",
        id: goal.to_string(),
    })
}

/// A plan to purge and its size.
struct Candidate {
    id: i64,
    actions: usize,
}

impl Store {
    /// Removes soft-deleted records for good (see the module's comment);
    /// what was removed, or with `dry_run` what would be.
    pub async fn purge(&self, request: PurgeRequest) -> Result<PurgeCounts, StoreError> {
        let cutoff = request.deleted_before.map_or(i64::MAX, to_micros);
        let goal = match request.goal.clone() {
            Some(g) => Some(self.read(move |conn| goal_id(conn, &g)).await?),
            None => None,
        };
        let orphans = request.include_orphans;
        let filters = (cutoff, goal, orphans);
        let dry_run = request.dry_run;
        let mut budget = request.max_objects.unwrap_or(usize::MAX);
        let mut counts = PurgeCounts::default();
        // Plans first (with their actions), oldest first, as whole units
        // within the budget; then the audits left without plans, and the
        // templates, a batch a transaction.
        self.purge_plan_pages(filters, dry_run, &mut budget, &mut counts)
            .await?;
        let audits = audit_condition(orphans, dry_run);
        counts.audits = self
            .purge_leftovers(
                ("audits", "a", audits),
                filters,
                dry_run,
                &mut budget,
                &mut counts,
            )
            .await?;
        let templates = TEMPLATE_CONDITION.to_string();
        counts.audit_templates = self
            .purge_leftovers(
                ("audit_templates", "t", templates),
                filters,
                dry_run,
                &mut budget,
                &mut counts,
            )
            .await?;
        Ok(counts)
    }

    /// The plans the filters match, page by page, in batches of whole plans
    /// within the budget.
    async fn purge_plan_pages(
        &self,
        (cutoff, goal, orphans): (i64, Option<i64>, bool),
        dry_run: bool,
        budget: &mut usize,
        counts: &mut PurgeCounts,
    ) -> Result<(), StoreError> {
        let mut after = 0i64;
        loop {
            let page: Vec<Candidate> = self
                .read(move |conn| {
                    conn.query_map(
                        &format!(
                            "SELECT p.id, (SELECT COUNT(*) FROM actions x WHERE x.action_plan_id = p.id) AS n \
                             FROM action_plans p JOIN audits a ON a.id = p.audit_id \
                             WHERE p.id > ?3 AND {} ORDER BY p.id LIMIT {BATCH_PLANS}",
                            plan_condition(orphans)
                        ),
                        args![cutoff, goal, after],
                        |r| {
                            Ok(Candidate {
                                id: r.get("id")?,
                                actions: r.get::<i64>("n")? as usize,
                            })
                        },
                    )
                })
                .await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            // Batches of whole plans within the budget.
            let mut batch: Vec<i64> = Vec::new();
            let mut rows = 0usize;
            for c in page {
                if 1 + c.actions > *budget {
                    counts.limited = true;
                    break;
                }
                *budget -= 1 + c.actions;
                if dry_run {
                    // What the candidates say is what would go.
                    counts.action_plans += 1;
                    counts.actions += c.actions;
                    continue;
                }
                if !batch.is_empty() && rows + c.actions > BATCH_ROWS {
                    let ids = std::mem::take(&mut batch);
                    self.purge_plans(ids, (cutoff, goal, orphans), counts)
                        .await?;
                    rows = 0;
                }
                rows += c.actions;
                batch.push(c.id);
            }
            if !batch.is_empty() {
                self.purge_plans(batch, (cutoff, goal, orphans), counts)
                    .await?;
            }
            if counts.limited {
                break;
            }
        }
        Ok(())
    }

    /// The rows of `table` (`alias`, matched by `condition`) the filters
    /// leave without plans, a batch a transaction; how many went.
    async fn purge_leftovers(
        &self,
        (table, alias, condition): (&'static str, &'static str, String),
        (cutoff, goal, _): (i64, Option<i64>, bool),
        dry_run: bool,
        budget: &mut usize,
        counts: &mut PurgeCounts,
    ) -> Result<usize, StoreError> {
        let mut removed = 0usize;
        let mut after = 0i64;
        while !counts.limited {
            let take = (*budget).min(BATCH_PLANS);
            // The next ids that match, one more than taken to know
            // whether there are more.
            let select = {
                let sql = format!(
                    "SELECT {alias}.id FROM {table} {alias} WHERE {alias}.id > ?3 AND {condition} \
                     ORDER BY {alias}.id LIMIT {}",
                    take + 1
                );
                move |conn: &Conn| -> Result<(Vec<i64>, bool), StoreError> {
                    let ids: Vec<i64> =
                        conn.query_map(&sql, args![cutoff, goal, after], |r| r.get(0))?;
                    let more = ids.len() > take;
                    Ok((ids.into_iter().take(take).collect(), more))
                }
            };
            let (ids, history, more) = if dry_run {
                let (ids, more) = self.read(select).await?;
                (ids, 0, more)
            } else {
                self.write(move |conn, _| {
                    let (ids, more) = select(conn)?;
                    if ids.is_empty() {
                        return Ok((ids, 0, more));
                    }
                    let values: Vec<SqlValue> = ids.iter().map(|&i| SqlValue::Int(i)).collect();
                    let marks = marks(ids.len());
                    let mut history = 0;
                    if table == "audits" {
                        history = conn.execute(
                            &format!(
                                "DELETE FROM state_history WHERE entity = 'audit' AND uuid IN \
                                 (SELECT uuid FROM audits WHERE id IN ({marks}))"
                            ),
                            values.clone(),
                        )?;
                    }
                    conn.execute(
                        &format!("DELETE FROM {table} WHERE id IN ({marks})"),
                        values,
                    )?;
                    Ok((ids, history, more))
                })
                .await?
            };
            removed += ids.len();
            *budget -= ids.len();
            counts.history_rows += history;
            let Some(&last) = ids.last() else { break };
            after = last;
            if more && *budget == 0 {
                counts.limited = true;
            }
            if !more {
                break;
            }
        }
        Ok(removed)
    }

    /// One transaction: the plans `ids` (checked again: one that became
    /// runnable meanwhile stays), their actions, journal and history; the
    /// cutoff, goal and orphans of the request.
    async fn purge_plans(
        &self,
        ids: Vec<i64>,
        (cutoff, goal, orphans): (i64, Option<i64>, bool),
        counts: &mut PurgeCounts,
    ) -> Result<(), StoreError> {
        let (plans, actions, history) = self
            .write(move |conn, _| {
                let mut values: Vec<SqlValue> = args![cutoff, goal].to_vec();
                values.extend(ids.iter().map(|&i| SqlValue::Int(i)));
                let plans: Vec<(i64, String)> = conn.query_map(
                    &format!(
                        "SELECT p.id, p.uuid FROM action_plans p JOIN audits a ON a.id = p.audit_id \
                         WHERE p.id IN ({}) AND {}",
                        numbered_marks(3, ids.len()),
                        plan_condition(orphans)
                    ),
                    values,
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                if plans.is_empty() {
                    return Ok((0, 0, 0));
                }
                let ids: Vec<SqlValue> = plans.iter().map(|(i, _)| SqlValue::Int(*i)).collect();
                let uuids: Vec<SqlValue> = plans
                    .iter()
                    .map(|(_, u)| SqlValue::Text(u.clone()))
                    .collect();
                let marks = marks(plans.len());
                conn.execute(
                    &format!(
                        "DELETE FROM action_journal WHERE action_uuid IN \
                         (SELECT uuid FROM actions WHERE action_plan_id IN ({marks}))"
                    ),
                    ids.clone(),
                )?;
                let history = conn.execute(
                    &format!("DELETE FROM state_history WHERE action_plan_uuid IN ({marks})"),
                    uuids,
                )?;
                let actions = conn.execute(
                    &format!("DELETE FROM actions WHERE action_plan_id IN ({marks})"),
                    ids.clone(),
                )?;
                conn.execute(
                    &format!("DELETE FROM action_plans WHERE id IN ({marks})"),
                    ids,
                )?;
                Ok((plans.len(), actions, history))
            })
            .await?;
        counts.action_plans += plans;
        counts.actions += actions;
        counts.history_rows += history;
        Ok(())
    }
}
