//! Nova: compute nodes and their services, flavors, servers, and the
//! operations on them (live and cold migration, resize, abort,
//! force-complete, confirm/revert), each found again by its migration record.

use super::operation::{abort_precheck, abort_refusal, Op};
use super::*;

/// How long to look for the migration record Nova creates for a request.
pub(super) const MIGRATION_RECORD_WAIT: Duration = Duration::from_secs(30);

pub(super) fn instance_from(s: &Value) -> Instance {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    Instance {
        uuid: text(&s["id"]),
        name: text(&s["name"]),
        host: text(&s["OS-EXT-SRV-ATTR:host"]),
        flavor: s["flavor"]["original_name"]
            .as_str()
            .or(s["flavor"]["id"].as_str())
            .unwrap_or_default()
            .to_string(),
        status: text(&s["status"]),
        project_id: text(&s["tenant_id"]),
        metadata: s["metadata"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_string),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        // Nova shows a server booted from a volume with an empty image.
        boot_from_volume: s["image"] == "",
    }
}

/// The operation id of the newest of Nova's migration records (of one
/// server and type) created at or after `since`, less five seconds of clock
/// difference; Nova's `created_at` is UTC without a zone.
pub(super) fn newest_migration_since(
    migrations: &[Value],
    server: &str,
    kind: &str,
    since: chrono::DateTime<chrono::Utc>,
) -> Option<OperationId> {
    let after = (since - chrono::Duration::seconds(5)).naive_utc();
    migrations
        .iter()
        .filter(|m| {
            m["created_at"]
                .as_str()
                .and_then(|t| {
                    chrono::NaiveDateTime::parse_from_str(
                        t.trim_end_matches('Z'),
                        "%Y-%m-%dT%H:%M:%S%.f",
                    )
                    .ok()
                })
                .is_some_and(|t| t >= after)
        })
        .filter_map(|m| m["id"].as_i64())
        .max()
        .map(|id| format!("{kind}/{server}/{id}"))
}

