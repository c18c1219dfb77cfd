//! `DriverEntry` and `DriverUnload`: install the pool, register the filter; deregister the filter
//! (NDIS pauses and detaches every module, so nothing of ours is outstanding afterwards), then destroy
//! the pool. Owns the order of those steps; module state lives in `filter/`, the pool in `pool/` and
//! `mdl_handlers.rs`.
//!
//! The pool is built before any registry access is possible (NDIS configuration needs a filter
//! handle, which exists only after registration, and NDIS may attach a module inside the register
//! call), so it is built with the INF defaults of PoolMagazineSize / PoolDepotLimit /
//! PoolTrimIntervalMs (32 / 64 / 1000) in force and room to raise the first two up to
//! [`POOL_MAGAZINE_CAPACITY`] / [`POOL_DEPOT_CAPACITY`]. Each module's values are read and
//! range-checked at FilterAttach and FilterRestart and then applied to the driver-wide pool by
//! [`apply_pool_config`]: the module attached or restarted *last* wins (a once-only note is logged
//! when a module's values replace different ones of another module, and when a value is above the
//! allocated room and clamped). The trim timer is re-armed when the interval changes.
//!
//! The pool's working-set trim (`mdl_handlers::trim_tick`, which also refreshes the slow-path fields
//! of the debugger statistics root) runs from one driver-wide NDIS timer, allocated on the filter
//! driver handle after registration and periodic at the pool's `trim_interval_ms`. The statistics
//! root is told when the filter is registered and deregistered.

use crate::{
    filter, mdl_handlers,
    pool::{Limits, PoolConfig},
    stats,
};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use ndis_sys::*;

/// Block slots allocated per magazine: the largest PoolMagazineSize that takes effect (the key's range
/// goes to 256; larger values are clamped to this). Magazine arrays cost
/// `classes * (2 * CPUs + POOL_DEPOT_CAPACITY) * (16 + 8 * POOL_MAGAZINE_CAPACITY)` bytes of nonpaged
/// memory (6 classes, 4 CPUs: about 430 KB); retained *blocks* are bounded by the limits in force.
pub const POOL_MAGAZINE_CAPACITY: u32 = 64;
/// Depot magazines allocated per class: the largest PoolDepotLimit that takes effect (the key's range
/// goes to 4096; larger values are clamped to this).
pub const POOL_DEPOT_CAPACITY: u32 = 128;

/// The pool configuration DriverEntry installs: the registry defaults of the pool keys in force, with
/// room up to [`POOL_MAGAZINE_CAPACITY`] / [`POOL_DEPOT_CAPACITY`]. Any IRQL.
pub fn default_pool_config() -> PoolConfig {
    let defaults = filter::Config::default();
    PoolConfig {
        magazine_size: defaults.pool_magazine_size,
        depot_limit: defaults.pool_depot_limit,
        trim_interval_ms: defaults.pool_trim_interval_ms,
        magazine_capacity: POOL_MAGAZINE_CAPACITY,
        depot_capacity: POOL_DEPOT_CAPACITY,
        ..PoolConfig::default()
    }
}

/// The module handle whose pool values were applied last (0 = DriverEntry's defaults).
static POOL_CONFIG_OWNER: AtomicUsize = AtomicUsize::new(0);
/// Serialises [`apply_pool_config`] and the trim timer's re-arm against its teardown (held at
/// DISPATCH_LEVEL for a few instructions).
static POOL_CONFIG_LOCK: AtomicBool = AtomicBool::new(false);
static NOTED_DISAGREE: AtomicBool = AtomicBool::new(false);
static NOTED_CLAMPED: AtomicBool = AtomicBool::new(false);

fn with_pool_config_lock<R>(f: impl FnOnce() -> R) -> R {
    let old = KeRaiseIrqlToDpcLevel();
    while POOL_CONFIG_LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
    let r = f();
    POOL_CONFIG_LOCK.store(false, Ordering::Release);
    KeLowerIrql(old);
    r
}

