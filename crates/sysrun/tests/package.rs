//! The shipped amd64 `mdlpool.sys` itself (target/package/amd64, from `cargo xtask package --target
//! amd64`), loaded by sysrun into ndis-sim: DriverEntry, attach, traffic, pause, detach and unload
//! run inside the loaded image, with zero verifier findings.

use ndis_sim::{
    AdapterConfig, ConfigValue, FaultRule, NblShape, Sim, SimConfig, SimGuard, Traffic,
};
use ndis_sys::*;
use sysrun::SysDriver;

fn package() -> std::path::PathBuf {
    sysrun::testing::package_sys().unwrap_or_else(|e| panic!("{e}"))
}

fn load(sim: &SimGuard) -> SysDriver {
    let path = package();
    let drv = SysDriver::load(sim, &path).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("loaded {} at {:#x}", path.display(), drv.image().base());
    drv
}

/// The log line proving the code ran inside the loaded image: DbgPrintEx from the image itself.
fn assert_image_logged(sim: &SimGuard) {
    let log = sim.log();
    assert!(log.iter().any(|l| l == "[io] DriverEntry"), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.contains("mdlpool: registered as NDIS 6.")),
        "the image's DriverEntry logged its registration: {log:#?}"
    );
}

#[test]
fn lifecycle_inside_the_loaded_image_with_zero_findings() {
    let sim = Sim::start(SimConfig {
        cpus: 2,
        ..SimConfig::default()
    });
    let mut drv = load(&sim);
    assert_image_logged(&sim);
    let nic = sim.add_adapter(AdapterConfig::default());
    for round in 0..3 {
        nic.attach()
            .unwrap_or_else(|e| panic!("attach (round {round}): {e:?}"));
        nic.restart()
            .unwrap_or_else(|e| panic!("restart (round {round}): {e:?}"));
        nic.pause()
            .unwrap_or_else(|e| panic!("pause (round {round}): {e:?}"));
        nic.restart()
            .unwrap_or_else(|e| panic!("restart after pause (round {round}): {e:?}"));
        nic.pause()
            .unwrap_or_else(|e| panic!("second pause (round {round}): {e:?}"));
        nic.detach();
    }
    drv.unload(&sim);
    let log = sim.log();
    assert!(log.iter().any(|l| l == "[io] DriverUnload"), "{log:#?}");
    let report = sim.finish();
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

fn traffic_run(mode: &str) {
    let sim = Sim::start(SimConfig {
        cpus: 2,
        ..SimConfig::default()
    });
    let mut drv = load(&sim);
    let nic = sim.add_adapter(AdapterConfig::default());
    nic.set_config("Mode", ConfigValue::Str(mode.into()));
    nic.attach().expect("attach");
    nic.restart().expect("restart");
    let (r0, w0) = sysrun::trap::cr8_counts();
    let t = Traffic {
        steps_per_cpu: 400,
        send: NblShape {
            nbls: 2,
            nbs_per_nbl: 2,
            mdl_lengths: vec![14, 100],
            ..NblShape::default()
        },
        receive: NblShape {
            nbls: 2,
            ..NblShape::default()
        },
        resources_one_in: 3,
        ..Traffic::default()
    };
    sim.run_traffic(&nic, &t);
    nic.drain();
    let c = nic.counters();
    eprintln!("{mode}: {c:?}");
    assert!(
        c.proto_sent_nbls > 0 && c.mp_indicated_nbls > 0,
        "traffic ran both ways: {c:?}"
    );
    assert_eq!(
        c.proto_completed_nbls, c.proto_sent_nbls,
        "every send completed"
    );
    assert_eq!(
        c.mp_returned_nbls, c.mp_indicated_nbls,
        "every receive came back"
    );
    if mode == "exercise" {
        // The wire sees the same frames the protocol sent, byte for byte (order-independent digest).
        assert_eq!(
            c.wire_digest, c.proto_sent_digest,
            "wire frames differ from what was sent"
        );
        assert_eq!(
            c.proto_received_digest, c.mp_indicated_digest,
            "received frames differ"
        );
    }
    let (r1, w1) = sysrun::trap::cr8_counts();
    eprintln!("{mode}: CR8 reads {} writes {} emulated", r1 - r0, w1 - w0);
    let live = sysrun::stats::read(drv.image()).expect("stats root");
    eprintln!(
        "{mode}: live totals {:?} state {}",
        live.totals(),
        live.state
    );
    nic.pause().expect("pause");
    nic.detach();
    drv.unload(&sim);
    let fin = sysrun::stats::read(drv.image()).expect("stats root after unload");
    eprintln!(
        "{mode}: final totals {:?} state {}",
        fin.totals(),
        fin.state
    );
    let report = sim.finish();
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

#[test]
fn exercise_traffic_both_ways_on_two_cpus() {
    traffic_run("exercise");
}

#[test]
fn vlan_traffic_both_ways_on_two_cpus() {
    traffic_run("vlan");
}

#[test]
fn injected_allocation_failures_are_survived() {
    let sim = Sim::start(SimConfig {
        cpus: 2,
        ..SimConfig::default()
    });
    let mut drv = load(&sim);
    let nic = sim.add_adapter(AdapterConfig::default());
    nic.attach().expect("attach");
    nic.restart().expect("restart");
    // Every 3rd pool allocation fails from now on: the pool's refills and NDIS's own allocations.
    sim.inject(ndis_sim::AllocSite::Pool, FaultRule::Every(3));
    sim.inject(ndis_sim::AllocSite::DefaultRetreatMdl, FaultRule::Every(2));
    let t = Traffic {
        steps_per_cpu: 300,
        ..Traffic::default()
    };
    sim.run_traffic(&nic, &t);
    sim.clear_injection(ndis_sim::AllocSite::Pool);
    sim.clear_injection(ndis_sim::AllocSite::DefaultRetreatMdl);
    nic.drain();
    let c = nic.counters();
    assert_eq!(c.proto_completed_nbls, c.proto_sent_nbls);
    nic.pause().expect("pause");
    nic.detach();
    drv.unload(&sim);
    let report = sim.finish();
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    let _ = NDIS_STATUS_RESOURCES;
}

#[test]
fn pause_detach_reattach_churn_under_traffic() {
    let sim = Sim::start(SimConfig {
        cpus: 2,
        ..SimConfig::default()
    });
    let mut drv = load(&sim);
    let nic = sim.add_adapter(AdapterConfig::default());
    let t = Traffic {
        steps_per_cpu: 100,
        ..Traffic::default()
    };
    for _ in 0..4 {
        nic.attach().expect("attach");
        nic.restart().expect("restart");
        sim.run_traffic(&nic, &t);
        nic.pause().expect("pause");
        nic.restart().expect("restart");
        sim.run_traffic(&nic, &t);
        nic.drain();
        nic.pause().expect("pause");
        nic.detach();
    }
    drv.unload(&sim);
    let report = sim.finish();
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}
