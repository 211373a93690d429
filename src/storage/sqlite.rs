//! The embedded SQLite backend: one file, WAL, foreign keys on, full fsync on commit.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::domain::{FylkeCode, Orgnr};
use crate::protocol::{Protocol, TrialState};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

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
    TakeupStore, TokenInfo, TrialInfo, TrialStore, UploadReceipt,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/storage/migrations/sqlite");

/// A SQLite database file.
pub struct SqliteStore {
    pool: SqlitePool,
    options: StoreOptions,
    /// The database file and the identity (device, inode) it had when opened; `None` in memory.
    file: Option<(PathBuf, FileIdentity)>,
    /// Where standalone audit rows wait while the writer is busy; `None` in memory.
    audit: Option<audit_queue::AuditQueue>,
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
            .connect_with(connect.clone())
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot open SQLite database `{url}`: {e}"))
            })?;
        let (file, audit) = if in_memory {
            (None, None)
        } else {
            let identity = file_identity(&path).map_err(|e| {
                StoreError::Unavailable(format!("cannot stat {}: {e}", path.display()))
            })?;
            let audit = audit_queue::AuditQueue::open(&path, connect, pool.clone()).await?;
            (Some((path, identity)), Some(audit))
        };
        Ok(SqliteStore {
            pool,
            options,
            file,
            audit,
        })
    }

    /// A standalone audit row (a read, a refusal) is committed straight into `audit_log` when the
    /// writer is free within a few milliseconds, and otherwise into the audit queue, which is
    /// fsynced before this returns; see [`audit_queue`]. Either way the row is durable when the
    /// caller answers.
    async fn append_audit_row(&self, entry: &NewAuditEntry) -> Result<i64, StoreError> {
        match &self.audit {
            None => Self::insert_audit(&self.pool, entry).await,
            Some(queue) => {
                if let Some(mut conn) = queue.direct.try_acquire() {
                    match Self::insert_audit(&mut *conn, entry).await {
                        Err(StoreError::Unavailable(_)) => {}
                        other => return other,
                    }
                }
                queue.enqueue(entry).await
            }
        }
    }

    /// Moves every queued audit row into `audit_log`, so that a read of the log sees them.
    async fn settle_audit(&self) -> Result<(), StoreError> {
        match &self.audit {
            None => Ok(()),
            Some(queue) => queue.drain().await,
        }
    }

    async fn before_close(&self) {
        if let Some(queue) = &self.audit {
            queue.close().await;
        }
    }

    /// Ready when the file the service opened is still the one at its path (a deleted or replaced
    /// file would silently swallow writes), neither it nor its folder (where the write-ahead log
    /// and the audit queue live) is read-only, and a query answers on a connection that may write.
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
        if let Some((path, _)) = &self.file {
            // Only stat the files: opening and closing a descriptor of the database file would
            // drop this process's SQLite locks on it (POSIX advisory locks are per process).
            let folder = path.parent().unwrap_or(std::path::Path::new("."));
            for file in [path.as_path(), folder] {
                match std::fs::metadata(file) {
                    Ok(meta) if meta.permissions().readonly() => {
                        return Err(StoreError::Unavailable(format!(
                            "the service cannot write {}: it is read-only",
                            file.display()
                        )));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        return Err(StoreError::Unavailable(format!(
                            "the service cannot write {}: {e}",
                            file.display()
                        )));
                    }
                }
            }
        }
        let query_only: i64 = sqlx::query_scalar("PRAGMA query_only")
            .fetch_one(&self.pool)
            .await?;
        if query_only != 0 {
            return Err(StoreError::Unavailable(
                "the database connection is query-only".to_owned(),
            ));
        }
        Ok(())
    }
}

impl_store!(SqliteStore, Sqlite, Backend::Sqlite);

/// The audit queue: where an audit row of a read waits, durable, while an upload (or any long
/// write) holds SQLite's single writer.
///
/// SQLite has one writer per database file, and every firm-level read writes an audit row. So a
/// read that had to wait for the writer would wait for the whole of an upload's transaction. A
/// read's audit row is therefore first offered to the database with a short busy timeout
/// ([`DIRECT_BUSY_TIMEOUT`]); if the writer is busy, it is committed into a second SQLite file next
/// to the database (`<database>.audit-queue`, WAL, full fsync), whose writer only audit rows use,
/// and the read answers. Several waiting rows share one commit. A mover task copies queued rows
/// into `audit_log` as soon as the writer is free, and deletes them from the queue after that
/// commit; each carries a random `queue_key`, unique in `audit_log`, so that a crash between the
/// two commits cannot insert a row twice. The queue is also emptied when the store opens (after a
/// crash), before every read of the audit log, and when the store closes.
///
/// A queued row gets its `audit_log` id when it is moved, so under load the ids of concurrent
/// requests follow the order in which their rows reached `audit_log`; `at` keeps when each
/// request was made.
mod audit_queue {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use sqlx::SqlitePool;
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    use tokio::sync::{Mutex, Notify, mpsc, oneshot};

    use super::super::{NewAuditEntry, StoreError};

