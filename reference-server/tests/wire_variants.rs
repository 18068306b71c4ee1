//! The wire variants: `gzip-flushed` (streams compressed as `Accept-Encoding` asks,
//! the encoder sync-flushed after every chunk, so nothing is held) and `charset-utf8`
//! (streams labelled `text/event-stream; charset=utf-8`). Each is shown on the wire
//! with the variant on, and its absence with it off. Every wait has a deadline; what
//! must be prompt must decode within [`PROMPT`].

mod common;

use std::io::Write as _;
use std::time::Duration;

use common::{DEADLINE, TestServer};
use futures_util::StreamExt;
use reference_server::variants::{Variant, VariantSet};
use tokio::time::Instant;

/// How soon a frame must decode once it is due.
const PROMPT: Duration = Duration::from_secs(1);

async fn start(variants: &[Variant]) -> TestServer {
    let variants = VariantSet::new(variants.iter().copied());
    TestServer::start_with(|c| c.variants = variants).await
}

/// A decoder of one content coding writing its output into a buffer.
enum Decoded {
    Gzip(flate2::write::GzDecoder<Vec<u8>>),
    Deflate(flate2::write::ZlibDecoder<Vec<u8>>),
}

/// A compressed stream read through its decoder.
struct Inflating {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    dec: Decoded,
}

impl Inflating {
    fn new(resp: reqwest::Response) -> Inflating {
        let dec = match resp.headers()["content-encoding"].to_str().unwrap() {
            "gzip" => Decoded::Gzip(flate2::write::GzDecoder::new(Vec::new())),
            "deflate" => Decoded::Deflate(flate2::write::ZlibDecoder::new(Vec::new())),
            other => panic!("content-encoding {other}"),
        };
        Inflating {
            body: Box::pin(resp.bytes_stream()),
            dec,
        }
    }

    /// Everything decoded so far.
    fn text(&self) -> String {
        let out = match &self.dec {
            Decoded::Gzip(d) => d.get_ref(),
            Decoded::Deflate(d) => d.get_ref(),
        };
        String::from_utf8(out.clone()).expect("utf-8")
    }

    /// Reads until the decoded text holds `needle`; panics after `limit`.
    async fn until_contains(&mut self, needle: &str, limit: Duration) -> String {
        let end = Instant::now() + limit;
        loop {
            let text = self.text();
            if text.contains(needle) {
                return text;
            }
            match tokio::time::timeout_at(end, self.body.next()).await {
                Err(_) => panic!("{needle:?} not decoded within {limit:?}; have {text:?}"),
                Ok(None) => panic!("the stream ended before {needle:?}; have {text:?}"),
                Ok(Some(chunk)) => {
                    let chunk = chunk.expect("chunk");
                    match &mut self.dec {
                        Decoded::Gzip(d) => {
                            d.write_all(&chunk).expect("gzip");
                            d.flush().expect("gzip");
                        }
                        Decoded::Deflate(d) => {
                            d.write_all(&chunk).expect("deflate");
                            d.flush().expect("deflate");
                        }
                    }
                }
            }
        }
    }
}

/// Opens `path` asking for `accept` encodings, within the deadline.
async fn open(s: &TestServer, path: &str, accept: &str) -> reqwest::Response {
    let resp = tokio::time::timeout(
        DEADLINE,
        s.get(path).header("Accept-Encoding", accept).send(),
    )
    .await
    .expect("response head")
    .expect("stream");
    assert_eq!(resp.status(), 200);
    resp
}

#[tokio::test]
async fn gzip_flushed_compresses_streams_and_each_frame_decodes_at_once() {
    let s = start(&[Variant::GzipFlushed]).await;
    let job = s.open_job().await;
    let resp = open(&s, "/v1/events", "gzip, deflate, br").await;
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert!(resp.headers().get("content-length").is_none());
    let mut r = Inflating::new(resp);

    // `retry:` and `connection_open` decode at once, not after tens of KiB.
    let text = r.until_contains("event: connection_open\n", PROMPT).await;
    assert!(
        text.starts_with("retry: 1000\n\nevent: connection_open\n"),
        "{text:?}"
    );
    r.until_contains("event: heartbeat\n", PROMPT).await;

    // A published event decodes within a second of its publish.
    let a = s.publish(&job, 1, "custom").await[0];
    r.until_contains(&format!("id: {a}\n"), PROMPT).await;
    drop(r);

    // Deflate when asked for it, on the task stream too, and it ends cleanly: the
    // trailer follows the last frame.
    let done = s
        .create_job(serde_json::json!({"steps": 2, "interval_ms": 0}))
        .await;
    s.wait_job_done(&done).await;
    let resp = open(&s, &format!("/v1/jobs/{done}/events"), "deflate").await;
    assert_eq!(resp.headers()["content-encoding"], "deflate");
    let mut r = Inflating::new(resp);
    r.until_contains("\"reason\":\"task_completed\"", PROMPT)
        .await;
    let end = Instant::now() + DEADLINE;
    while let Some(chunk) = tokio::time::timeout_at(end, r.body.next())
        .await
        .expect("the task stream ends")
    {
        let Decoded::Deflate(d) = &mut r.dec else {
            unreachable!()
        };
        d.write_all(&chunk.expect("chunk")).expect("deflate");
    }
    let Decoded::Deflate(d) = r.dec else {
        unreachable!()
    };
    let text = String::from_utf8(d.finish().expect("a complete zlib stream")).unwrap();
    assert!(text.ends_with("\n\n"), "{text:?}");

    // No compression without `Accept-Encoding`, nor on routes other than the streams.
    let mut plain = s.open("/v1/events", &[]).await;
    assert!(plain.headers.get("content-encoding").is_none());
    assert_eq!(plain.next().await.unwrap().retry.as_deref(), Some("1000"));
    let status = s
        .get(&format!("/v1/jobs/{job}"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .expect("status");
    assert!(status.headers().get("content-encoding").is_none());
    s.stop().await;
}

#[tokio::test]
async fn without_gzip_flushed_a_stream_asking_for_gzip_is_plain() {
    let s = start(&[Variant::CharsetUtf8]).await;
    let mut r = s
        .open("/v1/events", &[("Accept-Encoding", "gzip, deflate, br")])
        .await;
    assert!(r.headers.get("content-encoding").is_none());
    assert_eq!(r.next().await.unwrap().retry.as_deref(), Some("1000"));
    assert!(r.next().await.unwrap().is("connection_open"));
    s.stop().await;
}

#[tokio::test]
async fn charset_utf8_labels_every_stream_and_only_with_the_variant() {
    let s = start(&[Variant::CharsetUtf8]).await;
    let job = s.open_job().await;
    for path in [
        "/v1/events".to_owned(),
        format!("/v1/jobs/{job}/events"),
        "/v1/version/stream?request_id=r1".to_owned(),
    ] {
        let mut r = s.open(&path, &[]).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(
            r.headers["content-type"], "text/event-stream; charset=utf-8",
            "{path}"
        );
        r.until(|f| f.is("connection_open")).await;
    }
    s.stop().await;

    let s = start(&[]).await;
    let r = s.open("/v1/events", &[]).await;
    assert_eq!(r.headers["content-type"], "text/event-stream");
    s.stop().await;
}
