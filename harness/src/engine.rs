//! The engine's entry point: [`run`] takes a [`RunConfig`] (what to run against what)
//! and a sink for the run events, and returns the [`RunOutcome`]. The `sse-harness`
//! binary, the conformance suite and the mutation suite all call it, so a target is
//! set up, a scenario judged and a run decided the same way everywhere.
//!
//! One run: load the profile and scenarios → set the target up (start `--server-cmd`,
//! or the embedded reference server, and wait until it answers) → announce the run →
//! play every scenario ([`Runner`]) → judge thresholds and the baseline → decide the
//! outcome once ([`crate::outcome::decide`]) → announce the end with it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness_model::{Contracts, Finding, RunEvent, RunLimits, RunMeta, RunSummary, ScenarioResult};
use harness_report::gate;
use harness_report::{Baseline, Threshold};

use crate::control::{CommandControl, ServerControl};
use crate::error::{HarnessError, HarnessErrorKind};
use crate::interrupt::Interrupt;
use crate::profile::Profile;
use crate::runner::Runner;
use crate::scenario::{self, Scenario};
use crate::target::Target;

/// What to test.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum TargetSpec {
    /// A server at this base URL (e.g. `http://127.0.0.1:8080`), with an optional token.
    Url {
        /// The base URL.
        url: String,
        /// The bearer token (where the profile's `[auth]` says).
        token: Option<String>,
    },
    /// The reference server inside this process, with these deliberate faults on.
    #[cfg(feature = "embedded")]
    Embedded {
        /// Faults to switch on (empty: a correct server).
        faults: reference_server::faults::FaultSet,
    },
}

/// Which scenarios to run: the built-in ones or a folder's, filtered by id globs.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Load scenario files from this folder instead of the built-in ones.
    pub dir: Option<PathBuf>,
    /// Keep only scenarios whose id matches one of these globs (none: keep all).
    pub globs: Vec<String>,
}

impl Selection {
    /// Exactly the scenario with this id.
    pub fn one(id: &str) -> Selection {
        Selection {
            dir: None,
            globs: vec![globset::escape(id)],
        }
    }

    /// Loads and filters the scenarios; a filter that matches nothing is an error.
    pub fn load(&self) -> Result<Vec<Scenario>, HarnessError> {
        let all = match &self.dir {
            Some(d) => scenario::load_dir(d)?,
            None => scenario::builtin()?,
        };
        if self.globs.is_empty() {
            return Ok(all);
        }
        let set = glob_set(&self.globs)?;
        let picked: Vec<Scenario> = all.into_iter().filter(|s| set.is_match(s.id())).collect();
        if picked.is_empty() {
            return Err(HarnessError::new(
                HarnessErrorKind::Usage,
                format!("no scenario matches {}", self.globs.join(", ")),
            ));
        }
        Ok(picked)
    }
}

/// A glob set over scenario ids; a malformed glob is a usage error naming it.
pub fn glob_set(globs: &[String]) -> Result<globset::GlobSet, HarnessError> {
    let usage = |e: globset::Error| HarnessError::new(HarnessErrorKind::Usage, e.to_string());
    let mut b = globset::GlobSetBuilder::new();
    for g in globs {
        b.add(globset::Glob::new(g).map_err(usage)?);
    }
    b.build().map_err(usage)
}

