//! The shadow workspace: a copy-on-write view of the workspace at the workspace's own path, for
//! agents that write to disk themselves (`agent.isolation = "shadow"`, docs/security.md).
//!
//! Two ways to build it, best first:
//! - **overlay**: `airlock exec` enters a private user + mount namespace and mounts overlayfs
//!   over the workspace path (lower = the real workspace, read-only to the overlay; upper and
//!   work dirs in the server's state dir, outside the workspace). The agent's writes land in the
//!   upper dir; the real files are never written. The user's edits to files the agent has not
//!   touched show through at once (they are read from the lower layer).
//! - **copy**: a copy of the workspace in the state dir (reflinked with `FICLONE` where the
//!   filesystem supports it, else copied), with the big ignored dirs (`target/`,
//!   `node_modules/`) left out: where user namespaces work the copy is bind-mounted over the
//!   workspace path (`copy-bind`; those dirs are then absent: a read-only bind of them would be
//!   a locked submount, and the sandbox's own non-recursive bind of the workspace fails with
//!   EINVAL over locked submounts); where user namespaces don't work, the agent runs in the
//!   copy at its own path (`copy`) and those dirs are symlinks to the real, read-only ones.
//!
//! Guarantees: [`enter`] changes only the calling process's namespaces (it must be
//! single-threaded, as `unshare(CLONE_NEWUSER)` requires); nothing here writes the real
//! workspace. Test-only knob: `AIRLOCK_TEST_NO_OVERLAY=1` makes [`overlay_works`] say no, so the
//! copy fallback is tested on kernels that have overlayfs (like `AIRLOCK_TEST_NO_USERNS`).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::SandboxError;

/// Directories left out of a shadow copy (read-only binds or links to the real ones instead):
/// build output and dependencies are big, and an agent has no business editing them.
pub const COPY_SKIPPED_DIRS: &[&str] = &["target", "node_modules"];

/// The ways to build a shadow, best first (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowKind {
    /// overlayfs over the workspace path, in a user + mount namespace.
    Overlay,
    /// A copy bind-mounted over the workspace path (overlayfs unavailable).
    CopyBind,
    /// A copy at its own path (no user namespaces).
    Copy,
}

impl ShadowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ShadowKind::Overlay => "overlay",
            ShadowKind::CopyBind => "copy-bind",
            ShadowKind::Copy => "copy",
        }
    }

    /// One line for `airlock doctor`.
    pub fn describe(self) -> &'static str {
        match self {
            ShadowKind::Overlay => "overlayfs in a user+mount namespace (copy-on-write, instant)",
            ShadowKind::CopyBind => {
                "a copy (reflinked where possible) bind-mounted over the workspace; overlayfs unavailable"
            }
            ShadowKind::Copy => {
                "a copy at its own path (no user namespaces); the agent sees the copy's path"
            }
        }
    }
}

/// The best shadow this kernel offers. `scratch` is a directory to try overlayfs in, on the
/// filesystem the upper dir will live on (removed afterwards).
pub fn pick(scratch: &Path) -> ShadowKind {
    if !crate::probe::probe().user_namespaces {
        ShadowKind::Copy
    } else if overlay_works(scratch) {
        ShadowKind::Overlay
    } else {
        ShadowKind::CopyBind
    }
}

/// How the shadow workspace is mounted for the agent process (`airlock exec` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShadowMount {
    /// overlayfs over the workspace path (`--shadow-upper`, `--shadow-work`).
    Overlay { upper: PathBuf, work: PathBuf },
    /// A prepared copy bind-mounted over the workspace path (`--shadow-copy`).
    CopyBind { copy: PathBuf },
}

fn io<'a>(
    context: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> SandboxError + 'a {
    move |e| SandboxError::io(context, path, e)
}

fn cstr(p: &Path) -> Result<CString, SandboxError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| SandboxError::Config(format!("path contains a NUL byte: {}", p.display())))
}

fn last_err(step: &'static str) -> SandboxError {
    SandboxError::Setup {
        step,
        source: std::io::Error::last_os_error(),
    }
}

