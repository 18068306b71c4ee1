//! Real browsers as clients: every `BROWSER/*` scenario played against a fresh
//! embedded reference server (which allows this process's browser page origin), its
//! `EventSource`s in headless Chromium. A pass is not enough: each trial reads the
//! scenario's recording back and requires evidence that the browsers did what the
//! scenario is about:
//!
//! - every browser that reads opened its stream and received every write it was owed,
//!   as many as the byte-exact client beside it;
//! - in `resume-after-reset`, `idle-frames-keep-the-cursor` and
//!   `same-origin-through-the-relay`, every browser was cut and reconnected by itself, each
//!   wait from a cut to the next `open` within the server's `retry:` (less a little,
//!   more the time a loaded machine takes), and each reconnection carried the id of
//!   the last data event before it;
//! - in `idle-frames-keep-the-cursor`, id-less heartbeats followed a data event (and
//!   the resume above still came from that data event's id);
//! - a browser the server closes with `connection_close` and an end
//!   (`connection-close-then-end`, a cursor above the head) comes back after `retry:`
//!   each time, and is closed the same way each time, never given data;
//! - a browser refused on purpose (`wrong-token-stops-for-good`) stopped for good
//!   after one attempt;
//! - in `task-stream-to-its-end`, every browser read the job's events (as many as the
//!   byte-exact reader) on its first connection, then reconnected by itself after
//!   `retry:` with the terminal event's id: against the default server it is closed
//!   again each time, never given data; against the `finished-task-204` variant (a
//!   second trial) that reconnection is answered 204 and the browser stops for good;
//! - the contracts browsers cannot be judged on are listed in the result's facts;
//! - against a reference server that serves no CORS at all (started without
//!   `--allow-origin`, a profile with `[browser] cors = "none"`), the pages read
//!   through the harness's same-origin relay and pass `resume-after-reset`, while the
//!   foreign page of `cors-for-allowed-origins-only` is blocked and stops for good;
//! - with a browser that takes 11 s to start (`SSE_HARNESS_CHROMIUM` naming a wrapper
//!   that sleeps first), `idle-frames-keep-the-cursor` and `task-stream-to-its-end`
//!   still pass with the same evidence: the start counts against neither the cuts
//!   (on the live clock) nor the browsers' stall window.
//!
//! Without Chromium (Debian `chromium-headless-shell`) the trials are ignored with a
//! notice, except under `CI=true`, where that is a failure (`.ci/run` installs it).

mod support;

use harness_model::{Agent, FrameKind, Recording, Transcript, Verdict};
use libtest_mimic::{Arguments, Failed, Trial};
use reference_server::variants::{Variant, VariantSet};
use sse_harness::embedded::ReferenceProcess;
use sse_harness::scenario;
use sse_harness::{RunConfig, TargetSpec};

/// How much sooner than `retry:` a browser may reconnect (timer granularity).
const EARLY_MS: u64 = 100;
/// How much later than `retry:` a browser may reconnect on a loaded machine.
const LATE_MS: u64 = 3000;

fn data_frames(t: &Transcript) -> usize {
    t.connections
        .iter()
        .flat_map(|c| &c.frames)
        .filter(|f| matches!(f.kind, FrameKind::Data(_)))
        .count()
}

/// The scenario whose browsers read a task stream to its end.
const TASK_TO_ITS_END: &str = "BROWSER/task-stream-to-its-end";

