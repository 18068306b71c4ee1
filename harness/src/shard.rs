//! Splitting one run over several processes (`sse-harness run --shard I/N`), each on
//! its own machine or network namespace, so that the N shards together offer exactly
//! the load of the single-process run of the same seed.
//!
//! **Plan whole, keep a part.** Every shard plans every scenario exactly as a single
//! process does: the same seeded random generator, drawn in the same order (the tag,
//! hence the channel names and markers; every client's cut plan), so nothing random
//! depends on N. It then keeps only its own part:
//!
//! - **clients**: client `k` of the scenario's flat client list (groups in file order,
//!   clients in group order) belongs to shard `k mod N` ([`ShardSpec::owns_client`]).
//!   Round-robin rather than contiguous blocks, so that every group is spread over
//!   every shard (a group of slow readers is not all on one machine) and the merge
//!   restores the single-process order by interleaving;
//! - **publishers**: publisher `p` of `P` belongs to shard `p mod N` when `P ≥ N`;
//!   when `P < N`, the shards `p, p + P, p + 2P, …` share publisher `p`, taking its
//!   requests in turn ([`ShardSpec::request_owner`]). A request keeps its number, its
//!   markers, its channel and its place in the publisher's schedule, so the writes of
//!   all shards are exactly the single-process writes (`publisher::share` decides
//!   each publisher's count, as before).
//!
//! **What runs whole.** Probes (crash-restart, liveness, stalled-reader, …), scenarios
//! with browser clients and scenarios with `[[toxics]]` are not split: shard 0 plays
//! and judges them alone, the other shards report them skipped with the reason
//! [`RUN_WHOLE_BY_SHARD_0`] ([`runs_whole`]) and wait for shard 0 to finish them.
//!
//! **Alignment** is [`crate::barrier`]'s: a shared directory of marker files, one per
//! shard, scenario and phase; shard 0's setup marker carries what the others need (the
//! channels, the head before them, the scenario's clock origin as wall-clock time).

use std::fmt;
use std::str::FromStr;

use crate::scenario::Scenario;

/// Why a scenario is not split: the reason the shards other than 0 report it skipped.
pub const RUN_WHOLE_BY_SHARD_0: &str = "run whole by shard 0";

/// Which part of the run a process plays: shard `index` of `count` (`0/1` is the whole).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ShardSpec {
    index: u32,
    count: u32,
}

/// A `--shard` value that is not `I/N` with `0 ≤ I < N`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardSpecError {
    /// Not two numbers around a slash.
    #[error("--shard {0:?}: expected I/N, e.g. 0/4 (shard I of N, counted from 0)")]
    Malformed(String),
    /// No shards at all.
    #[error("--shard {0:?}: N must be at least 1")]
    NoShards(String),
    /// The index is not below the count.
    #[error("--shard {0:?}: I must be below N (shards are counted from 0: 0/{1} … {max}/{1})", max = .1 - 1)]
    OutOfRange(String, u32),
}

impl ShardSpec {
    /// The whole run: one process plays everything.
    pub const WHOLE: ShardSpec = ShardSpec { index: 0, count: 1 };

    /// Shard `index` of `count`.
    pub fn new(index: u32, count: u32) -> Result<ShardSpec, ShardSpecError> {
        let text = format!("{index}/{count}");
        if count == 0 {
            return Err(ShardSpecError::NoShards(text));
        }
        if index >= count {
            return Err(ShardSpecError::OutOfRange(text, count));
        }
        Ok(ShardSpec { index, count })
    }

    /// This shard's number, from 0.
    pub fn index(self) -> u32 {
        self.index
    }

    /// How many shards the run has.
    pub fn count(self) -> u32 {
        self.count
    }

    /// Whether this process plays the whole run (no other shard).
    pub fn is_whole(self) -> bool {
        self.count == 1
    }

