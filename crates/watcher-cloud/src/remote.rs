//! The simulated cloud as its own process (`watcherd sim-cloud`) and the
//! driver that talks to it (`cloud = "sim-cloud"`): the cloud keeps running
//! while watcherd dies, as a real one does, so crash recovery can be tested
//! against what the cloud really did meanwhile.
//!
//! The protocol is one JSON call per trait method, `POST /cloud/<method>`
//! with the arguments as an object, answered `{"ok": result}` or
//! `{"error": {...}}`; `/control/operations` and `/control/fail` let tests
//! look at and break operations while watcherd is down.

use super::simulated::{OperationInfo, SimulatedCloud};
use super::{
    Cloud, CloudError, ComputeNode, ComputeService, Flavor, Instance, OperationId, OperationState,
    StoragePool, Volume,
};
use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// A cloud error on the wire.
fn error_json(e: &CloudError) -> Value {
    let (kind, fields) = match e {
        CloudError::NotFound { kind, id } => ("not_found", json!({"resource": kind, "id": id})),
        CloudError::Refused(m) => ("refused", json!({"message": m})),
        CloudError::Conflict(m) => ("conflict", json!({"message": m})),
        CloudError::PastPointOfNoReturn(m) => ("past_point_of_no_return", json!({"message": m})),
        CloudError::NotAbortable(m) => ("not_abortable", json!({"message": m})),
        CloudError::AlreadyFinished(m) => ("already_finished", json!({"message": m})),
        CloudError::Transient(m) => ("transient", json!({"message": m})),
    };
    let mut v = fields;
    v["error"] = json!(kind);
    v
}

fn error_from(v: &Value) -> CloudError {
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    match v["error"].as_str().unwrap_or_default() {
        "not_found" => CloudError::NotFound {
            kind: match v["resource"].as_str().unwrap_or_default() {
                "Instance" => "Instance",
                "Host" => "Host",
                "Volume" => "Volume",
                "Pool" => "Pool",
                "Flavor" => "Flavor",
                "Operation" => "Operation",
                _ => "Resource",
            },
            id: text("id"),
        },
        "refused" => CloudError::Refused(text("message")),
        "conflict" => CloudError::Conflict(text("message")),
        "past_point_of_no_return" => CloudError::PastPointOfNoReturn(text("message")),
        "not_abortable" => CloudError::NotAbortable(text("message")),
        "already_finished" => CloudError::AlreadyFinished(text("message")),
        _ => CloudError::Transient(text("message")),
    }
}

fn answer<T: serde::Serialize>(r: Result<T, CloudError>) -> Json<Value> {
    Json(match r {
        Ok(v) => json!({"ok": v}),
        Err(e) => json!({"error": error_json(&e)}),
    })
}

/// The sim-cloud's HTTP interface over `cloud`.
pub fn router(cloud: Arc<SimulatedCloud>) -> Router {
    Router::new()
        .route("/cloud/{method}", post(call))
        .route("/control/operations", get(operations))
        .route("/control/fail/{op}", post(fail))
        .with_state(cloud)
}

async fn operations(State(c): State<Arc<SimulatedCloud>>) -> Json<Vec<OperationInfo>> {
    Json(c.operations())
}

async fn fail(State(c): State<Arc<SimulatedCloud>>, Path(op): Path<String>) -> Json<Value> {
    answer(c.fail_operation(&op))
}

