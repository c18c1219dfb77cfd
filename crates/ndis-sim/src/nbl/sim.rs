//! The simulator's own NBLs, pools and MDLs: what the simulated protocol and miniport build their
//! sends and indications from (allocated as NDIS would, with the owner's context filled in) and
//! free at the end.

#[allow(unused_imports)]
use super::*;
use crate::mem::{self, MdlOrigin, Owner};

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
