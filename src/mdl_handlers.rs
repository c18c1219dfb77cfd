//! The `NetAllocateMdl` / `NetFreeMdl` pair given to NdisRetreat/AdvanceNetBufferDataStart (DESIGN §4),
//! over one global pool on the kernel platform.
//!
//! Owns: the global pool slot, [`install`] (DriverEntry) and [`uninstall`] (DriverUnload), the handler
//! pair, and the periodic [`trim_tick`]. Must not contain pool logic (that is `pool/`) and never panics:
//! with no pool installed the allocator returns NULL and the free routine only counts.
//!
//! Size rule: the pool never rounds up, so `*BufferSize` is left as NDIS passed it and the MDL's
//! `ByteCount` equals it exactly (ndis-contract.md §2.3 point 3).

use crate::pool::{
    KernelPlatform, LeakReport, Pool, PoolConfig, PoolError, PoolHandle, PoolSnapshot, Released,
};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use ndis_sys::MDL;

/// The installed pool, or NULL.
static POOL: AtomicPtr<Pool<KernelPlatform>> = AtomicPtr::new(core::ptr::null_mut());
/// Set while `install` is building a pool, so two installs cannot race.
static INSTALLING: AtomicBool = AtomicBool::new(false);
/// NetFreeMdl calls made while no pool was installed (the MDL is never touched).
static FREES_WITHOUT_POOL: AtomicU64 = AtomicU64::new(0);
/// NetAllocateMdl calls made while no pool was installed (returned NULL).
static ALLOCS_WITHOUT_POOL: AtomicU64 = AtomicU64::new(0);
static REPORTED_NO_POOL: AtomicBool = AtomicBool::new(false);

/// Creates the global pool (sized by `KeQueryMaximumProcessorCountEx(ALL_PROCESSOR_GROUPS)`) and makes
/// the handlers use it. Call from DriverEntry, before any retreat. PASSIVE_LEVEL.
pub fn install(config: &PoolConfig) -> Result<(), PoolError> {
    if INSTALLING.swap(true, Ordering::Acquire) {
        return Err(PoolError::AlreadyInstalled);
    }
    let result = if POOL.load(Ordering::Acquire).is_null() {
        Pool::create(KernelPlatform::new(), config).map(|handle| {
            crate::stats::publish(&handle);
            POOL.store(handle.into_raw(), Ordering::Release);
        })
    } else {
        Err(PoolError::AlreadyInstalled)
    };
    INSTALLING.store(false, Ordering::Release);
    result
}

/// Detaches the global pool from the handlers and destroys it: every cached block is freed, blocks still
/// in flight are reported (DbgPrintEx) and NOT freed. Returns the report, or None if no pool was
/// installed. Call from DriverUnload after NdisFDeregisterFilterDriver. PASSIVE_LEVEL.
///
/// # Safety
/// No NetAllocateMdl / NetFreeMdl / trim_tick / stats call may be running or start before this returns
/// (true after deregistration: every filter module is detached and no NDIS call can reach the handlers).
pub unsafe fn uninstall() -> Option<LeakReport> {
    let p = POOL.swap(core::ptr::null_mut(), Ordering::AcqRel);
    // SAFETY: `p` came from PoolHandle::into_raw in `install` and the slot no longer holds it.
    let handle: PoolHandle<KernelPlatform> = unsafe { PoolHandle::from_raw(p) }?;
    // Flush first (the pool is quiescent: see the contract above), so the totals the statistics root
    // keeps for a crash dump show what unload returned to the system and what (if anything) leaked.
    // SAFETY: quiescent pool (this function's contract).
    unsafe { handle.flush_all() };
    crate::stats::retire(&handle);
    Some(handle.destroy())
}

/// The installed pool, for the statistics root and the trim timer.
pub fn installed() -> Option<&'static Pool<KernelPlatform>> {
    let p = POOL.load(Ordering::Acquire);
    // SAFETY: a non-null slot holds a live pool; `uninstall`'s contract keeps it alive while callers use it.
    unsafe { p.as_ref() }
}

/// Working-set trim of the installed pool; the filter calls it from its timer every
/// `trim_interval_ms`. IRQL <= DISPATCH_LEVEL.
pub fn trim_tick() -> Released {
    installed()
        .map(|p| {
            let released = p.trim();
            crate::stats::refresh(p);
            released
        })
        .unwrap_or_default()
}

/// Snapshot of the installed pool's statistics. IRQL <= DISPATCH_LEVEL.
pub fn snapshot() -> Option<PoolSnapshot> {
    installed().map(|p| p.snapshot())
}

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
