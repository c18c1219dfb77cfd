//! sysrun's stats dump is the format `windbg/mdlpool.js --render` reads: for each recorded fixture
//! under windbg/test/fixtures, a dump holding the fixture's numbers serialises to the fixture byte for
//! byte (whitespace aside), and node renders it to the fixture's golden table.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use sysrun::stats::{FilterRow, Row, StatsDump};

fn fixtures() -> std::path::PathBuf {
    sysrun::testing::workspace_root().join("windbg/test/fixtures")
}

/// Every integer of the JSON text, in document order (the dump has no other numbers).
fn numbers(json: &str) -> Vec<i64> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_string = false;
    for ch in json.chars().chain(std::iter::once(' ')) {
        if ch == '"' {
            in_string = !in_string;
            continue;
        }
        if in_string {
            continue;
        }
        if ch.is_ascii_digit() || (ch == '-' && cur.is_empty()) {
            cur.push(ch);
        } else if !cur.is_empty() {
            out.push(cur.parse().unwrap());
            cur.clear();
        }
    }
    out
}

/// Builds a dump from the fixture's numbers, in the order the format lists them.
fn dump_from(json: &str) -> StatsDump {
    let n = numbers(json);
    let mut it = n.into_iter();
    let mut next = || it.next().expect("enough numbers");
    let mut d = StatsDump {
        version: next() as u32,
        size: next() as u32,
        state: next() as u32,
        cpu_count: next() as u32,
        class_count: next() as u32,
        slots_per_cpu: next() as u32,
        cpu_stride: next() as u32,
        slot_stride: next() as u32,
        magazine_size: next() as u32,
        depot_limit: next() as u32,
        trim_interval_ms: next() as u32,
        foreign_frees: next() as u64,
        double_frees: next() as u64,
        bad_cpu: next() as u64,
        refreshes: next() as u64,
        class_size: Vec::new(),
        block_bytes: Vec::new(),
        high_water: Vec::new(),
        counters: Vec::new(),
        final_counters: Vec::new(),
        modules: Vec::new(),
        detached_totals: [0; 22],
    };
    let row = |next: &mut dyn FnMut() -> i64| -> Row {
        let mut r = [0u64; 14];
        for v in r.iter_mut() {
            *v = next() as u64;
        }
        r
    };
    d.class_size = (0..d.class_count).map(|_| next() as u32).collect();
    d.block_bytes = (0..d.class_count).map(|_| next() as u32).collect();
    d.high_water = (0..d.slots_per_cpu).map(|_| next() as u64).collect();
    let cpus = if json.contains("\"counters\": []") || json.contains("\"counters\":[]") {
        0
    } else {
        d.cpu_count
    };
    for _ in 0..cpus {
        d.counters
            .push((0..d.slots_per_cpu).map(|_| row(&mut next)).collect());
    }
    d.final_counters = (0..d.slots_per_cpu).map(|_| row(&mut next)).collect();
    // Hand-written dumps may carry the list geometry (module_slots, module_stats_offset); the driver's
    // own dump (and sysrun's) leaves it out.
    if json.contains("\"module_slots\"") {
        next();
        next();
    }
    let filter = |next: &mut dyn FnMut() -> i64| -> FilterRow {
        let mut r = [0u64; 22];
        for v in r.iter_mut() {
            *v = next() as u64;
        }
        r
    };
    for _ in 0..json.matches("\"slot\"").count() {
        let slot = next() as u32;
        d.modules.push((slot, filter(&mut next)));
    }
    if json.contains("\"detached_totals\"") {
        d.detached_totals = filter(&mut next);
    }
    assert!(
        it.next().is_none(),
        "numbers left over: the format has fields this test does not know"
    );
    d
}

fn strip(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn dumps_serialise_exactly_like_the_recorded_fixtures_and_render_to_the_golden_tables() {
    let mut seen = 0;
    for entry in std::fs::read_dir(fixtures()).expect("windbg/test/fixtures") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let json = std::fs::read_to_string(&path).unwrap();
        if !json.contains("mdlpool-stats-dump") {
            continue;
        }
        let dump = dump_from(&json);
        if !json.contains("\"module_slots\"") {
            assert_eq!(strip(&dump.to_json()), strip(&json), "{}", path.display());
        }
        let golden = path.with_extension("txt");
        if golden.is_file() {
            let script = sysrun::testing::workspace_root().join("windbg/mdlpool.js");
            let table = sysrun::stats::render_table(&dump, &script, false)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                table,
                std::fs::read_to_string(&golden).unwrap(),
                "{}",
                golden.display()
            );
        }
        seen += 1;
    }
    assert!(seen > 0, "no dump fixtures found");
}

#[test]
fn totals_follow_the_pool_arithmetic() {
    let json = std::fs::read_to_string(fixtures().join("sim-4cpu-unloaded.json")).unwrap();
    let t = dump_from(&json).totals();
    assert_eq!(t.allocates, 2228);
    assert_eq!(t.frees, 2228);
    assert_eq!(t.in_flight, 0);
}
