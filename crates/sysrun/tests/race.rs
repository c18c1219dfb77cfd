//! The shipped amd64 `mdlpool.sys` under ndis-sim's concurrent lifecycle (`Lifecycle::Concurrent`):
//! pauses, restarts with configuration changes, detaches/re-attaches, OIDs, status indications and
//! trim-timer ticks racing traffic on every virtual CPU — on threads, and under the seeded
//! deterministic interleaving (FilterPause landing inside the image's own hand-off calls on another
//! CPU). Zero findings, nothing in flight after each pause. A shorter run than the source-level
//! churn (tests/filter_race.rs): `SYSRUN_RACE_CYCLES` (default 300).
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use ndis_sim::churn::Churn;
use ndis_sim::{AdapterConfig, ConfigValue, Lifecycle, NblShape, Sim, SimConfig, Traffic};
use ndis_sys::*;
use sysrun::SysDriver;

fn cycles() -> u64 {
    std::env::var("SYSRUN_RACE_CYCLES")
        .map(|v| v.parse().expect("SYSRUN_RACE_CYCLES"))
        .unwrap_or(300)
}

fn configure(nic: &ndis_sim::Adapter, which: u64) {
    let m = ["exercise", "vlan", "passthrough"][(which % 3) as usize];
    nic.set_config("Mode", ConfigValue::Str(m.into()));
    nic.set_config("VlanReceiveInline", ConfigValue::Int((which % 2) as u32));
    nic.set_config("ExerciseBytes", ConfigValue::Int(1 + (which % 40) as u32));
    nic.set_config(
        "PoolTrimIntervalMs",
        ConfigValue::Int(100 + (which % 4) as u32 * 100),
    );
}

/// While paused: one cycle in eight detaches and re-attaches with the next configuration, the others
/// only reconfigure (read at the restart).
fn reconfigure(nic: &ndis_sim::Adapter, rng: u64) {
    if rng.is_multiple_of(8) {
        nic.detach();
        configure(nic, rng >> 8);
        nic.attach().unwrap();
    } else {
        configure(nic, rng >> 8);
    }
}

fn in_flight(drv: &SysDriver) -> i64 {
    sysrun::stats::read(drv.image())
        .unwrap_or_else(|e| panic!("{e}"))
        .totals()
        .in_flight
}

fn traffic(seed: u64) -> Traffic {
    Traffic {
        steps_per_cpu: 8,
        send: NblShape {
            nbls: 2,
            mdl_lengths: vec![14, 60],
            ..NblShape::default()
        },
        receive: NblShape {
            nbls: 2,
            ..NblShape::default()
        },
        resources_one_in: 3,
        seed,
        ..Traffic::default()
    }
}

#[test]
fn shipped_image_through_concurrent_churn_on_threads() {
    let sim = Sim::start(SimConfig {
        cpus: 2,
        lifecycle: Lifecycle::Concurrent,
        ..SimConfig::default()
    });
    let path = sysrun::testing::package_sys().unwrap_or_else(|e| panic!("{e}"));
    let mut drv = SysDriver::load(&sim, &path).unwrap_or_else(|e| panic!("{e}"));
    let nic = sim.add_adapter(AdapterConfig::default());
    configure(&nic, 0);
    nic.attach().unwrap();
    nic.restart().unwrap();
    let cycles = cycles();
    let churn = Churn::new(&sim, &nic, cycles, 0x5EED);
    let control = |k: u64| {
        if k.is_multiple_of(2) {
            let mut buf = [0u8; 8];
            let (st, _) = nic.oid_request(NdisRequestQueryInformation, 0x0001_0107, &mut buf);
            assert_eq!(st, NDIS_STATUS_SUCCESS);
        } else {
            nic.indicate_status(NDIS_STATUS_LINK_STATE);
            sim.advance_clock(50);
        }
    };
    churn.on_threads(traffic, Some(control), |cycle, rng, paused| {
        paused.unwrap_or_else(|e| panic!("cycle {cycle}: {e:?}"));
        assert_eq!(
            in_flight(&drv),
            0,
            "cycle {cycle}: pool blocks in flight at pause"
        );
        reconfigure(&nic, rng);
        true
    });
    nic.drain();
    nic.pause().unwrap();
    nic.detach();
    drv.unload(&sim);
    let c = nic.counters();
    eprintln!(
        "shipped image, concurrent threads: {cycles} cycles; {} NBLs sent, {} indicated, {} OIDs, {} status indications",
        c.proto_sent_nbls,
        c.mp_indicated_nbls,
        c.oids_completed,
        c.statuses.len()
    );
    assert_eq!(c.proto_completed_nbls, c.proto_sent_nbls);
    assert_eq!(c.mp_returned_nbls, c.mp_indicated_nbls);
    let report = sim.finish();
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

#[test]
fn shipped_image_through_the_seeded_interleaving() {
    let seed = 0x4ACE;
    let sim = Sim::start(SimConfig {
        cpus: 2,
        deterministic: true,
        seed,
        lifecycle: Lifecycle::Concurrent,
        interleave_one_in: 3,
        ..SimConfig::default()
    });
    let path = sysrun::testing::package_sys().unwrap_or_else(|e| panic!("{e}"));
    let mut drv = SysDriver::load(&sim, &path).unwrap_or_else(|e| panic!("{e}"));
    let nic = sim.add_adapter(AdapterConfig::default());
    configure(&nic, 0);
    nic.attach().unwrap();
    nic.restart().unwrap();
    let churn = Churn::new(&sim, &nic, cycles(), seed);
    churn.seeded(
        traffic,
        |_, _| {},
        |cycle, rng, paused| {
            paused.unwrap_or_else(|e| panic!("cycle {cycle}: {e:?}"));
            assert_eq!(in_flight(&drv), 0, "cycle {cycle}");
            reconfigure(&nic, rng);
            true
        },
    );
    nic.drain();
    nic.pause().unwrap();
    nic.detach();
    drv.unload(&sim);
    assert!(sim
        .log()
        .iter()
        .any(|l| l.contains("[sched] FilterPause") && l.contains("inside")));
    let report = sim.finish();
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}
