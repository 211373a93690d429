//! The PostgreSQL backend, for production.

use std::time::Duration;

use crate::domain::{FylkeCode, Orgnr};
use crate::protocol::{Protocol, TrialState};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use std::str::FromStr;

use super::sql::{self, impl_store};
use super::statistics::{self, impl_statistics_store};
use super::takeup::{self, impl_takeup_store};
use super::trials::{self, impl_trial_store};
use super::{
    Acknowledgement, AssignmentRecord, AuditEntry, AuditQuery, Audited, Backend, DrawRecord,
    EnrollmentRecord, NewAuditEntry, NewDraw, NewEnrollment, NewToken, ProtocolVersionInfo,
    StatisticsStore, Store, StoreError, StoreOptions, TakeupStore, TokenInfo, TrialInfo,
    TrialStore, UploadReceipt, redact_url,
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

    async fn check_ready(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

impl_store!(PgStore, Postgres, Backend::Postgres);
impl_trial_store!(PgStore, Postgres);

/// The staging table an upload is checked in, dropped with its transaction's connection use.
const CREATE_INCOMING: [&str; 1] = [
    "CREATE TEMP TABLE incoming (row_no BIGINT NOT NULL, orgnr TEXT NOT NULL, arstall INTEGER NOT NULL, \
     kvartal INTEGER NOT NULL, tapte_dagsverk DOUBLE PRECISION NOT NULL, \
     mulige_dagsverk DOUBLE PRECISION NOT NULL, antall_personer INTEGER NOT NULL, \
     tapte_gradert DOUBLE PRECISION, prosent DOUBLE PRECISION, rectype TEXT, varighet TEXT NOT NULL, \
     status TEXT) ON COMMIT DROP",
];

/// Stages a chunk with `COPY`, PostgreSQL's bulk path.
async fn stage(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    chunk: &[(usize, crate::statistics::StatRow)],
) -> Result<(), sqlx::Error> {
    let mut copy = tx
        .copy_in_raw(
            "COPY incoming (row_no, orgnr, arstall, kvartal, tapte_dagsverk, mulige_dagsverk, \
             antall_personer, tapte_gradert, prosent, rectype, varighet) FROM STDIN WITH (FORMAT text)",
        )
        .await?;
    copy.send(statistics::copy_text(chunk)).await?;
    copy.finish().await?;
    Ok(())
}

impl_statistics_store!(PgStore, Postgres, CREATE_INCOMING, stage);

impl_takeup_store!(PgStore);
