//! Request-scoped middleware: request ids, authentication, per-route role checks, the audit log,
//! and logging of server errors with the request id.

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ErrorInfo, INTERNAL_MESSAGE, InternalError, envelope};
use crate::auth::{Caller, hash_token, looks_like_token};
use crate::domain::Role;
use crate::json::Json;
use crate::storage::{AuditResult, Audited, NewAuditEntry};

/// The header carrying the request id (set by the service if the client sent none or a bad one).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request id of a request or response, if it has one.
pub fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Whether a client-supplied request id may be kept: 1-64 characters of `[A-Za-z0-9_.:-]`, so it
/// cannot forge log lines or bloat audit rows.
fn acceptable_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

/// Drops a client-supplied request id that is not 1-64 characters of `[A-Za-z0-9_.:-]`, so that
/// the request-id layer replaces it with a fresh one.
pub async fn sanitize_request_id(mut req: Request, next: Next) -> Response {
    if req
        .headers()
        .get(REQUEST_ID_HEADER)
        .is_some_and(|v| !acceptable_request_id(v))
    {
        req.headers_mut().remove(REQUEST_ID_HEADER);
    }
    next.run(req).await
}

/// The route template a request matched (`/v1/tokens/{id}/revoke`), or its path when none did.
fn route_of(req: &Request) -> String {
    req.extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path().to_owned(), |m| m.as_str().to_owned())
}

/// What the audit log records about a request, available to handlers as an extractor.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// The request id.
    pub request_id: Option<String>,
    /// HTTP method.
    pub method: String,
    /// The route template, or the path when no route matched.
    pub route: String,
    /// The concrete path.
    pub path: String,
}

impl RequestMeta {
    fn of(req: &Request) -> Self {
        RequestMeta {
            request_id: request_id(req.headers()),
            method: req.method().to_string(),
            route: route_of(req),
            path: req.uri().path().to_owned(),
        }
    }

    /// An audit entry for this request by this caller, stamped now, result `permitted`.
    pub fn audit_entry(&self, caller: Option<&Caller>) -> NewAuditEntry {
        let mut entry = NewAuditEntry::now(&self.method, &self.route, &self.path);
        entry.request_id = self.request_id.clone();
        entry.actor = caller.cloned();
        entry
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<RequestMeta>()
            .cloned()
            .ok_or_else(|| {
                ApiError::Internal(
                    "RequestMeta missing: route is outside the audited router".into(),
                )
            })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::Internal("Caller missing: route is outside the authenticated router".into())
        })
    }
}

/// On a response whose audit row was committed with the write. Private: only [`AuditedJson`]
/// puts it there, from an [`Audited`] that only the storage layer can make.
#[derive(Debug, Clone, Copy)]
struct AuditWritten;

/// A JSON response for a write whose audit row was committed in the write's own transaction; the
/// audit middleware then writes no second row.
pub struct AuditedJson<T>(pub StatusCode, pub Audited<T>);

impl<T: Serialize> IntoResponse for AuditedJson<T> {
    fn into_response(self) -> Response {
        let AuditedJson(status, audited) = self;
        let mut response = (status, Json(audited.value)).into_response();
        response.extensions_mut().insert(AuditWritten);
        response
    }
}

/// Put on a response by a handler that read firm-level data, so the audit row the middleware
/// writes names the trial and the firms read.
#[derive(Debug, Clone, Default)]
pub struct AuditDetails {
    /// The trial concerned.
    pub trial_id: Option<String>,
    /// The objects read (e.g. `orgnr:974760673`).
    pub object_ids: Vec<String>,
}

/// Authenticates every request to `/v1` and writes its audit row.
///
/// A missing, malformed, unknown or revoked token is refused with 401 and audited as denied. For
/// an authenticated request the row is written after the handler ran, with the result its status
/// stands for, unless the handler's write committed its own row ([`AuditedJson`]). If the row
/// cannot be written, a successful response is withheld: nothing is read unaudited. Responses
/// under `/v1` are never cached (`Cache-Control: no-store`): they carry secrets and firm data.
pub async fn authenticate_and_audit(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let meta = RequestMeta::of(&req);
    let mut response = match authenticate(&state, req.headers()).await {
        Err(err) => record(&state, meta.audit_entry(None), err.into_response()).await,
        Ok(caller) => {
            let entry = meta.audit_entry(Some(&caller));
            req.extensions_mut().insert(caller);
            req.extensions_mut().insert(meta);
            let mut response = next.run(req).await;
            if response.extensions().get::<AuditWritten>().is_some() {
                response
            } else {
                let mut entry = entry;
                if let Some(details) = response.extensions_mut().remove::<AuditDetails>() {
                    entry.trial_id = details.trial_id;
                    entry.object_ids = details.object_ids;
                }
                record(&state, entry, response).await
            }
        }
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn record(state: &AppState, mut entry: NewAuditEntry, response: Response) -> Response {
    let status = response.status().as_u16();
    entry.status = status;
    entry.result = AuditResult::from_status(status);
    entry.detail = response
        .extensions()
        .get::<ErrorInfo>()
        .map(|info| info.message.clone());
    match state.store.append_audit(&entry).await {
        Ok(_) => response,
        Err(e) if response.status().is_success() => ApiError::from(e).into_response(),
        Err(e) => {
            tracing::error!(error = %e, route = %entry.route, status, "could not write the audit row of a refused or failed request");
            response
        }
    }
}

async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthenticated(
            "this route needs a bearer token: send `Authorization: Bearer iarct_…` \
             (a direktorat creates tokens with `ia-rct token create`)"
                .into(),
        ));
    };
    let secret = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|s| looks_like_token(s))
        .ok_or_else(|| {
            ApiError::Unauthenticated(
                "the Authorization header must be `Bearer iarct_` followed by 64 hex digits".into(),
            )
        })?;
    match state.store.find_active_token(&hash_token(secret)).await? {
        Some(token) => Ok(token.caller()),
        None => Err(ApiError::Unauthenticated(
            "the bearer token is unknown or has been revoked".into(),
        )),
    }
}

