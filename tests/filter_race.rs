//! mdlpool under ndis-sim's concurrent lifecycle (`Lifecycle::Concurrent`, crates/ndis-sim/src/race.rs)
//! with the seeded deterministic interleaving: traffic on every virtual CPU while pauses (their
//! FilterPause call landing inside data-path hand-offs of other CPUs), restarts with configuration
//! changes between them (receives arriving while Restarting, at the driver's configuration reads),
//! detaches/re-attaches, OIDs, status indications and trim-timer ticks land at points drawn from the
//! seed. Zero findings, nothing leaked, every pended pause completed exactly once.
//!
//! Cycles: `MDLPOOL_RACE_CYCLES` (default 3000), seed `MDLPOOL_RACE_SEED` (default 0x4ACE); a failure
//! prints the seed, and the same seed replays the same run.
mod filter_common;
use filter_common::*;
use ndis_sim::churn::Churn;
use ndis_sim::{AdapterConfig, ConfigValue, Lifecycle, NblShape, Sim, SimConfig, Traffic};
use ndis_sys::*;

fn configure(nic: &ndis_sim::Adapter, which: u64) {
    let (m, inline) = match which % 3 {
        0 => ("exercise", 0),
        1 => ("vlan", 1),
        _ => ("passthrough", 0),
    };
    nic.set_config("Mode", ConfigValue::Str(m.into()));
    nic.set_config("VlanId", ConfigValue::Int(5));
    nic.set_config("VlanReceiveInline", ConfigValue::Int(inline));
    nic.set_config("ExerciseBytes", ConfigValue::Int(1 + (which % 40) as u32));
    nic.set_config("ExerciseBackfill", ConfigValue::Int((which % 5) as u32 * 8));
    nic.set_config(
        "PoolTrimIntervalMs",
        ConfigValue::Int(100 + (which % 4) as u32 * 100),
    );
}

/// At a pause: no pool block in flight, no module reference, no NBL outstanding (`at` names the
/// cycle in a failure).
fn nothing_held(nic: &ndis_sim::Adapter, at: &str) {
    assert_eq!(pool_in_flight(), 0, "{at}");
    assert_eq!(module_references(), 0, "{at}");
    assert_eq!(nic.outstanding(), 0, "{at}");
}

/// While paused: detach and re-attach with configuration `which` (`reattach`), or only reconfigure
/// (read at the restart). Returns `reattach`.
fn reconfigure(nic: &ndis_sim::Adapter, reattach: bool, which: u64) -> bool {
    if reattach {
        nic.detach();
        configure(nic, which);
        nic.attach().unwrap();
    } else {
        configure(nic, which);
    }
    reattach
}

/// FilterPause's outcome at `cycle` as NDIS recorded it: a pended pause completed exactly once, one
/// that returned SUCCESS never. Returns whether it pended.
fn pause_pended(nic: &ndis_sim::Adapter, cycle: u64) -> bool {
    let r = nic.pause_record();
    match r.status {
        Some(NDIS_STATUS_PENDING) => {
            assert_eq!(r.completes, 1, "cycle {cycle}: {r:?}");
            true
        }
        Some(NDIS_STATUS_SUCCESS) => {
            assert_eq!(r.completes, 0, "cycle {cycle}: {r:?}");
            false
        }
        other => panic!("cycle {cycle}: FilterPause returned {other:?}"),
    }
}

#[test]
fn seeded_concurrent_churn_with_zero_findings() {
    let cycles = env_u64("MDLPOOL_RACE_CYCLES", 3000);
    let seed = env_u64("MDLPOOL_RACE_SEED", 0x4ACE);
    let sim = Sim::start(SimConfig {
        cpus: 2,
        deterministic: true,
        seed,
        lifecycle: Lifecycle::Concurrent,
        interleave_one_in: 3,
        ..SimConfig::default()
    });
    let drv = sim.load_driver(mdlpool::DriverEntry);
    let nic = sim.add_adapter(AdapterConfig::default());
    configure(&nic, 0);
    nic.attach().unwrap();
    nic.restart().unwrap();
    let (mut pended, mut reattaches, mut oids) = (0u64, 0u64, 0u64);
    let churn = Churn::new(&sim, &nic, cycles, seed);
    let traffic = |rng: u64| Traffic {
        steps_per_cpu: 3 + (rng % 6) as usize,
        send: NblShape {
            nbls: 1 + (rng >> 8) as usize % 2,
            mdl_lengths: if rng & 1 == 0 { vec![6, 90] } else { vec![] },
            ..NblShape::default()
        },
        receive: NblShape {
            nbls: 1 + (rng >> 12) as usize % 2,
            ieee8021q: info(2, 5),
            ..NblShape::default()
        },
        resources_one_in: 3,
        seed: rng,
        ..Traffic::default()
    };
    churn.seeded(
        traffic,
        |cycle, rng| {
            if (rng >> 20).is_multiple_of(4) {
                let mut buf = [0u8; 8];
                let (st, _) = nic.oid_request(NdisRequestQueryInformation, 0x0001_0107, &mut buf);
                assert_eq!(st, NDIS_STATUS_SUCCESS, "cycle {cycle}");
                oids += 1;
            }
        },
        |cycle, rng, paused| {
            let at = format!("cycle {cycle} (seed {seed:#x})");
            paused.unwrap_or_else(|e| panic!("{at}: {e:?}"));
            pended += pause_pended(&nic, cycle) as u64;
            nothing_held(&nic, &at);
            reattaches += reconfigure(&nic, (rng >> 24).is_multiple_of(8), rng >> 32) as u64;
            true
        },
    );
    nic.drain();
    nic.pause().unwrap();
    let c = nic.counters();
    eprintln!(
        "race churn: {cycles} cycles (seed {seed:#x}): {pended} pauses pended, {reattaches} re-attaches, {oids} OIDs; {} NBLs sent, {} indicated",
        c.proto_sent_nbls, c.mp_indicated_nbls
    );
    assert!(pended > 0 && reattaches > 0);
    assert_eq!(c.proto_completed_nbls, c.proto_sent_nbls);
    assert_eq!(c.mp_returned_nbls, c.mp_indicated_nbls);
    nic.detach();
    sim.unload(drv);
    assert!(sim
        .log()
        .iter()
        .any(|l| l.contains("[sched] FilterPause") && l.contains("inside")));
    sim.finish();
}

