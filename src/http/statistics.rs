//! `/v1/statistics`: NAV's firm-quarter sickness statistics and metadata (sector, næring), uploaded
//! in NAV's own formats.

use crate::json::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ApiQuery, ErrorEnvelope};
use super::examples::{STATISTICS_CSV, example, metadata_json, statistics_json};
use super::middleware::{AuditDetails, AuditedJson, RequestMeta};
use crate::auth::Caller;
use crate::domain::Orgnr;
use crate::storage::StoreError;
use crate::storage::statistics::{
    IngestFailure, NewStatisticsUpload, StatisticsReceipt, StoredMetadata, UploadSource,
};

/// The header that makes a retried upload apply once.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// An upload's receipt and what it did.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadOutcome {
    /// `applied` (something was inserted or revised) or `unchanged`.
    pub outcome: &'static str,
    /// The receipt; its `vintage` names the register's state after it.
    pub receipt: StatisticsReceipt,
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=200).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::invalid_field(
                "Idempotency-Key",
                "the Idempotency-Key must be 1-200 visible ASCII characters",
            )
        })?;
    Ok(Some(key.to_owned()))
}

/// SHA-256 (hex) of a request body, read in full up to `limit` bytes.
async fn hash_body(body: Body, limit: u64) -> Result<String, ApiError> {
    use futures_util::StreamExt;
    use sha2::{Digest, Sha256};
    let mut stream = body.into_data_stream();
    let mut hasher = Sha256::new();
    let mut read = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::invalid_field("body", format!("the upload could not be read: {e}"))
        })?;
        read += chunk.len() as u64;
        if read > limit {
            return Err(ApiError::PayloadTooLarge(format!(
                "the upload is larger than the limit of {limit} bytes"
            )));
        }
        hasher.update(&chunk);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// 422 for an `Idempotency-Key` first used for other content, naming the key.
fn key_reused_error(key: &str, earlier_sha256: &str, sha256: &str) -> ApiError {
    match crate::storage::statistics::key_reused(key, earlier_sha256, sha256) {
        IngestFailure::Invalid { errors, total } => ApiError::Invalid {
            message: errors.first().map(|e| e.reason.clone()).unwrap_or_default(),
            details: serde_json::json!({ "field": "Idempotency-Key", "errors": errors, "total": total }),
        },
        IngestFailure::Store(e) => e.into(),
    }
}

