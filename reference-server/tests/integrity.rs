//! The integrity report against real data folders: a real SQLite store (WAL, the
//! server's schema), real receipt and artifact files, then tampering.

use std::ffi::OsStr;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use reference_server::integrity::{
    self, IntegrityErrorKind, IntegrityItem, IntegrityOptions, IntegrityReport, ItemKind, Status,
    Summary, Verdict,
};
use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};

const SCHEMA: &str = "
    PRAGMA journal_mode = WAL;
    CREATE TABLE jobs(job_id TEXT PRIMARY KEY, spec TEXT, state TEXT, created_at TEXT,
                      receipt_hash TEXT NULL, completed_at TEXT NULL);
    CREATE TABLE artifacts(job_id TEXT, name TEXT, sha256 TEXT, bytes INTEGER,
                           PRIMARY KEY(job_id, name));
";

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A data folder with a store that test cases fill.
struct DataDir {
    dir: tempfile::TempDir,
    conn: Connection,
}

impl DataDir {
    fn new() -> DataDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = Connection::open(dir.path().join("spine.db")).expect("create store");
        conn.execute_batch(SCHEMA).expect("schema");
        DataDir { dir, conn }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, rel: &str) -> PathBuf {
        self.path().join(rel)
    }

    fn write(&self, rel: &str, data: &[u8]) {
        let path = self.file(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, data).expect("write file");
    }

    /// A completed job with its receipt file; returns the receipt bytes.
    fn completed_job(&self, job_id: &str) -> Vec<u8> {
        let receipt = format!(
            r#"{{"job_id":"{job_id}","state":"completed","first_seq":1,"last_seq":3,"event_count":3,"events_sha256":"{}","artifacts":[],"completed_at":"2025-01-01T00:00:00.000Z"}}"#,
            "0".repeat(64)
        )
        .into_bytes();
        self.conn
            .execute(
                "INSERT INTO jobs VALUES (?1, '{}', 'completed', '2025-01-01T00:00:00.000Z', ?2, '2025-01-01T00:00:01.000Z')",
                params![job_id, sha256_hex(&receipt)],
            )
            .expect("insert job");
        self.write(&format!("receipts/{job_id}.json"), &receipt);
        receipt
    }

    fn running_job(&self, job_id: &str) {
        self.conn
            .execute(
                "INSERT INTO jobs VALUES (?1, '{}', 'running', '2025-01-01T00:00:00.000Z', NULL, NULL)",
                params![job_id],
            )
            .expect("insert job");
    }

    fn artifact_row(&self, job_id: &str, name: &str, sha256: &str, bytes: u64) {
        self.conn
            .execute(
                "INSERT INTO artifacts VALUES (?1, ?2, ?3, ?4)",
                params![job_id, name, sha256, i64::try_from(bytes).expect("size")],
            )
            .expect("insert artifact");
    }

    fn artifact(&self, job_id: &str, name: &str, data: &[u8]) {
        self.artifact_row(job_id, name, &sha256_hex(data), data.len() as u64);
        self.write(&format!("artifacts/{job_id}/{name}"), data);
    }

    fn report(&self, opts: &IntegrityOptions) -> IntegrityReport {
        integrity::build_report(self.path(), opts).expect("report")
    }
}

fn opts(threshold_bytes: u64, full_integrity: bool) -> IntegrityOptions {
    IntegrityOptions {
        full_integrity,
        threshold_bytes,
        progress: false,
    }
}

fn default_opts() -> IntegrityOptions {
    opts(integrity::DEFAULT_THRESHOLD_BYTES, false)
}

fn item<'a>(report: &'a IntegrityReport, path: &str) -> &'a IntegrityItem {
    report
        .items
        .iter()
        .find(|i| i.path == path)
        .unwrap_or_else(|| panic!("no item {path} in {:#?}", report.items))
}

/// Two completed jobs with artifacts and one running job: the clean case.
fn clean_data() -> DataDir {
    let data = DataDir::new();
    data.completed_job("job-a");
    data.completed_job("job-b");
    data.running_job("job-c");
    data.artifact("job-a", "artifact.bin", &[7u8; 3000]);
    data.artifact("job-b", "artifact.bin", b"small artifact");
    data.artifact("job-b", "empty.bin", b"");
    data
}

