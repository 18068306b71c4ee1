//! `sse-harness merge DIR…`: one run's verdict from its shards' records
//! ([`crate::shard_record`]), as exact as the single-process run's.
//!
//! 1. **Same run.** Every record has the same format version, seed, shard count and
//!    scenario list, and every shard `0..N` is there exactly once; otherwise a clear
//!    error names what differs ([`MergeError`]).
//! 2. **Per scenario.** A split scenario's parts are united into one recording
//!    ([`union`]: every shard's transcripts, acks, failed and indeterminate writes,
//!    contents and plans; clients back in the single-process order) and judged by the
//!    very code the single-process run uses ([`crate::runner::judge`] over
//!    `harness_checks`), so cross-client consistency and lost acks span every shard.
//!    A scenario a shard could not play is that shard's error; a scenario played whole
//!    (or skipped alike by every shard) is shard 0's result as it recorded it.
//! 3. **Histograms** are added, never averaged: the [`shard_local`] metrics (one
//!    connection's own times) are the sum of the shards' exact HdrHistograms; the
//!    others (publish → delivery, ack → delivery, reconnect → caught up) pair one
//!    shard's publish with another's receipt, so they are measured from the united
//!    recording, as a single process measures them.
//! 4. **Report** through the same run events and reporters as `run` (JSON summary,
//!    JUnit, Markdown, HTML, `.hgrm`), with the profile's thresholds, and the same
//!    outcome rule ([`crate::outcome::decide`]), hence the same exit status.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use harness_model::{
    Contracts, Metric, Recording, RunEvent, RunMeta, RunSummary, ScenarioResult, Verdict,
};
use hdrhistogram::Histogram;

use crate::error::HarnessError;
use crate::profile::Profile;
use crate::shard_record::{EntryPart, RecordError, ShardEntry, ShardRecord, shard_local};

/// Why shard records could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A record could not be read.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// No directory was given.
    #[error("no shard directory given")]
    Empty,
    /// Two records are not of one run.
    #[error("{} and {} are not shards of one run: their {what} differ ({a} vs {b})", first.display(), second.display())]
    Mismatch {
        /// The first record's directory.
        first: PathBuf,
        /// The other's.
        second: PathBuf,
        /// What differs (`seed`, `shard count`, `scenarios`, `profile`).
        what: &'static str,
        /// The first's value.
        a: String,
        /// The other's.
        b: String,
    },
    /// One shard's record was given twice.
    #[error("shard {shard} is given twice: {} and {}", first.display(), second.display())]
    Duplicate {
        /// The shard, `I/N`.
        shard: String,
        /// One directory.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
    /// Shards are missing.
    #[error("shard(s) {missing} of {count} missing: merge needs every shard's record")]
    Missing {
        /// The missing indices, e.g. `1, 3`.
        missing: String,
        /// The shard count.
        count: u32,
    },
    /// The profile the shards judged with could not be loaded.
    #[error("the shards' profile {name}: {source}")]
    Profile {
        /// Its name or path.
        name: String,
        /// Why.
        #[source]
        source: HarnessError,
    },
}

/// A file-name-safe form of a scenario id (`CT-10/cut` → `CT-10_cut`).
pub fn file_stem(id: &str) -> String {
    id.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '.' | '_' => c,
            _ => '_',
        })
        .collect()
}

/// Reads the records of `dirs` and checks they are every shard of one run, once each;
/// sorted by shard.
pub fn load(dirs: &[PathBuf]) -> Result<Vec<ShardRecord>, MergeError> {
    let mut read = Vec::new();
    for d in dirs {
        read.push((d.clone(), ShardRecord::read(d)?));
    }
    let Some((first_dir, first)) = read.first() else {
        return Err(MergeError::Empty);
    };
    let ids = |r: &ShardRecord| {
        let ids: Vec<&str> = r.scenarios.iter().map(|e| e.info.id.as_str()).collect();
        ids.join(", ")
    };
    let count = first.shard.count();
    let mut seen: BTreeMap<u32, &Path> = BTreeMap::new();
    for (dir, r) in &read {
        let differ = |what, a: String, b: String| {
            (a != b).then(|| MergeError::Mismatch {
                first: first_dir.clone(),
                second: dir.clone(),
                what,
                a,
                b,
            })
        };
        let checks = [
            differ("seed", first.seed.to_string(), r.seed.to_string()),
            differ(
                "shard count",
                count.to_string(),
                r.shard.count().to_string(),
            ),
            differ("profile", first.profile.clone(), r.profile.clone()),
            differ("scenarios", ids(first), ids(r)),
        ];
        if let Some(e) = checks.into_iter().flatten().next() {
            return Err(e);
        }
        if let Some(other) = seen.insert(r.shard.index(), dir) {
            return Err(MergeError::Duplicate {
                shard: r.shard.to_string(),
                first: other.to_owned(),
                second: dir.clone(),
            });
        }
    }
    let missing: Vec<String> = (0..count)
        .filter(|i| !seen.contains_key(i))
        .map(|i| i.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing {
            missing: missing.join(", "),
            count,
        });
    }
    let mut records: Vec<ShardRecord> = read.into_iter().map(|(_, r)| r).collect();
    records.sort_by_key(|r| r.shard.index());
    Ok(records)
}

