//! The debugger-visible statistics root (`MdlPoolStats`, src/stats/mod.rs) on ndis-sim: drive traffic
//! through the filter, then read the root the way WinDbg does (through its pointer and strides, not
//! through the pool's API) and check that the totals are exactly the pool's own snapshot; render the
//! root with the WinDbg script (`node windbg/mdlpool.js`) and check its arithmetic against the
//! snapshot too; unload and check the crash-dump rule (no pointer into freed memory, final totals kept).
//!
//! `MDLPOOL_RECORD_DUMP=<dir>` also writes the dumps this test reads (running and unloaded) into
//! `<dir>`: that is how `windbg/test/fixtures/sim-*.json` were recorded. After re-recording, regenerate
//! the golden tables (`node windbg/mdlpool.js --render X.json > X.txt`) and the README sample, which
//! `node --test windbg/test/` compares against.
//! Needs `node` (or `$NODE`) on PATH; set `MDLPOOL_SKIP_NODE=1` to skip only the script half.

mod filter_common;
use filter_common::*;

use mdlpool::filter::FilterStatsSnapshot;
use mdlpool::pool::{ClassSnapshot, PoolSnapshot};
use mdlpool::stats::read::{self, COUNTER_FIELDS, FILTER_FIELDS};
use mdlpool::stats::{self, MdlPoolStatsRoot, STATE_RUNNING, STATE_UNLOADED};
use ndis_sim::{NblShape, Traffic};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

/// The 14 counters of a snapshot row, in `COUNTER_FIELDS` order.
fn snapshot_row(r: &ClassSnapshot) -> [u64; 14] {
    [
        r.total_allocates,
        r.allocate_misses,
        r.total_frees,
        r.free_misses,
        r.depth,
        r.depot_gets,
        r.depot_puts,
        r.system_allocs,
        r.system_frees,
        r.oversize,
        r.failures,
        r.injected,
        r.trimmed,
        r.flushed,
    ]
}

/// Per row (classes, then oversize), the counters summed over CPUs, read through the root only.
fn rows_through_root(root: &MdlPoolStatsRoot) -> Vec<[u64; 14]> {
    let cpus = root.cpu_count.load(Ordering::Acquire) as usize;
    let slots = root.slots_per_cpu.load(Ordering::Acquire) as usize;
    (0..slots)
        .map(|slot| {
            let mut sum = [0u64; 14];
            for cpu in 0..cpus {
                // SAFETY: the pool is installed and alive for the whole test body.
                let row = unsafe { read::read_row(root, cpu, slot) }.expect("published row");
                for (s, v) in sum.iter_mut().zip(row) {
                    *s = s.wrapping_add(v);
                }
            }
            sum
        })
        .collect()
}

/// The filter's snapshot as its 22 counters, in `FILTER_FIELDS` order.
fn filter_row(s: &FilterStatsSnapshot) -> [u64; 22] {
    [
        s.send_nbls_transformed,
        s.send_nbs_transformed,
        s.recv_nbls_transformed,
        s.recv_nbs_transformed,
        s.bytes_written,
        s.retreat_failures,
        s.context_failures,
        s.send_nbls_failed,
        s.send_nbls_paused,
        s.recv_nbls_dropped,
        s.restores_advanced,
        s.restores_manual,
        s.restores_inconsistent,
        s.pattern_mismatches,
        s.vlan_already_tagged,
        s.vlan_untouched_nbls,
        s.passthrough_nbls,
        s.config_bad_values,
        s.config_open_failures,
        s.oids_forwarded,
        s.oid_clone_failures,
        s.pauses_pended,
    ]
}

/// Data-path counters summed over the attached modules (through the root's module list) and the
/// detached modules' totals.
fn datapath_through_root(root: &MdlPoolStatsRoot) -> ([u64; 22], usize) {
    let mut sum = [0u64; 22];
    let mut attached = 0;
    for slot in 0..root.module_slots.load(Ordering::Relaxed) as usize {
        // SAFETY: no module attaches or detaches while the test reads.
        if let Some(row) = unsafe { read::read_module(root, slot) } {
            attached += 1;
            for (s, v) in sum.iter_mut().zip(row) {
                *s += v;
            }
        }
    }
    let detached = root.detached_totals.load(Ordering::Acquire);
    // SAFETY: detached_totals points at the filter's static.
    let detached = unsafe { &*detached }.snapshot();
    for (s, v) in sum.iter_mut().zip(filter_row(&detached)) {
        *s += v;
    }
    (sum, attached)
}

