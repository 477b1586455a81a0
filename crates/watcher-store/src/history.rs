//! The state history: what every state change wrote, read by the API, `/metrics`, the history tail
//! and the notification relay's cursor.

use crate::sql::{args, Conn, Row, Value as SqlValue};
use crate::*;
use uuid::Uuid;
use watcher_core::*;

/// Live records per state, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct StateCounts {
    pub action_plans: Vec<(String, i64)>,
    pub actions: Vec<(String, i64)>,
    pub audits: Vec<(String, i64)>,
}

fn history_from_row(row: &Row) -> Result<HistoryEntry, StoreError> {
    let entity: String = row.get("entity")?;
    let entity = Entity::parse(&entity)
        .ok_or_else(|| StoreError::Corrupt(format!("history row of unknown entity {entity:?}")))?;
    let state = |column: &str| -> Result<Option<EntityState>, StoreError> {
        match row.get::<Option<String>>(column)? {
            None => Ok(None),
            Some(s) => EntityState::parse(entity, &s).map(Some).ok_or_else(|| {
                StoreError::Corrupt(format!("history row: {s:?} is no {} state", entity.kind()))
            }),
        }
    };
    Ok(HistoryEntry {
        seq: row.get("seq")?,
        entity,
        uuid: row.uuid("uuid")?,
        action_plan_uuid: row.opt_uuid("action_plan_uuid")?,
        from_state: state("from_state")?,
        to_state: state("to_state")?
            .ok_or_else(|| StoreError::Corrupt("history row without to_state".into()))?,
        actor: row.parsed("actor")?,
        reason: row.get("reason")?,
        at: row.time("at")?,
    })
}

/// A history row to write: the record, its change of state (`from` is
/// None for a creation; equal to `to` for a takeover), who, why and when.
pub(crate) struct NewHistory<'a> {
    pub uuid: Uuid,
    /// The plan the record belongs to (the plan itself for plan rows).
    pub plan: Option<Uuid>,
    pub from: Option<EntityState>,
    pub to: EntityState,
    pub actor: Actor,
    pub reason: &'a str,
    pub at: i64,
}

/// Writes one history row. Every state change calls this in its own transaction.
pub(crate) fn record_history(conn: &Conn, row: &NewHistory<'_>) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO state_history (entity, uuid, action_plan_uuid, from_state, to_state, actor, reason, at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        args![
            row.to.entity(),
            row.uuid,
            row.plan,
            row.from,
            row.to,
            row.actor,
            row.reason,
            row.at
        ],
    )?;
    Ok(())
}

/// Refuses a change the transition table does not allow its actor.
pub(crate) fn check_transition<S>(change: &StateChange<S>) -> Result<(), StoreError>
where
    S: MachineState + Into<EntityState>,
{
    if change.is_allowed() {
        Ok(())
    } else {
        Err(StoreError::IllegalTransition {
            from: change.from.into(),
            to: change.to.into(),
        })
    }
}

fn is_plan_creation(row: &HistoryEntry) -> bool {
    row.entity == Entity::ActionPlan && row.from_state.is_none()
}

/// A plan's creation row stands for its actions' creations too: writing a
/// row per action (10,000 for a big plan) under the writers' lock held
/// every other process's writes, a cancel included, for 80 ms. So their
/// entries are made from the plan's row, with its `seq`, actor and time,
/// in the order the actions were inserted. Plans written before this kept
/// a row per action; those actions are left out here (they have their own).
fn actions_created_with(
    conn: &Conn,
    creation: &HistoryEntry,
) -> Result<Vec<HistoryEntry>, StoreError> {
    if !is_plan_creation(creation) {
        return Ok(vec![]);
    }
    let plan = creation.uuid.to_string();
    let recorded: std::collections::HashSet<Uuid> = conn
        .query_map(
            "SELECT uuid FROM state_history WHERE action_plan_uuid = ?1 AND entity = 'action' \
             AND from_state IS NULL",
            args![plan.clone()],
            |r| r.uuid(0),
        )?
        .into_iter()
        .collect();
    let actions = conn.query_map(
        "SELECT x.uuid FROM actions x JOIN action_plans p ON p.id = x.action_plan_id \
         WHERE p.uuid = ?1 ORDER BY x.id",
        args![plan],
        |r| r.uuid(0),
    )?;
    Ok(actions
        .into_iter()
        .filter(|a| !recorded.contains(a))
        .map(|uuid| HistoryEntry {
            seq: creation.seq,
            entity: Entity::Action,
            uuid,
            action_plan_uuid: Some(creation.uuid),
            from_state: None,
            to_state: EntityState::Action(ActionState::Pending),
            actor: creation.actor,
            reason: "planned".into(),
            at: creation.at,
        })
        .collect())
}

