//! NBL, NB and context pools and allocation, and the routines a driver calls (NdisAllocateNetBufferListPool … NdisFreeNetBufferListContext).

#[allow(unused_imports)]
use super::*;
use crate::fault::{self, AllocSite};
use crate::kernel::check_irql;
use crate::mem::{self, Owner};
use crate::verifier::{self, rules};

// ---------------------------------------------------------------------------------------------
// Allocation

pub(super) fn handle_ok(routine: &str, handle: NDIS_HANDLE) {
    if handle.is_null() {
        verifier::report(rules::BAD_HANDLE, 0, format!("{routine}: NULL NdisHandle"));
    }
}

pub(super) static CONTEXT_CARVES: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);
pub(super) static CONTEXT_BLOCKS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

pub(super) fn record_context_carve() {
    CONTEXT_CARVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

pub(super) fn record_context_block() {
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

pub(super) fn alloc_context(
    capacity: u16,
    used: u16,
    extra: bool,
    tag: u32,
) -> *mut NET_BUFFER_LIST_CONTEXT {
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

pub(super) fn free_context_chain(mut ctx: *mut NET_BUFFER_LIST_CONTEXT) {
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

/// Whether the context block at `block` is on the chain starting at `ctx` (walked as far as
/// [`free_context_chain`] frees).
fn on_context_chain(mut ctx: *mut NET_BUFFER_LIST_CONTEXT, block: usize) -> bool {
    let mut hops = 0;
    while !ctx.is_null() && hops < 64 {
        if ctx as usize == block {
            return true;
        }
        // SAFETY: contexts on an NBL's chain are live blocks of this module.
        ctx = unsafe { (*ctx).Next };
        hops += 1;
    }
    false
}

/// NBL_CONTEXT_MISALIGNED: context sizes handed to NDIS must be multiples of
/// MEMORY_ALLOCATION_ALIGNMENT, so every driver's context data stays aligned to it.
pub(super) fn check_context_alignment(routine: &str, object: usize, size: u16, backfill: u16) {
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
            since_ms: crate::clock::now_ms(),
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
    // Whether the NBL's own context block is still to be freed is decided from the chain, before
    // anything is freed: once a block goes back, another virtual CPU may allocate a context at the
    // same address, so the registry cannot tell afterwards whether that address is still ours (asking
    // it freed the other CPU's live block).
    let base_on_chain = rec.base_context == 0 || on_context_chain(ctx, rec.base_context);
    free_context_chain(ctx);
    #[cfg(test)]
    tests::after_chain_freed();
    if !base_on_chain {
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

pub(super) fn init_nb(nb: *mut NET_BUFFER, chain: *mut MDL, data_offset: u32, data_length: u32) {
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
pub(super) fn alloc_nb(
    pool: usize,
    chain: *mut MDL,
    data_offset: u32,
    data_length: u32,
) -> *mut NET_BUFFER {
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

crate::sim_exports! {
    module = "ndis.sys";

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    type Hook = Box<dyn FnOnce()>;

    thread_local! {
        /// What "another virtual CPU" does right after `free_nbl` has freed an NBL's context chain.
        static AFTER_CHAIN_FREED: RefCell<Option<Hook>> = const { RefCell::new(None) };
    }

    pub(super) fn after_chain_freed() {
        if let Some(f) = AFTER_CHAIN_FREED.with(|h| h.borrow_mut().take()) {
            f();
        }
    }

    /// The race behind the abort of `tests/stats_root.rs` (about 1 run in 100 with 4 virtual CPUs):
    /// one CPU frees an NBL, and between freeing its context chain and deciding about the NBL's own
    /// context block, another CPU's `alloc_context` gets the address just freed from the host
    /// allocator and registers it. `free_nbl` used to ask the registry whether that address was
    /// still registered, and so freed the other CPU's live block; that NBL then carried a dangling
    /// `Context` (garbage read later in the filter's NblContext::find or in free_context_chain).
    /// The host allocator decides when an address comes back, so the other CPU's registration is
    /// made here directly, as `alloc_context` makes it.
    #[test]
    fn a_context_registered_by_another_cpu_during_free_nbl_stays_registered() {
        let sim = crate::Sim::start(crate::SimConfig::default());
        let pool = sim_nbl_pool(16);
        let nbl = alloc_nbl(pool, 16, 0, Creator::Protocol(0), 0);
        // SAFETY: a fresh simulator NBL.
        let base = unsafe { (*nbl).Context } as usize;
        assert_ne!(base, 0);
        AFTER_CHAIN_FREED.with(|h| {
            *h.borrow_mut() = Some(Box::new(move || {
                assert!(!reg().contexts.contains_key(&base), "the chain was freed");
                reg().contexts.insert(
                    base,
                    CtxRec {
                        capacity: 16,
                        extra: true,
                    },
                );
            }))
        });
        free_nbl(nbl);
        let kept = reg().contexts.remove(&base).is_some();
        free_sim_pool(pool);
        sim.finish();
        assert!(
            kept,
            "free_nbl freed a context block another CPU had registered at the same address"
        );
    }
}
