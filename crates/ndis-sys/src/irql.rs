//! IRQL intrinsics. On x64 Windows KeGetCurrentIrql / KeRaiseIrql / KeLowerIrql are CR8 accesses
//! (FORCEINLINE in wdm.h, not imports). On arm64 Windows KeGetCurrentIrql, KfRaiseIrql and
//! KfLowerIrql are NTHALAPI routines, hal.dll exports, and KeRaiseIrql / KeLowerIrql are macros
//! over the Kf pair (INFERRED from public reconstructions of the arm64 wdm.h declarations and of
//! hal.dll's export table; evidence in xtask/known-exports/README.md), so the image imports exactly
//! those three from hal.dll, and the package verifier refuses them from any other module. On every
//! other target they call hooks that ndis-sim defines per virtual CPU.

use crate::types::*;

#[cfg(all(target_os = "windows", target_arch = "x86_64"))]
mod imp {
    use super::KIRQL;

    #[inline(always)]
    pub fn get() -> KIRQL {
        let v: u64;
        // SAFETY: reading CR8 (the task priority register) has no memory effects; kernel mode only,
        // which is where a driver runs.
        unsafe {
            core::arch::asm!("mov {}, cr8", out(reg) v, options(nomem, nostack, preserves_flags))
        };
        v as KIRQL
    }

    #[inline(always)]
    pub fn set(new: KIRQL) {
        // SAFETY: writing CR8 changes the IRQL exactly as KeRaiseIrql/KeLowerIrql do in wdm.h; the
        // callers keep raise/lower paired. Memory clobber keeps accesses on the right side of the change.
        unsafe {
            core::arch::asm!("mov cr8, {}", in(reg) new as u64, options(nostack, preserves_flags))
        };
    }
}

#[cfg(all(target_os = "windows", not(target_arch = "x86_64")))]
mod imp {
    use super::KIRQL;

    // NTHALAPI on arm64: hal.dll (see the module docs).
    #[link(name = "hal.dll", kind = "raw-dylib", modifiers = "+verbatim")]
    extern "system" {
        fn KeGetCurrentIrql() -> KIRQL;
        fn KfRaiseIrql(NewIrql: KIRQL) -> KIRQL;
        fn KfLowerIrql(NewIrql: KIRQL);
    }

    #[inline(always)]
    pub fn get() -> KIRQL {
        // SAFETY: KeGetCurrentIrql has no preconditions.
        unsafe { KeGetCurrentIrql() }
    }

    #[inline(always)]
    pub fn set(new: KIRQL) {
        // SAFETY: the wrappers in this module only raise above or lower back to a level the
        // caller previously observed, which is the documented use of these routines.
        unsafe {
            if new >= KeGetCurrentIrql() {
                KfRaiseIrql(new);
            } else {
                KfLowerIrql(new);
            }
        }
    }
}

#[cfg(not(target_os = "windows"))]
mod imp {
    use super::KIRQL;

    extern "system" {
        /// Defined by ndis-sim: the current virtual CPU's IRQL.
        fn MdlpoolSimGetIrql() -> KIRQL;
        /// Defined by ndis-sim: set the current virtual CPU's IRQL (raising to DISPATCH_LEVEL pins it).
        fn MdlpoolSimSetIrql(NewIrql: KIRQL);
    }

    #[inline(always)]
    pub fn get() -> KIRQL {
        // SAFETY: the hook has no preconditions; ndis-sim defines it for every test binary.
        unsafe { MdlpoolSimGetIrql() }
    }

    #[inline(always)]
    pub fn set(new: KIRQL) {
        // SAFETY: as above.
        unsafe { MdlpoolSimSetIrql(new) }
    }
}

/// `KeGetCurrentIrql()`. Any IRQL. Never use it to compute a *_DISPATCH_LEVEL flag (Flags_Irql rule).
#[inline(always)]
pub fn KeGetCurrentIrql() -> KIRQL {
    imp::get()
}

/// `KeRaiseIrql(NewIrql, &OldIrql)`: raises to `new` (which must be >= the current IRQL) and returns
/// the old IRQL for the matching [`KeLowerIrql`].
#[inline(always)]
pub fn KeRaiseIrql(new: KIRQL) -> KIRQL {
    let old = imp::get();
    if new > old {
        imp::set(new);
    }
    old
}

/// `KeRaiseIrqlToDpcLevel()`.
#[inline(always)]
pub fn KeRaiseIrqlToDpcLevel() -> KIRQL {
    KeRaiseIrql(DISPATCH_LEVEL)
}

/// `KeLowerIrql(OldIrql)`: returns to the IRQL a matching [`KeRaiseIrql`] returned.
#[inline(always)]
pub fn KeLowerIrql(old: KIRQL) {
    if imp::get() != old {
        imp::set(old);
    }
}

/// `KeInitializeSpinLock` (FORCEINLINE on x64 and arm64: the lock is one zeroed word).
///
/// # Safety
/// `lock` must be valid for writes and not in use.
#[inline]
pub unsafe fn KeInitializeSpinLock(lock: *mut KSPIN_LOCK) {
    // SAFETY: the caller guarantees exclusive, valid access to the lock word.
    unsafe { lock.write(0) }
}
