//! One error type for the HTTP boundary and the one JSON envelope every error is sent in:
//! `{"error": {"code": "...", "message": "...", "details": {...}}}`.
//!
//! Messages say what to do. Server errors (5xx) are sent with a safe message and the request
//! id; their cause is logged once, by [`super::middleware::log_server_errors`], never sent.

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::storage::StoreError;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 401: no token, a malformed token, or a token that is unknown or revoked.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: the token's role (or fylke) does not admit this request.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such route or object.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists but not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: the request conflicts with what is stored.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is larger than the configured limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: the body is not in a format this route accepts.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 400: the body could not be parsed at all.
    #[error("{0}")]
    BadRequest(String),
    /// 422: the request parsed but a field is invalid; `details` names it.
    #[error("{message}")]
    Invalid {
        /// What is wrong, in words.
        message: String,
        /// Machine-readable pointers (`field`, `row`, `value`, …).
        details: Value,
    },
    /// 503: the database is not reachable. The cause is logged, not sent.
    #[error("{message}")]
    Unavailable {
        /// What the client is told.
        message: String,
        /// What actually failed (logged with the request id).
        cause: String,
    },
    /// 500: a bug or an unexpected failure; the cause is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The body of every error response.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// The error inside the envelope.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable machine-readable code (`unauthenticated`, `forbidden`, `not_found`,
    /// `method_not_allowed`, `conflict`, `payload_too_large`, `unsupported_media_type`,
    /// `bad_request`, `invalid`, `unavailable`, `internal`).
    pub code: String,
    /// What went wrong and what to do about it.
    pub message: String,
    /// Structured details: the field, row or value at fault; the request id of a 5xx.
    #[schema(value_type = Object)]
    pub details: Value,
}

/// The cause of a 5xx, kept on the response (never in its body) so the logging middleware can log
/// it once, with the request id.
#[derive(Debug, Clone)]
pub struct InternalError(pub String);

/// The code and message of an error response, kept beside the body for the audit log's `detail`
/// and for adding the request id to 5xx envelopes.
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    /// The envelope's code.
    pub code: String,
    /// The envelope's message.
    pub message: String,
}

/// The message every 500 carries.
pub const INTERNAL_MESSAGE: &str = "the service failed to handle this request; it has been logged. \
                                    Quote the request id when reporting it";

impl ApiError {
    /// A 422 naming one field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            message: message.into(),
            details: json!({ "field": field }),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code in the envelope.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Invalid { .. } => "invalid",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

/// Builds an envelope response.
pub fn envelope(status: StatusCode, code: &str, message: &str, details: Value) -> Response {
    let body = ErrorEnvelope {
        error: ErrorBody {
            code: code.to_owned(),
            message: message.to_owned(),
            details,
        },
    };
    let mut response = (status, axum::Json(body)).into_response();
    response.extensions_mut().insert(ErrorInfo {
        code: code.to_owned(),
        message: message.to_owned(),
    });
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        match self {
            ApiError::Internal(cause) => {
                let mut response = envelope(status, code, INTERNAL_MESSAGE, json!({}));
                response.extensions_mut().insert(InternalError(cause));
                response
            }
            ApiError::Unavailable { message, cause } => {
                let mut response = envelope(status, code, &message, json!({}));
                response.extensions_mut().insert(InternalError(cause));
                response
            }
            ApiError::Invalid { message, details } => envelope(status, code, &message, details),
            other => envelope(status, code, &other.to_string(), json!({})),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("no such object".to_owned()),
            StoreError::Conflict(message) => ApiError::Conflict(message),
            StoreError::Unavailable(cause) => ApiError::Unavailable {
                message: "the database is not reachable right now; try again shortly".to_owned(),
                cause,
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// `axum::Json` with rejections in the envelope: 415 without a JSON content type, 413 over the body
/// limit, 400 for malformed JSON, and 422 naming the field (`details.field`, a path such as
/// `arms[2].ratio`) when a value has the wrong type or is missing.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with the header `Content-Type: application/json`".to_owned(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(format!(
                    "the body is larger than this service accepts ({})",
                    e.body_text()
                ))
            } else {
                ApiError::BadRequest(e.body_text())
            }
        })?;
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_data() {
                if field == "." {
                    ApiError::Invalid {
                        message: inner.to_string(),
                        details: json!({}),
                    }
                } else {
                    ApiError::Invalid {
                        message: format!("{field}: {inner}"),
                        details: json!({ "field": field }),
                    }
                }
            } else {
                // Name where parsing stopped: the line and column, and the path of the value
                // being read there (the field after the last complete one).
                let at = if field == "." {
                    String::new()
                } else {
                    format!(", in `{field}`")
                };
                ApiError::BadRequest(format!(
                    "the body is not valid JSON at line {} column {}{at}: {inner}",
                    inner.line(),
                    inner.column()
                ))
            }
        })?;
        deserializer
            .end()
            .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
        Ok(ApiJson(value))
    }
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// `axum::extract::Query` whose rejections are 422s in the envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| ApiError::Invalid {
                message: e.body_text(),
                details: json!({ "in": "query" }),
            })
    }
}

/// `axum::extract::Path` whose rejections are 422s in the envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e: PathRejection| ApiError::Invalid {
                message: e.body_text(),
                details: json!({ "in": "path" }),
            })
    }
}
