//! The OID routines a filter calls (NdisAllocateCloneOidRequest, NdisFreeCloneOidRequest,
//! NdisFOidRequest, NdisFOidRequestComplete, NdisFCancelOidRequest) and the miniport's answer to an
//! OID the filter forwards.

#[allow(unused_imports)]
use super::*;
use crate::abi::Callback;
use crate::kernel::{self, check_irql, current_irql};
use crate::mem;
use crate::stack::{stack, state_of, ModuleState};
use crate::verifier::{self, rules};

/// Delivers a pended OID at the miniport: fill the buffer, then complete it up.
pub(crate) fn miniport_complete_oid(id: usize, req: usize) {
    let r = req as *mut NDIS_OID_REQUEST;
    // SAFETY: a request the filter forwarded and the miniport queued; it stays valid until completed.
    unsafe { miniport_fill_oid(r) };
    oid_complete_up(id, r, NDIS_STATUS_SUCCESS);
}

/// The miniport's answer to an OID: queries get a pattern, sets are consumed.
///
/// # Safety
/// `r` must be a valid request whose buffer is valid for its length.
pub(crate) unsafe fn miniport_fill_oid(r: *mut NDIS_OID_REQUEST) {
    // SAFETY: caller's guarantee.
    unsafe {
        match (*r).RequestType {
            NdisRequestSetInformation => {
                let len = (*r).DATA.SET_INFORMATION.InformationBufferLength;
                (*r).DATA.SET_INFORMATION.BytesWrittenOrRead = len;
            }
            NdisRequestMethod => {
                (*r).DATA.METHOD_INFORMATION.BytesRead =
                    (*r).DATA.METHOD_INFORMATION.InputBufferLength;
                (*r).DATA.METHOD_INFORMATION.BytesWritten = 0;
            }
            _ => {
                let q = (*r).DATA.QUERY_INFORMATION;
                if !q.InformationBuffer.is_null() {
                    std::ptr::write_bytes(
                        q.InformationBuffer as *mut u8,
                        0x5A,
                        q.InformationBufferLength as usize,
                    );
                }
                (*r).DATA.QUERY_INFORMATION.BytesWrittenOrRead = q.InformationBufferLength;
            }
        }
    }
}

/// The miniport completes a request upwards: to the filter's OidRequestComplete for a clone it sent,
/// or to the protocol when the filter is bypassed.
fn oid_complete_up(id: usize, r: *mut NDIS_OID_REQUEST, status: NDIS_STATUS) {
    let is_protocol_req = stack().adapters[id].proto_oids.contains_key(&(r as usize));
    if is_protocol_req {
        if let Some(slot) = stack().adapters[id].proto_oids.get_mut(&(r as usize)) {
            *slot = Some(status);
        }
        return;
    }
    let h = {
        let s = stack();
        let a = &s.adapters[id];
        s.driver.as_ref().and_then(|d| {
            d.chars
                .OidRequestCompleteHandler
                .map(|h| (h, d.abi, a.module_ctx as NDIS_HANDLE))
        })
    };
    match h {
        Some((f, abi, ctx)) => {
            let irql = current_irql();
            // SAFETY: the registered FilterOidRequestComplete with its module context.
            unsafe { f.invoke(abi, (ctx, r, status)) };
            if current_irql() != irql {
                verifier::report(
                    rules::IRQL_NOT_RESTORED,
                    r as usize,
                    "FilterOidRequestComplete changed the IRQL",
                );
                kernel::set_irql(irql);
            }
        }
        None => verifier::report(
            rules::BAD_OBJECT,
            r as usize,
            "OID forwarded by a filter without OidRequestCompleteHandler",
        ),
    }
}

