//! The NdisF* routines a filter calls, and the lifecycle flows NDIS runs on a filter module
//! (register, attach, restart, pause, detach, deregister), OID forwarding, status and PnP.
//!
//! Each export checks its IRQL, its handle, the module state and the ownership of every NBL it is
//! given, then moves the NBLs to the next layer of [`crate::stack`]. Lifecycle flows are driven by the
//! harness ([`crate::Adapter`]) at PASSIVE_LEVEL with the traffic gate held exclusively.

use crate::abi::{caller_abi, Callback};
use crate::kernel::{self, check_dispatch_flag, check_irql, current_irql};
use crate::mem;
use crate::nbl::{self, Creator, Dir, Holder};
use crate::stack::{self, adapter_of, stack, ModuleState};
use crate::verifier::{self, rules};
use ndis_sys::*;

fn module_or_report(routine: &str, handle: NDIS_HANDLE) -> Option<usize> {
    let id = adapter_of(handle);
    if id.is_none() {
        verifier::report(
            rules::BAD_HANDLE,
            handle as usize,
            format!("{routine}: not a live NdisFilterHandle"),
        );
    }
    id
}

fn state_of(id: usize) -> ModuleState {
    stack().adapters[id].state
}

/// Checks every NBL of a chain the filter hands on is registered and held by the filter.
fn take_from_filter(routine: &str, head: *mut NET_BUFFER_LIST) -> Vec<*mut NET_BUFFER_LIST> {
    // SAFETY: the driver passes a NULL-terminated chain of NBLs.
    let list = unsafe { nbl::nbl_chain(head) };
    let mut ok = Vec::new();
    for n in list {
        match nbl::nbl_record(n) {
            None => verifier::report(
                rules::UNKNOWN_NBL,
                n as usize,
                format!("{routine}: NBL not allocated by NDIS"),
            ),
            Some(r) if r.holder != Holder::Filter => verifier::report(
                rules::NBL_TOUCHED_AFTER_HANDOFF,
                n as usize,
                format!(
                    "{routine}: the filter passed an NBL it does not hold (held by {:?})",
                    r.holder
                ),
            ),
            Some(_) => ok.push(n),
        }
    }
    ok
}

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

    /// `NdisFRegisterFilterDriver`: PASSIVE_LEVEL. Validates and copies the characteristics, calls
    /// FilterSetOptions inside, records the caller's calling convention for every later callback.
    fn NdisFRegisterFilterDriver(driver_object: *mut DRIVER_OBJECT, context: NDIS_HANDLE,
        chars: *mut NDIS_FILTER_DRIVER_CHARACTERISTICS, handle_out: *mut NDIS_HANDLE) -> NDIS_STATUS {
        check_irql("NdisFRegisterFilterDriver", PASSIVE_LEVEL, chars as usize);
        if driver_object.is_null() || chars.is_null() || handle_out.is_null() {
            verifier::report(rules::BAD_OBJECT, chars as usize, "NdisFRegisterFilterDriver: NULL argument");
            return NDIS_STATUS_INVALID_PARAMETER;
        }
        if stack().driver.is_some() {
            verifier::report(rules::BAD_OBJECT, chars as usize, "NdisFRegisterFilterDriver called twice");
            return NDIS_STATUS_FAILURE;
        }
        // SAFETY: the driver passes a characteristics block of at least Header.Size bytes.
        let hdr = unsafe { (*chars).Header };
        let need = match hdr.Revision {
            NDIS_FILTER_CHARACTERISTICS_REVISION_1 => NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_1,
            NDIS_FILTER_CHARACTERISTICS_REVISION_2 => NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_2,
            NDIS_FILTER_CHARACTERISTICS_REVISION_3 => NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_3,
            _ => u16::MAX,
        };
        if hdr.Type != NDIS_OBJECT_TYPE_FILTER_DRIVER_CHARACTERISTICS || hdr.Size < need {
            verifier::report(rules::BAD_OBJECT, chars as usize,
                format!("filter characteristics header {{Type {:#x}, Revision {}, Size {:#x}}} invalid", hdr.Type, hdr.Revision, hdr.Size));
            return NDIS_STATUS_BAD_CHARACTERISTICS;
        }
        let mut copy: NDIS_FILTER_DRIVER_CHARACTERISTICS = {
            // SAFETY: all-zero is a valid value (NULL handlers, empty strings).
            unsafe { std::mem::zeroed() }
        };
        // SAFETY: copy exactly the bytes the revision defines; the rest stays NULL.
        unsafe { std::ptr::copy_nonoverlapping(chars as *const u8, &mut copy as *mut _ as *mut u8, need as usize) };
        let version = (copy.MajorNdisVersion as u32) << 16 | copy.MinorNdisVersion as u32;
        let sys = stack().ndis_version;
        if copy.MajorNdisVersion != 6 || version > sys || (copy.MinorNdisVersion >= 80 && hdr.Revision < NDIS_FILTER_CHARACTERISTICS_REVISION_3) {
            verifier::report(rules::BAD_OBJECT, chars as usize,
                format!("NDIS version {}.{} with characteristics revision {} on a {:#x} system", copy.MajorNdisVersion, copy.MinorNdisVersion, hdr.Revision, sys));
            return NDIS_STATUS_BAD_VERSION;
        }
        if copy.AttachHandler.is_none() || copy.DetachHandler.is_none() || copy.RestartHandler.is_none() || copy.PauseHandler.is_none() {
            verifier::report(rules::BAD_OBJECT, chars as usize, "mandatory Attach/Detach/Restart/Pause handler missing");
            return NDIS_STATUS_BAD_CHARACTERISTICS;
        }
        if copy.OidRequestHandler.is_some() != copy.OidRequestCompleteHandler.is_some() {
            verifier::report(rules::BAD_OBJECT, chars as usize, "OidRequest and OidRequestComplete handlers must come together");
            return NDIS_STATUS_BAD_CHARACTERISTICS;
        }
        if copy.ReceiveNetBufferListsHandler.is_some() && copy.StatusHandler.is_none() {
            verifier::report(rules::BAD_OBJECT, chars as usize, "a filter with FilterReceiveNetBufferLists must have FilterStatus");
            return NDIS_STATUS_BAD_CHARACTERISTICS;
        }
        // SAFETY: the I/O manager's driver object (checked non-NULL).
        if unsafe { (*driver_object).DriverUnload }.is_none() {
            verifier::report(rules::UNLOAD_NOT_SET_AT_REGISTER, driver_object as usize,
                "NdisFRegisterFilterDriver: DRIVER_OBJECT.DriverUnload is not set yet (set it before registering, as the ndislwf sample does)");
        }
        let abi = caller_abi();
        let handle = stack::alloc_handle();
        let set_options = copy.SetOptionsHandler;
        stack().driver = Some(stack::DriverRec { handle, abi, chars: copy, context: context as usize });
        // SAFETY: valid out pointer (checked non-NULL).
        unsafe { *handle_out = handle as NDIS_HANDLE };
        verifier::log(format!("[ndis] filter driver registered ({abi:?}), NDIS {}.{}", version >> 16, version & 0xFFFF));
        if let Some(f) = set_options {
            // SAFETY: the registered FilterSetOptions.
            let st = unsafe { f.invoke(abi, (handle as NDIS_HANDLE, context)) };
            if st != NDIS_STATUS_SUCCESS {
                stack().driver = None;
                mem::raw_free(handle as *mut u8);
                return st;
            }
        }
        NDIS_STATUS_SUCCESS
    }

    /// `NdisFDeregisterFilterDriver`: PASSIVE_LEVEL; pauses and detaches every module first.
    fn NdisFDeregisterFilterDriver(handle: NDIS_HANDLE) {
        check_irql("NdisFDeregisterFilterDriver", PASSIVE_LEVEL, handle as usize);
        if stack::driver_handle() != Some(handle as usize) {
            verifier::report(rules::BAD_HANDLE, handle as usize, "NdisFDeregisterFilterDriver: not the registered driver handle");
            return;
        }
        let n = stack().adapters.len();
        for id in 0..n {
            let st = state_of(id);
            if st == ModuleState::Running {
                let _ = pause_flow(id);
            }
            if state_of(id) == ModuleState::Paused {
                detach_flow(id);
            }
        }
        let d = stack().driver.take();
        if let Some(d) = d {
            mem::raw_free(d.handle as *mut u8);
        }
        verifier::log("[ndis] filter driver deregistered");
    }

    /// `NdisFSetAttributes`: PASSIVE_LEVEL, only inside FilterAttach.
    fn NdisFSetAttributes(handle: NDIS_HANDLE, module_ctx: NDIS_HANDLE, attrs: *mut NDIS_FILTER_ATTRIBUTES) -> NDIS_STATUS {
        check_irql("NdisFSetAttributes", PASSIVE_LEVEL, handle as usize);
        let Some(id) = module_or_report("NdisFSetAttributes", handle) else { return NDIS_STATUS_INVALID_PARAMETER };
        if attrs.is_null() {
            verifier::report(rules::BAD_OBJECT, 0, "NdisFSetAttributes: NULL attributes");
            return NDIS_STATUS_INVALID_PARAMETER;
        }
        // SAFETY: the driver passes a valid attributes block.
        let h = unsafe { (*attrs).Header };
        if h.Type != NDIS_OBJECT_TYPE_FILTER_ATTRIBUTES || h.Revision < NDIS_FILTER_ATTRIBUTES_REVISION_1 || h.Size < NDIS_SIZEOF_FILTER_ATTRIBUTES_REVISION_1 {
            verifier::report(rules::BAD_OBJECT, attrs as usize, "NdisFSetAttributes: bad NDIS_OBJECT_HEADER");
            return NDIS_STATUS_INVALID_PARAMETER;
        }
        let mut s = stack();
        let a = &mut s.adapters[id];
        if a.state != ModuleState::Attaching {
            drop(s);
            verifier::report(rules::STATE_FORBIDS_COMPLETE, handle as usize, "NdisFSetAttributes outside FilterAttach");
            return NDIS_STATUS_FAILURE;
        }
        a.module_ctx = module_ctx as usize;
        a.set_attrs = true;
        NDIS_STATUS_SUCCESS
    }

    /// `NdisFRestartComplete`: PASSIVE_LEVEL, only for a pended restart.
    fn NdisFRestartComplete(handle: NDIS_HANDLE, status: NDIS_STATUS) {
        check_irql("NdisFRestartComplete", PASSIVE_LEVEL, handle as usize);
        let Some(id) = module_or_report("NdisFRestartComplete", handle) else { return };
        let mut s = stack();
        let a = &mut s.adapters[id];
        if a.state != ModuleState::Restarting || !a.restart_pending || a.restart_status.is_some() {
            drop(s);
            verifier::report(rules::STATE_FORBIDS_COMPLETE, handle as usize, "NdisFRestartComplete without a pended restart");
            return;
        }
        a.restart_status = Some(status);
    }

    /// `NdisFPauseComplete`: IRQL <= DISPATCH_LEVEL, only for a pended pause; nothing of the
    /// module's may be outstanding.
    fn NdisFPauseComplete(handle: NDIS_HANDLE) {
        check_irql("NdisFPauseComplete", DISPATCH_LEVEL, handle as usize);
        let Some(id) = module_or_report("NdisFPauseComplete", handle) else { return };
        {
            let s = stack();
            let a = &s.adapters[id];
            if a.state != ModuleState::Pausing || !a.pause_pending || a.pause_done {
                drop(s);
                stack().adapters[id].pause_record.completes += 1;
                verifier::report(rules::STATE_FORBIDS_COMPLETE, handle as usize, "NdisFPauseComplete without a pended pause (or twice)");
                return;
            }
        }
        check_pause_outstanding(id);
        let cpu = kernel::current_cpu();
        let mut s = stack();
        let a = &mut s.adapters[id];
        let r = &mut a.pause_record;
        r.completes += 1;
        r.released_at_complete.get_or_insert(r.released);
        r.complete_cpu = Some(cpu);
        // The module is Paused from this instant (the line of race.rs), in the same critical section
        // that tells the waiting pause flow, so no CPU can see Paused without the epoch advanced.
        a.pause_done = true;
        crate::race::pause_completed_locked(a);
    }

    /// `NdisGetVersion`: the simulated NDIS version ((major << 16) | minor).
    fn NdisGetVersion() -> u32 {
        stack().ndis_version
    }

    /// `NdisFSendNetBufferLists`: IRQL <= DISPATCH_LEVEL; Running (or Pausing, for pass-through).
    fn NdisFSendNetBufferLists(handle: NDIS_HANDLE, nbls: *mut NET_BUFFER_LIST, port: NDIS_PORT_NUMBER, flags: u32) {
        let _ = port;
        check_irql("NdisFSendNetBufferLists", DISPATCH_LEVEL, nbls as usize);
        check_dispatch_flag("NdisFSendNetBufferLists", flags & NDIS_SEND_FLAGS_DISPATCH_LEVEL != 0, nbls as usize);
        let Some(id) = module_or_report("NdisFSendNetBufferLists", handle) else { return };
        crate::race::preemption_point("NdisFSendNetBufferLists", true);
        let list = take_from_filter("NdisFSendNetBufferLists", nbls);
        // Sends NDIS issued before the pause completed and passed on unchanged are judged as Pausing
        // (race.rs: where the line is); anything else in the real state.
        let st = crate::race::judged_state(id, &list, true);
        let originated = list.iter().any(|&n| nbl::nbl_record(n).is_some_and(|r| r.creator == Creator::Driver));
        if !(st == ModuleState::Running || (st == ModuleState::Pausing && !originated)) {
            verifier::report(rules::STATE_FORBIDS_SEND, nbls as usize, format!("NdisFSendNetBufferLists in state {st:?} (originated: {originated}; {})", crate::race::line_detail(id, &list, true)));
        }
        for &n in &list {
            nbl::with_nbl(n, |r| {
                if r.creator == Creator::Driver {
                    r.dir = Dir::Send;
                    r.adapter = id;
                }
            });
        }
        if list.is_empty() {
            return;
        }
        let head = stack_link(&list);
        stack_miniport_accept(id, head, flags);
    }

    /// `NdisFSendNetBufferListsComplete`: IRQL <= DISPATCH_LEVEL; only sends from above the filter holds.
    fn NdisFSendNetBufferListsComplete(handle: NDIS_HANDLE, nbls: *mut NET_BUFFER_LIST, flags: u32) {
        check_irql("NdisFSendNetBufferListsComplete", DISPATCH_LEVEL, nbls as usize);
        check_dispatch_flag("NdisFSendNetBufferListsComplete", flags & NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL != 0, nbls as usize);
        let Some(id) = module_or_report("NdisFSendNetBufferListsComplete", handle) else { return };
        crate::race::preemption_point("NdisFSendNetBufferListsComplete", true);
        let list = nbl::known_chain(nbls, |n| {
            let rule = if nbl::recently_freed(n) { rules::DOUBLE_COMPLETE } else { rules::UNKNOWN_NBL };
            verifier::report(rule, n as usize, "NdisFSendNetBufferListsComplete: NBL not outstanding (completed twice, or not from NDIS)")
        });
        let mut ok = Vec::new();
        for n in list {
            match nbl::nbl_record(n) {
                None => {}
                Some(r) if r.creator != Creator::Protocol(id) => verifier::report(rules::DOUBLE_COMPLETE, n as usize,
                    format!("NdisFSendNetBufferListsComplete on an NBL that is not a send from above ({:?})", r.creator)),
                Some(r) if r.holder != Holder::Filter => verifier::report(rules::DOUBLE_COMPLETE, n as usize,
                    format!("NdisFSendNetBufferListsComplete on an NBL the filter does not hold ({:?}): completed twice?", r.holder)),
                Some(_) => ok.push(n),
            }
        }
        stack_protocol_complete(id, &ok);
    }

    /// `NdisFCancelSendNetBufferLists`: the miniport aborts queued sends with that cancel id.
    fn NdisFCancelSendNetBufferLists(handle: NDIS_HANDLE, cancel_id: PVOID) {
        check_irql("NdisFCancelSendNetBufferLists", DISPATCH_LEVEL, handle as usize);
        let Some(id) = module_or_report("NdisFCancelSendNetBufferLists", handle) else { return };
        let hits: Vec<usize> = {
            let mut s = stack();
            let a = &mut s.adapters[id];
            let (hit, keep): (Vec<usize>, Vec<usize>) = a.mp_pending.iter().partition(|&&n| {
                // SAFETY: NBLs queued at the miniport are registered and held by it.
                unsafe { (*(n as *mut NET_BUFFER_LIST)).NetBufferListInfo[info::NetBufferListCancelId] == cancel_id }
            });
            a.mp_pending = keep;
            hit
        };
        if !hits.is_empty() {
            let old = stack().adapters[id].cfg.send_status;
            stack().adapters[id].cfg.send_status = NDIS_STATUS_SEND_ABORTED;
            stack::complete_sends(id, hits);
            stack().adapters[id].cfg.send_status = old;
        }
    }

    /// `NdisFIndicateReceiveNetBufferLists`: IRQL <= DISPATCH_LEVEL; Running/Restarting only (a
    /// pass-through while Pausing/Paused is RECEIVE_PASSED_WHILE_PAUSING); NumberOfNetBufferLists
    /// must match.
    fn NdisFIndicateReceiveNetBufferLists(handle: NDIS_HANDLE, nbls: *mut NET_BUFFER_LIST, port: NDIS_PORT_NUMBER, count: u32, flags: u32) {
        let _ = port;
        check_irql("NdisFIndicateReceiveNetBufferLists", DISPATCH_LEVEL, nbls as usize);
        check_dispatch_flag("NdisFIndicateReceiveNetBufferLists", flags & NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL != 0, nbls as usize);
        let Some(id) = module_or_report("NdisFIndicateReceiveNetBufferLists", handle) else { return };
        crate::race::preemption_point("NdisFIndicateReceiveNetBufferLists", true);
        let list = take_from_filter("NdisFIndicateReceiveNetBufferLists", nbls);
        // As for sends: receives NDIS issued before the pause completed, passed on unchanged, are
        // judged as Pausing (race.rs: where the line is).
        let st = crate::race::judged_state(id, &list, false);
        let originated = list.iter().any(|&n| nbl::nbl_record(n).is_some_and(|r| r.creator == Creator::Driver));
        let issued_before_pause = crate::race::issued_before_pause_began(id, &list);
        match st {
            ModuleState::Running | ModuleState::Restarting => {}
            // [PAUSING]: a Pausing (or Paused) module returns new receives from below at once
            // (NdisFReturnNetBufferLists, or just returning for NDIS_RECEIVE_FLAGS_RESOURCES). A
            // receive NDIS issued before FilterPause returned is not new: the filter may have entered
            // its callback while it was still Running and may pass it on while Pausing (race.rs:
            // where the line is);
            // judged Paused, it carries the filter's changes after the pause completed, which is
            // STATE_FORBIDS_RECEIVE as for any NBL past the line.
            ModuleState::Pausing if !originated && issued_before_pause => {}
            ModuleState::Pausing | ModuleState::Paused if !originated && !issued_before_pause => {
                verifier::report(rules::RECEIVE_PASSED_WHILE_PAUSING, nbls as usize, format!("NdisFIndicateReceiveNetBufferLists passes receives from below up in state {st:?}; they must be returned (or, with RESOURCES, dropped) ({})", crate::race::line_detail(id, &list, false)));
            }
            _ => verifier::report(rules::STATE_FORBIDS_RECEIVE, nbls as usize, format!("NdisFIndicateReceiveNetBufferLists in state {st:?} (originated: {originated}; {})", crate::race::line_detail(id, &list, false))),
        }
        for &n in &list {
            // SAFETY: registered NBL the filter held; sealed now that the protocol owns it.
            let seal = unsafe { nbl::seal_of(n) };
            nbl::with_nbl(n, |r| {
                r.holder = Holder::Protocol;
                r.seal = Some(seal);
                if r.creator == Creator::Driver {
                    r.dir = Dir::Receive;
                    r.adapter = id;
                    // An originated indication with RESOURCES comes straight back.
                    r.resources = flags & NDIS_RECEIVE_FLAGS_RESOURCES != 0;
                }
            });
        }
        if list.is_empty() {
            return;
        }
        let head = stack_link(&list);
        stack_protocol_receive(id, head, count, flags);
    }

    /// `NdisFReturnNetBufferLists`: IRQL <= DISPATCH_LEVEL; only receives from below the filter holds
    /// that were not indicated with NDIS_RECEIVE_FLAGS_RESOURCES.
    fn NdisFReturnNetBufferLists(handle: NDIS_HANDLE, nbls: *mut NET_BUFFER_LIST, flags: u32) {
        check_irql("NdisFReturnNetBufferLists", DISPATCH_LEVEL, nbls as usize);
        check_dispatch_flag("NdisFReturnNetBufferLists", flags & NDIS_RETURN_FLAGS_DISPATCH_LEVEL != 0, nbls as usize);
        let Some(id) = module_or_report("NdisFReturnNetBufferLists", handle) else { return };
        crate::race::preemption_point("NdisFReturnNetBufferLists", true);
        let list = nbl::known_chain(nbls, |n| {
            let rule = if nbl::recently_freed(n) { rules::DOUBLE_RETURN } else { rules::UNKNOWN_NBL };
            verifier::report(rule, n as usize, "NdisFReturnNetBufferLists: NBL not outstanding (returned twice, or not from NDIS)")
        });
        for n in list {
            match nbl::nbl_record(n) {
                None => {}
                Some(r) if r.creator != Creator::Miniport(id) => verifier::report(rules::DOUBLE_RETURN, n as usize,
                    format!("NdisFReturnNetBufferLists on an NBL that is not a receive from below ({:?})", r.creator)),
                Some(r) if r.resources => verifier::report(rules::RESOURCES_NBL_KEPT, n as usize,
                    "NdisFReturnNetBufferLists on an NBL indicated with NDIS_RECEIVE_FLAGS_RESOURCES"),
                Some(r) if r.holder != Holder::Filter => verifier::report(rules::DOUBLE_RETURN, n as usize,
                    format!("NdisFReturnNetBufferLists on an NBL the filter does not hold ({:?}): returned twice?", r.holder)),
                Some(_) => stack_miniport_take_back(id, n),
            }
        }
    }

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

    /// `NdisFIndicateStatus`: IRQL <= DISPATCH_LEVEL; not while Attaching/Detached.
    fn NdisFIndicateStatus(handle: NDIS_HANDLE, ind: *mut NDIS_STATUS_INDICATION) {
        check_irql("NdisFIndicateStatus", DISPATCH_LEVEL, ind as usize);
        let Some(id) = module_or_report("NdisFIndicateStatus", handle) else { return };
        let st = state_of(id);
        if matches!(st, ModuleState::Attaching | ModuleState::Detached) {
            verifier::report(rules::STATE_FORBIDS_STATUS, ind as usize, format!("NdisFIndicateStatus in state {st:?}"));
        }
        // SAFETY: the driver passes a valid status indication.
        let (hdr, code) = unsafe { ((*ind).Header, (*ind).StatusCode) };
        if hdr.Type != NDIS_OBJECT_TYPE_STATUS_INDICATION {
            verifier::report(rules::BAD_OBJECT, ind as usize, "NdisFIndicateStatus: bad NDIS_OBJECT_HEADER (0x7C/0x20)");
            return;
        }
        stack().adapters[id].counters.statuses.push(code);
    }

    /// `NdisFNetPnPEvent`: PASSIVE_LEVEL; the protocol accepts every event.
    fn NdisFNetPnPEvent(handle: NDIS_HANDLE, ev: *mut NET_PNP_EVENT_NOTIFICATION) -> NDIS_STATUS {
        check_irql("NdisFNetPnPEvent", PASSIVE_LEVEL, ev as usize);
        let Some(id) = module_or_report("NdisFNetPnPEvent", handle) else { return NDIS_STATUS_INVALID_PARAMETER };
        // SAFETY: the driver passes a valid notification.
        let code = unsafe { (*ev).NetPnPEvent.NetEvent };
        stack().adapters[id].counters.pnp_events.push(code);
        NDIS_STATUS_SUCCESS
    }

    /// `NdisFDevicePnPEventNotify`: PASSIVE_LEVEL; recorded.
    fn NdisFDevicePnPEventNotify(handle: NDIS_HANDLE, ev: *mut NET_DEVICE_PNP_EVENT) {
        check_irql("NdisFDevicePnPEventNotify", PASSIVE_LEVEL, ev as usize);
        module_or_report("NdisFDevicePnPEventNotify", handle);
    }
}

