//! Aligning shards (`--barrier-dir DIR`): a directory every shard can read and write
//! (one machine's `/tmp`, an NFS export, the shared report volume of a Kubernetes
//! job). At each phase of a split scenario every shard writes a marker file,
//! `DIR/seed-S-of-N/<scenario>/<phase>/<I>.json`, and waits until all N exist, with a
//! deadline: a shard that does not arrive in time makes the scenario an error with a
//! reason naming the phase and the shards missing, never a hang. A shard that gives a
//! scenario up (its setup failed, say) leaves `abort-<I>.txt` beside the phases, so the
//! others stop waiting at once with its reason.
//!
//! The phases of a split workload ([`Phase`]): `setup` (shard 0 made the channels;
//! its marker carries them, the head before them and the scenario's clock origin),
//! `backlog` (every shard's share of the backlog is acknowledged, so the head every
//! shard reads next is the same), `opened` (every shard's clients have their stream
//! open: the single-process order "clients open, then publish"), `published` (every
//! shard's live writes are answered; its marker carries its acks, which the other
//! shards' clients are owed too, so that no client stops before it has caught up with
//! every shard's writes), and `done` (every
//! shard has collected its recording: shard 0 may delete the channels, and the next
//! scenario starts on every shard from the same line).
//!
//! Why files rather than a coordinator process: nothing to start, nothing to reach
//! over the network under test, and the directory a Kubernetes job shares for its
//! reports anyway works as it is. `--start-at` aligns the start of the run; the
//! barriers keep the shards aligned through it. Use a fresh directory per run: a
//! marker of this shard found already written is an error (an earlier run's).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::shard::ShardSpec;

/// How often a waiting shard looks for the others' markers.
const POLL: Duration = Duration::from_millis(20);

/// A point of a split scenario every shard must reach before any goes on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Shard 0 set the scenario up (channels, head, clock origin).
    Setup,
    /// Every shard's backlog writes are answered.
    Backlog,
    /// Every shard's clients have their streams open.
    Opened,
    /// Every shard's live writes are answered; each marker carries its acks.
    Published,
    /// Every shard has its recording.
    Done,
}

impl Phase {
    /// The phase's directory name.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Backlog => "backlog",
            Phase::Opened => "opened",
            Phase::Published => "published",
            Phase::Done => "done",
        }
    }
}

/// Why a shard could not pass a barrier.
#[derive(Debug, thiserror::Error)]
pub enum BarrierError {
    /// Reading or writing the barrier directory failed.
    #[error("barrier directory {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// This shard's marker was there before it arrived: an earlier run's directory.
    #[error("barrier marker {} exists already: use a fresh --barrier-dir for every run", path.display())]
    Stale {
        /// The marker.
        path: PathBuf,
    },
    /// Not every shard arrived within the deadline.
    #[error(
        "shard barrier '{phase}' of {scenario}: {arrived} of {count} shards arrived within {waited:?} (missing: {missing})"
    )]
    TimedOut {
        /// The phase.
        phase: &'static str,
        /// The scenario id.
        scenario: String,
        /// Shards that arrived.
        arrived: u32,
        /// Shards in the run.
        count: u32,
        /// How long this shard waited.
        waited: Duration,
        /// The shards that did not arrive, e.g. `2, 3`.
        missing: String,
    },
    /// Another shard gave the scenario up.
    #[error("shard {shard} gave {scenario} up: {reason}")]
    Aborted {
        /// The shard that gave up.
        shard: u32,
        /// The scenario id.
        scenario: String,
        /// Its reason.
        reason: String,
    },
    /// A marker could not be read as JSON.
    #[error("barrier marker {}: {source}", path.display())]
    Marker {
        /// The marker.
        path: PathBuf,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
}

/// One shard's view of the barrier directory of one run.
#[derive(Clone, Debug)]
pub struct Barrier {
    root: PathBuf,
    spec: ShardSpec,
    /// The longest a shard waits at a phase (beyond the scenario's own time at `done`).
    pub timeout: Duration,
}

impl Barrier {
    /// The barrier of the run with `seed` split as `spec`, under `dir`.
    pub fn new(dir: &Path, seed: u64, spec: ShardSpec, timeout: Duration) -> Barrier {
        Barrier {
            root: dir.join(format!("seed-{seed}-of-{}", spec.count())),
            spec,
            timeout,
        }
    }

    fn scenario_dir(&self, scenario: &str) -> PathBuf {
        self.root.join(crate::merge::file_stem(scenario))
    }