/// The merged run: shard 0's announcement (with the time of the merge's start) and
/// every scenario's merged result, in run order.
pub struct Merged {
    /// The run's announcement.
    pub meta: RunMeta,
    /// The results.
    pub results: Vec<ScenarioResult>,
    /// The profile the shards judged with.
    pub profile: Profile,
}

/// Merges the records of every shard of one run (as [`load`] returns them).
pub fn merge(records: Vec<ShardRecord>, contracts: &Contracts) -> Result<Merged, MergeError> {
    let profile = Profile::load(&records[0].profile).map_err(|source| MergeError::Profile {
        name: records[0].profile.clone(),
        source,
    })?;
    let meta = records[0].meta.clone();
    let mut per_shard: Vec<std::vec::IntoIter<ShardEntry>> = records
        .into_iter()
        .map(|r| r.scenarios.into_iter())
        .collect();
    let mut results = Vec::new();
    loop {
        let entries: Vec<ShardEntry> = per_shard.iter_mut().filter_map(|s| s.next()).collect();
        if entries.is_empty() {
            break;
        }
        results.push(merge_scenario(entries, &profile, contracts, &meta.target));
    }
    Ok(Merged {
        meta,
        results,
        profile,
    })
}

/// One scenario's result from every shard's entry (by shard).
fn merge_scenario(
    entries: Vec<ShardEntry>,
    profile: &Profile,
    contracts: &Contracts,
    base: &str,
) -> ScenarioResult {
    let info = entries[0].info.clone();
    let replay = entries[0].replay_command.clone();
    let families = entries[0].families.clone();
    let recorded = entries
        .iter()
        .filter(|e| matches!(e.part, EntryPart::Recorded { .. }))
        .count();
    if recorded == 0 {
        // Played whole by shard 0 (the others skipped it), or skipped by all alike.
        let Some(EntryPart::Final { result }) = entries.into_iter().next().map(|e| e.part) else {
            unreachable!("no entry is recorded")
        };
        return result.into_result(info, replay);
    }
    let mut parts = Vec::new();
    let mut local = BTreeMap::new();
    let mut duration = Duration::ZERO;
    for (i, e) in entries.into_iter().enumerate() {
        match e.part {
            EntryPart::Recorded {
                duration_us,
                recording,
                histograms,
            } => {
                duration = duration.max(Duration::from_micros(duration_us));
                if let Err(e) = add_all(&mut local, histograms.0) {
                    return ScenarioResult {
                        info,
                        verdict: Verdict::Error {
                            reason: format!("shard {i}'s histograms cannot be added: {e}"),
                        },
                        findings: Vec::new(),
                        duration,
                        stats: Default::default(),
                        histograms: BTreeMap::new(),
                        replay_command: replay,
                        facts: BTreeMap::new(),
                    };
                }
                parts.push(*recording);
            }
            EntryPart::Final { result } => {
                // A shard could not play its part: the scenario proves nothing.
                let mut r = result.into_result(info, replay);
                r.verdict = shard_failed(i, r.verdict);
                return r;
            }
        }
    }
    let rec = union(parts);
    let cfg = profile.check_config(families);
    let j = crate::runner::judge(contracts, &cfg, &rec, base);
    let mut histograms = local;
    histograms.extend(j.histograms.into_iter().filter(|(m, _)| !shard_local(*m)));
    ScenarioResult {
        info,
        verdict: j.verdict,
        findings: j.findings,
        duration,
        stats: j.stats,
        histograms,
        replay_command: replay,
        facts: j.facts,
    }
}