/// Enters a new user + mount namespace (mapping only the caller's uid/gid) and mounts the
/// shadow over `workspace`. The calling process must be single-threaded. Mounts are private:
/// nothing propagates to the host.
pub fn enter(workspace: &Path, mount: &ShadowMount) -> Result<(), SandboxError> {
    let ws = cstr(workspace)?;
    // SAFETY: plain syscalls on valid NUL-terminated strings; the caller is single-threaded.
    unsafe {
        let uid = libc::geteuid();
        let gid = libc::getegid();
        if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
            return Err(last_err("unshare user+mount namespace for the shadow"));
        }
        write_proc("/proc/self/setgroups", "deny")?;
        write_proc("/proc/self/uid_map", &format!("{uid} {uid} 1"))?;
        write_proc("/proc/self/gid_map", &format!("{gid} {gid} 1"))?;
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(last_err("make mounts private"));
        }
        match mount {
            ShadowMount::Overlay { upper, work } => {
                let options = overlay_options(workspace, upper, work)?;
                if libc::mount(
                    c"overlay".as_ptr(),
                    ws.as_ptr(),
                    c"overlay".as_ptr(),
                    0,
                    options.as_ptr().cast(),
                ) != 0
                {
                    return Err(last_err("mount overlayfs over the workspace"));
                }
            }
            ShadowMount::CopyBind { copy } => bind(copy, workspace)?,
        }
    }
    Ok(())
}

/// `mount --bind src dst`.
unsafe fn bind(src: &Path, dst: &Path) -> Result<(), SandboxError> {
    let s = cstr(src)?;
    let d = cstr(dst)?;
    // SAFETY: valid NUL-terminated paths.
    unsafe {
        if libc::mount(
            s.as_ptr(),
            d.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        ) != 0
        {
            return Err(last_err("bind mount for the shadow copy"));
        }
    }
    Ok(())
}

fn write_proc(path: &str, data: &str) -> Result<(), SandboxError> {
    std::fs::write(path, data).map_err(|e| SandboxError::Setup {
        step: "write uid/gid map for the shadow",
        source: e,
    })
}

/// overlayfs mount options. `userxattr` is what an unprivileged mount needs (whiteouts and
/// opaque dirs are marked with `user.overlay.*` xattrs in the upper dir).
/// Whether overlayfs can take `path` in its mount options (no `,`, `:` or `\`).
pub fn overlay_path_ok(path: &Path) -> bool {
    !path
        .as_os_str()
        .as_bytes()
        .iter()
        .any(|b| matches!(b, b',' | b':' | b'\\'))
}

fn overlay_options(lower: &Path, upper: &Path, work: &Path) -> Result<CString, SandboxError> {
    for p in [lower, upper, work] {
        if !overlay_path_ok(p) {
            return Err(SandboxError::Config(format!(
                "overlayfs cannot take a path containing `,`, `:` or `\\`: {} (use the copy shadow)",
                p.display()
            )));
        }
    }
    let s = format!(
        "lowerdir={},upperdir={},workdir={},userxattr",
        lower.display(),
        upper.display(),
        work.display()
    );
    CString::new(s).map_err(|_| SandboxError::Config("overlay options contain NUL".into()))
}

pub(crate) fn test_no_overlay() -> bool {
    std::env::var_os("AIRLOCK_TEST_NO_OVERLAY").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Whether an unprivileged overlayfs mount works here, tried for real in a throwaway child
/// (user + mount namespace, overlay over a scratch dir, a write through it). `scratch` must be
/// on the filesystem the upper dir will live on; its content is removed afterwards.
pub fn overlay_works(scratch: &Path) -> bool {
    if test_no_overlay() || crate::probe::test_no_userns() {
        return false;
    }
    let result = try_overlay(scratch);
    let _ = std::fs::remove_dir_all(scratch);
    result.unwrap_or(false)
}

fn try_overlay(scratch: &Path) -> Result<bool, SandboxError> {
    let lower = scratch.join("lower");
    let upper = scratch.join("upper");
    let work = scratch.join("work");
    for d in [&lower, &upper, &work] {
        std::fs::create_dir_all(d).map_err(io("create overlay probe dir", d))?;
    }
    let options = overlay_options(&lower, &upper, &work)?;
    let target = cstr(&lower)?;
    let probe_file = cstr(&lower.join("probe"))?;
    let uid_map = format!("{0} {0} 1", unsafe { libc::geteuid() });
    let gid_map = format!("{0} {0} 1", unsafe { libc::getegid() });
    // SAFETY: the child only makes raw syscalls on memory prepared before the fork.
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            return Ok(false);
        }
        if pid == 0 {
            let ok = libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) == 0
                && raw_write(c"/proc/self/setgroups", b"deny")
                && raw_write(c"/proc/self/uid_map", uid_map.as_bytes())
                && raw_write(c"/proc/self/gid_map", gid_map.as_bytes())
                && libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) == 0
                && libc::mount(
                    c"overlay".as_ptr(),
                    target.as_ptr(),
                    c"overlay".as_ptr(),
                    0,
                    options.as_ptr().cast(),
                ) == 0
                && raw_write(probe_file.as_c_str(), b"x");
            libc::_exit(if ok { 0 } else { 1 });
        }
        let mut status = 0;
        while libc::waitpid(pid, &mut status, 0) < 0 {
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return Ok(false);
            }
        }
        // The write must have landed in the upper dir, not in the lower one.
        Ok(libc::WIFEXITED(status)
            && libc::WEXITSTATUS(status) == 0
            && upper.join("probe").exists()
            && !lower.join("probe").exists())
    }
}