/// Everything one run needs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The server under test.
    pub target: TargetSpec,
    /// `spine`, `generic`, `nchan` or a profile TOML path.
    pub profile: String,
    /// Which scenarios.
    pub selection: Selection,
    /// The seed of every random choice (None: a random one, printed in every report).
    pub seed: Option<u64>,
    /// Gates on the run's metrics, beside the profile's own.
    pub thresholds: Vec<Threshold>,
    /// Known failures: the run fails on any other failure and on entries that now pass.
    pub baseline: Option<PathBuf>,
    /// A shell command that starts the target (the durability scenarios kill and restart it).
    pub server_cmd: Option<String>,
    /// How an `https` target is verified and whom the harness presents itself as.
    pub tls: sse_wire::TlsOptions,
    /// Open streams over HTTP/2 (`--http2`), whatever the profile says.
    pub http2: bool,
    /// Send browser-like headers on streams where the profile does (default true;
    /// `--no-browser-headers` turns them off).
    pub browser_headers: bool,
    /// Write every scenario's full recording as JSON into this folder.
    pub recordings: Option<PathBuf>,
    /// How a person replays this run, when it is not `sse-harness run …` (e.g. the
    /// conformance suite's `cargo test` line); scenario filters are appended to it.
    pub replay_prefix: Option<String>,
    /// Legal variations the embedded reference server is started with (a
    /// [`TargetSpec::Embedded`] target only; a child process takes them in its command,
    /// [`crate::embedded::ReferenceProcess::with_variants`]).
    #[cfg(feature = "embedded")]
    pub variants: reference_server::variants::VariantSet,
    /// Stops the run early when it fires (Ctrl-C, SIGTERM): a partial report, outcome
    /// `Interrupted` (default: never fires).
    pub interrupt: Interrupt,
    /// Polite limits for shared environments: every workload scaled by `scale`, its
    /// publish rate and concurrent clients capped ([`crate::polite`]).
    pub limits: RunLimits,
    /// Headers sent on every request to the target, streams and publishes
    /// (`--header`); their values are never printed.
    pub headers: Vec<(String, String)>,
    /// Start the scenarios at this wall-clock time (`--start-at`), after the target is
    /// set up: shards on several machines begin together.
    pub start_at: Option<std::time::SystemTime>,
    /// Play one shard of a split run (`--shard I/N`, [`crate::shard`]).
    pub shard: Option<ShardRun>,
    /// The local addresses streams connect from, in turn (`--source-addr`,
    /// [`crate::source`]); empty: the kernel's choice.
    pub source_addrs: Vec<std::net::IpAddr>,
    /// What all the clients of one scenario may record together, in MiB
    /// (`--max-recorded-mib`, [`crate::limits::Limits::with_recorded_mib`]); None: the
    /// default 256 MiB.
    pub max_recorded_mib: Option<u64>,
}

/// How this process plays one shard of a split run.
#[derive(Clone, Debug)]
pub struct ShardRun {
    /// Which shard (`I/N`).
    pub spec: crate::shard::ShardSpec,
    /// The directory the shards align through (`--barrier-dir`; [`crate::barrier`]).
    pub barrier_dir: PathBuf,
    /// The longest a shard waits for the others at one phase (`--barrier-timeout`).
    pub barrier_timeout: Duration,
    /// Where to write the shard record (`shard.json.gz`) merge reads.
    pub record_dir: PathBuf,
}

impl RunConfig {
    /// A run against a reference server child process that the run starts with its
    /// `--server-cmd` (the caller sets scenarios, seed and the rest).
    #[cfg(feature = "embedded")]
    pub fn against_process(p: &crate::embedded::ReferenceProcess) -> RunConfig {
        let mut cfg = RunConfig::new(TargetSpec::Url {
            url: p.url.clone(),
            token: Some(p.token.clone()),
        });
        cfg.server_cmd = Some(p.command.clone());
        cfg
    }

    /// A run of every built-in scenario with the spine profile against `target`.
    pub fn new(target: TargetSpec) -> RunConfig {
        RunConfig {
            target,
            profile: "spine".into(),
            selection: Selection::default(),
            seed: None,
            thresholds: Vec::new(),
            baseline: None,
            server_cmd: None,
            tls: sse_wire::TlsOptions::default(),
            http2: false,
            browser_headers: true,
            recordings: None,
            replay_prefix: None,
            #[cfg(feature = "embedded")]
            variants: Default::default(),
            interrupt: Interrupt::default(),
            limits: RunLimits::default(),
            headers: Vec::new(),
            start_at: None,
            shard: None,
            source_addrs: Vec::new(),
            max_recorded_mib: None,
        }
    }

    /// The recording caps of this run.
    fn record_limits(&self) -> crate::limits::Limits {
        let d = crate::limits::Limits::default();
        match self.max_recorded_mib {
            Some(mib) => d.with_recorded_mib(mib),
            None => d,
        }
    }
}

