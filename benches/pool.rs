//! Pool benchmarks: mdlpool's per-CPU pool against its peers, in one run, on the same block lifecycle:
//! get a block whose MDL describes N bytes (ByteCount = N, Next = NULL, built for nonpaged pool), touch
//! it (write the 16 bytes at its tail, where a retreat puts headers, and read one back), free it.
//!
//! Peers (all serve the same block shape, `[MDL + PFN | data]`, built once unless said otherwise):
//! - `floor`: what the pattern cannot avoid, with no pool logic at all: in `same_cpu`, `burst` and
//!   `contended` a bare per-thread `Vec` pop/push of pre-built blocks; in `cross_cpu` the bare hand-off
//!   (`run_handoff_floor`: pre-built blocks written on CPU 0, unlinked and freed on CPU 1, returned to
//!   CPU 0 in the same batches);
//! - `lookaside`: one shared Windows lookaside model (tagged Treiber stack, depth cap 256, plain
//!   counters on the list head's line, i.e. one LOOKASIDE_LIST_EX for all CPUs);
//! - `arrayqueue`: crossbeam `ArrayQueue` of block pointers (capacity 256);
//! - `mutex_vec`: `Mutex<Vec>` of block pointers (capacity 256);
//! - `system_ndis`: NDIS's default allocator shape on the system allocator (malloc of MDL + data, MDL
//!   initialised and built on every request, freed on every free);
//! - `mimalloc_ndis`: the same shape on mimalloc.
//!
//! Scenarios: `same_cpu` (one thread, alloc + touch + free pairs), `burst` (one thread, 256 allocations
//! then 256 frees: more than a magazine), `cross_cpu` (CPU 0 allocates and touches, CPU 1 frees: the
//! send/complete and receive/return pattern; blocks travel in batches of 64, and the freeing side first
//! reads the MDL's ByteCount and Next as NDIS's advance does), `contended` (two threads
//! each running same_cpu pairs at once). Reported times are per block (one get + touch + free).
//!
//! `cargo xtask bench` runs this and writes BENCHMARKS.md; the facts this binary measures besides
//! times (retained memory, caps, working-set bound) go to `$MDLPOOL_BENCH_FACTS`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use crossbeam_queue::ArrayQueue;
use mdlpool::pool::{Platform, Pool, PoolConfig, PoolHandle};
use ndis_sys::MDL;
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::Duration;

/// CPU time consumed by the calling thread. The machine this runs on is shared (other builds run on the
/// same two cores), so every scenario is timed in per-thread CPU time rather than wall time: time the
/// thread spends descheduled is not charged to the peer being measured, while its own cache misses and
/// cache-line transfers are.
#[derive(Clone, Copy)]
struct Instant(Duration);
impl Instant {
    fn now() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid out-pointer; CLOCK_THREAD_CPUTIME_ID is supported on Linux.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        Self(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }
    fn elapsed(&self) -> Duration {
        Self::now().0.saturating_sub(self.0)
    }
}

