//! `/v1/audits`: list, show, create, update, delete, and the webhooks that trigger EVENT audits.

use super::*;

// ----- audits ------------------------------------------------------------------------

const AUDIT_SORT: &[(&str, &str)] = &[
    ("uuid", "x.uuid"),
    ("name", "x.name"),
    ("audit_type", "x.audit_type"),
    ("state", "x.state"),
    ("goal_uuid", "g.uuid"),
    ("goal_name", "g.name"),
    ("strategy_uuid", "s.uuid"),
    ("strategy_name", "s.name"),
    ("created_at", "x.created_at"),
    ("updated_at", "x.updated_at"),
];

pub async fn list_audits(r: ListRequest, detail: bool) -> ApiResult {
    let ListRequest {
        state,
        q,
        headers,
        ver,
    } = r;
    let page = page(&q, &headers, AUDIT_SORT, detail)?;
    let filter = AuditFilter {
        goal: q.get("goal").cloned(),
        strategy: q.get("strategy").cloned(),
    };
    let list = state.store.list_audits(filter, page.query.clone()).await?;

    Ok(collection(
        "audits",
        &list,
        |a| a.uuid,
        |a| views::audit(a, &page.base, detail, ver),
        &page,
    ))
}

pub async fn show_audit(
    State(s): State<AppState>,
    Path(ident): Path<String>,
    h: HeaderMap,
    Extension(v): Extension<Version>,
) -> ApiResult {
    let a = s.store.get_audit(&ident, show_deleted(&h)).await?;
    Ok(Json(views::audit(&a, &base_url(&h), true, v)).into_response())
}

/// The fields of a new audit's JSON body, read with upstream's messages.
struct AuditBody<'a>(&'a serde_json::Map<String, Value>);

impl<'a> AuditBody<'a> {
    /// The body as a JSON object holding only fields an audit may be created with.
    fn parse(body: &'a Value) -> Result<Self, ApiError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ApiError::bad_request("The audit must be a JSON object."))?;
        const ALLOWED: &[&str] = &[
            "audit_type",
            "audit_template_uuid",
            "goal",
            "strategy",
            "name",
            "parameters",
            "interval",
            "auto_trigger",
            "start_time",
            "end_time",
            "force",
        ];
        const READ_ONLY: &[&str] = &[
            "state",
            "scope",
            "hostname",
            "uuid",
            "created_at",
            "updated_at",
            "deleted_at",
            "status_message",
        ];
        for k in obj.keys() {
            if READ_ONLY.contains(&k.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "Cannot set read only field: {k}."
                )));
            }
            if !ALLOWED.contains(&k.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "Unknown attribute for argument audit: {k}"
                )));
            }
        }
        Ok(AuditBody(obj))
    }

    fn given(&self, k: &str) -> bool {
        self.0.get(k).is_some_and(|v| !v.is_null())
    }

    fn text(&self, k: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(ApiError::bad_request(format!("Invalid input for field/attribute {k}. Value: {other}. Wrong type, expected a string."))),
        }
    }

    fn flag(&self, k: &str) -> Result<bool, ApiError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(ApiError::bad_request(format!("Invalid input for field/attribute {k}. Value: {other}. Wrong type, expected a boolean."))),
        }
    }

    fn audit_type(&self) -> Result<AuditType, ApiError> {
        match self.text("audit_type")? {
            None => Err(ApiError::bad_request(
                "Mandatory field missing: audit_type.",
            )),
            Some(t) => t
                .parse()
                .map_err(|_| ApiError::bad_request(format!("Audit type {t} could not be found"))),
        }
    }

    /// The interval, start and end time, checked against the audit's type
    /// and the request's microversion.
    fn schedule(&self, audit_type: AuditType, ver: Version) -> Result<AuditSchedule, ApiError> {
        // python-watcherclient sends the interval as a string; a JSON number is
        // read the same way.
        let interval = match self.0.get("interval") {
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => self.text("interval")?,
        };
        let interval = match (audit_type, interval) {
            (AuditType::Continuous, None) => {
                return Err(ApiError::bad_request(
                    "Interval of audit must be specified for CONTINUOUS.",
                ))
            }
            (AuditType::Continuous, Some(i)) => Some(checked_interval(&i)?),
            (_, Some(_)) => {
                return Err(ApiError::bad_request(format!(
                    "Interval of audit must not be set for {audit_type}."
                )))
            }
            (_, None) => None,
        };
        let times_given = self.given("start_time") || self.given("end_time");
        if times_given && !ver.at_least(1, 1) {
            return Err(ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                "start_time and end_time need API microversion 1.1 or higher.",
            ));
        }
        if times_given && audit_type == AuditType::Oneshot {
            return Err(ApiError::bad_request(
                "Start or End time of audit must not be set for ONESHOT.",
            ));
        }
        let start_time = self
            .text("start_time")?
            .map(|t| parse_time("start_time", &t))
            .transpose()?;
        let end_time = self
            .text("end_time")?
            .map(|t| parse_time("end_time", &t))
            .transpose()?;
        check_time_window(start_time, end_time)?;
        Ok(AuditSchedule {
            interval,
            start_time,
            end_time,
        })
    }

    /// The template named, if any, and the goal and strategy the audit
    /// runs: from the template, or given directly (never both).
    async fn target(&self, s: &AppState) -> Result<AuditTarget, ApiError> {
        let template = match self.text("audit_template_uuid")? {
            Some(t) => {
                if self.given("goal") {
                    return Err(ApiError::bad_request(
                        "Give either a goal or an audit_template_uuid, not both.",
                    ));
                }
                let uuid = parse_uuid("audit_template_uuid", &t)?;
                Some(s.store.get_audit_template(&uuid.to_string()).await?)
            }
            None => None,
        };
        let (goal_ident, strategy_ident) = match &template {
            Some(t) => (
                t.goal_uuid.to_string(),
                self.text("strategy")?
                    .or(t.strategy_uuid.map(|u| u.to_string())),
            ),
            None => (
                self.text("goal")?.ok_or_else(|| {
                    ApiError::bad_request("A goal or audit_template_uuid must be provided.")
                })?,
                self.text("strategy")?,
            ),
        };
        let (goal, strategy) =
            resolve_goal_strategy(s, &goal_ident, strategy_ident.as_deref()).await?;
        Ok(AuditTarget {
            template,
            goal,
            strategy,
        })
    }

    /// The strategy's parameters: its defaults, under the template's
    /// defaults, under the audit's own, checked against its schema.
    fn parameters(&self, target: &AuditTarget) -> Result<Value, ApiError> {
        let mut given = target
            .template
            .as_ref()
            .and_then(|t| t.default_parameters.clone())
            .unwrap_or_else(|| json!({}));
        match self.0.get("parameters") {
            None | Some(Value::Null) => {}
            Some(Value::Object(p)) => {
                for (k, v) in p {
                    given[k] = v.clone();
                }
            }
            Some(_) => return Err(ApiError::bad_request("parameters must be a JSON object.")),
        }
        strategies::apply_parameters(&target.strategy.parameters_spec, &given)
            .map_err(ApiError::bad_request)
    }

    /// The name given, or upstream's default: the strategy's name and the time.
    fn name(&self, strategy: &Strategy) -> Result<String, ApiError> {
        match self.text("name")? {
            Some(n) => checked_name("audit", n),
            None => {
                let n = format!(
                    "{}-{}",
                    strategy.name,
                    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f")
                );
                Ok(n.chars().take(63).collect())
            }
        }
    }
}

