//! The JSON error shape `{"error":"<code>","detail":"<text>"}` and its HTTP status,
//! including the mapping of axum's own (plain-text) extractor rejections.

use axum::Json;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Every error code the server answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Missing or wrong token (401).
    Unauthorized,
    /// Malformed body or query, or out-of-range values (400).
    InvalidRequest,
    /// A cursor that is not a decimal u64 (400).
    InvalidLastEventId,
    /// A body or payload above its limit (413).
    PayloadTooLarge,
    /// Unknown job (404).
    JobNotFound,
    /// No receipt for that job (404).
    ReceiptNotFound,
    /// No such route (404).
    NotFound,
    /// The route exists, not with that method (405).
    MethodNotAllowed,
    /// The job's terminal event is written or under way (409).
    JobTerminal,
    /// An `Idempotency-Key` the job already holds for another body (409).
    IdempotencyConflict,
    /// A request body stopped arriving (408).
    RequestTimeout,
    /// The version queue for a request id is full (429).
    QueueFull,
    /// The same kind of work is already running (429).
    Busy,
    /// The quota of running jobs or pending artifact bytes is used up (429).
    TooManyJobs,
    /// The server is shutting down (503).
    Unavailable,
    /// A server-side failure (500).
    Internal,
}

impl ErrorCode {
    /// The wire code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidLastEventId => "invalid_last_event_id",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::JobNotFound => "job_not_found",
            ErrorCode::ReceiptNotFound => "receipt_not_found",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::JobTerminal => "job_terminal",
            ErrorCode::IdempotencyConflict => "idempotency_conflict",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::QueueFull => "queue_full",
            ErrorCode::Busy => "busy",
            ErrorCode::TooManyJobs => "too_many_jobs",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidRequest | ErrorCode::InvalidLastEventId => StatusCode::BAD_REQUEST,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::JobNotFound | ErrorCode::ReceiptNotFound | ErrorCode::NotFound => {
                StatusCode::NOT_FOUND
            }
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::JobTerminal | ErrorCode::IdempotencyConflict => StatusCode::CONFLICT,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::QueueFull | ErrorCode::Busy | ErrorCode::TooManyJobs => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error answered to a client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {detail}", code.as_str())]
pub struct ApiError {
    /// What kind.
    pub code: ErrorCode,
    /// Human-readable detail (never a secret).
    pub detail: String,
}

impl ApiError {
    /// An error with a detail text.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            code,
            detail: detail.into(),
        }
    }

    /// `400 invalid_request`.
    pub fn invalid(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidRequest, detail)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    detail: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.as_str(),
            detail: &self.detail,
        };
        (self.code.status(), Json(body)).into_response()
    }
}

/// Whether a body failed because the body read timeout (`Limits::body_read_timeout`) passed.
fn body_timed_out(r: &BytesRejection) -> bool {
    let mut e: Option<&(dyn std::error::Error + 'static)> = Some(r);
    while let Some(err) = e {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        e = err.source();
    }
    false
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> ApiError {
        if body_timed_out(&r) {
            ApiError::new(
                ErrorCode::RequestTimeout,
                "the request body stopped arriving",
            )
        } else if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(ErrorCode::PayloadTooLarge, r.body_text())
        } else {
            ApiError::invalid(r.body_text())
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::invalid(r.body_text())
    }
}

/// Parses a JSON body into `T`, with `400 invalid_request` naming what is wrong.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("body: {e}")))
}

/// The fallback for unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

/// The fallback for a known route with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}
