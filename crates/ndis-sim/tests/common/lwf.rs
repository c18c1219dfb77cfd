//! A plain pass-through NDIS 6 lightweight filter written only against ndis-sys (as a driver would
//! be), with optional deliberate misbehaviours (`Bad`) that the verifier tests switch on one at a time.
//! What it writes as the racy filter (`racy_lwf.rs`) does is shared with it in `lwf_parts.rs`.
#![allow(dead_code, non_snake_case, clippy::missing_safety_doc)]

#[path = "lwf_parts.rs"]
mod parts;

use ndis_sys::*;
use parts::*;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering::SeqCst};

/// Deliberate bugs (0 = a correct filter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Bad {
    None = 0,
    /// Sends down with NDIS_SEND_FLAGS_DISPATCH_LEVEL inverted.
    WrongDispatchFlag,
    /// Completes every send-complete twice.
    CompleteTwice,
    /// Writes the NBL's Scratch-adjacent Status... after passing it down.
    TouchAfterSend,
    /// Leaks a pool block at detach.
    LeakPool,
    /// Never calls NdisFSetAttributes.
    NoSetAttributes,
    /// Changes DataOffset of each sent NB (fast-path retreat, never advanced back).
    NotRestored,
    /// Calls NdisAllocateNetBufferListPool at... raises to HIGH_LEVEL around ExAllocatePool2.
    HighIrqlAlloc,
    /// Pends the pause and never completes it.
    PauseNeverCompletes,
    /// Returns RESOURCES receives with NdisFReturnNetBufferLists.
    ReturnResources,
    /// Keeps its NBL pool at detach.
    LeakNblPool,
    /// Indicates a receive while paused (originates one).
    OriginateWhilePaused,
    /// Completes the pause while holding a send from above.
    PauseWithHeldSend,
    /// Returns from FilterSend at DISPATCH_LEVEL when called at PASSIVE.
    IrqlNotRestored,
    /// Retreats with an allocator whose MDL ByteCount differs from *BufferSize.
    ByteCountMismatch,
    /// Retreats with an allocator that never calls MmBuildMdlForNonPagedPool.
    UnbuiltMdl,
    /// Originates a send of its own from FilterPause.
    OriginateSendWhilePausing,
    /// Pends every OID without forwarding it.
    OidNeverCompletes,
    /// Pends the restart and never completes it.
    RestartPends,
    /// Calls NdisFPauseComplete inside FilterPause and also returns SUCCESS.
    PauseCompleteAndSuccess,
    /// FilterPause returns NDIS_STATUS_FAILURE.
    PauseFails,
    /// Returns every returned receive twice.
    ReturnTwice,
    /// Completes the original OID before freeing its clone.
    OidCompleteBeforeFree,
    /// Indicates with NumberOfNetBufferLists + 1.
    WrongReceiveCount,
    /// DriverUnload forgets NdisFDeregisterFilterDriver.
    NoDeregister,
    /// Overwrites the first frame byte of each send and never restores it.
    CorruptData,
    /// Sends down with CurrentMdlOffset off by one (restored on completion).
    OffByOneMdlOffset,
    /// Keeps the first receive chain it gets and never returns it.
    HoldReceives,
    /// Indicates a status and issues an OID from inside FilterAttach.
    StatusDuringAttach,
    /// Marks each send it forwards (an NBL context, freed on completion), pends the pause while
    /// sends are out, but calls NdisFPauseComplete on the *first* completion instead of the last.
    PauseCompletesEarly,
    /// Passes receives from below up whatever its state (no Pausing/Paused check on receive).
    PassReceivesWhilePausing,
    /// Fails FilterAttach on a non-Ethernet medium with NDIS_STATUS_INVALID_PARAMETER (undocumented).
    AttachUndocumentedStatus,
    /// Sets DriverUnload only after NdisFRegisterFilterDriver returned.
    UnloadSetLate,
    /// Forwards OID clones without copying the original's RequestId.
    CloneRequestIdNotCopied,
    /// Flips the first data byte of each send through the current MDL's `MappedSystemVa` without
    /// mapping it first (and flips it back the same way), as a filter that assumes every MDL is mapped.
    WriteUnmapped,
    /// Maps each send's current MDL with MmMapLockedPagesSpecifyCache directly, without
    /// MdlMappingNoExecute, and a second time.
    MapExecutableTwice,
    /// Correct: reads the first data byte of each send through MmGetSystemAddressForMdlSafe
    /// (NormalPagePriority | MdlMappingNoExecute).
    MapSafely,
    /// On receive, retreats each NB by one byte in place, writes that byte (the byte in front of the
    /// data start, which belongs to the miniport), and advances back before indicating: the NB's
    /// fields and data are as handed out, its unused space is not.
    ScribbleHeadroom,
    /// On send, retreats each first NB by DataOffset + 2 (the scenario's DataOffset 6), so NDIS prepends
    /// a 2-byte MDL and the MAC header spans it and the caller's MDL; advances it away (FreeMdl) at
    /// completion, so the NB comes back exactly as handed out.
    SplitMacHeader,
    /// On send, adds 4 to the LSO info's TcpHeaderOffset (the frame unchanged); puts it back at
    /// completion.
    LsoOffsetOffBy4,
    /// On send, swaps the checksum info's IsIPv4/IsIPv6 bits; puts them back at completion.
    ChecksumWrongIpVersion,
    /// On send, retreats each first NB by 8 bytes in place (the frame grows by 8 bytes of unused
    /// space); advances them away at completion.
    GrowFrame,
    /// Retreats each send with its own allocator whose free routine clears the MDL's ByteCount
    /// after it has freed the block (a write to freed pool).
    WriteAfterFree,
    /// Retreats each send with its own allocator that writes a guard byte one past the end of the
    /// block it allocated.
    OverrunAlloc,
}

