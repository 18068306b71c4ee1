//! What a hostile or broken target can throw at the harness, and what the harness
//! answers: a verdict, never a hang, a panic, unbounded memory or a rewritten screen.
//! Each test starts a deliberately broken server on 127.0.0.1 port 0 (real sockets),
//! points the harness at it, and requires a non-passing verdict within the scenario's
//! deadline plus a margin.
//!
//! | The target…                                                | The harness answers                              | Test |
//! |------------------------------------------------------------|--------------------------------------------------|------|
//! | accepts and never answers                                  | connect/head timeout, Error                      | `a_silent_target_gets_a_verdict` |
//! | sends one endless line                                     | parser size limit, Fail                          | `an_endless_line_is_stopped_at_the_size_limit` |
//! | answers bytes that are not HTTP                            | bad head, Error                                  | `garbage_instead_of_http_gets_a_verdict` |
//! | sends a head that never ends                               | head size limit, Error                           | `a_head_that_never_ends_gets_a_verdict` |
//! | trickles a large head in tiny writes                       | linear head parse, a verdict                     | `a_head_trickled_in_tiny_writes_gets_a_verdict` |
//! | closes every connection at once                            | Error                                            | `a_target_that_slams_every_connection_gets_a_verdict` |
//! | acks writes, answers streams 404 with a body that never comes | bounded body read, `delivery.lost-ack`, exit 1 | `a_stalled_404_body_is_not_a_pass` |
//! | acks writes, closes every stream right after a 200 head    | `delivery.lost-ack`, exit 1                      | `closing_every_stream_after_its_head_loses_the_acked_writes` |
//! | acks writes, resets every stream right after a 200 head    | `delivery.lost-ack`, exit 1                      | `resetting_every_stream_after_its_head_loses_the_acked_writes` |
//! | answers publishes with a body that never ends              | bounded by the deadline, `delivery.publish-acked` | `a_publish_answer_that_never_ends_is_bounded` |
//! | answers its head-seq (health) request with a body that never ends | bounded, Error                            | `a_health_answer_that_never_ends_is_an_error` |
//! | opens a stream and never speaks to a heartbeat probe       | bounded wait, `heartbeat.interval`               | `a_probe_on_a_stream_that_never_speaks_gets_a_verdict` |
//! | floods comments and tiny events at loopback speed          | recording caps, `gate.record-limit`, bounded RSS | `a_flood_stops_at_the_caps_in_bounded_memory` |
//! | sends numbers near `u64::MAX` (seqs, head_seq, heartbeat_ms, retry, Content-Length) | saturating arithmetic, no panic, a verdict | `numbers_near_u64_max_do_not_panic` |
//! | sends chunk sizes far beyond any limit                     | bad chunk, a verdict                             | `an_absurd_chunk_size_gets_a_verdict` |
//! | puts ANSI escapes and control bytes in headers, ids, names and data | escaped in terminal, Markdown and JUnit  | `escape_sequences_never_reach_the_screen_or_the_reports` |

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness_model::{Contracts, ScenarioResult, Verdict};
use sse_harness::profile::{HeartbeatKind, Profile};
use sse_harness::runner::Runner;
use sse_harness::scenario::Scenario;
use sse_harness::target::Target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Each hostile server stops writing after this long, whatever happens.
const SERVER_BOUND: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Hostile {
    /// Accepts and reads the request, then never answers.
    Silent,
    /// A 200 event stream whose first line never ends (8 MiB, then silence).
    EndlessLine,
    /// Answers bytes that are not HTTP.
    Garbage,
    /// A response head that never ends (256 KiB of headers).
    HugeHead,
    /// A 40 KiB head trickled in 64-byte writes, then the stream ends.
    TrickledHead,
    /// Closes every connection at once.
    Slam,
    /// Acks publishes; streams are `404` with `Content-Length: 10` and no body, ever.
    Stalled404,
    /// Acks publishes; streams get a 200 event-stream head, then FIN.
    CloseAfterHead,
    /// Acks publishes; streams get a 200 event-stream head, then RST.
    ResetAfterHead,
    /// Publishes get a 200 head and a body that never comes; streams stay silent.
    EndlessPublishAnswer,
    /// Acks publishes; streams get a 200 head and then silence.
    SilentStream,
    /// Acks publishes; streams get `:` comments and `data:x` events as fast as loopback goes.
    Flood,
    /// Spine-shaped answers with every number near `u64::MAX`.
    HugeNumbers,
    /// Acks publishes; streams are chunked with a chunk size of 2^64 - 1.
    HugeChunk,
    /// Acks publishes; headers, ids, event names and data carry ANSI escapes.
    Ansi,
}