unsafe fn raw_write(path: &std::ffi::CStr, data: &[u8]) -> bool {
    // SAFETY: valid path; data outlives the call.
    unsafe {
        let fd = libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o600,
        );
        if fd < 0 {
            return false;
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        libc::close(fd);
        n == data.len() as isize
    }
}

/// What a copy of the workspace cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub files: u64,
    pub bytes: u64,
    /// Files shared with the original through `FICLONE` (no data copied).
    pub reflinked: u64,
}

/// Copies `real` to `copy` (which must not exist), skipping [`COPY_SKIPPED_DIRS`] at the top
/// level, reflinking where the filesystem allows it. Symlinks are copied as links; special
/// files are skipped. Permissions are kept.
pub fn create_copy(real: &Path, copy: &Path) -> Result<CopyStats, SandboxError> {
    let mut stats = CopyStats::default();
    std::fs::create_dir_all(copy).map_err(io("create shadow copy", copy))?;
    copy_dir(real, copy, true, &mut stats)?;
    Ok(stats)
}

fn copy_dir(src: &Path, dst: &Path, top: bool, stats: &mut CopyStats) -> Result<(), SandboxError> {
    let entries = std::fs::read_dir(src).map_err(io("read dir for the shadow copy", src))?;
    for entry in entries {
        let entry = entry.map_err(io("read dir for the shadow copy", src))?;
        let name = entry.file_name();
        if top
            && COPY_SKIPPED_DIRS
                .iter()
                .any(|d| name.as_bytes() == d.as_bytes())
        {
            continue;
        }
        let from = entry.path();
        let to = dst.join(&name);
        let meta = std::fs::symlink_metadata(&from).map_err(io("stat", &from))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&to).map_err(io("create dir in the shadow copy", &to))?;
            copy_dir(&from, &to, false, stats)?;
            let _ = std::fs::set_permissions(&to, meta.permissions());
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&from).map_err(io("read link", &from))?;
            std::os::unix::fs::symlink(target, &to).map_err(io("copy link", &to))?;
        } else if ft.is_file() {
            if copy_file(&from, &to, &meta)? {
                stats.reflinked += 1;
            }
            stats.files += 1;
            stats.bytes += meta.len();
        }
    }
    Ok(())
}

/// Copies one file, sharing its blocks (`FICLONE`) where possible; true if it was reflinked.
pub fn copy_file(from: &Path, to: &Path, meta: &std::fs::Metadata) -> Result<bool, SandboxError> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let src = std::fs::File::open(from).map_err(io("open for the shadow copy", from))?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(meta.mode() & 0o7777)
        .open(to)
        .map_err(io("create in the shadow copy", to))?;
    const FICLONE: libc::c_ulong = 0x4004_9409;
    // SAFETY: both fds are open for the duration of the call.
    let cloned = unsafe { libc::ioctl(dst.as_raw_fd(), FICLONE as _, src.as_raw_fd()) } == 0;
    if !cloned {
        let mut src = src;
        // std::io::copy uses copy_file_range/sendfile on Linux.
        std::io::copy(&mut src, &mut dst).map_err(io("copy into the shadow copy", to))?;
    }
    Ok(cloned)
}

/// One file's state in a shadow, as seen from outside it (the server's side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file with this content.
    File(Vec<u8>),
    /// Not there (deleted by the agent, or never existed).
    Missing,
    /// Something else (a directory, a link, a special file): not previewed.
    Other,
}

/// The paths an overlay's upper dir says the agent changed, relative to the workspace, with
/// what the shadow now has there. A whiteout (char device 0:0) is a deletion; a directory
/// marked opaque (`user.overlay.opaque`) hides everything of the lower dir below it, so those
/// lower files are reported deleted too. Directories themselves are not reported.
/// Top-level entries in `skip` (build output, `.git`) are not walked.
pub fn overlay_changes(upper: &Path, lower: &Path, skip: &[&str]) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(upper) else {
        return out;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if skip.iter().any(|s| name.as_bytes() == s.as_bytes()) {
            continue;
        }
        walk_one(upper, lower, Path::new(&name), &mut out);
    }
    out
}

fn walk_upper(upper: &Path, lower: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
    let dir = upper.join(rel);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        walk_one(upper, lower, &rel.join(entry.file_name()), out);
    }
}

