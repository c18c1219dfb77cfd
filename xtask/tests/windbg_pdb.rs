//! The WinDbg files against the real PDB of the amd64 package: the shipped NatVis and script pass, a
//! copy of either with one field renamed fails the package check, and the statistics root has, in the
//! PDB the debugger reads, exactly the layout `src/stats/mod.rs` documents (which `windbg/test/` and sysrun
//! also rely on).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use xtask::package::{self, Built};
use xtask::verify::{Arch, Report};
use xtask::windbg_check::{self, TypeDb};

fn built() -> Option<&'static Built> {
    static AMD64: OnceLock<Option<Built>> = OnceLock::new();
    AMD64
        .get_or_init(|| {
            if !package::target_available(Arch::Amd64) {
                eprintln!("!!! SKIPPED: rustup target x86_64-pc-windows-msvc is not installed and cannot be added");
                return None;
            }
            Some(package::build(Arch::Amd64, false).unwrap_or_else(|e| panic!("building the amd64 package: {e}")))
        })
        .as_ref()
}

fn files() -> (String, String) {
    let dir = windbg_check::windbg_dir();
    (
        std::fs::read_to_string(dir.join(windbg_check::NATVIS_FILE)).unwrap(),
        std::fs::read_to_string(dir.join(windbg_check::SCRIPT_FILE)).unwrap(),
    )
}

fn run(pdb: &[u8], natvis: &str, js: &str) -> Report {
    let mut report = Report::default();
    windbg_check::verify_windbg(pdb, natvis, js, &mut report);
    report
}

fn failed(r: &Report) -> BTreeSet<&'static str> {
    r.failed_ids()
}

#[test]
fn shipped_natvis_and_script_match_the_pdb() {
    let Some(b) = built() else { return };
    let (natvis, js) = files();
    let r = run(&b.pdb, &natvis, &js);
    assert!(r.ok(), "{}", r.failure_text());
    assert_eq!(r.checks.len(), 6);
    // And the package verification as `cargo xtask package` runs it includes them.
    let full = package::verify_built(b).unwrap();
    let ids: BTreeSet<_> = full.checks.iter().map(|c| c.id).collect();
    for id in [
        "windbg.pdb.public",
        "windbg.pdb.root_type",
        "windbg.js.fields",
        "windbg.natvis.fields",
    ] {
        assert!(ids.contains(id), "{id} not run by verify_built");
    }
    assert!(full.ok(), "{}", full.failure_text());
}

#[test]
fn a_natvis_field_renamed_fails_the_check() {
    let Some(b) = built() else { return };
    let (natvis, js) = files();
    // A member of the pool's counter row, and a top-level member of the root.
    let renamed = natvis.replacen("allocate_misses.v.value", "allocate_miss.v.value", 1);
    assert_ne!(renamed, natvis);
    let r = run(&b.pdb, &renamed, &js);
    assert_eq!(failed(&r), ["windbg.natvis.fields"].into());
    assert!(
        r.failure_text().contains("allocate_miss"),
        "{}",
        r.failure_text()
    );

    let renamed = natvis.replacen("slots_per_cpu.v.value", "slot_count.v.value", 1);
    let r = run(&b.pdb, &renamed, &js);
    assert_eq!(failed(&r), ["windbg.natvis.fields"].into());
    assert!(
        r.failure_text().contains("slot_count"),
        "{}",
        r.failure_text()
    );
}

#[test]
fn a_script_field_renamed_fails_the_check() {
    let Some(b) = built() else { return };
    let (natvis, js) = files();
    let renamed = js.replacen("[\"cpu_count\", 4, \"\"]", "[\"cpu_total\", 4, \"\"]", 1);
    assert_ne!(renamed, js);
    let r = run(&b.pdb, &natvis, &renamed);
    assert_eq!(failed(&r), ["windbg.js.fields"].into());
    assert!(
        r.failure_text().contains("MdlPoolStatsRoot.cpu_total"),
        "{}",
        r.failure_text()
    );

    let renamed = js.replacen("\"free_misses\",", "\"free_miss\",", 1);
    let r = run(&b.pdb, &natvis, &renamed);
    assert_eq!(failed(&r), ["windbg.js.fields"].into());
    assert!(
        r.failure_text().contains("ClassCounters.free_miss"),
        "{}",
        r.failure_text()
    );
}