/// What a run found and how it ended.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// The seed the run used.
    pub seed: u64,
    /// Every scenario's result, in run order.
    pub results: Vec<ScenarioResult>,
    /// Findings on the whole run (thresholds, baseline).
    pub gate: Vec<Finding>,
    /// How it ended, as sent in `RunFinished`.
    pub summary: RunSummary,
    /// The command that replays the run.
    pub replay_command: String,
}

impl RunOutcome {
    /// The process exit status for this run.
    pub fn exit_code(&self) -> u8 {
        self.summary.outcome.exit_code()
    }
}

/// Runs the scenarios of `cfg` against its target, sending every run event to `sink`.
/// An error means the run could not start (bad profile, scenario or baseline file, a
/// target that does not answer); everything after that is in the outcome.
pub async fn run(
    cfg: RunConfig,
    sink: &mut (dyn FnMut(&RunEvent) + Send),
) -> Result<RunOutcome, HarnessError> {
    let contracts = Contracts::builtin();
    let profile = Profile::load(&cfg.profile)?;
    let scenarios = cfg.selection.load()?;
    let mut thresholds = profile.thresholds.gates.clone();
    thresholds.extend(cfg.thresholds.iter().copied());
    let baseline = cfg.baseline.as_deref().map(load_baseline).transpose()?;
    let seed = cfg.seed.unwrap_or_else(rand::random);
    let sources = Arc::new(crate::source::SourceAddrs::new(cfg.source_addrs.clone())?);
    let shards = cfg.shard.as_ref().map_or(1, |s| s.spec.count());
    #[cfg(feature = "embedded")]
    let embedded = matches!(cfg.target, TargetSpec::Embedded { .. });
    #[cfg(not(feature = "embedded"))]
    let embedded = false;
    // As played: scaled and capped by the polite limits (one that cannot be is skipped
    // at its turn, and holds nothing).
    let played: Vec<Scenario> = scenarios
        .iter()
        .filter_map(|sc| crate::polite::apply(sc, &cfg.limits).ok())
        .collect();
    crate::source::check_descriptors(&played, shards, embedded)?;
    let setup = tokio::select! {
        biased;
        signal = cfg.interrupt.wait() => {
            return Err(HarnessError::new(
                HarnessErrorKind::Interrupted,
                format!("interrupted by {signal} while setting the target up"),
            ));
        }
        s = Setup::start(&cfg, profile.clone(), sources) => s?,
    };
    wait_for_start(cfg.start_at, &cfg.interrupt).await?;
    let replay = replay_command(&cfg, seed);
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let meta = RunMeta {
        seed,
        target: setup.target.base.clone(),
        embedded: setup.is_embedded(),
        insecure_tls: setup.target.insecure,
        remote: !crate::proxy_env::is_loopback(&setup.target.wire.host),
        protocol: setup.target.protocol,
        profile: profile.name.clone(),
        started_at,
        harness_version: env!("CARGO_PKG_VERSION").into(),
        replay_command: replay.run.clone(),
        limits: cfg.limits,
    };
    sink(&RunEvent::RunStarted {
        meta: meta.clone(),
        scenarios: scenarios.iter().map(Runner::info).collect(),
    });
    let sharding = cfg.shard.as_ref().map(|s| {
        let barrier = crate::barrier::Barrier::new(&s.barrier_dir, seed, s.spec, s.barrier_timeout);
        Arc::new(crate::shard_record::Sharding::new(s.spec, barrier))
    });
    let runner = Runner {
        target: setup.target.clone(),
        contracts: contracts.clone(),
        seed,
        replay_prefix: replay.per_scenario,
        control: setup.control.clone(),
        recordings: cfg.recordings.clone(),
        limits: cfg.limits,
        shard: sharding.clone(),
    };
    let started = Instant::now();
    let results = runner.run_all(&scenarios, &cfg.interrupt, sink).await;
    let mut record_error = None;
    if let (Some(s), Some(sh)) = (&cfg.shard, &sharding) {
        record_error = write_shard_record(s, sh, seed, &cfg.profile, meta).err();
    }
    let interrupted = cfg.interrupt.fired();
    let checks = gate::check_thresholds(&thresholds, &results);
    let mut gate_findings = gate::threshold_findings(&checks, &contracts);
    let compared = baseline.map(|b| gate::compare(&b, &results, &contracts));
    if let Some(o) = &compared {
        gate_findings.extend(o.findings().cloned());
    }
    sink(&RunEvent::RunGate {
        findings: gate_findings.clone(),
        thresholds: checks.clone(),
        baselined: compared
            .as_ref()
            .map(|o| {
                let known = o.known.iter();
                known
                    .map(|k| (k.scenario.clone(), k.contract.clone()))
                    .collect()
            })
            .unwrap_or_default(),
    });
    let summary = crate::outcome::decide(&results, &checks, compared.as_ref(), interrupted);
    sink(&RunEvent::RunFinished {
        duration: started.elapsed(),
        summary: summary.clone(),
    });
    setup.stop().await;
    if let Some(e) = record_error {
        return Err(e);
    }
    Ok(RunOutcome {
        seed,
        results,
        gate: gate_findings,
        summary,
        replay_command: replay.run,
    })
}

