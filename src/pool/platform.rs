//! The `Platform` seam: everything the pool needs from the machine it runs on.
//!
//! Owns: the trait and its contract. It must not contain pool logic. Implementations: `KernelPlatform`
//! (the driver, through ndis-sys; on a host test binary ndis-sim answers the same calls), the loom model
//! platform (unit tests under `--cfg loom`) and `HostPlatform` (Miri, proptest, stress tests and
//! benchmarks: threads stand for CPUs).

use core::fmt;
use ndis_sys::MDL;

/// What the pool needs from the machine.
///
/// # Safety
/// Implementors promise the following, on which the pool's memory safety rests:
/// - Between `raise_to_dispatch` and the matching `lower_irql`, the caller cannot be preempted by another
///   caller that would observe the same `current_cpu()` value, and `current_cpu()` stays the same.
///   (In the kernel: DISPATCH_LEVEL pins the thread to its processor. On a host: exactly one thread is
///   bound to each CPU index.)
/// - `current_cpu()` returns a stable index; the pool checks it against `max_cpus()` and never indexes
///   out of bounds, so an out-of-range value only makes the call fail.
/// - `alloc_block(n)` returns NULL or a fresh, writable, 16-byte-aligned region of `n` bytes of
///   nonpaged memory that stays valid until `free_block`; a region of fewer than `PAGE_SIZE` bytes does not
///   cross a page boundary (ExAllocatePool2's documented behaviour).
/// - `build_mdl` leaves a valid MDL describing `len` bytes at `va` (MmInitializeMdl +
///   MmBuildMdlForNonPagedPool) and writes at most `MmSizeOfMdl(va, len)` bytes at `mdl`.
pub unsafe trait Platform: Send + Sync + Sized {
    /// Size of the per-CPU arrays: the maximum processor count over all groups. Any IRQL.
    fn max_cpus(&self) -> usize;
    /// Raises to DISPATCH_LEVEL (no-op if already there) and returns the previous IRQL.
    /// IRQL <= DISPATCH_LEVEL.
    fn raise_to_dispatch(&self) -> u8;
    /// Lowers back to `old`, as returned by the matching `raise_to_dispatch`. DISPATCH_LEVEL.
    fn lower_irql(&self, old: u8);
    /// System-wide index of the current processor. Meaningful at DISPATCH_LEVEL.
    fn current_cpu(&self) -> usize;
    /// Allocates `bytes` of nonpaged NX memory for a block, magazine array or pool structure.
    /// IRQL <= DISPATCH_LEVEL. Returns NULL on failure.
    fn alloc_block(&self, bytes: usize) -> *mut u8;
    /// Frees a region from `alloc_block`. IRQL <= DISPATCH_LEVEL.
    ///
    /// # Safety
    /// `block` came from `alloc_block(bytes)` on this platform and is not used afterwards.
    unsafe fn free_block(&self, block: *mut u8, bytes: usize);
    /// Builds `mdl` for the nonpaged buffer `[va, va + len)`. IRQL <= DISPATCH_LEVEL.
    ///
    /// # Safety
    /// `mdl` is writable for `MmSizeOfMdl(va, len)` bytes; `[va, va + len)` is nonpaged memory that
    /// outlives the MDL.
    unsafe fn build_mdl(&self, mdl: *mut MDL, va: *mut u8, len: usize);
    /// Reports a one-line diagnostic (DbgPrintEx in the kernel). Any IRQL; must not allocate.
    fn report(&self, args: fmt::Arguments<'_>);
    /// Called on each iteration of a spin-wait on the depot lock.
    #[inline(always)]
    fn spin_wait(&self) {
        super::sync::spin_loop();
    }
}
