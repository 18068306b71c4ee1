//! The curves of `--full`: how each cost grows with the work, every point measured
//! once per run (median of the runs, min and max), the servers alternating which goes
//! first.
//!
//! - fan-out deliveries/s and p99 against subscribers, both servers, the like-for-like
//!   load (one event per POST, the ladder's connections) at [`SUBSCRIBER_CURVE_RATE`];
//! - replay events/s against the log size: the reference server resumes a job of N
//!   events from 0; nchan serves a channel's buffer of N messages from the oldest
//!   (`/sub-oldest/`, up to its 200,000-message buffer), both read by the same
//!   sse-wire + parser client;
//! - server resident memory per idle stream against idle streams, both servers;
//! - the harness's peak resident memory and its CPU per judged event against the
//!   events of one run: a real `sse-harness run` (scenario `BENCH/long-read`, one reader of
//!   a backlog of N events, judged like any run) as a child process, measured by
//!   `getrusage(RUSAGE_CHILDREN)` in the bench's hidden `rusage` wrapper.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::curves::Curve;
use super::fanout::{self, FanoutSpec, Load};
use super::procs::{self, Nchan, RefServer};
use super::stats::Unit;
use super::wire::{Flavor, Spine};
use super::{idle, paced, replay};

/// Offered events/s of the subscriber curve.
pub const SUBSCRIBER_CURVE_RATE: f64 = 1_000.0;
/// Events of each subscriber-curve point.
const SUBSCRIBER_CURVE_EVENTS: u64 = 1_000;

/// The x values of every curve.
#[derive(Debug, Clone)]
pub struct CurveSizes {
    /// Subscribers on one channel.
    pub subscribers: Vec<usize>,
    /// Events in the replayed job's log.
    pub log_events: Vec<u64>,
    /// Idle streams.
    pub idle: Vec<u64>,
    /// Events one harness run reads and judges.
    pub harness_events: Vec<u64>,
    /// Publishing connections (the ladder's).
    pub connections: usize,
}

/// Every curve of one `--full` invocation.
pub struct Curves {
    /// Deliveries/s against subscribers.
    pub fanout_rate: Curve,
    /// p99 against subscribers.
    pub fanout_p99: Curve,
    /// Replay events/s against log size.
    pub replay: Curve,
    /// Server RSS per idle stream against streams.
    pub idle: Curve,
    /// Harness peak RSS against events per run.
    pub harness_rss: Curve,
    /// Harness CPU per event against events per run.
    pub harness_cpu: Curve,
}

impl Curves {
    /// Empty curves.
    pub fn new() -> Curves {
        Curves {
            fanout_rate: Curve::new(
                "fanout-subscribers-rate",
                "Fan-out deliveries/s against subscribers",
                "subscribers",
                Unit::PerSec,
            ),
            fanout_p99: Curve::new(
                "fanout-subscribers-p99",
                "Fan-out p99 (publish → deliver) against subscribers",
                "subscribers",
                Unit::Micros,
            ),
            replay: Curve::new(
                "replay-log-size",
                "Replay events/s against the job's log size",
                "events in the log",
                Unit::PerSec,
            ),
            idle: Curve::new(
                "idle-streams-rss",
                "Server resident memory per idle stream",
                "idle streams",
                Unit::Bytes,
            ),
            harness_rss: Curve::new(
                "harness-peak-rss",
                "Harness peak resident memory against the events of one run",
                "events in the run",
                Unit::Bytes,
            ),
            harness_cpu: Curve::new(
                "harness-cpu-per-event",
                "Harness CPU time per judged event",
                "events in the run",
                Unit::Micros,
            ),
        }
    }

    /// In the order they are shown.
    pub fn all(&self) -> [&Curve; 6] {
        [
            &self.fanout_rate,
            &self.fanout_p99,
            &self.replay,
            &self.idle,
            &self.harness_rss,
            &self.harness_cpu,
        ]
    }
}

