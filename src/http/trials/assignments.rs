//! `/v1/trials/{id}/assignments`: each firm's arm as its fylke receives it.

use std::collections::BTreeMap;

use crate::json::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::domain::{FylkeCode, Orgnr};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiPath, ApiQuery, ErrorEnvelope};
use crate::http::examples::{ASSIGNMENTS_CSV, example, no_trial};
use crate::http::middleware::AuditDetails;
use crate::protocol::Design;

/// Page and format of an assignment list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AssignmentParams {
    /// `json` (default) or `csv`.
    #[param(example = "csv")]
    pub format: Option<String>,
    /// With `format=csv`: `excel` for the dialect Norwegian Excel opens by double-click (`;`
    /// separator, UTF-8 BOM, CRLF line ends, decimal comma); absent for plain CSV (`,`, no BOM,
    /// LF, decimal point).
    #[param(example = "excel")]
    pub dialect: Option<String>,
    /// Only firms after this orgnr (the `next_after` of the previous page).
    #[param(value_type = Option<String>, example = "974760673")]
    pub after: Option<Orgnr>,
    /// Page size, 1-10000 (default 1000).
    #[param(example = 1000)]
    pub limit: Option<u32>,
}

/// One firm's assignment as a fylke receives it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveredAssignment {
    /// The firm.
    #[schema(value_type = String)]
    pub orgnr: Orgnr,
    /// Its name in the register the trial enrolled (null if the register gave none).
    pub navn: Option<String>,
    /// Its fylke.
    #[schema(value_type = String)]
    pub fylke: FylkeCode,
    /// Its kommunenummer in the register the trial enrolled (null if the register gave none).
    pub kommunenummer: Option<String>,
    /// The arm's id.
    pub arm: String,
    /// The arm's name.
    pub arm_navn: String,
    /// Whether NAV is to contact the firm (false for control firms in design A: not to be
    /// contacted at all).
    pub kontakt: bool,
    /// What the fylke is to do.
    pub instruks: String,
    /// The stratum.
    pub stratum: String,
    /// The cluster.
    #[schema(value_type = Option<String>)]
    pub klynge: Option<Orgnr>,
    /// The wave.
    pub bolge: u32,
    /// The probability of the firm's arm.
    pub sannsynlighet: f64,
    /// When it was drawn.
    pub trukket: Option<chrono::DateTime<chrono::Utc>>,
}

/// A page of assignments.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssignmentPage {
    /// The trial's protocol hash.
    pub protocol_hash: String,
    /// Sorted by orgnr.
    pub assignments: Vec<DeliveredAssignment>,
    /// Pass as `after` for the next page; absent on the last.
    #[schema(value_type = Option<String>)]
    pub next_after: Option<Orgnr>,
}

/// The assignments of the trial's firms, with each firm's name and kommune from the register and
/// each arm's instructions. A fylke gets only its own firms; every read is audited with the firms
/// returned. CSV with `format=csv` (docs/data-formats.md §5 columns, then `arm_navn, kontakt,
/// instruks, navn, kommunenummer`), in Excel's dialect with `dialect=excel`; the next page's cursor
/// is in `x-next-after`.
#[utoipa::path(
    get, path = "/v1/trials/{id}/assignments", tag = "randomization",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer"), AssignmentParams),
    responses(
        (status = 200, description = "A page of assignments: JSON, or CSV with `format=csv` (the next page's cursor in `x-next-after`)",
            content(
                (AssignmentPage = "application/json", example = json!(example("assignment_page"))),
                (String = "text/csv", example = json!(ASSIGNMENTS_CSV)),
            )),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
        (status = 422, description = "`format`, `dialect`, `after` or `limit` is invalid; details.field names it", body = ErrorEnvelope),
    )
)]
pub async fn list_assignments(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<AssignmentParams>,
) -> Result<Response, ApiError> {
    let fylke = super::scope(&caller)?;
    let limit = params.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            "limit must be between 1 and 10000",
        ));
    }
    let csv = match params.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::invalid_field(
                "format",
                format!("`{other}` is not a format; use json or csv"),
            ));
        }
    };
    let dialect = match params.dialect.as_deref() {
        None => CsvDialect::Plain,
        Some("excel") if csv => CsvDialect::Excel,
        Some("excel") => {
            return Err(ApiError::invalid_field(
                "dialect",
                "dialect applies to CSV only: add format=csv",
            ));
        }
        Some(other) => {
            return Err(ApiError::invalid_field(
                "dialect",
                format!(
                    "`{other}` is not a CSV dialect; use excel, or leave dialect out for plain CSV"
                ),
            ));
        }
    };
    let (trial, delivered, next_after) = delivered(&state, &id, fylke, params.after, limit).await?;
    let details = AuditDetails {
        trial_id: Some(id),
        object_ids: audit_objects(&delivered),
    };
    let mut response = if csv {
        let out = fylke_csv(&delivered, dialect, dialect == CsvDialect::Excel)
            .map_err(|e| ApiError::Internal(format!("writing CSV: {e}")))?;
        let mut response =
            ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response();
        if let Some(next) = next_after
            && let Ok(value) = HeaderValue::from_str(&next.to_string())
        {
            response.headers_mut().insert("x-next-after", value);
        }
        response
    } else {
        Json(AssignmentPage {
            protocol_hash: trial.content_hash,
            assignments: delivered,
            next_after,
        })
        .into_response()
    };
    response.extensions_mut().insert(details);
    Ok(response)
}