/// Pins the calling thread to one core (best effort).
fn pin(core: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET stays in bounds for core < CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        libc::CPU_SET(core % 1024, &mut set);
        libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

#[path = "../src/pool/host.rs"]
mod host;
use host::HostPlatform;

const N: u32 = 128;
const BURST: usize = 256;
const BATCH: usize = 64;
const CAP: usize = 256;
/// Batches in circulation in the hand-off floor (as many as `run_cross` keeps in flight).
const HANDOFF_VECS: usize = 4;

// ---------------------------------------------------------------------------------------------------
// Block shape shared by the peers: MDL at 0, one PFN at 0x30, data at 0x40 (NDIS's own default layout).

const PEER_DATA_OFFSET: usize = 0x40;
const PEER_CAPACITY: usize = 2048;

fn peer_layout(capacity: usize) -> Layout {
    HostPlatform::layout_for(PEER_DATA_OFFSET + capacity)
}

/// Initialises and builds the MDL of a block at `p` for `len` bytes (what the pool does once per block
/// and NDIS's default allocator on every request).
unsafe fn build(p: *mut u8, len: usize) -> *mut MDL {
    let plat = HostPlatform::new(1, false);
    let mdl = p.cast::<MDL>();
    // SAFETY: the block has room for the MDL, one PFN and `len` data bytes within one page.
    unsafe { plat.build_mdl(mdl, p.add(PEER_DATA_OFFSET), len) };
    mdl
}

fn new_block(alloc: &dyn GlobalAlloc) -> usize {
    let layout = peer_layout(PEER_CAPACITY);
    // SAFETY: non-zero layout; the block is built below.
    unsafe {
        let p = alloc.alloc(layout);
        assert!(!p.is_null());
        build(p, PEER_CAPACITY) as usize
    }
}

fn free_block(alloc: &dyn GlobalAlloc, b: usize) {
    // SAFETY: allocated by new_block with the same layout.
    unsafe { alloc.dealloc(b as *mut u8, peer_layout(PEER_CAPACITY)) }
}

/// What an allocation changes on a cached block (the same two stores the pool makes).
#[inline(always)]
fn hand_out(b: usize, size: u32) -> *mut MDL {
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
fn touch(m: *mut MDL) {
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
fn complete(m: *mut MDL) {
    // SAFETY: a live MDL handed over by the allocating thread.
    unsafe {
        black_box((*m).ByteCount);
        black_box((*m).Next);
    }
}

// ---------------------------------------------------------------------------------------------------
// Peers behind one trait.

trait Peer: Sync {
    fn get(&self, size: u32) -> *mut MDL;
    fn put(&self, m: *mut MDL);
}

struct PoolPeer(PoolHandle<HostPlatform>);
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
struct Floor;
impl Floor {
    fn prime() {
        FLOOR.with(|f| {
            let mut f = f.borrow_mut();
            while f.len() < CAP {
                f.push(new_block(&System));
            }
        });
    }
    fn release() {
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
struct Lookaside {
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
    fn new() -> Self {
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
    fn drain(&self) {
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

struct QueuePeer(ArrayQueue<usize>);
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

struct MutexPeer(Mutex<Vec<usize>>);
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
struct NdisDefault<A: GlobalAlloc + Sync + 'static>(&'static A);
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

static MIMALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

// ---------------------------------------------------------------------------------------------------
// Scenarios.

#[inline(always)]
fn pair(p: &dyn Peer) {
    let m = p.get(N);
    touch(m);
    p.put(m);
}

fn run_pairs(p: &dyn Peer, iters: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        pair(p);
    }
    t.elapsed()
}

fn run_burst(p: &dyn Peer, iters: u64) -> Duration {
    let mut held = [core::ptr::null_mut::<MDL>(); BURST];
    let rounds = iters.div_ceil(BURST as u64).max(1);
    let t = Instant::now();
    for _ in 0..rounds {
        for h in held.iter_mut() {
            *h = p.get(N);
            touch(*h);
        }
        for &h in held.iter() {
            p.put(h);
        }
    }
    // per block: scale to the requested iteration count
    t.elapsed()
        .mul_f64(iters as f64 / (rounds * BURST as u64) as f64)
}

/// Two threads (CPU 0 and CPU 1) run `body(cpu, iters)` at once; returns the slower thread's time.
fn duo(iters: u64, setup: impl Fn(usize) + Sync, body: impl Fn(usize, u64) + Sync) -> Duration {
    let barrier = Barrier::new(2);
    let times: Vec<Duration> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|cpu| {
                let (barrier, setup, body) = (&barrier, &setup, &body);
                s.spawn(move || {
                    pin(cpu);
                    HostPlatform::bind_cpu(cpu);
                    setup(cpu);
                    barrier.wait();
                    let t = Instant::now();
                    body(cpu, iters);
                    t.elapsed()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    times.into_iter().max().unwrap()
}

/// CPU 0 allocates and touches, CPU 1 frees; blocks travel in batches of BATCH through a pair of
/// bounded channels (the batch buffers are recycled, so the transfer does not allocate). Only the pool
/// work is timed (wall clock around each batch's allocate+touch loop on CPU 0 and free loop on CPU 1, so
/// the channel hand-off, which stands for the NBL's trip through the stack, is not charged); the result
/// is the per-block sum of both sides: one cross-CPU get + touch + free.
fn run_cross(p: &dyn Peer, iters: u64) -> Duration {
    let batches = iters.div_ceil(BATCH as u64).max(1);
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<usize>>(4);
    let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel::<Vec<usize>>(8);
    for _ in 0..4 {
        empty_tx.send(Vec::with_capacity(BATCH)).unwrap();
    }
    let full_rx = Mutex::new(full_rx);
    let empty_rx = Mutex::new(empty_rx);
    let work = [AtomicU64::new(0), AtomicU64::new(0)];
    duo(
        batches,
        |_| {},
        |cpu, batches| {
            let mut spent = Duration::ZERO;
            if cpu == 0 {
                let rx = empty_rx.lock().unwrap();
                for _ in 0..batches {
                    let mut v = rx.recv().unwrap();
                    let t = std::time::Instant::now();
                    for _ in 0..BATCH {
                        let m = p.get(N);
                        touch(m);
                        v.push(m as usize);
                    }
                    spent += t.elapsed();
                    full_tx.send(v).unwrap();
                }
            } else {
                let rx = full_rx.lock().unwrap();
                for _ in 0..batches {
                    let mut v = rx.recv().unwrap();
                    let t = std::time::Instant::now();
                    for m in v.drain(..) {
                        let m = m as *mut MDL;
                        complete(m);
                        p.put(m);
                    }
                    spent += t.elapsed();
                    let _ = empty_tx.send(v);
                }
            }
            work[cpu].store(spent.as_nanos() as u64, Ordering::Relaxed);
        },
    );
    let total = work[0].load(Ordering::Relaxed) + work[1].load(Ordering::Relaxed);
    Duration::from_nanos(total).mul_f64(iters as f64 / (batches * BATCH as u64) as f64)
}

/// The cross-CPU floor: the bare hand-off. `HANDOFF_VECS` batches of pre-built blocks circulate between
/// CPU 0 and CPU 1 in the same batches of BATCH and through the same channels as `run_cross`. CPU 0 takes
/// each block of a returned batch and does what an allocation changes (Next, ByteCount) and the touch;
/// CPU 1 does NDIS's unlink read and the free's one write to the block's first line (a free list's link
/// word), then sends the batch back for reuse. No per-CPU lookup, class lookup, counters or checks: only
/// the cache-line transfers the pattern cannot avoid. Timed exactly like `run_cross`.
fn run_handoff_floor(iters: u64) -> Duration {
    let batches = iters.div_ceil(BATCH as u64).max(1);
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<usize>>(HANDOFF_VECS);
    let (back_tx, back_rx) = std::sync::mpsc::sync_channel::<Vec<usize>>(HANDOFF_VECS);
    for _ in 0..HANDOFF_VECS {
        back_tx
            .send((0..BATCH).map(|_| new_block(&System)).collect())
            .unwrap();
    }
    let full_rx = Mutex::new(full_rx);
    let back_rx = Mutex::new(back_rx);
    let work = [AtomicU64::new(0), AtomicU64::new(0)];
    duo(
        batches,
        |_| {},
        |cpu, batches| {
            let mut spent = Duration::ZERO;
            if cpu == 0 {
                let rx = back_rx.lock().unwrap();
                for _ in 0..batches {
                    let v = rx.recv().unwrap();
                    let t = std::time::Instant::now();
                    for &b in &v {
                        touch(hand_out(b, N));
                    }
                    spent += t.elapsed();
                    full_tx.send(v).unwrap();
                }
            } else {
                let rx = full_rx.lock().unwrap();
                for _ in 0..batches {
                    let v = rx.recv().unwrap();
                    let t = std::time::Instant::now();
                    for &b in &v {
                        let m = b as *mut MDL;
                        complete(m);
                        // SAFETY: the block is ours until the batch goes back.
                        unsafe { (*m).Next = core::ptr::null_mut() };
                    }
                    spent += t.elapsed();
                    let _ = back_tx.send(v);
                }
            }
            work[cpu].store(spent.as_nanos() as u64, Ordering::Relaxed);
        },
    );
    // Every batch is back on the return channel (or was never taken): free the blocks.
    let rx = back_rx.into_inner().unwrap();
    let rest = full_rx.into_inner().unwrap();
    for v in rx.try_iter().chain(rest.try_iter()) {
        for b in v {
            free_block(&System, b);
        }
    }
    let total = work[0].load(Ordering::Relaxed) + work[1].load(Ordering::Relaxed);
    Duration::from_nanos(total).mul_f64(iters as f64 / (batches * BATCH as u64) as f64)
}

fn run_contended(p: &dyn Peer, iters: u64, floor: bool) -> Duration {
    duo(
        iters,
        |_| {
            if floor {
                Floor::prime()
            }
        },
        |_, iters| {
            for _ in 0..iters {
                pair(p);
            }
            if floor {
                Floor::release()
            }
        },
    )
}

// ---------------------------------------------------------------------------------------------------

fn pool_config() -> PoolConfig {
    PoolConfig::default()
}

fn new_pool() -> PoolPeer {
    PoolPeer(Pool::create(HostPlatform::new(2, false), &pool_config()).unwrap())
}

struct Peers {
    pool: PoolPeer,
    lookaside: Lookaside,
    queue: QueuePeer,
    mutex: MutexPeer,
    system: NdisDefault<System>,
    mimalloc: NdisDefault<mimalloc::MiMalloc>,
}

fn peers() -> Peers {
    Peers {
        pool: new_pool(),
        lookaside: Lookaside::new(),
        queue: QueuePeer(ArrayQueue::new(CAP)),
        mutex: MutexPeer(Mutex::new(Vec::with_capacity(CAP))),
        system: NdisDefault(&System),
        mimalloc: NdisDefault(&MIMALLOC),
    }
}

impl Peers {
    fn list(&self) -> [(&'static str, &dyn Peer); 6] {
        [
            ("pool", &self.pool),
            ("lookaside", &self.lookaside),
            ("arrayqueue", &self.queue),
            ("mutex_vec", &self.mutex),
            ("system_ndis", &self.system),
            ("mimalloc_ndis", &self.mimalloc),
        ]
    }

    fn release(self) -> Facts {
        self.lookaside.drain();
        while let Some(b) = self.queue.0.pop() {
            free_block(&System, b);
        }
        for b in self.mutex.0.lock().unwrap().drain(..) {
            free_block(&System, b);
        }
        let s = self.pool.0.snapshot();
        let f = Facts {
            in_flight_end: s.total.in_flight,
        };
        assert!(self.pool.0.destroy().in_flight_blocks == 0);
        f
    }
}

#[derive(Default, Debug)]
struct Facts {
    in_flight_end: u64,
}

fn bench(c: &mut Criterion) {
    pin(0);
    HostPlatform::bind_cpu(0);
    let peers = peers();
    let mut max_retained = 0u64;
    let cap = peers.pool.0.retention_cap_bytes();

    let mut g = c.benchmark_group("pool_same_cpu");
    g.bench_function(BenchmarkId::from_parameter("floor"), |b| {
        Floor::prime();
        b.iter_custom(|iters| run_pairs(&Floor, iters));
        Floor::release();
    });
    for (name, p) in peers.list() {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| run_pairs(p, iters))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("pool_burst");
    g.bench_function(BenchmarkId::from_parameter("floor"), |b| {
        Floor::prime();
        b.iter_custom(|iters| run_burst(&Floor, iters));
        Floor::release();
    });
    for (name, p) in peers.list() {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| run_burst(p, iters))
        });
    }
    g.finish();
    max_retained = max_retained.max(peers.pool.0.snapshot().total.retained_bytes);

    let mut g = c.benchmark_group("pool_cross_cpu");
    g.bench_function(BenchmarkId::from_parameter("floor"), |b| {
        b.iter_custom(run_handoff_floor)
    });
    for (name, p) in peers.list() {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                let d = run_cross(p, iters);
                if name == "pool" {
                    max_retained = max_retained.max(peers.pool.0.snapshot().total.retained_bytes);
                }
                d
            })
        });
    }
    g.finish();

    let cs = peers.pool.0.snapshot();
    let cross_facts = format!(
        "pool_after_cross: allocates={} system_allocs={} allocate_misses={} free_misses={} depot_exchanges={}",
        cs.total.total_allocates,
        cs.total.system_allocs,
        cs.total.allocate_misses,
        cs.total.free_misses,
        cs.total.depot_gets + cs.total.depot_puts
    );

    let mut g = c.benchmark_group("pool_contended");
    g.bench_function(BenchmarkId::from_parameter("floor"), |b| {
        b.iter_custom(|iters| run_contended(&Floor, iters, true))
    });
    for (name, p) in peers.list() {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                let d = run_contended(p, iters, false);
                if name == "pool" {
                    max_retained = max_retained.max(peers.pool.0.snapshot().total.retained_bytes);
                }
                d
            })
        });
    }
    g.finish();

    HostPlatform::bind_cpu(0);
    let facts = peers.release();
    let trim = burst_trim_facts();
    let out = format!(
        "retention_cap_bytes={cap}\nmax_retained_bytes={max_retained}\nin_flight_end={}\n{cross_facts}\n{trim}",
        facts.in_flight_end
    );
    println!("pool facts:\n{out}");
    let path = std::env::var("MDLPOOL_BENCH_FACTS")
        .unwrap_or_else(|_| format!("{}/pool-bench-facts.txt", env!("CARGO_TARGET_TMPDIR")));
    std::fs::write(&path, out).expect("write facts");
}

