//! Atomic file writes (temp file in the same folder → fsync → rename → fsync of the
//! folder) and the removal of stale temp files at start-up. A crash before the rename
//! leaves the previous file (or none) readable and only a `*.tmp` behind. A folder
//! created on the way is made durable too (its parent is fsynced), and everything is
//! private to the server's user: folders `0700`, files `0600`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// The suffix of every temp file.
pub const TMP_SUFFIX: &str = ".tmp";
/// Longest id used as a file or folder name.
pub const MAX_ID_LEN: usize = 128;

/// Whether `id` is safe as one file or folder name: 1..=[`MAX_ID_LEN`] ASCII letters,
/// digits, `-` and `_` (so never `..`, a separator or a hidden name).
pub fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `id`, or `InvalidInput` when it is not [`is_safe_id`].
pub fn safe_id(id: &str) -> io::Result<&str> {
    if is_safe_id(id) {
        Ok(id)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "id is not a safe file name",
        ))
    }
}

/// Creates `dir` and its missing ancestors (`0700`), fsyncing the parent of each
/// folder created so that the new entry survives a crash; returns those parents.
pub fn create_dir_durable(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at {
        if d.as_os_str().is_empty() || d.is_dir() {
            break;
        }
        missing.push(d.to_path_buf());
        at = d.parent();
    }
    let mut synced = Vec::new();
    for d in missing.into_iter().rev() {
        match fs::DirBuilder::new().mode(0o700).create(&d) {
            Ok(()) => {}
            // Another writer made it meanwhile: it syncs its own parent.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => continue,
            Err(e) => return Err(e),
        }
        let parent = match d.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        File::open(&parent)?.sync_all()?;
        synced.push(parent);
    }
    Ok(synced)
}

/// Writes `path` atomically: `fill` writes the content into a temp file beside it.
pub fn atomic_write<T>(
    path: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<T>,
) -> io::Result<T> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no folder"))?;
    create_dir_durable(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
        .to_string_lossy();
    let tmp = dir.join(format!(
        "{name}.{}{TMP_SUFFIX}",
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
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
    use std::os::unix::fs::PermissionsExt as _;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_folders_are_private_and_their_parents_synced() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir
            .path()
            .join("artifacts")
            .join("job-1")
            .join("output.bin");
        atomic_write_bytes(&file, b"data").unwrap();
        assert_eq!(mode(&dir.path().join("artifacts")), 0o700);
        assert_eq!(mode(&dir.path().join("artifacts/job-1")), 0o700);
        assert_eq!(mode(&file), 0o600);
        let again = dir.path().join("artifacts").join("job-2");
        let synced = create_dir_durable(&again).unwrap();
        assert_eq!(synced, vec![dir.path().join("artifacts")]);
        assert!(
            create_dir_durable(&again).unwrap().is_empty(),
            "nothing new"
        );
    }

    #[test]
    fn ids_that_could_leave_their_folder_are_refused() {
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            ".hidden",
            "a\\b",
            "a\0",
            &"x".repeat(129),
        ] {
            assert!(!is_safe_id(bad), "{bad:?}");
            assert!(safe_id(bad).is_err());
        }
        for good in ["0b5d1e7c9a2f4e6b8d0c1a3e5f7b9d1c", "job-1", "A_b-9"] {
            assert!(is_safe_id(good), "{good:?}");
        }
    }

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
