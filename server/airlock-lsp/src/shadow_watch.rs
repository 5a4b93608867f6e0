//! An inotify watcher for the shadow workspace (`handlers/shadow.rs`): watches a directory tree
//! on its own thread, records the paths each burst of events names, and reports the burst.
//!
//! Guarantees: a burst is reported once it is over (no event for [`QUIET`]) or after
//! [`MAX_SETTLE`]; when the events can't name every change (a directory appeared, moved or went;
//! the kernel's queue overflowed) the burst is marked `full`, so the consumer looks at
//! everything. New directories are watched as they appear.

use std::collections::{BTreeSet, HashMap};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Paths (relative to the watched dir) named by events since the consumer last took them.
/// `full` when the events can't be trusted to name every change (a directory appeared, moved
/// or went; the event queue overflowed): then the consumer looks at everything.
#[derive(Default)]
pub struct Dirty {
    pub paths: BTreeSet<PathBuf>,
    pub full: bool,
}

/// Watches every directory below `dir` except the top-level `skip` ones, on its own thread
/// until `stop` is set: each burst of events is recorded in `dirty` and then `fire` is called.
pub fn watch(
    dir: PathBuf,
    skip: &[&str],
    dirty: Arc<Mutex<Dirty>>,
    stop: Arc<AtomicBool>,
    fire: impl Fn() + Send + 'static,
) -> std::io::Result<()> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned here.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let mut watches = Watches::new(fd, &dir, skip, dirty);
    watches.add_tree(&dir);
    std::thread::Builder::new()
        .name("airlock-shadow-watch".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while !stop.load(Ordering::Relaxed) {
                if !watches.wait(Duration::from_millis(250)) {
                    continue;
                }
                // Report once the burst is over (a temp file and its rename come within
                // microseconds), or after MAX_SETTLE under a steady stream of writes.
                let first = std::time::Instant::now();
                loop {
                    watches.drain(&mut buf);
                    if first.elapsed() >= MAX_SETTLE || !watches.wait(QUIET) {
                        break;
                    }
                }
                fire();
            }
        })?;
    Ok(())
}

/// No event for this long ends a burst.
const QUIET: Duration = Duration::from_millis(2);
/// A burst is swept after this long at the latest.
const MAX_SETTLE: Duration = Duration::from_millis(30);

struct Watches {
    fd: OwnedFd,
    dirs: HashMap<i32, PathBuf>,
    /// Not watched (a build in `target/` would flood the watch with events).
    skip: Vec<PathBuf>,
    root: PathBuf,
    dirty: Arc<Mutex<Dirty>>,
}

const WATCH_MASK: u32 = libc::IN_CREATE
    | libc::IN_CLOSE_WRITE
    | libc::IN_MODIFY
    | libc::IN_MOVED_TO
    | libc::IN_MOVED_FROM
    | libc::IN_DELETE
    | libc::IN_ATTRIB
    | libc::IN_ONLYDIR;

impl Watches {
    fn new(fd: OwnedFd, root: &Path, skip: &[&str], dirty: Arc<Mutex<Dirty>>) -> Watches {
        Watches {
            fd,
            dirs: HashMap::new(),
            skip: skip.iter().map(|d| root.join(d)).collect(),
            root: root.to_path_buf(),
            dirty,
        }
    }

    fn add_tree(&mut self, dir: &Path) {
        use std::os::fd::AsRawFd;
        use std::os::unix::ffi::OsStrExt;
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            if self.skip.contains(&d) {
                continue;
            }
            let Ok(c) = std::ffi::CString::new(d.as_os_str().as_bytes()) else {
                continue;
            };
            // SAFETY: valid fd and path.
            let wd =
                unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), WATCH_MASK) };
            if wd < 0 {
                continue;
            }
            self.dirs.insert(wd, d.clone());
            if let Ok(entries) = std::fs::read_dir(&d) {
                for e in entries.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(e.path());
                    }
                }
            }
        }
    }

    /// Waits for events; true if there are some.
    fn wait(&self, timeout: Duration) -> bool {
        use std::os::fd::AsRawFd;
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) > 0 }
    }

    /// Reads every queued event; new directories get watches of their own.
    fn drain(&mut self, buf: &mut [u8]) {
        use std::os::fd::AsRawFd;
        loop {
            // SAFETY: buf is valid for its length.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return;
            }
            let n = n as usize;
            let mut new_dirs = Vec::new();
            let mut named = Vec::new();
            let mut full = false;
            let mut off = 0;
            let header = std::mem::size_of::<libc::inotify_event>();
            while off + header <= n {
                // SAFETY: the kernel wrote a whole event at `off`; read_unaligned copes with
                // the byte buffer's alignment.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf[off..].as_ptr().cast()) };
                let name_start = off + header;
                let name_end = (name_start + ev.len as usize).min(n);
                off = name_end;
                if ev.mask & libc::IN_Q_OVERFLOW != 0 {
                    full = true;
                    continue;
                }
                let Some(parent) = self.dirs.get(&ev.wd) else {
                    continue;
                };
                let raw = &buf[name_start..name_end];
                let name = raw.split(|b| *b == 0).next().unwrap_or_default();
                use std::os::unix::ffi::OsStrExt;
                let path = parent.join(std::ffi::OsStr::from_bytes(name));
                if ev.mask & libc::IN_ISDIR != 0 {
                    if ev.mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0 {
                        new_dirs.push(path);
                    }
                    // A whole tree appeared or went: its files are not named one by one.
                    if ev.mask & (libc::IN_MOVED_TO | libc::IN_MOVED_FROM | libc::IN_DELETE) != 0 {
                        full = true;
                    }
                } else if let Ok(rel) = path.strip_prefix(&self.root) {
                    named.push(rel.to_path_buf());
                }
            }
            // Files created in a new directory before its watch existed are not named either.
            full |= !new_dirs.is_empty();
            for d in new_dirs {
                self.add_tree(&d);
            }
            if let Ok(mut dirty) = self.dirty.lock() {
                dirty.paths.extend(named);
                dirty.full |= full;
            }
        }
    }
}
