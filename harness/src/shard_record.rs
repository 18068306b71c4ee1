//! What a shard writes for `sse-harness merge` beside its report: `shard.json.gz`, one
//! JSON object (format [`FORMAT`], version [`VERSION`]), gzip-compressed (recordings
//! repeat their field names and markers: about a tenth of the JSON's size; `zcat` reads
//! it):
//!
//! ```text
//! { "format": "sse-harness-shard", "version": 1, "seed": 7,
//!   "shard": { "index": 1, "count": 4 }, "profile": "spine", "meta": { RunMeta },
//!   "scenarios": [
//!     { "info": { id, group, title, file }, "families": ["resume", …],
//!       "replay_command": "…",
//!       "kind": "recorded", "duration_us": …, "recording": { Recording },
//!       "histograms": { "connect_to_open": "<HdrHistogram V2, base64>", … } },
//!     { …, "kind": "final", "result": { verdict, findings, duration_us, stats,
//!       histograms, facts } } ] }
//! ```
//!
//! A `recorded` scenario is this shard's part of a split one: its whole recording
//! (transcripts, acks, failed and indeterminate writes, gauges, the clients it planned)
//! and the histograms of the metrics its recording measures alone
//! ([`shard_local`]: one client's connection times), serialized exactly (HdrHistogram
//! V2, base64) so that merge adds them without loss. A `final` scenario's result is
//! already what it is: played whole by shard 0 (probes, browsers, toxics), or skipped,
//! or an error. Version 1 is read only by a merge of the same version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use harness_model::{
    Family, Finding, Metric, Recording, RunMeta, ScenarioInfo, ScenarioResult, ScenarioStats,
    Verdict,
};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};

use crate::barrier::Barrier;
use crate::shard::ShardSpec;

/// The `format` field of a shard record.
pub const FORMAT: &str = "sse-harness-shard";
/// The version of the record this harness writes and reads.
pub const VERSION: u32 = 1;
/// The record's file name inside a shard's report directory.
pub const FILE_NAME: &str = "shard.json.gz";

/// The most a record may take once decompressed (a larger one is refused, not read
/// into memory without bound): 4 GiB.
pub const MAX_RECORD_BYTES: u64 = 4 << 30;

/// Whether a shard's recording alone measures `m` exactly for its clients (one
/// connection's own times), so that the shards' histograms add up to the whole run's;
/// the others pair a client's receipt with another shard's publish, and merge measures
/// them from the united recording.
pub fn shard_local(m: Metric) -> bool {
    matches!(
        m,
        Metric::ConnectToOpen | Metric::ConnectToHead | Metric::ReplayRate
    )
}

