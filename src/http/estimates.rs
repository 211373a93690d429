//! `GET /v1/trials/{id}/estimates`: the effect estimates of protocols/ANALYSIS.md over the trial's
//! randomized firms and the statistics register, as of a vintage; confirmatory estimates (the
//! protocol's analysis plan) are marked and Holm-adjusted, the rest are exploratory. They come from
//! the analysis run of the query's key (src/http/analyses.rs): served when it is done, started
//! (202, with its `Location`) when there is none.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::analyses::{AnalysisView, accepted, control_of, start, stored_report};
use super::error::{ApiError, ApiPath, ApiQuery, ErrorEnvelope};
use super::examples::{example, no_trial};
use super::middleware::RequestMeta;
use super::trials::not_found;
use crate::analysis::{self, AnalysisRequest};
use crate::auth::Caller;
use crate::disclosure::MaskedCount;
use crate::domain::Role;
use crate::estimate::{Estimate, Skipped, WaldTest};
use crate::json::Json;
use crate::storage::TrialInfo;
use crate::storage::analyses::AnalysisRecord;
use crate::storage::jobs::JobState;

/// The estimates of one trial.
#[derive(Debug, Serialize, ToSchema)]
pub struct EstimatesResponse {
    /// The trial.
    pub trial: String,
    /// The analysis run these estimates are the result of (`GET /v1/trials/{id}/analyses/{run}`).
    pub analysis: i64,
    /// SHA-256 of the run's stored result (its canonical JSON).
    pub result_sha256: String,
    /// The protocol version's hash.
    pub protocol_hash: String,
    /// The statistics vintage used (the latest upload at or before the one asked for).
    pub vintage: Option<i64>,
    /// The randomization quarter (relative time 0).
    pub randomized_at: String,
    /// Quarters before randomization in the analysis.
    pub pre_quarters: u32,
    /// Quarters from randomization on.
    pub post_quarters: u32,
    /// Every estimate with the fields of docs/statistics.md §A.4. Outside the directorate `n_units`,
    /// `n_obs`, `n_clusters` and every count under `dropped` is an integer or `"<5"`.
    #[schema(value_type = Vec<Object>)]
    pub estimates: Vec<Estimate>,
    /// Joint tests (the event study's pre-trend test).
    #[schema(value_type = Vec<Object>)]
    pub tests: Vec<WaldTest>,
    /// Estimates not computed (or withheld), with the reason (numbers 1 to 4 in it read `<5`
    /// outside the directorate).
    #[schema(value_type = Vec<Object>)]
    pub skipped: Vec<Skipped>,
    /// Firms without post-period data, by arm. Outside the directorate a count of 1 to 4 is
    /// `"<5"`, and a further count of the arm from which it could be worked out (`assigned =
    /// with_post_data + no_post_data`) is `"masked"` (complementary suppression).
    #[schema(value_type = Vec<AttritionRow>)]
    pub attrition: Vec<serde_json::Value>,
    /// `cace_iv` (when the trial has take-up records): per arm, weighting and model, the first
    /// stage, take-up by arm, the reduced form and the Anderson-Rubin set (ANALYSIS.md §8).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub iv: Vec<crate::estimate::IvDetail>,
    /// Randomization inference (with `ri_draws`): per arm, weighting and statistic, the p-value,
    /// its Monte Carlo SE and the interval by inversion (ANALYSIS.md §9).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub ri: Vec<crate::estimate::RiRow>,
    /// Lee and Manski attrition bounds per arm with attrition (ANALYSIS.md §10).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub bounds: Vec<crate::estimate::bounds::BoundsRow>,
}

/// Attrition of one arm. Outside the directorate every count of 1 to 4 is `"<5"`, and a count
/// from which one could be worked out is `"masked"`.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the serialized [`Attrition`]
pub struct AttritionRow {
    /// The arm.
    arm: String,
    /// Firms assigned.
    assigned: MaskedCount,
    /// Firms with post-window data.
    with_post_data: MaskedCount,
    /// Firms without (dropped from every estimate).
    no_post_data: MaskedCount,
    /// Firms without pre-window data (kept, with a missing-baseline indicator).
    no_pre_data: MaskedCount,
}

