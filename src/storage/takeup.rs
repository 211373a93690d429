//! Take-up events and survey results as stored, and the outcome summary by arm and quarter.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::StoreError;
use crate::domain::{FylkeCode, Orgnr};
use crate::register::RegisterErrors;
use crate::takeup::{DeviationKind, SurveyRow, TakeupEvent, TakeupStatus};

/// A take-up event to record: the event, its firm's fylke, and the protocol deviation it is, if
/// any (decided from the trial's design and the firm's arm, [`crate::takeup::deviation`]).
#[derive(Debug, Clone)]
pub struct NewTakeupEvent {
    /// The event.
    pub event: TakeupEvent,
    /// The firm's fylke.
    pub fylke: FylkeCode,
    /// The deviation to record with it.
    pub deviation: Option<NewDeviation>,
}

/// A protocol deviation to record with its take-up event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeviation {
    /// The firm's wave.
    pub wave: u32,
    /// The firm's arm.
    pub arm: String,
    /// What kind of deviation.
    pub kind: DeviationKind,
}

/// What a take-up upload recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakeupReceipt {
    /// Events recorded.
    pub rows: usize,
    /// The deviations recorded: the index of the event in the upload and the deviation's id.
    pub deviations: Vec<(usize, i64)>,
}

/// The take-up record a deviation came from.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeviationTakeup {
    /// The take-up event's id.
    pub id: i64,
    /// Its status.
    #[schema(value_type = String)]
    pub status: TakeupStatus,
    /// Its date.
    pub dato: NaiveDate,
    /// The data row of the upload it came in.
    pub row: i32,
    /// The arbeidsform delivered, if given.
    pub arbeidsform_levert: Option<String>,
    /// Adviser hours, if given.
    pub timer: Option<f64>,
    /// The fylke's note, if given.
    pub merknad: Option<String>,
}

/// One recorded protocol deviation.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeviationRecord {
    /// The deviation's id.
    pub id: i64,
    /// The firm.
    #[schema(value_type = String)]
    pub orgnr: Orgnr,
    /// The firm's wave.
    pub wave: u32,
    /// The firm's arm.
    pub arm: String,
    /// The firm's fylke.
    #[schema(value_type = String)]
    pub fylke: FylkeCode,
    /// What kind of deviation.
    pub kind: DeviationKind,
    /// What the kind means.
    pub reason: String,
    /// The take-up record it came from.
    pub takeup: DeviationTakeup,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
    /// By whom (the token that reported the take-up record).
    pub recorded_by: String,
}

/// Protocol deviations of one arm, fylke and kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DeviationCount {
    /// The arm.
    pub arm: String,
    /// The fylke.
    pub fylke: String,
    /// The kind (`control_contacted`, `control_assisted`).
    pub kind: String,
    /// Deviations (take-up records) recorded (`"<5"` for 1 to 4 outside the directorate, on the
    /// masked routes).
    #[schema(value_type = crate::disclosure::MaskedCount)]
    pub deviations: i64,
    /// Distinct firms with one (`"<5"` for 1 to 4 outside the directorate, on the masked routes).
    #[schema(value_type = crate::disclosure::MaskedCount)]
    pub firms: i64,
}

/// Why a take-up upload was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum TakeupFailure {
    /// The events do not fit the firms' registered histories; nothing was written.
    #[error("{0}")]
    Invalid(RegisterErrors),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for TakeupFailure {
    fn from(e: sqlx::Error) -> Self {
        TakeupFailure::Store(e.into())
    }
}

/// One arm's sick leave in one quarter: sums over its randomized firms with statistics.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct OutcomeCell {
    /// The arm.
    pub arm: String,
    /// Year.
    pub arstall: i32,
    /// Quarter.
    pub kvartal: i32,
    /// Firms with statistics that quarter.
    pub firms: i64,
    /// Persons (Σ antall personer).
    pub persons: i64,
    /// Σ tapte dagsverk.
    pub tapte: f64,
    /// Σ mulige dagsverk.
    pub mulige: f64,
}

/// One randomized firm's quarter of NAV statistics, as the estimators read it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct PanelRow {
    /// The firm's organisation number as an integer ([`crate::domain::Orgnr::from_u32`]): a panel
    /// has millions of rows, and an integer costs no allocation.
    pub orgnr: i64,
    /// Year.
    pub arstall: i32,
    /// Quarter.
    pub kvartal: i32,
    /// Tapte dagsverk.
    pub tapte: f64,
    /// Mulige dagsverk.
    pub mulige: f64,
}

