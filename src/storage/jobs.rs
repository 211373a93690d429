//! Jobs as stored: one row per long computation, claimed by one worker at a time under a lease
//! (src/jobs runs them). The claim is one statement, `UPDATE … WHERE id = (SELECT … LIMIT 1)`,
//! which SQLite runs under its single writer and PostgreSQL with `FOR UPDATE SKIP LOCKED`, so two
//! service instances on one database never run the same job at once; a claim whose lease has
//! expired (its worker died) is taken over.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreError;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// A worker holds it (and renews its lease).
    Running,
    /// Finished; its result is stored.
    Done,
    /// Finished without a result; `error` says why.
    Failed,
    /// Stopped on request before it finished.
    Cancelled,
}

impl JobState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job has finished (done, failed or cancelled).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            other => return Err(StoreError::Corrupt(format!("job state {other:?}"))),
        })
    }
}

/// What a job computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// An analysis run (`POST /v1/trials/{id}/analyses`).
    Analysis,
}

impl JobKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Analysis => "analysis",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "analysis" => Ok(JobKind::Analysis),
            other => Err(StoreError::Corrupt(format!("job kind {other:?}"))),
        }
    }
}

/// How far a job has come, as its worker last wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobProgress {
    /// The stage running (an analysis: `load` from the database, `estimate`, `store`), none
    /// before a worker starts it.
    pub stage: Option<String>,
    /// Steps of the stage done.
    pub done: u64,
    /// Steps of the stage in all (0 while unknown).
    pub total: u64,
    /// Seconds since this attempt started.
    pub elapsed_seconds: Option<f64>,
    /// Seconds left in the stage at the rate so far.
    pub remaining_seconds: Option<f64>,
}

impl From<&crate::progress::Snapshot> for JobProgress {
    fn from(s: &crate::progress::Snapshot) -> Self {
        JobProgress {
            stage: Some(s.stage.clone()),
            done: s.done,
            total: s.total,
            elapsed_seconds: Some(s.elapsed_seconds),
            remaining_seconds: s.remaining_seconds,
        }
    }
}

/// Why a job failed: an error code of the API's envelope (`conflict` for data that cannot be
/// analysed, `internal` for a fault) and a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct JobError {
    /// `conflict` or `internal`.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// One job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobRecord {
    /// The job's id.
    pub id: i64,
    /// What it computes.
    pub kind: JobKind,
    /// The trial it belongs to.
    pub trial: Option<String>,
    /// What it computes, as its kind reads it (an analysis: `{"run": id}`).
    #[schema(value_type = Object)]
    pub subject: serde_json::Value,
    /// Where it is.
    pub state: JobState,
    /// How far it has come.
    pub progress: JobProgress,
    /// Whether a cancellation was asked for (a running job stops within a second).
    pub cancel_requested: bool,
    /// How many times a worker has started it; more than 1 means it was interrupted and started
    /// again.
    pub attempts: u32,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// By whom.
    pub created_by: String,
    /// The token that queued it.
    #[serde(skip)]
    pub created_by_token: Option<i64>,
    /// When the last attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it failed.
    pub error: Option<JobError>,
    /// The worker holding it (`host:pid:random`), while running.
    pub worker: Option<String>,
    /// Until when the worker's claim holds (milliseconds since the epoch).
    #[serde(skip)]
    pub lease_until: Option<i64>,
}

/// How a worker's attempt at a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    /// Finished, with the analysis result to store (for an analysis job).
    Done(Option<RunResult>),
    /// Failed.
    Failed(JobError),
    /// Stopped on request.
    Cancelled,
}

impl JobOutcome {
    /// The state the job ends in.
    pub fn state(&self) -> JobState {
        match self {
            JobOutcome::Done(_) => JobState::Done,
            JobOutcome::Failed(_) => JobState::Failed,
            JobOutcome::Cancelled => JobState::Cancelled,
        }
    }
}

/// An analysis run's result: its canonical JSON and the SHA-256 of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunResult {
    /// The run.
    pub run: i64,
    /// The canonical JSON.
    pub json: String,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// A worker's claim on a job: who, and until when (milliseconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The worker.
    pub owner: String,
    /// Until when.
    pub until_ms: i64,
}

/// Filters for listing jobs, newest first.
#[derive(Debug, Clone, Default)]
pub struct JobQuery {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this trial.
    pub trial: Option<String>,
    /// At most this many (1..=1000).
    pub limit: u32,
}

/// Every column of a job, in [`JobRow`]'s order.
pub(super) const JOB_COLUMNS: &str = "id, kind, trial_id, subject, state, created_at, created_by, \
     created_by_token, started_at, finished_at, attempts, lease_owner, lease_until, \
     cancel_requested, stage, done, total, elapsed_seconds, remaining_seconds, error";

