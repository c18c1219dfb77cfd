//! The peers of the pool benchmark (`benches/pool.rs`): the block shape they all serve, the `Peer` trait,
//! the pool on its benchmark platform, the floor, the lookaside model, the queue and mutex peers and
//! NDIS's default allocator shape. Included by `benches/pool.rs` (`#[path]`), whose scenarios drive them.

use super::host::HostPlatform;
use super::{black_box, CAP};
use crossbeam_queue::ArrayQueue;
use mdlpool::pool::{Platform, PoolHandle};
use ndis_sys::MDL;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

/// The pool's platform in this benchmark: `HostPlatform` (threads as CPUs, memory from the global
/// allocator) without its test-only CPU-slot occupancy check. `HostPlatform::new(_, false)` skips that
/// check at run time, but its code still sits in the pool's inlined fast path (a flag test on raise and
/// on lower, the check's registers and panic path): measured interleaved, about 0.3 of the same-CPU
/// pool/floor ratio (~1 ns per pair). The kernel's raise/lower are CR8 accesses with no such check (see
/// the IRQL note in BENCHMARKS.md), so the pool is timed here without it. Every thread this benchmark
/// runs pool calls on binds its own CPU index (the worker and `duo`'s threads), as `HostPlatform`'s
/// contract asks; the checked platform keeps testing that in the unit, stress and Miri tests.
pub(super) struct BenchPlatform(pub(super) HostPlatform);

// SAFETY: as `HostPlatform`'s (one thread per CPU index, which this benchmark's threads keep: see
// above); raise/lower do nothing, as `HostPlatform`'s do when unchecked.
unsafe impl Platform for BenchPlatform {
    fn max_cpus(&self) -> usize {
        self.0.max_cpus()
    }
    #[inline(always)]
    fn raise_to_dispatch(&self) -> u8 {
        0
    }
    #[inline(always)]
    fn lower_irql(&self, _old: u8) {}
    #[inline(always)]
    fn current_cpu(&self) -> usize {
        HostPlatform::bound_cpu()
    }
    fn alloc_block(&self, bytes: usize) -> *mut u8 {
        self.0.alloc_block(bytes)
    }
    unsafe fn free_block(&self, block: *mut u8, bytes: usize) {
        // SAFETY: the caller's contract is HostPlatform's.
        unsafe { self.0.free_block(block, bytes) }
    }
    unsafe fn build_mdl(&self, mdl: *mut MDL, va: *mut u8, len: usize) {
        // SAFETY: the caller's contract is HostPlatform's.
        unsafe { self.0.build_mdl(mdl, va, len) }
    }
    fn report(&self, args: std::fmt::Arguments<'_>) {
        self.0.report(args)
    }
}

/// The platform whose `build_mdl` builds the peers' MDLs (one for the whole run: making one per request
/// would charge the NDIS-default peers two extra allocations each time).
pub(super) fn mdl_builder() -> &'static HostPlatform {
    static P: std::sync::OnceLock<HostPlatform> = std::sync::OnceLock::new();
    P.get_or_init(|| HostPlatform::new(1, false))
}

// ---------------------------------------------------------------------------------------------------
// Block shape shared by the peers: MDL at 0, one PFN at 0x30, data at 0x40 (NDIS's own default layout).

pub(super) const PEER_DATA_OFFSET: usize = 0x40;
pub(super) const PEER_CAPACITY: usize = 2048;

pub(super) fn peer_layout(capacity: usize) -> Layout {
    HostPlatform::layout_for(PEER_DATA_OFFSET + capacity)
}

/// Initialises and builds the MDL of a block at `p` for `len` bytes (what the pool does once per block
/// and NDIS's default allocator on every request).
pub(super) unsafe fn build(p: *mut u8, len: usize) -> *mut MDL {
    let mdl = p.cast::<MDL>();
    // SAFETY: the block has room for the MDL, one PFN and `len` data bytes within one page.
    unsafe { mdl_builder().build_mdl(mdl, p.add(PEER_DATA_OFFSET), len) };
    mdl
}

pub(super) fn new_block(alloc: &dyn GlobalAlloc) -> usize {
    let layout = peer_layout(PEER_CAPACITY);
    // SAFETY: non-zero layout; the block is built below.
    unsafe {
        let p = alloc.alloc(layout);
        assert!(!p.is_null());
        build(p, PEER_CAPACITY) as usize
    }
}

