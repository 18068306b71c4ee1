//! The harness's scale figure: one `sse-harness run` process holds N (default 50,000)
//! concurrent streams against one reference server process (`sse-harness
//! serve-reference`), its streams spread over several loopback source addresses
//! (`--source-addr 127.0.0.2 …`), and the run passes.
//!
//! Why several: Linux picks a client port from `net.ipv4.ip_local_port_range` (default
//! 32768–60999: 28,232 ports) per source address, target address and port, so one
//! source address reaches one target through at most ~28k connections. The test gives
//! ⌈N / (0.9 · ports)⌉ addresses, at least 2. Every process also needs more than N
//! descriptors: the test raises its own `RLIMIT_NOFILE` (hard and soft) to N + 1,000
//! before starting both, which they inherit (above the hard limit it needs
//! `CAP_SYS_RESOURCE`, e.g. root; fs.nr_open bounds it); the harness then checks the
//! scenario fits (`source::check_descriptors`).
//!
//! The scenario (written here): N clients hold their streams while nothing is
//! published for 20 s after all are open, then 3 events arrive at 1/s, which every
//! client must receive. The server's heartbeat is 15 s, so the idle streams are quiet.
//! Measured while all N are open and idle: the harness's `VmRSS` (from
//! `/proc/PID/status`, sampled every 200 ms) against its last sample before the server
//! counted any stream;
//! (idle − first) / N is the harness's resident memory per idle stream. The server's
//! `spine_active_streams` gauge (sampled from `/metrics`) says when all are open. The
//! figures are printed; `README.md` ("Many streams from one process") quotes them.
//!
//! Opt-in (`#[ignore]`): `cargo test -p sse-harness --test many_streams -- --ignored
//! --nocapture` (`SSE_SCALE_STREAMS=N` for another N). Minutes of a two-core machine
//! and 2·N loopback sockets; without the descriptors it needs it fails naming the limit.
//!
//! The second test shows the port limit itself at a small scale, inside a network
//! namespace of its own whose `ip_local_port_range` is narrowed to 300 ports (nothing
//! in the root namespace changes): 400 clients from one source address cannot all
//! connect, and the run ends in seconds with the scenario an error naming the cause
//! (`no-local-port`) and the fix (`--source-addr`); the same run with two source
//! addresses (played first) passes. Needs root, `ip` and `sysctl`; skipped with the reason otherwise
//! (except under `CI=true`).

#[path = "support/netns.rs"]
mod netns;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use netns::{BIN, Killed, Netns, finish, skip_or_fail, unable};
use wait_timeout::ChildExt as _;

const TOKEN: &str = "many-streams-token-0123456789";
/// The longest the harness run may take.
const RUN_BOUND: Duration = Duration::from_secs(900);
/// Descriptors each process gets beyond N.
const FD_SLACK: u64 = 1000;

/// N: `SSE_SCALE_STREAMS`, else 50,000.
fn streams() -> u64 {
    std::env::var("SSE_SCALE_STREAMS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| (10..=500_000).contains(&n))
        .unwrap_or(50_000)
}

/// Raises this process's `RLIMIT_NOFILE` (hard and soft) to at least `want`; the
/// limit now in force, or why it cannot be had.
fn raise_nofile(want: u64) -> Result<u64, String> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| e.to_string())?;
    if soft >= want {
        return Ok(soft);
    }
    let hard_wanted = hard.max(want);
    setrlimit(Resource::RLIMIT_NOFILE, want, hard_wanted).map_err(|e| {
        format!(
            "RLIMIT_NOFILE: {want} descriptors needed, hard limit {hard}, raising it failed \
             ({e}): raising a hard limit needs CAP_SYS_RESOURCE (root in a container may lack \
             it); raise `ulimit -Hn` before the test, or run fewer with SSE_SCALE_STREAMS"
        )
    })?;
    Ok(want)
}

/// The size of `net.ipv4.ip_local_port_range` (28,232 when unreadable).
fn ephemeral_ports() -> u64 {
    let text =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let v: Vec<u64> = text
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    match v[..] {
        [lo, hi] if hi >= lo => hi - lo + 1,
        _ => 28_232,
    }
}

