//! The debugger-visible statistics root: one exported, unmangled, versioned `#[repr(C)]` static,
//! `MdlPoolStats`, from which WinDbg (`windbg/mdlpool.natvis`, `windbg/mdlpool.js`), a crash dump reader,
//! `sysrun` and the tests reach the pool's own per-CPU × class counters.
//!
//! Owns: the root's layout and its life cycle (empty → initialised → running → unloaded), the final
//! totals kept at unload; its readers and the plain-text dump of the root (the JSON the JS renderer
//! reads) are the submodule [`read`] (which imports the root from here; nothing here imports it).
//! Must not touch the hot path: the root holds *pointers to the counters the pool already keeps* (never copies
//! them while traffic runs); only the slow-path fields (`high_water`, the pool-wide event counts) are
//! refreshed, from [`refresh`] (the trim tick) and at unload.
//!
//! Crash-dump rule: the root is a static in the image, so it is always readable. Before the pool frees
//! its counter array, [`retire`] copies the summed counters into `final_counters`, clears `counters` and
//! sets the state to unloaded, so the root never points into freed memory. (`pool_service::uninstall`
//! flushes the quiescent pool first, so the final rows show every cached block returned to the system
//! and, in *in flight*, any block that leaked.)
//!
//! Who calls what: the root is *told*, never imports what it shows. DriverEntry tells it where the
//! filter's module list is ([`show_modules`]) and makes it the driver-wide pool's observer
//! (`pool_service::PoolObserver`), so `pool_service::install` → [`publish`], `pool_service::uninstall`
//! → [`retire`], the trim tick and a module's new limits → [`refresh`]; DriverEntry / DriverUnload →
//! [`set_running`] / [`set_stopped`]. It names the filter's `FilterModule` and `FilterStats` types only
//! so that the debugger (PDB, NatVis) knows what `modules` and `detached_totals` point at.
//!
//! IRQL: `show_modules`, `publish`, `retire`, `set_running`, `set_stopped` at PASSIVE_LEVEL; `refresh`
//! and the readers at IRQL <= DISPATCH_LEVEL. Nothing here takes a lock: every field is an atomic.
//!
//! Layout (x64 offsets are pinned by the assertions at the end of this file; the PDB is checked by
//! `cargo xtask package` against the field names the NatVis and the script use):
//!
//! | offset | field | meaning |
//! |---|---|---|
//! | 0x000 | `magic` | the 8 bytes `MdlPStat` |
//! | 0x008 | `version` | [`STATS_VERSION`]; readers refuse other versions |
//! | 0x00c | `size` | `size_of::<MdlPoolStatsRoot>()` |
//! | 0x010 | `state` | [`STATE_EMPTY`] 0, [`STATE_INITIALISED`] 1, [`STATE_RUNNING`] 2, [`STATE_UNLOADED`] 3 |
//! | 0x014 | `cpu_count` | CPUs the pool was sized for (`KeQueryMaximumProcessorCountEx(ALL_PROCESSOR_GROUPS)`) |
//! | 0x018 | `class_count` | size classes in use |
//! | 0x01c | `slots_per_cpu` | counter rows to read per CPU: `class_count` classes, then the oversize row |
//! | 0x020 | `cpu_stride` | bytes from CPU c's row s to CPU c+1's row s (`size_of::<CpuCounters>()`) |
//! | 0x024 | `slot_stride` | bytes from row s to row s+1 of one CPU (`size_of::<ClassCounters>()`) |
//! | 0x028 | `counters` | the pool's `CpuCounters` array (`cpu_count` entries), NULL unless initialised/running |
//! | 0x030 | `magazine_size` | M in force, blocks per magazine |
//! | 0x034 | `depot_limit` | full magazines the depot keeps per class, in force |
//! | 0x038 | `trim_interval_ms` | working-set trim period in force |
//! | 0x03c | `reserved0` | zero |
//! | 0x040 | `class_size` | data bytes of each class (`class_count` used) |
//! | 0x060 | `block_bytes` | whole block bytes of each class (header + MDL + PFN + data) |
//! | 0x080 | `foreign_frees` | NetFreeMdl calls with an MDL that is not ours (as of the last refresh) |
//! | 0x088 | `double_frees` | NetFreeMdl calls with a block not in flight (as of the last refresh) |
//! | 0x090 | `bad_cpu` | calls on a CPU index outside the arrays (as of the last refresh) |
//! | 0x098 | `refreshes` | times the slow-path fields were refreshed |
//! | 0x0a0 | `high_water` | most blocks that existed at once, per row (as of the last refresh) |
//! | 0x0e8 | `modules` | the filter's module list: `module_slots` pointers to `FilterModule` (NULL = free slot) |
//! | 0x0f0 | `module_slots` | entries in `modules` |
//! | 0x0f4 | `module_stats_offset` | offset of the `FilterStats` block (data-path counters) in a `FilterModule` |
//! | 0x0f8 | `detached_totals` | `FilterStats` summed over every module that has detached |
//! | 0x100 | `final_counters` | per row, the counters summed over CPUs at unload (zero before) |
//!
//! `modules`, `module_slots` and `detached_totals` point at statics of the filter (NULL / 0 until
//! DriverEntry's [`show_modules`], then valid for the image's lifetime); `module_stats_offset` is set at
//! link time. A module's slot is cleared before its memory is freed at detach, after its counters were
//! added to `detached_totals`.
//!
//! Reading the counters: row `s` of CPU `c` is the `ClassCounters` at
//! `counters + c * cpu_stride + s * slot_stride`; the per-class figure is the sum over `c`. `depth` is
//! summed as a wrapping (signed) value. Derived figures are defined once, in `windbg/mdlpool.js`. The
//! counter names ([`read::COUNTER_FIELDS`], [`read::FILTER_FIELDS`]) are the lists the blocks are
//! generated from (`mdlpool_names::pool_counters!` / `filter_counters!`).