/// The assignments of the trial's firms as a fylke receives them, sorted by orgnr: `fylke`'s own
/// firms (every firm for `None`), after `after`, at most `limit`, with the cursor of the next page.
pub(crate) async fn delivered(
    state: &AppState,
    id: &str,
    fylke: Option<FylkeCode>,
    after: Option<Orgnr>,
    limit: u32,
) -> Result<
    (
        crate::storage::TrialInfo,
        Vec<DeliveredAssignment>,
        Option<Orgnr>,
    ),
    ApiError,
> {
    let trial = state
        .store
        .get_trial(id)
        .await
        .map_err(super::not_found(id))?;
    let drawn_at: BTreeMap<u32, chrono::DateTime<chrono::Utc>> = state
        .store
        .draws(id)
        .await?
        .into_iter()
        .map(|d| (d.wave, d.drawn_at))
        .collect();
    let rows = state.store.assigned_firms(id, fylke, after, limit).await?;
    let next_after = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.assignment.orgnr))
        .flatten();
    let design_a = trial.protocol.design == Design::A;
    let delivered: Vec<DeliveredAssignment> = rows
        .into_iter()
        .map(|firm| {
            let r = firm.assignment;
            let arm = trial.protocol.arm(&r.arm);
            let control = arm.is_some_and(|a| a.control);
            DeliveredAssignment {
                orgnr: r.orgnr,
                navn: firm.navn,
                fylke: r.fylke,
                kommunenummer: firm.kommunenummer,
                arm_navn: arm.map(|a| a.name.clone()).unwrap_or_default(),
                kontakt: !(control && design_a),
                instruks: arm.map(|a| a.instructions.clone()).unwrap_or_default(),
                arm: r.arm,
                stratum: r.stratum,
                klynge: r.klynge,
                bolge: r.wave,
                sannsynlighet: r.sannsynlighet,
                trukket: drawn_at.get(&r.wave).copied(),
            }
        })
        .collect();
    Ok((trial, delivered, next_after))
}

/// The audit row's objects for a read of `delivered`: `orgnr:…` per firm.
pub(crate) fn audit_objects(delivered: &[DeliveredAssignment]) -> Vec<String> {
    delivered
        .iter()
        .map(|a| format!("orgnr:{}", a.orgnr))
        .collect()
}

/// How the assignment CSV is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CsvDialect {
    /// `,`, no BOM, LF line ends, decimal point (RFC 4180 apart from the line ends).
    Plain,
    /// What Norwegian Excel opens by double-click: `;`, a UTF-8 BOM, CRLF line ends, and a decimal
    /// comma in `sannsynlighet`.
    Excel,
}

/// The assignment CSV a fylke receives: docs/data-formats.md §5 columns, then `arm_navn, kontakt,
/// instruks, navn, kommunenummer`, quoted where needed, in `dialect`, text cells that a
/// spreadsheet would run as formulas guarded when `guard_formulas`.
pub(crate) fn fylke_csv(
    delivered: &[DeliveredAssignment],
    dialect: CsvDialect,
    guard_formulas: bool,
) -> Result<Vec<u8>, String> {
    let mut builder = csv::WriterBuilder::new();
    let mut out = Vec::new();
    if dialect == CsvDialect::Excel {
        builder.delimiter(b';').terminator(csv::Terminator::CRLF);
        out.extend_from_slice("\u{feff}".as_bytes());
    }
    let mut writer = builder.from_writer(out);
    let header = [
        "orgnr",
        "arm",
        "stratum",
        "klynge",
        "bolge",
        "sannsynlighet",
        "trukket",
        "arm_navn",
        "kontakt",
        "instruks",
        "navn",
        "kommunenummer",
    ];
    writer.write_record(header).map_err(|e| e.to_string())?;
    // Excel runs a cell that starts with `=`, `+`, `-` or `@` as a formula: with `guard_formulas`
    // (Excel's dialect, and every download a person makes from a page) a text cell starting so (a
    // name from the register, an arm's instructions) gets a leading `'`, as OWASP advises against
    // CSV injection.
    let text = |value: &str| -> String {
        if guard_formulas && value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{value}")
        } else {
            value.to_owned()
        }
    };
    for a in delivered {
        let sannsynlighet = match dialect {
            CsvDialect::Plain => a.sannsynlighet.to_string(),
            CsvDialect::Excel => a.sannsynlighet.to_string().replace('.', ","),
        };
        writer
            .write_record([
                a.orgnr.to_string(),
                text(&a.arm),
                text(&a.stratum),
                a.klynge.map(|k| k.to_string()).unwrap_or_default(),
                a.bolge.to_string(),
                sannsynlighet,
                a.trukket
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                    .unwrap_or_default(),
                text(&a.arm_navn),
                a.kontakt.to_string(),
                text(&a.instruks),
                text(a.navn.as_deref().unwrap_or_default()),
                a.kommunenummer.clone().unwrap_or_default(),
            ])
            .map_err(|e| e.to_string())?;
    }
    writer.into_inner().map_err(|e| e.to_string())
}