pub static BAD: AtomicU32 = AtomicU32::new(0);
pub static LOADED_HANDLE: AtomicPtr<core::ffi::c_void> = AtomicPtr::new(core::ptr::null_mut());
pub static ATTACHES: AtomicUsize = AtomicUsize::new(0);
pub static MODE_SEEN: AtomicU32 = AtomicU32::new(u32::MAX);

fn bad() -> Bad {
    // SAFETY: only values of Bad are stored.
    unsafe { core::mem::transmute::<u32, Bad>(BAD.load(SeqCst)) }
}

pub fn set_bad(b: Bad) {
    BAD.store(b as u32, SeqCst);
}

const TAG: u32 = u32::from_le_bytes(*b"LwfT");
const RUNNING: u32 = 1;
const PAUSING: u32 = 2;
const PAUSED: u32 = 3;

#[repr(C)]
struct Module {
    handle: NDIS_HANDLE,
    state: AtomicU32,
    outstanding_sends: AtomicUsize,
    nbl_pool: NDIS_HANDLE,
    held: AtomicPtr<NET_BUFFER_LIST>,
}

unsafe fn module<'a>(ctx: NDIS_HANDLE) -> &'a Module {
    // SAFETY: NDIS passes back the context we gave NdisFSetAttributes.
    unsafe { &*(ctx as *const Module) }
}

static FRIENDLY: &[u16] = utf16!("Test pass-through LWF");
static UNIQUE: &[u16] = utf16!("{00000000-0000-0000-0000-00000000BEEF}");
static SERVICE: &[u16] = utf16!("testlwf");

pub unsafe extern "system" fn DriverEntry(
    drv: *mut DRIVER_OBJECT,
    _reg: *mut UNICODE_STRING,
) -> NTSTATUS {
    let mut c = characteristics(
        NDIS_FILTER_CHARACTERISTICS_REVISION_3,
        NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_3,
        80,
        FRIENDLY,
        UNIQUE,
        SERVICE,
    );
    c.MajorDriverVersion = 1;
    c.AttachHandler = Some(attach);
    c.DetachHandler = Some(detach);
    c.RestartHandler = Some(restart);
    c.PauseHandler = Some(pause);
    c.SendNetBufferListsHandler = Some(send);
    c.SendNetBufferListsCompleteHandler = Some(send_complete);
    c.ReceiveNetBufferListsHandler = Some(receive);
    c.ReturnNetBufferListsHandler = Some(return_nbls);
    c.StatusHandler = Some(status);
    c.OidRequestHandler = Some(oid_request);
    c.OidRequestCompleteHandler = Some(oid_complete);
    c.NetPnPEventHandler = Some(pnp);
    let mut h: NDIS_HANDLE = core::ptr::null_mut();
    if bad() != Bad::UnloadSetLate {
        // SAFETY: the I/O manager's driver object; set before registering, as the sample does.
        unsafe { (*drv).DriverUnload = Some(unload) };
    }
    // SAFETY: valid characteristics and out pointer, PASSIVE_LEVEL.
    let st = unsafe { NdisFRegisterFilterDriver(drv, drv as NDIS_HANDLE, &mut c, &mut h) };
    if st != NDIS_STATUS_SUCCESS {
        // SAFETY: as above; the driver will not stay loaded.
        unsafe { (*drv).DriverUnload = None };
        return st;
    }
    LOADED_HANDLE.store(h, SeqCst);
    // SAFETY: the I/O manager's driver object.
    unsafe { (*drv).DriverUnload = Some(unload) };
    STATUS_SUCCESS
}

