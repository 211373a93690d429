//! Analysis runs as stored: a trial's estimates under one key, with the job computing them and,
//! once done, the result's canonical JSON and its SHA-256, which the database never lets change.

use chrono::{DateTime, Utc};

use super::StoreError;
use super::jobs::JobRecord;

/// A run to create (or find, if one with the same key exists).
#[derive(Debug, Clone)]
pub struct NewAnalysis {
    /// The trial.
    pub trial: String,
    /// SHA-256 of the canonical key JSON.
    pub run_key: String,
    /// The canonical key JSON.
    pub key_json: String,
    /// The protocol version analysed.
    pub protocol_version: u32,
    /// Its hash.
    pub protocol_hash: String,
    /// The statistics vintage.
    pub vintage: Option<i64>,
    /// The canonical options JSON.
    pub options: String,
    /// The program version.
    pub program_version: String,
    /// Who asks.
    pub by: String,
    /// Their token.
    pub by_token: Option<i64>,
}

/// How a POST found its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOrigin {
    /// A new run, with a new job.
    Created,
    /// The run with this key existed and is done or on its way.
    Existing,
    /// The run existed, but its job had failed or been cancelled: a new job runs it again.
    Requeued,
}

/// One run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisRecord {
    /// The run's id.
    pub id: i64,
    /// The trial.
    pub trial: String,
    /// SHA-256 of the canonical key.
    pub run_key: String,
    /// The canonical key JSON.
    pub key_json: String,
    /// The protocol version.
    pub protocol_version: u32,
    /// Its hash.
    pub protocol_hash: String,
    /// The statistics vintage.
    pub vintage: Option<i64>,
    /// The canonical options JSON.
    pub options: String,
    /// The program version.
    pub program_version: String,
    /// The latest job computing it.
    pub job: Option<JobRecord>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// By whom.
    pub created_by: String,
    /// The canonical result JSON, once done (left out of lists).
    pub result: Option<String>,
    /// Its SHA-256.
    pub result_sha256: Option<String>,
    /// When the result was stored.
    pub completed_at: Option<DateTime<Utc>>,
}

const RUN_COLUMNS: &str = "id, trial_id, run_key, key_json, protocol_version, protocol_hash, \
     vintage, options, program_version, job_id, created_at, created_by, result_sha256, completed_at";

/// The first statement of creating a run: it writes, so the transaction holds SQLite's write lock
/// from its start and nothing it reads next can change under it (a read first would let another
/// writer in between). A conflict uses up an id, so run ids have gaps.
pub(super) const INSERT_RUN: &str = "\
    INSERT INTO analysis_runs (trial_id, run_key, key_json, protocol_version, protocol_hash, \
                               vintage, options, program_version, created_at, created_by) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
    ON CONFLICT (trial_id, run_key) DO NOTHING RETURNING id";

pub(super) const SET_RUN_JOB: &str = "\
    UPDATE analysis_runs SET job_id = $2 WHERE id = $1 AND result IS NULL";

pub(super) const STORE_RESULT: &str = "\
    UPDATE analysis_runs SET result = $2, result_sha256 = $3, completed_at = $4 \
    WHERE id = $1 AND result IS NULL";

pub(super) fn select_run_by_key_sql() -> String {
    format!("SELECT {RUN_COLUMNS} FROM analysis_runs WHERE trial_id = $1 AND run_key = $2")
}

pub(super) fn select_run_sql() -> String {
    format!("SELECT {RUN_COLUMNS} FROM analysis_runs WHERE trial_id = $1 AND id = $2")
}

pub(super) fn list_runs_sql() -> String {
    format!("SELECT {RUN_COLUMNS} FROM analysis_runs WHERE trial_id = $1 ORDER BY id DESC LIMIT $2")
}

pub(super) const SELECT_RESULT: &str = "SELECT result FROM analysis_runs WHERE id = $1";

/// A run row as the database returns it.
#[derive(sqlx::FromRow)]
pub(super) struct RunRow {
    pub(super) id: i64,
    trial_id: String,
    run_key: String,
    key_json: String,
    protocol_version: i32,
    protocol_hash: String,
    vintage: Option<i64>,
    options: String,
    program_version: String,
    pub(super) job_id: Option<i64>,
    created_at: DateTime<Utc>,
    created_by: String,
    pub(super) result_sha256: Option<String>,
    completed_at: Option<DateTime<Utc>>,
}

impl RunRow {
    pub(super) fn into_record(self, job: Option<JobRecord>) -> Result<AnalysisRecord, StoreError> {
        Ok(AnalysisRecord {
            id: self.id,
            trial: self.trial_id,
            run_key: self.run_key,
            key_json: self.key_json,
            protocol_version: u32::try_from(self.protocol_version)
                .map_err(|e| StoreError::Corrupt(format!("run {}: version: {e}", self.id)))?,
            protocol_hash: self.protocol_hash,
            vintage: self.vintage,
            options: self.options,
            program_version: self.program_version,
            job,
            created_at: self.created_at,
            created_by: self.created_by,
            result: None,
            result_sha256: self.result_sha256,
            completed_at: self.completed_at,
        })
    }
}

