//! The per-CPU lookaside pool behind NetAllocateMdl / NetFreeMdl (DESIGN §3).
//!
//! Owns: size classes, the per-CPU magazine layer, the depot, bounded retention (magazine size, depot
//! limit, working-set trim), flush and destroy, statistics and the fault-injection knob. It is generic
//! over [`Platform`], so the same code runs in the kernel ([`KernelPlatform`]), under loom, under Miri and
//! in benchmarks. It must not know about NDIS beyond the `MDL` it hands out, and must never panic on a
//! kernel path: every failure is a NULL return or a counted, reported value.
//!
//! Tiers (Bonwick & Adams 2001): each CPU has, per size class, a *loaded* and a *previous* magazine (a
//! bounded LIFO array of block pointers). Allocation pops from *loaded*; when it is empty and *previous*
//! is not, the two swap; when both are empty the CPU trades its empty *previous* for a full magazine from
//! the depot; when the depot has none, a block is constructed from the system. Frees mirror this, trading
//! a full *previous* for an empty depot magazine and returning the block to the system when the depot
//! already holds its limit of full magazines. A free on another CPU is an ordinary push onto the freeing
//! CPU's magazine. The per-CPU access runs at DISPATCH_LEVEL and is a plain load/store; the depot is a
//! spin lock touched once per M operations.
//!
//! Every block is at all times in exactly one of: in flight, a per-CPU magazine, a depot magazine, or
//! returned to the system. Memory retained per class is at most `(2 * cpus + depot_limit) * M` blocks.
//!
//! Runtime limits ([`Pool::set_limits`]): the magazine fill M, the depot limit and the trim interval can
//! be changed while the pool runs, within the room allocated at creation (`magazine_capacity`,
//! `depot_capacity`). They are read once per magazine exchange (the slow path), never per allocation or
//! free. The retention bound above holds with the allocated room in place of the limits at all times;
//! with the limits in force, for what is cached after the change (a magazine filled before it keeps
//! its blocks until it is next used, trimmed or flushed).
//!
//! Size rule (DESIGN §3/§4): the pool never rounds a request up. The MDL's `ByteCount` is set to the
//! requested size exactly and `*BufferSize` is left as requested, so the two always agree; the block's
//! extra capacity beyond the request is simply unused.
//!
//! Layout: this file holds the [`Pool`] structure and the allocation and free entry points (class
//! lookup, per-CPU dispatch, oversize blocks, the foreign/double-free checks); `config` the
//! configuration, limits and errors; `magazine` the per-CPU magazines and their fast and exchange
//! paths; `depot` the depot, trim and flush; `lifecycle` create, the owning handle, runtime limits and
//! destroy; `stats` the counters and the snapshot; `block` a block's layout and checks; `platform`,
//! `kernel` (and the host/loom platforms of the tests) the machine underneath.

mod block;
mod config;
mod depot;
mod lifecycle;
mod magazine;
mod platform;
mod stats;
mod sync;

mod kernel;

#[cfg(test)]
mod host;
#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(test)]
mod tests;

pub use block::{class_block_bytes, Rejected, HEADER_BYTES};
pub use config::{
    FaultConfig, Limits, PoolConfig, PoolError, DEFAULT_CLASSES, MAX_CLASSES, MAX_DEPOT_LIMIT,
    MAX_MAGAZINE, MAX_REQUEST_LIMIT,
};
pub use depot::Released;
pub use kernel::KernelPlatform;
pub use lifecycle::{LeakReport, PoolHandle};
pub use platform::Platform;
pub use stats::{ClassCounters, ClassSnapshot, PoolSnapshot};

use block::OVERSIZE_CLASS;
use core::ptr::null_mut;
use core::sync::atomic::{
    AtomicBool as CoreAtomicBool, AtomicU32, AtomicU64, Ordering as CoreOrdering,
};
use depot::Depot;
use magazine::CpuCache;
use ndis_sys::{MDL, PAGE_SIZE};

const LUT_LEN: usize = PAGE_SIZE / 16 + 1;
/// `class_lut` value for a size no class serves.
const NO_CLASS: u8 = 0xFF;

/// One CPU's counters: one [`ClassCounters`] per class, then the oversize row (index `class_count`; rows
/// past it are zero). Cache-line aligned; the array of these, one per CPU, is what the debugger reads.
/// Defined here, not in `stats`: its path `mdlpool::pool::CpuCounters` is the type name the PDB carries
/// and `windbg/mdlpool.natvis` names (checked by `cargo xtask package`).
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct CpuCounters {
    pub classes: [ClassCounters; MAX_CLASSES + 1],
}

