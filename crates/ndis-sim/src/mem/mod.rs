//! Simulated pool and MDL routines: ExAllocatePool2 / ExFreePool(WithTag), NdisAllocateMemoryWithTagPriority
//! / NdisFreeMemory, MmBuildMdlForNonPagedPool, NdisAllocateMdl / NdisFreeMdl, and NDIS's default
//! retreat allocator (ndis-contract.md §5, `ndisAllocateMdlInternal`).
//!
//! Every block is tracked (address, size, tag, flags, owner) so the verifier can tell nonpaged memory
//! from anything else, catch bad frees, and list what the driver leaked at unload. Blocks below
//! PAGE_SIZE never straddle a page boundary (aligned to the next power of two, like small pool blocks);
//! larger ones are page-aligned. This module never calls driver code.
//!
//! Every block also has a tail pattern, and a freed block is held in a quarantine before the host
//! allocator gets it back: [`special`], the simulator's special pool.

use crate::fault::{self, AllocSite};
use crate::verifier::check_irql;
use crate::verifier::{self, rules};
use ndis_sys::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};

pub(crate) mod special;

/// Who made an allocation: the driver (leak-checked at unload) or the simulator itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    Driver,
    Sim,
}

/// Where an MDL came from, for the free-routine checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MdlOrigin {
    /// NdisAllocateMdl (freed with NdisFreeMdl).
    NdisAllocateMdl,
    /// NDIS's default retreat allocator (freed by the default free).
    DefaultRetreat,
    /// Built by the simulated protocol or miniport over its own buffers.
    SimLayer,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Block {
    size: usize,
    tag: u32,
    flags: POOL_FLAGS,
    align: usize,
    owner: Owner,
}

#[derive(Default)]
struct PoolTable {
    blocks: BTreeMap<usize, Block>,
    mdls: HashMap<usize, MdlOrigin>,
    /// Allocations per tag since the simulation started (`!poolused`'s Allocs column).
    allocs: BTreeMap<u32, usize>,
}

static POOL: LazyLock<Mutex<PoolTable>> = LazyLock::new(|| Mutex::new(PoolTable::default()));

fn pool() -> std::sync::MutexGuard<'static, PoolTable> {
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// NDIS's pool tag for its default retreat allocation ('NDnd').
pub const NDIS_DEFAULT_MDL_TAG: u32 = 0x646E_444E;
/// Tag of the simulator's own protocol/miniport buffers ('Simu').
pub(crate) const SIM_TAG: u32 = u32::from_le_bytes(*b"Simu");

fn align_for(size: usize, flags: POOL_FLAGS) -> usize {
    let mut a = if size >= PAGE_SIZE {
        PAGE_SIZE
    } else {
        size.next_power_of_two().clamp(16, PAGE_SIZE)
    };
    if flags & POOL_FLAG_CACHE_ALIGNED != 0 {
        a = a.max(64);
    }
    a
}

/// Allocates a tracked block (no fault injection, no IRQL check).
pub(crate) fn raw_alloc(owner: Owner, flags: POOL_FLAGS, size: usize, tag: u32) -> *mut u8 {
    let align = align_for(size, flags);
    let Some(layout) = special::host_layout(size, align) else {
        return std::ptr::null_mut();
    };
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { std::alloc::alloc(layout) };
    if p.is_null() {
        return p;
    }
    let fill = if flags & POOL_FLAG_UNINITIALIZED != 0 {
        0xA5
    } else {
        0
    };
    // SAFETY: `p` is a fresh allocation of `layout.size()` = `size.max(1) + TAIL_BYTES` bytes.
    unsafe {
        std::ptr::write_bytes(p, fill, size);
        std::ptr::write_bytes(p.add(size), special::TAIL_PATTERN, layout.size() - size);
    }
    let mut t = pool();
    *t.allocs.entry(tag).or_insert(0) += 1;
    t.blocks.insert(
        p as usize,
        Block {
            size,
            tag,
            flags,
            align,
            owner,
        },
    );
    p
}

/// Frees a tracked block; false (and nothing freed) when `p` is not a live block start. The block goes
/// to the special pool's quarantine ([`special::retire`]), not straight back to the host.
pub(crate) fn raw_free(p: *mut u8) -> bool {
    let block = {
        let mut t = pool();
        let b = t.blocks.remove(&(p as usize));
        if b.is_some() {
            t.mdls.remove(&(p as usize));
        }
        b
    };
    match block {
        Some(b) => {
            // SAFETY: `p` was a live block of `b` made by `raw_alloc`, now out of the table, so this call
            // owns its memory.
            unsafe { special::retire(p, b) };
            true
        }
        None => false,
    }
}

