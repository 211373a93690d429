//! `/v1/tokens`: create, list and revoke bearer tokens (direktorat only).

use crate::json::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ApiJson, ApiPath, ErrorEnvelope};
use super::examples::{error, example};
use super::middleware::{AuditedJson, RequestMeta};
use crate::auth::{Caller, TokenSpec, generate_token};
use crate::domain::FylkeCode;
use crate::storage::{NewToken, TokenInfo};

/// A token to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// A human name, unique among active tokens (e.g. "NAV Vestland").
    #[schema(example = "NAV Vestland")]
    pub name: String,
    /// `direktorat`, `fylke` or `forsker`.
    pub role: crate::domain::Role,
    /// The 2-digit fylke code; required for, and only for, `fylke` tokens.
    #[schema(example = "46")]
    pub fylke: Option<String>,
}

/// A created token. The secret is in this response only; the service keeps its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The bearer secret: store it now, it is never shown again.
    pub token: String,
    /// The token's stored record.
    pub info: TokenInfo,
}

/// Every token, active and revoked, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// The tokens (never their secrets).
    pub tokens: Vec<TokenInfo>,
}

/// Creates a bearer token and returns its secret once.
#[utoipa::path(
    post, path = "/v1/tokens", tag = "tokens",
    request_body(content = CreateTokenRequest, description = "The token's name, role and (for a fylke) fylke",
        example = json!(example("create_token_request"))),
    responses(
        (status = 201, description = "Created; the secret is shown only here", body = CreatedToken,
            example = json!(example("created_token"))),
        (status = 409, description = "An active token has that name", body = ErrorEnvelope,
            example = json!(error("conflict", "an active token named `NAV Vestland` already exists; revoke it first or choose another name"))),
        (status = 422, description = "A field is invalid; details.field names it", body = ErrorEnvelope),
    )
)]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    ApiJson(request): ApiJson<CreateTokenRequest>,
) -> Result<AuditedJson<CreatedToken>, ApiError> {
    let fylke = request
        .fylke
        .as_deref()
        .map(str::parse::<FylkeCode>)
        .transpose()
        .map_err(|e| ApiError::invalid_field("fylke", e.to_string()))?;
    let spec = TokenSpec::new(&request.name, request.role, fylke)
        .map_err(|e| ApiError::invalid_field(e.field(), e.to_string()))?;
    let generated = generate_token().map_err(|e| ApiError::Internal(e.to_string()))?;
    let new = NewToken {
        name: spec.name,
        role: spec.role,
        fylke: spec.fylke,
        hash: generated.hash,
        created_by: caller.name.clone(),
    };
    let mut audit = meta.audit_entry(Some(&caller));
    audit.status = StatusCode::CREATED.as_u16();
    let created = state.store.create_token(&new, &audit).await?;
    let secret = generated.secret;
    Ok(AuditedJson(
        StatusCode::CREATED,
        created.map(|info| CreatedToken {
            token: secret,
            info,
        }),
    ))
}

/// Lists every token (without secrets).
#[utoipa::path(
    get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, description = "Every token, oldest first, without secrets", body = TokenList,
        example = json!(example("token_list"))))
)]
pub async fn list_tokens(State(state): State<AppState>) -> Result<Json<TokenList>, ApiError> {
    let tokens = state.store.list_tokens().await?;
    Ok(Json(TokenList { tokens }))
}

/// Revokes a token at once; it stays listed with when and by whom.
#[utoipa::path(
    post, path = "/v1/tokens/{id}/revoke", tag = "tokens",
    params(("id" = i64, Path, description = "The token's id", example = 2)),
    responses(
        (status = 200, description = "Revoked: the token with when and by whom", body = TokenInfo,
            example = json!(example("revoked_token"))),
        (status = 404, description = "No token has this id", body = ErrorEnvelope,
            example = json!(error("not_found", "no token has id 9; GET /v1/tokens lists them"))),
        (status = 409, description = "Already revoked", body = ErrorEnvelope),
    )
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    ApiPath(id): ApiPath<i64>,
) -> Result<AuditedJson<TokenInfo>, ApiError> {
    let audit = meta.audit_entry(Some(&caller));
    let info = state
        .store
        .revoke_token(id, &caller.name, &audit)
        .await
        .map_err(|e| match e {
            crate::storage::StoreError::NotFound => {
                ApiError::NotFound(format!("no token has id {id}; GET /v1/tokens lists them"))
            }
            other => other.into(),
        })?;
    Ok(AuditedJson(StatusCode::OK, info))
}

/// The caller's own identity: token name, role and fylke.
#[utoipa::path(
    get, path = "/v1/whoami", tag = "tokens",
    responses((status = 200, description = "The calling token's identity", body = Caller,
        example = json!(example("whoami"))))
)]
pub async fn whoami(caller: Caller) -> Json<Caller> {
    Json(caller)
}
