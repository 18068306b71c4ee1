//! CORS (protocol v1.1, §1): an allowed `Origin` gets `Access-Control-Allow-Origin`
//! and `Vary: Origin` on every `/v1/*` answer (errors and streams included), a preflight
//! from it answers `204` before auth; any other origin, a server with no allowed
//! origin, and the routes outside `/v1/` get no CORS header.

mod common;

use common::{TOKEN, TestServer};
use reference_server::{Config, RunningServer, ServerErrorKind};
use reqwest::header::HeaderMap;

const APP: &str = "https://app.example";
const OTHER: &str = "https://evil.example";

async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.allow_origins = vec![APP.into(), "http://127.0.0.1:5173".into()];
    })
    .await
}

/// Whether `h` carries the CORS answer for `origin`: the origin echoed, `Origin` in
/// `Vary`.
fn allows(h: &HeaderMap, origin: &str) -> bool {
    let acao = h
        .get_all("access-control-allow-origin")
        .iter()
        .collect::<Vec<_>>();
    let vary_origin = h
        .get_all("vary")
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .any(|v| v.trim().eq_ignore_ascii_case("origin"));
    acao.len() == 1 && acao[0] == origin && vary_origin
}

/// Whether `h` carries no CORS header at all.
fn no_cors(h: &HeaderMap) -> bool {
    h.keys().all(|k| !k.as_str().starts_with("access-control-"))
        && h.get_all("vary").iter().all(|v| {
            !v.to_str()
                .unwrap_or("")
                .to_ascii_lowercase()
                .contains("origin")
        })
}

