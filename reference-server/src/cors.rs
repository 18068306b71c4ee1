//! CORS for browsers on other origins (protocol v1.1, §1): a request to `/v1/*` whose
//! `Origin` is one of the allowed origins (`serve --allow-origin ORIGIN`) gets
//! `Access-Control-Allow-Origin: <that origin>` and `Vary: Origin` on its response,
//! streams included (only the head is touched; the body passes through as it is
//! produced); an `OPTIONS` preflight from an allowed origin answers `204` with the
//! allowed methods and headers before auth. Any other origin, and any other path, gets
//! no CORS header at all.
//!
//! Hand-written rather than tower-http's `CorsLayer` (0.6), which differs from the
//! protocol: it answers a preflight `200`, not `204`; it adds `Vary` (with the two
//! `Access-Control-Request-*` names as well) to every response, disallowed origins
//! included; and it takes every `OPTIONS` for a preflight, so a plain `OPTIONS` from
//! an unknown origin would bypass auth with `200` instead of getting the usual answer.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// `Access-Control-Allow-Methods` of a preflight.
pub const ALLOW_METHODS: &str = "GET, POST";
/// `Access-Control-Allow-Headers` of a preflight.
pub const ALLOW_HEADERS: &str =
    "Authorization, Content-Type, Last-Event-ID, Idempotency-Key, X-Correlation-ID";

/// An allowed origin that cannot match any browser's `Origin`.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "--allow-origin {0:?}: an origin is scheme://host[:port] (http or https, no path, no trailing slash)"
)]
pub struct BadOrigin(pub String);

/// The allowed origins (empty: CORS off, no header ever added).
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins(Arc<Vec<HeaderValue>>, bool);

impl AllowedOrigins {
    /// Checks each origin: `http://` or `https://`, a host, no path, no trailing slash,
    /// visible ASCII (what a browser sends; a typo is a start-up error, not a silent
    /// mismatch).
    pub fn new<I, S>(origins: I) -> Result<AllowedOrigins, BadOrigin>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = Vec::new();
        for o in origins {
            let o = o.as_ref();
            let host = o
                .strip_prefix("https://")
                .or_else(|| o.strip_prefix("http://"))
                .filter(|h| !h.is_empty() && !h.contains('/'))
                .filter(|_| o.bytes().all(|b| b.is_ascii_graphic()));
            let value = host.and_then(|_| HeaderValue::from_str(o).ok());
            out.push(value.ok_or_else(|| BadOrigin(o.to_owned()))?);
        }
        Ok(AllowedOrigins(Arc::new(out), false))
    }

    /// These origins with event streams left without CORS headers (the fault
    /// [`crate::faults::Fault::CorsOffOnStreams`]) when `off` is true.
    pub fn off_on_streams(mut self, off: bool) -> AllowedOrigins {
        self.1 = off;
        self
    }

    /// Whether no origin is allowed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The request's `Origin` when it is allowed.
    fn allowed(&self, req: &Request) -> Option<HeaderValue> {
        let origin = req.headers().get(header::ORIGIN)?;
        self.0.iter().find(|o| *o == origin).cloned()
    }
}

/// The middleware (outermost, so before auth and routing).
pub async fn cors(State(origins): State<AllowedOrigins>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/v1/") {
        return next.run(req).await;
    }
    let Some(origin) = origins.allowed(&req) else {
        return next.run(req).await;
    };
    let mut resp = if req.method() == Method::OPTIONS {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        r
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    let stream = h
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if origins.1 && stream {
        return resp;
    }
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_and_host_only() {
        assert!(AllowedOrigins::new(["https://app.example", "http://127.0.0.1:8080"]).is_ok());
        assert!(
            AllowedOrigins::new(Vec::<String>::new())
                .unwrap()
                .is_empty()
        );
        for bad in [
            "app.example",
            "https://app.example/",
            "https://app.example/x",
            "https://",
            "ftp://app.example",
            "https://app example",
            "*",
        ] {
            assert!(AllowedOrigins::new([bad]).is_err(), "{bad}");
        }
    }
}
