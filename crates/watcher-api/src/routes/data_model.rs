//! `/v1/data_model`: the cluster model as the decision engine sees it.

use super::*;

// ----- data model -----------------------------------------------------------------------

/// `GET /v1/data_model` (>= 1.3): one flat entry per server with its host's
/// figures, and one per host without servers, as upstream's compute model.
// Long because it renders upstream's flat compute model, one field per line.
pub async fn data_model(
    State(s): State<AppState>,
    Query(q): Q,
    Extension(ver): Extension<Version>,
) -> ApiResult {
    if !ver.at_least(1, 3) {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "The data model needs API microversion 1.3 or higher.",
        ));
    }
    match q.get("data_model_type").map(String::as_str) {
        None | Some("compute") => {}
        Some(other) => {
            return Err(ApiError::not_found(format!(
                "Data model type {other} could not be found; only 'compute' exists."
            )))
        }
    }
    let audit = match q.get("audit_uuid").or_else(|| q.get("audit")) {
        Some(a) => Some(s.store.get_audit(a, false).await?),
        None => None,
    };
    let unavailable = |e: watcher_cloud::CloudError| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("The cloud could not be read: {e}"),
        )
    };
    let mut model = ClusterModel::from_cloud(s.cloud.as_ref())
        .await
        .map_err(unavailable)?;
    // With an audit, the model its strategy would see: cut to its scope.
    if let Some(a) = &audit {
        let scope = ComputeScope::resolve(&a.scope, &model.nodes)
            .map_err(|e| ApiError::bad_request(format!("The audit's scope is invalid: {e}.")))?;
        model = model.scoped(&scope);
    }
    let ClusterModel {
        nodes,
        instances,
        flavors,
        excluded,
        ..
    } = model;
    let mut context = Vec::new();
    for n in &nodes {
        // Upstream's fields: Placement's inventories (total, reserved,
        // allocation ratio) and Nova's service status and state.
        let node = json!({
            "node_uuid": n.uuid, "node_hostname": n.name,
            "node_status": if n.service_enabled { "enabled" } else { "disabled" },
            "node_disabled_reason": n.disabled_reason,
            "node_state": if n.service_up { "up" } else { "down" },
            "node_memory": n.ram_mb.total, "node_memory_mb_reserved": n.ram_mb.reserved,
            "node_disk": n.disk_gb.total, "node_disk_gb_reserved": n.disk_gb.reserved,
            "node_vcpus": n.vcpus.total, "node_vcpu_reserved": n.vcpus.reserved,
            "node_memory_ratio": n.ram_mb.allocation_ratio, "node_vcpu_ratio": n.vcpus.allocation_ratio,
            "node_disk_ratio": n.disk_gb.allocation_ratio,
            "node_availability_zone": n.availability_zone,
        });
        let mut any = false;
        for i in instances.iter().filter(|i| i.host == n.name) {
            any = true;
            let f = flavors.get(&i.flavor);
            let mut entry = node.clone();
            let e = entry.as_object_mut().expect("object");
            e.insert("server_uuid".into(), json!(i.uuid));
            e.insert("server_name".into(), json!(i.name));
            e.insert("server_vcpus".into(), json!(f.map(|f| f.vcpus)));
            e.insert("server_memory".into(), json!(f.map(|f| f.ram_mb)));
            // Local disk, as upstream: none for a server booted from a volume.
            let disk = f.map(|f| if i.boot_from_volume { 0 } else { f.disk_gb });
            e.insert("server_disk".into(), json!(disk));
            e.insert("server_state".into(), json!(i.status.to_lowercase()));
            e.insert("server_flavor".into(), json!(i.flavor));
            e.insert("server_project_id".into(), json!(i.project_id));
            e.insert("server_metadata".into(), json!(i.metadata));
            e.insert(
                "server_watcher_exclude".into(),
                json!(excluded.contains(&i.uuid)),
            );
            context.push(entry);
        }
        if !any {
            context.push(node);
        }
    }
    Ok(Json(json!({"context": context})).into_response())
}
