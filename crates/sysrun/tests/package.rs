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
    for l in &log {
        eprintln!("  log: {l}");
    }
    // Registered from the loaded image (win64 convention), and every lifecycle step happened.
    for want in [
        "[io] DriverEntry",
        "filter driver registered (Win64)",
        "attached",
        "running",
        "paused",
        "detached",
        "[io] DriverUnload",
        "filter driver deregistered",
    ] {
        assert!(
            log.iter().any(|l| l.contains(want)),
            "log lacks {want:?}: {log:#?}"
        );
    }
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
    // The exported stats root, read out of the loaded image the way the debugger reads it.
    let has_root = drv.image().export(sysrun::stats::ROOT_SYMBOL).is_some();
    let live = if has_root {
        let live = sysrun::stats::read(drv.image()).unwrap_or_else(|e| panic!("{e}"));
        let t = live.totals();
        eprintln!("{mode}: stats root state {} totals {t:?}", live.state);
        assert_eq!(
            live.state, 2,
            "stats root is 'running' while the filter runs"
        );
        assert_eq!(
            t.in_flight, 0,
            "every block came back once every NBL did: {t:?}"
        );
        if mode == "exercise" {
            // exercise retreats every NB of both paths past its unused space: one NetAllocateMdl each.
            assert_eq!(
                t.allocates - t.failures,
                c.proto_sent_nbs + c.mp_indicated_nbs,
                "pool allocations = NBs sent + NBs received: {t:?} {c:?}"
            );
        }
        Some(t)
    } else {
        eprintln!(
            "{mode}: this image exports no {} (a build without the stats root)",
            sysrun::stats::ROOT_SYMBOL
        );
        None
    };
    nic.pause().expect("pause");
    nic.detach();
    drv.unload(&sim);
    if let Some(live) = live {
        let fin = sysrun::stats::read(drv.image()).unwrap_or_else(|e| panic!("{e}"));
        let t = fin.totals();
        eprintln!("{mode}: after unload state {} totals {t:?}", fin.state);
        assert_eq!(fin.state, 3, "stats root is 'unloaded' after DriverUnload");
        assert!(
            fin.counters.is_empty(),
            "no pointer into freed per-CPU counters after unload"
        );
        assert_eq!(
            (t.allocates, t.frees, t.in_flight),
            (live.allocates, live.frees, 0),
            "final totals kept at unload"
        );
    }
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