struct AuditSchedule {
    interval: Option<String>,
    start_time: Option<DateTime<Utc>>,
    end_time: Option<DateTime<Utc>>,
}

struct AuditTarget {
    template: Option<AuditTemplate>,
    goal: Goal,
    strategy: Strategy,
}

pub async fn create_audit(
    State(s): State<AppState>,
    h: HeaderMap,
    Extension(ver): Extension<Version>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let body = AuditBody::parse(&body)?;
    let audit_type = body.audit_type()?;
    let schedule = body.schedule(audit_type, ver)?;
    let target = body.target(&s).await?;
    let parameters = body.parameters(&target)?;
    let new = NewAudit {
        uuid: Uuid::new_v4(),
        name: body.name(&target.strategy)?,
        audit_type,
        goal_id: target.goal.id,
        strategy_id: Some(target.strategy.id),
        parameters,
        interval: schedule.interval,
        scope: target
            .template
            .as_ref()
            .map(|t| t.scope.clone())
            .unwrap_or_else(|| json!([])),
        auto_trigger: body.flag("auto_trigger")?,
        force: body.flag("force")?,
        start_time: schedule.start_time,
        end_time: schedule.end_time,
    };
    let audit = s.store.create_audit(new).await?;
    let base = base_url(&h);
    let location = format!("{base}/v1/audits/{}", audit.uuid);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(views::audit(&audit, &base, true, ver)),
    )
        .into_response())
}

/// A CONTINUOUS audit's interval: seconds or a cron expression that fires.
fn checked_interval(text: &str) -> Result<String, ApiError> {
    text.parse::<Schedule>()
        .map(|_| text.trim().to_string())
        .map_err(|why| {
            ApiError::bad_request(format!(
                "Invalid interval: {why}. Give a number of seconds (e.g. 3600) or a cron \
                 expression (e.g. '0 */6 * * *')."
            ))
        })
}