/// Below this much free space under a SQLite file, `/healthz` says 503:
/// a new plan or audit would not fit.
pub const DISK_FREE_MIN: u64 = 256 * 1024;

impl Store {
    // ----- history and journal -------------------------------------------------

    /// Every state change of a plan and its actions, in commit order; the
    /// actions' creations right after the plan's ([`actions_created_with`]).
    pub async fn plan_history(&self, plan: Uuid) -> Result<Vec<HistoryEntry>, StoreError> {
        self.read(move |conn| {
            let rows = conn.query_map("SELECT seq, entity, uuid, action_plan_uuid, from_state, to_state, actor, reason, at \
                 FROM state_history WHERE action_plan_uuid = ? ORDER BY seq",
                vec![SqlValue::Text(plan.to_string())],
                history_from_row,
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let actions = actions_created_with(conn, &row)?;
                out.push(row);
                out.extend(actions);
            }
            Ok(out)
        })
        .await
    }

    /// The creations of the actions a plan was created with, as history
    /// entries of `creation` (the plan's own creation row): see
    /// [`actions_created_with`]. Any other row gives none, without a read:
    /// the notification relay asks this of every row it publishes.
    pub async fn actions_created_with(
        &self,
        creation: HistoryEntry,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        if !is_plan_creation(&creation) {
            return Ok(vec![]);
        }
        self.read(move |conn| actions_created_with(conn, &creation))
            .await
    }

    /// A plan's state as of history row `seq`, and when it entered it (None
    /// for its creation): what
    /// a notification rendered for that row says of the plan, however late
    /// (or however often, after a crash) it is rendered.
    pub async fn plan_state_at(
        &self,
        plan: Uuid,
        seq: i64,
    ) -> Result<Option<(ActionPlanState, Option<DateTime<Utc>>)>, StoreError> {
        self.read(move |conn| {
            conn.query_row_opt(
                "SELECT from_state, to_state, at FROM state_history WHERE action_plan_uuid = ?1 \
                 AND entity = 'action_plan' AND seq <= ?2 ORDER BY seq DESC LIMIT 1",
                args![plan.to_string(), seq],
                |row| {
                    let state: String = row.get("to_state")?;
                    let state = state.parse().map_err(|e: UnknownState| {
                        StoreError::Corrupt(format!("history of plan {plan}: {e}"))
                    })?;
                    // Its creation is no update: updated_at was still null.
                    let created = row.get::<Option<String>>("from_state")?.is_none();
                    Ok((state, (!created).then(|| row.time("at")).transpose()?))
                },
            )
        })
        .await
    }

