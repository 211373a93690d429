//! `/v1/trials/{id}/enrollment`: firms enrolled for a wave from a register upload.

use std::collections::{BTreeMap, BTreeSet};

use crate::json::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::domain::{Orgnr, Sektor};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiPath, ApiQuery, ErrorEnvelope};
use crate::http::examples::{REGISTER_CSV, example, no_trial, register_json};
use crate::http::middleware::{AuditDetails, AuditedJson, RequestMeta};
use crate::protocol::TrialState;
use crate::randomization::plan::verdict;
use crate::register::{RegisterOptions, detect_format, parse_register};
use crate::storage::{
    EnrollmentFilter, EnrollmentPage, EnrollmentRecord, NewEnrollment, UploadReceipt,
};

/// Options of an enrollment upload.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EnrollParams {
    /// Sector for Brønnøysund rows, which carry none.
    #[param(value_type = Option<String>, example = "PRIVAT")]
    pub sektor: Option<Sektor>,
}

/// How many excluded firms an enrollment upload's response lists.
pub const EXCLUDED_SHOWN: usize = 100;

/// Why firms were excluded, counted by reason, and the first excluded firms.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentSummary {
    /// The upload's receipt.
    pub receipt: UploadReceipt,
    /// Excluded firms by reason code (a firm with several reasons counts under each).
    pub excluded_by_reason: BTreeMap<String, usize>,
    /// How many of the upload's firms are excluded, all of them.
    pub excluded_total: usize,
    /// The first 100 excluded firms by orgnr, with every reason. When `excluded_total` is larger
    /// the list is cut, and `excluded_next` reads the rest.
    pub excluded: Vec<EnrollmentRecord>,
    /// The rest of the excluded firms, paged: a `GET /v1/trials/{id}/enrollment` path for this
    /// upload's excluded firms after the last one listed here. Null when `excluded` is all of
    /// them.
    pub excluded_next: Option<String>,
}

/// Enrolls firms for the open wave from a register upload (CSV, JSON or Brønnøysund underenhet
/// JSON, docs/data-formats.md §1). All or nothing: any invalid row refuses the upload with every problem.
#[utoipa::path(
    post, path = "/v1/trials/{id}/enrollment", tag = "enrollment",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer"), EnrollParams),
    request_body(
        description = "The register file (docs/data-formats.md §1): CSV (comma or semicolon), JSON rows, \
                       or Brønnøysund underenhet JSON. The format is read from the content, not the `Content-Type`",
        content(
            (String = "text/csv", example = json!(REGISTER_CSV)),
            (Vec<Object> = "application/json", example = json!(register_json())),
        )
    ),
    responses(
        (status = 201, description = "Enrolled: the receipt, exclusions by reason and the first excluded firms", body = EnrollmentSummary,
            example = json!(example("enrollment_summary"))),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
        (status = 409, description = "Not enrolling, or firms already enrolled", body = ErrorEnvelope),
        (status = 422, description = "Invalid rows: details.errors (first 100, each with row, field, value, reason) and details.total", body = ErrorEnvelope),
    )
)]
pub async fn enroll(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<EnrollParams>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let trial = state
        .store
        .get_trial(&id)
        .await
        .map_err(super::not_found(&id))?;
    if trial.state != TrialState::Enrolling {
        return Err(ApiError::Conflict(format!(
            "firms are enrolled only while the trial is enrolling (it is {})",
            trial.state
        )));
    }
    let options = RegisterOptions {
        default_sektor: params.sektor,
    };
    let firms =
        parse_register(&body, detect_format(&body), &options).map_err(|e| ApiError::Invalid {
            message: format!(
                "the register has {} problem(s); nothing was enrolled. First: {}",
                e.total,
                e.errors
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ),
            details: serde_json::json!({ "errors": e.errors, "total": e.total }),
        })?;
    // The baseline is NAV's statistics over the protocol's window (latest vintage) where the
    // register has them, else the dagsverk given in the uploaded file.
    let stats = state
        .store
        .baseline_sums(
            trial.protocol.baseline.from,
            trial.protocol.baseline.to,
            None,
        )
        .await?;
    let wave = trial.current_wave();
    // A cluster is randomized once, as a whole: a firm whose overordnet enhet was drawn in an
    // earlier wave is not randomized again (that would split the cluster across arms).
    let drawn_clusters: BTreeSet<Orgnr> = state
        .store
        .assignments(&id, None, None, u32::MAX)
        .await?
        .into_iter()
        .filter_map(|a| a.klynge)
        .collect();
    let records: Vec<EnrollmentRecord> = firms
        .iter()
        .map(|firm| {
            let mut v = verdict(&trial.protocol, firm, &stats);
            if let Some(k) = v.klynge.filter(|k| drawn_clusters.contains(k)) {
                v.exclusions.push(crate::protocol::Exclusion {
                    code: "klynge_trukket".to_owned(),
                    message: format!(
                        "its overordnet enhet {k} was randomized in an earlier wave; a cluster is \
                         randomized once, as a whole"
                    ),
                });
            }
            EnrollmentRecord {
                orgnr: firm.orgnr,
                wave,
                upload_id: 0,
                navn: firm.navn.clone(),
                fylke: firm.fylke,
                kommunenummer: firm.kommunenummer.clone(),
                naeringskode: firm.naeringskode,
                bransje: v.bransje,
                sektor: firm.sektor,
                antall_ansatte: firm.antall_ansatte,
                overordnet_enhet: firm.overordnet_enhet,
                villig: firm.villig,
                baseline: v
                    .baseline
                    .filter(|b| b.mulige > 0.0)
                    .map(|b| (b.tapte, b.mulige)),
                covariates: firm.covariates.clone(),
                eligible: v.exclusions.is_empty(),
                exclusions: v.exclusions,
                klynge: v.klynge,
            }
        })
        .collect();
    let mut excluded_by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for r in &records {
        for e in &r.exclusions {
            *excluded_by_reason.entry(e.code.clone()).or_default() += 1;
        }
    }
    let mut excluded: Vec<&EnrollmentRecord> = records.iter().filter(|r| !r.eligible).collect();
    excluded.sort_by_key(|r| r.orgnr);
    let excluded_total = excluded.len();
    let excluded: Vec<EnrollmentRecord> =
        excluded.into_iter().take(EXCLUDED_SHOWN).cloned().collect();
    let upload = NewEnrollment {
        wave,
        sha256: hex::encode(Sha256::digest(&body)),
        firms: records,
        created_by: caller.name.clone(),
    };
    let mut audit = meta.audit_entry(Some(&caller));
    audit.status = 201;
    let receipt = state
        .store
        .enroll(&id, &upload, &audit)
        .await
        .map_err(super::not_found(&id))?;
    Ok(AuditedJson(
        StatusCode::CREATED,
        receipt.map(|receipt| {
            let excluded_next = (excluded_total > excluded.len())
                .then(|| excluded.last())
                .flatten()
                .map(|last| {
                    format!(
                        "/v1/trials/{id}/enrollment?upload={}&eligible=false&after={}&limit={EXCLUDED_SHOWN}",
                        receipt.upload_id, last.orgnr
                    )
                });
            EnrollmentSummary {
                receipt,
                excluded_by_reason,
                excluded_total,
                excluded,
                excluded_next,
            }
        }),
    )
    .into_response())
}

