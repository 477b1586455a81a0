//! The OpenStack driver: Nova (and Cinder when the catalog has it) behind
//! the [`Cloud`] trait.
//!
//! Long operations get self-describing ids, `<kind>/<resource>/<id>`
//! (`live-migration/<server>/<migration id>`, `migration/...` for cold
//! migrations, `resize/...`, `volume-migration/<volume>/<pool>`), so that
//! after a restart the journaled id alone finds the operation again in
//! `GET /os-migrations` (which, unlike `GET /servers/{id}/migrations`, keeps
//! finished migrations).
//!
//! Microversions are negotiated: the compute root document gives the
//! cloud's range, each call asks for the version its feature needs (capped
//! where a later version drops fields we read), and a cloud too old for a
//! feature gets a message naming both versions.
//!
//! HTTP is blocking (ureq) and runs on tokio's blocking pool; a
//! [`Transport`] trait lets the unit tests replay Nova's recorded answers.

mod cinder;
mod nova;
mod operation;
mod placement;
#[cfg(test)]
mod tests;

use operation::{live_state, resize_state, retype_state, volume_state, Op};

use super::{
    Aggregate, Cloud, CloudError, ComputeNode, ComputeService, Flavor, Instance, Inventory,
    OperationId, OperationState, StoragePool, Volume,
};
use async_trait::async_trait;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use watcher_keystone::{Credentials, Session};

/// A compute API microversion, `2.x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Microversion(pub u32, pub u32);

impl Microversion {
    fn parse(s: &str) -> Option<Microversion> {
        let (a, b) = s.split_once('.')?;
        Some(Microversion(a.parse().ok()?, b.parse().ok()?))
    }
}

impl std::fmt::Display for Microversion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// One HTTP exchange. `Err` is a failure to talk at all (refused, timeout).
pub trait Transport: Send + Sync {
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<(u16, Value), String>;
}

/// Where tokens come from.
pub trait TokenSource: Send + Sync {
    fn token(&self, fresh: bool) -> Result<String, CloudError>;
}

impl TokenSource for Session {
    fn token(&self, fresh: bool) -> Result<String, CloudError> {
        Session::token(self, fresh).map_err(|e| match e {
            e if e.is_transient() => CloudError::Transient(e.to_string()),
            other => CloudError::Refused(other.to_string()),
        })
    }
}

struct Ureq(ureq::Agent);

