//! Reporters over the run event stream and the run gates.
//!
//! The runner emits one stream of [`RunEvent`]s; every output here is a consumer of it
//! (the design nextest uses for its reporters): [`TerminalReporter`] for people watching,
//! and the file reporters of [`file_reporters`] for the report directory
//! (`summary.json`, `junit.xml`, `report.md`, `report.html`, `hgrm/*.hgrm`).
//! [`gate`] turns thresholds and an expected-failures baseline into findings. Whether a
//! run passed is decided once, by the engine, and arrives in the final
//! `RunFinished` event: reporters only render it.
#![deny(missing_docs)]

mod error;
mod files;
pub mod gate;
mod hgrm;
mod html;
pub mod json;
mod junit;
mod markdown;
mod metrics;
mod runlog;
mod terminal;

use std::path::{Path, PathBuf};

pub use error::{ReportError, ReportErrorKind};
pub use gate::{Baseline, BaselineOutcome, Threshold};
pub use harness_model::RunEvent;
pub use harness_model::Totals;
pub use hgrm::write_percentile_distribution;
pub use json::JsonLinesReporter;
pub use metrics::MetricSummary;
pub use runlog::RunLog;
pub use terminal::{TerminalReporter, TerminalStyle};

/// A consumer of the run event stream; it sees every event in the order the runner emits them.
pub trait Reporter {
    /// Handles one event; file reporters write their files when the run finishes.
    fn on_event(&mut self, ev: &RunEvent) -> Result<(), ReportError>;
}

/// Where a run's report files go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportDir {
    path: PathBuf,
}

impl ReportDir {
    /// The directory name for a run: `<UTC time, basic format>-<seed>`, e.g.
    /// `20261123T091500Z-42` for `2026-11-23T09:15:00Z` (fractions of a second dropped).
    ///
    /// `now_utc_rfc3339` must be in UTC (`Z` or `+00:00`); the date and time digits are
    /// taken as they are.
    pub fn default_name(seed: u64, now_utc_rfc3339: &str) -> String {
        let stamp: String = now_utc_rfc3339
            .chars()
            .take_while(|c| *c != '.' && *c != 'Z' && *c != 'z' && *c != '+')
            .filter(|c| c.is_ascii_digit() || *c == 'T' || *c == 't')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        format!("{stamp}Z-{seed}")
    }

    /// The default report directory of a run under `reports_root` (usually `reports/`).
    pub fn under(reports_root: &Path, seed: u64, now_utc_rfc3339: &str) -> ReportDir {
        ReportDir {
            path: reports_root.join(Self::default_name(seed, now_utc_rfc3339)),
        }
    }

    /// A report directory given explicitly (`--report-dir`).
    pub fn at(path: impl Into<PathBuf>) -> ReportDir {
        ReportDir { path: path.into() }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every file reporter, writing into this directory.
    pub fn reporters(&self) -> Vec<Box<dyn Reporter + Send>> {
        file_reporters(&self.path)
    }
}

/// All file reporters writing into `dir` (created when the run finishes): `summary.json`,
/// `junit.xml`, `report.md`, `report.html` and `hgrm/<scenario id, `/` → `_`>.<metric>.hgrm`.
pub fn file_reporters(dir: &Path) -> Vec<Box<dyn Reporter + Send>> {
    files::all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_name_is_basic_utc_time_and_seed() {
        assert_eq!(
            ReportDir::default_name(42, "2026-11-23T09:15:00Z"),
            "20261123T091500Z-42"
        );
        assert_eq!(
            ReportDir::default_name(7, "2026-11-23T09:15:00.123456+00:00"),
            "20261123T091500Z-7"
        );
        let d = ReportDir::under(Path::new("reports"), 1, "2026-01-02T03:04:05Z");
        assert_eq!(d.path(), Path::new("reports/20260102T030405Z-1"));
    }
}