#[test]
fn clean_data_all_match() {
    let data = clean_data();
    let report = data.report(&default_opts());
    assert_eq!(
        report.summary,
        Summary {
            ok: 5,
            warn: 0,
            fail: 0,
            skipped: 0
        },
        "{report:#?}"
    );
    assert!(report.failures.is_empty());
    assert_eq!(report.verdict(), Verdict::Ok);
    assert!(report.items.iter().all(|i| i.status == Status::Match));
    for i in &report.items {
        assert_eq!(i.expected_hash, i.actual_hash, "{i:?}");
        assert!(i.note.is_none(), "{i:?}");
    }
    let receipt = item(&report, "receipts/job-a.json");
    assert_eq!(receipt.kind, ItemKind::Receipt);
    assert_eq!(receipt.job_id.as_deref(), Some("job-a"));
    assert_eq!(
        receipt.bytes,
        Some(
            fs::metadata(data.file("receipts/job-a.json"))
                .unwrap()
                .len()
        )
    );
    let empty = item(&report, "artifacts/job-b/empty.bin");
    assert_eq!(empty.bytes, Some(0));
    assert_eq!(empty.actual_hash.as_deref(), Some(sha256_hex(b"").as_str()));
    assert!(!report.full_integrity);
    assert_eq!(report.threshold_bytes, 100 * 1024 * 1024);
}

#[test]
fn items_are_sorted_by_kind_job_and_path() {
    let data = clean_data();
    data.write("artifacts/zz-stray.bin", b"x");
    let report = data.report(&default_opts());
    let keys: Vec<_> = report
        .items
        .iter()
        .map(|i| (i.kind, i.job_id.clone(), i.path.clone()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(report.items[0].kind, ItemKind::Receipt);
    assert_eq!(report.items.last().unwrap().kind, ItemKind::Artifact);
}

#[test]
fn one_receipt_byte_changed_is_a_mismatch() {
    let data = clean_data();
    let path = data.file("receipts/job-b.json");
    let mut bytes = fs::read(&path).unwrap();
    bytes[10] ^= 0x01;
    fs::write(&path, &bytes).unwrap();

    let report = data.report(&default_opts());
    let receipt = item(&report, "receipts/job-b.json");
    assert_eq!(receipt.status, Status::Mismatch);
    assert_eq!(
        receipt.actual_hash.as_deref(),
        Some(sha256_hex(&bytes).as_str())
    );
    assert_ne!(receipt.actual_hash, receipt.expected_hash);
    assert_eq!(report.failures, vec![receipt.clone()]);
    assert_eq!(report.summary.fail, 1);
    assert_eq!(report.summary.ok, 4);
    assert_eq!(report.verdict(), Verdict::Fail);
}

#[test]
fn one_artifact_byte_changed_is_a_mismatch() {
    let data = clean_data();
    let path = data.file("artifacts/job-a/artifact.bin");
    let mut bytes = fs::read(&path).unwrap();
    bytes[2999] = 8;
    fs::write(&path, &bytes).unwrap();

    let report = data.report(&default_opts());
    let artifact = item(&report, "artifacts/job-a/artifact.bin");
    assert_eq!(artifact.status, Status::Mismatch);
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].path, "artifacts/job-a/artifact.bin");
}

#[test]
fn deleted_receipt_is_missing() {
    let data = clean_data();
    fs::remove_file(data.file("receipts/job-a.json")).unwrap();

    let report = data.report(&default_opts());
    let receipt = item(&report, "receipts/job-a.json");
    assert_eq!(receipt.status, Status::Missing);
    assert_eq!(receipt.actual_hash, None);
    assert_eq!(receipt.bytes, None);
    assert!(receipt.expected_hash.is_some());
    assert_eq!(report.failures, vec![receipt.clone()]);
    assert_eq!(report.summary.fail, 1);
}

#[test]
fn missing_trees_make_every_row_missing() {
    let data = clean_data();
    fs::remove_dir_all(data.file("receipts")).unwrap();
    fs::remove_dir_all(data.file("artifacts")).unwrap();

    let report = data.report(&default_opts());
    assert_eq!(report.summary.fail, 5);
    assert!(report.items.iter().all(|i| i.status == Status::Missing));
    assert_eq!(report.failures.len(), 5);
}

