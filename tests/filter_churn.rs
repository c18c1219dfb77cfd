//! Lifecycle churn under traffic: while virtual CPUs run protocol sends, miniport completions (in
//! random order), indications (some with NDIS_RECEIVE_FLAGS_RESOURCES) and protocol returns, the
//! test thread pauses and restarts the module, detaches and re-attaches it with another mode, and
//! unloads and reloads the whole driver (DriverUnload → deregister, which pauses and detaches the
//! module, then the pool is destroyed), thousands of times from a fixed seed. After every pause the
//! pool has nothing in flight and the module holds no reference; the simulator's verifier checks
//! every hand-off, restore, pause and leak, and must end with zero findings.
//!
//! Cycles: `MDLPOOL_CHURN_CYCLES` (default 3000), seed `MDLPOOL_CHURN_SEED` (default 0xC4A5).
mod filter_common;
use filter_common::*;
use ndis_sim::{fault::splitmix64, ConfigValue, NblShape, Traffic};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A decimal or `0x` hexadecimal value from the environment; a malformed value is an error, not the
/// default (a typo must not silently rerun the default seed).
fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Err(_) => default,
        Ok(v) => match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => v.parse(),
        }
        .unwrap_or_else(|e| panic!("{name}={v}: {e}")),
    }
}

fn module_references() -> i64 {
    let mut n = 0;
    mdlpool::filter::for_each_module(|m| n += m.outstanding());
    n
}

fn configure_mode(nic: &ndis_sim::Adapter, which: u64) {
    let (m, inline) = match which % 3 {
        0 => ("exercise", 0),
        1 => ("vlan", 1),
        _ => ("passthrough", 0),
    };
    nic.set_config("Mode", ConfigValue::Str(m.into()));
    nic.set_config("VlanId", ConfigValue::Int(5));
    nic.set_config("VlanReceiveInline", ConfigValue::Int(inline));
    nic.set_config("ExerciseBackfill", ConfigValue::Int((which % 5) as u32 * 8));
}

