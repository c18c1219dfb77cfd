//! Reading the driver's exported statistics root (`MdlPoolStats`) out of the loaded image, the way
//! the debugger does: from memory, through the documented layout (src/stats/mod.rs of the driver pins
//! the offsets; this reader refuses any other magic or version), into the JSON dump format that
//! `windbg/mdlpool.js --render` reads. The table itself is formatted only by that script, so the
//! table `cargo xtask simulate` prints and the one `!mdlpool` prints in WinDbg have one source.
//!
//! This module owns nothing in the image; it only reads. It never links the driver's source: the counter
//! lists come from `mdlpool-names`, which the driver's counter blocks are generated from; the root's
//! magic, version and offsets stay this reader's own (what it understands), checked against the image.

use crate::loader::LoadedImage;
use std::fmt::Write as _;
use std::path::Path;

/// The exported symbol of the root.
pub const ROOT_SYMBOL: &str = "MdlPoolStats";
/// The magic bytes at offset 0.
pub const ROOT_MAGIC: [u8; 8] = *b"MdlPStat";
/// The root layout version this reader understands.
pub const ROOT_VERSION: u32 = 1;
/// Size-class slots the root describes at most (`MAX_CLASSES` + the oversize row).
const MAX_SLOTS: usize = 9;
/// Size classes at most.
const MAX_CLASSES: usize = 8;
/// Counter fields of one row, in layout order (each a u64); the same names as the JSON dump. The
/// driver's list (`mdlpool_names::pool_counters!`).
pub const COUNTER_FIELDS: [&str; 14] = mdlpool_names::counters::POOL; // 14: the 128-byte row read below

/// One counter row (a size class on one CPU, or summed).
pub type Row = [u64; COUNTER_FIELDS.len()];

/// Per-module data-path counters (`FilterStats`), in layout order (each a u64); the dump's names.
/// The driver's list (`mdlpool_names::filter_counters!`).
pub const FILTER_FIELDS: [&str; 22] = mdlpool_names::counters::FILTER;

/// One module's data-path counters.
pub type FilterRow = [u64; FILTER_FIELDS.len()];

/// Most module slots the reader follows.
const MAX_MODULE_SLOTS: u32 = 1024;

/// A snapshot of the root, in the shape of the JSON dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsDump {
    pub version: u32,
    pub size: u32,
    pub state: u32,
    pub cpu_count: u32,
    pub class_count: u32,
    pub slots_per_cpu: u32,
    pub cpu_stride: u32,
    pub slot_stride: u32,
    pub magazine_size: u32,
    pub depot_limit: u32,
    pub trim_interval_ms: u32,
    pub foreign_frees: u64,
    pub double_frees: u64,
    pub bad_cpu: u64,
    pub refreshes: u64,
    pub class_size: Vec<u32>,
    pub block_bytes: Vec<u32>,
    pub high_water: Vec<u64>,
    /// Live per-CPU rows (`cpu_count` × `slots_per_cpu`); empty once the pool is gone.
    pub counters: Vec<Vec<Row>>,
    /// Rows kept in the image at unload.
    pub final_counters: Vec<Row>,
    /// Attached filter modules: (list slot, data-path counters).
    pub modules: Vec<(u32, FilterRow)>,
    /// Data-path counters summed over the modules that have detached.
    pub detached_totals: FilterRow,
}

/// Totals over every CPU and slot, with the pool's own derived figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// NetAllocateMdl calls.
    pub allocates: u64,
    /// Allocations that missed the per-CPU magazine.
    pub allocate_misses: u64,
    /// NetFreeMdl calls that freed a block of ours.
    pub frees: u64,
    /// Allocations that failed (including injected failures).
    pub failures: u64,
    /// Blocks allocated and not yet freed: (allocates − failures) − frees.
    pub in_flight: i64,
}

impl StatsDump {
    /// Sums the live counters (or, once unloaded, the final counters).
    pub fn totals(&self) -> Totals {
        let mut sum: Row = [0; COUNTER_FIELDS.len()];
        let rows: Vec<&Row> = if self.counters.is_empty() {
            self.final_counters.iter().collect()
        } else {
            self.counters.iter().flatten().collect()
        };
        for r in rows {
            for (s, v) in sum.iter_mut().zip(r) {
                *s = s.wrapping_add(*v);
            }
        }
        use mdlpool_names::counters::{
            POOL_ALLOCATE_MISSES, POOL_FAILURES, POOL_TOTAL_ALLOCATES, POOL_TOTAL_FREES,
        };
        let (allocates, frees, failures) = (
            sum[POOL_TOTAL_ALLOCATES],
            sum[POOL_TOTAL_FREES],
            sum[POOL_FAILURES],
        );
        Totals {
            allocates,
            allocate_misses: sum[POOL_ALLOCATE_MISSES],
            frees,
            failures,
            in_flight: allocates as i64 - failures as i64 - frees as i64,
        }
    }