use crate::filter::module::FilterModule;
use crate::filter::FilterStats;
use crate::pool::{ClassCounters, CpuCounters, Platform, Pool, PoolSnapshot, MAX_CLASSES};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

pub mod read;

/// Version of the root layout. Bump on any change of the fields above (the script checks it).
pub const STATS_VERSION: u32 = 1;
/// The root's magic bytes.
pub const STATS_MAGIC: [u8; 8] = *b"MdlPStat";
/// Counter rows per CPU the root can describe: the size classes, then the oversize row.
pub const MAX_SLOTS: usize = MAX_CLASSES + 1;

/// The image is loaded; DriverEntry has not published a pool.
pub const STATE_EMPTY: u32 = 0;
/// The pool exists and its counters are published; the filter is not registered yet.
pub const STATE_INITIALISED: u32 = 1;
/// The filter is registered: traffic may run.
pub const STATE_RUNNING: u32 = 2;
/// The pool is gone: `counters` is NULL and `final_counters` holds the totals at unload.
pub const STATE_UNLOADED: u32 = 3;

/// The statistics root. `#[repr(C)]`, every field documented in the module table above.
#[repr(C)]
pub struct MdlPoolStatsRoot {
    pub magic: [u8; 8],
    pub version: u32,
    pub size: u32,
    pub state: AtomicU32,
    pub cpu_count: AtomicU32,
    pub class_count: AtomicU32,
    pub slots_per_cpu: AtomicU32,
    pub cpu_stride: AtomicU32,
    pub slot_stride: AtomicU32,
    pub counters: AtomicPtr<CpuCounters>,
    pub magazine_size: AtomicU32,
    pub depot_limit: AtomicU32,
    pub trim_interval_ms: AtomicU32,
    pub reserved0: u32,
    pub class_size: [AtomicU32; MAX_CLASSES],
    pub block_bytes: [AtomicU32; MAX_CLASSES],
    pub foreign_frees: AtomicU64,
    pub double_frees: AtomicU64,
    pub bad_cpu: AtomicU64,
    pub refreshes: AtomicU64,
    pub high_water: [AtomicU64; MAX_SLOTS],
    pub modules: AtomicPtr<AtomicPtr<FilterModule>>,
    pub module_slots: AtomicU32,
    pub module_stats_offset: AtomicU32,
    pub detached_totals: AtomicPtr<FilterStats>,
    pub final_counters: [ClassCounters; MAX_SLOTS],
}

