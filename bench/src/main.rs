//! `sse-bench`: measures the reference server, nchan and the harness client side by
//! side in one run (like-for-like fan-out, batch fan-out, publish, replay, idle-stream
//! memory, harness drain, toxic proxy relay; with `--full` also the curves of cost
//! against work, drawn as SVG plots), prints the tables and rewrites the results
//! section of `BENCHMARKS.md`.
//!
//! `cargo run --release -p sse-bench -- [--runs 5] [--quick] [--full] [--out BENCHMARKS.md]`,
//! or `cargo bench -p sse-bench` (the same run, with the defaults).
//!
//! A measurement, never a test: nothing here asserts a timing (the unit tests check
//! only how plots are drawn).
//! Every load is bounded in count and in time, on 127.0.0.1 only. The servers run as
//! separate processes so each one's memory is its own.
#![deny(missing_docs)]

mod curves;
mod fanout;
mod idle;
mod ladder;
mod machine;
mod paced;
mod plot;
mod procs;
mod publish;
mod relay;
mod replay;
mod scale;
mod stats;
mod wire;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use self::machine::Machine;
use self::procs::{Nchan, NchanUnavailable, RefServer};
use self::stats::{Results, Unit};
use self::wire::{Flavor, Spine};

/// Where the results section of BENCHMARKS.md starts and ends.
const BEGIN: &str = "<!-- sse-bench results: begin (generated, do not edit) -->";
const END: &str = "<!-- sse-bench results: end -->";

