//! NAV's firm-quarter statistics as stored: versioned by upload (vintage), never changed, read as
//! of a vintage. Uploads arrive as a stream of row chunks and are applied in one transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreError;
use crate::register::RowError;
use crate::statistics::StatRow;

/// Where an upload came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UploadSource {
    /// `POST /v1/statistics`.
    Api,
    /// `ia-rct ingest`.
    Cli,
}

impl UploadSource {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            UploadSource::Api => "api",
            UploadSource::Cli => "cli",
        }
    }
}

/// What the ingesting side sends the store, in order: chunks of rows (and of problems), then the
/// end with the content's hash.
#[derive(Debug)]
pub enum IngestMessage {
    /// Valid rows with their 1-based row numbers.
    Rows(Vec<(usize, StatRow)>),
    /// Invalid rows.
    Problems(Vec<RowError>),
    /// The upload is complete.
    Done {
        /// SHA-256 (hex) of the uploaded bytes.
        sha256: String,
    },
    /// Reading the upload failed; nothing may be applied.
    Failed(String),
}

/// An upload to apply.
#[derive(Debug, Clone)]
pub struct NewStatisticsUpload {
    /// API or command line.
    pub source: UploadSource,
    /// The client's `Idempotency-Key`, if any.
    pub idempotency_key: Option<String>,
    /// Who uploads.
    pub created_by: String,
}

/// The receipt of an upload; its id is the vintage of the values it brought.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StatisticsReceipt {
    /// The vintage (upload id).
    pub vintage: i64,
    /// SHA-256 of the uploaded content.
    pub sha256: String,
    /// The client's idempotency key.
    pub idempotency_key: Option<String>,
    /// API or command line.
    pub source: UploadSource,
    /// Rows in the upload.
    pub rows: u64,
    /// Firm-quarters new to the register.
    pub inserted: u64,
    /// Firm-quarters whose values were already the latest.
    pub unchanged: u64,
    /// Firm-quarters with changed values: a new vintage beside the old.
    pub revised: u64,
    /// When.
    pub created_at: DateTime<Utc>,
    /// By whom.
    pub created_by: String,
}

impl StatisticsReceipt {
    /// `unchanged` when the upload changed nothing, else `applied`.
    pub fn outcome(&self) -> &'static str {
        if self.inserted == 0 && self.revised == 0 {
            "unchanged"
        } else {
            "applied"
        }
    }
}

