//! OIDs from the protocol, status indications from the miniport, and PnP events, as NDIS hands them
//! to the filter.

use super::lifecycle::passive;
use crate::abi::Callback;
use crate::kernel::{self, current_irql};
use crate::mem;
use crate::ndisf::miniport_fill_oid;
use crate::stack::{stack, ModuleState};
use crate::verifier::{self, rules};
use ndis_sys::*;

/// The filter's handler `pick` chooses, with the driver's ABI and the module context, when an OID or a
/// status indication may reach the module: `reach_module` (the caller's claim, see
/// `Adapter::claimed_reach`) and a module that is attached and not Attaching (no OIDs or status
/// indications then, network/attaching-a-filter-module; in concurrent mode an attach may begin while
/// the call is on its way). Read under one stack lock.
fn module_handler<F>(
    id: usize,
    reach_module: bool,
    pick: impl FnOnce(&NDIS_FILTER_DRIVER_CHARACTERISTICS) -> Option<F>,
) -> Option<(F, crate::abi::Abi, NDIS_HANDLE)> {
    let s = stack();
    let a = &s.adapters[id];
    match s.driver.as_ref() {
        Some(d)
            if reach_module
                && a.filter_handle != 0
                && !matches!(a.state, ModuleState::Detached | ModuleState::Attaching) =>
        {
            pick(&d.chars).map(|h| (h, d.abi, a.module_ctx as NDIS_HANDLE))
        }
        _ => None,
    }
}

/// The protocol's OID request through the filter (or straight to the miniport when bypassed).
/// `reach_module`: the caller's claim lets it reach the filter module (see `Adapter::claimed_reach`);
/// without it the request goes past the module even if one has been attached since.
pub(crate) fn protocol_oid(
    id: usize,
    request_type: u32,
    oid: NDIS_OID,
    buffer: &mut [u8],
    reach_module: bool,
) -> (NDIS_STATUS, u32) {
    let r = mem::raw_alloc(
        mem::Owner::Sim,
        POOL_FLAG_NON_PAGED,
        std::mem::size_of::<NDIS_OID_REQUEST>(),
        mem::SIM_TAG,
    ) as *mut NDIS_OID_REQUEST;
    // SAFETY: fresh zeroed request block; the buffer outlives the request (we wait for completion).
    unsafe {
        (*r).Header = NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_OID_REQUEST,
            NDIS_OID_REQUEST_REVISION_1,
            NDIS_SIZEOF_OID_REQUEST_REVISION_1,
        );
        (*r).RequestType = request_type;
        (*r).RequestId = (0x1000 + id) as PVOID;
        if request_type == NdisRequestMethod {
            (*r).DATA.METHOD_INFORMATION.Oid = oid;
            (*r).DATA.METHOD_INFORMATION.InformationBuffer = buffer.as_mut_ptr() as PVOID;
            (*r).DATA.METHOD_INFORMATION.InputBufferLength = buffer.len() as u32;
            (*r).DATA.METHOD_INFORMATION.OutputBufferLength = buffer.len() as u32;
        } else {
            (*r).DATA.QUERY_INFORMATION.Oid = oid;
            (*r).DATA.QUERY_INFORMATION.InformationBuffer = buffer.as_mut_ptr() as PVOID;
            (*r).DATA.QUERY_INFORMATION.InformationBufferLength = buffer.len() as u32;
        }
    }
    stack().adapters[id].proto_oids.insert(r as usize, None);
    let h = module_handler(id, reach_module, |c| c.OidRequestHandler);
    let st = match h {
        Some((f, abi, ctx)) => {
            // SAFETY: the registered FilterOidRequest with its module context.
            let st = passive("FilterOidRequest", || unsafe { f.invoke(abi, (ctx, r)) });
            if st != NDIS_STATUS_PENDING {
                let mut s = stack();
                if let Some(slot) = s.adapters[id].proto_oids.get_mut(&(r as usize)) {
                    if slot.is_some() {
                        drop(s);
                        verifier::report(rules::OID_MISUSE, r as usize, "FilterOidRequest completed the request and also returned a non-PENDING status");
                    } else {
                        *slot = Some(st);
                    }
                }
            }
            st
        }
        None => {
            if stack().adapters[id].cfg.pend_oids {
                stack().adapters[id].mp_oids.push_back(r as usize);
            } else {
                // SAFETY: valid request and buffer.
                unsafe { miniport_fill_oid(r) };
                stack().adapters[id]
                    .proto_oids
                    .insert(r as usize, Some(NDIS_STATUS_SUCCESS));
            }
            NDIS_STATUS_PENDING
        }
    };
    let _ = st;
    crate::flows::wait_until(id, rules::TIMEOUT_OID, "OID request", || {
        stack().adapters[id]
            .proto_oids
            .get(&(r as usize))
            .is_some_and(|s| s.is_some())
    });
    let status = stack().adapters[id]
        .proto_oids
        .remove(&(r as usize))
        .flatten();
    // SAFETY: our request block.
    let bytes = unsafe {
        if request_type == NdisRequestMethod {
            (*r).DATA.METHOD_INFORMATION.BytesWritten
        } else {
            (*r).DATA.QUERY_INFORMATION.BytesWrittenOrRead
        }
    };
    match status {
        Some(st) => {
            stack().adapters[id].counters.oids_completed += 1;
            mem::raw_free(r as *mut u8);
            (st, bytes)
        }
        // Timed out: the filter may still hold the request; keep it alive until teardown.
        None => (NDIS_STATUS_REQUEST_ABORTED, 0),
    }
}

