//! The integrity report (spine §5): compares the hashes the store holds for receipts
//! and artifacts with the files on disk, and lists the files the store knows nothing of.
//!
//! How a report is made, in this order:
//! 1. One read transaction on `spine.db`, opened read-only (the server may be running):
//!    the jobs that have a `receipt_hash` and every `artifacts` row. Files are written
//!    before their rows, so every row of that snapshot already has its file.
//! 2. A walk of `receipts/` and `artifacts/` that never follows symbolic links and never
//!    opens anything but regular files (a FIFO would block the report forever).
//! 3. Hashing, each file streamed through one 64 KiB buffer, never read whole.
//!
//! Statuses: `MATCH` (ok); `MISMATCH` (fail: other hash, other size than the store's
//! `bytes`, not a regular file, or unreadable); `MISSING` (fail: no file, or a store row
//! whose name is not a single safe path component, which is never read);
//! `SKIPPED_LARGE` (skipped: an artifact above the threshold, without `full_integrity`;
//! a size that differs from the store's still makes it `MISMATCH`); `ORPHAN` (warn: a
//! file under `receipts/` or `artifacts/` with no row, including a receipt of a job
//! whose `receipt_hash` is null). A `*.tmp` file is an `ORPHAN` with a note: it is the
//! temp file of an atomic write that is in flight, or stale after a crash (start-up
//! removes those), so it is worth a warning but is no tampering. A file written while
//! the report runs may likewise show as `ORPHAN` until its row commits. Orphans are
//! hashed under the same size rule as artifacts, to help identify them.
//!
//! The directory walk is written here rather than taken from a crate (walkdir): the
//! layout is two fixed levels, the policy (no symlink following, no opening of special
//! files, relative `/`-separated paths) is the point of the code, and it is a few lines
//! over `std::fs::read_dir`. Progress is likewise a throttled `eprintln!` line rather
//! than a progress-bar crate, because it must also read well in logs.

#![deny(missing_docs)]

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fmt::{self, Write as _};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The environment variable that sets [`IntegrityOptions::threshold_bytes`].
pub const THRESHOLD_ENV: &str = "SPINE_INTEGRITY_SIZE_THRESHOLD";

/// The artifact size threshold when [`THRESHOLD_ENV`] is not set: 100 MiB.
pub const DEFAULT_THRESHOLD_BYTES: u64 = 100 * 1024 * 1024;

/// The name of the JSON report file written by [`write_report_files`].
pub const REPORT_JSON: &str = "integrity_report.json";

/// The name of the human report file written by [`write_report_files`].
pub const REPORT_TXT: &str = "integrity_report.txt";

/// Size of the one buffer every file is streamed through.
const HASH_BUFFER_BYTES: usize = 64 * 1024;

/// Progress is shown only when there are more files than this to hash...
const PROGRESS_MIN_FILES: usize = 1000;

/// ...or more bytes than this.
const PROGRESS_MIN_BYTES: u64 = 64 * 1024 * 1024;

/// At most one progress line per this interval.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// How the report is made.
#[derive(Clone, Debug)]
pub struct IntegrityOptions {
    /// Hash artifacts above the threshold too.
    pub full_integrity: bool,
    /// Artifacts above this many bytes are SKIPPED_LARGE unless `full_integrity`.
    pub threshold_bytes: u64,
    /// Show progress on stderr for large trees.
    pub progress: bool,
}

impl IntegrityOptions {
    /// Options with the threshold from `SPINE_INTEGRITY_SIZE_THRESHOLD` (default 100 MiB).
    pub fn from_env(full_integrity: bool) -> Result<IntegrityOptions, IntegrityError> {
        Self::from_env_value(full_integrity, std::env::var_os(THRESHOLD_ENV).as_deref())
    }

    /// Options from a value of `SPINE_INTEGRITY_SIZE_THRESHOLD` read by the caller:
    /// `None` is the default; otherwise a decimal byte count, or a clear error.
    pub fn from_env_value(
        full_integrity: bool,
        value: Option<&OsStr>,
    ) -> Result<IntegrityOptions, IntegrityError> {
        let threshold_bytes = match value {
            None => DEFAULT_THRESHOLD_BYTES,
            Some(raw) => parse_threshold(raw)?,
        };
        Ok(IntegrityOptions {
            full_integrity,
            threshold_bytes,
            progress: false,
        })
    }
}