#[test]
fn large_artifact_is_skipped_then_hashed_with_full_integrity() {
    let data = clean_data();
    let big: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    data.artifact("job-b", "big.bin", &big);

    let report = data.report(&opts(1024, false));
    let large = item(&report, "artifacts/job-b/big.bin");
    assert_eq!(large.status, Status::SkippedLarge);
    assert_eq!(large.actual_hash, None);
    assert_eq!(large.bytes, Some(5000));
    // job-a's 3000-byte artifact is above 1 KiB too.
    assert_eq!(
        item(&report, "artifacts/job-a/artifact.bin").status,
        Status::SkippedLarge
    );
    assert_eq!(report.summary.skipped, 2);
    assert_eq!(report.summary.fail, 0);
    assert_eq!(report.verdict(), Verdict::Ok);
    assert!(integrity::render_text(&report).contains("--full-integrity"));

    let full = data.report(&opts(1024, true));
    let large = item(&full, "artifacts/job-b/big.bin");
    assert_eq!(large.status, Status::Match);
    assert_eq!(
        large.actual_hash.as_deref(),
        Some(sha256_hex(&big).as_str())
    );
    assert_eq!(full.summary.skipped, 0);
    assert!(full.full_integrity);
}

#[test]
fn receipts_are_hashed_whatever_the_threshold() {
    let data = clean_data();
    let report = data.report(&opts(0, false));
    for kind_item in report.items.iter().filter(|i| i.kind == ItemKind::Receipt) {
        assert_eq!(kind_item.status, Status::Match, "{kind_item:?}");
    }
    // The empty artifact is not above a threshold of 0; the others are.
    assert_eq!(
        item(&report, "artifacts/job-b/empty.bin").status,
        Status::Match
    );
    assert_eq!(report.summary.skipped, 2);
}

#[test]
fn large_artifact_with_other_size_is_a_mismatch_without_hashing() {
    let data = clean_data();
    let big = vec![1u8; 4096];
    data.artifact("job-b", "big.bin", &big);
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(data.file("artifacts/job-b/big.bin"))
        .unwrap();
    f.write_all(b"appended").unwrap();
    drop(f);

    let report = data.report(&opts(1024, false));
    let large = item(&report, "artifacts/job-b/big.bin");
    assert_eq!(large.status, Status::Mismatch);
    assert_eq!(large.actual_hash, None);
    assert_eq!(large.bytes, Some(4096 + 8));
    assert!(
        large.note.as_deref().unwrap().contains("4096 in the store"),
        "{large:?}"
    );
}

#[test]
fn stray_files_are_orphans() {
    let data = clean_data();
    data.write("artifacts/job-a/stray.bin", b"not in the store");
    data.write("receipts/job-c.json", b"{}"); // job-c has no receipt_hash
    data.write("receipts/nobody.json", b"{}");
    // Named as `durable.rs` names the temp files of atomic writes.
    data.write("receipts/job-z.json.0123abcd.tmp", b"{\"half");
    data.write("artifacts/loose.bin", b"loose");

    let report = data.report(&default_opts());
    assert_eq!(report.summary.warn, 5, "{report:#?}");
    assert_eq!(report.summary.ok, 5);
    assert_eq!(report.summary.fail, 0);
    assert!(report.failures.is_empty());
    assert_eq!(report.verdict(), Verdict::Warn);

    let stray = item(&report, "artifacts/job-a/stray.bin");
    assert_eq!(stray.status, Status::Orphan);
    assert_eq!(stray.kind, ItemKind::Artifact);
    assert_eq!(stray.job_id.as_deref(), Some("job-a"));
    assert_eq!(stray.expected_hash, None);
    assert_eq!(
        stray.actual_hash.as_deref(),
        Some(sha256_hex(b"not in the store").as_str())
    );
    let receipt = item(&report, "receipts/job-c.json");
    assert_eq!(receipt.status, Status::Orphan);
    assert_eq!(receipt.job_id.as_deref(), Some("job-c"));
    let tmp = item(&report, "receipts/job-z.json.0123abcd.tmp");
    assert_eq!(tmp.job_id.as_deref(), Some("job-z"));
    assert_eq!(tmp.status, Status::Orphan);
    assert!(tmp.note.as_deref().unwrap().contains("atomic write"));
    let loose = item(&report, "artifacts/loose.bin");
    assert_eq!(loose.status, Status::Orphan);
    assert_eq!(loose.job_id, None);
    let text = integrity::render_text(&report);
    assert!(text.contains("ORPHAN"), "{text}");
    assert!(text.contains("verdict: WARN"), "{text}");
}