/// Applies a module's PoolMagazineSize / PoolDepotLimit / PoolTrimIntervalMs to the driver-wide pool
/// (called from FilterAttach and FilterRestart after the configuration is read). The last caller
/// wins; values above the allocated room are clamped. The depot limit applies at once, the magazine
/// fill at each CPU's next magazine exchange (see `Pool::set_limits`), the trim interval by re-arming
/// the trim timer. Logs once if another module's different values are replaced, and once if a value
/// was clamped. Returns the limits in force afterwards (None without a pool). PASSIVE_LEVEL.
pub fn apply_pool_config(module: NDIS_HANDLE, cfg: &filter::Config) -> Option<Limits> {
    let pool = mdl_handlers::installed()?;
    let want = Limits {
        magazine_fill: cfg.pool_magazine_size,
        depot_limit: cfg.pool_depot_limit,
        trim_interval_ms: cfg.pool_trim_interval_ms,
    };
    let (before, applied, previous_owner) = with_pool_config_lock(|| {
        let before = pool.limits();
        let applied = pool.set_limits(want);
        let previous_owner = POOL_CONFIG_OWNER.swap(module as usize, Ordering::Relaxed);
        if applied.trim_interval_ms != before.trim_interval_ms {
            let timer = TRIM_TIMER.load(Ordering::SeqCst);
            if !timer.is_null() {
                let period = applied.trim_interval_ms;
                // SAFETY: our timer object: teardown takes it out under this lock before freeing it.
                unsafe {
                    NdisSetTimerObject(
                        timer,
                        -(period as i64) * 10_000,
                        period,
                        core::ptr::null_mut(),
                    )
                };
            }
        }
        (before, applied, previous_owner)
    });
    stats::refresh(pool);
    if previous_owner != 0
        && previous_owner != module as usize
        && applied != before
        && !NOTED_DISAGREE.swap(true, Ordering::Relaxed)
    {
        log!(
            DPFLTR_WARNING_LEVEL,
            "pool keys differ between modules; the pool is driver-wide and the module attached or restarted last wins: magazine {} depot {} trim {} ms (were {} / {} / {})",
            applied.magazine_fill,
            applied.depot_limit,
            applied.trim_interval_ms,
            before.magazine_fill,
            before.depot_limit,
            before.trim_interval_ms
        );
    }
    if applied != want && !NOTED_CLAMPED.swap(true, Ordering::Relaxed) {
        log!(
            DPFLTR_WARNING_LEVEL,
            "PoolMagazineSize {} / PoolDepotLimit {} above the pool's room ({} / {}): clamped to {} / {}",
            want.magazine_fill,
            want.depot_limit,
            POOL_MAGAZINE_CAPACITY,
            POOL_DEPOT_CAPACITY,
            applied.magazine_fill,
            applied.depot_limit
        );
    }
    Some(applied)
}

