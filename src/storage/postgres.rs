//! The PostgreSQL backend, for production.

use std::time::Duration;

use crate::domain::{FylkeCode, Orgnr};
use crate::protocol::{Protocol, TrialState};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use std::str::FromStr;

use super::analyses::{self, AnalysisRecord, impl_analysis_store};
use super::jobs::{self, JobKind, JobRecord, JobState, impl_job_store};
use super::sessions::{self, impl_session_store};
use super::sql::{self, impl_store};
use super::statistics::{self, impl_statistics_store};
use super::takeup::{self, impl_takeup_store};
use super::trials::{self, impl_trial_store};
use super::{
    Acknowledgement, AnalysisStore, AssignedFirm, AssignmentCount, AssignmentRecord, AuditEntry,
    AuditQuery, AuditResult, Audited, Backend, DrawRecord, EnrollmentFilter, EnrollmentPage,
    EnrollmentRecord, JobStore, NewAuditEntry, NewDraw, NewEnrollment, NewToken,
    ProtocolVersionInfo, SessionStore, StatisticsStore, Store, StoreError, StoreOptions,
    TakeupStore, TokenInfo, TrialInfo, TrialStore, UploadReceipt, redact_url,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/storage/migrations/postgres");

/// A PostgreSQL database.
pub struct PgStore {
    pool: PgPool,
    options: StoreOptions,
}

impl PgStore {
    /// Connects to the database a `postgres://` URL names.
    ///
    /// # Errors
    /// [`StoreError::BadUrl`] for a malformed URL; [`StoreError::Unavailable`] if the server cannot
    /// be reached.
    pub async fn open(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::BadUrl(format!("invalid PostgreSQL URL `{}`: {e}", redact_url(url)))
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(connect)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot connect to PostgreSQL at `{}`: {e}",
                    redact_url(url)
                ))
            })?;
        Ok(PgStore { pool, options })
    }

    /// Ready means able to write: not a read-only server or session, and the role may insert
    /// into every table of the schema and use every sequence (a role without them would answer
    /// reads and fail every upload).
    async fn check_ready(&self) -> Result<(), StoreError> {
        let read_only: String = sqlx::query_scalar(
            "SELECT CASE WHEN pg_is_in_recovery() THEN 'the server is a read-only standby' \
             WHEN current_setting('transaction_read_only') = 'on' THEN 'transactions are read-only' \
             ELSE '' END",
        )
        .fetch_one(&self.pool)
        .await?;
        if !read_only.is_empty() {
            return Err(StoreError::Unavailable(format!(
                "the service cannot write: {read_only}"
            )));
        }
        let missing: Vec<String> = sqlx::query_scalar(MISSING_WRITE_PRIVILEGES)
            .fetch_all(&self.pool)
            .await?;
        if !missing.is_empty() {
            return Err(StoreError::Unavailable(format!(
                "the service cannot write: role {} lacks {}",
                self.role().await?,
                missing.join(", ")
            )));
        }
        Ok(())
    }

    async fn role(&self) -> Result<String, StoreError> {
        Ok(sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(&self.pool)
            .await?)
    }

    /// A standalone audit row goes straight into `audit_log`: PostgreSQL's row locks let it commit
    /// while an upload's transaction is open.
    async fn append_audit_row(&self, entry: &NewAuditEntry) -> Result<i64, StoreError> {
        Self::insert_audit(&self.pool, entry).await
    }

    /// Every audit row is in `audit_log` once committed.
    async fn settle_audit(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn before_close(&self) {}
}

/// The privileges the service needs to write that its role lacks, one line each: INSERT on every
/// table of the schema but sqlx's migration ledger, USAGE on every sequence. (The CASE keeps
/// `has_sequence_privilege` off other relations: the planner may test it before `relkind`, and it
/// raises "is not a sequence" for a role that is not a superuser.)
const MISSING_WRITE_PRIVILEGES: &str = "\
    SELECT 'INSERT on ' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE n.nspname = current_schema() AND c.relname <> '_sqlx_migrations' \
      AND CASE WHEN c.relkind IN ('r', 'p') THEN NOT has_table_privilege(c.oid, 'INSERT') \
          ELSE false END \
    UNION ALL \
    SELECT 'USAGE on sequence ' || c.relname FROM pg_class c \
    JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE n.nspname = current_schema() \
      AND CASE WHEN c.relkind = 'S' THEN NOT has_sequence_privilege(c.oid, 'USAGE') ELSE false END \
    ORDER BY 1";

impl_store!(PgStore, Postgres, Backend::Postgres);
impl_trial_store!(PgStore, Postgres);

/// The primitives of applying a statistics upload on PostgreSQL.
mod bulk {
    use sqlx::{PgPool, Postgres, Transaction};
    use tokio::sync::mpsc::Receiver;

    use super::statistics::{self, Dest, End, IngestMessage, Plan, Target, UploadKind, Work};

