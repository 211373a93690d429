//! Persistence: one [`Store`] interface with a SQLite and a PostgreSQL implementation.
//!
//! The URL picks the backend: `sqlite://…` (the embedded default) or `postgres://…`. Both run the
//! same SQL with `$n` placeholders wherever the dialects agree; each has its own migration folder
//! (`src/storage/migrations/{sqlite,postgres}`), kept in step. Every method that changes state runs
//! in one transaction, and writes its audit row inside that same transaction, so a state change
//! and its audit record are committed together or not at all.

pub mod analyses;
pub mod jobs;
mod postgres;
pub mod sessions;
mod sql;
mod sqlite;
pub mod statistics;
pub mod takeup;
mod trials;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;

use crate::auth::Caller;
use crate::domain::{FylkeCode, Orgnr, Role};
use crate::protocol::{Protocol, TrialState};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use trials::{
    Acknowledgement, AssignedFirm, AssignmentCount, AssignmentRecord, DrawRecord, EnrollmentFilter,
    EnrollmentPage, EnrollmentRecord, NewDraw, NewEnrollment, ProtocolVersionInfo, TrialInfo,
    UploadReceipt,
};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The requested row does not exist.
    #[error("not found")]
    NotFound,
    /// The write conflicts with what is stored (a unique name, a state that forbids the change).
    #[error("{0}")]
    Conflict(String),
    /// The database URL is not one ia-rct can use.
    #[error("{0}")]
    BadUrl(String),
    /// The database is not reachable or not usable right now.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A stored value does not parse as its domain type (the database was edited by hand).
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
            // SQLITE_BUSY (5) / SQLITE_LOCKED (6) after the busy timeout; PostgreSQL's classes 08
            // (connection exception) and 57P (operator intervention: shutdown, database dropped).
            sqlx::Error::Database(ref db)
                if db.code().is_some_and(|c| {
                    c == "5" || c == "6" || c.starts_with("08") || c.starts_with("57P")
                }) =>
            {
                StoreError::Unavailable(e.to_string())
            }
            other => StoreError::Database(other),
        }
    }
}

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Embedded SQLite (the default).
    Sqlite,
    /// PostgreSQL (production).
    Postgres,
}

/// Options that apply to either backend.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// Fault injection for crash and shutdown tests: sleep this long inside every write transaction,
    /// after its first statement and before commit, logging a warning when the pause starts.
    /// Never set in production; the command line sets it from `IA_RCT_FAULT_PAUSE_IN_WRITE_MS` only
    /// when built with the `fault-injection` feature (which only the tests enable).
    pub pause_in_write: Option<Duration>,
}

/// A token as stored, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// The token's id (used to revoke it).
    pub id: i64,
    /// A human name, unique among active tokens (e.g. "NAV Vestland").
    pub name: String,
    /// The token's role.
    pub role: Role,
    /// The fylke a `fylke` token is bound to.
    #[schema(value_type = Option<String>, example = "46")]
    pub fylke: Option<FylkeCode>,
    /// When the token was created.
    pub created_at: DateTime<Utc>,
    /// Who created it (a token name, or `cli:<user>` for `ia-rct token create`).
    pub created_by: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
}

impl TokenInfo {
    /// The caller this token identifies.
    pub fn caller(&self) -> Caller {
        Caller {
            token_id: self.id,
            name: self.name.clone(),
            role: self.role,
            fylke: self.fylke,
        }
    }
}

/// A token to create: everything but the id and timestamps.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Human name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Fylke binding (required for, and only for, the `fylke` role).
    pub fylke: Option<FylkeCode>,
    /// SHA-256 of the secret, hex.
    pub hash: String,
    /// Who creates it.
    pub created_by: String,
}

/// The result of a write that recorded its own audit row in the same transaction.
///
/// Only the storage layer can make one, so holding one proves the audit row was committed with the
/// change; the HTTP layer relies on that to skip writing a second row.
#[derive(Debug, Clone, PartialEq)]
pub struct Audited<T> {
    /// What the write returned.
    pub value: T,
    audit_id: i64,
}

impl<T> Audited<T> {
    fn new(value: T, audit_id: i64) -> Self {
        Audited { value, audit_id }
    }

    /// The id of the audit row committed with the write.
    pub fn audit_id(&self) -> i64 {
        self.audit_id
    }

