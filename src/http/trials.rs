//! `/v1/trials`: protocols and their lifecycle, enrollment, randomization, assignments delivered to
//! each fylke, and acknowledgements.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorEnvelope};
use super::middleware::{AuditDetails, AuditedJson, RequestMeta};
use crate::auth::Caller;
use crate::domain::{FylkeCode, Orgnr, Role, Sektor};
use crate::protocol::{Change, Design, Protocol, ProtocolError, TrialState, diff};
use crate::randomization::files::{write_assignment, write_units};
use crate::randomization::plan::{
    Assignment, AssignmentRow, DrawHeader, UnitRow, randomize, verdict,
};
use crate::randomization::{ALGORITHM_ID, arm_probabilities};
use crate::register::{RegisterOptions, detect_format, parse_register};
use crate::storage::{
    AssignmentRecord, DrawRecord, EnrollmentRecord, NewDraw, NewEnrollment, ProtocolVersionInfo,
    StoreError, TrialInfo, UploadReceipt, now,
};

/// Reads a protocol from a JSON or TOML body (by `Content-Type`).
fn protocol_from_body(headers: &HeaderMap, body: &Bytes) -> Result<Protocol, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("the protocol must be UTF-8".into()))?;
    let parsed = match content_type.as_str() {
        "application/json" => Protocol::from_json(text),
        "application/toml" | "text/toml" => Protocol::from_toml(text),
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "send the protocol as `application/json` or `application/toml`".into(),
            ));
        }
    };
    parsed.map_err(|e| match e {
        ProtocolError::Parse(message) => ApiError::Invalid {
            message,
            details: serde_json::json!({}),
        },
        ProtocolError::Invalid(problems) => ApiError::Invalid {
            message: format!("the protocol breaks {} rule(s)", problems.len()),
            details: serde_json::json!({ "problems": problems }),
        },
    })
}

/// Maps a missing trial to a 404 naming it; other store errors as usual.
pub(super) fn not_found(id: &str) -> impl Fn(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::NotFound => {
            ApiError::NotFound(format!("no trial `{id}`; GET /v1/trials lists them"))
        }
        other => other.into(),
    }
}

/// The fylke a caller is limited to: its own for a fylke token, none for the others.
pub(super) fn scope(caller: &Caller) -> Result<Option<FylkeCode>, ApiError> {
    match (caller.role, caller.fylke) {
        (Role::Fylke, Some(f)) => Ok(Some(f)),
        (Role::Fylke, None) => Err(ApiError::Forbidden(
            "this fylke token is bound to no fylke".into(),
        )),
        _ => Ok(None),
    }
}

/// A trial with its draws.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrialView {
    /// The trial.
    #[serde(flatten)]
    pub trial: TrialInfo,
    /// Its draws (each with the seed, published once drawn).
    pub draws: Vec<DrawRecord>,
}

/// Every trial.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrialList {
    /// The trials.
    pub trials: Vec<TrialInfo>,
}

/// Registers a new trial from its protocol (JSON or TOML); it starts as a draft.
#[utoipa::path(
    post, path = "/v1/trials", tag = "trials",
    request_body(content = Object, description = "The protocol (protocols/README.md)", content_type = "application/json"),
    responses(
        (status = 201, body = TrialInfo),
        (status = 409, description = "A trial with this id exists", body = ErrorEnvelope),
        (status = 422, description = "The protocol is invalid; details.problems lists each rule broken", body = ErrorEnvelope),
    )
)]
pub async fn create_trial(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<AuditedJson<TrialInfo>, ApiError> {
    let protocol = protocol_from_body(&headers, &body)?;
    let mut audit = meta.audit_entry(Some(&caller));
    audit.status = 201;
    let created = state
        .store
        .create_trial(&protocol, &caller.name, &audit)
        .await?;
    Ok(AuditedJson(StatusCode::CREATED, created))
}

/// Lists every trial.
#[utoipa::path(get, path = "/v1/trials", tag = "trials", responses((status = 200, body = TrialList)))]
pub async fn list_trials(State(state): State<AppState>) -> Result<Json<TrialList>, ApiError> {
    Ok(Json(TrialList {
        trials: state.store.list_trials().await?,
    }))
}

/// One trial: its state, current protocol and draws.
#[utoipa::path(
    get, path = "/v1/trials/{id}", tag = "trials",
    params(("id" = String, Path, description = "The trial (protocol) id")),
    responses((status = 200, body = TrialView), (status = 404, body = ErrorEnvelope))
)]
pub async fn get_trial(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TrialView>, ApiError> {
    let trial = state.store.get_trial(&id).await.map_err(not_found(&id))?;
    let draws = state.store.draws(&id).await?;
    Ok(Json(TrialView { trial, draws }))
}

/// Changes a trial's protocol: in place while draft, as the next version while registered.
#[utoipa::path(
    put, path = "/v1/trials/{id}/protocol", tag = "trials",
    params(("id" = String, Path, description = "The trial id")),
    request_body(content = Object, description = "The protocol", content_type = "application/json"),
    responses(
        (status = 200, body = TrialInfo),
        (status = 409, description = "The lifecycle does not allow the change", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    )
)]
pub async fn save_protocol(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<AuditedJson<TrialInfo>, ApiError> {
    let protocol = protocol_from_body(&headers, &body)?;
    if protocol.id != id {
        return Err(ApiError::invalid_field(
            "id",
            format!("the protocol's id is `{}`, not `{id}`", protocol.id),
        ));
    }
    let audit = meta.audit_entry(Some(&caller));
    let saved = state
        .store
        .save_protocol(&protocol, &caller.name, &audit)
        .await
        .map_err(not_found(&id))?;
    Ok(AuditedJson(StatusCode::OK, saved))
}

/// One protocol version and what changed from the previous one.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    /// The version.
    #[serde(flatten)]
    pub version: ProtocolVersionInfo,
    /// Changes from the previous version (empty for the first).
    pub changes: Vec<Change>,
}