unsafe extern "system" fn unload(_drv: *mut DRIVER_OBJECT) {
    if bad() == Bad::NoDeregister {
        return;
    }
    // SAFETY: DriverUnload, PASSIVE_LEVEL.
    unsafe { deregister(&LOADED_HANDLE) };
}

unsafe extern "system" fn attach(
    handle: NDIS_HANDLE,
    _drv: NDIS_HANDLE,
    params: *mut NDIS_FILTER_ATTACH_PARAMETERS,
) -> NDIS_STATUS {
    ATTACHES.fetch_add(1, SeqCst);
    // SAFETY: NDIS's attach parameters.
    if unsafe { (*params).MiniportMediaType } != NdisMedium802_3 {
        return if bad() == Bad::AttachUndocumentedStatus {
            NDIS_STATUS_INVALID_PARAMETER
        } else {
            NDIS_STATUS_FAILURE
        };
    }
    // SAFETY: PASSIVE_LEVEL allocation; checked for NULL.
    let m = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, core::mem::size_of::<Module>(), TAG) }
        as *mut Module;
    if m.is_null() {
        return NDIS_STATUS_RESOURCES;
    }
    // SAFETY: all-zero pool parameters are valid before filling them.
    let mut pp: NET_BUFFER_LIST_POOL_PARAMETERS = unsafe { core::mem::zeroed() };
    pp.Header = NDIS_OBJECT_HEADER::new(
        NDIS_OBJECT_TYPE_DEFAULT,
        NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1,
        NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1,
    );
    pp.fAllocateNetBuffer = TRUE;
    pp.PoolTag = TAG;
    // SAFETY: valid parameters.
    let pool = unsafe { NdisAllocateNetBufferListPool(handle, &mut pp) };
    if pool.is_null() {
        // SAFETY: our block.
        unsafe { ExFreePoolWithTag(m as PVOID, TAG) };
        return NDIS_STATUS_RESOURCES;
    }
    // SAFETY: fresh block of Module size.
    unsafe {
        m.write(Module {
            handle,
            state: AtomicU32::new(PAUSED),
            outstanding_sends: AtomicUsize::new(0),
            nbl_pool: pool,
            held: AtomicPtr::new(core::ptr::null_mut()),
        })
    };
    read_mode(handle);
    if bad() == Bad::StatusDuringAttach {
        // SAFETY: zeroed indication with a valid header (deliberately indicated while Attaching).
        unsafe {
            let mut ind: NDIS_STATUS_INDICATION = core::mem::zeroed();
            ind.Header = NDIS_OBJECT_HEADER::new(
                NDIS_OBJECT_TYPE_STATUS_INDICATION,
                NDIS_STATUS_INDICATION_REVISION_1,
                NDIS_SIZEOF_STATUS_INDICATION_REVISION_1,
            );
            ind.StatusCode = NDIS_STATUS_LINK_STATE;
            NdisFIndicateStatus(handle, &mut ind);
            let mut r: NDIS_OID_REQUEST = core::mem::zeroed();
            r.Header = NDIS_OBJECT_HEADER::new(
                NDIS_OBJECT_TYPE_OID_REQUEST,
                NDIS_OID_REQUEST_REVISION_1,
                NDIS_SIZEOF_OID_REQUEST_REVISION_1,
            );
            r.RequestType = NdisRequestQueryInformation;
            let _ = NdisFOidRequest(handle, &mut r);
        }
    }
    if bad() != Bad::NoSetAttributes {
        // SAFETY: inside FilterAttach.
        let st = unsafe { set_attributes(handle, m as NDIS_HANDLE) };
        if st != NDIS_STATUS_SUCCESS {
            return st;
        }
    }
    NDIS_STATUS_SUCCESS
}