    /// Whether this is shard 0: it sets scenarios up, plays the unsplit ones, cleans up.
    pub fn is_leader(self) -> bool {
        self.index == 0
    }

    /// Whether client `k` of a scenario's flat client list is this shard's.
    pub fn owns_client(self, k: usize) -> bool {
        k % self.count as usize == self.index as usize
    }

    /// The shard that sends request `request` of publisher `p` of `publishers`.
    pub fn request_owner(self, publishers: u32, p: u32, request: u64) -> u32 {
        let (n, pubs) = (self.count, publishers.max(1));
        if pubs >= n {
            return p % n;
        }
        // Shards p, p + P, p + 2P, … < N share publisher p, a request each in turn.
        let sharing = (n - 1 - p) / pubs + 1;
        p + pubs * (request % u64::from(sharing)) as u32
    }

    /// Whether this shard sends request `request` of publisher `p` of `publishers`.
    pub fn owns_request(self, publishers: u32, p: u32, request: u64) -> bool {
        self.request_owner(publishers, p, request) == self.index
    }

    /// Every shard of this run.
    pub fn all(self) -> impl Iterator<Item = ShardSpec> {
        let count = self.count;
        (0..count).map(move |index| ShardSpec { index, count })
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for ShardSpec {
    type Err = ShardSpecError;

    fn from_str(s: &str) -> Result<ShardSpec, ShardSpecError> {
        let malformed = || ShardSpecError::Malformed(s.to_owned());
        let (i, n) = s.trim().split_once('/').ok_or_else(malformed)?;
        let i: u32 = i.trim().parse().map_err(|_| malformed())?;
        let n: u32 = n.trim().parse().map_err(|_| malformed())?;
        match ShardSpec::new(i, n) {
            Err(ShardSpecError::NoShards(_)) => Err(ShardSpecError::NoShards(s.to_owned())),
            Err(ShardSpecError::OutOfRange(_, n)) => {
                Err(ShardSpecError::OutOfRange(s.to_owned(), n))
            }
            other => other,
        }
    }
}

/// Why `sc` is played whole by shard 0 instead of split, if it is: probes step through
/// one target's life, browsers share one Chromium, toxic proxies keep one clock.
pub fn runs_whole(sc: &Scenario) -> Option<&'static str> {
    if sc.probe.is_some() {
        Some("a probe")
    } else if sc.has_browsers() {
        Some("browser clients")
    } else if !sc.toxics.is_empty() {
        Some("toxic proxies")
    } else {
        None
    }
}

/// One scenario's part in this process: which clients and requests are its own, and
/// how it aligns with the other shards ([`crate::barrier`]). The whole run's part owns
/// everything and never waits.
#[derive(Clone, Debug)]
pub struct Part {
    /// This shard.
    pub spec: ShardSpec,
    barrier: Option<std::sync::Arc<crate::barrier::Barrier>>,
    scenario: String,
}

impl Part {
    /// The whole scenario, in one process.
    pub fn whole() -> Part {
        Part {
            spec: ShardSpec::WHOLE,
            barrier: None,
            scenario: String::new(),
        }
    }

    /// Shard `spec`'s part of `scenario`, aligned through `barrier`.
    pub fn new(
        spec: ShardSpec,
        barrier: std::sync::Arc<crate::barrier::Barrier>,
        scenario: &str,
    ) -> Part {
        Part {
            spec,
            barrier: Some(barrier),
            scenario: scenario.to_owned(),
        }
    }

    /// Waits until every shard reached `phase` (at most the barrier's timeout, and never
    /// past `until`); every shard's payload, by shard (the whole run's: its own).
    pub async fn align(
        &self,
        phase: crate::barrier::Phase,
        payload: serde_json::Value,
        until: tokio::time::Instant,
    ) -> Result<Vec<serde_json::Value>, crate::error::HarnessError> {
        let Some(b) = &self.barrier else {
            return Ok(vec![payload]);
        };
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        b.arrive(&self.scenario, phase, &payload, b.timeout.min(left))
            .await
            .map_err(|e| {
                let kind = crate::error::HarnessErrorKind::Target;
                crate::error::HarnessError::new(kind, e.to_string())
            })
    }

