//! `/v1/actions`: list, show, and skipping one (PATCH state SKIPPED).

use super::*;

// ----- actions -------------------------------------------------------------------------

const ACTION_SORT: &[(&str, &str)] = &[
    ("uuid", "x.uuid"),
    ("action_type", "x.action_type"),
    ("state", "x.state"),
    ("action_plan_uuid", "p.uuid"),
    ("created_at", "x.created_at"),
    ("updated_at", "x.updated_at"),
];

pub async fn list_actions(r: ListRequest, detail: bool) -> ApiResult {
    let ListRequest {
        state,
        q,
        headers,
        ver,
    } = r;
    let page = page(&q, &headers, ACTION_SORT, detail)?;
    let filter = ActionFilter {
        action_plan_uuid: q
            .get("action_plan_uuid")
            .map(|a| parse_uuid("action_plan_uuid", a))
            .transpose()?,
        audit_uuid: q
            .get("audit_uuid")
            .map(|a| parse_uuid("audit_uuid", a))
            .transpose()?,
    };
    if filter.action_plan_uuid.is_some() && filter.audit_uuid.is_some() {
        return Err(ApiError::bad_request(
            "Filtering actions on both audit and action-plan is prohibited",
        ));
    }
    let list = state.store.list_actions(filter, page.query.clone()).await?;

    Ok(collection(
        "actions",
        &list,
        |a| a.uuid,
        |a| {
            views::action(
                a,
                &page.base,
                detail,
                ver,
                watcher_core::actions::description(&a.action_type),
            )
        },
        &page,
    ))
}

pub async fn show_action(
    State(s): State<AppState>,
    Path(id): Path<String>,
    h: HeaderMap,
    Extension(v): Extension<Version>,
) -> ApiResult {
    let uuid = parse_uuid("action", &id)?;
    let a = s.store.get_action(uuid, show_deleted(&h)).await?;
    Ok(Json(views::action(
        &a,
        &base_url(&h),
        true,
        v,
        watcher_core::actions::description(&a.action_type),
    ))
    .into_response())
}

/// Skip (microversion >= 1.5): PENDING -> SKIPPED while the plan is
/// RECOMMENDED or PENDING; 409 otherwise, as upstream.
pub async fn patch_action(
    State(s): State<AppState>,
    Path(id): Path<String>,
    h: HeaderMap,
    Extension(ver): Extension<Version>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    if !ver.at_least(1, 5) {
        return Err(ApiError::bad_request(
            "API microversion 1.5 or higher is required.",
        ));
    }
    let uuid = parse_uuid("action", &id)?;
    let ops = parse_patch(&body, ACTION_INTERNAL_PATHS)?;
    let mut state: Option<ActionState> = None;
    let mut reason: Option<String> = None;
    for op in &ops {
        if op.op == "remove" {
            return Err(ApiError::bad_request(format!("Cannot remove {}.", op.path)));
        }
        match (op.path.as_str(), &op.value) {
            ("/state", Some(Value::String(v))) => {
                state = Some(
                    v.parse()
                        .map_err(|_| ApiError::bad_request(format!("Invalid state: {v}")))?,
                )
            }
            ("/status_message", Some(Value::String(v))) => reason = Some(v.clone()),
            (p, _) => {
                return Err(ApiError::bad_request(format!(
                    "{} is not an allowed attribute or has a wrong value.",
                    &p[1..]
                )))
            }
        }
    }
    let action = s.store.get_action(uuid, false).await?;
    let to = state.unwrap_or(action.state);
    if to != action.state && !(action.state == ActionState::Pending && to == ActionState::Skipped) {
        return Err(ApiError::conflict(format!(
            "State transition not allowed: ({} -> {to})",
            action.state
        )));
    }
    if to != ActionState::Skipped {
        return Err(ApiError::conflict(
            "status_message can only be changed on a SKIPPED action.",
        ));
    }
    let message = match reason {
        Some(r) => format!("Action skipped by user. Reason: {r}"),
        None => "Action skipped by user.".to_string(),
    };
    match s.store.skip_action(uuid, message).await {
        Ok(a) => Ok(Json(views::action(
            &a,
            &base_url(&h),
            true,
            ver,
            watcher_core::actions::description(&a.action_type),
        ))
        .into_response()),
        Err(StoreError::PlanNotRunning { state, .. }) => Err(ApiError::conflict(format!(
            "State update not allowed for actionplan state: {state}"
        ))),
        Err(StoreError::Conflict { current, .. }) => Err(ApiError::conflict(format!(
            "State transition not allowed: ({current} -> SKIPPED)"
        ))),
        Err(e) => Err(e.into()),
    }
}
