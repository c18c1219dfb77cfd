//! A small NDIS 6 filter that retreats every receive it passes up (NDIS's default allocator) and
//! advances it back when it is returned, written only against ndis-sys. Correct, it takes a
//! reference for the whole callback before it looks at its state, and counts each NBL before passing
//! it up. With `RACY` set it does neither: it checks Running, transforms, and counts an NBL as
//! outstanding only *after* NdisFIndicateReceiveNetBufferLists returns: a FilterPause on another CPU
//! in that window finds nothing outstanding and completes the pause while the changed NBL is on its
//! way up (or a return racing the count completes it early). A filter
//! that runs one thing at a time never shows it; `tests/race.rs` shows which simulator schedules do.
//! What it writes as the pass-through filter (`lwf.rs`) does is shared with it in `lwf_parts.rs`.
#![allow(dead_code, non_snake_case, clippy::missing_safety_doc)]

#[path = "lwf_parts.rs"]
mod parts;

use ndis_sys::*;
use parts::*;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU32, Ordering::SeqCst};

/// Count after the indication (the bug) instead of before.
pub static RACY: AtomicBool = AtomicBool::new(false);
/// What FilterSendNetBufferLists does (the pause-line tests of `tests/race.rs`).
pub static SEND_MODE: AtomicU32 = AtomicU32::new(SEND_NORMAL);
/// Forward while Running, complete with NDIS_STATUS_PAUSED otherwise.
pub const SEND_NORMAL: u32 = 0;
/// Forward unchanged in any state (wrong once the pause is complete).
pub const SEND_ALWAYS_FORWARD: u32 = 1;
/// FilterPause always pends; a send that arrives while Pausing first lets "another CPU" complete
/// the pause (NdisFPauseComplete on virtual CPU 1, as a completion there would), then forwards the
/// send unchanged: the send raced the transition.
pub const SEND_RACE_UNCHANGED: u32 = 2;
/// As SEND_RACE_UNCHANGED, but the send is retreated (changed) before it is forwarded.
pub const SEND_RACE_CHANGED: u32 = 3;
pub static HANDLE: AtomicPtr<core::ffi::c_void> = AtomicPtr::new(core::ptr::null_mut());

const TAG: u32 = u32::from_le_bytes(*b"RcyT");
const PAUSED: u32 = 0;
const RUNNING: u32 = 1;
const PAUSING: u32 = 2;
/// Bytes retreated in front of each received frame.
pub const HEADROOM: u32 = 8;

#[repr(C)]
struct Module {
    handle: NDIS_HANDLE,
    state: AtomicU32,
    outstanding: AtomicI64,
    pause_pending: AtomicBool,
}

unsafe fn module<'a>(ctx: NDIS_HANDLE) -> &'a Module {
    // SAFETY: NDIS passes back the context we gave NdisFSetAttributes.
    unsafe { &*(ctx as *const Module) }
}

static FRIENDLY: &[u16] = utf16!("Racy test LWF");
static UNIQUE: &[u16] = utf16!("{00000000-0000-0000-0000-00000000FACE}");
static SERVICE: &[u16] = utf16!("racylwf");

pub unsafe extern "system" fn DriverEntry(
    drv: *mut DRIVER_OBJECT,
    _reg: *mut UNICODE_STRING,
) -> NTSTATUS {
    let mut c = characteristics(
        NDIS_FILTER_CHARACTERISTICS_REVISION_2,
        NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_2,
        30,
        FRIENDLY,
        UNIQUE,
        SERVICE,
    );
    c.AttachHandler = Some(attach);
    c.DetachHandler = Some(detach);
    c.RestartHandler = Some(restart);
    c.PauseHandler = Some(pause);
    c.SendNetBufferListsHandler = Some(send);
    c.SendNetBufferListsCompleteHandler = Some(send_complete);
    c.ReceiveNetBufferListsHandler = Some(receive);
    c.ReturnNetBufferListsHandler = Some(return_nbls);
    c.StatusHandler = Some(status);
    let mut h: NDIS_HANDLE = core::ptr::null_mut();
    // SAFETY: our driver object; DriverUnload is set before registering, as the sample does.
    unsafe { (*drv).DriverUnload = Some(unload) };
    // SAFETY: PASSIVE_LEVEL, valid characteristics and out pointer.
    let st = unsafe { NdisFRegisterFilterDriver(drv, core::ptr::null_mut(), &mut c, &mut h) };
    if st != NDIS_STATUS_SUCCESS {
        // SAFETY: as above; the driver will not stay loaded.
        unsafe { (*drv).DriverUnload = None };
        return st;
    }
    HANDLE.store(h, SeqCst);
    STATUS_SUCCESS
}