fn dump(root: &MdlPoolStatsRoot) -> String {
    let mut s = String::new();
    // SAFETY: the pool is alive (or unpublished: then only the static is read).
    unsafe { read::write_dump(root, &mut s) }.unwrap();
    s
}

fn record(name: &str, text: &str) {
    if let Some(dir) = std::env::var_os("MDLPOOL_RECORD_DUMP") {
        let path = std::path::Path::new(&dir).join(name);
        std::fs::write(&path, text).unwrap();
        eprintln!("recorded {}", path.display());
    }
}

/// The script's figures for a dump (`node windbg/mdlpool.js --render - --figures`), or None when
/// MDLPOOL_SKIP_NODE is set.
fn script_figures(dump: &str) -> Option<BTreeMap<String, i128>> {
    if std::env::var_os("MDLPOOL_SKIP_NODE").is_some() {
        eprintln!("MDLPOOL_SKIP_NODE set: the script half of this test did not run");
        return None;
    }
    use std::io::Write;
    use std::process::{Command, Stdio};
    let node = std::env::var("NODE").unwrap_or_else(|_| "node".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/windbg/mdlpool.js");
    let mut child = Command::new(&node)
        .args([script, "--render", "-", "--figures"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("running {node}: {e} (install node, or set MDLPOOL_SKIP_NODE=1)")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dump.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut m = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (k, v) = line.split_once(' ').unwrap();
        if v != "-" {
            m.insert(k.to_string(), v.parse::<i128>().unwrap());
        }
    }
    Some(m)
}

/// The script's figures equal the pool's snapshot, row by row and in total.
fn assert_script_agrees(figures: &BTreeMap<String, i128>, s: &PoolSnapshot, with_depot: bool) {
    let rows = s
        .size_classes()
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("class.{i}"), r))
        .chain([
            ("class.over".to_string(), s.oversize()),
            ("total".to_string(), &s.total),
        ]);
    for (prefix, r) in rows {
        let get = |name: &str| figures[&format!("{prefix}.{name}")];
        for (name, v) in COUNTER_FIELDS.iter().zip(snapshot_row(r)) {
            let want = if *name == "depth" {
                v as i64 as i128
            } else {
                v as i128
            };
            assert_eq!(get(name), want, "{prefix}.{name}");
        }
        assert_eq!(get("in_flight"), r.in_flight as i128, "{prefix}.in_flight");
        assert_eq!(
            get("live_blocks"),
            r.live_blocks as i128,
            "{prefix}.live_blocks"
        );
        assert_eq!(
            get("retained_blocks"),
            r.retained_blocks as i128,
            "{prefix}.retained_blocks"
        );
        assert_eq!(
            get("retained_bytes"),
            r.retained_bytes as i128,
            "{prefix}.retained_bytes"
        );
        assert_eq!(
            get("high_water"),
            r.high_water as i128,
            "{prefix}.high_water"
        );
        if with_depot {
            assert_eq!(
                get("depot_blocks"),
                r.depot_blocks as i128,
                "{prefix}.depot_blocks"
            );
        }
    }
}