fn read_mode(handle: NDIS_HANDLE) {
    let mut obj = NDIS_CONFIGURATION_OBJECT {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_CONFIGURATION_OBJECT,
            NDIS_CONFIGURATION_OBJECT_REVISION_1,
            NDIS_SIZEOF_CONFIGURATION_OBJECT_REVISION_1,
        ),
        NdisHandle: handle,
        Flags: 0,
    };
    let mut ch: NDIS_HANDLE = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; valid object and out pointer.
    if unsafe { NdisOpenConfigurationEx(&mut obj, &mut ch) } != NDIS_STATUS_SUCCESS {
        return;
    }
    static KEY: &[u16] = utf16!("Mode");
    let mut key = UNICODE_STRING::from_static(KEY);
    let mut st = NDIS_STATUS_FAILURE;
    let mut p: *mut NDIS_CONFIGURATION_PARAMETER = core::ptr::null_mut();
    // SAFETY: open handle, valid out pointers.
    unsafe {
        NdisReadConfiguration(&mut st, &mut p, ch, &mut key, NdisParameterInteger);
        if st == NDIS_STATUS_SUCCESS {
            MODE_SEEN.store((*p).ParameterData.IntegerData, SeqCst);
        }
        NdisCloseConfiguration(ch);
    }
}

unsafe extern "system" fn detach(ctx: NDIS_HANDLE) {
    if ctx.is_null() {
        return;
    }
    // SAFETY: our module.
    let m = unsafe { module(ctx) };
    if bad() != Bad::LeakNblPool {
        // SAFETY: our pool, no NBLs out.
        unsafe { NdisFreeNetBufferListPool(m.nbl_pool) };
    }
    if bad() == Bad::LeakPool {
        // SAFETY: a plain allocation, deliberately never freed.
        unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, 100, TAG) };
    }
    // SAFETY: our block; nothing references it after detach.
    unsafe { ExFreePoolWithTag(ctx, TAG) };
}

unsafe extern "system" fn restart(
    ctx: NDIS_HANDLE,
    _p: *mut NDIS_FILTER_RESTART_PARAMETERS,
) -> NDIS_STATUS {
    if bad() == Bad::RestartPends {
        return NDIS_STATUS_PENDING;
    }
    // SAFETY: our module.
    unsafe { module(ctx) }.state.store(RUNNING, SeqCst);
    NDIS_STATUS_SUCCESS
}

unsafe extern "system" fn pause(
    ctx: NDIS_HANDLE,
    _p: *mut NDIS_FILTER_PAUSE_PARAMETERS,
) -> NDIS_STATUS {
    // SAFETY: our module.
    let m = unsafe { module(ctx) };
    m.state.store(PAUSING, SeqCst);
    if bad() == Bad::PauseNeverCompletes {
        return NDIS_STATUS_PENDING;
    }
    if bad() == Bad::PauseFails {
        m.state.store(PAUSED, SeqCst);
        return NDIS_STATUS_FAILURE;
    }
    if bad() == Bad::PauseCompleteAndSuccess {
        m.state.store(PAUSED, SeqCst);
        // SAFETY: deliberately wrong (a verifier test) — completing a pause that is not pended.
        unsafe { NdisFPauseComplete(m.handle) };
        return NDIS_STATUS_SUCCESS;
    }
    if bad() == Bad::OriginateSendWhilePausing {
        // SAFETY: an NBL of our own over a nonpaged buffer, sent (deliberately) while pausing.
        unsafe {
            let buf = ExAllocatePool2(POOL_FLAG_NON_PAGED, 60, TAG);
            let mdl = NdisAllocateMdl(m.handle, buf, 60);
            let nbl = NdisAllocateNetBufferAndNetBufferList(m.nbl_pool, 0, 0, mdl, 0, 60);
            (*nbl).SourceHandle = m.handle;
            m.outstanding_sends.fetch_add(1, SeqCst);
            NdisFSendNetBufferLists(m.handle, nbl, 0, 0);
        }
        return NDIS_STATUS_PENDING;
    }
    if bad() == Bad::OriginateWhilePaused {
        // SAFETY: a pool NBL with no data, indicated (wrongly) while pausing.
        unsafe {
            let nbl = NdisAllocateNetBufferList(m.nbl_pool, 0, 0);
            (*nbl).SourceHandle = m.handle;
            NdisFIndicateReceiveNetBufferLists(m.handle, nbl, 0, 1, NDIS_RECEIVE_FLAGS_RESOURCES);
            NdisFreeNetBufferList(nbl);
        }
    }
    if m.outstanding_sends.load(SeqCst) == 0 || bad() == Bad::PauseWithHeldSend {
        m.state.store(PAUSED, SeqCst);
        return NDIS_STATUS_SUCCESS;
    }
    NDIS_STATUS_PENDING
}