fn parse_threshold(raw: &OsStr) -> Result<u64, IntegrityError> {
    let bad = || {
        IntegrityError::new(
            IntegrityErrorKind::BadThreshold,
            format!(
                "{THRESHOLD_ENV}={} is not a byte count (a decimal integer such as 104857600)",
                raw.to_string_lossy()
            ),
        )
    };
    let text = raw.to_str().ok_or_else(bad)?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse::<u64>().map_err(|_| bad())
}

/// What went wrong, for callers that map errors (e.g. to HTTP statuses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IntegrityErrorKind {
    /// The data folder does not exist or is not a folder.
    DataDirMissing,
    /// `spine.db` is not in the data folder.
    StoreMissing,
    /// `spine.db` could not be opened or read, or does not have the expected schema.
    Store,
    /// A folder of the data tree could not be listed.
    Walk,
    /// `SPINE_INTEGRITY_SIZE_THRESHOLD` is not a byte count.
    BadThreshold,
    /// The report files could not be written.
    Output,
}

/// Why a report could not be made. The message names the file and the cause.
#[derive(Debug, thiserror::Error)]
#[error("integrity report: {detail}")]
pub struct IntegrityError {
    kind: IntegrityErrorKind,
    detail: String,
}

impl IntegrityError {
    fn new(kind: IntegrityErrorKind, detail: String) -> Self {
        IntegrityError { kind, detail }
    }

    /// What went wrong.
    pub fn kind(&self) -> IntegrityErrorKind {
        self.kind
    }
}

/// What a checked file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    /// A job receipt, `receipts/<job_id>.json`.
    Receipt,
    /// A job artifact, `artifacts/<job_id>/<name>`.
    Artifact,
}

impl fmt::Display for ItemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ItemKind::Receipt => "receipt",
            ItemKind::Artifact => "artifact",
        })
    }
}

/// The outcome for one file (see the module doc for when each applies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// The file's hash is the store's (counts as ok).
    Match,
    /// The file differs from the store's record (counts as fail).
    Mismatch,
    /// The store has a row, the disk has no file (counts as fail).
    Missing,
    /// An artifact above the threshold, not hashed (counts as skipped).
    SkippedLarge,
    /// A file with no row in the store (counts as warn).
    Orphan,
}

impl Status {
    /// The text used in the JSON and the human report.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Match => "MATCH",
            Status::Mismatch => "MISMATCH",
            Status::Missing => "MISSING",
            Status::SkippedLarge => "SKIPPED_LARGE",
            Status::Orphan => "ORPHAN",
        }
    }

    /// Whether the item belongs in [`IntegrityReport::failures`].
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Mismatch | Status::Missing)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One checked file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrityItem {
    /// Receipt or artifact (for an orphan: which tree it was found in).
    pub kind: ItemKind,
    /// The job; for an orphan, the one its path names, null if it names none.
    pub job_id: Option<String>,
    /// The file's path relative to the data folder, `/`-separated.
    pub path: String,
    /// The store's SHA-256 (lowercase hex); null for an orphan.
    pub expected_hash: Option<String>,
    /// The file's SHA-256 as computed now; null when it was not hashed.
    pub actual_hash: Option<String>,
    /// The file's size on disk (the bytes hashed, when hashed); null when missing.
    pub bytes: Option<u64>,
    /// The outcome.
    pub status: Status,
    /// Why, when the status alone does not say (a size difference, a temp file...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Counts of items by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// `MATCH` items.
    pub ok: u64,
    /// `ORPHAN` items.
    pub warn: u64,
    /// `MISMATCH` and `MISSING` items.
    pub fail: u64,
    /// `SKIPPED_LARGE` items.
    pub skipped: u64,
}

impl Summary {
    fn count(items: &[IntegrityItem]) -> Summary {
        let mut summary = Summary::default();
        for item in items {
            match item.status {
                Status::Match => summary.ok += 1,
                Status::Orphan => summary.warn += 1,
                Status::Mismatch | Status::Missing => summary.fail += 1,
                Status::SkippedLarge => summary.skipped += 1,
            }
        }
        summary
    }

    /// The overall verdict these counts give.
    pub fn verdict(&self) -> Verdict {
        if self.fail > 0 {
            Verdict::Fail
        } else if self.warn > 0 {
            Verdict::Warn
        } else {
            Verdict::Ok
        }
    }
}

/// The overall outcome of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Everything hashed matched and nothing is unaccounted for.
    Ok,
    /// No failure, but orphan files.
    Warn,
    /// At least one `MISMATCH` or `MISSING`.
    Fail,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "OK",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        })
    }
}

