//! Writes whose fate the harness could not know (Jepsen's `:info` operations): the
//! publish request was sent, but no answer came back, so the target may or may not
//! have committed it. Such a write is neither an ack (nothing promises it exists) nor a
//! failure (nothing says it does not): the checkers accept it delivered or not, but if
//! any subscriber received it, every subscriber owed it must, under one seq, once.
//!
//! Which transport errors mean "sent, no answer" and which mean "never reached the
//! target" is decided in one place, the harness's `fate` module; this module only holds
//! what was recorded.

use serde::{Deserialize, Serialize};

use crate::model::Seq;
use crate::transcript::Ack;

/// Why a sent publish request got no usable answer.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IndeterminateCause {
    /// The connection was reset or closed after the request went out and before the
    /// response head came back.
    ConnectionLost,
    /// No answer within the request timeout or before the scenario's deadline.
    NoAnswer,
    /// The response head came with an ack status, but its body (the seqs) broke off.
    AckBodyLost,
}

impl IndeterminateCause {
    /// The stable snake_case name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            IndeterminateCause::ConnectionLost => "connection_lost",
            IndeterminateCause::NoAnswer => "no_answer",
            IndeterminateCause::AckBodyLost => "ack_body_lost",
        }
    }
}

impl std::fmt::Display for IndeterminateCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One publish request whose first attempt got no answer: its writes may or may not
/// exist. When a retry with the same idempotency key was acknowledged, the request is
/// `resolved` and its writes are also in [`crate::Recording::acks`] (sent at this
/// request's first attempt); otherwise their fate stays unknown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Indeterminate {
    /// The markers of the request's writes.
    pub markers: Vec<String>,
    /// The job (channel) they were published to.
    pub job: String,
    /// The idempotency key every attempt carried, if the profile sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Which publisher task sent it.
    pub publisher: u32,
    /// Microseconds since the scenario started when the first attempt was sent.
    pub sent_us: u64,
    /// Microseconds since the scenario started when the last attempt ended (with the
    /// resolving ack, or with no answer).
    pub ended_us: u64,
    /// Why the first unanswered attempt got no answer.
    pub cause: IndeterminateCause,
    /// The transport error of that attempt, in one line.
    pub error: String,
    /// Attempts made in all (1: no retry).
    pub attempts: u32,
    /// A retry was acknowledged: the writes are acks now, after `attempts` attempts.
    #[serde(default)]
    pub resolved: bool,
}

impl Indeterminate {
    /// The write `marker` of this request as an ack for the owed rule: sent at the first
    /// attempt, "acknowledged" at `visible_us` (when it was first seen anywhere, or
    /// when the harness gave up, whichever is later), under `seq` if it was delivered
    /// under one. The owed rule then asks the same question it asks of an ack: was the
    /// subscriber reading over the write's whole uncertain window?
    pub fn as_ack(&self, marker: &str, seq: Option<Seq>, visible_us: u64) -> Ack {
        Ack {
            marker: marker.to_owned(),
            job: self.job.clone(),
            seq,
            publisher: self.publisher,
            sent_us: self.sent_us,
            acked_us: self.ended_us.max(visible_us),
        }
    }
}