fn stack_link(list: &[*mut NET_BUFFER_LIST]) -> *mut NET_BUFFER_LIST {
    for (i, &n) in list.iter().enumerate() {
        // SAFETY: NBLs now in NDIS's hands.
        unsafe { (*n).Next = list.get(i + 1).copied().unwrap_or(std::ptr::null_mut()) };
    }
    list[0]
}

fn stack_miniport_accept(id: usize, head: *mut NET_BUFFER_LIST, flags: u32) {
    stack::miniport_accept(id, head, flags)
}
fn stack_protocol_complete(id: usize, list: &[*mut NET_BUFFER_LIST]) {
    stack::protocol_complete(id, list)
}
fn stack_protocol_receive(id: usize, head: *mut NET_BUFFER_LIST, count: u32, flags: u32) {
    stack::protocol_receive(id, head, count, flags)
}
fn stack_miniport_take_back(id: usize, n: *mut NET_BUFFER_LIST) {
    stack::miniport_take_back(id, n, "receive return")
}

fn check_pause_outstanding(id: usize) {
    let left = stack::pause_outstanding(id);
    stack().adapters[id].pause_record.outstanding_at_complete = Some(left.len());
    for (addr, what) in left {
        verifier::report(
            rules::PAUSE_WITH_OUTSTANDING,
            addr,
            format!("pause completed with {what}"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Lifecycle flows (PASSIVE_LEVEL, traffic gate held by the caller)

fn passive<R>(what: &str, f: impl FnOnce() -> R) -> R {
    assert_eq!(
        current_irql(),
        PASSIVE_LEVEL,
        "{what} must be driven at PASSIVE_LEVEL"
    );
    let r = f();
    if current_irql() != PASSIVE_LEVEL {
        verifier::report(
            rules::IRQL_NOT_RESTORED,
            0,
            format!("{what} returned at IRQL {}", current_irql()),
        );
        kernel::set_irql(PASSIVE_LEVEL);
    }
    r
}

/// Why a lifecycle step did not reach its target state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifecycleError {
    /// No filter driver is registered.
    NoDriver,
    /// The handler failed with this status.
    Failed(NDIS_STATUS),
    /// The step timed out (a TIMEOUT_* finding was reported).
    Timeout,
}

/// FilterAttach. Detached → Attaching → Paused (or back to Detached on failure).
pub(crate) fn attach_flow(id: usize) -> Result<(), LifecycleError> {
    let (f, abi, drvctx) = {
        let s = stack();
        let Some(d) = s.driver.as_ref() else {
            return Err(LifecycleError::NoDriver);
        };
        (
            d.chars.AttachHandler.expect("validated at registration"),
            d.abi,
            d.context,
        )
    };
    assert_eq!(
        state_of(id),
        ModuleState::Detached,
        "attach needs a detached adapter"
    );
    let handle = stack::alloc_handle();
    let mut params = build_attach_params(id);
    {
        let mut s = stack();
        let a = &mut s.adapters[id];
        a.filter_handle = handle;
        a.state = ModuleState::Attaching;
        a.set_attrs = false;
        a.module_ctx = 0;
    }
    // SAFETY: the registered FilterAttach; the parameters live across the call.
    let st = passive("FilterAttach", || unsafe {
        f.invoke(
            abi,
            (
                handle as NDIS_HANDLE,
                drvctx as NDIS_HANDLE,
                &mut *params as *mut _,
            ),
        )
    });
    drop(params);
    if !matches!(
        st,
        NDIS_STATUS_SUCCESS | NDIS_STATUS_RESOURCES | NDIS_STATUS_FAILURE | NDIS_STATUS_PENDING
    ) {
        verifier::report(rules::ATTACH_STATUS_UNDOCUMENTED, handle,
            format!("FilterAttach returned {:#x}; only NDIS_STATUS_SUCCESS, NDIS_STATUS_RESOURCES and NDIS_STATUS_FAILURE are documented", st as u32));
    }
    if st == NDIS_STATUS_SUCCESS {
        if !stack().adapters[id].set_attrs {
            verifier::report(
                rules::SET_ATTRIBUTES_MISSING,
                handle,
                "FilterAttach returned SUCCESS without NdisFSetAttributes",
            );
        }
        stack().adapters[id].state = ModuleState::Paused;
        verifier::log(format!("[ndis] adapter {id}: attached"));
        Ok(())
    } else {
        if st == NDIS_STATUS_PENDING {
            verifier::report(
                rules::BAD_OBJECT,
                handle,
                "FilterAttach returned PENDING (not allowed)",
            );
        }
        module_leak_check(id, handle, "failed attach");
        let mut s = stack();
        let a = &mut s.adapters[id];
        a.state = ModuleState::Detached;
        a.filter_handle = 0;
        drop(s);
        mem::raw_free(handle as *mut u8);
        Err(LifecycleError::Failed(st))
    }
}

fn build_attach_params(id: usize) -> Box<NDIS_FILTER_ATTACH_PARAMETERS> {
    let name: Vec<u16> = stack().adapters[id]
        .cfg
        .name
        .encode_utf16()
        .chain([0])
        .collect();
    let guid: Vec<u16> = format!("{{5CBF81BD-5055-47CD-9055-A76B2B4E{:04X}}}", id)
        .encode_utf16()
        .chain([0])
        .collect();
    let mut s = stack();
    let a = &mut s.adapters[id];
    a.names = vec![name, guid];
    let mk = |v: &Vec<u16>| NDIS_STRING {
        Length: ((v.len() - 1) * 2) as u16,
        MaximumLength: (v.len() * 2) as u16,
        Buffer: v.as_ptr() as *mut u16,
    };
    let strings = Box::new([mk(&a.names[0]), mk(&a.names[1])]);
    let strings = Box::leak(strings);
    // SAFETY: all-zero is valid for this plain-data structure.
    let mut p: Box<NDIS_FILTER_ATTACH_PARAMETERS> = Box::new(unsafe { std::mem::zeroed() });
    p.Header = NDIS_OBJECT_HEADER::new(
        NDIS_OBJECT_TYPE_FILTER_ATTACH_PARAMETERS,
        NDIS_FILTER_ATTACH_PARAMETERS_REVISION_4,
        NDIS_SIZEOF_FILTER_ATTACH_PARAMETERS_REVISION_4,
    );
    p.IfIndex = 100 + id as u32;
    p.NetLuid = 0x0006_0000_0000_0000 | id as u64;
    p.FilterModuleGuidName = &mut strings[1];
    p.BaseMiniportIfIndex = 10 + id as u32;
    p.BaseMiniportInstanceName = &mut strings[0];
    p.BaseMiniportName = &mut strings[0];
    p.MediaConnectState = 1;
    p.MediaDuplexState = 2;
    p.XmitLinkSpeed = 10_000_000_000;
    p.RcvLinkSpeed = 10_000_000_000;
    p.MiniportMediaType = a.cfg.medium;
    p.MacAddressLength = 6;
    p.CurrentMacAddress[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1 + id as u8]);
    p.LowerIfIndex = 10 + id as u32;
    // The miniport's offload configuration, valid for the duration of FilterAttach (the filter
    // copies what it needs); kept with the strings below.
    let offload = Box::leak(Box::new(a.cfg.nic_offload.ndis_offload()));
    p.DefaultOffloadConfiguration = offload as *mut NDIS_OFFLOAD as PVOID;
    LEAKED_OFFLOADS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(offload as *mut NDIS_OFFLOAD as usize);
    // The strings live as long as the adapter record; reclaimed with the leak-free teardown of the
    // boxed pair below when the process ends (tiny, per attach).
    LEAKED_STRINGS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(strings as *mut _ as usize);
    p
}

static LEAKED_STRINGS: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());
static LEAKED_OFFLOADS: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());