/// Checks every freed block still held and gives it back to the host (`special::drain`). `finish`
/// calls it after the drivers are unloaded, before it reads the findings.
pub(crate) fn drain_quarantine() {
    special::drain();
}

/// True when `[addr, addr+len)` lies inside one live nonpaged block.
pub(crate) fn is_nonpaged(addr: usize, len: usize) -> bool {
    let t = pool();
    match t.blocks.range(..=addr).next_back() {
        Some((&start, b)) => {
            b.flags & (POOL_FLAG_NON_PAGED | POOL_FLAG_NON_PAGED_EXECUTE) != 0
                && addr + len <= start + b.size.max(1)
        }
        None => false,
    }
}

pub(crate) fn set_mdl_origin(mdl: *mut MDL, origin: MdlOrigin) {
    pool().mdls.insert(mdl as usize, origin);
}

pub(crate) fn mdl_origin(mdl: *const MDL) -> Option<MdlOrigin> {
    pool().mdls.get(&(mdl as usize)).copied()
}

fn forget_mdl(mdl: *const MDL) {
    pool().mdls.remove(&(mdl as usize));
}

/// The driver's live blocks: (address, size, tag, is an NDIS-made MDL).
pub(crate) fn driver_blocks() -> Vec<(usize, usize, u32, Option<MdlOrigin>)> {
    let t = pool();
    t.blocks
        .iter()
        .filter(|(_, b)| b.owner == Owner::Driver)
        .map(|(&a, b)| (a, b.size, b.tag, t.mdls.get(&a).copied()))
        .collect()
}

/// Live pool blocks per tag, the way `!poolused` groups them: the driver's own allocations and the
/// ones NDIS makes on its behalf with the tag it passed (NBL contexts, OID clones, timer objects).
/// Values are (live blocks, allocations since the simulation started). Any IRQL.
pub fn poolused() -> std::collections::BTreeMap<[u8; 4], (usize, usize)> {
    let t = pool();
    let mut m = std::collections::BTreeMap::new();
    for (&tag, &n) in &t.allocs {
        m.insert(tag.to_le_bytes(), (0, n));
    }
    for b in t.blocks.values() {
        m.entry(b.tag.to_le_bytes()).or_insert((0, 0)).0 += 1;
    }
    m
}

/// The table work of one default-allocator retreat + advance (see `bench_only`), on a dummy entry at an
/// address no allocation can have (the top page of the address space), removed again before returning.
pub(crate) fn bookkeeping_round() {
    let key = usize::MAX - PAGE_SIZE + 1;
    let block = Block {
        size: 64,
        tag: NDIS_DEFAULT_MDL_TAG,
        flags: POOL_FLAG_NON_PAGED,
        align: 64,
        owner: Owner::Driver,
    };
    pool().blocks.insert(key, block);
    set_mdl_origin(key as *mut MDL, MdlOrigin::DefaultRetreat);
    std::hint::black_box(is_nonpaged(key, 16));
    std::hint::black_box(is_nonpaged(key, 64));
    std::hint::black_box(mdl_origin(key as *const MDL));
    forget_mdl(key as *const MDL);
    {
        let mut t = pool();
        t.blocks.remove(&key);
        t.mdls.remove(&key);
    }
    // A free's special-pool work, on a block of the default allocator's size for a 14-byte retreat.
    special::bookkeeping_round(key, block);
}

/// Frees every remaining block (end of a simulation, after the leak report).
pub(crate) fn free_all() {
    let addrs: Vec<usize> = pool().blocks.keys().copied().collect();
    for a in addrs {
        raw_free(a as *mut u8);
    }
    special::drain();
    let mut t = pool();
    t.mdls.clear();
    t.allocs.clear();
}

fn pool_alloc_checked(routine: &str, flags: POOL_FLAGS, size: usize, tag: u32) -> PVOID {
    let kinds = flags & (POOL_FLAG_NON_PAGED | POOL_FLAG_NON_PAGED_EXECUTE | POOL_FLAG_PAGED);
    if kinds.count_ones() != 1 {
        verifier::report(
            rules::BAD_OBJECT,
            0,
            format!("{routine}: flags {flags:#x} must name exactly one pool type"),
        );
        return std::ptr::null_mut();
    }
    if flags & POOL_FLAG_NON_PAGED_EXECUTE != 0 {
        verifier::report(
            rules::EXECUTABLE_POOL,
            0,
            format!("{routine}: executable nonpaged pool requested (tag {tag:#x})"),
        );
    }
    let max = if flags & POOL_FLAG_PAGED != 0 {
        APC_LEVEL
    } else {
        DISPATCH_LEVEL
    };
    check_irql(routine, max, 0);
    if tag == 0 {
        verifier::report(rules::BAD_OBJECT, 0, format!("{routine}: pool tag 0"));
    }
    if fault::should_fail(AllocSite::Pool, size, tag) {
        return std::ptr::null_mut();
    }
    raw_alloc(Owner::Driver, flags, size, tag) as PVOID
}