#[derive(Parser)]
#[command(about = "Side-by-side benchmarks of the reference server, nchan and the harness client")]
struct Cli {
    /// Runs per measurement (medians are over these); default 5, 2 with --quick.
    #[arg(long)]
    runs: Option<usize>,
    /// Smoke run: few runs and small sizes; BENCHMARKS.md is left alone unless --out.
    #[arg(long)]
    quick: bool,
    /// File whose results section to rewrite (default: the workspace's BENCHMARKS.md,
    /// except with --quick).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The reference-server binary (default: next to this executable, rebuilt under cargo run).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Also measure the curves (cost against work: subscribers, log size, idle
    /// streams, harness events per run) and draw their plots; long.
    #[arg(long)]
    full: bool,
    /// Only these parts (repeatable; default all).
    #[arg(long, value_enum)]
    only: Vec<Part>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Internal: the child process holding idle client streams.
    #[command(hide = true)]
    IdleClients {
        #[arg(long)]
        flavor: String,
        #[arg(long)]
        url: String,
        #[arg(long)]
        path: String,
        #[arg(long)]
        n: u64,
    },
    /// Internal: runs a command and prints its peak RSS and CPU time.
    #[command(hide = true)]
    Rusage {
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        cmd: Vec<String>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    Fanout,
    Publish,
    Replay,
    Idle,
    Relay,
    /// The harness's own cost per judged event (a curve: `--full` only).
    Harness,
}

/// The sizes of one invocation.
struct Sizes {
    runs: usize,
    subscribers: usize,
    fanout_events: u64,
    payloads: [usize; 2],
    fanout_limit: Duration,
    publish_for: Duration,
    log_events: u64,
    idle: Vec<u64>,
    relay_bytes: u64,
    ladder: ladder::LadderSizes,
    curves: Option<scale::CurveSizes>,
}

impl Sizes {
    fn new(cli: &Cli) -> Sizes {
        let curves = cli.full.then(|| {
            if cli.quick {
                scale::CurveSizes {
                    subscribers: vec![50, 200],
                    log_events: vec![10_000, 50_000],
                    idle: vec![100, 1_000],
                    harness_events: vec![10_000, 50_000],
                    connections: LADDER_CONNECTIONS,
                }
            } else {
                scale::CurveSizes {
                    subscribers: vec![50, 500, 5_000, 10_000],
                    log_events: vec![10_000, 100_000, 1_000_000, 10_000_000],
                    idle: vec![1_000, 10_000, 50_000],
                    harness_events: vec![10_000, 100_000, 1_000_000, 10_000_000],
                    connections: LADDER_CONNECTIONS,
                }
            }
        });
        if cli.quick {
            Sizes {
                runs: cli.runs.unwrap_or(2).max(1),
                subscribers: 50,
                fanout_events: 2_000,
                payloads: [64, 1024],
                fanout_limit: Duration::from_secs(60),
                publish_for: Duration::from_millis(500),
                log_events: 50_000,
                idle: vec![100, 1_000],
                relay_bytes: 64 << 20,
                ladder: ladder::LadderSizes {
                    subscribers: 50,
                    payload: 64,
                    connections: LADDER_CONNECTIONS,
                    rates: vec![1_000.0, 5_000.0],
                    table: vec![1_000.0, 5_000.0],
                    step: Duration::from_millis(500),
                },
                curves,
            }
        } else {
            Sizes {
                runs: cli.runs.unwrap_or(5).max(1),
                subscribers: 50,
                fanout_events: 20_000,
                payloads: [64, 1024],
                fanout_limit: Duration::from_secs(120),
                publish_for: Duration::from_secs(2),
                log_events: 1_000_000,
                idle: vec![1_000, 10_000],
                relay_bytes: 1 << 30,
                ladder: ladder::LadderSizes {
                    subscribers: 50,
                    payload: 64,
                    connections: LADDER_CONNECTIONS,
                    rates: [1, 2, 3, 5, 7, 10, 14, 20, 28, 40]
                        .map(|k| f64::from(k) * 1000.0)
                        .to_vec(),
                    table: vec![1_000.0, 5_000.0, 20_000.0],
                    step: Duration::from_millis(1500),
                },
                curves,
            }
        }
    }
}

/// nchan's `worker_connections` in targets/nchan/nginx.conf.template.
const NCHAN_MAX_CONNECTIONS: u64 = 16384;

/// Keep-alive publishing connections of the like-for-like ladder, for both servers.
const LADDER_CONNECTIONS: usize = 32;

/// The table of the reference server's batch fan-out rows.
const BATCH_SECTION: &str = "Fan-out, reference only: batches of 100";

const NCHAN_MISSING: &str = "nchan: not installed (targets/nchan/install.sh)";

/// The whole benchmark run (also what `cargo bench -p sse-bench` runs, see
/// `benches/sse.rs`).
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    if let Some(Cmd::IdleClients {
        flavor,
        url,
        path,
        n,
    }) = &cli.cmd
    {
        procs::raise_nofile()?;
        let flavor = if flavor == "nchan" {
            Flavor::Nchan
        } else {
            Flavor::Spine
        };
        return rt.block_on(idle::clients_main(flavor, url, path, *n));
    }
    if let Some(Cmd::Rusage { cmd }) = &cli.cmd {
        return scale::rusage_main(cmd);
    }
    rt.block_on(bench(cli))
}

async fn bench(cli: Cli) -> anyhow::Result<()> {
    let sizes = Sizes::new(&cli);
    let nofile = procs::raise_nofile()?;
    let machine = Machine::detect();
    let wants = |p: Part| cli.only.is_empty() || cli.only.contains(&p);
    // The relay part starts no server, so `--only relay` needs no reference-server build.
    let needs_server = [
        Part::Fanout,
        Part::Publish,
        Part::Replay,
        Part::Idle,
        Part::Harness,
    ]
    .into_iter()
    .any(wants);
    let bin = if needs_server {
        procs::reference_server_bin(cli.server_bin.as_deref())?
    } else {
        PathBuf::new()
    };
    let started = std::time::Instant::now();
    let mut res = Results::default();
    let mut notes: Vec<String> = Vec::new();

    if wants(Part::Fanout) {
        ladder_runs(&bin, &sizes, &mut res).await?;
    }
    if wants(Part::Fanout) || wants(Part::Publish) {
        for run in 0..sizes.runs {
            eprintln!(
                "run {}/{}: reference batch fan-out/publish",
                run + 1,
                sizes.runs
            );
            spine_runs(&bin, &sizes, &cli, &mut res).await?;
        }
    }
    if wants(Part::Replay) {
        replay_runs(&bin, &sizes, &mut res, &mut notes).await?;
    }
    if wants(Part::Idle) {
        idle_runs(&bin, &sizes, nofile, &mut res).await?;
    }
    if wants(Part::Relay) {
        relay_runs(&sizes, &mut res, &mut notes).await?;
    }
    let curves = match &sizes.curves {
        Some(c) => Some(curve_runs(&bin, c, sizes.runs, nofile, &wants).await?),
        None => None,
    };

    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = format!("cargo run --release -p sse-bench --{}", prefixed(&args));
    let mut section = render(&machine, &command, &sizes, &res, &notes, started.elapsed());
    let out = match (&cli.out, cli.quick) {
        (Some(p), _) => Some(p.clone()),
        (None, false) => Some(procs::workspace_root().join("BENCHMARKS.md")),
        (None, true) => None,
    };
    if let Some(curves) = &curves {
        section.push_str(&curves_markdown(curves, out.as_deref())?);
    }
    println!("{section}");
    if let Some(path) = out {
        write_section(&path, &section)?;
        eprintln!("wrote the results section of {}", path.display());
    }
    Ok(())
}