/// Every version of the trial's protocol.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionList {
    /// Oldest first.
    pub versions: Vec<VersionView>,
}

/// Every version of a trial's protocol, each with its diff from the previous.
#[utoipa::path(
    get, path = "/v1/trials/{id}/versions", tag = "trials",
    params(("id" = String, Path, description = "The trial id")),
    responses((status = 200, body = VersionList), (status = 404, body = ErrorEnvelope))
)]
pub async fn list_versions(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<VersionList>, ApiError> {
    let versions = state
        .store
        .protocol_versions(&id)
        .await
        .map_err(not_found(&id))?;
    let mut out = Vec::with_capacity(versions.len());
    let mut previous: Option<Protocol> = None;
    for version in versions {
        let changes = previous
            .as_ref()
            .map(|p| diff(p, &version.protocol))
            .unwrap_or_default();
        previous = Some(version.protocol.clone());
        out.push(VersionView { version, changes });
    }
    Ok(Json(VersionList { versions: out }))
}

/// A lifecycle step.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    /// The state to move to: `registered`, `enrolling`, `follow_up` or `closed`.
    pub to: TrialState,
}

/// Moves a trial along its lifecycle (draft → registered → enrolling; randomized → enrolling for
/// another committed wave, or → follow_up → closed).
#[utoipa::path(
    post, path = "/v1/trials/{id}/transitions", tag = "trials",
    params(("id" = String, Path, description = "The trial id")),
    request_body = TransitionRequest,
    responses(
        (status = 200, body = TrialInfo),
        (status = 409, description = "Out of order; the message names the allowed next step", body = ErrorEnvelope),
    )
)]
pub async fn transition_trial(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<TransitionRequest>,
) -> Result<AuditedJson<TrialInfo>, ApiError> {
    let audit = meta.audit_entry(Some(&caller));
    let moved = state
        .store
        .transition_trial(&id, request.to, &audit)
        .await
        .map_err(not_found(&id))?;
    Ok(AuditedJson(StatusCode::OK, moved))
}

/// Options of an enrollment upload.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EnrollParams {
    /// Sector for Brønnøysund rows, which carry none.
    #[param(value_type = Option<String>)]
    pub sektor: Option<Sektor>,
}

/// Why firms were excluded, counted by reason, and the first excluded firms.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentSummary {
    /// The upload's receipt.
    pub receipt: UploadReceipt,
    /// Excluded firms by reason code.
    pub excluded_by_reason: BTreeMap<String, usize>,
    /// The first 100 excluded firms with every reason.
    pub excluded: Vec<EnrollmentRecord>,
}

