//! Raw system calls for the code that runs in the spawn path's children.
//!
//! Those children share the caller's memory (`CLONE_VM`) and, not having a thread of their
//! own, its thread pointer: libc's wrappers would store `errno` into the *calling thread's*
//! thread-local slot while that thread keeps running, and some take locks. These wrappers
//! are one instruction each and return `-errno` instead.

#![allow(clippy::too_many_arguments)]

use std::ffi::CStr;

/// `syscall(nr, a0..a5)`; a result in `-4095..0` is `-errno`.
#[inline(always)]
pub(crate) unsafe fn sys6(
    nr: libc::c_long,
    a0: usize,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    a5: usize,
) -> isize {
    let ret: isize;
    // SAFETY: the caller passes arguments valid for `nr`; the instruction only clobbers what
    // is declared.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a0,
            in("rsi") a1,
            in("rdx") a2,
            in("r10") a3,
            in("r8") a4,
            in("r9") a5,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    #[cfg(target_arch = "aarch64")]
    unsafe {
        std::arch::asm!(
            "svc 0",
            in("x8") nr,
            inlateout("x0") a0 as isize => ret,
            in("x1") a1,
            in("x2") a2,
            in("x3") a3,
            in("x4") a4,
            in("x5") a5,
            options(nostack),
        );
    }
    #[cfg(target_arch = "riscv64")]
    unsafe {
        std::arch::asm!(
            "ecall",
            in("a7") nr,
            inlateout("a0") a0 as isize => ret,
            in("a1") a1,
            in("a2") a2,
            in("a3") a3,
            in("a4") a4,
            in("a5") a5,
            options(nostack),
        );
    }
    ret
}

#[inline(always)]
pub(crate) unsafe fn sys(nr: libc::c_long, a0: usize, a1: usize, a2: usize, a3: usize) -> isize {
    // SAFETY: forwarded.
    unsafe { sys6(nr, a0, a1, a2, a3, 0, 0) }
}

/// The errno of a failed call (0 if it succeeded).
#[inline(always)]
pub(crate) fn err(r: isize) -> i32 {
    if (-4095..0).contains(&r) {
        -r as i32
    } else {
        0
    }
}

/// The kernel's `sigset_t` (64 signals) and `struct sigaction` on the supported targets.
pub(crate) type KSigset = u64;
const KSIGSET_SIZE: usize = 8;

#[repr(C)]
struct KSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: KSigset,
}

pub(crate) fn sigbit(sig: i32) -> KSigset {
    1u64 << (sig - 1)
}

pub(crate) unsafe fn sigprocmask(how: i32, set: &KSigset) -> isize {
    // SAFETY: set points to a kernel sigset; no old set is requested.
    unsafe {
        sys(
            libc::SYS_rt_sigprocmask,
            how as usize,
            set as *const KSigset as usize,
            0,
            KSIGSET_SIZE,
        )
    }
}

pub(crate) unsafe fn sigprocmask_old(how: i32, set: &KSigset, old: &mut KSigset) -> isize {
    // SAFETY: set and old point to kernel sigsets.
    unsafe {
        sys(
            libc::SYS_rt_sigprocmask,
            how as usize,
            set as *const KSigset as usize,
            old as *mut KSigset as usize,
            KSIGSET_SIZE,
        )
    }
}

