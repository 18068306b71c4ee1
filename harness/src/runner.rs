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

use crate::barrier::Phase;
use crate::control::ServerControl;
use crate::error::{HarnessError, HarnessErrorKind};
use crate::interrupt::Interrupt;
use crate::scenario::Scenario;
use crate::shard::Part;
use crate::shard_record::{EntryPart, Histograms, ShardEntry, Sharding, StoredResult};
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
    /// When this process is one shard of a split run (`--shard I/N`, N > 1): which,
    /// its barrier, and the record it keeps for merge.
    pub shard: Option<Arc<Sharding>>,
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

    /// Runs one scenario to its verdict: the whole of it; or, in a shard of a split
    /// run, this shard's part (recorded for `sse-harness merge`, judged by none), or
    /// the whole on shard 0 where the scenario is not split ([`crate::shard`]).
    pub async fn run_scenario(&self, sc: &Scenario) -> ScenarioResult {
        let Some(sh) = &self.shard else {
            return self.run_whole(sc).await;
        };
        let started = Instant::now();
        let (result, part) = match crate::shard::runs_whole(sc) {
            Some(_) if !sh.spec.is_leader() => {
                let reason = crate::shard::RUN_WHOLE_BY_SHARD_0.to_owned();
                let r = self.result_of(sc, started, Verdict::Skipped { reason });
                let part = EntryPart::Final {
                    result: StoredResult::of(&r),
                };
                (r, part)
            }
            Some(_) => {
                let r = self.run_whole(sc).await;
                let part = EntryPart::Final {
                    result: StoredResult::of(&r),
                };
                (r, part)
            }
            None => self.run_part(sc, sh, started).await,
        };
        self.finish_part(sc, sh).await;
        sh.push(ShardEntry {
            info: result.info.clone(),
            families: sc.families.clone(),
            replay_command: result.replay_command.clone(),
            part,
        });
        result
    }

    /// Waits until every shard is done with `sc` (bounded: its deadline, the grace and
    /// the barrier's timeout), then, on shard 0, deletes the channels it made.
    async fn finish_part(&self, sc: &Scenario, sh: &Sharding) {
        let deadline = Duration::from_secs(sc.deadline_s);
        let bound = deadline + crate::limits::grace(deadline) + sh.barrier.timeout;
        let done = sh
            .barrier
            .arrive(&sc.id(), Phase::Done, &serde_json::Value::Null, bound)
            .await;
        if let Err(e) = done {
            tracing::warn!("{}: {e}", sc.id());
        }
        if sh.spec.is_leader() {
            self.clean_up(sc).await;
        }
    }

    /// This shard's part of a split scenario: its recording, kept for merge, and a
    /// result that claims nothing (`JudgedByMerge`) but counts what it did.
    async fn run_part(
        &self,
        sc: &Scenario,
        sh: &Sharding,
        started: Instant,
    ) -> (ScenarioResult, EntryPart) {
        let part = Part::new(sh.spec, sh.barrier.clone(), &sc.id());
        let (sc, rec) = match self.record(sc, &part).await {
            Ok(played) => played,
            Err(verdict) => {
                let r = self.result_of(sc, started, verdict);
                let part = EntryPart::Final {
                    result: StoredResult::of(&r),
                };
                return (r, part);
            }
        };
        let cfg = self.target.profile.check_config(sc.families.clone());
        let histograms: std::collections::BTreeMap<_, _> = harness_checks::measure(&cfg, &rec)
            .into_iter()
            .filter(|(m, _)| crate::shard_record::shard_local(*m))
            .collect();
        let shard = sh.spec.to_string();
        let mut r = self.result_of(
            &sc,
            started,
            Verdict::Inconclusive {
                reasons: vec![harness_model::Shortfall::JudgedByMerge { shard }],
            },
        );
        r.stats = stats(&rec);
        r.histograms = histograms.clone();
        let part = EntryPart::Recorded {
            duration_us: r.duration.as_micros() as u64,
            recording: Box::new(rec),
            histograms: Histograms(histograms),
        };
        (r, part)
    }

    /// A result with `verdict` and nothing measured.
    fn result_of(&self, sc: &Scenario, started: Instant, verdict: Verdict) -> ScenarioResult {
        ScenarioResult {
            info: Runner::info(sc),
            verdict,
            findings: Vec::new(),
            duration: started.elapsed(),
            stats: ScenarioStats::default(),
            histograms: Default::default(),
            replay_command: format!("{} --scenario '{}'", self.replay_prefix, sc.id()),
            facts: Default::default(),
        }
    }

    /// Runs the whole scenario in this process and judges it.
    async fn run_whole(&self, sc: &Scenario) -> ScenarioResult {
        let started = Instant::now();
        let (sc, rec) = match self.record(sc, &Part::whole()).await {
            Ok(played) => played,
            Err(verdict) => return self.result_of(sc, started, verdict),
        };
        let cfg = self.target.profile.check_config(sc.families.clone());
        let j = judge(&self.contracts, &cfg, &rec, &self.target.base);
        ScenarioResult {
            verdict: j.verdict,
            findings: j.findings,
            stats: j.stats,
            histograms: j.histograms,
            facts: j.facts,
            ..self.result_of(&sc, started, Verdict::Pass)
        }
    }

    /// Plays `part` of the scenario (scaled to the polite limits) and returns the scaled
    /// scenario and its recording, or the verdict of a scenario that could not be
    /// played: skipped, short of the limits, an error. The whole run deletes the
    /// channels right away (a shard's shard 0 once every shard is done).
    async fn record(&self, sc: &Scenario, part: &Part) -> Result<(Scenario, Recording), Verdict> {
        if let Some(reason) = self.skip_reason(sc) {
            return Err(Verdict::Skipped { reason });
        }
        let sc = crate::polite::apply(sc, &self.limits).map_err(|short| Verdict::Inconclusive {
            reasons: vec![short],
        })?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ fnv1a(sc.id().as_bytes()));
        let tag = format!("{:08x}", rng.random::<u32>());
        let outcome = self.play(&sc, &mut rng, &tag, part).await;
        let cleaned = match part.spec.is_whole() {
            true => self.clean_up(&sc).await,
            false => None,
        };
        let mut rec = outcome.map_err(|e| Verdict::Error {
            reason: e.to_string(),
        })?;
        if let Some(fact) = cleaned {
            rec.facts.insert("channels_deleted".into(), fact);
        }
        self.save_recording(&sc, &rec);
        Ok((sc, rec))
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
        part: &Part,
    ) -> Result<Recording, HarnessError> {
        let (target, proxies) = self.route(sc).await?;
        let play = async {
            match &sc.probe {
                Some(p) => {
                    let deadline = Duration::from_secs(sc.deadline_s);
                    let control = self.control.clone();
                    crate::probes::run(target.clone(), control, deadline, p, rng, tag).await
                }
                None => crate::workload::run(target.clone(), sc, rng, tag, part).await,
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
        let mut r = self.result_of(sc, Instant::now(), verdict);
        r.duration = duration;
        if let Some(sh) = &self.shard {
            sh.push(ShardEntry {
                info: r.info.clone(),
                families: sc.families.clone(),
                replay_command: r.replay_command.clone(),
                part: EntryPart::Final {
                    result: StoredResult::of(&r),
                },
            });
        }
        r
    }
}

/// A recording judged: what the single-process run and `sse-harness merge` both
/// report for a scenario that was played.
pub struct Judged {
    /// The verdict.
    pub verdict: Verdict,
    /// The findings, sorted by contract and client.
    pub findings: Vec<harness_model::Finding>,
    /// Counters.
    pub stats: ScenarioStats,
    /// Latency and rate histograms.
    pub histograms: std::collections::BTreeMap<harness_model::Metric, hdrhistogram::Histogram<u64>>,
    /// Facts.
    pub facts: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Judges a recording with the contract checkers, measures it and gathers its facts;
/// a recording in which no client ever connected (to `base`), or in which connections
/// failed for want of a local port or descriptor ([`crate::source::shortage_of`]), is
/// an error.
pub fn judge(
    contracts: &Contracts,
    cfg: &harness_checks::CheckConfig,
    rec: &Recording,
    base: &str,
) -> Judged {
    let mut findings = harness_checks::check(contracts, cfg, rec);
    if let Some(reason) = crate::source::shortage_of(rec) {
        // The harness's machine fell short (ports, descriptors): nothing here is the
        // target's doing, and what the findings say is not evidence against it.
        return Judged {
            verdict: Verdict::Error { reason },
            findings,
            stats: stats(rec),
            histograms: Default::default(),
            facts: Default::default(),
        };
    }
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
        return Judged {
            verdict: Verdict::Error {
                reason: format!("no client could connect to {base}: {first}"),
            },
            findings,
            stats: stats(rec),
            histograms: Default::default(),
            facts: Default::default(),
        };
    }
    findings.sort_by(|a, b| {
        (&a.contract, a.evidence.client.as_ref()).cmp(&(&b.contract, b.evidence.client.as_ref()))
    });
    let histograms = harness_checks::measure(cfg, rec);
    let mut facts = rec.facts.clone();
    facts.extend(harness_checks::facts(rec));
    let not_judged = harness_checks::not_judged(contracts, cfg, rec);
    if !not_judged.is_empty() {
        facts.insert(
            "browser_not_judged".into(),
            serde_json::json!({
                "why": "a browser page sees dispatched events, open and error only: no bytes, comments, retry:, headers, nor a close told from a reset",
                "contracts": not_judged,
            }),
        );
    }
    let shortfalls = harness_checks::evidence(cfg, rec);
    Judged {
        verdict: Verdict::judged(&findings, shortfalls),
        findings,
        stats: stats(rec),
        histograms,
        facts,
    }
}

/// The counters of a recording.
pub fn stats(rec: &Recording) -> ScenarioStats {
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
