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