    /// How long a read's audit row waits for the database's writer before it goes to the queue.
    pub(super) const DIRECT_BUSY_TIMEOUT: Duration = Duration::from_millis(20);

    /// Rows per commit, into the queue and out of it.
    const BATCH: usize = 256;

    /// How often the mover looks at the queue when nothing wakes it.
    const MOVER_TICK: Duration = Duration::from_millis(500);

    const CREATE: &str = "\
        CREATE TABLE IF NOT EXISTS pending (\
            seq INTEGER PRIMARY KEY AUTOINCREMENT, queue_key TEXT NOT NULL UNIQUE, \
            at TEXT NOT NULL, request_id TEXT, actor_token_id INTEGER, actor_name TEXT, \
            actor_role TEXT, actor_fylke TEXT, method TEXT NOT NULL, route TEXT NOT NULL, \
            path TEXT NOT NULL, trial_id TEXT, object_ids TEXT NOT NULL, result TEXT NOT NULL, \
            status INTEGER NOT NULL, detail TEXT)";

    const INSERT_PENDING: &str = "\
        INSERT INTO pending (queue_key, at, request_id, actor_token_id, actor_name, actor_role, \
                             actor_fylke, method, route, path, trial_id, object_ids, result, status, detail) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING seq";

    const SELECT_PENDING: &str = "\
        SELECT seq, queue_key, at, request_id, actor_token_id, actor_name, actor_role, actor_fylke, \
               method, route, path, trial_id, object_ids, result, status, detail \
        FROM pending ORDER BY seq LIMIT $1";

    const MOVE_INTO_LOG: &str = "\
        INSERT INTO audit_log (queue_key, at, request_id, actor_token_id, actor_name, actor_role, \
                               actor_fylke, method, route, path, trial_id, object_ids, result, status, detail) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
        ON CONFLICT (queue_key) DO NOTHING";

    /// A queued row, as stored.
    #[derive(sqlx::FromRow)]
    struct Pending {
        seq: i64,
        queue_key: String,
        at: String,
        request_id: Option<String>,
        actor_token_id: Option<i64>,
        actor_name: Option<String>,
        actor_role: Option<String>,
        actor_fylke: Option<String>,
        method: String,
        route: String,
        path: String,
        trial_id: Option<String>,
        object_ids: String,
        result: String,
        status: i64,
        detail: Option<String>,
    }

    type Job = (NewAuditEntry, oneshot::Sender<Result<i64, String>>);

    pub(in super::super) struct AuditQueue {
        /// The database, with [`DIRECT_BUSY_TIMEOUT`]: a read's first try.
        pub(super) direct: SqlitePool,
        /// The database's pool, for moving rows into `audit_log`.
        main: SqlitePool,
        /// The queue file (one connection: the queue's writes never wait on each other's locks).
        queue: SqlitePool,
        jobs: mpsc::Sender<Job>,
        wake: Arc<Notify>,
        /// Held while rows are moved, so two movers do not copy the same rows.
        moving: Arc<Mutex<()>>,
        mover: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    }

    impl AuditQueue {
        /// Opens (creating) the queue next to `database`, moves what a crash left in it, and
        /// starts the writer and the mover.
        pub(super) async fn open(
            database: &Path,
            connect: SqliteConnectOptions,
            main: SqlitePool,
        ) -> Result<Self, StoreError> {
            let mut file = database.as_os_str().to_owned();
            file.push(".audit-queue");
            let queue = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(
                    SqliteConnectOptions::new()
                        .filename(&file)
                        .create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Full)
                        .busy_timeout(Duration::from_secs(10)),
                )
                .await
                .map_err(|e| {
                    StoreError::Unavailable(format!(
                        "cannot open the audit queue {}: {e}",
                        Path::new(&file).display()
                    ))
                })?;
            sqlx::query(CREATE).execute(&queue).await?;
            let direct = SqlitePoolOptions::new()
                .max_connections(2)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(connect.busy_timeout(DIRECT_BUSY_TIMEOUT))
                .await?;
            let (jobs, receiver) = mpsc::channel(1024);
            tokio::spawn(write_queue(queue.clone(), receiver));
            let wake = Arc::new(Notify::new());
            let moving = Arc::new(Mutex::new(()));
            let mover = tokio::spawn(run_mover(
                main.clone(),
                queue.clone(),
                wake.clone(),
                moving.clone(),
            ));
            Ok(AuditQueue {
                direct,
                main,
                queue,
                jobs,
                wake,
                moving,
                mover: std::sync::Mutex::new(Some(mover)),
            })
        }

        /// Commits one row into the queue (with others waiting at the same time) and wakes the
        /// mover; returns its place in the queue.
        pub(super) async fn enqueue(&self, entry: &NewAuditEntry) -> Result<i64, StoreError> {
            let (reply, answer) = oneshot::channel();
            self.jobs
                .send((entry.clone(), reply))
                .await
                .map_err(|_| StoreError::Unavailable("the audit queue is closed".to_owned()))?;
            let seq = answer
                .await
                .map_err(|_| StoreError::Unavailable("the audit queue is closed".to_owned()))?
                .map_err(|e| StoreError::Unavailable(format!("audit queue: {e}")))?;
            self.wake.notify_one();
            Ok(seq)
        }

