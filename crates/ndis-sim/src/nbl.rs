//! NET_BUFFER_LIST / NET_BUFFER / context pools and allocation, retreat/advance bit for bit as
//! ndis-contract.md §2.3 shows the shipped ndis.sys, NdisAdjustNetBufferCurrentMdl, NdisGetDataBuffer,
//! and the bookkeeping the verifier needs: who holds each NBL, seals over NBLs given away, and
//! snapshots for the restore-exact checks.
//!
//! Memory for NBLs/NBs/contexts is the simulator's (owner `Sim`); leaks of driver-created NBLs are
//! reported through the NBL registry as LEAKED_NBL rather than as pool leaks. This module calls driver
//! code only through the NetAllocateMdl/NetFreeMdl handlers given to retreat/advance.

use crate::abi::{caller_abi, Abi, Callback};
use crate::fault::{self, AllocSite};
use crate::kernel::{check_irql, current_irql};
use crate::mem::{self, MdlOrigin, Owner};
use crate::verifier::{self, rules};
use ndis_sys::*;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

/// Bytes ndis.sys allocates per NBL (two more info slots than a driver sees; ndis-contract.md §1.3).
pub const NBL_ALLOC_SIZE: usize = 0x180;
/// Bytes a driver sees of an NBL (NDIS 6.80, x64).
pub const NBL_DRIVER_SIZE: usize = std::mem::size_of::<NET_BUFFER_LIST>();
const NB_SIZE: usize = std::mem::size_of::<NET_BUFFER>();
/// Longest MDL chain the simulator walks before calling a chain corrupt.
pub const MAX_CHAIN: usize = 256;

/// Which layer of an adapter's stack holds an NBL right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// Its creator, outside the stack (a driver NBL not handed out; a sim NBL being built).
    Creator,
    /// The simulated protocol above the filter.
    Protocol,
    /// The filter module (a send from above, a receive from below, or its own).
    Filter,
    /// The simulated miniport below the filter.
    Miniport,
}

/// Who allocated an NBL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Creator {
    /// The driver under test (from one of its pools).
    Driver,
    /// The simulated protocol of adapter `n`.
    Protocol(usize),
    /// The simulated miniport of adapter `n`.
    Miniport(usize),
}

/// The direction an NBL travels in the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Not in the stack.
    None,
    /// Downwards (send).
    Send,
    /// Upwards (receive).
    Receive,
}

#[derive(Clone, Debug)]
pub(crate) struct NblRec {
    pub pool: usize,
    pub creator: Creator,
    pub holder: Holder,
    pub dir: Dir,
    pub adapter: usize,
    pub seal: Option<u64>,
    pub prealloc_nb: usize,
    pub base_context: usize,
    /// Part of a receive indicated with NDIS_RECEIVE_FLAGS_RESOURCES that has not come back yet.
    pub resources: bool,
    /// Simulated time (ms) it last came into the filter's hands.
    pub since_ms: u64,
    /// A TIMEOUT_SEND/RECEIVE was already reported for this stay in the filter.
    pub timed_out: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PoolKind {
    Nbl,
    Nb,
}

#[derive(Clone, Debug)]
struct PoolRec {
    kind: PoolKind,
    owner_handle: usize,
    creator: Owner,
    context_size: u16,
    alloc_nb: bool,
    tag: u32,
    live: usize,
}

#[derive(Clone, Copy, Debug)]
struct CtxRec {
    #[allow(dead_code)]
    capacity: u16,
    extra: bool,
}

#[derive(Default)]
struct Registry {
    pools: HashMap<usize, PoolRec>,
    nbls: HashMap<usize, NblRec>,
    /// Standalone NBs: address → pool.
    nbs: HashMap<usize, usize>,
    contexts: HashMap<usize, CtxRec>,
    /// MDLs a driver's NetAllocateMdl handler returned through retreat: MDL → handler address.
    retreat_mdls: HashMap<usize, usize>,
    /// Recently freed NBLs, kept mapped so a stale pointer is recognised (double complete/return).
    quarantine: std::collections::VecDeque<usize>,
}

const QUARANTINE: usize = 512;

/// True when `nbl` was freed recently (a double completion/return rather than a wild pointer).
pub(crate) fn recently_freed(nbl: *const NET_BUFFER_LIST) -> bool {
    reg().quarantine.contains(&(nbl as usize))
}

/// Walks a chain the driver passed, stopping at the first NBL the simulator does not know (which
/// `unknown` reports); never reads through an unknown pointer.
pub(crate) fn known_chain(
    mut n: *mut NET_BUFFER_LIST,
    mut unknown: impl FnMut(*mut NET_BUFFER_LIST),
) -> Vec<*mut NET_BUFFER_LIST> {
    let mut v = Vec::new();
    while !n.is_null() && v.len() < 1 << 20 {
        if !reg().nbls.contains_key(&(n as usize)) {
            unknown(n);
            break;
        }
        v.push(n);
        // SAFETY: a live NBL of this module.
        n = unsafe { (*n).Next };
    }
    v
}

static REG: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(Registry::default()));

fn reg() -> std::sync::MutexGuard<'static, Registry> {
    REG.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn reset() {
    *reg() = Registry::default();
    CONTEXT_CARVES.store(0, std::sync::atomic::Ordering::Relaxed);
    CONTEXT_BLOCKS.store(0, std::sync::atomic::Ordering::Relaxed);
}

/// Runs `f` on the record of a known NBL.
pub(crate) fn with_nbl<R>(
    nbl: *const NET_BUFFER_LIST,
    f: impl FnOnce(&mut NblRec) -> R,
) -> Option<R> {
    reg().nbls.get_mut(&(nbl as usize)).map(f)
}

pub(crate) fn nbl_record(nbl: *const NET_BUFFER_LIST) -> Option<NblRec> {
    reg().nbls.get(&(nbl as usize)).cloned()
}

/// Every live NBL record (address, record).
pub(crate) fn all_nbls() -> Vec<(usize, NblRec)> {
    reg().nbls.iter().map(|(a, r)| (*a, r.clone())).collect()
}

/// Driver-created pools still allocated: (handle, owner handle, live NBL/NB count).
pub(crate) fn driver_pools() -> Vec<(usize, usize, usize)> {
    reg()
        .pools
        .iter()
        .filter(|(_, p)| p.creator == Owner::Driver)
        .map(|(h, p)| (*h, p.owner_handle, p.live))
        .collect()
}

/// FNV-1a over a byte range.
pub(crate) fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01B3);
    }
    h
}
const FNV_INIT: u64 = 0xCBF2_9CE4_8422_2325;

// ---------------------------------------------------------------------------------------------
// MDL chain helpers (bounded; never read outside an MDL's ByteCount)

/// The system VA an MDL maps (MappedSystemVa when built/mapped, else StartVa + ByteOffset).
///
/// # Safety
/// `mdl` must be a valid MDL header.
pub(crate) unsafe fn mdl_va(mdl: *const MDL) -> *mut u8 {
    // SAFETY: the caller guarantees a valid header.
    let m = unsafe { &*mdl };
    if m.MdlFlags & (MDL_MAPPED_TO_SYSTEM_VA | MDL_SOURCE_IS_NONPAGED_POOL) != 0 {
        m.MappedSystemVa as *mut u8
    } else {
        (m.StartVa as usize + m.ByteOffset as usize) as *mut u8
    }
}

/// The observed CurrentMdl walk: skip MDLs while `off >= ByteCount`.
///
/// # Safety
/// The chain from `mdl` must consist of valid MDL headers.
unsafe fn walk(mut mdl: *mut MDL, mut off: u32) -> (*mut MDL, u32) {
    // SAFETY: the caller guarantees valid headers along the chain.
    unsafe {
        while !mdl.is_null() && off >= (*mdl).ByteCount {
            off -= (*mdl).ByteCount;
            mdl = (*mdl).Next;
        }
    }
    (mdl, off)
}

/// Reads `len` bytes at chain offset `from` of an MDL chain, or None when the chain is too short.
///
/// # Safety
/// The chain's MDLs must be valid and describe readable memory.
pub(crate) unsafe fn read_chain(
    mut mdl: *const MDL,
    mut from: usize,
    len: usize,
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(len);
    let mut hops = 0;
    while out.len() < len {
        if mdl.is_null() || hops > MAX_CHAIN {
            return None;
        }
        hops += 1;
        // SAFETY: valid header (caller's guarantee).
        let bc = unsafe { (*mdl).ByteCount } as usize;
        if from >= bc {
            from -= bc;
        } else {
            let take = (bc - from).min(len - out.len());
            // SAFETY: [from, from+take) lies inside the MDL's ByteCount bytes of mapped memory.
            let src = unsafe { std::slice::from_raw_parts(mdl_va(mdl).add(from), take) };
            out.extend_from_slice(src);
            from = 0;
        }
        // SAFETY: as above.
        mdl = unsafe { (*mdl).Next };
    }
    Some(out)
}

