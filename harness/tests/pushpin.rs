//! The spine suite through a real GRIP proxy: Pushpin (Debian package `pushpin`),
//! started on free loopback ports by `targets/pushpin/pushpin.sh` (its own config, ipc
//! dir and logs), in front of a reference server in GRIP mode (`--grip-publish` to
//! Pushpin's publish port). The harness talks to Pushpin only, with
//! `contracts/profiles/pushpin.toml`: streams are held by Pushpin and fed by the
//! origin's publishes, every other request (publishes, job creation, notifications) is
//! proxied to the origin. One test per scenario:
//!
//! - `pushpin/<scenario>`: the scenarios that run through Pushpin pass, MUST-wise;
//! - `pushpin-skips/<scenario>`: the scenarios needing what GRIP cannot do (per-client
//!   correlation ids, the origin's active-streams gauge, a restartable target) are
//!   skipped with the reason (`targets/pushpin/BEHAVIOUR.md`);
//! - `pushpin-recovers/every-publish-lost`: a second origin whose publishes all fail
//!   (its publish URL refuses connections) behind a second Pushpin still delivers every
//!   event, in order and once, through the holds' `Grip-Link` recovery: the safety net
//!   of a failed publish.
//!
//! `SSE_PUSHPIN_KEEP=1` keeps each Pushpin's folder (config and logs) and prints where.
//!
//! Needs the `pushpin` package (`.ci/run` installs it). Without it the tests are
//! ignored, except under `CI=true`, where they fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness_model::{Level, Verdict};
use libtest_mimic::{Arguments, Failed, Trial};
use reference_server::grip::GripConfig;
use reference_server::{Config, RunningServer};
use sse_harness::{RunConfig, TargetSpec};

mod support;

/// Scenarios that must pass through Pushpin.
const APPLICABLE: &[&str] = &[
    "CT-07/reconnect-with-last-event-id",
    "CT-07/reconnect-with-cursor-query",
    "CT-09/connect-read-disconnect",
    "CT-09/resume-no-gap-no-duplicate-monotonic",
    "CT-10/cut-at-random-bytes",
    "CT-10/cut-inside-the-framing",
    "CT-10/cut-after-random-event-counts",
    "CT-10/rapid-reconnect-cycles",
    "CT-10/reset-instead-of-close",
    "CT-12/ten-clients-at-once",
    "CT-10/cut-during-high-rate-publishing",
    "CT-11/slow-consumers-beside-fast",
    "CT-12/burst-of-fifty-reconnects",
    "CT-12/five-reconnect-while-five-stay",
    "CONTENT/line-breaks-and-spaces",
    "CONTENT/bare-carriage-return",
    "CURSOR/invalid-last-event-id",
    "CURSOR/cursor-ahead-of-head",
    "HEARTBEAT/idle-events-stream",
    "HEARTBEAT/idle-task-stream",
    "HEARTBEAT/idle-version-stream",
    "LIFECYCLE/task-completed",
    "LIFECYCLE/task-failed",
    "LIFECYCLE/task-not-found",
    "LIFECYCLE/task-resumed-after-the-end",
    "VERSION/pending-flushed-in-order",
    "VERSION/replaced-by-second-stream",
    "WIRE/field-injection",
    "WIRE/idle-open",
    "WIRE/trickle",
    "RESUME-ID/garbage-id",
    "RESUME-ID/unknown-id",
    "RESUME-ID/foreign-id",
];

/// Scenarios not run through Pushpin (the reasons below): every built-in scenario is in
/// exactly one of the lists, so a new one must be placed (`every-scenario-is-placed`).
const NOT_RUN: &[&str] = &[
    "CT-11/fast-beside-stalled-readers",
    "CT-11/one-byte-per-second",
    "CT-11/pause-five-seconds",
    "CT-11/late-join-over-large-backlog",
    "NETWORK/half-open-subscriber",
    "NETWORK/lost-publish-acks",
    "NETWORK/latency-jitter-heartbeats",
    "NETWORK/reset-storms",
    "NETWORK/slow-upstream",
    "BROWSER/backlog-then-live",
    "BROWSER/connection-close-then-end",
    "BROWSER/cors-for-allowed-origins-only",
    "BROWSER/idle-frames-keep-the-cursor",
    "BROWSER/resume-after-reset",
    "BROWSER/same-origin-through-the-relay",
    "BROWSER/task-stream-to-its-end",
    "BROWSER/wrong-token-stops-for-good",
];

