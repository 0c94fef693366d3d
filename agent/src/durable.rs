//! The one atomic, durable file write of the agent: the last-known-good
//! policy cache, the agent id and the telemetry spool all write through
//! [`write_atomic`].
//!
//! After [`write_atomic`] returns `Ok`, the file holds either its old or its
//! new contents in full, across a crash or power loss: the bytes go to a
//! temporary file beside it, are fsynced, renamed over the target, and the
//! directory is fsynced so that the rename itself is on disk. A crash
//! midway leaves at most a temporary file, which [`is_temporary`] names so
//! readers can skip and remove it.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Marker in the name of a temporary file: `.<target name>.tmp-<random>`.
const TEMP_MARKER: &str = ".tmp-";

/// Replaces `path`'s contents with `contents`, atomically and durably
/// (creating the parent directory when missing). Errors are the
/// filesystem's: unwritable directory, full disk; the temporary file is
/// removed on failure.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{file_name}{TEMP_MARKER}{}",
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Makes the entries of `dir` (renames, removals) durable. Filesystems
/// that cannot fsync a directory (some network and FUSE mounts) answer
/// `EINVAL`/`EBADF`; that is no error here, as nothing better can be done.
fn sync_dir(dir: &Path) -> io::Result<()> {
    /// `EBADF` on Linux; `EINVAL` is `ErrorKind::InvalidInput`.
    const EBADF: i32 = 9;
    match fs::File::open(dir)?.sync_all() {
        Err(e) if e.kind() == io::ErrorKind::InvalidInput || e.raw_os_error() == Some(EBADF) => {
            Ok(())
        }
        other => other,
    }
}

/// Whether `file_name` is a temporary file left by an interrupted
/// [`write_atomic`] (safe to remove: its target was never replaced by it).
pub fn is_temporary(file_name: &str) -> bool {
    file_name.starts_with('.') && file_name.contains(TEMP_MARKER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temporary() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("sub").join("file");
        write_atomic(&path, b"one")?;
        write_atomic(&path, b"two")?;
        assert_eq!(fs::read(&path)?, b"two");
        let names: Vec<String> = fs::read_dir(dir.path().join("sub"))?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<io::Result<_>>()?;
        assert_eq!(names, ["file"]);
        assert!(is_temporary(".batch-1.json.tmp-0123abcd"));
        assert!(!is_temporary("batch-1.json"));
        Ok(())
    }

    #[test]
    fn failure_leaves_the_old_contents() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("file");
        write_atomic(&path, b"old")?;
        // A directory in the way of the rename: the write fails, the old
        // file stays, no temporary is left behind.
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked)?;
        fs::write(blocked.join("inside"), b"x")?;
        assert!(write_atomic(&blocked, b"new").is_err());
        assert_eq!(fs::read(&path)?, b"old");
        let temporaries = fs::read_dir(dir.path())?
            .filter_map(Result::ok)
            .filter(|e| is_temporary(&e.file_name().to_string_lossy()))
            .count();
        assert_eq!(temporaries, 0);
        Ok(())
    }
}