/// The `--full` curves of the wanted parts. A curve's failure is noted on it rather
/// than ending the run, so that an hour of measurements is not lost to one point.
async fn curve_runs(
    bin: &Path,
    sizes: &scale::CurveSizes,
    runs: usize,
    nofile: u64,
    wants: &impl Fn(Part) -> bool,
) -> anyhow::Result<scale::Curves> {
    let mut curves = scale::Curves::new();
    let harness = if wants(Part::Harness) {
        procs::workspace_bin("sse-harness", "sse-harness")?
    } else {
        PathBuf::new()
    };
    for run in 0..runs {
        if wants(Part::Fanout) {
            for flavor in scale::order(run) {
                eprintln!("run {}/{runs}: {} subscriber curve", run + 1, flavor.name());
                if let Err(e) = scale::subscribers(bin, flavor, sizes, &mut curves).await {
                    curves
                        .fanout_rate
                        .note(flavor.name(), &format!("a run failed: {e:#}"));
                }
            }
        }
        if wants(Part::Idle) {
            eprintln!("run {}/{runs}: idle curve", run + 1);
            if let Err(e) = scale::idles(bin, sizes, nofile, run, &mut curves).await {
                curves
                    .idle
                    .note("reference", &format!("a run failed: {e:#}"));
            }
        }
        if wants(Part::Harness) {
            eprintln!("run {}/{runs}: harness cost curve", run + 1);
            if let Err(e) = scale::harness_runs(bin, &harness, sizes, &mut curves).await {
                curves
                    .harness_rss
                    .note("harness", &format!("a run failed: {e:#}"));
            }
        }
    }
    if wants(Part::Replay)
        && let Err(e) = scale::replays(bin, sizes, runs, &mut curves).await
    {
        curves.replay.note("reference", &format!("failed: {e:#}"));
    }
    Ok(curves)
}

/// The curves' Markdown; writes each plot to `bench/plots/<id>.svg` beside `out`.
fn curves_markdown(curves: &scale::Curves, out: Option<&Path>) -> anyhow::Result<String> {
    let mut s = String::from(
        "### Curves\n\nEach cell: the median (min – max; runs). The plots draw the medians \
         as lines and min – max as bars.\n\n",
    );
    let dir = out.map(|o| o.parent().unwrap_or(Path::new(".")).join("bench/plots"));
    for c in curves.all() {
        if c.series
            .iter()
            .all(|s| s.points.is_empty() && s.notes.is_empty())
        {
            continue;
        }
        let rel = format!("bench/plots/{}.svg", c.id);
        if let (Some(dir), Some(svg)) = (&dir, plot::svg(c)) {
            std::fs::create_dir_all(dir)?;
            let file = dir.join(format!("{}.svg", c.id));
            std::fs::write(&file, svg).with_context(|| format!("writing {}", file.display()))?;
        }
        s.push_str(&c.markdown(&rel));
    }
    Ok(s)
}

