//! Deliberate protocol deviations, off by default, switched on only from the command
//! line (`serve --fault NAME`) or by an embedding harness through [`crate::Config`].
//! No client request can turn one on: nothing reads a header, query or body to decide.
//!
//! Each fault is a small hook at the place it belongs (store, stream, jobs, version),
//! guarded by `state.faults.has(Fault::X)`; grep the variant name to find it. The
//! table of faults, the contract that must catch each and the scenarios that show it
//! is `contracts/mutations.toml`; `Fault::name` is that table's `fault` column.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// How far a stream must lag behind the head (in events) before
/// [`Fault::SlowConsumerDrop`] skips it ahead.
pub const SLOW_DROP_LAG: u64 = 1_000;
/// Where [`Fault::SlowConsumerDrop`] puts the cursor: this many events below the head.
pub const SLOW_DROP_KEEP: u64 = 10;
/// How far a stream must lag behind the head (in events) before
/// [`Fault::SlowConsumerAbruptClose`] cuts it.
pub const SLOW_CUT_LAG: u64 = 2_000;
/// [`Fault::StaleHead`] announces the head this many seqs lower.
pub const STALE_HEAD_BY: u64 = 5;
/// [`Fault::DropForSomeClients`]: every this-many-th log stream is affected...
pub const DROP_EVERY_CONN: u64 = 3;
/// ...and misses every event whose seq is a multiple of this.
pub const DROP_EVERY_SEQ: u64 = 97;
/// [`Fault::AckWithoutWrite`]: every this-many-th publish is acknowledged but not stored.
pub const UNWRITTEN_EVERY: u64 = 50;
/// [`Fault::PublishRejectsSome`]: every this-many-th well-formed publish gets 503.
pub const REJECT_EVERY: u64 = 20;
/// [`Fault::HeartbeatLate`]: heartbeats come after this many heartbeat intervals.
pub const LATE_HEARTBEAT_FACTOR: u32 = 3;
/// [`Fault::FilterLeaksOtherJobs`]: a filtered stream also gets every event of another
/// job whose seq is a multiple of this.
pub const LEAK_EVERY_SEQ: u64 = 10;
/// [`Fault::CursorAheadNearHead`]: a cursor less than this far below the head is told
/// `cursor_ahead`.
pub const AHEAD_NEAR_HEAD_BY: u64 = 5;
/// [`Fault::OversizedOpen`]: the padding added to `connection_open`, above the 1 MiB
/// line limit of a careful client.
pub const OVERSIZED_PAD: usize = 1024 * 1024 + 1;
/// [`Fault::AckBeforeCommit`]: how long the commit lags behind the acknowledgement.
pub const COMMIT_LAG: std::time::Duration = std::time::Duration::from_millis(100);

macro_rules! faults {
    ($($(#[doc = $doc:literal])+ $variant:ident => $name:literal,)+) => {
        /// One deliberate deviation from the spine protocol.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Fault {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl Fault {
            /// Every fault, in the order of `contracts/mutations.toml`.
            pub const ALL: &'static [Fault] = &[$(Fault::$variant,)+];

            /// The kebab-case name used on the command line and in the mutation table.
            pub fn name(self) -> &'static str {
                match self {
                    $(Fault::$variant => $name,)+
                }
            }
        }
    };
}