impl Transport for Ureq {
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let mut req = self.0.request(method, url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let res = match body {
            Some(b) => req
                .set("Content-Type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        let resp = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(e.to_string()),
        };
        let status = resp.status();
        let text = resp.into_string().map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
}

/// The blocking core of the driver.
pub struct Endpoints {
    auth: Box<dyn TokenSource>,
    http: Box<dyn Transport>,
    compute: String,
    volume: Option<String>,
    /// Placement, whose inventories say what each host may be allocated.
    placement: Option<String>,
    min: Microversion,
    max: Microversion,
}

/// An answer: status and JSON body.
struct Resp {
    status: u16,
    body: Value,
}

/// Nova's and Cinder's error text: `{"conflictingRequest": {"message": ...}}`.
fn fault(body: &Value) -> String {
    body.as_object()
        .and_then(|o| o.values().next())
        .and_then(|v| v.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| body.to_string())
}

impl Endpoints {
    pub fn new(
        auth: Box<dyn TokenSource>,
        http: Box<dyn Transport>,
        compute: String,
        volume: Option<String>,
        placement: Option<String>,
    ) -> Result<Endpoints, CloudError> {
        let mut nova = Endpoints {
            auth,
            http,
            compute: compute.trim_end_matches('/').to_string(),
            volume,
            placement: placement.map(|p| p.trim_end_matches('/').to_string()),
            min: Microversion(2, 1),
            max: Microversion(2, 1),
        };
        let root = nova.get(&nova.compute.clone(), "/", None)?;
        let v = &root["version"];
        nova.max = v["version"]
            .as_str()
            .and_then(Microversion::parse)
            .unwrap_or(Microversion(2, 1));
        nova.min = v["min_version"]
            .as_str()
            .and_then(Microversion::parse)
            .unwrap_or(Microversion(2, 1));
        Ok(nova)
    }

    /// The version to ask for: at least `need` (else an error naming the
    /// feature), at most `cap` (where later versions drop fields we read).
    fn mv(&self, need: Microversion, cap: Microversion, what: &str) -> Result<String, CloudError> {
        if self.max < need {
            return Err(CloudError::Refused(format!(
                "{what} needs compute API {need}; this cloud offers up to {}",
                self.max
            )));
        }
        Ok(cap.min(self.max).max(self.min).to_string())
    }

    fn request(
        &self,
        method: &str,
        base: &str,
        path: &str,
        mv: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Resp, CloudError> {
        let url = format!("{base}{path}");
        let mut fresh = false;
        loop {
            let mut headers = vec![("X-Auth-Token", self.auth.token(fresh)?)];
            if let Some(v) = mv {
                headers.push(("OpenStack-API-Version", format!("compute {v}")));
                headers.push(("X-OpenStack-Nova-API-Version", v.to_string()));
            }
            let (status, body) = self
                .http
                .send(method, &url, &headers, body)
                .map_err(|e| CloudError::Transient(format!("{method} {url}: {e}")))?;
            match status {
                401 if !fresh => fresh = true, // our token expired: log in again, once
                500..=599 => {
                    return Err(CloudError::Transient(format!(
                        "{method} {url}: {status} {}",
                        fault(&body)
                    )))
                }
                _ => return Ok(Resp { status, body }),
            }
        }
    }

    /// A 2xx body, or the error: 404 NotFound, 409 Transient (a task in
    /// progress), anything else Refused with Nova's message.
    fn expect(resp: Resp, what: &str, kind: &'static str, id: &str) -> Result<Value, CloudError> {
        match resp.status {
            200..=299 => Ok(resp.body),
            404 => Err(CloudError::NotFound {
                kind,
                id: id.to_string(),
            }),
            409 => Err(CloudError::Transient(format!(
                "{what}: {}",
                fault(&resp.body)
            ))),
            code => Err(CloudError::Refused(format!(
                "{what}: {code} {}",
                fault(&resp.body)
            ))),
        }
    }

    fn get(&self, base: &str, path: &str, mv: Option<&str>) -> Result<Value, CloudError> {
        let resp = self.request("GET", base, path, mv, None)?;
        Endpoints::expect(resp, &format!("GET {path}"), "resource", path)
    }

    fn compute_get(&self, path: &str, mv: &str) -> Result<Value, CloudError> {
        self.get(&self.compute, path, Some(mv))
    }

    // ----- reading ---------------------------------------------------------------------

    // ----- migrations ------------------------------------------------------------------
}

/// What became of an operation, read from the service that runs it.
impl Endpoints {
    pub fn operation(&self, op: &str) -> Result<OperationState, CloudError> {
        match Op::parse(op)? {
            Op::Live { server, migration } => {
                let m = self.migration(&server, "live-migration", migration)?;
                let s = self.server(&server)?;
                let progress = if m["status"] == "running" {
                    self.live_progress(&server, migration)
                } else {
                    None
                };
                Ok(live_state(&m, &s, progress))
            }
            Op::Cold { server, migration } => {
                let m = self.migration(&server, "migration", migration)?;
                Ok(resize_state(&m, &self.server(&server)?))
            }
            Op::Resize { server, migration } => {
                let m = self.migration(&server, "resize", migration)?;
                Ok(resize_state(&m, &self.server(&server)?))
            }
            Op::Volume { volume, pool } => {
                let base = self.cinder()?.to_string();
                let resp = self.request("GET", &base, &format!("/volumes/{volume}"), None, None)?;
                let v = Endpoints::expect(resp, "GET volume", "volume", &volume)?;
                Ok(volume_state(&v["volume"], &pool))
            }
            Op::Retype { volume, new_type } => {
                let base = self.cinder()?.to_string();
                let resp = self.request("GET", &base, &format!("/volumes/{volume}"), None, None)?;
                let v = Endpoints::expect(resp, "GET volume", "volume", &volume)?;
                Ok(retype_state(&v["volume"], &new_type))
            }
        }
    }
}

/// The async face of [`Nova`]: each call on the blocking pool.
#[derive(Clone)]
pub struct OpenStackCloud {
    nova: Arc<Endpoints>,
}

impl OpenStackCloud {
    /// Logs in, finds Nova (and Cinder, if present) in the catalog, and
    /// reads the compute API's microversion range.
    pub fn connect(credentials: Credentials) -> Result<OpenStackCloud, CloudError> {
        let session = Session::new(credentials).map_err(|e| CloudError::Refused(e.to_string()))?;
        let agent = session.agent().clone();
        let compute = session.endpoint("compute").map_err(|e| match e {
            e if e.is_transient() => CloudError::Transient(e.to_string()),
            other => CloudError::Refused(other.to_string()),
        })?;
        let volume = ["block-storage", "volumev3"]
            .iter()
            .find_map(|t| session.endpoint(t).ok());
        let placement = session.endpoint("placement").ok();
        let nova = Endpoints::new(
            Box::new(session),
            Box::new(Ureq(agent)),
            compute,
            volume,
            placement,
        )?;
        tracing::info!(compute = %nova.compute, max = %nova.max, cinder = ?nova.volume,
            placement = ?nova.placement, "connected to OpenStack");
        Ok(OpenStackCloud {
            nova: Arc::new(nova),
        })
    }

    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Endpoints) -> Result<T, CloudError> + Send + 'static,
    ) -> Result<T, CloudError> {
        let nova = self.nova.clone();
        tokio::task::spawn_blocking(move || f(&nova))
            .await
            .map_err(|e| CloudError::Transient(format!("driver task failed: {e}")))?
    }
}

#[async_trait]
impl Cloud for OpenStackCloud {
    fn kind(&self) -> &'static str {
        "openstack"
    }
    async fn compute_nodes(&self) -> Result<Vec<ComputeNode>, CloudError> {
        self.call(|n| n.compute_nodes()).await
    }
    async fn flavors(&self) -> Result<Vec<Flavor>, CloudError> {
        self.call(|n| n.flavors()).await
    }
    async fn instances(&self) -> Result<Vec<Instance>, CloudError> {
        self.call(|n| n.instances()).await
    }
    async fn instance(&self, uuid: &str) -> Result<Option<Instance>, CloudError> {
        let uuid = uuid.to_string();
        self.call(move |n| n.instance(&uuid)).await
    }
    async fn volume(&self, uuid: &str) -> Result<Option<Volume>, CloudError> {
        let uuid = uuid.to_string();
        self.call(move |n| n.volume(&uuid)).await
    }
    async fn volumes(&self) -> Result<Vec<Volume>, CloudError> {
        self.call(|n| n.volumes()).await
    }
    async fn storage_pools(&self) -> Result<Vec<StoragePool>, CloudError> {
        self.call(|n| n.storage_pools()).await
    }
    async fn compute_service(&self, host: &str) -> Result<Option<ComputeService>, CloudError> {
        let host = host.to_string();
        self.call(move |n| n.compute_service(&host)).await
    }
    async fn live_migrate(
        &self,
        instance: &str,
        dest: Option<&str>,
    ) -> Result<OperationId, CloudError> {
        let (i, d) = (instance.to_string(), dest.map(str::to_string));
        self.call(move |n| n.live_migrate(&i, d.as_deref())).await
    }
    async fn cold_migrate(
        &self,
        instance: &str,
        dest: Option<&str>,
    ) -> Result<OperationId, CloudError> {
        let (i, d) = (instance.to_string(), dest.map(str::to_string));
        self.call(move |n| n.cold_migrate(&i, d.as_deref())).await
    }
    async fn resize(&self, instance: &str, flavor: &str) -> Result<OperationId, CloudError> {
        let (i, f) = (instance.to_string(), flavor.to_string());
        self.call(move |n| n.resize(&i, &f)).await
    }
    async fn migrate_volume(&self, volume: &str, pool: &str) -> Result<OperationId, CloudError> {
        let (v, p) = (volume.to_string(), pool.to_string());
        self.call(move |n| n.migrate_volume(&v, &p)).await
    }
    async fn retype_volume(&self, volume: &str, new_type: &str) -> Result<OperationId, CloudError> {
        let (v, t) = (volume.to_string(), new_type.to_string());
        self.call(move |n| n.retype_volume(&v, &t)).await
    }
    async fn set_instance_power(&self, instance: &str, on: bool) -> Result<(), CloudError> {
        let instance = instance.to_string();
        self.call(move |n| n.set_instance_power(&instance, on))
            .await
    }
    async fn set_compute_service(
        &self,
        host: &str,
        enabled: bool,
        reason: Option<&str>,
    ) -> Result<(), CloudError> {
        let (h, r) = (host.to_string(), reason.map(str::to_string));
        self.call(move |n| n.set_compute_service(&h, enabled, r.as_deref()))
            .await
    }
    async fn operation(&self, op: &str) -> Result<OperationState, CloudError> {
        let op = op.to_string();
        self.call(move |n| n.operation(&op)).await
    }
    async fn find_migration(
        &self,
        instance: &str,
        live: bool,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<OperationId>, CloudError> {
        let i = instance.to_string();
        self.call(move |n| n.find_migration(&i, live, since)).await
    }
    async fn abort(&self, op: &str) -> Result<(), CloudError> {
        let op = op.to_string();
        self.call(move |n| n.abort(&op)).await
    }
    async fn force_complete(&self, op: &str) -> Result<(), CloudError> {
        let op = op.to_string();
        self.call(move |n| n.force_complete(&op)).await
    }
    async fn confirm(&self, op: &str) -> Result<(), CloudError> {
        let op = op.to_string();
        self.call(move |n| n.resize_action(&op, "confirmResize"))
            .await
    }
    async fn revert(&self, op: &str) -> Result<(), CloudError> {
        let op = op.to_string();
        self.call(move |n| n.resize_action(&op, "revertResize"))
            .await
    }
}