impl Hostile {
    /// Whether publishes (POST) get a proper acknowledgement.
    fn acks(self) -> bool {
        !matches!(
            self,
            Hostile::Silent
                | Hostile::EndlessLine
                | Hostile::Garbage
                | Hostile::HugeHead
                | Hostile::Slam
                | Hostile::EndlessPublishAnswer
        )
    }
}

const SSE_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n";
const MAX: u64 = u64::MAX;

/// Reads one request head (and a small body); the method and path.
async fn read_request(s: &mut TcpStream) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
        .min(1 << 20);
    let mut have = buf.len() - end;
    while have < length {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            break;
        }
        have += n;
    }
    let mut words = head.split_whitespace();
    Some((words.next()?.to_uppercase(), words.next()?.to_owned()))
}

async fn answer_publish(s: &mut TcpStream, kind: Hostile) {
    let body: &[u8] = match kind {
        Hostile::HugeNumbers => {
            b"{\"job_id\":\"j1\",\"seqs\":[18446744073709551614],\"head_seq\":18446744073709551615}"
        }
        _ => b"{\"job_id\":\"j1\",\"seqs\":[1]}",
    };
    let status = if kind == Hostile::HugeNumbers {
        "201 Created"
    } else {
        "200 OK"
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes()).await;
    let _ = s.write_all(body).await;
    let _ = s.shutdown().await;
}

async fn serve(kind: Hostile) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = tokio::time::timeout(SERVER_BOUND, handle(s, kind)).await;
            });
        }
    });
    url
}

async fn handle(mut s: TcpStream, kind: Hostile) {
    let Some((method, path)) = read_request(&mut s).await else {
        return;
    };
    if method == "POST" && kind.acks() {
        return answer_publish(&mut s, kind).await;
    }
    match kind {
        Hostile::Silent => tokio::time::sleep(SERVER_BOUND).await,
        Hostile::EndlessLine => {
            let _ = s.write_all(SSE_HEAD).await;
            let _ = s.write_all(b"data: ").await;
            let chunk = vec![b'a'; 64 * 1024];
            for _ in 0..128 {
                if s.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(SERVER_BOUND).await;
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
            tokio::time::sleep(SERVER_BOUND).await;
        }
        Hostile::TrickledHead => {
            let mut head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n".to_vec();
            for i in 0..100 {
                head.extend_from_slice(format!("x-junk-{i}: {}\r\n", "y".repeat(380)).as_bytes());
            }
            head.extend_from_slice(b"\r\n: hello\n\n");
            for piece in head.chunks(64) {
                if s.write_all(piece).await.is_err() {
                    return;
                }
                s.flush().await.ok();
            }
        }
        Hostile::Slam => {}
        Hostile::Stalled404 => {
            let _ = s
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\n")
                .await;
            tokio::time::sleep(SERVER_BOUND).await;
        }
        Hostile::CloseAfterHead => {
            let _ = s.write_all(SSE_HEAD).await;
            let _ = s.shutdown().await;
        }
        Hostile::ResetAfterHead => {
            let _ = s.write_all(SSE_HEAD).await;
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        }
        Hostile::EndlessPublishAnswer => {
            if method == "POST" {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"seqs\":")
                    .await;
            } else {
                let _ = s.write_all(SSE_HEAD).await;
            }
            tokio::time::sleep(SERVER_BOUND).await;
        }
        Hostile::SilentStream => {
            if path.starts_with("/health") {
                // The head-seq request of a health-checking profile: a body that never ends.
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"head_seq\":")
                    .await;
            } else {
                let _ = s.write_all(SSE_HEAD).await;
            }
            tokio::time::sleep(SERVER_BOUND).await;
        }
        Hostile::Flood => flood(&mut s).await,
        Hostile::HugeNumbers => huge_numbers(&mut s, &path).await,
        Hostile::HugeChunk => {
            let _ = s
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffff\r\ndata: x\n\n",
                )
                .await;
            tokio::time::sleep(SERVER_BOUND).await;
        }
        Hostile::Ansi => {
            let _ = s
                .write_all(
                    // httparse refuses C0 controls in a head; C1 (CSI) and bidi overrides pass.
                    "HTTP/1.1 200 OK\r\ncontent-type: text/\u{9b}2J\u{202e}html\r\nx-evil: \u{9b}31mred\r\n\r\n"
                        .as_bytes(),
                )
                .await;
            let _ = s
                .write_all(
                    "retry: \u{1b}[1A\nid: \u{1b}[2K\u{1b}[1A\nevent: \u{1b}[31mPASS\u{202e}\ndata: \u{1b}[2J\u{7}\r\n\n: \u{1b}c\n\n"
                        .as_bytes(),
                )
                .await;
        }
    }
}