/// Which enrolled firms to list, and which page.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EnrollmentListParams {
    /// Only this wave's firms.
    #[param(example = 1)]
    pub wave: Option<u32>,
    /// Only this upload's firms (`receipt.upload_id` of the upload).
    #[param(example = 1)]
    pub upload: Option<i64>,
    /// `true` for the eligible firms only, `false` for the excluded only.
    #[param(example = true)]
    pub eligible: Option<bool>,
    /// Only firms after this orgnr (the `next_after` of the previous page).
    #[param(value_type = Option<String>, example = "100000008")]
    pub after: Option<Orgnr>,
    /// Page size, 1-10000 (default 1000).
    #[param(example = 100)]
    pub limit: Option<u32>,
}

/// The default page size of the enrollment list.
pub const ENROLLMENT_PAGE: u32 = 1000;

/// The largest page of the enrollment list.
pub const ENROLLMENT_PAGE_MAX: u32 = 10_000;

/// A page of enrolled firms.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentList {
    /// This page, sorted by orgnr.
    pub firms: Vec<EnrolledFirm>,
    /// Firms matching the filters (`wave`, `upload`, `eligible`, and a fylke's own firms) over
    /// every page.
    pub total: u64,
    /// Of the firms matching `wave`, `upload` and the fylke, how many are excluded (whatever
    /// `eligible` asks for).
    pub excluded_total: u64,
    /// Pass as `after` for the next page; null on the last.
    #[schema(value_type = Option<String>)]
    pub next_after: Option<Orgnr>,
    /// The next page's path with the same filters and page size; null on the last.
    pub next: Option<String>,
}

/// Why a baseline is masked: the firm has fewer than 5 persons.
pub const MASKED_FEW_PERSONS: &str = "fewer than 5 persons";

/// An enrolled firm as its caller sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrolledFirm {
    /// The enrollment. Outside the directorate, when the baseline is masked, `baseline` is
    /// `[0.0, 0.0]` (as NAV's Fia stores a masked figure) and `baseline_er_maskert` is true.
    #[serde(flatten)]
    pub firm: EnrollmentRecord,
    /// NAV's `erMaskert`: true when `baseline` is masked because the firm has fewer than 5
    /// persons (the most `antall_personer` in any quarter of the baseline window in NAV's
    /// statistics, else the register's `antall_ansatte`). Always false for the directorate. A
    /// `baseline` of `null` with this false means there is no baseline, not that it is hidden.
    pub baseline_er_maskert: bool,
    /// Why the baseline is masked (`fewer than 5 persons`); absent when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_masked_reason: Option<String>,
}

