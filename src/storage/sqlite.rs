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

/// The primitives of applying a statistics upload on SQLite.
mod bulk {
    use sqlx::{QueryBuilder, Sqlite, SqlitePool, Transaction};
    use tokio::sync::mpsc::Receiver;

    use super::statistics::{
        self, Batch, Dest, End, IngestMessage, Plan, Target, UploadKind, Work, varighet_json,
    };

    /// A transaction that holds the write lock from the start, so that uploads apply one at a time
    /// and the reserved vintage stays free.
    pub(super) async fn begin(
        pool: &SqlitePool,
    ) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// The id `AUTOINCREMENT` would give the next upload.
    pub(super) async fn reserve_vintage(
        tx: &mut Transaction<'static, Sqlite>,
    ) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'statistics_uploads'), 0), \
                        COALESCE((SELECT MAX(id) FROM statistics_uploads), 0)) + 1",
        )
        .fetch_one(&mut **tx)
        .await
    }

    /// Takes the upload's stream in and writes each chunk as it comes; returns how the stream ended
    /// (`None`: the sender went away first).
    pub(super) async fn receive(
        tx: &mut Transaction<'static, Sqlite>,
        plan: &mut Plan,
        messages: &mut Receiver<IngestMessage>,
    ) -> Result<Option<End>, sqlx::Error> {
        let mut work = Work::new();
        let mut end = None;
        while end.is_none() {
            let Some(message) = messages.recv().await else {
                break;
            };
            if let Some(kind) = plan.quarters_needed(&message) {
                let known = sqlx::query_as(statistics::SELECT_QUARTERS)
                    .bind(kind.as_str())
                    .fetch_all(&mut **tx)
                    .await?;
                plan.known_quarters(known);
            }
            plan.take(message, &mut work, &mut end);
            while let Some((dest, rows)) = work.pop_front() {
                let target = prepare(tx, plan, dest, rows.batch().kind()).await?;
                write(tx, rows.batch(), target).await?;
            }
        }
        Ok(end)
    }

    /// Where `dest` writes: reserves the vintage before the register is first written, and
    /// creates the staging table before it is first written.
    async fn prepare(
        tx: &mut Transaction<'static, Sqlite>,
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
                for statement in create_incoming(kind) {
                    sqlx::query(&statement).execute(&mut **tx).await?;
                }
                plan.incoming = true;
                Ok(Target::Incoming)
            }
            Dest::Incoming => Ok(Target::Incoming),
        }
    }

    /// The staging table, on this connection until the next upload drops it.
    fn create_incoming(kind: UploadKind) -> Vec<String> {
        vec![
            "DROP TABLE IF EXISTS temp.incoming".to_owned(),
            format!("CREATE TEMP TABLE incoming AS {}", kind.sql().incoming_like),
        ]
    }

    /// Writes a batch with one multi-row `INSERT` (within SQLite's limit of bound parameters).
    async fn write(
        tx: &mut Transaction<'static, Sqlite>,
        batch: Batch<'_>,
        target: Target,
    ) -> Result<(), sqlx::Error> {
        let sql = batch.kind().sql();
        let mut builder = QueryBuilder::<Sqlite>::new(match target {
            Target::Register(_) => sql.insert_register,
            Target::Incoming => sql.insert_incoming,
        });
        let key = |b: &mut sqlx::query_builder::Separated<'_, '_, Sqlite, &'static str>,
                   row_no: usize,
                   orgnr: crate::domain::Orgnr,
                   quarter: crate::domain::Quarter| {
            if let Target::Incoming = target {
                b.push_bind(i64::try_from(row_no).unwrap_or(i64::MAX));
            }
            b.push_bind(orgnr.to_string())
                .push_bind(quarter.year())
                .push_bind(i32::from(quarter.quarter()));
            if let Target::Register(vintage) = target {
                b.push_bind(vintage);
            }
        };
        match batch {
            Batch::Statistics(rows) => {
                builder.push_values(rows.iter(), |mut b, (row_no, r)| {
                    key(&mut b, *row_no, r.orgnr, r.quarter);
                    b.push_bind(r.tapte_dagsverk)
                        .push_bind(r.mulige_dagsverk)
                        .push_bind(i32::try_from(r.antall_personer).unwrap_or(i32::MAX))
                        .push_bind(r.tapte_dagsverk_gradert)
                        .push_bind(r.prosent_published)
                        .push_bind(r.rectype.clone())
                        .push_bind(varighet_json(&r.varighet));
                });
            }
            Batch::Metadata(rows) => {
                builder.push_values(rows.iter(), |mut b, (row_no, r)| {
                    key(&mut b, *row_no, r.orgnr, r.quarter);
                    b.push_bind(r.sektor.as_str())
                        .push_bind(r.primaernaring.clone())
                        .push_bind(r.primaernaringskode.clone())
                        .push_bind(r.rectype.clone());
                });
            }
        }
        builder.build().execute(&mut **tx).await?;
        Ok(())
    }

    /// The receipt, with the id reserved by [`reserve_vintage`].
    pub(super) const INSERT_UPLOAD: &str = "\
        INSERT INTO statistics_uploads (id, sha256, idempotency_key, source, rows, inserted, unchanged, \
                                        revised, created_at, created_by, kind) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
}

impl_statistics_store!(SqliteStore, Sqlite, bulk);

impl_takeup_store!(SqliteStore);
