//! `/v1/trials/{id}/takeup`, `/surveys` and `/outcomes/summary`: what was delivered to each firm,
//! what the work-environment surveys measured, and sick leave by arm and quarter.

use std::collections::{BTreeMap, BTreeSet};

use crate::json::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ApiPath, ApiQuery, ErrorEnvelope};
use super::examples::{SURVEYS_CSV, TAKEUP_CSV, example, no_trial, surveys_json, takeup_json};
use super::middleware::{AuditDetails, AuditedJson, RequestMeta};
use super::trials::{not_found, scope};
use crate::auth::Caller;
use crate::disclosure::{MaskedCount, part_of};
use crate::domain::{Orgnr, Role};
use crate::register::{RegisterErrors, RowError};
use crate::storage::AssignmentRecord;
use crate::storage::takeup::{
    DeviationCount, DeviationRecord, NewDeviation, NewTakeupEvent, TakeupFailure,
};
use crate::takeup::{
    Compliance, DeviationKind, SURVEY_MIN_RESPONDENTS, check_measures, deviation, parse_surveys,
    parse_takeup, summarize,
};

/// Below this many firms or persons nothing is shown outside the directorate (NAV's rule).
const MIN_CELL: i64 = 5;

fn invalid(message: &str, e: RegisterErrors) -> ApiError {
    ApiError::Invalid {
        message: format!(
            "{message}: {} problem(s); nothing was written. First: {}",
            e.total,
            e.errors
                .first()
                .map(ToString::to_string)
                .unwrap_or_default()
        ),
        details: serde_json::json!({ "errors": e.errors, "total": e.total }),
    }
}

/// The assignment of every randomized firm of the trial.
async fn assigned_firms(
    state: &AppState,
    id: &str,
) -> Result<BTreeMap<Orgnr, AssignmentRecord>, ApiError> {
    Ok(state
        .store
        .assignments(id, None, None, u32::MAX)
        .await?
        .into_iter()
        .map(|a| (a.orgnr, a))
        .collect())
}

/// Checks that each row's firm was randomized in the trial (422 otherwise) and, for a fylke, that
/// it is one of its own firms (403 otherwise, naming the rows); gives each row's assignment.
fn place_rows<'a>(
    caller: &Caller,
    rows: impl Iterator<Item = (usize, Orgnr)>,
    firms: &'a BTreeMap<Orgnr, AssignmentRecord>,
) -> Result<Vec<&'a AssignmentRecord>, ApiError> {
    let mut placed = Vec::new();
    let mut unknown = Vec::new();
    let mut foreign = Vec::new();
    for (row, orgnr) in rows {
        match firms.get(&orgnr) {
            None => unknown.push(RowError {
                row,
                field: "orgnr".into(),
                value: orgnr.to_string(),
                reason: "the firm was not randomized in this trial".into(),
            }),
            Some(a) if caller.role == Role::Fylke && caller.fylke != Some(a.fylke) => {
                foreign.push(row);
            }
            Some(a) => placed.push(a),
        }
    }
    if !foreign.is_empty() {
        let rows: Vec<String> = foreign.iter().take(20).map(ToString::to_string).collect();
        return Err(ApiError::Forbidden(format!(
            "a fylke reports only for its own firms; row(s) {} are firms of another fylke",
            rows.join(", ")
        )));
    }
    if !unknown.is_empty() {
        let total = unknown.len();
        return Err(invalid(
            "the upload names firms outside the trial",
            RegisterErrors {
                errors: unknown.into_iter().take(100).collect(),
                total,
            },
        ));
    }
    Ok(placed)
}

/// What an accepted upload recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recorded {
    /// Rows recorded.
    pub rows: usize,
}

/// A take-up record accepted as a protocol deviation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordedDeviation {
    /// The deviation's id (`GET /v1/trials/{id}/deviations` lists it for the directorate).
    pub id: i64,
    /// The data row of the upload.
    pub row: usize,
    /// The firm.
    #[schema(value_type = String)]
    pub orgnr: Orgnr,
    /// The firm's arm.
    pub arm: String,
    /// What kind of deviation.
    pub kind: DeviationKind,
    /// Why it is one.
    pub reason: String,
}