    /// The notification relay's cursor: created on first use at the newest
    /// history row (history from before notifications were enabled is not
    /// sent), with `nonce` as this database's message-id prefix.
    pub async fn notification_cursor(&self, nonce: i64) -> Result<(i64, i64), StoreError> {
        self.write(move |conn, _| {
            conn.execute(
                "INSERT INTO notification_cursor (id, last_seq, nonce) \
                 VALUES (1, (SELECT COALESCE(MAX(seq), 0) FROM state_history), ?1) ON CONFLICT DO NOTHING",
                [nonce],
            )?;
            conn.query_row(
                "SELECT last_seq, nonce FROM notification_cursor WHERE id = 1",
                (),
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .await
    }

    /// Takes or renews the relay lease for `host` until `until` (micros):
    /// the cursor's position if this relay leads now, None if another
    /// relay's lease is still running.
    pub async fn lead_notifications(
        &self,
        host: String,
        until: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.write(move |conn, _| {
            let n = conn.execute(
                "UPDATE notification_cursor SET holder = ?1, lease_expires_at = ?2 WHERE id = 1 \
                 AND (holder IS NULL OR holder = ?1 OR lease_expires_at < ?3)",
                args![host, until, now_micros()],
            )?;
            if n == 0 {
                return Ok(None);
            }
            Ok(Some(conn.query_row(
                "SELECT last_seq FROM notification_cursor WHERE id = 1",
                (),
                |r| r.get(0),
            )?))
        })
        .await
    }

    /// Records that every history row up to `seq` has been published, if
    /// `host` still holds the relay lease (a relay that lost it must not
    /// move the cursor of the one that took over).
    pub async fn advance_notification_cursor(
        &self,
        host: String,
        seq: i64,
    ) -> Result<bool, StoreError> {
        self.write(move |conn, _| {
            let n = conn.execute(
                &format!(
                    "UPDATE notification_cursor SET last_seq = {}(last_seq, ?1) WHERE id = 1 AND holder = ?2",
                    conn.dialect().greatest()
                ),
                args![seq, host],
            )?;
            Ok(n == 1)
        })
        .await
    }

    /// How many live plans, actions and audits are in each state.
    pub async fn state_counts(&self) -> Result<StateCounts, StoreError> {
        self.read(|conn| {
            let count = |table: &str| -> Result<Vec<(String, i64)>, StoreError> {
                let sql = format!(
                    "SELECT state, COUNT(*) FROM {table} WHERE deleted_at IS NULL GROUP BY state ORDER BY state"
                );
                conn.query_map(&sql, (), |r| Ok((r.get(0)?, r.get(1)?)))
            };
            Ok(StateCounts {
                action_plans: count("action_plans")?,
                actions: count("actions")?,
                audits: count("audits")?,
            })
        })
        .await
    }

    /// A real write, committed (and so written to disk) like any other:
    /// `/healthz` asks whether the database takes writes, not only reads.
    /// A write that succeeds proves less than it seems on SQLite: on a full
    /// disk it still commits changes to pages it has (and its WAL reuses
    /// its space), while every new audit or plan fails. So under a SQLite
    /// file the probe also fails while the file system has less than
    /// [`DISK_FREE_MIN`] left. (A database server refuses every write when
    /// its disk is full, the probe's too.)
    pub async fn probe_write(&self) -> Result<(), StoreError> {
        self.write(|conn, _| conn.batch("UPDATE schema_version SET version = version"))
            .await?;
        if let DatabaseLocation::File(path) = &self.inner.location {
            if let Some(free) = crate::wal::disk_free_bytes(path) {
                if free < DISK_FREE_MIN {
                    return Err(StoreError::Unavailable(format!(
                        "the disk under the database file {} has {free} bytes free; free space on it",
                        path.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The newest history row's number, and the notification cursor if
    /// notifications were ever enabled.
    pub async fn history_position(&self) -> Result<(i64, Option<i64>), StoreError> {
        self.read(|conn| {
            let newest: i64 =
                conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM state_history", (), |r| {
                    r.get(0)
                })?;
            let cursor: Option<i64> = conn.query_row_opt(
                "SELECT last_seq FROM notification_cursor WHERE id = 1",
                (),
                |r| r.get(0),
            )?;
            Ok((newest, cursor))
        })
        .await
    }

    /// History rows after `seq`, oldest first.
    pub async fn history_after(
        &self,
        seq: i64,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.read(move |conn| {
            conn.query_map("SELECT seq, entity, uuid, action_plan_uuid, from_state, to_state, actor, reason, at \
                 FROM state_history WHERE seq > ? ORDER BY seq LIMIT ?",
                vec![SqlValue::Int(seq), SqlValue::Int(limit as i64)],
                history_from_row,
            )
        })
        .await
    }
}