unsafe extern "system" fn bad_alloc(size: *mut u32) -> *mut MDL {
    // SAFETY: NDIS's in/out size; a nonpaged block holding MDL + data.
    unsafe {
        let sz = *size;
        let hdr = (MmSizeOfMdl(0xFFF as *const _, sz as usize) + 7) & !7;
        let bytes = hdr + sz as usize + 8;
        let p = ExAllocatePool2(POOL_FLAG_NON_PAGED, bytes, TAG) as *mut u8;
        if bad() == Bad::OverrunAlloc {
            // The deliberate error: one byte past the block.
            p.add(bytes).write(0xEE);
        }
        let mdl = p as *mut MDL;
        let len = if bad() == Bad::ByteCountMismatch {
            sz + 8
        } else {
            sz
        };
        MmInitializeMdl(mdl, p.add(hdr) as PVOID, len as usize);
        if bad() != Bad::UnbuiltMdl {
            MmBuildMdlForNonPagedPool(mdl);
        }
        mdl
    }
}

unsafe extern "system" fn bad_free(mdl: *mut MDL) {
    // SAFETY: an MDL bad_alloc made.
    unsafe { ExFreePoolWithTag(mdl as PVOID, TAG) };
    if bad() == Bad::WriteAfterFree {
        // SAFETY: none — the deliberate error: the block was freed just above (the simulator keeps
        // freed blocks allocated in its quarantine, so the write lands in its fill).
        unsafe { (*mdl).ByteCount = 0 };
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
    let dispatch = NDIS_TEST_SEND_AT_DISPATCH_LEVEL(flags);
    if m.state.load(SeqCst) != RUNNING {
        // SAFETY: inside FilterSendNetBufferLists with the chain we were given.
        unsafe { complete_sends_paused(m.handle, nbls, flags) };
        return;
    }
    let mut count = 0;
    let mut n = nbls;
    while !n.is_null() {
        count += 1;
        // SAFETY: NBLs we own until passed down.
        unsafe {
            match bad() {
                Bad::NotRestored => {
                    // A fast-path retreat that is never advanced back.
                    let nb = (*n).FirstNetBuffer;
                    if (*nb).DataOffset >= 2 {
                        let _ = NdisRetreatNetBufferDataStart(nb, 2, 0, None);
                    }
                }
                Bad::LsoOffsetOffBy4 => {
                    let v = (*n).NetBufferListInfo[info::TcpLargeSendNetBufferListInfo] as usize;
                    let i = NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO { Value: v };
                    if i.is_set() {
                        (*n).NetBufferListInfo[info::TcpLargeSendNetBufferListInfo] =
                            i.with_TcpHeaderOffset(i.TcpHeaderOffset() + 4).Value as PVOID;
                    }
                }
                Bad::ChecksumWrongIpVersion => {
                    let v = (*n).NetBufferListInfo[info::TcpIpChecksumNetBufferListInfo] as usize;
                    (*n).NetBufferListInfo[info::TcpIpChecksumNetBufferListInfo] =
                        (v ^ 0b11) as PVOID;
                }
                Bad::GrowFrame => {
                    let nb = (*n).FirstNetBuffer;
                    if (*nb).DataOffset >= 8 {
                        let st = NdisRetreatNetBufferDataStart(nb, 8, 0, None);
                        assert_eq!(st, NDIS_STATUS_SUCCESS);
                    }
                }
                Bad::SplitMacHeader => {
                    let nb = (*n).FirstNetBuffer;
                    if (*nb).DataOffset == 6 {
                        let st = NdisRetreatNetBufferDataStart(nb, 8, 0, None);
                        assert_eq!(st, NDIS_STATUS_SUCCESS);
                    }
                }
                Bad::CorruptData => {
                    let nb = (*n).FirstNetBuffer;
                    let mut m = (*nb).CurrentMdl;
                    let mut off = (*nb).CurrentMdlOffset;
                    while !m.is_null() && off >= (*m).ByteCount {
                        off -= (*m).ByteCount;
                        m = (*m).Next;
                    }
                    let p = (MdlMappedSystemVa(m) as *mut u8).add(off as usize);
                    *p ^= 0xFF;
                }
                Bad::OffByOneMdlOffset => {
                    (*(*n).FirstNetBuffer).CurrentMdlOffset += 1;
                }
                Bad::PauseCompletesEarly => {
                    let st = NdisAllocateNetBufferListContext(n, 16, 0, TAG);
                    assert_eq!(st, NDIS_STATUS_SUCCESS);
                }
                Bad::HighIrqlAlloc => {
                    let old = KeRaiseIrql(HIGH_LEVEL);
                    let p = ExAllocatePool2(POOL_FLAG_NON_PAGED, 16, TAG);
                    KeLowerIrql(old);
                    ExFreePoolWithTag(p, TAG);
                }
                Bad::ByteCountMismatch
                | Bad::UnbuiltMdl
                | Bad::WriteAfterFree
                | Bad::OverrunAlloc => {
                    let nb = (*n).FirstNetBuffer;
                    let d = (*nb).DataOffset + 14;
                    if NdisRetreatNetBufferDataStart(nb, d, 0, Some(bad_alloc))
                        == NDIS_STATUS_SUCCESS
                    {
                        NdisAdvanceNetBufferDataStart(nb, d, TRUE, Some(bad_free));
                    }
                }
                Bad::WriteUnmapped => {
                    let nb = (*n).FirstNetBuffer;
                    let m = (*nb).CurrentMdl;
                    let p = ((*m).MappedSystemVa as *mut u8).add((*nb).CurrentMdlOffset as usize);
                    *p ^= 0xFF;
                    *p ^= 0x0F;
                }
                Bad::MapExecutableTwice => {
                    let m = (*(*n).FirstNetBuffer).CurrentMdl;
                    for _ in 0..2 {
                        let _ = MmMapLockedPagesSpecifyCache(
                            m,
                            KernelMode,
                            MmCached,
                            core::ptr::null_mut(),
                            0,
                            NormalPagePriority,
                        );
                    }
                }
                Bad::MapSafely => {
                    let nb = (*n).FirstNetBuffer;
                    let m = (*nb).CurrentMdl;
                    let va =
                        MmGetSystemAddressForMdlSafe(m, NormalPagePriority | MdlMappingNoExecute)
                            as *const u8;
                    assert!(!va.is_null());
                    let _ = core::ptr::read_volatile(va.add((*nb).CurrentMdlOffset as usize));
                }
                _ => {}
            }
            n = (*n).Next;
        }
    }
    m.outstanding_sends.fetch_add(count, SeqCst);
    if bad() == Bad::PauseWithHeldSend {
        // Keep the first NBL, pass the rest.
        // SAFETY: our chain.
        unsafe {
            let rest = (*nbls).Next;
            (*nbls).Next = core::ptr::null_mut();
            m.held.store(nbls, SeqCst);
            m.outstanding_sends.fetch_sub(1, SeqCst);
            if !rest.is_null() {
                NdisFSendNetBufferLists(m.handle, rest, port, flags);
            }
        }
        return;
    }
    let f = if bad() == Bad::WrongDispatchFlag {
        flags ^ NDIS_SEND_FLAGS_DISPATCH_LEVEL
    } else {
        flags
    };
    // SAFETY: passing the chain down.
    unsafe { NdisFSendNetBufferLists(m.handle, nbls, port, f) };
    if bad() == Bad::TouchAfterSend {
        // SAFETY: deliberately wrong (a verifier test) — writing an NBL after giving it away.
        unsafe { (*nbls).NetBufferListInfo[info::NetBufferListHashValue] = 0x55 as PVOID };
    }
    if bad() == Bad::IrqlNotRestored && !dispatch {
        let _ = KeRaiseIrql(DISPATCH_LEVEL);
    }
}

unsafe extern "system" fn send_complete(ctx: NDIS_HANDLE, nbls: *mut NET_BUFFER_LIST, flags: u32) {
    // SAFETY: our module.
    let m = unsafe { module(ctx) };
    let mut count = 0;
    let mut up: Vec<*mut NET_BUFFER_LIST> = Vec::new();
    let mut n = nbls;
    while !n.is_null() {
        count += 1;
        // SAFETY: NBLs returned to us.
        unsafe {
            let next = (*n).Next;
            if (*n).SourceHandle == m.handle {
                // Our own NBL: free it with its MDL and buffer.
                let mdl = (*(*n).FirstNetBuffer).MdlChain;
                let va = MmGetMdlVirtualAddress(mdl);
                NdisFreeNetBufferList(n);
                NdisFreeMdl(mdl);
                ExFreePoolWithTag(va, TAG);
            } else {
                if bad() == Bad::OffByOneMdlOffset {
                    (*(*n).FirstNetBuffer).CurrentMdlOffset -= 1;
                }
                if bad() == Bad::LsoOffsetOffBy4 {
                    let v = (*n).NetBufferListInfo[info::TcpLargeSendNetBufferListInfo] as usize;
                    let i = NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO { Value: v };
                    if i.is_set() {
                        (*n).NetBufferListInfo[info::TcpLargeSendNetBufferListInfo] =
                            i.with_TcpHeaderOffset(i.TcpHeaderOffset() - 4).Value as PVOID;
                    }
                }
                if bad() == Bad::ChecksumWrongIpVersion {
                    let v = (*n).NetBufferListInfo[info::TcpIpChecksumNetBufferListInfo] as usize;
                    (*n).NetBufferListInfo[info::TcpIpChecksumNetBufferListInfo] =
                        (v ^ 0b11) as PVOID;
                }
                if bad() == Bad::GrowFrame {
                    let nb = (*n).FirstNetBuffer;
                    NdisAdvanceNetBufferDataStart(nb, 8, FALSE, None);
                }
                if bad() == Bad::SplitMacHeader {
                    let nb = (*n).FirstNetBuffer;
                    if (*(*nb).MdlChain).ByteCount == 2 {
                        NdisAdvanceNetBufferDataStart(nb, 8, TRUE, None);
                    }
                }
                if bad() == Bad::PauseCompletesEarly {
                    NdisFreeNetBufferListContext(n, 16);
                }
                up.push(n);
            }
            n = next;
        }
    }
    for (i, &u) in up.iter().enumerate() {
        // SAFETY: NBLs we hold.
        unsafe { (*u).Next = up.get(i + 1).copied().unwrap_or(core::ptr::null_mut()) };
    }
    if let Some(&first) = up.first() {
        // SAFETY: completing the sends we were given.
        unsafe { NdisFSendNetBufferListsComplete(m.handle, first, flags) };
        if bad() == Bad::CompleteTwice {
            // SAFETY: deliberately wrong (a verifier test) — completing the first NBL again.
            unsafe { NdisFSendNetBufferListsComplete(m.handle, first, flags) };
        }
    }
    let last = m.outstanding_sends.fetch_sub(count, SeqCst) == count;
    // Deliberately wrong under PauseCompletesEarly: any completion while Pausing completes the pause.
    if (last || bad() == Bad::PauseCompletesEarly) && m.state.load(SeqCst) == PAUSING {
        m.state.store(PAUSED, SeqCst);
        // SAFETY: our pended pause.
        unsafe { NdisFPauseComplete(m.handle) };
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
    if m.state.load(SeqCst) != RUNNING && bad() != Bad::PassReceivesWhilePausing {
        if NDIS_TEST_RECEIVE_CAN_PEND(flags) {
            // SAFETY: inside FilterReceiveNetBufferLists with the chain we were given.
            unsafe { return_receives(m.handle, nbls, flags) };
        }
        return;
    }
    if bad() == Bad::HoldReceives
        && NDIS_TEST_RECEIVE_CAN_PEND(flags)
        && m.held.load(SeqCst).is_null()
    {
        m.held.store(nbls, SeqCst);
        return;
    }
    if bad() == Bad::ScribbleHeadroom {
        let mut n = nbls;
        while !n.is_null() {
            // SAFETY: NBLs handed to us, with valid NBs and mapped simulator MDLs; the retreat is in
            // place (the scenario's DataOffset is 6), so the byte written lies in the caller's chain.
            unsafe {
                let mut nb = (*n).FirstNetBuffer;
                while !nb.is_null() {
                    if (*nb).DataOffset >= 1
                        && NdisRetreatNetBufferDataStart(nb, 1, 0, None) == NDIS_STATUS_SUCCESS
                    {
                        let m = (*nb).CurrentMdl;
                        let p =
                            (MdlMappedSystemVa(m) as *mut u8).add((*nb).CurrentMdlOffset as usize);
                        *p ^= 0x5A;
                        NdisAdvanceNetBufferDataStart(nb, 1, FALSE, None);
                    }
                    nb = (*nb).Next;
                }
                n = (*n).Next;
            }
        }
    }
    let count = if bad() == Bad::WrongReceiveCount {
        count + 1
    } else {
        count
    };
    // SAFETY: passing up what we were given.
    unsafe { NdisFIndicateReceiveNetBufferLists(m.handle, nbls, port, count, flags) };
    if bad() == Bad::ReturnResources && NDIS_TEST_RECEIVE_CANNOT_PEND(flags) {
        let f = if NDIS_TEST_RECEIVE_AT_DISPATCH_LEVEL(flags) {
            NDIS_RETURN_FLAGS_DISPATCH_LEVEL
        } else {
            0
        };
        // SAFETY: deliberately wrong (a verifier test) — RESOURCES NBLs must not be returned.
        unsafe { NdisFReturnNetBufferLists(m.handle, nbls, f) };
    }
}

unsafe extern "system" fn return_nbls(ctx: NDIS_HANDLE, nbls: *mut NET_BUFFER_LIST, flags: u32) {
    // SAFETY: our module; returning what came back.
    unsafe { NdisFReturnNetBufferLists(module(ctx).handle, nbls, flags) };
    if bad() == Bad::ReturnTwice {
        // SAFETY: deliberately wrong (a verifier test) — returning the same chain again.
        unsafe { NdisFReturnNetBufferLists(module(ctx).handle, nbls, flags) };
    }
}

unsafe extern "system" fn status(ctx: NDIS_HANDLE, ind: *mut NDIS_STATUS_INDICATION) {
    // SAFETY: passing the indication up.
    unsafe { NdisFIndicateStatus(module(ctx).handle, ind) };
}

unsafe extern "system" fn pnp(
    ctx: NDIS_HANDLE,
    ev: *mut NET_PNP_EVENT_NOTIFICATION,
) -> NDIS_STATUS {
    // SAFETY: passing the event down.
    unsafe { NdisFNetPnPEvent(module(ctx).handle, ev) }
}

unsafe extern "system" fn oid_request(ctx: NDIS_HANDLE, req: *mut NDIS_OID_REQUEST) -> NDIS_STATUS {
    if bad() == Bad::OidNeverCompletes {
        return NDIS_STATUS_PENDING;
    }
    // SAFETY: our module; the sample's clone-and-forward.
    unsafe {
        let m = module(ctx);
        let mut clone: *mut NDIS_OID_REQUEST = core::ptr::null_mut();
        let st = NdisAllocateCloneOidRequest(m.handle, req, TAG, &mut clone);
        if st != NDIS_STATUS_SUCCESS {
            return st;
        }
        (*clone).SourceReserved[0] = req as PVOID;
        if bad() != Bad::CloneRequestIdNotCopied {
            (*clone).RequestId = (*req).RequestId;
        }
        let st = NdisFOidRequest(m.handle, clone);
        if st != NDIS_STATUS_PENDING {
            oid_complete(ctx, clone, st);
        }
        NDIS_STATUS_PENDING
    }
}

unsafe extern "system" fn oid_complete(
    ctx: NDIS_HANDLE,
    clone: *mut NDIS_OID_REQUEST,
    status: NDIS_STATUS,
) {
    // SAFETY: our clone, whose SourceReserved[0] is the original.
    unsafe {
        let m = module(ctx);
        let orig = (*clone).SourceReserved[0] as *mut NDIS_OID_REQUEST;
        (*orig).DATA = (*clone).DATA;
        if bad() == Bad::OidCompleteBeforeFree {
            NdisFOidRequestComplete(m.handle, orig, status);
            NdisFreeCloneOidRequest(m.handle, clone);
            return;
        }
        NdisFreeCloneOidRequest(m.handle, clone);
        NdisFOidRequestComplete(m.handle, orig, status);
    }
}