    /// Transforms the value, keeping the proof of audit.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Audited<U> {
        Audited {
            value: f(self.value),
            audit_id: self.audit_id,
        }
    }
}

/// The outcome recorded for an audited action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditResult {
    /// The action was allowed and succeeded.
    Permitted,
    /// The caller was not authenticated or not allowed (401/403).
    Denied,
    /// The action was allowed but failed (bad input, conflict, server error).
    Failed,
}

impl AuditResult {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuditResult::Permitted => "permitted",
            AuditResult::Denied => "denied",
            AuditResult::Failed => "failed",
        }
    }

    /// The result an HTTP status stands for.
    pub fn from_status(status: u16) -> Self {
        match status {
            200..=399 => AuditResult::Permitted,
            401 | 403 => AuditResult::Denied,
            _ => AuditResult::Failed,
        }
    }
}

/// One row to append to the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    /// When (UTC, microsecond precision so both backends store the same value).
    pub at: DateTime<Utc>,
    /// The request id (`x-request-id`), if the action came over HTTP.
    pub request_id: Option<String>,
    /// The acting token, if one was presented and valid.
    pub actor: Option<Caller>,
    /// The acting person when there is no token: `cli:<user>` for the command line.
    pub operator: Option<String>,
    /// The HTTP method, or `CLI` for the command line.
    pub method: String,
    /// The route template (`/v1/tokens/{id}/revoke`) or CLI command (`token create`).
    pub route: String,
    /// The concrete path requested.
    pub path: String,
    /// The trial the action concerns, if any.
    pub trial_id: Option<String>,
    /// Ids of the objects read or changed.
    pub object_ids: Vec<String>,
    /// Permitted, denied or failed.
    pub result: AuditResult,
    /// The HTTP status returned (the command line records the status the same action would have had).
    pub status: u16,
    /// A short human note (why it was denied or failed).
    pub detail: Option<String>,
}

impl NewAuditEntry {
    /// An entry stamped now, with no actor, trial or objects yet.
    pub fn now(method: &str, route: &str, path: &str) -> Self {
        NewAuditEntry {
            at: now(),
            request_id: None,
            actor: None,
            operator: None,
            method: method.to_owned(),
            route: route.to_owned(),
            path: path.to_owned(),
            trial_id: None,
            object_ids: Vec::new(),
            result: AuditResult::Permitted,
            status: 200,
            detail: None,
        }
    }
}

/// One row of the audit log, as read back.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Monotonically increasing id; never reused.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// The request id, if over HTTP.
    pub request_id: Option<String>,
    /// The acting token's id.
    pub actor_token_id: Option<i64>,
    /// The acting token's name (or `cli:<user>` for the command line).
    pub actor_name: Option<String>,
    /// The acting token's role.
    pub actor_role: Option<Role>,
    /// The acting token's fylke.
    #[schema(value_type = Option<String>)]
    pub actor_fylke: Option<FylkeCode>,
    /// HTTP method or `CLI`.
    pub method: String,
    /// Route template or CLI command.
    pub route: String,
    /// Concrete path.
    pub path: String,
    /// Trial concerned.
    pub trial_id: Option<String>,
    /// Objects read or changed.
    pub object_ids: Vec<String>,
    /// Permitted, denied or failed.
    pub result: AuditResult,
    /// HTTP status (the command line records the status it would have had: 200/201 or 4xx).
    pub status: u16,
    /// Why, when denied or failed.
    pub detail: Option<String>,
}

/// Filters and a cursor for reading the audit log, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only entries with an id below this (the cursor from the previous page).
    pub before_id: Option<i64>,
    /// Only this actor (token name).
    pub actor_name: Option<String>,
    /// Only this role.
    pub actor_role: Option<Role>,
    /// Only this result.
    pub result: Option<AuditResult>,
    /// Only this route template.
    pub route: Option<String>,
    /// Only this trial.
    pub trial_id: Option<String>,
    /// Only entries at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only entries before this time.
    pub to: Option<DateTime<Utc>>,
    /// Page size (1..=1000).
    pub limit: u32,
}

/// The current time, truncated to microseconds (PostgreSQL's precision), so both backends agree.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Trials: protocols and their versions, the lifecycle, enrollment, draws, assignments and
/// acknowledgements. Every write locks the trial row first, checks the lifecycle inside the same
/// transaction, and commits its audit row with the change.
#[async_trait]
pub trait TrialStore: Send + Sync {
    /// Creates a trial in `draft` with its first protocol version.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if a trial with the protocol's id exists.
    async fn create_trial(
        &self,
        protocol: &Protocol,
        by: &str,
        audit: &NewAuditEntry,
    ) -> Result<Audited<TrialInfo>, StoreError>;

