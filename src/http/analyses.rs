//! `/v1/trials/{id}/analyses`: analysis runs, the trial's estimates computed once under a key
//! (protocol version and hash, statistics vintage, draws, options, program version) as a job, and
//! stored with the SHA-256 of their canonical JSON (src/analysis).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorEnvelope};
use super::examples::{example, no_trial};
use super::middleware::{AuditedJson, RequestMeta};
use super::trials::not_found;
use crate::analysis::{self, AnalysisError, AnalysisOptions, AnalysisRequest, ReportView};
use crate::auth::Caller;
use crate::domain::Role;
use crate::estimate::Report;
use crate::json::Json;
use crate::storage::analyses::{AnalysisRecord, RunOrigin};
use crate::storage::jobs::{JobProgress, JobState};
use crate::storage::{Audited, StoreError, TrialInfo};

/// An analysis run: its key, where its job is, and (read one at a time, once done) its result.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalysisView {
    /// The run's id.
    pub id: i64,
    /// The trial.
    pub trial: String,
    /// Where the run is: `done` once its result is stored, else its job's state.
    pub state: JobState,
    /// The job computing it (`GET /v1/jobs/{job}`, `DELETE` to cancel).
    pub job: Option<i64>,
    /// The job's progress.
    pub progress: Option<JobProgress>,
    /// Why the job failed.
    #[schema(value_type = Option<Object>)]
    pub error: Option<crate::storage::jobs::JobError>,
    /// Where to read the run.
    pub location: String,
    /// The protocol version analysed.
    pub protocol_version: u32,
    /// Its hash.
    pub protocol_hash: String,
    /// The statistics vintage.
    pub vintage: Option<i64>,
    /// The canonical options.
    pub options: AnalysisOptions,
    /// The program version.
    pub program_version: String,
    /// SHA-256 of the run's canonical key.
    pub run_key: String,
    /// When the run was created.
    pub created_at: DateTime<Utc>,
    /// By whom.
    pub created_by: String,
    /// When its result was stored.
    pub completed_at: Option<DateTime<Utc>>,
    /// SHA-256 of the stored result's canonical JSON.
    pub result_sha256: Option<String>,
    /// The result as the caller may read it (`GET /v1/trials/{id}/analyses/{run}` once done):
    /// `estimates`, `tests`, `skipped`, `attrition`, with the masking of `GET …/estimates`.
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<ReportView>,
}

impl AnalysisView {
    /// The view of a stored run, with the live progress of a job this instance runs.
    pub(super) fn of(state: &AppState, run: &AnalysisRecord) -> Result<Self, ApiError> {
        let options: AnalysisOptions = serde_json::from_str(&run.options)
            .map_err(|e| ApiError::Internal(format!("run {}: stored options: {e}", run.id)))?;
        let job = run.job.as_ref();
        let live = job
            .filter(|j| j.state == JobState::Running)
            .and_then(|j| state.jobs.local_progress(j.id));
        Ok(AnalysisView {
            id: run.id,
            trial: run.trial.clone(),
            state: match (&run.result_sha256, job.map(|j| j.state)) {
                (Some(_), _) => JobState::Done,
                // The run's row was read just before its job finished (two reads, no
                // transaction): it is being stored.
                (None, Some(JobState::Done)) => JobState::Running,
                (None, state) => state.unwrap_or(JobState::Queued),
            },
            job: job.map(|j| j.id),
            progress: match live {
                Some(s) => Some(JobProgress::from(&s)),
                None => job.map(|j| j.progress.clone()),
            },
            error: job.and_then(|j| j.error.clone()),
            location: format!("/v1/trials/{}/analyses/{}", run.trial, run.id),
            protocol_version: run.protocol_version,
            protocol_hash: run.protocol_hash.clone(),
            vintage: run.vintage,
            options,
            program_version: run.program_version.clone(),
            run_key: run.run_key.clone(),
            created_at: run.created_at,
            created_by: run.created_by.clone(),
            completed_at: run.completed_at,
            result_sha256: run.result_sha256.clone(),
            result: None,
        })
    }
}

/// The runs of a trial.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalysisList {
    /// Newest first, without their results.
    pub analyses: Vec<AnalysisView>,
}