/// The report, serialised as `integrity_report.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrityReport {
    /// When the report was made (RFC 3339, UTC, milliseconds).
    pub generated_at: DateTime<Utc>,
    /// The artifact size threshold used.
    pub threshold_bytes: u64,
    /// Whether artifacts above the threshold were hashed.
    pub full_integrity: bool,
    /// Counts by outcome.
    pub summary: Summary,
    /// Every checked file, sorted by (kind, job_id, path).
    pub items: Vec<IntegrityItem>,
    /// The `MISMATCH` and `MISSING` items, in the same order.
    pub failures: Vec<IntegrityItem>,
}

impl IntegrityReport {
    /// The overall verdict.
    pub fn verdict(&self) -> Verdict {
        self.summary.verdict()
    }
}

/// A file the store expects, with what the store says about it.
struct Expected {
    kind: ItemKind,
    job_id: String,
    /// Relative path; `None` when the row's names are not safe path components.
    rel: Option<PathBuf>,
    display_path: String,
    hash: String,
    /// The `artifacts.bytes` column (receipts have none).
    bytes: Option<u64>,
}

/// A file found by the walk.
struct Found {
    rel: PathBuf,
    kind: ItemKind,
    size: u64,
    regular: bool,
}

/// What to do with one item once the walk is done.
struct Planned {
    item: IntegrityItem,
    /// The file to hash, when it is to be hashed.
    hash_path: Option<PathBuf>,
    /// The store's `bytes`, checked against the bytes actually hashed.
    expected_bytes: Option<u64>,
}

/// Builds the report for the data folder `data_dir` (which holds `spine.db`).
pub fn build_report(
    data_dir: &Path,
    opts: &IntegrityOptions,
) -> Result<IntegrityReport, IntegrityError> {
    if !data_dir.is_dir() {
        return Err(IntegrityError::new(
            IntegrityErrorKind::DataDirMissing,
            format!(
                "data folder {} does not exist or is not a folder",
                data_dir.display()
            ),
        ));
    }
    let generated_at = Utc::now().trunc_subsecs(3);
    let expected = read_store(data_dir)?;

    let mut found: HashMap<PathBuf, Found> = HashMap::new();
    for (tree, kind) in [
        ("receipts", ItemKind::Receipt),
        ("artifacts", ItemKind::Artifact),
    ] {
        walk(data_dir, Path::new(tree), kind, &mut found)?;
    }

    let mut plan = Vec::with_capacity(expected.len() + found.len());
    let mut claimed: HashSet<PathBuf> = HashSet::new();
    for exp in expected {
        let on_disk = exp.rel.as_ref().and_then(|rel| found.get(rel));
        if let Some(rel) = &exp.rel {
            claimed.insert(rel.clone());
        }
        plan.push(plan_expected(data_dir, opts, exp, on_disk));
    }
    let mut orphans: Vec<&Found> = found
        .values()
        .filter(|f| !claimed.contains(&f.rel))
        .collect();
    orphans.sort_by(|a, b| a.rel.cmp(&b.rel));
    for orphan in orphans {
        plan.push(plan_orphan(data_dir, opts, orphan));
    }

    let mut items = hash_planned(plan, opts.progress);
    items.sort_by(|a, b| (a.kind, &a.job_id, &a.path).cmp(&(b.kind, &b.job_id, &b.path)));
    let failures = items
        .iter()
        .filter(|i| i.status.is_failure())
        .cloned()
        .collect();
    Ok(IntegrityReport {
        generated_at,
        threshold_bytes: opts.threshold_bytes,
        full_integrity: opts.full_integrity,
        summary: Summary::count(&items),
        items,
        failures,
    })
}

