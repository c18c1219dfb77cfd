//! The NdisF* routines a filter calls (registration, attributes, pause/restart completion, the
//! data-path hand-ons, OID clones and forwarding, status, PnP), and the miniport's answer to OIDs.
//!
//! A routine of layer 3. Each export checks its IRQL, its handle, the module state and the
//! ownership of every NBL it is given, then hands the NBLs to the simulated miniport or protocol
//! through the stack's `stack::Upcalls` (installed by the flows above, which this
//! module does not import).

use crate::abi::{caller_abi, Callback};
use crate::kernel::{self, check_dispatch_flag, check_irql};
use crate::mem;
use crate::nbl::{self, Creator, Dir, Holder};
use crate::stack::{self, adapter_of, stack, state_of, ModuleState};
use crate::verifier::{self, rules};
use ndis_sys::*;

mod oid;

pub(crate) use oid::register_exports as register_oid_exports;
pub(crate) use oid::{miniport_complete_oid, miniport_fill_oid};

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
            (stack::upcalls().pause_and_detach)(id);
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
            (stack::upcalls().miniport_complete_sends)(id, hits);
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
    (stack::upcalls().miniport_send)(id, head, flags)
}
fn stack_protocol_complete(id: usize, list: &[*mut NET_BUFFER_LIST]) {
    (stack::upcalls().protocol_send_complete)(id, list)
}
fn stack_protocol_receive(id: usize, head: *mut NET_BUFFER_LIST, count: u32, flags: u32) {
    (stack::upcalls().protocol_receive)(id, head, count, flags)
}
fn stack_miniport_take_back(id: usize, n: *mut NET_BUFFER_LIST) {
    (stack::upcalls().miniport_return)(id, n, "receive return")
}

pub(crate) fn check_pause_outstanding(id: usize) {
    let left = crate::outstanding::pause_outstanding(id);
    stack().adapters[id].pause_record.outstanding_at_complete = Some(left.len());
    for (addr, what) in left {
        verifier::report(
            rules::PAUSE_WITH_OUTSTANDING,
            addr,
            format!("pause completed with {what}"),
        );
    }
}
