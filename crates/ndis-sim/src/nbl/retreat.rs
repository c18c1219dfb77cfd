//! Retreat and advance bit for bit as ndis-contract.md §2.3 shows the shipped ndis.sys (with the
//! NetAllocateMdl/NetFreeMdl handlers, the only driver code this module calls),
//! NdisAdjustNetBufferCurrentMdl and NdisGetDataBuffer.

#[allow(unused_imports)]
use super::*;
use crate::abi::{caller_abi, Abi, Callback};
use crate::kernel::{check_irql, current_irql};
use crate::mem::{self};
use crate::verifier::{self, rules};

// ---------------------------------------------------------------------------------------------
// Retreat / advance (ndis-contract.md §2.3)

pub(super) fn call_alloc_handler(
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

pub(super) fn call_free(
    handler: NET_BUFFER_FREE_MDL_HANDLER,
    abi: Abi,
    mdl: *mut MDL,
    nb: *mut NET_BUFFER,
) {
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

pub(super) fn nb_arg_ok(routine: &str, nb: *const NET_BUFFER) -> bool {
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
}

/// The VA NDIS reads an MDL through (mapping an unbuilt MDL sets MDL_MAPPED_TO_SYSTEM_VA, and is a
/// verifier finding unless its pages are locked).
///
/// # Safety
/// `m` must be a valid MDL header.
pub(super) unsafe fn map_for_read(m: *mut MDL) -> *mut u8 {
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