#[test]
fn the_root_reads_exactly_the_pools_counters_and_survives_unload() {
    let (sim, drv) = start(4);
    let root = stats::root();
    assert_eq!(&root.magic, b"MdlPStat");
    assert_eq!(root.version, stats::STATS_VERSION);
    assert_eq!(
        root.state.load(Ordering::Acquire),
        STATE_RUNNING,
        "DriverEntry registered the filter"
    );
    assert!(!root.counters.load(Ordering::Acquire).is_null());

    let nic = running_adapter(&sim, &[mode("exercise")]);
    // Bursts larger than a magazine (depot exchanges), on every CPU, then drain everything.
    for _ in 0..3 {
        nic.send(&NblShape {
            nbls: 100,
            ..NblShape::default()
        });
        nic.indicate(
            &NblShape {
                nbls: 100,
                ..NblShape::default()
            },
            0,
        );
        nic.drain();
    }
    sim.run_traffic(
        &nic,
        &Traffic {
            steps_per_cpu: 400,
            ..Traffic::default()
        },
    );
    nic.drain();
    // One trim tick (what the filter's trim timer calls): it also refreshes the root's slow-path
    // fields (high water, bad frees).
    mdlpool::mdl_handlers::trim_tick();

    let snap = mdlpool::mdl_handlers::snapshot().expect("pool installed");
    assert!(
        snap.total.total_allocates > 600,
        "traffic reached the pool: {:?}",
        snap.total
    );
    assert!(
        snap.total.depot_gets + snap.total.depot_puts > 0,
        "bursts used the depot"
    );
    assert_eq!(snap.total.in_flight, 0, "drained");

    // 1. Through the root, as the debugger reads it: the raw rows equal the snapshot's rows exactly.
    assert_eq!(root.cpu_count.load(Ordering::Relaxed) as usize, snap.cpus);
    assert_eq!(
        root.class_count.load(Ordering::Relaxed) as usize,
        snap.class_count
    );
    let rows = rows_through_root(root);
    assert_eq!(rows.len(), snap.class_count + 1);
    for (slot, row) in rows.iter().enumerate() {
        assert_eq!(*row, snapshot_row(&snap.classes[slot]), "row {slot}");
    }
    for (i, c) in snap.size_classes().iter().enumerate() {
        assert_eq!(root.class_size[i].load(Ordering::Relaxed), c.class_size);
        assert_eq!(root.block_bytes[i].load(Ordering::Relaxed), c.block_bytes);
    }
    for (slot, c) in snap.classes[..=snap.class_count].iter().enumerate() {
        assert_eq!(
            root.high_water[slot].load(Ordering::Relaxed),
            c.high_water,
            "high water {slot}"
        );
    }
    assert_eq!(
        root.foreign_frees.load(Ordering::Relaxed),
        snap.foreign_frees
    );
    assert_eq!(root.double_frees.load(Ordering::Relaxed), snap.double_frees);

    // The filter's data-path counters through the root's module list equal the filter's own totals.
    let filter = filter_row(&filter_stats());
    let (datapath, attached) = datapath_through_root(root);
    assert_eq!(attached, 1);
    assert_eq!(datapath, filter);
    assert!(
        filter[0] > 0 && filter[2] > 0,
        "sends and receives were transformed: {filter:?}"
    );

    // 2. The WinDbg script's arithmetic over the same root: equal to the pool's snapshot.
    let running = dump(root);
    record("sim-4cpu-running.json", &running);
    if let Some(fig) = script_figures(&running) {
        assert_script_agrees(&fig, &snap, true);
        assert_eq!(fig["state"], STATE_RUNNING as i128);
        for (name, v) in FILTER_FIELDS.iter().zip(filter) {
            assert_eq!(
                fig[&format!("datapath.total.{name}")],
                v as i128,
                "datapath {name}"
            );
        }
        assert_eq!(fig["datapath.attached"], 1);
    }

    // 3. Unload: the root keeps the final totals (after the pool's flush, before its memory goes) and
    //    points at nothing.
    nic.pause().unwrap();
    nic.detach();
    let before_unload = mdlpool::mdl_handlers::snapshot().unwrap();
    let filter_before_unload = filter_row(&filter_stats());
    let (datapath, attached) = datapath_through_root(root);
    assert_eq!(
        (datapath, attached),
        (filter_before_unload, 0),
        "a detached module's counters are kept"
    );
    sim.unload(drv);
    assert_eq!(root.state.load(Ordering::Acquire), STATE_UNLOADED);
    assert!(
        root.counters.load(Ordering::Acquire).is_null(),
        "no pointer into the freed pool"
    );
    // SAFETY: unpublished root: read_row reads nothing.
    assert_eq!(unsafe { read::read_row(root, 0, 0) }, None);
    // What unload must have done: flush every cached block back to the system, nothing else.
    let mut expected = before_unload;
    for r in expected.classes[..=expected.class_count].iter_mut() {
        let retained = r.retained_blocks;
        r.flushed += retained;
        r.system_frees += retained;
        r.depth = 0;
        r.live_blocks -= retained;
        r.retained_blocks = 0;
        r.retained_bytes = 0;
        r.depot_blocks = 0;
        r.depot_full = 0;
    }
    let mut total = ClassSnapshot::default();
    for r in &expected.classes[..=expected.class_count] {
        total.total_allocates += r.total_allocates;
        total.allocate_misses += r.allocate_misses;
        total.total_frees += r.total_frees;
        total.free_misses += r.free_misses;
        total.depot_gets += r.depot_gets;
        total.depot_puts += r.depot_puts;
        total.system_allocs += r.system_allocs;
        total.system_frees += r.system_frees;
        total.oversize += r.oversize;
        total.failures += r.failures;
        total.injected += r.injected;
        total.trimmed += r.trimmed;
        total.flushed += r.flushed;
        total.in_flight += r.in_flight;
        total.live_blocks += r.live_blocks;
        total.high_water += r.high_water;
    }
    expected.total = total;
    for (slot, c) in expected.classes[..=expected.class_count].iter().enumerate() {
        for (name, v) in COUNTER_FIELDS.iter().zip(snapshot_row(c)) {
            assert_eq!(final_field(root, slot, name), v, "final {slot}.{name}");
        }
        assert_eq!(
            root.high_water[slot].load(Ordering::Relaxed),
            c.high_water,
            "final high water {slot}"
        );
    }
    assert!(
        expected.total.flushed > 0,
        "unload flushed the cached blocks"
    );
    let unloaded = dump(root);
    record("sim-4cpu-unloaded.json", &unloaded);
    if let Some(fig) = script_figures(&unloaded) {
        assert_script_agrees(&fig, &expected, true);
        assert_eq!(fig["state"], STATE_UNLOADED as i128);
        assert_eq!(fig["total.live_blocks"], 0, "nothing leaked");
        for (name, v) in FILTER_FIELDS.iter().zip(filter_before_unload) {
            assert_eq!(
                fig[&format!("datapath.total.{name}")],
                v as i128,
                "datapath {name} after unload"
            );
        }
    }
    sim.finish();
}