/// `DriverEntry`. PASSIVE_LEVEL. Installs the pool, then registers the filter (NDIS may call
/// FilterAttach before registration returns, and the data path may retreat right after).
///
/// # Safety
/// Called by the kernel (or the simulator) with a valid driver object and registry path.
#[no_mangle]
pub unsafe extern "system" fn DriverEntry(
    driver_object: *mut DRIVER_OBJECT,
    _registry_path: *mut UNICODE_STRING,
) -> NTSTATUS {
    if driver_object.is_null() {
        return STATUS_UNSUCCESSFUL;
    }
    // Once-only notes are once per load.
    NOTED_DISAGREE.store(false, Ordering::Relaxed);
    NOTED_CLAMPED.store(false, Ordering::Relaxed);
    POOL_CONFIG_OWNER.store(0, Ordering::Relaxed);
    if let Err(e) = mdl_handlers::install(&default_pool_config()) {
        log!(DPFLTR_ERROR_LEVEL, "pool install failed: {:?}", e);
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    // The unload routine is in place before NDIS learns of the driver, as the ndislwf sample does:
    // NdisFDeregisterFilterDriver must be called from it (network/unloading-a-filter-driver).
    // SAFETY: the driver object is valid for the driver's lifetime; DriverUnload lives in this image.
    unsafe { (*driver_object).DriverUnload = Some(DriverUnload) };
    // SAFETY: PASSIVE_LEVEL, valid driver object, called once from DriverEntry.
    let status = unsafe { filter::register(driver_object) };
    if status != NDIS_STATUS_SUCCESS {
        // SAFETY: as above; a failed DriverEntry is never unloaded through DriverUnload.
        unsafe { (*driver_object).DriverUnload = None };
        log!(
            DPFLTR_ERROR_LEVEL,
            "NdisFRegisterFilterDriver failed: {:#x}",
            status as u32
        );
        // SAFETY: registration failed, so no module exists and no handler call can be running.
        unsafe { mdl_handlers::uninstall() };
        return status;
    }
    stats::set_running();
    start_trim_timer();
    STATUS_SUCCESS
}

/// `DriverUnload`. PASSIVE_LEVEL. Deregisters the filter (NDIS pauses and detaches every module before
/// NdisFDeregisterFilterDriver returns), then destroys the pool and reports any block still in flight.
///
/// # Safety
/// Called by the kernel (or the simulator) once, after a successful DriverEntry.
#[no_mangle]
pub unsafe extern "system" fn DriverUnload(_driver_object: *mut DRIVER_OBJECT) {
    stop_trim_timer();
    // SAFETY: PASSIVE_LEVEL, after a successful registration.
    unsafe { filter::deregister() };
    stats::set_stopped();
    // SAFETY: every module is detached and the trim timer is gone, so nothing can reach the pool.
    if let Some(report) = unsafe { mdl_handlers::uninstall() } {
        if !report.is_clean() {
            log!(
                DPFLTR_ERROR_LEVEL,
                "pool destroyed with {} blocks ({} bytes) in flight",
                report.in_flight_blocks,
                report.in_flight_bytes
            );
        }
    }
}

/// The trim timer object (NULL when none).
static TRIM_TIMER: AtomicPtr<core::ffi::c_void> = AtomicPtr::new(core::ptr::null_mut());
/// Set while the timer is being torn down: a late callback does nothing.
static TRIM_STOPPING: AtomicBool = AtomicBool::new(false);
/// Timer callbacks currently running.
static TRIM_ACTIVE: AtomicU32 = AtomicU32::new(0);

/// The trim timer's function. DISPATCH_LEVEL (NDIS timer DPC).
unsafe extern "system" fn trim_timer(_s1: PVOID, _ctx: PVOID, _s2: PVOID, _s3: PVOID) {
    TRIM_ACTIVE.fetch_add(1, Ordering::SeqCst);
    if !TRIM_STOPPING.load(Ordering::SeqCst) {
        mdl_handlers::trim_tick();
    }
    TRIM_ACTIVE.fetch_sub(1, Ordering::SeqCst);
}

/// Allocates and starts the periodic trim timer on the filter driver handle. PASSIVE_LEVEL. Without a
/// timer (allocation failed) the pool still works; it only keeps what its bounds allow.
fn start_trim_timer() {
    let Some(pool) = mdl_handlers::installed() else {
        return;
    };
    TRIM_STOPPING.store(false, Ordering::SeqCst);
    let mut chars = NDIS_TIMER_CHARACTERISTICS {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_TIMER_CHARACTERISTICS,
            NDIS_TIMER_CHARACTERISTICS_REVISION_1,
            NDIS_SIZEOF_TIMER_CHARACTERISTICS_REVISION_1,
        ),
        AllocationTag: crate::names::tags::TIMER,
        TimerFunction: Some(trim_timer),
        FunctionContext: core::ptr::null_mut(),
    };
    let mut timer: NDIS_HANDLE = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; the filter driver handle is valid while registered; `chars` and `timer`
    // outlive the call.
    let status =
        unsafe { NdisAllocateTimerObject(filter::driver_handle(), &mut chars, &mut timer) };
    if status != NDIS_STATUS_SUCCESS || timer.is_null() {
        log!(
            DPFLTR_WARNING_LEVEL,
            "trim timer not allocated ({:#x}); the pool is not trimmed",
            status as u32
        );
        return;
    }
    // Under the configuration lock, with the interval in force then: a module's configuration applied
    // meanwhile (NDIS may attach inside registration) either came before (and is read here) or
    // re-arms the timer after.
    with_pool_config_lock(|| {
        TRIM_TIMER.store(timer, Ordering::SeqCst);
        let period_ms = pool.limits().trim_interval_ms;
        // Relative due time, in 100 ns units.
        let due = -(period_ms as i64) * 10_000;
        // SAFETY: a timer object we allocated, not yet set.
        unsafe { NdisSetTimerObject(timer, due, period_ms, core::ptr::null_mut()) };
    });
}

/// Cancels and frees the trim timer and waits for a callback still running. PASSIVE_LEVEL.
fn stop_trim_timer() {
    TRIM_STOPPING.store(true, Ordering::SeqCst);
    let timer = with_pool_config_lock(|| TRIM_TIMER.swap(core::ptr::null_mut(), Ordering::SeqCst));
    POOL_CONFIG_OWNER.store(0, Ordering::Relaxed);
    if !timer.is_null() {
        // SAFETY: our timer object, at PASSIVE_LEVEL: cancel stops the period; a DPC already queued or
        // running on another CPU is waited for by KeFlushQueuedDpcs before the object is freed (and
        // before unload can unmap the callback).
        unsafe {
            NdisCancelTimerObject(timer);
            KeFlushQueuedDpcs();
            NdisFreeTimerObject(timer);
        }
    }
    while TRIM_ACTIVE.load(Ordering::SeqCst) != 0 {
        core::hint::spin_loop();
    }
}