/// A run's view answered as 202 (still computing) or 200 (done), with its `Location`.
pub(super) fn accepted(view: AnalysisView, audited: Option<Audited<()>>) -> Response {
    let status = if view.state == JobState::Done {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let location = HeaderValue::from_str(&view.location).ok();
    let mut response = match audited {
        Some(a) => AuditedJson(status, a.map(|()| view)).into_response(),
        None => (status, Json(view)).into_response(),
    };
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if status == StatusCode::ACCEPTED {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

impl From<AnalysisError> for ApiError {
    fn from(e: AnalysisError) -> Self {
        match e {
            AnalysisError::Invalid {
                field,
                value,
                expected,
                message,
            } => ApiError::Invalid {
                message: format!("query parameter `{field}`: {message}"),
                details: serde_json::json!({
                    "in": "query", "field": field, "value": value, "expected": expected
                }),
            },
            AnalysisError::Conflict(m) => ApiError::Conflict(m),
            AnalysisError::Cancelled => ApiError::Conflict("the analysis was cancelled".into()),
            AnalysisError::Internal(m) => ApiError::Internal(m),
            AnalysisError::Store(e) => e.into(),
        }
    }
}

/// Finds or creates the run a request names on a trial, and wakes a worker for a new job.
pub(super) async fn start(
    state: &AppState,
    trial: &TrialInfo,
    request: &AnalysisRequest,
    caller: &Caller,
    meta: &RequestMeta,
) -> Result<Audited<(AnalysisRecord, RunOrigin)>, ApiError> {
    let key = analysis::key(state.store.as_ref(), trial, request).await?;
    let new = analysis::new_analysis(&key, &caller.name, Some(caller.token_id));
    let audit = meta.audit_entry(Some(caller));
    let created = state.store.create_analysis(&new, &audit).await?;
    if created.value.1 != RunOrigin::Existing {
        state.jobs.wake();
    }
    Ok(created)
}

/// Starts an analysis run: the estimates of `GET …/estimates` for these options, computed as a
/// job and stored. A run with the same key (protocol version and hash, statistics vintage, draws,
/// canonical options and program version) is returned as it is, without computing again.
#[utoipa::path(
    post, path = "/v1/trials/{id}/analyses", tag = "estimates",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer")),
    request_body(content = AnalysisRequest, description = "The options (each optional): vintage, estimator, weights, cr2",
        example = json!(example("analysis_request"))),
    responses(
        (status = 202, description = "The run is queued or computing; `Location` names it, `job` its job",
            body = AnalysisView, example = json!(example("analysis_accepted"))),
        (status = 200, description = "The run with this key is already done", body = AnalysisView),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
        (status = 409, description = "Nothing to analyse yet: no randomized firms, no statistics, or no control arm", body = ErrorEnvelope),
        (status = 422, description = "An option is invalid (an unknown estimator or weighting)", body = ErrorEnvelope)
    )
)]
pub async fn create_analysis(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<AnalysisRequest>,
) -> Result<Response, ApiError> {
    let trial = state.store.get_trial(&id).await.map_err(not_found(&id))?;
    let created = start(&state, &trial, &request, &caller, &meta).await?;
    let view = AnalysisView::of(&state, &created.value.0)?;
    Ok(accepted(view, Some(created.map(|_| ()))))
}

/// Query of `GET /v1/trials/{id}/analyses`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// At most this many runs, newest first (1 to 1000, default 100).
    #[param(example = 20)]
    pub limit: Option<u32>,
}

/// A trial's analysis runs, newest first, with their keys and states (not their results).
#[utoipa::path(
    get, path = "/v1/trials/{id}/analyses", tag = "estimates",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer"), ListParams),
    responses(
        (status = 200, description = "The runs", body = AnalysisList, example = json!(example("analysis_list"))),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
    )
)]
pub async fn list_analyses(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<AnalysisList>, ApiError> {
    state.store.get_trial(&id).await.map_err(not_found(&id))?;
    let runs = state
        .store
        .list_analyses(&id, params.limit.unwrap_or(100))
        .await?;
    let analyses = runs
        .iter()
        .map(|r| AnalysisView::of(&state, r))
        .collect::<Result<_, _>>()?;
    Ok(Json(AnalysisList { analyses }))
}

/// The path of one run.
#[derive(Debug, Deserialize)]
pub struct RunPath {
    /// The trial.
    pub id: String,
    /// The run.
    pub run: i64,
}

fn no_run(id: &str, run: i64) -> impl Fn(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::NotFound => ApiError::NotFound(format!(
            "trial `{id}` has no analysis run {run}; GET /v1/trials/{id}/analyses lists them"
        )),
        other => other.into(),
    }
}