#[allow(clippy::declare_interior_mutable_const)] // array-repeat initialisers of the static only
const ZERO_U32: AtomicU32 = AtomicU32::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ZERO_U64: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ZERO_COUNTERS: ClassCounters = ClassCounters::new_const();

/// The root, exported unmangled so `x mdlpool!MdlPoolStats`, `host.getModuleSymbolAddress` and sysrun
/// find it by name. Statically initialised: a dump taken before DriverEntry already shows magic,
/// version and state 0.
#[no_mangle]
#[used]
pub static MdlPoolStats: MdlPoolStatsRoot = MdlPoolStatsRoot {
    magic: STATS_MAGIC,
    version: STATS_VERSION,
    size: core::mem::size_of::<MdlPoolStatsRoot>() as u32,
    state: AtomicU32::new(STATE_EMPTY),
    cpu_count: AtomicU32::new(0),
    class_count: AtomicU32::new(0),
    slots_per_cpu: AtomicU32::new(0),
    cpu_stride: AtomicU32::new(core::mem::size_of::<CpuCounters>() as u32),
    slot_stride: AtomicU32::new(core::mem::size_of::<ClassCounters>() as u32),
    counters: AtomicPtr::new(core::ptr::null_mut()),
    magazine_size: AtomicU32::new(0),
    depot_limit: AtomicU32::new(0),
    trim_interval_ms: AtomicU32::new(0),
    reserved0: 0,
    class_size: [ZERO_U32; MAX_CLASSES],
    block_bytes: [ZERO_U32; MAX_CLASSES],
    foreign_frees: AtomicU64::new(0),
    double_frees: AtomicU64::new(0),
    bad_cpu: AtomicU64::new(0),
    refreshes: AtomicU64::new(0),
    high_water: [ZERO_U64; MAX_SLOTS],
    modules: AtomicPtr::new(core::ptr::null_mut()),
    module_slots: AtomicU32::new(0),
    module_stats_offset: AtomicU32::new(core::mem::offset_of!(FilterModule, stats) as u32),
    detached_totals: AtomicPtr::new(core::ptr::null_mut()),
    final_counters: [ZERO_COUNTERS; MAX_SLOTS],
};

/// The root (for the driver's own code and tests; the debugger finds it by its symbol).
pub fn root() -> &'static MdlPoolStatsRoot {
    &MdlPoolStats
}

/// Tells the root where the filter's module list is: `slots` (a slot holds a live module or NULL, and
/// is cleared before the module is freed) and the counters of the modules that have detached. Call
/// from DriverEntry, before the filter registers. PASSIVE_LEVEL.
pub fn show_modules(
    slots: &'static [AtomicPtr<FilterModule>],
    detached_totals: &'static FilterStats,
) {
    let r = &MdlPoolStats;
    r.detached_totals.store(
        (detached_totals as *const FilterStats).cast_mut(),
        Ordering::Release,
    );
    r.module_slots.store(slots.len() as u32, Ordering::Release);
    // Last: a reader that sees the list (Acquire) sees its length.
    r.modules
        .store(slots.as_ptr().cast_mut(), Ordering::Release);
}