    /// Writes this shard's marker for `phase` of `scenario` (with `payload`), then waits
    /// until every shard's is there, at most `timeout`; returns every shard's payload,
    /// by shard.
    pub async fn arrive(
        &self,
        scenario: &str,
        phase: Phase,
        payload: &Value,
        timeout: Duration,
    ) -> Result<Vec<Value>, BarrierError> {
        let dir = self.scenario_dir(scenario).join(phase.name());
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| BarrierError::Io { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mine = dir.join(format!("{}.json", self.spec.index()));
        if mine.exists() {
            return Err(BarrierError::Stale { path: mine });
        }
        let tmp = dir.join(format!(".{}.tmp", self.spec.index()));
        std::fs::write(&tmp, payload.to_string()).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &mine).map_err(io(&mine))?;
        let started = Instant::now();
        loop {
            self.aborted(scenario)?;
            let missing: Vec<u32> = self
                .spec
                .all()
                .map(|s| s.index())
                .filter(|i| !dir.join(format!("{i}.json")).exists())
                .collect();
            if missing.is_empty() {
                return self.read_all(&dir);
            }
            if started.elapsed() >= timeout {
                let count = self.spec.count();
                return Err(BarrierError::TimedOut {
                    phase: phase.name(),
                    scenario: scenario.to_owned(),
                    arrived: count - missing.len() as u32,
                    count,
                    waited: started.elapsed(),
                    missing: missing
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            // Polling a shared directory: the deadline above bounds it.
            tokio::time::sleep(POLL).await;
        }
    }

    /// Every shard's payload at a phase all have reached.
    fn read_all(&self, dir: &Path) -> Result<Vec<Value>, BarrierError> {
        self.spec
            .all()
            .map(|s| {
                let path = dir.join(format!("{}.json", s.index()));
                let text = std::fs::read_to_string(&path).map_err(|source| BarrierError::Io {
                    path: path.clone(),
                    source,
                })?;
                serde_json::from_str(&text).map_err(|source| BarrierError::Marker { path, source })
            })
            .collect()
    }

    /// An error when another shard gave `scenario` up.
    fn aborted(&self, scenario: &str) -> Result<(), BarrierError> {
        let dir = self.scenario_dir(scenario);
        for s in self.spec.all().filter(|s| *s != self.spec) {
            let path = dir.join(format!("abort-{}.txt", s.index()));
            if let Ok(reason) = std::fs::read_to_string(&path) {
                return Err(BarrierError::Aborted {
                    shard: s.index(),
                    scenario: scenario.to_owned(),
                    reason,
                });
            }
        }
        Ok(())
    }

    /// Tells the other shards this one gave `scenario` up, and why (best effort: a
    /// failure to write only makes them wait for their deadline).
    pub fn abort(&self, scenario: &str, reason: &str) {
        let dir = self.scenario_dir(scenario);
        let path = dir.join(format!("abort-{}.txt", self.spec.index()));
        let written = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, reason));
        if let Err(e) = written {
            tracing::warn!("could not write {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn barriers(dir: &Path, n: u32) -> Vec<Barrier> {
        (0..n)
            .map(|i| {
                let spec = ShardSpec::new(i, n).unwrap();
                Barrier::new(dir, 7, spec, Duration::from_secs(5))
            })
            .collect()
    }

    #[tokio::test]
    async fn every_shard_passes_once_all_arrived_and_sees_every_payload() {
        let dir = tempfile::tempdir().unwrap();
        let all = barriers(dir.path(), 3);
        let waits = all.iter().enumerate().map(|(i, b)| {
            let payload = serde_json::json!({ "shard": i });
            async move {
                b.arrive("CT-1/x", Phase::Setup, &payload, Duration::from_secs(10))
                    .await
            }
        });
        let got = futures_util::future::join_all(waits).await;
        for g in got {
            let payloads = g.unwrap();
            assert_eq!(payloads.len(), 3);
            assert_eq!(payloads[2]["shard"], 2);
        }
        // The same phase again: an earlier run's marker.
        let again = all[0].arrive("CT-1/x", Phase::Setup, &Value::Null, Duration::ZERO);
        assert!(matches!(again.await, Err(BarrierError::Stale { .. })));
    }

    #[tokio::test]
    async fn a_missing_shard_times_out_with_a_reason_and_an_abort_stops_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let all = barriers(dir.path(), 3);
        let e = all[0]
            .arrive(
                "CT-1/x",
                Phase::Opened,
                &Value::Null,
                Duration::from_millis(50),
            )
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("1 of 3") && text.contains("missing: 1, 2"),
            "{text}"
        );
        all[2].abort("CT-1/y", "setup failed");
        let e = all[1]
            .arrive(
                "CT-1/y",
                Phase::Setup,
                &Value::Null,
                Duration::from_secs(30),
            )
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("shard 2 gave CT-1/y up: setup failed"),
            "{e}"
        );
    }
}