#[cfg(unix)]
#[test]
fn special_files_are_never_opened() {
    let data = clean_data();
    // A FIFO where an artifact should be, and a stray one: opening either would block.
    let fifo_status = |path: &Path| {
        Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("run mkfifo")
    };
    fs::remove_file(data.file("artifacts/job-b/artifact.bin")).unwrap();
    assert!(fifo_status(&data.file("artifacts/job-b/artifact.bin")).success());
    assert!(fifo_status(&data.file("receipts/pipe")).success());
    std::os::unix::fs::symlink("/etc/hostname", data.file("artifacts/job-a/link")).unwrap();

    let report = data.report(&default_opts());
    let fifo = item(&report, "artifacts/job-b/artifact.bin");
    assert_eq!(fifo.status, Status::Mismatch);
    assert_eq!(fifo.note.as_deref(), Some("not a regular file"));
    assert_eq!(item(&report, "receipts/pipe").status, Status::Orphan);
    let link = item(&report, "artifacts/job-a/link");
    assert_eq!(link.status, Status::Orphan);
    assert_eq!(link.actual_hash, None);
}

#[test]
fn unsafe_names_in_the_store_are_never_read() {
    let data = clean_data();
    data.write("outside.bin", b"secret");
    data.artifact_row("job-a", "../../outside.bin", &sha256_hex(b"secret"), 6);
    data.artifact_row("..", "outside.bin", &sha256_hex(b"secret"), 6);

    let report = data.report(&default_opts());
    assert_eq!(report.summary.fail, 2, "{report:#?}");
    for failure in &report.failures {
        assert_eq!(failure.status, Status::Missing);
        assert_eq!(failure.actual_hash, None);
        assert!(failure.note.as_deref().unwrap().contains("unsafe"));
    }
}

#[test]
fn uppercase_hashes_in_the_store_still_match() {
    let data = DataDir::new();
    data.artifact_row("job-u", "a.bin", &sha256_hex(b"abc").to_uppercase(), 3);
    data.write("artifacts/job-u/a.bin", b"abc");
    let report = data.report(&default_opts());
    assert_eq!(item(&report, "artifacts/job-u/a.bin").status, Status::Match);
}

#[test]
fn json_round_trips_with_the_protocol_shape() {
    let data = clean_data();
    fs::remove_file(data.file("receipts/job-a.json")).unwrap();
    data.write("artifacts/job-b/stray.tmp", b"x");
    let report = data.report(&opts(1024, false));

    let json = serde_json::to_value(&report).unwrap();
    for key in [
        "generated_at",
        "threshold_bytes",
        "full_integrity",
        "summary",
        "items",
        "failures",
    ] {
        assert!(json.get(key).is_some(), "no {key} in {json}");
    }
    assert_eq!(
        json["summary"],
        serde_json::json!({"ok": 3, "warn": 1, "fail": 1, "skipped": 1})
    );
    let generated_at = json["generated_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(generated_at).is_ok() && generated_at.ends_with('Z'),
        "{generated_at}"
    );
    for item in json["items"].as_array().unwrap() {
        for key in [
            "kind",
            "job_id",
            "path",
            "expected_hash",
            "actual_hash",
            "bytes",
            "status",
        ] {
            assert!(item.get(key).is_some(), "no {key} in {item}");
        }
    }
    let statuses: Vec<&str> = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    for s in ["MATCH", "MISSING", "SKIPPED_LARGE", "ORPHAN"] {
        assert!(statuses.contains(&s), "{statuses:?}");
    }
    assert_eq!(json["items"][0]["kind"], "receipt");
    assert_eq!(json["failures"][0]["path"], "receipts/job-a.json");

    let text = serde_json::to_string(&report).unwrap();
    let back: IntegrityReport = serde_json::from_str(&text).unwrap();
    assert_eq!(back, report);
}