/// Waits until `start_at` (if any, and in the future); a signal stops the wait.
async fn wait_for_start(
    start_at: Option<std::time::SystemTime>,
    interrupt: &Interrupt,
) -> Result<(), HarnessError> {
    let Some(at) = start_at else {
        return Ok(());
    };
    let Ok(wait) = at.duration_since(std::time::SystemTime::now()) else {
        return Ok(());
    };
    tokio::select! {
        biased;
        signal = interrupt.wait() => Err(HarnessError::new(
            HarnessErrorKind::Interrupted,
            format!("interrupted by {signal} while waiting for --start-at"),
        )),
        _ = tokio::time::sleep(wait) => Ok(()),
    }
}

/// Writes the shard record merge reads (`shard.json.gz`, [`crate::shard_record`]).
fn write_shard_record(
    s: &ShardRun,
    sh: &crate::shard_record::Sharding,
    seed: u64,
    profile: &str,
    meta: RunMeta,
) -> Result<(), HarnessError> {
    let record = crate::shard_record::ShardRecord {
        format: crate::shard_record::FORMAT.to_owned(),
        version: crate::shard_record::VERSION,
        seed,
        shard: s.spec,
        profile: profile.to_owned(),
        meta,
        scenarios: sh.take(),
    };
    record
        .write(&s.record_dir)
        .map(|_| ())
        .map_err(|e| HarnessError::new(HarnessErrorKind::Report, e.to_string()).with_source(e))
}

fn load_baseline(p: &Path) -> Result<Baseline, HarnessError> {
    Baseline::load(p).map_err(|e| {
        HarnessError::new(
            HarnessErrorKind::Usage,
            format!("--baseline {}: {e}", p.display()),
        )
        .with_source(e)
    })
}

/// The target as a run holds it, and what it must stop at the end.
struct Setup {
    target: Arc<Target>,
    control: Option<Arc<dyn ServerControl>>,
    #[cfg(feature = "embedded")]
    embedded: Option<crate::embedded::EmbeddedServer>,
}

impl Setup {
    async fn start(
        cfg: &RunConfig,
        profile: Profile,
        sources: Arc<crate::source::SourceAddrs>,
    ) -> Result<Setup, HarnessError> {
        let control: Option<Arc<dyn ServerControl>> = match &cfg.server_cmd {
            Some(cmd) => {
                let c = CommandControl::new(cmd.clone());
                c.start()?;
                Some(Arc::new(c))
            }
            None => None,
        };
        match &cfg.target {
            TargetSpec::Url { url, token } => {
                let target = Target::with_tls(url, profile, token.clone(), &cfg.tls)?;
                sources.check_reach(&target.wire.host)?;
                let target = target
                    .with_limits(cfg.record_limits())
                    .with_sources(sources)
                    .with_headers(cfg.headers.clone())
                    .with_http2(cfg.http2)
                    .with_browser_headers(cfg.browser_headers);
                let target = Arc::new(target);
                if control.is_some() {
                    // Just started by --server-cmd: give it time to listen.
                    target.wait_until_up(Duration::from_secs(20)).await?;
                } else {
                    target.check_reachable().await?;
                }
                Ok(Setup {
                    target,
                    control,
                    #[cfg(feature = "embedded")]
                    embedded: None,
                })
            }
            #[cfg(feature = "embedded")]
            TargetSpec::Embedded { faults } => {
                let e = crate::embedded::EmbeddedServer::start_with(
                    faults.clone(),
                    cfg.variants.clone(),
                )
                .await?;
                let token = Some(e.server.token().to_owned());
                let target = Arc::new(
                    Target::new(&e.server.url(), profile, token)?
                        .with_limits(cfg.record_limits())
                        .with_sources(sources)
                        .with_headers(cfg.headers.clone())
                        .with_http2(cfg.http2)
                        .with_browser_headers(cfg.browser_headers),
                );
                Ok(Setup {
                    target,
                    control,
                    embedded: Some(e),
                })
            }
        }
    }