/// The same churn on real threads (`Lifecycle::Concurrent`, not deterministic): a thread per virtual
/// CPU runs traffic, another issues OIDs and status indications and advances the clock (trim-timer
/// DPCs on its CPU), while this thread pauses, reconfigures, restarts, detaches and re-attaches.
/// Cycles: `MDLPOOL_RACE_THREADED_CYCLES` (default 3000). Thread timing is not reproducible: a finding
/// here names, for each NBL, which side of the pause line it fell on; the seeded test above replays.
#[test]
fn threaded_concurrent_churn_with_zero_findings() {
    let cycles = env_u64("MDLPOOL_RACE_THREADED_CYCLES", 3000);
    let seed = env_u64("MDLPOOL_RACE_SEED", 0x4ACE);
    let sim = Sim::start(SimConfig {
        cpus: 2,
        seed,
        lifecycle: Lifecycle::Concurrent,
        ..SimConfig::default()
    });
    let drv = sim.load_driver(mdlpool::DriverEntry);
    let nic = sim.add_adapter(AdapterConfig::default());
    configure(&nic, 0);
    nic.attach().unwrap();
    nic.restart().unwrap();
    let (mut pended, mut reattaches) = (0u64, 0u64);
    let churn = Churn::new(&sim, &nic, cycles, seed);
    let traffic = |r: u64| Traffic {
        steps_per_cpu: 16,
        send: NblShape {
            nbls: 2,
            mdl_lengths: if r.is_multiple_of(2) {
                vec![6, 90]
            } else {
                vec![]
            },
            ..NblShape::default()
        },
        receive: NblShape {
            nbls: 2,
            ieee8021q: info(2, 5),
            ..NblShape::default()
        },
        resources_one_in: 3,
        seed: seed ^ r,
        ..Traffic::default()
    };
    let control = |k: u64| match k % 3 {
        0 => {
            let mut buf = [0u8; 8];
            let (st, _) = nic.oid_request(NdisRequestQueryInformation, 0x0001_0107, &mut buf);
            assert_eq!(st, NDIS_STATUS_SUCCESS);
        }
        1 => ndis_sim::kernel::at_irql(DISPATCH_LEVEL, || {
            nic.indicate_status(NDIS_STATUS_LINK_STATE)
        }),
        _ => {
            sim.advance_clock(50);
        }
    };
    let run = churn.on_threads(traffic, Some(control), |cycle, rng, paused| {
        paused.unwrap_or_else(|e| panic!("cycle {cycle} (seed {seed:#x}): {e:?}"));
        pended += pause_pended(&nic, cycle) as u64;
        nothing_held(&nic, &format!("cycle {cycle}"));
        reattaches += reconfigure(&nic, rng.is_multiple_of(8), rng >> 8) as u64;
        true
    });
    nic.drain();
    nic.pause().unwrap();
    let c = nic.counters();
    eprintln!(
        "threaded race churn: {cycles} cycles (seed {seed:#x}): {pended} pauses pended, {reattaches} re-attaches, {} OID/status/clock events; {} NBLs sent, {} indicated",
        run.control_events,
        c.proto_sent_nbls,
        c.mp_indicated_nbls
    );
    assert!(reattaches > 0);
    assert_eq!(c.proto_completed_nbls, c.proto_sent_nbls);
    assert_eq!(c.mp_returned_nbls, c.mp_indicated_nbls);
    nic.detach();
    sim.unload(drv);
    sim.finish();
}