/// One run's subscriber curve for `flavor` (a fresh server for the run).
pub async fn subscribers(
    bin: &Path,
    flavor: Flavor,
    sizes: &CurveSizes,
    curves: &mut Curves,
) -> anyhow::Result<()> {
    let server = Server::start(bin, flavor).await?;
    let Some(base) = server.url() else {
        curves
            .fanout_rate
            .note(flavor.name(), "nchan not available");
        return Ok(());
    };
    for &n in &sizes.subscribers {
        let spec = FanoutSpec {
            subscribers: n,
            events: SUBSCRIBER_CURVE_EVENTS,
            payload: 64,
            limit: Duration::from_secs(120),
            load: Load::Paced {
                rate: SUBSCRIBER_CURVE_RATE,
                connections: sizes.connections,
            },
        };
        match fanout::run(flavor, &base, &spec).await {
            Ok(o) => {
                let rate = o.delivered as f64 / o.secs.max(1e-9);
                let p99 = o.latency_us.value_at_quantile(0.99) as f64;
                eprintln!(
                    "  {} × {n}: {rate:.0} deliveries/s, p99 {p99} µs",
                    flavor.name()
                );
                curves.fanout_rate.add(flavor.name(), n as f64, rate);
                curves.fanout_p99.add(flavor.name(), n as f64, p99);
                if o.delivered < o.expected {
                    let lost = format!("{n} subscribers: some deliveries lost or late (> 120 s)");
                    curves.fanout_rate.note(flavor.name(), &lost);
                }
            }
            Err(e) => {
                let why = format!("{n} subscribers: failed: {e}");
                curves.fanout_rate.note(flavor.name(), &why);
            }
        }
    }
    server.stop().await
}

/// A server of either flavor, or none when nchan is not available.
enum Server {
    Reference(RefServer),
    Nchan(Option<Nchan>),
}

impl Server {
    async fn start(bin: &Path, flavor: Flavor) -> anyhow::Result<Server> {
        Ok(match flavor {
            Flavor::Spine => Server::Reference(RefServer::start(bin).await?),
            Flavor::Nchan => Server::Nchan(Nchan::start().await.ok()),
        })
    }

