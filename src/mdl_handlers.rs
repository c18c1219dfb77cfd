//! The `NetAllocateMdl` / `NetFreeMdl` pair given to NdisRetreat/AdvanceNetBufferDataStart (DESIGN §4),
//! over the driver-wide pool (`pool_service.rs`).
//!
//! Owns: the handler pair, [`owns_in_flight`] for the data path's restore, and the count of calls made
//! while no pool was installed. Must not contain pool logic (that is `pool/`) or the pool's life
//! (install, limits, trim: `pool_service.rs`, re-exported here under their former paths), and never
//! panics: with no pool installed the allocator returns NULL and the free routine only counts.
//!
//! IRQL: every routine here runs at IRQL <= DISPATCH_LEVEL, on any CPU.
//!
//! Size rule: the pool never rounds up, so `*BufferSize` is left as NDIS passed it and the MDL's
//! `ByteCount` equals it exactly (ndis-contract.md §2.3 point 3).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use ndis_sys::MDL;

/// The pool's life (`pool_service.rs`), also under the paths the tests and fuzz targets use.
pub use crate::pool_service::{install, installed, snapshot, trim_tick, uninstall};

/// NetFreeMdl calls made while no pool was installed (the MDL is never touched).
static FREES_WITHOUT_POOL: AtomicU64 = AtomicU64::new(0);
/// NetAllocateMdl calls made while no pool was installed (returned NULL).
static ALLOCS_WITHOUT_POOL: AtomicU64 = AtomicU64::new(0);
static REPORTED_NO_POOL: AtomicBool = AtomicBool::new(false);

/// Calls made while no pool was installed: (allocations refused, frees ignored).
pub fn calls_without_pool() -> (u64, u64) {
    (
        ALLOCS_WITHOUT_POOL.load(Ordering::Relaxed),
        FREES_WITHOUT_POOL.load(Ordering::Relaxed),
    )
}

fn note_no_pool() {
    if !REPORTED_NO_POOL.swap(true, Ordering::Relaxed) {
        ndis_sys::rt::log(
            ndis_sys::DPFLTR_WARNING_LEVEL,
            format_args!("MDL handler called with no pool installed"),
        );
    }
}

/// `NET_BUFFER_ALLOCATE_MDL`: returns an MDL describing `*BufferSize` bytes of nonpaged memory
/// (`ByteCount == *BufferSize`, `Next == NULL`, built for nonpaged pool), or NULL (no pool, size 0 or
/// above the pool's `max_request`, no memory, injected fault). `*BufferSize` is never changed.
/// IRQL <= DISPATCH_LEVEL, any CPU.
///
/// # Safety
/// `buffer_size` is NULL or points to a readable `u32` (NDIS passes its local size variable).
#[allow(non_snake_case)]
pub unsafe extern "system" fn NetAllocateMdl(buffer_size: *mut u32) -> *mut MDL {
    if buffer_size.is_null() {
        return core::ptr::null_mut();
    }
    let Some(pool) = installed() else {
        ALLOCS_WITHOUT_POOL.fetch_add(1, Ordering::Relaxed);
        note_no_pool();
        return core::ptr::null_mut();
    };
    // SAFETY: non-null and readable (caller).
    let size = unsafe { buffer_size.read() };
    pool.allocate(size)
}

/// `NET_BUFFER_FREE_MDL`: returns an MDL from [`NetAllocateMdl`] to the pool. An MDL that is not one of
/// the pool's in-flight blocks (foreign, or freed twice) is never freed: it is counted and reported once.
/// With no pool installed the call is counted and does nothing. IRQL <= DISPATCH_LEVEL, any CPU.
///
/// # Safety
/// `mdl` is NULL or points to a valid MDL in kernel memory (NDIS passes MDLs it unlinked from a chain).
#[allow(non_snake_case)]
pub unsafe extern "system" fn NetFreeMdl(mdl: *mut MDL) {
    if mdl.is_null() {
        return;
    }
    let Some(pool) = installed() else {
        FREES_WITHOUT_POOL.fetch_add(1, Ordering::Relaxed);
        note_no_pool();
        return;
    };
    // SAFETY: a valid MDL in kernel memory (caller); if it is one of ours, NDIS has given it back to us.
    // Rejections are counted and reported by the pool.
    let _ = unsafe { pool.free(mdl) };
}

/// Whether `mdl` is a block of the installed pool that is in flight (handed out by [`NetAllocateMdl`],
/// not yet freed). False with no pool installed. Counts nothing. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `mdl` points to a readable MDL in kernel memory (as for [`NetFreeMdl`]).
pub unsafe fn owns_in_flight(mdl: *mut MDL) -> bool {
    match installed() {
        // SAFETY: the caller's guarantee is the pool's precondition.
        Some(pool) if !mdl.is_null() => unsafe { pool.owns_in_flight(mdl) },
        _ => false,
    }
}