/// What an accepted take-up upload recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct TakeupRecorded {
    /// Rows recorded.
    pub rows: usize,
    /// Rows recorded as protocol deviations: contact with a control firm of a design-A trial, or
    /// help to a control firm. The records are kept (they are facts) and flagged.
    pub protocol_deviations: Vec<RecordedDeviation>,
    /// A note when there are deviations.
    pub warning: Option<String>,
}

/// Records what was delivered (docs/data-formats.md §3: `orgnr, status, dato`, optional
/// `arbeidsform_levert, timer, merknad`; statuses after Fia). A fylke reports only for its own
/// firms (403 otherwise); every status change is checked against the firm's history; all or
/// nothing. A record that shows contact with a control firm of a design-A trial (any status: each
/// one follows a contact), or help (`AKTIV`) to a control firm of any design, is accepted and
/// recorded as a protocol deviation: the response lists it, the audit row names it, and the
/// directorate sees it under `/deviations`, the outcomes summary and the CONSORT counts.
#[utoipa::path(
    post, path = "/v1/trials/{id}/takeup", tag = "delivery",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer")),
    request_body(
        description = "Take-up events (docs/data-formats.md §3): CSV (comma or semicolon) or JSON rows \
                       (an array, one object, or one object per line). The format is read from the content",
        content(
            (String = "text/csv", example = json!(TAKEUP_CSV)),
            (Vec<Object> = "application/json", example = json!(takeup_json())),
        )
    ),
    responses(
        (status = 201, description = "Recorded, all rows; those that are protocol deviations are listed", body = TakeupRecorded,
            example = json!(example("takeup_recorded"))),
        (status = 403, description = "A row is another fylke's firm", body = ErrorEnvelope),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
        (status = 422, description = "Invalid rows or status changes, each with row and field", body = ErrorEnvelope),
    )
)]
pub async fn record_takeup(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Result<AuditedJson<TakeupRecorded>, ApiError> {
    let audit = meta.audit_entry(Some(&caller));
    Ok(AuditedJson(
        StatusCode::CREATED,
        take_up(&state, &caller, audit, &id, &body).await?,
    ))
}

/// Records a take-up upload for `caller` (the rules of [`record_takeup`]), committing `audit`
/// (status 201) in the write's own transaction.
pub(crate) async fn take_up(
    state: &AppState,
    caller: &Caller,
    mut audit: crate::storage::NewAuditEntry,
    id: &str,
    body: &[u8],
) -> Result<crate::storage::Audited<TakeupRecorded>, ApiError> {
    let events = parse_takeup(body).map_err(|e| invalid("the take-up upload is invalid", e))?;
    let trial = state.store.get_trial(id).await.map_err(not_found(id))?;
    let firms = assigned_firms(state, id).await?;
    let placed = place_rows(caller, events.iter().map(|e| (e.row, e.orgnr)), &firms)?;
    let control = trial.protocol.control_arm().map(|a| a.id.as_str());
    // The design's restriction on control firms holds until the follow-up ends; a record dated
    // after the last post quarter is not a deviation.
    let follow = &trial.protocol.follow_up;
    let follow_up_ends = follow
        .randomization_quarter
        .plus(i32::try_from(follow.post_quarters).unwrap_or(i32::MAX))
        .and_then(|after| {
            let month = u32::from(after.quarter()) * 3 - 2;
            chrono::NaiveDate::from_ymd_opt(after.year(), month, 1)
        });
    let rows: Vec<NewTakeupEvent> = events
        .into_iter()
        .zip(placed)
        .map(|(event, a)| {
            let within = follow_up_ends.is_none_or(|end| event.dato < end);
            let kind = deviation(
                trial.protocol.design,
                within && control == Some(a.arm.as_str()),
                event.status,
            );
            NewTakeupEvent {
                deviation: kind.map(|kind| NewDeviation {
                    wave: a.wave,
                    arm: a.arm.clone(),
                    kind,
                }),
                fylke: a.fylke,
                event,
            }
        })
        .collect();
    audit.status = 201;
    let today = chrono::Utc::now().date_naive();
    let recorded = state
        .store
        .record_takeup(id, &rows, &caller.name, today, &audit)
        .await
        .map_err(|e| match e {
            TakeupFailure::Invalid(errors) => invalid("the status changes do not fit", errors),
            TakeupFailure::Store(e) => not_found(id)(e),
        })?;
    Ok(recorded.map(|receipt| {
        let protocol_deviations: Vec<RecordedDeviation> = receipt
            .deviations
            .iter()
            .filter_map(|&(index, id)| {
                let new = rows.get(index)?;
                let d = new.deviation.as_ref()?;
                Some(RecordedDeviation {
                    id,
                    row: new.event.row,
                    orgnr: new.event.orgnr,
                    arm: d.arm.clone(),
                    kind: d.kind,
                    reason: d.kind.describe().to_owned(),
                })
            })
            .collect();
        let warning = (!protocol_deviations.is_empty()).then(|| {
            let rows: Vec<String> = protocol_deviations
                .iter()
                .take(20)
                .map(|d| d.row.to_string())
                .collect();
            format!(
                "{} row(s) recorded as protocol deviations (row(s) {}): the firm is in the \
                     control arm; the directorate is told",
                protocol_deviations.len(),
                rows.join(", ")
            )
        });
        TakeupRecorded {
            rows: receipt.rows,
            protocol_deviations,
            warning,
        }
    }))
}

/// A trial's protocol deviations.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviationList {
    /// Every deviation, oldest first, with the take-up record it came from.
    pub deviations: Vec<DeviationRecord>,
}