/// Checks that CurrentMdl/CurrentMdlOffset locate DataOffset and the chain holds the data.
///
/// # Safety
/// `nb` must be a valid NB whose chain consists of valid MDLs.
pub(crate) unsafe fn check_nb_consistent(context: &str, nb: *const NET_BUFFER) -> bool {
    // SAFETY: the caller guarantees a valid NB.
    let n = unsafe { &*nb };
    let mut pos: u64 = 0;
    let mut mdl = n.MdlChain as *const MDL;
    let mut total: u64 = 0;
    let mut found = n.CurrentMdl.is_null();
    let mut hops = 0;
    while !mdl.is_null() {
        hops += 1;
        if hops > MAX_CHAIN {
            verifier::report(
                rules::NB_INCONSISTENT,
                nb as usize,
                format!("{context}: MDL chain longer than {MAX_CHAIN} (cycle?)"),
            );
            return false;
        }
        if std::ptr::eq(mdl, n.CurrentMdl) && !found {
            found = true;
            pos = total + n.CurrentMdlOffset as u64;
        }
        // SAFETY: valid chain (caller's guarantee).
        unsafe {
            total += (*mdl).ByteCount as u64;
            mdl = (*mdl).Next;
        }
    }
    if n.CurrentMdl.is_null() {
        pos = total + n.CurrentMdlOffset as u64;
    }
    let mut ok = true;
    if !found {
        verifier::report(
            rules::NB_INCONSISTENT,
            nb as usize,
            format!(
                "{context}: CurrentMdl {:p} is not in the MDL chain",
                n.CurrentMdl
            ),
        );
        ok = false;
    } else if pos != n.DataOffset as u64 {
        verifier::report(
            rules::NB_INCONSISTENT,
            nb as usize,
            format!(
                "{context}: CurrentMdl+CurrentMdlOffset is chain offset {pos}, DataOffset is {}",
                n.DataOffset
            ),
        );
        ok = false;
    }
    if (n.DataOffset as u64 + n.DataLength() as u64) > total {
        verifier::report(
            rules::NB_INCONSISTENT,
            nb as usize,
            format!(
                "{context}: DataOffset {} + DataLength {} exceeds the chain's {total} bytes",
                n.DataOffset,
                n.DataLength()
            ),
        );
        ok = false;
    }
    ok
}

/// The NB's frame bytes `[DataOffset, DataOffset + DataLength)`.
///
/// # Safety
/// `nb` must be a valid NB with a valid chain.
pub(crate) unsafe fn nb_frame(nb: *const NET_BUFFER) -> Option<Vec<u8>> {
    // SAFETY: caller's guarantee.
    unsafe {
        read_chain(
            (*nb).MdlChain,
            (*nb).DataOffset as usize,
            (*nb).DataLength() as usize,
        )
    }
}

/// The bytes of an NB's chain in front of its data start (`[0, DataOffset)`): its unused space.
///
/// # Safety
/// As [`nb_frame`].
pub(crate) unsafe fn nb_headroom(nb: *const NET_BUFFER) -> Option<Vec<u8>> {
    // SAFETY: caller's guarantee.
    unsafe { read_chain((*nb).MdlChain, 0, (*nb).DataOffset as usize) }
}

/// The NBs of an NBL, bounded.
///
/// # Safety
/// `nbl` must be a valid NBL with a valid NB list.
pub(crate) unsafe fn nbs_of(nbl: *const NET_BUFFER_LIST) -> Vec<*mut NET_BUFFER> {
    let mut v = Vec::new();
    // SAFETY: caller's guarantee.
    let mut nb = unsafe { (*nbl).FirstNetBuffer };
    while !nb.is_null() && v.len() <= MAX_CHAIN {
        v.push(nb);
        // SAFETY: caller's guarantee.
        nb = unsafe { (*nb).Next };
    }
    v
}

/// The NBLs of a chain, bounded.
///
/// # Safety
/// The chain must consist of valid NBLs.
pub(crate) unsafe fn nbl_chain(mut nbl: *mut NET_BUFFER_LIST) -> Vec<*mut NET_BUFFER_LIST> {
    let mut v = Vec::new();
    while !nbl.is_null() && v.len() < 1 << 20 {
        v.push(nbl);
        // SAFETY: caller's guarantee.
        nbl = unsafe { (*nbl).Next };
    }
    v
}

/// A checksum over everything a holder must not change of an NBL it gave away: the NBL (except
/// `Next`), its NBs, their MDL headers, and the frame bytes.
///
/// # Safety
/// `nbl` must be a valid NBL with valid NBs and chains.
pub(crate) unsafe fn seal_of(nbl: *const NET_BUFFER_LIST) -> u64 {
    // SAFETY: the NBL allocation is at least NBL_DRIVER_SIZE bytes (all NBLs come from this module).
    let bytes =
        unsafe { std::slice::from_raw_parts((nbl as *const u8).add(8), NBL_DRIVER_SIZE - 8) };
    let mut h = fnv(FNV_INIT, bytes);
    // SAFETY: caller's guarantee for NBs and chains.
    unsafe {
        for nb in nbs_of(nbl) {
            h = fnv(h, std::slice::from_raw_parts(nb as *const u8, NB_SIZE));
            let mut m = (*nb).MdlChain as *const MDL;
            let mut hops = 0;
            while !m.is_null() && hops < MAX_CHAIN {
                h = fnv(
                    h,
                    std::slice::from_raw_parts(m as *const u8, std::mem::size_of::<MDL>()),
                );
                m = (*m).Next;
                hops += 1;
            }
            if let Some(f) = nb_frame(nb) {
                h = fnv(h, &f);
            }
        }
    }
    h
}

/// What one NB looked like when its owner handed it out.
#[derive(Clone, Debug)]
pub(crate) struct NbSnap {
    pub nb: usize,
    pub mdl_chain: usize,
    pub data_offset: u32,
    pub data_length: u32,
    pub current_mdl: usize,
    pub current_mdl_offset: u32,
    /// (address, ByteCount, Next, va) of each MDL of the original chain.
    pub mdls: Vec<(usize, u32, usize, usize)>,
    pub frame: Vec<u8>,
    /// The chain's bytes in front of the data start (`[0, DataOffset)`), compared by the
    /// HEADROOM_CORRUPTED check.
    pub headroom: Vec<u8>,
    /// Whether its MAC header lay in the MDL holding the data start (MAC_HEADER_SPLIT judges only
    /// frames handed out that way).
    pub mac_contiguous: bool,
}

/// What one NBL looked like when its owner handed it out.
#[derive(Clone, Debug)]
pub(crate) struct NblSnap {
    pub nbs: Vec<NbSnap>,
    pub context: usize,
    pub context_offset: u16,
    pub context_size: u16,
    /// The owner's used context bytes (`[DATA_START, DATA_START + Size - Offset)`) at hand-out.
    pub context_bytes: Vec<u8>,
    pub source_handle: usize,
    pub nbl_flags: u32,
    pub info: [usize; MaxNetBufferListInfo],
}

/// Snapshots an NBL for a later restore check.
///
/// # Safety
/// `nbl` must be a valid NBL with valid NBs and chains.
pub(crate) unsafe fn snapshot(nbl: *const NET_BUFFER_LIST) -> NblSnap {
    // SAFETY: caller's guarantee.
    unsafe {
        let l = &*nbl;
        let nbs = nbs_of(nbl)
            .into_iter()
            .map(|nb| {
                let n = &*nb;
                let mut mdls = Vec::new();
                let mut m = n.MdlChain;
                while !m.is_null() && mdls.len() < MAX_CHAIN {
                    mdls.push((
                        m as usize,
                        (*m).ByteCount,
                        (*m).Next as usize,
                        mdl_va(m) as usize,
                    ));
                    m = (*m).Next;
                }
                NbSnap {
                    nb: nb as usize,
                    mdl_chain: n.MdlChain as usize,
                    data_offset: n.DataOffset,
                    data_length: n.DataLength(),
                    current_mdl: n.CurrentMdl as usize,
                    current_mdl_offset: n.CurrentMdlOffset,
                    mdls,
                    frame: nb_frame(nb).unwrap_or_default(),
                    headroom: nb_headroom(nb).unwrap_or_default(),
                    mac_contiguous: {
                        let f = nb_frame(nb).unwrap_or_default();
                        crate::wire::head_contiguous(nb, crate::wire::mac_header_len(&f))
                    },
                }
            })
            .collect();
        let (co, cs) = if l.Context.is_null() {
            (0, 0)
        } else {
            ((*l.Context).Offset, (*l.Context).Size)
        };
        let context_bytes = context_used_bytes(l.Context);
        let mut info = [0usize; MaxNetBufferListInfo];
        for (i, v) in l.NetBufferListInfo.iter().enumerate() {
            info[i] = *v as usize;
        }
        NblSnap {
            nbs,
            context: l.Context as usize,
            context_offset: co,
            context_size: cs,
            context_bytes,
            source_handle: l.SourceHandle as usize,
            nbl_flags: l.NblFlags,
            info,
        }
    }
}