fn walk_one(upper: &Path, lower: &Path, rel_path: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
    let rel_path = rel_path.to_path_buf();
    let path = upper.join(&rel_path);
    {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            return;
        };
        let ft = meta.file_type();
        if ft.is_char_device() && meta.rdev() == 0 {
            // Whiteout: the file (or a whole dir) of the lower layer is deleted.
            let below = lower.join(&rel_path);
            if below.is_dir() {
                for f in lower_files(lower, &rel_path) {
                    out.insert(f, Entry::Missing);
                }
            } else {
                out.insert(rel_path, Entry::Missing);
            }
        } else if ft.is_dir() {
            if is_opaque(&path) {
                for f in lower_files(lower, &rel_path) {
                    out.entry(f).or_insert(Entry::Missing);
                }
            }
            walk_upper(upper, lower, &rel_path, out);
        } else if ft.is_file() {
            match std::fs::read(&path) {
                Ok(bytes) => out.insert(rel_path, Entry::File(bytes)),
                Err(_) => out.insert(rel_path, Entry::Other),
            };
        } else {
            out.insert(rel_path, Entry::Other);
        }
    }
}

fn is_opaque(dir: &Path) -> bool {
    let Ok(path) = cstr(dir) else { return false };
    let mut buf = [0u8; 4];
    for name in [c"user.overlay.opaque", c"trusted.overlay.opaque"] {
        // SAFETY: valid path and name; buf is large enough for "y".
        let n = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n > 0 && buf[0] == b'y' {
            return true;
        }
    }
    false
}

/// Every regular file below `root/rel`, relative to `root`.
pub fn lower_files(root: &Path, rel: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![rel.to_path_buf()];
    while let Some(r) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&r)) else {
            continue;
        };
        for e in entries.flatten() {
            let p = r.join(e.file_name());
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out
}

/// Reads one path of a shadow copy or of the real workspace.
pub fn read_entry(path: &Path) -> Entry {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => std::fs::read(path).map_or(Entry::Other, Entry::File),
        Ok(_) => Entry::Other,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Entry::Missing,
        Err(_) => Entry::Other,
    }
}

/// A cheap fingerprint of a file (size, mtime, inode) to notice changes without reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub len: u64,
    pub mtime_ns: i128,
    pub ino: u64,
}

impl Stamp {
    pub fn of(path: &Path) -> Option<Stamp> {
        let m = std::fs::symlink_metadata(path).ok()?;
        Some(Stamp {
            len: m.len(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            ino: m.ino(),
        })
    }
}

/// Fingerprints of every regular file below `root` (skipping [`COPY_SKIPPED_DIRS`] at the top
/// and `.git`), relative to it: the baseline a copy shadow is compared against.
pub fn stamps(root: &Path) -> BTreeMap<PathBuf, Stamp> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(r) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&r)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if r.as_os_str().is_empty()
                && (COPY_SKIPPED_DIRS
                    .iter()
                    .any(|d| name.as_bytes() == d.as_bytes())
                    || name == ".git")
            {
                continue;
            }
            let p = r.join(&name);
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => {
                    if let Some(s) = Stamp::of(&root.join(&p)) {
                        out.insert(p, s);
                    }
                }
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn copy_keeps_content_and_skips_build_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir_all(real.join("src")).unwrap();
        std::fs::create_dir_all(real.join("target/debug")).unwrap();
        std::fs::write(real.join("src/lib.rs"), "fn a() {}\n").unwrap();
        std::fs::write(real.join("target/debug/big"), "x").unwrap();
        let copy = dir.path().join("copy");
        let stats = create_copy(&real, &copy).unwrap();
        assert_eq!(stats.files, 1);
        assert_eq!(
            std::fs::read_to_string(copy.join("src/lib.rs")).unwrap(),
            "fn a() {}\n"
        );
        assert!(!copy.join("target").exists());
        let s = stamps(&copy);
        assert_eq!(s.keys().collect::<Vec<_>>(), vec![Path::new("src/lib.rs")]);
    }

    #[test]
    fn overlay_refuses_paths_its_options_cannot_carry() {
        assert!(overlay_path_ok(Path::new("/home/me/project")));
        for bad in ["/a,b", "/a:b", "/a\\b"] {
            assert!(!overlay_path_ok(Path::new(bad)), "{bad}");
        }
    }

    #[test]
    fn overlay_changes_reads_files_and_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        let lower = dir.path().join("lower");
        let upper = dir.path().join("upper");
        std::fs::create_dir_all(lower.join("d")).unwrap();
        std::fs::create_dir_all(upper.join("d")).unwrap();
        std::fs::write(lower.join("d/old"), "old").unwrap();
        std::fs::write(upper.join("d/new"), "new").unwrap();
        let changes = overlay_changes(&upper, &lower, &[]);
        assert_eq!(
            changes.get(Path::new("d/new")),
            Some(&Entry::File(b"new".to_vec()))
        );
        assert!(!changes.contains_key(Path::new("d/old")));
    }
}
