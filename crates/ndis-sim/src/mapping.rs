//! MDLs that describe locked pages not mapped into system space, and MmMapLockedPagesSpecifyCache.
//!
//! A protocol can send NBLs whose MDLs describe locked user buffers (raw sockets, packet capture
//! senders): built by MmProbeAndLockPages, so `MDL_PAGES_LOCKED` is set but neither
//! `MDL_SOURCE_IS_NONPAGED_POOL` nor `MDL_MAPPED_TO_SYSTEM_VA`, and `MappedSystemVa` is not a system
//! address of the buffer. A driver that needs the bytes must call MmGetSystemAddressForMdlSafe
//! (DOCUMENTED, learn.microsoft.com wdm MmGetSystemAddressForMdlSafe: "returns a nonpaged system-space
//! virtual address for the buffer"; it maps the pages when they are not yet mapped, and the mapping of
//! a MmProbeAndLockPages MDL is released by MmUnlockPages — the MDL owner's unlock/free), whose
//! macro calls MmMapLockedPagesSpecifyCache(Mdl, KernelMode, MmCached, NULL, FALSE, Priority) only when
//! neither flag is set. MmMapLockedPagesSpecifyCache (DOCUMENTED, same site): IRQL <= DISPATCH_LEVEL
//! for KernelMode; returns NULL on failure when BugCheckOnFailure is FALSE, which drivers must pass;
//! a driver must not create a second system mapping of an MDL (nor map a MmBuildMdlForNonPagedPool
//! MDL again); since Windows 8 the priority may carry MdlMappingNoExecute, which drivers should always
//! pass unless they need executable memory.
//!
//! The simulation: [`make_locked_unmapped`] turns a simulator MDL into such an MDL whose
//! `MappedSystemVa` points at a *decoy* buffer of the same size filled with [`POISON`] — not the
//! frame. Reading through it yields poison instead of the frame; writing through it changes the decoy,
//! which is checked whenever the NB reaches the miniport and when the MDL is freed, and reported as
//! UNMAPPED_MDL_ACCESS. (A read whose value is never written anywhere nor sent cannot be seen: a
//! leniency README lists.) MmMapLockedPagesSpecifyCache maps such an MDL (the system VA is the
//! buffer itself), sets MDL_MAPPED_TO_SYSTEM_VA and records the mapping, which is released when the
//! protocol frees the MDL; misuse is MDL_MAPPING_MISUSE; failures are injectable
//! ([`crate::AllocSite::MapLockedPages`]).
//!
//! Owns: the decoys and the mapping table. Must not call driver code.

use crate::fault::{self, AllocSite};
use crate::mem::{self, Owner};
use crate::verifier::check_irql;
use crate::verifier::{self, rules};
use ndis_sys::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

/// The byte a decoy is filled with: never a valid EtherType/TPID pair, so a transform reading it
/// takes its ordinary path and writes what it read somewhere.
pub const POISON: u8 = 0xDB;

struct Unmapped {
    decoy: usize,
    len: usize,
    mapped: bool,
}

static TABLE: LazyLock<Mutex<HashMap<usize, Unmapped>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
static MAPPED: AtomicU64 = AtomicU64::new(0);
static RELEASED: AtomicU64 = AtomicU64::new(0);

fn table() -> std::sync::MutexGuard<'static, HashMap<usize, Unmapped>> {
    TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn reset() {
    let old: Vec<Unmapped> = table().drain().map(|(_, u)| u).collect();
    for u in old {
        mem::raw_free(u.decoy as *mut u8);
    }
    MAPPED.store(0, Ordering::SeqCst);
    RELEASED.store(0, Ordering::SeqCst);
}

/// (mappings made by MmMapLockedPagesSpecifyCache / NDIS, mappings released with their MDL).
pub fn mapping_counts() -> (u64, u64) {
    (
        MAPPED.load(Ordering::SeqCst),
        RELEASED.load(Ordering::SeqCst),
    )
}

/// Makes a freshly built simulator MDL describe locked, unmapped pages: MDL_PAGES_LOCKED only, and
/// `MappedSystemVa` pointing at a poisoned decoy of `ByteCount` bytes.
///
/// # Safety
/// `mdl` must be a simulator MDL nobody else holds yet.
pub(crate) unsafe fn make_locked_unmapped(mdl: *mut MDL) {
    // SAFETY: the caller's guarantee.
    let len = unsafe { (*mdl).ByteCount } as usize;
    let decoy = mem::raw_alloc(Owner::Sim, POOL_FLAG_NON_PAGED, len.max(1), mem::SIM_TAG);
    // SAFETY: a fresh block of at least `len.max(1)` bytes; the MDL is the caller's.
    unsafe {
        std::ptr::write_bytes(decoy, POISON, len.max(1));
        (*mdl).MdlFlags = MDL_PAGES_LOCKED;
        (*mdl).MappedSystemVa = decoy as PVOID;
    }
    table().insert(
        mdl as usize,
        Unmapped {
            decoy: decoy as usize,
            len: len.max(1),
            mapped: false,
        },
    );
}