/// Why an upload was not applied.
#[derive(Debug, thiserror::Error)]
pub enum IngestFailure {
    /// Invalid rows: the first 100 and the total. Nothing was written.
    #[error("{total} problem(s) in the upload; nothing was written")]
    Invalid {
        /// The first 100 problems.
        errors: Vec<RowError>,
        /// How many in all.
        total: usize,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for IngestFailure {
    fn from(e: sqlx::Error) -> Self {
        IngestFailure::Store(e.into())
    }
}

/// Canonical JSON of a row's varighet classes (sorted keys), as stored and compared.
pub(super) fn varighet_json(varighet: &BTreeMap<char, f64>) -> String {
    serde_json::to_string(varighet).unwrap_or_else(|_| "{}".to_owned())
}

pub(super) const INSERT_INCOMING_PREFIX: &str = "INSERT INTO incoming (row_no, orgnr, arstall, kvartal, \
    tapte_dagsverk, mulige_dagsverk, antall_personer, tapte_gradert, prosent, rectype, varighet) ";

pub(super) const DUPLICATES: &str = "\
    SELECT orgnr, arstall, kvartal, MIN(row_no), MAX(row_no) FROM incoming \
    GROUP BY orgnr, arstall, kvartal HAVING COUNT(*) > 1 ORDER BY MIN(row_no)";

/// Marks each incoming row `inserted` (no value yet), `unchanged` (equal to the latest) or
/// `revised`.
pub(super) const CLASSIFY: &str = "\
    UPDATE incoming SET status = CASE \
      WHEN NOT EXISTS (SELECT 1 FROM statistics s WHERE s.orgnr = incoming.orgnr \
                       AND s.arstall = incoming.arstall AND s.kvartal = incoming.kvartal) THEN 'inserted' \
      WHEN EXISTS (SELECT 1 FROM statistics s WHERE s.orgnr = incoming.orgnr \
                   AND s.arstall = incoming.arstall AND s.kvartal = incoming.kvartal \
                   AND s.vintage = (SELECT MAX(v.vintage) FROM statistics v WHERE v.orgnr = incoming.orgnr \
                                    AND v.arstall = incoming.arstall AND v.kvartal = incoming.kvartal) \
                   AND s.tapte_dagsverk = incoming.tapte_dagsverk \
                   AND s.mulige_dagsverk = incoming.mulige_dagsverk \
                   AND s.antall_personer = incoming.antall_personer \
                   AND s.tapte_gradert IS NOT DISTINCT FROM incoming.tapte_gradert \
                   AND s.prosent IS NOT DISTINCT FROM incoming.prosent \
                   AND s.rectype IS NOT DISTINCT FROM incoming.rectype \
                   AND s.varighet = incoming.varighet) THEN 'unchanged' \
      ELSE 'revised' END";

/// Whether the register has any value in the quarters the upload brings (if not, every incoming
/// row is new and the per-row comparison can be skipped).
pub(super) const ANY_IN_QUARTERS: &str = "\
    SELECT EXISTS (SELECT 1 FROM statistics s \
                   WHERE EXISTS (SELECT 1 FROM (SELECT DISTINCT arstall, kvartal FROM incoming) q \
                                 WHERE q.arstall = s.arstall AND q.kvartal = s.kvartal))";

pub(super) const COUNT_STATUS: &str = "SELECT status, COUNT(*) FROM incoming GROUP BY status";

pub(super) const INSERT_UPLOAD: &str = "\
    INSERT INTO statistics_uploads (sha256, idempotency_key, source, rows, inserted, unchanged, revised, created_at, created_by) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id";

pub(super) const APPLY: &str = "\
    INSERT INTO statistics (orgnr, arstall, kvartal, vintage, tapte_dagsverk, mulige_dagsverk, antall_personer, \
                            tapte_gradert, prosent, rectype, varighet) \
    SELECT orgnr, arstall, kvartal, $1, tapte_dagsverk, mulige_dagsverk, antall_personer, tapte_gradert, prosent, \
           rectype, varighet \
    FROM incoming WHERE status IS NULL OR status <> 'unchanged'";

pub(super) const SELECT_UPLOADS: &str = "\
    SELECT id, sha256, idempotency_key, source, rows, inserted, unchanged, revised, created_at, created_by \
    FROM statistics_uploads WHERE ($1 IS NULL OR idempotency_key = $1) ORDER BY id";

/// Baseline sums over a window, from the register as of a vintage (latest by default).
pub(super) const BASELINE_SUMS: &str = "\
    SELECT s.orgnr, SUM(s.tapte_dagsverk), SUM(s.mulige_dagsverk), COUNT(*) \
    FROM statistics s \
    WHERE (s.arstall * 4 + s.kvartal) BETWEEN $1 AND $2 \
      AND s.vintage = (SELECT MAX(v.vintage) FROM statistics v WHERE v.orgnr = s.orgnr \
                       AND v.arstall = s.arstall AND v.kvartal = s.kvartal AND v.vintage <= $3) \
    GROUP BY s.orgnr";

/// One firm-quarter's values as of a vintage.
pub(super) const SELECT_VALUES: &str = "\
    SELECT s.orgnr, s.arstall, s.kvartal, s.vintage, s.tapte_dagsverk, s.mulige_dagsverk, s.antall_personer \
    FROM statistics s \
    WHERE s.orgnr = $1 \
      AND s.vintage = (SELECT MAX(v.vintage) FROM statistics v WHERE v.orgnr = s.orgnr \
                       AND v.arstall = s.arstall AND v.kvartal = s.kvartal AND v.vintage <= $2) \
    ORDER BY s.arstall, s.kvartal";

#[derive(sqlx::FromRow)]
pub(super) struct UploadRow {
    id: i64,
    sha256: String,
    idempotency_key: Option<String>,
    source: String,
    rows: i64,
    inserted: i64,
    unchanged: i64,
    revised: i64,
    created_at: DateTime<Utc>,
    created_by: String,
}

impl TryFrom<UploadRow> for StatisticsReceipt {
    type Error = StoreError;
    fn try_from(r: UploadRow) -> Result<Self, StoreError> {
        let count = |v: i64| u64::try_from(v).map_err(|e| StoreError::Corrupt(e.to_string()));
        Ok(StatisticsReceipt {
            vintage: r.id,
            sha256: r.sha256,
            idempotency_key: r.idempotency_key,
            source: match r.source.as_str() {
                "api" => UploadSource::Api,
                "cli" => UploadSource::Cli,
                other => return Err(StoreError::Corrupt(format!("upload source `{other}`"))),
            },
            rows: count(r.rows)?,
            inserted: count(r.inserted)?,
            unchanged: count(r.unchanged)?,
            revised: count(r.revised)?,
            created_at: r.created_at,
            created_by: r.created_by,
        })
    }
}

/// One firm-quarter as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct StoredValue {
    /// The firm.
    pub orgnr: String,
    /// Year.
    pub arstall: i32,
    /// Quarter 1-4.
    pub kvartal: i32,
    /// The vintage the value came in.
    pub vintage: i64,
    /// Tapte dagsverk.
    pub tapte_dagsverk: f64,
    /// Mulige dagsverk.
    pub mulige_dagsverk: f64,
    /// Persons.
    pub antall_personer: i32,
}

/// Rows in PostgreSQL's `COPY … (FORMAT text)` form: tab-separated, `\N` for NULL, with
/// backslash, tab, newline and carriage return escaped.
pub(super) fn copy_text(chunk: &[(usize, StatRow)]) -> Vec<u8> {
    fn escape(out: &mut String, value: &str) {
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                other => out.push(other),
            }
        }
    }
    use std::fmt::Write as _;
    let mut out = String::with_capacity(chunk.len() * 96);
    for (row_no, r) in chunk {
        let _ = write!(
            out,
            "{row_no}\t{}\t{}\t{}\t{:?}\t{:?}\t{}\t",
            r.orgnr,
            r.quarter.year(),
            r.quarter.quarter(),
            r.tapte_dagsverk,
            r.mulige_dagsverk,
            r.antall_personer
        );
        match r.tapte_dagsverk_gradert {
            Some(v) => {
                let _ = write!(out, "{v:?}\t");
            }
            None => out.push_str("\\N\t"),
        }
        match r.prosent_published {
            Some(v) => {
                let _ = write!(out, "{v:?}\t");
            }
            None => out.push_str("\\N\t"),
        }
        match &r.rectype {
            Some(v) => escape(&mut out, v),
            None => out.push_str("\\N"),
        }
        out.push('\t');
        escape(&mut out, &varighet_json(&r.varighet));
        out.push('\n');
    }
    out.into_bytes()
}