/// An ISO 8601 time as python-watcherclient passes it on: with an offset,
/// or without one (then UTC, where upstream uses its server's local zone).
fn parse_time(field: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc());
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(text, format) {
            return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
        }
    }
    Err(ApiError::bad_request(format!(
        "Invalid {field} '{text}': give an ISO 8601 time such as 2026-12-01T08:00:00 (UTC) \
         or 2026-12-01T09:00:00+01:00."
    )))
}

fn check_time_window(
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
) -> Result<(), ApiError> {
    match (start, end) {
        (Some(s), Some(e)) if e <= s => Err(ApiError::bad_request(
            "The end_time of an audit must be after its start_time.",
        )),
        _ => Ok(()),
    }
}

/// A name as upstream stores it: 1 to 63 characters, no control characters.
pub(super) fn checked_name(kind: &str, n: String) -> Result<String, ApiError> {
    if n.trim().is_empty() || n.chars().count() > 63 || n.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "The {kind} name must be 1 to 63 characters, with no control characters."
        )));
    }
    Ok(n)
}

/// The goal, and the strategy (given, or the goal's first), which must
/// belong to the goal.
pub(super) async fn resolve_goal_strategy(
    s: &AppState,
    goal: &str,
    strategy: Option<&str>,
) -> Result<(Goal, Strategy), ApiError> {
    let goal = s.store.get_goal(goal).await?;
    let strategy = match strategy {
        Some(st) => {
            let st = s.store.get_strategy(st).await?;
            if st.goal_id != goal.id {
                return Err(ApiError::bad_request(format!(
                    "Strategy {} is not available for goal {}.",
                    st.name, goal.name
                )));
            }
            st
        }
        // Upstream refuses parameters without a strategy; we use the goal's first strategy instead.
        None => {
            let query = ListQuery {
                limit: 1,
                ..Default::default()
            };
            let list = s
                .store
                .list_strategies(Some(goal.name.clone()), query)
                .await?;
            list.into_iter().next().ok_or_else(|| {
                ApiError::bad_request(format!("No strategy achieves goal {}.", goal.name))
            })?
        }
    };
    Ok((goal, strategy))
}

// ----- audits: update and delete ----------------------------------------------------

/// What an audit's PATCH asks for: a state to move to, and field edits.
struct AuditPatch {
    state: AuditState,
    edit: AuditEdit,
}

impl AuditPatch {
    /// Reads every operation of `ops` against `audit`, refusing the whole
    /// patch on the first bad one: nothing is written unless all are good.
    fn read(audit: &Audit, ops: &[PatchOp], ver: Version) -> Result<AuditPatch, ApiError> {
        let mut patch = AuditPatch {
            state: audit.state,
            edit: AuditEdit::default(),
        };
        for op in ops {
            patch.apply(audit, op, ops, ver)?;
        }
        check_time_window(
            patch.edit.start_time.unwrap_or(audit.start_time),
            patch.edit.end_time.unwrap_or(audit.end_time),
        )?;
        let state = patch.state;
        if state != audit.state
            && (state == AuditState::Deleted
                || !audit_transition_allowed(audit.state, state, Actor::Api))
        {
            return Err(ApiError::bad_request(format!(
                "Couldn't apply patch '{}'. Reason: State transition not allowed: ({} -> {state})",
                patch_repr(ops),
                audit.state
            )));
        }
        Ok(patch)
    }

    fn edits_fields(&self) -> bool {
        let e = &self.edit;
        e.name.is_some()
            || e.interval.is_some()
            || e.start_time.is_some()
            || e.end_time.is_some()
            || e.auto_trigger.is_some()
    }