/// Publishes `pool`'s counters in the root: state becomes initialised. Call once the pool exists
/// (DriverEntry), before the filter registers. PASSIVE_LEVEL.
pub fn publish<P: Platform>(pool: &Pool<P>) {
    let r = &MdlPoolStats;
    let classes = pool.config().class_sizes();
    let n = classes.len().min(MAX_CLASSES);
    r.state.store(STATE_EMPTY, Ordering::Release);
    for (i, (size_slot, bytes_slot)) in r.class_size.iter().zip(&r.block_bytes).enumerate() {
        let (size, bytes) = if i < n {
            (classes[i], pool.block_bytes(i) as u32)
        } else {
            (0, 0)
        };
        size_slot.store(size, Ordering::Relaxed);
        bytes_slot.store(bytes, Ordering::Relaxed);
    }
    r.cpu_count.store(pool.cpus() as u32, Ordering::Relaxed);
    r.class_count.store(n as u32, Ordering::Relaxed);
    r.slots_per_cpu.store(n as u32 + 1, Ordering::Relaxed);
    for c in &r.final_counters {
        c.store_values(&[0; ClassCounters::COUNT]);
    }
    r.counters
        .store(pool.cpu_counters().as_ptr().cast_mut(), Ordering::Release);
    refresh_from(&pool.snapshot());
    let state = if FILTER_REGISTERED.load(Ordering::Acquire) {
        STATE_RUNNING
    } else {
        STATE_INITIALISED
    };
    r.state.store(state, Ordering::Release);
}

/// Whether the filter is registered (a pool published later, e.g. re-installed, is then running).
static FILTER_REGISTERED: AtomicBool = AtomicBool::new(false);

/// Records that the filter is deregistered (DriverUnload, before the pool goes). PASSIVE_LEVEL.
pub fn set_stopped() {
    FILTER_REGISTERED.store(false, Ordering::Release);
}

/// Marks the root running: the filter is registered (DriverEntry, after NdisFRegisterFilterDriver
/// succeeded). PASSIVE_LEVEL.
pub fn set_running() {
    FILTER_REGISTERED.store(true, Ordering::Release);
    let _ = MdlPoolStats.state.compare_exchange(
        STATE_INITIALISED,
        STATE_RUNNING,
        Ordering::AcqRel,
        Ordering::Acquire,
    );
}

/// Refreshes the slow-path fields (`high_water`, foreign/double frees, bad CPU) from the pool. Called by
/// the trim tick; never on the hot path. IRQL <= DISPATCH_LEVEL.
pub fn refresh<P: Platform>(pool: &Pool<P>) {
    refresh_from(&pool.snapshot());
}

fn refresh_from(s: &PoolSnapshot) {
    let r = &MdlPoolStats;
    // The limits in force (they change when a module's configuration is applied).
    r.magazine_size.store(s.magazine_size, Ordering::Relaxed);
    r.depot_limit.store(s.depot_limit, Ordering::Relaxed);
    r.trim_interval_ms
        .store(s.trim_interval_ms, Ordering::Relaxed);
    for (slot, hw) in r.high_water.iter().enumerate() {
        let v = if slot <= s.class_count {
            s.classes[slot].high_water
        } else {
            0
        };
        hw.store(v, Ordering::Relaxed);
    }
    r.foreign_frees.store(s.foreign_frees, Ordering::Relaxed);
    r.double_frees.store(s.double_frees, Ordering::Relaxed);
    r.bad_cpu.store(s.bad_cpu, Ordering::Relaxed);
    r.refreshes.fetch_add(1, Ordering::Relaxed);
}

