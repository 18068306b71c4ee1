//! Atomic file writes (temp file in the same folder → fsync → rename → fsync of the
//! folder) and the removal of stale temp files at start-up. A crash before the rename
//! leaves the previous file (or none) readable and only a `*.tmp` behind.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// The suffix of every temp file.
pub const TMP_SUFFIX: &str = ".tmp";

/// Writes `path` atomically: `fill` writes the content into a temp file beside it.
pub fn atomic_write<T>(path: &Path, fill: impl FnOnce(&mut File) -> io::Result<T>) -> io::Result<T> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no folder"))?;
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
        .to_string_lossy();
    let tmp = dir.join(format!("{name}.{}{TMP_SUFFIX}", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut file = File::options().write(true).create_new(true).open(&tmp)?;
        let out = fill(&mut file)?;
        file.flush()?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()?;
        Ok(out)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path` atomically.
pub fn atomic_write_bytes(path: &Path, bytes: &[u8]) -> io::Result<()> {
    atomic_write(path, |f| f.write_all(bytes))
}

/// Removes `*.tmp` files directly under `receipts/` and `artifacts/<job>/`; returns how
/// many. Symbolic links are never followed.
pub fn remove_stale_temps(data_dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    let mut dirs = vec![data_dir.join("receipts")];
    let artifacts = data_dir.join("artifacts");
    if artifacts.is_dir() {
        for entry in fs::read_dir(&artifacts)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                dirs.push(entry.path());
            }
        }
    }
    for dir in dirs {
        if !dir.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file()
                && entry.file_name().to_string_lossy().ends_with(TMP_SUFFIX)
            {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        File::open(&dir)?.sync_all()?;
    }
    Ok(removed)
}