fn pool_free_checked(routine: &str, p: PVOID, tag: Option<u32>) {
    check_irql(routine, DISPATCH_LEVEL, p as usize);
    if p.is_null() {
        verifier::report(rules::BAD_POOL_FREE, 0, format!("{routine}(NULL)"));
        return;
    }
    let block = pool().blocks.get(&(p as usize)).copied();
    match block {
        None => {
            verifier::report(
                rules::BAD_POOL_FREE,
                p as usize,
                if special::recently_freed(p as usize) {
                    format!("{routine}: double free (the block was freed before and is still held freed)")
                } else {
                    format!("{routine}: not a live pool block (double free or foreign pointer)")
                },
            )
        }
        Some(b) => {
            if let Some(t) = tag {
                if t != b.tag {
                    verifier::report(
                        rules::POOL_TAG_MISMATCH,
                        p as usize,
                        format!("{routine}: tag {t:#x}, allocated with {:#x}", b.tag),
                    );
                }
            }
            if b.owner == Owner::Sim {
                verifier::report(
                    rules::BAD_POOL_FREE,
                    p as usize,
                    format!("{routine}: block belongs to NDIS/the simulator"),
                );
                return;
            }
            if !raw_free(p as *mut u8) {
                // Another CPU freed it between the look-up above and here: a racing double free.
                verifier::report(
                    rules::BAD_POOL_FREE,
                    p as usize,
                    format!(
                        "{routine}: double free (another CPU freed the block at the same time)"
                    ),
                );
            }
        }
    }
}

/// Checks an MDL the way the verifier wants every MDL NDIS receives from a driver: built for nonpaged
/// pool, header and buffer inside live nonpaged blocks. Returns true when fine.
///
/// # Safety
/// `mdl` must be readable as an MDL header.
pub(crate) unsafe fn check_mdl_nonpaged(context: &str, mdl: *const MDL) -> bool {
    if !is_nonpaged(mdl as usize, std::mem::size_of::<MDL>()) {
        verifier::report(
            rules::MDL_NOT_NONPAGED,
            mdl as usize,
            format!("{context}: MDL header is not in nonpaged pool"),
        );
        return false;
    }
    // SAFETY: the header lies inside a live block (checked above).
    let m = unsafe { &*mdl };
    if m.MdlFlags & (MDL_SOURCE_IS_NONPAGED_POOL | MDL_PAGES_LOCKED) == 0 {
        verifier::report(rules::MDL_NOT_NONPAGED, mdl as usize,
            format!("{context}: MdlFlags {:#x} lack MDL_SOURCE_IS_NONPAGED_POOL/PAGES_LOCKED (MmBuildMdlForNonPagedPool not called)", m.MdlFlags));
        return false;
    }
    let va = m.StartVa as usize + m.ByteOffset as usize;
    if m.ByteCount > 0 && !is_nonpaged(va, m.ByteCount as usize) {
        verifier::report(
            rules::MDL_NOT_NONPAGED,
            mdl as usize,
            format!(
                "{context}: buffer {va:#x}+{} is not in nonpaged pool",
                m.ByteCount
            ),
        );
        return false;
    }
    if m.MdlFlags & MDL_SOURCE_IS_NONPAGED_POOL != 0 && m.MappedSystemVa as usize != va {
        verifier::report(
            rules::MDL_NOT_NONPAGED,
            mdl as usize,
            format!(
                "{context}: MappedSystemVa {:p} != StartVa+ByteOffset {va:#x}",
                m.MappedSystemVa
            ),
        );
        return false;
    }
    true
}

