//! The SQLite event log: one writer thread owns the write connection and group-commits
//! every write waiting at that moment into one transaction; the seq is the table's
//! `AUTOINCREMENT` key, so it comes from the store and continues after a restart.
//!
//! After each commit the writer appends the new events to a bounded in-memory ring of
//! recent events, then advances the head (`watch<u64>`), then answers the writers. So
//! every seq at or below the announced head is committed and readable, and an ack is
//! never seen before its head. Readers page from the ring when their cursor is inside
//! it and from a small pool of read-only WAL connections otherwise (bounded memory for
//! a slow or late reader).

use std::collections::VecDeque;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::{BufMut as _, Bytes, BytesMut};
use chrono::{SecondsFormat, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot, watch};

use crate::faults::{COMMIT_LAG, Fault, FaultSet};

/// The store's schema (fixed: the integrity report reads it too). Every statement is
/// `CREATE … IF NOT EXISTS`, so opening a data folder made by an older server adds what
/// it lacks (the v1.1 `idempotency_keys` table) and touches nothing else. The one
/// change to an existing table, the `events.frame` column, is [`migrate_frames`]'s:
/// together they are the store's migration, with no schema version to keep.
pub const SCHEMA: &str = include_str!("schema.sql");

/// Rows whose frame the migration fills per transaction.
const MIGRATE_BATCH: usize = 10_000;

/// Most commands folded into one transaction.
const MAX_GROUP_COMMANDS: usize = 4096;
/// Most events folded into one transaction.
const MAX_GROUP_EVENTS: usize = 50_000;
/// About the most payload bytes folded into one transaction (the last command may go
/// over): a group's events are held twice while it commits (the commands and the
/// stored copies), so this bounds the writer's memory, not only its count.
const MAX_GROUP_BYTES: usize = 32 * 1024 * 1024;
/// Most events kept in the in-memory ring of recent events.
const RING_EVENTS: usize = 16_384;
/// Most payload bytes kept in the ring.
const RING_BYTES: usize = 32 * 1024 * 1024;
/// Most bytes of the database a read-only connection maps into memory (address
/// space, not resident memory: the pages are the kernel's page cache).
const READ_MMAP_BYTES: i64 = 1 << 30;
/// Idle read-only connections kept open.
const READ_POOL_IDLE: usize = 8;

/// What went wrong in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// Opening or preparing the database failed.
    Open,
    /// A statement failed.
    Sql,
    /// The writer has stopped (the server is shutting down).
    Closed,
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
#[error("store {kind:?}: {detail}")]
pub struct StoreError {
    /// What went wrong.
    pub kind: StoreErrorKind,
    /// Details for the log.
    pub detail: String,
}

impl StoreError {
    fn new(kind: StoreErrorKind, detail: impl Into<String>) -> StoreError {
        StoreError {
            kind,
            detail: detail.into(),
        }
    }
    fn sql(e: rusqlite::Error) -> StoreError {
        StoreError::new(StoreErrorKind::Sql, e.to_string())
    }
}

/// An event to append; `payload` is compact JSON of an object.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The job the event belongs to.
    pub job_id: String,
    /// Its type.
    pub event_type: String,
    /// Compact JSON object.
    pub payload: String,
}

/// A persisted event.
#[derive(Debug)]
pub struct StoredEvent {
    /// The store-assigned sequence number.
    pub seq: u64,
    /// The job.
    pub job_id: String,
    /// The type.
    pub event_type: String,
    /// Server time, RFC 3339 with milliseconds.
    pub ts: String,
    /// Compact JSON object.
    pub payload: String,
    /// The event's frame as written on a stream, up to its correlation id: see
    /// [`write_frame`]. It is the log row's `frame` column.
    pub frame: Bytes,
    /// Where the frame's `data:` value (the wire prefix) starts.
    data_at: usize,
}

/// Writes the row-invariant part of an event's frame into `w`:
/// `id: <seq>\nevent: task_event\ndata: {"seq":..,"job_id":..,"event_type":..,"ts":..,"payload":..`
/// without the closing brace, so a stream only appends `,"correlation_id":<cid>}\n\n`.
/// This is what the log row's `frame` column holds (written at commit, or by the
/// migration of an older data folder); returns where the `data:` value starts.
pub fn write_frame(
    w: &mut Vec<u8>,
    seq: u64,
    job_id: &str,
    event_type: &str,
    ts: &str,
    payload: &str,
) -> usize {
    let _ = write!(w, "id: {seq}\nevent: task_event\ndata: ");
    let data_at = w.len();
    let _ = write!(w, "{{\"seq\":{seq},\"job_id\":");
    let _ = serde_json::to_writer(&mut *w, job_id);
    w.extend_from_slice(b",\"event_type\":");
    let _ = serde_json::to_writer(&mut *w, event_type);
    w.extend_from_slice(b",\"ts\":");
    let _ = serde_json::to_writer(&mut *w, ts);
    w.extend_from_slice(b",\"payload\":");
    w.extend_from_slice(payload.as_bytes());
    data_at
}

impl StoredEvent {
    fn new(seq: u64, job_id: String, event_type: String, ts: String, payload: String) -> Self {
        let mut w =
            Vec::with_capacity(96 + job_id.len() + event_type.len() + ts.len() + payload.len());
        let data_at = write_frame(&mut w, seq, &job_id, &event_type, &ts, &payload);
        StoredEvent {
            seq,
            job_id,
            event_type,
            ts,
            payload,
            frame: Bytes::from(w),
            data_at,
        }
    }

    /// `{"seq":..,"job_id":..,"event_type":..,"ts":..,"payload":..` without the closing
    /// brace: the frame's `data:` value before the correlation id.
    pub fn wire_prefix(&self) -> &str {
        // Built from `&str`s, so UTF-8.
        std::str::from_utf8(&self.frame[self.data_at..]).unwrap_or_default()
    }

    /// Reads a row of `SELECT seq, job_id, event_type, ts, payload FROM events`.
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
        Ok(StoredEvent::new(
            r.get::<_, i64>(0)? as u64,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
        ))
    }
}