/// One shard's record of a run.
#[derive(Debug, Serialize, Deserialize)]
pub struct ShardRecord {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`] when written by this harness.
    pub version: u32,
    /// The run seed (every shard of one run has the same).
    pub seed: u64,
    /// Which shard wrote it.
    pub shard: ShardSpec,
    /// The profile the run judged with (`--profile`): merge loads it to judge alike.
    pub profile: String,
    /// The shard's run announcement (target, limits, versions).
    pub meta: RunMeta,
    /// Every scenario of the run, in run order.
    pub scenarios: Vec<ShardEntry>,
}

/// One scenario in a shard record.
#[derive(Debug, Serialize, Deserialize)]
pub struct ShardEntry {
    /// Which scenario.
    pub info: ScenarioInfo,
    /// The contract families that judge it.
    pub families: Vec<Family>,
    /// How to replay it alone.
    pub replay_command: String,
    /// What this shard has of it.
    #[serde(flatten)]
    pub part: EntryPart,
}

/// What a shard has of one scenario.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EntryPart {
    /// Its part of a split scenario, for merge to judge.
    Recorded {
        /// How long it played, in µs.
        duration_us: u64,
        /// Everything it recorded.
        recording: Box<Recording>,
        /// The [`shard_local`] metrics of its recording.
        histograms: Histograms,
    },
    /// A result that is final as it is (played whole, skipped, an error).
    Final {
        /// The result.
        result: StoredResult,
    },
}

/// A scenario result as a record keeps it.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredResult {
    /// The verdict.
    pub verdict: Verdict,
    /// The findings.
    pub findings: Vec<Finding>,
    /// How long it ran, in µs.
    pub duration_us: u64,
    /// Counters.
    pub stats: ScenarioStats,
    /// Histograms, exactly.
    pub histograms: Histograms,
    /// Facts.
    pub facts: BTreeMap<String, serde_json::Value>,
}

impl StoredResult {
    /// The record of `r`.
    pub fn of(r: &ScenarioResult) -> StoredResult {
        StoredResult {
            verdict: r.verdict.clone(),
            findings: r.findings.clone(),
            duration_us: r.duration.as_micros() as u64,
            stats: r.stats.clone(),
            histograms: Histograms(r.histograms.clone()),
            facts: r.facts.clone(),
        }
    }

    /// The result again, with the scenario's announcement and replay command.
    pub fn into_result(self, info: ScenarioInfo, replay_command: String) -> ScenarioResult {
        ScenarioResult {
            info,
            verdict: self.verdict,
            findings: self.findings,
            duration: std::time::Duration::from_micros(self.duration_us),
            stats: self.stats,
            histograms: self.histograms.0,
            replay_command,
            facts: self.facts,
        }
    }
}

/// Histograms by metric, serialized exactly: each as HdrHistogram V2 bytes in base64.
#[derive(Clone, Debug, Default)]
pub struct Histograms(pub BTreeMap<Metric, Histogram<u64>>);

impl Serialize for Histograms {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = BTreeMap::new();
        for (m, h) in &self.0 {
            let mut bytes = Vec::new();
            V2Serializer::new()
                .serialize(h, &mut bytes)
                .map_err(|e| serde::ser::Error::custom(format!("{}: {e:?}", m.name())))?;
            out.insert(*m, base64::engine::general_purpose::STANDARD.encode(bytes));
        }
        out.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Histograms {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Histograms, D::Error> {
        let text: BTreeMap<Metric, String> = BTreeMap::deserialize(d)?;
        let mut out = BTreeMap::new();
        for (m, b64) in text {
            let bad = |e: String| serde::de::Error::custom(format!("{}: {e}", m.name()));
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| bad(e.to_string()))?;
            let h: Histogram<u64> = Deserializer::new()
                .deserialize(&mut bytes.as_slice())
                .map_err(|e| bad(format!("{e:?}")))?;
            out.insert(m, h);
        }
        Ok(Histograms(out))
    }
}

/// A shard's run in progress: which shard, its barrier, and the entries merge reads.
#[derive(Debug)]
pub struct Sharding {
    /// This shard.
    pub spec: ShardSpec,
    /// Where it aligns with the others.
    pub barrier: std::sync::Arc<Barrier>,
    entries: Mutex<Vec<ShardEntry>>,
}

impl Sharding {
    /// Shard `spec`'s run, aligned through `barrier`.
    pub fn new(spec: ShardSpec, barrier: Barrier) -> Sharding {
        Sharding {
            spec,
            barrier: std::sync::Arc::new(barrier),
            entries: Mutex::new(Vec::new()),
        }
    }

    /// Adds a scenario's entry.
    pub fn push(&self, e: ShardEntry) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e);
    }

    /// The entries so far, taken.
    pub fn take(&self) -> Vec<ShardEntry> {
        std::mem::take(&mut *self.entries.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Why a shard record could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file could not be written or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a shard record's JSON.
    #[error("{}: not a shard record: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// The file is a record of another format or version.
    #[error("{}: format {format:?} version {version}; this harness reads {FORMAT:?} version {VERSION}", path.display())]
    Version {
        /// The file.
        path: PathBuf,
        /// Its format.
        format: String,
        /// Its version.
        version: u32,
    },
}

impl ShardRecord {
    /// Writes the record as `dir/shard.json.gz` (through a temporary file).
    pub fn write(&self, dir: &Path) -> Result<PathBuf, RecordError> {
        use std::io::Write as _;
        let path = dir.join(FILE_NAME);
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| RecordError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let tmp = dir.join(format!("{FILE_NAME}.tmp"));
        let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        let mut gz = flate2::write::GzEncoder::new(
            std::io::BufWriter::new(file),
            flate2::Compression::fast(),
        );
        serde_json::to_writer(&mut gz, self).map_err(|source| RecordError::Json {
            path: path.clone(),
            source,
        })?;
        gz.finish().and_then(|mut w| w.flush()).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        Ok(path)
    }

    /// Reads `dir/shard.json.gz` (or `dir` itself when it is the file), checking its
    /// format and version before anything else.
    pub fn read(dir: &Path) -> Result<ShardRecord, RecordError> {
        use std::io::Read as _;
        let path = if dir.is_dir() {
            dir.join(FILE_NAME)
        } else {
            dir.to_owned()
        };
        let io = |source| RecordError::Io {
            path: path.clone(),
            source,
        };
        let file = std::fs::File::open(&path).map_err(io)?;
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(std::io::BufReader::new(file))
            .take(MAX_RECORD_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(io)?;
        if text.len() as u64 > MAX_RECORD_BYTES {
            return Err(io(std::io::Error::other(format!(
                "larger than {MAX_RECORD_BYTES} bytes decompressed"
            ))));
        }
        let json = |source| RecordError::Json {
            path: path.clone(),
            source,
        };
        let head: serde_json::Value = serde_json::from_slice(&text).map_err(json)?;
        let format = head["format"].as_str().unwrap_or_default().to_owned();
        let version = head["version"].as_u64().unwrap_or_default() as u32;
        if format != FORMAT || version != VERSION {
            return Err(RecordError::Version {
                path,
                format,
                version,
            });
        }
        serde_json::from_value(head).map_err(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_round_trip_exactly() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in [1, 17, 250, 99_999, 1_000_000_007] {
            h.record(v).unwrap();
        }
        let hs = Histograms([(Metric::AckToDeliver, h.clone())].into());
        let text = serde_json::to_string(&hs).unwrap();
        assert!(text.contains("\"ack_to_deliver\""), "{text}");
        let back: Histograms = serde_json::from_str(&text).unwrap();
        let got = &back.0[&Metric::AckToDeliver];
        assert_eq!(got, &h);
        assert_eq!(got.len(), 5);
    }
}
