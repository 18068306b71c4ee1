//! The closed vocabularies scenario files and profiles are written in: contract
//! families, capabilities a target profile claims, and the places in the framing a
//! cut can aim at. Each is an enum, so an unknown value fails at load time with
//! serde's "unknown variant `x`, expected one of …", and a typo in code does not compile.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[doc = $doc:literal])+ $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[doc = $doc])+ #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The name as written in files.
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<$name, UnknownName> {
                $name::ALL.iter().copied().find(|v| v.name() == s).ok_or_else(|| UnknownName {
                    what: stringify!($name),
                    name: s.to_owned(),
                    known: $name::ALL.iter().map(|v| v.name()).collect::<Vec<_>>().join(", "),
                })
            }
        }
    };
}

/// A name that is not in its vocabulary.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {name:?} (known: {known})")]
pub struct UnknownName {
    /// Which vocabulary.
    pub what: &'static str,
    /// The name given.
    pub name: String,
    /// The valid names, comma separated.
    pub known: String,
}

vocabulary! {
    /// A contract family: one `contracts/<family>.toml`, one checker module.
    #[non_exhaustive]
    Family {
        /// `resume.*`: Last-Event-ID resume.
        Resume => "resume",
        /// `delivery.*`: every acknowledged write reaches every subscriber owed it.
        Delivery => "delivery",
        /// `lifecycle.*`: lifecycle frames and stream endings.
        Lifecycle => "lifecycle",
        /// `heartbeat.*`: idle streams stay alive.
        Heartbeat => "heartbeat",
        /// `version.*`: version streams.
        Version => "version",
        /// `framing.*`: the event-stream wire format.
        Framing => "framing",
        /// `durability.*`: acknowledged writes survive crashes.
        Durability => "durability",
        /// `liveness.*`: vanished clients are noticed.
        Liveness => "liveness",
        /// `wire.*`: streams open at once, events arrive when written, the response
        /// carries the headers an event stream must.
        Wire => "wire",
    }
}

vocabulary! {
    /// What a target profile can claim to do; a scenario that needs a capability its
    /// profile does not claim is skipped with that reason (see `contracts/profiles/README.md`).
    Capability {
        /// Writes can be published through the profile's publish request.
        Publish => "publish",
        /// Streams resume from a `Last-Event-ID` cursor.
        Resume => "resume",
        /// The cursor can also go in a query parameter.
        ResumeQuery => "resume-query",
        /// A stream without a cursor replays the whole history.
        ReplayFromStart => "replay-from-start",
        /// One stream carries every channel.
        AllStream => "all-stream",
        /// One publish request can carry many writes.
        BatchPublish => "batch-publish",
        /// The publish answer says the seq the write got.
        AckSeq => "ack-seq",
        /// Spine lifecycle frames (`connection_open`, `error`, `connection_close`).
        Lifecycle => "lifecycle",
        /// Idle streams heartbeat.
        Heartbeat => "heartbeat",
        /// A malformed or impossible cursor gets an error.
        CursorErrors => "cursor-errors",
        /// Task streams of jobs.
        TaskStream => "task-stream",
        /// Version streams.
        VersionStream => "version-stream",
        /// `X-Correlation-ID` is echoed in every frame.
        CorrelationId => "correlation-id",
        /// A gauge of active streams shows vanished clients being noticed.
        Liveness => "liveness",
        /// Acknowledged writes survive a crash (needs `--server-cmd`).
        Durability => "durability",
        /// Every stream starts with a `retry:` block of its own (spine §4): judged
        /// only on targets that claim it.
        RetryFirst => "retry-first",
        /// The publisher chooses each write's event type (`{event_type}` in the
        /// `[publish]` templates), which the stream carries (`wire.field-injection` is
        /// judged only then).
        ChosenEventType => "chosen-event-type",
    }
}

vocabulary! {
    /// A place in the event-stream framing that a cut can aim at (exhaustive: a client
    /// must know how to find every one).
    CutAim {
        /// Inside an `id:` line's value.
        InsideId => "inside-id",
        /// Inside the data of an event that has an id.
        InsideData => "inside-data",
        /// Between the CR and LF of an `id:` line's CRLF ending.
        CrLf => "cr-lf",
        /// After a data line's terminator, before the blank line that dispatches it.
        BetweenNewlines => "between-newlines",
        /// Inside a multi-byte UTF-8 character.
        InsideUtf8 => "inside-utf8",
        /// Inside an `event:` line's value.
        InsideEventName => "inside-event-name",
    }
}

vocabulary! {
    /// Why a spine stream ends: the `reason` of its `connection_close` frame (spine §4.1).
    CloseReason {
        /// The server is stopping (SIGTERM).
        ServerShutdown => "server_shutdown",
        /// The reader fell too far behind.
        SlowConsumer => "slow_consumer",
        /// A newer version stream for the same request id replaced this one.
        Replaced => "replaced",
        /// The cursor is above the head.
        CursorAhead => "cursor_ahead",
        /// The task stream's job does not exist.
        TaskNotFound => "task_not_found",
        /// The job completed (after its terminal event).
        TaskCompleted => "task_completed",
        /// The job failed (after its terminal event).
        TaskFailed => "task_failed",
    }
}

vocabulary! {
    /// What the event-stream parser found wrong on the wire, as recordings keep it.
    WireViolation {
        /// A line is not valid UTF-8 (decoded with U+FFFD replacements).
        InvalidUtf8 => "invalid-utf8",
        /// A line exceeded the parser's line limit (fatal).
        LineTooLong => "line-too-long",
        /// An event exceeded the parser's event limit (fatal).
        EventTooLarge => "event-too-large",
        /// A `retry` field whose value is not all ASCII digits (ignored).
        BadRetry => "bad-retry",
        /// An `id` field containing NUL (ignored).
        NulInId => "nul-in-id",
    }
}

/// Names one scripted client of a scenario, e.g. `cutter#0`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(pub String);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_known_ones() {
        for c in Capability::ALL {
            assert_eq!(c.name().parse::<Capability>().unwrap(), *c);
        }
        let err = "teleport".parse::<Capability>().unwrap_err().to_string();
        assert!(
            err.starts_with("unknown Capability \"teleport\" (known: publish, resume,"),
            "{err}"
        );
        #[derive(Deserialize)]
        struct F {
            #[allow(dead_code)]
            families: Vec<Family>,
        }
        let err = toml::from_str::<F>("families = [\"resum\"]")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("unknown variant `resum`, expected one of `resume`"),
            "{err}"
        );
    }
}