fn prefixed(args: &[String]) -> String {
    args.iter().map(|a| format!(" {a}")).collect()
}

/// The like-for-like fan-out ladder, every server in every run, alternating which
/// goes first.
async fn ladder_runs(bin: &Path, sizes: &Sizes, res: &mut Results) -> anyhow::Result<()> {
    use ladder::Contender;
    ladder::declare(&sizes.ladder, res);
    for run in 0..sizes.runs {
        let mut order = Contender::ALL;
        if run % 2 == 1 {
            order.reverse();
        }
        let mut climbs: Vec<(Contender, ladder::Climb)> = Vec::new();
        for c in order {
            eprintln!(
                "run {}/{}: {} like-for-like ladder",
                run + 1,
                sizes.runs,
                c.name()
            );
            match c.flavor {
                Flavor::Spine => {
                    let server = RefServer::start(bin).await?;
                    climbs.push((c, ladder::climb(c, &server.url, &sizes.ladder, res).await));
                    server.stop().await?;
                }
                Flavor::Nchan => match Nchan::start_with(c.workers).await {
                    Ok(nchan) => {
                        climbs.push((c, ladder::climb(c, &nchan.url, &sizes.ladder, res).await));
                        nchan.stop().await?;
                    }
                    Err(e) => ladder::unavailable(c, &nchan_unavailable(e), res),
                },
            }
        }
        let ours = climbs.iter().find(|(c, _)| *c == Contender::REFERENCE);
        for (c, theirs) in climbs.iter().filter(|(c, _)| *c != Contender::REFERENCE) {
            if let Some((_, ours)) = ours {
                ladder::ratios(ours, *c, theirs, res);
            }
        }
    }
    Ok(())
}

fn nchan_unavailable(e: NchanUnavailable) -> String {
    match e {
        NchanUnavailable::NotInstalled => NCHAN_MISSING.to_owned(),
        NchanUnavailable::Failed(s) => format!("nchan did not start: {s}"),
    }
}

/// The reference server's own rows: batch fan-out (nchan has no batch publish) and
/// the publish rates.
async fn spine_runs(bin: &Path, sizes: &Sizes, cli: &Cli, res: &mut Results) -> anyhow::Result<()> {
    let wants = |p: Part| cli.only.is_empty() || cli.only.contains(&p);
    let server = RefServer::start(bin).await?;
    let result = async {
        if wants(Part::Fanout) {
            for &p in &sizes.payloads {
                fanout_one(Flavor::Spine, &server.url, p, sizes, res).await?;
            }
        }
        if wants(Part::Publish) {
            let spine = Spine::new(&server.url)?;
            for (pubs, batch) in [(1, 1), (1, 100), (8, 1), (8, 100)] {
                let rate = publish::run(&spine, pubs, batch, sizes.publish_for).await?;
                let name = format!(
                    "reference: {pubs} publisher{} × batch {batch}",
                    if pubs == 1 { "" } else { "s" }
                );
                res.add(
                    "Publish (acked events/s, fsync on)",
                    &name,
                    Unit::PerSec,
                    rate,
                );
            }
        }
        anyhow::Ok(())
    }
    .await;
    server.stop().await?;
    result
}

fn fanout_name(flavor: Flavor, payload: usize, what: &str) -> String {
    let size = if payload >= 1024 {
        format!("{} KiB", payload / 1024)
    } else {
        format!("{payload} B")
    };
    format!("{} {size}: {what}", flavor.name())
}