async fn call(
    State(c): State<Arc<SimulatedCloud>>,
    Path(method): Path<String>,
    Json(a): Json<Value>,
) -> Json<Value> {
    let s = |k: &str| a[k].as_str().unwrap_or_default().to_string();
    let opt = |k: &str| a[k].as_str().map(str::to_string);
    match method.as_str() {
        "compute_nodes" => answer(c.compute_nodes().await),
        "flavors" => answer(c.flavors().await),
        "instances" => answer(c.instances().await),
        "instance" => answer(c.instance(&s("uuid")).await),
        "volume" => answer(c.volume(&s("uuid")).await),
        "volumes" => answer(c.volumes().await),
        "storage_pools" => answer(c.storage_pools().await),
        "compute_service" => answer(c.compute_service(&s("host")).await),
        "live_migrate" => answer(
            c.live_migrate(&s("instance"), opt("destination").as_deref())
                .await,
        ),
        "cold_migrate" => answer(
            c.cold_migrate(&s("instance"), opt("destination").as_deref())
                .await,
        ),
        "resize" => answer(c.resize(&s("instance"), &s("flavor")).await),
        "migrate_volume" => answer(c.migrate_volume(&s("volume"), &s("pool")).await),
        "retype_volume" => answer(c.retype_volume(&s("volume"), &s("type")).await),
        "set_compute_service" => answer(
            c.set_compute_service(
                &s("host"),
                a["enabled"].as_bool().unwrap_or(true),
                opt("reason").as_deref(),
            )
            .await,
        ),
        "set_instance_power" => answer(
            c.set_instance_power(&s("instance"), a["on"].as_bool().unwrap_or(true))
                .await,
        ),
        "set_node_power" => answer(
            c.set_node_power(&s("node"), a["on"].as_bool().unwrap_or(true))
                .await,
        ),
        "operation" => answer(c.operation(&s("op")).await),
        "find_migration" => match chrono::DateTime::parse_from_rfc3339(&s("since")) {
            Ok(since) => answer(
                c.find_migration(
                    &s("instance"),
                    a["live"].as_bool().unwrap_or(true),
                    since.with_timezone(&chrono::Utc),
                )
                .await,
            ),
            Err(e) => answer::<()>(Err(CloudError::Refused(format!("since: {e}")))),
        },
        "abort" => answer(c.abort(&s("op")).await),
        "force_complete" => answer(c.force_complete(&s("op")).await),
        "confirm" => answer(c.confirm(&s("op")).await),
        "revert" => answer(c.revert(&s("op")).await),
        other => answer::<()>(Err(CloudError::Refused(format!("no cloud method {other}")))),
    }
}

/// The driver: every trait method is one call to the sim-cloud. A sim-cloud
/// that cannot be reached is a transient error (retried, then reported).
pub struct RemoteCloud {
    base: String,
    agent: ureq::Agent,
}

impl RemoteCloud {
    pub fn new(url: &str) -> RemoteCloud {
        RemoteCloud {
            base: url.trim_end_matches('/').to_string(),
            agent: watcher_keystone::http::plain_agent(Duration::from_secs(30)),
        }
    }

    async fn call<T: DeserializeOwned + Send + 'static>(
        &self,
        method: &str,
        args: Value,
    ) -> Result<T, CloudError> {
        let (agent, url) = (self.agent.clone(), format!("{}/cloud/{method}", self.base));
        let body = tokio::task::spawn_blocking(move || -> Result<Value, CloudError> {
            let resp = agent
                .post(&url)
                .send_json(args)
                .map_err(|e| CloudError::Transient(format!("sim-cloud unreachable: {e}")))?;
            resp.into_json()
                .map_err(|e| CloudError::Transient(format!("sim-cloud answer unreadable: {e}")))
        })
        .await
        .map_err(|e| CloudError::Transient(e.to_string()))??;
        if let Some(e) = body.get("error") {
            return Err(error_from(e));
        }
        serde_json::from_value(body.get("ok").cloned().unwrap_or(Value::Null))
            .map_err(|e| CloudError::Transient(format!("sim-cloud answer unreadable: {e}")))
    }
}

