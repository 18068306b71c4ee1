//! A hostile or broken target gets a verdict, never a hang, a panic or unbounded
//! memory. Each test starts a deliberately broken server on 127.0.0.1 port 0 (real
//! sockets), points the harness at it with the generic profile, and requires a
//! non-passing verdict within the scenario's deadline plus a margin.

use std::sync::Arc;
use std::time::{Duration, Instant};

use harness_model::{Contracts, Verdict};
use sse_harness::profile::Profile;
use sse_harness::runner::Runner;
use sse_harness::scenario::Scenario;
use sse_harness::target::Target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Copy)]
enum Hostile {
    /// Accepts and reads the request, then never answers.
    Silent,
    /// A 200 event stream whose first line never ends (8 MiB, then silence).
    EndlessLine,
    /// Answers bytes that are not HTTP.
    Garbage,
    /// A response head that never ends (256 KiB of headers).
    HugeHead,
    /// Closes every connection at once.
    Slam,
}

async fn serve(kind: Hostile) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
                match kind {
                    Hostile::Silent => tokio::time::sleep(Duration::from_secs(120)).await,
                    Hostile::EndlessLine => {
                        let _ = s
                            .write_all(
                                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: ",
                            )
                            .await;
                        let chunk = vec![b'a'; 64 * 1024];
                        for _ in 0..128 {
                            if s.write_all(&chunk).await.is_err() {
                                return;
                            }
                        }
                        tokio::time::sleep(Duration::from_secs(120)).await;
                    }
                    Hostile::Garbage => {
                        let _ = s.write_all(b"\x00\xffNOT HTTP AT ALL\r\n\r\n").await;
                    }
                    Hostile::HugeHead => {
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n").await;
                        for i in 0..4096 {
                            let h = format!("x-junk-{i}: {}\r\n", "y".repeat(50));
                            if s.write_all(h.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        tokio::time::sleep(Duration::from_secs(120)).await;
                    }
                    Hostile::Slam => {}
                }
            });
        }
    });
    url
}

const SCENARIO: &str = r#"
group = "HOSTILE"
name = "subscribe-and-publish"
title = "One subscriber, ten writes"
families = ["resume", "delivery", "lifecycle", "framing"]
requires = ["publish"]
deadline_s = 6

[traffic]
events = 10

[[clients]]
name = "victim"
"#;

async fn judge(kind: Hostile) -> Verdict {
    let url = serve(kind).await;
    let mut profile = Profile::load("generic").unwrap();
    profile.strict = true;
    let sc = Scenario::parse(SCENARIO, "hostile.toml").unwrap();
    let runner = Runner {
        target: Arc::new(Target::new(&url, profile, None).unwrap()),
        contracts: Contracts::builtin(),
        seed: 1,
        replay_prefix: String::new(),
        control: None,
        recordings: None,
    };
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(60), runner.run_scenario(&sc))
        .await
        .expect("the harness gave a verdict in bounded time");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_ne!(
        r.verdict,
        Verdict::Pass,
        "a broken target must not pass: {:?}",
        r.findings
    );
    r.verdict
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_target_gets_a_verdict() {
    judge(Hostile::Silent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_line_is_stopped_at_the_size_limit() {
    judge(Hostile::EndlessLine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_http_gets_a_verdict() {
    judge(Hostile::Garbage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_that_never_ends_gets_a_verdict() {
    judge(Hostile::HugeHead).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_slams_every_connection_gets_a_verdict() {
    judge(Hostile::Slam).await;
}
