//! The harness through a real TLS-terminating reverse proxy: Debian's nginx
//! (`targets/nginx-proxy/nginx.conf.template`) on a free loopback port, with a
//! certificate from a throwaway CA made here (rcgen), in front of a reference server
//! process, the upstream mounted under `/prefix/`. Every run targets
//! `https://127.0.0.1:PORT/prefix`, so it also proves streams and publishes both resolve
//! under the base path.
//!
//! - the whole spine suite (all but the three scenarios that must restart the target,
//!   and RESUME-ID/evicted-id, which the spine's never-evicting log skips) PASSES over https HTTP/1.1 with `--cacert` of the generated CA, and again
//!   over HTTP/2 negotiated by ALPN (`--http2`), where every cut is an `RST_STREAM` and
//!   every transcript says `h2` (so `CT-10/cut-at-random-bytes` proves that a stream
//!   reset after any body byte resumes exactly); the same scenario with
//!   `h2_cut = "goaway"` (each cut closes the whole h2 connection) passes too, and so
//!   does a group of clients sharing one h2 connection (`h2_connection = "shared"`,
//!   every stream on one TCP connection, each cut an `RST_STREAM` of its own stream);
//! - without it the run cannot start, with a TLS error naming the unknown CA; with
//!   `--insecure` it passes and the run says so;
//! - behind the buffering config (a classic production mistake) the run does not pass:
//!   nginx holds even the head of an idle stream, so no stream opens in time, and the
//!   verdict names a buffering proxy as the likely cause;
//! - behind `gzip on; gzip_types text/event-stream;` (streaming kept) every stream is
//!   gzip-encoded, and the wire scenarios and exact decoded-byte cuts still pass
//!   (`targets/nginx-proxy/BEHAVIOUR.md`);
//! - the nchan profile passes through the same proxy, in front of nginx + nchan
//!   (`targets/nchan/nchan.sh`), over https.
//!
//! Needs `nginx-light` (`targets/nchan/install.sh`, which `.ci/run` calls). Without it
//! the tests pass vacuously with a note, except under `CI=true`, where they fail.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use harness_model::{ConnEnd, HttpProtocol, Recording, RunEvent, Verdict};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use sse_harness::embedded::ReferenceProcess;
use sse_harness::{RunConfig, Selection, TargetSpec};

mod support;