#[test]
fn write_report_files_writes_json_and_text() {
    let data = clean_data();
    fs::write(data.file("receipts/job-b.json"), b"tampered").unwrap();
    let report = data.report(&default_opts());
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().join("nested/out");

    let paths = integrity::write_report_files(&report, &out_dir).unwrap();
    assert_eq!(
        paths,
        vec![
            out_dir.join("integrity_report.json"),
            out_dir.join("integrity_report.txt")
        ]
    );
    let back: IntegrityReport = serde_json::from_slice(&fs::read(&paths[0]).unwrap()).unwrap();
    assert_eq!(back, report);
    let text = fs::read_to_string(&paths[1]).unwrap();
    assert_eq!(text, integrity::render_text(&report));
    assert!(text.contains("1 fail"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("MISMATCH") && l.contains("receipts/job-b.json")),
        "{text}"
    );
    assert!(
        !text.contains("receipts/job-a.json"),
        "MATCH items are not listed: {text}"
    );
    assert_eq!(text.lines().last(), Some("verdict: FAIL (1 failed)"));
}

#[test]
fn write_report_files_into_a_file_is_an_output_error() {
    let data = clean_data();
    let report = data.report(&default_opts());
    let err = integrity::write_report_files(&report, &data.file("spine.db")).unwrap_err();
    assert_eq!(err.kind(), IntegrityErrorKind::Output);
}

#[test]
fn missing_data_dir_or_store_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let nowhere = tmp.path().join("nowhere");
    let err = integrity::build_report(&nowhere, &default_opts()).unwrap_err();
    assert_eq!(err.kind(), IntegrityErrorKind::DataDirMissing);
    assert!(err.to_string().contains("nowhere"), "{err}");

    let err = integrity::build_report(tmp.path(), &default_opts()).unwrap_err();
    assert_eq!(err.kind(), IntegrityErrorKind::StoreMissing);
    assert!(err.to_string().contains("spine.db"), "{err}");
    // Read-only: the report never creates the store.
    assert!(!tmp.path().join("spine.db").exists());

    fs::write(tmp.path().join("spine.db"), b"this is not a database").unwrap();
    let err = integrity::build_report(tmp.path(), &default_opts()).unwrap_err();
    assert_eq!(err.kind(), IntegrityErrorKind::Store);

    let empty = tempfile::tempdir().unwrap();
    Connection::open(empty.path().join("spine.db"))
        .unwrap()
        .execute_batch("CREATE TABLE other(x)")
        .unwrap();
    let err = integrity::build_report(empty.path(), &default_opts()).unwrap_err();
    assert_eq!(err.kind(), IntegrityErrorKind::Store);
    assert!(err.to_string().contains("jobs"), "{err}");
}

#[test]
fn report_reads_a_store_another_connection_is_writing() {
    let data = clean_data();
    // An open write transaction on the store, as a running server may hold.
    data.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    data.running_job("job-d");
    let report = data.report(&default_opts());
    assert_eq!(report.summary.ok, 5);
    data.conn.execute_batch("COMMIT").unwrap();
}

#[test]
fn threshold_values_are_parsed_strictly() {
    let ok = |v: &str| IntegrityOptions::from_env_value(false, Some(OsStr::new(v)));
    assert_eq!(ok("1024").unwrap().threshold_bytes, 1024);
    assert_eq!(ok("0").unwrap().threshold_bytes, 0);
    assert_eq!(
        IntegrityOptions::from_env_value(true, None)
            .unwrap()
            .threshold_bytes,
        104_857_600
    );
    assert!(
        IntegrityOptions::from_env_value(true, None)
            .unwrap()
            .full_integrity
    );
    for bad in [
        "",
        "abc",
        "-1",
        "1.5",
        " 10",
        "100MiB",
        "99999999999999999999999",
    ] {
        let err = ok(bad).unwrap_err();
        assert_eq!(err.kind(), IntegrityErrorKind::BadThreshold, "{bad:?}");
        assert!(
            err.to_string().contains("SPINE_INTEGRITY_SIZE_THRESHOLD"),
            "{err}"
        );
    }
}