/// A stored result parsed back into its report.
pub(super) async fn stored_report(
    state: &AppState,
    run: &AnalysisRecord,
) -> Result<Report, ApiError> {
    let json =
        state.store.analysis_result(run.id).await?.ok_or_else(|| {
            ApiError::Internal(format!("run {} is done without a result", run.id))
        })?;
    serde_json::from_str(&json)
        .map_err(|e| ApiError::Internal(format!("run {}: stored result: {e}", run.id)))
}

/// One analysis run: its key, its job's state and progress, and once done its result as the
/// caller may read it (outside the directorate, contrasts with an arm of fewer than 5 firms are
/// withheld and counts of 1 to 4 read `"<5"`, as in `GET …/estimates`).
#[utoipa::path(
    get, path = "/v1/trials/{id}/analyses/{run}", tag = "estimates",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer"),
        ("run" = i64, Path, description = "The run's id", example = 1)),
    responses(
        (status = 200, description = "The run (with `result` once done)", body = AnalysisView,
            example = json!(example("analysis_done"))),
        (status = 404, description = "No such trial or run", body = ErrorEnvelope),
    )
)]
pub async fn get_analysis(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<RunPath>,
) -> Result<Json<AnalysisView>, ApiError> {
    let trial = state
        .store
        .get_trial(&path.id)
        .await
        .map_err(not_found(&path.id))?;
    let run = state
        .store
        .get_analysis(&path.id, path.run)
        .await
        .map_err(no_run(&path.id, path.run))?;
    let mut view = AnalysisView::of(&state, &run)?;
    if view.state == JobState::Done {
        let report = stored_report(&state, &run).await?;
        let control = control_of(&state, &trial, run.protocol_version).await?;
        view.result = Some(analysis::view(
            report,
            caller.role == Role::Direktorat,
            &control,
        ));
    }
    Ok(Json(view))
}

/// The control arm of the protocol version a run analysed.
pub(crate) async fn control_of(
    state: &AppState,
    trial: &TrialInfo,
    version: u32,
) -> Result<String, ApiError> {
    let protocol = if version == trial.version {
        trial.protocol.clone()
    } else {
        state
            .store
            .protocol_versions(&trial.id)
            .await?
            .into_iter()
            .find(|v| v.version == version)
            .map(|v| v.protocol)
            .ok_or_else(|| {
                ApiError::Internal(format!("protocol version {version} is not stored"))
            })?
    };
    protocol
        .control_arm()
        .map(|a| a.id.clone())
        .ok_or_else(|| ApiError::Conflict("the protocol has no control arm".into()))
}

/// A run's stored result exactly as stored: its canonical JSON, whose SHA-256 is the run's
/// `result_sha256` (also in `ETag`), the same bytes `ia-rct estimate --format canonical` prints
/// from the same data. The directorate's only: it is the unmasked result.
#[utoipa::path(
    get, path = "/v1/trials/{id}/analyses/{run}/result.json", tag = "estimates",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer"),
        ("run" = i64, Path, description = "The run's id", example = 1)),
    responses(
        (status = 200, description = "The canonical JSON of the result", content_type = "application/json",
            body = Object, example = json!(example("analysis_result"))),
        (status = 404, description = "No such trial or run", body = ErrorEnvelope),
        (status = 409, description = "The run has no result yet", body = ErrorEnvelope),
    )
)]
pub async fn get_analysis_result(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<RunPath>,
) -> Result<Response, ApiError> {
    let run = state
        .store
        .get_analysis(&path.id, path.run)
        .await
        .map_err(no_run(&path.id, path.run))?;
    let (Some(sha), Some(json)) = (
        run.result_sha256.clone(),
        state.store.analysis_result(run.id).await?,
    ) else {
        return Err(ApiError::Conflict(format!(
            "analysis run {} has no result yet; GET {} shows its progress",
            run.id,
            format_args!("/v1/trials/{}/analyses/{}", run.trial, run.id)
        )));
    };
    let mut response = (StatusCode::OK, json).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{sha}\"")) {
        headers.insert(header::ETAG, etag);
    }
    Ok(response)
}
