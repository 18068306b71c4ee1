//! Why a scenario is inconclusive: the ways a run can fail to do what it set out to
//! do, so that a clean recording proves nothing. A scenario passes only when every
//! MUST held **and** none of these applies; the checks crate decides them
//! (`harness_checks::evidence`), from the recording and the plan facts it carries
//! ([`crate::ScenarioPlan`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::vocab::ClientId;

/// One reason a scenario did not exercise what it claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Shortfall {
    /// Planned clients left no transcript (their task timed out, panicked or was aborted).
    ClientsMissing {
        /// Clients the scenario planned.
        planned: u64,
        /// Transcripts recorded.
        recorded: u64,
        /// The first missing clients, by name (at most a few).
        missing: Vec<ClientId>,
    },
    /// Planned cuts never happened (a stream that ended first, a client that stopped),
    /// or none did at all.
    CutsNotExecuted {
        /// Cuts the scenario planned over all its clients.
        planned: u64,
        /// Cuts the clients made.
        executed: u64,
        /// Aimed cuts whose place the target's framing never had (a legal choice: they
        /// are not missing, but they are not executed either).
        #[serde(default)]
        without_place: u64,
    },
    /// A slow-reading group meant to push the target into backpressure never ran far
    /// enough behind the writes to do so.
    NoBackpressure {
        /// The group.
        group: String,
        /// The largest lag any of its clients reached, in bytes.
        max_lag_bytes: u64,
        /// The lag the scenario needs to claim backpressure, in bytes.
        needed_bytes: u64,
    },
    /// A client received no data event at all although writes were owed to it.
    NothingDelivered {
        /// The client.
        client: ClientId,
        /// How many acknowledged writes it was owed.
        owed: u64,
    },
    /// Publishing ended so late that the clients did not have the stall window left to
    /// receive what they were owed before the deadline.
    PublishingLate {
        /// When the last publish was answered, in ms since the scenario started.
        ended_ms: u64,
        /// The latest end that leaves the clients the stall window, in ms.
        latest_ms: u64,
    },
    /// Writes the scenario planned were never sent (the deadline came first).
    PublishingIncomplete {
        /// Writes planned.
        planned: u64,
        /// Writes sent (acknowledged or failed).
        sent: u64,
    },
    /// The scenario cuts publish answers on purpose, yet no write's fate was unknown:
    /// the cut never happened, so nothing about indeterminate writes was shown.
    NoIndeterminateWrite {
        /// Writes that were acknowledged or failed instead.
        writes: u64,
    },
    /// The run's polite limits (`--max-clients`, `--scale`) leave the scenario less
    /// than it needs to do what it sets out to do, so it was not played.
    LimitsTooTight {
        /// What is short, e.g. `concurrent clients`.
        what: String,
        /// How many the scenario needs at least.
        needed: u64,
        /// How many the limits allow.
        allowed: u64,
    },
    /// A toxic the scenario declared (`[[toxics]]`) never acted on any connection
    /// (its window passed with no connection, or its toxicity spared them all).
    ToxicIdle {
        /// `publisher` or `subscriber`.
        path: String,
        /// The toxic's name.
        toxic: String,
    },
    /// The proxy held a client's open stream half-open (a `timeout` stall) and the
    /// client did not give up on it for silence: the scenario did not show that a
    /// half-open path is detected.
    StallNotDetected {
        /// The client.
        client: ClientId,
        /// Its connection (0-based).
        conn: u32,
    },
    /// The subscriber path reset every stream in a window, yet a browser that must
    /// keep reading never opened a stream again: the resets never reached it (it
    /// opened after them), so it showed nothing about resuming.
    BrowserNotCut {
        /// The browser client.
        client: ClientId,
        /// The reset toxics that should have reached it.
        toxics: Vec<String>,
    },
    /// Fewer of a stalled-reader probe's connections were stalled by the proxy than
    /// clients connected (a client that connected after the stall began never opened).
    StallNotReached {
        /// Connections the proxy stalled while open.
        stalled: u32,
        /// Clients the probe connected.
        clients: u32,
    },
    /// A stalled-reader probe could not publish enough after the stall began to fill
    /// the buffers between the server and its dead peers: nothing shows the server's
    /// writes ever stalled.
    StallNotFilled {
        /// Bytes of event data acknowledged after the stall began.
        published: u64,
        /// Bytes the probe needed.
        needed: u64,
    },
    /// A shard recorded its part of a split scenario (`run --shard I/N`): whether
    /// the contracts held across every shard's clients and publishers is for
    /// `sse-harness merge` to judge, so this shard claims nothing.
    JudgedByMerge {
        /// The shard, `I/N`.
        shard: String,
    },
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shortfall::ClientsMissing {
                planned,
                recorded,
                missing,
            } => {
                let names: Vec<&str> = missing.iter().map(|c| c.0.as_str()).collect();
                write!(
                    f,
                    "{recorded} of {planned} planned clients left a transcript (missing: {})",
                    names.join(", ")
                )
            }
            Shortfall::CutsNotExecuted {
                planned,
                executed,
                without_place,
            } => {
                write!(f, "{executed} of {planned} planned cuts executed")?;
                match without_place {
                    0 => Ok(()),
                    n => write!(f, " ({n} aimed at a place the target's framing never had)"),
                }
            }
            Shortfall::NoBackpressure {
                group,
                max_lag_bytes,
                needed_bytes,
            } => write!(
                f,
                "group {group} never felt backpressure: it lagged at most {max_lag_bytes} bytes, \
                 {needed_bytes} needed"
            ),
            Shortfall::NothingDelivered { client, owed } => write!(
                f,
                "client {client} received no data event while {owed} write(s) were owed to it"
            ),
            Shortfall::PublishingLate {
                ended_ms,
                latest_ms,
            } => write!(
                f,
                "publishing ended at {ended_ms} ms, past {latest_ms} ms (the deadline less the stall window)"
            ),
            Shortfall::PublishingIncomplete { planned, sent } => {
                write!(f, "{sent} of {planned} planned writes were sent")
            }
            Shortfall::NoIndeterminateWrite { writes } => write!(
                f,
                "no publish lost its answer although the scenario cuts answers ({writes} write(s) acknowledged or failed)"
            ),
            Shortfall::LimitsTooTight {
                what,
                needed,
                allowed,
            } => write!(
                f,
                "the run's limits allow {allowed} {what}, the scenario needs at least {needed}"
            ),
            Shortfall::ToxicIdle { path, toxic } => write!(
                f,
                "toxic {toxic} on the {path} path never acted on a connection"
            ),
            Shortfall::StallNotDetected { client, conn } => write!(
                f,
                "client {client} conn {conn} sat on a half-open stream without giving up on its silence"
            ),
            Shortfall::StallNotReached { stalled, clients } => write!(
                f,
                "the proxy stalled {stalled} of {clients} open streams (the others never opened before the stall)"
            ),
            Shortfall::JudgedByMerge { shard } => write!(
                f,
                "shard {shard} recorded its part; the contracts span every shard: judged by `sse-harness merge`"
            ),
            Shortfall::BrowserNotCut { client, toxics } => write!(
                f,
                "{client}, a browser, never opened a stream again: the subscriber path's resets ({}) never reached it",
                toxics.join(", ")
            ),
            Shortfall::StallNotFilled { published, needed } => write!(
                f,
                "only {published} of {needed} bytes were published after the stall began: the server's writes may never have stalled"
            ),
        }
    }
}

/// The one line a report shows for a list of shortfalls (escaped: names are the
/// harness's, but a group or client name comes from a scenario file).
pub fn one_line(reasons: &[Shortfall]) -> String {
    let parts: Vec<String> = reasons.iter().map(Shortfall::to_string).collect();
    crate::escape::untrusted(&parts.join("; ")).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_renders_on_one_line() {
        let r = [
            Shortfall::ClientsMissing {
                planned: 3,
                recorded: 2,
                missing: vec![ClientId("a#1".into())],
            },
            Shortfall::CutsNotExecuted {
                planned: 30,
                executed: 25,
                without_place: 3,
            },
        ];
        let s = one_line(&r);
        assert_eq!(
            s,
            "2 of 3 planned clients left a transcript (missing: a#1); 25 of 30 planned cuts executed (3 aimed at a place the target's framing never had)"
        );
        assert!(!s.contains('\n'));
    }
}