/// A string as a JSON string literal.
pub fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// Server time now, RFC 3339 with milliseconds.
pub fn now_ts() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The terminal or running state of a job as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Still emitting.
    Running,
    /// Ended with `task_completed`.
    Completed,
    /// Ended with `task_failed`.
    Failed,
}

impl JobState {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
        }
    }
    fn parse(s: &str) -> JobState {
        match s {
            "completed" => JobState::Completed,
            "failed" => JobState::Failed,
            _ => JobState::Running,
        }
    }
}

/// An `artifacts` row.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ArtifactRow {
    /// File name under `artifacts/<job_id>/`.
    pub name: String,
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// Size.
    pub bytes: u64,
}

/// One write, applied atomically inside a group transaction.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Append events.
    Append(Vec<NewEvent>),
    /// Fault [`Fault::AckWithoutWrite`]: give the events seqs, then delete their rows in
    /// the same transaction (the seqs are used up, nothing is stored).
    AppendUnwritten(Vec<NewEvent>),
    /// Append events published with an `Idempotency-Key` (protocol §3): when the job
    /// already holds the key, nothing is written and the outcome is
    /// [`Applied::Replayed`] or [`Applied::Conflict`]; otherwise the events and the key
    /// (with their seqs) are written in the same transaction.
    AppendKeyed {
        /// The job the key belongs to.
        job_id: String,
        /// The key, as sent.
        key: String,
        /// Lowercase hex SHA-256 of the request's canonical body.
        body_sha256: String,
        /// The events.
        events: Vec<NewEvent>,
    },
    /// Create a job row and its first event.
    CreateJob {
        /// The new id.
        job_id: String,
        /// The spec as JSON.
        spec: String,
        /// The first event (`job_started`).
        first: NewEvent,
    },
    /// Record an artifact and append its event.
    AddArtifact {
        /// The job.
        job_id: String,
        /// The row.
        row: ArtifactRow,
        /// The `artifact_written` event.
        event: NewEvent,
    },
    /// End a job: state, receipt hash and the terminal event.
    Finish {
        /// The job.
        job_id: String,
        /// `Completed` or `Failed`.
        state: JobState,
        /// The receipt's hash (completed jobs).
        receipt_hash: Option<String>,
        /// When.
        completed_at: String,
        /// The terminal event.
        event: NewEvent,
    },
}

impl WriteOp {
    fn event_count(&self) -> usize {
        match self {
            WriteOp::Append(v) | WriteOp::AppendUnwritten(v) => v.len(),
            WriteOp::AppendKeyed { events, .. } => events.len(),
            _ => 1,
        }
    }

    /// About how many bytes the op's events weigh.
    fn byte_size(&self) -> usize {
        let one = |e: &NewEvent| e.payload.len() + e.event_type.len() + e.job_id.len();
        match self {
            WriteOp::Append(v) | WriteOp::AppendUnwritten(v) => v.iter().map(one).sum(),
            WriteOp::AppendKeyed { events, key, .. } => {
                events.iter().map(one).sum::<usize>() + key.len()
            }
            WriteOp::CreateJob { first, spec, .. } => one(first) + spec.len(),
            WriteOp::AddArtifact { event, .. } | WriteOp::Finish { event, .. } => one(event),
        }
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Committed; the new seqs.
    Committed(Vec<u64>),
    /// [`WriteOp::AppendKeyed`] whose key the job already held for the same body:
    /// nothing written; the seqs the key's first request got.
    Replayed(Vec<u64>),
    /// [`WriteOp::AppendKeyed`] whose key the job already held for another body:
    /// nothing written.
    Conflict,
}

/// A stored `Idempotency-Key`: the body it came with and the seqs it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// Lowercase hex SHA-256 of the canonical body of the key's first request.
    pub body_sha256: String,
    /// The seqs that request got.
    pub seqs: Vec<u64>,
}

impl KeyRow {
    /// The outcome of a later request with the same key and the body digest `body_sha256`.
    pub fn judge(&self, body_sha256: &str) -> Applied {
        if self.body_sha256 == body_sha256 {
            Applied::Replayed(self.seqs.clone())
        } else {
            Applied::Conflict
        }
    }
}

/// The key row of `(job_id, key)`, if the job holds that key.
pub fn find_key(conn: &Connection, job_id: &str, key: &str) -> rusqlite::Result<Option<KeyRow>> {
    let row = conn
        .prepare_cached(
            "SELECT body_sha256, seqs FROM idempotency_keys WHERE job_id = ?1 AND key = ?2",
        )?
        .query_row(params![job_id, key], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .optional()?;
    row.map(|(body_sha256, seqs)| {
        let seqs = serde_json::from_str(&seqs).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
        })?;
        Ok(KeyRow { body_sha256, seqs })
    })
    .transpose()
}

struct WriteCmd {
    op: WriteOp,
    reply: oneshot::Sender<Result<Applied, StoreError>>,
}

enum Cmd {
    Write(WriteCmd),
    Stop,
}

/// The bounded ring of the most recent events: every event with `seq > floor` is in it.
struct Ring {
    floor: u64,
    events: VecDeque<Arc<StoredEvent>>,
    bytes: usize,
}

impl Ring {
    fn push(&mut self, ev: Arc<StoredEvent>) {
        self.bytes += ev.frame.len();
        self.events.push_back(ev);
        while self.events.len() > RING_EVENTS || self.bytes > RING_BYTES {
            let Some(old) = self.events.pop_front() else {
                break;
            };
            self.bytes -= old.frame.len();
            self.floor = old.seq;
        }
    }
}

/// A page read: the events and the cursor to continue from.
#[derive(Debug)]
pub struct Page {
    /// The matching events, in seq order.
    pub events: Vec<Arc<StoredEvent>>,
    /// Everything up to this seq has been scanned.
    pub scanned_to: u64,
}