fn final_field(root: &MdlPoolStatsRoot, slot: usize, name: &str) -> u64 {
    let r = &root.final_counters[slot];
    let a = match name {
        "total_allocates" => &r.total_allocates,
        "allocate_misses" => &r.allocate_misses,
        "total_frees" => &r.total_frees,
        "free_misses" => &r.free_misses,
        "depth" => &r.depth,
        "depot_gets" => &r.depot_gets,
        "depot_puts" => &r.depot_puts,
        "system_allocs" => &r.system_allocs,
        "system_frees" => &r.system_frees,
        "oversize" => &r.oversize,
        "failures" => &r.failures,
        "injected" => &r.injected,
        "trimmed" => &r.trimmed,
        "flushed" => &r.flushed,
        other => panic!("unknown counter {other}"),
    };
    a.load(Ordering::Relaxed)
}

#[test]
fn reinstalling_the_pool_republishes_the_root() {
    let (sim, drv) = start(2);
    let root = stats::root();
    assert_eq!(root.state.load(Ordering::Acquire), STATE_RUNNING);
    // SAFETY: no module exists yet, so no handler call can be running.
    let report = unsafe { mdlpool::mdl_handlers::uninstall() }.expect("a pool was installed");
    assert!(report.is_clean());
    assert_eq!(root.state.load(Ordering::Acquire), STATE_UNLOADED);
    assert!(
        root.counters.load(Ordering::Acquire).is_null(),
        "retired before the pool was freed"
    );
    let cfg = mdlpool::pool::PoolConfig {
        fault: mdlpool::pool::FaultConfig {
            fail_every_nth: 3,
            ..Default::default()
        },
        ..mdlpool::driver::default_pool_config()
    };
    mdlpool::mdl_handlers::install(&cfg).expect("install");
    assert_eq!(
        root.state.load(Ordering::Acquire),
        STATE_RUNNING,
        "the filter is still registered"
    );
    let pool = mdlpool::mdl_handlers::installed().unwrap();
    assert_eq!(
        root.counters.load(Ordering::Acquire).cast_const(),
        pool.cpu_counters().as_ptr(),
        "the root follows the installed pool"
    );
    let nic = running_adapter(&sim, &[mode("exercise")]);
    nic.send(&NblShape {
        nbls: 9,
        ..NblShape::default()
    });
    nic.drain();
    let snap = mdlpool::mdl_handlers::snapshot().unwrap();
    assert!(snap.total.injected > 0);
    let rows = rows_through_root(root);
    let injected: u64 = rows.iter().map(|r| r[11]).sum();
    let failures: u64 = rows.iter().map(|r| r[10]).sum();
    assert_eq!(
        (injected, failures),
        (snap.total.injected, snap.total.failures)
    );
    // The filter counted the same failures as retreat failures.
    assert_eq!(filter_stats().retreat_failures, snap.total.failures);
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}