/// `task-stream-to-its-end`: each browser read the job on its first connection, then
/// came back after `retry:` with the terminal id, and either stopped for good at a 204
/// (`stops`) or was closed again and again without data.
fn task_to_its_end(rec: &Recording, browsers: &[&Transcript], stops: bool) -> Result<(), String> {
    let reader = rec
        .transcripts
        .iter()
        .find(|t| t.agent == Agent::Wire)
        .ok_or("no byte-exact reader")?;
    let retry = server_retry(reader)?;
    for b in browsers {
        let (first, rest) = b.connections.split_first().ok_or("no connection")?;
        let read = first
            .frames
            .iter()
            .filter(|f| matches!(f.kind, FrameKind::Data(_)))
            .count();
        let terminal = first
            .frames
            .iter()
            .filter(|f| matches!(f.kind, FrameKind::Data(_)))
            .filter_map(|f| f.id.clone())
            .next_back();
        let later_data = rest
            .iter()
            .flat_map(|c| &c.frames)
            .any(|f| matches!(f.kind, FrameKind::Data(_)));
        if first.status.is_none() || read == 0 || read != data_frames(reader) || later_data {
            return Err(format!(
                "{}: expected the job's {} events on the first connection and none after, saw {read} then data later: {later_data}",
                b.client,
                data_frames(reader)
            ));
        }
        let (want, ok) = if stops {
            let ok = rest.len() == 1 && rest[0].status.is_none() && b.gave_up_us.is_some();
            ("one more attempt, answered 204, and a stop for good", ok)
        } else {
            let ok = rest.len() >= 2
                && rest.iter().all(|c| c.status.is_some())
                && b.gave_up_us.is_none();
            (
                "at least two more connections, each opened and closed, and no stop",
                ok,
            )
        };
        if !ok {
            return Err(format!(
                "{}: expected {want}; saw {} attempts after the first ({} opened), gave up: {:?}",
                b.client,
                rest.len(),
                rest.iter().filter(|c| c.status.is_some()).count(),
                b.gave_up_us
            ));
        }
        for w in b.connections.windows(2) {
            let waited = w[1].opened_us.saturating_sub(w[0].ended_us) / 1000;
            if waited + EARLY_MS < retry || waited > retry + LATE_MS {
                return Err(format!(
                    "{} conn {}: came back {waited} ms after the end; retry: {retry}",
                    b.client, w[1].index
                ));
            }
            if w[1].status.is_some() && w[1].cursor != terminal {
                return Err(format!(
                    "{} conn {}: resumed from {:?}, the terminal id was {terminal:?}",
                    b.client, w[1].index, w[1].cursor
                ));
            }
        }
    }
    Ok(())
}

/// The server's `retry:` as the byte-exact client `wire` saw it first.
fn server_retry(wire: &Transcript) -> Result<u64, String> {
    wire.connections
        .iter()
        .find_map(|c| c.retries.first().map(|(_, ms)| *ms))
        .ok_or_else(|| format!("the byte-exact client {} saw no retry:", wire.client))
}

/// The evidence every browser scenario needs, then the scenario's own.
fn judge_recording(id: &str, rec: &Recording, stops: bool) -> Result<(), String> {
    let wire = rec
        .transcripts
        .iter()
        .find(|t| t.agent == Agent::Wire)
        .ok_or("no byte-exact client beside the browsers")?;
    let browsers: Vec<&Transcript> = rec
        .transcripts
        .iter()
        .filter(|t| t.agent == Agent::Browser)
        .collect();
    if browsers.is_empty() {
        return Err("no browser transcript".into());
    }
    if id == TASK_TO_ITS_END {
        return task_to_its_end(rec, &browsers, stops);
    }
    for b in &browsers {
        let opened = b.connections.iter().filter(|c| c.status.is_some()).count();
        if rec.expect.browser_loops.contains(&b.client) {
            closed_again_and_again(wire, b)?;
            continue;
        }
        if rec.expect.browser_stops.contains(&b.client) {
            if b.gave_up_us.is_none() || opened > 0 || b.connections.len() != 1 {
                return Err(format!(
                    "{}: expected one refused attempt and a stop for good, saw {} attempts, {opened} opened, gave up: {:?}",
                    b.client,
                    b.connections.len(),
                    b.gave_up_us
                ));
            }
            continue;
        }
        if opened == 0 || data_frames(b) < data_frames(wire).min(rec.acks.len()) {
            return Err(format!(
                "{}: {opened} connections opened, {} data events (the byte-exact client: {}, acks: {})",
                b.client,
                data_frames(b),
                data_frames(wire),
                rec.acks.len()
            ));
        }
    }
    if CUT.contains(&id) {
        reconnections(wire, &browsers)?;
    }
    if id == "BROWSER/idle-frames-keep-the-cursor" {
        idle_frames(&browsers)?;
    }
    Ok(())
}

/// A browser the server answers with `connection_close` and an end, each time: every
/// connection opened, carried `connection_close` and no data, and the browser came
/// back after `retry:` (the spine gives a browser no way to stop but the page's own
/// `close()`; a 204 would stop it for good).
fn closed_again_and_again(wire: &Transcript, b: &Transcript) -> Result<(), String> {
    let retry = server_retry(wire)?;
    if b.connections.len() < 3 || b.gave_up_us.is_some() {
        return Err(format!(
            "{}: expected at least 3 connections, each closed by the server, saw {} (gave up: {:?})",
            b.client,
            b.connections.len(),
            b.gave_up_us
        ));
    }
    let ended = b.connections.len() - 1;
    for c in &b.connections[..ended] {
        let closed = c.frames.iter().any(|f| {
            matches!(&f.kind, FrameKind::Lifecycle { name, fields } if name == "connection_close" && fields["reason"] == "cursor_ahead")
        });
        let data = c
            .frames
            .iter()
            .any(|f| matches!(f.kind, FrameKind::Data(_)));
        if c.status.is_none() || !closed || data || c.cursor.is_some() {
            return Err(format!(
                "{} conn {}: expected open, connection_close cursor_ahead, no data, no Last-Event-ID; saw {:?}",
                b.client,
                c.index,
                c.frames.iter().map(|f| &f.event).collect::<Vec<_>>()
            ));
        }
    }
    for w in b.connections.windows(2) {
        let waited = w[1].opened_us.saturating_sub(w[0].ended_us) / 1000;
        if waited + EARLY_MS < retry || waited > retry + LATE_MS {
            return Err(format!(
                "{} conn {}: came back {waited} ms after the end; retry: {retry}",
                b.client, w[1].index
            ));
        }
    }
    Ok(())
}