    fn url(&self) -> Option<String> {
        match self {
            Server::Reference(s) => Some(s.url.clone()),
            Server::Nchan(n) => n.as_ref().map(|n| n.url.clone()),
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        match self {
            Server::Reference(s) => s.stop().await,
            Server::Nchan(Some(n)) => n.stop().await,
            Server::Nchan(None) => Ok(()),
        }
    }
}

/// The replay curve: one server of each kind, one job (channel) per log size, built
/// once, each replayed once per run, the servers alternating.
pub async fn replays(
    bin: &Path,
    sizes: &CurveSizes,
    runs: usize,
    curves: &mut Curves,
) -> anyhow::Result<()> {
    let server = RefServer::start(bin).await?;
    let nchan = Nchan::start().await.ok();
    let result = async {
        let spine = Spine::new(&server.url)?;
        let mut logs = Vec::new();
        let mut channels = Vec::new();
        for &n in &sizes.log_events {
            eprintln!("building a {n}-event log");
            logs.push((n, replay::build(&spine, n).await?));
            match &nchan {
                Some(nc) if n <= NCHAN_BUFFER => channels.push((n, fill_channel(nc, n).await?)),
                Some(_) => curves.replay.note(
                    "nchan",
                    &format!("{n} events: above nchan's message buffer (200,000)"),
                ),
                None => curves.replay.note("nchan", "nchan not available"),
            }
        }
        for run in 0..runs {
            for (n, log) in &logs {
                let nchan_first = run % 2 == 1;
                if nchan_first {
                    nchan_point(nchan.as_ref(), &mut channels, *n, curves).await;
                }
                let r = replay::replay(&server.url, log).await?;
                curves.replay.add("reference", *n as f64, r);
                if !nchan_first {
                    nchan_point(nchan.as_ref(), &mut channels, *n, curves).await;
                }
                eprintln!(
                    "  run {}: replay of {n}: reference {r:.0} events/s",
                    run + 1
                );
            }
        }
        anyhow::Ok(())
    }
    .await;
    server.stop().await?;
    if let Some(nc) = nchan {
        nc.stop().await?;
    }
    result
}

/// One run's nchan replay of the channel holding `n` messages, if there is one; a
/// failure is noted on the curve and that channel is not read again.
async fn nchan_point(
    nchan: Option<&Nchan>,
    channels: &mut Vec<(u64, String)>,
    n: u64,
    curves: &mut Curves,
) {
    let (Some(nc), Some(i)) = (nchan, channels.iter().position(|(m, _)| *m == n)) else {
        return;
    };
    match nchan_replay(&nc.url, &channels[i].1, n).await {
        Ok(r) => curves.replay.add("nchan", n as f64, r),
        Err(e) => {
            curves.replay.note("nchan", &format!("{n} events: {e:#}"));
            channels.remove(i);
        }
    }
}

/// nchan's `nchan_message_buffer_length` of `/pub/` in nginx.conf.template.
const NCHAN_BUFFER: u64 = 200_000;

/// Publishes `n` messages of 64 B into a fresh nchan channel, as fast as the ladder's
/// connections are acknowledged; returns the channel.
async fn fill_channel(nchan: &Nchan, n: u64) -> anyhow::Result<String> {
    let channel = format!("replay-{n}-{}", super::wire::now_ns());
    let sink = paced::Sink::Nchan {
        base: nchan.url.clone(),
        channel: channel.clone(),
    };
    let schedule = paced::Schedule {
        rate: 1e9,
        events: n,
        connections: 8,
        payload: 64,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    paced::publish(&sink, schedule, deadline).await?;
    Ok(channel)
}

/// How long an nchan replay may go without a byte before it counts as stalled (nchan
/// logs "Missed message for eventsource subscriber" and stops sending when a long
/// buffer is read from the oldest message).
const NCHAN_STALL: Duration = Duration::from_secs(10);

/// Events/s of a client reading a channel's `n` buffered messages from the oldest.
async fn nchan_replay(base: &str, channel: &str, n: u64) -> anyhow::Result<f64> {
    let start = std::time::Instant::now();
    let path = format!("/sub-oldest/{channel}");
    let mut resp = super::wire::open_stream(Flavor::Nchan, base, &path, None).await?;
    let mut parser = sse_wire::Parser::new(sse_wire::ParserConfig::default());
    let (mut items, mut buf, mut count) = (Vec::new(), vec![0u8; 64 * 1024], 0u64);
    let read = async {
        while count < n {
            let got = tokio::time::timeout(NCHAN_STALL, resp.read_body(&mut buf))
                .await
                .map_err(|_| {
                    anyhow::anyhow!(
                        "nchan stopped sending after {count} of {n} messages (nothing for {} s)",
                        NCHAN_STALL.as_secs()
                    )
                })??;
            if got == 0 {
                bail!("nchan's stream ended after {count} of {n} messages");
            }
            parser.feed(&buf[..got], &mut items);
            for it in items.drain(..) {
                if matches!(it, sse_wire::Item::Event(ref e) if e.event_type == "message") {
                    count += 1;
                }
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(600), read)
        .await
        .context("nchan replay over its deadline")??;
    resp.reset();
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// One idle measurement of `flavor` with `n` streams, or why there is none.
pub async fn idle_one(
    bin: &Path,
    flavor: Flavor,
    n: u64,
    nofile: u64,
) -> Result<idle::IdleOutcome, String> {
    if n + 64 > nofile {
        return Err(format!("{n} streams: skipped, open-file limit {nofile}"));
    }
    match flavor {
        Flavor::Spine => idle::spine(bin, n)
            .await
            .map_err(|e| format!("{n} streams: {e}")),
        Flavor::Nchan => {
            if n > super::NCHAN_MAX_CONNECTIONS - 16 {
                return Err(format!(
                    "{n} streams: above worker_connections in nginx.conf.template"
                ));
            }
            let nchan = Nchan::start().await.map_err(super::nchan_unavailable)?;
            idle::nchan(nchan, n)
                .await
                .map_err(|e| format!("{n} streams: {e}"))
        }
    }
}

/// One run's idle curve for both servers (`run` decides which goes first).
pub async fn idles(
    bin: &Path,
    sizes: &CurveSizes,
    nofile: u64,
    run: usize,
    curves: &mut Curves,
) -> anyhow::Result<()> {
    for &n in &sizes.idle {
        for flavor in order(run) {
            match idle_one(bin, flavor, n, nofile).await {
                Ok(o) => curves.idle.add(flavor.name(), n as f64, o.server),
                Err(why) => curves.idle.note(flavor.name(), &why),
            }
        }
    }
    Ok(())
}

/// Which server goes first in run `run`: they alternate.
pub fn order(run: usize) -> [Flavor; 2] {
    if run.is_multiple_of(2) {
        [Flavor::Spine, Flavor::Nchan]
    } else {
        [Flavor::Nchan, Flavor::Spine]
    }
}

/// What the `rusage` wrapper reports of its one child.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// Peak resident memory, bytes.
    pub max_rss: f64,
    /// User + system CPU seconds.
    pub cpu_secs: f64,
    /// The child's exit code (-1: killed by a signal).
    pub exit: i32,
}

/// One run of the harness curve: `sse-harness run` over a backlog of each size.
pub async fn harness_runs(
    bin: &Path,
    harness: &Path,
    sizes: &CurveSizes,
    curves: &mut Curves,
) -> anyhow::Result<()> {
    let server = RefServer::start(bin).await?;
    let result = async {
        for &n in &sizes.harness_events {
            let u = harness_once(harness, &server.url, n).await?;
            eprintln!(
                "  harness over {n} events: peak RSS {:.1} MiB, CPU {:.2} s, exit {}",
                u.max_rss / 1048576.0,
                u.cpu_secs,
                u.exit
            );
            if u.exit != 0 {
                let why = format!(
                    "{} events: the run did not pass (exit {}{}); its CPU per event is not drawn",
                    super::curves::count_label(n as f64),
                    u.exit,
                    if u.exit == 1 {
                        ": a MUST failed, such as gate.record-limit when the recording reached \
                         the scenario's byte budget"
                    } else {
                        ""
                    }
                );
                curves.harness_rss.note("harness", &why);
            }
            curves.harness_rss.add("harness", n as f64, u.max_rss);
            if u.exit == 0 {
                curves
                    .harness_cpu
                    .add("harness", n as f64, u.cpu_secs * 1e6 / n as f64);
            }
        }
        anyhow::Ok(())
    }
    .await;
    server.stop().await?;
    result
}

/// The scenario of the harness curve: one reader of a backlog of `events`.
fn long_read(events: u64) -> String {
    let deadline = 120 + events / 10_000;
    format!(
        "group = \"BENCH\"\nname = \"long-read\"\n\
         title = \"One reader of a backlog of {events} events\"\n\
         families = [\"delivery\"]\nrequires = [\"publish\", \"replay-from-start\"]\n\
         deadline_s = {deadline}\n\n[traffic]\nbacklog = {events}\nbatch = 1000\n\n\
         [[clients]]\nname = \"reader\"\ncount = 1\n"
    )
}

/// The recording budget of a run over `events`: 2 KiB per event estimated (the
/// harness's estimate of a spine event is about 1 KiB), at least the default 256 MiB.
fn recorded_mib(events: u64) -> u64 {
    (events * 2048).div_ceil(1 << 20).max(256)
}

async fn harness_once(harness: &Path, url: &str, events: u64) -> anyhow::Result<Usage> {
    let dir = tempfile::Builder::new()
        .prefix("sse-bench-harness-")
        .tempdir()?;
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir_all(&scenarios)?;
    std::fs::write(scenarios.join("long-read.toml"), long_read(events))?;
    let me = std::env::current_exe()?;
    let out = tokio::process::Command::new(me)
        .arg("rusage")
        .arg("--")
        .arg(harness)
        .args([
            "run",
            "--target",
            url,
            "--token",
            procs::TOKEN,
            "--seed",
            "1",
        ])
        // A budget for the whole backlog (the default 256 MiB stops a reader at about
        // 260,000 spine events): the curve measures what a long run costs.
        .arg("--max-recorded-mib")
        .arg(recorded_mib(events).to_string())
        .arg("--scenarios-dir")
        .arg(&scenarios)
        .arg("--report-dir")
        .arg(dir.path().join("report"))
        .kill_on_drop(true)
        .output()
        .await
        .context("running the rusage wrapper")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(line) = text.lines().rev().find_map(|l| l.strip_prefix("rusage ")) else {
        bail!(
            "the harness over {events} events gave no usage: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let f: Vec<&str> = line.split_whitespace().collect();
    let [rss, cpu, code] = f[..] else {
        bail!("rusage line {line:?}");
    };
    Ok(Usage {
        max_rss: rss.parse::<f64>()?,
        cpu_secs: cpu.parse::<f64>()?,
        exit: code.parse::<i32>()?,
    })
}

/// The hidden `rusage` subcommand: runs `cmd`, waits for it, prints
/// `rusage <peak RSS bytes> <user+system CPU s> <exit code>` (its only child, so
/// `RUSAGE_CHILDREN` is exactly that child) and exits 0.
pub fn rusage_main(cmd: &[String]) -> anyhow::Result<()> {
    use nix::sys::resource::{UsageWho, getrusage};
    let [prog, args @ ..] = cmd else {
        bail!("rusage: no command");
    };
    let status = std::process::Command::new(prog)
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("running {prog}"))?;
    let u = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    println!(
        "rusage {} {:.3} {}",
        u.max_rss() * 1024,
        secs(u.user_time()) + secs(u.system_time()),
        status.code().unwrap_or(-1)
    );
    Ok(())
}
