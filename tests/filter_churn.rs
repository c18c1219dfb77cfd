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
use ndis_sim::churn::Churn;
use ndis_sim::{ConfigValue, NblShape, Traffic};

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

/// What [`while_paused`] did.
enum Step {
    Nothing,
    Reattached,
    Reloaded,
}

/// One paused module, from `rng`: 12 cycles in 16 nothing, 3 a detach and re-attach with the mode
/// `rng >> 8` picks, 1 an unload and reload of the whole driver (`after_unload` runs between them)
/// and an attach with that mode.
fn while_paused(
    sim: &ndis_sim::SimGuard,
    nic: &ndis_sim::Adapter,
    drv: &mut Option<ndis_sim::Driver>,
    rng: u64,
    after_unload: impl FnOnce(),
) -> Step {
    match rng % 16 {
        0..=11 => Step::Nothing,
        12..=14 => {
            nic.detach();
            configure_mode(nic, rng >> 8);
            nic.attach().unwrap();
            Step::Reattached
        }
        _ => {
            sim.unload(drv.take().unwrap());
            after_unload();
            *drv = Some(sim.load_driver(mdlpool::DriverEntry));
            configure_mode(nic, rng >> 8);
            nic.attach().unwrap();
            Step::Reloaded
        }
    }
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
    let (mut pauses, mut reattaches, mut reloads) = (0u64, 0u64, 0u64);
    let churn = Churn::new(&sim, &nic, cycles, seed);
    let traffic = |r: u64| Traffic {
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
    };
    let no_control: Option<fn(u64)> = None;
    let run = churn.on_threads(traffic, no_control, |cycle, rng, paused| {
        paused.unwrap();
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
        // DriverUnload deregisters (NDIS detaches the paused module), then the pool goes.
        let no_pool = || assert!(mdlpool::mdl_handlers::snapshot().is_none());
        match while_paused(&sim, &nic, &mut drv, rng, no_pool) {
            Step::Nothing => {}
            Step::Reattached => reattaches += 1,
            Step::Reloaded => reloads += 1,
        }
        true
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
        run.rounds,
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
        let churn = Churn::new(&sim, &nic, cycles, seed);
        let traffic = |rng: u64| Traffic {
            steps_per_cpu: 8,
            receive: NblShape {
                ieee8021q: info(1, 5),
                ..NblShape::default()
            },
            seed: rng,
            ..Traffic::default()
        };
        churn.seeded(
            traffic,
            |_, _| {},
            |cycle, rng, paused| {
                paused.unwrap();
                assert_eq!(pool_in_flight(), 0, "cycle {cycle}");
                while_paused(&sim, &nic, &mut drv, rng, || {});
                true
            },
        );
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