    /// Tells the other shards this one gave the scenario up.
    pub fn abort(&self, reason: &str) {
        if let Some(b) = &self.barrier {
            b.abort(&self.scenario, reason);
        }
    }
}

/// Microseconds since the Unix epoch now, by this machine's clock.
pub fn unix_us_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The local instant at the wall-clock time `unix_us` (µs since the Unix epoch): how a
/// shard takes shard 0's scenario clock origin as its own, so that every shard's
/// transcript and ack times count from the same moment (as exact as the machines'
/// clocks agree; on one machine, to the microsecond).
pub fn instant_at(unix_us: u64) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    let wall = unix_us_now();
    if wall >= unix_us {
        let ago = std::time::Duration::from_micros(wall - unix_us);
        now.checked_sub(ago).unwrap_or(now)
    } else {
        now + std::time::Duration::from_micros(unix_us - wall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publisher::share;

    #[test]
    fn shard_specs_parse_and_bad_ones_say_why() {
        let s: ShardSpec = "2/4".parse().unwrap();
        assert_eq!((s.index(), s.count()), (2, 4));
        assert_eq!(s.to_string(), "2/4");
        assert!("0/1".parse::<ShardSpec>().unwrap().is_whole());
        let e = "4/4".parse::<ShardSpec>().unwrap_err();
        assert!(e.to_string().contains("0/4 … 3/4"), "{e}");
        assert!(matches!(
            "1/0".parse::<ShardSpec>(),
            Err(ShardSpecError::NoShards(_))
        ));
        for bad in ["", "1", "a/b", "1/2/3", "-1/2"] {
            assert!(
                matches!(bad.parse::<ShardSpec>(), Err(ShardSpecError::Malformed(_))),
                "{bad}"
            );
        }
    }

    /// Every client is played by exactly one shard, for any N.
    #[test]
    fn every_client_belongs_to_exactly_one_shard() {
        for n in 1..=7 {
            let spec = ShardSpec::new(0, n).unwrap();
            for k in 0..50 {
                let owners = spec.all().filter(|s| s.owns_client(k)).count();
                assert_eq!(owners, 1, "client {k} of N={n}");
            }
        }
    }

    /// The shards' writes add up to exactly the single-process writes: every request
    /// of every publisher has one owner, whether there are more publishers than shards
    /// or fewer; and every shard gets some when there are enough requests.
    #[test]
    fn every_request_of_every_publisher_belongs_to_exactly_one_shard() {
        for n in 1..=6u32 {
            for publishers in 1..=8u32 {
                let spec = ShardSpec::new(0, n).unwrap();
                let mut per_shard = vec![0u64; n as usize];
                for p in 0..publishers {
                    for r in 0..share(100, publishers, p) {
                        let owners: Vec<u32> = spec
                            .all()
                            .filter(|s| s.owns_request(publishers, p, r))
                            .map(|s| s.index())
                            .collect();
                        assert_eq!(owners.len(), 1, "N={n} P={publishers} p={p} r={r}");
                        per_shard[owners[0] as usize] += 1;
                    }
                }
                assert_eq!(per_shard.iter().sum::<u64>(), 100);
                if n <= 100 {
                    assert!(per_shard.iter().all(|&w| w > 0), "{per_shard:?}");
                }
            }
        }
    }

    #[test]
    fn a_wall_clock_time_maps_to_the_local_instant_it_was() {
        let before = tokio::time::Instant::now();
        let at = instant_at(unix_us_now());
        let after = tokio::time::Instant::now();
        assert!(
            at + std::time::Duration::from_millis(5) >= before
                && at <= after + std::time::Duration::from_millis(5)
        );
    }
}
