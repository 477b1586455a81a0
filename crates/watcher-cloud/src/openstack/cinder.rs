//! Cinder: volumes, storage pools (with their zone and the volume types
//! bound to their backend), and volume migration and retype.

use super::*;

impl Endpoints {
    pub(super) fn cinder(&self) -> Result<&str, CloudError> {
        self.volume.as_deref().ok_or_else(|| {
            CloudError::Refused(
                "the catalog has no block-storage endpoint: volume actions need Cinder".into(),
            )
        })
    }

    /// Every volume of every project (admin), following Cinder's pages.
    pub fn volumes(&self) -> Result<Vec<Volume>, CloudError> {
        let Some(base) = self.volume.clone() else {
            return Ok(vec![]);
        };
        let mut out = vec![];
        let mut marker: Option<String> = None;
        loop {
            let mut path = "/volumes/detail?all_tenants=1&limit=1000".to_string();
            if let Some(m) = &marker {
                path.push_str(&format!("&marker={m}"));
            }
            let resp = self.request("GET", &base, &path, None, None)?;
            let body = Endpoints::expect(resp, "listing volumes", "volumes", "")?;
            let page: Vec<Volume> = body["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(volume_from)
                .collect();
            let full = page.len() == 1000;
            marker = page.last().map(|v| v.uuid.clone());
            out.extend(page);
            if !full {
                return Ok(out);
            }
        }
    }

    /// Cinder's pools with their capacities.
    pub fn storage_pools(&self) -> Result<Vec<StoragePool>, CloudError> {
        let Some(base) = self.volume.clone() else {
            return Ok(vec![]);
        };
        let resp = self.request(
            "GET",
            &base,
            "/scheduler-stats/get_pools?detail=true",
            None,
            None,
        )?;
        let body = Endpoints::expect(resp, "listing storage pools", "pools", "")?;
        // Zones of the cinder-volume services, and the types bound to each
        // backend name, for audit scopes (upstream's storage scope).
        let get = |path: &str, what: &str| {
            let resp = self.request("GET", &base, path, None, None)?;
            Endpoints::expect(resp, what, "storage", "")
        };
        let services = get(
            "/os-services?binary=cinder-volume",
            "listing volume services",
        )?;
        let zone: HashMap<&str, &str> = services["services"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| Some((s["host"].as_str()?, s["zone"].as_str()?)))
            .collect();
        let types = get("/types?is_public=None", "listing volume types")?;
        let mut by_backend: HashMap<&str, Vec<String>> = HashMap::new();
        let mut unbound = vec![];
        for t in types["volume_types"].as_array().into_iter().flatten() {
            let Some(name) = t["name"].as_str() else {
                continue;
            };
            match t["extra_specs"]["volume_backend_name"].as_str() {
                Some(backend) => by_backend
                    .entry(backend)
                    .or_default()
                    .push(name.to_string()),
                None => unbound.push(name.to_string()),
            }
        }
        Ok(body["pools"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let mut pool = pool_from(p);
                let host = pool.name.split('#').next().unwrap_or_default();
                pool.availability_zone = zone.get(host).unwrap_or(&"nova").to_string();
                pool.unbound_types = unbound.clone();
                if let Some(backend) = p["capabilities"]["volume_backend_name"].as_str() {
                    pool.volume_types = by_backend.get(backend).cloned().unwrap_or_default();
                }
                pool
            })
            .collect())
    }

    pub fn volume(&self, uuid: &str) -> Result<Option<Volume>, CloudError> {
        let base = self.cinder()?.to_string();
        let resp = self.request("GET", &base, &format!("/volumes/{uuid}"), None, None)?;
        match Endpoints::expect(resp, "GET volume", "volume", uuid) {
            Ok(b) => Ok(Some(volume_from(&b["volume"]))),
            Err(CloudError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /volumes/{volume}/action` with `body`.
    pub(super) fn volume_action(
        &self,
        volume: &str,
        body: Value,
        what: &str,
    ) -> Result<(), CloudError> {
        let base = self.cinder()?.to_string();
        let path = format!("/volumes/{volume}/action");
        let resp = self.request("POST", &base, &path, None, Some(&body))?;
        Endpoints::expect(resp, what, "volume", volume).map(|_| ())
    }

    pub fn migrate_volume(&self, volume: &str, pool: &str) -> Result<OperationId, CloudError> {
        let body = json!({"os-migrate_volume": {"host": pool, "force_host_copy": false}});
        self.volume_action(volume, body, "volume migration")?;
        Ok(format!("volume-migration/{volume}/{pool}"))
    }

    /// Cinder's retype with `migration_policy: on-demand`: in place when
    /// the volume's backend serves the new type, else a migration to one
    /// that does.
    pub fn retype_volume(&self, volume: &str, new_type: &str) -> Result<OperationId, CloudError> {
        let body = json!({"os-retype": {"new_type": new_type, "migration_policy": "on-demand"}});
        self.volume_action(volume, body, "volume retype")?;
        Ok(format!("volume-retype/{volume}/{new_type}"))
    }
}

pub(super) fn volume_from(v: &Value) -> Volume {
    let text = |x: &Value| x.as_str().unwrap_or_default().to_string();
    Volume {
        uuid: text(&v["id"]),
        name: text(&v["name"]),
        pool: text(&v["os-vol-host-attr:host"]),
        size_gb: v["size"].as_u64().unwrap_or_default(),
        status: text(&v["status"]),
        attached_to: v["attachments"][0]["server_id"]
            .as_str()
            .map(str::to_string),
        project_id: text(&v["os-vol-tenant-attr:tenant_id"]),
        volume_type: v["volume_type"].as_str().map(str::to_string),
    }
}

/// A pool of Cinder's `scheduler-stats/get_pools?detail=true`. Capacities
/// may be numbers, numeric strings, or "infinite"/"unknown" (then the pool
/// is taken as unbounded: it never looks full).
pub(super) fn pool_from(p: &Value) -> StoragePool {
    let caps = &p["capabilities"];
    let number = |k: &str, unknown: f64| match &caps[k] {
        Value::Number(n) => n.as_f64().unwrap_or(unknown),
        Value::String(s) => s.parse().unwrap_or(unknown),
        _ => unknown,
    };
    let total = number("total_capacity_gb", f64::INFINITY);
    let free = number("free_capacity_gb", total);
    StoragePool {
        name: p["name"].as_str().unwrap_or_default().to_string(),
        total_capacity_gb: total,
        free_capacity_gb: free,
        allocated_capacity_gb: number("allocated_capacity_gb", total - free),
        max_over_subscription_ratio: number("max_over_subscription_ratio", 1.0),
        availability_zone: String::new(),
        volume_types: vec![],
        unbound_types: vec![],
    }
}