/// Every protocol deviation of the trial (take-up records that show contact with a control firm
/// of a design-A trial, or help to a control firm), with the firm, its wave, arm and fylke, the
/// take-up record it came from, and who reported it when. Deviations are never changed or removed.
#[utoipa::path(
    get, path = "/v1/trials/{id}/deviations", tag = "delivery",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer")),
    responses(
        (status = 200, description = "Every protocol deviation, oldest first", body = DeviationList,
            example = json!(example("deviation_list"))),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
    )
)]
pub async fn list_deviations(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    state.store.get_trial(&id).await.map_err(not_found(&id))?;
    let deviations = state.store.protocol_deviations(&id).await?;
    let mut object_ids: Vec<String> = deviations
        .iter()
        .map(|d| format!("orgnr:{}", d.orgnr))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    object_ids.extend(deviations.iter().map(|d| format!("deviation:{}", d.id)));
    let details = AuditDetails {
        trial_id: Some(id),
        object_ids,
    };
    let mut response = Json(DeviationList { deviations }).into_response();
    response.extensions_mut().insert(details);
    Ok(response)
}

/// One firm's delivery so far.
#[derive(Debug, Serialize, ToSchema)]
pub struct FirmDelivery {
    /// The firm.
    #[schema(value_type = String)]
    pub orgnr: Orgnr,
    /// Derived from its events.
    pub compliance: Compliance,
}

/// Delivery per firm.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Firms with events, by orgnr.
    pub firms: Vec<FirmDelivery>,
}

/// Each firm's delivery: whether it received assistance (has been `AKTIV`) and when, its last
/// status, adviser hours and the arbeidsformer delivered. A fylke sees its own firms.
#[utoipa::path(
    get, path = "/v1/trials/{id}/takeup", tag = "delivery",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer")),
    responses(
        (status = 200, description = "Each firm with take-up events that the caller may see", body = DeliveryList,
            example = json!(example("delivery_list"))),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
    )
)]
pub async fn list_takeup(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let fylke = scope(&caller)?;
    state.store.get_trial(&id).await.map_err(not_found(&id))?;
    let events = state.store.takeup_events(&id, fylke).await?;
    let firms: Vec<FirmDelivery> = summarize(&events)
        .into_iter()
        .map(|(orgnr, compliance)| FirmDelivery { orgnr, compliance })
        .collect();
    let details = AuditDetails {
        trial_id: Some(id),
        object_ids: firms.iter().map(|f| format!("orgnr:{}", f.orgnr)).collect(),
    };
    let mut response = Json(DeliveryList { firms }).into_response();
    response.extensions_mut().insert(details);
    Ok(response)
}