/// Enrolls firms for the open wave from a register upload (CSV, JSON or Brønnøysund underenhet
/// JSON, data-formats §1). All or nothing: any invalid row refuses the upload with every problem.
#[utoipa::path(
    post, path = "/v1/trials/{id}/enrollment", tag = "enrollment",
    params(("id" = String, Path, description = "The trial id"), EnrollParams),
    request_body(content = String, description = "The register file", content_type = "text/csv"),
    responses(
        (status = 201, body = EnrollmentSummary),
        (status = 409, description = "Not enrolling, or firms already enrolled", body = ErrorEnvelope),
        (status = 422, description = "Invalid rows: details.errors (first 100, each with row, field, value, reason) and details.total", body = ErrorEnvelope),
    )
)]
pub async fn enroll(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<EnrollParams>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let trial = state.store.get_trial(&id).await.map_err(not_found(&id))?;
    if trial.state != TrialState::Enrolling {
        return Err(ApiError::Conflict(format!(
            "firms are enrolled only while the trial is enrolling (it is {})",
            trial.state
        )));
    }
    let options = RegisterOptions {
        default_sektor: params.sektor,
    };
    let firms =
        parse_register(&body, detect_format(&body), &options).map_err(|e| ApiError::Invalid {
            message: format!(
                "the register has {} problem(s); nothing was enrolled. First: {}",
                e.total,
                e.errors
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ),
            details: serde_json::json!({ "errors": e.errors, "total": e.total }),
        })?;
    // The baseline is NAV's statistics over the protocol's window (latest vintage) where the
    // register has them, else the dagsverk given in the uploaded file.
    let stats = state
        .store
        .baseline_sums(
            trial.protocol.baseline.from,
            trial.protocol.baseline.to,
            None,
        )
        .await?;
    let wave = trial.current_wave();
    // A cluster is randomized once, as a whole: a firm whose overordnet enhet was drawn in an
    // earlier wave is not randomized again (that would split the cluster across arms).
    let drawn_clusters: BTreeSet<Orgnr> = state
        .store
        .assignments(&id, None, None, u32::MAX)
        .await?
        .into_iter()
        .filter_map(|a| a.klynge)
        .collect();
    let records: Vec<EnrollmentRecord> = firms
        .iter()
        .map(|firm| {
            let mut v = verdict(&trial.protocol, firm, &stats);
            if let Some(k) = v.klynge.filter(|k| drawn_clusters.contains(k)) {
                v.exclusions.push(crate::protocol::Exclusion {
                    code: "klynge_trukket".to_owned(),
                    message: format!(
                        "its overordnet enhet {k} was randomized in an earlier wave; a cluster is \
                         randomized once, as a whole"
                    ),
                });
            }
            EnrollmentRecord {
                orgnr: firm.orgnr,
                wave,
                upload_id: 0,
                navn: firm.navn.clone(),
                fylke: firm.fylke,
                kommunenummer: firm.kommunenummer.clone(),
                naeringskode: firm.naeringskode,
                bransje: v.bransje,
                sektor: firm.sektor,
                antall_ansatte: firm.antall_ansatte,
                overordnet_enhet: firm.overordnet_enhet,
                villig: firm.villig,
                baseline: v
                    .baseline
                    .filter(|b| b.mulige > 0.0)
                    .map(|b| (b.tapte, b.mulige)),
                covariates: firm.covariates.clone(),
                eligible: v.exclusions.is_empty(),
                exclusions: v.exclusions,
                klynge: v.klynge,
            }
        })
        .collect();
    let mut excluded_by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for r in &records {
        for e in &r.exclusions {
            *excluded_by_reason.entry(e.code.clone()).or_default() += 1;
        }
    }
    let excluded: Vec<EnrollmentRecord> = records
        .iter()
        .filter(|r| !r.eligible)
        .take(100)
        .cloned()
        .collect();
    let upload = NewEnrollment {
        wave,
        sha256: hex::encode(Sha256::digest(&body)),
        firms: records,
        created_by: caller.name.clone(),
    };
    let mut audit = meta.audit_entry(Some(&caller));
    audit.status = 201;
    let receipt = state
        .store
        .enroll(&id, &upload, &audit)
        .await
        .map_err(not_found(&id))?;
    Ok(AuditedJson(
        StatusCode::CREATED,
        receipt.map(|receipt| EnrollmentSummary {
            receipt,
            excluded_by_reason,
            excluded,
        }),
    )
    .into_response())
}

/// Enrolled firms.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentList {
    /// Sorted by orgnr.
    pub firms: Vec<EnrollmentRecord>,
}

/// Enrolled firms with their eligibility (a fylke sees only its own firms).
#[utoipa::path(
    get, path = "/v1/trials/{id}/enrollment", tag = "enrollment",
    params(("id" = String, Path, description = "The trial id")),
    responses((status = 200, body = EnrollmentList), (status = 404, body = ErrorEnvelope))
)]
pub async fn list_enrollment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let fylke = scope(&caller)?;
    state.store.get_trial(&id).await.map_err(not_found(&id))?;
    let firms = state.store.enrollments(&id, fylke, None).await?;
    let details = AuditDetails {
        trial_id: Some(id),
        object_ids: firms.iter().map(|f| format!("orgnr:{}", f.orgnr)).collect(),
    };
    let mut response = Json(EnrollmentList { firms }).into_response();
    response.extensions_mut().insert(details);
    Ok(response)
}

