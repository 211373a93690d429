//! `/v1/jobs`: the long computations (analysis runs now), their state and progress, and
//! cancelling one (src/jobs).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ApiPath, ApiQuery, ErrorEnvelope};
use super::examples::example;
use super::middleware::{AuditedJson, RequestMeta};
use crate::auth::Caller;
use crate::domain::Role;
use crate::json::Json;
use crate::storage::StoreError;
use crate::storage::jobs::{JobProgress, JobQuery, JobRecord, JobState};

/// Jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    /// The jobs.
    pub jobs: Vec<JobRecord>,
}

/// Query of `GET /v1/jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobParams {
    /// Only jobs in this state: queued, running, done, failed or cancelled.
    #[param(value_type = Option<String>, example = "running")]
    pub state: Option<JobState>,
    /// Only jobs of this trial.
    #[param(example = "nals-arbeidsformer")]
    pub trial: Option<String>,
    /// At most this many (1 to 1000, default 100).
    #[param(example = 20)]
    pub limit: Option<u32>,
}

fn no_job(id: i64) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::NotFound(format!("no job {id}")),
        other => other.into(),
    }
}

/// A job with the live progress of this instance, if it runs it here.
pub(crate) fn live(state: &AppState, mut job: JobRecord) -> JobRecord {
    if job.state == JobState::Running
        && let Some(s) = state.jobs.local_progress(job.id)
    {
        job.progress = JobProgress::from(&s);
    }
    job
}

/// Every job, newest first (the running ones with their progress).
#[utoipa::path(
    get, path = "/v1/jobs", tag = "jobs", params(JobParams),
    responses(
        (status = 200, description = "The jobs", body = JobList, example = json!(example("job_list"))),
        (status = 422, description = "A query parameter is invalid", body = ErrorEnvelope),
    )
)]
pub async fn list_jobs(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<JobParams>,
) -> Result<Json<JobList>, ApiError> {
    let jobs = state
        .store
        .list_jobs(&JobQuery {
            state: params.state,
            trial: params.trial,
            limit: params.limit.unwrap_or(100),
        })
        .await?;
    Ok(Json(JobList {
        jobs: jobs.into_iter().map(|j| live(&state, j)).collect(),
    }))
}

/// One job: its state (queued, running, done, failed, cancelled) and progress (stage, done,
/// total, elapsed and estimated time left).
#[utoipa::path(
    get, path = "/v1/jobs/{job}", tag = "jobs",
    params(("job" = i64, Path, description = "The job's id", example = 1)),
    responses(
        (status = 200, description = "The job", body = JobRecord, example = json!(example("job_running"))),
        (status = 404, description = "No job has this id", body = ErrorEnvelope),
    )
)]
pub async fn get_job(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<JobRecord>, ApiError> {
    let job = state.store.get_job(id).await.map_err(no_job(id))?;
    Ok(Json(live(&state, job)))
}

/// Cancels a job: a queued one at once (200, `cancelled`); a running one is asked to stop and
/// stops within a second (202, `cancel_requested`; `GET` shows it `cancelled`). A researcher may
/// cancel only the jobs they started.
#[utoipa::path(
    delete, path = "/v1/jobs/{job}", tag = "jobs",
    params(("job" = i64, Path, description = "The job's id", example = 1)),
    responses(
        (status = 200, description = "Cancelled before it started", body = JobRecord),
        (status = 202, description = "Asked to stop; it stops within a second", body = JobRecord,
            example = json!(example("job_cancelling"))),
        (status = 403, description = "A researcher's token did not start this job", body = ErrorEnvelope),
        (status = 404, description = "No job has this id", body = ErrorEnvelope),
        (status = 409, description = "The job has already finished", body = ErrorEnvelope),
    )
)]
pub async fn cancel_job(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    let job = state.store.get_job(id).await.map_err(no_job(id))?;
    if caller.role != Role::Direktorat && job.created_by_token != Some(caller.token_id) {
        return Err(ApiError::Forbidden(format!(
            "job {id} was started by another token; a researcher may cancel only their own jobs"
        )));
    }
    let audit = meta.audit_entry(Some(&caller));
    let cancelled = state
        .store
        .cancel_job(id, &audit)
        .await
        .map_err(no_job(id))?;
    state.jobs.cancel_local(id);
    let status = if cancelled.value.state == JobState::Cancelled {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok(AuditedJson(status, cancelled.map(|j| live(&state, j))).into_response())
}
