//! The seccomp denylist, compiled once in the parent and installed in each child.
//!
//! Two filters: one returning `EPERM` for dangerous calls, one returning `ENOSYS` for calls
//! whose callers have a fallback (`clone3` → glibc falls back to `clone`, whose flags we *can*
//! inspect; `io_uring_*`; `openat2` when Landlock can't control truncation).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op,
    SeccompCondition as Cond, SeccompFilter, SeccompRule, TargetArch,
};

use crate::SandboxError;

/// What the filter must additionally cover because Landlock can't.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeccompNeeds {
    /// Landlock lacks TCP rules (ABI < 4): block IPv4/IPv6 sockets entirely.
    pub block_inet: bool,
    /// Landlock lacks TRUNCATE (ABI < 3): block truncate(2), O_TRUNC opens without write access.
    pub block_truncate: bool,
    /// Landlock can't restrict connecting to pathname unix sockets (ABI < 9): no
    /// `socket(AF_UNIX)` at all (`socketpair` stays allowed for in-sandbox IPC).
    pub block_unix: bool,
}

pub(crate) struct Filters {
    pub eperm: BpfProgram,
    pub enosys: BpfProgram,
}

fn arch() -> Result<TargetArch, SandboxError> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| SandboxError::Seccomp(format!("unsupported architecture: {e}")))
}

fn cond(arg: u8, len: Len, op: Op, val: u64) -> Result<Cond, SandboxError> {
    Cond::new(arg, len, op, val).map_err(|e| SandboxError::Seccomp(e.to_string()))
}

fn rule(conds: Vec<Cond>) -> Result<SeccompRule, SandboxError> {
    SeccompRule::new(conds).map_err(|e| SandboxError::Seccomp(e.to_string()))
}

pub(crate) fn compile(needs: SeccompNeeds) -> Result<Filters, SandboxError> {
    let arch = arch()?;
    let mut deny: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let always: &[libc::c_long] = &[
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_mount_setattr,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_quotactl,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_reboot,
        libc::SYS_acct,
        libc::SYS_syslog,
        libc::SYS_userfaultfd,
        libc::SYS_name_to_handle_at,
        libc::SYS_open_by_handle_at,
        libc::SYS_pidfd_getfd,
        libc::SYS_personality,
        libc::SYS_lookup_dcookie,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_iopl,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_ioperm,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_uselib,
    ];
    for nr in always {
        deny.insert(*nr, vec![]);
    }

    // ioctl: terminal input injection. The kernel compares the low 32 bits of `cmd`.
    deny.insert(
        libc::SYS_ioctl,
        vec![
            rule(vec![cond(1, Len::Dword, Op::Eq, libc::TIOCSTI)?])?,
            rule(vec![cond(1, Len::Dword, Op::Eq, libc::TIOCLINUX)?])?,
        ],
    );

    // clone: no new namespaces (clone3 is ENOSYS below, so glibc uses clone).
    let ns_flags = [
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWNS,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWCGROUP,
        0x80, // CLONE_NEWTIME
    ];
    let mut clone_rules = Vec::new();
    for f in ns_flags {
        let f = f as u64;
        clone_rules.push(rule(vec![cond(0, Len::Qword, Op::MaskedEq(f), f)?])?);
    }
    deny.insert(libc::SYS_clone, clone_rules);

    // socket(domain, type, protocol): only AF_UNIX, and TCP over IPv4/IPv6.
    let unix = libc::AF_UNIX as u64;
    let inet = libc::AF_INET as u64;
    let inet6 = libc::AF_INET6 as u64;
    let mut sock_rules = vec![rule(vec![
        cond(0, Len::Dword, Op::Ne, unix)?,
        cond(0, Len::Dword, Op::Ne, inet)?,
        cond(0, Len::Dword, Op::Ne, inet6)?,
    ])?];
    if needs.block_unix {
        sock_rules.push(rule(vec![cond(0, Len::Dword, Op::Eq, unix)?])?);
    }
    for fam in [inet, inet6] {
        if needs.block_inet {
            sock_rules.push(rule(vec![cond(0, Len::Dword, Op::Eq, fam)?])?);
            continue;
        }
        // Any type other than SOCK_STREAM (UDP, raw, packet, …); the low 4 bits are the type.
        for ty in [
            libc::SOCK_DGRAM,
            libc::SOCK_RAW,
            libc::SOCK_RDM,
            libc::SOCK_SEQPACKET,
            6,  // SOCK_DCCP
            10, // SOCK_PACKET
        ] {
            sock_rules.push(rule(vec![
                cond(0, Len::Dword, Op::Eq, fam)?,
                cond(1, Len::Dword, Op::MaskedEq(0xf), ty as u64)?,
            ])?);
        }
        // SOCK_STREAM with a protocol other than TCP (SCTP, MPTCP) would bypass Landlock's TCP rules.
        sock_rules.push(rule(vec![
            cond(0, Len::Dword, Op::Eq, fam)?,
            cond(2, Len::Dword, Op::Ne, 0)?,
            cond(2, Len::Dword, Op::Ne, libc::IPPROTO_TCP as u64)?,
        ])?);
    }
    deny.insert(libc::SYS_socket, sock_rules);
    deny.insert(
        libc::SYS_socketpair,
        vec![rule(vec![cond(0, Len::Dword, Op::Ne, unix)?])?],
    );

    if needs.block_truncate {
        deny.insert(libc::SYS_truncate, vec![]);
        // O_TRUNC with O_RDONLY truncates on Linux, and ABI < 3 only checks READ_FILE for it.
        let trunc = libc::O_TRUNC as u64;
        let acc = libc::O_ACCMODE as u64;
        let rdonly_trunc = |arg: u8| -> Result<SeccompRule, SandboxError> {
            rule(vec![cond(
                arg,
                Len::Dword,
                Op::MaskedEq(trunc | acc),
                trunc | libc::O_RDONLY as u64,
            )?])
        };
        deny.insert(libc::SYS_openat, vec![rdonly_trunc(2)?]);
        #[cfg(target_arch = "x86_64")]
        deny.insert(libc::SYS_open, vec![rdonly_trunc(1)?]);
    }

    let eperm = SeccompFilter::new(
        deny,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| SandboxError::Seccomp(e.to_string()))?;

    let mut nosys: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for nr in [
        libc::SYS_clone3,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
    ] {
        nosys.insert(nr, vec![]);
    }
    if needs.block_truncate {
        nosys.insert(libc::SYS_openat2, vec![]);
    }
    let enosys = SeccompFilter::new(
        nosys,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(|e| SandboxError::Seccomp(e.to_string()))?;

    Ok(Filters {
        eperm: eperm
            .try_into()
            .map_err(|e: seccompiler::BackendError| SandboxError::Seccomp(e.to_string()))?,
        enosys: enosys
            .try_into()
            .map_err(|e: seccompiler::BackendError| SandboxError::Seccomp(e.to_string()))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile_for_every_kernel_variant() {
        for block_inet in [false, true] {
            for block_truncate in [false, true] {
                for block_unix in [false, true] {
                    let f = compile(SeccompNeeds {
                        block_inet,
                        block_truncate,
                        block_unix,
                    })
                    .expect("compile");
                    assert!(!f.eperm.is_empty() && !f.enosys.is_empty());
                    // The kernel refuses filters over 4096 instructions.
                    assert!(f.eperm.len() < 4096, "{}", f.eperm.len());
                    println!("eperm {} enosys {}", f.eperm.len(), f.enosys.len());
                }
            }
        }
    }
}