/// Frees the attach-parameter string descriptors (end of a simulation).
pub(crate) fn free_attach_strings() {
    let v = std::mem::take(&mut *LEAKED_STRINGS.lock().unwrap_or_else(|e| e.into_inner()));
    for p in v {
        // SAFETY: each came from Box::leak of this exact type in build_attach_params.
        drop(unsafe { Box::from_raw(p as *mut [NDIS_STRING; 2]) });
    }
    let v = std::mem::take(&mut *LEAKED_OFFLOADS.lock().unwrap_or_else(|e| e.into_inner()));
    for p in v {
        // SAFETY: each came from Box::leak of this exact type in build_attach_params.
        drop(unsafe { Box::from_raw(p as *mut NDIS_OFFLOAD) });
    }
}

/// FilterRestart. Paused → Restarting → Running.
pub(crate) fn restart_flow(id: usize) -> Result<(), LifecycleError> {
    assert_eq!(
        state_of(id),
        ModuleState::Paused,
        "restart needs a paused module"
    );
    let (f, opts, abi, ctx, handle) = {
        let s = stack();
        let Some(d) = s.driver.as_ref() else {
            return Err(LifecycleError::NoDriver);
        };
        let a = &s.adapters[id];
        (
            d.chars.RestartHandler.expect("validated"),
            d.chars.SetFilterModuleOptionsHandler,
            d.abi,
            a.module_ctx as NDIS_HANDLE,
            a.filter_handle,
        )
    };
    {
        let mut s = stack();
        let a = &mut s.adapters[id];
        a.state = ModuleState::Restarting;
        a.restart_pending = false;
        a.restart_status = None;
        // NDIS restarts the stack bottom-up: the miniport runs (and indicates) while the module is
        // Restarting (concurrent mode).
        a.race.mp_open = true;
    }
    if let Some(o) = opts {
        // SAFETY: the registered FilterSetModuleOptions.
        let st = passive("FilterSetModuleOptions", || unsafe {
            o.invoke(abi, (ctx,))
        });
        if st != NDIS_STATUS_SUCCESS {
            stack().adapters[id].state = ModuleState::Paused;
            miniport_quiesce(id);
            return Err(LifecycleError::Failed(st));
        }
    }
    // SAFETY: all-zero is valid for this plain-data structure.
    let mut p: NDIS_FILTER_RESTART_PARAMETERS = unsafe { std::mem::zeroed() };
    p.Header = NDIS_OBJECT_HEADER::new(
        NDIS_OBJECT_TYPE_FILTER_RESTART_PARAMETERS,
        NDIS_FILTER_RESTART_PARAMETERS_REVISION_1,
        NDIS_SIZEOF_FILTER_RESTART_PARAMETERS_REVISION_1,
    );
    p.MiniportMediaType = NdisMedium802_3;
    p.LowerIfIndex = 10 + id as u32;
    let attrs = RestartAttrs::new(id);
    p.RestartAttributes = attrs.entry;
    // SAFETY: the registered FilterRestart; `p` and the attributes live across the call.
    let mut st = passive("FilterRestart", || unsafe {
        f.invoke(abi, (ctx, &mut p as *mut _))
    });
    if st == NDIS_STATUS_PENDING {
        stack().adapters[id].restart_pending = true;
        let ok = stack::wait_until(id, rules::TIMEOUT_RESTART, "pended restart", || {
            stack().adapters[id].restart_status.is_some()
        });
        if !ok {
            stack().adapters[id].state = ModuleState::Paused;
            miniport_quiesce(id);
            return Err(LifecycleError::Timeout);
        }
        st = stack().adapters[id].restart_status.expect("checked");
    }
    stack().adapters[id].restart_pending = false;
    let _ = handle;
    if st == NDIS_STATUS_SUCCESS {
        // What the filter left in the attributes is what the drivers above are told.
        let top = attrs.backfill(handle);
        stack().adapters[id].top_backfill = Some(top);
        verifier::log(format!("[ndis] adapter {id}: restart attributes up: DataBackFillSize {}, ContextBackFillSize {}", top.0, top.1));
        {
            let mut s = stack();
            let a = &mut s.adapters[id];
            a.state = ModuleState::Running;
            // Then the protocol above restarts and may send.
            a.race.proto_open = true;
        }
        verifier::log(format!("[ndis] adapter {id}: running"));
        Ok(())
    } else {
        stack().adapters[id].state = ModuleState::Paused;
        miniport_quiesce(id);
        Err(LifecycleError::Failed(st))
    }
}

