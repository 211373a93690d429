//! The embedded SQLite backend: one file, WAL, foreign keys on, full fsync on commit.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::domain::{FylkeCode, Orgnr};
use crate::protocol::{Protocol, TrialState};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use super::sql::{self, impl_store};
use super::statistics::{self, impl_statistics_store};
use super::takeup::{self, impl_takeup_store};
use super::trials::{self, impl_trial_store};
use super::{
    Acknowledgement, AssignmentRecord, AuditEntry, AuditQuery, Audited, Backend, DrawRecord,
    EnrollmentRecord, NewAuditEntry, NewDraw, NewEnrollment, NewToken, ProtocolVersionInfo,
    StatisticsStore, Store, StoreError, StoreOptions, TakeupStore, TokenInfo, TrialInfo,
    TrialStore, UploadReceipt,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/storage/migrations/sqlite");

/// A SQLite database file.
pub struct SqliteStore {
    pool: SqlitePool,
    options: StoreOptions,
    /// The database file and the identity (device, inode) it had when opened; `None` in memory.
    file: Option<(PathBuf, FileIdentity)>,
}

type FileIdentity = (u64, u64);

fn file_identity(path: &std::path::Path) -> std::io::Result<FileIdentity> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

impl SqliteStore {
    /// Opens (creating if missing) the database a `sqlite://` URL names.
    ///
    /// # Errors
    /// [`StoreError::BadUrl`] for a malformed URL; [`StoreError::Unavailable`] if the file cannot
    /// be opened or created.
    pub async fn open(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::BadUrl(format!("invalid SQLite URL `{url}`: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let path = connect.get_filename().to_path_buf();
        let in_memory = path.as_os_str().is_empty() || path.to_string_lossy().contains(":memory:");
        // An in-memory database exists per connection: one connection, or every connection would
        // see its own empty database.
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { 8 })
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot open SQLite database `{url}`: {e}"))
            })?;
        let file = if in_memory {
            None
        } else {
            let identity = file_identity(&path).map_err(|e| {
                StoreError::Unavailable(format!("cannot stat {}: {e}", path.display()))
            })?;
            Some((path, identity))
        };
        Ok(SqliteStore {
            pool,
            options,
            file,
        })
    }

    /// Ready when the file the service opened is still the one at its path (a deleted or replaced
    /// file would silently swallow writes) and a query answers.
    async fn check_ready(&self) -> Result<(), StoreError> {
        if let Some((path, identity)) = &self.file {
            match file_identity(path) {
                Ok(now) if now == *identity => {}
                Ok(_) => {
                    return Err(StoreError::Unavailable(format!(
                        "database file {} was replaced since the service opened it",
                        path.display()
                    )));
                }
                Err(e) => {
                    return Err(StoreError::Unavailable(format!(
                        "database file {} is gone: {e}",
                        path.display()
                    )));
                }
            }
        }
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

impl_store!(SqliteStore, Sqlite, Backend::Sqlite);
impl_trial_store!(SqliteStore, Sqlite);

/// The staging table an upload is checked in, dropped with its transaction's connection use.
const CREATE_INCOMING: [&str; 2] = [
    "DROP TABLE IF EXISTS temp.incoming",
    "CREATE TEMP TABLE incoming (row_no INTEGER NOT NULL, orgnr TEXT NOT NULL, arstall INTEGER NOT NULL, \
     kvartal INTEGER NOT NULL, tapte_dagsverk REAL NOT NULL, mulige_dagsverk REAL NOT NULL, \
     antall_personer INTEGER NOT NULL, tapte_gradert REAL, prosent REAL, rectype TEXT, \
     varighet TEXT NOT NULL, status TEXT)",
];

/// Stages a chunk with one multi-row `INSERT` (within SQLite's limit of bound parameters).
async fn stage(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    chunk: &[(usize, crate::statistics::StatRow)],
) -> Result<(), sqlx::Error> {
    let mut builder = sqlx::QueryBuilder::<Sqlite>::new(statistics::INSERT_INCOMING_PREFIX);
    builder.push_values(chunk.iter(), |mut b, (row_no, r)| {
        b.push_bind(i64::try_from(*row_no).unwrap_or(i64::MAX))
            .push_bind(r.orgnr.to_string())
            .push_bind(r.quarter.year())
            .push_bind(i32::from(r.quarter.quarter()))
            .push_bind(r.tapte_dagsverk)
            .push_bind(r.mulige_dagsverk)
            .push_bind(i32::try_from(r.antall_personer).unwrap_or(i32::MAX))
            .push_bind(r.tapte_dagsverk_gradert)
            .push_bind(r.prosent_published)
            .push_bind(r.rectype.clone())
            .push_bind(statistics::varighet_json(&r.varighet));
    });
    builder.build().execute(&mut **tx).await?;
    Ok(())
}

impl_statistics_store!(SqliteStore, Sqlite, CREATE_INCOMING, stage);

impl_takeup_store!(SqliteStore);