    /// Every trial.
    async fn list_trials(&self) -> Result<Vec<TrialInfo>, StoreError>;

    /// One trial.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    async fn get_trial(&self, id: &str) -> Result<TrialInfo, StoreError>;

    /// Stores a changed protocol: replaced while `draft` (stored as the next revision of the same
    /// version, since the database never lets a stored version change; reads show the latest); a
    /// new version (current + 1) while `registered`; refused afterwards.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], or [`StoreError::Conflict`] naming the rule broken.
    async fn save_protocol(
        &self,
        protocol: &Protocol,
        by: &str,
        audit: &NewAuditEntry,
    ) -> Result<Audited<TrialInfo>, StoreError>;

    /// Every version of a trial's protocol, oldest first.
    async fn protocol_versions(&self, id: &str) -> Result<Vec<ProtocolVersionInfo>, StoreError>;

    /// Moves a trial to another state if its lifecycle allows it.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] with the allowed next steps.
    async fn transition_trial(
        &self,
        id: &str,
        to: TrialState,
        audit: &NewAuditEntry,
    ) -> Result<Audited<TrialInfo>, StoreError>;

    /// Stores an enrollment upload for the open wave, all or nothing.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the trial is not enrolling, the wave is not the open one, or a
    /// firm is already enrolled.
    async fn enroll(
        &self,
        id: &str,
        upload: &NewEnrollment,
        audit: &NewAuditEntry,
    ) -> Result<Audited<UploadReceipt>, StoreError>;

    /// Enrolled firms, optionally of one fylke and one wave, sorted by orgnr.
    async fn enrollments(
        &self,
        id: &str,
        fylke: Option<FylkeCode>,
        wave: Option<u32>,
    ) -> Result<Vec<EnrollmentRecord>, StoreError>;

    /// A page of enrolled firms matching `filter`, sorted by orgnr, with the totals over every page.
    async fn enrollment_page(
        &self,
        id: &str,
        filter: &EnrollmentFilter,
    ) -> Result<EnrollmentPage, StoreError>;

    /// Stores a wave's draw and assignments and moves the trial to `randomized`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the trial, its protocol or the wave's enrollment changed.
    async fn record_draw(
        &self,
        id: &str,
        draw: &NewDraw,
        audit: &NewAuditEntry,
    ) -> Result<Audited<DrawRecord>, StoreError>;

    /// The trial's draws, by wave.
    async fn draws(&self, id: &str) -> Result<Vec<DrawRecord>, StoreError>;

    /// Assignments sorted by orgnr, optionally of one fylke, after a cursor, at most `limit`.
    async fn assignments(
        &self,
        id: &str,
        fylke: Option<FylkeCode>,
        after: Option<Orgnr>,
        limit: u32,
    ) -> Result<Vec<AssignmentRecord>, StoreError>;

    /// Like [`TrialStore::assignments`], with each firm's name and kommune from its enrollment.
    async fn assigned_firms(
        &self,
        id: &str,
        fylke: Option<FylkeCode>,
        after: Option<Orgnr>,
        limit: u32,
    ) -> Result<Vec<AssignedFirm>, StoreError>;

    /// How many firms each wave assigned in each fylke, by wave and fylke.
    async fn assignment_counts(&self, id: &str) -> Result<Vec<AssignmentCount>, StoreError>;

    /// Records that a fylke received its firms' assignments of a wave.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the wave has no firms in the fylke or it was acknowledged.
    async fn acknowledge(
        &self,
        id: &str,
        wave: u32,
        fylke: FylkeCode,
        by: &str,
        audit: &NewAuditEntry,
    ) -> Result<Audited<Acknowledgement>, StoreError>;

    /// Every acknowledgement of a trial.
    async fn acknowledgements(&self, id: &str) -> Result<Vec<Acknowledgement>, StoreError>;
}

