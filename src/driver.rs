//! `DriverEntry` and `DriverUnload`: install the pool, register the filter; deregister the filter
//! (NDIS pauses and detaches every module, so nothing of ours is outstanding afterwards), then destroy
//! the pool. Owns the order of those steps; module state lives in `filter/`, the pool in `pool/` and
//! `mdl_handlers.rs`.
//!
//! The pool is built before any registry access is possible (NDIS configuration needs a filter
//! handle, which exists only after registration, and NDIS may attach a module inside the register
//! call), so it is built with the INF defaults of PoolMagazineSize / PoolDepotLimit /
//! PoolTrimIntervalMs (32 / 64 / 1000). The per-module values are read, range-checked and counted at
//! attach like every other key.
//!
//! The pool's working-set trim (`mdl_handlers::trim_tick`, which also refreshes the slow-path fields
//! of the debugger statistics root) runs from one driver-wide NDIS timer, allocated on the filter
//! driver handle after registration and periodic at the pool's `trim_interval_ms`. The statistics
//! root is told when the filter is registered and deregistered.

use crate::{filter, mdl_handlers, pool::PoolConfig, stats};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};
use ndis_sys::*;

/// The pool configuration DriverEntry installs: the registry defaults of the pool keys. Any IRQL.
pub fn default_pool_config() -> PoolConfig {
    let defaults = filter::Config::default();
    PoolConfig {
        magazine_size: defaults.pool_magazine_size,
        depot_limit: defaults.pool_depot_limit,
        trim_interval_ms: defaults.pool_trim_interval_ms,
        ..PoolConfig::default()
    }
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
    if let Err(e) = mdl_handlers::install(&default_pool_config()) {
        log!(DPFLTR_ERROR_LEVEL, "pool install failed: {:?}", e);
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    // SAFETY: PASSIVE_LEVEL, valid driver object, called once from DriverEntry.
    let status = unsafe { filter::register(driver_object) };
    if status != NDIS_STATUS_SUCCESS {
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
    // SAFETY: the driver object is valid for the driver's lifetime; DriverUnload lives in this image.
    unsafe { (*driver_object).DriverUnload = Some(DriverUnload) };
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
    let period_ms = pool.config().trim_interval_ms;
    TRIM_STOPPING.store(false, Ordering::SeqCst);
    let mut chars = NDIS_TIMER_CHARACTERISTICS {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_TIMER_CHARACTERISTICS,
            NDIS_TIMER_CHARACTERISTICS_REVISION_1,
            NDIS_SIZEOF_TIMER_CHARACTERISTICS_REVISION_1,
        ),
        AllocationTag: crate::names::POOL_TAG,
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
    TRIM_TIMER.store(timer, Ordering::SeqCst);
    let due = -(period_ms as i64) * 10_000; // relative, in 100 ns units
                                            // SAFETY: a timer object we allocated, not yet set.
    unsafe { NdisSetTimerObject(timer, due, period_ms, core::ptr::null_mut()) };
}

/// Cancels and frees the trim timer and waits for a callback still running. PASSIVE_LEVEL.
fn stop_trim_timer() {
    TRIM_STOPPING.store(true, Ordering::SeqCst);
    let timer = TRIM_TIMER.swap(core::ptr::null_mut(), Ordering::SeqCst);
    if !timer.is_null() {
        // SAFETY: our timer object; cancel stops the period, free releases it (PASSIVE_LEVEL).
        unsafe {
            NdisCancelTimerObject(timer);
            NdisFreeTimerObject(timer);
        }
    }
    while TRIM_ACTIVE.load(Ordering::SeqCst) != 0 {
        core::hint::spin_loop();
    }
}