/// Effect estimates for every arm against control: ITT (difference in means, ANCOVA, Lin) and
/// TWFE difference in differences with its event study (protocols/ANALYSIS.md), from the analysis
/// run of these options on the latest statistics vintage (or the one asked for). When that run is
/// not done, the answer is 202 with its `Location` (a run is started if there is none); poll it,
/// or this route, until it is, or send `Prefer: wait=N` to wait up to N seconds (at most 60) for
/// it. Outside the directorate, contrasts with an arm of fewer than 5
/// firms are withheld.
#[utoipa::path(
    get, path = "/v1/trials/{id}/estimates", tag = "estimates",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer"), AnalysisRequest,
        ("Prefer" = Option<String>, Header, description = "`wait=N`: wait up to N seconds (at most 60) for the run to be done", example = "wait=30")),
    responses(
        (status = 200, description = "The estimates, joint tests, skipped estimates and attrition (here as a researcher sees them)",
            body = EstimatesResponse, example = json!(example("estimates"))),
        (status = 202, description = "The analysis run of this query is queued or computing (started now if there was none); `Location` names it",
            body = AnalysisView, example = json!(example("analysis_accepted"))),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
        (status = 409, description = "Nothing to estimate: no randomized firms, no statistics in the window, or no control arm", body = ErrorEnvelope),
        (status = 422, description = "A query parameter is invalid (an unknown estimator or weighting)", body = ErrorEnvelope)
    )
)]
pub async fn get_estimates(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<AnalysisRequest>,
) -> Result<Response, ApiError> {
    let trial = state.store.get_trial(&id).await.map_err(not_found(&id))?;
    let key = analysis::key(state.store.as_ref(), &trial, &params).await?;
    let deadline = prefer_wait(&headers).map(|w| Instant::now() + w);
    let mut started = None;
    loop {
        let run = match state.store.find_analysis(&id, &key.hash()).await? {
            Some(run) => run,
            None => {
                let created = start(&state, &trial, &params, &caller, &meta).await?;
                let run = created.value.0.clone();
                started = Some(created.map(|_| ()));
                run
            }
        };
        let job_state = run.job.as_ref().map(|j| j.state);
        if run.result_sha256.is_some() {
            return served(&state, &trial, &caller, run).await;
        }
        if let Some(error) = run.job.as_ref().and_then(|j| j.error.as_ref()) {
            // Data that cannot be analysed fail the same way every time: say why.
            if job_state == Some(JobState::Failed) && error.code == "conflict" {
                return Err(ApiError::Conflict(error.message.clone()));
            }
        }
        if !matches!(job_state, Some(JobState::Queued | JobState::Running)) && started.is_none() {
            // Cancelled, or failed by a fault: run it again.
            let created = start(&state, &trial, &params, &caller, &meta).await?;
            started = Some(created.map(|_| ()));
            continue;
        }
        if deadline.is_some_and(|d| Instant::now() < d) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let view = AnalysisView::of(&state, &run)?;
        return Ok(accepted(view, started));
    }
}

/// How long `Prefer: wait=N` (RFC 7240) asks the route to wait for the run, at most a minute.
fn prefer_wait(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| p.trim().strip_prefix("wait="))
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .map(|n| Duration::from_secs(n.min(60)))
        .next()
}

/// The estimates of a done run as the caller may read them.
async fn served(
    state: &AppState,
    trial: &TrialInfo,
    caller: &Caller,
    run: AnalysisRecord,
) -> Result<Response, ApiError> {
    let report = stored_report(state, &run).await?;
    let control = control_of(state, trial, run.protocol_version).await?;
    let view = analysis::view(report, caller.role == Role::Direktorat, &control);
    let follow = &trial.protocol.follow_up;
    Ok(Json(EstimatesResponse {
        trial: trial.id.clone(),
        analysis: run.id,
        result_sha256: run.result_sha256.unwrap_or_default(),
        protocol_hash: run.protocol_hash,
        vintage: run.vintage,
        randomized_at: follow.randomization_quarter.to_string(),
        pre_quarters: follow.pre_quarters,
        post_quarters: follow.post_quarters,
        estimates: view.estimates,
        tests: view.tests,
        skipped: view.skipped,
        attrition: view.attrition,
        iv: view.iv,
        ri: view.ri,
        bounds: view.bounds,
    })
    .into_response())
}
