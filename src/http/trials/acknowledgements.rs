//! `/v1/trials/{id}/acknowledgements`: a fylke confirms it received its firms' assignments.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::http::AppState;
use crate::http::error::{ApiError, ApiJson, ApiPath, ErrorEnvelope};
use crate::http::examples::{example, no_trial};
use crate::http::middleware::{AuditedJson, RequestMeta};

/// Which wave a fylke acknowledges.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeRequest {
    /// The wave whose assignments were received.
    pub wave: u32,
}

/// A fylke acknowledges that it received its firms' assignments of a wave.
#[utoipa::path(
    post, path = "/v1/trials/{id}/acknowledgements", tag = "randomization",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer")),
    request_body(content = AcknowledgeRequest, description = "The wave whose assignments were received",
        example = json!(example("acknowledge_request"))),
    responses(
        (status = 201, description = "Acknowledged: the fylke, wave and number of firms", body = crate::storage::Acknowledgement,
            example = json!(example("acknowledgement"))),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
        (status = 409, description = "Nothing to acknowledge, or already acknowledged", body = ErrorEnvelope),
    )
)]
pub async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<AcknowledgeRequest>,
) -> Result<AuditedJson<crate::storage::Acknowledgement>, ApiError> {
    let Some(fylke) = super::scope(&caller)? else {
        return Err(ApiError::Forbidden(
            "only a fylke acknowledges its assignments".into(),
        ));
    };
    let mut audit = meta.audit_entry(Some(&caller));
    audit.status = 201;
    let ack = state
        .store
        .acknowledge(&id, request.wave, fylke, &caller.name, &audit)
        .await
        .map_err(super::not_found(&id))?;
    Ok(AuditedJson(StatusCode::CREATED, ack))
}

/// Acknowledgements so far.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcknowledgementList {
    /// By wave and fylke.
    pub acknowledgements: Vec<crate::storage::Acknowledgement>,
}

/// Which fylker have acknowledged which waves (a fylke sees its own).
#[utoipa::path(
    get, path = "/v1/trials/{id}/acknowledgements", tag = "randomization",
    params(("id" = String, Path, description = "The trial id", example = "nals-arbeidsformer")),
    responses(
        (status = 200, description = "The acknowledgements the caller may see, by wave and fylke", body = AcknowledgementList,
            example = json!(example("acknowledgement_list"))),
        (status = 404, description = "No trial has this id", body = ErrorEnvelope, example = json!(no_trial())),
    )
)]
pub async fn list_acknowledgements(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AcknowledgementList>, ApiError> {
    let fylke = super::scope(&caller)?;
    state
        .store
        .get_trial(&id)
        .await
        .map_err(super::not_found(&id))?;
    let acknowledgements = state
        .store
        .acknowledgements(&id)
        .await?
        .into_iter()
        .filter(|a| fylke.is_none_or(|f| f == a.fylke))
        .collect();
    Ok(Json(AcknowledgementList { acknowledgements }))
}