/// The restart attributes NDIS hands FilterRestart (DOCUMENTED: ns-ndis-_ndis_restart_attributes,
/// ns-ndis-_ndis_restart_general_attributes): one OID_GEN_MINIPORT_RESTART_ATTRIBUTES entry whose
/// Data is an NDIS_RESTART_GENERAL_ATTRIBUTES (revision 2) with the miniport's values; the filter may
/// change any member, and what it leaves there goes up to the drivers above.
struct RestartAttrs {
    entry: *mut NDIS_RESTART_ATTRIBUTES,
    rss: *mut u8,
}

impl RestartAttrs {
    fn new(id: usize) -> Self {
        let cfg = stack().adapters[id].cfg.clone();
        let len = std::mem::size_of::<NDIS_RESTART_GENERAL_ATTRIBUTES>();
        let entry = mem::raw_alloc(
            mem::Owner::Sim,
            POOL_FLAG_NON_PAGED,
            0x10 + len,
            mem::SIM_TAG,
        ) as *mut NDIS_RESTART_ATTRIBUTES;
        // NDIS_RECEIVE_SCALE_CAPABILITIES (0x14 bytes) zero-filled: no RSS.
        let rss = mem::raw_alloc(mem::Owner::Sim, POOL_FLAG_NON_PAGED, 0x20, mem::SIM_TAG);
        // SAFETY: fresh zeroed blocks of the sizes written.
        unsafe {
            (*entry).Next = std::ptr::null_mut();
            (*entry).Oid = OID_GEN_MINIPORT_RESTART_ATTRIBUTES;
            (*entry).DataLength = len as u32;
            let g = NDIS_RESTART_ATTRIBUTES::data(entry) as *mut NDIS_RESTART_GENERAL_ATTRIBUTES;
            (*g).Header = NDIS_OBJECT_HEADER::new(
                NDIS_OBJECT_TYPE_RESTART_GENERAL_ATTRIBUTES,
                NDIS_RESTART_GENERAL_ATTRIBUTES_REVISION_2,
                NDIS_SIZEOF_RESTART_GENERAL_ATTRIBUTES_REVISION_2,
            );
            (*g).MtuSize = cfg.mtu_size;
            (*g).MaxXmitLinkSpeed = 10_000_000_000;
            (*g).MaxRcvLinkSpeed = 10_000_000_000;
            (*g).LookaheadSize = cfg.mtu_size;
            (*g).MaxMulticastListSize = 32;
            (*g).RecvScaleCapabilities = rss as PVOID;
            (*g).AccessType = 2; // NET_IF_ACCESS_BROADCAST
            (*g).ConnectionType = 1; // NET_IF_CONNECTION_DEDICATED
            (*g).DataBackFillSize = cfg.lower_data_backfill;
            (*g).ContextBackFillSize = cfg.lower_context_backfill;
        }
        RestartAttrs { entry, rss }
    }

