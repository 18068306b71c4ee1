//! Auth details: the scheme's case, the challenge on 401, `/metrics` behind the token
//! when configured, and the token's minimum length.

mod common;

use common::{TOKEN, TestServer};
use reference_server::{Config, RunningServer, ServerErrorKind};

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let s = TestServer::start().await;
    for scheme in ["bearer", "BEARER", "Bearer", "bEaReR"] {
        let r = s
            .http
            .get(s.u("/v1/jobs/none"))
            .header("authorization", format!("{scheme} {TOKEN}"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 404, "{scheme}: authorised, then no such job");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_401_carries_a_bearer_challenge() {
    let s = TestServer::start().await;
    for auth in [None, Some("Bearer wrong-token"), Some("Basic abc")] {
        let mut req = s.http.get(s.u("/v1/jobs/none"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.expect("get");
        assert_eq!(r.status(), 401);
        let challenge = r
            .headers()
            .get("www-authenticate")
            .expect("WWW-Authenticate")
            .to_str()
            .expect("ascii");
        assert!(challenge.starts_with("Bearer"), "{challenge}");
    }
    s.stop().await;
}

#[tokio::test]
async fn metrics_can_require_the_token() {
    let open = TestServer::start().await;
    let r = open.http.get(open.u("/metrics")).send().await.expect("get");
    assert_eq!(r.status(), 200, "open by default");
    open.stop().await;
    let s = TestServer::start_with(|c| c.metrics_auth = true).await;
    let r = s.http.get(s.u("/metrics")).send().await.expect("get");
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = s.get("/metrics").send().await.expect("get");
    assert_eq!(r.status(), 200);
    let r = s.http.get(s.u("/healthz")).send().await.expect("get");
    assert_eq!(r.status(), 200, "healthz stays open");
    s.stop().await;
}

#[tokio::test]
async fn a_short_or_blank_token_is_refused_at_start() {
    for token in ["", "short", "seven77", "has space in it", "tab\there-too"] {
        let dir = tempfile::tempdir().expect("dir");
        let err = RunningServer::start(Config::new(dir.path(), token))
            .await
            .expect_err(token);
        assert_eq!(err.kind, ServerErrorKind::Config, "{token:?}");
    }
}