    // Long because one branch per patchable field of an audit, each with its own check.
    fn apply(
        &mut self,
        audit: &Audit,
        op: &PatchOp,
        ops: &[PatchOp],
        ver: Version,
    ) -> Result<(), ApiError> {
        let refuse = |why: String| {
            ApiError::bad_request(format!(
                "Couldn't apply patch '{}'. Reason: {why}",
                patch_repr(ops)
            ))
        };
        match (op.path.as_str(), op.op.as_str(), &op.value) {
            ("/interval", _, _) if audit.audit_type != AuditType::Continuous => {
                return Err(refuse(format!(
                    "Interval of audit must not be set for {}.",
                    audit.audit_type
                )))
            }
            ("/interval", "remove", _) | ("/interval", _, None | Some(Value::Null)) => {
                return Err(refuse("a CONTINUOUS audit needs an interval".into()))
            }
            ("/interval", _, Some(Value::String(v))) => {
                self.edit.interval = Some(checked_interval(v)?)
            }
            ("/interval", _, Some(Value::Number(n))) => {
                self.edit.interval = Some(checked_interval(&n.to_string())?)
            }
            ("/start_time" | "/end_time", _, _) if audit.audit_type == AuditType::Oneshot => {
                return Err(refuse(
                    "Start or End time of audit must not be set for ONESHOT.".into(),
                ))
            }
            ("/start_time" | "/end_time", _, _) if !ver.at_least(1, 1) => {
                return Err(ApiError::new(
                    StatusCode::NOT_ACCEPTABLE,
                    "start_time and end_time need API microversion 1.1 or higher.",
                ))
            }
            (p @ ("/start_time" | "/end_time"), o, v) => {
                let value = match (o, v) {
                    ("remove", _) | (_, None | Some(Value::Null)) => None,
                    (_, Some(Value::String(t))) => Some(parse_time(&p[1..], t)?),
                    _ => return Err(refuse(format!("{} must be a time string", &p[1..]))),
                };
                if p == "/start_time" {
                    self.edit.start_time = Some(value);
                } else {
                    self.edit.end_time = Some(value);
                }
            }
            ("/auto_trigger", "remove", _) => self.edit.auto_trigger = Some(false),
            ("/auto_trigger", _, Some(Value::Bool(b))) => self.edit.auto_trigger = Some(*b),
            ("/auto_trigger", _, _) => {
                return Err(refuse("auto_trigger must be true or false".into()))
            }
            ("/state", "remove", _) | ("/state", _, Some(Value::Null)) => {
                return Err(ApiError::bad_request(format!(
                    "Couldn't apply patch '{}'. Reason: the state cannot be removed",
                    patch_repr(ops)
                )))
            }
            ("/state", _, Some(Value::String(v))) => {
                self.state = v.parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "Couldn't apply patch '{}'. Reason: Invalid state: {v}",
                        patch_repr(ops)
                    ))
                })?
            }
            ("/name", "remove", _) => {
                return Err(ApiError::bad_request("The audit name cannot be removed."))
            }
            ("/name", _, Some(Value::String(v))) => {
                self.edit.name = Some(checked_name("audit", v.clone())?)
            }
            ("/name", _, _) => {
                return Err(ApiError::bad_request("The audit name must be a string."))
            }
            (p, _, _) => {
                return Err(ApiError::bad_request(format!(
                    "Couldn't apply patch '{}'. Reason: {} cannot be changed by this build",
                    patch_repr(ops),
                    &p[1..]
                )))
            }
        }
        Ok(())
    }
}

/// Audit PATCH: `/state` along upstream's audit table (e.g. cancel with
/// `replace /state CANCELLED`), and `/name`.
pub async fn patch_audit(
    State(s): State<AppState>,
    Path(ident): Path<String>,
    h: HeaderMap,
    Extension(ver): Extension<Version>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let ops = parse_patch(&body, INTERNAL_PATHS)?;
    let audit = s.store.get_audit(&ident, false).await?;
    let patch = AuditPatch::read(&audit, &ops, ver)?;
    let mut updated = audit.clone();
    if patch.state != audit.state {
        updated = s
            .store
            .transition_audit(
                audit.uuid,
                StateChange::new(audit.state, patch.state, Actor::Api, "changed by operator"),
                None,
                None,
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict { current, .. } => ApiError::conflict(format!(
                    "The audit changed state meanwhile (now {current}); retry."
                )),
                other => other.into(),
            })?;
    }
    if patch.edits_fields() {
        updated = s.store.update_audit(audit.uuid, patch.edit).await?;
    }
    Ok(Json(views::audit(&updated, &base_url(&h), true, ver)).into_response())
}

pub async fn delete_audit(State(s): State<AppState>, Path(ident): Path<String>) -> ApiResult {
    let audit = s.store.get_audit(&ident, false).await?;
    if !audit_transition_allowed(audit.state, AuditState::Deleted, Actor::Api) {
        return Err(ApiError::bad_request(format!(
            "Couldn't delete when state is '{}'.",
            audit.state
        )));
    }
    match s
        .store
        .transition_audit(
            audit.uuid,
            StateChange::new(
                audit.state,
                AuditState::Deleted,
                Actor::Api,
                "deleted by operator",
            ),
            None,
            None,
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

// ----- webhooks --------------------------------------------------------------------------

/// `POST /v1/webhooks/{audit}`: runs an EVENT audit. The body is ignored.
pub async fn trigger_webhook(State(s): State<AppState>, Path(ident): Path<String>) -> ApiResult {
    s.store.trigger_audit(&ident).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