/// Reports UNMAPPED_MDL_ACCESS when something wrote through `mdl`'s unmapped `MappedSystemVa` (its
/// decoy changed), and re-poisons the decoy.
pub(crate) fn check_decoy(mdl: *const MDL, context: &str) {
    let t = table();
    let Some(u) = t.get(&(mdl as usize)) else {
        return;
    };
    // SAFETY: the decoy is a live simulator block of `len` bytes owned by this table.
    let bytes = unsafe { std::slice::from_raw_parts_mut(u.decoy as *mut u8, u.len) };
    if let Some(i) = bytes.iter().position(|&b| b != POISON) {
        drop(t);
        verifier::report(
            rules::UNMAPPED_MDL_ACCESS,
            mdl as usize,
            format!("{context}: byte {i} written through the MappedSystemVa of an MDL whose pages are locked but not mapped (MmGetSystemAddressForMdlSafe not called)"),
        );
        bytes.fill(POISON);
    }
}

/// Records that NDIS itself mapped `mdl` (NdisGetDataBuffer), as MmGetSystemAddressForMdlSafe would.
pub(crate) fn note_mapped(mdl: *const MDL) {
    if let Some(u) = table().get_mut(&(mdl as usize)) {
        if !u.mapped {
            u.mapped = true;
            MAPPED.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The protocol frees (unlocks) `mdl`: its decoy is checked one last time and freed, and a system
/// mapping made of it is released with it.
pub(crate) fn release(mdl: *const MDL) {
    check_decoy(mdl, "MDL freed by its owner");
    let u = table().remove(&(mdl as usize));
    if let Some(u) = u {
        if u.mapped {
            RELEASED.fetch_add(1, Ordering::SeqCst);
        }
        mem::raw_free(u.decoy as *mut u8);
    }
}

crate::sim_exports! {
    module = "ntoskrnl.exe";

    /// `MmMapLockedPagesSpecifyCache`: IRQL <= DISPATCH_LEVEL (KernelMode). Maps a locked MDL into
    /// system space and sets MDL_MAPPED_TO_SYSTEM_VA; NULL when an injected failure says so.
    fn MmMapLockedPagesSpecifyCache(mdl: *mut MDL, access_mode: KPROCESSOR_MODE, cache_type: MEMORY_CACHING_TYPE,
        requested: PVOID, bugcheck_on_failure: u32, priority: u32) -> PVOID {
        let max = if access_mode == KernelMode { DISPATCH_LEVEL } else { APC_LEVEL };
        check_irql("MmMapLockedPagesSpecifyCache", max, mdl as usize);
        if mdl.is_null() {
            verifier::report(rules::BAD_OBJECT, 0, "MmMapLockedPagesSpecifyCache(NULL)");
            return std::ptr::null_mut();
        }
        let misuse = |what: &str| verifier::report(rules::MDL_MAPPING_MISUSE, mdl as usize, format!("MmMapLockedPagesSpecifyCache: {what}"));
        if access_mode != KernelMode {
            misuse("a UserMode mapping of a network buffer");
        }
        if bugcheck_on_failure != 0 {
            misuse("BugCheckOnFailure TRUE (drivers must pass FALSE)");
        }
        if access_mode == KernelMode && !requested.is_null() {
            misuse("RequestedAddress given for a KernelMode mapping");
        }
        if priority & MdlMappingNoExecute == 0 {
            misuse("Priority without MdlMappingNoExecute (an executable mapping)");
        }
        if cache_type != MmCached && cache_type != MmNonCached && cache_type != 2 {
            misuse("unknown MEMORY_CACHING_TYPE");
        }
        // SAFETY: the driver passes a valid MDL (checked non-NULL).
        let (flags, va) = unsafe { ((*mdl).MdlFlags, (*mdl).StartVa as usize + (*mdl).ByteOffset as usize) };
        if flags & (MDL_MAPPED_TO_SYSTEM_VA | MDL_SOURCE_IS_NONPAGED_POOL) != 0 {
            misuse("a second system-space mapping of an MDL that already has one (use MmGetSystemAddressForMdlSafe)");
        }
        if flags & MDL_PAGES_LOCKED == 0 && flags & MDL_SOURCE_IS_NONPAGED_POOL == 0 {
            misuse("the MDL's pages are not locked");
        }
        // SAFETY: as above.
        let len = unsafe { (*mdl).ByteCount } as usize;
        if fault::should_fail(AllocSite::MapLockedPages, len, 0) {
            return std::ptr::null_mut();
        }
        check_decoy(mdl, "MmMapLockedPagesSpecifyCache");
        // SAFETY: as above; mapping sets the documented fields.
        unsafe {
            (*mdl).MappedSystemVa = va as PVOID;
            (*mdl).MdlFlags |= MDL_MAPPED_TO_SYSTEM_VA;
        }
        if let Some(u) = table().get_mut(&(mdl as usize)) {
            u.mapped = true;
        }
        MAPPED.fetch_add(1, Ordering::SeqCst);
        va as PVOID
    }
}