/// Every wait for a process here ends by this deadline.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// In how many parts, played at once, [`the_whole_suite_passes`] plays the suite.
const SUITE_PARTS: usize = 2;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A throwaway CA and a server certificate for 127.0.0.1 and localhost, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn generate() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("sse-pki-")
            .tempdir()
            .unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "sse-harness throwaway test CA");
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut leaf =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        leaf.distinguished_name
            .push(DnType::CommonName, "sse-harness test server");
        let leaf = leaf.signed_by(&key, &ca).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        Pki { dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Waits (bounded) until 127.0.0.1:`port` accepts TCP connections.
fn wait_listening(port: u16, what: &str) {
    let until = Instant::now() + START_DEADLINE;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < until,
            "{what} not listening on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A reference server child process (stopped by pid when dropped).
struct Upstream {
    plan: ReferenceProcess,
    child: Child,
    port: u16,
}

impl Upstream {
    fn start() -> Upstream {
        let bin = Path::new(env!("CARGO_BIN_EXE_sse-harness"));
        let plan = ReferenceProcess::plan(bin, &Default::default()).unwrap();
        let child = Command::new("bash")
            .arg("-c")
            .arg(&plan.command)
            .spawn()
            .unwrap();
        let port = plan
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap();
        wait_listening(port, "the reference server");
        Upstream { plan, child, port }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How the proxy treats response bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Buffering {
    /// The streaming setup: every byte passed on at once.
    Off,
    /// The mistake: responses buffered, and the upstream's `X-Accel-Buffering: no`
    /// ignored (as a proxy that does not know the header would).
    On,
    /// Streaming, but nginx compresses event streams for clients that accept gzip
    /// (`gzip on; gzip_types text/event-stream;`), as a site-wide gzip setup does.
    Gzip,
}

impl Buffering {
    fn directives(self) -> &'static str {
        match self {
            Buffering::Off => "            proxy_buffering off;",
            Buffering::On => {
                "            proxy_buffering on;\n            proxy_ignore_headers X-Accel-Buffering;"
            }
            Buffering::Gzip => {
                "            proxy_buffering off;\n            gzip on;\n            gzip_types text/event-stream;\n            gzip_min_length 0;"
            }
        }
    }
}

/// nginx in its own temp prefix, TLS on a free loopback port, proxying `/prefix/` to
/// the upstream; stopped by the pid in its pid file when dropped.
struct Proxy {
    dir: tempfile::TempDir,
    port: u16,
}

impl Proxy {
    fn start(pki: &Pki, upstream: u16, buffering: Buffering) -> Proxy {
        let dir = tempfile::Builder::new()
            .prefix("sse-nginx-proxy-")
            .tempdir()
            .unwrap();
        for sub in ["logs", "tmp/client_body", "tmp/proxy", "tmp/fastcgi"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        for sub in ["tmp/uwsgi", "tmp/scgi"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let template =
            std::fs::read_to_string(repo().join("targets/nginx-proxy/nginx.conf.template"))
                .unwrap();
        let user =
            String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
        let mut last = String::new();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap()
                .port();
            let conf = template
                .replace("@USER@", user.trim())
                .replace("@PORT@", &port.to_string())
                .replace("@CERT@", &pki.file("server.pem").display().to_string())
                .replace("@KEY@", &pki.file("server.key").display().to_string())
                .replace("@UPSTREAM@", &format!("127.0.0.1:{upstream}"))
                .replace("@BUFFERING@", buffering.directives());
            let path = dir.path().join("nginx.conf");
            std::fs::write(&path, conf).unwrap();
            let prefix = format!("{}/", dir.path().display());
            let out = Command::new("/usr/sbin/nginx")
                .args(["-p", &prefix, "-c"])
                .arg(&path)
                .args(["-e", "logs/error.log"])
                .output()
                .unwrap();
            if out.status.success() {
                wait_listening(port, "nginx");
                return Proxy { dir, port };
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
        }
        panic!("nginx did not start: {last}");
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/prefix", self.port)
    }

    fn pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.dir.path().join("nginx.pid")).ok()?;
        text.trim().parse().ok()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        let Some(pid) = self.pid().map(nix::unistd::Pid::from_raw) else {
            return;
        };
        let _ = kill(pid, Signal::SIGTERM);
        let until = Instant::now() + START_DEADLINE;
        while kill(pid, None).is_ok() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = kill(pid, Signal::SIGKILL);
    }
}

/// Whether nginx is here; under `CI=true` it must be.
fn nginx_available() -> bool {
    let there = Path::new("/usr/sbin/nginx").exists();
    if !there {
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !in_ci,
            "CI=true but nginx is not installed: run targets/nchan/install.sh"
        );
        eprintln!("nginx not installed (targets/nchan/install.sh): skipped");
    }
    there
}

/// A run of `scenarios` against the proxy with `tls`, and whether it announced itself
/// as insecure.
fn play(
    proxy: &Proxy,
    upstream: &Upstream,
    tls: sse_wire::TlsOptions,
    scenarios: &[&str],
) -> (
    Result<sse_harness::RunOutcome, sse_harness::HarnessError>,
    bool,
) {
    play_with(proxy, upstream, tls, scenarios, false, None)
}

/// How a run over the proxy is played beyond its scenarios.
#[derive(Clone, Copy, Default)]
struct How<'a> {
    /// Streams over HTTP/2.
    http2: bool,
    /// Keep the recordings here.
    recordings: Option<&'a Path>,
    /// Take the scenarios from this folder instead of the built-in ones.
    scenarios_dir: Option<&'a Path>,
    /// Name the proxy by this host instead of 127.0.0.1 (the certificate also names
    /// `localhost`).
    host: Option<&'a str>,
}

/// [`play`], over HTTP/2 when `http2`, keeping the recordings in `recordings`.
fn play_with(
    proxy: &Proxy,
    upstream: &Upstream,
    tls: sse_wire::TlsOptions,
    scenarios: &[&str],
    http2: bool,
    recordings: Option<&Path>,
) -> (
    Result<sse_harness::RunOutcome, sse_harness::HarnessError>,
    bool,
) {
    let how = How {
        http2,
        recordings,
        scenarios_dir: None,
        host: None,
    };
    play_how(proxy, upstream, tls, scenarios, how)
}

/// [`play`] as `how` says.
fn play_how(
    proxy: &Proxy,
    upstream: &Upstream,
    tls: sse_wire::TlsOptions,
    scenarios: &[&str],
    how: How<'_>,
) -> (
    Result<sse_harness::RunOutcome, sse_harness::HarnessError>,
    bool,
) {
    let seed = support::seed("tls_proxy", false);
    let url = match how.host {
        Some(h) => proxy.url().replace("127.0.0.1", h),
        None => proxy.url(),
    };
    let mut cfg = RunConfig::new(TargetSpec::Url {
        url,
        token: Some(upstream.plan.token.clone()),
    });
    cfg.tls = tls;
    let http2 = how.http2;
    cfg.http2 = http2;
    cfg.recordings = how.recordings.map(Path::to_path_buf);
    cfg.seed = Some(seed);
    cfg.replay_prefix = Some(support::replay_prefix("tls_proxy", seed));
    cfg.selection = Selection {
        dir: how.scenarios_dir.map(Path::to_path_buf),
        globs: scenarios.iter().copied().map(globset::escape).collect(),
    };
    let mut insecure = false;
    let outcome = support::block_on(sse_harness::run(cfg, &mut |ev| {
        if let RunEvent::RunStarted { meta, .. } = ev {
            insecure = meta.insecure_tls;
            let asked = if http2 {
                HttpProtocol::H2
            } else {
                HttpProtocol::Http11
            };
            assert_eq!(meta.protocol, asked, "the run header names the protocol");
        }
    }))
    .unwrap();
    (outcome, insecure)
}

/// Every scenario's recording in `dir`, by file name.
fn recordings(dir: &Path) -> Vec<(String, Recording)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let rec: Recording = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        out.push((
            path.file_name().unwrap().to_string_lossy().into_owned(),
            rec,
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Asserts that every connection that got a response head spoke `protocol`, and
/// returns how many cuts the harness made in the recording named `cutter`.
fn every_connection_spoke(
    dir: &Path,
    played: usize,
    protocol: HttpProtocol,
    cutter: &str,
) -> usize {
    let recs = recordings(dir);
    assert_eq!(recs.len(), played, "one recording per scenario played");
    let mut cuts = 0;
    for (name, rec) in &recs {
        let conns: Vec<_> = rec
            .transcripts
            .iter()
            .flat_map(|t| &t.connections)
            .filter(|c| c.status.is_some())
            .collect();
        for c in &conns {
            assert_eq!(c.protocol, protocol, "{name}: connection {}", c.index);
        }
        if name.contains(cutter) {
            cuts += conns
                .iter()
                .filter(|c| matches!(c.end, ConnEnd::Cut { .. }))
                .count();
        }
    }
    cuts
}

/// Requires every scenario of `outcome` to PASS (or be skipped), naming each that did not.
fn all_pass(outcome: &sse_harness::RunOutcome) {
    let failed: Vec<String> = outcome
        .results
        .iter()
        .filter_map(|r| support::expect_pass(r, outcome.seed, 5).err())
        .map(|e| format!("{e:?}"))
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// Plays the whole spine suite through nginx with the generated CA, over HTTP/2 or
/// HTTP/1.1, and requires every scenario to PASS (the three scenarios that must restart
/// the target are skipped: the proxy's upstream is not the harness's to kill; so is
/// RESUME-ID/evicted-id, the spine never evicts); the recordings, and how many
/// scenarios were played.
///
/// The suite is played in [`SUITE_PARTS`] parts at once, each through its own reference
/// server and nginx (so no part sees another's connections, jobs or metrics): its
/// scenarios mostly wait, and one after the other they took about 200 s.
fn the_whole_suite_passes(http2: bool) -> (tempfile::TempDir, usize) {
    let pki = Pki::generate();
    let tls = sse_wire::TlsOptions {
        cacert: Some(pki.file("ca.pem")),
        ..Default::default()
    };
    let builtin: Vec<String> = sse_harness::scenario::builtin()
        .unwrap()
        .iter()
        .map(|sc| sc.id())
        .collect();
    // Not played here: NETWORK/lost-publish-acks. Its reset_peer windows on the
    // publisher path also reset TLS handshakes, so how many writes get through (and so
    // whether each planned subscriber cut is reached) is not the scenario's to plan
    // over https; it is judged over plain HTTP (conformance, mutations).
    let all: Vec<&str> = builtin
        .iter()
        .map(String::as_str)
        .filter(|id| *id != "NETWORK/lost-publish-acks")
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let parts: Vec<Vec<&str>> = (0..SUITE_PARTS)
        .map(|k| all.iter().copied().skip(k).step_by(SUITE_PARTS).collect())
        .collect();
    let outcomes: Vec<sse_harness::RunOutcome> = std::thread::scope(|s| {
        let runs: Vec<_> = parts
            .iter()
            .map(|part| {
                let (pki, tls, dir) = (&pki, tls.clone(), dir.path());
                s.spawn(move || {
                    let upstream = Upstream::start();
                    let proxy = Proxy::start(pki, upstream.port, Buffering::Off);
                    let (outcome, insecure) =
                        play_with(&proxy, &upstream, tls, part, http2, Some(dir));
                    assert!(!insecure);
                    outcome.unwrap()
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let mut played = 0;
    for (outcome, part) in outcomes.iter().zip(&parts) {
        assert_eq!(outcome.results.len(), part.len());
        all_pass(outcome);
        played += outcome
            .results
            .iter()
            .filter(|r| !matches!(r.verdict, Verdict::Skipped { .. }))
            .count();
    }
    // Skipped: what must restart the target, the evicted-id probe (the spine's log
    // never evicts, so its profile has no [resume] eviction), and the browser scenarios
    // (Chromium trusts the system's roots, not the generated CA).
    let unplayable = all
        .iter()
        .filter(|id| {
            id.starts_with("DURABILITY")
                || id.starts_with("BROWSER/")
                || matches!(**id, "RESUME-ID/restart-id" | "RESUME-ID/evicted-id")
        })
        .count();
    assert_eq!(played, all.len() - unplayable, "only {played} played");
    (dir, played)
}

#[test]
fn the_spine_suite_passes_through_nginx_over_https_with_the_generated_ca() {
    if !nginx_available() {
        return;
    }
    let (dir, played) = the_whole_suite_passes(false);
    // nginx offers h2 too; a client that offers only http/1.1 gets HTTP/1.1.
    every_connection_spoke(
        dir.path(),
        played,
        HttpProtocol::Http11,
        "cut-at-random-bytes",
    );
}

#[test]
fn an_unknown_ca_is_a_clear_tls_error_and_insecure_passes_and_says_so() {
    if !nginx_available() {
        return;
    }
    let pki = Pki::generate();
    let upstream = Upstream::start();
    let proxy = Proxy::start(&pki, upstream.port, Buffering::Off);
    let one = &["CT-07/reconnect-with-last-event-id"];
    let (outcome, _) = play(&proxy, &upstream, Default::default(), one);
    let e = outcome.expect_err("an unknown CA must stop the run");
    let text = format!("{e}");
    assert!(
        text.contains("UnknownIssuer") || text.contains("no system root certificates"),
        "{text}"
    );
    assert!(text.contains("127.0.0.1"), "{text}");

    let tls = sse_wire::TlsOptions {
        insecure: true,
        ..Default::default()
    };
    let (outcome, insecure) = play(&proxy, &upstream, tls, one);
    let outcome = outcome.unwrap();
    assert!(insecure, "the run must say its certificate went unverified");
    if let Err(e) = support::expect_pass(&outcome.results[0], outcome.seed, 5) {
        panic!("{e:?}");
    }
}

#[test]
fn a_buffering_proxy_is_caught() {
    if !nginx_available() {
        return;
    }
    let pki = Pki::generate();
    let upstream = Upstream::start();
    let proxy = Proxy::start(&pki, upstream.port, Buffering::On);
    let tls = sse_wire::TlsOptions {
        cacert: Some(pki.file("ca.pem")),
        ..Default::default()
    };
    let (outcome, _) = play(&proxy, &upstream, tls, &["HEARTBEAT/idle-events-stream"]);
    let outcome = outcome.unwrap();
    let r = &outcome.results[0];
    // nginx holds even the response head of a buffered idle stream (behind TLS, until
    // its first buffer fills), so no stream opens within the head deadline: the run
    // cannot pass, and it names buffering as the likely cause. (Heartbeats that do get
    // through, held and then released in one burst, are a `heartbeat.interval` finding
    // naming buffering: a checker case in harness-checks.)
    assert!(
        r.verdict != Verdict::Pass && outcome.exit_code() != 0,
        "a buffering proxy must not pass: {:?}",
        r.verdict
    );
    let reason = r.verdict.reason().unwrap_or_default();
    assert!(reason.contains("no complete response head"), "{reason}");
    assert!(reason.contains("buffers responses"), "{reason}");
}

/// Scenarios of the nchan profile played through the TLS proxy.
const NCHAN_SCENARIOS: &[&str] = &[
    "CT-07/reconnect-with-last-event-id",
    "CT-10/cut-at-random-bytes",
    "CT-10/reset-instead-of-close",
    "CT-12/ten-clients-at-once",
    "CONTENT/line-breaks-and-spaces",
];

/// nginx + nchan (`targets/nchan/nchan.sh`) in its own temp prefix, stopped by the
/// script (by the pid in its pid file) when dropped.
struct Nchan {
    dir: tempfile::TempDir,
    port: u16,
}

impl Nchan {
    fn start() -> Nchan {
        let dir = tempfile::Builder::new()
            .prefix("sse-nchan-tls-")
            .tempdir()
            .unwrap();
        let out = Command::new("bash")
            .arg(repo().join("targets/nchan/nchan.sh"))
            .arg("start")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nchan.sh start failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let port = url.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap();
        Nchan { dir, port }
    }
}

impl Drop for Nchan {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("targets/nchan/nchan.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

#[test]
fn the_nchan_profile_passes_through_nginx_over_https() {
    if !nginx_available() {
        return;
    }
    if !Path::new("/usr/lib/nginx/modules/ngx_nchan_module.so").exists() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI=true but nchan is not installed: run targets/nchan/install.sh"
        );
        return;
    }
    let pki = Pki::generate();
    let nchan = Nchan::start();
    let proxy = Proxy::start(&pki, nchan.port, Buffering::Off);
    let seed = support::seed("tls_proxy", false);
    let mut cfg = RunConfig::new(TargetSpec::Url {
        url: proxy.url(),
        token: None,
    });
    cfg.profile = "nchan".into();
    cfg.tls = sse_wire::TlsOptions {
        cacert: Some(pki.file("ca.pem")),
        ..Default::default()
    };
    cfg.seed = Some(seed);
    cfg.replay_prefix = Some(support::replay_prefix("tls_proxy", seed));
    cfg.selection = Selection {
        dir: None,
        globs: NCHAN_SCENARIOS
            .iter()
            .copied()
            .map(globset::escape)
            .collect(),
    };
    let outcome = support::block_on(sse_harness::run(cfg, &mut |_| {}))
        .unwrap()
        .unwrap();
    assert_eq!(outcome.results.len(), NCHAN_SCENARIOS.len());
    all_pass(&outcome);
}

#[test]
fn the_spine_suite_passes_through_nginx_over_https_http2() {
    if !nginx_available() {
        return;
    }
    let (dir, played) = the_whole_suite_passes(true);
    // Every stream went over h2 (ALPN), and CT-10's byte cutter cut (RST_STREAM) and
    // resumed exactly many times: the scenario's resume and delivery checks passed.
    let cuts = every_connection_spoke(dir.path(), played, HttpProtocol::H2, "cut-at-random-bytes");
    assert!(
        cuts >= 50,
        "only {cuts} RST_STREAM cuts in CT-10/cut-at-random-bytes"
    );
}

/// `CT-10/cut-at-random-bytes` renamed `…-{suffix}`, its client group replaced by
/// `group`, played over HTTP/2 through nginx: it must PASS; its recording.
fn cut_at_random_bytes_over_h2(suffix: &str, group: &str) -> Recording {
    let pki = Pki::generate();
    let upstream = Upstream::start();
    let proxy = Proxy::start(&pki, upstream.port, Buffering::Off);
    let tls = sse_wire::TlsOptions {
        cacert: Some(pki.file("ca.pem")),
        ..Default::default()
    };
    let scenarios = tempfile::tempdir().unwrap();
    let original =
        std::fs::read_to_string(repo().join("scenarios/ct10/cut-at-random-bytes.toml")).unwrap();
    let old_group =
        "[[clients]]\nname = \"byte-cutter\"\ncuts = { random_bytes = 120, span_bytes = 3000 }";
    assert!(original.contains(old_group), "the scenario file changed");
    let text = original
        .replace(
            "name = \"cut-at-random-bytes\"",
            &format!("name = \"cut-at-random-bytes-{suffix}\""),
        )
        .replace(old_group, group);
    std::fs::write(scenarios.path().join("variant.toml"), text).unwrap();
    let kept = tempfile::tempdir().unwrap();
    let how = How {
        http2: true,
        recordings: Some(kept.path()),
        scenarios_dir: Some(scenarios.path()),
        host: None,
    };
    let id = format!("CT-10/cut-at-random-bytes-{suffix}");
    let (outcome, _) = play_how(&proxy, &upstream, tls, &[id.as_str()], how);
    let outcome = outcome.unwrap();
    if let Err(e) = support::expect_pass(&outcome.results[0], outcome.seed, 5) {
        panic!("{e:?}");
    }
    recordings(kept.path()).remove(0).1
}

/// The connections of `rec` that got a response head, and how many were cut.
fn answered_and_cut(rec: &Recording) -> (Vec<&harness_model::Connection>, usize) {
    let conns: Vec<_> = rec
        .transcripts
        .iter()
        .flat_map(|t| &t.connections)
        .filter(|c| c.status.is_some())
        .collect();
    assert!(conns.iter().all(|c| c.protocol == HttpProtocol::H2));
    let cuts = conns
        .iter()
        .filter(|c| matches!(c.end, ConnEnd::Cut { .. }))
        .count();
    (conns, cuts)
}

#[test]
fn goaway_cuts_over_http2_resume_exactly_too() {
    if !nginx_available() {
        return;
    }
    // Every cut closes the whole h2 connection.
    let rec = cut_at_random_bytes_over_h2(
        "goaway",
        "[[clients]]\nname = \"byte-cutter\"\ncuts = { random_bytes = 40, span_bytes = 3000, h2_cut = \"goaway\" }",
    );
    let (_, cuts) = answered_and_cut(&rec);
    assert!(cuts >= 20, "only {cuts} connection cuts");
}

#[test]
fn clients_sharing_one_h2_connection_resume_exactly_after_stream_cuts() {
    if !nginx_available() {
        return;
    }
    // Four byte-cutters multiplexed over one connection: each cut is an RST_STREAM of
    // one stream, and the connection carries on for the others.
    let rec = cut_at_random_bytes_over_h2(
        "shared",
        "[[clients]]\nname = \"byte-cutter\"\ncount = 4\nh2_connection = \"shared\"\ncuts = { random_bytes = 25, span_bytes = 3000 }",
    );
    let (conns, cuts) = answered_and_cut(&rec);
    assert!(cuts >= 60, "only {cuts} stream cuts");
    let ports: std::collections::BTreeSet<_> = conns.iter().map(|c| c.local_port).collect();
    assert_eq!(
        ports.len(),
        1,
        "every stream on one TCP connection: {ports:?}"
    );
    assert!(ports.iter().all(Option::is_some));
}

/// What nginx really does with `gzip on; gzip_types text/event-stream;` in front of a
/// streaming upstream (`targets/nginx-proxy/BEHAVIOUR.md`): it compresses every stream
/// for a client that sends `Accept-Encoding: gzip` (as browsers and the harness do), and
/// with `proxy_buffering off` it flushes the compressor at each upstream write, so every
/// event is decodable at once: the wire scenarios pass, with every stream gzip-encoded
/// and cuts at exact decoded bytes still resuming exactly.
#[test]
fn behind_nginx_gzip_every_stream_is_compressed_and_still_passes() {
    if !nginx_available() {
        return;
    }
    let pki = Pki::generate();
    let upstream = Upstream::start();
    let proxy = Proxy::start(&pki, upstream.port, Buffering::Gzip);
    let tls = sse_wire::TlsOptions {
        cacert: Some(pki.file("ca.pem")),
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let scenarios = [
        "WIRE/idle-open",
        "WIRE/trickle",
        "CT-10/cut-at-random-bytes",
    ];
    let (outcome, _) = play_with(&proxy, &upstream, tls, &scenarios, false, Some(dir.path()));
    let outcome = outcome.unwrap();
    assert_eq!(outcome.results.len(), scenarios.len());
    all_pass(&outcome);
    let (mut streams, mut smaller) = (0, 0);
    for (name, rec) in recordings(dir.path()) {
        for t in &rec.transcripts {
            for c in t.connections.iter().filter(|c| c.status == Some(200)) {
                assert_eq!(
                    c.headers.get("content-encoding").map(String::as_str),
                    Some("gzip"),
                    "{name} {} conn {}: nginx compresses every stream",
                    t.client,
                    c.index
                );
                streams += 1;
                smaller += usize::from(c.wire_bytes < c.body_bytes);
            }
        }
    }
    // The decoded offsets are what frames and cuts are given in; on the wire the
    // longer streams are smaller (the trickle's and the cutter's, mostly).
    assert!(
        streams >= 10 && smaller * 2 > streams,
        "{smaller} of {streams} smaller on the wire"
    );
}

/// A scenario with toxics on both paths, played through the toxic proxies in front of
/// nginx over https (HTTP/2 by ALPN when `http2`) with the proxy named `host`: it must
/// PASS, every stream must have gone through the subscriber proxy (its local port is
/// in the proxy's log) and the publishes through the publisher proxy, each toxic must
/// have acted, and the TLS handshakes (SNI, certificate for `host`) and `Host` must
/// have named the target, or nothing would have answered.
fn toxics_over_tls(http2: bool, host: &str) {
    let pki = Pki::generate();
    let upstream = Upstream::start();
    let proxy = Proxy::start(&pki, upstream.port, Buffering::Off);
    let tls = sse_wire::TlsOptions {
        cacert: Some(pki.file("ca.pem")),
        ..Default::default()
    };
    let scenarios = tempfile::tempdir().unwrap();
    std::fs::write(
        scenarios.path().join("toxic.toml"),
        r#"group = "NETWORK"
name = "toxic-tls"
title = "toxics on both paths over TLS"
families = ["resume", "delivery", "framing"]
requires = ["publish", "resume"]
deadline_s = 40

[traffic]
events = 300
rate = 150

[[clients]]
name = "through"
count = 2
cuts = { random_events = 4, span_events = 60 }

[[toxics]]
path = "subscriber"
kind = "latency"
latency = 30
jitter = 10

[[toxics]]
path = "subscriber"
kind = "slicer"
average_size = 64
size_variation = 32
delay = 100

[[toxics]]
path = "publisher"
kind = "latency"
stream = "upstream"
latency = 5
"#,
    )
    .unwrap();
    let kept = tempfile::tempdir().unwrap();
    let how = How {
        http2,
        recordings: Some(kept.path()),
        scenarios_dir: Some(scenarios.path()),
        host: Some(host),
    };
    let (outcome, _) = play_how(&proxy, &upstream, tls, &["NETWORK/toxic-tls"], how);
    let outcome = outcome.unwrap();
    if let Err(e) = support::expect_pass(&outcome.results[0], outcome.seed, 5) {
        panic!("{e:?}");
    }
    let rec = recordings(kept.path()).remove(0).1;
    let sub = rec.network.subscriber.as_ref().expect("a subscriber proxy");
    let publ = rec.network.publisher.as_ref().expect("a publisher proxy");
    let ports: std::collections::BTreeSet<u16> = sub
        .log
        .events
        .iter()
        .filter_map(|e| match e.action {
            harness_model::network::Action::Opened { client } => Some(client.port()),
            _ => None,
        })
        .collect();
    let (conns, cuts) = if http2 {
        answered_and_cut(&rec)
    } else {
        let conns: Vec<_> = rec
            .transcripts
            .iter()
            .flat_map(|t| &t.connections)
            .filter(|c| c.status.is_some())
            .collect();
        let cuts = conns
            .iter()
            .filter(|c| matches!(c.end, ConnEnd::Cut { .. }))
            .count();
        (conns, cuts)
    };
    assert!(cuts >= 4, "only {cuts} cuts");
    for c in &conns {
        let port = c.local_port.expect("a local port");
        assert!(
            ports.contains(&port),
            "stream on port {port} bypassed the proxy"
        );
    }
    assert!(
        publ.log.events.iter().any(|e| e.toxic.is_some()),
        "the publisher proxy never acted"
    );
}

#[test]
fn toxic_proxies_relay_https_and_keep_the_target_name() {
    if !nginx_available() {
        return;
    }
    toxics_over_tls(false, "127.0.0.1");
    toxics_over_tls(false, "localhost");
}

#[test]
fn toxic_proxies_relay_https_http2() {
    if !nginx_available() {
        return;
    }
    toxics_over_tls(true, "localhost");
}
