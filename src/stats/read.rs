//! The statistics root's readers: what a debugger does, done in Rust for the tests and for the dump
//! `windbg/mdlpool.js --render` reads. Rows are read through the root's pointers and strides (never
//! through a pool API), modules through `modules` and `module_stats_offset`, exactly as the NatVis
//! and the script do, so a test of these readers is a test of what the debugger sees.
//!
//! Owns: the counter name lists in row order ([`COUNTER_FIELDS`], [`FILTER_FIELDS`]), reading a row
//! ([`read_row`]) and a module's data-path counters ([`read_module`]), and the JSON dump
//! ([`write_dump`]). Must not: write the root (its publication is `stats`'s) or allocate (the dump
//! writes into any `fmt::Write`).
//!
//! IRQL: every reader at IRQL <= DISPATCH_LEVEL; each one's safety contract keeps what it reads alive.

use super::{MdlPoolStatsRoot, MAX_SLOTS};
use crate::filter::FilterStats;
use crate::pool::{ClassCounters, MAX_CLASSES};
use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Names of the counters of a row, in the documented order (`mdlpool_names::pool_counters!`).
pub const COUNTER_FIELDS: [&str; ClassCounters::COUNT] = ClassCounters::NAMES;

/// One counter row's values, in [`COUNTER_FIELDS`] order.
pub type Row = [u64; ClassCounters::COUNT];

/// Reads the counter row `slot` of CPU `cpu` through the root's pointer and strides, exactly as the
/// debugger does (no pool API involved). None when no counters are published or out of range.
///
/// # Safety
/// The pool whose counters `root` publishes is alive for the duration of the call.
pub unsafe fn read_row(root: &MdlPoolStatsRoot, cpu: usize, slot: usize) -> Option<Row> {
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
    Some(row.values())
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
            let row = unsafe { read_row(root, cpu, slot) }.unwrap_or([0; COUNTER_FIELDS.len()]);
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
        write_row(out, &root.final_counters[slot].values())?;
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

/// Names of the per-module data-path counters (`FilterStats`, src/filter/stats.rs), in layout order
/// (`mdlpool_names::filter_counters!`).
pub const FILTER_FIELDS: [&str; FilterStats::COUNT] = FilterStats::NAMES;

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

fn write_row(out: &mut impl fmt::Write, row: &Row) -> fmt::Result {
    out.write_char('{')?;
    for (i, (name, v)) in COUNTER_FIELDS.iter().zip(row).enumerate() {
        let sep = if i == 0 { "" } else { "," };
        if i == mdlpool_names::counters::POOL_DEPTH {
            write!(out, "{sep}\"{name}\":{}", *v as i64)?;
        } else {
            write!(out, "{sep}\"{name}\":{v}")?;
        }
    }
    out.write_char('}')
}
