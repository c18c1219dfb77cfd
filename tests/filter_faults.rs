//! Fault injection: NetAllocateMdl failing by rate on both paths under multi-CPU traffic, NBL context
//! allocation failing, the configuration failing to open, bad registry values, and the module
//! allocation failing at attach. The failed NBLs complete with NDIS_STATUS_RESOURCES (send) or are
//! dropped (receive), the rest flow byte-exact, and nothing leaks (the simulator checks at detach and
//! unload; the pool must have nothing in flight).
mod filter_common;
use filter_common::*;
use mdlpool::pool::FaultConfig;
use ndis_sim::{AllocSite, ConfigValue, FaultRule, NblShape, Traffic};

fn traffic(seed: u64) -> Traffic {
    Traffic {
        steps_per_cpu: 400,
        send: NblShape {
            nbls: 3,
            nbs_per_nbl: 2,
            mdl_lengths: vec![10, 100],
            data_offset: 4,
            ..NblShape::default()
        },
        receive: NblShape {
            nbls: 3,
            ..NblShape::default()
        },
        resources_one_in: 3,
        seed,
        ..Traffic::default()
    }
}

#[test]
fn net_allocate_mdl_failing_by_rate_on_both_paths() {
    for (cpus, seed) in [(2usize, 1u64), (4, 2)] {
        let (sim, drv) = start(cpus);
        reinstall_pool_with_fault(FaultConfig {
            fail_rate_ppm: 150_000,
            seed: 0xFA11 ^ seed,
            ..FaultConfig::default()
        });
        let nic = running_adapter(&sim, &[]);
        let before = filter_stats();
        sim.run_traffic(&nic, &traffic(seed));
        nic.drain();
        let c = nic.counters();
        let s = filter_stats();
        let send_failed = s.send_nbls_failed - before.send_nbls_failed;
        let recv_dropped = s.recv_nbls_dropped - before.recv_nbls_dropped;
        assert!(
            send_failed > 0 && recv_dropped > 0,
            "the rate must hit both paths"
        );
        assert_eq!(
            c.proto_completed_other, send_failed,
            "failed sends complete with RESOURCES"
        );
        assert_eq!(
            c.proto_completed_nbls, c.proto_sent_nbls,
            "every send completes"
        );
        assert_eq!(
            c.wire_nbls + send_failed,
            c.proto_sent_nbls,
            "the rest reach the wire"
        );
        assert_eq!(
            c.mp_returned_nbls, c.mp_indicated_nbls,
            "every receive comes back"
        );
        assert_eq!(c.proto_received_nbls + recv_dropped, c.mp_indicated_nbls);
        assert!(s.retreat_failures - before.retreat_failures >= send_failed + recv_dropped);
        assert_eq!(pool_in_flight(), 0);
        assert_eq!(pool_bad_frees(), (0, 0));
        nic.pause().unwrap();
        nic.detach();
        sim.unload(drv);
        sim.finish();
    }
}

#[test]
fn nbl_context_allocation_failures() {
    let (sim, drv) = start(2);
    let nic = running_adapter(&sim, &[]);
    let before = filter_stats();
    sim.inject(AllocSite::NblContext, FaultRule::Every(2));
    // Two NBs per NBL: their context (112 bytes) exceeds the context backfill the filter asked for
    // (64, one NB), so NDIS must allocate a block, and that allocation fails every other time (a carve
    // from the backfill cannot fail).
    nic.send(&NblShape {
        nbls: 6,
        nbs_per_nbl: 2,
        ..NblShape::default()
    });
    nic.indicate(
        &NblShape {
            nbls: 6,
            nbs_per_nbl: 2,
            ..NblShape::default()
        },
        0,
    );
    sim.clear_injection(AllocSite::NblContext);
    let s = filter_stats();
    assert_eq!(s.context_failures - before.context_failures, 6);
    let c = nic.counters();
    assert_eq!(c.proto_completed_other, 3);
    assert_eq!(c.wire_nbls, 3);
    assert_eq!(c.proto_received_nbls, 3);
    nic.drain();
    assert_eq!(pool_in_flight(), 0);
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

#[test]
fn configuration_that_cannot_be_opened_means_defaults() {
    let (sim, drv) = start(2);
    let before = filter_stats();
    sim.inject(AllocSite::Config, FaultRule::From(0));
    // Even asking for passthrough: the keys cannot be read, so the default (exercise) applies.
    let nic = running_adapter(&sim, &[mode("passthrough")]);
    sim.clear_injection(AllocSite::Config);
    let s = filter_stats();
    assert_eq!(
        s.config_open_failures - before.config_open_failures,
        2,
        "attach and restart"
    );
    let served0 = pool_served();
    nic.send(&NblShape::default());
    assert_eq!(
        pool_served() - served0,
        1,
        "exercise (the default) retreated"
    );
    nic.drain();
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

#[test]
fn bad_registry_values_fall_back_to_defaults_counted_and_logged_once() {
    let (sim, drv) = start(2);
    let before = filter_stats();
    let bad = [
        ("Mode", ConfigValue::Str("bridge".into())),
        ("ExerciseBytes", ConfigValue::Int(0)),
        ("ExerciseBackfill", ConfigValue::Int(999)),
        ("VlanId", ConfigValue::Int(4095)),
        ("PoolMagazineSize", ConfigValue::Str("many".into())),
    ];
    let nic = running_adapter(&sim, &bad);
    let s = filter_stats();
    // Read at attach and again at restart: 5 bad values each time.
    assert_eq!(s.config_bad_values - before.config_bad_values, 10);
    let bytes0 = s.bytes_written;
    nic.send(&NblShape::default());
    assert_eq!(
        filter_stats().bytes_written - bytes0,
        14,
        "default ExerciseBytes"
    );
    let log = sim.log();
    for key in [
        "ExerciseBytes",
        "ExerciseBackfill",
        "VlanId",
        "PoolMagazineSize",
    ] {
        let n = log
            .iter()
            .filter(|l| l.contains(&format!("registry value {key} ")))
            .count();
        assert_eq!(
            n, 1,
            "{key} must be logged exactly once (only this test sets it)"
        );
    }
    nic.drain();
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

#[test]
fn exercise_bytes_and_backfill_at_their_limits() {
    for (bytes, backfill) in [(1u32, 0u32), (256, 256), (100, 3)] {
        let (sim, drv) = start(2);
        let nic = running_adapter(
            &sim,
            &[
                int("ExerciseBytes", bytes),
                int("ExerciseBackfill", backfill),
            ],
        );
        let before = filter_stats();
        nic.send(&NblShape {
            data_offset: 5,
            ..NblShape::default()
        });
        nic.indicate(&NblShape::default(), ndis_sys::NDIS_RECEIVE_FLAGS_RESOURCES);
        assert_eq!(
            filter_stats().bytes_written - before.bytes_written,
            2 * bytes as u64
        );
        let c = nic.counters();
        assert_eq!(c.wire_digest, c.proto_sent_digest);
        nic.drain();
        assert_eq!(pool_in_flight(), 0);
        nic.pause().unwrap();
        nic.detach();
        sim.unload(drv);
        sim.finish();
    }
}

#[test]
fn attach_fails_cleanly_when_the_module_cannot_be_allocated() {
    let (sim, drv) = start(2);
    let nic = sim.add_adapter(ndis_sim::AdapterConfig::default());
    sim.inject(AllocSite::Pool, FaultRule::From(0));
    assert!(nic.attach().is_err());
    sim.clear_injection(AllocSite::Pool);
    nic.attach().unwrap();
    nic.restart().unwrap();
    nic.send(&NblShape::default());
    nic.drain();
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}
