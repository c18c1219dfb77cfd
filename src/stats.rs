//! The debugger-visible statistics root: one exported, unmangled, versioned `#[repr(C)]` static,
//! `MdlPoolStats`, from which WinDbg (`windbg/mdlpool.natvis`, `windbg/mdlpool.js`), a crash dump reader,
//! `sysrun` and the tests reach the pool's own per-CPU × class counters.
//!
//! Owns: the root's layout and its life cycle (empty → initialised → running → unloaded), the final
//! totals kept at unload, and a plain-text dump of the root (the JSON the JS renderer reads). Must not
//! touch the hot path: the root holds *pointers to the counters the pool already keeps* (never copies
//! them while traffic runs); only the slow-path fields (`high_water`, the pool-wide event counts) are
//! refreshed, from [`refresh`] (the trim tick) and at unload.
//!
//! Crash-dump rule: the root is a static in the image, so it is always readable. Before the pool frees
//! its counter array, [`retire`] copies the summed counters into `final_counters`, clears `counters` and
//! sets the state to unloaded, so the root never points into freed memory. (`mdl_handlers::uninstall`
//! flushes the quiescent pool first, so the final rows show every cached block returned to the system
//! and, in *in flight*, any block that leaked.)
//!
//! Who calls what: `mdl_handlers::install` → [`publish`], `mdl_handlers::uninstall` → [`retire`],
//! `mdl_handlers::trim_tick` → [`refresh`], DriverEntry / DriverUnload → [`set_running`] / [`set_stopped`].
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
//! `modules`, `module_slots`, `module_stats_offset` and `detached_totals` point at statics of the filter
//! (set at link time, valid for the image's lifetime); a module's slot is cleared before its memory is
//! freed at detach, after its counters were added to `detached_totals`.
//!
//! Reading the counters: row `s` of CPU `c` is the `ClassCounters` at
//! `counters + c * cpu_stride + s * slot_stride`; the per-class figure is the sum over `c`. `depth` is
//! summed as a wrapping (signed) value. Derived figures are defined once, in `windbg/mdlpool.js`.

use crate::filter::module::{FilterModule, DETACHED_TOTALS, MAX_LISTED_MODULES, MODULES};
use crate::filter::FilterStats;
use crate::pool::{ClassCounters, CpuCounters, Platform, Pool, PoolSnapshot, MAX_CLASSES};
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

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

const fn zero_counters() -> ClassCounters {
    ClassCounters {
        total_allocates: AtomicU64::new(0),
        allocate_misses: AtomicU64::new(0),
        total_frees: AtomicU64::new(0),
        free_misses: AtomicU64::new(0),
        depth: AtomicU64::new(0),
        depot_gets: AtomicU64::new(0),
        depot_puts: AtomicU64::new(0),
        system_allocs: AtomicU64::new(0),
        system_frees: AtomicU64::new(0),
        oversize: AtomicU64::new(0),
        failures: AtomicU64::new(0),
        injected: AtomicU64::new(0),
        trimmed: AtomicU64::new(0),
        flushed: AtomicU64::new(0),
        reserved0: AtomicU64::new(0),
        reserved1: AtomicU64::new(0),
    }
}

#[allow(clippy::declare_interior_mutable_const)] // array-repeat initialisers of the static only
const ZERO_U32: AtomicU32 = AtomicU32::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ZERO_U64: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ZERO_COUNTERS: ClassCounters = zero_counters();

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
    modules: AtomicPtr::new(MODULES.as_ptr().cast_mut()),
    module_slots: AtomicU32::new(MAX_LISTED_MODULES as u32),
    module_stats_offset: AtomicU32::new(core::mem::offset_of!(FilterModule, stats) as u32),
    detached_totals: AtomicPtr::new((&DETACHED_TOTALS as *const FilterStats).cast_mut()),
    final_counters: [ZERO_COUNTERS; MAX_SLOTS],
};