    fn is_embedded(&self) -> bool {
        #[cfg(feature = "embedded")]
        return self.embedded.is_some();
        #[cfg(not(feature = "embedded"))]
        false
    }

    async fn stop(self) {
        #[cfg(feature = "embedded")]
        if let Some(e) = self.embedded {
            // Bounded: an interrupted run must end within seconds.
            let _ = tokio::time::timeout(Duration::from_secs(1), e.server.shutdown()).await;
        }
        // A `--server-cmd` process is killed when its controller is dropped.
        drop(self.control);
    }
}

/// How to replay a run: the whole of it, and the prefix a scenario's `--scenario` follows.
struct Replay {
    run: String,
    per_scenario: String,
}

/// The command that replays `cfg` with `seed`: profile, target, faults, server command,
/// scenario folder and filters, thresholds and baseline; never the token.
fn replay_command(cfg: &RunConfig, seed: u64) -> Replay {
    let mut s = match &cfg.replay_prefix {
        Some(p) => p.clone(),
        None => {
            let mut s = format!(
                "sse-harness run --profile {} --seed {seed}",
                shell_quote(&cfg.profile)
            );
            match &cfg.target {
                TargetSpec::Url { url, .. } => {
                    s.push_str(&format!(" --target {}", shell_quote(url)))
                }
                #[cfg(feature = "embedded")]
                TargetSpec::Embedded { faults } => {
                    for f in faults.iter() {
                        s.push_str(&format!(" --fault {}", f.name()));
                    }
                    for v in cfg.variants.iter() {
                        s.push_str(&format!(" --variant {}", v.name()));
                    }
                }
            }
            if let Some(c) = &cfg.server_cmd {
                s.push_str(&format!(" --server-cmd {}", shell_quote(c)));
            }
            if cfg.http2 {
                s.push_str(" --http2");
            }
            for a in &cfg.source_addrs {
                s.push_str(&format!(" --source-addr {a}"));
            }
            if let Some(mib) = cfg.max_recorded_mib {
                s.push_str(&format!(" --max-recorded-mib {mib}"));
            }
            if !cfg.browser_headers {
                s.push_str(" --no-browser-headers");
            }
            if let Some(d) = &cfg.selection.dir {
                s.push_str(&format!(
                    " --scenarios-dir {}",
                    shell_quote(&d.display().to_string())
                ));
            }
            for t in &cfg.thresholds {
                s.push_str(&format!(" --threshold {}", shell_quote(&t.to_string())));
            }
            if let Some(b) = &cfg.baseline {
                s.push_str(&format!(
                    " --baseline {}",
                    shell_quote(&b.display().to_string())
                ));
            }
            push_limits(&mut s, &cfg.limits);
            for (k, _) in &cfg.headers {
                s.push_str(&format!(" --header {}", shell_quote(&format!("{k}: ***"))));
            }
            s
        }
    };
    let per_scenario = s.clone();
    for g in &cfg.selection.globs {
        s.push_str(&format!(" --scenario {}", shell_quote(g)));
    }
    Replay {
        run: s,
        per_scenario,
    }
}

/// The polite flags that replay `limits` (none at full scale without caps).
fn push_limits(s: &mut String, limits: &RunLimits) {
    if limits.scale != 1.0 {
        s.push_str(&format!(" --scale {}", limits.scale));
    }
    if let Some(r) = limits.max_rate {
        s.push_str(&format!(" --max-rate {r}"));
    }
    if let Some(c) = limits.max_clients {
        s.push_str(&format!(" --max-clients {c}"));
    }
}