/// NAV's statistics register (sickness statistics and metadata): uploads applied whole or not at
/// all, every value kept by vintage.
#[async_trait]
pub trait StatisticsStore: Send + Sync {
    /// Applies an upload of statistics or metadata streamed as [`statistics::IngestMessage`]s in
    /// one transaction, one upload at a time: duplicates refused, then each firm-quarter inserted,
    /// left unchanged or revised (a new vintage beside the old), with the receipt and its audit row.
    ///
    /// # Errors
    /// [`statistics::IngestFailure::Invalid`] with the first 100 problems and the total, and
    /// nothing written; or a store error.
    async fn ingest_statistics(
        &self,
        messages: tokio::sync::mpsc::Receiver<statistics::IngestMessage>,
        upload: &statistics::NewStatisticsUpload,
        audit: &NewAuditEntry,
    ) -> Result<Audited<statistics::StatisticsReceipt>, statistics::IngestFailure>;

    /// Upload receipts (vintages), oldest first, optionally only the one with an idempotency key.
    async fn statistics_uploads(
        &self,
        idempotency_key: Option<&str>,
    ) -> Result<Vec<statistics::StatisticsReceipt>, StoreError>;

    /// Σ tapte and Σ mulige dagsverk per firm over `from..=to`, as of `vintage` (latest if none).
    async fn baseline_sums(
        &self,
        from: crate::domain::Quarter,
        to: crate::domain::Quarter,
        vintage: Option<i64>,
    ) -> Result<std::collections::BTreeMap<Orgnr, crate::protocol::BaselineFacts>, StoreError>;

    /// The largest `antall_personer` per firm over the quarters `from..=to` (as of `vintage`,
    /// latest if none): NAV masks a window of quarters when every quarter has fewer than 5.
    async fn baseline_persons(
        &self,
        from: crate::domain::Quarter,
        to: crate::domain::Quarter,
        vintage: Option<i64>,
    ) -> Result<std::collections::BTreeMap<Orgnr, u64>, StoreError>;

    /// One firm's quarters as of `vintage` (latest if none).
    async fn statistics_values(
        &self,
        orgnr: Orgnr,
        vintage: Option<i64>,
    ) -> Result<Vec<statistics::StoredValue>, StoreError>;

    /// One firm's metadata (sector, næring) per quarter as of `vintage` (latest if none).
    async fn statistics_metadata(
        &self,
        orgnr: Orgnr,
        vintage: Option<i64>,
    ) -> Result<Vec<statistics::StoredMetadata>, StoreError>;
}

/// What was delivered and measured in a trial: take-up events, survey results, and the outcome
/// summary by arm and quarter.
#[async_trait]
pub trait TakeupStore: Send + Sync {
    /// Records take-up events after checking them against every firm's registered history, under
    /// the trial's lock, all or nothing; an event that is a protocol deviation is recorded with
    /// its deviation row in the same transaction, and the audit row names each deviation.
    ///
    /// # Errors
    /// [`takeup::TakeupFailure::Invalid`] naming each row and field; or a store error.
    async fn record_takeup(
        &self,
        id: &str,
        events: &[takeup::NewTakeupEvent],
        by: &str,
        today: chrono::NaiveDate,
        audit: &NewAuditEntry,
    ) -> Result<Audited<takeup::TakeupReceipt>, takeup::TakeupFailure>;

    /// A trial's protocol deviations with the take-up record each came from, oldest first.
    async fn protocol_deviations(
        &self,
        id: &str,
    ) -> Result<Vec<takeup::DeviationRecord>, StoreError>;

    /// A trial's protocol deviations counted per arm, fylke and kind (records and distinct
    /// firms), sorted by arm, fylke and kind; only cells with a deviation.
    async fn deviation_counts(&self, id: &str) -> Result<Vec<takeup::DeviationCount>, StoreError>;

    /// A trial's take-up events, optionally of one fylke's firms.
    async fn takeup_events(
        &self,
        id: &str,
        fylke: Option<FylkeCode>,
    ) -> Result<Vec<crate::takeup::TakeupEvent>, StoreError>;

    /// Records survey results, all or nothing; a result already recorded is a conflict.
    async fn record_surveys(
        &self,
        id: &str,
        rows: &[(crate::takeup::SurveyRow, FylkeCode)],
        by: &str,
        audit: &NewAuditEntry,
    ) -> Result<Audited<usize>, StoreError>;

    /// A trial's survey results, optionally of one fylke's firms.
    async fn survey_results(
        &self,
        id: &str,
        fylke: Option<FylkeCode>,
    ) -> Result<Vec<crate::takeup::SurveyRow>, StoreError>;