/// `MmBuildMdlForNonPagedPool` semantics (ndis-contract.md §1.1, as ReactOS/ndis.sys show it).
///
/// # Safety
/// `mdl` must be a valid MDL header.
pub(crate) unsafe fn build_mdl(mdl: *mut MDL) {
    // SAFETY: the caller guarantees a valid MDL header.
    let m = unsafe { &mut *mdl };
    if m.ByteCount == 0 {
        verifier::report(
            rules::BAD_OBJECT,
            mdl as usize,
            "MmBuildMdlForNonPagedPool: ByteCount 0",
        );
    }
    let forbidden =
        MDL_PAGES_LOCKED | MDL_MAPPED_TO_SYSTEM_VA | MDL_SOURCE_IS_NONPAGED_POOL | MDL_PARTIAL;
    if m.MdlFlags & forbidden != 0 {
        verifier::report(
            rules::BAD_OBJECT,
            mdl as usize,
            format!(
                "MmBuildMdlForNonPagedPool: MdlFlags {:#x} already built/locked/partial",
                m.MdlFlags
            ),
        );
    }
    let va = m.StartVa as usize + m.ByteOffset as usize;
    if !is_nonpaged(va, m.ByteCount as usize) {
        verifier::report(
            rules::MDL_NOT_NONPAGED,
            mdl as usize,
            format!(
                "MmBuildMdlForNonPagedPool: buffer {va:#x}+{} is not nonpaged pool",
                m.ByteCount
            ),
        );
    }
    let pages = ADDRESS_AND_SIZE_TO_SPAN_PAGES(va as *const _, m.ByteCount as usize);
    let need = std::mem::size_of::<MDL>() + pages * 8;
    if (m.Size as usize) < need || !is_nonpaged(mdl as usize, need) {
        verifier::report(
            rules::BAD_OBJECT,
            mdl as usize,
            format!(
                "MmBuildMdlForNonPagedPool: MDL Size {} / memory too small for {pages} PFNs",
                m.Size
            ),
        );
    } else {
        // SAFETY: the PFN array of `pages` entries lies inside the MDL's nonpaged block (checked).
        let pfns = unsafe { MmGetMdlPfnArray(mdl) };
        for i in 0..pages {
            // SAFETY: as above.
            unsafe {
                pfns.add(i)
                    .write((m.StartVa as usize / PAGE_SIZE + i) as u64)
            };
        }
    }
    m.Process = std::ptr::null_mut();
    m.MappedSystemVa = va as PVOID;
    m.MdlFlags |= MDL_SOURCE_IS_NONPAGED_POOL;
}

/// NDIS's default retreat allocator (`ndisAllocateMdlInternal`): one block holding the MDL, its PFN
/// array and the data; `*size` left unchanged.
pub(crate) fn default_allocate_mdl(size: u32) -> *mut MDL {
    if fault::should_fail(
        AllocSite::DefaultRetreatMdl,
        size as usize,
        NDIS_DEFAULT_MDL_TAG,
    ) {
        return std::ptr::null_mut();
    }
    let hdr = (MmSizeOfMdl(0xFFF as *const _, size as usize) + 7) & !7;
    let p = raw_alloc(
        Owner::Driver,
        POOL_FLAG_NON_PAGED | POOL_FLAG_UNINITIALIZED,
        hdr + size as usize,
        NDIS_DEFAULT_MDL_TAG,
    );
    if p.is_null() {
        return std::ptr::null_mut();
    }
    let mdl = p as *mut MDL;
    // SAFETY: the block holds `hdr` bytes of MDL + PFNs, then `size` data bytes.
    unsafe {
        MmInitializeMdl(mdl, p.add(hdr) as PVOID, size as usize);
        build_mdl(mdl);
    }
    set_mdl_origin(mdl, MdlOrigin::DefaultRetreat);
    mdl
}

/// NDIS's default free (`ndisFreeMdlInternal` = ExFreePool of the MDL). Only frees MDLs the default
/// allocator made; anything else is reported as FOREIGN_MDL_FREED and left alone.
pub(crate) fn default_free_mdl(mdl: *mut MDL) {
    match mdl_origin(mdl) {
        Some(MdlOrigin::DefaultRetreat) => {
            forget_mdl(mdl);
            if !raw_free(mdl as *mut u8) {
                verifier::report(rules::BAD_POOL_FREE, mdl as usize, "NDIS's default free: double free (another CPU freed the MDL at the same time)");
            }
        }
        other => verifier::report(
            rules::FOREIGN_MDL_FREED,
            mdl as usize,
            format!("NDIS's default free (FreeMdlHandler NULL) got an MDL it did not allocate ({other:?}); the real kernel would ExFreePool it"),
        ),
    }
}