/// The seed for the open wave.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RandomizeRequest {
    /// The wave's seed; its SHA-256 must be the protocol's commitment for the wave.
    pub seed: String,
}

/// What a draw did.
#[derive(Debug, Serialize, ToSchema)]
pub struct DrawSummary {
    /// The draw.
    pub draw: DrawRecord,
    /// Firms per arm.
    pub firms_per_arm: BTreeMap<String, usize>,
    /// Randomized units (firms or clusters) per arm.
    pub units_per_arm: BTreeMap<String, usize>,
    /// Strata.
    pub strata: usize,
}

/// Randomizes the open wave's eligible firms with the committed seed; the trial becomes
/// `randomized` and the assignments are final.
#[utoipa::path(
    post, path = "/v1/trials/{id}/randomize", tag = "randomization",
    params(("id" = String, Path, description = "The trial id")),
    request_body = RandomizeRequest,
    responses(
        (status = 201, body = DrawSummary),
        (status = 409, description = "Not enrolling, or nothing to randomize", body = ErrorEnvelope),
        (status = 422, description = "The seed does not match the commitment", body = ErrorEnvelope),
    )
)]
pub async fn randomize_wave(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<RandomizeRequest>,
) -> Result<AuditedJson<DrawSummary>, ApiError> {
    let trial = state.store.get_trial(&id).await.map_err(not_found(&id))?;
    if trial.state != TrialState::Enrolling {
        return Err(ApiError::Conflict(format!(
            "a wave is drawn while the trial is enrolling (it is {})",
            trial.state
        )));
    }
    let wave = trial.current_wave();
    if let Err(problem) = crate::randomization::check_seed(&request.seed) {
        return Err(ApiError::invalid_field("seed", problem));
    }
    if !trial.protocol.seed_matches(wave, &request.seed) {
        return Err(ApiError::invalid_field(
            "seed",
            format!("the seed's SHA-256 is not the protocol's commitment for wave {wave}"),
        ));
    }
    let enrolled = state.store.enrollments(&id, None, Some(wave)).await?;
    let eligible: Vec<&EnrollmentRecord> = enrolled.iter().filter(|e| e.eligible).collect();
    if eligible.is_empty() {
        return Err(ApiError::Conflict(format!(
            "wave {wave} has no eligible firms; enroll firms first"
        )));
    }
    let units: Vec<UnitRow> = eligible.iter().map(|e| e.unit_row()).collect();
    let units_sha256 = hex::encode(Sha256::digest(write_units(&units).as_bytes()));
    let drawn_at = now();
    let assignment = randomize(
        &trial.protocol,
        &trial.content_hash,
        wave,
        &request.seed,
        &units,
        Some(drawn_at),
    )
    .map_err(|e| ApiError::Conflict(e.to_string()))?;
    let probabilities = arm_probabilities(
        &trial
            .protocol
            .arms
            .iter()
            .map(|a| a.ratio)
            .collect::<Vec<_>>(),
    );
    let fylke_of: BTreeMap<Orgnr, FylkeCode> =
        eligible.iter().map(|e| (e.orgnr, e.fylke)).collect();
    let mut firms_per_arm: BTreeMap<String, usize> = BTreeMap::new();
    let mut units_per_arm: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut records = Vec::with_capacity(assignment.rows.len());
    for row in &assignment.rows {
        *firms_per_arm.entry(row.arm.clone()).or_default() += 1;
        units_per_arm.entry(row.arm.clone()).or_default().insert(
            row.klynge
                .map_or_else(|| row.orgnr.to_string(), |k| format!("K{k}")),
        );
        let Some(fylke) = fylke_of.get(&row.orgnr).copied() else {
            return Err(ApiError::Internal(format!(
                "assigned firm {} was not enrolled",
                row.orgnr
            )));
        };
        records.push(AssignmentRecord {
            orgnr: row.orgnr,
            wave,
            fylke,
            arm: row.arm.clone(),
            stratum: row.stratum.clone(),
            klynge: row.klynge,
            sannsynlighet: row.sannsynlighet,
            probabilities: probabilities.clone(),
        });
    }
    let strata = assignment
        .rows
        .iter()
        .map(|r| r.stratum.as_str())
        .collect::<BTreeSet<_>>()
        .len();
    let draw = DrawRecord {
        wave,
        protocol_version: trial.version,
        protocol_hash: trial.content_hash.clone(),
        algorithm: ALGORITHM_ID.to_owned(),
        seed: request.seed,
        baseline_cuts: assignment.baseline_cuts.clone(),
        units_sha256,
        drawn_at,
        drawn_by: caller.name.clone(),
    };
    let mut audit = meta.audit_entry(Some(&caller));
    audit.status = 201;
    let recorded = state
        .store
        .record_draw(
            &id,
            &NewDraw {
                draw,
                assignments: records,
            },
            &audit,
        )
        .await
        .map_err(not_found(&id))?;
    Ok(AuditedJson(
        StatusCode::CREATED,
        recorded.map(|draw| DrawSummary {
            draw,
            firms_per_arm,
            units_per_arm: units_per_arm
                .into_iter()
                .map(|(arm, units)| (arm, units.len()))
                .collect(),
            strata,
        }),
    ))
}

