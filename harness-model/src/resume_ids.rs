//! Resuming from an id the server cannot place: a garbage id, a well-formed id it never
//! issued, an id of another channel, an id that fell out of its history, an id from
//! before a restart. What a server does with each is a choice a profile declares
//! ([`IdAnswer`]); two rules hold whatever it declares (no duplicate, no silent gap).
//! The probe records one [`ResumeIdProbe`] per resumed client for the checkers.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::ClientId;

/// What a server does when a client resumes from an id it cannot place.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdAnswer {
    /// Every event the channel still holds, from its oldest, then live ones.
    ReplayAll,
    /// The events after the id's position, then live ones (a legitimate position:
    /// an id of another channel where ids are global, or a durable log after a restart).
    ReplayAfter,
    /// Nothing from the history: only events published after the stream opened.
    LiveOnly,
    /// A stream that stays open and delivers nothing, not even new events.
    Nothing,
    /// A refusal: a status other than 2xx before any stream byte.
    ErrorStatus,
    /// A stream carrying an `error` event (or the profile's reset event).
    ErrorEvent,
}

impl IdAnswer {
    /// Every answer, in declaration order.
    pub const ALL: [IdAnswer; 6] = [
        IdAnswer::ReplayAll,
        IdAnswer::ReplayAfter,
        IdAnswer::LiveOnly,
        IdAnswer::Nothing,
        IdAnswer::ErrorStatus,
        IdAnswer::ErrorEvent,
    ];

    /// The name a profile spells it with.
    pub fn name(self) -> &'static str {
        match self {
            IdAnswer::ReplayAll => "replay-all",
            IdAnswer::ReplayAfter => "replay-after",
            IdAnswer::LiveOnly => "live-only",
            IdAnswer::Nothing => "nothing",
            IdAnswer::ErrorStatus => "error-status",
            IdAnswer::ErrorEvent => "error-event",
        }
    }
}

impl fmt::Display for IdAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which kind of id a resume probe sends.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdCase {
    /// Not an id of the server's form at all.
    Garbage,
    /// Well-formed, never issued: ahead of everything the server has.
    Unknown,
    /// An id the server issued on another channel.
    Foreign,
    /// An id the server issued on this channel that has fallen out of its history.
    Evicted,
    /// An id the server issued before it was restarted.
    Restart,
}

impl IdCase {
    /// The profile key (`[resume]`) that declares the answer to this case.
    pub fn key(self) -> &'static str {
        match self {
            IdCase::Garbage => "garbage_id",
            IdCase::Unknown => "unknown_id",
            IdCase::Foreign => "foreign_id",
            IdCase::Evicted => "evicted_id",
            IdCase::Restart => "restart_id",
        }
    }

    /// Whether the id denotes a position in the channel's history (everything the
    /// client received came before it), so re-delivering what it had is a duplicate.
    /// A garbage id denotes nothing.
    pub fn positioned(self) -> bool {
        !matches!(self, IdCase::Garbage)
    }
}

/// One resumed client of a resume probe, and what was published around it: the
/// checkers classify what it received into an [`IdAnswer`], hold it to the two rules
/// and compare it with the profile's claim.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResumeIdProbe {
    /// The resumed client.
    pub client: ClientId,
    /// Which kind of id it sent.
    pub case: IdCase,
    /// The id as sent.
    pub cursor: String,
    /// What the profile declares for this case (None: it claims nothing).
    pub claim: Option<IdAnswer>,
    /// Markers the client received before it left, in publish order (all before the
    /// cursor's position, when it has one).
    pub had: Vec<String>,
    /// Markers published to the channel while it was away, in publish order (after
    /// the position of every positioned cursor).
    pub away: Vec<String>,
    /// Markers published after its resumed stream opened, in publish order.
    pub live: Vec<String>,
    /// How many events the channel's history holds (None: all of them).
    pub history: Option<u64>,
    /// An event type the profile names for "history lost, start over": a gap after
    /// it is not silent.
    pub reset_event: Option<String>,
}

impl ResumeIdProbe {
    /// The markers still in the channel's history when the client resumed: the last
    /// `history` of `had` + `away`.
    pub fn held(&self) -> Vec<&str> {
        let all: Vec<&str> = self
            .had
            .iter()
            .chain(&self.away)
            .map(String::as_str)
            .collect();
        let keep = self
            .history
            .map_or(all.len(), |h| (h as usize).min(all.len()));
        all[all.len() - keep..].to_vec()
    }
}