pub(super) const INSERT_JOB: &str = "\
    INSERT INTO jobs (kind, trial_id, subject, state, created_at, created_by, created_by_token) \
    VALUES ($1, $2, $3, 'queued', $4, $5, $6) RETURNING id";

/// The claim: the oldest queued job, or a running one whose lease expired before `$3`. A job
/// started `$4` times already fails instead (it keeps being interrupted), with error `$5`.
/// `{lock}` is `FOR UPDATE SKIP LOCKED` on PostgreSQL and empty on SQLite.
pub(super) fn claim_job_sql(lock: &str) -> String {
    format!(
        "UPDATE jobs SET \
             state = CASE WHEN attempts >= $4 THEN 'failed' ELSE 'running' END, \
             error = CASE WHEN attempts >= $4 THEN $5 ELSE error END, \
             finished_at = CASE WHEN attempts >= $4 THEN $6 ELSE NULL END, \
             started_at = $6, attempts = attempts + 1, lease_owner = $1, lease_until = $2, \
             stage = NULL, done = 0, total = 0, elapsed_seconds = NULL, remaining_seconds = NULL \
         WHERE id = (SELECT id FROM jobs \
                     WHERE state = 'queued' OR (state = 'running' AND lease_until < $3) \
                     ORDER BY id LIMIT 1 {lock}) \
         RETURNING {JOB_COLUMNS}"
    )
}

/// Whether any job is claimable at `$1`: read first, so an idle worker's poll takes no write
/// lock (on SQLite, a write would wait behind a long upload).
pub(super) const ANY_CLAIMABLE: &str = "\
    SELECT id FROM jobs WHERE state = 'queued' OR (state = 'running' AND lease_until < $1) \
    ORDER BY id LIMIT 1";

/// Renews a lease and records progress; answers whether a cancellation was asked for, and no row
/// when the worker no longer holds the job.
pub(super) const HEARTBEAT: &str = "\
    UPDATE jobs SET lease_until = $3, stage = $4, done = $5, total = $6, elapsed_seconds = $7, \
                    remaining_seconds = $8 \
    WHERE id = $1 AND lease_owner = $2 AND state = 'running' \
    RETURNING cancel_requested";

/// Ends a job its worker holds.
pub(super) const FINISH_JOB: &str = "\
    UPDATE jobs SET state = $3, finished_at = $4, error = $5, lease_owner = NULL, \
                    lease_until = NULL, remaining_seconds = NULL, \
                    stage = CASE WHEN $3 = 'done' THEN 'done' ELSE stage END, \
                    done = CASE WHEN $3 = 'done' THEN total ELSE done END, \
                    elapsed_seconds = COALESCE($6, elapsed_seconds) \
    WHERE id = $1 AND lease_owner = $2 AND state = 'running' \
    RETURNING id";

/// Gives a job back to the queue (the service is stopping).
pub(super) const RELEASE_JOB: &str = "\
    UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL, \
                    attempts = attempts - 1 \
    WHERE id = $1 AND lease_owner = $2 AND state = 'running' \
    RETURNING id";

pub(super) const CANCEL_QUEUED: &str = "\
    UPDATE jobs SET state = 'cancelled', cancel_requested = 1, finished_at = $2 \
    WHERE id = $1 AND state = 'queued' RETURNING id";

pub(super) const CANCEL_RUNNING: &str = "\
    UPDATE jobs SET cancel_requested = 1 WHERE id = $1 AND state = 'running' RETURNING id";

pub(super) fn select_job_sql() -> String {
    format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1")
}

pub(super) fn list_jobs_sql() -> String {
    format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE ($1 IS NULL OR state = $1) \
         AND ($2 IS NULL OR trial_id = $2) ORDER BY id DESC LIMIT $3"
    )
}

/// A job row as the database returns it.
#[derive(sqlx::FromRow)]
pub(super) struct JobRow {
    id: i64,
    kind: String,
    trial_id: Option<String>,
    subject: String,
    state: String,
    created_at: DateTime<Utc>,
    created_by: String,
    created_by_token: Option<i64>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    attempts: i32,
    lease_owner: Option<String>,
    lease_until: Option<i64>,
    cancel_requested: i32,
    stage: Option<String>,
    done: i64,
    total: i64,
    elapsed_seconds: Option<f64>,
    remaining_seconds: Option<f64>,
    error: Option<String>,
}