    /// The JSON dump `windbg/mdlpool.js --render` reads (format documented at the top of that file).
    pub fn to_json(&self) -> String {
        let mut o = String::new();
        let _ = write!(
            o,
            "{{\"format\":\"mdlpool-stats-dump\",\"version\":{}",
            self.version
        );
        for (n, v) in [
            ("size", self.size),
            ("state", self.state),
            ("cpu_count", self.cpu_count),
            ("class_count", self.class_count),
            ("slots_per_cpu", self.slots_per_cpu),
            ("cpu_stride", self.cpu_stride),
            ("slot_stride", self.slot_stride),
            ("magazine_size", self.magazine_size),
            ("depot_limit", self.depot_limit),
            ("trim_interval_ms", self.trim_interval_ms),
        ] {
            let _ = write!(o, ",\"{n}\":{v}");
        }
        for (n, v) in [
            ("foreign_frees", self.foreign_frees),
            ("double_frees", self.double_frees),
            ("bad_cpu", self.bad_cpu),
            ("refreshes", self.refreshes),
        ] {
            let _ = write!(o, ",\"{n}\":{v}");
        }
        let list = |v: &mut String, name: &str, xs: &[String]| {
            let _ = write!(v, ",\"{name}\":[{}]", xs.join(","));
        };
        list(
            &mut o,
            "class_size",
            &self
                .class_size
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>(),
        );
        list(
            &mut o,
            "block_bytes",
            &self
                .block_bytes
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>(),
        );
        list(
            &mut o,
            "high_water",
            &self
                .high_water
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>(),
        );
        let cpus: Vec<String> = self
            .counters
            .iter()
            .map(|cpu| {
                format!(
                    "[{}]",
                    cpu.iter().map(row_json).collect::<Vec<_>>().join(",")
                )
            })
            .collect();
        list(&mut o, "counters", &cpus);
        list(
            &mut o,
            "final_counters",
            &self.final_counters.iter().map(row_json).collect::<Vec<_>>(),
        );
        let modules: Vec<String> = self
            .modules
            .iter()
            .map(|(slot, r)| format!("{{\"slot\":{slot},\"counters\":{}}}", filter_json(r)))
            .collect();
        list(&mut o, "modules", &modules);
        let _ = write!(
            o,
            ",\"detached_totals\":{}",
            filter_json(&self.detached_totals)
        );
        o.push_str("}\n");
        o
    }
}

fn row_json(r: &Row) -> String {
    let fields: Vec<String> = COUNTER_FIELDS
        .iter()
        .zip(r)
        .enumerate()
        .map(|(i, (n, v))| {
            if i == mdlpool_names::counters::POOL_DEPTH {
                format!("\"{n}\":{}", *v as i64)
            } else {
                format!("\"{n}\":{v}")
            }
        })
        .collect();
    format!("{{{}}}", fields.join(","))
}

