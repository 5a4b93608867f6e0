//! Landlock rules: directory handles opened once in [`LandlockPlan::new`], rulesets built from
//! them with one raw `landlock_add_rule` per handle: once per sandbox where user namespaces
//! work (each command's mount namespace shows only its own TMPDIR), per command otherwise (so
//! that each command's private TMPDIR is the only one it can reach).

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use landlock::{ABI, Access, AccessFs, AccessNet, BitFlags, Scope};

use crate::SandboxError;

/// System directories that are readable and executable (missing ones are skipped).
pub const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/opt",
    "/proc",
    "/sys",
    "/nix/store",
];

/// Device nodes usable for reading and writing. `/dev` as a whole is not granted: `/dev/shm`
/// must stay out of reach.
pub const DEV_RW: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/tty",
    "/dev/ptmx",
];
pub const DEV_READ: &[&str] = &["/dev/random", "/dev/urandom"];

/// Files under `/etc` that only root can read; a sandbox started as root must not read them
/// (root keeps owning them after its capabilities are dropped).
const ETC_ROOT_SECRETS: &[&str] = &[
    "shadow",
    "shadow-",
    "gshadow",
    "gshadow-",
    "sudoers",
    "sudoers.d",
    "ssh",
    "ssl/private",
    "security/opasswd",
];

/// Credential files inside toolchain directories that stay unreadable.
pub const TOOLCHAIN_SECRETS: &[&str] = &[
    "credentials.toml",
    "credentials",
    ".credentials.toml",
    "registry/credentials.toml",
];

pub(crate) struct Handle {
    pub fd: OwnedFd,
    pub access: BitFlags<AccessFs>,
    #[allow(dead_code)]
    pub path: PathBuf,
}

/// Everything needed to build a ruleset quickly.
pub(crate) struct LandlockPlan {
    pub abi: ABI,
    pub handles: Vec<Handle>,
    pub tcp_ports: Vec<u16>,
}

pub(crate) fn open_path(path: &Path) -> std::io::Result<OwnedFd> {
    let f = File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(path)?;
    Ok(f.into())
}

/// Like [`open_path`] but refuses a symlink in the last component.
pub(crate) fn open_path_nofollow(path: &Path) -> std::io::Result<OwnedFd> {
    let f = File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)?;
    Ok(f.into())
}

impl LandlockPlan {
    pub fn new(abi_num: i32, tcp_ports: &[u16]) -> LandlockPlan {
        LandlockPlan {
            abi: ABI::from(abi_num),
            handles: Vec::new(),
            tcp_ports: tcp_ports.to_vec(),
        }
    }

    pub fn read_exec(&self) -> BitFlags<AccessFs> {
        AccessFs::from_read(self.abi)
    }

    pub fn all(&self) -> BitFlags<AccessFs> {
        AccessFs::from_all(self.abi)
    }