#[test]
fn a_data_path_field_renamed_fails_the_check() {
    let Some(b) = built() else { return };
    let (natvis, js) = files();
    let renamed = js.replacen("\"restores_manual\",", "\"restores_by_hand\",", 1);
    assert_ne!(renamed, js);
    let r = run(&b.pdb, &natvis, &renamed);
    assert_eq!(failed(&r), ["windbg.js.fields"].into());
    assert!(
        r.failure_text().contains("FilterStats.restores_by_hand"),
        "{}",
        r.failure_text()
    );
    let renamed = natvis.replacen("m-&gt;stats", "m-&gt;counters_block", 1);
    assert_ne!(renamed, natvis);
    let r = run(&b.pdb, &renamed, &js);
    assert_eq!(failed(&r), ["windbg.natvis.fields"].into());
}

#[test]
fn a_type_renamed_in_the_script_fails_the_check() {
    let Some(b) = built() else { return };
    let (natvis, js) = files();
    let renamed = js.replacen(
        "mdlpool::stats::MdlPoolStatsRoot",
        "mdlpool::stats::StatsRoot",
        1,
    );
    let r = run(&b.pdb, &natvis, &renamed);
    assert_eq!(
        failed(&r),
        ["windbg.js.types", "windbg.pdb.root_type"].into()
    );
}

/// The documented layout (src/stats/mod.rs module table; windbg/test/mdlpool.test.js lays out the same).
const ROOT_LAYOUT: &[(&str, u64)] = &[
    ("magic", 0x00),
    ("version", 0x08),
    ("size", 0x0c),
    ("state", 0x10),
    ("cpu_count", 0x14),
    ("class_count", 0x18),
    ("slots_per_cpu", 0x1c),
    ("cpu_stride", 0x20),
    ("slot_stride", 0x24),
    ("counters", 0x28),
    ("magazine_size", 0x30),
    ("depot_limit", 0x34),
    ("trim_interval_ms", 0x38),
    ("class_size", 0x40),
    ("block_bytes", 0x60),
    ("foreign_frees", 0x80),
    ("double_frees", 0x88),
    ("bad_cpu", 0x90),
    ("refreshes", 0x98),
    ("high_water", 0xa0),
    ("modules", 0xe8),
    ("module_slots", 0xf0),
    ("module_stats_offset", 0xf4),
    ("detached_totals", 0xf8),
    ("final_counters", 0x100),
];

#[test]
fn the_pdb_layout_of_the_root_is_the_documented_one() {
    let Some(b) = built() else { return };
    let db = TypeDb::from_pdb(&b.pdb).unwrap();
    let root = "mdlpool::stats::MdlPoolStatsRoot";
    for (name, offset) in ROOT_LAYOUT {
        let f = db
            .field(root, name)
            .unwrap_or_else(|| panic!("{root}.{name} missing"));
        assert_eq!(f.offset, *offset, "{root}.{name}");
    }
    let row = "mdlpool::pool::stats::ClassCounters";
    assert_eq!(db.types[row].size, 128);
    let (_, js) = files();
    let layout = windbg_check::parse_script(&js).unwrap();
    for (i, name) in layout.counter_fields.iter().enumerate() {
        assert_eq!(
            db.field(row, name).unwrap().offset,
            8 * i as u64,
            "{row}.{name}"
        );
    }
    assert_eq!(
        db.field(root, "counters").unwrap().target.as_deref(),
        Some("core::sync::atomic::AtomicPtr<mdlpool::pool::CpuCounters>")
    );
    assert_eq!(db.types["mdlpool::pool::CpuCounters"].size, 9 * 128);
    assert_eq!(
        db.types[root].size,
        0x100 + 9 * 128,
        "sysrun's reader expects this size"
    );
    // The filter's data-path counters: the script reads them by these names, at 8-byte steps.
    let (_, filter_fields) = layout
        .types
        .iter()
        .find(|(t, _)| t == "mdlpool::filter::stats::FilterStats")
        .expect("the script reads FilterStats");
    for (i, name) in filter_fields.iter().enumerate() {
        let f = db
            .field("mdlpool::filter::stats::FilterStats", name)
            .unwrap();
        assert_eq!(f.offset, 8 * i as u64, "FilterStats.{name}");
    }
}
