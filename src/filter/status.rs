//! Status indications and PnP events: passed through unchanged (ndis-contract.md §3.5).
//! Owns nothing else.

#![allow(non_snake_case)]

use super::module::FilterModule;
use ndis_sys::*;

/// FilterStatus. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// Called by NDIS with a live module context and a valid indication.
pub unsafe extern "system" fn FilterStatus(
    ctx: NDIS_HANDLE,
    indication: *mut NDIS_STATUS_INDICATION,
) {
    // SAFETY: NDIS passes the live module context.
    let module = unsafe { &*(ctx as *const FilterModule) };
    // SAFETY: passing NDIS's indication on.
    unsafe { NdisFIndicateStatus(module.ndis_filter_handle, indication) };
}

/// FilterNetPnPEvent. PASSIVE_LEVEL.
///
/// # Safety
/// Called by NDIS with a live module context and a valid notification.
pub unsafe extern "system" fn FilterNetPnPEvent(
    ctx: NDIS_HANDLE,
    notification: *mut NET_PNP_EVENT_NOTIFICATION,
) -> NDIS_STATUS {
    // SAFETY: NDIS passes the live module context.
    let module = unsafe { &*(ctx as *const FilterModule) };
    // SAFETY: passing NDIS's event on; its status is the answer.
    unsafe { NdisFNetPnPEvent(module.ndis_filter_handle, notification) }
}

/// FilterDevicePnPEventNotify. PASSIVE_LEVEL.
///
/// # Safety
/// Called by NDIS with a live module context and a valid event.
pub unsafe extern "system" fn FilterDevicePnPEventNotify(
    ctx: NDIS_HANDLE,
    event: *mut NET_DEVICE_PNP_EVENT,
) {
    // SAFETY: NDIS passes the live module context.
    let module = unsafe { &*(ctx as *const FilterModule) };
    // SAFETY: passing NDIS's event on.
    unsafe { NdisFDevicePnPEventNotify(module.ndis_filter_handle, event) };
}
