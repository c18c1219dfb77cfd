//! The lifecycle flows NDIS runs on a filter module: attach, restart, detach (pause is `pause.rs`), each
//! driven by the harness ([`crate::Adapter`]) at PASSIVE_LEVEL with the traffic gate held
//! exclusively.

use crate::abi::Callback;
use crate::kernel::{self, current_irql};
use crate::mem;
use crate::nbl::{self, Creator, Holder};
use crate::stack::{self, stack, state_of, ModuleState};
use crate::verifier::{self, rules};
use ndis_sys::*;

pub(crate) fn passive<R>(what: &str, f: impl FnOnce() -> R) -> R {
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
        let ok = crate::flows::wait_until(id, rules::TIMEOUT_RESTART, "pended restart", || {
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
    crate::flows::wait_until(id, rules::TIMEOUT_OID, "OIDs/status before detach", || {
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

/// Concurrent mode: NDIS pauses the miniport after the filters: no new indications, and it waits
/// until every data-path call in progress returned, every NBL it indicated is back and its queued
/// sends are completed.
pub(super) fn miniport_quiesce(id: usize) {
    stack().adapters[id].race.mp_open = false;
    if !crate::race::concurrent() {
        return;
    }
    let ok = crate::flows::wait_until(
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