/// Reads the rows the report checks, in one read transaction.
fn read_store(data_dir: &Path) -> Result<Vec<Expected>, IntegrityError> {
    let db_path = data_dir.join("spine.db");
    if !db_path.is_file() {
        return Err(IntegrityError::new(
            IntegrityErrorKind::StoreMissing,
            format!("no store at {}", db_path.display()),
        ));
    }
    let store_err = |what: &str, e: rusqlite::Error| {
        IntegrityError::new(
            IntegrityErrorKind::Store,
            format!("{what} {}: {e}", db_path.display()),
        )
    };
    let mut conn = Connection::open_with_flags(
        &db_path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| store_err("cannot open the store", e))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| store_err("cannot configure the store", e))?;
    let tx = conn
        .transaction()
        .map_err(|e| store_err("cannot read the store", e))?;

    let mut expected = Vec::new();
    {
        let mut stmt = tx
            .prepare("SELECT job_id, receipt_hash FROM jobs WHERE receipt_hash IS NOT NULL")
            .map_err(|e| store_err("cannot query jobs in", e))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(|e| store_err("cannot query jobs in", e))?;
        for row in rows {
            let (job_id, hash) = row.map_err(|e| store_err("bad jobs row in", e))?;
            let file = format!("{job_id}.json");
            let rel = is_safe_component(&job_id).then(|| Path::new("receipts").join(&file));
            expected.push(Expected {
                kind: ItemKind::Receipt,
                display_path: format!("receipts/{file}"),
                job_id,
                rel,
                hash,
                bytes: None,
            });
        }
    }
    {
        let mut stmt = tx
            .prepare("SELECT job_id, name, sha256, bytes FROM artifacts")
            .map_err(|e| store_err("cannot query artifacts in", e))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<i64>>(3)?,
                ))
            })
            .map_err(|e| store_err("cannot query artifacts in", e))?;
        for row in rows {
            let (job_id, name, hash, bytes) =
                row.map_err(|e| store_err("bad artifacts row in", e))?;
            let rel = (is_safe_component(&job_id) && is_safe_component(&name))
                .then(|| Path::new("artifacts").join(&job_id).join(&name));
            expected.push(Expected {
                kind: ItemKind::Artifact,
                display_path: format!("artifacts/{job_id}/{name}"),
                job_id,
                rel,
                hash,
                // A negative count can never match a file size: keep it unmatched.
                bytes: bytes.map(|b| u64::try_from(b).unwrap_or(u64::MAX)),
            });
        }
    }
    Ok(expected)
}

/// Whether `name` is one plain path component, so joining it stays in its folder.
fn is_safe_component(name: &str) -> bool {
    let mut components = Path::new(name).components();
    matches!(components.next(), Some(Component::Normal(_)))
        && components.next().is_none()
        && !name.contains(['/', '\\', '\0'])
}

/// Lists the files under `data_dir/tree` (recursively, without following links).
fn walk(
    data_dir: &Path,
    tree: &Path,
    kind: ItemKind,
    found: &mut HashMap<PathBuf, Found>,
) -> Result<(), IntegrityError> {
    let mut pending = vec![tree.to_path_buf()];
    while let Some(rel_dir) = pending.pop() {
        let dir = data_dir.join(&rel_dir);
        let walk_err = |e: io::Error| {
            IntegrityError::new(
                IntegrityErrorKind::Walk,
                format!("cannot list {}: {e}", dir.display()),
            )
        };
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            // The tree folders are created lazily; a missing one holds no files.
            Err(e) if e.kind() == io::ErrorKind::NotFound && rel_dir == tree => continue,
            Err(e) => return Err(walk_err(e)),
        };
        for entry in entries {
            let entry = entry.map_err(walk_err)?;
            let rel = rel_dir.join(entry.file_name());
            let file_type = entry.file_type().map_err(walk_err)?;
            if file_type.is_dir() {
                pending.push(rel);
                continue;
            }
            // symlink_metadata: a link is reported as itself, never followed.
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            found.insert(
                rel.clone(),
                Found {
                    rel,
                    kind,
                    size,
                    regular: file_type.is_file(),
                },
            );
        }
    }
    Ok(())
}

/// The item for a store row, before hashing.
fn plan_expected(
    data_dir: &Path,
    opts: &IntegrityOptions,
    exp: Expected,
    on_disk: Option<&Found>,
) -> Planned {
    let mut item = IntegrityItem {
        kind: exp.kind,
        job_id: Some(exp.job_id),
        path: exp.display_path,
        expected_hash: Some(exp.hash.to_ascii_lowercase()),
        actual_hash: None,
        bytes: None,
        status: Status::Missing,
        note: None,
    };
    let not_hashed = |item| Planned {
        item,
        hash_path: None,
        expected_bytes: None,
    };
    let Some(rel) = exp.rel else {
        item.note = Some("the store names an unsafe path; the file was not read".to_owned());
        return not_hashed(item);
    };
    let Some(found) = on_disk else {
        return not_hashed(item);
    };
    item.bytes = Some(found.size);
    if !found.regular {
        item.status = Status::Mismatch;
        item.note = Some("not a regular file".to_owned());
        return not_hashed(item);
    }
    let large = exp.kind == ItemKind::Artifact && found.size > opts.threshold_bytes;
    if large && !opts.full_integrity {
        // A size that differs from the store's proves a mismatch without hashing.
        match exp.bytes {
            Some(expected) if expected != found.size => {
                item.status = Status::Mismatch;
                item.note = Some(format!(
                    "{} bytes on disk, {expected} in the store",
                    found.size
                ));
            }
            _ => item.status = Status::SkippedLarge,
        }
        return not_hashed(item);
    }
    Planned {
        item,
        hash_path: Some(data_dir.join(rel)),
        expected_bytes: exp.bytes,
    }
}