/// Page and format of an assignment list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AssignmentParams {
    /// `json` (default) or `csv`.
    pub format: Option<String>,
    /// Only firms after this orgnr (the `next_after` of the previous page).
    #[param(value_type = Option<String>)]
    pub after: Option<Orgnr>,
    /// Page size, 1-10000 (default 1000).
    pub limit: Option<u32>,
}

/// One firm's assignment as a fylke receives it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveredAssignment {
    /// The firm.
    #[schema(value_type = String)]
    pub orgnr: Orgnr,
    /// Its fylke.
    #[schema(value_type = String)]
    pub fylke: FylkeCode,
    /// The arm's id.
    pub arm: String,
    /// The arm's name.
    pub arm_navn: String,
    /// Whether NAV is to contact the firm (false for control firms in design A: not to be
    /// contacted at all).
    pub kontakt: bool,
    /// What the fylke is to do.
    pub instruks: String,
    /// The stratum.
    pub stratum: String,
    /// The cluster.
    #[schema(value_type = Option<String>)]
    pub klynge: Option<Orgnr>,
    /// The wave.
    pub bolge: u32,
    /// The probability of the firm's arm.
    pub sannsynlighet: f64,
    /// When it was drawn.
    pub trukket: Option<chrono::DateTime<chrono::Utc>>,
}

/// A page of assignments.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssignmentPage {
    /// The trial's protocol hash.
    pub protocol_hash: String,
    /// Sorted by orgnr.
    pub assignments: Vec<DeliveredAssignment>,
    /// Pass as `after` for the next page; absent on the last.
    #[schema(value_type = Option<String>)]
    pub next_after: Option<Orgnr>,
}

/// The assignments of the trial's firms, with each arm's instructions. A fylke gets only its own
/// firms; every read is audited with the firms returned. CSV with `format=csv` (data-formats §5
/// columns, then `arm_navn, kontakt, instruks`); the next page's cursor is in `x-next-after`.
#[utoipa::path(
    get, path = "/v1/trials/{id}/assignments", tag = "randomization",
    params(("id" = String, Path, description = "The trial id"), AssignmentParams),
    responses(
        (status = 200, body = AssignmentPage),
        (status = 404, body = ErrorEnvelope),
    )
)]
pub async fn list_assignments(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<AssignmentParams>,
) -> Result<Response, ApiError> {
    let fylke = scope(&caller)?;
    let limit = params.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            "limit must be between 1 and 10000",
        ));
    }
    let csv = match params.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::invalid_field(
                "format",
                format!("`{other}` is not a format; use json or csv"),
            ));
        }
    };
    let trial = state.store.get_trial(&id).await.map_err(not_found(&id))?;
    let drawn_at: BTreeMap<u32, chrono::DateTime<chrono::Utc>> = state
        .store
        .draws(&id)
        .await?
        .into_iter()
        .map(|d| (d.wave, d.drawn_at))
        .collect();
    let rows = state
        .store
        .assignments(&id, fylke, params.after, limit)
        .await?;
    let next_after = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.orgnr))
        .flatten();
    let design_a = trial.protocol.design == Design::A;
    let delivered: Vec<DeliveredAssignment> = rows
        .into_iter()
        .map(|r| {
            let arm = trial.protocol.arm(&r.arm);
            let control = arm.is_some_and(|a| a.control);
            DeliveredAssignment {
                orgnr: r.orgnr,
                fylke: r.fylke,
                arm_navn: arm.map(|a| a.name.clone()).unwrap_or_default(),
                kontakt: !(control && design_a),
                instruks: arm.map(|a| a.instructions.clone()).unwrap_or_default(),
                arm: r.arm,
                stratum: r.stratum,
                klynge: r.klynge,
                bolge: r.wave,
                sannsynlighet: r.sannsynlighet,
                trukket: drawn_at.get(&r.wave).copied(),
            }
        })
        .collect();
    let details = AuditDetails {
        trial_id: Some(id),
        object_ids: delivered
            .iter()
            .map(|a| format!("orgnr:{}", a.orgnr))
            .collect(),
    };
    let mut response = if csv {
        let out =
            fylke_csv(&delivered).map_err(|e| ApiError::Internal(format!("writing CSV: {e}")))?;
        let mut response =
            ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response();
        if let Some(next) = next_after
            && let Ok(value) = HeaderValue::from_str(&next.to_string())
        {
            response.headers_mut().insert("x-next-after", value);
        }
        response
    } else {
        Json(AssignmentPage {
            protocol_hash: trial.content_hash,
            assignments: delivered,
            next_after,
        })
        .into_response()
    };
    response.extensions_mut().insert(details);
    Ok(response)
}