#[async_trait]
impl Cloud for RemoteCloud {
    fn kind(&self) -> &'static str {
        "sim-cloud"
    }
    async fn compute_nodes(&self) -> Result<Vec<ComputeNode>, CloudError> {
        self.call("compute_nodes", json!({})).await
    }
    async fn flavors(&self) -> Result<Vec<Flavor>, CloudError> {
        self.call("flavors", json!({})).await
    }
    async fn instances(&self) -> Result<Vec<Instance>, CloudError> {
        self.call("instances", json!({})).await
    }
    async fn instance(&self, uuid: &str) -> Result<Option<Instance>, CloudError> {
        self.call("instance", json!({"uuid": uuid})).await
    }
    async fn volume(&self, uuid: &str) -> Result<Option<Volume>, CloudError> {
        self.call("volume", json!({"uuid": uuid})).await
    }
    async fn volumes(&self) -> Result<Vec<Volume>, CloudError> {
        self.call("volumes", json!({})).await
    }
    async fn storage_pools(&self) -> Result<Vec<StoragePool>, CloudError> {
        self.call("storage_pools", json!({})).await
    }
    async fn compute_service(&self, host: &str) -> Result<Option<ComputeService>, CloudError> {
        self.call("compute_service", json!({"host": host})).await
    }
    async fn live_migrate(
        &self,
        instance: &str,
        destination: Option<&str>,
    ) -> Result<OperationId, CloudError> {
        self.call(
            "live_migrate",
            json!({"instance": instance, "destination": destination}),
        )
        .await
    }
    async fn cold_migrate(
        &self,
        instance: &str,
        destination: Option<&str>,
    ) -> Result<OperationId, CloudError> {
        self.call(
            "cold_migrate",
            json!({"instance": instance, "destination": destination}),
        )
        .await
    }
    async fn resize(&self, instance: &str, flavor: &str) -> Result<OperationId, CloudError> {
        self.call("resize", json!({"instance": instance, "flavor": flavor}))
            .await
    }
    async fn retype_volume(&self, volume: &str, new_type: &str) -> Result<OperationId, CloudError> {
        self.call("retype_volume", json!({"volume": volume, "type": new_type}))
            .await
    }
    async fn migrate_volume(&self, volume: &str, pool: &str) -> Result<OperationId, CloudError> {
        self.call("migrate_volume", json!({"volume": volume, "pool": pool}))
            .await
    }
    async fn set_compute_service(
        &self,
        host: &str,
        enabled: bool,
        reason: Option<&str>,
    ) -> Result<(), CloudError> {
        self.call(
            "set_compute_service",
            json!({"host": host, "enabled": enabled, "reason": reason}),
        )
        .await
    }
    async fn set_instance_power(&self, instance: &str, on: bool) -> Result<(), CloudError> {
        self.call(
            "set_instance_power",
            json!({"instance": instance, "on": on}),
        )
        .await
    }
    async fn set_node_power(&self, node: &str, on: bool) -> Result<(), CloudError> {
        self.call("set_node_power", json!({"node": node, "on": on}))
            .await
    }
    async fn operation(&self, op: &str) -> Result<OperationState, CloudError> {
        self.call("operation", json!({"op": op})).await
    }
    async fn find_migration(
        &self,
        instance: &str,
        live: bool,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<OperationId>, CloudError> {
        self.call(
            "find_migration",
            json!({"instance": instance, "live": live, "since": since.to_rfc3339()}),
        )
        .await
    }
    async fn abort(&self, op: &str) -> Result<(), CloudError> {
        self.call("abort", json!({"op": op})).await
    }
    async fn force_complete(&self, op: &str) -> Result<(), CloudError> {
        self.call("force_complete", json!({"op": op})).await
    }
    async fn confirm(&self, op: &str) -> Result<(), CloudError> {
        self.call("confirm", json!({"op": op})).await
    }
    async fn revert(&self, op: &str) -> Result<(), CloudError> {
        self.call("revert", json!({"op": op})).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_errors_survive_the_wire() {
        for e in [
            CloudError::NotFound {
                kind: "Operation",
                id: "op-3".into(),
            },
            CloudError::Refused("no room".into()),
            CloudError::Conflict("queued".into()),
            CloudError::PastPointOfNoReturn("past the point of no return".into()),
            CloudError::NotAbortable("cold migration".into()),
            CloudError::AlreadyFinished("op-1".into()),
            CloudError::Transient("busy".into()),
        ] {
            assert_eq!(error_from(&error_json(&e)), e);
        }
    }
}
