//! The side-effect journal: an action's intent before the cloud is asked, then the cloud's
//! operation id.

use crate::sql::args;
use crate::*;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// A journaled side effect of an action: written before the cloud is asked
/// to do anything, completed with the cloud's operation id once known.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    pub action_uuid: Uuid,
    pub intent: Value,
    pub operation_id: Option<String>,
    /// When the intent was written: the operation, if it started, started
    /// after this.
    pub intended_at: DateTime<Utc>,
}

impl Store {
    /// Records what an action is about to ask of the cloud, before asking.
    pub async fn journal_intent(&self, action: Uuid, intent: Value) -> Result<(), StoreError> {
        self.write(move |conn, _| {
            conn.execute(
                "INSERT INTO action_journal (action_uuid, intent, recorded_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(action_uuid) DO UPDATE SET intent = excluded.intent, operation_id = NULL, \
                 updated_at = excluded.recorded_at",
                args![action.to_string(), intent.to_string(), now_micros()],
            )?;
            Ok(())
        })
        .await
    }

    /// Records the cloud's id for the operation an intent started.
    pub async fn journal_operation(
        &self,
        action: Uuid,
        operation_id: String,
    ) -> Result<(), StoreError> {
        self.write(move |conn, _| {
            // updated_at stays the intent's time (`JournalEntry::intended_at`).
            conn.execute(
                "UPDATE action_journal SET operation_id = ?1 WHERE action_uuid = ?2",
                args![operation_id, action.to_string()],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn journal(&self, action: Uuid) -> Result<Option<JournalEntry>, StoreError> {
        self.read(move |conn| {
            conn.query_row_opt(
                // A later intent of the same action sets updated_at.
                "SELECT action_uuid, intent, operation_id, COALESCE(updated_at, recorded_at) \
                 FROM action_journal WHERE action_uuid = ?1",
                [action.to_string()],
                |r| {
                    Ok(JournalEntry {
                        action_uuid: r.uuid(0)?,
                        intent: r.json(1)?,
                        operation_id: r.get(2)?,
                        intended_at: r.time(3)?,
                    })
                },
            )
        })
        .await
    }
}