pub(super) fn free_block(alloc: &dyn GlobalAlloc, b: usize) {
    // SAFETY: allocated by new_block with the same layout.
    unsafe { alloc.dealloc(b as *mut u8, peer_layout(PEER_CAPACITY)) }
}

/// What an allocation changes on a cached block (the same two stores the pool makes).
#[inline(always)]
pub(super) fn hand_out(b: usize, size: u32) -> *mut MDL {
    let m = b as *mut MDL;
    // SAFETY: a live block owned by the caller.
    unsafe {
        (*m).Next = core::ptr::null_mut();
        (*m).ByteCount = size;
    }
    m
}

/// The touch: write 16 bytes at the tail of the described range, read one back.
#[inline(always)]
pub(super) fn touch(m: *mut MDL) {
    // SAFETY: the MDL describes ByteCount >= 16 writable bytes at MappedSystemVa.
    unsafe {
        let va = (*m).MappedSystemVa.cast::<u8>();
        let n = (*m).ByteCount as usize;
        core::ptr::write_bytes(va.add(n - 16), 0x5A, 16);
        black_box(*va.add(n - 1));
    }
}

/// What the completing CPU does with the MDL before it reaches the free routine: NDIS's
/// `NdisAdvanceNetBufferDataStart(FreeMdl = TRUE)` reads the MDL's `ByteCount` and `Next` to unlink it
/// (ndis-contract.md §2.3). Charged to every peer alike in the cross-CPU scenario.
#[inline(always)]
pub(super) fn complete(m: *mut MDL) {
    // SAFETY: a live MDL handed over by the allocating thread.
    unsafe {
        black_box((*m).ByteCount);
        black_box((*m).Next);
    }
}

// ---------------------------------------------------------------------------------------------------
// Peers behind one trait.

pub(super) trait Peer: Sync {
    fn get(&self, size: u32) -> *mut MDL;
    fn put(&self, m: *mut MDL);
}

pub(super) struct PoolPeer(pub(super) PoolHandle<BenchPlatform>);
impl Peer for PoolPeer {
    #[inline(always)]
    fn get(&self, size: u32) -> *mut MDL {
        self.0.allocate(size)
    }
    #[inline(always)]
    fn put(&self, m: *mut MDL) {
        // SAFETY: m came from this pool and is in flight.
        let _ = unsafe { self.0.free(m) };
    }
}

