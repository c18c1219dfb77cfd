//! `KernelPlatform`: the pool's [`Platform`] in the driver, through ndis-sys.
//!
//! Owns: the mapping of each platform operation onto one kernel routine. On Windows these are the real
//! ntoskrnl/HAL routines; in a host test binary ndis-sim defines the same symbols (virtual CPUs on
//! threads, per-thread IRQL), so this exact code is what the handler tests exercise.

use super::platform::Platform;
use core::ffi::c_void;
use core::fmt;
use ndis_sys::{
    ExAllocatePool2, ExFreePoolWithTag, KeGetCurrentProcessorNumberEx, KeLowerIrql,
    KeQueryMaximumProcessorCountEx, KeRaiseIrql, MmBuildMdlForNonPagedPool, MmInitializeMdl,
    ALL_PROCESSOR_GROUPS, DISPATCH_LEVEL, DPFLTR_WARNING_LEVEL, MDL, POOL_FLAG_NON_PAGED,
};

/// Pool tag of every block, magazine array and pool structure: `'MdlP'` as `!pool` shows it.
pub const POOL_BLOCK_TAG: u32 = crate::names::tags::MDL_BLOCK;

/// The kernel platform. `max_cpus` is read once at creation
/// (`KeQueryMaximumProcessorCountEx(ALL_PROCESSOR_GROUPS)`, constant while the system runs).
#[derive(Debug)]
pub struct KernelPlatform {
    max_cpus: usize,
}

impl KernelPlatform {
    /// Queries the maximum processor count over all groups. Any IRQL.
    pub fn new() -> Self {
        // SAFETY: KeQueryMaximumProcessorCountEx has no preconditions and is callable at any IRQL.
        let n = unsafe { KeQueryMaximumProcessorCountEx(ALL_PROCESSOR_GROUPS) };
        Self {
            max_cpus: n as usize,
        }
    }
}

impl Default for KernelPlatform {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: DISPATCH_LEVEL pins the thread to its processor (no preemption on that CPU), and
// KeGetCurrentProcessorNumberEx is the system-wide index, stable while pinned; ExAllocatePool2 with
// POOL_FLAG_NON_PAGED returns 16-byte-aligned NX nonpaged memory that does not cross a page when smaller
// than a page; MmInitializeMdl + MmBuildMdlForNonPagedPool write exactly MmSizeOfMdl bytes.
unsafe impl Platform for KernelPlatform {
    #[inline]
    fn max_cpus(&self) -> usize {
        self.max_cpus
    }

    #[inline(always)]
    fn raise_to_dispatch(&self) -> u8 {
        KeRaiseIrql(DISPATCH_LEVEL)
    }

    #[inline(always)]
    fn lower_irql(&self, old: u8) {
        KeLowerIrql(old)
    }

    #[inline(always)]
    fn current_cpu(&self) -> usize {
        // SAFETY: NULL is allowed for the optional PROCESSOR_NUMBER out-parameter; any IRQL.
        unsafe { KeGetCurrentProcessorNumberEx(core::ptr::null_mut()) as usize }
    }

    fn alloc_block(&self, bytes: usize) -> *mut u8 {
        // SAFETY: nonpaged NX allocation with a non-zero tag; callable at IRQL <= DISPATCH_LEVEL.
        unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, bytes, POOL_BLOCK_TAG).cast() }
    }

    unsafe fn free_block(&self, block: *mut u8, _bytes: usize) {
        // SAFETY: the caller passes a region from alloc_block, allocated with this tag.
        unsafe { ExFreePoolWithTag(block.cast::<c_void>(), POOL_BLOCK_TAG) }
    }

    unsafe fn build_mdl(&self, mdl: *mut MDL, va: *mut u8, len: usize) {
        // SAFETY: the caller guarantees room for MmSizeOfMdl(va, len) bytes at `mdl` and a nonpaged
        // buffer; MmInitializeMdl then MmBuildMdlForNonPagedPool is the documented sequence.
        unsafe {
            MmInitializeMdl(mdl, va.cast::<c_void>(), len);
            MmBuildMdlForNonPagedPool(mdl);
        }
    }

    fn report(&self, args: fmt::Arguments<'_>) {
        ndis_sys::rt::log(DPFLTR_WARNING_LEVEL, args);
    }
}