/// A burst larger than the caches on CPU 0, freed on CPU 1, then idle trims: retained memory before and
/// after, against the working-set bound and the cap.
fn burst_trim_facts() -> String {
    let pool = Pool::create(HostPlatform::new(2, false), &pool_config()).unwrap();
    let blocks: Vec<usize> = (0..4096).map(|_| pool.allocate(N) as usize).collect();
    HostPlatform::bind_cpu(1);
    for b in blocks {
        // SAFETY: in flight.
        let _ = unsafe { pool.free(b as *mut MDL) };
    }
    HostPlatform::bind_cpu(0);
    let before = pool.snapshot().total.retained_bytes;
    let t1 = pool.trim();
    let t2 = pool.trim();
    let after = pool.snapshot().total.retained_bytes;
    let out = format!(
        "burst_blocks=4096\nretained_after_burst_bytes={before}\ntrim1_released_bytes={}\ntrim2_released_bytes={}\nretained_after_idle_trim_bytes={after}\nworking_set_bound_bytes={}\nburst_pool_cap_bytes={}\n",
        t1.bytes,
        t2.bytes,
        pool.working_set_bound_bytes(),
        pool.retention_cap_bytes()
    );
    assert!(pool.destroy().is_clean());
    out
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1200))
        .without_plots()
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
