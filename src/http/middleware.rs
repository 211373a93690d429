//! Request-scoped middleware: authentication, per-route role checks, the audit log, and logging of
//! internal errors with the request id.

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ErrorMessage, InternalError, envelope};
use crate::auth::{Caller, hash_token, looks_like_token};
use crate::domain::Role;
use crate::storage::{AuditResult, NewAuditEntry};

/// The header carrying the request id (set by the service if the client sent none).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// What the audit log records about a request, available to handlers as an extractor.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// The request id.
    pub request_id: Option<String>,
    /// HTTP method.
    pub method: String,
    /// The route template (`/v1/tokens/{id}/revoke`), or the path when no route matched.
    pub route: String,
    /// The concrete path.
    pub path: String,
}

impl RequestMeta {
    fn of(req: &Request) -> Self {
        let path = req.uri().path().to_owned();
        RequestMeta {
            request_id: request_id(req.headers()),
            method: req.method().to_string(),
            route: req
                .extensions()
                .get::<MatchedPath>()
                .map_or_else(|| path.clone(), |m| m.as_str().to_owned()),
            path,
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

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
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

/// Put on a response by a handler that wrote the request's audit row inside its own transaction
/// (every state change does), so the middleware does not write a second one.
#[derive(Debug, Clone, Copy)]
pub struct AuditWritten;

/// Put on a response by a handler to add the trial and object ids to the audit row the middleware
/// writes (reads of firm-level data name what they returned).
#[derive(Debug, Clone, Default)]
pub struct AuditDetails {
    /// The trial concerned.
    pub trial_id: Option<String>,
    /// The objects read.
    pub object_ids: Vec<String>,
}

/// Authenticates every request to `/v1` and writes its audit row.
///
/// A missing, malformed, unknown or revoked token is refused with 401 and audited as denied. For
/// an authenticated request the row is written after the handler ran, with the result its status
/// stands for, unless the handler wrote it in its own transaction ([`AuditWritten`]). If the row
/// cannot be written, a successful response is withheld: nothing is read unaudited.
pub async fn authenticate_and_audit(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let meta = RequestMeta::of(&req);
    let caller = match authenticate(&state, req.headers()).await {
        Ok(caller) => caller,
        Err(err) => {
            let entry = meta.audit_entry(None);
            return record(&state, entry, err.into_response()).await;
        }
    };
    let entry = meta.audit_entry(Some(&caller));
    req.extensions_mut().insert(caller);
    req.extensions_mut().insert(meta);
    let mut response = next.run(req).await;
    if response.extensions().get::<AuditWritten>().is_some() {
        return response;
    }
    let mut entry = entry;
    if let Some(details) = response.extensions_mut().remove::<AuditDetails>() {
        entry.trial_id = details.trial_id;
        entry.object_ids = details.object_ids;
    }
    record(&state, entry, response).await
}

async fn record(state: &AppState, mut entry: NewAuditEntry, response: Response) -> Response {
    let status = response.status().as_u16();
    entry.status = status;
    entry.result = AuditResult::from_status(status);
    entry.detail = response
        .extensions()
        .get::<ErrorMessage>()
        .map(|m| m.0.clone());
    match state.store.append_audit(&entry).await {
        Ok(_) => response,
        Err(e) if response.status().is_success() => ApiError::from(e).into_response(),
        Err(e) => {
            tracing::error!(error = %e, route = %entry.route, "could not write audit row for a refused or failed request");
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
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path().to_owned(), |m| m.as_str().to_owned());
    ApiError::Forbidden(format!(
        "role {} may not call {} {}; it is open to: {}",
        caller.role,
        req.method(),
        route,
        allowed.join(", ")
    ))
    .into_response()
}

/// Logs the cause of every internal error once, with the request id, and puts the request id into
/// the envelope's details so a user can quote it. The cause never reaches the client.
pub async fn log_internal_errors(req: Request, next: Next) -> Response {
    let request_id = request_id(req.headers()).unwrap_or_default();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    let Some(InternalError(cause)) = response.extensions().get::<InternalError>().cloned() else {
        return response;
    };
    tracing::error!(%request_id, %method, %path, %cause, "internal error");
    let status = response.status();
    let (parts, _) = response.into_parts();
    let mut rebuilt = envelope(
        status,
        "internal",
        "the service failed to handle this request; it has been logged. \
         Quote the request id when reporting it",
        json!({ "request_id": request_id }),
    );
    for (name, value) in &parts.headers {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            rebuilt.headers_mut().insert(name, value.clone());
        }
    }
    *rebuilt.extensions_mut() = parts.extensions;
    rebuilt
}

/// Turns a panic in a handler into a 500 envelope (the panic itself is logged by the hook).
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let mut response = envelope(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the service failed to handle this request",
        json!({}),
    );
    response
        .extensions_mut()
        .insert(InternalError("handler panicked".into()));
    response
}