/// The item for a file with no row, before hashing.
fn plan_orphan(data_dir: &Path, opts: &IntegrityOptions, found: &Found) -> Planned {
    let path = slash_path(&found.rel);
    let job_id = orphan_job_id(&found.rel, found.kind);
    let is_tmp = found
        .rel
        .file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(".tmp"));
    let note = if is_tmp {
        Some("temporary file of an atomic write: in flight, or stale after a crash".to_owned())
    } else if !found.regular {
        Some("not a regular file".to_owned())
    } else {
        None
    };
    let hashable = found.regular && (opts.full_integrity || found.size <= opts.threshold_bytes);
    Planned {
        item: IntegrityItem {
            kind: found.kind,
            job_id,
            path,
            expected_hash: None,
            actual_hash: None,
            bytes: Some(found.size),
            status: Status::Orphan,
            note,
        },
        hash_path: hashable.then(|| data_dir.join(&found.rel)),
        expected_bytes: None,
    }
}

/// The job an orphan's path names: `receipts/<job>.json` (or a temp file of it,
/// `<job>.json.<unique>.tmp`), or `artifacts/<job>/...`.
fn orphan_job_id(rel: &Path, kind: ItemKind) -> Option<String> {
    let parts: Vec<&OsStr> = rel.iter().collect();
    let job = match (kind, parts.as_slice()) {
        (ItemKind::Receipt, [_, file]) => {
            let file = file.to_str()?;
            &file[..file.rfind(".json")?]
        }
        (ItemKind::Artifact, [_, job, _, ..]) => job.to_str()?,
        _ => return None,
    };
    (!job.is_empty()).then(|| job.to_owned())
}