/// Slow-path counters shared by all CPUs of one row: changed only when a block is constructed or returned
/// to the system.
#[derive(Default)]
struct Shared {
    live: AtomicU64,
    high_water: AtomicU64,
}

/// The pool. Created by [`Pool::create`], which places it in platform memory and returns a [`PoolHandle`].
///
/// `#[repr(C)]` with the fields every allocation and free reads first, so the hot path touches one line
/// of this structure (plus the class table's first line for small requests).
#[repr(C)]
pub struct Pool<P: Platform> {
    caches: *mut CpuCache,
    counters: *mut CpuCounters,
    ncpu: usize,
    nclass: usize,
    /// Magic of this pool's blocks (differs per pool instance, so a stale block of an earlier pool at the
    /// same address is not taken for ours).
    magic: u32,
    /// Allocated slots per magazine (the hard bound of every magazine's fill limit).
    magazine_size: u32,
    max_request: u32,
    fault_armed: bool,
    /// Current [`Limits`]: read once per magazine exchange (slow path), never per allocation/free.
    fill_limit: AtomicU32,
    depot_limit_now: AtomicU32,
    trim_interval_now: AtomicU32,
    /// Allocated depot magazines per class (the hard bound of `depot_limit_now`).
    depot_magazines: u32,
    platform: P,
    class_lut: [u8; LUT_LEN],
    class_size: [u32; MAX_CLASSES],
    block_bytes: [u32; MAX_CLASSES],
    config: PoolConfig,
    caches_region: (*mut u8, usize),
    counters_region: (*mut u8, usize),
    mags_region: (*mut u8, usize),
    self_region: (*mut u8, usize),
    depots: [Depot; MAX_CLASSES],
    shared: [Shared; MAX_CLASSES + 1],
    foreign_frees: AtomicU64,
    double_frees: AtomicU64,
    bad_cpu: AtomicU64,
    reported_foreign: CoreAtomicBool,
    reported_double: CoreAtomicBool,
    fault_counter: AtomicU64,
}

// SAFETY: the raw pointers are owned regions of platform memory; all shared mutation goes through the
// depot lock, per-CPU exclusivity (Platform contract) or atomics.
unsafe impl<P: Platform> Send for Pool<P> {}
// SAFETY: as above.
unsafe impl<P: Platform> Sync for Pool<P> {}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl<P: Platform> Pool<P> {
    /// The platform the pool runs on.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// The configuration the pool was created with (the limits in force now: [`Pool::limits`]).
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// CPUs the per-CPU arrays were sized for.
    pub fn cpus(&self) -> usize {
        self.ncpu
    }

    /// Whole-block size of class `class` (0 if out of range).
    pub fn block_bytes(&self, class: usize) -> usize {
        self.block_bytes.get(class).copied().unwrap_or(0) as usize
    }

    /// The most blocks the pool can ever retain for one class, whatever the limits: `(2 * cpus +
    /// allocated depot magazines) * allocated slots` (with no capacities configured, `(2 * cpus +
    /// depot_limit) * M`).
    pub fn retention_cap_blocks(&self) -> u64 {
        (2 * self.ncpu as u64 + self.depot_magazines as u64) * self.magazine_size as u64
    }

    /// The most bytes the pool can retain over all classes.
    pub fn retention_cap_bytes(&self) -> u64 {
        let per = self.retention_cap_blocks();
        self.block_bytes[..self.nclass]
            .iter()
            .map(|&b| per * b as u64)
            .sum()
    }

    /// What an idle pool retains after trim has released the depot: at most the per-CPU tier,
    /// `2 * cpus * M` blocks of each class.
    pub fn working_set_bound_bytes(&self) -> u64 {
        let per = 2 * self.ncpu as u64 * self.magazine_size as u64;
        self.block_bytes[..self.nclass]
            .iter()
            .map(|&b| per * b as u64)
            .sum()
    }

    #[inline(always)]
    fn counters_of(&self, cpu: usize, row: usize) -> &ClassCounters {
        // SAFETY: cpu < ncpu and row <= nclass <= MAX_CLASSES (the array has MAX_CLASSES + 1 rows) are
        // checked by every caller; the array lives as long as the pool.
        unsafe { (*self.counters.add(cpu)).classes.get_unchecked(row) }
    }