    /// (DataBackFillSize, ContextBackFillSize) now in the attributes; a ContextBackFillSize that is
    /// not a multiple of MEMORY_ALLOCATION_ALIGNMENT is NBL_CONTEXT_MISALIGNED (the drivers above
    /// allocate their NBLs' context backfill with it).
    fn backfill(&self, handle: usize) -> (u32, u32) {
        // SAFETY: our live block; the filter may have changed the values, not the shape.
        let (d, c) = unsafe {
            let g =
                NDIS_RESTART_ATTRIBUTES::data(self.entry) as *const NDIS_RESTART_GENERAL_ATTRIBUTES;
            ((*g).DataBackFillSize, (*g).ContextBackFillSize)
        };
        if !(c as usize).is_multiple_of(MEMORY_ALLOCATION_ALIGNMENT) || c > u16::MAX as u32 {
            verifier::report(rules::NBL_CONTEXT_MISALIGNED, handle,
                format!("FilterRestart left ContextBackFillSize {c}: not a multiple of MEMORY_ALLOCATION_ALIGNMENT ({MEMORY_ALLOCATION_ALIGNMENT}) within a USHORT"));
        }
        (d, c)
    }
}

impl Drop for RestartAttrs {
    fn drop(&mut self) {
        mem::raw_free(self.entry as *mut u8);
        mem::raw_free(self.rss);
    }
}