#[tokio::test]
async fn an_allowed_origin_gets_the_headers_on_every_v1_answer_errors_included() {
    let s = server().await;
    let job = s.open_job().await;
    for origin in [APP, "http://127.0.0.1:5173"] {
        let answers = [
            s.get(&format!("/v1/jobs/{job}")).header("Origin", origin),
            s.get("/v1/jobs/nope").header("Origin", origin),
            s.post(&format!("/v1/jobs/{job}/events"))
                .header("Origin", origin)
                .json(&serde_json::json!({"event_type": "c", "payload": {}})),
            // 401: no token.
            s.http
                .get(s.u(&format!("/v1/jobs/{job}")))
                .header("Origin", origin),
            s.get("/v1/no-such-route").header("Origin", origin),
        ];
        for req in answers {
            let r = req.send().await.unwrap();
            assert!(
                allows(r.headers(), origin),
                "{} {:?}",
                r.status(),
                r.headers()
            );
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn other_origins_no_origin_and_non_v1_routes_get_no_cors_header() {
    let s = server().await;
    let job = s.open_job().await;
    for origin in [
        Some(OTHER),
        Some("https://app.example.evil"),
        Some("http://app.example"),
        Some("null"),
        None,
    ] {
        let mut req = s.get(&format!("/v1/jobs/{job}"));
        if let Some(o) = origin {
            req = req.header("Origin", o);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(no_cors(r.headers()), "{origin:?}: {:?}", r.headers());
    }
    for path in ["/healthz", "/metrics"] {
        let r = s
            .http
            .get(s.u(path))
            .header("Origin", APP)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(no_cors(r.headers()), "{path}: {:?}", r.headers());
    }
    s.stop().await;
}

#[tokio::test]
async fn a_server_without_allowed_origins_sends_no_cors_header() {
    let s = TestServer::start().await;
    let r = s
        .get("/v1/jobs/nope")
        .header("Origin", APP)
        .send()
        .await
        .unwrap();
    assert!(no_cors(r.headers()), "{:?}", r.headers());
    let r = s
        .http
        .request(reqwest::Method::OPTIONS, s.u("/v1/jobs"))
        .header("Origin", APP)
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 204);
    assert!(no_cors(r.headers()), "{:?}", r.headers());
    s.stop().await;
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_answers_204_before_auth() {
    let s = server().await;
    for path in [
        "/v1/jobs",
        "/v1/jobs/some-id/events",
        "/v1/events",
        "/v1/version/notify",
    ] {
        let r = s
            .http
            .request(reqwest::Method::OPTIONS, s.u(path))
            .header("Origin", APP)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type, idempotency-key",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{path}");
        let h = r.headers();
        assert!(allows(h, APP), "{path}: {h:?}");
        assert_eq!(h["access-control-allow-methods"], "GET, POST");
        assert_eq!(
            h["access-control-allow-headers"],
            "Authorization, Content-Type, Last-Event-ID, Idempotency-Key, X-Correlation-ID"
        );
        assert!(r.bytes().await.unwrap().is_empty());
    }
    // Another origin's preflight is no preflight: it gets what any OPTIONS gets.
    let r = s
        .http
        .request(reqwest::Method::OPTIONS, s.u("/v1/jobs"))
        .header("Origin", OTHER)
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 204);
    assert!(r.status().is_client_error(), "{}", r.status());
    assert!(no_cors(r.headers()), "{:?}", r.headers());
    s.stop().await;
}

#[tokio::test]
async fn streams_carry_the_headers_and_still_stream() {
    let s = server().await;
    let job = s.open_job().await;
    let seqs = s.publish(&job, 2, "c").await;
    // With the header token and with the query token (what an EventSource sends).
    let paths = [
        format!("/v1/events?job_id={job}"),
        format!("/v1/jobs/{job}/events"),
        format!("/v1/events?job_id={job}&access_token={TOKEN}"),
        "/v1/version/stream?request_id=cors-1".to_owned(),
    ];
    for path in &paths {
        let mut r = s.open(path, &[("Origin", APP)]).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(allows(&r.headers, APP), "{path}: {:?}", r.headers);
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let frames = r.until(|f| f.is("connection_open")).await;
        assert!(!frames.is_empty());
        if !path.starts_with("/v1/version") {
            let last = seqs.last().unwrap().to_string();
            r.until(|f| f.id.as_deref() == Some(&last)).await;
        }
    }
    // A live event reaches an open cross-origin stream: the body is not held back.
    let mut r = s.open(&paths[0], &[("Origin", APP)]).await;
    r.until(|f| f.is("connection_open")).await;
    let live = s.publish(&job, 1, "c").await[0].to_string();
    r.until(|f| f.id.as_deref() == Some(&live)).await;
    let r = s.open(&paths[0], &[("Origin", OTHER)]).await;
    assert_eq!(r.status, 200);
    assert!(no_cors(&r.headers), "{:?}", r.headers);
    s.stop().await;
}

#[tokio::test]
async fn an_origin_that_no_browser_sends_is_refused_at_start() {
    for bad in ["app.example", "https://app.example/", "*"] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::new(dir.path(), TOKEN);
        cfg.allow_origins = vec![bad.into()];
        let e = RunningServer::start(cfg).await.unwrap_err();
        assert_eq!(e.kind, ServerErrorKind::Config, "{bad}");
        assert!(e.detail.contains("--allow-origin"), "{e}");
    }
}

/// The fault `cors-off-on-streams`: streams lose their CORS headers (and still stream
/// to a client that does not care), every other `/v1/*` answer keeps them.
#[tokio::test]
async fn the_cors_off_on_streams_fault_strips_streams_only() {
    use reference_server::faults::{Fault, FaultSet};
    let s = TestServer::start_with(|c| {
        c.allow_origins = vec![APP.into()];
        c.faults = FaultSet::new(vec![Fault::CorsOffOnStreams]);
    })
    .await;
    let job = s.open_job().await;
    let r = s
        .get(&format!("/v1/jobs/{job}"))
        .header("Origin", APP)
        .send()
        .await
        .unwrap();
    assert!(allows(r.headers(), APP), "{:?}", r.headers());
    let mut r = s
        .open(&format!("/v1/events?job_id={job}"), &[("Origin", APP)])
        .await;
    assert_eq!(r.status, 200);
    assert!(no_cors(&r.headers), "{:?}", r.headers);
    r.until(|f| f.is("connection_open")).await;
    s.stop().await;
}