    /// Class index for a request: `Some(class)`, `None` for an oversize request; `Err` if unservable.
    #[inline(always)]
    pub(crate) fn class_for(&self, size: u32) -> Result<Option<usize>, ()> {
        let idx = (size as usize).wrapping_add(15) >> 4;
        match self.class_lut.get(idx) {
            Some(&c) if size != 0 && c != NO_CLASS => Ok(Some(c as usize)),
            _ if size != 0 && size <= self.max_request => Ok(None),
            _ => Err(()),
        }
    }

    fn inject_fault(&self) -> bool {
        let n = self.fault_counter.fetch_add(1, CoreOrdering::Relaxed) + 1;
        let f = &self.config.fault;
        if f.fail_every_nth != 0 && n.is_multiple_of(f.fail_every_nth as u64) {
            return true;
        }
        f.fail_rate_ppm != 0 && splitmix64(f.seed ^ n) % 1_000_000 < f.fail_rate_ppm as u64
    }

    /// Runs `f(cpu)` at DISPATCH_LEVEL on the current CPU, or counts a bad CPU index and returns None.
    #[inline(always)]
    fn on_cpu<R>(&self, f: impl FnOnce(usize) -> R) -> Option<R> {
        let old = self.platform.raise_to_dispatch();
        let cpu = self.platform.current_cpu();
        let r = if cpu < self.ncpu {
            Some(f(cpu))
        } else {
            self.bad_cpu.fetch_add(1, CoreOrdering::Relaxed);
            None
        };
        self.platform.lower_irql(old);
        r
    }

    /// Allocates a block whose MDL describes `size` bytes: `ByteCount == size`, `Next == NULL`, built for
    /// nonpaged pool (MDL_SOURCE_IS_NONPAGED_POOL, MappedSystemVa = the data). Returns NULL on failure
    /// (size 0 or above `max_request`, no memory, injected fault). IRQL <= DISPATCH_LEVEL, any CPU.
    #[inline]
    pub fn allocate(&self, size: u32) -> *mut MDL {
        let class = match self.class_for(size) {
            Ok(c) => c,
            Err(()) => {
                self.on_cpu(|cpu| {
                    let c = self.counters_of(cpu, self.nclass);
                    stats::add(&c.total_allocates, 1);
                    stats::add(&c.failures, 1);
                });
                return null_mut();
            }
        };
        if self.fault_armed && self.inject_fault() {
            let row = class.unwrap_or(self.nclass);
            self.on_cpu(|cpu| {
                let c = self.counters_of(cpu, row);
                stats::add(&c.total_allocates, 1);
                stats::add(&c.failures, 1);
                stats::add(&c.injected, 1);
            });
            return null_mut();
        }
        let Some(class) = class else {
            return self.allocate_oversize(size);
        };
        let old = self.platform.raise_to_dispatch();
        let cpu = self.platform.current_cpu();
        let block = if cpu < self.ncpu {
            // SAFETY: at DISPATCH_LEVEL on `cpu` (Platform contract): we are the only user of its cache.
            unsafe { self.pop(cpu, class) }
        } else {
            self.bad_cpu.fetch_add(1, CoreOrdering::Relaxed);
            null_mut()
        };
        self.platform.lower_irql(old);
        if block.is_null() {
            return null_mut();
        }
        // SAFETY: the block came out of our caches (or was just constructed): live, cached, now ours;
        // size <= its class capacity by class_for.
        unsafe { block::hand_out(block, size) }
    }

    fn allocate_oversize(&self, size: u32) -> *mut MDL {
        let row = self.nclass;
        let block = self
            .on_cpu(|cpu| {
                let ctr = self.counters_of(cpu, row);
                stats::add(&ctr.total_allocates, 1);
                stats::add(&ctr.oversize, 1);
                let b = block::construct(&self.platform, self.magic, OVERSIZE_CLASS, size as usize);
                if b.is_null() {
                    stats::add(&ctr.failures, 1);
                } else {
                    stats::add(&ctr.system_allocs, 1);
                    self.live_add(row);
                }
                b
            })
            .unwrap_or(null_mut());
        if block.is_null() {
            return null_mut();
        }
        // SAFETY: freshly constructed block, exclusively ours; size == capacity.
        unsafe { block::hand_out(block, size) }
    }

