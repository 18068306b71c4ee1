//! Atomic file writes (temp file in the same folder → fsync → rename → fsync of the
//! folder) and the removal of stale temp files at start-up. A crash before the rename
//! leaves the previous file (or none) readable and only a `*.tmp` behind.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// The suffix of every temp file.
pub const TMP_SUFFIX: &str = ".tmp";

/// Writes `path` atomically: `fill` writes the content into a temp file beside it.
pub fn atomic_write<T>(
    path: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<T>,
) -> io::Result<T> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no folder"))?;
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
        .to_string_lossy();
    let tmp = dir.join(format!(
        "{name}.{}{TMP_SUFFIX}",
        uuid::Uuid::new_v4().simple()
    ));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_previous_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        atomic_write_bytes(&path, b"old").unwrap();
        let err = atomic_write(&path, |f| {
            f.write_all(b"half")?;
            Err::<(), _>(io::Error::other("crash before rename"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_temp_left_by_a_crash_is_removed_and_the_old_file_stays() {
        let dir = tempfile::tempdir().unwrap();
        let receipts = dir.path().join("receipts");
        fs::create_dir_all(&receipts).unwrap();
        atomic_write_bytes(&receipts.join("j.json"), b"old").unwrap();
        fs::write(receipts.join("j.json.123.tmp"), b"new but not renamed").unwrap();
        assert_eq!(remove_stale_temps(dir.path()).unwrap(), 1);
        assert_eq!(fs::read(receipts.join("j.json")).unwrap(), b"old");
        assert_eq!(fs::read_dir(&receipts).unwrap().count(), 1);
    }
}
