//! Data-path benchmark: the per-NBL cost of the `exercise` transform with mdlpool's
//! NetAllocateMdl/NetFreeMdl pair (the per-CPU pool) against NDIS's default allocator (NULL
//! handlers), both on ndis-sim, in the same run as the pool benchmark (`cargo bench`).
//!
//! - `datapath/exercise_round_trip/{pool,ndis_default}`: one NBL (one NB, 60-byte frame, DataOffset 0)
//!   transformed exactly as FilterSendNetBufferLists does (NBL context, retreat record, allocating
//!   retreat of DataOffset + 14 bytes, pattern fill and check, advance with FreeMdl = FALSE) and
//!   restored exactly as FilterSendNetBufferListsComplete does (FreeMdl advance through the pair,
//!   context freed), at DISPATCH_LEVEL on one virtual CPU. The NBL, its MDL and its context backfill
//!   are reused (as a protocol's NBL with context room is), so what differs between the two rows is
//!   only where the retreat's MDL comes from and goes back to.
//! - `datapath/send_through_stack/{pool,ndis_default}`: one NBL sent by the simulated protocol through
//!   the filter to the simulated miniport, which completes it inline, back up to the protocol: the
//!   whole path including the simulator's own bookkeeping (NBL build, seal and restore checks).
//!
//! After the criterion groups, an interleaved A/B table measures the same two operations in
//! alternating batches (pool, default, default, pool, ...) and reports the median per-NBL time of
//! each and the median of the per-round ratios: on a shared machine, load that drifts between two
//! sequential criterion runs then affects both sides of every round alike.
//!
//! In ndis-sim NDIS's default allocator is ExAllocatePool2 + MmBuildMdlForNonPagedPool per retreat
//! and ExFreePool per advance, as ndis.sys does (ndis-contract.md §5); the simulated pool allocator
//! keeps a verifier record per block behind a lock, so the gap differs from a real kernel's.
//! The numbers are simulator numbers: compare rows, not absolute values. The A/B table therefore also
//! has `_bookkeeping_both` rows, where each side is also charged, once per NBL, the simulator
//! bookkeeping only the other side pays (`ndis_sim::bench_only`: the pool tables of the simulated
//! ExAllocatePool2/ExFreePool for the pool side, the checks of a handler's MDL for the default side),
//! so that both pay the same; `cargo xtask bench` reads the table's figures from
//! `$MDLPOOL_DATAPATH_FACTS`.

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use ndis_sim::{kernel, testkit::TestNbl, AdapterConfig, NblShape, Sim, SimConfig, SimGuard};
use ndis_sys::*;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// A one-NB test NBL with a context block whose backfill holds the filter's one-NB context, so
/// NdisAllocateNetBufferListContext carves it out without allocating (as on a protocol's NBL: 16
/// bytes of its own context, multiples of MEMORY_ALLOCATION_ALIGNMENT as ndis-sim requires).
struct BenchNbl {
    t: TestNbl,
}

impl BenchNbl {
    fn new() -> Self {
        let t = TestNbl::single(&[60], 0, 60);
        let backfill = mdlpool::filter::context::context_size(1).expect("one NB fits");
        // SAFETY: the simulator's NBL, owned by this benchmark.
        let st = unsafe { NdisAllocateNetBufferListContext(t.nbl(), 16, backfill, 0x6863_6E42) };
        assert_eq!(st, NDIS_STATUS_SUCCESS);
        BenchNbl { t }
    }

    fn round_trip(&self, ndis_default: bool) {
        // SAFETY: the test NBL is valid and ours for the whole benchmark.
        let ok = unsafe {
            mdlpool::filter::bench::exercise_round_trip(self.t.nbl(), 14, 0, ndis_default)
        };
        assert!(black_box(ok));
    }
}

impl Drop for BenchNbl {
    fn drop(&mut self) {
        // SAFETY: the context block allocated in `new`, still the NBL's top block.
        unsafe { NdisFreeNetBufferListContext(self.t.nbl(), 16) };
    }
}

fn load(cpus: usize) -> (SimGuard, ndis_sim::Driver) {
    let sim = Sim::start(SimConfig {
        cpus,
        ..SimConfig::default()
    });
    let drv = sim.load_driver(mdlpool::DriverEntry);
    (sim, drv)
}

fn running_inline_adapter(sim: &SimGuard) -> ndis_sim::Adapter {
    let nic = sim.add_adapter(AdapterConfig {
        complete_inline: true,
        capture_limit: 0,
        ..AdapterConfig::default()
    });
    nic.attach().unwrap();
    nic.restart().unwrap();
    nic
}

fn exercise_round_trip(c: &mut Criterion) {
    let (sim, drv) = load(1);
    let nbl = BenchNbl::new();
    let mut g = c.benchmark_group("datapath/exercise_round_trip");
    g.throughput(Throughput::Elements(1));
    for (name, ndis_default) in [("pool", false), ("ndis_default", true)] {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            kernel::at_irql(DISPATCH_LEVEL, || b.iter(|| nbl.round_trip(ndis_default)))
        });
    }
    g.finish();
    drop(nbl);
    sim.unload(drv);
    sim.finish();
}

fn send_through_stack(c: &mut Criterion) {
    let (sim, drv) = load(1);
    let nic = running_inline_adapter(&sim);
    let shape = NblShape::default();
    let mut g = c.benchmark_group("datapath/send_through_stack");
    g.throughput(Throughput::Elements(1));
    for (name, ndis_default) in [("pool", false), ("ndis_default", true)] {
        mdlpool::filter::use_ndis_default_allocator(ndis_default);
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            kernel::at_irql(DISPATCH_LEVEL, || b.iter(|| nic.send(&shape)))
        });
    }
    mdlpool::filter::use_ndis_default_allocator(false);
    g.finish();
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