/// The assignment CSV a fylke receives: data-formats §5 columns, then `arm_navn, kontakt,
/// instruks`, quoted where needed.
fn fylke_csv(delivered: &[DeliveredAssignment]) -> Result<Vec<u8>, String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let header = [
        "orgnr",
        "arm",
        "stratum",
        "klynge",
        "bolge",
        "sannsynlighet",
        "trukket",
        "arm_navn",
        "kontakt",
        "instruks",
    ];
    writer.write_record(header).map_err(|e| e.to_string())?;
    for a in delivered {
        writer
            .write_record([
                a.orgnr.to_string(),
                a.arm.clone(),
                a.stratum.clone(),
                a.klynge.map(|k| k.to_string()).unwrap_or_default(),
                a.bolge.to_string(),
                a.sannsynlighet.to_string(),
                a.trukket
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                    .unwrap_or_default(),
                a.arm_navn.clone(),
                a.kontakt.to_string(),
                a.instruks.clone(),
            ])
            .map_err(|e| e.to_string())?;
    }
    writer.into_inner().map_err(|e| e.to_string())
}

/// Which wave a fylke acknowledges.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeRequest {
    /// The wave whose assignments were received.
    pub wave: u32,
}

/// A fylke acknowledges that it received its firms' assignments of a wave.
#[utoipa::path(
    post, path = "/v1/trials/{id}/acknowledgements", tag = "randomization",
    params(("id" = String, Path, description = "The trial id")),
    request_body = AcknowledgeRequest,
    responses(
        (status = 201, body = crate::storage::Acknowledgement),
        (status = 409, description = "Nothing to acknowledge, or already acknowledged", body = ErrorEnvelope),
    )
)]
pub async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<AcknowledgeRequest>,
) -> Result<AuditedJson<crate::storage::Acknowledgement>, ApiError> {
    let Some(fylke) = scope(&caller)? else {
        return Err(ApiError::Forbidden(
            "only a fylke acknowledges its assignments".into(),
        ));
    };
    let mut audit = meta.audit_entry(Some(&caller));
    audit.status = 201;
    let ack = state
        .store
        .acknowledge(&id, request.wave, fylke, &caller.name, &audit)
        .await
        .map_err(not_found(&id))?;
    Ok(AuditedJson(StatusCode::CREATED, ack))
}

/// Acknowledgements so far.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcknowledgementList {
    /// By wave and fylke.
    pub acknowledgements: Vec<crate::storage::Acknowledgement>,
}

/// Which fylker have acknowledged which waves (a fylke sees its own).
#[utoipa::path(
    get, path = "/v1/trials/{id}/acknowledgements", tag = "randomization",
    params(("id" = String, Path, description = "The trial id")),
    responses((status = 200, body = AcknowledgementList))
)]
pub async fn list_acknowledgements(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AcknowledgementList>, ApiError> {
    let fylke = scope(&caller)?;
    state.store.get_trial(&id).await.map_err(not_found(&id))?;
    let acknowledgements = state
        .store
        .acknowledgements(&id)
        .await?
        .into_iter()
        .filter(|a| fylke.is_none_or(|f| f == a.fylke))
        .collect();
    Ok(Json(AcknowledgementList { acknowledgements }))
}

/// CONSORT counts, each hidden (`null`) outside the directorate when below 5 firms.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsortView {
    /// Firms assessed for eligibility.
    pub assessed: Option<usize>,
    /// Firms found eligible.
    pub eligible: Option<usize>,
    /// Excluded firms per reason code (a firm with several reasons counts under each).
    pub excluded_by_reason: BTreeMap<String, Option<usize>>,
    /// Randomized firms per arm.
    pub randomized_per_arm: BTreeMap<String, Option<usize>>,
    /// Eligible firms not (yet) randomized.
    pub not_randomized: Option<usize>,
}