        /// Moves every queued row into `audit_log`.
        pub(super) async fn drain(&self) -> Result<(), StoreError> {
            drain(&self.main, &self.queue, &self.moving).await
        }

        /// Stops the mover and moves what is left (a row that cannot be moved now stays queued,
        /// durable, for the next start).
        pub(super) async fn close(&self) {
            let mover = self.mover.lock().ok().and_then(|mut m| m.take());
            if let Some(mover) = mover {
                mover.abort();
                let _ = mover.await;
            }
            if let Err(e) = self.drain().await {
                tracing::warn!(error = %e, "audit rows stay queued until the next start");
            }
            self.direct.close().await;
            self.queue.close().await;
        }
    }

    /// A fresh key for a queued row: 128 random bits, hex.
    fn queue_key() -> Result<String, String> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
        Ok(hex::encode(bytes))
    }

    /// The queue's writer: takes every row waiting, commits them together, answers each.
    async fn write_queue(queue: SqlitePool, mut jobs: mpsc::Receiver<Job>) {
        while let Some(first) = jobs.recv().await {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            match commit_batch(&queue, &batch).await {
                Ok(seqs) => {
                    for ((_, reply), seq) in batch.into_iter().zip(seqs) {
                        let _ = reply.send(Ok(seq));
                    }
                }
                Err(e) => {
                    for (_, reply) in batch {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    async fn commit_batch(queue: &SqlitePool, batch: &[Job]) -> Result<Vec<i64>, String> {
        let mut tx = queue.begin().await.map_err(|e| e.to_string())?;
        let mut seqs = Vec::with_capacity(batch.len());
        for (entry, _) in batch {
            let actor = entry.actor.as_ref();
            let object_ids = serde_json::to_string(&entry.object_ids).map_err(|e| e.to_string())?;
            let seq: i64 = sqlx::query_scalar(INSERT_PENDING)
                .bind(queue_key()?)
                .bind(entry.at)
                .bind(entry.request_id.as_deref())
                .bind(actor.map(|a| a.token_id))
                .bind(actor.map(|a| a.name.as_str()).or(entry.operator.as_deref()))
                .bind(actor.map(|a| a.role.as_str()))
                .bind(actor.and_then(|a| a.fylke).map(|f| f.as_str()))
                .bind(entry.method.as_str())
                .bind(entry.route.as_str())
                .bind(entry.path.as_str())
                .bind(entry.trial_id.as_deref())
                .bind(object_ids)
                .bind(entry.result.as_str())
                .bind(i64::from(entry.status))
                .bind(entry.detail.as_deref())
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| e.to_string())?;
            seqs.push(seq);
        }
        tx.commit().await.map_err(|e| e.to_string())?;
        Ok(seqs)
    }

    /// Moves queued rows whenever woken, and every [`MOVER_TICK`].
    async fn run_mover(
        main: SqlitePool,
        queue: SqlitePool,
        wake: Arc<Notify>,
        moving: Arc<Mutex<()>>,
    ) {
        loop {
            if let Err(e) = drain(&main, &queue, &moving).await {
                tracing::debug!(error = %e, "audit rows stay queued; moving them later");
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(MOVER_TICK) => {}
            }
        }
    }

    /// Copies queued rows into `audit_log` (commit), then deletes them from the queue (commit),
    /// [`BATCH`] at a time, until the queue is empty.
    async fn drain(
        main: &SqlitePool,
        queue: &SqlitePool,
        moving: &Mutex<()>,
    ) -> Result<(), StoreError> {
        let _moving = moving.lock().await;
        loop {
            let rows: Vec<Pending> = sqlx::query_as(SELECT_PENDING)
                .bind(BATCH as i64)
                .fetch_all(queue)
                .await?;
            let Some(last) = rows.last().map(|r| r.seq) else {
                return Ok(());
            };
            // IMMEDIATE: wait for the writer before reading, so a commit in between cannot
            // leave this transaction with a stale snapshot.
            let mut tx = main.begin_with("BEGIN IMMEDIATE").await?;
            for r in &rows {
                sqlx::query(MOVE_INTO_LOG)
                    .bind(&r.queue_key)
                    .bind(&r.at)
                    .bind(&r.request_id)
                    .bind(r.actor_token_id)
                    .bind(&r.actor_name)
                    .bind(&r.actor_role)
                    .bind(&r.actor_fylke)
                    .bind(&r.method)
                    .bind(&r.route)
                    .bind(&r.path)
                    .bind(&r.trial_id)
                    .bind(&r.object_ids)
                    .bind(&r.result)
                    .bind(r.status)
                    .bind(&r.detail)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            sqlx::query("DELETE FROM pending WHERE seq <= $1")
                .bind(last)
                .execute(queue)
                .await?;
        }
    }
}
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
impl_job_store!(SqliteStore, Sqlite, "");
impl_analysis_store!(SqliteStore);
impl_session_store!(SqliteStore);