    /// Sick leave by arm and quarter over the randomized firms, as of a statistics vintage.
    async fn outcome_summary(
        &self,
        id: &str,
        vintage: Option<i64>,
    ) -> Result<Vec<takeup::OutcomeCell>, StoreError>;

    /// The randomized firms' statistics from `from` to `to`, each firm-quarter at its latest
    /// vintage up to `vintage` (latest if none), sorted by firm and quarter: the estimators' input.
    async fn trial_panel(
        &self,
        id: &str,
        from: crate::domain::Quarter,
        to: crate::domain::Quarter,
        vintage: Option<i64>,
    ) -> Result<Vec<takeup::PanelRow>, StoreError>;
}

/// Jobs: long computations claimed by one worker at a time under a lease ([`jobs`]). Every
/// start, cancellation and completion writes its audit row in the same transaction.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Claims the oldest queued job, or a running one whose lease expired before `now_ms`, for
    /// `lease`; one already started `max_attempts` times is failed instead (and returned so).
    async fn claim_job(
        &self,
        lease: &jobs::Lease,
        now: DateTime<Utc>,
        now_ms: i64,
        max_attempts: u32,
        audit: &NewAuditEntry,
    ) -> Result<Option<jobs::JobRecord>, StoreError>;

    /// Renews the lease and records progress: `Some(cancel requested)`, or `None` when the
    /// worker no longer holds the job.
    async fn heartbeat_job(
        &self,
        id: i64,
        lease: &jobs::Lease,
        progress: &jobs::JobProgress,
    ) -> Result<Option<bool>, StoreError>;

    /// Ends a job the worker `owner` holds after `elapsed_seconds`, storing an analysis result
    /// with it; `None` when the worker no longer holds it (nothing is written).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the run already has a result.
    async fn finish_job(
        &self,
        id: i64,
        owner: &str,
        outcome: &jobs::JobOutcome,
        elapsed_seconds: Option<f64>,
        audit: &NewAuditEntry,
    ) -> Result<Option<jobs::JobRecord>, StoreError>;

    /// Gives a held job back to the queue (the service is stopping); whether it was held.
    async fn release_job(&self, id: i64, owner: &str) -> Result<bool, StoreError>;

    /// Cancels a queued job, or asks a running one to stop.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Conflict`] if it has finished.
    async fn cancel_job(
        &self,
        id: i64,
        audit: &NewAuditEntry,
    ) -> Result<Audited<jobs::JobRecord>, StoreError>;

    /// One job.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    async fn get_job(&self, id: i64) -> Result<jobs::JobRecord, StoreError>;

    /// Jobs, newest first.
    async fn list_jobs(&self, query: &jobs::JobQuery) -> Result<Vec<jobs::JobRecord>, StoreError>;
}

/// Analysis runs: a trial's estimates stored once per key ([`analyses`]).
#[async_trait]
pub trait AnalysisStore: Send + Sync {
    /// Creates the run with this key and queues its job, or returns the run that has the key
    /// (queueing a new job if its last one failed or was cancelled), with its audit row.
    async fn create_analysis(
        &self,
        new: &analyses::NewAnalysis,
        audit: &NewAuditEntry,
    ) -> Result<Audited<(analyses::AnalysisRecord, analyses::RunOrigin)>, StoreError>;

    /// The run of a trial with this key, if any.
    async fn find_analysis(
        &self,
        trial: &str,
        run_key: &str,
    ) -> Result<Option<analyses::AnalysisRecord>, StoreError>;

    /// One run of a trial (without its result; see [`AnalysisStore::analysis_result`]).
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    async fn get_analysis(
        &self,
        trial: &str,
        id: i64,
    ) -> Result<analyses::AnalysisRecord, StoreError>;

    /// A run's stored canonical result JSON, once done.
    async fn analysis_result(&self, id: i64) -> Result<Option<String>, StoreError>;

    /// A trial's runs, newest first.
    async fn list_analyses(
        &self,
        trial: &str,
        limit: u32,
    ) -> Result<Vec<analyses::AnalysisRecord>, StoreError>;
}

/// Page sessions (`src/pages`): each acts as the token signed in with.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session and its audit row in one transaction.
    async fn create_session(
        &self,
        new: &sessions::NewSession,
        audit: &NewAuditEntry,
    ) -> Result<Audited<()>, StoreError>;

    /// The session with this hash if it is valid at `now`: not ended, not expired, and its token
    /// not revoked.
    async fn find_session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<sessions::SessionInfo>, StoreError>;

    /// Ends a session (sign-out) with its audit row; false if it had already ended or does not
    /// exist.
    async fn end_session(
        &self,
        id_hash: &str,
        audit: &NewAuditEntry,
    ) -> Result<Audited<bool>, StoreError>;
}