/// The trial's randomized firms' statistics between two quarters (as year * 4 + quarter), each
/// firm-quarter at its latest vintage up to $4.
/// Every stored vintage up to `$4` of the randomized firms' quarters (one pass over the primary
/// key's index, no subquery per row, no sort in the database); the caller sorts and keeps the
/// newest row of each firm-quarter.
/// The firms with orgnr from `$5` up to, not including, `$6` (no end when `$6` is NULL).
pub(super) const TRIAL_PANEL: &str = "\
    SELECT CAST(s.orgnr AS BIGINT) AS orgnr, s.arstall, s.kvartal, s.vintage, \
           s.tapte_dagsverk AS tapte, s.mulige_dagsverk AS mulige \
    FROM assignments a JOIN statistics s ON s.orgnr = a.orgnr \
    WHERE a.trial_id = $1 AND s.arstall * 4 + s.kvartal BETWEEN $2 AND $3 AND s.vintage <= $4 \
      AND a.orgnr >= $5 AND ($6 IS NULL OR a.orgnr < $6)";

/// A trial's randomized firms, by orgnr.
pub(super) const TRIAL_FIRMS: &str =
    "SELECT orgnr FROM assignments WHERE trial_id = $1 ORDER BY orgnr";

/// How many ranges of firms [`TRIAL_PANEL`] is read in at once, at most (and at most one per
/// core).
pub(super) const PANEL_PARTS: usize = 4;

pub(super) const SELECT_EVENTS: &str = "\
    SELECT orgnr, status, dato, arbeidsform_levert, timer, merknad, upload_row \
    FROM takeup_events WHERE trial_id = $1 AND ($2 IS NULL OR fylke = $2) ORDER BY orgnr, dato, id";

pub(super) const INSERT_EVENT: &str = "\
    INSERT INTO takeup_events (trial_id, orgnr, fylke, status, dato, arbeidsform_levert, timer, merknad, \
                               upload_row, created_at, created_by) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id";

pub(super) const INSERT_DEVIATION: &str = "\
    INSERT INTO protocol_deviations (trial_id, orgnr, wave, arm, fylke, kind, takeup_event_id, \
                                     recorded_at, recorded_by) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id";

pub(super) const SELECT_DEVIATIONS: &str = "\
    SELECT d.id, d.orgnr, d.wave, d.arm, d.fylke, d.kind, d.takeup_event_id, e.status, e.dato, \
           e.upload_row, e.arbeidsform_levert, e.timer, e.merknad, d.recorded_at, d.recorded_by \
    FROM protocol_deviations d JOIN takeup_events e ON e.id = d.takeup_event_id \
    WHERE d.trial_id = $1 ORDER BY d.id";

pub(super) const DEVIATION_COUNTS: &str = "\
    SELECT arm, fylke, kind, COUNT(*) AS deviations, COUNT(DISTINCT orgnr) AS firms \
    FROM protocol_deviations WHERE trial_id = $1 \
    GROUP BY arm, fylke, kind ORDER BY arm, fylke, kind";

pub(super) const INSERT_SURVEY: &str = "\
    INSERT INTO survey_results (trial_id, orgnr, fylke, bolge, maal, verdi, antall_svar, created_at, created_by) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub(super) const SELECT_SURVEYS: &str = "\
    SELECT orgnr, bolge, maal, verdi, antall_svar FROM survey_results \
    WHERE trial_id = $1 AND ($2 IS NULL OR fylke = $2) ORDER BY orgnr, bolge, maal";

pub(super) const OUTCOME_SUMMARY: &str = "\
    SELECT a.arm, s.arstall, s.kvartal, COUNT(*) AS firms, SUM(s.antall_personer) AS persons, \
           SUM(s.tapte_dagsverk) AS tapte, SUM(s.mulige_dagsverk) AS mulige \
    FROM assignments a JOIN statistics s ON s.orgnr = a.orgnr \
    WHERE a.trial_id = $1 \
      AND s.vintage = (SELECT MAX(v.vintage) FROM statistics v WHERE v.orgnr = s.orgnr \
                       AND v.arstall = s.arstall AND v.kvartal = s.kvartal AND v.vintage <= $2) \
    GROUP BY a.arm, s.arstall, s.kvartal ORDER BY s.arstall, s.kvartal, a.arm";