impl ConsortView {
    fn masked(c: crate::balance::Consort, min: usize) -> Self {
        let keep = |n: usize| (n >= min).then_some(n);
        ConsortView {
            assessed: keep(c.assessed),
            eligible: keep(c.eligible),
            excluded_by_reason: c
                .excluded_by_reason
                .into_iter()
                .map(|(k, n)| (k, keep(n)))
                .collect(),
            randomized_per_arm: c
                .randomized_per_arm
                .into_iter()
                .map(|(k, n)| (k, keep(n)))
                .collect(),
            not_randomized: keep(c.not_randomized),
        }
    }
}

/// Balance and flow of a trial's randomized firms.
#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceView {
    /// CONSORT counts: assessed, eligible, excluded by reason, randomized per arm.
    pub consort: ConsortView,
    /// Covariates by arm (means, SDs, standardized differences), Hotelling's omnibus test per arm
    /// against control, and counts per stratum and arm. Outside the directorate every cell based
    /// on fewer than 5 firms is hidden (`null`).
    pub table: crate::balance::MaskedBalanceTable,
}

/// Cells below this many firms are hidden from every role but the directorate (NAV's rule).
const MIN_CELL: usize = 5;

/// The balance table and CONSORT counts of the firms randomized so far.
#[utoipa::path(
    get, path = "/v1/trials/{id}/balance", tag = "randomization",
    params(("id" = String, Path, description = "The trial id")),
    responses(
        (status = 200, body = BalanceView),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "Nothing randomized yet", body = ErrorEnvelope),
    )
)]
pub async fn get_balance(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<BalanceView>, ApiError> {
    let trial = state.store.get_trial(&id).await.map_err(not_found(&id))?;
    let enrolled = state.store.enrollments(&id, None, None).await?;
    let assigned = state.store.assignments(&id, None, None, u32::MAX).await?;
    if assigned.is_empty() {
        return Err(ApiError::Conflict(
            "no firm has been randomized yet; the balance table follows the first draw".into(),
        ));
    }
    let arms: Vec<String> = trial.protocol.arms.iter().map(|a| a.id.clone()).collect();
    let control_index = trial
        .protocol
        .arms
        .iter()
        .position(|a| a.control)
        .unwrap_or(0);

    let mut excluded_by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for firm in enrolled.iter().filter(|f| !f.eligible) {
        let codes: BTreeSet<&str> = firm.exclusions.iter().map(|e| e.code.as_str()).collect();
        for code in codes {
            *excluded_by_reason.entry(code.to_owned()).or_default() += 1;
        }
    }
    let mut randomized_per_arm: BTreeMap<String, usize> =
        arms.iter().map(|a| (a.clone(), 0)).collect();
    for a in &assigned {
        *randomized_per_arm.entry(a.arm.clone()).or_default() += 1;
    }
    let eligible = enrolled.iter().filter(|f| f.eligible).count();
    let consort = crate::balance::Consort {
        assessed: enrolled.len(),
        eligible,
        excluded_by_reason,
        randomized_per_arm,
        not_randomized: eligible.saturating_sub(assigned.len()),
    };

    let by_orgnr: BTreeMap<Orgnr, &EnrollmentRecord> =
        enrolled.iter().map(|e| (e.orgnr, e)).collect();
    let extra: BTreeSet<&String> = enrolled.iter().flat_map(|e| e.covariates.keys()).collect();
    let mut covariates = vec![
        "antall_ansatte".to_owned(),
        "baseline_prosent".to_owned(),
        "baseline_tapte_dagsverk".to_owned(),
    ];
    covariates.extend(extra.iter().map(|k| (*k).clone()));
    let units: Vec<crate::balance::BalanceUnit> = assigned
        .iter()
        .filter_map(|a| {
            let firm = by_orgnr.get(&a.orgnr)?;
            let arm = arms.iter().position(|x| *x == a.arm)?;
            let mut values = vec![
                Some(f64::from(firm.antall_ansatte)),
                firm.baseline.map(|(t, m)| 100.0 * t / m),
                firm.baseline.map(|(t, _)| t),
            ];
            values.extend(extra.iter().map(|k| firm.covariates.get(*k).copied()));
            Some(crate::balance::BalanceUnit {
                arm,
                stratum: a.stratum.clone(),
                values,
            })
        })
        .collect();
    let table = crate::balance::balance_table(&crate::balance::BalanceInput {
        arms: &arms,
        control_index,
        units: &units,
        covariates: &covariates,
    })
    .map_err(|e| ApiError::Conflict(format!("no balance table: {e}")))?;
    let min = if caller.role == Role::Direktorat {
        0
    } else {
        MIN_CELL
    };
    Ok(Json(BalanceView {
        consort: ConsortView::masked(consort, min),
        table: crate::balance::mask_small_cells(&table, min),
    }))
}

/// Which file of a draw.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DrawFile {
    /// The trial id.
    pub id: String,
    /// The wave.
    pub wave: u32,
}

