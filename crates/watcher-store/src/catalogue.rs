//! Goals and strategies: the catalogue the decision engine writes at start and the API reads.

use crate::listing::{build_list_sql, find_by_ident, Where};
use crate::sql::{args, Row};
use crate::*;
use serde_json::Value;
use uuid::Uuid;
use watcher_core::*;

const GOAL_SELECT: &str = "SELECT x.id, x.uuid, x.name, x.display_name, \
    x.efficacy_specification, x.created_at, x.updated_at FROM goals x";

const STRATEGY_SELECT: &str = "SELECT x.id, x.uuid, x.name, x.display_name, x.goal_id, \
    g.uuid AS goal_uuid, g.name AS goal_name, x.parameters_spec, x.created_at \
    FROM strategies x JOIN goals g ON g.id = x.goal_id";

fn goal_from_row(row: &Row) -> Result<Goal, StoreError> {
    Ok(Goal {
        id: row.get("id")?,
        uuid: row.uuid("uuid")?,
        name: row.get("name")?,
        display_name: row.get("display_name")?,
        efficacy_specification: row.json("efficacy_specification")?,
        created_at: row.time("created_at")?,
        updated_at: row.opt_time("updated_at")?,
    })
}

fn strategy_from_row(row: &Row) -> Result<Strategy, StoreError> {
    Ok(Strategy {
        id: row.get("id")?,
        uuid: row.uuid("uuid")?,
        name: row.get("name")?,
        display_name: row.get("display_name")?,
        goal_id: row.get("goal_id")?,
        goal_uuid: row.uuid("goal_uuid")?,
        goal_name: row.get("goal_name")?,
        parameters_spec: row.json("parameters_spec")?,
        created_at: row.time("created_at")?,
    })
}

impl Store {
    // ----- catalogue -----------------------------------------------------

    /// The UUIDs an upstream Watcher gave the built-in scoring engines, by
    /// name (taken over with its database; empty otherwise).
    pub async fn scoring_engine_uuids(
        &self,
    ) -> Result<std::collections::HashMap<String, Uuid>, StoreError> {
        self.read(|conn| {
            Ok(conn
                .query_map("SELECT name, uuid FROM scoring_engine_uuids", (), |r| {
                    Ok((r.get(0)?, r.uuid(1)?))
                })?
                .into_iter()
                .collect())
        })
        .await
    }

    /// Registers a goal, keeping its UUID if it exists already.
    pub async fn upsert_goal(
        &self,
        name: &str,
        display_name: &str,
        spec: Vec<EfficacySpec>,
    ) -> Result<(), StoreError> {
        let (name, display_name) = (name.to_string(), display_name.to_string());
        let spec = serde_json::to_string(&spec)?;
        self.write(move |conn, _| {
            let now = now_micros();
            conn.execute(
                "INSERT INTO goals (uuid, name, display_name, efficacy_specification, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(name) DO UPDATE SET \
                 display_name = excluded.display_name, efficacy_specification = excluded.efficacy_specification",
                args![Uuid::new_v4().to_string(), name, display_name, spec, now],
            )?;
            Ok(())
        })
        .await
    }

    /// Registers a strategy of an existing goal, keeping its UUID if it exists already.
    pub async fn upsert_strategy(
        &self,
        name: &str,
        display_name: &str,
        goal: &str,
        parameters_spec: Value,
    ) -> Result<(), StoreError> {
        let (name, display_name, goal) =
            (name.to_string(), display_name.to_string(), goal.to_string());
        let spec = serde_json::to_string(&parameters_spec)?;
        self.write(move |conn, _| {
            let now = now_micros();
            conn.execute(
                "INSERT INTO strategies (uuid, name, display_name, goal_id, parameters_spec, created_at) \
                 VALUES (?1, ?2, ?3, (SELECT id FROM goals WHERE name = ?4), ?5, ?6) \
                 ON CONFLICT(name) DO UPDATE SET display_name = excluded.display_name, \
                 goal_id = excluded.goal_id, parameters_spec = excluded.parameters_spec",
                args![Uuid::new_v4().to_string(), name, display_name, goal, spec, now],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn list_goals(&self, query: ListQuery) -> Result<Vec<Goal>, StoreError> {
        self.read(move |conn| {
            let (sql, args) =
                build_list_sql(GOAL_SELECT, "goals", &query, Where::on(conn), conn, "Goal")?;
            conn.query_map(&sql, args, goal_from_row)
        })
        .await
    }

    /// A goal by UUID or name.
    pub async fn get_goal(&self, ident: &str) -> Result<Goal, StoreError> {
        let ident = ident.to_string();
        self.read(move |conn| find_by_ident(conn, GOAL_SELECT, &ident, "Goal", goal_from_row))
            .await
    }

    pub async fn list_strategies(
        &self,
        goal: Option<String>,
        query: ListQuery,
    ) -> Result<Vec<Strategy>, StoreError> {
        self.read(move |conn| {
            let filters = Where::on(conn).ident(goal.as_deref(), "g.uuid", "g.name");
            let (sql, args) = build_list_sql(
                STRATEGY_SELECT,
                "strategies",
                &query,
                filters,
                conn,
                "Strategy",
            )?;
            conn.query_map(&sql, args, strategy_from_row)
        })
        .await
    }

    /// A strategy by UUID or name.
    pub async fn get_strategy(&self, ident: &str) -> Result<Strategy, StoreError> {
        let ident = ident.to_string();
        self.read(move |conn| {
            find_by_ident(conn, STRATEGY_SELECT, &ident, "Strategy", strategy_from_row)
        })
        .await
    }
}