/// Sets `sig` to `SIG_DFL` or `SIG_IGN` (never a handler: none can run here).
pub(crate) unsafe fn set_disposition(sig: i32, handler: libc::sighandler_t) -> isize {
    let act = KSigaction {
        handler,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: act is a valid kernel sigaction.
    unsafe {
        sys(
            libc::SYS_rt_sigaction,
            sig as usize,
            &act as *const KSigaction as usize,
            0,
            KSIGSET_SIZE,
        )
    }
}

pub(crate) unsafe fn sigtimedwait(
    set: &KSigset,
    info: &mut libc::siginfo_t,
    timeout: &libc::timespec,
) -> isize {
    // SAFETY: all pointers are valid for the call.
    unsafe {
        sys(
            libc::SYS_rt_sigtimedwait,
            set as *const KSigset as usize,
            info as *mut libc::siginfo_t as usize,
            timeout as *const libc::timespec as usize,
            KSIGSET_SIZE,
        )
    }
}

pub(crate) unsafe fn write(fd: i32, b: &[u8]) -> isize {
    // SAFETY: b is valid for b.len() bytes.
    unsafe {
        sys(
            libc::SYS_write,
            fd as usize,
            b.as_ptr() as usize,
            b.len(),
            0,
        )
    }
}

pub(crate) unsafe fn read(fd: i32, b: &mut [u8]) -> isize {
    // SAFETY: b is valid for b.len() bytes.
    unsafe {
        sys(
            libc::SYS_read,
            fd as usize,
            b.as_mut_ptr() as usize,
            b.len(),
            0,
        )
    }
}

pub(crate) unsafe fn open(path: &CStr, flags: i32) -> isize {
    // SAFETY: path is NUL-terminated.
    unsafe {
        sys(
            libc::SYS_openat,
            libc::AT_FDCWD as usize,
            path.as_ptr() as usize,
            flags as usize,
            0,
        )
    }
}

pub(crate) unsafe fn close(fd: i32) -> isize {
    // SAFETY: plain close.
    unsafe { sys(libc::SYS_close, fd as usize, 0, 0, 0) }
}

pub(crate) unsafe fn close_range(first: u32, last: u32, flags: u32) -> isize {
    // SAFETY: no pointers.
    unsafe {
        sys(
            libc::SYS_close_range,
            first as usize,
            last as usize,
            flags as usize,
            0,
        )
    }
}

pub(crate) unsafe fn prctl(op: i32, a: usize) -> isize {
    // SAFETY: callers only use options with integer arguments.
    unsafe { sys(libc::SYS_prctl, op as usize, a, 0, 0) }
}

pub(crate) unsafe fn getppid() -> i32 {
    // SAFETY: no arguments.
    unsafe { sys(libc::SYS_getppid, 0, 0, 0, 0) as i32 }
}

pub(crate) unsafe fn kill(pid: i32, sig: i32) -> isize {
    // SAFETY: no pointers.
    unsafe { sys(libc::SYS_kill, pid as isize as usize, sig as usize, 0, 0) }
}

/// `wait4(pid, &status, options, NULL)`.
pub(crate) unsafe fn wait(pid: i32, status: &mut i32, options: i32) -> isize {
    // SAFETY: status is a valid int.
    unsafe {
        sys(
            libc::SYS_wait4,
            pid as isize as usize,
            status as *mut i32 as usize,
            options as usize,
            0,
        )
    }
}

pub(crate) unsafe fn exit(code: i32) -> ! {
    // SAFETY: exit_group ends this process (not the caller: we are not in its thread group).
    unsafe {
        sys(libc::SYS_exit_group, code as usize, 0, 0, 0);
    }
    #[allow(clippy::empty_loop)]
    loop {}
}

pub(crate) unsafe fn dup2(old: i32, new: i32) -> isize {
    // SAFETY: no pointers. dup3 with no flags (dup2 is absent on aarch64); dup3 refuses
    // old == new, where only close-on-exec must be cleared.
    unsafe {
        if old == new {
            return sys(libc::SYS_fcntl, old as usize, libc::F_SETFD as usize, 0, 0);
        }
        sys(libc::SYS_dup3, old as usize, new as usize, 0, 0)
    }
}

pub(crate) unsafe fn chdir(path: &CStr) -> isize {
    // SAFETY: path is NUL-terminated.
    unsafe { sys(libc::SYS_chdir, path.as_ptr() as usize, 0, 0, 0) }
}

pub(crate) unsafe fn mount(
    src: *const libc::c_char,
    dst: *const libc::c_char,
    flags: libc::c_ulong,
) -> isize {
    // SAFETY: src/dst are NUL-terminated or null; no fs type, no data.
    unsafe {
        sys6(
            libc::SYS_mount,
            src as usize,
            dst as usize,
            0,
            flags as usize,
            0,
            0,
        )
    }
}