/// The used bytes of a context block laid out as documented (ns-nbl-net_buffer_list_context): `Size`
/// is the whole context space, `Offset` the unused part in front, the used data runs from
/// `ContextData + Offset` to the end. Empty for a NULL or inconsistent block.
///
/// # Safety
/// `ctx` must be NULL or a valid context block with `Size` bytes of data space.
unsafe fn context_used_bytes(ctx: *const NET_BUFFER_LIST_CONTEXT) -> Vec<u8> {
    if ctx.is_null() {
        return Vec::new();
    }
    // SAFETY: caller's guarantee.
    unsafe {
        let (size, offset) = ((*ctx).Size as usize, (*ctx).Offset as usize);
        if offset > size {
            return Vec::new();
        }
        let data = (ctx as *const u8).add(std::mem::size_of::<NET_BUFFER_LIST_CONTEXT>() + offset);
        std::slice::from_raw_parts(data, size - offset).to_vec()
    }
}

/// Whether an NBL differs from its hand-out snapshot in what a filter changes (NBL context, NB
/// list, each NB's MDL chain / offsets / length, OOB info); frame bytes are not compared. Reports
/// nothing.
///
/// # Safety
/// `nbl` must be a valid NBL with valid NBs.
pub(crate) unsafe fn carries_changes(nbl: *const NET_BUFFER_LIST, snap: &NblSnap) -> bool {
    // SAFETY: caller's guarantee.
    let now = unsafe { snapshot(nbl) };
    now.context != snap.context
        || now.context_offset != snap.context_offset
        || now.context_size != snap.context_size
        || now.info != snap.info
        || now.nbs.len() != snap.nbs.len()
        || now.nbs.iter().zip(&snap.nbs).any(|(a, b)| {
            a.nb != b.nb
                || a.mdl_chain != b.mdl_chain
                || a.data_offset != b.data_offset
                || a.data_length != b.data_length
                || a.current_mdl != b.current_mdl
                || a.current_mdl_offset != b.current_mdl_offset
        })
}

/// Compares an NBL coming back with its snapshot; reports NB_NOT_RESTORED / NBL_NOT_RESTORED /
/// DATA_CORRUPTED. Returns true when identical.
///
/// # Safety
/// `nbl` must be a valid NBL; its NBs and chains are only followed within bounds.
pub(crate) unsafe fn check_restored(
    context: &str,
    nbl: *const NET_BUFFER_LIST,
    snap: &NblSnap,
) -> bool {
    let mut ok = true;
    // SAFETY: caller's guarantee.
    let l = unsafe { &*nbl };
    // SAFETY: caller's guarantee.
    let nbs = unsafe { nbs_of(nbl) };
    let addrs: Vec<usize> = nbs.iter().map(|p| *p as usize).collect();
    let want: Vec<usize> = snap.nbs.iter().map(|s| s.nb).collect();
    if addrs != want {
        verifier::report(
            rules::NBL_NOT_RESTORED,
            nbl as usize,
            format!("{context}: NB list {addrs:x?}, handed out {want:x?}"),
        );
        return false;
    }
    let (co, cs) = if l.Context.is_null() {
        (0, 0)
    } else {
        // SAFETY: a non-NULL context pointer of a valid NBL.
        unsafe { ((*l.Context).Offset, (*l.Context).Size) }
    };
    if l.Context as usize != snap.context || co != snap.context_offset || cs != snap.context_size {
        verifier::report(rules::NBL_NOT_RESTORED, nbl as usize,
            format!("{context}: Context {:p} (Offset {co}, Size {cs}), handed out {:#x} (Offset {}, Size {})",
                l.Context, snap.context, snap.context_offset, snap.context_size));
        ok = false;
    // SAFETY: the same block as at hand-out (checked above), still live.
    } else if unsafe { context_used_bytes(l.Context) } != snap.context_bytes {
        verifier::report(
            rules::DATA_CORRUPTED,
            nbl as usize,
            format!("{context}: the owner's context data (Offset {co}, Size {cs}) was overwritten"),
        );
        ok = false;
    }
    if l.SourceHandle as usize != snap.source_handle {
        verifier::report(
            rules::NBL_NOT_RESTORED,
            nbl as usize,
            format!("{context}: SourceHandle changed to {:p}", l.SourceHandle),
        );
        ok = false;
    }
    if l.NblFlags != snap.nbl_flags {
        verifier::report(
            rules::NBL_NOT_RESTORED,
            nbl as usize,
            format!(
                "{context}: NblFlags {:#x}, handed out {:#x}",
                l.NblFlags, snap.nbl_flags
            ),
        );
        ok = false;
    }
    for (i, v) in l.NetBufferListInfo.iter().enumerate() {
        if *v as usize != snap.info[i] {
            verifier::report(
                rules::NBL_NOT_RESTORED,
                nbl as usize,
                format!(
                    "{context}: NetBufferListInfo[{i}] = {:#x}, handed out {:#x}",
                    *v as usize, snap.info[i]
                ),
            );
            ok = false;
        }
    }
    for (nb, s) in nbs.iter().zip(&snap.nbs) {
        // SAFETY: a valid NB of the list.
        let n = unsafe { &**nb };
        let now = (
            n.MdlChain as usize,
            n.DataOffset,
            n.DataLength(),
            n.CurrentMdl as usize,
            n.CurrentMdlOffset,
        );
        let then = (
            s.mdl_chain,
            s.data_offset,
            s.data_length,
            s.current_mdl,
            s.current_mdl_offset,
        );
        if now != then {
            verifier::report(rules::NB_NOT_RESTORED, *nb as usize,
                format!("{context}: (MdlChain, DataOffset, DataLength, CurrentMdl, CurrentMdlOffset) = ({:#x}, {}, {}, {:#x}, {}), handed out ({:#x}, {}, {}, {:#x}, {})",
                    now.0, now.1, now.2, now.3, now.4, then.0, then.1, then.2, then.3, then.4));
            ok = false;
            continue;
        }
        for &(m, bc, next, va) in &s.mdls {
            let mp = m as *const MDL;
            // SAFETY: the original MDLs belong to the NB's owner, which kept them alive.
            let (bc2, next2, va2) =
                unsafe { ((*mp).ByteCount, (*mp).Next as usize, mdl_va(mp) as usize) };
            if (bc2, next2, va2) != (bc, next, va) {
                verifier::report(rules::NB_NOT_RESTORED, *nb as usize,
                    format!("{context}: MDL {m:#x} (ByteCount, Next, va) = ({bc2}, {next2:#x}, {va2:#x}), handed out ({bc}, {next:#x}, {va:#x})"));
                ok = false;
            }
        }
        // SAFETY: as above.
        match unsafe { nb_frame(*nb) } {
            Some(f) if f == s.frame => {}
            Some(f) => {
                let at = f
                    .iter()
                    .zip(&s.frame)
                    .position(|(a, b)| a != b)
                    .unwrap_or(f.len().min(s.frame.len()));
                verifier::report(
                    rules::DATA_CORRUPTED,
                    *nb as usize,
                    format!("{context}: frame bytes differ from byte {at}"),
                );
                ok = false;
            }
            None => {
                verifier::report(
                    rules::DATA_CORRUPTED,
                    *nb as usize,
                    format!("{context}: frame no longer readable"),
                );
                ok = false;
            }
        }
        // SAFETY: as above; the fields equal the snapshot, so the same bytes are read.
        match unsafe { nb_headroom(*nb) } {
            Some(h) if h == s.headroom => {}
            h => {
                let h = h.unwrap_or_default();
                let at = h
                    .iter()
                    .zip(&s.headroom)
                    .position(|(a, b)| a != b)
                    .unwrap_or(h.len().min(s.headroom.len()));
                verifier::report(
                    rules::HEADROOM_CORRUPTED,
                    *nb as usize,
                    format!(
                        "{context}: unused byte {at} of {} in front of the data start differs \
                         ({:#04x?}, handed out {:#04x?})",
                        s.headroom.len(),
                        h.get(at),
                        s.headroom.get(at)
                    ),
                );
                ok = false;
            }
        }
    }
    ok
}