/// The scenarios whose browsers are cut by the network and must reconnect by themselves.
const CUT: &[&str] = &[
    "BROWSER/resume-after-reset",
    "BROWSER/idle-frames-keep-the-cursor",
    "BROWSER/same-origin-through-the-relay",
];

/// Every browser saw id-less frames (heartbeats) after a data event, its cursor not
/// moved by them (a frame's id is recorded only where it moved the cursor); the
/// resumes judged by [`reconnections`] came from the last data id all the same.
fn idle_frames(browsers: &[&Transcript]) -> Result<(), String> {
    for b in browsers {
        let kept = b.connections.iter().any(|c| {
            let first_data = c
                .frames
                .iter()
                .position(|f| matches!(f.kind, FrameKind::Data(_)));
            first_data.is_some_and(|i| {
                c.frames[i + 1..]
                    .iter()
                    .any(|f| matches!(f.kind, FrameKind::Heartbeat { .. }) && f.id.is_none())
            })
        });
        if !kept {
            return Err(format!(
                "{}: no id-less heartbeat after a data event on any connection",
                b.client
            ));
        }
    }
    Ok(())
}

/// Every browser reconnected by itself after `retry:`, with the last data id it saw.
fn reconnections(wire: &Transcript, browsers: &[&Transcript]) -> Result<(), String> {
    let retry = server_retry(wire)?;
    for b in browsers {
        let opened: Vec<_> = b
            .connections
            .iter()
            .filter(|c| c.status.is_some())
            .collect();
        if opened.len() < 2 {
            return Err(format!("{} was never cut and reconnected", b.client));
        }
        for w in b.connections.windows(2) {
            let (before, after) = (&w[0], &w[1]);
            if before.status.is_none() || after.status.is_none() {
                continue;
            }
            let waited = after.opened_us.saturating_sub(before.ended_us) / 1000;
            if waited + EARLY_MS < retry || waited > retry + LATE_MS {
                return Err(format!(
                    "{} conn {}: reconnected {waited} ms after the cut; retry: {retry}",
                    b.client, after.index
                ));
            }
            let last_data_id = b.connections[..=before.index as usize]
                .iter()
                .flat_map(|c| &c.frames)
                .filter(|f| matches!(f.kind, FrameKind::Data(_)))
                .filter_map(|f| f.id.clone())
                .next_back();
            if after.cursor != last_data_id {
                return Err(format!(
                    "{} conn {}: resumed from {:?}, the last data id before it was {last_data_id:?}",
                    b.client, after.index, after.cursor
                ));
            }
        }
    }
    Ok(())
}

async fn play(id: String, variant: Option<Variant>, seed: u64) -> Result<(), Failed> {
    let mut cfg = RunConfig::new(TargetSpec::Embedded {
        faults: Default::default(),
    });
    cfg.variants = VariantSet::new(variant);
    let stops = variant == Some(Variant::FinishedTask204);
    play_with(cfg, &id, seed, stops, "").await
}

/// Plays `id` with `cfg`, requires a pass with the browsers' evidence (`stops`: the
/// task stream's browsers must stop for good); `how` says how the target was set up.
async fn play_with(
    mut cfg: RunConfig,
    id: &str,
    seed: u64,
    stops: bool,
    how: &str,
) -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    cfg.recordings = Some(dir.path().to_path_buf());
    cfg.replay_prefix = Some(support::replay_prefix("browser", seed));
    let r = support::play(cfg, id, seed).await?;
    if let Verdict::Skipped { reason } = &r.verdict {
        return Err(format!("{id}{how} skipped although Chromium is here: {reason}").into());
    }
    support::expect_pass(&r, seed, 20)?;
    if !r.facts.contains_key("browser_not_judged") {
        return Err(format!("{id}: the contracts not judged on browsers are not listed").into());
    }
    let file = dir.path().join(format!("{}.json", id.replace('/', "_")));
    let rec: Recording = serde_json::from_slice(&std::fs::read(&file).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    judge_recording(id, &rec, stops).map_err(|e| format!("{id}{how} (seed {seed}): {e}").into())
}