fn filter_json(r: &FilterRow) -> String {
    let fields: Vec<String> = FILTER_FIELDS
        .iter()
        .zip(r)
        .map(|(n, v)| format!("\"{n}\":{v}"))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// Reads a `FilterStats` block (22 u64).
///
/// # Safety
/// `p` points at a live `FilterStats`.
unsafe fn filter_at(p: *const u8) -> FilterRow {
    let mut r: FilterRow = [0; FILTER_FIELDS.len()];
    for (i, v) in r.iter_mut().enumerate() {
        // SAFETY: the caller's contract; the block is 22 consecutive u64.
        *v = unsafe { (p.add(i * 8) as *const u64).read_volatile() };
    }
    r
}

/// Reads the root of `image` (its `MdlPoolStats` export).
pub fn read(image: &LoadedImage) -> Result<StatsDump, String> {
    let addr = image.export(ROOT_SYMBOL).ok_or_else(|| {
        format!(
            "{} does not export {ROOT_SYMBOL} (a build without the stats root?)",
            image.pe().path.display()
        )
    })?;
    let rva = image.rva_of(addr).ok_or("stats root outside the image")? as usize;
    let root_size = 0x100 + MAX_SLOTS * 128;
    let section = image
        .pe()
        .section_at(rva as u32)
        .ok_or("stats root is in no section")?;
    if !section.read || rva + root_size > (section.rva + section.virtual_size) as usize + 0x1000 {
        return Err(format!(
            "stats root at rva {rva:#x} does not fit in section {}",
            section.name
        ));
    }
    // SAFETY: [addr, addr + root_size) lies in a readable section of the mapped image (checked above;
    // the section's last page is mapped whole).
    let root = unsafe { std::slice::from_raw_parts(addr as *const u8, root_size) };
    let u32_at = |o: usize| u32::from_le_bytes(root[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(root[o..o + 8].try_into().expect("8 bytes"));
    if root[0..8] != ROOT_MAGIC {
        return Err(format!(
            "{ROOT_SYMBOL} has magic {:02x?}, expected \"MdlPStat\"",
            &root[0..8]
        ));
    }
    let version = u32_at(0x08);
    if version != ROOT_VERSION {
        return Err(format!(
            "{ROOT_SYMBOL} version {version}; this reader understands version {ROOT_VERSION}"
        ));
    }
    if u32_at(0x0c) as usize != root_size {
        return Err(format!(
            "{ROOT_SYMBOL} size {:#x}, expected {root_size:#x}",
            u32_at(0x0c)
        ));
    }
    let class_count = u32_at(0x18).min(MAX_CLASSES as u32);
    let slots = u32_at(0x1c).min(MAX_SLOTS as u32);
    let cpu_count = u32_at(0x14);
    let cpu_stride = u32_at(0x20);
    let slot_stride = u32_at(0x24);
    let state = u32_at(0x10);
    let counters_ptr = u64_at(0x28) as usize;
    let row_at = |p: *const u8| -> Row {
        let mut r: Row = [0; COUNTER_FIELDS.len()];
        for (i, v) in r.iter_mut().enumerate() {
            // SAFETY: the caller passes a pointer to a live 128-byte counter row.
            *v = unsafe { (p.add(i * 8) as *const u64).read_volatile() };
        }
        r
    };
    let mut counters = Vec::new();
    if counters_ptr != 0 && state != 3 {
        if slot_stride < 128
            || (cpu_stride as u64) < slot_stride as u64 * slots as u64
            || cpu_count > 4096
        {
            return Err(format!("{ROOT_SYMBOL}: implausible strides (cpu {cpu_stride}, slot {slot_stride}) or cpu_count {cpu_count}"));
        }
        for c in 0..cpu_count as usize {
            let cpu: Vec<Row> = (0..slots as usize)
                .map(|s| {
                    row_at(
                        (counters_ptr + c * cpu_stride as usize + s * slot_stride as usize)
                            as *const u8,
                    )
                })
                .collect();
            counters.push(cpu);
        }
    }
    // The filter's module list and detached totals: statics of the image (checked), module blocks
    // live in simulated nonpaged pool while attached (the caller reads between lifecycle steps).
    let in_image =
        |p: usize, len: usize| image.rva_of(p).is_some() && image.rva_of(p + len - 1).is_some();
    let list = u64_at(0xe8) as usize;
    let module_slots = u32_at(0xf0);
    let module_stats_offset = u32_at(0xf4) as usize;
    let detached_ptr = u64_at(0xf8) as usize;
    let mut modules = Vec::new();
    if list != 0 {
        if module_slots > MAX_MODULE_SLOTS
            || module_stats_offset > 0x10000
            || !in_image(list, module_slots as usize * 8)
        {
            return Err(format!(
                "{ROOT_SYMBOL}: implausible module list ({list:#x}, {module_slots} slots, stats at +{module_stats_offset:#x})"
            ));
        }
        for slot in 0..module_slots {
            // SAFETY: the list lies in the image (checked above): `module_slots` pointers.
            let module = unsafe { ((list + slot as usize * 8) as *const usize).read_volatile() };
            if module != 0 {
                // SAFETY: a listed module is live while attached (the module list contract).
                modules.push((slot, unsafe {
                    filter_at((module + module_stats_offset) as *const u8)
                }));
            }
        }
    }
    let detached_totals = if detached_ptr == 0 {
        [0; FILTER_FIELDS.len()]
    } else if in_image(detached_ptr, FILTER_FIELDS.len() * 8) {
        // SAFETY: a static of the image (checked above).
        unsafe { filter_at(detached_ptr as *const u8) }
    } else {
        return Err(format!(
            "{ROOT_SYMBOL}: detached_totals {detached_ptr:#x} is not in the image"
        ));
    };
    let final_counters = (0..slots as usize)
        .map(|s| row_at(root[0x100 + s * 128..].as_ptr()))
        .collect();
    Ok(StatsDump {
        version,
        size: u32_at(0x0c),
        state,
        cpu_count,
        class_count,
        slots_per_cpu: slots,
        cpu_stride,
        slot_stride,
        magazine_size: u32_at(0x30),
        depot_limit: u32_at(0x34),
        trim_interval_ms: u32_at(0x38),
        foreign_frees: u64_at(0x80),
        double_frees: u64_at(0x88),
        bad_cpu: u64_at(0x90),
        refreshes: u64_at(0x98),
        class_size: (0..class_count as usize)
            .map(|i| u32_at(0x40 + 4 * i))
            .collect(),
        block_bytes: (0..class_count as usize)
            .map(|i| u32_at(0x60 + 4 * i))
            .collect(),
        high_water: (0..slots as usize).map(|i| u64_at(0xa0 + 8 * i)).collect(),
        counters,
        final_counters,
        modules,
        detached_totals,
    })
}

/// Formats `dump` with the one table formatter, `node <script> --render -` (`script` is
/// `windbg/mdlpool.js`), optionally the per-CPU view.
pub fn render_table(dump: &StatsDump, script: &Path, per_cpu: bool) -> Result<String, String> {
    use std::io::Write as _;
    let mut cmd = std::process::Command::new("node");
    cmd.arg(script).arg("--render").arg("-");
    if per_cpu {
        cmd.arg("--cpu");
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "running node (needed to format the table with {}): {e}",
                script.display()
            )
        })?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(dump.to_json().as_bytes())
        .map_err(|e| format!("writing the dump to node: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for node: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "node {} --render failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