/// Quotes `s` for a POSIX shell when it holds anything but plain word characters.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn start_at_waits_until_then_and_a_past_time_not_at_all() {
        let (trigger, interrupt) = crate::interrupt::pair();
        let t0 = tokio::time::Instant::now();
        let at = std::time::SystemTime::now() + Duration::from_secs(60);
        wait_for_start(Some(at), &interrupt).await.unwrap();
        assert!(
            t0.elapsed() >= Duration::from_secs(59),
            "{:?}",
            t0.elapsed()
        );
        let t1 = tokio::time::Instant::now();
        let past = std::time::SystemTime::now() - Duration::from_secs(60);
        wait_for_start(Some(past), &interrupt).await.unwrap();
        wait_for_start(None, &interrupt).await.unwrap();
        assert_eq!(t1.elapsed(), Duration::ZERO);
        trigger.fire(harness_model::Interruption::Sigint);
        let far = std::time::SystemTime::now() + Duration::from_secs(3600);
        let e = wait_for_start(Some(far), &interrupt).await.unwrap_err();
        assert!(e.to_string().contains("--start-at"), "{e}");
    }

    #[test]
    fn shell_quote_leaves_words_and_quotes_the_rest() {
        assert_eq!(
            shell_quote("http://127.0.0.1:8080/x"),
            "http://127.0.0.1:8080/x"
        );
        assert_eq!(shell_quote("CT-10/*"), "'CT-10/*'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn the_replay_command_is_complete_and_never_has_the_token() {
        let mut cfg = RunConfig::new(TargetSpec::Url {
            url: "http://127.0.0.1:9/p".into(),
            token: Some("secret".into()),
        });
        cfg.profile = "nchan".into();
        cfg.selection = Selection {
            dir: Some("my scenarios".into()),
            globs: vec!["CT-10/*".into()],
        };
        cfg.thresholds = vec!["publish_to_deliver.p99 < 50ms".parse().unwrap()];
        cfg.server_cmd = Some("exec ./server".into());
        cfg.http2 = true;
        let r = replay_command(&cfg, 7);
        assert_eq!(
            r.run,
            "sse-harness run --profile nchan --seed 7 --target http://127.0.0.1:9/p \
             --server-cmd 'exec ./server' --http2 --scenarios-dir 'my scenarios' \
             --threshold 'publish_to_deliver.p99 < 50ms' --scenario 'CT-10/*'"
        );
        assert!(r.per_scenario.ends_with("'publish_to_deliver.p99 < 50ms'"));
        assert!(!r.run.contains("secret"));
    }

    #[test]
    fn the_replay_command_keeps_the_limits_and_hides_header_values() {
        let mut cfg = RunConfig::new(TargetSpec::Url {
            url: "http://127.0.0.1:9".into(),
            token: None,
        });
        cfg.limits = RunLimits {
            scale: 0.5,
            max_rate: Some(100),
            max_clients: Some(4),
        };
        cfg.headers = vec![("X-Api-Key".into(), "hush".into())];
        cfg.max_recorded_mib = Some(2048);
        let r = replay_command(&cfg, 7);
        assert_eq!(
            r.run,
            "sse-harness run --profile spine --seed 7 --target http://127.0.0.1:9 \
             --max-recorded-mib 2048 --scale 0.5 --max-rate 100 --max-clients 4 \
             --header 'X-Api-Key: ***'"
        );
        assert!(!r.run.contains("hush"));
    }

    #[test]
    fn selection_one_matches_exactly_that_id() {
        let all = scenario::builtin().unwrap();
        let id = all[0].id();
        let picked = Selection::one(&id).load().unwrap();
        assert_eq!(picked.len(), 1);
        assert_eq!(picked[0].id(), id);
        let err = Selection {
            dir: None,
            globs: vec!["NOPE/*".into()],
        }
        .load()
        .unwrap_err();
        assert_eq!(err.kind, HarnessErrorKind::Usage);
    }
}