/// Keeps the final totals and unpublishes `pool`'s counters: `final_counters` gets each row summed over
/// CPUs, `counters` becomes NULL and the state unloaded. Call before the pool is destroyed (DriverUnload,
/// after deregistration), with the pool quiescent. PASSIVE_LEVEL.
pub fn retire<P: Platform>(pool: &Pool<P>) {
    let r = &MdlPoolStats;
    refresh_from(&pool.snapshot());
    let slots = (r.slots_per_cpu.load(Ordering::Relaxed) as usize).min(MAX_SLOTS);
    for slot in 0..slots {
        let sum = ClassCounters::new_const();
        for cpu in pool.cpu_counters() {
            cpu.classes[slot].accumulate_into(&sum);
        }
        r.final_counters[slot].store_values(&sum.values());
    }
    r.counters.store(core::ptr::null_mut(), Ordering::Release);
    r.state.store(STATE_UNLOADED, Ordering::Release);
}

// The layout the debugger reads, pinned (x64 and arm64 alike: only u8/u32/u64/pointer fields).
const _: () = {
    use core::mem::{offset_of, size_of};
    type R = MdlPoolStatsRoot;
    assert!(offset_of!(R, version) == 0x08);
    assert!(offset_of!(R, state) == 0x10);
    assert!(offset_of!(R, cpu_count) == 0x14);
    assert!(offset_of!(R, class_count) == 0x18);
    assert!(offset_of!(R, slots_per_cpu) == 0x1c);
    assert!(offset_of!(R, cpu_stride) == 0x20);
    assert!(offset_of!(R, slot_stride) == 0x24);
    assert!(offset_of!(R, counters) == 0x28);
    assert!(offset_of!(R, magazine_size) == 0x30);
    assert!(offset_of!(R, trim_interval_ms) == 0x38);
    assert!(offset_of!(R, class_size) == 0x40);
    assert!(offset_of!(R, block_bytes) == 0x60);
    assert!(offset_of!(R, foreign_frees) == 0x80);
    assert!(offset_of!(R, refreshes) == 0x98);
    assert!(offset_of!(R, high_water) == 0xa0);
    assert!(offset_of!(R, modules) == 0xe8);
    assert!(offset_of!(R, module_slots) == 0xf0);
    assert!(offset_of!(R, module_stats_offset) == 0xf4);
    assert!(offset_of!(R, detached_totals) == 0xf8);
    assert!(offset_of!(R, final_counters) == 0x100);
    assert!(size_of::<R>() == 0x100 + MAX_SLOTS * 128);
    // The pool's counter row: sixteen u64 in the documented order (pool/stats.rs).
    type C = ClassCounters;
    assert!(size_of::<C>() == 128);
    assert!(offset_of!(C, total_allocates) == 0);
    assert!(offset_of!(C, allocate_misses) == 8);
    assert!(offset_of!(C, total_frees) == 16);
    assert!(offset_of!(C, free_misses) == 24);
    assert!(offset_of!(C, depth) == 32);
    assert!(offset_of!(C, depot_gets) == 40);
    assert!(offset_of!(C, depot_puts) == 48);
    assert!(offset_of!(C, system_allocs) == 56);
    assert!(offset_of!(C, system_frees) == 64);
    assert!(offset_of!(C, oversize) == 72);
    assert!(offset_of!(C, failures) == 80);
    assert!(offset_of!(C, injected) == 88);
    assert!(offset_of!(C, trimmed) == 96);
    assert!(offset_of!(C, flushed) == 104);
    assert!(size_of::<CpuCounters>() == MAX_SLOTS * 128 + (64 - (MAX_SLOTS * 128) % 64) % 64);
    // The filter's data-path counters: 22 u64 in the order of read::FILTER_FIELDS.
    type F = FilterStats;
    assert!(size_of::<F>() == F::COUNT * 8);
    assert!(offset_of!(F, send_nbls_transformed) == 0);
    assert!(offset_of!(F, bytes_written) == 4 * 8);
    assert!(offset_of!(F, retreat_failures) == 5 * 8);
    assert!(offset_of!(F, restores_advanced) == 10 * 8);
    assert!(offset_of!(F, pattern_mismatches) == 13 * 8);
    assert!(offset_of!(F, passthrough_nbls) == 16 * 8);
    assert!(offset_of!(F, pauses_pended) == 21 * 8);
};