/// `:` comments and tiny `data:x` events as fast as the reader takes them, until it
/// stops reading (or the server's own bound).
async fn flood(s: &mut TcpStream) {
    let _ = s.write_all(SSE_HEAD).await;
    let chunk: Vec<u8> = b":\ndata:x\n\n".repeat(6 * 1024);
    let until = Instant::now() + SERVER_BOUND;
    while Instant::now() < until {
        if s.write_all(&chunk).await.is_err() {
            return;
        }
    }
}

async fn huge_numbers(s: &mut TcpStream, path: &str) {
    if path.starts_with("/healthz") {
        let body = format!("{{\"head_seq\":{MAX}}}");
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(head.as_bytes()).await;
        let _ = s.write_all(body.as_bytes()).await;
        return;
    }
    // A Content-Length nobody can send, retry and heartbeat beyond any clock, seqs at the top.
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ncontent-length: {MAX}\r\n\r\n"
    );
    let body = format!(
        "retry: 99999999999999999999999999999\n\n\
         event: connection_open\ndata: {{\"stream\":\"events\",\"head_seq\":{MAX},\"resume_from\":{MAX},\"heartbeat_ms\":{MAX}}}\n\n\
         event: heartbeat\ndata: {{\"server_time\":{MAX},\"head_seq\":{MAX}}}\n\n\
         id: {MAX}\nevent: task_event\ndata: {{\"seq\":{MAX},\"job_id\":\"j1\",\"event_type\":\"harness.marker\",\"payload\":{{\"marker\":\"x\"}}}}\n\n\
         id: {}\nevent: task_event\ndata: {{\"seq\":{},\"job_id\":\"j1\",\"event_type\":\"harness.marker\",\"payload\":{{}}}}\n\n\
         id: 99999999999999999999999\nevent: task_event\ndata: {{\"seq\":99999999999999999999999}}\n\n",
        MAX - 1,
        MAX - 1
    );
    let _ = s.write_all(head.as_bytes()).await;
    let _ = s.write_all(body.as_bytes()).await;
    let _ = s.shutdown().await;
}

const SCENARIO: &str = r#"
group = "HOSTILE"
name = "subscribe-and-publish"
title = "One subscriber, ten writes"
families = ["resume", "delivery", "lifecycle", "heartbeat", "framing"]
requires = ["publish"]
deadline_s = 6

[traffic]
events = 10

[[clients]]
name = "victim"
"#;

const PROBE: &str = r#"
group = "HOSTILE"
name = "idle-probe"
title = "A heartbeat probe on a stream that never speaks"
families = ["heartbeat", "lifecycle", "framing"]
requires = ["heartbeat"]
deadline_s = 6

[probe]
kind = "heartbeat-idle"
heartbeats = 5
stream = "events"
"#;

fn runner(url: &str, profile: Profile) -> Runner {
    Runner {
        target: Arc::new(Target::new(url, profile, None).unwrap()),
        contracts: Contracts::builtin(),
        seed: 1,
        replay_prefix: String::new(),
        control: None,
        recordings: None,
        limits: Default::default(),
        shard: None,
    }
}

fn generic() -> Profile {
    let mut profile = Profile::load("generic").unwrap();
    profile.strict = true;
    profile
}