/// NAV's masking of a firm's own figures (docs/nav-data.md §2): a baseline over a window is masked
/// when the firm has fewer than 5 persons in every quarter of it; a baseline from the register
/// file (no statistics in the window) is masked when the register counts fewer than 5 employees.
pub fn mask_firm(
    mut firm: EnrollmentRecord,
    persons: &BTreeMap<Orgnr, u64>,
    open: bool,
) -> EnrolledFirm {
    let few = persons
        .get(&firm.orgnr)
        .copied()
        .unwrap_or(u64::from(firm.antall_ansatte))
        < 5;
    let masked = !open && few && firm.baseline.is_some();
    if masked {
        firm.baseline = Some((0.0, 0.0));
    }
    EnrolledFirm {
        firm,
        baseline_er_maskert: masked,
        baseline_masked_reason: masked.then(|| MASKED_FEW_PERSONS.to_owned()),
    }
}

/// Enrolled firms with their eligibility, a page at a time (a fylke sees only its own firms).
/// `total` and `excluded_total` count the whole list; `next_after` and `next` lead to the next page.
/// Every read is audited with the firms returned. Outside the directorate the baseline of a firm
/// with fewer than 5 persons is masked as NAV masks it: `[0.0, 0.0]` with
/// `baseline_er_maskert: true` and a `baseline_masked_reason`.
#[utoipa::path(
    get, path = "/v1/trials/{id}/enrollment", tag = "enrollment",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer"), EnrollmentListParams),
    responses(
        (status = 200, description = "A page of the enrolled firms the caller may see, by orgnr, with totals", body = EnrollmentList,
            example = json!(example("enrollment_list"))),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
        (status = 422, description = "A bad query parameter; details.field names it", body = ErrorEnvelope),
    )
)]
pub async fn list_enrollment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<EnrollmentListParams>,
) -> Result<Response, ApiError> {
    let fylke = super::scope(&caller)?;
    let limit = params.limit.unwrap_or(ENROLLMENT_PAGE);
    if !(1..=ENROLLMENT_PAGE_MAX).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            format!("limit must be between 1 and {ENROLLMENT_PAGE_MAX} (it is {limit})"),
        ));
    }
    if params.wave == Some(0) {
        return Err(ApiError::invalid_field("wave", "waves are numbered from 1"));
    }
    let trial = state
        .store
        .get_trial(&id)
        .await
        .map_err(super::not_found(&id))?;
    let filter = EnrollmentFilter {
        fylke,
        wave: params.wave,
        upload_id: params.upload,
        eligible: params.eligible,
        after: params.after,
        // One more than the page, to know whether another page follows.
        limit: limit + 1,
    };
    let EnrollmentPage {
        mut firms,
        total,
        excluded_total,
    } = state.store.enrollment_page(&id, &filter).await?;
    let more = firms.len() > limit as usize;
    firms.truncate(limit as usize);
    let next_after = more.then(|| firms.last().map(|f| f.orgnr)).flatten();
    let next = next_after.map(|after| next_page(&id, &params, after, limit));
    let open = caller.role == crate::domain::Role::Direktorat;
    let persons = if open {
        BTreeMap::new()
    } else {
        state
            .store
            .baseline_persons(
                trial.protocol.baseline.from,
                trial.protocol.baseline.to,
                None,
            )
            .await?
    };
    let details = AuditDetails {
        trial_id: Some(id),
        object_ids: firms.iter().map(|f| format!("orgnr:{}", f.orgnr)).collect(),
    };
    let firms = firms
        .into_iter()
        .map(|f| mask_firm(f, &persons, open))
        .collect();
    let mut response = Json(EnrollmentList {
        firms,
        total,
        excluded_total,
        next_after,
        next,
    })
    .into_response();
    response.extensions_mut().insert(details);
    Ok(response)
}

/// The path of the enrollment page after `after`, with the same filters and page size.
fn next_page(id: &str, params: &EnrollmentListParams, after: Orgnr, limit: u32) -> String {
    let mut query = Vec::new();
    if let Some(wave) = params.wave {
        query.push(format!("wave={wave}"));
    }
    if let Some(upload) = params.upload {
        query.push(format!("upload={upload}"));
    }
    if let Some(eligible) = params.eligible {
        query.push(format!("eligible={eligible}"));
    }
    query.push(format!("after={after}"));
    query.push(format!("limit={limit}"));
    format!("/v1/trials/{id}/enrollment?{}", query.join("&"))
}