/// A page read as ready frames (see [`Store::page_frames`]).
#[derive(Debug)]
pub struct FramePage {
    /// The events' frames, each its row's `frame` then the stream's suffix.
    pub bytes: Bytes,
    /// How many events.
    pub events: u64,
    /// Everything up to this seq has been scanned.
    pub scanned_to: u64,
    /// The type of the terminal event the page ends with, when it was read to stop there.
    pub terminal: Option<String>,
}

/// How [`Store::page_frames`] writes a page.
#[derive(Debug, Clone)]
pub struct FrameSpec {
    /// What follows each event's stored frame: the stream's
    /// `,"correlation_id":<cid>}\n\n`.
    pub suffix: Bytes,
    /// End the page after the first `task_completed` or `task_failed` (a task stream),
    /// and say which.
    pub until_terminal: bool,
}

/// The frames of a page as they are read: one buffer for the page, no allocation per
/// row.
struct FrameBuf {
    buf: BytesMut,
    suffix: Bytes,
    events: u64,
    last: u64,
    limit: usize,
    max_bytes: usize,
    until_terminal: bool,
    terminal: Option<String>,
}

impl FrameBuf {
    /// About the bytes of one event's frame and suffix, to size the page's buffer.
    const FRAME_GUESS: usize = 320;

    fn new(spec: FrameSpec, limit: usize, max_bytes: usize) -> FrameBuf {
        let FrameSpec {
            suffix,
            until_terminal,
        } = spec;
        FrameBuf {
            buf: BytesMut::new(),
            suffix,
            events: 0,
            last: 0,
            limit,
            max_bytes,
            until_terminal,
            terminal: None,
        }
    }

    /// Sizes the buffer for a read of at most `rows` rows (a live stream's page of one
    /// event must not hold a replay page's worth of memory).
    fn reserve_for(&mut self, rows: u64) {
        let rows = (rows as usize).min(self.limit);
        let cap = rows
            .saturating_mul(Self::FRAME_GUESS)
            .min(self.max_bytes + 4096);
        self.buf.reserve(cap);
    }

    /// Adds one event; returns whether the page is complete (full, or its terminal).
    fn push(&mut self, seq: u64, event_type: &[u8], frame: &[u8]) -> bool {
        self.buf.put_slice(frame);
        self.buf.put_slice(&self.suffix);
        self.events += 1;
        self.last = seq;
        if self.until_terminal && matches!(event_type, b"task_completed" | b"task_failed") {
            self.terminal = Some(String::from_utf8_lossy(event_type).into_owned());
            return true;
        }
        self.events as usize >= self.limit || self.buf.len() >= self.max_bytes
    }

    /// The page; `scanned_to` is the read's bound when the page is not complete.
    fn finish(self, complete: bool, upto: u64) -> FramePage {
        FramePage {
            bytes: self.buf.freeze(),
            events: self.events,
            scanned_to: if complete { self.last } else { upto },
            terminal: self.terminal,
        }
    }
}

/// Reads rows of `SELECT seq, event_type, frame` into `fb`; returns whether the page
/// is complete.
fn read_frames(
    conn: &Connection,
    rows: &mut rusqlite::Rows<'_>,
    fb: &mut FrameBuf,
) -> rusqlite::Result<bool> {
    use rusqlite::types::ValueRef;
    while let Some(r) = rows.next()? {
        let seq = r.get::<_, i64>(0)? as u64;
        let event_type = match r.get_ref(1)? {
            ValueRef::Text(b) | ValueRef::Blob(b) => b,
            _ => &[],
        };
        let complete = match r.get_ref(2)? {
            ValueRef::Blob(frame) | ValueRef::Text(frame) => fb.push(seq, event_type, frame),
            // No frame: the open's migration fills every row, so only defensively.
            _ => {
                let ev = conn
                    .prepare_cached(
                        "SELECT seq, job_id, event_type, ts, payload FROM events WHERE seq = ?1",
                    )?
                    .query_row([seq as i64], StoredEvent::from_row)?;
                fb.push(seq, event_type, &ev.frame)
            }
        };
        if complete {
            return Ok(true);
        }
    }
    Ok(false)
}

/// What a receipt says about a job's events.
#[derive(Debug, Clone, Default)]
pub struct JobDigest {
    /// First seq.
    pub first_seq: Option<u64>,
    /// Last seq.
    pub last_seq: Option<u64>,
    /// How many.
    pub event_count: u64,
    /// SHA-256 over their canonical lines.
    pub events_sha256: String,
}

/// A job row with its event statistics.
#[derive(Debug, Clone)]
pub struct JobRow {
    /// The job.
    pub job_id: String,
    /// The spec JSON.
    pub spec: String,
    /// The state.
    pub state: JobState,
    /// The receipt's hash when completed.
    pub receipt_hash: Option<String>,
}

/// The event log and job tables.
pub struct Store {
    data_dir: PathBuf,
    db_path: PathBuf,
    tx: mpsc::Sender<Cmd>,
    head: watch::Receiver<u64>,
    ring: Arc<Mutex<Ring>>,
    idle_readers: Arc<Mutex<Vec<Connection>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    persisted: Arc<AtomicU64>,
    health: Health,
}

/// Why the writers are unhealthy, if they are: the store's writer (set by a failed
/// write — disk full, read-only folder, out of descriptors — cleared by the next
/// successful one) and the job's file writes (artifacts, receipts; set and cleared the
/// same way). Reasons never contain a path.
#[derive(Debug, Clone, Default)]
pub struct Health {
    store: Arc<Mutex<Option<String>>>,
    files: Arc<Mutex<Option<String>>>,
}

impl Health {
    fn set(&self, reason: Option<String>) {
        if let Ok(mut h) = self.store.lock() {
            *h = reason;
        }
    }

    /// Records how a file write went: a failure makes the server unhealthy until a
    /// later file write succeeds.
    pub fn file_write(&self, what: &str, result: Result<(), std::io::ErrorKind>) {
        if let Ok(mut h) = self.files.lock() {
            *h = result.err().map(|kind| format!("{what}s failing: {kind}"));
        }
    }