    /// Adds a rule for `path` if it exists; rights that make no sense on a file are dropped.
    pub fn add(&mut self, path: &Path, access: BitFlags<AccessFs>) -> Result<(), SandboxError> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            // Missing or unreachable for this user: nothing to grant.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                return Ok(());
            }
            Err(e) => return Err(SandboxError::io("cannot stat sandbox path", path, e)),
        };
        let access = if meta.is_dir() {
            access
        } else {
            access & AccessFs::from_file(self.abi)
        };
        let fd =
            open_path(path).map_err(|e| SandboxError::io("cannot open sandbox path", path, e))?;
        self.handles.push(Handle {
            fd,
            access,
            path: path.to_path_buf(),
        });
        Ok(())
    }

    /// System dirs, device nodes and, when running as root, `/etc` minus root-only secrets.
    pub fn add_system(&mut self) -> Result<(), SandboxError> {
        let rx = self.read_exec();
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        for p in SYSTEM_READ {
            if root && *p == "/etc" {
                self.add_excluding(Path::new(p), Path::new(""), ETC_ROOT_SECRETS, rx)?;
                continue;
            }
            self.add(Path::new(p), rx)?;
        }
        let dev_rw = AccessFs::ReadFile | AccessFs::WriteFile;
        let extra = if self.abi as i32 >= 3 {
            BitFlags::from(AccessFs::Truncate)
        } else {
            BitFlags::EMPTY
        };
        let ioctl = if self.abi as i32 >= 5 {
            BitFlags::from(AccessFs::IoctlDev)
        } else {
            BitFlags::EMPTY
        };
        for p in DEV_RW {
            self.add(Path::new(p), dev_rw | extra | ioctl)?;
        }
        for p in DEV_READ {
            self.add(Path::new(p), BitFlags::from(AccessFs::ReadFile))?;
        }
        // The caller's terminal, if any: stdin/stdout are inherited anyway, but tools reopen it.
        for fd in 0..3 {
            if let Some(tty) = tty_path(fd) {
                self.add(&tty, dev_rw | extra | ioctl)?;
            }
        }
        Ok(())
    }

    /// Grants `dir` entry by entry, skipping `excluded` (paths relative to `dir`) and
    /// recursing only into directories that contain one.
    fn add_excluding(
        &mut self,
        dir: &Path,
        rel: &Path,
        excluded: &[&str],
        access: BitFlags<AccessFs>,
    ) -> Result<(), SandboxError> {
        let entries = std::fs::read_dir(dir.join(rel))
            .map_err(|e| SandboxError::io("cannot list", dir, e))?;
        for entry in entries.flatten() {
            let r = rel.join(entry.file_name());
            if excluded.iter().any(|s| Path::new(s) == r) {
                continue;
            }
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() && excluded.iter().any(|s| Path::new(s).starts_with(&r)) {
                self.add_excluding(dir, &r, excluded, access)?;
            } else if ft.is_symlink() {
                self.add(&entry.path(), access)?;
            } else {
                // The directory entry already says what it is: no stat needed (this runs for
                // every entry of /etc when started as root).
                let path = entry.path();
                let Ok(fd) = open_path_nofollow(&path) else {
                    continue;
                };
                let access = if ft.is_dir() {
                    access
                } else {
                    access & AccessFs::from_file(self.abi)
                };
                self.handles.push(Handle { fd, access, path });
            }
        }
        Ok(())
    }

    /// Read+execute on a toolchain directory, minus the credential files tools keep there
    /// (`~/.cargo/credentials.toml` holds the crates.io token).
    pub fn add_read(&mut self, path: &Path) -> Result<(), SandboxError> {
        let rx = self.read_exec();
        let present: Vec<&str> = TOOLCHAIN_SECRETS
            .iter()
            .copied()
            .filter(|s| std::fs::symlink_metadata(path.join(s)).is_ok())
            .collect();
        if present.is_empty() || !path.is_dir() {
            return self.add(path, rx);
        }
        self.add_excluding(path, Path::new(""), &present, rx)
    }

    /// Builds a ruleset fd from the handles plus per-command `extra` handles.
    ///
    /// Raw `landlock_create_ruleset`/`landlock_add_rule` calls: the crate's `add_rule` checks
    /// each handle with an `fstat` (file or directory?), which [`LandlockPlan::add`] already
    /// settled when it masked the rights, and a root sandbox has ~150 handles (`/etc` entry
    /// by entry).
    pub fn build(
        &self,
        extra: &[(BorrowedFd<'_>, BitFlags<AccessFs>)],
    ) -> Result<OwnedFd, SandboxError> {
        let abi = self.abi as i32;
        let attr = RulesetAttr {
            handled_access_fs: AccessFs::from_all(self.abi).bits(),
            handled_access_net: if abi >= 4 {
                AccessNet::from_all(self.abi).bits()
            } else {
                0
            },
            scoped: if abi >= 6 {
                Scope::from_all(self.abi).bits()
            } else {
                0
            },
        };
        // The kernel accepts the struct up to the fields its ABI knows.
        let size = match abi {
            ..=3 => 8,
            4 | 5 => 16,
            _ => std::mem::size_of::<RulesetAttr>(),
        };
        // SAFETY: attr is a valid landlock_ruleset_attr of at least `size` bytes.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                size,
                0u32,
            )
        };
        if fd < 0 {
            return Err(SandboxError::Landlock(format!(
                "landlock_create_ruleset: {}",
                std::io::Error::last_os_error()
            )));
        }
        // SAFETY: a fresh fd returned by the kernel, now owned here.
        let ruleset = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        let add = |kind: u32, attr: *const libc::c_void, what: &dyn Fn() -> String| {
            // SAFETY: attr points to the rule attribute matching `kind`.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_landlock_add_rule,
                    ruleset.as_raw_fd(),
                    kind,
                    attr,
                    0u32,
                )
            };
            if r != 0 {
                return Err(SandboxError::Landlock(format!(
                    "landlock_add_rule ({}): {}",
                    what(),
                    std::io::Error::last_os_error()
                )));
            }
            Ok(())
        };
        let handles = self.handles.iter().map(|h| (h.fd.as_fd(), h.access));
        for (fd, access) in handles.chain(extra.iter().copied()) {
            if access.is_empty() {
                continue;
            }
            let rule = PathBeneathAttr {
                allowed_access: access.bits(),
                parent_fd: fd.as_raw_fd(),
            };
            add(
                LANDLOCK_RULE_PATH_BENEATH,
                &rule as *const PathBeneathAttr as *const libc::c_void,
                &|| {
                    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|_| format!("fd {}", fd.as_raw_fd()))
                },
            )?;
        }
        if abi >= 4 {
            for port in &self.tcp_ports {
                let rule = NetPortAttr {
                    allowed_access: AccessNet::ConnectTcp as u64,
                    port: u64::from(*port),
                };
                add(
                    LANDLOCK_RULE_NET_PORT,
                    &rule as *const NetPortAttr as *const libc::c_void,
                    &|| format!("TCP port {port}"),
                )?;
            }
        }
        Ok(ruleset)
    }
}

/// `struct landlock_ruleset_attr` (uapi/linux/landlock.h).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

const LANDLOCK_RULE_PATH_BENEATH: u32 = 1;
const LANDLOCK_RULE_NET_PORT: u32 = 2;

/// `struct landlock_path_beneath_attr`, packed in the uapi header.
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// `struct landlock_net_port_attr`.
#[repr(C)]
struct NetPortAttr {
    allowed_access: u64,
    port: u64,
}

fn tty_path(fd: i32) -> Option<PathBuf> {
    // SAFETY: isatty only inspects the fd.
    if unsafe { libc::isatty(fd) } != 1 {
        return None;
    }
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .ok()
        .filter(|p| p.starts_with("/dev/pts/") || p.starts_with("/dev/tty"))
}