faults! {
    /// Resume replays the cursor's own event again: the replay starts at `seq >= L`
    /// instead of `seq > L`.
    ReplayOffByOne => "replay-off-by-one",
    /// Resume starts one event late: the replay starts at `seq > L + 1`, so the event
    /// right after the cursor is never sent.
    ReplaySkipsOne => "replay-skips-one",
    /// `Last-Event-ID` (header or query) is parsed and then ignored: every reconnect
    /// replays from the start, with `resume_from: null`.
    IgnoreCursor => "ignore-cursor",
    /// Once the replay reaches the head the stream saw when it opened, it "subscribes"
    /// to live notifications: it waits for the next head change and continues above
    /// the head at that later moment, so whatever was committed in between is never
    /// sent.
    LiveBoundaryRace => "live-boundary-race",
    /// A stream lagging more than [`SLOW_DROP_LAG`] events behind the head silently
    /// jumps its cursor to [`SLOW_DROP_KEEP`] events below the head instead of paging
    /// from the store.
    SlowConsumerDrop => "slow-consumer-drop",
    /// Every [`DROP_EVERY_CONN`]-th log stream (events or task) opened since start
    /// silently skips every event whose seq is a multiple of [`DROP_EVERY_SEQ`].
    DropForSomeClients => "drop-for-some-clients",
    /// Events are sent in swapped pairs: each stream holds back every other event and
    /// writes it after the next one (or before the next heartbeat or close).
    Reorder => "reorder",
    /// Every [`UNWRITTEN_EVERY`]-th publish request gets `201` with seqs, but its rows
    /// are deleted in the same transaction: the seqs are used up, the events never
    /// exist.
    AckWithoutWrite => "ack-without-write",
    /// The task stream stays open (heartbeats) after `task_completed`/`task_failed`
    /// instead of sending `connection_close` and ending.
    NoCloseAfterTerminal => "no-close-after-terminal",
    /// An unknown job's task stream answers `404 job_not_found` instead of `200` with
    /// `connection_open`, `error`, `connection_close`.
    TaskNotFound404 => "task-not-found-404",
    /// `connection_open` and `connection_close` carry an `id: <head_seq>` line.
    IdOnLifecycle => "id-on-lifecycle",
    /// Every frame carries a freshly generated `correlation_id` instead of the
    /// connection's.
    CorrelationIdPerFrame => "correlation-id-per-frame",
    /// Idle streams heartbeat every [`LATE_HEARTBEAT_FACTOR`] × `heartbeat_ms`.
    HeartbeatLate => "heartbeat-late",
    /// Idle streams never get a heartbeat.
    HeartbeatAbsent => "heartbeat-absent",
    /// A second version stream for a request id leaves the first one open (no
    /// `connection_close replaced`); later notifications reach only the second.
    VersionNoReplace => "version-no-replace",
    /// Versions queued while no stream was open are flushed newest first.
    VersionPendingReversed => "version-pending-reversed",
    /// `progress_update` frames carry a `0xFF` byte (not UTF-8) inside a JSON string
    /// of their payload.
    InvalidUtf8 => "invalid-utf8",
    /// `progress_update` frames carry data that is not JSON (a plain-text line).
    NonJsonData => "non-json-data",
    /// A malformed `Last-Event-ID` is treated as absent instead of `400
    /// invalid_last_event_id`.
    InvalidCursorAccepted => "invalid-cursor-accepted",
    /// A cursor above the head gets an empty live stream instead of `error
    /// cursor_ahead` and `connection_close cursor_ahead`.
    CursorAheadIgnored => "cursor-ahead-ignored",
    /// Streams of vanished clients are never freed: no heartbeat is ever written (so
    /// nothing on the stream notices a closed connection), and a stream dropped before
    /// its end keeps its registration (its count in `spine_active_streams`) for the
    /// server's lifetime.
    LeakClosedStreams => "leak-closed-streams",
    /// Seqs come from an in-memory counter that starts at 1 at every start; events
    /// are stored under them (`INSERT OR REPLACE` with an explicit seq), so after a
    /// restart old seqs are given to new events.
    SeqFromCounter => "seq-from-counter",
    /// `connection_open` and heartbeats announce `head_seq` [`STALE_HEAD_BY`] seqs
    /// below the real head, so below seqs already sent.
    StaleHead => "stale-head",
    /// Publish acknowledges each event with its seq + 1 (the seq of the next one).
    AckSeqOffByOne => "ack-seq-off-by-one",
    /// Each log stream adds `"conn": <its ordinal since start>` inside every event's
    /// `payload`, so the same seq shows different payloads on different connections.
    PerClientPayload => "per-client-payload",
    /// Every [`REJECT_EVERY`]-th well-formed publish request is refused with `503
    /// unavailable` (nothing is written).
    PublishRejectsSome => "publish-rejects-some",
    /// A stream lagging more than [`SLOW_CUT_LAG`] events behind the head is ended
    /// without any `connection_close` frame.
    SlowConsumerAbruptClose => "slow-consumer-abrupt-close",
    /// Streams answer `Content-Type: text/plain`.
    WrongContentType => "wrong-content-type",
    /// Streams do not start with the `retry:` block.
    NoRetry => "no-retry",
    /// Streams start without the `connection_open` frame.
    NoConnectionOpen => "no-connection-open",
    /// A heartbeat frame follows `connection_close` before the response ends.
    EventAfterClose => "event-after-close",
    /// Abnormal ends (`cursor_ahead`, `task_not_found`, store failures) send
    /// `connection_close` without the `error` frame before it.
    CloseWithoutError => "close-without-error",
    /// Heartbeats carry `server_time` but no `head_seq`.
    HeartbeatWithoutHead => "heartbeat-without-head",
    /// `version` events lack the `git_commit` field.
    VersionMissingFields => "version-missing-fields",
    /// Publish (and every other write) is acknowledged with its seqs before the
    /// transaction commits; the commit follows [`COMMIT_LAG`] later, so a crash in
    /// that window loses acknowledged writes.
    AckBeforeCommit => "ack-before-commit",
    /// On shutdown (SIGTERM) streams end without `connection_close server_shutdown`.
    ShutdownWithoutClose => "shutdown-without-close",
    /// The receipt hash stored with a completed job (and sent in `task_completed`) is
    /// the SHA-256 of the receipt bytes plus a newline, not of the file written.
    ReceiptHashWrong => "receipt-hash-wrong",
    /// A stream filtered to one job (`?job_id=`) also sends every other job's event
    /// whose seq is a multiple of [`LEAK_EVERY_SEQ`].
    FilterLeaksOtherJobs => "filter-leaks-other-jobs",
    /// A cursor less than [`AHEAD_NEAR_HEAD_BY`] below the head (or at it) is told
    /// `cursor_ahead`, as if it were above the head.
    CursorAheadNearHead => "cursor-ahead-near-head",
    /// On shutdown (SIGTERM) streams close with reason `shutdown`, which no stream
    /// may end with, instead of `server_shutdown`.
    ShutdownReasonUnknown => "shutdown-reason-unknown",
    /// A stream lagging more than [`SLOW_CUT_LAG`] events behind the head is aborted
    /// inside its chunked body (the connection closes without the last chunk).
    SlowConsumerAbort => "slow-consumer-abort",
    /// A task stream is aborted inside its chunked body where its terminal event
    /// should be written.
    TaskStreamAbort => "task-stream-abort",
    /// Streams are never counted in `spine_active_streams`.
    GaugeNeverCounts => "gauge-never-counts",
    /// An idle stream gets no heartbeat: after 2.5 × `heartbeat_ms` of silence its
    /// response just ends.
    IdleSilentClose => "idle-silent-close",
    /// `connection_open` of events streams carries a padding field of
    /// [`OVERSIZED_PAD`] bytes: one line over a careful client's limit.
    OversizedOpen => "oversized-open",
    /// A job with more than two steps never writes its `progress_update` for step 2
    /// (its steps go 1, 3, 4, …).
    ProgressSkipsStep => "progress-skips-step",
    /// The receipt's `events_sha256` is the SHA-256 of the real digest's hex text (hashed
    /// twice), so it matches no recomputation; the file and its stored hash still agree.
    EventsHashWrong => "events-hash-wrong",
    /// Event frames are re-encoded to ASCII on the way out: every character outside
    /// ASCII in the event's JSON becomes `?` (the JSON stays valid, the content not).
    ReencodeAscii => "reencode-ascii",
    /// `GET …/receipt` answers `X-Receipt-SHA256` with the hash of the receipt's first
    /// byte only; the file, `task_completed` and the store still agree.
    ReceiptHeaderWrong => "receipt-header-wrong",
    /// Every stream takes one server-wide lock for each chunk it writes and keeps it
    /// until the chunk is written (its body is polled again): a reader that stops
    /// reading holds it, and every other stream waits.
    GlobalWriteLock => "global-write-lock",
    /// Heartbeats (only) announce `head_seq` [`STALE_HEAD_BY`] seqs below the real
    /// head, so below seqs the same connection already sent; `connection_open` is right.
    HeartbeatStaleHead => "heartbeat-stale-head",
    /// An events stream requested with a cursor (`Last-Event-ID` or `last_event_id`)
    /// is refused with `500 internal`: every resume fails, so a client that lost its
    /// connection never gets the acknowledged events after its cursor.
    ResumeRefused => "resume-refused",
    /// Stream routes are compressed (gzip or deflate, as `Accept-Encoding` asks) by a
    /// naive middleware that never flushes its encoder: frames are held until the
    /// encoder closes a deflate block (tens of KiB of input) or the response ends
    /// (see [`crate::compress`]).
    CompressedStream => "compressed-stream",
    /// A log stream's response head (and its first bytes, `retry:` and
    /// `connection_open`) is not sent until the stream has a data event to write: the
    /// handler waits for one (heartbeats are not sent meanwhile and do not release it).
    /// A stream with a non-empty replay, or one that ends at once, is answered at once.
    HeadHeld => "head-held",
    /// Delivery lags one event: every log stream holds back the newest event frame it
    /// would write and writes it only together with the next one (heartbeats still flow
    /// and do not release it; `connection_close` does). So the newest event of a
    /// replay is held too, and a live event arrives only when the next one is committed.
    OneBehind => "one-behind",
    /// A published `event_type` with control characters (CR, LF, NUL) is accepted, and
    /// frames write it into their data as a hand-rolled formatter would, unescaped: a
    /// line break in it ends the `data:` line, so the publisher can inject fields and
    /// whole events into every stream.
    UnescapedEventType => "unescaped-event-type",
    /// Streams are labelled `Content-Type: text/event-stream; charset=iso-8859-1`
    /// (event streams are always UTF-8: a browser decodes them as UTF-8 anyway, other
    /// clients take the label and garble every non-ASCII character).
    Latin1Charset => "latin1-charset",
    /// (v1.1) `Idempotency-Key` on publish is checked and then ignored: a retried
    /// publish with the same key commits a second copy under new seqs (`201`).
    IdempotencyIgnored => "idempotency-ignored",
    /// A stream whose writes make no progress is never cut: a subscriber behind a dead
    /// link (a half-open connection that stops ACKing) holds its stream, and the
    /// server's resources for it, for as long as the link stays dead; nothing counts it
    /// in `spine_slow_consumer_closes_total`. `connection_open` still announces the
    /// configured `write_stall_ms`.
    StalledReaderKept => "stalled-reader-kept",
    /// A cursor above the head is read as no cursor: the stream replays the whole log
    /// (the job's) from the start, without `cursor_ahead`, so a client that sends a
    /// well-formed id the server never issued gets everything it had again.
    AheadCursorFromStart => "ahead-cursor-from-start",
    /// On a job's events stream, a cursor that is not one of that job's seqs (a
    /// position taken from another job) starts at the head: the job's events after
    /// the cursor are silently skipped, and only new ones are sent.
    ForeignCursorLiveOnly => "foreign-cursor-live-only",
    /// A malformed cursor is not refused with `400 invalid_last_event_id`: the stream
    /// starts at the head, as if the client had everything (only new events).
    GarbageCursorLiveOnly => "garbage-cursor-live-only",
    /// (v1.1) CORS headers are left off event streams (every response whose
    /// `Content-Type` is `text/event-stream`), while preflights and every other `/v1/*`
    /// answer keep them: a byte-exact client does not notice, a browser's `EventSource`
    /// on an allowed origin is blocked and stops for good.
    CorsOffOnStreams => "cors-off-on-streams",
    /// (v1.1) A stream authenticated by its `access_token` query parameter (no
    /// `Authorization` header: the way a browser's `EventSource` asks) ignores the
    /// `Last-Event-ID` header and replays from the start, as an auth layer that rebuilds
    /// such requests without their headers would: byte-exact clients, which send the
    /// header, resume exactly; a browser's reconnection gets every event again.
    QueryTokenDropsCursor => "query-token-drops-cursor",
    /// An events stream whose client address (IP) differs from the first one an
    /// events stream came from gets every event with its `ts` written in another form
    /// (`+00:00` for `Z`: the same instant, other bytes): a different event under the
    /// same seq than the first address's streams get. One client machine never sees
    /// it; only clients from two addresses compared together do (a split run's merge).
    ForkByPeer => "fork-by-peer",
}