    /// The reason the writers are failing (the store's first), or `None` when their
    /// last writes succeeded.
    pub fn unhealthy(&self) -> Option<String> {
        let store = self.store.lock().ok().and_then(|h| h.clone());
        store.or_else(|| self.files.lock().ok().and_then(|h| h.clone()))
    }
}

/// A failed write's reason as shown on `/healthz`: SQLite's error code, never a path.
fn failure_reason(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => format!(
            "store writes failing: {:?} (SQLite code {})",
            f.code, f.extended_code
        ),
        _ => "store writes failing".to_owned(),
    }
}

/// Whether a failed write is the store's trouble (full, read-only, I/O) rather than
/// the write's own (a constraint).
fn is_resource_failure(e: &rusqlite::Error) -> bool {
    !matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ConstraintViolation) | None
    )
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("db_path", &self.db_path)
            .field("head", &*self.head.borrow())
            .finish()
    }
}

fn open_write(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)
        .map_err(|e| StoreError::new(StoreErrorKind::Open, format!("{}: {e}", path.display())))?;
    // Private to the server's user; SQLite gives its -wal and -shm files the same mode.
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| StoreError::new(StoreErrorKind::Open, e.to_string()))?;
    }
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(StoreError::sql)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(StoreError::sql)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(StoreError::sql)?;
    add_frame_column(&conn).map_err(StoreError::sql)?;
    conn.execute_batch(SCHEMA).map_err(StoreError::sql)?;
    migrate_frames(&conn).map_err(StoreError::sql)?;
    Ok(conn)
}

/// Adds the `frame` column to the `events` table of a data folder made before it
/// existed (before [`SCHEMA`] runs: its `events_unframed` index needs the column).
fn add_frame_column(conn: &Connection) -> rusqlite::Result<()> {
    let columns: i64 = conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('events')",
        [],
        |r| r.get(0),
    )?;
    let has_frame: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM pragma_table_info('events') WHERE name = 'frame')",
        [],
        |r| r.get(0),
    )?;
    if columns > 0 && !has_frame {
        tracing::info!("migrating the event log: adding events.frame");
        conn.execute_batch("ALTER TABLE events ADD COLUMN frame BLOB")?;
    }
    Ok(())
}