crate::sim_exports! {
    module = "ndis.sys";

    /// `NdisAllocateCloneOidRequest`: IRQL <= DISPATCH_LEVEL.
    fn NdisAllocateCloneOidRequest(handle: NDIS_HANDLE, req: *mut NDIS_OID_REQUEST, tag: u32, clone_out: *mut *mut NDIS_OID_REQUEST) -> NDIS_STATUS {
        check_irql("NdisAllocateCloneOidRequest", DISPATCH_LEVEL, req as usize);
        let Some(id) = module_or_report("NdisAllocateCloneOidRequest", handle) else { return NDIS_STATUS_INVALID_PARAMETER };
        if clone_out.is_null() || req.is_null() {
            return NDIS_STATUS_INVALID_PARAMETER;
        }
        // SAFETY: valid out pointer.
        unsafe { *clone_out = std::ptr::null_mut() };
        // SAFETY: the driver passes the request NDIS gave it.
        let hdr = unsafe { (*req).Header };
        if hdr.Type != NDIS_OBJECT_TYPE_OID_REQUEST || hdr.Size < NDIS_SIZEOF_OID_REQUEST_REVISION_1 {
            verifier::report(rules::BAD_OBJECT, req as usize, "NdisAllocateCloneOidRequest: bad NDIS_OBJECT_HEADER (0x7C/0x21)");
            return NDIS_STATUS_INVALID_PARAMETER;
        }
        if crate::fault::should_fail(crate::fault::AllocSite::CloneOid, std::mem::size_of::<NDIS_OID_REQUEST>(), tag) {
            return NDIS_STATUS_RESOURCES;
        }
        let c = mem::raw_alloc(mem::Owner::Sim, POOL_FLAG_NON_PAGED, std::mem::size_of::<NDIS_OID_REQUEST>(), tag) as *mut NDIS_OID_REQUEST;
        // SAFETY: fresh block of the request's size; the source is a valid request.
        unsafe {
            std::ptr::copy_nonoverlapping(req, c, 1);
            // The sample copies RequestId into its clone itself: ndis-sim's clone does not carry it.
            (*c).RequestId = std::ptr::null_mut();
            (*c).NdisReserved = [std::ptr::null_mut(); NDIS_OID_REQUEST_NDIS_RESERVED_SIZE];
            (*c).SourceReserved = [std::ptr::null_mut(); 2];
            (*c).MiniportReserved = [std::ptr::null_mut(); 2];
            *clone_out = c;
        }
        stack().adapters[id].clones.insert(c as usize, req as usize);
        NDIS_STATUS_SUCCESS
    }

    /// `NdisFreeCloneOidRequest`: IRQL <= DISPATCH_LEVEL.
    fn NdisFreeCloneOidRequest(handle: NDIS_HANDLE, clone: *mut NDIS_OID_REQUEST) {
        check_irql("NdisFreeCloneOidRequest", DISPATCH_LEVEL, clone as usize);
        let Some(id) = module_or_report("NdisFreeCloneOidRequest", handle) else { return };
        let known = stack().adapters[id].clones.remove(&(clone as usize)).is_some();
        if known {
            mem::raw_free(clone as *mut u8);
        } else {
            verifier::report(rules::OID_MISUSE, clone as usize, "NdisFreeCloneOidRequest on a request that is not a live clone");
        }
    }

    /// `NdisFOidRequest`: IRQL <= DISPATCH_LEVEL; not while Attaching/Detached.
    fn NdisFOidRequest(handle: NDIS_HANDLE, req: *mut NDIS_OID_REQUEST) -> NDIS_STATUS {
        check_irql("NdisFOidRequest", DISPATCH_LEVEL, req as usize);
        let Some(id) = module_or_report("NdisFOidRequest", handle) else { return NDIS_STATUS_INVALID_PARAMETER };
        let st = state_of(id);
        if matches!(st, ModuleState::Attaching | ModuleState::Detached) {
            verifier::report(rules::STATE_FORBIDS_OID, req as usize, format!("NdisFOidRequest in state {st:?}"));
        }
        // SAFETY: the driver passes a valid request.
        let hdr = unsafe { (*req).Header };
        if hdr.Type != NDIS_OBJECT_TYPE_OID_REQUEST || hdr.Size < NDIS_SIZEOF_OID_REQUEST_REVISION_1 {
            return NDIS_STATUS_INVALID_PARAMETER;
        }
        let original = stack().adapters[id].clones.get(&(req as usize)).copied();
        if let Some(o) = original {
            // SAFETY: a live clone and its original, both valid while the OID is in flight.
            let (mine, theirs) = unsafe { ((*req).RequestId, (*(o as *mut NDIS_OID_REQUEST)).RequestId) };
            if mine != theirs {
                verifier::report(rules::OID_CLONE_REQUEST_ID, req as usize,
                    format!("NdisFOidRequest: clone RequestId {mine:p}, original's {theirs:p}: a cancel of the original cannot reach it"));
            }
        }
        if stack().adapters[id].cfg.pend_oids {
            stack().adapters[id].mp_oids.push_back(req as usize);
            return NDIS_STATUS_PENDING;
        }
        // SAFETY: a valid request with a valid buffer.
        unsafe { miniport_fill_oid(req) };
        NDIS_STATUS_SUCCESS
    }

    /// `NdisFOidRequestComplete`: completes the protocol's original request; its clone must already
    /// be freed.
    fn NdisFOidRequestComplete(handle: NDIS_HANDLE, req: *mut NDIS_OID_REQUEST, status: NDIS_STATUS) {
        check_irql("NdisFOidRequestComplete", DISPATCH_LEVEL, req as usize);
        let Some(id) = module_or_report("NdisFOidRequestComplete", handle) else { return };
        let mut s = stack();
        let a = &mut s.adapters[id];
        let live_clone = a.clones.values().any(|&o| o == req as usize);
        match a.proto_oids.get_mut(&(req as usize)) {
            Some(slot) if slot.is_none() => {
                *slot = Some(status);
                drop(s);
                if live_clone {
                    verifier::report(rules::OID_MISUSE, req as usize, "original OID completed before its clone was freed");
                }
            }
            _ => {
                drop(s);
                verifier::report(rules::OID_MISUSE, req as usize, "NdisFOidRequestComplete on a request that is not pending (twice, or a filter-originated one)");
            }
        }
    }

    /// `NdisFCancelOidRequest`: nothing is cancellable in the simulated miniport.
    fn NdisFCancelOidRequest(handle: NDIS_HANDLE, request_id: PVOID) {
        let _ = request_id;
        check_irql("NdisFCancelOidRequest", DISPATCH_LEVEL, handle as usize);
        module_or_report("NdisFCancelOidRequest", handle);
    }
}