    /// The key of the transaction-scoped advisory lock that makes uploads apply one at a time.
    const UPLOAD_LOCK: i64 = 0x6961_7263_7473_7431; // "iarctst1"

    /// A transaction that holds the upload lock, so that uploads apply one at a time, in the order
    /// of their vintages, each compared with everything committed before it.
    pub(super) async fn begin(
        pool: &PgPool,
    ) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(UPLOAD_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// The next id of the receipts' identity column (taken under the lock, so vintages are
    /// committed in order; a refused upload leaves a gap).
    pub(super) async fn reserve_vintage(
        tx: &mut Transaction<'static, Postgres>,
    ) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT nextval(pg_get_serial_sequence('statistics_uploads', 'id'))")
            .fetch_one(&mut **tx)
            .await
    }

    /// Takes the upload's stream in and writes it with `COPY`; returns how the stream ended
    /// (`None`: the sender went away first).
    ///
    /// One `COPY` stays open for as long as the chunks go to the same place, so PostgreSQL takes
    /// in a stream of rows, as from `\copy`, while the next chunks are parsed: a new statement per
    /// chunk would leave the server idle between chunks.
    pub(super) async fn receive(
        tx: &mut Transaction<'static, Postgres>,
        plan: &mut Plan,
        messages: &mut Receiver<IngestMessage>,
    ) -> Result<Option<End>, sqlx::Error> {
        let mut work = Work::new();
        let mut end = None;
        let mut pending: Option<IngestMessage> = None;
        loop {
            let Some((dest, kind)) = work.front().map(|(d, rows)| (*d, rows.batch().kind())) else {
                if end.is_some() {
                    break;
                }
                let message = match pending.take() {
                    Some(message) => message,
                    None => match messages.recv().await {
                        Some(message) => message,
                        None => break,
                    },
                };
                if let Some(kind) = plan.quarters_needed(&message) {
                    let known = sqlx::query_as(statistics::SELECT_QUARTERS)
                        .bind(kind.as_str())
                        .fetch_all(&mut **tx)
                        .await?;
                    plan.known_quarters(known);
                }
                plan.take(message, &mut work, &mut end);
                continue;
            };
            let target = prepare(tx, plan, dest, kind).await?;
            let sql = kind.sql();
            let mut copy = tx
                .copy_in_raw(match dest {
                    Dest::Register => sql.copy_register,
                    Dest::Incoming => sql.copy_incoming,
                })
                .await?;
            let streamed: Result<(), sqlx::Error> = async {
                loop {
                    while work.front().is_some_and(|(d, _)| *d == dest) {
                        if let Some((_, rows)) = work.pop_front() {
                            copy.send(statistics::copy_text(rows.batch(), target))
                                .await?;
                        }
                    }
                    if !work.is_empty() || end.is_some() {
                        return Ok(());
                    }
                    let Some(message) = messages.recv().await else {
                        return Ok(());
                    };
                    if plan.quarters_needed(&message).is_some() {
                        pending = Some(message);
                        return Ok(());
                    }
                    plan.take(message, &mut work, &mut end);
                }
            }
            .await;
            match streamed {
                Ok(()) => {
                    copy.finish().await?;
                }
                Err(e) => {
                    let _ = copy.abort("sending the rows failed").await;
                    return Err(e);
                }
            }
        }
        Ok(end)
    }

    /// Where `dest` writes: reserves the vintage before the register is first written, and
    /// creates the staging table before it is first written.
    async fn prepare(
        tx: &mut Transaction<'static, Postgres>,
        plan: &mut Plan,
        dest: Dest,
        kind: UploadKind,
    ) -> Result<Target, sqlx::Error> {
        match dest {
            Dest::Register => {
                let vintage = match plan.vintage {
                    Some(vintage) => vintage,
                    None => reserve_vintage(tx).await?,
                };
                plan.vintage = Some(vintage);
                Ok(Target::Register(vintage))
            }
            Dest::Incoming if !plan.incoming => {
                sqlx::query(&format!(
                    "CREATE TEMP TABLE incoming ON COMMIT DROP AS {}",
                    kind.sql().incoming_like
                ))
                .execute(&mut **tx)
                .await?;
                plan.incoming = true;
                Ok(Target::Incoming)
            }
            Dest::Incoming => Ok(Target::Incoming),
        }
    }

    /// The receipt, with the id reserved by [`reserve_vintage`].
    pub(super) const INSERT_UPLOAD: &str = "\
        INSERT INTO statistics_uploads (id, sha256, idempotency_key, source, rows, inserted, unchanged, \
                                        revised, created_at, created_by, kind) \
        OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
}

impl_statistics_store!(PgStore, Postgres, bulk);

impl_takeup_store!(PgStore);
impl_job_store!(PgStore, Postgres, "FOR UPDATE SKIP LOCKED");
impl_analysis_store!(PgStore);
impl_session_store!(PgStore);