/// Pauses the protocol above (its sends completed, its held receives returned), then FilterPause.
/// Running → Pausing → Paused. In concurrent mode ([`crate::race`]) the protocol stops sending and
/// its sends complete, FilterPause runs while the miniport still indicates and completes, and once
/// the pause completed the miniport is paused too (no new indications; every one in progress and
/// every indicated NBL back). With the deterministic interleaving, the FilterPause call itself lands
/// at a preemption point the schedule picks.
pub(crate) fn pause_flow(id: usize) -> Result<(), LifecycleError> {
    assert_eq!(
        state_of(id),
        ModuleState::Running,
        "pause needs a running module"
    );
    let hold = stack().adapters[id].cfg.pause_hold.clone();
    stack().adapters[id].pause_record = stack::PauseRecord::default();
    if stack().driver.is_none() {
        return Err(LifecycleError::NoDriver);
    }
    match &hold {
        // NDIS pauses overlying drivers first: the protocol stops sending and its sends complete
        // before the filter is paused (serialised mode: its held receives are returned too, so
        // nothing is in flight when FilterPause runs).
        None => {
            let concurrent = crate::race::concurrent();
            if concurrent {
                stack().adapters[id].race.proto_open = false;
            }
            stack::wait_until(
                id,
                rules::TIMEOUT_SEND,
                "protocol sends (before pausing the filter)",
                || {
                    let s = stack();
                    let a = &s.adapters[id];
                    if concurrent {
                        a.race.sending == 0 && a.sent.is_empty()
                    } else {
                        a.sent.is_empty() && a.proto_held.is_empty()
                    }
                },
            );
        }
        // Only the kinds not held are drained; the rest stay out across FilterPause.
        Some(h) => {
            stack().adapters[id].race.proto_open = false;
            if !h.sends {
                kernel::at_irql(DISPATCH_LEVEL, || {
                    while stack::pump_sends_at_current_irql(id, usize::MAX, None) != 0 {}
                });
            }
            if !h.receives {
                kernel::at_irql(DISPATCH_LEVEL, || {
                    while stack::return_some(id, usize::MAX) != 0 {}
                });
            }
            let mut s = stack();
            let a = &mut s.adapters[id];
            a.pause_record.held_sends = a.mp_pending.len();
            a.pause_record.held_receives = a.proto_held.len();
        }
    }
    let st = match crate::race::scheduled_pause(id) {
        Some(st) => st,
        None => pause_call(id),
    };
    pause_finish(id, st, hold.as_ref())
}