/// Records work-environment survey results (docs/data-formats.md §4: `orgnr, bolge, maal, verdi,
/// antall_svar`). A fylke reports only for its own firms. Each `maal` must be a survey measure
/// the protocol declares (`outcomes.survey`; 422 naming row and field otherwise). Results are
/// never replaced.
#[utoipa::path(
    post, path = "/v1/trials/{id}/surveys", tag = "delivery",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer")),
    request_body(
        description = "Survey results (docs/data-formats.md §4): CSV (comma or semicolon) or JSON rows \
                       (an array, one object, or one object per line). The format is read from the content",
        content(
            (String = "text/csv", example = json!(SURVEYS_CSV)),
            (Vec<Object> = "application/json", example = json!(surveys_json())),
        )
    ),
    responses(
        (status = 201, description = "Recorded, all rows", body = Recorded, example = json!(example("recorded"))),
        (status = 403, description = "A row is another fylke's firm", body = ErrorEnvelope),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
        (status = 409, description = "A result was already recorded", body = ErrorEnvelope),
        (status = 422, description = "Invalid rows, a measure the protocol does not declare, or a firm outside the trial; each with row and field", body = ErrorEnvelope),
    )
)]
pub async fn record_surveys(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Result<AuditedJson<Recorded>, ApiError> {
    let rows = parse_surveys(&body).map_err(|e| invalid("the survey upload is invalid", e))?;
    let trial = state.store.get_trial(&id).await.map_err(not_found(&id))?;
    let declared: Vec<&str> = trial
        .protocol
        .outcomes
        .survey
        .iter()
        .map(String::as_str)
        .collect();
    check_measures(&rows, &declared)
        .map_err(|e| invalid("the survey upload names measures outside the protocol", e))?;
    let firms = assigned_firms(&state, &id).await?;
    let placed = place_rows(&caller, rows.iter().map(|r| (r.row, r.orgnr)), &firms)?;
    let rows: Vec<_> = rows
        .into_iter()
        .zip(placed.into_iter().map(|a| a.fylke))
        .collect();
    let mut audit = meta.audit_entry(Some(&caller));
    audit.status = 201;
    let recorded = state
        .store
        .record_surveys(&id, &rows, &caller.name, &audit)
        .await
        .map_err(not_found(&id))?;
    Ok(AuditedJson(
        StatusCode::CREATED,
        recorded.map(|rows| Recorded { rows }),
    ))
}

/// Which statistics vintage to summarize.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SummaryParams {
    /// The statistics vintage (default: latest).
    #[param(example = 1)]
    pub vintage: Option<i64>,
}

/// One arm in one quarter.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArmQuarter {
    /// The arm.
    pub arm: String,
    /// The quarter, `2025K1`.
    pub kvartal: String,
    /// Firms with statistics. Outside the directorate `"<5"` for 1 to 4, and `"masked"` when 1 to
    /// 4 of the arm's firms have none (the arm's size is published, so the difference would show).
    #[serde(serialize_with = "crate::disclosure::hidden_count")]
    #[schema(value_type = MaskedCount)]
    pub firms: Option<usize>,
    /// Sick-leave rate, `100 * Σ tapte / Σ mulige`; `null` when hidden (see `masked`) or when the
    /// cell has no possible dagsverk.
    pub sykefravar_prosent: Option<f64>,
    /// True when the rate is hidden: fewer than 5 firms or 5 persons, outside the directorate.
    pub masked: bool,
}