/// Rebuilds a wave's canonical unit list from its enrollment, in `units.csv` form.
async fn wave_units(state: &AppState, id: &str, wave: u32) -> Result<Vec<UnitRow>, ApiError> {
    Ok(state
        .store
        .enrollments(id, None, Some(wave))
        .await?
        .into_iter()
        .filter(|e| e.eligible)
        .map(|e| e.unit_row())
        .collect())
}

async fn draw_of(state: &AppState, id: &str, wave: u32) -> Result<DrawRecord, ApiError> {
    state.store.get_trial(id).await.map_err(not_found(id))?;
    state
        .store
        .draws(id)
        .await?
        .into_iter()
        .find(|d| d.wave == wave)
        .ok_or_else(|| ApiError::NotFound(format!("trial `{id}` has no drawn wave {wave}")))
}

fn csv_file(name: &str, body: String, details: AuditDetails) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response();
    response.extensions_mut().insert(details);
    response
}

/// The canonical unit list a wave was drawn from (`protocols/RANDOMIZATION.md` §6): with the
/// assignment file, the seed and the protocol, anyone can recompute the draw
/// (`notebooks/randomization_reference.py`). Its SHA-256 is the draw's `units_sha256`.
#[utoipa::path(
    get, path = "/v1/trials/{id}/draws/{wave}/units.csv", tag = "randomization",
    params(DrawFile),
    responses(
        (status = 200, description = "units.csv", content_type = "text/csv"),
        (status = 404, body = ErrorEnvelope),
    )
)]
pub async fn get_draw_units(
    State(state): State<AppState>,
    ApiPath(file): ApiPath<DrawFile>,
) -> Result<Response, ApiError> {
    let draw = draw_of(&state, &file.id, file.wave).await?;
    let units = wave_units(&state, &file.id, file.wave).await?;
    let text = write_units(&units);
    if hex::encode(Sha256::digest(text.as_bytes())) != draw.units_sha256 {
        return Err(ApiError::Internal(format!(
            "the unit list of {} wave {} no longer hashes to the draw's units_sha256",
            file.id, file.wave
        )));
    }
    let details = AuditDetails {
        trial_id: Some(file.id.clone()),
        object_ids: units.iter().map(|u| format!("orgnr:{}", u.orgnr)).collect(),
    };
    Ok(csv_file("units.csv", text, details))
}

/// A wave's assignment in the published format (`data-formats.md` §5, RANDOMIZATION.md §6), with
/// the protocol hash, algorithm and seed in its header lines.
#[utoipa::path(
    get, path = "/v1/trials/{id}/draws/{wave}/assignment.csv", tag = "randomization",
    params(DrawFile),
    responses(
        (status = 200, description = "assignment.csv", content_type = "text/csv"),
        (status = 404, body = ErrorEnvelope),
    )
)]
pub async fn get_draw_assignment(
    State(state): State<AppState>,
    ApiPath(file): ApiPath<DrawFile>,
) -> Result<Response, ApiError> {
    let draw = draw_of(&state, &file.id, file.wave).await?;
    let trial = state
        .store
        .get_trial(&file.id)
        .await
        .map_err(not_found(&file.id))?;
    let rows: Vec<AssignmentRow> = state
        .store
        .assignments(&file.id, None, None, u32::MAX)
        .await?
        .into_iter()
        .filter(|a| a.wave == file.wave)
        .map(|a| AssignmentRow {
            orgnr: a.orgnr,
            arm: a.arm,
            stratum: a.stratum,
            klynge: a.klynge,
            bolge: a.wave,
            sannsynlighet: a.sannsynlighet,
            trukket: Some(draw.drawn_at),
        })
        .collect();
    let details = AuditDetails {
        trial_id: Some(file.id.clone()),
        object_ids: rows.iter().map(|r| format!("orgnr:{}", r.orgnr)).collect(),
    };
    let assignment = Assignment {
        header: DrawHeader {
            protocol_id: trial.id,
            protocol_hash: draw.protocol_hash,
            algorithm: draw.algorithm,
            wave: draw.wave,
            seed: draw.seed,
        },
        rows,
        baseline_cuts: draw.baseline_cuts,
    };
    Ok(csv_file(
        "assignment.csv",
        write_assignment(&assignment),
        details,
    ))
}