fn replayed(receipt: StatisticsReceipt) -> Response {
    let mut response = Json(UploadOutcome {
        outcome: receipt.outcome(),
        receipt,
    })
    .into_response();
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

/// Applies one upload of NAV statistics (DVH CSV or `virksomhet.json`) or of NAV's metadata
/// (`virksomhet_metadata.json` or the DVH metadata CSV: sector and næring), docs/data-formats.md §2; the
/// content tells which. Streamed and applied in one transaction. Any invalid row refuses the whole
/// upload with 422 listing the first 100 problems and the total. New firm-quarters are inserted,
/// identical ones left unchanged, changed ones revised as a new vintage beside the old; an upload
/// that changes nothing makes no vintage (200 `unchanged`, naming the latest vintage), and one
/// without rows is refused. With `Idempotency-Key`, a retried upload applies once and the retry
/// gets the first receipt; the key reused for other content is refused with 422 naming it.
#[utoipa::path(
    post, path = "/v1/statistics", tag = "statistics",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried upload apply once: 1-200 visible ASCII characters", example = "dvh-2026K3-1")),
    request_body(
        description = "NAV's statistics (docs/data-formats.md §2) as the data warehouse's CSV \
                       (`orgnr, arstall, kvartal, taptedv, muligedv, antpers`, comma or semicolon) or \
                       `virksomhet.json` rows, or NAV's metadata as `virksomhet_metadata.json` rows or \
                       its DVH CSV. The format is read from the first bytes, not the `Content-Type`",
        content(
            (String = "text/csv", example = json!(STATISTICS_CSV)),
            (Vec<Object> = "application/json", examples(
                    ("virksomhet.json" = (summary = "Statistics rows", value = json!(statistics_json()))),
                    ("virksomhet_metadata.json" = (summary = "Metadata rows", value = json!(metadata_json()))),
                )),
        )
    ),
    responses(
        (status = 201, description = "Applied: something was inserted or revised", body = UploadOutcome,
            example = json!(example("upload_outcome"))),
        (status = 200, description = "Nothing changed, or a replay of an earlier upload with the same Idempotency-Key", body = UploadOutcome),
        (status = 413, description = "The upload is larger than the configured limit", body = ErrorEnvelope),
        (status = 422, description = "Invalid rows: details.errors (first 100: row, field, value, reason) and details.total; nothing written", body = ErrorEnvelope),
    )
)]
pub async fn upload_statistics(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let limit = state.config.upload_limit as u64;
    if let Some(key) = &key
        && let Some(earlier) = state.store.statistics_uploads(Some(key)).await?.pop()
    {
        // A retry only if the content is the one the key was first used for.
        let sha256 = hash_body(body, limit).await?;
        if sha256 == earlier.sha256 {
            return Ok(replayed(earlier));
        }
        return Err(key_reused_error(key, &earlier.sha256, &sha256));
    }
    let stream = body
        .into_data_stream()
        .map_err(|e| std::io::Error::other(e.to_string()));
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let upload = NewStatisticsUpload {
        source: UploadSource::Api,
        idempotency_key: key.clone(),
        created_by: caller.name.clone(),
    };
    let mut audit = meta.audit_entry(Some(&caller));
    audit.status = 201;
    match crate::ingest::ingest(state.store.as_ref(), reader, limit, &upload, &audit).await {
        Ok(receipt) => {
            let status = if receipt.value.outcome() == "unchanged" {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok(AuditedJson(
                status,
                receipt.map(|receipt| UploadOutcome {
                    outcome: receipt.outcome(),
                    receipt,
                }),
            )
            .into_response())
        }
        Err(IngestFailure::Invalid { errors, total }) => {
            if total == 1
                && errors
                    .first()
                    .is_some_and(|e| e.reason.contains("larger than the limit"))
            {
                return Err(ApiError::PayloadTooLarge(
                    errors.first().map(|e| e.reason.clone()).unwrap_or_default(),
                ));
            }
            if let Some(e) = errors.first().filter(|e| e.field == "Idempotency-Key") {
                return Err(ApiError::Invalid {
                    message: e.reason.clone(),
                    details: serde_json::json!({ "field": "Idempotency-Key", "errors": errors, "total": total }),
                });
            }
            Err(ApiError::Invalid {
                message: format!(
                    "the upload has {total} problem(s); nothing was written. First: {}",
                    errors.first().map(ToString::to_string).unwrap_or_default()
                ),
                details: serde_json::json!({ "errors": errors, "total": total }),
            })
        }
        Err(IngestFailure::Store(StoreError::Conflict(_))) if key.is_some() => {
            let earlier = state.store.statistics_uploads(key.as_deref()).await?.pop();
            earlier
                .map(replayed)
                .ok_or_else(|| ApiError::Conflict("a concurrent upload interfered; retry".into()))
        }
        Err(IngestFailure::Store(e)) => Err(e.into()),
    }
}

/// Every upload (vintage) of the statistics register.
#[derive(Debug, Serialize, ToSchema)]
pub struct VintageList {
    /// Oldest first; estimates name the vintage they used.
    pub vintages: Vec<StatisticsReceipt>,
}

/// Lists the register's vintages: one receipt per upload, with its counts.
#[utoipa::path(
    get, path = "/v1/statistics/vintages", tag = "statistics",
    responses((status = 200, description = "Every upload's receipt, oldest first", body = VintageList,
        example = json!(example("vintage_list"))))
)]
pub async fn list_vintages(State(state): State<AppState>) -> Result<Json<VintageList>, ApiError> {
    Ok(Json(VintageList {
        vintages: state.store.statistics_uploads(None).await?,
    }))
}

/// Which firm's metadata to read.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MetadataParams {
    /// The firm (9 digits).
    #[param(value_type = String, example = "974760673")]
    pub orgnr: Orgnr,
    /// The register as of this vintage (default: latest).
    #[param(example = 1)]
    pub vintage: Option<i64>,
}

/// One firm's metadata per quarter.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetadataList {
    /// The firm.
    #[schema(value_type = String, example = "974760673")]
    pub orgnr: Orgnr,
    /// The vintage asked for; absent for the latest.
    pub vintage: Option<i64>,
    /// Per quarter, oldest first, the values of the latest vintage not after the one asked for.
    pub quarters: Vec<StoredMetadata>,
}

/// Reads one firm's NAV metadata (sector, primærnæring, næringskode, rectype) per quarter, as of a
/// vintage. Firm-level: the read is audited with the firm.
#[utoipa::path(
    get, path = "/v1/statistics/metadata", tag = "statistics",
    params(MetadataParams),
    responses(
        (status = 200, description = "The firm's metadata per quarter (empty when none is stored)", body = MetadataList,
            example = json!(example("metadata_list"))),
        (status = 422, description = "orgnr missing or not a valid organisation number", body = ErrorEnvelope),
    )
)]
pub async fn get_metadata(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<MetadataParams>,
) -> Result<Response, ApiError> {
    let quarters = state
        .store
        .statistics_metadata(params.orgnr, params.vintage)
        .await?;
    let details = AuditDetails {
        trial_id: None,
        object_ids: vec![format!("orgnr:{}", params.orgnr)],
    };
    let mut response = Json(MetadataList {
        orgnr: params.orgnr,
        vintage: params.vintage,
        quarters,
    })
    .into_response();
    response.extensions_mut().insert(details);
    Ok(response)
}