/// Runs `scenario` against a server of `kind` and returns its result, which must come
/// within the deadline plus the runner's grace (and a margin) and must not be a pass.
async fn judge_with(kind: Hostile, profile: Profile, scenario: &str) -> ScenarioResult {
    let url = serve(kind).await;
    let sc = Scenario::parse(scenario, "hostile.toml").unwrap();
    let runner = runner(&url, profile);
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(120), runner.run_scenario(&sc))
        .await
        .expect("the harness gave a verdict in bounded time");
    assert!(started.elapsed() < Duration::from_secs(120));
    assert_ne!(
        r.verdict,
        Verdict::Pass,
        "a broken target must not pass: {:?} {:?}",
        r.findings,
        r.stats
    );
    r
}

async fn judge(kind: Hostile) -> ScenarioResult {
    judge_with(kind, generic(), SCENARIO).await
}

fn contracts_of(r: &ScenarioResult) -> Vec<&str> {
    r.findings.iter().map(|f| f.contract.0.as_str()).collect()
}

fn assert_found(r: &ScenarioResult, contract: &str) {
    assert!(
        contracts_of(r).contains(&contract),
        "expected a {contract} finding, got {:?} ({:?})",
        contracts_of(r),
        r.verdict
    );
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
async fn a_head_trickled_in_tiny_writes_gets_a_verdict() {
    let r = judge(Hostile::TrickledHead).await;
    assert_found(&r, "delivery.lost-ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_slams_every_connection_gets_a_verdict() {
    judge(Hostile::Slam).await;
}

/// Regression (issue 21): the refused stream's body read had no deadline, the client
/// task was dropped at the workload's bound, its transcript with it, and the run passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_404_body_is_not_a_pass() {
    let r = judge(Hostile::Stalled404).await;
    assert_eq!(r.verdict, Verdict::Fail, "{:?}", r.findings);
    assert_found(&r, "delivery.lost-ack");
    // As a new user meets it: the binary, with its exit code.
    fails_with_exit_1(Hostile::Stalled404).await;
}

/// Runs the binary against a server of `kind`: the run must fail (exit 1, a contract
/// failure or an inconclusive scenario, never "could not run") and its report must
/// name the lost writes.
async fn fails_with_exit_1(kind: Hostile) {
    let url = serve(kind).await;
    let out = run_binary(&url, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", out.stdout);
    let md = std::fs::read_to_string(out.report.path().join("report.md"))
        .unwrap_or_else(|e| panic!("report.md: {e}; the run printed:\n{}", out.stdout));
    assert!(md.contains("delivery.lost-ack"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_every_stream_after_its_head_loses_the_acked_writes() {
    let r = judge(Hostile::CloseAfterHead).await;
    assert_found(&r, "delivery.lost-ack");
    fails_with_exit_1(Hostile::CloseAfterHead).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resetting_every_stream_after_its_head_loses_the_acked_writes() {
    let r = judge(Hostile::ResetAfterHead).await;
    assert_found(&r, "delivery.lost-ack");
    fails_with_exit_1(Hostile::ResetAfterHead).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_answer_that_never_ends_is_bounded() {
    let r = judge(Hostile::EndlessPublishAnswer).await;
    assert_found(&r, "delivery.publish-acked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_answer_that_never_ends_is_an_error() {
    let mut profile = generic();
    profile.subscribe.head_path = Some("/healthz".into());
    profile.subscribe.head_pointer = Some("/head_seq".into());
    let r = judge_with(Hostile::SilentStream, profile, SCENARIO).await;
    assert!(
        matches!(r.verdict, Verdict::Error { .. }),
        "{:?}",
        r.verdict
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_on_a_stream_that_never_speaks_gets_a_verdict() {
    let mut profile = generic();
    profile
        .capabilities
        .push(harness_model::Capability::Heartbeat);
    profile.heartbeat.form = HeartbeatKind::Comment;
    profile.heartbeat.interval_ms = Some(500);
    let r = judge_with(Hostile::SilentStream, profile, PROBE).await;
    assert_found(&r, "heartbeat.interval");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_near_u64_max_do_not_panic() {
    let mut profile = Profile::load("spine").unwrap();
    profile.strict = true;
    let r = judge_with(Hostile::HugeNumbers, profile.clone(), SCENARIO).await;
    assert!(
        !matches!(&r.verdict, Verdict::Inconclusive { reasons }
            if reasons.iter().any(|x| matches!(x, harness_model::Shortfall::ClientsMissing { .. }))),
        "a client task died: {:?}",
        r.verdict
    );
    let cursor_ahead = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/cursor/cursor-ahead-of-head.toml"),
    )
    .unwrap()
    .replace("deadline_s = ", "deadline_s = 6 #");
    judge_with(Hostile::HugeNumbers, profile, &cursor_ahead).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_chunk_size_gets_a_verdict() {
    judge(Hostile::HugeChunk).await;
}

/// What `sse-harness run` printed, and how it exited.
struct Ran {
    status: std::process::ExitStatus,
    stdout: String,
    report: tempfile::TempDir,
    /// Peak resident set of the harness process, in KiB.
    max_rss_kib: u64,
}

/// Runs the binary against `url` with the generic profile (strict) on the hostile
/// scenario, or on the built-in scenario named in `args`.
async fn run_binary(url: &str, args: &[&str]) -> Ran {
    let report = tempfile::tempdir().unwrap();
    let scenarios = tempfile::tempdir().unwrap();
    std::fs::write(scenarios.path().join("hostile.toml"), SCENARIO).unwrap();
    let profiles = tempfile::tempdir().unwrap();
    let profile = profiles.path().join("generic-strict.toml");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts/profiles/generic.toml"),
    )
    .unwrap()
    .replace("strict = false", "strict = true");
    std::fs::write(&profile, text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sse-harness"));
    cmd.args(["run", "--target", url, "--seed", "1", "--no-color"])
        .arg("--profile")
        .arg(&profile)
        .arg("--report-dir")
        .arg(report.path());
    if args.is_empty() {
        cmd.arg("--scenarios-dir")
            .arg(scenarios.path())
            .args(["--scenario", "HOSTILE/*"]);
    } else {
        cmd.args(args);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    tokio::task::spawn_blocking(move || {
        let out = cmd.spawn().unwrap().wait_with_output().unwrap();
        // The largest peak of any child this test binary waited for: the harness runs
        // are its only children, so this bounds the one under test from above.
        let usage =
            nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
        Ran {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            report,
            max_rss_kib: usage.max_rss() as u64,
        }
    })
    .await
    .unwrap()
}

/// The bound on the harness's peak RSS under a flood, documented in `limits`: the
/// recording budget (256 MiB estimated) plus the growth slack of its vectors and the
/// process itself. Before the caps, the same run passed 2 GiB in 6 s.
const FLOOD_RSS_BOUND_KIB: u64 = 1024 * 1024;

/// The issue's repro: ten clients on a target that floods every stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_stops_at_the_caps_in_bounded_memory() {
    let url = serve(Hostile::Flood).await;
    let out = run_binary(&url, &["--scenario", "CT-12/ten-clients-at-once"]).await;
    assert_ne!(out.status.code(), Some(0), "{}", out.stdout);
    let md = std::fs::read_to_string(out.report.path().join("report.md")).unwrap();
    assert!(md.contains("gate.record-limit"), "{md}");
    eprintln!(
        "peak RSS of the harness under the flood: {} MiB (bound {} MiB)",
        out.max_rss_kib / 1024,
        FLOOD_RSS_BOUND_KIB / 1024
    );
    assert!(
        out.max_rss_kib < FLOOD_RSS_BOUND_KIB,
        "peak RSS {} KiB",
        out.max_rss_kib
    );
    drop(out.report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_sequences_never_reach_the_screen_or_the_reports() {
    let url = serve(Hostile::Ansi).await;
    let out = run_binary(&url, &[]).await;
    assert_ne!(out.status.code(), Some(0), "{}", out.stdout);
    let dir = out.report.path();
    for (name, text) in [
        ("stdout", out.stdout.clone()),
        (
            "report.md",
            std::fs::read_to_string(dir.join("report.md")).unwrap(),
        ),
        (
            "junit.xml",
            std::fs::read_to_string(dir.join("junit.xml")).unwrap(),
        ),
    ] {
        assert!(
            !text.contains(['\u{1b}', '\u{7}', '\u{9b}', '\u{202e}']),
            "{name} carries the target's control bytes:\n{text}"
        );
    }
    // The hostile text is there, visibly escaped.
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("\\u{9b}2j\\u{202e}html"), "{md}");
}
