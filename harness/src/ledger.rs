//! The publish ledger: every write the harness published and the target acknowledged,
//! shared live between the publishers (who append) and the clients (who ask what they
//! are owed, to know when they have caught up).

use std::collections::BTreeMap;
use std::sync::Mutex;

use harness_model::{Ack, IdMode, Indeterminate, PublishFailure, Subscription};

use crate::limits::Budget;

/// Acknowledged writes, failed publishes and writes of unknown fate of one scenario.
#[derive(Default)]
pub struct Ledger {
    acks: Mutex<Vec<Ack>>,
    failures: Mutex<Vec<PublishFailure>>,
    /// Requests sent whose answer never came (resolved by a retry's ack or not).
    indeterminate: Mutex<Vec<Indeterminate>>,
    /// Each acknowledged write's content as a subscriber must receive it, by marker.
    contents: Mutex<BTreeMap<String, String>>,
    /// The bytes the scenario's clients recorded, against `Limits::scenario_bytes`.
    pub budget: Budget,
    /// The other shards' acks of a split scenario ([`crate::shard`]): owed to this
    /// shard's clients like its own, but theirs to record.
    foreign: Mutex<Vec<Ack>>,
}

impl Ledger {
    /// Records what acknowledged writes carried, by marker.
    pub fn contents(&self, contents: impl IntoIterator<Item = (String, String)>) {
        self.contents.lock().expect("ledger lock").extend(contents);
    }

    /// Takes the contents recorded so far.
    pub fn take_contents(&self) -> BTreeMap<String, String> {
        std::mem::take(&mut *self.contents.lock().expect("ledger lock"))
    }

    /// What the writes of a scenario carried (taken from the ledger), when the profile
    /// says where content is.
    pub fn published(&self, profile: &crate::profile::Profile) -> Option<harness_model::Published> {
        let by_marker = self.take_contents();
        let pointer = profile.content_pointer()?;
        (!by_marker.is_empty()).then_some(harness_model::Published { pointer, by_marker })
    }

    /// Records acknowledged writes.
    pub fn push(&self, acks: Vec<Ack>) {
        self.acks.lock().expect("ledger lock").extend(acks);
    }

    /// Records a failed publish request.
    pub fn fail(&self, f: PublishFailure) {
        self.failures.lock().expect("ledger lock").push(f);
    }

    /// Records a request whose answer never came: its writes are neither acks nor
    /// failures (a resolved one's writes are also pushed as acks).
    pub fn indeterminate(&self, w: Indeterminate) {
        self.indeterminate.lock().expect("ledger lock").push(w);
    }

    /// Takes the requests of unknown fate recorded so far.
    pub fn take_indeterminate(&self) -> Vec<Indeterminate> {
        std::mem::take(&mut *self.indeterminate.lock().expect("ledger lock"))
    }

    /// Whether any publish request failed, or lost its answer, so far.
    pub fn any_failure(&self) -> bool {
        !self.failures.lock().expect("ledger lock").is_empty()
            || !self.indeterminate.lock().expect("ledger lock").is_empty()
    }

    /// How many writes are acknowledged so far.
    pub fn acked(&self) -> usize {
        self.acks.lock().expect("ledger lock").len()
    }

    /// The markers of the acks recorded after the first `from`.
    pub fn acked_since(&self, from: usize) -> std::collections::BTreeSet<String> {
        let acks = self.acks.lock().expect("ledger lock");
        acks.iter().skip(from).map(|a| a.marker.clone()).collect()
    }

    /// The markers of the acks so far that `sub` is owed (the one rule of
    /// [`harness_model::owed`], which the checkers judge by too), the other shards'
    /// included.
    pub fn owed(&self, sub: &Subscription, ids: IdMode) -> Vec<String> {
        let acks = self.acks.lock().expect("ledger lock");
        let foreign = self.foreign.lock().expect("ledger lock");
        sub.owed(&acks, ids)
            .chain(sub.owed(&foreign, ids))
            .map(|a| a.marker.clone())
            .collect()
    }

    /// A copy of the acks so far (what this shard tells the others it published).
    pub fn acks(&self) -> Vec<Ack> {
        self.acks.lock().expect("ledger lock").clone()
    }

    /// Adds the other shards' acks: owed to the clients, never taken for the recording.
    pub fn add_foreign(&self, acks: Vec<Ack>) {
        self.foreign.lock().expect("ledger lock").extend(acks);
    }

    /// Everything recorded, for the checkers.
    pub fn take(&self) -> (Vec<Ack>, Vec<PublishFailure>) {
        (
            std::mem::take(&mut *self.acks.lock().expect("ledger lock")),
            std::mem::take(&mut *self.failures.lock().expect("ledger lock")),
        )
    }
}
