//! The publish ledger: every write the harness published and the target acknowledged,
//! shared live between the publishers (who append) and the clients (who ask what they
//! are owed, to know when they have caught up).

use std::sync::Mutex;

use harness_model::{Ack, PublishFailure};

use crate::limits::Budget;

/// Acknowledged writes and failed publishes of one scenario.
#[derive(Default)]
pub struct Ledger {
    acks: Mutex<Vec<Ack>>,
    failures: Mutex<Vec<PublishFailure>>,
    /// The bytes the scenario's clients recorded, against `Limits::scenario_bytes`.
    pub budget: Budget,
}

impl Ledger {
    /// Records acknowledged writes.
    pub fn push(&self, acks: Vec<Ack>) {
        self.acks.lock().expect("ledger lock").extend(acks);
    }

    /// Records a failed publish request.
    pub fn fail(&self, f: PublishFailure) {
        self.failures.lock().expect("ledger lock").push(f);
    }

    /// Whether any publish request failed so far.
    pub fn any_failure(&self) -> bool {
        !self.failures.lock().expect("ledger lock").is_empty()
    }

    /// How many writes are acknowledged so far.
    pub fn acked(&self) -> usize {
        self.acks.lock().expect("ledger lock").len()
    }

    /// The markers a subscriber of `channels` is owed: all of them when it read from the
    /// start; with a numeric cursor, those with a greater seq; otherwise those whose
    /// publish request was sent after its first connection was established.
    pub fn owed(
        &self,
        channels: &[String],
        from_start: bool,
        cursor: Option<u64>,
        first_head_us: Option<u64>,
    ) -> Vec<String> {
        let acks = self.acks.lock().expect("ledger lock");
        acks.iter()
            .filter(|a| channels.contains(&a.job))
            .filter(|a| {
                from_start
                    || match (cursor, a.seq) {
                        (Some(c), Some(s)) => s.0 > c,
                        _ => first_head_us.is_none_or(|h| a.sent_us >= h),
                    }
            })
            .map(|a| a.marker.clone())
            .collect()
    }

    /// Everything recorded, for the checkers.
    pub fn take(&self) -> (Vec<Ack>, Vec<PublishFailure>) {
        (
            std::mem::take(&mut *self.acks.lock().expect("ledger lock")),
            std::mem::take(&mut *self.failures.lock().expect("ledger lock")),
        )
    }
}
