//! `/v1/action_plans`: list, show, update (upstream's PATCH, cancel included), start, delete, and
//! our history.

use super::*;

// ----- action plans ---------------------------------------------------------------

const PLAN_SORT: &[(&str, &str)] = &[
    ("uuid", "x.uuid"),
    ("state", "x.state"),
    ("audit_uuid", "a.uuid"),
    ("strategy_uuid", "s.uuid"),
    ("strategy_name", "s.name"),
    ("created_at", "x.created_at"),
    ("updated_at", "x.updated_at"),
];

pub async fn list_plans(r: ListRequest, detail: bool) -> ApiResult {
    let ListRequest {
        state,
        q,
        headers,
        ver,
    } = r;
    let page = page(&q, &headers, PLAN_SORT, detail)?;
    let filter = PlanFilter {
        audit_uuid: q
            .get("audit_uuid")
            .map(|a| parse_uuid("audit_uuid", a))
            .transpose()?,
        strategy: q.get("strategy").cloned(),
        ..Default::default()
    };
    let list = state.store.list_plans(filter, page.query.clone()).await?;

    Ok(collection(
        "action_plans",
        &list,
        |p| p.uuid,
        |p| views::action_plan(p, &page.base, detail, ver),
        &page,
    ))
}

pub async fn show_plan(
    State(s): State<AppState>,
    Path(id): Path<String>,
    h: HeaderMap,
    Extension(v): Extension<Version>,
) -> ApiResult {
    let uuid = parse_uuid("action plan", &id)?;
    let p = s.store.get_plan(uuid, show_deleted(&h)).await?;
    Ok(Json(views::action_plan(&p, &base_url(&h), true, v)).into_response())
}

/// The state a plan's PATCH asks for (its last `/state` operation; the
/// plan's own state when it names none; None when it removes the state).
fn requested_plan_state(
    ops: &[PatchOp],
    current: ActionPlanState,
) -> Result<Option<ActionPlanState>, ApiError> {
    let mut target = Some(current);
    for op in ops.iter().filter(|op| op.path == "/state") {
        target = match (&*op.op, &op.value) {
            ("remove", _) => None,
            (_, Some(Value::String(v))) => Some(v.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "Couldn't apply patch '{}'. Reason: Invalid state: {v}",
                    patch_repr(ops)
                ))
            })?),
            (_, Some(other)) => {
                return Err(ApiError::bad_request(format!(
                    "Couldn't apply patch '{}'. Reason: Invalid state: {other}",
                    patch_repr(ops)
                )))
            }
            _ => None,
        };
    }
    Ok(target)
}

