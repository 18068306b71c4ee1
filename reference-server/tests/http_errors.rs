//! Bad input, one test per row: every malformed request gets its documented 4xx JSON
//! error `{"error","detail"}`, never a 5xx, never a hang.

mod common;

use common::{TOKEN, TestServer};
use reqwest::RequestBuilder;
use serde_json::{Value, json};

/// Sends `req` and checks the status and the JSON error code.
async fn expect_error(req: RequestBuilder, status: u16, code: &str) {
    let resp = req.send().await.expect("request");
    assert_eq!(resp.status().as_u16(), status, "status");
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/json"), "content type {ct}");
    let v: Value = resp.json().await.expect("json error body");
    assert_eq!(v["error"], code, "{v}");
    assert!(v["detail"].is_string(), "{v}");
}

macro_rules! row {
    ($name:ident, |$s:ident| $req:expr, $status:expr, $code:expr) => {
        #[tokio::test]
        async fn $name() {
            let $s = TestServer::start().await;
            let req = $req;
            expect_error(req, $status, $code).await;
            $s.stop().await;
        }
    };
}

fn jobs_post(s: &TestServer, body: &str) -> RequestBuilder {
    s.post("/v1/jobs")
        .header("content-type", "application/json")
        .body(body.to_owned())
}

row!(
    missing_token_is_401,
    |s| s.http.post(s.u("/v1/jobs")).body("{}"),
    401,
    "unauthorized"
);
row!(
    wrong_token_is_401,
    |s| s.http.get(s.u("/v1/jobs/x")).bearer_auth("nope"),
    401,
    "unauthorized"
);
row!(
    token_in_query_is_refused_off_streams,
    |s| s.http.get(s.u(&format!("/v1/jobs/x?access_token={TOKEN}"))),
    401,
    "unauthorized"
);
row!(
    wrong_query_token_on_stream_is_401,
    |s| s.http.get(s.u("/v1/events?access_token=bad")),
    401,
    "unauthorized"
);
row!(
    stream_auth_before_cursor,
    |s| s.http.get(s.u("/v1/events?last_event_id=x")),
    401,
    "unauthorized"
);
row!(
    bad_json_is_400,
    |s| jobs_post(&s, "{"),
    400,
    "invalid_request"
);
row!(
    non_object_body_is_400,
    |s| jobs_post(&s, "[1]"),
    400,
    "invalid_request"
);
row!(
    wrong_type_is_400,
    |s| jobs_post(&s, r#"{"steps":"3"}"#),
    400,
    "invalid_request"
);
row!(
    negative_steps_is_400,
    |s| jobs_post(&s, r#"{"steps":-1}"#),
    400,
    "invalid_request"
);
row!(
    fractional_steps_is_400,
    |s| jobs_post(&s, r#"{"steps":1.5}"#),
    400,
    "invalid_request"
);
row!(
    steps_above_range_is_400,
    |s| jobs_post(&s, r#"{"steps":10001}"#),
    400,
    "invalid_request"
);
row!(
    interval_above_range_is_400,
    |s| jobs_post(&s, r#"{"interval_ms":3600001}"#),
    400,
    "invalid_request"
);
row!(
    fail_at_zero_is_400,
    |s| jobs_post(&s, r#"{"steps":3,"fail_at_step":0}"#),
    400,
    "invalid_request"
);
row!(
    fail_after_last_step_is_400,
    |s| jobs_post(&s, r#"{"steps":3,"fail_at_step":4}"#),
    400,
    "invalid_request"
);
row!(
    artifact_above_range_is_400,
    |s| jobs_post(&s, r#"{"artifact_bytes":268435457}"#),
    400,
    "invalid_request"
);
row!(
    payload_bytes_above_range_is_400,
    |s| jobs_post(&s, r#"{"payload_bytes":65537}"#),
    400,
    "invalid_request"
);
row!(
    huge_number_is_400,
    |s| jobs_post(&s, r#"{"steps":184467440737095516160}"#),
    400,
    "invalid_request"
);
row!(
    unknown_field_is_400,
    |s| jobs_post(&s, r#"{"stepz":3}"#),
    400,
    "invalid_request"
);
row!(
    body_over_limit_is_413,
    |s| jobs_post(&s, &" ".repeat(17 * 1024 * 1024)),
    413,
    "payload_too_large"
);
row!(
    status_of_unknown_job_is_404,
    |s| s.get("/v1/jobs/nope"),
    404,
    "job_not_found"
);
row!(
    publish_to_unknown_job_is_404,
    |s| s
        .post("/v1/jobs/nope/events")
        .json(&json!({"event_type":"x"})),
    404,
    "job_not_found"
);
row!(
    receipt_of_unknown_job_is_404,
    |s| s.get("/v1/jobs/nope/receipt"),
    404,
    "receipt_not_found"
);
row!(
    unknown_route_is_json_404,
    |s| s.get("/v1/nothing"),
    404,
    "not_found"
);
row!(
    wrong_method_is_json_405,
    |s| s.http.delete(s.u("/healthz")),
    405,
    "method_not_allowed"
);
row!(
    header_cursor_not_decimal_is_400,
    |s| s.get("/v1/events").header("Last-Event-ID", "abc"),
    400,
    "invalid_last_event_id"
);
row!(
    query_cursor_negative_is_400,
    |s| s.get("/v1/events?last_event_id=-1"),
    400,
    "invalid_last_event_id"
);
row!(
    cursor_above_u64_is_400,
    |s| s.get("/v1/jobs/x/events?last_event_id=18446744073709551616"),
    400,
    "invalid_last_event_id"
);
row!(
    cursor_with_plus_sign_is_400,
    |s| s.get("/v1/version/stream?request_id=a&last_event_id=%2B1"),
    400,
    "invalid_last_event_id"
);
row!(
    version_stream_without_request_id_is_400,
    |s| s.get("/v1/version/stream"),
    400,
    "invalid_request"
);
row!(
    notify_without_version_is_400,
    |s| s
        .post("/v1/version/notify")
        .json(&json!({"request_id":"a"})),
    400,
    "invalid_request"
);
row!(
    notify_wrong_type_is_400,
    |s| s
        .post("/v1/version/notify")
        .json(&json!({"request_id":"a","version":1})),
    400,
    "invalid_request"
);
row!(
    integrity_bad_flag_is_400,
    |s| s.get("/v1/diagnostics/integrity?full_integrity=maybe"),
    400,
    "invalid_request"
);

/// Publish rows need a running job.
async fn publish_error(body: Value, status: u16, code: &str) {
    let s = TestServer::start().await;
    let job = s.open_job().await;
    expect_error(
        s.post(&format!("/v1/jobs/{job}/events")).json(&body),
        status,
        code,
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn publish_reserved_type_is_400() {
    publish_error(
        json!({"event_type": "task_completed", "payload": {}}),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn publish_reserved_type_inside_batch_is_400() {
    publish_error(
        json!({"events": [{"event_type": "ok"}, {"event_type": "job_started"}]}),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn publish_empty_list_is_400() {
    publish_error(json!({"events": []}), 400, "invalid_request").await;
}

#[tokio::test]
async fn publish_more_than_1000_is_400() {
    let events: Vec<Value> = (0..1001).map(|_| json!({"event_type": "x"})).collect();
    publish_error(json!({ "events": events }), 400, "invalid_request").await;
}

#[tokio::test]
async fn publish_payload_not_object_is_400() {
    publish_error(
        json!({"event_type": "x", "payload": [1]}),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn publish_empty_event_type_is_400() {
    publish_error(json!({"event_type": ""}), 400, "invalid_request").await;
}

#[tokio::test]
async fn publish_unknown_field_is_400() {
    publish_error(
        json!({"event_type": "x", "extra": 1}),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn publish_payload_above_64k_is_413() {
    publish_error(
        json!({"event_type": "x", "payload": {"p": "a".repeat(65_536)}}),
        413,
        "payload_too_large",
    )
    .await;
}

#[tokio::test]
async fn publish_after_terminal_is_409() {
    let s = TestServer::start().await;
    let job = s.create_job(json!({"steps": 0, "interval_ms": 0})).await;
    s.wait_job_done(&job).await;
    expect_error(
        s.post(&format!("/v1/jobs/{job}/events"))
            .json(&json!({"event_type": "x"})),
        409,
        "job_terminal",
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn receipt_of_running_job_is_404() {
    let s = TestServer::start().await;
    let job = s.open_job().await;
    expect_error(
        s.get(&format!("/v1/jobs/{job}/receipt")),
        404,
        "receipt_not_found",
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn version_queue_full_is_429() {
    let s = TestServer::start().await;
    for i in 0..1000 {
        let r = s
            .post("/v1/version/notify")
            .json(&json!({"request_id": "full", "version": i.to_string()}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    expect_error(
        s.post("/v1/version/notify")
            .json(&json!({"request_id": "full", "version": "x"})),
        429,
        "queue_full",
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn open_routes_need_no_token() {
    let s = TestServer::start().await;
    let h: Value = s
        .http
        .get(s.u("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h, json!({"status": "ok", "head_seq": 0}));
    assert_eq!(s.metric("spine_slow_consumer_closes_total").await, 0);
    s.stop().await;
}

/// Regression for the idle-memory fix (BENCHMARKS.md): hyper's read buffer is capped
/// at 8 KiB. A request head above it is refused with 431 before any handler runs (so
/// hyper's empty body, not our JSON), never a 5xx; the server keeps serving, and a
/// publish body far above 8 KiB still streams through the capped buffer.
#[tokio::test]
async fn request_head_above_8k_is_431_and_large_bodies_still_pass() {
    let s = TestServer::start().await;
    let resp = s
        .http
        .get(s.u("/healthz"))
        .header("x-big", "a".repeat(9_000))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 431);
    let job = s.open_job().await;
    let events: Vec<Value> = (0..500)
        .map(|i| json!({"event_type": "bulk", "payload": {"i": i, "pad": "x".repeat(100)}}))
        .collect();
    let body = json!({ "events": events });
    assert!(body.to_string().len() > 64 * 1024);
    let resp = s
        .post(&format!("/v1/jobs/{job}/events"))
        .json(&body)
        .send()
        .await
        .expect("publish");
    assert_eq!(resp.status().as_u16(), 201);
    let acked: Value = resp.json().await.expect("ack");
    assert_eq!(acked["seqs"].as_array().map(Vec::len), Some(500));
    s.stop().await;
}
