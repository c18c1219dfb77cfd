//! What the test filters (`lwf.rs`, the pass-through filter with its `Bad` knobs, and `racy_lwf.rs`,
//! the receive-retreating filter with its `RACY` switch) write the same way, against ndis-sys only:
//! the driver characteristics' header and names, the filter attributes, sends
//! completed as paused, receives returned while not running, and the deregistration at unload.
#![allow(dead_code)]

use ndis_sys::*;
use std::sync::atomic::{AtomicPtr, Ordering::SeqCst};

/// Filter characteristics with the header of `revision` (`size` bytes), NDIS 6.`minor` and the
/// names; every handler NULL for the caller to set.
pub fn characteristics(
    revision: u8,
    size: u16,
    minor: u8,
    friendly: &'static [u16],
    unique: &'static [u16],
    service: &'static [u16],
) -> NDIS_FILTER_DRIVER_CHARACTERISTICS {
    // SAFETY: all-zero characteristics are valid (NULL handlers) before filling them.
    let mut c: NDIS_FILTER_DRIVER_CHARACTERISTICS = unsafe { core::mem::zeroed() };
    c.Header = NDIS_OBJECT_HEADER::new(
        NDIS_OBJECT_TYPE_FILTER_DRIVER_CHARACTERISTICS,
        revision,
        size,
    );
    c.MajorNdisVersion = 6;
    c.MinorNdisVersion = minor;
    c.FriendlyName = UNICODE_STRING::from_static(friendly);
    c.UniqueName = UNICODE_STRING::from_static(unique);
    c.ServiceName = UNICODE_STRING::from_static(service);
    c
}

/// NdisFSetAttributes with `ctx` as the module context.
///
/// # Safety
/// Inside FilterAttach of `handle`.
pub unsafe fn set_attributes(handle: NDIS_HANDLE, ctx: NDIS_HANDLE) -> NDIS_STATUS {
    let mut a = NDIS_FILTER_ATTRIBUTES {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_FILTER_ATTRIBUTES,
            NDIS_FILTER_ATTRIBUTES_REVISION_1,
            NDIS_SIZEOF_FILTER_ATTRIBUTES_REVISION_1,
        ),
        Flags: 0,
    };
    // SAFETY: inside FilterAttach (caller contract) with valid attributes.
    unsafe { NdisFSetAttributes(handle, ctx, &mut a) }
}

/// Completes a send chain NDIS handed a module that is not running, each NBL with
/// NDIS_STATUS_PAUSED, at the IRQL the send flags say.
///
/// # Safety
/// Inside FilterSendNetBufferLists of `handle`, with the chain it was given.
pub unsafe fn complete_sends_paused(handle: NDIS_HANDLE, nbls: *mut NET_BUFFER_LIST, flags: u32) {
    let mut n = nbls;
    while !n.is_null() {
        // SAFETY: NBLs NDIS handed us (caller contract).
        unsafe {
            (*n).Status = NDIS_STATUS_PAUSED;
            n = (*n).Next;
        }
    }
    let f = if NDIS_TEST_SEND_AT_DISPATCH_LEVEL(flags) {
        NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL
    } else {
        0
    };
    // SAFETY: completing what we were given.
    unsafe { NdisFSendNetBufferListsComplete(handle, nbls, f) };
}

/// Returns a receive chain (one NDIS may have pended: not a RESOURCES indication) at the IRQL the
/// receive flags say.
///
/// # Safety
/// Inside FilterReceiveNetBufferLists of `handle`, with the chain it was given.
pub unsafe fn return_receives(handle: NDIS_HANDLE, nbls: *mut NET_BUFFER_LIST, flags: u32) {
    let f = if NDIS_TEST_RECEIVE_AT_DISPATCH_LEVEL(flags) {
        NDIS_RETURN_FLAGS_DISPATCH_LEVEL
    } else {
        0
    };
    // SAFETY: returning what we were given (caller contract).
    unsafe { NdisFReturnNetBufferLists(handle, nbls, f) };
}

/// DriverUnload's NdisFDeregisterFilterDriver of the handle registration stored in `handle`.
///
/// # Safety
/// PASSIVE_LEVEL, from DriverUnload of a registered filter driver.
pub unsafe fn deregister(handle: &AtomicPtr<core::ffi::c_void>) {
    // SAFETY: the handle registration gave us; PASSIVE_LEVEL (caller contract).
    unsafe { NdisFDeregisterFilterDriver(handle.swap(core::ptr::null_mut(), SeqCst)) };
}
