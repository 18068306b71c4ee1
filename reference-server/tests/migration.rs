//! A data folder made by a server from before the `events.frame` column: opened by this
//! server, it is migrated (the column added and filled) and replays exactly the bytes
//! the older server served, on the fast path (no fault) and the per-event one.

mod common;

use common::TestServer;
use reference_server::faults::{Fault, FaultSet};
use rusqlite::{Connection, params};

/// The store's schema before `events.frame` (as the older server created it).
const OLD_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, event_type TEXT NOT NULL, ts TEXT NOT NULL, payload TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_job ON events(job_id, seq);
CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, spec TEXT NOT NULL, state TEXT NOT NULL, created_at TEXT NOT NULL, receipt_hash TEXT, completed_at TEXT);
CREATE TABLE IF NOT EXISTS artifacts (job_id TEXT NOT NULL, name TEXT NOT NULL, sha256 TEXT NOT NULL, bytes INTEGER NOT NULL, PRIMARY KEY (job_id, name));
CREATE TABLE IF NOT EXISTS idempotency_keys (job_id TEXT NOT NULL, key TEXT NOT NULL, body_sha256 TEXT NOT NULL, seqs TEXT NOT NULL, PRIMARY KEY (job_id, key));
";

const TS: &str = "2025-01-01T00:00:00.000Z";

/// The old log's rows: `(job_id, event_type, payload)`, seqs 1.. in order.
const ROWS: [(&str, &str, &str); 5] = [
    ("job-old", "job_started", "{}"),
    ("job-other", "progress_update", r#"{"step":1}"#),
    (
        "job-old",
        "progress_update",
        "{\"msg\":\"h\u{e9}llo \u{2014} \u{2713} \u{1f600}\",\"step\":2}",
    ),
    ("job-old", "odd\"type\\\u{1}", r#"{"s":"a\nb \"q\" \\ \t"}"#),
    ("job-old", "task_completed", r#"{"receipt":"r"}"#),
];

/// The frames of job-old's events as the older server wrote them for correlation id
/// `cid-m` (written out by hand: the migrated rows must serve exactly these).
fn expected() -> String {
    let f = |seq: u32, event_type: &str, payload: &str| {
        format!(
            "id: {seq}\nevent: task_event\ndata: {{\"seq\":{seq},\"job_id\":\"job-old\",\
             \"event_type\":{event_type},\"ts\":\"{TS}\",\"payload\":{payload},\
             \"correlation_id\":\"cid-m\"}}\n\n"
        )
    };
    [
        f(1, "\"job_started\"", "{}"),
        f(3, "\"progress_update\"", ROWS[2].2),
        f(4, r#""odd\"type\\\u0001""#, ROWS[3].2),
        f(5, "\"task_completed\"", ROWS[4].2),
    ]
    .concat()
}

/// A data folder with the old schema and [`ROWS`], written with raw SQL.
fn old_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let conn = Connection::open(dir.path().join("spine.db")).expect("create store");
    conn.execute_batch("PRAGMA journal_mode = WAL;")
        .expect("wal");
    conn.execute_batch(OLD_SCHEMA).expect("old schema");
    for (job, state) in [("job-old", "completed"), ("job-other", "completed")] {
        conn.execute(
            "INSERT INTO jobs (job_id, spec, state, created_at) VALUES (?1, '{}', ?2, ?3)",
            params![job, state, TS],
        )
        .expect("job row");
    }
    for (job, event_type, payload) in ROWS {
        conn.execute(
            "INSERT INTO events (job_id, event_type, ts, payload) VALUES (?1, ?2, ?3, ?4)",
            params![job, event_type, TS, payload],
        )
        .expect("event row");
    }
    dir
}

/// The event frames of a stream, from the first `id:` to the end of seq 5's frame.
async fn replayed(s: &TestServer, path: &str) -> String {
    let mut r = s
        .open(
            path,
            &[("Last-Event-ID", "0"), ("X-Correlation-ID", "cid-m")],
        )
        .await;
    r.until(|f| f.id.as_deref() == Some("5")).await;
    let raw = String::from_utf8(r.raw.clone()).expect("utf-8 stream");
    let start = raw.find("id: ").expect("an event frame");
    let last = raw.find("id: 5\n").expect("seq 5");
    let end = last + raw[last..].find("\n\n").expect("end of seq 5") + 2;
    raw[start..end].to_owned()
}

#[tokio::test]
async fn an_old_data_folder_is_migrated_and_replays_the_same_bytes() {
    let mut dir = old_folder();
    for faults in [FaultSet::default(), FaultSet::new([Fault::StaleHead])] {
        let fast = faults.is_empty();
        let s = TestServer::start_in(dir, |c| c.faults = faults).await;
        for path in ["/v1/events?job_id=job-old", "/v1/jobs/job-old/events"] {
            assert_eq!(replayed(&s, path).await, expected(), "{path}, fast {fast}");
        }
        dir = s.stop().await;
    }

    // Every row has its frame now; the seq line continues above the old rows.
    let conn = Connection::open(dir.path().join("spine.db")).expect("open store");
    let unframed: i64 = conn
        .query_row("SELECT COUNT(*) FROM events WHERE frame IS NULL", [], |r| {
            r.get(0)
        })
        .expect("count");
    assert_eq!(unframed, 0);
    let first: Vec<u8> = conn
        .query_row("SELECT frame FROM events WHERE seq = 1", [], |r| r.get(0))
        .expect("frame of seq 1");
    assert!(expected().as_bytes().starts_with(&first));
    drop(conn);
    let s = TestServer::start_in(dir, |_| {}).await;
    let job = s.open_job().await;
    let seqs = s.publish(&job, 2, "c").await;
    assert_eq!(seqs, [7, 8], "job_started is 6, then the published ones");
    s.stop().await;
}

#[tokio::test]
async fn rows_written_without_a_frame_by_an_older_server_are_filled_at_open() {
    // Migrated once, then an older server writes a row (no frame) into it.
    let s = TestServer::start_in(old_folder(), |_| {}).await;
    let dir = s.stop().await;
    let conn = Connection::open(dir.path().join("spine.db")).expect("open store");
    conn.execute("DELETE FROM events WHERE seq = 5", [])
        .expect("delete");
    conn.execute(
        "INSERT INTO events (seq, job_id, event_type, ts, payload) VALUES (5, ?1, ?2, ?3, ?4)",
        params![ROWS[4].0, ROWS[4].1, TS, ROWS[4].2],
    )
    .expect("old-style row");
    drop(conn);
    let s = TestServer::start_in(dir, |_| {}).await;
    assert_eq!(replayed(&s, "/v1/jobs/job-old/events").await, expected());
    s.stop().await;
}
