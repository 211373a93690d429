//! `/v1/trials/{id}/protocol` and `/versions`: a trial's protocol, edited while draft and
//! versioned from registration on.

use crate::json::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::http::AppState;
use crate::http::error::{ApiError, ApiPath, ErrorEnvelope};
use crate::http::examples::{example, no_trial, protocol_json, protocol_toml};
use crate::http::middleware::{AuditedJson, RequestMeta};
use crate::protocol::{Change, Protocol, ProtocolError, diff};
use crate::storage::{ProtocolVersionInfo, TrialInfo};

/// Reads a protocol from a JSON or TOML body (by `Content-Type`).
pub(super) fn protocol_from_body(headers: &HeaderMap, body: &Bytes) -> Result<Protocol, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("the protocol must be UTF-8".into()))?;
    let parsed = match content_type.as_str() {
        "application/json" => Protocol::from_json(text),
        "application/toml" | "text/toml" => Protocol::from_toml(text),
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "send the protocol as `application/json` or `application/toml`".into(),
            ));
        }
    };
    parsed.map_err(|e| match e {
        ProtocolError::Parse(message) => ApiError::Invalid {
            message,
            details: serde_json::json!({}),
        },
        ProtocolError::Invalid(problems) => ApiError::Invalid {
            message: format!("the protocol breaks {} rule(s)", problems.len()),
            details: serde_json::json!({ "problems": problems }),
        },
    })
}

/// Changes a trial's protocol: in place while draft, as the next version while registered.
#[utoipa::path(
    put, path = "/v1/trials/{id}/protocol", tag = "trials",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer")),
    request_body(
        description = "The protocol, with the trial's id, as JSON or TOML by `Content-Type` \
                       (`application/json`, `application/toml` or `text/toml`); another type gets 415",
        content(
            (Object = "application/json", example = json!(protocol_json())),
            (String = "application/toml", example = json!(protocol_toml())),
            (String = "text/toml", example = json!(protocol_toml())),
        )
    ),
    responses(
        (status = 200, description = "Saved: in place while draft, as the next version while registered", body = TrialInfo,
            example = json!(example("trial_info"))),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
        (status = 409, description = "The lifecycle does not allow the change", body = ErrorEnvelope),
        (status = 415, description = "The body is neither JSON nor TOML", body = ErrorEnvelope),
        (status = 422, description = "The protocol is invalid, or its id is not the trial's; details name the field or each rule broken", body = ErrorEnvelope),
    )
)]
pub async fn save_protocol(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<AuditedJson<TrialInfo>, ApiError> {
    let protocol = protocol_from_body(&headers, &body)?;
    if protocol.id != id {
        return Err(ApiError::invalid_field(
            "id",
            format!("the protocol's id is `{}`, not `{id}`", protocol.id),
        ));
    }
    let audit = meta.audit_entry(Some(&caller));
    let saved = state
        .store
        .save_protocol(&protocol, &caller.name, &audit)
        .await
        .map_err(super::not_found(&id))?;
    Ok(AuditedJson(StatusCode::OK, saved))
}

/// One protocol version and what changed from the previous one.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    /// The version.
    #[serde(flatten)]
    pub version: ProtocolVersionInfo,
    /// Changes from the previous version (empty for the first).
    pub changes: Vec<Change>,
}

/// Every version of the trial's protocol.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionList {
    /// Oldest first.
    pub versions: Vec<VersionView>,
}

/// Every version of a trial's protocol, each with its diff from the previous.
#[utoipa::path(
    get, path = "/v1/trials/{id}/versions", tag = "trials",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer")),
    responses(
        (status = 200, description = "Every version, oldest first, each with its changes", body = VersionList,
            example = json!(example("version_list"))),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
    )
)]
pub async fn list_versions(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<VersionList>, ApiError> {
    let versions = state
        .store
        .protocol_versions(&id)
        .await
        .map_err(super::not_found(&id))?;
    let mut out = Vec::with_capacity(versions.len());
    let mut previous: Option<Protocol> = None;
    for version in versions {
        let changes = previous
            .as_ref()
            .map(|p| diff(p, &version.protocol))
            .unwrap_or_default();
        previous = Some(version.protocol.clone());
        out.push(VersionView { version, changes });
    }
    Ok(Json(VersionList { versions: out }))
}