/// Runs `rounds` rounds of `iters` iterations of each side, alternating which goes first; returns
/// (median ns/iter of A, median ns/iter of B, median of the per-round A/B ratios).
fn interleaved(
    rounds: usize,
    iters: usize,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> (f64, f64, f64) {
    let mut ta = Vec::with_capacity(rounds);
    let mut tb = Vec::with_capacity(rounds);
    let time = |f: &mut dyn FnMut()| {
        let t0 = Instant::now();
        for _ in 0..iters {
            f();
        }
        t0.elapsed().as_nanos() as f64 / iters as f64
    };
    for _ in 0..rounds / 10 {
        time(&mut a);
        time(&mut b);
    }
    for r in 0..rounds {
        if r % 2 == 0 {
            ta.push(time(&mut a));
            tb.push(time(&mut b));
        } else {
            tb.push(time(&mut b));
            ta.push(time(&mut a));
        }
    }
    let mut ratios: Vec<f64> = ta.iter().zip(&tb).map(|(x, y)| x / y).collect();
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|x, y| x.total_cmp(y));
        v[v.len() / 2]
    };
    (med(&mut ta), med(&mut tb), med(&mut ratios))
}

/// One A/B row: (name, pool ns, default ns, median ratio).
type Row = (String, f64, f64, f64);

fn ab_table() {
    let rounds = 200;
    // Each side charged the simulator bookkeeping the other pays (the `_bookkeeping_both` rows).
    let charge = ndis_sim::bench_only::charge_default_mdl_bookkeeping;
    let charge_h = ndis_sim::bench_only::charge_handler_mdl_bookkeeping;
    let mut rows: Vec<Row> = Vec::new();
    {
        let (sim, drv) = load(1);
        let nbl = BenchNbl::new();
        kernel::at_irql(DISPATCH_LEVEL, || {
            let (p, d, r) = interleaved(
                rounds,
                2000,
                || nbl.round_trip(false),
                || nbl.round_trip(true),
            );
            rows.push(("exercise_round_trip".into(), p, d, r));
            let (p, d, r) = interleaved(
                rounds,
                2000,
                || {
                    nbl.round_trip(false);
                    charge();
                },
                || {
                    nbl.round_trip(true);
                    charge_h();
                },
            );
            rows.push(("exercise_round_trip_bookkeeping_both".into(), p, d, r));
        });
        drop(nbl);
        sim.unload(drv);
        sim.finish();
    }
    {
        let (sim, drv) = load(1);
        let nic = running_inline_adapter(&sim);
        let shape = NblShape::default();
        kernel::at_irql(DISPATCH_LEVEL, || {
            for both in [false, true] {
                let (p, d, r) = interleaved(
                    rounds,
                    200,
                    || {
                        mdlpool::filter::use_ndis_default_allocator(false);
                        nic.send(&shape);
                        if both {
                            charge();
                        }
                    },
                    || {
                        mdlpool::filter::use_ndis_default_allocator(true);
                        nic.send(&shape);
                        if both {
                            charge_h();
                        }
                    },
                );
                let name = if both {
                    "send_through_stack_bookkeeping_both"
                } else {
                    "send_through_stack"
                };
                rows.push((name.into(), p, d, r));
            }
        });
        mdlpool::filter::use_ndis_default_allocator(false);
        nic.pause().unwrap();
        nic.detach();
        sim.unload(drv);
        sim.finish();
    }
    // The bookkeeping alone (what the `_bookkeeping_both` rows add to the pool side), same timing loop.
    let (bk, bk_h, _) = interleaved(rounds, 2000, charge, charge_h);
    println!();
    println!("datapath A/B, interleaved ({rounds} rounds; median ns per NBL; ratio = median of per-round pool/default):");
    println!(
        "{:<44} {:>12} {:>14} {:>8}",
        "benchmark", "pool", "ndis_default", "ratio"
    );
    let mut facts = format!(
        "rounds={rounds}\nbookkeeping_default_ns={bk:.1}\nbookkeeping_handler_ns={bk_h:.1}\n"
    );
    for (name, p, d, r) in &rows {
        println!(
            "{:<44} {:>12.1} {:>14.1} {:>8.3}",
            format!("datapath/{name}"),
            p,
            d,
            r
        );
        facts += &format!("{name}.pool={p:.1}\n{name}.ndis_default={d:.1}\n{name}.ratio={r:.4}\n");
    }
    println!("simulator bookkeeping per NBL: default allocator's pool tables {bk:.1} ns (charged to the pool side in *_bookkeeping_both), handler checks {bk_h:.1} ns (charged to the default side)");
    if let Ok(path) = std::env::var("MDLPOOL_DATAPATH_FACTS") {
        std::fs::write(&path, facts).expect("write datapath facts");
    }
}

criterion_group! {
    name = datapath;
    config = Criterion::default()
        .sample_size(40)
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2));
    targets = exercise_round_trip, send_through_stack
}

fn main() {
    datapath();
    Criterion::default().configure_from_args().final_summary();
    // The interleaved A/B table measures (and charges the simulator's bookkeeping through
    // `ndis_sim::bench_only`, which refuses to run outside `cargo bench`): only under `cargo bench`,
    // not in `cargo test --bench datapath`'s run-once mode.
    if std::env::args().any(|a| a == "--bench") {
        ab_table();
    } else {
        println!("datapath A/B table: measured under `cargo bench` only");
    }
}