/// Implements [`super::StatisticsStore`] for a backend store type; `$create_incoming` is the
/// backend's DDL for the per-transaction staging table and `$stage` its way of staging a chunk.
macro_rules! impl_statistics_store {
    ($store:ty, $db:ty, $create_incoming:expr, $stage:path) => {
        #[async_trait::async_trait]
        impl StatisticsStore for $store {
            async fn ingest_statistics(
                &self,
                mut messages: tokio::sync::mpsc::Receiver<statistics::IngestMessage>,
                upload: &statistics::NewStatisticsUpload,
                audit: &NewAuditEntry,
            ) -> Result<Audited<statistics::StatisticsReceipt>, statistics::IngestFailure> {
                use statistics::{IngestFailure, IngestMessage};
                let mut tx = self.pool.begin().await?;
                for statement in $create_incoming {
                    sqlx::query(statement).execute(&mut *tx).await?;
                }
                let mut errors: Vec<crate::register::RowError> = Vec::new();
                let mut total_errors = 0usize;
                let mut rows = 0u64;
                let mut sha256 = None;
                while let Some(message) = messages.recv().await {
                    match message {
                        IngestMessage::Rows(chunk) => {
                            rows += chunk.len() as u64;
                            if total_errors > 0 || chunk.is_empty() {
                                continue;
                            }
                            $stage(&mut tx, &chunk).await?;
                        }
                        IngestMessage::Problems(problems) => {
                            total_errors += problems.len();
                            let room = 100usize.saturating_sub(errors.len());
                            errors.extend(problems.into_iter().take(room));
                        }
                        IngestMessage::Done { sha256: hash } => {
                            sha256 = Some(hash);
                            break;
                        }
                        IngestMessage::Failed(reason) => {
                            return Err(IngestFailure::Invalid {
                                errors: vec![crate::register::RowError {
                                    row: 0,
                                    field: String::new(),
                                    value: String::new(),
                                    reason,
                                }],
                                total: 1,
                            });
                        }
                    }
                }
                let Some(sha256) = sha256 else {
                    return Err(IngestFailure::Store(StoreError::Unavailable(
                        "the upload ended before it was complete".to_owned(),
                    )));
                };
                if total_errors == 0 {
                    let duplicates: Vec<(String, i32, i32, i64, i64)> =
                        sqlx::query_as(statistics::DUPLICATES).fetch_all(&mut *tx).await?;
                    for (orgnr, year, quarter, first, last) in &duplicates {
                        total_errors += 1;
                        if errors.len() < 100 {
                            errors.push(crate::register::RowError {
                                row: usize::try_from(*last).unwrap_or(0),
                                field: "orgnr".to_owned(),
                                value: format!("{orgnr} {year}K{quarter}"),
                                reason: format!(
                                    "firm {orgnr} has {year}K{quarter} twice in this upload (first on row {first})"
                                ),
                            });
                        }
                    }
                }
                if total_errors > 0 {
                    return Err(IngestFailure::Invalid {
                        errors,
                        total: total_errors,
                    });
                }
                let overlap: bool =
                    sqlx::query_scalar(statistics::ANY_IN_QUARTERS).fetch_one(&mut *tx).await?;
                let counts: Vec<(String, i64)> = if overlap {
                    sqlx::query(statistics::CLASSIFY).execute(&mut *tx).await?;
                    sqlx::query_as(statistics::COUNT_STATUS).fetch_all(&mut *tx).await?
                } else {
                    vec![("inserted".to_owned(), i64::try_from(rows).unwrap_or(i64::MAX))]
                };
                let count = |status: &str| {
                    counts
                        .iter()
                        .find(|(s, _)| s == status)
                        .map_or(0, |(_, n)| *n)
                };
                let (inserted, unchanged, revised) =
                    (count("inserted"), count("unchanged"), count("revised"));
                let inserted_upload: Result<i64, sqlx::Error> =
                    sqlx::query_scalar(statistics::INSERT_UPLOAD)
                        .bind(sha256.as_str())
                        .bind(upload.idempotency_key.as_deref())
                        .bind(upload.source.as_str())
                        .bind(i64::try_from(rows).unwrap_or(i64::MAX))
                        .bind(inserted)
                        .bind(unchanged)
                        .bind(revised)
                        .bind(audit.at)
                        .bind(upload.created_by.as_str())
                        .fetch_one(&mut *tx)
                        .await;
                let vintage = match inserted_upload {
                    Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                        return Err(IngestFailure::Store(StoreError::Conflict(
                            "an upload with this Idempotency-Key was applied meanwhile".to_owned(),
                        )));
                    }
                    other => other?,
                };
                sqlx::query(statistics::APPLY)
                    .bind(vintage)
                    .execute(&mut *tx)
                    .await?;
                let mut audit = audit.clone();
                audit.object_ids.push(format!("statistics_upload:{vintage}"));
                let audit_id = Self::insert_audit(&mut *tx, &audit).await?;
                self.fault_pause().await;
                tx.commit().await?;
                let receipt = statistics::StatisticsReceipt {
                    vintage,
                    sha256,
                    idempotency_key: upload.idempotency_key.clone(),
                    source: upload.source,
                    rows,
                    inserted: u64::try_from(inserted).unwrap_or(0),
                    unchanged: u64::try_from(unchanged).unwrap_or(0),
                    revised: u64::try_from(revised).unwrap_or(0),
                    created_at: audit.at,
                    created_by: upload.created_by.clone(),
                };
                Ok(Audited::new(receipt, audit_id))
            }

            async fn statistics_uploads(
                &self,
                idempotency_key: Option<&str>,
            ) -> Result<Vec<statistics::StatisticsReceipt>, StoreError> {
                let rows: Vec<statistics::UploadRow> = sqlx::query_as(statistics::SELECT_UPLOADS)
                    .bind(idempotency_key)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter()
                    .map(statistics::StatisticsReceipt::try_from)
                    .collect()
            }

            async fn baseline_sums(
                &self,
                from: crate::domain::Quarter,
                to: crate::domain::Quarter,
                vintage: Option<i64>,
            ) -> Result<std::collections::BTreeMap<Orgnr, crate::protocol::BaselineFacts>, StoreError> {
                let index = |q: crate::domain::Quarter| q.year() * 4 + i32::from(q.quarter());
                let rows: Vec<(String, f64, f64, i64)> = sqlx::query_as(statistics::BASELINE_SUMS)
                    .bind(index(from))
                    .bind(index(to))
                    .bind(vintage.unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter()
                    .map(|(orgnr, tapte, mulige, quarters)| {
                        Ok((
                            orgnr.parse().map_err(|e: crate::domain::OrgnrError| StoreError::Corrupt(e.to_string()))?,
                            crate::protocol::BaselineFacts {
                                tapte,
                                mulige,
                                quarters: u32::try_from(quarters).unwrap_or(0),
                            },
                        ))
                    })
                    .collect()
            }

            async fn statistics_values(
                &self,
                orgnr: Orgnr,
                vintage: Option<i64>,
            ) -> Result<Vec<statistics::StoredValue>, StoreError> {
                Ok(sqlx::query_as(statistics::SELECT_VALUES)
                    .bind(orgnr.to_string())
                    .bind(vintage.unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await?)
            }
        }
    };
}

pub(super) use impl_statistics_store;
