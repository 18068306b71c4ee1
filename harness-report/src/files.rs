//! The file reporters: each folds the event stream into a [`RunLog`] and, when the run
//! finishes, renders its format and writes it into the report directory.

use std::path::{Path, PathBuf};

use harness_model::RunEvent;

use crate::error::ReportError;
use crate::runlog::RunLog;
use crate::{Reporter, hgrm, html, json, junit, markdown};

/// One rendered file: its path relative to the report directory and its bytes.
pub(crate) struct Rendered {
    pub(crate) path: PathBuf,
    pub(crate) bytes: Vec<u8>,
}

impl Rendered {
    pub(crate) fn new(path: impl Into<PathBuf>, bytes: impl Into<Vec<u8>>) -> Rendered {
        Rendered {
            path: path.into(),
            bytes: bytes.into(),
        }
    }
}

/// Turns a finished run into files.
type Render = fn(&RunLog) -> Result<Vec<Rendered>, ReportError>;

/// A reporter that renders one format into `dir` when the run finishes.
struct FileReporter {
    dir: PathBuf,
    log: RunLog,
    render: Render,
}

impl Reporter for FileReporter {
    fn on_event(&mut self, ev: &RunEvent) -> Result<(), ReportError> {
        self.log.record(ev);
        if matches!(ev, RunEvent::RunFinished { .. }) {
            for file in (self.render)(&self.log)? {
                write_file(&self.dir.join(&file.path), &file.bytes)?;
            }
        }
        Ok(())
    }
}

/// Writes a file, creating its directory; written to a temporary name and renamed so a
/// reader never sees half a report.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| ReportError::io(dir, e))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| ReportError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ReportError::io(path, e))
}

fn hgrm_files(log: &RunLog) -> Result<Vec<Rendered>, ReportError> {
    let mut out = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    for r in &log.results {
        for (metric, h) in &r.histograms {
            if h.is_empty() {
                continue;
            }
            let mut bytes = Vec::new();
            // Ids that differ only in characters a file name cannot hold get a suffix.
            let stem = hgrm::file_stem(&r.info.id);
            let mut file = format!("{stem}.{}.hgrm", metric.name());
            let mut n = 2;
            while !used.insert(file.clone()) {
                file = format!("{stem}-{n}.{}.hgrm", metric.name());
                n += 1;
            }
            let name = PathBuf::from("hgrm").join(file);
            hgrm::write_percentile_distribution(h, hgrm::scaling_ratio(*metric), &mut bytes)
                .map_err(|e| ReportError::io(&name, e))?;
            out.push(Rendered::new(name, bytes));
        }
    }
    Ok(out)
}

/// Every file reporter writing into `dir`.
pub(crate) fn all(dir: &Path) -> Vec<Box<dyn Reporter + Send>> {
    let renders: [Render; 5] = [
        json::render,
        junit::render,
        markdown::render,
        html::render,
        hgrm_files,
    ];
    renders
        .into_iter()
        .map(|render| {
            Box::new(FileReporter {
                dir: dir.to_owned(),
                log: RunLog::new(),
                render,
            }) as Box<dyn Reporter + Send>
        })
        .collect()
}
