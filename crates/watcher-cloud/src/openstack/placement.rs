//! Placement: each host's inventories (total, reserved, allocation ratio),
//! which say what a strategy may allocate on it.

use super::*;

impl Endpoints {
    /// A hypervisor's VCPU, MEMORY_MB and DISK_GB inventories from
    /// Placement; the resource provider is the hypervisor's UUID (compute
    /// 2.53 and later), else found by the hypervisor's name. Empty when the
    /// catalog has no Placement or the provider is not there: the
    /// hypervisor's own figures then stand, as upstream does.
    pub(super) fn inventories(
        &self,
        hypervisor: &str,
        hostname: Option<&str>,
    ) -> Result<HashMap<String, Inventory>, CloudError> {
        let Some(placement) = &self.placement else {
            return Ok(HashMap::new());
        };
        let provider = if uuid::Uuid::parse_str(hypervisor).is_ok() {
            hypervisor.to_string()
        } else {
            let Some(name) = hostname else {
                return Ok(HashMap::new());
            };
            let found = self.get(placement, &format!("/resource_providers?name={name}"), None)?;
            match found["resource_providers"][0]["uuid"].as_str() {
                Some(u) => u.to_string(),
                None => return Ok(HashMap::new()),
            }
        };
        let resp = self.request(
            "GET",
            placement,
            &format!("/resource_providers/{provider}/inventories"),
            None,
            None,
        )?;
        if resp.status == 404 {
            return Ok(HashMap::new());
        }
        let body = Endpoints::expect(
            resp,
            "reading Placement inventories",
            "resource provider",
            &provider,
        )?;
        Ok(body["inventories"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(class, i)| {
                Some((
                    class.clone(),
                    Inventory {
                        total: i["total"].as_u64()?,
                        reserved: i["reserved"].as_u64().unwrap_or(0),
                        allocation_ratio: i["allocation_ratio"].as_f64().unwrap_or(1.0),
                    },
                ))
            })
            .collect())
    }
}
