//! What this kernel can enforce. Probing is cheap except for user namespaces, which are only
//! tried (in a throwaway child) when a caller asks for them.
//!
//! Test-only knobs (documented in docs/security.md; they can only *reduce* what is used, so
//! they never weaken a sandbox silently — a reduced ABI makes `prepare` fail closed or pick
//! the fallback path):
//! - `AIRLOCK_TEST_LANDLOCK_ABI=N` caps the Landlock ABI used (0 = pretend no Landlock).
//! - `AIRLOCK_TEST_NO_USERNS=1` pretends user namespaces are unavailable.

use std::sync::OnceLock;

/// Kernel features relevant to the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSupport {
    /// Landlock ABI the kernel reports (0 = none).
    pub landlock_abi_kernel: i32,
    /// ABI the sandbox will use: the kernel's, capped by `AIRLOCK_TEST_LANDLOCK_ABI`.
    pub landlock_abi: i32,
    /// The ABI was capped by the test knob.
    pub landlock_abi_capped: bool,
    pub seccomp: bool,
    /// Unprivileged user + mount namespaces work (tried for real: unshare, uid_map, bind mount).
    pub user_namespaces: bool,
    /// `AIRLOCK_TEST_NO_USERNS` is set.
    pub user_namespaces_disabled_by_test: bool,
    pub kernel_release: String,
}

impl KernelSupport {
    pub fn fs_truncate(&self) -> bool {
        self.landlock_abi >= 3
    }
    pub fn fs_refer(&self) -> bool {
        self.landlock_abi >= 2
    }
    pub fn net_tcp(&self) -> bool {
        self.landlock_abi >= 4
    }
    pub fn ioctl_dev(&self) -> bool {
        self.landlock_abi >= 5
    }
    pub fn scopes(&self) -> bool {
        self.landlock_abi >= 6
    }
}

/// Probes the kernel (user namespaces are tried in a child, once per process).
pub fn probe() -> KernelSupport {
    let mut k = probe_landlock_only();
    k.user_namespaces = userns_works();
    k
}

/// Probes everything except user namespaces (which needs a fork); `user_namespaces` is false.
pub(crate) fn probe_landlock_only() -> KernelSupport {
    let kernel = landlock_kernel_abi();
    let cap = std::env::var("AIRLOCK_TEST_LANDLOCK_ABI")
        .ok()
        .and_then(|v| v.trim().parse::<i32>().ok());
    let abi = match cap {
        Some(c) => kernel.min(c.max(0)),
        None => kernel,
    };
    KernelSupport {
        landlock_abi_kernel: kernel,
        landlock_abi: abi,
        landlock_abi_capped: cap.is_some(),
        seccomp: seccomp_available(),
        user_namespaces: false,
        user_namespaces_disabled_by_test: test_no_userns(),
        kernel_release: kernel_release(),
    }
}

pub(crate) fn test_no_userns() -> bool {
    std::env::var_os("AIRLOCK_TEST_NO_USERNS").is_some_and(|v| !v.is_empty() && v != "0")
}

fn landlock_kernel_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_ulong = 1;
    // SAFETY: the documented way to query the ABI: NULL attr, size 0, VERSION flag.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if r < 0 { 0 } else { r as i32 }
}

fn seccomp_available() -> bool {
    // SAFETY: PR_GET_SECCOMP has no pointer arguments.
    let r = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    r >= 0
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

static USERNS_UNUSABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the spawn path should try a user namespace (not disabled by the test knob and not
/// already seen failing in this process).
pub(crate) fn userns_allowed() -> bool {
    !test_no_userns() && !USERNS_UNUSABLE.load(std::sync::atomic::Ordering::Relaxed)
}

pub(crate) fn mark_userns_unusable() {
    USERNS_UNUSABLE.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Tries, in a forked child, exactly what the sandbox will do: unshare user+mount namespaces,
/// map our uid, and bind-mount a directory onto itself read-only. AppArmor's userns restriction
/// (Ubuntu ≥ 23.10) lets `unshare` succeed but denies the mount, so only a full try is honest.
pub(crate) fn userns_works() -> bool {
    if test_no_userns() {
        return false;
    }
    static CACHE: OnceLock<bool> = OnceLock::new();
    *CACHE.get_or_init(crate::spawn::try_userns_in_child)
}

/// One protection and how this kernel provides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protection {
    pub name: &'static str,
    /// Enforced by default on this kernel.
    pub active: bool,
    /// How (or why not).
    pub mechanism: String,
    /// The `--weaker-mode` flag needed to run without it, when it is not active.
    pub weaker_flag: Option<&'static str>,
}

impl KernelSupport {
    /// What `airlock exec` would enforce here, protection by protection.
    pub fn protections(&self) -> Vec<Protection> {
        let abi = self.landlock_abi;
        let p = |name, active, mechanism: String, weaker_flag| Protection {
            name,
            active,
            mechanism,
            weaker_flag,
        };
        let userns = self.user_namespaces;
        vec![
            p(
                "filesystem confinement",
                abi >= 1,
                if abi >= 1 {
                    format!("Landlock ABI {abi}")
                } else {
                    "no Landlock".into()
                },
                (abi < 1).then_some("no-landlock"),
            ),
            p(
                "truncate outside the workspace",
                abi >= 1,
                if abi >= 3 {
                    "Landlock TRUNCATE (ABI 3)".into()
                } else {
                    "seccomp: truncate(2), O_TRUNC read-only opens and openat2 denied".into()
                },
                None,
            ),
            p(
                "TCP connect/bind",
                true,
                if abi >= 4 {
                    "Landlock TCP rules (ABI 4) + seccomp".into()
                } else {
                    "seccomp: IPv4/IPv6 sockets denied entirely".into()
                },
                None,
            ),
            p(
                "UDP, raw and other socket families",
                self.seccomp,
                "seccomp".into(),
                None,
            ),
            p(
                "host unix sockets (pathname and abstract)",
                self.seccomp,
                if abi >= 9 {
                    "Landlock RESOLVE_UNIX (ABI 9) + abstract-socket scope (ABI 6)".into()
                } else {
                    "seccomp: socket(AF_UNIX) denied (socketpair allowed)".into()
                },
                None,
            ),
            p(
                "signals to processes outside",
                abi >= 6,
                if abi >= 6 {
                    "Landlock signal scope (ABI 6)".into()
                } else {
                    format!("needs Landlock ABI 6 (have {abi})")
                },
                (abi < 6).then_some("no-signal-scope"),
            ),
            p(
                "ptrace / process_vm / io_uring / mount / bpf / keyctl / TIOCSTI",
                self.seccomp,
                "seccomp denylist + Landlock ptrace scoping".into(),
                None,
            ),
            p(
                "protected paths (.git/hooks, .git/config, …)",
                true,
                if userns {
                    "read-only bind mounts in a user+mount namespace, plus snapshot check/restore"
                        .into()
                } else {
                    "snapshot before, check and restore after (no user namespaces: see docs/security.md)".into()
                },
                None,
            ),
            p(
                "deny-read files (.env*)",
                abi >= 1,
                if userns {
                    "covered by an empty read-only bind mount".into()
                } else {
                    "Landlock rules per directory entry (new files next to a denied one are write-only)".into()
                },
                None,
            ),
            p(
                "descendants killed when the command ends",
                true,
                "subreaper supervisor".into(),
                None,
            ),
            p(
                "no_new_privs, capabilities dropped, env scrubbed, fds closed",
                true,
                "always".into(),
                None,
            ),
        ]
    }
}
