//! The shipped amd64 `mdlpool.sys` itself (target/package/amd64, from `cargo xtask package --target
//! amd64`), loaded by sysrun into ndis-sim: DriverEntry, attach, traffic, pause, detach and unload
//! run inside the loaded image, with zero verifier findings.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use ndis_sim::{
    AdapterConfig, ConfigValue, FaultRule, NblShape, Sim, SimConfig, SimGuard, Traffic,
};
use ndis_sys::*;
use sysrun::stats::FILTER_FIELDS;
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
    // The image raised the restart attributes' ContextBackFillSize by its NBL context (96 bytes).
    assert_eq!(
        nic.restart_backfill(),
        (0, 96),
        "restart attributes left by the image"
    );
    let (r0, w0) = sysrun::trap::cr8_counts();
    let t = Traffic {
        steps_per_cpu: 400,
        send: NblShape {
            nbls: 2,
            nbs_per_nbl: 2,
            mdl_lengths: vec![14, 100],
            // vlan: the protocol asks for priority 3, VLAN 42 through the NBL's 802.1Q info.
            ieee8021q: if mode == "vlan" {
                NDIS_NET_BUFFER_LIST_8021Q_INFO::new(3, 0, 42).Value
            } else {
                0
            },
            // vlan: the protocol's buffers are locked user pages not mapped into system space; the
            // image must map them with MmGetSystemAddressForMdlSafe before writing the tag.
            locked_unmapped: mode == "vlan",
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
    if mode == "vlan" {
        // Software 802.1Q on send: each wire frame carries the tag the NBL asked for, 4 bytes longer.
        let (mapped, released) = ndis_sim::mapping::mapping_counts();
        assert!(mapped > 0, "the image mapped the locked user buffers");
        assert_eq!(mapped, released, "each mapping released with its MDL");
        let sent_len = NblShape::default().frame_len;
        let wire = nic.wire_frames();
        assert!(!wire.is_empty());
        for f in &wire {
            assert_eq!(f.bytes.len(), sent_len + 4, "tagged frame length");
            assert_eq!(
                &f.bytes[12..16],
                &[0x81, 0x00, 0x60, 42],
                "TPID 0x8100, PCP 3, VID 42"
            );
        }
    }
    let (r1, w1) = sysrun::trap::cr8_counts();
    eprintln!("{mode}: CR8 reads {} writes {} emulated", r1 - r0, w1 - w0);
    // The exported stats root, read out of the loaded image the way the debugger reads it.
    let live = sysrun::stats::read(drv.image()).unwrap_or_else(|e| panic!("{e}"));
    let t = live.totals();
    eprintln!(
        "{mode}: stats root state {} totals {t:?} modules {:?}",
        live.state, live.modules
    );
    assert_eq!(
        live.state, 2,
        "stats root is 'running' while the filter runs"
    );
    assert_eq!(
        t.in_flight, 0,
        "every block came back once every NBL did: {t:?}"
    );
    assert_eq!(
        live.modules.len(),
        1,
        "one attached module listed: {:?}",
        live.modules
    );
    let m = live.modules[0].1;
    let field = |name: &str| {
        m[FILTER_FIELDS
            .iter()
            .position(|f| *f == name)
            .expect("a FilterStats field")]
    };
    assert_eq!(field("send_nbls_transformed"), c.proto_sent_nbls);
    assert_eq!(field("send_nbs_transformed"), c.proto_sent_nbs);
    if mode == "exercise" {
        // exercise retreats every NB of both paths past its unused space: one NetAllocateMdl each,
        // and every one restored by advancing.
        assert_eq!(field("recv_nbls_transformed"), c.mp_indicated_nbls);
        assert_eq!(field("recv_nbs_transformed"), c.mp_indicated_nbs);
        let both = c.proto_sent_nbs + c.mp_indicated_nbs;
        assert_eq!(
            t.allocates - t.failures,
            both,
            "pool allocations = NBs sent + received: {t:?} {c:?}"
        );
        assert_eq!(field("restores_advanced"), both);
    } else {
        // vlan: every sent NB (DataOffset 0) gets a 4-byte tag in front: one allocation each;
        // receives carry no tag to re-insert and pass through.
        assert_eq!(
            t.allocates - t.failures,
            c.proto_sent_nbs,
            "pool allocations = NBs sent: {t:?} {c:?}"
        );
        assert_eq!(field("bytes_written"), 4 * c.proto_sent_nbs);
        assert_eq!(field("passthrough_nbls"), c.mp_indicated_nbls);
    }
    nic.pause().expect("pause");
    nic.detach();
    drv.unload(&sim);
    let fin = sysrun::stats::read(drv.image()).unwrap_or_else(|e| panic!("{e}"));
    let ft = fin.totals();
    eprintln!("{mode}: after unload state {} totals {ft:?}", fin.state);
    assert_eq!(fin.state, 3, "stats root is 'unloaded' after DriverUnload");
    assert!(
        fin.counters.is_empty(),
        "no pointer into freed per-CPU counters after unload"
    );
    assert_eq!(
        (ft.allocates, ft.frees, ft.in_flight),
        (t.allocates, t.frees, 0),
        "final totals kept at unload"
    );
    assert!(fin.modules.is_empty(), "no module listed after detach");
    assert_eq!(
        fin.detached_totals, m,
        "the detached module's counters are kept in the totals"
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
    // Every 3rd pool allocation fails from the first packet on, before the pool's magazines are warm,
    // so NetAllocateMdl itself must return NULL; NDIS's default retreat allocator fails too.
    sim.inject(ndis_sim::AllocSite::Pool, FaultRule::Every(3));
    sim.inject(ndis_sim::AllocSite::DefaultRetreatMdl, FaultRule::Every(2));
    let t = Traffic {
        steps_per_cpu: 300,
        ..Traffic::default()
    };
    sim.run_traffic(&nic, &t);
    let (calls, injected) = sim.alloc_stats(ndis_sim::AllocSite::Pool);
    sim.clear_injection(ndis_sim::AllocSite::Pool);
    sim.clear_injection(ndis_sim::AllocSite::DefaultRetreatMdl);
    nic.drain();
    let c = nic.counters();
    eprintln!("pool allocations {calls}, injected failures {injected}; {c:?}");
    assert!(
        injected > 0,
        "the pool asked for memory and some requests failed"
    );
    assert_eq!(
        c.proto_completed_nbls, c.proto_sent_nbls,
        "every send completed, failed or not"
    );
    assert_eq!(
        c.mp_returned_nbls, c.mp_indicated_nbls,
        "every receive came back, dropped or not"
    );
    let t = sysrun::stats::read(drv.image())
        .unwrap_or_else(|e| panic!("{e}"))
        .totals();
    eprintln!("stats root totals {t:?}");
    assert!(
        t.failures > 0,
        "NetAllocateMdl returned NULL when the pool could not grow: {t:?}"
    );
    assert!(
        c.proto_completed_other > 0,
        "a failed retreat completes its send with NDIS_STATUS_RESOURCES: {c:?}"
    );
    assert_eq!(t.in_flight, 0, "{t:?}");
    nic.pause().expect("pause");
    nic.detach();
    drv.unload(&sim);
    let report = sim.finish();
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
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

/// vlan mode inside the shipped image on NICs with task offloads (a subset of
/// tests/filter_vlan_offload.rs): LSOv2 / checksum / USO over IPv4 and IPv6 across the insert
/// paths, on a NIC that parses in-band tags (tagged frames, offsets moved: ndis-sim's miniport
/// judges them), one that inserts from the OOB info (tag handed over), and full-size plain frames
/// on a NIC without 802.1Q support (left untagged); then receive-inline re-insertion with the
/// miniport's headroom checked byte for byte at return. Zero findings.
#[test]
fn vlan_offloads_and_frame_size_inside_the_loaded_image() {
    use ndis_sim::wire::{NicOffload, OffloadKind, OffloadShape};
    let p_and_q = NDIS_ENCAPSULATION_IEEE_802_3 | NDIS_ENCAPSULATION_IEEE_802_3_P_AND_Q;
    let in_oob = NDIS_ENCAPSULATION_IEEE_802_3 | NDIS_ENCAPSULATION_IEEE_802_3_P_AND_Q_IN_OOB;
    let cases = [
        (OffloadKind::LsoV2, false, false, 32u32, p_and_q),
        (OffloadKind::LsoV2, true, false, 2, p_and_q),
        (OffloadKind::Checksum, true, true, 0, p_and_q),
        (OffloadKind::Uso, false, true, 4, p_and_q),
        (OffloadKind::LsoV2, false, false, 32, in_oob),
    ];
    for (kind, ipv6, udp, off, encapsulation) in cases {
        let sim = Sim::start(SimConfig {
            cpus: 1,
            ..SimConfig::default()
        });
        let mut drv = load(&sim);
        let nic = sim.add_adapter(AdapterConfig {
            nic_offload: NicOffload {
                encapsulation,
                ..NicOffload::default()
            },
            ..AdapterConfig::default()
        });
        nic.set_config("Mode", ConfigValue::Str("vlan".into()));
        nic.set_config("VlanId", ConfigValue::Int(42));
        nic.set_config("VlanReceiveInline", ConfigValue::Int(1));
        nic.attach().expect("attach");
        nic.restart().expect("restart");
        let mut o = OffloadShape {
            kind,
            ipv6,
            udp,
            options: true,
            mss: 0,
            pretagged: None,
        };
        o.mss = o.mss_for(1500);
        let segments = if kind == OffloadKind::Checksum { 1 } else { 20 };
        nic.send(&NblShape {
            nbls: 2,
            data_offset: off,
            frame_len: o.header_len() + segments * o.mss as usize,
            offload: Some(o),
            ..NblShape::default()
        });
        for f in nic.wire_frames() {
            let in_band = encapsulation == p_and_q;
            assert_eq!(f.bytes[12..14] == [0x81, 0x00], in_band, "{kind:?} {off}");
            assert_eq!(f.ieee8021q != 0, !in_band, "{kind:?} {off}");
            assert!(f.mac_contiguous);
        }
        // Full-size plain frames on a NIC that cannot take 1518 bytes: left untagged.
        if encapsulation == in_oob {
            nic.send(&NblShape {
                frame_len: 1514,
                data_offset: 16,
                ..NblShape::default()
            });
        }
        // Receive-inline: the stripped tag goes back into frames whose headroom the miniport owns.
        nic.indicate(
            &NblShape {
                nbls: 2,
                data_offset: 32,
                ieee8021q: NDIS_NET_BUFFER_LIST_8021Q_INFO::new(1, 0, 7).Value,
                ..NblShape::default()
            },
            0,
        );
        nic.drain();
        let c = nic.counters();
        assert_eq!(c.proto_completed_nbls, c.proto_sent_nbls);
        assert_eq!(c.mp_returned_nbls, c.mp_indicated_nbls);
        nic.pause().expect("pause");
        nic.detach();
        drv.unload(&sim);
        let report = sim.finish();
        assert!(report.findings.is_empty(), "{:#?}", report.findings);
    }
}