impl TryFrom<JobRow> for JobRecord {
    type Error = StoreError;
    fn try_from(r: JobRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str, e: serde_json::Error| {
            StoreError::Corrupt(format!("job {}: {what}: {e}", r.id))
        };
        let state = JobState::parse(&r.state)?;
        Ok(JobRecord {
            id: r.id,
            kind: JobKind::parse(&r.kind)?,
            trial: r.trial_id.clone(),
            subject: serde_json::from_str(&r.subject).map_err(|e| corrupt("subject", e))?,
            state,
            progress: JobProgress {
                stage: r.stage.clone(),
                done: u64::try_from(r.done).unwrap_or(0),
                total: u64::try_from(r.total).unwrap_or(0),
                elapsed_seconds: r.elapsed_seconds,
                remaining_seconds: r.remaining_seconds,
            },
            cancel_requested: r.cancel_requested != 0,
            attempts: u32::try_from(r.attempts).unwrap_or(0),
            created_at: r.created_at,
            created_by: r.created_by.clone(),
            created_by_token: r.created_by_token,
            started_at: r.started_at,
            finished_at: r.finished_at,
            error: r
                .error
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| corrupt("error", e))?,
            worker: if state == JobState::Running {
                r.lease_owner.clone()
            } else {
                None
            },
            lease_until: r.lease_until,
        })
    }
}