// Not run: CT-11/fast-beside-stalled-readers and CT-11/one-byte-per-second. A reader
// that stops (or nearly stops) reading loses what Pushpin dropped while its buffer was
// full, and Pushpin does not follow the link to recover it in time
// (targets/pushpin/BEHAVIOUR.md §8): a finding about Pushpin, reported as a failure by
// a run with the pushpin profile, not hidden behind a capability. Nor
// CT-11/pause-five-seconds: once, the fast readers were held back while one reader
// paused (§11). Nor
// CT-11/late-join-over-large-backlog: paging 100 000 events through Pushpin's links
// takes most of the scenario's deadline, and beside the other trials on two cores it
// missed it once (BEHAVIOUR.md §10). Nor the NETWORK scenarios (issue 18): they put a
// toxic proxy between the harness and the target and were not yet tried through Pushpin.
// Nor the BROWSER scenarios (issue 20): with the origin allowing the page origin they
// passed through Pushpin alone (3 runs, 6/6), but Chromium starting beside this suite's
// timing-bound trials delayed a WIRE/trickle event 1.7 s once (BEHAVIOUR.md §13).

/// Scenarios that must pass through Pushpin with a stack of their own: they read the
/// whole log, where the other trials' events would be foreign to them.
const EXCLUSIVE: &[&str] = &["CT-09/cross-job-replay-order", "CT-12/stress-sequencing"];

/// Scenarios the pushpin profile cannot run, and the start of the skip reason that
/// says why (an unclaimed capability, or a `[resume]` key the profile does not set).
const SKIPPED: &[(&str, &str)] = &[
    (
        "LIFECYCLE/correlation-id-echoed",
        "does not claim capability correlation-id",
    ),
    (
        "LIVENESS/closed-clients-noticed",
        "does not claim capability liveness",
    ),
    (
        "LIVENESS/reset-clients-noticed",
        "does not claim capability liveness",
    ),
    (
        "NETWORK/stalled-subscriber-freed",
        "does not claim capability liveness",
    ),
    (
        "DURABILITY/crash-restart",
        "does not claim capability durability",
    ),
    (
        "DURABILITY/graceful-shutdown",
        "does not claim capability durability",
    ),
    ("RESUME-ID/evicted-id", "has no [resume] eviction"),
    ("RESUME-ID/restart-id", "does not claim "),
];

/// How many times [`play_through`] plays a scenario again after Pushpin cancelled its
/// streams itself (and nothing else failed).
const CANCEL_REPLAYS: u32 = 3;

/// The longest a fresh stack may take to pass requests through.
const READY_DEADLINE: Duration = Duration::from_secs(20);

