//! Crash-safe whole-file replacement (S3): after a crash the file is the old or the new
//! version, never a torn mix.
//!
//! `write_atomically` writes a uniquely named temp file in the same directory with mode
//! 0600 (created with that mode, never chmod-ed later), fsyncs it, renames it over the
//! target and fsyncs the directory so the rename itself is durable. A crash can leave a
//! temp file behind; [`remove_stale_temp_files`] deletes those when the data directory is
//! opened, and readers never look at them.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode of every file the storage layer creates.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

const TEMP_PREFIX: &str = ".";
const TEMP_SUFFIX: &str = ".tmp";

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `bytes` atomically and durably.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (dir, temp_path, mut temp) = create_temp_beside(path)?;
    let result = (|| {
        temp.write_all(bytes)?;
        temp.sync_all()?;
        drop(temp);
        fs::rename(&temp_path, path)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        // Best effort: a leftover is also removed at the next open.
        let _ = fs::remove_file(&temp_path);
    }
    result
}

/// Creates `path` with `bytes` atomically and durably, failing with
/// `ErrorKind::AlreadyExists` instead of replacing an existing file.
///
/// Used for key files: two servers starting at once must not each generate a key and
/// silently replace the other's.
pub fn create_new_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (dir, temp_path, mut temp) = create_temp_beside(path)?;
    let result = (|| {
        temp.write_all(bytes)?;
        temp.sync_all()?;
        drop(temp);
        // link(2) fails if the target exists, unlike rename(2).
        fs::hard_link(&temp_path, path)?;
        sync_dir(&dir)
    })();
    let _ = fs::remove_file(&temp_path);
    result
}

/// Deletes temp files that a crash left in `dir`; returns how many were removed.
pub fn remove_stale_temp_files(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_temp_name(name) && entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(dir = %dir.display(), removed, "removed temp files left by an interrupted write");
    }
    Ok(removed)
}

/// Fsyncs a directory so that entries created or renamed in it survive a power loss.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX) && name.len() > 5
}

fn create_temp_beside(path: &Path) -> io::Result<(PathBuf, PathBuf, File)> {
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // pid + per-process counter is unique among live processes; create_new makes a
    // collision with a stale file an error instead of a clobber, so retry a few times.
    for _ in 0..16 {
        let mut temp_name = OsString::from(TEMP_PREFIX);
        temp_name.push(file_name);
        temp_name.push(format!(
            ".{}-{}{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed),
            TEMP_SUFFIX
        ));
        let temp_path = dir.join(temp_name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PRIVATE_FILE_MODE)
            .open(&temp_path)
        {
            Ok(file) => return Ok((dir, temp_path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "could not find a free temp file name",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaced_file_has_new_contents_and_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomically(&path, b"old").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temp left");
    }

    #[test]
    fn crash_mid_write_leaves_real_file_intact_and_temp_is_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.json.enc");
        write_atomically(&path, b"committed version").unwrap();
        // A crash between creating the temp file and the rename: half-written temp.
        let temp = dir.path().join(".accounts.json.enc.4242-7.tmp");
        fs::write(&temp, b"half-wri").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"committed version");
        assert_eq!(remove_stale_temp_files(dir.path()).unwrap(), 1);
        assert!(!temp.exists());
        assert_eq!(fs::read(&path).unwrap(), b"committed version");
    }

    #[test]
    fn create_new_refuses_to_replace_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        create_new_atomically(&path, b"first").unwrap();
        let err = create_new_atomically(&path, b"second").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temp left");
    }
}