/// FilterPause itself (PASSIVE_LEVEL): Running → Pausing; when it returns NDIS_STATUS_SUCCESS the
/// pause is complete at that instant (judged, then Paused). Returns FilterPause's status.
pub(crate) fn pause_call(id: usize) -> NDIS_STATUS {
    let (f, abi, ctx) = {
        let s = stack();
        let d = s.driver.as_ref().expect("a module implies a driver");
        (
            d.chars.PauseHandler.expect("validated"),
            d.abi,
            s.adapters[id].module_ctx as NDIS_HANDLE,
        )
    };
    {
        let mut s = stack();
        let a = &mut s.adapters[id];
        a.state = ModuleState::Pausing;
        a.race.pause_in_call = true;
        a.pause_pending = true;
        a.pause_done = false;
    }
    // SAFETY: all-zero is valid for this plain-data structure.
    let mut p: NDIS_FILTER_PAUSE_PARAMETERS = unsafe { std::mem::zeroed() };
    p.Header = NDIS_OBJECT_HEADER::new(
        NDIS_OBJECT_TYPE_FILTER_PAUSE_PARAMETERS,
        NDIS_FILTER_PAUSE_PARAMETERS_REVISION_1,
        NDIS_SIZEOF_FILTER_PAUSE_PARAMETERS_REVISION_1,
    );
    p.PauseReason = NDIS_PAUSE_NDIS_INTERNAL;
    // SAFETY: the registered FilterPause; `p` lives across the call.
    let st = passive("FilterPause", || unsafe {
        f.invoke(abi, (ctx, &mut p as *mut _))
    });
    {
        let mut s = stack();
        let a = &mut s.adapters[id];
        // Receives NDIS issues from now on are new to a Pausing filter (RECEIVE_PASSED_WHILE_PAUSING):
        // the filter changes its own state somewhere inside FilterPause, so one issued while
        // FilterPause still ran may have met it Running (race.rs: `begun`).
        a.race.begun += 1;
        a.race.pause_in_call = false;
        a.pause_record.status = Some(st);
    }
    if st == NDIS_STATUS_SUCCESS {
        if !stack().adapters[id].pause_done {
            check_pause_outstanding(id);
            // The module is Paused from this instant (the line of race.rs).
            crate::race::pause_completed(id);
        } else {
            verifier::report(
                rules::STATE_FORBIDS_COMPLETE,
                id,
                "NdisFPauseComplete called and FilterPause also returned SUCCESS",
            );
        }
    }
    st
}

/// After FilterPause: the held NBLs given back ([`stack::PauseHold`]), the wait for a pended pause,
/// then (concurrent mode) the miniport paused.
fn pause_finish(
    id: usize,
    st: NDIS_STATUS,
    hold: Option<&stack::PauseHold>,
) -> Result<(), LifecycleError> {
    if let Some(h) = hold {
        release_held_across_pause(id, h, st == NDIS_STATUS_PENDING);
    }
    let result = match st {
        NDIS_STATUS_SUCCESS => Ok(()),
        NDIS_STATUS_PENDING => {
            if stack::wait_until(id, rules::TIMEOUT_PAUSE, "pended pause", || {
                stack().adapters[id].pause_done
            }) {
                Ok(())
            } else {
                Err(LifecycleError::Timeout)
            }
        }
        other => {
            verifier::report(
                rules::PAUSE_FAILED,
                id,
                format!("FilterPause returned {other:#x}; pause cannot fail"),
            );
            Ok(())
        }
    };
    let mut s = stack();
    let a = &mut s.adapters[id];
    a.pause_pending = false;
    if a.state != ModuleState::Paused {
        // Timed out or failed: Paused from here on all the same.
        crate::race::pause_completed_locked(a);
    }
    drop(s);
    miniport_quiesce(id);
    verifier::log(format!("[ndis] adapter {id}: paused"));
    result
}