thread_local! {
    static FLOOR: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The floor: a per-thread Vec of pre-built blocks.
pub(super) struct Floor;
impl Floor {
    pub(super) fn prime() {
        FLOOR.with(|f| {
            let mut f = f.borrow_mut();
            while f.len() < CAP {
                f.push(new_block(&System));
            }
        });
    }
    pub(super) fn release() {
        FLOOR.with(|f| {
            for b in f.borrow_mut().drain(..) {
                free_block(&System, b);
            }
        });
    }
}
impl Peer for Floor {
    #[inline(always)]
    fn get(&self, size: u32) -> *mut MDL {
        FLOOR
            .with(|f| f.borrow_mut().pop())
            .map(|b| hand_out(b, size))
            .unwrap_or(core::ptr::null_mut())
    }
    #[inline(always)]
    fn put(&self, m: *mut MDL) {
        FLOOR.with(|f| f.borrow_mut().push(m as usize));
    }
}

/// One shared Windows lookaside list: an SLIST (tagged Treiber stack; the link is the first 8 bytes of
/// the free entry, here the MDL's `Next`) with a depth cap and plain (non-interlocked) counters on the
/// same cache line, as `LOOKASIDE_LIST_EX` lays them out.
#[repr(C, align(64))]
pub(super) struct Lookaside {
    /// [ptr >> 4 : 44 bits | depth : 10 bits | sequence : 10 bits].
    head: AtomicU64,
    depth_cap: u32,
    total_allocates: AtomicU32,
    allocate_misses: AtomicU32,
    total_frees: AtomicU32,
    free_misses: AtomicU32,
}

impl Lookaside {
    const fn pack(ptr: usize, depth: u64, seq: u64) -> u64 {
        ((ptr as u64 >> 4) << 20) | ((depth & 0x3FF) << 10) | (seq & 0x3FF)
    }
    fn unpack(v: u64) -> (usize, u64, u64) {
        (((v >> 20) << 4) as usize, (v >> 10) & 0x3FF, v & 0x3FF)
    }
    pub(super) fn new() -> Self {
        Self {
            head: AtomicU64::new(0),
            depth_cap: CAP as u32,
            total_allocates: AtomicU32::new(0),
            allocate_misses: AtomicU32::new(0),
            total_frees: AtomicU32::new(0),
            free_misses: AtomicU32::new(0),
        }
    }
    #[inline(always)]
    fn bump(c: &AtomicU32) {
        c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }
    fn pop(&self) -> Option<usize> {
        let mut cur = self.head.load(Ordering::Acquire);
        loop {
            let (ptr, depth, seq) = Self::unpack(cur);
            if ptr == 0 {
                return None;
            }
            // SAFETY: entries on the list are live blocks; a stale read is caught by the tagged CAS.
            let next = unsafe { (*(ptr as *mut MDL)).Next } as usize;
            let new = Self::pack(next, depth - 1, seq + 1);
            match self
                .head
                .compare_exchange_weak(cur, new, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => return Some(ptr),
                Err(v) => cur = v,
            }
        }
    }
    fn push(&self, b: usize) -> bool {
        let mut cur = self.head.load(Ordering::Relaxed);
        loop {
            let (ptr, depth, seq) = Self::unpack(cur);
            if depth >= self.depth_cap as u64 {
                return false;
            }
            // SAFETY: we own b until the CAS publishes it.
            unsafe { (*(b as *mut MDL)).Next = ptr as *mut MDL };
            let new = Self::pack(b, depth + 1, seq + 1);
            match self
                .head
                .compare_exchange_weak(cur, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(v) => cur = v,
            }
        }
    }
    pub(super) fn drain(&self) {
        while let Some(b) = self.pop() {
            free_block(&System, b);
        }
    }
}
impl Peer for Lookaside {
    #[inline(always)]
    fn get(&self, size: u32) -> *mut MDL {
        Self::bump(&self.total_allocates);
        let b = self.pop().unwrap_or_else(|| {
            Self::bump(&self.allocate_misses);
            new_block(&System)
        });
        hand_out(b, size)
    }
    #[inline(always)]
    fn put(&self, m: *mut MDL) {
        Self::bump(&self.total_frees);
        if !self.push(m as usize) {
            Self::bump(&self.free_misses);
            free_block(&System, m as usize);
        }
    }
}

pub(super) struct QueuePeer(pub(super) ArrayQueue<usize>);
impl Peer for QueuePeer {
    #[inline(always)]
    fn get(&self, size: u32) -> *mut MDL {
        hand_out(self.0.pop().unwrap_or_else(|| new_block(&System)), size)
    }
    #[inline(always)]
    fn put(&self, m: *mut MDL) {
        if let Err(b) = self.0.push(m as usize) {
            free_block(&System, b);
        }
    }
}

pub(super) struct MutexPeer(pub(super) Mutex<Vec<usize>>);
impl Peer for MutexPeer {
    #[inline(always)]
    fn get(&self, size: u32) -> *mut MDL {
        let b = self.0.lock().unwrap().pop();
        hand_out(b.unwrap_or_else(|| new_block(&System)), size)
    }
    #[inline(always)]
    fn put(&self, m: *mut MDL) {
        let mut v = self.0.lock().unwrap();
        if v.len() < CAP {
            v.push(m as usize);
        } else {
            drop(v);
            free_block(&System, m as usize);
        }
    }
}

/// NDIS's default allocator shape: one allocation of the worst-case MDL size + data per request, the MDL
/// initialised and built each time, the whole block freed on free.
pub(super) struct NdisDefault<A: GlobalAlloc + Sync + 'static>(pub(super) &'static A);
impl<A: GlobalAlloc + Sync> NdisDefault<A> {
    fn layout(size: u32) -> Layout {
        Layout::from_size_align(PEER_DATA_OFFSET + size as usize, 16).unwrap()
    }
}
impl<A: GlobalAlloc + Sync> Peer for NdisDefault<A> {
    #[inline(always)]
    fn get(&self, size: u32) -> *mut MDL {
        // SAFETY: non-zero layout; the MDL is built over the fresh block (its data may cross a page here,
        // as NDIS's worst-case MDL size allows: the PFN array written is at most 2 entries = 0x40 bytes).
        unsafe {
            let p = self.0.alloc(Self::layout(size));
            assert!(!p.is_null());
            build(p, size as usize)
        }
    }
    #[inline(always)]
    fn put(&self, m: *mut MDL) {
        // SAFETY: allocated by get with the layout of its ByteCount.
        unsafe { self.0.dealloc(m.cast(), Self::layout((*m).ByteCount)) }
    }
}

pub(super) static MIMALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