/// Implements [`super::JobStore`] for a backend store type, given the claim's lock clause.
macro_rules! impl_job_store {
    ($store:ty, $db:ty, $lock:expr) => {
        impl $store {
            async fn job_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                id: i64,
            ) -> Result<JobRecord, StoreError> {
                let row: jobs::JobRow = sqlx::query_as(&jobs::select_job_sql())
                    .bind(id)
                    .fetch_one(&mut **tx)
                    .await?;
                JobRecord::try_from(row)
            }
        }

        #[async_trait::async_trait]
        impl JobStore for $store {
            async fn claim_job(
                &self,
                lease: &jobs::Lease,
                now: chrono::DateTime<chrono::Utc>,
                now_ms: i64,
                max_attempts: u32,
                audit: &NewAuditEntry,
            ) -> Result<Option<JobRecord>, StoreError> {
                let exhausted = serde_json::json!({
                    "code": "internal",
                    "message": format!(
                        "interrupted {max_attempts} times (the service stopped or its worker died \
                         while running it); not started again"
                    ),
                })
                .to_string();
                let claimable: Option<i64> = sqlx::query_scalar(jobs::ANY_CLAIMABLE)
                    .bind(now_ms)
                    .fetch_optional(&self.pool)
                    .await?;
                if claimable.is_none() {
                    return Ok(None);
                }
                let mut tx = self.pool.begin().await?;
                let row: Option<jobs::JobRow> = sqlx::query_as(&jobs::claim_job_sql($lock))
                    .bind(&lease.owner)
                    .bind(lease.until_ms)
                    .bind(now_ms)
                    .bind(i32::try_from(max_attempts).unwrap_or(i32::MAX))
                    .bind(&exhausted)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let job = JobRecord::try_from(row)?;
                let mut audit = audit.clone();
                audit.path = format!("/v1/jobs/{}", job.id);
                audit.trial_id = job.trial.clone();
                audit.object_ids.push(format!("job:{}", job.id));
                audit.detail = Some(if job.state == JobState::Failed {
                    audit.result = AuditResult::Failed;
                    audit.status = 500;
                    format!("{} job not started again: interrupted too often", job.kind.as_str())
                } else {
                    format!("{} job started (attempt {})", job.kind.as_str(), job.attempts)
                });
                Self::insert_audit(&mut *tx, &audit).await?;
                tx.commit().await?;
                Ok(Some(job))
            }

            async fn heartbeat_job(
                &self,
                id: i64,
                lease: &jobs::Lease,
                progress: &jobs::JobProgress,
            ) -> Result<Option<bool>, StoreError> {
                let cancel: Option<i32> = sqlx::query_scalar(jobs::HEARTBEAT)
                    .bind(id)
                    .bind(&lease.owner)
                    .bind(lease.until_ms)
                    .bind(progress.stage.as_deref())
                    .bind(i64::try_from(progress.done).unwrap_or(i64::MAX))
                    .bind(i64::try_from(progress.total).unwrap_or(i64::MAX))
                    .bind(progress.elapsed_seconds)
                    .bind(progress.remaining_seconds)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(cancel.map(|c| c != 0))
            }

            async fn finish_job(
                &self,
                id: i64,
                owner: &str,
                outcome: &jobs::JobOutcome,
                elapsed_seconds: Option<f64>,
                audit: &NewAuditEntry,
            ) -> Result<Option<JobRecord>, StoreError> {
                let error = match outcome {
                    jobs::JobOutcome::Failed(e) => Some(
                        serde_json::to_string(e)
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    ),
                    _ => None,
                };
                let mut tx = self.pool.begin().await?;
                let held: Option<i64> = sqlx::query_scalar(jobs::FINISH_JOB)
                    .bind(id)
                    .bind(owner)
                    .bind(outcome.state().as_str())
                    .bind(audit.at)
                    .bind(error.as_deref())
                    .bind(elapsed_seconds)
                    .fetch_optional(&mut *tx)
                    .await?;
                if held.is_none() {
                    return Ok(None);
                }
                let mut audit = audit.clone();
                if let jobs::JobOutcome::Done(Some(result)) = outcome {
                    let stored = sqlx::query(analyses::STORE_RESULT)
                        .bind(result.run)
                        .bind(&result.json)
                        .bind(&result.sha256)
                        .bind(audit.at)
                        .execute(&mut *tx)
                        .await?;
                    if stored.rows_affected() != 1 {
                        return Err(StoreError::Conflict(format!(
                            "analysis run {} already has a result",
                            result.run
                        )));
                    }
                    audit.object_ids.push(format!("analysis:{}", result.run));
                }
                let job = Self::job_in(&mut tx, id).await?;
                audit.path = format!("/v1/jobs/{id}");
                audit.trial_id = job.trial.clone();
                audit.object_ids.insert(0, format!("job:{id}"));
                let what = job.kind.as_str();
                match outcome {
                    jobs::JobOutcome::Done(result) => {
                        audit.detail = Some(match result {
                            Some(r) => format!("{what} job done: result sha256 {}", r.sha256),
                            None => format!("{what} job done"),
                        });
                    }
                    jobs::JobOutcome::Failed(e) => {
                        audit.result = AuditResult::Failed;
                        audit.status = if e.code == "conflict" { 409 } else { 500 };
                        audit.detail = Some(format!("{what} job failed: {}", e.message));
                    }
                    jobs::JobOutcome::Cancelled => {
                        audit.detail = Some(format!("{what} job cancelled"));
                    }
                }
                Self::insert_audit(&mut *tx, &audit).await?;
                tx.commit().await?;
                Ok(Some(job))
            }

            async fn release_job(&self, id: i64, owner: &str) -> Result<bool, StoreError> {
                let held: Option<i64> = sqlx::query_scalar(jobs::RELEASE_JOB)
                    .bind(id)
                    .bind(owner)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(held.is_some())
            }

            async fn cancel_job(
                &self,
                id: i64,
                audit: &NewAuditEntry,
            ) -> Result<Audited<JobRecord>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let queued: Option<i64> = sqlx::query_scalar(jobs::CANCEL_QUEUED)
                    .bind(id)
                    .bind(audit.at)
                    .fetch_optional(&mut *tx)
                    .await?;
                let running: Option<i64> = if queued.is_none() {
                    sqlx::query_scalar(jobs::CANCEL_RUNNING)
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?
                } else {
                    None
                };
                let job = match Self::job_in(&mut tx, id).await {
                    Ok(job) => job,
                    Err(StoreError::NotFound) => return Err(StoreError::NotFound),
                    Err(e) => return Err(e),
                };
                if queued.is_none() && running.is_none() {
                    return Err(StoreError::Conflict(format!(
                        "job {id} is already {}; only a queued or running job can be cancelled",
                        job.state.as_str()
                    )));
                }
                let mut audit = audit.clone();
                // The status the route answers: 200 cancelled now, 202 asked to stop.
                audit.status = if queued.is_some() { 200 } else { 202 };
                audit.trial_id = job.trial.clone();
                audit.object_ids.push(format!("job:{id}"));
                audit.detail = Some(if queued.is_some() {
                    format!("{} job cancelled before it started", job.kind.as_str())
                } else {
                    format!("{} job asked to stop", job.kind.as_str())
                });
                let audit_id = Self::insert_audit(&mut *tx, &audit).await?;
                tx.commit().await?;
                Ok(Audited::new(job, audit_id))
            }

            async fn get_job(&self, id: i64) -> Result<JobRecord, StoreError> {
                let row: jobs::JobRow = sqlx::query_as(&jobs::select_job_sql())
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await?;
                JobRecord::try_from(row)
            }

            async fn list_jobs(&self, q: &jobs::JobQuery) -> Result<Vec<JobRecord>, StoreError> {
                let rows: Vec<jobs::JobRow> = sqlx::query_as(&jobs::list_jobs_sql())
                    .bind(q.state.map(|s| s.as_str()))
                    .bind(q.trial.as_deref())
                    .bind(i64::from(q.limit.clamp(1, 1000)))
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(JobRecord::try_from).collect()
            }
        }
    };
}

pub(super) use impl_job_store;