unsafe extern "system" fn unload(_drv: *mut DRIVER_OBJECT) {
    // SAFETY: DriverUnload, PASSIVE_LEVEL.
    unsafe { deregister(&HANDLE) };
}

unsafe extern "system" fn attach(
    handle: NDIS_HANDLE,
    _drv: NDIS_HANDLE,
    _params: *mut NDIS_FILTER_ATTACH_PARAMETERS,
) -> NDIS_STATUS {
    // SAFETY: PASSIVE_LEVEL allocation; checked for NULL.
    let m = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, core::mem::size_of::<Module>(), TAG) }
        as *mut Module;
    if m.is_null() {
        return NDIS_STATUS_RESOURCES;
    }
    // SAFETY: fresh block of Module size.
    unsafe {
        m.write(Module {
            handle,
            state: AtomicU32::new(PAUSED),
            outstanding: AtomicI64::new(0),
            pause_pending: AtomicBool::new(false),
        })
    };
    // SAFETY: inside FilterAttach.
    unsafe { set_attributes(handle, m as NDIS_HANDLE) }
}

unsafe extern "system" fn detach(ctx: NDIS_HANDLE) {
    // SAFETY: our block; nothing references it after detach.
    unsafe { ExFreePoolWithTag(ctx, TAG) };
}

unsafe extern "system" fn restart(
    ctx: NDIS_HANDLE,
    _p: *mut NDIS_FILTER_RESTART_PARAMETERS,
) -> NDIS_STATUS {
    // SAFETY: our module.
    let m = unsafe { module(ctx) };
    m.pause_pending.store(false, SeqCst);
    m.state.store(RUNNING, SeqCst);
    NDIS_STATUS_SUCCESS
}

unsafe extern "system" fn pause(
    ctx: NDIS_HANDLE,
    _p: *mut NDIS_FILTER_PAUSE_PARAMETERS,
) -> NDIS_STATUS {
    // SAFETY: our module.
    let m = unsafe { module(ctx) };
    m.state.store(PAUSING, SeqCst);
    m.pause_pending.store(true, SeqCst);
    let mode = SEND_MODE.load(SeqCst);
    if mode == SEND_RACE_UNCHANGED || mode == SEND_RACE_CHANGED {
        return NDIS_STATUS_PENDING;
    }
    if m.outstanding.load(SeqCst) <= 0 && m.pause_pending.swap(false, SeqCst) {
        m.state.store(PAUSED, SeqCst);
        return NDIS_STATUS_SUCCESS;
    }
    NDIS_STATUS_PENDING
}

fn drop_ref(m: &Module, n: i64) {
    let left = m.outstanding.fetch_sub(n, SeqCst) - n;
    if left <= 0 && m.state.load(SeqCst) == PAUSING && m.pause_pending.swap(false, SeqCst) {
        m.state.store(PAUSED, SeqCst);
        // SAFETY: our pended pause, claimed once.
        unsafe { NdisFPauseComplete(m.handle) };
    }
}

unsafe extern "system" fn send(
    ctx: NDIS_HANDLE,
    nbls: *mut NET_BUFFER_LIST,
    port: NDIS_PORT_NUMBER,
    flags: u32,
) {
    // SAFETY: our module.
    let m = unsafe { module(ctx) };
    let mode = SEND_MODE.load(SeqCst);
    if (mode == SEND_RACE_UNCHANGED || mode == SEND_RACE_CHANGED)
        && m.state.load(SeqCst) == PAUSING
        && m.pause_pending.swap(false, SeqCst)
    {
        m.state.store(PAUSED, SeqCst);
        let h = m.handle;
        // SAFETY: our pended pause, completed once, "from another CPU" at DISPATCH_LEVEL.
        ndis_sim::kernel::on_other_cpu(1, DISPATCH_LEVEL, || unsafe { NdisFPauseComplete(h) });
        if mode == SEND_RACE_CHANGED {
            let mut p = nbls;
            while !p.is_null() {
                // SAFETY: NBLs we own for the callback.
                unsafe {
                    assert!(retreat_all(p));
                    p = (*p).Next;
                }
            }
        }
        // SAFETY: forwarding what we were given (deliberately, after the pause completed).
        unsafe { NdisFSendNetBufferLists(m.handle, nbls, port, flags) };
        return;
    }
    if m.state.load(SeqCst) != RUNNING && mode != SEND_ALWAYS_FORWARD {
        // SAFETY: inside FilterSendNetBufferLists with the chain we were given.
        unsafe { complete_sends_paused(m.handle, nbls, flags) };
        return;
    }
    // Sends pass through unchanged (the protocol is paused before the filter, so none is in
    // flight when FilterPause runs).
    // SAFETY: forwarding what we were given.
    unsafe { NdisFSendNetBufferLists(m.handle, nbls, port, flags) };
}

