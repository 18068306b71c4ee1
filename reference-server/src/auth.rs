//! Bearer-token auth for `/v1/*`: the `Authorization: Bearer` header, or on SSE streams
//! the `access_token` query parameter (RFC 6750 §2.3). Tokens are compared in constant
//! time over their SHA-256 digests (so not even the length leaks) and never logged.
//! The scheme name is case-insensitive (RFC 7235 §2.1), and every `401` carries
//! `WWW-Authenticate: Bearer` (RFC 6750 §3).

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::{ApiError, ErrorCode};

/// Shortest token a server accepts.
pub const MIN_TOKEN_LEN: usize = 8;

/// The token of an `Authorization` header value: scheme `Bearer` in any case, then
/// the token.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The server's token, kept as a digest for comparison.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// Wraps the configured token.
    pub fn new(token: &str) -> Token {
        Token {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// Whether `candidate` is the token, in constant time.
    pub fn matches(&self, candidate: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        self.digest.ct_eq(&d).into()
    }
}

/// Whether a GET on `path` is an SSE stream (where `access_token` is accepted).
fn is_stream_path(path: &str) -> bool {
    path == "/v1/events"
        || path == "/v1/version/stream"
        || (path.starts_with("/v1/jobs/") && path.ends_with("/events"))
}

/// The `access_token` query parameter, percent-decoded.
fn query_token(query: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Q {
        access_token: Option<String>,
    }
    // A query that does not parse has no token; the handler reports it.
    serde_urlencoded_parse(query).and_then(|q: Q| q.access_token)
}

fn serde_urlencoded_parse<T: serde::de::DeserializeOwned>(query: &str) -> Option<T> {
    axum::extract::Query::<T>::try_from_uri(&format!("/?{query}").parse().ok()?)
        .ok()
        .map(|q| q.0)
}

/// Middleware: `401 unauthorized` unless the request carries the token.
pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let header_ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .is_some_and(|t| state.token.matches(t));
    let ok = header_ok
        || (req.method() == Method::GET
            && is_stream_path(req.uri().path())
            && req
                .uri()
                .query()
                .and_then(query_token)
                .is_some_and(|t| state.token.matches(&t)));
    if ok {
        next.run(req).await
    } else {
        unauthorized()
    }
}

/// `401 unauthorized` with its `WWW-Authenticate` challenge.
pub fn unauthorized() -> Response {
    let mut resp = axum::response::IntoResponse::into_response(ApiError::new(
        ErrorCode::Unauthorized,
        "missing or wrong bearer token",
    ));
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"spine\""),
    );
    resp
}

/// Middleware for `/metrics`: the token is required only when the server was
/// configured so ([`crate::Config::metrics_auth`]).
pub async fn metrics_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !state.metrics_auth {
        return next.run(req).await;
    }
    let ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .is_some_and(|t| state.token.matches(t));
    if ok {
        next.run(req).await
    } else {
        unauthorized()
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_the_token_trimmed() {
        for v in ["Bearer abc", "bearer abc", "BEARER  abc ", " bEaReR abc"] {
            assert_eq!(bearer_token(v), Some("abc"), "{v:?}");
        }
        for v in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", ""] {
            assert_eq!(bearer_token(v), None, "{v:?}");
        }
    }
}
