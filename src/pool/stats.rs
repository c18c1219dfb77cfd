//! Pool statistics: per-CPU × per-class counters written by one CPU each, summed on read.
//!
//! Owns: the `#[repr(C)]` counter block (exported to the debugger, so its field order is part of the
//! contract; the list is written once, in `mdlpool_names::pool_counters!`, which generates the block
//! and its summing into [`ClassSnapshot`]), the snapshot types and the summing. Must not touch
//! magazines or blocks.
//!
//! Single-writer rule: the counters of CPU `c` are only written by code running on CPU `c` at
//! DISPATCH_LEVEL (or by teardown with the pool quiescent), with a relaxed load + relaxed store: no locked
//! instruction on the hot path, and a reader on another CPU sees each counter as some recent value.

use core::sync::atomic::{AtomicU64, Ordering};

mdlpool_names::pool_counters!(
    /// Counters of one (CPU, class) pair: the 14 counters of `mdlpool_names::pool_counters!`, then two
    /// reserved words; `#[repr(C)]`, sixteen `AtomicU64` = 128 bytes, in this order:
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
    #[derive(Debug, Default)]
    pub struct ClassCounters reserved(reserved0, reserved1) sum_into ClassSnapshot
);

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
        c.add_to(self);
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

// ---------------------------------------------------------------------------------------------------
// Taking a snapshot of a pool: the per-CPU counter blocks and their sum with what the pool derives.

use super::{CpuCounters, Platform, Pool};
use core::sync::atomic::Ordering as CoreOrdering;

impl<P: Platform> Pool<P> {
    /// Sums the counters into a snapshot (no allocation). Any CPU, IRQL <= DISPATCH_LEVEL. Under traffic
    /// each figure is a recent value; once traffic stops, `in_flight` and `retained_*` are exact.
    pub fn snapshot(&self) -> PoolSnapshot {
        let mut s = PoolSnapshot {
            class_count: self.nclass,
            foreign_frees: self.foreign_frees.load(CoreOrdering::Relaxed),
            double_frees: self.double_frees.load(CoreOrdering::Relaxed),
            bad_cpu: self.bad_cpu.load(CoreOrdering::Relaxed),
            magazine_size: self.fill_limit.load(CoreOrdering::Relaxed),
            depot_limit: self.depot_limit_now.load(CoreOrdering::Relaxed),
            trim_interval_ms: self.trim_interval_now.load(CoreOrdering::Relaxed),
            cpus: self.ncpu,
            ..Default::default()
        };
        for row in 0..=self.nclass {
            let r = &mut s.classes[row];
            if row < self.nclass {
                r.class_size = self.class_size[row];
                r.block_bytes = self.block_bytes[row];
            }
            for cpu in 0..self.ncpu {
                r.accumulate(self.counters_of(cpu, row));
            }
            r.live_blocks = self.shared[row].live.load(CoreOrdering::Relaxed);
            r.high_water = self.shared[row].high_water.load(CoreOrdering::Relaxed);
            let in_flight = r.served().wrapping_sub(r.total_frees);
            r.in_flight = if (in_flight as i64) < 0 { 0 } else { in_flight };
            r.retained_blocks = r.live_blocks.saturating_sub(r.in_flight);
            r.retained_bytes = r.retained_blocks * r.block_bytes as u64;
            if row < self.nclass {
                let (nfull, blocks) = self
                    .on_cpu(|_| {
                        self.with_depot(row, |d| {
                            // Full magazines hold what their fill limit was when they filled.
                            let mut blocks = 0u64;
                            let mut m = d.full;
                            while !m.is_null() {
                                // SAFETY: magazines on the full list, under the depot lock.
                                unsafe {
                                    blocks += (*m).count as u64;
                                    m = (*m).next;
                                }
                            }
                            (d.nfull as u64, blocks)
                        })
                    })
                    .unwrap_or((0, 0));
                r.depot_full = nfull;
                r.depot_blocks = blocks;
            }
        }
        let mut t = ClassSnapshot::default();
        for r in &s.classes[..=self.nclass] {
            t.total_allocates += r.total_allocates;
            t.allocate_misses += r.allocate_misses;
            t.total_frees += r.total_frees;
            t.free_misses += r.free_misses;
            t.depth = t.depth.wrapping_add(r.depth);
            t.depot_gets += r.depot_gets;
            t.depot_puts += r.depot_puts;
            t.system_allocs += r.system_allocs;
            t.system_frees += r.system_frees;
            t.oversize += r.oversize;
            t.failures += r.failures;
            t.injected += r.injected;
            t.trimmed += r.trimmed;
            t.flushed += r.flushed;
            t.in_flight += r.in_flight;
            t.live_blocks += r.live_blocks;
            t.high_water += r.high_water;
            t.retained_blocks += r.retained_blocks;
            t.retained_bytes += r.retained_bytes;
            t.depot_full += r.depot_full;
            t.depot_blocks += r.depot_blocks;
        }
        s.total = t;
        s
    }

    /// The per-CPU counter blocks (one [`CpuCounters`] per CPU), for the debugger-visible stats root.
    pub fn cpu_counters(&self) -> &[CpuCounters] {
        // SAFETY: `counters` holds ncpu initialised entries for the pool's lifetime.
        unsafe { core::slice::from_raw_parts(self.counters, self.ncpu) }
    }
}

/// Sets a single-writer counter to `v` (a relaxed store: for a counter whose value the writer holds).
#[inline(always)]
pub(crate) fn set(counter: &AtomicU64, v: u64) {
    counter.store(v, Ordering::Relaxed);
}
