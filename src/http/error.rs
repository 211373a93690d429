//! One error type for the HTTP boundary and the one JSON envelope every error is sent in:
//! `{"error": {"code": "...", "message": "...", "details": {...}}}`.
//!
//! Messages say what to do. Server errors (5xx) are sent with a safe message and the request
//! id; their cause is logged once, by [`super::middleware::log_server_errors`], never sent.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterIn};

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
    let mut response = (status, crate::json::Json(body)).into_response();
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

/// `axum::extract::Query` whose rejections are 422s in the envelope that name the parameter and
/// say what it expects, from the route's own parameter documentation ([`IntoParams`]): the
/// format of a timestamp, the allowed values of an enum, the parameters a route takes.
/// `details` has `in: "query"`, the `field` (the parameter), the `value` given and what is
/// `expected`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + IntoParams,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|e| {
                let field = e.path().to_string();
                query_error(
                    &T::into_params(|| Some(ParameterIn::Query)),
                    query,
                    &field,
                    &e.into_inner().to_string(),
                )
            })
    }
}

/// What a query parameter expects, in words, from its documented schema.
fn expected_of(parameter: &Parameter) -> String {
    let schema = parameter
        .schema
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null);
    // `Option<T>` is documented as T or null, inline or as `oneOf`.
    let schema = schema
        .get("oneOf")
        .and_then(Value::as_array)
        .and_then(|alts| alts.iter().find(|a| a.get("type") != Some(&json!("null"))))
        .cloned()
        .unwrap_or(schema);
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let kind = if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let names: Vec<String> = values
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect();
        Some(format!("one of {}", names.join(", ")))
    } else {
        match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => Some(
                "an RFC 3339 timestamp with a time and a time zone, e.g. 2026-12-01T00:00:00Z \
                 (URL-encode `+` as %2B)"
                    .to_owned(),
            ),
            Some("date") => Some("a date, YYYY-MM-DD".to_owned()),
            _ if types.contains(&"integer") => Some(
                if schema.get("minimum").and_then(Value::as_f64) == Some(0.0) {
                    "a whole number, 0 or more".to_owned()
                } else {
                    "a whole number".to_owned()
                },
            ),
            _ if types.contains(&"number") => Some("a number".to_owned()),
            _ if types.contains(&"boolean") => Some("true or false".to_owned()),
            _ => None,
        }
    };
    let description = parameter
        .description
        .as_deref()
        .map(|d| d.trim().trim_end_matches('.'))
        .filter(|d| !d.is_empty());
    match (kind, description) {
        (Some(k), Some(d)) => format!("{k}; `{}`: {d}", parameter.name),
        (Some(k), None) => k,
        (None, Some(d)) => format!("`{}`: {d}", parameter.name),
        (None, None) => "a value".to_owned(),
    }
}

/// The 422 for a query string that does not fit `parameters`: an unknown or missing parameter, or
/// the parameter `field` whose value serde refused with `reason`.
fn query_error(parameters: &[Parameter], query: &str, field: &str, reason: &str) -> ApiError {
    let given: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let names: Vec<&str> = parameters.iter().map(|p| p.name.as_str()).collect();
    let takes = if names.is_empty() {
        "this route takes no query parameters".to_owned()
    } else {
        format!("this route takes {}", names.join(", "))
    };
    if let Some((unknown, value)) = given.iter().find(|(k, _)| !names.contains(&k.as_str())) {
        return ApiError::Invalid {
            message: format!("unknown query parameter `{unknown}`; {takes}"),
            details: json!({ "in": "query", "field": unknown, "value": value, "expected": names }),
        };
    }
    if let Some(missing) = parameters
        .iter()
        .find(|p| matches!(p.required, Required::True) && !given.iter().any(|(k, _)| *k == p.name))
    {
        let expected = expected_of(missing);
        return ApiError::Invalid {
            message: format!(
                "the query parameter `{}` is missing; expected {expected}",
                missing.name
            ),
            details: json!({ "in": "query", "field": missing.name, "expected": expected }),
        };
    }
    match parameters.iter().find(|p| p.name == field) {
        Some(parameter) => {
            let expected = expected_of(parameter);
            let value = given
                .iter()
                .rev()
                .find(|(k, _)| k == field)
                .map(|(_, v)| v.as_str())
                .unwrap_or_default();
            ApiError::Invalid {
                message: format!(
                    "query parameter `{field}`: {value:?} is not valid ({reason}); expected {expected}"
                ),
                details: json!({
                    "in": "query", "field": field, "value": value, "expected": expected
                }),
            }
        }
        // Not one parameter's value (a parameter given twice, say): the reason, and what the
        // route takes.
        None => ApiError::Invalid {
            message: format!("the query string is not valid: {reason}; {takes}"),
            details: json!({ "in": "query", "expected": names }),
        },
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