/// The root (for the driver's own code and tests; the debugger finds it by its symbol).
pub fn root() -> &'static MdlPoolStatsRoot {
    &MdlPoolStats
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
        store_counters(c, &zero_counters());
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
        let sum = zero_counters();
        for cpu in pool.cpu_counters() {
            add_counters(&sum, &cpu.classes[slot]);
        }
        store_counters(&r.final_counters[slot], &sum);
    }
    r.counters.store(core::ptr::null_mut(), Ordering::Release);
    r.state.store(STATE_UNLOADED, Ordering::Release);
}

/// Visits each counter of a row with its field name, in the documented order.
fn for_each_counter(c: &ClassCounters, mut f: impl FnMut(&'static str, &AtomicU64)) {
    f("total_allocates", &c.total_allocates);
    f("allocate_misses", &c.allocate_misses);
    f("total_frees", &c.total_frees);
    f("free_misses", &c.free_misses);
    f("depth", &c.depth);
    f("depot_gets", &c.depot_gets);
    f("depot_puts", &c.depot_puts);
    f("system_allocs", &c.system_allocs);
    f("system_frees", &c.system_frees);
    f("oversize", &c.oversize);
    f("failures", &c.failures);
    f("injected", &c.injected);
    f("trimmed", &c.trimmed);
    f("flushed", &c.flushed);
}

/// Names of the counters of a row, in the documented order.
pub const COUNTER_FIELDS: [&str; 14] = [
    "total_allocates",
    "allocate_misses",
    "total_frees",
    "free_misses",
    "depth",
    "depot_gets",
    "depot_puts",
    "system_allocs",
    "system_frees",
    "oversize",
    "failures",
    "injected",
    "trimmed",
    "flushed",
];

fn counter_values(c: &ClassCounters) -> [u64; 14] {
    let mut out = [0u64; 14];
    let mut i = 0;
    for_each_counter(c, |_, v| {
        out[i] = v.load(Ordering::Relaxed);
        i += 1;
    });
    out
}

fn add_counters(into: &ClassCounters, from: &ClassCounters) {
    let vals = counter_values(from);
    let mut i = 0;
    for_each_counter(into, |_, v| {
        v.store(
            v.load(Ordering::Relaxed).wrapping_add(vals[i]),
            Ordering::Relaxed,
        );
        i += 1;
    });
}

fn store_counters(into: &ClassCounters, from: &ClassCounters) {
    let vals = counter_values(from);
    let mut i = 0;
    for_each_counter(into, |_, v| {
        v.store(vals[i], Ordering::Relaxed);
        i += 1;
    });
}

/// Reads the counter row `slot` of CPU `cpu` through the root's pointer and strides, exactly as the
/// debugger does (no pool API involved). None when no counters are published or out of range.
///
/// # Safety
/// The pool whose counters `root` publishes is alive for the duration of the call.
pub unsafe fn read_row(root: &MdlPoolStatsRoot, cpu: usize, slot: usize) -> Option<[u64; 14]> {
    let base = root.counters.load(Ordering::Acquire);
    if base.is_null()
        || cpu >= root.cpu_count.load(Ordering::Relaxed) as usize
        || slot >= root.slots_per_cpu.load(Ordering::Relaxed) as usize
    {
        return None;
    }
    let offset = cpu * root.cpu_stride.load(Ordering::Relaxed) as usize
        + slot * root.slot_stride.load(Ordering::Relaxed) as usize;
    // SAFETY: the published array holds `cpu_count` CpuCounters whose rows are `slot_stride` apart; the
    // offset stays inside it (checked above) and the caller keeps the pool alive.
    let row = unsafe { &*base.cast::<u8>().add(offset).cast::<ClassCounters>() };
    Some(counter_values(row))
}

/// Writes the root as the JSON dump `windbg/mdlpool.js --render` reads (its format is documented at the
/// top of that file). `depth` is written signed. No allocation.
///
/// # Safety
/// As [`read_row`] and [`read_module`].
pub unsafe fn write_dump(root: &MdlPoolStatsRoot, out: &mut impl fmt::Write) -> fmt::Result {
    let ld = |a: &AtomicU32| a.load(Ordering::Acquire);
    let state = ld(&root.state);
    let class_count = (ld(&root.class_count) as usize).min(MAX_CLASSES);
    let slots = (ld(&root.slots_per_cpu) as usize).min(MAX_SLOTS);
    write!(
        out,
        "{{\"format\":\"mdlpool-stats-dump\",\"version\":{},\"size\":{}",
        root.version, root.size
    )?;
    for (name, v) in [
        ("state", state),
        ("cpu_count", ld(&root.cpu_count)),
        ("class_count", class_count as u32),
        ("slots_per_cpu", slots as u32),
        ("cpu_stride", ld(&root.cpu_stride)),
        ("slot_stride", ld(&root.slot_stride)),
        ("magazine_size", ld(&root.magazine_size)),
        ("depot_limit", ld(&root.depot_limit)),
        ("trim_interval_ms", ld(&root.trim_interval_ms)),
    ] {
        write!(out, ",\"{name}\":{v}")?;
    }
    for (name, v) in [
        ("foreign_frees", &root.foreign_frees),
        ("double_frees", &root.double_frees),
        ("bad_cpu", &root.bad_cpu),
        ("refreshes", &root.refreshes),
    ] {
        write!(out, ",\"{name}\":{}", v.load(Ordering::Relaxed))?;
    }
    write_u32_array(out, "class_size", &root.class_size[..class_count])?;
    write_u32_array(out, "block_bytes", &root.block_bytes[..class_count])?;
    out.write_str(",\"high_water\":[")?;
    for (i, hw) in root.high_water[..slots].iter().enumerate() {
        write!(
            out,
            "{}{}",
            if i == 0 { "" } else { "," },
            hw.load(Ordering::Relaxed)
        )?;
    }
    out.write_str("],\"counters\":[")?;
    let cpus = if root.counters.load(Ordering::Acquire).is_null() {
        0
    } else {
        ld(&root.cpu_count) as usize
    };
    for cpu in 0..cpus {
        out.write_str(if cpu == 0 { "[" } else { ",[" })?;
        for slot in 0..slots {
            // SAFETY: caller keeps the pool alive; indices are in range.
            let row = unsafe { read_row(root, cpu, slot) }.unwrap_or([0; 14]);
            if slot > 0 {
                out.write_char(',')?;
            }
            write_row(out, &row)?;
        }
        out.write_char(']')?;
    }
    out.write_str("],\"final_counters\":[")?;
    for slot in 0..slots {
        if slot > 0 {
            out.write_char(',')?;
        }
        write_row(out, &counter_values(&root.final_counters[slot]))?;
    }
    out.write_str("],\"modules\":[")?;
    let mut first = true;
    for slot in 0..root.module_slots.load(Ordering::Relaxed) as usize {
        // SAFETY: caller's contract (no module detaches during the call).
        if let Some(values) = unsafe { read_module(root, slot) } {
            write!(
                out,
                "{}{{\"slot\":{slot},\"counters\":",
                if first { "" } else { "," }
            )?;
            write_filter_row(out, &values)?;
            out.write_char('}')?;
            first = false;
        }
    }
    out.write_str("],\"detached_totals\":")?;
    // SAFETY: `detached_totals` points at a static of the image (or is NULL).
    let detached =
        unsafe { read_filter_stats(root.detached_totals.load(Ordering::Acquire).cast_const()) };
    write_filter_row(out, &detached.unwrap_or([0; FILTER_FIELDS.len()]))?;
    out.write_str("}\n")
}

/// Names of the per-module data-path counters (`FilterStats`, src/filter/stats.rs), in layout order.
pub const FILTER_FIELDS: [&str; 22] = [
    "send_nbls_transformed",
    "send_nbs_transformed",
    "recv_nbls_transformed",
    "recv_nbs_transformed",
    "bytes_written",
    "retreat_failures",
    "context_failures",
    "send_nbls_failed",
    "send_nbls_paused",
    "recv_nbls_dropped",
    "restores_advanced",
    "restores_manual",
    "restores_inconsistent",
    "pattern_mismatches",
    "vlan_already_tagged",
    "vlan_untouched_nbls",
    "passthrough_nbls",
    "config_bad_values",
    "config_open_failures",
    "oids_forwarded",
    "oid_clone_failures",
    "pauses_pended",
];

/// Reads a `FilterStats` block as its 22 u64 counters, in layout order.
///
/// # Safety
/// `stats` is NULL or points at a live `FilterStats`.
unsafe fn read_filter_stats(stats: *const FilterStats) -> Option<[u64; FILTER_FIELDS.len()]> {
    if stats.is_null() {
        return None;
    }
    let base = stats.cast::<AtomicU64>();
    let mut out = [0u64; FILTER_FIELDS.len()];
    for (i, v) in out.iter_mut().enumerate() {
        // SAFETY: FilterStats is `#[repr(C)]`, 22 AtomicU64 fields (pinned below); the caller keeps it
        // alive.
        *v = unsafe { (*base.add(i)).load(Ordering::Relaxed) };
    }
    Some(out)
}

/// The data-path counters of the module in list slot `slot`, read through the root's `modules`
/// pointer and `module_stats_offset` as the debugger does; None for a free slot.
///
/// # Safety
/// No module detaches during the call (its memory is freed at detach).
pub unsafe fn read_module(
    root: &MdlPoolStatsRoot,
    slot: usize,
) -> Option<[u64; FILTER_FIELDS.len()]> {
    let list = root.modules.load(Ordering::Acquire);
    if list.is_null() || slot >= root.module_slots.load(Ordering::Relaxed) as usize {
        return None;
    }
    // SAFETY: `modules` points at the filter's static array of `module_slots` entries.
    let module = unsafe { (*list.add(slot)).load(Ordering::Acquire) };
    if module.is_null() {
        return None;
    }
    let offset = root.module_stats_offset.load(Ordering::Relaxed) as usize;
    // SAFETY: a listed module is live (caller); its FilterStats lies at `module_stats_offset`.
    unsafe { read_filter_stats(module.cast::<u8>().add(offset).cast::<FilterStats>()) }
}

fn write_filter_row(out: &mut impl fmt::Write, row: &[u64; FILTER_FIELDS.len()]) -> fmt::Result {
    out.write_char('{')?;
    for (i, (name, v)) in FILTER_FIELDS.iter().zip(row).enumerate() {
        write!(out, "{}\"{name}\":{v}", if i == 0 { "" } else { "," })?;
    }
    out.write_char('}')
}

fn write_u32_array(out: &mut impl fmt::Write, name: &str, values: &[AtomicU32]) -> fmt::Result {
    write!(out, ",\"{name}\":[")?;
    for (i, v) in values.iter().enumerate() {
        write!(
            out,
            "{}{}",
            if i == 0 { "" } else { "," },
            v.load(Ordering::Relaxed)
        )?;
    }
    out.write_char(']')
}

fn write_row(out: &mut impl fmt::Write, row: &[u64; 14]) -> fmt::Result {
    out.write_char('{')?;
    for (i, (name, v)) in COUNTER_FIELDS.iter().zip(row).enumerate() {
        let sep = if i == 0 { "" } else { "," };
        if *name == "depth" {
            write!(out, "{sep}\"{name}\":{}", *v as i64)?;
        } else {
            write!(out, "{sep}\"{name}\":{v}")?;
        }
    }
    out.write_char('}')
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
    // The filter's data-path counters: 22 u64 in the order of FILTER_FIELDS.
    type F = FilterStats;
    assert!(size_of::<F>() == FILTER_FIELDS.len() * 8);
    assert!(offset_of!(F, send_nbls_transformed) == 0);
    assert!(offset_of!(F, bytes_written) == 4 * 8);
    assert!(offset_of!(F, retreat_failures) == 5 * 8);
    assert!(offset_of!(F, restores_advanced) == 10 * 8);
    assert!(offset_of!(F, pattern_mismatches) == 13 * 8);
    assert!(offset_of!(F, passthrough_nbls) == 16 * 8);
    assert!(offset_of!(F, pauses_pended) == 21 * 8);
};