// ---------------------------------------------------------------------------------------------
// Allocation

fn handle_ok(routine: &str, handle: NDIS_HANDLE) {
    if handle.is_null() {
        verifier::report(rules::BAD_HANDLE, 0, format!("{routine}: NULL NdisHandle"));
    }
}

static CONTEXT_CARVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static CONTEXT_BLOCKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn record_context_carve() {
    CONTEXT_CARVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

fn record_context_block() {
    CONTEXT_BLOCKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// NdisAllocateNetBufferListContext calls since the simulation started that were served (carved,
/// allocated a new block), in that order.
pub fn context_allocations() -> (u64, u64) {
    (
        CONTEXT_CARVES.load(std::sync::atomic::Ordering::Relaxed),
        CONTEXT_BLOCKS.load(std::sync::atomic::Ordering::Relaxed),
    )
}

/// Fills the used part of a fresh NBL's context with its owner's bytes (what tcpip or a miniport
/// keeps there), so a filter that writes outside its own carve is caught at completion/return.
pub(crate) fn fill_owner_context(nbl: *mut NET_BUFFER_LIST, seed: u8) {
    // SAFETY: a fresh simulator NBL; its context (if any) was laid out by `alloc_context`.
    unsafe {
        let ctx = (*nbl).Context;
        if ctx.is_null() {
            return;
        }
        let (size, offset) = ((*ctx).Size as usize, (*ctx).Offset as usize);
        let data = (ctx as *mut u8).add(std::mem::size_of::<NET_BUFFER_LIST_CONTEXT>());
        for i in offset..size {
            *data.add(i) = seed ^ (i as u8).wrapping_mul(29);
        }
    }
}

/// Creates an NBL pool owned by the simulator (protocol/miniport use).
pub(crate) fn sim_nbl_pool(context_size: u16) -> usize {
    let h = mem::raw_alloc(Owner::Sim, POOL_FLAG_NON_PAGED, 64, mem::SIM_TAG) as usize;
    reg().pools.insert(
        h,
        PoolRec {
            kind: PoolKind::Nbl,
            owner_handle: 0,
            creator: Owner::Sim,
            context_size,
            alloc_nb: true,
            tag: mem::SIM_TAG,
            live: 0,
        },
    );
    h
}

/// Frees a simulator pool (its NBLs must be gone).
pub(crate) fn free_sim_pool(h: usize) {
    reg().pools.remove(&h);
    mem::raw_free(h as *mut u8);
}

fn alloc_context(capacity: u16, used: u16, extra: bool, tag: u32) -> *mut NET_BUFFER_LIST_CONTEXT {
    let p = mem::raw_alloc(Owner::Sim, POOL_FLAG_NON_PAGED, 16 + capacity as usize, tag)
        as *mut NET_BUFFER_LIST_CONTEXT;
    if p.is_null() {
        return p;
    }
    // SAFETY: fresh block of at least 16 bytes. As documented (ns-nbl-net_buffer_list_context):
    // Size is the whole context space, used and unused; Offset is the unused space in front.
    unsafe {
        (*p).Next = std::ptr::null_mut();
        (*p).Size = capacity;
        (*p).Offset = capacity - used;
    }
    reg()
        .contexts
        .insert(p as usize, CtxRec { capacity, extra });
    p
}

fn free_context_chain(mut ctx: *mut NET_BUFFER_LIST_CONTEXT) {
    let mut hops = 0;
    while !ctx.is_null() && hops < 64 {
        // SAFETY: contexts on an NBL's chain are live blocks of this module.
        let next = unsafe { (*ctx).Next };
        reg().contexts.remove(&(ctx as usize));
        mem::raw_free(ctx as *mut u8);
        ctx = next;
        hops += 1;
    }
}

/// NBL_CONTEXT_MISALIGNED: context sizes handed to NDIS must be multiples of
/// MEMORY_ALLOCATION_ALIGNMENT, so every driver's context data stays aligned to it.
fn check_context_alignment(routine: &str, object: usize, size: u16, backfill: u16) {
    let a = MEMORY_ALLOCATION_ALIGNMENT as u16;
    if !size.is_multiple_of(a) || !backfill.is_multiple_of(a) {
        verifier::report(
            rules::NBL_CONTEXT_MISALIGNED,
            object,
            format!("{routine}: context size {size} / backfill {backfill} not multiples of MEMORY_ALLOCATION_ALIGNMENT ({a})"),
        );
    }
}

/// Allocates an NBL (and its preallocated NB when the pool says so) from `pool`.
pub(crate) fn alloc_nbl(
    pool: usize,
    ctx_size: u16,
    ctx_backfill: u16,
    creator: Creator,
    adapter: usize,
) -> *mut NET_BUFFER_LIST {
    let prec = match reg().pools.get(&pool) {
        Some(p) if p.kind == PoolKind::Nbl => p.clone(),
        _ => {
            verifier::report(
                rules::BAD_HANDLE,
                pool,
                "not a live NET_BUFFER_LIST pool handle",
            );
            return std::ptr::null_mut();
        }
    };
    if !ctx_size.is_multiple_of(8) || !ctx_backfill.is_multiple_of(8) {
        verifier::report(rules::BAD_OBJECT, pool, format!("NBL context size {ctx_size}/backfill {ctx_backfill} not multiples of sizeof(PVOID)"));
    } else {
        check_context_alignment("NdisAllocateNetBufferList", pool, ctx_size, ctx_backfill);
    }
    if creator == Creator::Driver && fault::should_fail(AllocSite::Nbl, NBL_ALLOC_SIZE, prec.tag) {
        return std::ptr::null_mut();
    }
    let nbl = mem::raw_alloc(Owner::Sim, POOL_FLAG_NON_PAGED, NBL_ALLOC_SIZE, prec.tag)
        as *mut NET_BUFFER_LIST;
    if nbl.is_null() {
        return nbl;
    }
    let cap = (ctx_size + ctx_backfill).max(prec.context_size);
    let ctx = if cap > 0 {
        alloc_context(cap, ctx_size, false, prec.tag)
    } else {
        std::ptr::null_mut()
    };
    // SAFETY: fresh zeroed NBL block.
    unsafe {
        (*nbl).Context = ctx;
        (*nbl).NdisPoolHandle = pool as NDIS_HANDLE;
    }
    let mut nb = std::ptr::null_mut::<NET_BUFFER>();
    if prec.alloc_nb {
        nb = mem::raw_alloc(Owner::Sim, POOL_FLAG_NON_PAGED, NB_SIZE, prec.tag) as *mut NET_BUFFER;
        // SAFETY: fresh zeroed NB; NBL valid.
        unsafe {
            (*nb).NdisPoolHandle = pool as NDIS_HANDLE;
            (*nbl).FirstNetBuffer = nb;
        }
    }
    let mut r = reg();
    if let Some(p) = r.pools.get_mut(&pool) {
        p.live += 1;
    }
    r.nbls.insert(
        nbl as usize,
        NblRec {
            pool,
            creator,
            holder: if creator == Creator::Driver {
                Holder::Filter
            } else {
                Holder::Creator
            },
            dir: Dir::None,
            adapter,
            seal: None,
            prealloc_nb: nb as usize,
            base_context: ctx as usize,
            resources: false,
            since_ms: crate::misc::now_ms(),
            timed_out: false,
        },
    );
    nbl
}

/// Frees an NBL (the caller checked ownership).
pub(crate) fn free_nbl(nbl: *mut NET_BUFFER_LIST) {
    let rec = {
        let mut r = reg();
        let rec = r.nbls.remove(&(nbl as usize));
        if let Some(rec) = &rec {
            if let Some(p) = r.pools.get_mut(&rec.pool) {
                p.live -= 1;
            }
        }
        rec
    };
    let Some(rec) = rec else { return };
    // SAFETY: a live NBL of this module.
    let ctx = unsafe { (*nbl).Context };
    if ctx as usize != rec.base_context {
        verifier::report(rules::NBL_NOT_RESTORED, nbl as usize, "NBL freed with a context other than its own (NdisAllocateNetBufferListContext not undone)");
    }
    free_context_chain(ctx);
    if rec.base_context != 0 && reg().contexts.contains_key(&rec.base_context) {
        free_context_chain(rec.base_context as *mut NET_BUFFER_LIST_CONTEXT);
    }
    if rec.prealloc_nb != 0 {
        mem::raw_free(rec.prealloc_nb as *mut u8);
    }
    let old = {
        let mut r = reg();
        r.quarantine.push_back(nbl as usize);
        if r.quarantine.len() > QUARANTINE {
            r.quarantine.pop_front()
        } else {
            None
        }
    };
    if let Some(o) = old {
        mem::raw_free(o as *mut u8);
    }
}

fn init_nb(nb: *mut NET_BUFFER, chain: *mut MDL, data_offset: u32, data_length: u32) {
    // SAFETY: `nb` is a live NB of this module; the chain is the caller's.
    unsafe {
        (*nb).Next = std::ptr::null_mut();
        (*nb).MdlChain = chain;
        (*nb).DataOffset = data_offset;
        (*nb).NbDataLength.stDataLength = data_length as usize;
        let (m, o) = walk(chain, data_offset);
        (*nb).CurrentMdl = m;
        (*nb).CurrentMdlOffset = o;
    }
}

/// Allocates a standalone NB from an NB pool.
fn alloc_nb(pool: usize, chain: *mut MDL, data_offset: u32, data_length: u32) -> *mut NET_BUFFER {
    let tag = match reg().pools.get(&pool) {
        Some(p) if p.kind == PoolKind::Nb => p.tag,
        _ => {
            verifier::report(rules::BAD_HANDLE, pool, "not a live NET_BUFFER pool handle");
            return std::ptr::null_mut();
        }
    };
    if fault::should_fail(AllocSite::Nb, NB_SIZE, tag) {
        return std::ptr::null_mut();
    }
    let nb = mem::raw_alloc(Owner::Sim, POOL_FLAG_NON_PAGED, NB_SIZE, tag) as *mut NET_BUFFER;
    if nb.is_null() {
        return nb;
    }
    // SAFETY: fresh NB.
    unsafe { (*nb).NdisPoolHandle = pool as NDIS_HANDLE };
    init_nb(nb, chain, data_offset, data_length);
    let mut r = reg();
    r.nbs.insert(nb as usize, pool);
    if let Some(p) = r.pools.get_mut(&pool) {
        p.live += 1;
    }
    nb
}

/// Sets the preallocated NB of a fresh NBL to describe `chain`.
pub(crate) fn set_prealloc_nb(
    nbl: *mut NET_BUFFER_LIST,
    chain: *mut MDL,
    data_offset: u32,
    data_length: u32,
) {
    // SAFETY: live NBL of this module with a preallocated NB.
    let nb = unsafe { (*nbl).FirstNetBuffer };
    init_nb(nb, chain, data_offset, data_length);
}

/// Allocates an extra (standalone) NB for a simulator NBL and appends it.
pub(crate) fn sim_append_nb(
    nbl: *mut NET_BUFFER_LIST,
    chain: *mut MDL,
    data_offset: u32,
    data_length: u32,
) {
    let nb =
        mem::raw_alloc(Owner::Sim, POOL_FLAG_NON_PAGED, NB_SIZE, mem::SIM_TAG) as *mut NET_BUFFER;
    init_nb(nb, chain, data_offset, data_length);
    // SAFETY: live NBL; its NB list is ours while we build it.
    unsafe {
        let mut last = (*nbl).FirstNetBuffer;
        if last.is_null() {
            (*nbl).FirstNetBuffer = nb;
        } else {
            while !(*last).Next.is_null() {
                last = (*last).Next;
            }
            (*last).Next = nb;
        }
    }
    reg().nbs.insert(nb as usize, 0);
}

/// Frees a simulator-built NBL: its extra NBs, every MDL and buffer of their chains.
///
/// # Safety
/// `nbl` must be a live simulator NBL whose NB list and chains are as the simulator built them.
pub(crate) unsafe fn free_sim_nbl(nbl: *mut NET_BUFFER_LIST) {
    let prealloc = nbl_record(nbl).map(|r| r.prealloc_nb).unwrap_or(0);
    // SAFETY: caller's guarantee.
    for nb in unsafe { nbs_of(nbl) } {
        // SAFETY: as above.
        let mut m = unsafe { (*nb).MdlChain };
        let mut hops = 0;
        while !m.is_null() && hops < MAX_CHAIN {
            // SAFETY: as above.
            let (next, va) =
                unsafe { ((*m).Next, (*m).StartVa as usize + (*m).ByteOffset as usize) };
            if mem::mdl_origin(m) == Some(MdlOrigin::SimLayer) {
                crate::mapping::release(m);
                mem::raw_free(va as *mut u8);
                mem::raw_free(m as *mut u8);
            }
            m = next;
            hops += 1;
        }
        if nb as usize != prealloc {
            reg().nbs.remove(&(nb as usize));
            mem::raw_free(nb as *mut u8);
        }
    }
    // SAFETY: as above.
    unsafe {
        (*nbl).FirstNetBuffer = if prealloc != 0 {
            prealloc as *mut NET_BUFFER
        } else {
            std::ptr::null_mut()
        }
    };
    if prealloc != 0 {
        // SAFETY: the preallocated NB is alive until free_nbl.
        unsafe { (*(prealloc as *mut NET_BUFFER)).Next = std::ptr::null_mut() };
    }
    free_nbl(nbl);
}

/// Builds a simulator MDL (header and buffer in nonpaged blocks, built) of `len` bytes.
pub(crate) fn sim_mdl(len: u32, fill: u8) -> *mut MDL {
    let buf = mem::raw_alloc(
        Owner::Sim,
        POOL_FLAG_NON_PAGED,
        len.max(1) as usize,
        mem::SIM_TAG,
    );
    // SAFETY: fresh buffer of at least len bytes.
    unsafe { std::ptr::write_bytes(buf, fill, len.max(1) as usize) };
    let size = MmSizeOfMdl(buf as *const _, len as usize);
    let mdl = mem::raw_alloc(Owner::Sim, POOL_FLAG_NON_PAGED, size, mem::SIM_TAG) as *mut MDL;
    // SAFETY: `mdl` has room for the header and PFNs of this range.
    unsafe {
        MmInitializeMdl(mdl, buf as PVOID, len as usize);
        if len > 0 {
            mem::build_mdl(mdl);
        } else {
            (*mdl).MappedSystemVa = buf as PVOID;
            (*mdl).MdlFlags |= MDL_SOURCE_IS_NONPAGED_POOL;
        }
    }
    mem::set_mdl_origin(mdl, MdlOrigin::SimLayer);
    mdl
}

// ---------------------------------------------------------------------------------------------
// Retreat / advance (ndis-contract.md §2.3)

fn call_alloc_handler(
    h: unsafe extern "system" fn(*mut u32) -> *mut MDL,
    abi: Abi,
    size: &mut u32,
) -> *mut MDL {
    let irql = current_irql();
    // SAFETY: the driver handed NDIS this handler for exactly this call shape.
    let mdl = unsafe { h.invoke(abi, (size as *mut u32,)) };
    if current_irql() != irql {
        verifier::report(
            rules::IRQL_NOT_RESTORED,
            h as usize,
            format!(
                "NetAllocateMdl returned at IRQL {}, called at {irql}",
                current_irql()
            ),
        );
    }
    mdl
}

fn call_free(handler: NET_BUFFER_FREE_MDL_HANDLER, abi: Abi, mdl: *mut MDL, nb: *mut NET_BUFFER) {
    let origin = mem::mdl_origin(mdl);
    match handler {
        None => mem::default_free_mdl(mdl),
        Some(h) => {
            if origin.is_some() {
                verifier::report(rules::FOREIGN_MDL_FREED, mdl as usize,
                    format!("advance with FreeMdl=TRUE hands NetFreeMdl an MDL it did not allocate ({origin:?}, NB {nb:p})"));
            }
            reg().retreat_mdls.remove(&(mdl as usize));
            let irql = current_irql();
            // SAFETY: the driver handed NDIS this handler for exactly this call shape.
            unsafe { h.invoke(abi, (mdl,)) };
            if current_irql() != irql {
                verifier::report(
                    rules::IRQL_NOT_RESTORED,
                    h as usize,
                    format!(
                        "NetFreeMdl returned at IRQL {}, called at {irql}",
                        current_irql()
                    ),
                );
            }
        }
    }
}

/// The per-NB retreat.
///
/// # Safety
/// `nb` must be a valid NB with a valid chain.
pub(crate) unsafe fn retreat(
    nb: *mut NET_BUFFER,
    delta: u32,
    backfill: u32,
    alloc: NET_BUFFER_ALLOCATE_MDL_HANDLER,
    abi: Abi,
) -> NDIS_STATUS {
    // SAFETY: caller's guarantee.
    let n = unsafe { &mut *nb };
    if n.DataOffset >= delta {
        n.SetDataLength(n.DataLength().wrapping_add(delta));
        let off = n.DataOffset - delta;
        n.DataOffset = off;
        // SAFETY: valid chain.
        let (m, o) = unsafe { walk(n.MdlChain, off) };
        n.CurrentMdl = m;
        n.CurrentMdlOffset = o;
        return NDIS_STATUS_SUCCESS;
    }
    let shortfall = delta - n.DataOffset;
    let mut size = backfill.wrapping_add(shortfall);
    let mdl = match alloc {
        Some(h) => {
            let m = call_alloc_handler(h, abi, &mut size);
            if !m.is_null() {
                // SAFETY: the handler returned an MDL; verify it before trusting it.
                unsafe {
                    if mem::check_mdl_nonpaged("NetAllocateMdl result", m) && (*m).ByteCount != size
                    {
                        verifier::report(
                            rules::MDL_BYTECOUNT_MISMATCH,
                            m as usize,
                            format!(
                                "NetAllocateMdl: MDL ByteCount {} != *BufferSize {size} (asked {})",
                                (*m).ByteCount,
                                backfill.wrapping_add(shortfall)
                            ),
                        );
                    }
                }
                if size < shortfall {
                    verifier::report(rules::MDL_BYTECOUNT_MISMATCH, m as usize,
                        format!("NetAllocateMdl returned *BufferSize {size}, less than the {shortfall} bytes NDIS needs"));
                }
                reg().retreat_mdls.insert(m as usize, h as usize);
            }
            m
        }
        None => mem::default_allocate_mdl(size),
    };
    if mdl.is_null() {
        return NDIS_STATUS_RESOURCES;
    }
    // SAFETY: `mdl` is a (checked) MDL header; the NB is valid.
    unsafe { (*mdl).Next = n.MdlChain };
    n.MdlChain = mdl;
    n.DataOffset = n.DataOffset.wrapping_add(size).wrapping_sub(delta);
    n.SetDataLength(n.DataLength().wrapping_add(delta));
    n.CurrentMdl = mdl;
    n.CurrentMdlOffset = n.DataOffset;
    NDIS_STATUS_SUCCESS
}

/// The per-NB advance.
///
/// # Safety
/// `nb` must be a valid NB with a valid chain.
pub(crate) unsafe fn advance(
    nb: *mut NET_BUFFER,
    delta: u32,
    free_mdl: bool,
    free: NET_BUFFER_FREE_MDL_HANDLER,
    abi: Abi,
) {
    // SAFETY: caller's guarantee.
    let n = unsafe { &mut *nb };
    if delta > n.DataLength() {
        verifier::report(
            rules::ADVANCE_UNDERFLOW,
            nb as usize,
            format!("advance by {delta} with DataLength {}", n.DataLength()),
        );
    }
    n.DataOffset = n.DataOffset.wrapping_add(delta);
    n.SetDataLength(n.DataLength().wrapping_sub(delta));
    if free_mdl {
        let embedded = (nb as usize + NB_SIZE) as *mut MDL;
        loop {
            let mdl = n.MdlChain;
            if mdl.is_null() {
                break;
            }
            // SAFETY: valid chain.
            let bc = unsafe { (*mdl).ByteCount };
            if bc > n.DataOffset || mdl == embedded {
                break;
            }
            // SAFETY: as above.
            n.MdlChain = unsafe { (*mdl).Next };
            n.DataOffset -= bc;
            call_free(free, abi, mdl, nb);
        }
        n.CurrentMdl = n.MdlChain;
        n.CurrentMdlOffset = n.DataOffset;
    } else {
        // SAFETY: valid chain.
        let (m, o) = unsafe { walk(n.CurrentMdl, delta.wrapping_add(n.CurrentMdlOffset)) };
        n.CurrentMdl = m;
        n.CurrentMdlOffset = o;
    }
}

fn nb_arg_ok(routine: &str, nb: *const NET_BUFFER) -> bool {
    check_irql(routine, DISPATCH_LEVEL, nb as usize);
    if nb.is_null() {
        verifier::report(rules::BAD_OBJECT, 0, format!("{routine}(NULL)"));
        return false;
    }
    true
}

crate::sim_exports! {
    module = "ndis.sys";

    /// `NdisRetreatNetBufferDataStart` (ndis-contract.md §2.3): fast path when DataOffset >= delta,
    /// else one shortfall-sized allocation prepended. IRQL <= DISPATCH_LEVEL.
    fn NdisRetreatNetBufferDataStart(nb: *mut NET_BUFFER, delta: u32, backfill: u32, alloc: NET_BUFFER_ALLOCATE_MDL_HANDLER) -> NDIS_STATUS {
        if !nb_arg_ok("NdisRetreatNetBufferDataStart", nb) {
            return NDIS_STATUS_INVALID_PARAMETER;
        }
        // SAFETY: the driver passes a valid NB it owns.
        unsafe { retreat(nb, delta, backfill, alloc, caller_abi()) }
    }

    /// `NdisAdvanceNetBufferDataStart`: FreeMdl=TRUE frees every leading MDL lying wholly in unused
    /// space (by geometry), else re-walks CurrentMdl forward. IRQL <= DISPATCH_LEVEL.
    fn NdisAdvanceNetBufferDataStart(nb: *mut NET_BUFFER, delta: u32, free_mdl: BOOLEAN, free: NET_BUFFER_FREE_MDL_HANDLER) {
        if !nb_arg_ok("NdisAdvanceNetBufferDataStart", nb) {
            return;
        }
        // SAFETY: the driver passes a valid NB it owns.
        unsafe { advance(nb, delta, free_mdl != 0, free, caller_abi()) }
    }

    /// `NdisRetreatNetBufferListDataStart`: INVALID_PARAMETER unless both or neither handler; on an
    /// allocation failure, advances (FreeMdl=TRUE) every earlier NB and returns RESOURCES.
    fn NdisRetreatNetBufferListDataStart(nbl: *mut NET_BUFFER_LIST, delta: u32, backfill: u32,
        alloc: NET_BUFFER_ALLOCATE_MDL_HANDLER, free: NET_BUFFER_FREE_MDL_HANDLER) -> NDIS_STATUS {
        check_irql("NdisRetreatNetBufferListDataStart", DISPATCH_LEVEL, nbl as usize);
        if alloc.is_none() != free.is_none() {
            return NDIS_STATUS_INVALID_PARAMETER;
        }
        let abi = caller_abi();
        // SAFETY: the driver passes a valid NBL it owns.
        let nbs = unsafe { nbs_of(nbl) };
        for (i, &nb) in nbs.iter().enumerate() {
            // SAFETY: NBs of a valid NBL.
            let st = unsafe { retreat(nb, delta, backfill, alloc, abi) };
            if st != NDIS_STATUS_SUCCESS {
                for &done in &nbs[..i] {
                    // SAFETY: as above.
                    unsafe { advance(done, delta, true, free, abi) };
                }
                return NDIS_STATUS_RESOURCES;
            }
        }
        NDIS_STATUS_SUCCESS
    }

    /// `NdisAdvanceNetBufferListDataStart`: the per-NB advance over every NB.
    fn NdisAdvanceNetBufferListDataStart(nbl: *mut NET_BUFFER_LIST, delta: u32, free_mdl: BOOLEAN, free: NET_BUFFER_FREE_MDL_HANDLER) {
        check_irql("NdisAdvanceNetBufferListDataStart", DISPATCH_LEVEL, nbl as usize);
        let abi = caller_abi();
        // SAFETY: the driver passes a valid NBL it owns.
        for nb in unsafe { nbs_of(nbl) } {
            // SAFETY: NBs of a valid NBL.
            unsafe { advance(nb, delta, free_mdl != 0, free, abi) };
        }
    }

    /// `NdisAdjustNetBufferCurrentMdl`: recomputes CurrentMdl/CurrentMdlOffset from DataOffset with
    /// the same walk as the fast-path retreat.
    fn NdisAdjustNetBufferCurrentMdl(nb: *mut NET_BUFFER) {
        if !nb_arg_ok("NdisAdjustNetBufferCurrentMdl", nb) {
            return;
        }
        // SAFETY: valid NB and chain (driver's guarantee).
        unsafe {
            let (m, o) = walk((*nb).MdlChain, (*nb).DataOffset);
            (*nb).CurrentMdl = m;
            (*nb).CurrentMdlOffset = o;
        }
    }

    /// `NdisGetDataBuffer` as observed: zero-copy when the bytes are in CurrentMdl and aligned, else
    /// a copy into Storage, else NULL. Never allocates.
    fn NdisGetDataBuffer(nb: *mut NET_BUFFER, needed: u32, storage: PVOID, align_multiple: u32, align_offset: u32) -> PVOID {
        if !nb_arg_ok("NdisGetDataBuffer", nb) {
            return std::ptr::null_mut();
        }
        // SAFETY: valid NB and chain (driver's guarantee); reads stay within each MDL's ByteCount.
        unsafe {
            let n = &*nb;
            if needed == 0 || n.CurrentMdl.is_null() || n.DataLength() < needed {
                return std::ptr::null_mut();
            }
            let m = n.CurrentMdl;
            let o = n.CurrentMdlOffset;
            if needed as u64 + o as u64 <= (*m).ByteCount as u64 {
                let va = map_for_read(m);
                if !va.is_null() && ((va as usize + o as usize) as u32 & align_multiple.wrapping_sub(1)) == align_offset {
                    return va.add(o as usize) as PVOID;
                }
            }
            if storage.is_null() {
                return std::ptr::null_mut();
            }
            let mut copied = 0usize;
            let mut mdl = m;
            let mut off = o as usize;
            let mut hops = 0;
            while copied < needed as usize && !mdl.is_null() && hops < MAX_CHAIN {
                hops += 1;
                let bc = (*mdl).ByteCount as usize;
                if off >= bc {
                    off -= bc;
                    mdl = (*mdl).Next;
                    continue;
                }
                let va = map_for_read(mdl);
                if va.is_null() {
                    return std::ptr::null_mut();
                }
                let take = (bc - off).min(needed as usize - copied);
                std::ptr::copy_nonoverlapping(va.add(off), (storage as *mut u8).add(copied), take);
                copied += take;
                off = 0;
                mdl = (*mdl).Next;
            }
            if copied == needed as usize { storage } else { std::ptr::null_mut() }
        }
    }

    /// `NdisAllocateNetBufferListPool`: IRQL <= DISPATCH_LEVEL.
    fn NdisAllocateNetBufferListPool(handle: NDIS_HANDLE, params: *mut NET_BUFFER_LIST_POOL_PARAMETERS) -> NDIS_HANDLE {
        check_irql("NdisAllocateNetBufferListPool", DISPATCH_LEVEL, handle as usize);
        handle_ok("NdisAllocateNetBufferListPool", handle);
        if params.is_null() {
            verifier::report(rules::BAD_OBJECT, 0, "NdisAllocateNetBufferListPool: NULL parameters");
            return std::ptr::null_mut();
        }
        // SAFETY: the driver passes a valid parameter block.
        let p = unsafe { &*params };
        if p.Header.Type != NDIS_OBJECT_TYPE_DEFAULT || p.Header.Revision < NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1
            || p.Header.Size < NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1 {
            verifier::report(rules::BAD_OBJECT, params as usize, "NdisAllocateNetBufferListPool: bad NDIS_OBJECT_HEADER");
            return std::ptr::null_mut();
        }
        if p.ContextSize % 8 != 0 {
            verifier::report(rules::BAD_OBJECT, params as usize, "NdisAllocateNetBufferListPool: ContextSize not a multiple of sizeof(PVOID)");
        } else {
            check_context_alignment("NdisAllocateNetBufferListPool", params as usize, p.ContextSize, 0);
        }
        if fault::should_fail(AllocSite::NblPool, 0, p.PoolTag) {
            return std::ptr::null_mut();
        }
        let h = mem::raw_alloc(Owner::Sim, POOL_FLAG_NON_PAGED, 64, p.PoolTag) as usize;
        reg().pools.insert(h, PoolRec { kind: PoolKind::Nbl, owner_handle: handle as usize, creator: Owner::Driver,
            context_size: p.ContextSize, alloc_nb: p.fAllocateNetBuffer != 0, tag: p.PoolTag, live: 0 });
        h as NDIS_HANDLE
    }

    /// `NdisFreeNetBufferListPool`: every NBL of the pool must have been freed.
    fn NdisFreeNetBufferListPool(pool: NDIS_HANDLE) {
        check_irql("NdisFreeNetBufferListPool", DISPATCH_LEVEL, pool as usize);
        let rec = reg().pools.get(&(pool as usize)).cloned();
        match rec {
            Some(p) if p.kind == PoolKind::Nbl && p.creator == Owner::Driver => {
                if p.live != 0 {
                    verifier::report(rules::LEAKED_NBL, pool as usize, format!("NdisFreeNetBufferListPool with {} NBLs still allocated", p.live));
                    return;
                }
                reg().pools.remove(&(pool as usize));
                mem::raw_free(pool as *mut u8);
            }
            _ => verifier::report(rules::BAD_HANDLE, pool as usize, "NdisFreeNetBufferListPool: not a live NBL pool of the driver"),
        }
    }

    /// `NdisAllocateNetBufferAndNetBufferList`: the pool must have fAllocateNetBuffer.
    fn NdisAllocateNetBufferAndNetBufferList(pool: NDIS_HANDLE, ctx_size: u16, ctx_backfill: u16, chain: *mut MDL,
        data_offset: u32, data_length: SIZE_T) -> *mut NET_BUFFER_LIST {
        check_irql("NdisAllocateNetBufferAndNetBufferList", DISPATCH_LEVEL, pool as usize);
        let alloc_nb = reg().pools.get(&(pool as usize)).map(|p| p.alloc_nb);
        if alloc_nb == Some(false) {
            verifier::report(rules::BAD_OBJECT, pool as usize, "NdisAllocateNetBufferAndNetBufferList on a pool without fAllocateNetBuffer");
            return std::ptr::null_mut();
        }
        let nbl = alloc_nbl(pool as usize, ctx_size, ctx_backfill, Creator::Driver, 0);
        if !nbl.is_null() {
            set_prealloc_nb(nbl, chain, data_offset, data_length as u32);
        }
        nbl
    }

    /// `NdisAllocateNetBufferList`: an NBL without NBs (pool without fAllocateNetBuffer).
    fn NdisAllocateNetBufferList(pool: NDIS_HANDLE, ctx_size: u16, ctx_backfill: u16) -> *mut NET_BUFFER_LIST {
        check_irql("NdisAllocateNetBufferList", DISPATCH_LEVEL, pool as usize);
        let nbl = alloc_nbl(pool as usize, ctx_size, ctx_backfill, Creator::Driver, 0);
        if !nbl.is_null() {
            if let Some(nb) = nbl_record(nbl).map(|r| r.prealloc_nb).filter(|&a| a != 0) {
                // NdisAllocateNetBufferList on an fAllocateNetBuffer pool: the NB exists but is not linked.
                // SAFETY: live NBL of this module.
                unsafe { (*nbl).FirstNetBuffer = std::ptr::null_mut() };
                let _ = nb;
            }
        }
        nbl
    }

    /// `NdisFreeNetBufferList`: the driver must own the NBL (not handed out) and have freed its own NBs.
    fn NdisFreeNetBufferList(nbl: *mut NET_BUFFER_LIST) {
        check_irql("NdisFreeNetBufferList", DISPATCH_LEVEL, nbl as usize);
        match nbl_record(nbl) {
            None => verifier::report(rules::UNKNOWN_NBL, nbl as usize, "NdisFreeNetBufferList: not a live NBL"),
            Some(r) if r.creator != Creator::Driver => verifier::report(rules::BAD_HANDLE, nbl as usize,
                format!("NdisFreeNetBufferList on an NBL the driver did not allocate ({:?})", r.creator)),
            Some(r) if r.holder != Holder::Creator && r.holder != Holder::Filter => verifier::report(rules::NBL_TOUCHED_AFTER_HANDOFF, nbl as usize,
                format!("NdisFreeNetBufferList while the NBL is held by the {:?}", r.holder)),
            Some(r) => {
                // SAFETY: live NBL of this module.
                let first = unsafe { (*nbl).FirstNetBuffer };
                if !first.is_null() && first as usize != r.prealloc_nb {
                    verifier::report(rules::LEAKED_NBL, nbl as usize, "NdisFreeNetBufferList with NBs still attached (free them first)");
                }
                free_nbl(nbl);
            }
        }
    }

    /// `NdisAllocateNetBufferPool`.
    fn NdisAllocateNetBufferPool(handle: NDIS_HANDLE, params: *mut NET_BUFFER_POOL_PARAMETERS) -> NDIS_HANDLE {
        check_irql("NdisAllocateNetBufferPool", DISPATCH_LEVEL, handle as usize);
        handle_ok("NdisAllocateNetBufferPool", handle);
        if params.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: the driver passes a valid parameter block.
        let p = unsafe { &*params };
        if p.Header.Type != NDIS_OBJECT_TYPE_DEFAULT || p.Header.Size < NDIS_SIZEOF_NET_BUFFER_POOL_PARAMETERS_REVISION_1 {
            verifier::report(rules::BAD_OBJECT, params as usize, "NdisAllocateNetBufferPool: bad NDIS_OBJECT_HEADER");
            return std::ptr::null_mut();
        }
        if fault::should_fail(AllocSite::NblPool, 0, p.PoolTag) {
            return std::ptr::null_mut();
        }
        let h = mem::raw_alloc(Owner::Sim, POOL_FLAG_NON_PAGED, 64, p.PoolTag) as usize;
        reg().pools.insert(h, PoolRec { kind: PoolKind::Nb, owner_handle: handle as usize, creator: Owner::Driver,
            context_size: 0, alloc_nb: false, tag: p.PoolTag, live: 0 });
        h as NDIS_HANDLE
    }

    /// `NdisFreeNetBufferPool`.
    fn NdisFreeNetBufferPool(pool: NDIS_HANDLE) {
        check_irql("NdisFreeNetBufferPool", DISPATCH_LEVEL, pool as usize);
        let rec = reg().pools.get(&(pool as usize)).cloned();
        match rec {
            Some(p) if p.kind == PoolKind::Nb && p.creator == Owner::Driver => {
                if p.live != 0 {
                    verifier::report(rules::LEAKED_NBL, pool as usize, format!("NdisFreeNetBufferPool with {} NBs still allocated", p.live));
                    return;
                }
                reg().pools.remove(&(pool as usize));
                mem::raw_free(pool as *mut u8);
            }
            _ => verifier::report(rules::BAD_HANDLE, pool as usize, "NdisFreeNetBufferPool: not a live NB pool of the driver"),
        }
    }

    /// `NdisAllocateNetBuffer`.
    fn NdisAllocateNetBuffer(pool: NDIS_HANDLE, chain: *mut MDL, data_offset: u32, data_length: SIZE_T) -> *mut NET_BUFFER {
        check_irql("NdisAllocateNetBuffer", DISPATCH_LEVEL, pool as usize);
        alloc_nb(pool as usize, chain, data_offset, data_length as u32)
    }

    /// `NdisFreeNetBuffer`: never frees chain MDLs (ndis-contract.md §5).
    fn NdisFreeNetBuffer(nb: *mut NET_BUFFER) {
        check_irql("NdisFreeNetBuffer", DISPATCH_LEVEL, nb as usize);
        let pool = reg().nbs.get(&(nb as usize)).copied();
        match pool {
            Some(p) if p != 0 => {
                let mut r = reg();
                r.nbs.remove(&(nb as usize));
                if let Some(pr) = r.pools.get_mut(&p) {
                    pr.live -= 1;
                }
                drop(r);
                mem::raw_free(nb as *mut u8);
            }
            _ => verifier::report(rules::BAD_HANDLE, nb as usize, "NdisFreeNetBuffer: not a live NB from NdisAllocateNetBuffer"),
        }
    }

    /// `NdisAllocateNetBufferListContext`: takes the space from the current context's backfill
    /// when it fits, else allocates a new context block in front. IRQL <= DISPATCH_LEVEL.
    fn NdisAllocateNetBufferListContext(nbl: *mut NET_BUFFER_LIST, size: u16, backfill: u16, tag: u32) -> NDIS_STATUS {
        check_irql("NdisAllocateNetBufferListContext", DISPATCH_LEVEL, nbl as usize);
        if !size.is_multiple_of(8) || !backfill.is_multiple_of(8) {
            verifier::report(rules::BAD_OBJECT, nbl as usize, "NdisAllocateNetBufferListContext: sizes not multiples of sizeof(PVOID)");
        } else {
            check_context_alignment("NdisAllocateNetBufferListContext", nbl as usize, size, backfill);
        }
        // SAFETY: the driver passes an NBL it owns.
        unsafe {
            let ctx = (*nbl).Context;
            if !ctx.is_null() && (*ctx).Offset >= size {
                // Carved from the backfill: the used part grows downward, Size (the whole space) stays.
                (*ctx).Offset -= size;
                record_context_carve();
                return NDIS_STATUS_SUCCESS;
            }
            if fault::should_fail(AllocSite::NblContext, size as usize, tag) {
                return NDIS_STATUS_RESOURCES;
            }
            // NDIS allocates the block with the caller's tag (`!poolused` shows it as theirs).
            let new = alloc_context(size + backfill, size, true, tag);
            if new.is_null() {
                return NDIS_STATUS_RESOURCES;
            }
            record_context_block();
            (*new).Next = ctx;
            (*nbl).Context = new;
        }
        NDIS_STATUS_SUCCESS
    }

    /// `NdisFreeNetBufferListContext`: gives `size` bytes back; frees an allocated block once empty.
    fn NdisFreeNetBufferListContext(nbl: *mut NET_BUFFER_LIST, size: u16) {
        check_irql("NdisFreeNetBufferListContext", DISPATCH_LEVEL, nbl as usize);
        // SAFETY: the driver passes an NBL it owns.
        unsafe {
            let ctx = (*nbl).Context;
            if ctx.is_null() || (*ctx).Size - (*ctx).Offset.min((*ctx).Size) < size {
                verifier::report(rules::BAD_OBJECT, nbl as usize, format!("NdisFreeNetBufferListContext({size}) with less context in use"));
                return;
            }
            (*ctx).Offset += size;
            let rec = reg().contexts.get(&(ctx as usize)).copied();
            if let Some(c) = rec {
                if c.extra && (*ctx).Offset == (*ctx).Size {
                    (*nbl).Context = (*ctx).Next;
                    reg().contexts.remove(&(ctx as usize));
                    mem::raw_free(ctx as *mut u8);
                }
            }
        }
    }
}

/// The VA NDIS reads an MDL through (mapping an unbuilt MDL sets MDL_MAPPED_TO_SYSTEM_VA, and is a
/// verifier finding unless its pages are locked).
///
/// # Safety
/// `m` must be a valid MDL header.
unsafe fn map_for_read(m: *mut MDL) -> *mut u8 {
    // SAFETY: caller's guarantee.
    unsafe {
        if (*m).MdlFlags & (MDL_MAPPED_TO_SYSTEM_VA | MDL_SOURCE_IS_NONPAGED_POOL) != 0 {
            return (*m).MappedSystemVa as *mut u8;
        }
        if (*m).MdlFlags & MDL_PAGES_LOCKED == 0 {
            verifier::report(
                rules::MDL_NOT_NONPAGED,
                m as usize,
                "NdisGetDataBuffer maps an MDL that is neither built nor locked",
            );
        }
        let va = ((*m).StartVa as usize + (*m).ByteOffset as usize) as *mut u8;
        crate::mapping::check_decoy(m, "NdisGetDataBuffer");
        (*m).MappedSystemVa = va as PVOID;
        (*m).MdlFlags |= MDL_MAPPED_TO_SYSTEM_VA;
        crate::mapping::note_mapped(m);
        va
    }
}

/// The verifier work NDIS-side code does around one handler retreat + advance (see `bench_only`): the
/// two nonpaged lookups of the result check and the retreat-MDL registry insert and removal, on a dummy
/// key no MDL can have.
pub(crate) fn handler_bookkeeping_round() {
    let key = usize::MAX - PAGE_SIZE + 1;
    std::hint::black_box(mem::is_nonpaged(key, std::mem::size_of::<MDL>()));
    std::hint::black_box(mem::is_nonpaged(key + 0x50, 64));
    reg().retreat_mdls.insert(key, 0);
    reg().retreat_mdls.remove(&key);
}
