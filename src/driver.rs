//! `DriverEntry` and `DriverUnload`: the order in which the driver's parts start and stop, and nothing
//! else (as WireGuard-NT's `main.c` orders its subsystems).
//!
//! Owns: that order, the pool configuration DriverEntry installs ([`default_pool_config`]) and what the
//! parts are told of each other: the statistics root where the filter's module list is and that it
//! observes the driver-wide pool. Must not: hold state of any part (the pool's is in `pool_service.rs`,
//! the modules' in `filter/`, the debugger's in `stats/`) or contain their logic.
//!
//! IRQL: both routines run at PASSIVE_LEVEL.
//!
//! DriverEntry: show the statistics root the module list; install the pool (the root observes it);
//! set DriverUnload; register the filter (NDIS may attach modules inside the call, and the data path
//! may retreat right after); mark the root running; start the pool's trim timer on the filter driver
//! handle. DriverUnload: stop the trim timer; deregister the filter (NDIS pauses and detaches every
//! module, so nothing of ours is outstanding afterwards); mark the root stopped; destroy the pool and
//! report any block still in flight.

use crate::{
    filter,
    pool::{KernelPlatform, PoolConfig},
    pool_service::{self, PoolObserver},
    stats,
};
use ndis_sys::*;

/// Block slots allocated per magazine: the largest PoolMagazineSize that takes effect (the key's range
/// goes to 256; larger values are clamped to this). Magazine arrays cost
/// `classes * (2 * CPUs + POOL_DEPOT_CAPACITY) * (16 + 8 * POOL_MAGAZINE_CAPACITY)` bytes of nonpaged
/// memory (6 classes, 4 CPUs: about 430 KB); retained *blocks* are bounded by the limits in force.
pub const POOL_MAGAZINE_CAPACITY: u32 = 64;
/// Depot magazines allocated per class: the largest PoolDepotLimit that takes effect (the key's range
/// goes to 4096; larger values are clamped to this).
pub const POOL_DEPOT_CAPACITY: u32 = 128;

/// The pool configuration DriverEntry installs: the registry defaults of the pool keys in force (a
/// module's own values are applied at its attach and restart, `pool_service::apply_module_limits`),
/// with room up to [`POOL_MAGAZINE_CAPACITY`] / [`POOL_DEPOT_CAPACITY`]. Any IRQL.
pub fn default_pool_config() -> PoolConfig {
    let defaults = filter::Config::default();
    PoolConfig {
        magazine_size: defaults.pool.magazine_fill,
        depot_limit: defaults.pool.depot_limit,
        trim_interval_ms: defaults.pool.trim_interval_ms,
        magazine_capacity: POOL_MAGAZINE_CAPACITY,
        depot_capacity: POOL_DEPOT_CAPACITY,
        ..PoolConfig::default()
    }
}

/// The statistics root observes the driver-wide pool: it publishes its counters, refreshes its
/// slow-path fields and keeps the final totals.
static STATS_OBSERVES_POOL: PoolObserver = PoolObserver {
    installed: stats::publish::<KernelPlatform>,
    changed: stats::refresh::<KernelPlatform>,
    retiring: stats::retire::<KernelPlatform>,
};

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
    stats::show_modules(&filter::module::MODULES, &filter::module::DETACHED_TOTALS);
    if let Err(e) = pool_service::start(&default_pool_config(), &STATS_OBSERVES_POOL) {
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
        unsafe { pool_service::uninstall() };
        return status;
    }
    stats::set_running();
    // SAFETY: the handle of the registration above; DriverUnload stops the timer before it deregisters.
    unsafe { pool_service::start_trim_timer(filter::driver_handle()) };
    STATUS_SUCCESS
}

/// `DriverUnload`. PASSIVE_LEVEL. Deregisters the filter (NDIS pauses and detaches every module before
/// NdisFDeregisterFilterDriver returns), then destroys the pool and reports any block still in flight.
///
/// # Safety
/// Called by the kernel (or the simulator) once, after a successful DriverEntry.
#[no_mangle]
pub unsafe extern "system" fn DriverUnload(_driver_object: *mut DRIVER_OBJECT) {
    pool_service::stop_trim_timer();
    // SAFETY: PASSIVE_LEVEL, after a successful registration.
    unsafe { filter::deregister() };
    stats::set_stopped();
    // SAFETY: every module is detached and the trim timer is gone, so nothing can reach the pool.
    if let Some(report) = unsafe { pool_service::uninstall() } {
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