#[test]
fn churn_pause_restart_reattach_unload_under_traffic() {
    let cycles = env_u64("MDLPOOL_CHURN_CYCLES", 3000);
    let seed = env_u64("MDLPOOL_CHURN_SEED", 0xC4A5);
    let (sim, first) = start(2);
    let mut drv = Some(first);
    let nic = sim.add_adapter(ndis_sim::AdapterConfig::default());
    configure_mode(&nic, 0);
    nic.attach().unwrap();
    nic.restart().unwrap();
    let before = filter_stats();
    let stop = AtomicBool::new(false);
    let rounds = AtomicU64::new(0);
    let (mut pauses, mut reattaches, mut reloads) = (0u64, 0u64, 0u64);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut r = 0u64;
            while !stop.load(Ordering::Relaxed) {
                r += 1;
                sim.run_traffic(
                    &nic,
                    &Traffic {
                        steps_per_cpu: 16,
                        send: NblShape {
                            nbls: 2,
                            nbs_per_nbl: 1 + (r % 3) as usize,
                            mdl_lengths: if r.is_multiple_of(2) {
                                vec![6, 90]
                            } else {
                                vec![]
                            },
                            data_offset: (r % 4) as u32 * 3,
                            ..NblShape::default()
                        },
                        receive: NblShape {
                            nbls: 2,
                            ieee8021q: info(2, 5),
                            data_offset: (r % 3) as u32,
                            ..NblShape::default()
                        },
                        resources_one_in: 3,
                        seed: seed ^ r,
                        ..Traffic::default()
                    },
                );
                rounds.store(r, Ordering::Relaxed);
            }
        });
        let mut rng = seed;
        for cycle in 0..cycles {
            rng = splitmix64(rng);
            nic.pause().unwrap();
            pauses += 1;
            assert_eq!(
                pool_in_flight(),
                0,
                "cycle {cycle}: pool blocks in flight at pause"
            );
            assert_eq!(
                module_references(),
                0,
                "cycle {cycle}: module references at pause"
            );
            assert_eq!(
                nic.outstanding(),
                0,
                "cycle {cycle}: NBLs outstanding at pause"
            );
            match rng % 16 {
                0..=11 => {}
                12..=14 => {
                    nic.detach();
                    configure_mode(&nic, rng >> 8);
                    nic.attach().unwrap();
                    reattaches += 1;
                }
                _ => {
                    // DriverUnload deregisters (NDIS detaches the paused module), then the pool goes.
                    sim.unload(drv.take().unwrap());
                    assert!(mdlpool::mdl_handlers::snapshot().is_none());
                    drv = Some(sim.load_driver(mdlpool::DriverEntry));
                    configure_mode(&nic, rng >> 8);
                    nic.attach().unwrap();
                    reloads += 1;
                }
            }
            nic.restart().unwrap();
            // Let traffic run against the running module before the next pause.
            let seen = rounds.load(Ordering::Relaxed);
            while rounds.load(Ordering::Relaxed) < seen + 1 {
                std::thread::yield_now();
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    nic.drain();
    nic.pause().unwrap();
    assert_eq!(pool_in_flight(), 0);
    let s = filter_stats();
    let c = nic.counters();
    eprintln!(
        "churn: {cycles} cycles (seed {seed:#x}): {pauses} pauses, {reattaches} re-attaches, \
         {reloads} driver reloads, {} traffic rounds; {} NBLs sent, {} indicated; filter transformed \
         {} send + {} receive NBLs",
        rounds.load(Ordering::Relaxed),
        c.proto_sent_nbls,
        c.mp_indicated_nbls,
        s.send_nbls_transformed - before.send_nbls_transformed,
        s.recv_nbls_transformed - before.recv_nbls_transformed,
    );
    assert!(reattaches > 0 && reloads > 0);
    assert!(s.send_nbls_transformed > before.send_nbls_transformed);
    assert!(s.recv_nbls_transformed > before.recv_nbls_transformed);
    assert_eq!(c.proto_completed_nbls, c.proto_sent_nbls);
    assert_eq!(c.mp_returned_nbls, c.mp_indicated_nbls);
    nic.detach();
    sim.unload(drv.take().unwrap());
    sim.finish();
}

/// The same churn on one host thread with the simulator's seeded schedule over 2 virtual CPUs: every
/// run with the same seed makes the same calls in the same order (reproducible failures).
#[test]
fn deterministic_churn_is_reproducible() {
    let cycles = env_u64("MDLPOOL_CHURN_CYCLES", 3000) / 4;
    let seed = env_u64("MDLPOOL_CHURN_SEED", 0xC4A5);
    let run = || {
        let sim = ndis_sim::Sim::start(ndis_sim::SimConfig {
            cpus: 2,
            deterministic: true,
            seed,
            ..ndis_sim::SimConfig::default()
        });
        let mut drv = Some(sim.load_driver(mdlpool::DriverEntry));
        let nic = sim.add_adapter(ndis_sim::AdapterConfig::default());
        configure_mode(&nic, 0);
        nic.attach().unwrap();
        nic.restart().unwrap();
        let mut rng = seed;
        for cycle in 0..cycles {
            rng = splitmix64(rng);
            sim.run_traffic(
                &nic,
                &Traffic {
                    steps_per_cpu: 8,
                    receive: NblShape {
                        ieee8021q: info(1, 5),
                        ..NblShape::default()
                    },
                    seed: rng,
                    ..Traffic::default()
                },
            );
            nic.pause().unwrap();
            assert_eq!(pool_in_flight(), 0, "cycle {cycle}");
            match rng % 16 {
                0..=11 => {}
                12..=14 => {
                    nic.detach();
                    configure_mode(&nic, rng >> 8);
                    nic.attach().unwrap();
                }
                _ => {
                    sim.unload(drv.take().unwrap());
                    drv = Some(sim.load_driver(mdlpool::DriverEntry));
                    configure_mode(&nic, rng >> 8);
                    nic.attach().unwrap();
                }
            }
            nic.restart().unwrap();
        }
        nic.drain();
        nic.pause().unwrap();
        nic.detach();
        let c = nic.counters();
        sim.unload(drv.take().unwrap());
        sim.finish();
        (
            c.proto_sent_nbls,
            c.wire_digest,
            c.mp_indicated_nbls,
            c.proto_received_digest,
        )
    };
    let first = run();
    assert!(first.0 > 0 && first.2 > 0);
    assert_eq!(run(), first, "same seed, same run");
}
