//! The integrity report (spine §5): compares the hashes the store holds for receipts
//! and artifacts with the files on disk. STUB: being written; signatures are fixed.

use std::path::{Path, PathBuf};

use serde::Serialize;

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
        Ok(IntegrityOptions {
            full_integrity,
            threshold_bytes: 100 * 1024 * 1024,
            progress: false,
        })
    }
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
#[error("integrity report: {0}")]
pub struct IntegrityError(pub String);

/// The report, serialised as `integrity_report.json`.
#[derive(Clone, Debug, Serialize)]
pub struct IntegrityReport {}

/// Builds the report for the data folder `data_dir` (which holds `spine.db`).
pub fn build_report(
    _data_dir: &Path,
    _opts: &IntegrityOptions,
) -> Result<IntegrityReport, IntegrityError> {
    Ok(IntegrityReport {})
}

/// Writes `integrity_report.json` and `integrity_report.txt` into `out_dir`; returns their paths.
pub fn write_report_files(
    _report: &IntegrityReport,
    _out_dir: &Path,
) -> Result<Vec<PathBuf>, IntegrityError> {
    Ok(Vec::new())
}
