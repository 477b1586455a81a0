//! `/v1/goals` and `/v1/strategies` (with a strategy's `state`).

use super::*;

// ----- goals and strategies --------------------------------------------------------

const GOAL_SORT: &[(&str, &str)] = &[
    ("uuid", "x.uuid"),
    ("name", "x.name"),
    ("display_name", "x.display_name"),
];

const STRATEGY_SORT: &[(&str, &str)] = &[
    ("uuid", "x.uuid"),
    ("name", "x.name"),
    ("display_name", "x.display_name"),
    ("goal_uuid", "g.uuid"),
    ("goal_name", "g.name"),
];

pub async fn list_goals(r: ListRequest, detail: bool) -> ApiResult {
    let ListRequest {
        state, q, headers, ..
    } = r;
    let page = page(&q, &headers, GOAL_SORT, detail)?;
    let goals = state.store.list_goals(page.query.clone()).await?;

    Ok(collection(
        "goals",
        &goals,
        |g| g.uuid,
        |g| views::goal(g, &page.base, detail),
        &page,
    ))
}

pub async fn show_goal(
    State(s): State<AppState>,
    Path(ident): Path<String>,
    h: HeaderMap,
) -> ApiResult {
    let g = s.store.get_goal(&ident).await?;
    Ok(Json(views::goal(&g, &base_url(&h), true)).into_response())
}

pub async fn list_strategies(r: ListRequest, detail: bool) -> ApiResult {
    let ListRequest {
        state, q, headers, ..
    } = r;
    let page = page(&q, &headers, STRATEGY_SORT, detail)?;
    let list = state
        .store
        .list_strategies(q.get("goal").cloned(), page.query.clone())
        .await?;

    Ok(collection(
        "strategies",
        &list,
        |s| s.uuid,
        |s| views::strategy(s, &page.base, detail),
        &page,
    ))
}

pub async fn show_strategy(
    State(s): State<AppState>,
    Path(ident): Path<String>,
    h: HeaderMap,
) -> ApiResult {
    let st = s.store.get_strategy(&ident).await?;
    Ok(Json(views::strategy(&st, &base_url(&h), true)).into_response())
}

pub async fn strategy_state(State(s): State<AppState>, Path(ident): Path<String>) -> ApiResult {
    let st = s.store.get_strategy(&ident).await?;
    Ok(Json(json!([
        {"type": "Datasource", "state": "available", "mandatory": "", "comment": "simulated cloud metrics"},
        {"type": "Name", "state": st.name, "mandatory": "", "comment": ""},
    ]))
    .into_response())
}
