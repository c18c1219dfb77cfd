//! OID requests: cloned and forwarded (ndis-contract.md §3.5). FilterOidRequest clones with
//! NdisAllocateCloneOidRequest, keeps the original in the clone's `SourceReserved[0]` and forwards the
//! clone; FilterOidRequestComplete copies the results back, frees the clone (NdisFreeCloneOidRequest)
//! and only then completes the original (NdisFOidRequestComplete). FilterCancelOidRequest propagates a
//! cancel whose RequestId matches the request in flight. The filter originates no OIDs.
//!
//! Owns: the OID forwarding. IRQL: <= DISPATCH_LEVEL everywhere.

#![allow(non_snake_case, non_upper_case_globals)] // NDIS names for handlers and constants

use super::module::FilterModule;
use crate::names::tags::OID_CLONE as OID_CLONE_TAG;
use core::sync::atomic::Ordering;
use ndis_sys::*;

/// FilterOidRequest. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// Called by NDIS with a live module context and a valid request.
pub unsafe extern "system" fn FilterOidRequest(
    ctx: NDIS_HANDLE,
    request: *mut NDIS_OID_REQUEST,
) -> NDIS_STATUS {
    // SAFETY: NDIS passes this module's context to its handlers (FilterModule::from_ctx).
    let module = unsafe { FilterModule::from_ctx(ctx) };
    let handle = module.ndis_filter_handle;
    let mut clone: *mut NDIS_OID_REQUEST = core::ptr::null_mut();
    // SAFETY: a valid request from NDIS; `clone` receives the new request or NULL.
    let status = unsafe { NdisAllocateCloneOidRequest(handle, request, OID_CLONE_TAG, &mut clone) };
    if status != NDIS_STATUS_SUCCESS || clone.is_null() {
        module
            .stats
            .oid_clone_failures
            .fetch_add(1, Ordering::Relaxed);
        return if status == NDIS_STATUS_SUCCESS {
            NDIS_STATUS_RESOURCES
        } else {
            status
        };
    }
    // SAFETY: the clone is ours until forwarded; the original is valid until we complete it.
    unsafe {
        (*clone).SourceReserved[0] = request as PVOID;
        // The clone answers to the original's RequestId, so a cancel of the original (forwarded by
        // FilterCancelOidRequest with that RequestId) reaches it, as in the ndislwf sample.
        (*clone).RequestId = (*request).RequestId;
        module
            .pending_oid_id
            .store((*request).RequestId, Ordering::Release);
    }
    module.oid_in_flight.store(true, Ordering::Release);
    module.pending_oid.store(clone, Ordering::Release);
    module.stats.oids_forwarded.fetch_add(1, Ordering::Relaxed);
    // SAFETY: forwarding our clone.
    let status = unsafe { NdisFOidRequest(handle, clone) };
    if status != NDIS_STATUS_PENDING {
        // SAFETY: NDIS will not complete the clone itself; complete it as NDIS would have.
        unsafe { FilterOidRequestComplete(ctx, clone, status) };
    }
    NDIS_STATUS_PENDING
}

/// FilterOidRequestComplete. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// Called by NDIS (or by FilterOidRequest) with a live module context and a clone this module forwarded.
pub unsafe extern "system" fn FilterOidRequestComplete(
    ctx: NDIS_HANDLE,
    clone: *mut NDIS_OID_REQUEST,
    status: NDIS_STATUS,
) {
    // SAFETY: NDIS passes this module's context to its handlers (FilterModule::from_ctx).
    let module = unsafe { FilterModule::from_ctx(ctx) };
    let handle = module.ndis_filter_handle;
    // SAFETY: a clone we made; SourceReserved[0] holds the original.
    let original = unsafe { (*clone).SourceReserved[0] } as *mut NDIS_OID_REQUEST;
    if original.is_null() {
        // Not a clone of ours (the filter originates none): nothing to complete upward.
        return;
    }
    module.oid_in_flight.store(false, Ordering::Release);
    module
        .pending_oid
        .store(core::ptr::null_mut(), Ordering::Release);
    // SAFETY: both requests are valid; the union arm follows the request type of the original.
    unsafe {
        match (*original).RequestType {
            NdisRequestMethod => {
                let src = (*clone).DATA.METHOD_INFORMATION;
                let dst = &mut (*original).DATA.METHOD_INFORMATION;
                dst.OutputBufferLength = src.OutputBufferLength;
                dst.BytesWritten = src.BytesWritten;
                dst.BytesRead = src.BytesRead;
                dst.BytesNeeded = src.BytesNeeded;
            }
            NdisRequestSetInformation => {
                let src = (*clone).DATA.SET_INFORMATION;
                let dst = &mut (*original).DATA.SET_INFORMATION;
                dst.BytesWrittenOrRead = src.BytesWrittenOrRead;
                dst.BytesNeeded = src.BytesNeeded;
            }
            _ => {
                let src = (*clone).DATA.QUERY_INFORMATION;
                let dst = &mut (*original).DATA.QUERY_INFORMATION;
                dst.BytesWrittenOrRead = src.BytesWrittenOrRead;
                dst.BytesNeeded = src.BytesNeeded;
            }
        }
        (*clone).SourceReserved[0] = core::ptr::null_mut();
        // The clone is freed before the original is completed.
        NdisFreeCloneOidRequest(handle, clone);
        NdisFOidRequestComplete(handle, original, status);
    }
}

/// FilterCancelOidRequest. IRQL <= DISPATCH_LEVEL. Propagates the cancel if the request in flight has
/// this RequestId (compared as a value: the request itself may be completing concurrently).
///
/// # Safety
/// Called by NDIS with a live module context.
pub unsafe extern "system" fn FilterCancelOidRequest(ctx: NDIS_HANDLE, request_id: PVOID) {
    // SAFETY: NDIS passes this module's context to its handlers (FilterModule::from_ctx).
    let module = unsafe { FilterModule::from_ctx(ctx) };
    if module.oid_in_flight.load(Ordering::Acquire)
        && module.pending_oid_id.load(Ordering::Acquire) == request_id
    {
        // SAFETY: the clone carries the same RequestId as the original; the lower layers cancel it.
        unsafe { NdisFCancelOidRequest(module.ndis_filter_handle, request_id) };
    }
}