/// Refuses with 403 a caller whose role is not in `roles`. Installed per route by
/// [`super::routes::Admit::admit`], which also writes the roles into the OpenAPI document.
pub async fn require_role(roles: &'static [Role], req: Request, next: Next) -> Response {
    let Some(caller) = req.extensions().get::<Caller>() else {
        return ApiError::Internal("require_role ran before authentication".into()).into_response();
    };
    if roles.contains(&caller.role) {
        return next.run(req).await;
    }
    let allowed: Vec<&str> = roles.iter().map(Role::as_str).collect();
    ApiError::Forbidden(format!(
        "role {} may not call {} {}; it is open to: {}",
        caller.role,
        req.method(),
        route_of(&req),
        allowed.join(", ")
    ))
    .into_response()
}

/// Logs every server error (5xx) once, with the request id and its cause, and puts the request id
/// into the envelope's details so a user can quote it. The cause never reaches the client.
pub async fn log_server_errors(req: Request, next: Next) -> Response {
    let request_id = request_id(req.headers()).unwrap_or_default();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    if !response.status().is_server_error() {
        return response;
    }
    let status = response.status();
    let cause = response
        .extensions()
        .get::<InternalError>()
        .map_or("(no cause recorded)", |c| c.0.as_str());
    tracing::error!(%request_id, %method, %path, status = status.as_u16(), %cause, "server error");
    let (code, message) = response.extensions().get::<ErrorInfo>().map_or_else(
        || ("internal".to_owned(), INTERNAL_MESSAGE.to_owned()),
        |info| (info.code.clone(), info.message.clone()),
    );
    let (parts, _) = response.into_parts();
    let mut rebuilt = envelope(status, &code, &message, json!({ "request_id": request_id }));
    for (name, value) in &parts.headers {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            rebuilt.headers_mut().insert(name, value.clone());
        }
    }
    let info = rebuilt.extensions_mut().remove::<ErrorInfo>();
    *rebuilt.extensions_mut() = parts.extensions;
    if let Some(info) = info {
        rebuilt.extensions_mut().insert(info);
    }
    rebuilt
}

/// Turns a panic in a handler into a 500 envelope (the panic message is logged by the hook).
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let mut response = envelope(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        INTERNAL_MESSAGE,
        json!({}),
    );
    response
        .extensions_mut()
        .insert(InternalError("handler panicked".into()));
    response
}

/// Runs a response through the disclosure rule for its caller ([`crate::disclosure::mask_for`]):
/// unchanged for the directorate; for a fylke or a researcher every count of 1 to 4 becomes
/// `"<5"`, in every field and message, errors included. Installed per route by
/// [`super::routes::Admit::masked`]. A body that is not JSON is withheld (500): what cannot be
/// checked is not shown.
pub async fn mask_outside_directorate(req: Request, next: Next) -> Response {
    let Some(role) = req.extensions().get::<Caller>().map(|c| c.role) else {
        return ApiError::Internal("masking ran before authentication".into()).into_response();
    };
    let response = next.run(req).await;
    if role == Role::Direktorat {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::Internal(format!("reading a response to mask: {e}")).into_response();
        }
    };
    if bytes.is_empty() {
        return Response::from_parts(parts, axum::body::Body::empty());
    }
    let value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return ApiError::Internal(format!("a masked route answered with non-JSON: {e}"))
                .into_response();
        }
    };
    let masked = crate::disclosure::mask_for(role, value);
    let body = match crate::json::to_vec(&masked) {
        Ok(b) => b,
        Err(e) => {
            return ApiError::Internal(format!("serializing a masked response: {e}"))
                .into_response();
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(body))
}