/// `rel` as a `/`-separated string.
fn slash_path(rel: &Path) -> String {
    rel.iter()
        .map(|c| c.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Hashes the planned files and settles each item's status.
fn hash_planned(plan: Vec<Planned>, progress: bool) -> Vec<IntegrityItem> {
    let total_files = plan.iter().filter(|p| p.hash_path.is_some()).count();
    let total_bytes: u64 = plan
        .iter()
        .filter(|p| p.hash_path.is_some())
        .filter_map(|p| p.item.bytes)
        .sum();
    let mut meter = Progress::new(
        progress && (total_files > PROGRESS_MIN_FILES || total_bytes > PROGRESS_MIN_BYTES),
        total_files,
        total_bytes,
    );
    let mut buffer = vec![0u8; HASH_BUFFER_BYTES];
    let mut items = Vec::with_capacity(plan.len());
    for Planned {
        mut item,
        hash_path,
        expected_bytes,
    } in plan
    {
        if let Some(path) = hash_path {
            match hash_file(&path, &mut buffer, &mut meter) {
                Ok((hash, bytes)) => {
                    item.bytes = Some(bytes);
                    if item.status != Status::Orphan {
                        let hash_ok = item.expected_hash.as_deref().is_some_and(|e| e == hash);
                        let bytes_ok = expected_bytes.is_none_or(|e| e == bytes);
                        item.status = if hash_ok && bytes_ok {
                            Status::Match
                        } else {
                            Status::Mismatch
                        };
                        if !bytes_ok && item.note.is_none() {
                            item.note = expected_bytes
                                .map(|e| format!("{bytes} bytes on disk, {e} in the store"));
                        }
                    }
                    item.actual_hash = Some(hash);
                }
                Err(e) => {
                    if item.status != Status::Orphan {
                        item.status = Status::Mismatch;
                    }
                    item.note = Some(format!("cannot read: {e}"));
                }
            }
            meter.file_done();
        }
        items.push(item);
    }
    meter.finish();
    items
}

/// SHA-256 (lowercase hex) and length of the file at `path`, streamed through `buffer`.
fn hash_file(path: &Path, buffer: &mut [u8], meter: &mut Progress) -> io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    loop {
        let n = match file.read(buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buffer[..n]);
        bytes += n as u64;
        meter.bytes_done(n as u64);
    }
    Ok((hex::encode(hasher.finalize()), bytes))
}

/// Throttled `hashed X/Y files, Z/W MiB` lines on stderr.
struct Progress {
    enabled: bool,
    total_files: usize,
    total_bytes: u64,
    files: usize,
    bytes: u64,
    last: Instant,
}

impl Progress {
    fn new(enabled: bool, total_files: usize, total_bytes: u64) -> Self {
        Progress {
            enabled,
            total_files,
            total_bytes,
            files: 0,
            bytes: 0,
            last: Instant::now(),
        }
    }

    fn bytes_done(&mut self, n: u64) {
        self.bytes += n;
        self.tick();
    }

    fn file_done(&mut self) {
        self.files += 1;
        self.tick();
    }

    fn tick(&mut self) {
        if self.enabled && self.last.elapsed() >= PROGRESS_INTERVAL {
            self.show();
        }
    }

    fn show(&mut self) {
        const MIB: u64 = 1024 * 1024;
        eprintln!(
            "hashed {}/{} files, {}/{} MiB",
            self.files,
            self.total_files,
            self.bytes / MIB,
            self.total_bytes / MIB
        );
        self.last = Instant::now();
    }

    fn finish(&mut self) {
        if self.enabled {
            self.show();
        }
    }
}

/// Writes `integrity_report.json` and `integrity_report.txt` into `out_dir`; returns their paths.
pub fn write_report_files(
    report: &IntegrityReport,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, IntegrityError> {
    let out_err = |what: String, e: io::Error| {
        IntegrityError::new(IntegrityErrorKind::Output, format!("{what}: {e}"))
    };
    fs::create_dir_all(out_dir)
        .map_err(|e| out_err(format!("cannot create {}", out_dir.display()), e))?;
    let mut json = serde_json::to_vec_pretty(report).map_err(|e| {
        IntegrityError::new(
            IntegrityErrorKind::Output,
            format!("cannot serialise the report: {e}"),
        )
    })?;
    json.push(b'\n');
    let json_path = out_dir.join(REPORT_JSON);
    fs::write(&json_path, json)
        .map_err(|e| out_err(format!("cannot write {}", json_path.display()), e))?;
    let txt_path = out_dir.join(REPORT_TXT);
    fs::write(&txt_path, render_text(report))
        .map_err(|e| out_err(format!("cannot write {}", txt_path.display()), e))?;
    Ok(vec![json_path, txt_path])
}

/// The human report: counts, one line per item that is not `MATCH`, then the verdict.
pub fn render_text(report: &IntegrityReport) -> String {
    let s = &report.summary;
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "integrity report, generated {}",
        report
            .generated_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    let _ = writeln!(
        out,
        "threshold {} bytes, full integrity {}",
        report.threshold_bytes,
        if report.full_integrity { "on" } else { "off" }
    );
    let _ = writeln!(
        out,
        "{} items: {} ok, {} warn, {} fail, {} skipped",
        report.items.len(),
        s.ok,
        s.warn,
        s.fail,
        s.skipped
    );
    let notable: Vec<&IntegrityItem> = report
        .items
        .iter()
        .filter(|i| i.status != Status::Match)
        .collect();
    if !notable.is_empty() {
        out.push('\n');
    }
    for item in notable {
        let _ = write!(
            out,
            "{:<13} {:<8} {:<20} {}",
            item.status.as_str(),
            item.kind,
            item.job_id.as_deref().unwrap_or("-"),
            item.path
        );
        if let Some(bytes) = item.bytes {
            let _ = write!(out, " ({bytes} bytes)");
        }
        if item.status == Status::Mismatch {
            let _ = write!(
                out,
                " expected {} actual {}",
                item.expected_hash.as_deref().unwrap_or("-"),
                item.actual_hash.as_deref().unwrap_or("-")
            );
        }
        if let Some(note) = &item.note {
            let _ = write!(out, ": {note}");
        }
        out.push('\n');
    }
    out.push('\n');
    let _ = write!(out, "verdict: {}", report.verdict());
    match report.verdict() {
        Verdict::Fail => {
            let _ = write!(out, " ({} failed)", s.fail);
        }
        Verdict::Warn => {
            let _ = write!(out, " ({} orphaned)", s.warn);
        }
        Verdict::Ok => {}
    }
    if s.skipped > 0 {
        let _ = write!(
            out,
            "; {} skipped above the threshold (hash them with --full-integrity)",
            s.skipped
        );
    }
    out.push('\n');
    out
}
