//! Data-path benchmark: the per-NBL cost of the `exercise` transform with mdlpool's
//! NetAllocateMdl/NetFreeMdl pair (the per-CPU pool) against NDIS's default allocator (NULL
//! handlers), both on ndis-sim, in the same run as the pool benchmark (`cargo bench`).
//!
//! - `datapath/exercise_round_trip/{pool,ndis_default}`: one NBL (one NB, 60-byte frame, DataOffset 0)
//!   transformed exactly as FilterSendNetBufferLists does (NBL context, retreat record, allocating
//!   retreat of DataOffset + 14 bytes, pattern fill and check, advance with FreeMdl = FALSE) and
//!   restored exactly as FilterSendNetBufferListsComplete does (FreeMdl advance through the pair),
//!   at DISPATCH_LEVEL on one virtual CPU. The NBL and its MDLs are reused, so what differs between
//!   the two rows is only where the retreat's MDL comes from and goes back to.
//! - `datapath/send_through_stack/{pool,ndis_default}`: one NBL sent by the simulated protocol through
//!   the filter to the simulated miniport, which completes it inline, back up to the protocol: the
//!   whole path including the simulator's own bookkeeping (NBL build, seal and restore checks).
//!
//! In ndis-sim NDIS's default allocator is ExAllocatePool2 + MmBuildMdlForNonPagedPool per retreat
//! and ExFreePool per advance, as ndis.sys does (ndis-contract.md §5); the simulated pool allocator
//! keeps a verifier record per block behind a lock, so the gap is wider than on a real kernel.
//! The numbers are simulator numbers: compare rows, not absolute values.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndis_sim::{kernel, testkit::TestNbl, AdapterConfig, NblShape, Sim, SimConfig};
use ndis_sys::DISPATCH_LEVEL;
use std::time::Duration;

fn exercise_round_trip(c: &mut Criterion) {
    let sim = Sim::start(SimConfig {
        cpus: 1,
        ..SimConfig::default()
    });
    let drv = sim.load_driver(mdlpool::DriverEntry);
    let mut g = c.benchmark_group("datapath/exercise_round_trip");
    g.throughput(Throughput::Elements(1));
    for (name, ndis_default) in [("pool", false), ("ndis_default", true)] {
        let t = TestNbl::single(&[60], 0, 60);
        let nbl = t.nbl();
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            kernel::at_irql(DISPATCH_LEVEL, || {
                b.iter(|| {
                    // SAFETY: the test NBL is valid and ours for the whole benchmark.
                    let ok = unsafe {
                        mdlpool::filter::bench::exercise_round_trip(nbl, 14, 0, ndis_default)
                    };
                    assert!(ok);
                })
            })
        });
        drop(t);
    }
    g.finish();
    sim.unload(drv);
    sim.finish();
}

fn send_through_stack(c: &mut Criterion) {
    let mut g = c.benchmark_group("datapath/send_through_stack");
    g.throughput(Throughput::Elements(1));
    for (name, ndis_default) in [("pool", false), ("ndis_default", true)] {
        let sim = Sim::start(SimConfig {
            cpus: 1,
            ..SimConfig::default()
        });
        let drv = sim.load_driver(mdlpool::DriverEntry);
        let nic = sim.add_adapter(AdapterConfig {
            complete_inline: true,
            capture_limit: 0,
            ..AdapterConfig::default()
        });
        nic.attach().unwrap();
        nic.restart().unwrap();
        mdlpool::filter::use_ndis_default_allocator(ndis_default);
        let shape = NblShape::default();
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            kernel::at_irql(DISPATCH_LEVEL, || b.iter(|| nic.send(&shape)))
        });
        mdlpool::filter::use_ndis_default_allocator(false);
        nic.pause().unwrap();
        nic.detach();
        sim.unload(drv);
        sim.finish();
    }
    g.finish();
}

criterion_group! {
    name = datapath;
    config = Criterion::default()
        .sample_size(40)
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2));
    targets = exercise_round_trip, send_through_stack
}
criterion_main!(datapath);