/// Faults with no row in `contracts/mutations.toml`: no harness scenario can show them
/// yet, so their proof is a reference-server test that runs the server with and without
/// the fault. None today (`idempotency-ignored` was one until `NETWORK/lost-publish-acks`
/// lost publish answers and retried them: `delivery.indeterminate` catches it).
pub const PROVEN_BY_SERVER_TESTS: &[Fault] = &[];

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault name that is not one of [`Fault::ALL`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown fault {name:?}; known: {known}")]
pub struct UnknownFault {
    /// The name given.
    pub name: String,
    /// The known names, comma separated.
    pub known: String,
}

impl FromStr for Fault {
    type Err = UnknownFault;

    fn from_str(s: &str) -> Result<Fault, UnknownFault> {
        Fault::ALL
            .iter()
            .copied()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFault {
                name: s.to_owned(),
                known: Fault::ALL
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// The faults switched on for one server (empty by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultSet {
    on: BTreeSet<Fault>,
}

impl FaultSet {
    /// A set with the given faults on.
    pub fn new(faults: impl IntoIterator<Item = Fault>) -> FaultSet {
        FaultSet {
            on: faults.into_iter().collect(),
        }
    }

    /// Whether `fault` is on.
    pub fn has(&self, fault: Fault) -> bool {
        !self.on.is_empty() && self.on.contains(&fault)
    }

    /// Whether no fault is on.
    pub fn is_empty(&self) -> bool {
        self.on.is_empty()
    }

    /// The faults on, in [`Fault`] order.
    pub fn iter(&self) -> impl Iterator<Item = Fault> + '_ {
        self.on.iter().copied()
    }
}

/// Counters some faults need ("every n-th connection", "every n-th publish"); touched
/// only while such a fault is on.
#[derive(Default)]
pub(crate) struct FaultCounters {
    connections: AtomicU64,
    publishes: AtomicU64,
    /// [`Fault::LeakClosedStreams`]: what streams of vanished clients held, never freed.
    leaked: Mutex<Vec<Box<dyn std::any::Any + Send>>>,
    /// [`Fault::GlobalWriteLock`]: the one lock every stream's write takes.
    pub(crate) write_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// [`Fault::ForkByPeer`]: the address of the first events stream's client.
    first_peer: std::sync::OnceLock<std::net::IpAddr>,
}

impl fmt::Debug for FaultCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultCounters")
            .field("connections", &self.connections)
            .field("publishes", &self.publishes)
            .finish_non_exhaustive()
    }
}