/// Fills the `frame` of every row without one (found through the partial index
/// `events_unframed`, so a folder with none costs one index probe): the rows of a
/// folder made before the column existed, or written by an older server since. The
/// frame is built from the row's columns exactly as it is at commit, so replay serves
/// the bytes the older server served. Batches of [`MIGRATE_BATCH`] rows, each its own
/// transaction: an interrupted migration carries on at the next open.
pub fn migrate_frames(conn: &Connection) -> rusqlite::Result<u64> {
    let mut filled = 0u64;
    loop {
        let rows: Vec<(i64, Vec<u8>)> = {
            let mut st = conn.prepare_cached(
                "SELECT seq, job_id, event_type, ts, payload FROM events \
                 WHERE frame IS NULL ORDER BY seq LIMIT ?1",
            )?;
            st.query_map([MIGRATE_BATCH as i64], |r| {
                let ev = StoredEvent::from_row(r)?;
                Ok((ev.seq as i64, ev.frame.to_vec()))
            })?
            .collect::<rusqlite::Result<_>>()?
        };
        if rows.is_empty() {
            break;
        }
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let done = (|| {
            let mut up = conn.prepare_cached("UPDATE events SET frame = ?2 WHERE seq = ?1")?;
            for (seq, frame) in &rows {
                up.execute(params![seq, frame])?;
            }
            conn.execute_batch("COMMIT")
        })();
        if let Err(e) = done {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
        filled += rows.len() as u64;
    }
    if filled > 0 {
        tracing::info!(rows = filled, "event log migrated: frames filled");
    }
    Ok(filled)
}

fn open_read(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::new(StoreErrorKind::Open, format!("{}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(StoreError::sql)?;
    // Replay reads the log's pages through a memory map instead of a `pread` and a
    // copy per page (a quarter of the server's time in a replay's profile).
    conn.pragma_update(None, "mmap_size", READ_MMAP_BYTES)
        .map_err(StoreError::sql)?;
    Ok(conn)
}

impl Store {
    /// Opens (creating) `<data_dir>/spine.db` and starts the writer thread; `faults`
    /// are the store's deliberate deviations (none in a correct server).
    pub fn open(
        data_dir: &Path,
        persisted: Arc<AtomicU64>,
        faults: &FaultSet,
        max_pages: Option<u64>,
    ) -> Result<Store, StoreError> {
        let db_path = data_dir.join("spine.db");
        let conn = open_write(&db_path)?;
        if let Some(n) = max_pages {
            conn.pragma_update(None, "max_page_count", n)
                .map_err(StoreError::sql)?;
        }
        let mut head: u64 = conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(StoreError::sql)? as u64;
        let wf = WriterFaults {
            ack_before_commit: faults.has(Fault::AckBeforeCommit),
            seq_counter: faults.has(Fault::SeqFromCounter).then_some(1),
        };
        if wf.seq_counter.is_some() {
            // The counter's view: nothing was written before this start.
            head = 0;
        }
        let (head_tx, head_rx) = watch::channel(head);
        let ring = Arc::new(Mutex::new(Ring {
            floor: head,
            events: VecDeque::new(),
            bytes: 0,
        }));
        let (tx, rx) = mpsc::channel(8192);
        let writer_ring = ring.clone();
        let writer_persisted = persisted.clone();
        let health = Health::default();
        let out = WriterOut {
            head: head_tx,
            ring: writer_ring,
            persisted: writer_persisted,
            health: health.clone(),
        };
        let writer = std::thread::Builder::new()
            .name("spine-writer".into())
            .spawn(move || writer_loop(conn, rx, out, wf))
            .map_err(|e| StoreError::new(StoreErrorKind::Open, e.to_string()))?;
        Ok(Store {
            data_dir: data_dir.to_path_buf(),
            db_path,
            tx,
            head: head_rx,
            ring,
            idle_readers: Arc::new(Mutex::new(Vec::new())),
            writer: Mutex::new(Some(writer)),
            persisted,
            health,
        })
    }

    /// The writer's health.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The committed head seq (0 for an empty log).
    pub fn head(&self) -> u64 {
        *self.head.borrow()
    }

    /// A receiver that changes whenever the head advances.
    pub fn subscribe_head(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }

    /// Events persisted by this process.
    pub fn persisted_total(&self) -> u64 {
        self.persisted.load(Ordering::Relaxed)
    }

    /// Applies `op` in the next group commit; returns the seqs once committed (for
    /// [`WriteOp::AppendKeyed`], the seqs of a replay too; see [`Store::write_applied`]
    /// to tell them apart).
    pub async fn write(&self, op: WriteOp) -> Result<Vec<u64>, StoreError> {
        match self.write_applied(op).await? {
            Applied::Committed(seqs) | Applied::Replayed(seqs) => Ok(seqs),
            Applied::Conflict => Err(StoreError::new(
                StoreErrorKind::Sql,
                "idempotency key conflict",
            )),
        }
    }

    /// The key row of `(job_id, key)` as committed now, if any (a committed key never
    /// changes, so a request that finds one can answer without the writer).
    pub async fn idempotency_key(
        &self,
        job_id: &str,
        key: &str,
    ) -> Result<Option<KeyRow>, StoreError> {
        let (job_id, key) = (job_id.to_owned(), key.to_owned());
        self.read(move |c| find_key(c, &job_id, &key)).await
    }

    /// Applies `op` in the next group commit; says what it did once committed.
    pub async fn write_applied(&self, op: WriteOp) -> Result<Applied, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Write(WriteCmd { op, reply }))
            .await
            .map_err(|_| StoreError::new(StoreErrorKind::Closed, "writer stopped"))?;
        rx.await
            .map_err(|_| StoreError::new(StoreErrorKind::Closed, "writer stopped"))?
    }

    /// Drains every queued write, then stops the writer thread and waits for it.
    pub async fn close(&self) {
        let _ = self.tx.send(Cmd::Stop).await;
        let handle = self.writer.lock().map(|mut g| g.take()).unwrap_or(None);
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }

    /// Runs `f` on a read-only connection on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let pool = self.idle_readers.clone();
        let path = self.db_path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match pool.lock().ok().and_then(|mut p| p.pop()) {
                Some(c) => c,
                None => open_read(&path)?,
            };
            let out = f(&conn).map_err(StoreError::sql);
            if let Ok(mut p) = pool.lock()
                && p.len() < READ_POOL_IDLE
            {
                p.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::new(StoreErrorKind::Sql, e.to_string()))?
    }

    /// Reads events with `after < seq <= upto` (of one job when `job` is set), at most
    /// `limit` rows and about `max_bytes` of payload, from the ring when it holds them.
    pub async fn page(
        &self,
        after: u64,
        upto: u64,
        job: Option<&str>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Page, StoreError> {
        if after >= upto {
            return Ok(Page {
                events: Vec::new(),
                scanned_to: after,
            });
        }
        if let Some(page) = self.page_from_ring(after, upto, job, limit, max_bytes) {
            return Ok(page);
        }
        let job = job.map(str::to_owned);
        self.read(move |conn| {
            let mut events = Vec::new();
            let mut bytes = 0usize;
            let mut last = after;
            // Returns whether the page is full.
            let mut push = |ev: StoredEvent| -> bool {
                last = ev.seq;
                bytes += ev.frame.len();
                events.push(Arc::new(ev));
                events.len() >= limit || bytes >= max_bytes
            };
            let mut full = false;
            match &job {
                Some(j) => {
                    let mut st = conn.prepare_cached(
                        "SELECT seq, job_id, event_type, ts, payload FROM events \
                         WHERE job_id = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4",
                    )?;
                    let mut rows = st.query(params![j, after as i64, upto as i64, limit as i64])?;
                    while let Some(r) = rows.next()? {
                        full = push(StoredEvent::from_row(r)?);
                        if full {
                            break;
                        }
                    }
                }
                None => {
                    let mut st = conn.prepare_cached(
                        "SELECT seq, job_id, event_type, ts, payload FROM events \
                         WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3",
                    )?;
                    let mut rows = st.query(params![after as i64, upto as i64, limit as i64])?;
                    while let Some(r) = rows.next()? {
                        full = push(StoredEvent::from_row(r)?);
                        if full {
                            break;
                        }
                    }
                }
            }
            let scanned_to = if full { last } else { upto };
            Ok(Page { events, scanned_to })
        })
        .await
    }

    /// [`Store::page`] as ready frames, as `spec` says: one buffer for the page, each
    /// event's stored frame then the stream's suffix, so a row read is one BLOB column
    /// and a copy.
    pub async fn page_frames(
        &self,
        after: u64,
        upto: u64,
        job: Option<&str>,
        limit: usize,
        max_bytes: usize,
        spec: FrameSpec,
    ) -> Result<FramePage, StoreError> {
        let mut fb = FrameBuf::new(spec, limit, max_bytes);
        if after >= upto {
            return Ok(fb.finish(false, after));
        }
        fb.reserve_for(upto - after);
        if let Ok(ring) = self.ring.lock()
            && after >= ring.floor
        {
            let start = ring.events.partition_point(|e| e.seq <= after);
            let mut complete = false;
            for ev in ring.events.iter().skip(start) {
                if ev.seq > upto {
                    break;
                }
                if job.is_none_or(|j| j == ev.job_id)
                    && fb.push(ev.seq, ev.event_type.as_bytes(), &ev.frame)
                {
                    complete = true;
                    break;
                }
            }
            return Ok(fb.finish(complete, upto));
        }
        let job = job.map(str::to_owned);
        self.read(move |conn| {
            let complete = match &job {
                Some(j) => {
                    let mut st = conn.prepare_cached(
                        "SELECT seq, event_type, frame FROM events \
                         WHERE job_id = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4",
                    )?;
                    let mut rows = st.query(params![j, after as i64, upto as i64, limit as i64])?;
                    read_frames(conn, &mut rows, &mut fb)?
                }
                None => {
                    let mut st = conn.prepare_cached(
                        "SELECT seq, event_type, frame FROM events \
                         WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3",
                    )?;
                    let mut rows = st.query(params![after as i64, upto as i64, limit as i64])?;
                    read_frames(conn, &mut rows, &mut fb)?
                }
            };
            Ok(fb.finish(complete, upto))
        })
        .await
    }

    fn page_from_ring(
        &self,
        after: u64,
        upto: u64,
        job: Option<&str>,
        limit: usize,
        max_bytes: usize,
    ) -> Option<Page> {
        let ring = self.ring.lock().ok()?;
        if after < ring.floor {
            return None;
        }
        let start = ring.events.partition_point(|e| e.seq <= after);
        let mut events = Vec::new();
        let mut bytes = 0usize;
        let mut scanned_to = upto;
        for ev in ring.events.iter().skip(start) {
            if ev.seq > upto {
                break;
            }
            if job.is_none_or(|j| j == ev.job_id) {
                bytes += ev.frame.len();
                events.push(ev.clone());
                if events.len() >= limit || bytes >= max_bytes {
                    scanned_to = ev.seq;
                    break;
                }
            }
        }
        Some(Page { events, scanned_to })
    }

    /// All jobs, for start-up.
    pub fn load_jobs_blocking(&self) -> Result<Vec<JobRow>, StoreError> {
        let conn = open_read(&self.db_path)?;
        let mut st = conn
            .prepare("SELECT job_id, spec, state, receipt_hash FROM jobs")
            .map_err(StoreError::sql)?;
        let rows: Vec<JobRow> = st
            .query_map([], |r| {
                Ok(JobRow {
                    job_id: r.get(0)?,
                    spec: r.get(1)?,
                    state: JobState::parse(&r.get::<_, String>(2)?),
                    receipt_hash: r.get(3)?,
                })
            })
            .map_err(StoreError::sql)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::sql)?;
        Ok(rows)
    }

    /// One job row, if it exists.
    pub async fn job(&self, job_id: &str) -> Result<Option<JobRow>, StoreError> {
        let job_id = job_id.to_owned();
        self.read(move |conn| {
            conn.query_row(
                "SELECT job_id, spec, state, receipt_hash FROM jobs WHERE job_id = ?1",
                [&job_id],
                |r| {
                    Ok(JobRow {
                        job_id: r.get(0)?,
                        spec: r.get(1)?,
                        state: JobState::parse(&r.get::<_, String>(2)?),
                        receipt_hash: r.get(3)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    /// `(first_seq, last_seq, count)` of a job's events with `seq <= upto`.
    pub async fn job_stats(
        &self,
        job_id: &str,
        upto: u64,
    ) -> Result<(Option<u64>, Option<u64>, u64), StoreError> {
        let job_id = job_id.to_owned();
        self.read(move |conn| {
            conn.query_row(
                "SELECT MIN(seq), MAX(seq), COUNT(*) FROM events WHERE job_id = ?1 AND seq <= ?2",
                params![job_id, upto as i64],
                |r| {
                    Ok((
                        r.get::<_, Option<i64>>(0)?.map(|v| v as u64),
                        r.get::<_, Option<i64>>(1)?.map(|v| v as u64),
                        r.get::<_, i64>(2)? as u64,
                    ))
                },
            )
        })
        .await
    }

    /// The digest of a job's events as the receipt covers them, hashed as the rows
    /// stream (a job's whole history is never in memory).
    pub async fn job_digest(&self, job_id: &str) -> Result<JobDigest, StoreError> {
        let job_id = job_id.to_owned();
        self.read(move |conn| {
            let mut st = conn.prepare_cached(
                "SELECT seq, job_id, event_type, ts, payload FROM events WHERE job_id = ?1 ORDER BY seq",
            )?;
            let mut rows = st.query([&job_id])?;
            let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
            let mut d = JobDigest::default();
            while let Some(r) = rows.next()? {
                let ev = StoredEvent::from_row(r)?;
                sha2::Digest::update(&mut hasher, canonical_line(&ev).as_bytes());
                d.first_seq.get_or_insert(ev.seq);
                d.last_seq = Some(ev.seq);
                d.event_count += 1;
            }
            d.events_sha256 = hex::encode(sha2::Digest::finalize(hasher));
            Ok(d)
        })
        .await
    }

    /// Where a job left off: its last persisted progress payload and whether its
    /// artifact is written (two indexed lookups, not its history).
    pub async fn job_progress(&self, job_id: &str) -> Result<(Option<String>, bool), StoreError> {
        let job_id = job_id.to_owned();
        self.read(move |conn| {
            let last = conn
                .query_row(
                    "SELECT payload FROM events WHERE job_id = ?1 \
                     AND event_type = 'progress_update' ORDER BY seq DESC LIMIT 1",
                    [&job_id],
                    |r| r.get::<_, String>(0),
                )
                .optional()?;
            let artifact: bool = conn.query_row(
                "SELECT EXISTS(SELECT 1 FROM events WHERE job_id = ?1 \
                 AND event_type = 'artifact_written')",
                [&job_id],
                |r| r.get(0),
            )?;
            Ok((last, artifact))
        })
        .await
    }

    /// The seq and type of a job's terminal event, if written.
    pub async fn terminal_of(&self, job_id: &str) -> Result<Option<(u64, String)>, StoreError> {
        let job_id = job_id.to_owned();
        self.read(move |conn| {
            conn.query_row(
                "SELECT seq, event_type FROM events WHERE job_id = ?1 \
                 AND event_type IN ('task_completed','task_failed') ORDER BY seq LIMIT 1",
                [&job_id],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()
        })
        .await
    }

    /// A job's artifact rows.
    pub async fn artifacts(&self, job_id: &str) -> Result<Vec<ArtifactRow>, StoreError> {
        let job_id = job_id.to_owned();
        self.read(move |conn| {
            let mut st = conn.prepare_cached(
                "SELECT name, sha256, bytes FROM artifacts WHERE job_id = ?1 ORDER BY name",
            )?;
            st.query_map([&job_id], |r| {
                Ok(ArtifactRow {
                    name: r.get(0)?,
                    sha256: r.get(1)?,
                    bytes: r.get::<_, i64>(2)? as u64,
                })
            })?
            .collect()
        })
        .await
    }
}

/// The writer's deliberate deviations.
#[derive(Debug, Clone, Copy)]
struct WriterFaults {
    /// [`Fault::AckBeforeCommit`].
    ack_before_commit: bool,
    /// [`Fault::SeqFromCounter`]: the next seq to give, counted from 1 at each start.
    seq_counter: Option<u64>,
}

/// The seq the next `AUTOINCREMENT` insert into `events` would get: above every seq
/// ever given (`sqlite_sequence`) and every row. The writer is the only writer and
/// asks inside its transaction, so the row inserted with it gets exactly that seq; a
/// rolled-back savepoint rolls `sqlite_sequence` back too, as it would the insert.
fn next_seq(tx: &Connection) -> rusqlite::Result<u64> {
    tx.prepare_cached(
        "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0), \
                    COALESCE((SELECT MAX(seq) FROM events), 0)) + 1",
    )?
    .query_row([], |r| r.get::<_, i64>(0))
    .map(|s| s as u64)
}

fn insert_event(
    tx: &Connection,
    ev: &NewEvent,
    ts: &str,
    out: &mut Vec<StoredEvent>,
    seq_counter: &mut Option<u64>,
    next: &mut Option<u64>,
) -> rusqlite::Result<u64> {
    // The seq is known before the insert, so the row is written with its frame.
    let (seq, sql) = if let Some(next) = seq_counter.as_mut() {
        // Fault SeqFromCounter: the seq is the in-memory counter's, whatever the
        // table holds under it.
        let seq = *next;
        *next += 1;
        (
            seq,
            "INSERT OR REPLACE INTO events (seq, job_id, event_type, ts, payload, frame) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
    } else {
        // Asked once per op, then counted: nothing else writes inside the op.
        let seq = match *next {
            Some(n) => n,
            None => next_seq(tx)?,
        };
        *next = Some(seq + 1);
        (
            seq,
            "INSERT INTO events (seq, job_id, event_type, ts, payload, frame) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
    };
    let stored = StoredEvent::new(
        seq,
        ev.job_id.clone(),
        ev.event_type.clone(),
        ts.to_owned(),
        ev.payload.clone(),
    );
    tx.prepare_cached(sql)?.execute(params![
        seq as i64,
        ev.job_id,
        ev.event_type,
        ts,
        ev.payload,
        &stored.frame[..]
    ])?;
    out.push(stored);
    Ok(seq)
}

fn apply(
    tx: &Connection,
    op: &WriteOp,
    ts: &str,
    out: &mut Vec<StoredEvent>,
    seq_counter: &mut Option<u64>,
) -> rusqlite::Result<Applied> {
    let committed = |seqs: rusqlite::Result<Vec<u64>>| seqs.map(Applied::Committed);
    // The op's next seq, once asked (see [`insert_event`]).
    let mut next = None;
    match op {
        WriteOp::Append(events) => committed(
            events
                .iter()
                .map(|ev| insert_event(tx, ev, ts, out, seq_counter, &mut next))
                .collect(),
        ),
        WriteOp::AppendKeyed {
            job_id,
            key,
            body_sha256,
            events,
        } => {
            // The writer is the only one writing, so a key not found here cannot be
            // committed by anyone else before this transaction is: two requests with
            // one key commit once, whether they share a group or not.
            if let Some(row) = find_key(tx, job_id, key)? {
                return Ok(row.judge(body_sha256));
            }
            let seqs = events
                .iter()
                .map(|ev| insert_event(tx, ev, ts, out, seq_counter, &mut next))
                .collect::<rusqlite::Result<Vec<u64>>>()?;
            let list = serde_json::to_string(&seqs)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            tx.prepare_cached(
                "INSERT INTO idempotency_keys (job_id, key, body_sha256, seqs) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![job_id, key, body_sha256, list])?;
            Ok(Applied::Committed(seqs))
        }
        WriteOp::AppendUnwritten(events) => {
            // Fault AckWithoutWrite: the rows get their seqs (AUTOINCREMENT never gives
            // them again) and are deleted at once; nothing reaches the ring or the head.
            let mut gone = Vec::new();
            let seqs = events
                .iter()
                .map(|ev| insert_event(tx, ev, ts, &mut gone, seq_counter, &mut next))
                .collect::<rusqlite::Result<Vec<u64>>>()?;
            let mut del = tx.prepare_cached("DELETE FROM events WHERE seq = ?1")?;
            for s in &seqs {
                del.execute([*s as i64])?;
            }
            Ok(Applied::Committed(seqs))
        }
        WriteOp::CreateJob {
            job_id,
            spec,
            first,
        } => {
            tx.execute(
                "INSERT INTO jobs (job_id, spec, state, created_at) VALUES (?1, ?2, 'running', ?3)",
                params![job_id, spec, ts],
            )?;
            committed(Ok(vec![insert_event(
                tx,
                first,
                ts,
                out,
                seq_counter,
                &mut next,
            )?]))
        }
        WriteOp::AddArtifact { job_id, row, event } => {
            tx.execute(
                "INSERT OR REPLACE INTO artifacts (job_id, name, sha256, bytes) VALUES (?1, ?2, ?3, ?4)",
                params![job_id, row.name, row.sha256, row.bytes as i64],
            )?;
            committed(Ok(vec![insert_event(
                tx,
                event,
                ts,
                out,
                seq_counter,
                &mut next,
            )?]))
        }
        WriteOp::Finish {
            job_id,
            state,
            receipt_hash,
            completed_at,
            event,
        } => {
            tx.execute(
                "UPDATE jobs SET state = ?2, receipt_hash = ?3, completed_at = ?4 WHERE job_id = ?1",
                params![job_id, state.as_str(), receipt_hash, completed_at],
            )?;
            committed(Ok(vec![insert_event(
                tx,
                event,
                ts,
                out,
                seq_counter,
                &mut next,
            )?]))
        }
    }
}

/// Where the writer publishes what it committed.
struct WriterOut {
    head: watch::Sender<u64>,
    ring: Arc<Mutex<Ring>>,
    persisted: Arc<AtomicU64>,
    health: Health,
}

fn writer_loop(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Cmd>,
    out: WriterOut,
    mut faults: WriterFaults,
) {
    let mut stop = false;
    while !stop {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        let mut batch = Vec::new();
        let mut events = 0usize;
        let mut bytes = 0usize;
        match first {
            Cmd::Stop => stop = true,
            Cmd::Write(w) => {
                events += w.op.event_count();
                bytes += w.op.byte_size();
                batch.push(w);
            }
        }
        while !stop
            && batch.len() < MAX_GROUP_COMMANDS
            && events < MAX_GROUP_EVENTS
            && bytes < MAX_GROUP_BYTES
        {
            match rx.try_recv() {
                Ok(Cmd::Write(w)) => {
                    events += w.op.event_count();
                    bytes += w.op.byte_size();
                    batch.push(w);
                }
                Ok(Cmd::Stop) => stop = true,
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        commit_group(&mut conn, batch, &out, &mut faults);
    }
    // Writes queued after Stop are refused by dropping their reply senders.
    rx.close();
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
        tracing::warn!(error = %e, "checkpoint at close failed");
    }
}

fn commit_group(
    conn: &mut Connection,
    batch: Vec<WriteCmd>,
    out: &WriterOut,
    faults: &mut WriterFaults,
) {
    let ts = now_ts();
    let (ops, replies): (Vec<WriteOp>, Vec<_>) = batch.into_iter().map(|c| (c.op, c.reply)).unzip();
    let mut replies: Vec<Option<oneshot::Sender<_>>> = replies.into_iter().map(Some).collect();
    let mut results: Vec<Result<Applied, StoreError>> = Vec::with_capacity(ops.len());
    let mut stored = Vec::new();
    let mut failed = None;
    let mut succeeded = false;
    let outcome = (|| -> rusqlite::Result<()> {
        let mut tx = conn.transaction()?;
        for op in &ops {
            let sp = tx.savepoint()?;
            let mut local = Vec::new();
            match apply(&sp, op, &ts, &mut local, &mut faults.seq_counter) {
                Ok(applied) => {
                    sp.commit()?;
                    stored.append(&mut local);
                    results.push(Ok(applied));
                    succeeded = true;
                }
                Err(e) => {
                    // Dropping an uncommitted savepoint rolls it back and releases it.
                    drop(sp);
                    if is_resource_failure(&e) {
                        failed = Some(failure_reason(&e));
                    }
                    results.push(Err(StoreError::sql(e)));
                }
            }
        }
        if faults.ack_before_commit {
            // Fault AckBeforeCommit: answer the writers now, commit later.
            for (reply, res) in replies.iter_mut().zip(results.drain(..)) {
                if let Some(r) = reply.take() {
                    let _ = r.send(res);
                }
            }
            std::thread::sleep(COMMIT_LAG);
        }
        tx.commit()
    })();
    if let Err(e) = outcome {
        tracing::error!(error = %e, "group commit failed");
        // SQLite rolls the whole transaction back on a full disk, so the commit fails
        // too: the first failure is the reason.
        out.health
            .set(Some(failed.unwrap_or_else(|| failure_reason(&e))));
        for reply in replies.into_iter().flatten() {
            let _ = reply.send(Err(StoreError::new(StoreErrorKind::Sql, e.to_string())));
        }
        return;
    }
    match failed {
        Some(reason) => out.health.set(Some(reason)),
        None if succeeded => out.health.set(None),
        None => {}
    }
    let new_head = stored.last().map(|e| e.seq);
    out.persisted
        .fetch_add(stored.len() as u64, Ordering::Relaxed);
    if let Ok(mut r) = out.ring.lock() {
        for ev in stored {
            r.push(Arc::new(ev));
        }
    }
    if let Some(h) = new_head {
        out.head.send_replace(h);
    }
    for (reply, res) in replies.into_iter().zip(results) {
        if let Some(r) = reply {
            let _ = r.send(res);
        }
    }
}

/// A JSON value with every object's keys sorted, whatever serde_json's map type is.
pub(crate) fn canonical(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let sorted: std::collections::BTreeMap<String, serde_json::Value> =
                m.into_iter().map(|(k, v)| (k, canonical(v))).collect();
            let mut out = serde_json::Map::new();
            for (k, v) in sorted {
                out.insert(k, v);
            }
            serde_json::Value::Object(out)
        }
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(canonical).collect())
        }
        other => other,
    }
}

/// The canonical line of one event: compact JSON, sorted keys, then `\n`.
fn canonical_line(ev: &StoredEvent) -> String {
    let payload: serde_json::Value =
        serde_json::from_str(&ev.payload).unwrap_or(serde_json::Value::Null);
    // Keys inserted in sorted order: event_type, job_id, payload, seq, ts.
    let mut m = serde_json::Map::new();
    m.insert(
        "event_type".into(),
        serde_json::Value::from(ev.event_type.as_str()),
    );
    m.insert("job_id".into(), serde_json::Value::from(ev.job_id.as_str()));
    m.insert("payload".into(), canonical(payload));
    m.insert("seq".into(), serde_json::Value::from(ev.seq));
    m.insert("ts".into(), serde_json::Value::from(ev.ts.as_str()));
    let mut line = serde_json::Value::Object(m).to_string();
    line.push('\n');
    line
}

impl From<StoreError> for crate::error::ApiError {
    fn from(e: StoreError) -> crate::error::ApiError {
        match e.kind {
            StoreErrorKind::Closed => crate::error::ApiError::new(
                crate::error::ErrorCode::Unavailable,
                "server is shutting down",
            ),
            _ => {
                tracing::error!(error = %e, "store failure");
                crate::error::ApiError::new(crate::error::ErrorCode::Internal, "store failure")
            }
        }
    }
}