async fn fanout_one(
    flavor: Flavor,
    base: &str,
    payload: usize,
    sizes: &Sizes,
    res: &mut Results,
) -> anyhow::Result<()> {
    let spec = fanout::FanoutSpec {
        subscribers: sizes.subscribers,
        events: sizes.fanout_events,
        payload,
        limit: sizes.fanout_limit,
        load: fanout::Load::Batch,
    };
    let o = fanout::run(flavor, base, &spec).await?;
    let s = BATCH_SECTION;
    let rate = o.delivered as f64 / o.secs.max(1e-9);
    res.add(
        s,
        &fanout_name(flavor, payload, "deliveries/s"),
        Unit::PerSec,
        rate,
    );
    res.add(
        s,
        &fanout_name(flavor, payload, "publish side events/s"),
        Unit::PerSec,
        o.acked_rate,
    );
    for (q, label) in [(0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")] {
        let v = o.latency_us.value_at_quantile(q) as f64;
        res.add(s, &fanout_name(flavor, payload, label), Unit::Micros, v);
    }
    if o.delivered < o.expected {
        res.note(
            s,
            &fanout_name(flavor, payload, "deliveries/s"),
            Unit::PerSec,
            &format!("INCOMPLETE: {} of {} deliveries", o.delivered, o.expected),
        );
    }
    eprintln!(
        "  {} {payload} B: {:.0} deliveries/s, p50 {} µs, p99 {} µs ({} of {})",
        flavor.name(),
        rate,
        o.latency_us.value_at_quantile(0.5),
        o.latency_us.value_at_quantile(0.99),
        o.delivered,
        o.expected
    );
    Ok(())
}

async fn replay_runs(
    bin: &Path,
    sizes: &Sizes,
    res: &mut Results,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let server = RefServer::start(bin).await?;
    let result = async {
        let spine = Spine::new(&server.url)?;
        eprintln!("building a {}-event log", sizes.log_events);
        let log = replay::build(&spine, sizes.log_events).await?;
        notes.push(format!(
            "Replay log: {} events (64 B payloads) built in {:.1} s ({:.0} events/s, 4 publishers × batch 1000); {:.1} MiB of stream.",
            log.events,
            log.build_secs,
            log.events as f64 / log.build_secs,
            log.raw_bytes as f64 / (1024.0 * 1024.0)
        ));
        let s1 = "Replay (resume from 0)";
        let s2 = "Harness drain (one stream, events/s)";
        for run in 0..sizes.runs {
            eprintln!("run {}/{}: replay and drain", run + 1, sizes.runs);
            let r = replay::replay(&server.url, &log).await?;
            res.add(s1, "reference: sse-wire + parser, events/s", Unit::PerSec, r);
            let (raw, harness) = if run % 2 == 0 {
                let raw = replay::raw(&server.url, &log).await?;
                (raw, replay::harness(&server.url, &log).await?)
            } else {
                let h = replay::harness(&server.url, &log).await?;
                (replay::raw(&server.url, &log).await?, h)
            };
            res.add(s2, "raw socket reader (counts bytes)", Unit::PerSec, raw);
            res.add(s2, "harness client (client::run: sse-wire, parser, classify, record)", Unit::PerSec, harness);
            res.add(s2, "ratio harness / raw", Unit::Ratio, harness / raw);
            eprintln!("  replay {r:.0}/s, raw {raw:.0}/s, harness {harness:.0}/s");
        }
        anyhow::Ok(())
    }
    .await;
    server.stop().await?;
    result
}

async fn idle_runs(
    bin: &Path,
    sizes: &Sizes,
    nofile: u64,
    res: &mut Results,
) -> anyhow::Result<()> {
    let s = "Idle streams (resident memory per stream)";
    for &n in &sizes.idle {
        res.declare(s, &format!("reference server, {n} streams"), Unit::Bytes);
        res.declare(s, &client_row(n), Unit::Bytes);
        res.declare(s, &format!("nchan worker, {n} streams"), Unit::Bytes);
    }
    for run in 0..sizes.runs {
        for &n in &sizes.idle {
            eprintln!("run {}/{}: {n} idle streams", run + 1, sizes.runs);
            for flavor in scale::order(run) {
                let name = match flavor {
                    Flavor::Spine => format!("reference server, {n} streams"),
                    Flavor::Nchan => format!("nchan worker, {n} streams"),
                };
                match scale::idle_one(bin, flavor, n, nofile).await {
                    Ok(o) => {
                        res.add(s, &name, Unit::Bytes, o.server);
                        if flavor == Flavor::Spine {
                            res.add(s, &client_row(n), Unit::Bytes, o.client);
                        }
                    }
                    Err(why) => res.note(s, &name, Unit::Bytes, &why),
                }
            }
        }
    }
    Ok(())
}

fn client_row(n: u64) -> String {
    format!("harness client (client::run), {n} streams")
}

async fn relay_runs(
    sizes: &Sizes,
    res: &mut Results,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let s = "Toxic proxy relay (one connection, bits/s)";
    let sink = relay::Sink::start().await?;
    let proxy = sse_toxics::Proxy::start("127.0.0.1:0".parse()?, sink.addr, vec![], 1).await?;
    notes.push(format!(
        "Toxic proxy relay: {} MiB on one connection into a sink that counts them, straight and through `sse-toxics` with no toxic.",
        sizes.relay_bytes >> 20
    ));
    let result = async {
        for run in 0..sizes.runs {
            eprintln!("run {}/{}: toxic proxy relay", run + 1, sizes.runs);
            let (direct, via) = if run % 2 == 0 {
                let d = relay::transfer(sink.addr, sizes.relay_bytes).await?;
                (d, relay::transfer(proxy.addr(), sizes.relay_bytes).await?)
            } else {
                let v = relay::transfer(proxy.addr(), sizes.relay_bytes).await?;
                (relay::transfer(sink.addr, sizes.relay_bytes).await?, v)
            };
            res.add(s, "direct loopback", Unit::BitsPerSec, direct);
            res.add(s, "toxic proxy relay, no toxic", Unit::BitsPerSec, via);
            res.add(s, "ratio proxy / direct", Unit::Ratio, via / direct);
            eprintln!(
                "  direct {:.2} Gbit/s, proxy {:.2} Gbit/s",
                direct / 1e9,
                via / 1e9
            );
        }
        anyhow::Ok(())
    }
    .await;
    proxy.stop().await;
    sink.stop();
    result
}

fn render(
    m: &Machine,
    command: &str,
    sizes: &Sizes,
    res: &Results,
    notes: &[String],
    took: Duration,
) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "Generated by `{command}` on {} (commit {}), {} runs per row, {:.0} s in all.\n\n",
        m.date,
        m.commit,
        sizes.runs,
        took.as_secs_f64()
    ));
    s.push_str(&format!(
        "Machine: {} × {}, {} MiB memory, Linux {}.\n\n",
        m.cores, m.cpu, m.mem_mib, m.kernel
    ));
    let l = &sizes.ladder;
    s.push_str(&format!(
        "Fan-out, like for like: {} subscribers on one channel; every server gets one {} B event \
         per POST over {} keep-alive connections at each offered rate ({}), {:.1} s per \
         rate; latency = receive time − the event's *scheduled* send time per (event, \
         subscriber). The reference commits every event with fsync before it is acked or \
         delivered; nchan keeps messages in memory. A rate is sustained when every event \
         reached every subscriber and p99 ≤ {} ms; the ladder stops at the first rate not \
         sustained above the tabled ones. Runs alternate which server goes first.\n\n",
        l.subscribers,
        l.payload,
        l.connections,
        l.rates
            .iter()
            .map(|r| ladder::rate_label(*r))
            .collect::<Vec<_>>()
            .join(", "),
        l.step.as_secs_f64(),
        ladder::P99_BOUND_US / 1000,
    ));
    s.push_str(&format!(
        "Fan-out, reference only: {} subscribers, {} events per run, 1 publisher × batch {} \
         (every event committed with fsync before delivery).\n\n",
        sizes.subscribers,
        sizes.fanout_events,
        fanout::SPINE_BATCH,
    ));
    for n in notes {
        s.push_str(n);
        s.push_str("\n\n");
    }
    s.push_str(&res.markdown());
    s
}

fn write_section(path: &Path, section: &str) -> anyhow::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{BEGIN}\n{section}{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if e > b => format!("{}{block}{}", &old[..b], &old[e + END.len()..]),
        _ if old.is_empty() => format!("# Benchmarks\n\n## Results\n\n{block}\n"),
        _ => format!("{old}\n## Results\n\n{block}\n"),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}
