//! Runs scenarios against a target and emits the run event stream. For each scenario:
//! skip it if the profile lacks a capability it needs, else play its workload or probe
//! with a random generator seeded from the run seed and the scenario id (so one
//! scenario replays alone with the same schedule), judge the recording with the
//! contract checkers, and measure its latencies.

use std::sync::Arc;
use std::time::Duration;

use harness_model::{
    Contracts, Recording, RunEvent, RunLimits, ScenarioInfo, ScenarioResult, ScenarioStats, Verdict,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

use crate::control::ServerControl;
use crate::error::{HarnessError, HarnessErrorKind};
use crate::interrupt::Interrupt;
use crate::scenario::Scenario;
use crate::target::Target;

/// Runs scenarios against one target.
pub struct Runner {
    /// The target.
    pub target: Arc<Target>,
    /// The contract registry.
    pub contracts: Contracts,
    /// The run seed.
    pub seed: u64,
    /// How to replay: the command line before `--scenario`.
    pub replay_prefix: String,
    /// How to kill and restart the target, when the run may (durability probes).
    pub control: Option<Arc<dyn ServerControl>>,
    /// Write each scenario's full recording (every frame of every client) as JSON here.
    pub recordings: Option<std::path::PathBuf>,
    /// The polite limits every workload is scaled and capped to ([`crate::polite`]).
    pub limits: RunLimits,
}

impl Runner {
    /// The scenario's announcement.
    pub fn info(sc: &Scenario) -> ScenarioInfo {
        ScenarioInfo {
            id: sc.id(),
            group: sc.group.clone(),
            title: sc.title.clone(),
            file: sc.file.clone(),
        }
    }

    /// Why this target cannot run the scenario, if it cannot: a capability the profile
    /// does not claim, a probe the profile does not say enough for, or a probe that must
    /// restart the target without `--server-cmd`.
    fn skip_reason(&self, sc: &Scenario) -> Option<String> {
        let profile = &self.target.profile;
        if let Some(missing) = sc.requires.iter().find(|c| !profile.has(**c)) {
            return Some(format!(
                "profile {} does not claim capability {missing}",
                profile.name
            ));
        }
        if sc.has_browsers() && self.target.private_tls {
            return Some(
                "the run trusts a private CA, skips certificate checks or presents a client certificate (--cacert, --insecure, --cert): browser clients trust the system's roots only"
                    .to_owned(),
            );
        }
        if sc.has_browsers()
            && let Some(reason) = crate::browser::skip_reason(profile, sc)
        {
            return Some(reason);
        }
        let probe = sc.probe.as_ref()?;
        if let Some(reason) = probe.unmet(profile) {
            return Some(reason);
        }
        (probe.needs_control() && self.control.is_none()).then(|| {
            "needs --server-cmd (the harness must be able to kill and restart the target)".into()
        })
    }

    /// Runs one scenario to its verdict.
    pub async fn run_scenario(&self, sc: &Scenario) -> ScenarioResult {
        let info = Runner::info(sc);
        let replay_command = format!("{} --scenario '{}'", self.replay_prefix, sc.id());
        let started = Instant::now();
        let result = |verdict, findings, stats, histograms, facts| ScenarioResult {
            info: info.clone(),
            verdict,
            findings,
            duration: started.elapsed(),
            stats,
            histograms,
            replay_command: replay_command.clone(),
            facts,
        };
        if let Some(reason) = self.skip_reason(sc) {
            return result(
                Verdict::Skipped { reason },
                Vec::new(),
                ScenarioStats::default(),
                Default::default(),
                Default::default(),
            );
        }
        let sc = match crate::polite::apply(sc, &self.limits) {
            Ok(sc) => sc,
            Err(short) => {
                return result(
                    Verdict::Inconclusive {
                        reasons: vec![short],
                    },
                    Vec::new(),
                    ScenarioStats::default(),
                    Default::default(),
                    Default::default(),
                );
            }
        };
        let sc = &sc;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ fnv1a(sc.id().as_bytes()));
        let tag = format!("{:08x}", rng.random::<u32>());
        let outcome = self.play(sc, &mut rng, &tag).await;
        let cleaned = self.clean_up(sc).await;
        let rec = match outcome {
            Ok(mut r) => {
                if let Some(fact) = cleaned {
                    r.facts.insert("channels_deleted".into(), fact);
                }
                r
            }
            Err(e) => {
                return result(
                    Verdict::Error {
                        reason: e.to_string(),
                    },
                    Vec::new(),
                    ScenarioStats::default(),
                    Default::default(),
                    Default::default(),
                );
            }
        };
        self.save_recording(sc, &rec);
        let cfg = self.target.profile.check_config(sc.families.clone());
        let mut findings = harness_checks::check(&self.contracts, &cfg, &rec);
        if rec
            .transcripts
            .iter()
            .all(|t| t.connections.iter().all(|c| c.status.is_none()))
            && !rec.transcripts.is_empty()
        {
            let first = rec.transcripts[0]
                .connections
                .first()
                .map(|c| format!("{:?}", c.end))
                .unwrap_or_default();
            return result(
                Verdict::Error {
                    reason: format!("no client could connect to {}: {first}", self.target.base),
                },
                findings,
                stats(&rec),
                Default::default(),
                Default::default(),
            );
        }
        findings.sort_by(|a, b| {
            (&a.contract, a.evidence.client.as_ref())
                .cmp(&(&b.contract, b.evidence.client.as_ref()))
        });
        let histograms = harness_checks::measure(&cfg, &rec);
        let mut facts = rec.facts.clone();
        facts.extend(harness_checks::facts(&rec));
        let not_judged = harness_checks::not_judged(&self.contracts, &cfg, &rec);
        if !not_judged.is_empty() {
            facts.insert(
                "browser_not_judged".into(),
                serde_json::json!({
                    "why": "a browser page sees dispatched events, open and error only: no bytes, comments, retry:, headers, nor a close told from a reset",
                    "contracts": not_judged,
                }),
            );
        }
        let shortfalls = harness_checks::evidence(&cfg, &rec);
        result(
            Verdict::judged(&findings, shortfalls),
            findings,
            stats(&rec),
            histograms,
            facts,
        )
    }

    /// Plays the scenario's probe or workload within its wall-clock bound (the deadline
    /// plus a grace): whatever is still running then (clients, publishers, requests) is
    /// dropped, and its scoped tasks abort with it (see `tasks`). A recording with
    /// clients that had to be aborted is inconclusive: their transcripts are missing.
    async fn play(
        &self,
        sc: &Scenario,
        rng: &mut ChaCha8Rng,
        tag: &str,
    ) -> Result<Recording, HarnessError> {
        let (target, proxies) = self.route(sc).await?;
        let play = async {
            match &sc.probe {
                Some(p) => {
                    let deadline = Duration::from_secs(sc.deadline_s);
                    let control = self.control.clone();
                    crate::probes::run(target.clone(), control, deadline, p, rng, tag).await
                }
                None => crate::workload::run(target.clone(), sc, rng, tag).await,
            }
        };
        let deadline = Duration::from_secs(sc.deadline_s);
        let bound = deadline + crate::limits::grace(deadline);
        let played = tokio::time::timeout(bound, play).await;
        let network = match proxies {
            Some(p) => p.stop().await,
            None => Default::default(),
        };
        let mut rec = played.map_err(|_| {
            HarnessError::new(
                HarnessErrorKind::Target,
                format!(
                    "the scenario did not end within its deadline plus a grace ({bound:?}); aborted"
                ),
            )
        })??;
        rec.network = network;
        // Clients that had to be aborted are in `rec.unfinished`: the evidence names
        // them and the scenario is inconclusive (never a silent pass).
        Ok(rec)
    }

    /// The target this scenario talks to: the run's, or, when the scenario has
    /// `[[toxics]]`, a copy routed through toxic proxies started for it (with the
    /// scenario's seed and clock origin), and those proxies.
    async fn route(
        &self,
        sc: &Scenario,
    ) -> Result<(Arc<Target>, Option<crate::network::Proxies>), HarnessError> {
        if sc.toxics.is_empty() {
            return Ok((self.target.clone(), None));
        }
        let seed = self.seed ^ fnv1a(sc.id().as_bytes());
        let epoch = std::time::Instant::now();
        let (proxies, route) =
            crate::network::Proxies::start(&self.target, &sc.toxics, seed, epoch).await?;
        Ok((Arc::new(self.target.routed(route)?), Some(proxies)))
    }

    /// Writes the recording to the recordings folder (`--keep-recordings`), if any; a
    /// failure is warned about, never fatal.
    fn save_recording(&self, sc: &Scenario, rec: &Recording) {
        let Some(dir) = &self.recordings else {
            return;
        };
        let path = dir.join(format!("{}.json", sc.id().replace('/', "_")));
        let written = std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(&path, serde_json::to_vec(rec).unwrap_or_default()));
        if let Err(e) = written {
            tracing::warn!("could not write {}: {e}", path.display());
        }
    }

    /// Deletes the channels the scenario made, where the profile says how: a fact
    /// (`{"deleted": n, "failed": [...]}`) when there were any; failures are also
    /// warned about, and never change the verdict.
    async fn clean_up(&self, sc: &Scenario) -> Option<serde_json::Value> {
        let (deleted, failed) = self.target.clean_up().await;
        for f in &failed {
            tracing::warn!("{}: could not delete a channel: {f}", sc.id());
        }
        (deleted > 0 || !failed.is_empty())
            .then(|| serde_json::json!({ "deleted": deleted, "failed": failed }))
    }

    /// Runs scenarios in order, sending every run event to `sink`. When `interrupt`
    /// fires, the scenario in progress is dropped (its clients and tasks with it) and
    /// finishes [`Verdict::Interrupted`]; every later one finishes [`Verdict::NotRun`]
    /// without starting.
    pub async fn run_all(
        &self,
        scenarios: &[Scenario],
        interrupt: &Interrupt,
        sink: &mut (dyn FnMut(&RunEvent) + Send),
    ) -> Vec<ScenarioResult> {
        let mut out = Vec::new();
        for sc in scenarios {
            let r = if interrupt.fired().is_some() {
                self.unfinished(sc, Verdict::NotRun, Duration::ZERO)
            } else {
                sink(&RunEvent::ScenarioStarted {
                    info: Runner::info(sc),
                });
                let started = Instant::now();
                tokio::select! {
                    biased;
                    _ = interrupt.wait() => {
                        self.unfinished(sc, Verdict::Interrupted, started.elapsed())
                    }
                    r = self.run_scenario(sc) => r,
                }
            };
            sink(&RunEvent::ScenarioFinished(Box::new(r.clone())));
            out.push(r);
        }
        out
    }

    /// The result of a scenario the run's interruption cut short or never reached.
    fn unfinished(&self, sc: &Scenario, verdict: Verdict, duration: Duration) -> ScenarioResult {
        ScenarioResult {
            info: Runner::info(sc),
            verdict,
            findings: Vec::new(),
            duration,
            stats: ScenarioStats::default(),
            histograms: Default::default(),
            replay_command: format!("{} --scenario '{}'", self.replay_prefix, sc.id()),
            facts: Default::default(),
        }
    }
}

fn stats(rec: &Recording) -> ScenarioStats {
    let mut s = ScenarioStats {
        clients: rec.transcripts.len() as u64,
        events_published: rec.acks.len() as u64,
        cuts_planned: rec.plan.cuts.values().sum(),
        ..ScenarioStats::default()
    };
    for t in &rec.transcripts {
        s.connections += t.connections.len() as u64;
        for c in &t.connections {
            if matches!(c.end, harness_model::ConnEnd::Cut { .. }) {
                s.cuts += 1;
            }
            s.events_received += c
                .frames
                .iter()
                .filter(|f| matches!(f.kind, harness_model::FrameKind::Data(_)))
                .count() as u64;
        }
    }
    s
}

/// FNV-1a, to derive a scenario's seed from the run seed and its id (stable across
/// versions, unlike std's hasher).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A generous default per-request timeout for probes.
pub const PROBE_STEP: Duration = Duration::from_secs(20);
