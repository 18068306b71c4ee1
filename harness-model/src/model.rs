//! The vocabulary every part of the harness speaks: sequence numbers, contract ids,
//! findings with their evidence, and verdicts. Checkers produce these, reporters
//! consume them; nothing here knows about sockets or files.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::shortfall::Shortfall;
pub use crate::vocab::ClientId;

/// A sequence number assigned by the target's store (the SSE `id:` in numeric mode).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The id of a contract, e.g. `resume.no-gap`, as written in `contracts/*.toml`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContractId(pub String);

impl ContractId {
    /// The family a contract belongs to: the part of its id before the first dot.
    pub fn family(&self) -> &str {
        self.0.split('.').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for ContractId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ContractId {
    fn from(s: &str) -> Self {
        ContractId(s.to_owned())
    }
}

/// How binding a contract is: a MUST failure fails the run, a SHOULD is a warning.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// Breaking it fails the scenario.
    Must,
    /// Breaking it is reported as a warning.
    Should,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
        })
    }
}

/// Where and what a checker observed: enough for a person to find the bytes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The client that saw it, when one client did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientId>,
    /// The client's connection, counted from 0 (each reconnect is a new one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<u32>,
    /// The sequence number concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<Seq>,
    /// The publish marker concerned (opaque-id targets are judged by markers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
    /// Offset in the response body (decoded, after chunking) of the frame concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub byte_offset: Option<u64>,
    /// Milliseconds since the scenario started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<f64>,
    /// What the contract required.
    pub expected: String,
    /// What was observed instead.
    pub seen: String,
}

/// One broken (or warned) contract, with its evidence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The contract that did not hold.
    pub contract: ContractId,
    /// MUST or SHOULD, from the contract's definition.
    pub level: Level,
    /// The protocol section or seed table row the contract comes from.
    pub spec: String,
    /// What was seen where.
    pub evidence: Evidence,
}

impl Finding {
    /// The one-line text a person can act on: contract, client, connection, seq, expected vs seen.
    pub fn message(&self) -> String {
        let e = &self.evidence;
        let mut s = format!("[{}] ", self.contract);
        let mut place = Vec::new();
        if let Some(c) = &e.client {
            place.push(format!("client {c}"));
        }
        if let Some(n) = e.connection {
            place.push(format!("conn {n}"));
        }
        if let Some(q) = e.seq {
            place.push(format!("seq {q}"));
        }
        if let Some(m) = &e.marker {
            place.push(format!("marker {m}"));
        }
        if let Some(b) = e.byte_offset {
            place.push(format!("byte {b}"));
        }
        if !place.is_empty() {
            s.push_str(&place.join(" "));
            s.push_str(": ");
        }
        s.push_str(&format!("expected {}, saw {}", e.expected, e.seen));
        // Ids, markers, names and data in the evidence are the target's bytes.
        crate::escape::untrusted(&s).into_owned()
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// The outcome of one scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Verdict {
    /// Every MUST held (SHOULD findings may exist as warnings).
    Pass,
    /// At least one MUST finding.
    Fail,
    /// Not run: the profile lacks a capability the scenario needs.
    Skipped {
        /// Why, e.g. `profile nchan does not claim capability task-stream`.
        reason: String,
    },
    /// The harness could not run it (target unreachable, setup request refused).
    Error {
        /// What went wrong, in one line.
        reason: String,
    },
    /// Every MUST held, but the scenario did not do what it set out to do (planned
    /// clients or cuts missing, no backpressure, nothing delivered, publishing late):
    /// the recording proves nothing, so it fails the run like a failure does.
    Inconclusive {
        /// Why, never empty (see [`Shortfall`]).
        reasons: Vec<Shortfall>,
    },
    /// The run was interrupted (Ctrl-C, SIGTERM) while this scenario was running: it
    /// proves nothing and never passes.
    Interrupted,
    /// Not run: the run was interrupted before this scenario's turn.
    NotRun,
}

impl Verdict {
    /// The verdict implied by a scenario's findings alone.
    pub fn from_findings(findings: &[Finding]) -> Verdict {
        Verdict::judged(findings, Vec::new())
    }

    /// The verdict of a scenario that ran: `Fail` when a MUST finding exists (it names
    /// the contract, which explains more than a shortfall), else `Inconclusive` when
    /// the scenario fell short of what it set out to do, else `Pass`.
    pub fn judged(findings: &[Finding], shortfalls: Vec<Shortfall>) -> Verdict {
        if findings.iter().any(|f| f.level == Level::Must) {
            Verdict::Fail
        } else if !shortfalls.is_empty() {
            Verdict::Inconclusive {
                reasons: shortfalls,
            }
        } else {
            Verdict::Pass
        }
    }

    /// A short lowercase label: pass, fail, skipped, error, inconclusive, interrupted,
    /// not-run.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Skipped { .. } => "skipped",
            Verdict::Error { .. } => "error",
            Verdict::Inconclusive { .. } => "inconclusive",
            Verdict::Interrupted => "interrupted",
            Verdict::NotRun => "not-run",
        }
    }

    /// The reason in one line, for the verdicts that carry one (skipped, error,
    /// inconclusive, interrupted, not run), escaped for a terminal.
    pub fn reason(&self) -> Option<String> {
        match self {
            Verdict::Skipped { reason } | Verdict::Error { reason } => {
                Some(crate::escape::untrusted(reason).into_owned())
            }
            Verdict::Inconclusive { reasons } => Some(crate::shortfall::one_line(reasons)),
            Verdict::Interrupted => Some("the run was interrupted while it ran".into()),
            Verdict::NotRun => Some("not run: the run was interrupted before it".into()),
            Verdict::Pass | Verdict::Fail => None,
        }
    }

    /// Whether the run fails on this verdict as on a contract failure (exit 1).
    pub fn fails_run(&self) -> bool {
        matches!(self, Verdict::Fail | Verdict::Inconclusive { .. })
    }
}