#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    orgnr: String,
    status: String,
    dato: NaiveDate,
    arbeidsform_levert: Option<String>,
    timer: Option<f64>,
    merknad: Option<String>,
    upload_row: i32,
}

impl TryFrom<EventRow> for TakeupEvent {
    type Error = StoreError;
    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        let corrupt = |e: String| StoreError::Corrupt(e);
        Ok(TakeupEvent {
            orgnr: r
                .orgnr
                .parse()
                .map_err(|e: crate::domain::OrgnrError| corrupt(e.to_string()))?,
            status: r
                .status
                .parse()
                .map_err(|e: crate::takeup::TakeupStatusError| corrupt(e.to_string()))?,
            dato: r.dato,
            arbeidsform_levert: r.arbeidsform_levert,
            timer: r.timer,
            merknad: r.merknad,
            row: usize::try_from(r.upload_row).unwrap_or(0),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct DeviationRow {
    id: i64,
    orgnr: String,
    wave: i32,
    arm: String,
    fylke: String,
    kind: String,
    takeup_event_id: i64,
    status: String,
    dato: NaiveDate,
    upload_row: i32,
    arbeidsform_levert: Option<String>,
    timer: Option<f64>,
    merknad: Option<String>,
    recorded_at: DateTime<Utc>,
    recorded_by: String,
}

impl TryFrom<DeviationRow> for DeviationRecord {
    type Error = StoreError;
    fn try_from(r: DeviationRow) -> Result<Self, StoreError> {
        let corrupt = |e: String| StoreError::Corrupt(e);
        let kind: DeviationKind = r.kind.parse().map_err(corrupt)?;
        Ok(DeviationRecord {
            id: r.id,
            orgnr: r
                .orgnr
                .parse()
                .map_err(|e: crate::domain::OrgnrError| corrupt(e.to_string()))?,
            wave: u32::try_from(r.wave).map_err(|e| corrupt(e.to_string()))?,
            arm: r.arm,
            fylke: r.fylke.parse().map_err(|e| corrupt(format!("{e}")))?,
            kind,
            reason: kind.describe().to_owned(),
            takeup: DeviationTakeup {
                id: r.takeup_event_id,
                status: r
                    .status
                    .parse()
                    .map_err(|e: crate::takeup::TakeupStatusError| corrupt(e.to_string()))?,
                dato: r.dato,
                row: r.upload_row,
                arbeidsform_levert: r.arbeidsform_levert,
                timer: r.timer,
                merknad: r.merknad,
            },
            recorded_at: r.recorded_at,
            recorded_by: r.recorded_by,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SurveyDbRow {
    orgnr: String,
    bolge: i32,
    maal: String,
    verdi: Option<f64>,
    antall_svar: i32,
}

impl TryFrom<SurveyDbRow> for SurveyRow {
    type Error = StoreError;
    fn try_from(r: SurveyDbRow) -> Result<Self, StoreError> {
        Ok(SurveyRow {
            orgnr: r
                .orgnr
                .parse()
                .map_err(|e: crate::domain::OrgnrError| StoreError::Corrupt(e.to_string()))?,
            bolge: u32::try_from(r.bolge).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            maal: r.maal,
            verdi: r.verdi,
            antall_svar: u32::try_from(r.antall_svar)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            row: 0,
        })
    }
}

/// Implements [`super::TakeupStore`] for a backend store type.
macro_rules! impl_takeup_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl TakeupStore for $store {
            async fn record_takeup(
                &self,
                id: &str,
                events: &[takeup::NewTakeupEvent],
                by: &str,
                today: chrono::NaiveDate,
                audit: &NewAuditEntry,
            ) -> Result<Audited<takeup::TakeupReceipt>, takeup::TakeupFailure> {
                let mut tx = self.pool.begin().await?;
                Self::lock_trial(&mut tx, id, audit.at).await?;
                let rows: Vec<takeup::EventRow> = sqlx::query_as(takeup::SELECT_EVENTS)
                    .bind(id)
                    .bind(None::<&str>)
                    .fetch_all(&mut *tx)
                    .await?;
                let existing = rows
                    .into_iter()
                    .map(crate::takeup::TakeupEvent::try_from)
                    .collect::<Result<Vec<_>, StoreError>>()?;
                let new: Vec<crate::takeup::TakeupEvent> =
                    events.iter().map(|e| e.event.clone()).collect();
                crate::takeup::validate_history(&existing, &new, today)
                    .map_err(takeup::TakeupFailure::Invalid)?;
                let mut deviations = Vec::new();
                let mut notes = Vec::new();
                for (index, new) in events.iter().enumerate() {
                    let e = &new.event;
                    let event_id: i64 = sqlx::query_scalar(takeup::INSERT_EVENT)
                        .bind(id)
                        .bind(e.orgnr.to_string())
                        .bind(new.fylke.as_str())
                        .bind(e.status.as_str())
                        .bind(e.dato)
                        .bind(e.arbeidsform_levert.as_deref())
                        .bind(e.timer)
                        .bind(e.merknad.as_deref())
                        .bind(i32::try_from(e.row).unwrap_or(i32::MAX))
                        .bind(audit.at)
                        .bind(by)
                        .fetch_one(&mut *tx)
                        .await?;
                    if let Some(d) = &new.deviation {
                        let deviation_id: i64 = sqlx::query_scalar(takeup::INSERT_DEVIATION)
                            .bind(id)
                            .bind(e.orgnr.to_string())
                            .bind(i32::try_from(d.wave).unwrap_or(i32::MAX))
                            .bind(d.arm.as_str())
                            .bind(new.fylke.as_str())
                            .bind(d.kind.as_str())
                            .bind(event_id)
                            .bind(audit.at)
                            .bind(by)
                            .fetch_one(&mut *tx)
                            .await?;
                        deviations.push((index, deviation_id));
                        notes.push(format!(
                            "deviation:{deviation_id} {} (row {}, orgnr {}, arm {}, {} {})",
                            d.kind, e.row, e.orgnr, d.arm, e.status, e.dato
                        ));
                    }
                }
                let mut audit = audit.clone();
                audit.trial_id = Some(id.to_owned());
                audit
                    .object_ids
                    .extend(events.iter().map(|e| format!("orgnr:{}", e.event.orgnr)));
                audit.object_ids.dedup();
                audit
                    .object_ids
                    .extend(deviations.iter().map(|(_, d)| format!("deviation:{d}")));
                if !notes.is_empty() {
                    let shown: Vec<&str> = notes.iter().take(20).map(String::as_str).collect();
                    let more = notes.len() - shown.len();
                    audit.detail = Some(format!(
                        "{} protocol deviation(s) recorded: {}{}",
                        notes.len(),
                        shown.join("; "),
                        if more > 0 { format!("; and {more} more") } else { String::new() }
                    ));
                }
                let audit_id = Self::insert_audit(&mut *tx, &audit).await?;
                self.fault_pause().await;
                tx.commit().await?;
                Ok(Audited::new(
                    takeup::TakeupReceipt {
                        rows: events.len(),
                        deviations,
                    },
                    audit_id,
                ))
            }

            async fn protocol_deviations(
                &self,
                id: &str,
            ) -> Result<Vec<takeup::DeviationRecord>, StoreError> {
                let rows: Vec<takeup::DeviationRow> = sqlx::query_as(takeup::SELECT_DEVIATIONS)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(takeup::DeviationRecord::try_from).collect()
            }

            async fn deviation_counts(
                &self,
                id: &str,
            ) -> Result<Vec<takeup::DeviationCount>, StoreError> {
                Ok(sqlx::query_as(takeup::DEVIATION_COUNTS)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn takeup_events(
                &self,
                id: &str,
                fylke: Option<FylkeCode>,
            ) -> Result<Vec<crate::takeup::TakeupEvent>, StoreError> {
                let rows: Vec<takeup::EventRow> = sqlx::query_as(takeup::SELECT_EVENTS)
                    .bind(id)
                    .bind(fylke.map(|f| f.as_str()))
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(crate::takeup::TakeupEvent::try_from).collect()
            }

            async fn record_surveys(
                &self,
                id: &str,
                rows: &[(crate::takeup::SurveyRow, FylkeCode)],
                by: &str,
                audit: &NewAuditEntry,
            ) -> Result<Audited<usize>, StoreError> {
                let mut tx = self.pool.begin().await?;
                Self::lock_trial(&mut tx, id, audit.at).await?;
                for (r, fylke) in rows {
                    let inserted = sqlx::query(takeup::INSERT_SURVEY)
                        .bind(id)
                        .bind(r.orgnr.to_string())
                        .bind(fylke.as_str())
                        .bind(i32::try_from(r.bolge).unwrap_or(i32::MAX))
                        .bind(r.maal.as_str())
                        .bind(r.verdi)
                        .bind(i32::try_from(r.antall_svar).unwrap_or(i32::MAX))
                        .bind(audit.at)
                        .bind(by)
                        .execute(&mut *tx)
                        .await;
                    if let Err(sqlx::Error::Database(db)) = &inserted
                        && db.is_unique_violation()
                    {
                        return Err(StoreError::Conflict(format!(
                            "row {}: firm {} already has `{}` for wave {}; results are not replaced",
                            r.row, r.orgnr, r.maal, r.bolge
                        )));
                    }
                    inserted?;
                }
                let mut audit = audit.clone();
                audit.trial_id = Some(id.to_owned());
                audit.object_ids.push(format!("survey_rows:{}", rows.len()));
                let audit_id = Self::insert_audit(&mut *tx, &audit).await?;
                self.fault_pause().await;
                tx.commit().await?;
                Ok(Audited::new(rows.len(), audit_id))
            }

            async fn survey_results(
                &self,
                id: &str,
                fylke: Option<FylkeCode>,
            ) -> Result<Vec<crate::takeup::SurveyRow>, StoreError> {
                let rows: Vec<takeup::SurveyDbRow> = sqlx::query_as(takeup::SELECT_SURVEYS)
                    .bind(id)
                    .bind(fylke.map(|f| f.as_str()))
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(crate::takeup::SurveyRow::try_from).collect()
            }

            async fn outcome_summary(
                &self,
                id: &str,
                vintage: Option<i64>,
            ) -> Result<Vec<takeup::OutcomeCell>, StoreError> {
                Ok(sqlx::query_as(takeup::OUTCOME_SUMMARY)
                    .bind(id)
                    .bind(vintage.unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn trial_panel(
                &self,
                id: &str,
                from: crate::domain::Quarter,
                to: crate::domain::Quarter,
                vintage: Option<i64>,
            ) -> Result<Vec<takeup::PanelRow>, StoreError> {
                let index = |q: crate::domain::Quarter| q.year() * 4 + i32::from(q.quarter());
                // The firms cut into PANEL_PARTS ranges of orgnr, read at once on as many
                // connections (a row costs more to decode than to find, and decoding runs on the
                // connection's own thread), and put together in range order.
                let firms: Vec<String> = sqlx::query_scalar(takeup::TRIAL_FIRMS)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                let parts = takeup::PANEL_PARTS.min(cores).min(firms.len().max(1));
                let mut bounds: Vec<(String, Option<String>)> = Vec::with_capacity(parts);
                for k in 0..parts {
                    let start = firms
                        .get(k * firms.len() / parts)
                        .cloned()
                        .unwrap_or_default();
                    let end = (k + 1 < parts).then(|| firms[(k + 1) * firms.len() / parts].clone());
                    bounds.push((start, end));
                }
                let reads = bounds.iter().map(|(start, end)| {
                    sqlx::query_as::<_, (i64, i32, i32, i64, f64, f64)>(takeup::TRIAL_PANEL)
                        .bind(id)
                        .bind(index(from))
                        .bind(index(to))
                        .bind(vintage.unwrap_or(i64::MAX))
                        .bind(start.as_str())
                        .bind(end.as_deref())
                        .fetch_all(&self.pool)
                });
                let mut all: Vec<(i64, i32, i32, i64, f64, f64)> = Vec::new();
                for part in futures_util::future::try_join_all(reads).await? {
                    all.extend(part);
                }
                // By firm and quarter, newest vintage first: the first row of each is kept.
                all.sort_unstable_by(|a, b| {
                    (a.0, a.1, a.2, std::cmp::Reverse(a.3))
                        .cmp(&(b.0, b.1, b.2, std::cmp::Reverse(b.3)))
                });
                all.dedup_by(|later, kept| (later.0, later.1, later.2) == (kept.0, kept.1, kept.2));
                Ok(all
                    .into_iter()
                    .map(|(orgnr, arstall, kvartal, _, tapte, mulige)| takeup::PanelRow {
                        orgnr,
                        arstall,
                        kvartal,
                        tapte,
                        mulige,
                    })
                    .collect())
            }
        }
    };
}

pub(super) use impl_takeup_store;