unsafe extern "system" fn send_complete(ctx: NDIS_HANDLE, nbls: *mut NET_BUFFER_LIST, flags: u32) {
    if SEND_MODE.load(SeqCst) == SEND_RACE_CHANGED {
        let mut p = nbls;
        while !p.is_null() {
            // SAFETY: completed sends are ours again; undo the retreat before passing them up.
            unsafe {
                advance_all(p);
                p = (*p).Next;
            }
        }
    }
    // SAFETY: our module; passing completions up.
    unsafe { NdisFSendNetBufferListsComplete(module(ctx).handle, nbls, flags) };
}

/// Retreats every NB of the chain by HEADROOM (NDIS's default allocator); false if one failed
/// (everything undone).
unsafe fn retreat_all(nbl: *mut NET_BUFFER_LIST) -> bool {
    // SAFETY: an NBL we own.
    unsafe {
        let mut nb = (*nbl).FirstNetBuffer;
        while !nb.is_null() {
            if NdisRetreatNetBufferDataStart(nb, HEADROOM, 0, None) != NDIS_STATUS_SUCCESS {
                let mut q = (*nbl).FirstNetBuffer;
                while q != nb {
                    NdisAdvanceNetBufferDataStart(q, HEADROOM, TRUE, None);
                    q = (*q).Next;
                }
                return false;
            }
            nb = (*nb).Next;
        }
    }
    true
}

unsafe fn advance_all(nbl: *mut NET_BUFFER_LIST) {
    // SAFETY: an NBL we own, retreated by retreat_all.
    unsafe {
        let mut nb = (*nbl).FirstNetBuffer;
        while !nb.is_null() {
            NdisAdvanceNetBufferDataStart(nb, HEADROOM, TRUE, None);
            nb = (*nb).Next;
        }
    }
}

unsafe extern "system" fn receive(
    ctx: NDIS_HANDLE,
    nbls: *mut NET_BUFFER_LIST,
    port: NDIS_PORT_NUMBER,
    count: u32,
    flags: u32,
) {
    // SAFETY: our module.
    let m = unsafe { module(ctx) };
    let resources = flags & NDIS_RECEIVE_FLAGS_RESOURCES != 0;
    let racy = RACY.load(SeqCst);
    if !racy {
        // The callback's own reference, before the state check: a pause cannot complete under it.
        m.outstanding.fetch_add(1, SeqCst);
    }
    if m.state.load(SeqCst) != RUNNING {
        // Pausing or Paused: receives from below go straight back (network/pausing-a-filter-module).
        if !resources {
            // SAFETY: inside FilterReceiveNetBufferLists with the chain we were given.
            unsafe { return_receives(m.handle, nbls, flags) };
        }
        if !racy {
            drop_ref(m, 1);
        }
        return;
    }
    let mut p = nbls;
    while !p.is_null() {
        // SAFETY: our NBLs for the callback.
        unsafe {
            let ok = retreat_all(p);
            assert!(ok, "default retreat allocator failed");
            p = (*p).Next;
        }
    }
    if !racy && !resources {
        m.outstanding.fetch_add(count as i64, SeqCst);
    }
    // SAFETY: indicating the chain with its count and flags.
    unsafe { NdisFIndicateReceiveNetBufferLists(m.handle, nbls, port, count, flags) };
    if resources {
        let mut p = nbls;
        while !p.is_null() {
            // SAFETY: ownership is back (a RESOURCES indication is synchronous).
            unsafe {
                advance_all(p);
                p = (*p).Next;
            }
        }
    } else if racy {
        // The bug: counted only now, after the NBLs went up (and may even be back).
        m.outstanding.fetch_add(count as i64, SeqCst);
    }
    if !racy {
        drop_ref(m, 1);
    }
}

unsafe extern "system" fn return_nbls(ctx: NDIS_HANDLE, nbls: *mut NET_BUFFER_LIST, flags: u32) {
    // SAFETY: our module.
    let m = unsafe { module(ctx) };
    let mut n = 0;
    let mut p = nbls;
    while !p.is_null() {
        // SAFETY: returned NBLs are ours until returned down.
        unsafe {
            advance_all(p);
            p = (*p).Next;
        }
        n += 1;
    }
    // SAFETY: returning to the miniport, restored.
    unsafe { NdisFReturnNetBufferLists(m.handle, nbls, flags) };
    drop_ref(m, n);
}

unsafe extern "system" fn status(ctx: NDIS_HANDLE, ind: *mut NDIS_STATUS_INDICATION) {
    // SAFETY: our module; passing the indication on.
    unsafe { NdisFIndicateStatus(module(ctx).handle, ind) };
}
