//! Pool statistics: per-CPU × per-class counters written by one CPU each, summed on read.
//!
//! Owns: the `#[repr(C)]` counter block (a later issue exports it to the debugger, so its field order is
//! part of the contract), the snapshot types and the summing. Must not touch magazines or blocks.
//!
//! Single-writer rule: the counters of CPU `c` are only written by code running on CPU `c` at
//! DISPATCH_LEVEL (or by teardown with the pool quiescent), with a relaxed load + relaxed store: no locked
//! instruction on the hot path, and a reader on another CPU sees each counter as some recent value.

use core::sync::atomic::{AtomicU64, Ordering};

/// Counters of one (CPU, class) pair. `#[repr(C)]`, sixteen `u64` fields = 128 bytes, in this order:
///
/// | # | field | meaning |
/// |---|---|---|
/// | 0 | `total_allocates` | allocation requests served or attempted on this CPU (`!lookaside` TotalAllocates) |
/// | 1 | `allocate_misses` | allocations that found no cached block and went to the system |
/// | 2 | `total_frees` | frees performed on this CPU (of blocks from any CPU) |
/// | 3 | `free_misses` | frees that found every cache full and returned the block to the system |
/// | 4 | `depth` | blocks held in this CPU's two magazines of the class (`!lookaside` Depth) |
/// | 5 | `depot_gets` | full magazines taken from the depot (allocation-side exchanges) |
/// | 6 | `depot_puts` | full magazines given to the depot (free-side exchanges) |
/// | 7 | `system_allocs` | blocks constructed (allocated from the system) by this CPU |
/// | 8 | `system_frees` | blocks returned to the system by this CPU (free misses, trim, flush) |
/// | 9 | `oversize` | oversize allocations (uncached) |
/// | 10 | `failures` | allocations that returned NULL (no memory, bad size, injected fault) |
/// | 11 | `injected` | of `failures`, those injected by the fault knob |
/// | 12 | `trimmed` | blocks released by trim on this CPU |
/// | 13 | `flushed` | blocks released by flush on this CPU |
/// | 14 | `reserved0` | zero |
/// | 15 | `reserved1` | zero |
#[repr(C)]
#[derive(Debug, Default)]
pub struct ClassCounters {
    pub total_allocates: AtomicU64,
    pub allocate_misses: AtomicU64,
    pub total_frees: AtomicU64,
    pub free_misses: AtomicU64,
    pub depth: AtomicU64,
    pub depot_gets: AtomicU64,
    pub depot_puts: AtomicU64,
    pub system_allocs: AtomicU64,
    pub system_frees: AtomicU64,
    pub oversize: AtomicU64,
    pub failures: AtomicU64,
    pub injected: AtomicU64,
    pub trimmed: AtomicU64,
    pub flushed: AtomicU64,
    pub reserved0: AtomicU64,
    pub reserved1: AtomicU64,
}

const _: () = assert!(core::mem::size_of::<ClassCounters>() == 128);

/// Adds `n` to a single-writer counter (relaxed load + relaxed store; no locked instruction).
#[inline(always)]
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// Subtracts `n` from a single-writer counter (wrapping).
#[inline(always)]
pub(crate) fn sub(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_sub(n),
        Ordering::Relaxed,
    );
}

/// Sums of the counters over CPUs for one class, plus what the pool derives from them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassSnapshot {
    /// Data bytes of the class (0 for the oversize row).
    pub class_size: u32,
    /// Bytes of one whole block of the class (0 for the oversize row).
    pub block_bytes: u32,
    pub total_allocates: u64,
    pub allocate_misses: u64,
    pub total_frees: u64,
    pub free_misses: u64,
    /// Blocks in per-CPU magazines.
    pub depth: u64,
    pub depot_gets: u64,
    pub depot_puts: u64,
    pub system_allocs: u64,
    pub system_frees: u64,
    pub oversize: u64,
    pub failures: u64,
    pub injected: u64,
    pub trimmed: u64,
    pub flushed: u64,
    /// Blocks handed out and not yet freed: successful allocations − frees. Exact once traffic stops.
    pub in_flight: u64,
    /// Blocks that exist (constructed − returned to the system).
    pub live_blocks: u64,
    /// Highest `live_blocks` seen.
    pub high_water: u64,
    /// Blocks held by the pool (magazines + depot) = live − in flight.
    pub retained_blocks: u64,
    /// `retained_blocks * block_bytes`.
    pub retained_bytes: u64,
    /// Full magazines in the depot.
    pub depot_full: u64,
    /// Blocks in the depot's full magazines.
    pub depot_blocks: u64,
}

impl ClassSnapshot {
    pub(crate) fn accumulate(&mut self, c: &ClassCounters) {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        self.total_allocates = self.total_allocates.wrapping_add(r(&c.total_allocates));
        self.allocate_misses = self.allocate_misses.wrapping_add(r(&c.allocate_misses));
        self.total_frees = self.total_frees.wrapping_add(r(&c.total_frees));
        self.free_misses = self.free_misses.wrapping_add(r(&c.free_misses));
        self.depth = self.depth.wrapping_add(r(&c.depth));
        self.depot_gets = self.depot_gets.wrapping_add(r(&c.depot_gets));
        self.depot_puts = self.depot_puts.wrapping_add(r(&c.depot_puts));
        self.system_allocs = self.system_allocs.wrapping_add(r(&c.system_allocs));
        self.system_frees = self.system_frees.wrapping_add(r(&c.system_frees));
        self.oversize = self.oversize.wrapping_add(r(&c.oversize));
        self.failures = self.failures.wrapping_add(r(&c.failures));
        self.injected = self.injected.wrapping_add(r(&c.injected));
        self.trimmed = self.trimmed.wrapping_add(r(&c.trimmed));
        self.flushed = self.flushed.wrapping_add(r(&c.flushed));
    }

    /// Successful allocations: attempted minus failed.
    pub fn served(&self) -> u64 {
        self.total_allocates.wrapping_sub(self.failures)
    }
}

/// A summed view of the whole pool. Built without allocating.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolSnapshot {
    /// Number of size classes in use (rows `0..class_count` of `classes`).
    pub class_count: usize,
    /// One row per class; the row at index `class_count` is the oversize row.
    pub classes: [ClassSnapshot; super::MAX_CLASSES + 1],
    /// Sum over all rows (including oversize).
    pub total: ClassSnapshot,
    /// MDLs handed to free that were not pool blocks (never freed; counted).
    pub foreign_frees: u64,
    /// Frees of pool blocks that were not in flight (double frees; ignored; counted).
    pub double_frees: u64,
    /// Calls made on a CPU index outside the per-CPU arrays (failed; counted).
    pub bad_cpu: u64,
    /// Magazine fill limit M in force ([`super::Limits::magazine_fill`]).
    pub magazine_size: u32,
    /// Depot limit in force (full magazines per class).
    pub depot_limit: u32,
    /// Trim interval in force, ms.
    pub trim_interval_ms: u32,
    /// CPUs the pool was sized for.
    pub cpus: usize,
}

impl PoolSnapshot {
    /// The oversize row.
    pub fn oversize(&self) -> &ClassSnapshot {
        &self.classes[self.class_count]
    }

    /// The size-class rows.
    pub fn size_classes(&self) -> &[ClassSnapshot] {
        &self.classes[..self.class_count]
    }
}
