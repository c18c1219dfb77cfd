//! Status indications and PnP events: passed through unchanged (ndis-contract.md §3.5); a change of
//! the NIC's task offload configuration (NDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG, whose status buffer
//! is the new NDIS_OFFLOAD) is also copied into the module's capabilities for the vlan transform.
//! Owns nothing else.

#![allow(non_snake_case)]

use super::module::FilterModule;
use crate::transform::offload::NicCaps;
use ndis_sys::*;

/// FilterStatus. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// Called by NDIS with a live module context and a valid indication.
pub unsafe extern "system" fn FilterStatus(
    ctx: NDIS_HANDLE,
    indication: *mut NDIS_STATUS_INDICATION,
) {
    // SAFETY: NDIS passes this module's context to its handlers (FilterModule::from_ctx).
    let module = unsafe { FilterModule::from_ctx(ctx) };
    // SAFETY: NDIS passes a valid indication; its buffer holds StatusBufferSize bytes.
    unsafe {
        let ind = &*indication;
        if ind.StatusCode == NDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG
            && !ind.StatusBuffer.is_null()
            && ind.StatusBufferSize as usize >= core::mem::size_of::<NDIS_OBJECT_HEADER>()
        {
            let o = ind.StatusBuffer as *const NDIS_OFFLOAD;
            // Never read past the buffer: the parser trusts Header.Size, so cap it.
            if (*o).Header.Size as u32 <= ind.StatusBufferSize {
                module.nic.store_offload(&NicCaps::from_ndis_offload(o));
            }
        }
    }
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
    // SAFETY: NDIS passes this module's context to its handlers (FilterModule::from_ctx).
    let module = unsafe { FilterModule::from_ctx(ctx) };
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
    // SAFETY: NDIS passes this module's context to its handlers (FilterModule::from_ctx).
    let module = unsafe { FilterModule::from_ctx(ctx) };
    // SAFETY: passing NDIS's event on.
    unsafe { NdisFDevicePnPEventNotify(module.ndis_filter_handle, event) };
}