/// The longest the recovery test waits for its events (the link timeout is 5 s).
const RECOVERY_DEADLINE: Duration = Duration::from_secs(40);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn profile() -> String {
    repo()
        .join("contracts/profiles/pushpin.toml")
        .display()
        .to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One Pushpin instance (stopped by the pid in its folder when dropped).
struct Pushpin {
    dir: tempfile::TempDir,
    /// Where clients connect.
    url: String,
    /// Its HTTP publish endpoint.
    publish_url: String,
}

impl Pushpin {
    fn start(origin_port: u16) -> Result<Pushpin, String> {
        let dir = tempfile::Builder::new()
            .prefix("sse-pushpin-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let mut dir = dir;
        if std::env::var_os("SSE_PUSHPIN_KEEP").is_some() {
            dir.disable_cleanup(true);
            eprintln!("pushpin dir kept: {}", dir.path().display());
        }
        let out = Command::new("bash")
            .arg(repo().join("targets/pushpin/pushpin.sh"))
            .arg("start")
            .arg(dir.path())
            .arg(format!("127.0.0.1:{origin_port}"))
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "pushpin.sh start failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines();
        let (Some(url), Some(publish_url)) = (lines.next(), lines.next()) else {
            return Err(format!("pushpin.sh printed {text:?}, not two URLs"));
        };
        Ok(Pushpin {
            url: url.to_owned(),
            publish_url: publish_url.to_owned(),
            dir,
        })
    }
}

impl Drop for Pushpin {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("targets/pushpin/pushpin.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

/// A reference server in GRIP mode on `port`, publishing to `publish_url`, on a runtime
/// of its own (the trials each have theirs).
struct Origin {
    rt: tokio::runtime::Runtime,
    server: Option<RunningServer>,
    _data: tempfile::TempDir,
}

impl Origin {
    fn start(port: u16, publish_url: &str) -> Result<Origin, String> {
        let data = tempfile::Builder::new()
            .prefix("sse-pushpin-origin-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let mut cfg = Config::new(data.path(), format!("pushpin-{}", std::process::id()));
        cfg.addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        // The keep-alive comment's interval (whole seconds), as the profile says.
        cfg.heartbeat_ms = 1000;
        cfg.grip = Some(GripConfig::new(publish_url));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let server = rt
            .block_on(RunningServer::start(cfg))
            .map_err(|e| format!("origin: {e}"))?;
        Ok(Origin {
            rt,
            server: Some(server),
            _data: data,
        })
    }

    fn token(&self) -> String {
        self.server
            .as_ref()
            .map(|s| s.token().to_owned())
            .unwrap_or_default()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            let _ = self.rt.block_on(s.shutdown());
        }
    }
}

/// Pushpin in front of an origin publishing to it.
struct Stack {
    origin: Origin,
    pushpin: Pushpin,
}

impl Stack {
    /// `publish_to`: where the origin publishes (`None`: to this Pushpin).
    fn start(publish_to: Option<&str>) -> Result<Stack, String> {
        let port = free_port();
        let pushpin = Pushpin::start(port)?;
        let publish = publish_to.unwrap_or(&pushpin.publish_url).to_owned();
        let origin = Origin::start(port, &publish)?;
        let stack = Stack { origin, pushpin };
        stack.wait_ready()?;
        Ok(stack)
    }

    /// Waits (bounded) until a request through Pushpin reaches the origin and a GRIP
    /// answer comes back through Pushpin's handler (a task stream of an unknown job,
    /// which ends at once): the ports answer a moment before the services behind them
    /// are connected, and a first stream request then is refused.
    fn wait_ready(&self) -> Result<(), String> {
        let base = self.pushpin.url.clone();
        let auth = format!("Bearer {}", self.origin.token());
        let until = Instant::now() + READY_DEADLINE;
        support::block_on(async move {
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(2))
                .build()
                .map_err(|e| e.to_string())?;
            let mut last = String::new();
            while Instant::now() < until {
                let answer = client
                    .get(format!("{base}/v1/jobs/ready-probe/events"))
                    .header("Authorization", &auth)
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status().is_success() => {
                        let text = r.text().await.unwrap_or_default();
                        if text.contains("task_not_found") {
                            return Ok(());
                        }
                        last = format!("200 without task_not_found: {text:?}");
                    }
                    Ok(r) => last = format!("status {}", r.status()),
                    Err(e) => last = e.to_string(),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(format!("pushpin in front of the origin not ready: {last}"))
        })
        .map_err(|e| format!("{e:?}"))?
    }
}

impl Stack {
    /// The lines of Pushpin's log that say it cancelled a stream itself.
    fn cancelled_streams(&self) -> Vec<String> {
        std::fs::read_to_string(self.pushpin.dir.path().join("logs/runner.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("out of sequence"))
            .map(str::to_owned)
            .collect()
    }
}

/// `pushpin/<id>`: plays scenario `id` through the shared stack, or through a stack of
/// its own for the [`EXCLUSIVE`] ones, and passes if its verdict is Pass.
///
/// Pushpin 1.36 sometimes cancels a stream itself while handing it from its proxy to
/// its handler (BEHAVIOUR.md §12): the client's response ends without the chunk
/// terminator, which the harness rightly judges a MUST failure. A play whose every MUST
/// finding is such an end (`unexpected-eof`), on no more streams than Pushpin's log says
/// it cancelled during the play, is played again (on a new stack where the scenario has
/// its own), at most [`CANCEL_REPLAYS`] times, and says so. Any other finding fails.
fn play_through(id: &'static str, shared: Option<&Arc<Stack>>, seed: u64) -> Result<(), Failed> {
    let mut replays = 0;
    loop {
        let own = if EXCLUSIVE.contains(&id) {
            Some(Arc::new(Stack::start(None)?))
        } else {
            None
        };
        let stack = own.as_ref().or(shared).ok_or("no pushpin stack")?;
        let before = stack.cancelled_streams().len();
        let (url, token) = (stack.pushpin.url.clone(), stack.origin.token());
        let r = support::block_on(run(&url, &token, id, seed))??;
        if r.verdict == Verdict::Pass {
            return Ok(());
        }
        let cancels = stack.cancelled_streams().split_off(before);
        let must: Vec<&harness_model::Finding> = r
            .findings
            .iter()
            .filter(|f| f.level == Level::Must)
            .collect();
        let findings = must
            .iter()
            .take(10)
            .map(|f| format!("  {f}"))
            .collect::<Vec<_>>()
            .join("\n");
        let cut_by_pushpin = !cancels.is_empty()
            && must.len() <= cancels.len()
            && must
                .iter()
                .all(|f| f.to_string().contains("unexpected-eof"));
        if cut_by_pushpin && replays < CANCEL_REPLAYS {
            replays += 1;
            eprintln!(
                "{id}: pushpin cancelled {} stream(s) itself (BEHAVIOUR.md §12), the only \
                 MUST findings:\n{findings}\n  {}\nplaying again ({replays} of {CANCEL_REPLAYS})",
                cancels.len(),
                cancels.join("\n  ")
            );
            continue;
        }
        let mut msg = format!(
            "{id} through pushpin: {:?} (seed {seed}); MUST findings:\n{findings}",
            r.verdict
        );
        if !cancels.is_empty() {
            msg.push_str(&format!(
                "\npushpin cancelled {} stream(s) itself meanwhile (BEHAVIOUR.md §12):\n  {}",
                cancels.len(),
                cancels.join("\n  ")
            ));
        }
        return Err(msg.into());
    }
}

fn installed() -> bool {
    ["/usr/bin/pushpin", "/usr/bin/condure", "/usr/bin/zurl"]
        .iter()
        .all(|p| Path::new(p).exists())
}

/// Plays scenario `id` through Pushpin at `url` with the pushpin profile.
async fn run(
    url: &str,
    token: &str,
    id: &str,
    seed: u64,
) -> Result<harness_model::ScenarioResult, Failed> {
    let mut cfg = RunConfig::new(TargetSpec::Url {
        url: url.into(),
        token: Some(token.into()),
    });
    cfg.profile = profile();
    cfg.replay_prefix = Some(support::replay_prefix("pushpin", seed));
    support::play(cfg, id, seed).await
}

/// Reads `stream` into `text` until it contains `want`, by `until`.
async fn read_until(
    stream: &mut reqwest::Response,
    text: &mut String,
    want: &str,
    until: Instant,
) -> Result<(), String> {
    while !text.contains(want) {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.chunk()).await {
            Ok(Ok(Some(c))) => text.push_str(&String::from_utf8_lossy(&c)),
            other => return Err(format!("waiting for {want:?}: {other:?}; got {text:?}")),
        }
    }
    Ok(())
}

/// `pushpin-recovers/every-publish-lost`: every publish of the origin fails (nothing
/// listens at its publish URL), yet a client of its Pushpin gets every event, in order,
/// once: the holds' `Grip-Link` is followed when the link times out.
fn every_publish_lost() -> Result<(), Failed> {
    let dead = format!("http://127.0.0.1:{}/publish/", free_port());
    let stack = Stack::start(Some(&dead))?;
    let token = stack.origin.token();
    let base = stack.pushpin.url.clone();
    support::block_on(async move {
        let client = reqwest::Client::builder().no_proxy().build()?;
        let auth = format!("Bearer {token}");
        let job: serde_json::Value = client
            .post(format!("{base}/v1/jobs"))
            .header("Authorization", &auth)
            .body(r#"{"steps":1,"interval_ms":3600000}"#)
            .send()
            .await?
            .json()
            .await?;
        let job = job["job_id"].as_str().ok_or("no job_id")?.to_owned();
        let mut stream = client
            .get(format!("{base}/v1/events?job_id={job}"))
            .header("Authorization", &auth)
            .send()
            .await?;
        // The hold's head (retry, connection_open, job_started) first.
        let mut text = String::new();
        let until = Instant::now() + RECOVERY_DEADLINE;
        read_until(&mut stream, &mut text, "job_started", until).await?;
        let mut seqs = Vec::new();
        for i in 0..3 {
            let ack: serde_json::Value = client
                .post(format!("{base}/v1/jobs/{job}/events"))
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .body(format!(
                    r#"{{"event_type":"m","payload":{{"marker":"lost-{i}"}}}}"#
                ))
                .send()
                .await?
                .json()
                .await?;
            seqs.push(ack["seqs"][0].as_u64().ok_or("no seq in the ack")?);
        }
        read_until(&mut stream, &mut text, "lost-2", until).await?;
        let ids: Vec<u64> = text
            .lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .filter_map(|s| s.parse().ok())
            .collect();
        let tail = &ids[ids.len().saturating_sub(3)..];
        if tail != seqs.as_slice() || ids.windows(2).any(|w| w[0] >= w[1]) {
            return Err(
                format!("expected ids ending {seqs:?}, strictly rising; got {ids:?}").into(),
            );
        }
        Ok::<_, Failed>(())
    })??;
    let stats = stack
        .origin
        .server
        .as_ref()
        .and_then(|s| s.grip_stats())
        .ok_or("no grip stats")?;
    let failed = stats
        .requests_failed
        .load(std::sync::atomic::Ordering::Relaxed);
    if failed == 0 {
        return Err("expected failed publishes (the publish URL is dead), saw none".into());
    }
    eprintln!("every publish failed ({failed}); the events came through Grip-Link recovery");
    Ok(())
}

/// Every built-in scenario is run, skipped or not run (with its reason above), once.
fn every_scenario_is_placed() -> Result<(), Failed> {
    let placed: Vec<&str> = APPLICABLE
        .iter()
        .chain(EXCLUSIVE)
        .chain(NOT_RUN)
        .copied()
        .chain(SKIPPED.iter().map(|(id, _)| *id))
        .collect();
    let builtin: Vec<String> = sse_harness::scenario::builtin()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|sc| sc.id())
        .collect();
    let missing: Vec<&String> = builtin
        .iter()
        .filter(|id| !placed.contains(&id.as_str()))
        .collect();
    let unknown: Vec<&&str> = placed
        .iter()
        .filter(|id| !builtin.iter().any(|b| b == *id))
        .collect();
    let mut twice = placed.clone();
    twice.sort_unstable();
    twice.dedup();
    if !missing.is_empty() || !unknown.is_empty() || twice.len() != placed.len() {
        return Err(format!(
            "place every scenario once: not placed {missing:?}, unknown {unknown:?}, {} placed twice",
            placed.len() - twice.len()
        )
        .into());
    }
    Ok(())
}

fn main() {
    // As many trials at once as libtest-mimic's default (the cores), no more: they share
    // one Pushpin and judge timings. Measured on two cores: two at a time kept the
    // machine 64 % busy (Pushpin included) for 103 s; at three, one trial published
    // late (CT-10/cut-after-random-event-counts: Inconclusive, PublishingLate).
    let args = Arguments::from_args();
    let seed = support::seed("pushpin", args.list);
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let available = installed();
    if !available && in_ci {
        panic!("CI=true but pushpin is not installed: apt-get install pushpin");
    }
    let stack = if available && !args.list {
        match Stack::start(None) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => panic!("{e}"),
        }
    } else {
        None
    };
    let (url, token) = stack
        .as_ref()
        .map(|s| (s.pushpin.url.clone(), s.origin.token()))
        .unwrap_or_default();
    let mut trials = Vec::new();
    for id in APPLICABLE.iter().chain(EXCLUSIVE) {
        let shared = stack.clone();
        trials.push(
            Trial::test(format!("pushpin/{id}"), move || {
                play_through(id, shared.as_ref(), seed)
            })
            .with_ignored_flag(!available),
        );
    }
    for (id, why) in SKIPPED {
        let (url, token) = (url.clone(), token.clone());
        trials.push(
            Trial::test(format!("pushpin-skips/{id}"), move || {
                let r = support::block_on(run(&url, &token, id, seed))??;
                let want = format!("profile pushpin {why}");
                match r.verdict {
                    Verdict::Skipped { reason } if reason.starts_with(&want) => Ok(()),
                    v => Err(format!("{id}: expected skipped ({want}), got {v:?}").into()),
                }
            })
            .with_ignored_flag(!available),
        );
    }
    trials.push(Trial::test(
        "every-scenario-is-placed",
        every_scenario_is_placed,
    ));
    trials.push(
        Trial::test("pushpin-recovers/every-publish-lost", every_publish_lost)
            .with_ignored_flag(!available),
    );
    let conclusion = libtest_mimic::run(&args, trials);
    drop(stack);
    conclusion.exit();
}
