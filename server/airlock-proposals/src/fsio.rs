//! Crash-safe file replacement.
//!
//! Guarantee: after [`write_atomic`] returns, the file has the new content durably; if the
//! process dies at any point before, the file has either its old or its new content, never a
//! mix. A crash can leave a temp file (`.<name>.airlock-tmp-*`) next to the target; it is
//! never the target itself.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{ProposalError, Result};

/// Marker in temp file names, so a cleanup can recognise them.
pub const TEMP_MARKER: &str = ".airlock-tmp-";

/// Writes `content` to `path` atomically: temp file in the same directory, fsync, rename,
/// fsync of the directory. An existing file keeps its permission bits (and owner, when the
/// process may set it); a new file is created 0644 minus the umask. A symlink at `path` is
/// followed, so the link stays a link and its target gets the content.
pub fn write_atomic(path: &Path, content: &[u8]) -> Result<()> {
    write_atomic_with(path, content, true)
}

/// [`write_atomic`]; with `durable: false` the fsyncs are skipped, which keeps the
/// old-or-new guarantee against a killed process (the page cache survives it) but not
/// against a power loss or kernel crash.
pub(crate) fn write_atomic_with(path: &Path, content: &[u8], durable: bool) -> Result<()> {
    let target = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => path.to_owned(),
        Err(e) => return Err(ProposalError::io("resolve", path, e)),
    };
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .ok_or_else(|| {
            ProposalError::io(
                "write",
                &target,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name"),
            )
        })?
        .to_string_lossy()
        .into_owned();
    let existing = match std::fs::metadata(&target) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(ProposalError::io("stat", &target, e)),
    };

    let tmp = temp_path(dir, &name);
    let result = write_temp(&tmp, content, existing.as_ref(), durable)
        .and_then(|()| {
            std::fs::rename(&tmp, &target).map_err(|e| ProposalError::io("rename into", &target, e))
        })
        .and_then(|()| if durable { sync_dir(dir) } else { Ok(()) });
    if result.is_err() {
        // Best effort: the error being returned is the useful one.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn temp_path(dir: &Path, name: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{name}{TEMP_MARKER}{}-{n}", std::process::id()))
}

fn write_temp(
    tmp: &Path,
    content: &[u8],
    existing: Option<&std::fs::Metadata>,
    durable: bool,
) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(tmp)
        .map_err(|e| ProposalError::io("create temp file", tmp, e))?;
    file.write_all(content)
        .map_err(|e| ProposalError::io("write temp file", tmp, e))?;
    if let Some(meta) = existing {
        // A new file belongs to us; give it the original owner back when that differs (only
        // possible with privileges, hence best effort). Owner before mode: chown clears
        // setuid/setgid bits, which the mode then restores.
        let ours = file
            .metadata()
            .map_err(|e| ProposalError::io("stat temp file", tmp, e))?;
        if (meta.uid(), meta.gid()) != (ours.uid(), ours.gid()) {
            let _ = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()));
        }
        file.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| ProposalError::io("set permissions of", tmp, e))?;
    }
    if durable {
        file.sync_all()
            .map_err(|e| ProposalError::io("fsync temp file", tmp, e))?;
    }
    Ok(())
}

/// Opens (creating) `path` and takes an exclusive, non-blocking `flock` on it. The lock lives
/// as long as the returned file and is released by the OS when the process dies.
/// While the lock is held elsewhere, retries until `wait` has passed (a restarted server may
/// start before the previous one has exited).
pub(crate) fn lock_exclusive(path: &Path, wait: std::time::Duration) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| ProposalError::io("open lock file", path, e))?;
    let deadline = std::time::Instant::now() + wait;
    loop {
        // SAFETY: flock on a descriptor we own, valid for the duration of the call.
        let rc = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        };
        if rc == 0 {
            return Ok(file);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(ProposalError::io("lock", path, err));
        }
        if std::time::Instant::now() >= deadline {
            return Err(ProposalError::Locked {
                dir: path.parent().unwrap_or(path).to_owned(),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
}

/// fsync a directory so a rename or unlink in it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ProposalError::io("fsync directory", dir, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn replaces_content_and_keeps_mode_and_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("script.sh");
        std::fs::write(&f, "old").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o751)).unwrap();
        write_atomic(&f, b"new content\n").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "new content\n");
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o7777,
            0o751
        );

        let link = tmp.path().join("link.sh");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        write_atomic(&link, b"via link").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "via link");

        let new = tmp.path().join("new.txt");
        write_atomic(&new, b"x").unwrap();
        let mode = std::fs::metadata(&new).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode & !0o644,
            0,
            "new file mode {mode:o} must be at most 0644"
        );

        let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(TEMP_MARKER))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
