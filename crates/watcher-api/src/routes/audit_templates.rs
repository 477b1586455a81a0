//! `/v1/audit_templates`.

use super::*;

// ----- audit templates ---------------------------------------------------------------

const TEMPLATE_SORT: &[(&str, &str)] = &[
    ("uuid", "x.uuid"),
    ("name", "x.name"),
    ("goal_uuid", "g.uuid"),
    ("goal_name", "g.name"),
    ("strategy_uuid", "s.uuid"),
    ("strategy_name", "s.name"),
    ("created_at", "x.created_at"),
    ("updated_at", "x.updated_at"),
];

pub async fn list_audit_templates(r: ListRequest, detail: bool) -> ApiResult {
    let ListRequest {
        state,
        q,
        headers,
        ver,
    } = r;
    let page = page(&q, &headers, TEMPLATE_SORT, detail)?;
    let filter = AuditFilter {
        goal: q.get("goal").cloned(),
        strategy: q.get("strategy").cloned(),
    };
    let list = state
        .store
        .list_audit_templates(filter, page.query.clone())
        .await?;

    Ok(collection(
        "audit_templates",
        &list,
        |t| t.uuid,
        |t| views::audit_template(t, &page.base, detail, ver),
        &page,
    ))
}

pub async fn show_audit_template(
    State(s): State<AppState>,
    Path(ident): Path<String>,
    h: HeaderMap,
    Extension(v): Extension<Version>,
) -> ApiResult {
    let t = s.store.get_audit_template(&ident).await?;
    Ok(Json(views::audit_template(&t, &base_url(&h), true, v)).into_response())
}

/// Checks a template document (a create body, or a template after a patch)
/// and resolves its goal and strategy.
async fn template_fields(
    s: &AppState,
    doc: &serde_json::Map<String, Value>,
    ver: Version,
) -> Result<TemplateFields, ApiError> {
    const ALLOWED: &[&str] = &[
        "name",
        "description",
        "goal",
        "strategy",
        "scope",
        "default_parameters",
    ];
    if let Some(k) = doc.keys().find(|k| !ALLOWED.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "Unknown attribute for argument audit_template: {k}"
        )));
    }
    let text = |k: &str| -> Result<Option<String>, ApiError> {
        match doc.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(v)) => Ok(Some(v.clone())),
            Some(other) => Err(ApiError::bad_request(format!("Invalid input for field/attribute {k}. Value: {other}. Wrong type, expected a string."))),
        }
    };
    let name = checked_name(
        "audit template",
        text("name")?.ok_or_else(|| ApiError::bad_request("Mandatory field missing: name."))?,
    )?;
    let goal =
        text("goal")?.ok_or_else(|| ApiError::bad_request("Mandatory field missing: goal."))?;
    let strategy_given = text("strategy")?;
    let (goal, strategy) = resolve_goal_strategy(s, &goal, strategy_given.as_deref()).await?;
    let scope = match doc.get("scope") {
        None | Some(Value::Null) => json!([]),
        Some(v @ Value::Array(_)) => {
            watcher_decision::scope::validate(v)
                .map_err(|e| ApiError::bad_request(format!("Invalid scope: {e}.")))?;
            v.clone()
        }
        Some(_) => return Err(ApiError::bad_request("scope must be a list.")),
    };
    let default_parameters = match doc.get("default_parameters") {
        None | Some(Value::Null) => None,
        Some(_) if !ver.at_least(1, 7) => {
            return Err(ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                "default_parameters needs API microversion 1.7 or higher.",
            ))
        }
        Some(d @ Value::Object(_)) => {
            strategies::apply_parameters(&strategy.parameters_spec, d)
                .map_err(ApiError::bad_request)?;
            Some(d.clone())
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "default_parameters must be a JSON object.",
            ))
        }
    };
    Ok(TemplateFields {
        name,
        description: text("description")?,
        goal_id: goal.id,
        strategy_id: strategy_given.map(|_| strategy.id),
        scope,
        default_parameters,
    })
}

fn template_conflict(e: StoreError) -> ApiError {
    match e {
        StoreError::NameTaken { name, .. } => {
            ApiError::conflict(format!("An audit_template with name {name} already exists"))
        }
        other => other.into(),
    }
}

pub async fn create_audit_template(
    State(s): State<AppState>,
    h: HeaderMap,
    Extension(ver): Extension<Version>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let doc = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("The audit template must be a JSON object."))?;
    let fields = template_fields(&s, doc, ver).await?;
    let t = s
        .store
        .create_audit_template(fields)
        .await
        .map_err(template_conflict)?;
    let base = base_url(&h);
    let location = format!("{base}/v1/audit_templates/{}", t.uuid);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(views::audit_template(&t, &base, true, ver)),
    )
        .into_response())
}

/// PATCH: the ops are applied to the template's document, which is then
/// checked like a new one.
pub async fn patch_audit_template(
    State(s): State<AppState>,
    Path(ident): Path<String>,
    h: HeaderMap,
    Extension(ver): Extension<Version>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let ops = parse_patch(&body, INTERNAL_PATHS)?;
    let t = s.store.get_audit_template(&ident).await?;
    let mut doc = serde_json::Map::new();
    doc.insert("name".into(), json!(t.name));
    doc.insert("description".into(), json!(t.description));
    doc.insert("goal".into(), json!(t.goal_uuid));
    doc.insert("strategy".into(), json!(t.strategy_uuid));
    doc.insert("scope".into(), t.scope.clone());
    if let Some(d) = &t.default_parameters {
        doc.insert("default_parameters".into(), d.clone());
    }
    for op in &ops {
        let key = op.path[1..].to_string();
        if key.contains('/') {
            return Err(ApiError::bad_request(format!(
                "Couldn't apply patch '{}'. Reason: nested paths are not supported",
                patch_repr(&ops)
            )));
        }
        match op.op.as_str() {
            "remove" => {
                doc.remove(&key);
            }
            _ => {
                doc.insert(key, op.value.clone().unwrap_or(Value::Null));
            }
        }
    }
    let fields = template_fields(&s, &doc, ver).await?;
    let t = s
        .store
        .update_audit_template(t.uuid, fields)
        .await
        .map_err(template_conflict)?;
    Ok(Json(views::audit_template(&t, &base_url(&h), true, ver)).into_response())
}

pub async fn delete_audit_template(
    State(s): State<AppState>,
    Path(ident): Path<String>,
) -> ApiResult {
    let t = s.store.get_audit_template(&ident).await?;
    s.store.delete_audit_template(t.uuid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