/// The verdict of a split scenario whose shard `i` could not play its part: an error
/// naming the shard (its own reason kept).
fn shard_failed(i: usize, v: Verdict) -> Verdict {
    let why = match &v {
        Verdict::Interrupted => return v,
        Verdict::NotRun => return v,
        other => other
            .reason()
            .unwrap_or_else(|| format!("{other:?}"))
            .to_string(),
    };
    Verdict::Error {
        reason: format!("shard {i} could not play its part: {why}"),
    }
}

/// Adds `more`'s histograms into `into`, metric by metric (exact: counts add up); the
/// metric whose counts cannot be added (a record beyond what a histogram can hold).
pub fn add_all(
    into: &mut BTreeMap<Metric, Histogram<u64>>,
    more: BTreeMap<Metric, Histogram<u64>>,
) -> Result<(), String> {
    for (m, h) in more {
        match into.get_mut(&m) {
            Some(sum) => {
                // A deserialized histogram has fixed bounds: let it grow, so that no
                // count is ever dropped (the sum stays exact).
                sum.auto(true);
                sum.add(&h).map_err(|e| format!("{}: {e:?}", m.name()))?;
            }
            None => {
                into.insert(m, h);
            }
        }
    }
    Ok(())
}

/// One recording from every shard's part of a scenario (by shard): every shard's
/// clients, writes and plans. Clients come back in the single-process order (client
/// `k` was shard `k mod N`'s `k / N`-th), acks and unknown writes in time order (the
/// shards share the scenario's clock origin), live publishing from the first shard's
/// start to the last one's end.
pub fn union(parts: Vec<Recording>) -> Recording {
    let n = parts.len();
    let mut out = Recording::default();
    let plans: Vec<Vec<harness_model::ClientId>> =
        parts.iter().map(|p| p.plan.clients.clone()).collect();
    let total: usize = plans.iter().map(Vec::len).sum();
    out.plan.clients = (0..total)
        .filter_map(|k| plans.get(k % n).and_then(|p| p.get(k / n)).cloned())
        .collect();
    // Shards that planned other than k mod N (never, by construction): kept, after.
    let placed: std::collections::BTreeSet<harness_model::ClientId> =
        out.plan.clients.iter().cloned().collect();
    for c in plans.iter().flatten() {
        if !placed.contains(c) {
            out.plan.clients.push(c.clone());
        }
    }
    for (i, p) in parts.into_iter().enumerate() {
        if i == 0 {
            out.expect = p.expect;
            out.integrity = p.integrity;
        }
        out.transcripts.extend(p.transcripts);
        out.acks.extend(p.acks);
        out.publish_failures.extend(p.publish_failures);
        out.indeterminate.extend(p.indeterminate);
        for (k, v) in p.gauges {
            out.gauges.entry(k).or_default().extend(v);
        }
        out.restarts.extend(p.restarts);
        for (k, v) in p.facts {
            out.facts.entry(k).or_insert(v);
        }
        out.unfinished.extend(p.unfinished);
        out.workload = union_workload(out.workload.take(), p.workload);
        out.jobs.extend(p.jobs);
        out.published = union_published(out.published.take(), p.published);
        out.plan.cuts.extend(p.plan.cuts);
    }
    let order: BTreeMap<&harness_model::ClientId, usize> = out
        .plan
        .clients
        .iter()
        .enumerate()
        .map(|(k, c)| (c, k))
        .collect();
    let mut transcripts = std::mem::take(&mut out.transcripts);
    transcripts.sort_by_key(|t| order.get(&t.client).copied().unwrap_or(usize::MAX));
    out.transcripts = transcripts;
    out.acks.sort_by_key(|a| (a.acked_us, a.publisher));
    out.indeterminate.sort_by_key(|w| (w.sent_us, w.publisher));
    for v in out.gauges.values_mut() {
        v.sort_by_key(|s| s.0);
    }
    out
}

/// Two shards' workload plans as one: the same plan, live publishing from the earlier
/// start to the later end.
fn union_workload(
    a: Option<harness_model::WorkloadPlan>,
    b: Option<harness_model::WorkloadPlan>,
) -> Option<harness_model::WorkloadPlan> {
    match (a, b) {
        (Some(mut a), Some(b)) => {
            a.live_from_us = a.live_from_us.min(b.live_from_us);
            a.published_us = a.published_us.max(b.published_us);
            Some(a)
        }
        (a, b) => a.or(b),
    }
}