/// The persistence interface. One implementation per backend; handlers only see this trait.
#[async_trait]
pub trait Store:
    TrialStore
    + StatisticsStore
    + TakeupStore
    + JobStore
    + AnalysisStore
    + SessionStore
    + Send
    + Sync
    + 'static
{
    /// Which engine this is.
    fn backend(&self) -> Backend;

    /// Applies pending migrations.
    ///
    /// # Errors
    /// [`StoreError::Migrate`] if a migration fails or an applied one was changed.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Checks that the database is reachable and usable (for `/readyz`).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] with the reason.
    async fn ready(&self) -> Result<(), StoreError>;

    /// Creates a token and its audit row in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if an active token already has the name.
    async fn create_token(
        &self,
        token: &NewToken,
        audit: &NewAuditEntry,
    ) -> Result<Audited<TokenInfo>, StoreError>;

    /// Lists every token, active and revoked, oldest first.
    async fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError>;

    /// Revokes a token (it stays listed, with when and by whom) and writes the audit row.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id; [`StoreError::Conflict`] if already revoked.
    async fn revoke_token(
        &self,
        id: i64,
        revoked_by: &str,
        audit: &NewAuditEntry,
    ) -> Result<Audited<TokenInfo>, StoreError>;

    /// The active (not revoked) token with this hash, if any.
    async fn find_active_token(&self, hash: &str) -> Result<Option<TokenInfo>, StoreError>;

    /// Appends one audit row on its own (for reads and refusals, which change nothing else); the
    /// row is durable when this returns. On SQLite, while another write holds the database's
    /// single writer, the row is committed to the audit queue beside the database instead, and
    /// moved into `audit_log` when the writer is free; the id returned is then its place in the
    /// queue, not its `audit_log` id.
    async fn append_audit(&self, entry: &NewAuditEntry) -> Result<i64, StoreError>;

    /// Reads the audit log, newest first (on SQLite, after moving every queued row into it).
    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;

    /// Closes the connection pool, waiting for connections to be returned.
    async fn close(&self);
}

/// Opens the store a database URL names and applies migrations.
///
/// `sqlite://path` (created on first use, WAL, foreign keys on) or `postgres://…`.
///
/// # Errors
/// [`StoreError::BadUrl`] for another scheme; connection and migration errors otherwise.
pub async fn connect(url: &str, options: StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    let store = open(url, options).await?;
    store.migrate().await?;
    Ok(store)
}

/// Opens the store a database URL names, without migrating.
///
/// # Errors
/// As [`connect`], less migration.
pub async fn open(url: &str, options: StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url, options).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::open(url, options).await?))
    } else {
        Err(StoreError::BadUrl(format!(
            "unsupported database URL `{}`: use sqlite://PATH or postgres://USER@HOST/DB",
            redact_url(url)
        )))
    }
}

/// A URL with any password (in the user info or a `password=` parameter) replaced by `***`, for
/// messages and logs.
pub fn redact_url(url: &str) -> String {
    let (url, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let base = redact_userinfo(url);
    match query {
        None => base,
        Some(query) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_owned(),
                })
                .collect();
            format!("{base}?{}", params.join("&"))
        }
    }
}

fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://ia:s3cret@db:5432/ia"),
            "postgres://ia:***@db:5432/ia"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
        assert_eq!(redact_url("sqlite://ia-rct.db"), "sqlite://ia-rct.db");
        assert_eq!(
            redact_url("postgres://db/ia?user=ia&password=s3cret&sslmode=require"),
            "postgres://db/ia?user=ia&password=***&sslmode=require"
        );
    }

    #[test]
    fn statuses_map_to_audit_results() {
        assert_eq!(AuditResult::from_status(201), AuditResult::Permitted);
        assert_eq!(AuditResult::from_status(401), AuditResult::Denied);
        assert_eq!(AuditResult::from_status(403), AuditResult::Denied);
        assert_eq!(AuditResult::from_status(422), AuditResult::Failed);
        assert_eq!(AuditResult::from_status(500), AuditResult::Failed);
    }
}
