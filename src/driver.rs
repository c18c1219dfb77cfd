//! `DriverEntry` and `DriverUnload`: register the filter with NDIS and deregister it.
//! Owns the driver-wide handle; module state lives in `filter/`.

use crate::filter;
use ndis_sys::*;

/// `DriverEntry`. PASSIVE_LEVEL. Registers the filter; NDIS may call FilterAttach before this returns.
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
    // SAFETY: PASSIVE_LEVEL, valid driver object, called once from DriverEntry.
    let status = unsafe { filter::register(driver_object) };
    if status != NDIS_STATUS_SUCCESS {
        log!(
            DPFLTR_ERROR_LEVEL,
            "NdisFRegisterFilterDriver failed: {:#x}",
            status as u32
        );
        return status;
    }
    // SAFETY: the driver object is valid for the driver's lifetime; DriverUnload lives in this image.
    unsafe { (*driver_object).DriverUnload = Some(DriverUnload) };
    STATUS_SUCCESS
}

/// `DriverUnload`. PASSIVE_LEVEL. Deregisters the filter, which detaches every module first.
///
/// # Safety
/// Called by the kernel (or the simulator) once, after a successful DriverEntry.
#[no_mangle]
pub unsafe extern "system" fn DriverUnload(_driver_object: *mut DRIVER_OBJECT) {
    // SAFETY: PASSIVE_LEVEL, after a successful registration.
    unsafe { filter::deregister() };
}