/// The scenarios played with a browser that takes [`SLOW_START_S`] to start.
const SLOW_START: &[&str] = &["BROWSER/idle-frames-keep-the-cursor", TASK_TO_ITS_END];
/// How long the slow browser waits before Chromium starts, in seconds: longer than
/// the scenario's cuts are from its start (10 s at most), and than the browsers' 10 s
/// stall window.
const SLOW_START_S: u32 = 11;

/// `id` played by the `sse-harness` binary (the embedded reference server) with
/// `SSE_HARNESS_CHROMIUM` naming a wrapper that sleeps [`SLOW_START_S`] before it runs
/// Chromium: the start must not count against the scenario (the cuts count from live
/// publishing, the stall window from the page's first report), so it passes with the
/// same evidence as a quick start.
fn play_slow_start(id: &str, seed: u64) -> Result<(), Failed> {
    use std::os::unix::fs::PermissionsExt as _;
    let chromium = sse_harness::browser::chromium().ok_or("no Chromium")?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let wrapper = dir.path().join("slow-chromium");
    let script = format!(
        "#!/bin/sh\nsleep {SLOW_START_S}\nexec '{}' \"$@\"\n",
        chromium.display()
    );
    std::fs::write(&wrapper, script).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let report = dir.path().join("report");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sse-harness"))
        .args(["run", "--keep-recordings", "--scenario", id, "--seed"])
        .arg(seed.to_string())
        .arg("--report-dir")
        .arg(&report)
        .env("SSE_HARNESS_CHROMIUM", &wrapper)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{id} with a browser slow to start (seed {seed}): exit {:?}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let file = report
        .join("recordings")
        .join(format!("{}.json", id.replace('/', "_")));
    let rec: Recording = serde_json::from_slice(&std::fs::read(&file).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    judge_recording(id, &rec, false)
        .map_err(|e| format!("{id} with a browser slow to start (seed {seed}): {e}").into())
}

/// The scenarios played against a server that serves no CORS.
const NO_CORS: &[&str] = &[
    "BROWSER/resume-after-reset",
    "BROWSER/cors-for-allowed-origins-only",
];

/// `id` against a reference server started without `--allow-origin`, with the spine
/// profile saying `[browser] cors = "none"`: the pages must read through the relay.
async fn play_without_cors(id: String, seed: u64) -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_sse-harness"));
    let mut server = ReferenceProcess::plan(bin, &Default::default()).map_err(|e| e.to_string())?;
    let cut = server
        .command
        .find(" --allow-origin ")
        .ok_or("no --allow-origin to take away")?;
    server.command.truncate(cut);
    let spine =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts/profiles/spine.toml");
    let profile = dir.path().join("spine-no-cors.toml");
    let text = std::fs::read_to_string(&spine).map_err(|e| e.to_string())?;
    std::fs::write(&profile, format!("{text}\n[browser]\ncors = \"none\"\n"))
        .map_err(|e| e.to_string())?;
    let mut cfg = RunConfig::against_process(&server);
    cfg.profile = profile.display().to_string();
    play_with(cfg, &id, seed, false, " without CORS").await
}

fn main() {
    let args = Arguments::from_args();
    let seed = support::seed("browser", args.list);
    let missing = sse_harness::browser::chromium().is_none();
    if missing {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !ci,
            "no Chromium (chromium-headless-shell): under CI=true the browser tests must run"
        );
        eprintln!(
            "NOTICE: no Chromium (Debian package chromium-headless-shell); browser tests ignored"
        );
    }
    let mut plays: Vec<(String, Option<Variant>)> = scenario::builtin()
        .expect("the scenario files parse")
        .into_iter()
        .filter(|sc| sc.has_browsers())
        .map(|sc| (sc.id(), None))
        .collect();
    // The same task stream against a server that answers the resume after the end 204.
    plays.push((TASK_TO_ITS_END.to_owned(), Some(Variant::FinishedTask204)));
    let trials = plays
        .into_iter()
        .map(|(id, variant)| {
            let name = match variant {
                Some(v) => format!("browser/{id}/{v}"),
                None => format!("browser/{id}"),
            };
            Trial::test(name, move || support::block_on(play(id, variant, seed))?)
                .with_ignored_flag(missing)
        })
        .chain(SLOW_START.iter().map(|id| {
            Trial::test(format!("browser-slow-start/{id}"), move || {
                play_slow_start(id, seed)
            })
            .with_ignored_flag(missing)
        }))
        .chain(NO_CORS.iter().map(|id| {
            let id = id.to_string();
            Trial::test(format!("browser-no-cors/{id}"), move || {
                support::block_on(play_without_cors(id, seed))?
            })
            .with_ignored_flag(missing)
        }))
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
