//! `/v1/services` and `/v1/scoring_engines`.

use super::*;
use watcher_decision::scoring::ScoringEngine;

// ----- services and scoring engines ----------------------------------------------------

pub async fn list_services(r: ListRequest, detail: bool) -> ApiResult {
    let ListRequest {
        state, q, headers, ..
    } = r;
    let limit = match q.get("limit") {
        None => 1000,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n > 0 => (n as usize).min(1000),
            _ => return Err(ApiError::bad_request("Limit must be positive")),
        },
    };
    // Services page by their integer id, as upstream.
    let marker = q
        .get("marker")
        .map(|m| {
            m.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "Invalid marker '{m}': services page by integer id."
                ))
            })
        })
        .transpose()?;
    let descending = match q.get("sort_dir").map(String::as_str) {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid sort direction: {other}. Acceptable values are 'asc' or 'desc'"
            )))
        }
    };
    if let Some(k) = q.get("sort_key").filter(|k| k.as_str() != "id") {
        return Err(ApiError::bad_request(format!(
            "Invalid sort_key '{k}'; services sort by id."
        )));
    }
    let base = base_url(&headers);
    let list = state.store.list_services(limit, marker, descending).await?;
    let mut body = serde_json::Map::new();
    if list.len() == limit {
        if let Some(last) = list.last() {
            let path = if detail {
                "services/detail"
            } else {
                "services"
            };
            let dir = if descending { "desc" } else { "asc" };
            body.insert(
                "next".into(),
                json!(format!(
                    "{base}/v1/{path}?sort_key=id&sort_dir={dir}&limit={limit}&marker={}",
                    last.id
                )),
            );
        }
    }
    body.insert(
        "services".into(),
        Value::Array(
            list.iter()
                .map(|x| views::service(x, &base, detail))
                .collect(),
        ),
    );
    Ok(Json(Value::Object(body)).into_response())
}

pub async fn show_service(
    State(s): State<AppState>,
    Path(ident): Path<String>,
    h: HeaderMap,
) -> ApiResult {
    let svc = s.store.get_service(&ident).await?;
    Ok(Json(views::service(&svc, &base_url(&h), true)).into_response())
}

/// The scoring engines this build ships (`decision::scoring`), each with
/// its UUID: the built-in one, or the one an upstream Watcher's database
/// gave it (taken over with that database).
async fn scoring_engines(
    store: &watcher_store::Store,
) -> Result<Vec<(&'static ScoringEngine, String)>, ApiError> {
    let taken_over = store.scoring_engine_uuids().await?;
    Ok(watcher_decision::scoring::SCORING_ENGINES
        .iter()
        .map(|e| {
            let uuid = taken_over
                .get(e.name)
                .map_or_else(|| e.uuid.to_string(), |u| u.to_string());
            (e, uuid)
        })
        .collect())
}

/// The scoring engines, paged and sorted like every collection.
pub async fn list_scoring_engines(r: ListRequest, detail: bool) -> ApiResult {
    let p = page(
        &r.q,
        &r.headers,
        &[("uuid", "uuid"), ("name", "name")],
        detail,
    )?;
    let lq = &p.query;
    let mut list = scoring_engines(&r.state.store).await?;
    match lq.sort.0 {
        "uuid" => list.sort_by(|a, b| a.1.cmp(&b.1)),
        "name" => list.sort_by_key(|e| e.0.name),
        _ => list.sort_by_key(|e| e.0.id),
    }
    if lq.descending {
        list.reverse();
    }
    if let Some(m) = lq.marker {
        let m = m.to_string();
        match list.iter().position(|e| e.1 == m) {
            Some(p) => list.drain(..=p).for_each(drop),
            None => {
                return Err(ApiError::not_found(format!(
                    "ScoringEngine {m} could not be found"
                )))
            }
        }
    }
    list.truncate(lq.limit);
    Ok(collection(
        "scoring_engines",
        &list,
        |e| Uuid::parse_str(&e.1).unwrap_or_default(),
        |e| views::scoring_engine(e.0, &e.1, &p.base, detail),
        &p,
    ))
}

/// An engine by UUID or by name, the name compared without regard to ASCII
/// case as upstream finds names on MySQL.
pub async fn show_scoring_engine(
    State(s): State<AppState>,
    Path(ident): Path<String>,
    h: HeaderMap,
) -> ApiResult {
    let found = scoring_engines(&s.store)
        .await?
        .into_iter()
        .find(|(e, uuid)| *uuid == ident || e.name.eq_ignore_ascii_case(&ident));
    match found {
        Some((e, uuid)) => {
            Ok(Json(views::scoring_engine(e, &uuid, &base_url(&h), true)).into_response())
        }
        None => Err(ApiError::not_found(format!(
            "ScoringEngine {ident} could not be found"
        ))),
    }
}