/// Concurrent mode: NDIS pauses the miniport after the filters: no new indications, and it waits
/// until every data-path call in progress returned, every NBL it indicated is back and its queued
/// sends are completed.
fn miniport_quiesce(id: usize) {
    stack().adapters[id].race.mp_open = false;
    if !crate::race::concurrent() {
        return;
    }
    let ok = stack::wait_until(
        id,
        rules::TIMEOUT_RECEIVE,
        "miniport pause (receives back)",
        || {
            let s = stack();
            let a = &s.adapters[id];
            // What the miniport waits for: its indications back (held above or not) and its
            // queued sends completed. A send from above the filter keeps is the filter's to answer
            // for (PAUSE_WITH_OUTSTANDING, TIMEOUT_SEND), not the miniport's.
            a.race.calls == 0 && a.mp_out.is_empty() && a.mp_pending.is_empty()
        },
    );
    if !ok {
        let s = stack();
        let a = &s.adapters[id];
        verifier::log(format!(
            "[ndis] adapter {id}: miniport pause stuck: {} calls in progress, {} NBLs indicated out, {} held above, {} sends queued, {} sends out",
            a.race.calls,
            a.mp_out.len(),
            a.proto_held.len(),
            a.mp_pending.len(),
            a.sent.len()
        ));
    }
}

/// Steps 2 and 3 of [`stack::PauseHold`]: sends and receives while Pausing (when the pause pended), then the
/// held sends and receives given back one at a time on the simulated clock and the chosen CPU.
fn release_held_across_pause(id: usize, h: &stack::PauseHold, pended: bool) {
    if let (true, Some(shape)) = (pended, &h.sends_while_pausing) {
        let n = stack::protocol_send(id, shape, 0);
        stack().adapters[id].pause_record.sent_while_pausing += n;
    }
    if let (true, Some((shape, flags))) = (pended, &h.receives_while_pausing) {
        // The miniport below is still running while the filter pauses (NDIS pauses top-down).
        let n = kernel::at_irql(DISPATCH_LEVEL, || {
            stack::miniport_indicate(id, shape, *flags)
        });
        stack().adapters[id].pause_record.indicated_while_pausing += n;
    }
    let home = kernel::current_cpu();
    let cpu = h.release_cpu.unwrap_or(home);
    loop {
        let next = {
            let mut s = stack();
            let a = &mut s.adapters[id];
            if !a.mp_pending.is_empty() {
                Some((true, a.mp_pending.remove(0)))
            } else {
                a.proto_held.pop_front().map(|n| (false, n))
            }
        };
        let Some((send, n)) = next else { break };
        crate::misc::advance_clock_ms(10 * h.release_every_ticks as u64);
        // Counted first: a completion inside the give-back sees this NBL as given back.
        stack().adapters[id].pause_record.released += 1;
        kernel::bind_thread_to_cpu(cpu);
        kernel::at_irql(DISPATCH_LEVEL, || {
            if send {
                stack::complete_sends(id, vec![n]);
            } else {
                stack::protocol_return(id, vec![n]);
            }
        });
        kernel::bind_thread_to_cpu(home);
    }
}

/// FilterDetach. Paused → Detached, then the per-module leak checks.
pub(crate) fn detach_flow(id: usize) {
    assert_eq!(
        state_of(id),
        ModuleState::Paused,
        "detach needs a paused module"
    );
    // No OID or status indication may be in progress in FilterDetach (they are valid only while
    // the module is attached); a detach waits for those under way and admits no new ones.
    stack().adapters[id].race.detaching = true;
    stack::wait_until(id, rules::TIMEOUT_OID, "OIDs/status before detach", || {
        stack().adapters[id].race.ctl == 0
    });
    let (f, abi, ctx, handle) = {
        let s = stack();
        let d = s.driver.as_ref().expect("a module implies a driver");
        let a = &s.adapters[id];
        (
            d.chars.DetachHandler.expect("validated"),
            d.abi,
            a.module_ctx as NDIS_HANDLE,
            a.filter_handle,
        )
    };
    // SAFETY: the registered FilterDetach with its module context.
    passive("FilterDetach", || unsafe { f.invoke(abi, (ctx,)) });
    module_leak_check(id, handle, "detach");
    let mut s = stack();
    let a = &mut s.adapters[id];
    a.state = ModuleState::Detached;
    a.filter_handle = 0;
    a.module_ctx = 0;
    a.race.detaching = false;
    drop(s);
    mem::raw_free(handle as *mut u8);
    verifier::log(format!("[ndis] adapter {id}: detached"));
}

fn module_leak_check(id: usize, handle: usize, when: &str) {
    for (addr, r) in nbl::all_nbls() {
        let leaked = match r.creator {
            Creator::Driver => r.adapter == id && r.holder != Holder::Filter,
            Creator::Protocol(a) | Creator::Miniport(a) => a == id && r.holder == Holder::Filter,
        };
        if leaked {
            verifier::report(
                rules::LEAKED_NBL,
                addr,
                format!(
                    "{when}: {:?} NBL still held by the {:?} (0x7C/0x27)",
                    r.creator, r.holder
                ),
            );
        }
    }
    for (pool, owner, live) in nbl::driver_pools() {
        if owner == handle {
            verifier::report(
                rules::LEAKED_NBL,
                pool,
                format!("{when}: NBL/NB pool of the module not freed ({live} live)"),
            );
        }
    }
    let clones: Vec<usize> = stack().adapters[id].clones.keys().copied().collect();
    for c in clones {
        verifier::report(rules::OID_MISUSE, c, format!("{when}: OID clone not freed"));
    }
}

/// The protocol's OID request through the filter (or straight to the miniport when bypassed).
pub(crate) fn protocol_oid(
    id: usize,
    request_type: u32,
    oid: NDIS_OID,
    buffer: &mut [u8],
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
    let h = {
        let s = stack();
        let a = &s.adapters[id];
        match s.driver.as_ref() {
            Some(d)
                if a.filter_handle != 0
                    && !matches!(a.state, ModuleState::Detached | ModuleState::Attaching) =>
            {
                d.chars
                    .OidRequestHandler
                    .map(|h| (h, d.abi, a.module_ctx as NDIS_HANDLE))
            }
            _ => None,
        }
    };
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
    stack::wait_until(id, rules::TIMEOUT_OID, "OID request", || {
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
pub(crate) fn miniport_status(id: usize, code: NDIS_STATUS) {
    miniport_status_with(id, code, std::ptr::null_mut(), 0)
}

/// [`miniport_status`] with a status buffer (valid for the duration of the indication).
pub(crate) fn miniport_status_with(id: usize, code: NDIS_STATUS, buffer: PVOID, size: u32) {
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
    let h = {
        let s = stack();
        let a = &s.adapters[id];
        match s.driver.as_ref() {
            // Not while Attaching (no status indications then, network/attaching-a-filter-module):
            // in concurrent mode an attach may begin while this indication is on its way.
            Some(d)
                if a.filter_handle != 0
                    && !matches!(a.state, ModuleState::Detached | ModuleState::Attaching) =>
            {
                d.chars
                    .StatusHandler
                    .map(|h| (h, d.abi, a.module_ctx as NDIS_HANDLE))
            }
            _ => None,
        }
    };
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