/// Two shards' published contents as one.
fn union_published(
    a: Option<harness_model::Published>,
    b: Option<harness_model::Published>,
) -> Option<harness_model::Published> {
    match (a, b) {
        (Some(mut a), Some(b)) => {
            a.by_marker.extend(b.by_marker);
            Some(a)
        }
        (a, b) => a.or(b),
    }
}

/// Sends the merged run through `sink` as run events (what `run` sends), judging the
/// profile's thresholds and `extra` ones, and returns its summary, decided by
/// [`crate::outcome::decide`].
pub fn emit(
    merged: &Merged,
    extra: &[harness_report::Threshold],
    contracts: &Contracts,
    sink: &mut dyn FnMut(&RunEvent),
) -> RunSummary {
    let started = std::time::Instant::now();
    let mut meta = merged.meta.clone();
    meta.started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    sink(&RunEvent::RunStarted {
        meta,
        scenarios: merged.results.iter().map(|r| r.info.clone()).collect(),
    });
    for r in &merged.results {
        sink(&RunEvent::ScenarioStarted {
            info: r.info.clone(),
        });
        sink(&RunEvent::ScenarioFinished(Box::new(r.clone())));
    }
    let mut thresholds = merged.profile.thresholds.gates.clone();
    thresholds.extend(extra.iter().copied());
    let checks = harness_report::gate::check_thresholds(&thresholds, &merged.results);
    let findings = harness_report::gate::threshold_findings(&checks, contracts);
    sink(&RunEvent::RunGate {
        findings,
        thresholds: checks.clone(),
        baselined: Default::default(),
    });
    let summary = crate::outcome::decide(&merged.results, &checks, None, None);
    sink(&RunEvent::RunFinished {
        duration: started.elapsed(),
        summary: summary.clone(),
    });
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness_model::{ClientId, Transcript};

    fn part(clients: &[&str], acks: &[(u64, &str)]) -> Recording {
        let ids: Vec<ClientId> = clients.iter().map(|c| ClientId((*c).into())).collect();
        Recording {
            transcripts: ids
                .iter()
                .map(|c| Transcript {
                    client: c.clone(),
                    ..serde_json::from_value(serde_json::json!({
                        "client": "x", "stream": "events", "jobs": [], "initial_cursor": null, "from_start": false,
                        "connections": []
                    }))
                    .expect("a transcript")
                })
                .collect(),
            acks: acks
                .iter()
                .map(|(at, m)| {
                    serde_json::from_value(serde_json::json!({
                        "marker": m, "job": "j", "seq": null, "publisher": 0,
                        "sent_us": at, "acked_us": at
                    }))
                    .expect("an ack")
                })
                .collect(),
            plan: harness_model::ScenarioPlan {
                clients: ids,
                cuts: Default::default(),
            },
            ..Recording::default()
        }
    }

    /// Clients come back in the single-process order (round-robin over the shards),
    /// acks in time order, and nothing is lost or doubled.
    #[test]
    fn the_union_restores_the_single_process_order() {
        let u = union(vec![
            part(&["a#0", "a#3", "b#1"], &[(30, "m3"), (10, "m1")]),
            part(&["a#1", "a#4"], &[(20, "m2")]),
            part(&["a#2", "b#0"], &[]),
        ]);
        let names: Vec<&str> = u.plan.clients.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(names, ["a#0", "a#1", "a#2", "a#3", "a#4", "b#0", "b#1"]);
        let order: Vec<&str> = u.transcripts.iter().map(|t| t.client.0.as_str()).collect();
        assert_eq!(order, names);
        let acks: Vec<&str> = u.acks.iter().map(|a| a.marker.as_str()).collect();
        assert_eq!(acks, ["m1", "m2", "m3"]);
    }

    #[test]
    fn histograms_add_exactly() {
        let mut a = Histogram::<u64>::new(3).unwrap();
        let mut b = Histogram::<u64>::new(3).unwrap();
        a.record(5).unwrap();
        b.record(7).unwrap();
        b.record(9_000_000).unwrap();
        let mut sum = BTreeMap::from([(Metric::ConnectToOpen, a)]);
        add_all(&mut sum, BTreeMap::from([(Metric::ConnectToOpen, b)])).unwrap();
        let h = &sum[&Metric::ConnectToOpen];
        assert_eq!(h.len(), 3);
        assert_eq!(h.max(), h.highest_equivalent(9_000_000));
    }

    #[test]
    fn file_stems_are_safe() {
        assert_eq!(file_stem("CT-10/cut at 5"), "CT-10_cut_at_5");
    }
}