impl Endpoints {
    pub(super) fn services(&self, host: Option<&str>) -> Result<Vec<Value>, CloudError> {
        let mv = self.mv(
            Microversion(2, 1),
            Microversion(2, 53),
            "listing compute services",
        )?;
        let q = match host {
            Some(h) => format!("/os-services?binary=nova-compute&host={h}"),
            None => "/os-services?binary=nova-compute".into(),
        };
        Ok(self.compute_get(&q, &mv)?["services"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    pub fn compute_nodes(&self) -> Result<Vec<ComputeNode>, CloudError> {
        // 2.53 gives UUID ids; from 2.88 the capacity fields are gone.
        let mv = self.mv(
            Microversion(2, 1),
            Microversion(2, 87),
            "listing hypervisors",
        )?;
        let hypervisors = self.compute_get("/os-hypervisors/detail", &mv)?;
        let services = self.services(None)?;
        let zone: HashMap<&str, &str> = services
            .iter()
            .filter_map(|s| Some((s["host"].as_str()?, s["zone"].as_str()?)))
            .collect();
        let mv = self.mv(
            Microversion(2, 1),
            Microversion(2, 41),
            "listing aggregates",
        )?;
        let aggregates = self.compute_get("/os-aggregates", &mv)?;
        let mut by_host: HashMap<String, Vec<Aggregate>> = HashMap::new();
        for a in aggregates["aggregates"].as_array().into_iter().flatten() {
            for h in a["hosts"].as_array().into_iter().flatten() {
                if let Some(h) = h.as_str() {
                    by_host.entry(h.to_string()).or_default().push(Aggregate {
                        id: a["id"].as_i64().unwrap_or_default(),
                        name: a["name"].as_str().unwrap_or_default().to_string(),
                    });
                }
            }
        }
        hypervisors["hypervisors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| {
                let host = h["service"]["host"]
                    .as_str()
                    .or(h["hypervisor_hostname"].as_str())
                    .unwrap_or_default()
                    .to_string();
                let uuid = match &h["id"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let inventories = self.inventories(&uuid, h["hypervisor_hostname"].as_str())?;
                let inventory = |class: &str, field: &str| match inventories.get(class) {
                    Some(i) => *i,
                    None => Inventory::whole(h[field].as_u64().unwrap_or_default()),
                };
                Ok(ComputeNode {
                    powered_on: None,
                    vcpus: inventory("VCPU", "vcpus"),
                    ram_mb: inventory("MEMORY_MB", "memory_mb"),
                    disk_gb: inventory("DISK_GB", "local_gb"),
                    uuid,
                    service_enabled: h["status"] == "enabled",
                    service_up: h["state"] != "down",
                    disabled_reason: h["service"]["disabled_reason"].as_str().map(str::to_string),
                    availability_zone: zone.get(host.as_str()).unwrap_or(&"nova").to_string(),
                    aggregates: by_host.remove(&host).unwrap_or_default(),
                    name: host,
                })
            })
            .collect()
    }

    pub fn flavors(&self) -> Result<Vec<Flavor>, CloudError> {
        let mv = self.mv(Microversion(2, 1), Microversion(2, 75), "listing flavors")?;
        let body = self.compute_get("/flavors/detail?is_public=None", &mv)?;
        Ok(body["flavors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| Flavor {
                name: f["name"].as_str().unwrap_or_default().to_string(),
                vcpus: f["vcpus"].as_u64().unwrap_or_default() as u32,
                ram_mb: f["ram"].as_u64().unwrap_or_default(),
                disk_gb: f["disk"].as_u64().unwrap_or_default(),
            })
            .collect())
    }

    pub(super) fn flavor_id(&self, name: &str) -> Result<String, CloudError> {
        let mv = self.mv(Microversion(2, 1), Microversion(2, 75), "listing flavors")?;
        let body = self.compute_get("/flavors/detail?is_public=None", &mv)?;
        body["flavors"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["name"] == name || f["id"] == name)
            .and_then(|f| f["id"].as_str().map(str::to_string))
            .ok_or_else(|| CloudError::NotFound {
                kind: "flavor",
                id: name.to_string(),
            })
    }

    /// Servers carry their flavor from 2.47.
    pub(super) fn server_mv(&self) -> Result<String, CloudError> {
        self.mv(Microversion(2, 47), Microversion(2, 96), "reading servers")
    }

    pub fn instances(&self) -> Result<Vec<Instance>, CloudError> {
        let mv = self.server_mv()?;
        let mut out = vec![];
        let mut marker: Option<String> = None;
        loop {
            let path = match &marker {
                Some(m) => format!("/servers/detail?all_tenants=1&limit=1000&marker={m}"),
                None => "/servers/detail?all_tenants=1&limit=1000".into(),
            };
            let body = self.compute_get(&path, &mv)?;
            let page = body["servers"].as_array().cloned().unwrap_or_default();
            marker = page
                .last()
                .and_then(|s| s["id"].as_str().map(str::to_string));
            out.extend(page.iter().map(instance_from));
            if page.len() < 1000 || marker.is_none() {
                return Ok(out);
            }
        }
    }

    pub(super) fn server(&self, uuid: &str) -> Result<Value, CloudError> {
        let mv = self.server_mv()?;
        let resp = self.request(
            "GET",
            &self.compute,
            &format!("/servers/{uuid}"),
            Some(&mv),
            None,
        )?;
        Ok(Endpoints::expect(resp, "GET server", "instance", uuid)?["server"].clone())
    }

    pub fn instance(&self, uuid: &str) -> Result<Option<Instance>, CloudError> {
        match self.server(uuid) {
            Ok(s) => Ok(Some(instance_from(&s))),
            Err(CloudError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn compute_service(&self, host: &str) -> Result<Option<ComputeService>, CloudError> {
        Ok(self.services(Some(host))?.first().map(|s| ComputeService {
            host: host.to_string(),
            enabled: s["status"] == "enabled",
            disabled_reason: s["disabled_reason"].as_str().map(str::to_string),
        }))
    }

    /// Nova's records of a server's migrations of one type, finished ones included.
    pub(super) fn migrations(&self, server: &str, kind: &str) -> Result<Vec<Value>, CloudError> {
        let mv = self.mv(
            Microversion(2, 1),
            Microversion(2, 80),
            "listing migrations",
        )?;
        let body = self.compute_get(
            &format!("/os-migrations?instance_uuid={server}&migration_type={kind}"),
            &mv,
        )?;
        // Old microversions ignore the type filter.
        Ok(body["migrations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["instance_uuid"] == server && m["migration_type"] == kind)
            .cloned()
            .collect())
    }

    pub(super) fn migration(&self, server: &str, kind: &str, id: i64) -> Result<Value, CloudError> {
        self.migrations(server, kind)?
            .into_iter()
            .find(|m| m["id"].as_i64() == Some(id))
            .ok_or_else(|| CloudError::NotFound {
                kind: "migration",
                id: format!("{id} of server {server}"),
            })
    }

    /// Posts a server action that creates a migration and returns the new
    /// migration's id, found by waiting for a record newer than any before.
    pub(super) fn start_migration(
        &self,
        server: &str,
        kind: &str,
        action: Value,
        mv: &str,
        what: &str,
    ) -> Result<i64, CloudError> {
        let newest = |ms: &[Value]| ms.iter().filter_map(|m| m["id"].as_i64()).max();
        let before = newest(&self.migrations(server, kind)?).unwrap_or(0);
        let resp = self.request(
            "POST",
            &self.compute,
            &format!("/servers/{server}/action"),
            Some(mv),
            Some(&action),
        )?;
        Endpoints::expect(resp, what, "instance", server)?;
        // From here the request is accepted: errors must not make the
        // caller post it again, so they are not Transient.
        let deadline = Instant::now() + MIGRATION_RECORD_WAIT;
        loop {
            match self.migrations(server, kind) {
                Ok(ms) => {
                    if let Some(id) = newest(&ms).filter(|id| *id > before) {
                        return Ok(id);
                    }
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(CloudError::Refused(format!(
                        "{what} was accepted but its migration could not be read: {e}"
                    )))
                }
                Err(_) => {}
            }
            if Instant::now() >= deadline {
                return Err(CloudError::Refused(format!(
                    "{what} was accepted but Nova created no migration record within {} s; \
                     see nova-conductor's log",
                    MIGRATION_RECORD_WAIT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The newest migration of `server` Nova created at or after `since`
    /// (Nova's `created_at` is UTC without a zone; a few seconds of clock
    /// difference between this host and Nova's are allowed for).
    pub fn find_migration(
        &self,
        server: &str,
        live: bool,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<OperationId>, CloudError> {
        let kind = if live { "live-migration" } else { "migration" };
        Ok(newest_migration_since(
            &self.migrations(server, kind)?,
            server,
            kind,
            since,
        ))
    }

    pub fn live_migrate(
        &self,
        server: &str,
        dest: Option<&str>,
    ) -> Result<OperationId, CloudError> {
        // 2.25: block_migration "auto"; before 2.30 "force" is absent, which is what we want.
        let mv = self.mv(Microversion(2, 25), Microversion(2, 25), "live migration")?;
        let action = json!({"os-migrateLive": {"host": dest, "block_migration": "auto"}});
        let id = self.start_migration(server, "live-migration", action, &mv, "live migration")?;
        Ok(format!("live-migration/{server}/{id}"))
    }

    pub fn cold_migrate(
        &self,
        server: &str,
        dest: Option<&str>,
    ) -> Result<OperationId, CloudError> {
        let (mv, action) = match dest {
            Some(h) => (
                self.mv(
                    Microversion(2, 56),
                    Microversion(2, 56),
                    "cold migration to a given host",
                )?,
                json!({"migrate": {"host": h}}),
            ),
            None => (
                self.mv(Microversion(2, 1), Microversion(2, 56), "cold migration")?,
                json!({"migrate": null}),
            ),
        };
        let id = self.start_migration(server, "migration", action, &mv, "cold migration")?;
        Ok(format!("migration/{server}/{id}"))
    }

    pub fn resize(&self, server: &str, flavor: &str) -> Result<OperationId, CloudError> {
        let flavor_ref = self.flavor_id(flavor)?;
        let mv = self.mv(Microversion(2, 1), Microversion(2, 56), "resize")?;
        let action = json!({"resize": {"flavorRef": flavor_ref}});
        let id = self.start_migration(server, "resize", action, &mv, "resize")?;
        Ok(format!("resize/{server}/{id}"))
    }

    /// Nova's `os-stop` / `os-start`.
    pub fn set_instance_power(&self, instance: &str, on: bool) -> Result<(), CloudError> {
        let action = if on { "os-start" } else { "os-stop" };
        let resp = self.request(
            "POST",
            &self.compute,
            &format!("/servers/{instance}/action"),
            None,
            Some(&json!({ action: null })),
        )?;
        match resp.status {
            200..=299 => Ok(()),
            404 => Err(CloudError::NotFound {
                kind: "instance",
                id: instance.to_string(),
            }),
            409 => Err(CloudError::Conflict(format!(
                "{action}: {}",
                fault(&resp.body)
            ))),
            code => Err(CloudError::Refused(format!(
                "{action}: {code} {}",
                fault(&resp.body)
            ))),
        }
    }

    pub fn set_compute_service(
        &self,
        host: &str,
        enabled: bool,
        reason: Option<&str>,
    ) -> Result<(), CloudError> {
        let mv = self.mv(
            Microversion(2, 53),
            Microversion(2, 53),
            "changing a compute service",
        )?;
        let service = self
            .services(Some(host))?
            .into_iter()
            .next()
            .ok_or_else(|| CloudError::NotFound {
                kind: "compute service",
                id: host.to_string(),
            })?;
        let id = service["id"].as_str().unwrap_or_default().to_string();
        let body = if enabled {
            json!({"status": "enabled"})
        } else {
            json!({"status": "disabled", "disabled_reason": reason})
        };
        let resp = self.request(
            "PUT",
            &self.compute,
            &format!("/os-services/{id}"),
            Some(&mv),
            Some(&body),
        )?;
        Endpoints::expect(
            resp,
            "changing the compute service",
            "compute service",
            host,
        )
        .map(|_| ())
    }

    /// Memory and disk copied so far, when the hypervisor reports them.
    pub(super) fn live_progress(&self, server: &str, migration: i64) -> Option<Value> {
        let mv = self
            .mv(
                Microversion(2, 23),
                Microversion(2, 80),
                "migration progress",
            )
            .ok()?;
        self.compute_get(&format!("/servers/{server}/migrations/{migration}"), &mv)
            .ok()
            .map(|b| b["migration"].clone())
    }

    pub fn abort(&self, op: &str) -> Result<(), CloudError> {
        let (server, migration) = match Op::parse(op)? {
            Op::Live { server, migration } => (server, migration),
            Op::Cold { .. } => return Err(CloudError::NotAbortable("a cold migration".into())),
            Op::Resize { .. } => return Err(CloudError::NotAbortable("a resize".into())),
            Op::Volume { .. } => return Err(CloudError::NotAbortable("a volume migration".into())),
            Op::Retype { .. } => return Err(CloudError::NotAbortable("a volume retype".into())),
        };
        let m = self.migration(&server, "live-migration", migration)?;
        let status = m["status"].as_str().unwrap_or_default().to_string();
        if let Some(refusal) = abort_precheck(&status, self.max) {
            return Err(refusal);
        }
        let mv = self.mv(
            Microversion(2, 24),
            Microversion(2, 65),
            "aborting a live migration",
        )?;
        let resp = self.request(
            "DELETE",
            &self.compute,
            &format!("/servers/{server}/migrations/{migration}"),
            Some(&mv),
            None,
        )?;
        if (200..300).contains(&resp.status) {
            return Ok(());
        }
        // 400/404/409: the migration moved on meanwhile; Nova's record says where.
        let now = self.migration(&server, "live-migration", migration)?;
        Err(abort_refusal(resp.status, &fault(&resp.body), &now))
    }

    pub fn force_complete(&self, op: &str) -> Result<(), CloudError> {
        let Op::Live { server, migration } = Op::parse(op)? else {
            return Err(CloudError::Refused(
                "only a live migration can be forced to complete".into(),
            ));
        };
        let mv = self.mv(
            Microversion(2, 22),
            Microversion(2, 22),
            "forcing a live migration to complete",
        )?;
        let resp = self.request(
            "POST",
            &self.compute,
            &format!("/servers/{server}/migrations/{migration}/action"),
            Some(&mv),
            Some(&json!({"force_complete": null})),
        )?;
        if (200..300).contains(&resp.status) {
            return Ok(());
        }
        let now = self.migration(&server, "live-migration", migration)?;
        match now["status"].as_str() {
            Some("completed" | "cancelled" | "error" | "failed") => {
                Err(CloudError::AlreadyFinished(op.to_string()))
            }
            _ => Err(CloudError::Refused(format!(
                "force-complete refused ({}): {}",
                resp.status,
                fault(&resp.body)
            ))),
        }
    }

    pub(super) fn resize_action(&self, op: &str, action: &str) -> Result<(), CloudError> {
        let server = match Op::parse(op)? {
            Op::Cold { server, .. } | Op::Resize { server, .. } => server,
            _ => {
                return Err(CloudError::Refused(format!(
                    "{action} applies to cold migrations and resizes only"
                )))
            }
        };
        let mv = self.server_mv()?;
        let resp = self.request(
            "POST",
            &self.compute,
            &format!("/servers/{server}/action"),
            Some(&mv),
            Some(&json!({ action: null })),
        )?;
        Endpoints::expect(resp, action, "instance", &server).map(|_| ())
    }
}