pub async fn patch_plan(
    State(s): State<AppState>,
    Path(id): Path<String>,
    h: HeaderMap,
    Extension(ver): Extension<Version>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let uuid = parse_uuid("action plan", &id)?;
    let ops = parse_patch(&body, INTERNAL_PATHS)?;
    let plan = s.store.get_plan(uuid, false).await?;
    let target = requested_plan_state(&ops, plan.state)?;
    let refuse = |from: ActionPlanState, to: &str| {
        ApiError::bad_request(format!(
            "Couldn't apply patch '{}'. Reason: State transition not allowed: ({from} -> {to})",
            patch_repr(&ops)
        ))
    };
    let Some(target) = target else {
        return Err(refuse(plan.state, "None"));
    };
    let base = base_url(&h);
    let cancel = matches!(
        target,
        ActionPlanState::Cancelled | ActionPlanState::Cancelling
    );
    // A cancel is an intent, not a pair of states: it is re-evaluated if the
    // applier moved the plan between our read and our write.
    let mut current = plan.state;
    for _ in 0..5 {
        let to = if cancel {
            match current {
                ActionPlanState::Recommended | ActionPlanState::Pending => {
                    ActionPlanState::Cancelled
                }
                ActionPlanState::Ongoing => ActionPlanState::Cancelling,
                // CANCELLING while its run still finishes actions, else
                // CANCELLED at once: decided in the store's transaction.
                ActionPlanState::Paused => {
                    match s
                        .store
                        .cancel_paused_plan(uuid, "cancelled by operator".into())
                        .await
                    {
                        Ok(p) => {
                            return Ok(
                                Json(views::action_plan(&p, &base, true, ver)).into_response()
                            )
                        }
                        Err(StoreError::Conflict { current: now, .. }) => {
                            current = now.plan().ok_or_else(|| {
                                ApiError::conflict("The action plan changed state; retry.")
                            })?;
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                // A second cancel is not an error: the plan is returned as it is.
                ActionPlanState::Cancelling | ActionPlanState::Cancelled => {
                    let p = s.store.get_plan(uuid, false).await?;
                    return Ok(Json(views::action_plan(&p, &base, true, ver)).into_response());
                }
                _ => target,
            }
        } else {
            target
        };
        // Pause and resume are watcherd's own operations, not upstream's PATCH.
        let ours = |st: ActionPlanState| st == ActionPlanState::Paused;
        if to == ActionPlanState::Deleted
            || (!cancel && (ours(to) || ours(current)))
            || !plan_transition_allowed(current, to, Actor::Api)
        {
            return Err(refuse(current, to.as_str()));
        }
        let reason = if cancel {
            "cancelled by operator"
        } else {
            "started by operator"
        };
        match s
            .store
            .transition_plan(
                uuid,
                StateChange::new(current, to, Actor::Api, reason),
                PlanUpdate::default(),
            )
            .await
        {
            Ok(p) => return Ok(Json(views::action_plan(&p, &base, true, ver)).into_response()),
            Err(StoreError::Conflict { current: now, .. }) => {
                current = now
                    .plan()
                    .ok_or_else(|| ApiError::conflict("The action plan changed state; retry."))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict(
        "The action plan kept changing state; retry.",
    ))
}

pub async fn start_plan(
    State(s): State<AppState>,
    Path(id): Path<String>,
    h: HeaderMap,
    Extension(ver): Extension<Version>,
) -> ApiResult {
    let uuid = parse_uuid("action plan", &id)?;
    let plan = s.store.get_plan(uuid, false).await?;
    if plan.state != ActionPlanState::Recommended {
        return Err(ApiError::bad_request(format!(
            "Couldn't start when state is '{}'.",
            plan.state
        )));
    }
    match s
        .store
        .transition_plan(
            uuid,
            StateChange::new(
                ActionPlanState::Recommended,
                ActionPlanState::Pending,
                Actor::Api,
                "started by operator",
            ),
            PlanUpdate::default(),
        )
        .await
    {
        Ok(p) => Ok(Json(views::action_plan(&p, &base_url(&h), true, ver)).into_response()),
        Err(StoreError::Conflict { current, .. }) => Err(ApiError::bad_request(format!(
            "Couldn't start when state is '{current}'."
        ))),
        Err(e) => Err(e.into()),
    }
}

pub async fn delete_plan(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let uuid = parse_uuid("action plan", &id)?;
    let plan = s.store.get_plan(uuid, false).await?;
    if !plan.state.is_deletable() {
        return Err(ApiError::bad_request(format!(
            "Couldn't delete when state is '{}'.",
            plan.state
        )));
    }
    match s
        .store
        .transition_plan(
            uuid,
            StateChange::new(
                plan.state,
                ActionPlanState::Deleted,
                Actor::Api,
                "deleted by operator",
            ),
            PlanUpdate::default(),
        )
        .await
    {
        Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(StoreError::Conflict { current, .. }) => Err(ApiError::bad_request(format!(
            "Couldn't delete when state is '{current}'."
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Our extension: every state change of the plan and its actions.
pub async fn plan_history(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let uuid = parse_uuid("action plan", &id)?;
    s.store.get_plan(uuid, true).await?;
    let rows = s.store.plan_history(uuid).await?;
    Ok(
        Json(json!({"history": rows.iter().map(views::history_entry).collect::<Vec<_>>()}))
            .into_response(),
    )
}

/// The optional JSON body of a pause or a resume (Null when empty), read
/// once.
fn steering_body(h: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    if crate::same_origin::body_not_json(h) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The request body must be JSON, sent with Content-Type: application/json.",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|_| ApiError::bad_request("Request is not in valid JSON format"))
}

/// The body's optional `reason`, for the plan's history: at most 255
/// characters, no control characters.
fn operator_reason(body: &Value, what: &str) -> Result<String, ApiError> {
    let given = match body.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if r.chars().count() <= 255 && !r.chars().any(char::is_control) => {
            Some(r)
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "reason must be a string of at most 255 characters without control characters",
            ))
        }
    };
    Ok(match given {
        Some(r) if !r.trim().is_empty() => format!("{what} by operator: {r}"),
        _ => format!("{what} by operator"),
    })
}

/// watcherd's extension: ONGOING -> PAUSED. Nothing more starts; running
/// actions finish (or, with `"abort_running": true`, are aborted as a
/// cancel would and run again on resume); PENDING ones stay PENDING until
/// the resume.
pub async fn pause_plan(
    State(s): State<AppState>,
    Path(id): Path<String>,
    h: HeaderMap,
    Extension(ver): Extension<Version>,
    body: axum::body::Bytes,
) -> ApiResult {
    let uuid = parse_uuid("action plan", &id)?;
    let body = steering_body(&h, &body)?;
    let reason = operator_reason(&body, "paused")?;
    let abort_running = match body.get("abort_running") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::bad_request("abort_running must be true or false")),
    };
    let reason = if abort_running {
        format!("{reason} (running actions aborted, to run again on resume)")
    } else {
        reason
    };
    let plan = s.store.get_plan(uuid, false).await?;
    if plan.state != ActionPlanState::Ongoing {
        return Err(not_steerable("pause", "an ONGOING", plan.state));
    }
    let done = s.store.pause_plan(uuid, reason, abort_running).await;
    steered(done, &h, ver, "pause", "an ONGOING")
}

/// The answer to a pause or a resume: the plan, or 409 when it was not (or
/// no longer) in the state the operation needs.
fn steered(
    done: Result<watcher_core::ActionPlan, StoreError>,
    h: &HeaderMap,
    ver: Version,
    verb: &str,
    needs: &str,
) -> ApiResult {
    match done {
        Ok(p) => Ok(Json(views::action_plan(&p, &base_url(h), true, ver)).into_response()),
        Err(StoreError::Conflict { current, .. }) => Err(not_steerable(verb, needs, current)),
        Err(e) => Err(e.into()),
    }
}

fn not_steerable(verb: &str, needs: &str, state: impl std::fmt::Display) -> ApiError {
    ApiError::conflict(format!(
        "Couldn't {verb} when state is '{state}': only {needs} action plan can be {verb}d."
    ))
}

/// watcherd's extension: PAUSED -> ONGOING (its run still finishing
/// actions goes on) or PENDING (the first applier to claim it goes on).
pub async fn resume_plan(
    State(s): State<AppState>,
    Path(id): Path<String>,
    h: HeaderMap,
    Extension(ver): Extension<Version>,
    body: axum::body::Bytes,
) -> ApiResult {
    let uuid = parse_uuid("action plan", &id)?;
    let reason = operator_reason(&steering_body(&h, &body)?, "resumed")?;
    let plan = s.store.get_plan(uuid, false).await?;
    if plan.state != ActionPlanState::Paused {
        return Err(not_steerable("resume", "a PAUSED", plan.state));
    }
    let done = s.store.resume_plan(uuid, reason).await;
    steered(done, &h, ver, "resume", "a PAUSED")
}