    fn live_add(&self, row: usize) {
        let s = &self.shared[row];
        let now = s.live.fetch_add(1, CoreOrdering::Relaxed) + 1;
        s.high_water.fetch_max(now, CoreOrdering::Relaxed);
    }

    fn live_sub(&self, row: usize, n: u64) {
        self.shared[row].live.fetch_sub(n, CoreOrdering::Relaxed);
    }

    /// Returns a block to the pool. `mdl` must be an MDL this pool handed out; anything else is refused
    /// and counted: a foreign MDL is never freed, a double free is ignored (both reported once).
    /// IRQL <= DISPATCH_LEVEL, any CPU.
    ///
    /// # Safety
    /// `mdl` points to a readable MDL in a page readable from its start (true of any MDL in kernel memory;
    /// see `block::lookup`), and if it is one of this pool's blocks, the caller owns it (it is not used
    /// after this call).
    #[inline]
    pub unsafe fn free(&self, mdl: *mut MDL) -> Result<(), Rejected> {
        // SAFETY: the caller's guarantee is lookup's precondition.
        let block = match unsafe { block::lookup(mdl, self.magic) } {
            Ok(b) => b,
            Err(e) => {
                self.note_foreign(mdl);
                return Err(e);
            }
        };
        // SAFETY: lookup found a live header of ours.
        let class = unsafe { (*block).class };
        if class != OVERSIZE_CLASS && class as usize >= self.nclass {
            self.note_foreign(mdl);
            return Err(Rejected::Foreign);
        }
        // SAFETY: as above.
        if let Err(e) = unsafe { block::take_back(block) } {
            self.note_double(mdl);
            return Err(e);
        }
        let old = self.platform.raise_to_dispatch();
        let cpu = self.platform.current_cpu();
        if cpu >= self.ncpu {
            self.bad_cpu.fetch_add(1, CoreOrdering::Relaxed);
            let row = if class == OVERSIZE_CLASS {
                self.nclass
            } else {
                class as usize
            };
            // SAFETY: the block is back in our hands; with no CPU slot to cache it in, return it.
            unsafe { block::destroy(&self.platform, block) };
            self.live_sub(row, 1);
        } else if class == OVERSIZE_CLASS {
            let ctr = self.counters_of(cpu, self.nclass);
            stats::add(&ctr.total_frees, 1);
            stats::add(&ctr.system_frees, 1);
            // SAFETY: the oversize block is ours again and never cached.
            unsafe { block::destroy(&self.platform, block) };
            self.live_sub(self.nclass, 1);
        } else {
            // SAFETY: DISPATCH_LEVEL on `cpu`: exclusive use of its cache; the block is ours.
            unsafe { self.push(cpu, class as usize, block) };
        }
        self.platform.lower_irql(old);
        Ok(())
    }

    /// Whether `mdl` is one of this pool's blocks, handed out and not yet freed. Reads only the MDL and
    /// (when the MDL looks like one of ours) the header in the same page; counts nothing. Used to find
    /// the filter's own block in a chain a neighbour has rearranged. Any IRQL.
    ///
    /// # Safety
    /// As [`Pool::free`]: `mdl` points to a readable MDL in a page readable from its start.
    pub unsafe fn owns_in_flight(&self, mdl: *mut MDL) -> bool {
        // SAFETY: the caller's guarantee is lookup's precondition.
        match unsafe { block::lookup(mdl, self.magic) } {
            // SAFETY: lookup found a live header of ours; the state is an atomic.
            Ok(b) => unsafe { (*b).state.load(CoreOrdering::Relaxed) == block::STATE_IN_FLIGHT },
            Err(_) => false,
        }
    }

    fn note_foreign(&self, mdl: *mut MDL) {
        self.foreign_frees.fetch_add(1, CoreOrdering::Relaxed);
        if !self.reported_foreign.swap(true, CoreOrdering::Relaxed) {
            self.platform.report(format_args!(
                "NetFreeMdl: MDL {mdl:p} is not a pool block; not freed (counted)"
            ));
        }
    }

    fn note_double(&self, mdl: *mut MDL) {
        self.double_frees.fetch_add(1, CoreOrdering::Relaxed);
        if !self.reported_double.swap(true, CoreOrdering::Relaxed) {
            self.platform.report(format_args!(
                "NetFreeMdl: MDL {mdl:p} freed twice; ignored (counted)"
            ));
        }
    }
}