/// The miniport indicates a status: through FilterStatus, or straight to the protocol.
pub(crate) fn miniport_status(id: usize, code: NDIS_STATUS, reach_module: bool) {
    miniport_status_with(id, code, std::ptr::null_mut(), 0, reach_module)
}

/// [`miniport_status`] with a status buffer (valid for the duration of the indication).
/// `reach_module` as for [`protocol_oid`].
pub(crate) fn miniport_status_with(
    id: usize,
    code: NDIS_STATUS,
    buffer: PVOID,
    size: u32,
    reach_module: bool,
) {
    // SAFETY: all-zero is valid for this plain-data structure.
    let mut ind: NDIS_STATUS_INDICATION = unsafe { std::mem::zeroed() };
    ind.Header = NDIS_OBJECT_HEADER::new(
        NDIS_OBJECT_TYPE_STATUS_INDICATION,
        NDIS_STATUS_INDICATION_REVISION_1,
        NDIS_SIZEOF_STATUS_INDICATION_REVISION_1,
    );
    ind.StatusCode = code;
    ind.StatusBuffer = buffer;
    ind.StatusBufferSize = size;
    ind.SourceHandle = (0xB00 + id) as NDIS_HANDLE;
    let h = module_handler(id, reach_module, |c| c.StatusHandler);
    match h {
        Some((f, abi, ctx)) => {
            let irql = current_irql();
            // SAFETY: the registered FilterStatus with its module context.
            unsafe { f.invoke(abi, (ctx, &mut ind as *mut _)) };
            if current_irql() != irql {
                verifier::report(rules::IRQL_NOT_RESTORED, 0, "FilterStatus changed the IRQL");
                kernel::set_irql(irql);
            }
        }
        None => stack().adapters[id].counters.statuses.push(code),
    }
}

/// NDIS sends a net PnP event to the filter (bypass: straight to the protocol).
pub(crate) fn net_pnp(id: usize, code: u32) -> NDIS_STATUS {
    // SAFETY: all-zero is valid for this plain-data structure.
    let mut ev: NET_PNP_EVENT_NOTIFICATION = unsafe { std::mem::zeroed() };
    ev.Header = NDIS_OBJECT_HEADER::new(
        NDIS_OBJECT_TYPE_DEFAULT,
        NET_PNP_EVENT_NOTIFICATION_REVISION_1,
        std::mem::size_of::<NET_PNP_EVENT_NOTIFICATION>() as u16,
    );
    ev.NetPnPEvent.NetEvent = code;
    let h = {
        let s = stack();
        let a = &s.adapters[id];
        match s.driver.as_ref() {
            Some(d) if a.filter_handle != 0 && a.state != ModuleState::Detached => d
                .chars
                .NetPnPEventHandler
                .map(|h| (h, d.abi, a.module_ctx as NDIS_HANDLE)),
            _ => None,
        }
    };
    match h {
        // SAFETY: the registered FilterNetPnPEvent with its module context.
        Some((f, abi, ctx)) => passive("FilterNetPnPEvent", || unsafe {
            f.invoke(abi, (ctx, &mut ev as *mut _))
        }),
        None => {
            stack().adapters[id].counters.pnp_events.push(code);
            NDIS_STATUS_SUCCESS
        }
    }
}