/// Implements [`super::AnalysisStore`] for a backend store type.
macro_rules! impl_analysis_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl AnalysisStore for $store {
            async fn create_analysis(
                &self,
                new: &analyses::NewAnalysis,
                audit: &NewAuditEntry,
            ) -> Result<Audited<(AnalysisRecord, analyses::RunOrigin)>, StoreError> {
                let mut tx = self.pool.begin().await?;
                let inserted: Option<i64> = sqlx::query_scalar(analyses::INSERT_RUN)
                    .bind(&new.trial)
                    .bind(&new.run_key)
                    .bind(&new.key_json)
                    .bind(i32::try_from(new.protocol_version).unwrap_or(i32::MAX))
                    .bind(&new.protocol_hash)
                    .bind(new.vintage)
                    .bind(&new.options)
                    .bind(&new.program_version)
                    .bind(audit.at)
                    .bind(&new.by)
                    .fetch_optional(&mut *tx)
                    .await?;
                let row: analyses::RunRow = sqlx::query_as(&analyses::select_run_by_key_sql())
                    .bind(&new.trial)
                    .bind(&new.run_key)
                    .fetch_one(&mut *tx)
                    .await?;
                let current = match row.job_id {
                    Some(job) => Some(Self::job_in(&mut tx, job).await?),
                    None => None,
                };
                let again = row.result_sha256.is_none()
                    && current.as_ref().is_none_or(|j| {
                        matches!(j.state, JobState::Failed | JobState::Cancelled)
                    });
                let origin = if inserted.is_some() {
                    analyses::RunOrigin::Created
                } else if again {
                    analyses::RunOrigin::Requeued
                } else {
                    analyses::RunOrigin::Existing
                };
                let run_id = row.id;
                let job = if again {
                    let subject = serde_json::json!({ "run": run_id }).to_string();
                    let job_id: i64 = sqlx::query_scalar(jobs::INSERT_JOB)
                        .bind(JobKind::Analysis.as_str())
                        .bind(&new.trial)
                        .bind(&subject)
                        .bind(audit.at)
                        .bind(&new.by)
                        .bind(new.by_token)
                        .fetch_one(&mut *tx)
                        .await?;
                    sqlx::query(analyses::SET_RUN_JOB)
                        .bind(run_id)
                        .bind(job_id)
                        .execute(&mut *tx)
                        .await?;
                    Some(Self::job_in(&mut tx, job_id).await?)
                } else {
                    current
                };
                let mut row = row;
                row.job_id = job.as_ref().map(|j| j.id);
                let record = row.into_record(job)?;
                let mut audit = audit.clone();
                // The status the route answers: 200 for a done run, 202 for one on its way.
                audit.status = if record.result_sha256.is_some() { 200 } else { 202 };
                audit.trial_id = Some(new.trial.clone());
                audit.object_ids.push(format!("analysis:{run_id}"));
                if let Some(job) = &record.job {
                    audit.object_ids.push(format!("job:{}", job.id));
                }
                audit.detail = Some(
                    match origin {
                        analyses::RunOrigin::Created => "analysis run created, job queued",
                        analyses::RunOrigin::Existing => "the analysis run with this key exists",
                        analyses::RunOrigin::Requeued => {
                            "the analysis run with this key had no result: job queued again"
                        }
                    }
                    .to_owned(),
                );
                let audit_id = Self::insert_audit(&mut *tx, &audit).await?;
                self.fault_pause().await;
                tx.commit().await?;
                Ok(Audited::new((record, origin), audit_id))
            }

            async fn find_analysis(
                &self,
                trial: &str,
                run_key: &str,
            ) -> Result<Option<AnalysisRecord>, StoreError> {
                let row: Option<analyses::RunRow> =
                    sqlx::query_as(&analyses::select_run_by_key_sql())
                        .bind(trial)
                        .bind(run_key)
                        .fetch_optional(&self.pool)
                        .await?;
                match row {
                    None => Ok(None),
                    Some(row) => {
                        let job = match row.job_id {
                            Some(j) => Some(self.get_job(j).await?),
                            None => None,
                        };
                        row.into_record(job).map(Some)
                    }
                }
            }

            async fn get_analysis(
                &self,
                trial: &str,
                id: i64,
            ) -> Result<AnalysisRecord, StoreError> {
                let row: analyses::RunRow = sqlx::query_as(&analyses::select_run_sql())
                    .bind(trial)
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await?;
                let job = match row.job_id {
                    Some(j) => Some(self.get_job(j).await?),
                    None => None,
                };
                row.into_record(job)
            }

            async fn analysis_result(&self, id: i64) -> Result<Option<String>, StoreError> {
                let result: Option<String> = sqlx::query_scalar(analyses::SELECT_RESULT)
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(result)
            }

            async fn list_analyses(
                &self,
                trial: &str,
                limit: u32,
            ) -> Result<Vec<AnalysisRecord>, StoreError> {
                let rows: Vec<analyses::RunRow> = sqlx::query_as(&analyses::list_runs_sql())
                    .bind(trial)
                    .bind(i64::from(limit.clamp(1, 1000)))
                    .fetch_all(&self.pool)
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    let job = match row.job_id {
                        Some(j) => Some(self.get_job(j).await?),
                        None => None,
                    };
                    out.push(row.into_record(job)?);
                }
                Ok(out)
            }
        }
    };
}

pub(super) use impl_analysis_store;