impl FaultCounters {
    /// The 1-based ordinal of a new log stream.
    pub(crate) fn next_connection(&self) -> u64 {
        self.connections.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// [`Fault::LeakClosedStreams`]: keeps `held` until the server stops.
    pub(crate) fn leak(&self, held: Box<dyn std::any::Any + Send>) {
        if let Ok(mut l) = self.leaked.lock() {
            l.push(held);
        }
    }

    /// The 1-based ordinal of a new well-formed publish request.
    /// [`Fault::ForkByPeer`]: whether a stream from `peer` is forked (its address is
    /// not the first one seen).
    pub(crate) fn forked(&self, peer: std::net::IpAddr) -> bool {
        *self.first_peer.get_or_init(|| peer) != peer
    }

    pub(crate) fn next_publish(&self) -> u64 {
        self.publishes.fetch_add(1, Ordering::Relaxed) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_parses_from_its_unique_name_and_unknown_names_are_refused() {
        let mut seen = BTreeSet::new();
        for f in Fault::ALL {
            assert_eq!(f.name().parse::<Fault>().unwrap(), *f);
            assert!(seen.insert(f.name()), "duplicate name {}", f.name());
            assert!(
                f.name()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{} is not kebab-case",
                f.name()
            );
        }
        let err = "nope".parse::<Fault>().unwrap_err();
        assert!(err.to_string().contains("heartbeat-absent"));
        assert!("".parse::<Fault>().is_err());
        assert!("Replay-Off-By-One".parse::<Fault>().is_err());
    }

    #[test]
    fn the_default_set_is_empty_and_has_nothing_on() {
        let set = FaultSet::default();
        assert!(set.is_empty());
        assert!(Fault::ALL.iter().all(|f| !set.has(*f)));
        let one = FaultSet::new([Fault::Reorder]);
        assert!(one.has(Fault::Reorder) && !one.has(Fault::NoRetry));
    }

    #[test]
    fn every_row_of_the_mutation_table_has_a_fault_and_every_fault_a_row() {
        let table = include_str!("../../contracts/mutations.toml");
        let rows: BTreeSet<&str> = table
            .lines()
            .filter_map(|l| l.strip_prefix("fault = \""))
            .filter_map(|l| l.strip_suffix('"'))
            .collect();
        let names: BTreeSet<&str> = Fault::ALL
            .iter()
            .filter(|f| !PROVEN_BY_SERVER_TESTS.contains(f))
            .map(|f| f.name())
            .collect();
        assert_eq!(rows, names);
    }
}