/// `VmRSS` of `pid` in bytes.
fn rss(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The server's `spine_active_streams` now (a plain GET, at most 2 s).
fn active_streams(addr: &str) -> Option<u64> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("spine_active_streams "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// What the sampler saw.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// The harness's `VmRSS` in the last sample before the server counted a stream
    /// (started, target set up, no stream yet).
    first_rss: u64,
    /// The most streams the server counted.
    peak_streams: u64,
    /// Seconds from the harness's start until the server counted all N.
    all_open_after: Option<f64>,
    /// The harness's `VmRSS` 2 s after all N were open (idle), and its peak.
    idle_rss: u64,
    peak_rss: u64,
}

/// Samples the harness's memory and the server's gauge every 200 ms until `stop`.
fn sample(
    pid: u32,
    server: String,
    n: u64,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Seen> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut seen = Seen::default();
        let mut open_at = None;
        while !stop.load(Ordering::Relaxed) {
            let mem = rss(pid).unwrap_or(0);
            seen.peak_rss = seen.peak_rss.max(mem);
            let streams = active_streams(&server).unwrap_or(0);
            if seen.peak_streams == 0 && streams == 0 {
                seen.first_rss = mem;
            }
            seen.peak_streams = seen.peak_streams.max(streams);
            if streams >= n && open_at.is_none() {
                open_at = Some(Instant::now());
                seen.all_open_after = Some(started.elapsed().as_secs_f64());
            }
            if let Some(at) = open_at
                && seen.idle_rss == 0
                && at.elapsed() >= Duration::from_secs(2)
            {
                seen.idle_rss = mem;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        seen
    })
}

/// A scenarios folder with the one scenario: `n` idle clients, then 3 events.
fn scenario(dir: &Path, n: u64) -> std::path::PathBuf {
    let d = dir.join("scenarios");
    std::fs::create_dir_all(&d).unwrap();
    let text = format!(
        "group = \"SCALE\"\nname = \"many-idle-streams\"\n\
         title = \"{n} clients hold idle streams, then every one receives 3 events\"\n\
         families = [\"delivery\"]\nrequires = [\"publish\"]\ndeadline_s = 600\n\n\
         [traffic]\nevents = 3\nrate = 1\nstart_after_ms = 20000\n\n\
         [[clients]]\nname = \"crowd\"\ncount = {n}\n"
    );
    std::fs::write(d.join("many.toml"), text).unwrap();
    d
}

/// `serve-reference` on 127.0.0.1 with room for `n` streams; it and its `ip:port`.
fn serve(dir: &Path, n: u64) -> (Killed, String) {
    let mut c = Command::new(BIN);
    c.args([
        "serve-reference",
        "--token",
        TOKEN,
        "--heartbeat-ms",
        "15000",
    ])
    .args(["--max-connections", &(n + 1000).to_string(), "--data"])
    .arg(dir.join("data"))
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut child = Killed(c.spawn().expect("serve-reference starts"));
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    (child, addr)
}

#[test]
#[ignore = "opt-in: minutes of a two-core machine, 2·N loopback sockets, and a raised RLIMIT_NOFILE; run with --ignored --nocapture"]
fn one_harness_process_holds_fifty_thousand_streams() {
    let n = streams();
    let nofile = raise_nofile(n + FD_SLACK).unwrap_or_else(|e| panic!("{e}"));
    let ports = ephemeral_ports();
    let needed = n.div_ceil(ports * 9 / 10).max(2);
    let sources: Vec<String> = (0..needed).map(|i| format!("127.0.0.{}", i + 2)).collect();
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = serve(dir.path(), n);
    let scenarios = scenario(dir.path(), n);
    let report = dir.path().join("report");
    let mut c = Command::new(BIN);
    c.args([
        "run",
        "--target",
        &format!("http://{addr}"),
        "--token",
        TOKEN,
    ])
    .args(["--color", "never", "--seed", "1", "--scenarios-dir"])
    .arg(&scenarios)
    .arg("--report-dir")
    .arg(&report)
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    for s in &sources {
        c.args(["--source-addr", s]);
    }
    let started = Instant::now();
    let mut run = Killed(c.spawn().expect("sse-harness run starts"));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample(run.0.id(), addr.clone(), n, stop.clone());
    let mut stderr = run.0.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = run
        .0
        .wait_timeout(RUN_BOUND)
        .unwrap()
        .unwrap_or_else(|| panic!("the run did not end within {RUN_BOUND:?}"));
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let seen = sampler.join().unwrap();
    let err = reader.join().unwrap();
    let summary = std::fs::read_to_string(report.join("summary.json")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&summary).unwrap_or_default();
    let verdict = v["scenarios"][0]["verdict"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    let per_stream = (seen.idle_rss.saturating_sub(seen.first_rss)) as f64 / n as f64;
    println!("\nstreams: {n}; source addresses: {sources:?} ({ports} ephemeral ports each)");
    println!(
        "RLIMIT_NOFILE: {nofile}; exit {:?}, verdict {verdict}, run took {:.0} s",
        status.code(),
        took.as_secs_f64()
    );
    println!(
        "server peak spine_active_streams: {}; all open after {:?} s",
        seen.peak_streams, seen.all_open_after
    );
    println!(
        "harness VmRSS: before any stream {:.1} MiB, idle with all open {:.1} MiB, peak {:.1} MiB",
        seen.first_rss as f64 / 1048576.0,
        seen.idle_rss as f64 / 1048576.0,
        seen.peak_rss as f64 / 1048576.0
    );
    println!(
        "harness resident memory per idle stream: {:.2} KiB ((idle − before) / N); {:.2} KiB (idle / N)",
        per_stream / 1024.0,
        seen.idle_rss as f64 / n as f64 / 1024.0
    );
    assert_eq!(status.code(), Some(0), "verdict {verdict}; stderr: {err}");
    assert_eq!(verdict, "pass", "{summary}");
    assert!(
        seen.peak_streams >= n,
        "the server held {} of {n} streams at once",
        seen.peak_streams
    );
}

/// `run` of the scenario in `scenarios` inside namespace `one` against `url`, with
/// `extra` flags: exit code, stderr, the scenario's verdict and its reason.
fn run_in(
    net: &Netns,
    url: &str,
    scenarios: &Path,
    report: &Path,
    extra: &[&str],
) -> (i32, String, String, String) {
    let mut c = net.command("one", BIN);
    c.args(["run", "--target", url, "--token", TOKEN, "--color", "never"])
        .arg("--scenarios-dir")
        .arg(scenarios)
        .arg("--report-dir")
        .arg(report)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let (code, err) = finish(
        Killed(c.spawn().expect("run starts")),
        "the run",
        Duration::from_secs(180),
    );
    let summary = std::fs::read_to_string(report.join("summary.json")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&summary).unwrap_or_default();
    let sc = &v["scenarios"][0];
    let verdict = sc["verdict"].as_str().unwrap_or("?").to_owned();
    let reason = sc["reason"].as_str().unwrap_or("").to_owned();
    (code, err, verdict, reason)
}

#[test]
#[ignore = "opt-in: makes a network namespace (root, ip, sysctl); run with --ignored --nocapture"]
fn exhausted_ports_are_an_error_naming_the_fix_and_source_addresses_lift_the_limit() {
    if let Some(reason) = unable(&["sysctl"]) {
        return skip_or_fail("many_streams", &reason);
    }
    let net = match Netns::create(&[("one", 1)]) {
        Ok(net) => net,
        Err(e) => return skip_or_fail("many_streams", &e),
    };
    net.exec(
        &net.name("one"),
        &[
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ip_local_port_range=40000 40299",
        ],
    )
    .expect("narrowing the namespace's port range");
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = netns::serve(
        &net,
        "one",
        "127.0.0.1:8080",
        TOKEN,
        &dir.path().join("data"),
        &[],
    );
    let d = dir.path().join("scenarios");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("four-hundred.toml"),
        "group = \"SCALE\"\nname = \"four-hundred\"\ntitle = \"400 clients\"\n\
         families = [\"delivery\"]\nrequires = [\"publish\"]\ndeadline_s = 60\n\n\
         [traffic]\nevents = 3\nrate = 10\n\n[[clients]]\nname = \"crowd\"\ncount = 400\n",
    )
    .unwrap();
    // Two source addresses first: the one-address run leaves its ports in TIME_WAIT
    // (60 s), which plain requests from that address would then lack.
    let (code, err, verdict, _) = run_in(
        &net,
        &url,
        &d,
        &dir.path().join("two-sources"),
        &["--source-addr", "127.0.0.2", "--source-addr", "127.0.0.3"],
    );
    println!("two source addresses: exit {code}, verdict {verdict}");
    assert_eq!((code, verdict.as_str()), (0, "pass"), "{err}");
    let started = Instant::now();
    let (code, err, verdict, reason) = run_in(&net, &url, &d, &dir.path().join("one-source"), &[]);
    let took = started.elapsed();
    println!("one source address: exit {code}, verdict {verdict}, {took:.1?}\n  reason: {reason}");
    assert_eq!(code, 2, "{err}");
    assert_eq!(verdict, "error", "{err}");
    assert!(reason.contains("no-local-port"), "{reason}");
    assert!(reason.contains("--source-addr"), "{reason}");
}
