//! NET_BUFFER_LIST / NET_BUFFER / context pools and allocation, retreat/advance bit for bit as
//! ndis-contract.md §2.3 shows the shipped ndis.sys, NdisAdjustNetBufferCurrentMdl, NdisGetDataBuffer,
//! and the bookkeeping the verifier needs: who holds each NBL, seals over NBLs given away, and
//! snapshots for the restore-exact checks.
//!
//! Memory for NBLs/NBs/contexts is the simulator's (owner `Sim`); leaks of driver-created NBLs are
//! reported through the NBL registry as LEAKED_NBL rather than as pool leaks. This module calls driver
//! code only through the NetAllocateMdl/NetFreeMdl handlers given to retreat/advance.

use crate::mem::Owner;
use ndis_sys::*;
use std::collections::HashMap;

mod alloc;
mod chain;
mod checks;
mod retreat;
mod sim;

pub use alloc::context_allocations;
pub(crate) use alloc::*;
pub use chain::mac_header_len;
pub(crate) use chain::*;
pub(crate) use checks::*;
pub(crate) use retreat::*;
pub(crate) use sim::*;

/// Appends the NBL routines' exports to the table.
pub(crate) fn register_exports(table: &mut Vec<crate::abi::Export>) {
    alloc::register_exports(table);
    retreat::register_exports(table);
}
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