crate::sim_exports! {
    module = "ntoskrnl.exe";

    /// `ExAllocatePool2`: IRQL <= DISPATCH_LEVEL (APC_LEVEL for paged). Zeroed unless
    /// POOL_FLAG_UNINITIALIZED; executable pool is a finding.
    fn ExAllocatePool2(flags: POOL_FLAGS, size: SIZE_T, tag: u32) -> PVOID {
        pool_alloc_checked("ExAllocatePool2", flags, size, tag)
    }

    /// `ExFreePoolWithTag`: IRQL <= DISPATCH_LEVEL; the tag must match.
    fn ExFreePoolWithTag(p: PVOID, tag: u32) {
        pool_free_checked("ExFreePoolWithTag", p, Some(tag))
    }

    /// `ExFreePool`: IRQL <= DISPATCH_LEVEL.
    fn ExFreePool(p: PVOID) {
        pool_free_checked("ExFreePool", p, None)
    }

    /// `MmBuildMdlForNonPagedPool`: IRQL <= DISPATCH_LEVEL.
    fn MmBuildMdlForNonPagedPool(mdl: *mut MDL) {
        check_irql("MmBuildMdlForNonPagedPool", DISPATCH_LEVEL, mdl as usize);
        if mdl.is_null() {
            verifier::report(rules::BAD_OBJECT, 0, "MmBuildMdlForNonPagedPool(NULL)");
            return;
        }
        if !is_nonpaged(mdl as usize, std::mem::size_of::<MDL>()) {
            verifier::report(rules::MDL_NOT_NONPAGED, mdl as usize, "MmBuildMdlForNonPagedPool: the MDL itself is not in nonpaged pool");
        }
        // SAFETY: the driver passes an initialised MDL header.
        unsafe { build_mdl(mdl) }
    }
}

/// Exports whose home module is ndis.sys (kept here because they are pool/MDL routines).
pub(crate) mod ndis_mem {
    use super::*;

    crate::sim_exports! {
        module = "ndis.sys";

        /// `NdisAllocateMdl`: IRQL <= DISPATCH_LEVEL; the buffer must be nonpaged.
        fn NdisAllocateMdl(handle: NDIS_HANDLE, va: PVOID, length: u32) -> *mut MDL {
            check_irql("NdisAllocateMdl", DISPATCH_LEVEL, va as usize);
            if handle.is_null() {
                verifier::report(rules::BAD_HANDLE, 0, "NdisAllocateMdl: NULL NdisHandle");
            }
            if !is_nonpaged(va as usize, length as usize) {
                verifier::report(rules::MDL_NOT_NONPAGED, va as usize, "NdisAllocateMdl: buffer is not nonpaged pool");
            }
            if fault::should_fail(AllocSite::Mdl, length as usize, 0) {
                return std::ptr::null_mut();
            }
            let size = MmSizeOfMdl(va, length as usize);
            let mdl = raw_alloc(Owner::Driver, POOL_FLAG_NON_PAGED, size, u32::from_le_bytes(*b"NDmd")) as *mut MDL;
            if mdl.is_null() {
                return mdl;
            }
            // SAFETY: `mdl` has room for the header and PFN array of this range.
            unsafe {
                MmInitializeMdl(mdl, va, length as usize);
                build_mdl(mdl);
            }
            set_mdl_origin(mdl, MdlOrigin::NdisAllocateMdl);
            mdl
        }

        /// `NdisFreeMdl`: IRQL <= DISPATCH_LEVEL; only MDLs from NdisAllocateMdl.
        fn NdisFreeMdl(mdl: *mut MDL) {
            check_irql("NdisFreeMdl", DISPATCH_LEVEL, mdl as usize);
            match mdl_origin(mdl) {
                Some(MdlOrigin::NdisAllocateMdl) => {
                    forget_mdl(mdl);
                    if !raw_free(mdl as *mut u8) {
                        verifier::report(rules::BAD_POOL_FREE, mdl as usize, "NdisFreeMdl: double free (another CPU freed the MDL at the same time)");
                    }
                }
                other => verifier::report(rules::FOREIGN_MDL_FREED, mdl as usize,
                    format!("NdisFreeMdl on an MDL NdisAllocateMdl did not make ({other:?})")),
            }
        }

        /// `NdisAllocateMemoryWithTagPriority`: nonpaged, IRQL <= DISPATCH_LEVEL.
        fn NdisAllocateMemoryWithTagPriority(handle: NDIS_HANDLE, length: u32, tag: u32, priority: u32) -> PVOID {
            let _ = (handle, priority);
            pool_alloc_checked("NdisAllocateMemoryWithTagPriority", POOL_FLAG_NON_PAGED, length as usize, tag)
        }

        /// `NdisFreeMemory`: IRQL <= DISPATCH_LEVEL.
        fn NdisFreeMemory(va: PVOID, length: u32, flags: u32) {
            let _ = (length, flags);
            pool_free_checked("NdisFreeMemory", va, None)
        }
    }
}
