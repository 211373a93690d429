//! `/v1/trials/{id}/randomize` and the draw files: drawing a wave and publishing what anyone
//! needs to recompute it.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::domain::{FylkeCode, Orgnr};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiJson, ApiPath, ErrorEnvelope};
use crate::http::examples::{ASSIGNMENT_CSV, UNITS_CSV, error, example, no_trial};
use crate::http::middleware::{AuditDetails, AuditedJson, RequestMeta};
use crate::protocol::TrialState;
use crate::randomization::files::{write_assignment, write_units};
use crate::randomization::plan::{Assignment, AssignmentRow, DrawHeader, UnitRow, randomize};
use crate::randomization::{ALGORITHM_ID, arm_probabilities};
use crate::storage::{AssignmentRecord, DrawRecord, EnrollmentRecord, NewDraw, now};

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
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer")),
    request_body(content = RandomizeRequest, description = "The seed committed to for the open wave",
        example = json!(example("randomize_request"))),
    responses(
        (status = 201, description = "Drawn: the draw and the counts per arm", body = DrawSummary,
            example = json!(example("draw_summary"))),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
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
    let trial = state
        .store
        .get_trial(&id)
        .await
        .map_err(super::not_found(&id))?;
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
        .map_err(super::not_found(&id))?;
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

/// Which file of a draw.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DrawFile {
    /// The trial id.
    #[param(example = "nals-arbeidsformer")]
    pub id: String,
    /// The wave.
    #[param(example = 1)]
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
    state
        .store
        .get_trial(id)
        .await
        .map_err(super::not_found(id))?;
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
        (status = 200, description = "units.csv", content_type = "text/csv", example = json!(UNITS_CSV)),
        (status = 404, description = "No trial has this id, or it has no drawn wave of this number", body = ErrorEnvelope,
            example = json!(error("not_found", "trial `nals-arbeidsformer` has no drawn wave 2"))),
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

/// A wave's assignment in the published format (`docs/data-formats.md` §5, RANDOMIZATION.md §6), with
/// the protocol hash, algorithm and seed in its header lines.
#[utoipa::path(
    get, path = "/v1/trials/{id}/draws/{wave}/assignment.csv", tag = "randomization",
    params(DrawFile),
    responses(
        (status = 200, description = "assignment.csv", content_type = "text/csv", example = json!(ASSIGNMENT_CSV)),
        (status = 404, description = "No trial has this id, or it has no drawn wave of this number", body = ErrorEnvelope,
            example = json!(error("not_found", "trial `nals-arbeidsformer` has no drawn wave 2"))),
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
        .map_err(super::not_found(&file.id))?;
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