/// Delivery and its cost per arm.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArmDelivery {
    /// The arm.
    pub arm: String,
    /// Randomized firms (`"<5"` for 1 to 4 outside the directorate).
    #[schema(value_type = MaskedCount)]
    pub firms: i64,
    /// Of which received assistance (have been `AKTIV`). Outside the directorate `"<5"` for 1 to
    /// 4, and `"masked"` when 1 to 4 of the arm's firms did not receive it.
    #[serde(serialize_with = "crate::disclosure::hidden_count")]
    #[schema(value_type = MaskedCount)]
    pub received: Option<usize>,
    /// Adviser hours reported (the cost side); `null` when hidden (see `masked`).
    pub timer: Option<f64>,
    /// True when the hours are hidden: a sum over fewer than 5 firms, outside the directorate.
    pub masked: bool,
}

/// One survey measure in one wave for one arm.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArmSurvey {
    /// The arm.
    pub arm: String,
    /// The survey wave.
    pub bolge: u32,
    /// The measure.
    pub maal: String,
    /// Firms with a shown result (at least 3 respondents). Outside the directorate `"<5"` for 1
    /// to 4, and `"masked"` when 1 to 4 of the arm's firms have none.
    #[serde(serialize_with = "crate::disclosure::hidden_count")]
    #[schema(value_type = MaskedCount)]
    pub firms: Option<usize>,
    /// Respondents over those firms (`"<5"` for 1 to 4, and hidden with the mean, outside the
    /// directorate).
    #[schema(value_type = Option<MaskedCount>)]
    pub respondents: Option<i64>,
    /// Mean over those firms of the firm's value (cells with fewer than 3 respondents are masked
    /// everywhere and left out); `null` when hidden (see `masked`).
    pub mean: Option<f64>,
    /// True when the mean and respondents are hidden: fewer than 5 firms, outside the directorate.
    pub masked: bool,
}

/// Sick leave by arm and quarter, and delivery per arm.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutcomeSummary {
    /// The statistics vintage used: the latest upload at or before the one asked for (null
    /// before any statistics).
    pub vintage: Option<i64>,
    /// By quarter, then arm.
    pub quarters: Vec<ArmQuarter>,
    /// Per arm.
    pub delivery: Vec<ArmDelivery>,
    /// Survey results by arm, wave and measure.
    pub surveys: Vec<ArmSurvey>,
    /// Survey cells with fewer than this many respondents are never shown.
    pub survey_min_respondents: u32,
    /// Protocol deviations (take-up records of control firms that the design forbids) per arm,
    /// fylke and kind: `deviations` records over `firms` firms. Only cells with a deviation.
    pub protocol_deviations: Vec<DeviationCount>,
}

/// Sick-leave rate by arm and quarter (ratio of sums over the randomized firms, NAV's rule), with
/// firm counts, and take-up and adviser hours per arm. Outside the directorate every count of 1 to
/// 4 is `"<5"`, and every rate, sum or mean over fewer than 5 firms or 5 persons is hidden: `null`
/// with `masked: true`.
#[utoipa::path(
    get, path = "/v1/trials/{id}/outcomes/summary", tag = "delivery",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer"), SummaryParams),
    responses(
        (status = 200, description = "Sick leave by arm and quarter, delivery and surveys by arm (here as a researcher sees them)",
            body = OutcomeSummary, example = json!(example("outcome_summary"))),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
        (status = 422, description = "A query parameter is invalid", body = ErrorEnvelope),
    )
)]
pub async fn outcome_summary(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<SummaryParams>,
) -> Result<Json<OutcomeSummary>, ApiError> {
    let trial = state.store.get_trial(&id).await.map_err(not_found(&id))?;
    Ok(Json(
        outcome_view(&state, &trial, caller.role, params.vintage).await?,
    ))
}