/// Environment variables are process-global, so `from_env` is checked in child
/// processes of this test binary: each runs [`from_env_child`] with the variable set.
#[test]
fn from_env_reads_the_threshold_variable() {
    for (value, expected) in [
        (None, "104857600"),
        (Some("2048"), "2048"),
        (Some("lots"), "error"),
    ] {
        let mut child = Command::new(std::env::current_exe().unwrap());
        child
            .args([
                "--exact",
                "from_env_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("INTEGRITY_TEST_EXPECT", expected);
        match value {
            Some(v) => child.env(integrity::THRESHOLD_ENV, v),
            None => child.env_remove(integrity::THRESHOLD_ENV),
        };
        let out = child.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{value:?}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn from_env_child() {
    // Only meaningful when started by `from_env_reads_the_threshold_variable`.
    let Ok(expected) = std::env::var("INTEGRITY_TEST_EXPECT") else {
        return;
    };
    match IntegrityOptions::from_env(true) {
        Ok(opts) => {
            assert_eq!(opts.threshold_bytes.to_string(), expected);
            assert!(opts.full_integrity);
        }
        Err(err) => {
            assert_eq!(expected, "error", "{err}");
            assert_eq!(err.kind(), IntegrityErrorKind::BadThreshold);
        }
    }
}

const LARGE_BYTES: usize = 64 * 1024 * 1024 + 12_345;

/// Writes `LARGE_BYTES` of generated data in 1 MiB chunks; returns its SHA-256.
fn write_large_file(path: &Path) -> String {
    let mut file = fs::File::create(path).unwrap();
    let mut hasher = Sha256::new();
    let mut chunk = vec![0u8; 1024 * 1024];
    let mut left = LARGE_BYTES;
    let mut counter = 0u64;
    while left > 0 {
        let n = left.min(chunk.len());
        for (i, b) in chunk[..n].iter_mut().enumerate() {
            *b = (counter.wrapping_mul(31).wrapping_add(i as u64 * 7) % 256) as u8;
        }
        counter += 1;
        file.write_all(&chunk[..n]).unwrap();
        hasher.update(&chunk[..n]);
        left -= n;
    }
    file.sync_all().unwrap();
    hex::encode(hasher.finalize())
}

/// A 64 MiB artifact is hashed correctly (streamed), with progress on stderr. Runs in
/// a child process so that its stderr can be read.
#[test]
fn large_file_is_hashed_with_progress() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "large_file_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("INTEGRITY_TEST_LARGE", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{stderr}"
    );
    let last = stderr
        .lines()
        .rfind(|l| l.starts_with("hashed "))
        .unwrap_or_else(|| panic!("no progress line in {stderr}"));
    assert_eq!(last, "hashed 3/3 files, 64/64 MiB");
}

#[test]
fn large_file_child() {
    if std::env::var_os("INTEGRITY_TEST_LARGE").is_none() {
        return;
    }
    let data = DataDir::new();
    data.completed_job("job-big");
    fs::create_dir_all(data.file("artifacts/job-big")).unwrap();
    let hash = write_large_file(&data.file("artifacts/job-big/huge.bin"));
    data.artifact_row("job-big", "huge.bin", &hash, LARGE_BYTES as u64);
    data.artifact("job-big", "small.bin", b"small");

    let progress = IntegrityOptions {
        full_integrity: false,
        threshold_bytes: integrity::DEFAULT_THRESHOLD_BYTES,
        progress: true,
    };
    let report = data.report(&progress);
    let huge = item(&report, "artifacts/job-big/huge.bin");
    assert_eq!(huge.status, Status::Match, "{huge:?}");
    assert_eq!(huge.actual_hash.as_deref(), Some(hash.as_str()));
    assert_eq!(huge.bytes, Some(LARGE_BYTES as u64));
    assert_eq!(report.summary.ok, 3);
    // This process never held the file whole: its peak resident size stays far below it.
    #[cfg(target_os = "linux")]
    {
        let status = fs::read_to_string("/proc/self/status").unwrap();
        let peak_kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmHWM in {status}"));
        assert!(peak_kib < 40 * 1024, "peak resident size {peak_kib} KiB");
        eprintln!("peak resident size {peak_kib} KiB");
    }
}