/// Sick leave by arm and quarter, delivery and surveys by arm, as `role` reads them (before the
/// route's masking layer): the API's and the report page's one computation.
pub(crate) async fn outcome_view(
    state: &AppState,
    trial: &crate::storage::TrialInfo,
    role: Role,
    vintage: Option<i64>,
) -> Result<OutcomeSummary, ApiError> {
    let id = trial.id.clone();
    let open = role == Role::Direktorat;
    let asked = vintage;
    let vintage = crate::analysis::vintage_as_of(state.store.as_ref(), asked).await?;
    // As of a vintage older than the first upload there are no statistics (the store reads
    // `None` as the latest).
    let cells = if asked.is_some() && vintage.is_none() {
        Vec::new()
    } else {
        state.store.outcome_summary(&id, vintage).await?
    };
    let assignments = state.store.assignments(&id, None, None, u32::MAX).await?;
    let mut arm_sizes: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &assignments {
        *arm_sizes.entry(a.arm.as_str()).or_default() += 1;
    }
    let size = |arm: &str| arm_sizes.get(arm).copied().unwrap_or(0);
    let quarters = cells
        .into_iter()
        .map(|c| {
            let shown = open || (c.firms >= MIN_CELL && c.persons >= MIN_CELL);
            let firms = usize::try_from(c.firms).unwrap_or(0);
            ArmQuarter {
                kvartal: format!("{}K{}", c.arstall, c.kvartal),
                // The arm's size is published (`delivery`), so 1 to 4 firms without statistics
                // in the quarter would follow by subtraction: the count is hidden then.
                firms: part_of(firms, size(&c.arm), open),
                sykefravar_prosent: (shown && c.mulige > 0.0).then(|| 100.0 * c.tapte / c.mulige),
                masked: !shown,
                arm: c.arm,
            }
        })
        .collect();
    let compliance = summarize(&state.store.takeup_events(&id, None).await?);
    let mut delivery = Vec::new();
    for arm in &trial.protocol.arms {
        let firms: BTreeSet<Orgnr> = assignments
            .iter()
            .filter(|a| a.arm == arm.id)
            .map(|a| a.orgnr)
            .collect();
        let n = firms.len() as i64;
        let received = firms
            .iter()
            .filter(|o| compliance.get(o).is_some_and(|c| c.received))
            .count() as i64;
        let hours: f64 = firms
            .iter()
            .filter_map(|o| compliance.get(o))
            .map(|c| c.timer)
            .sum();
        // Hours are a sum over the firms that reported them; a firm can report hours without
        // having been AKTIV, so the sum is shown only when both counts reach 5.
        let reporting = firms
            .iter()
            .filter(|o| compliance.get(o).is_some_and(|c| c.timer > 0.0))
            .count() as i64;
        let shown = open || (received >= MIN_CELL && (reporting == 0 || reporting >= MIN_CELL));
        delivery.push(ArmDelivery {
            arm: arm.id.clone(),
            firms: n,
            received: part_of(received as usize, n as usize, open),
            timer: shown.then_some(hours),
            masked: !shown,
        });
    }
    let arm_of: BTreeMap<Orgnr, &str> = assignments
        .iter()
        .map(|a| (a.orgnr, a.arm.as_str()))
        .collect();
    let mut cells: BTreeMap<(String, u32, String), (i64, i64, f64)> = BTreeMap::new();
    for row in state.store.survey_results(&id, None).await? {
        let (Some(arm), Some(value)) = (arm_of.get(&row.orgnr), row.verdi) else {
            continue;
        };
        if crate::takeup::masked(&row) {
            continue;
        }
        let cell = cells
            .entry(((*arm).to_owned(), row.bolge, row.maal.clone()))
            .or_insert((0, 0, 0.0));
        cell.0 += 1;
        cell.1 += i64::from(row.antall_svar);
        cell.2 += value;
    }
    let surveys = cells
        .into_iter()
        .map(|((arm, bolge, maal), (firms, respondents, sum))| {
            let shown = open || firms >= MIN_CELL;
            ArmSurvey {
                bolge,
                firms: part_of(firms as usize, size(&arm), open),
                arm,
                maal,
                respondents: shown.then_some(respondents),
                mean: (shown && firms > 0).then(|| sum / firms as f64),
                masked: !shown,
            }
        })
        .collect();
    Ok(OutcomeSummary {
        vintage,
        quarters,
        delivery,
        surveys,
        survey_min_respondents: SURVEY_MIN_RESPONDENTS,
        protocol_deviations: state.store.deviation_counts(&id).await?,
    })
}
