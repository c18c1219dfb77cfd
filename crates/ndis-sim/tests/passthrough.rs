//! The plain pass-through LWF (tests/common/lwf.rs, written only against ndis-sys) runs the full
//! lifecycle with traffic both ways on several virtual CPUs and must produce zero findings.

#[path = "common/lwf.rs"]
mod lwf;

use ndis_sim::*;
use ndis_sys::*;

fn full_lifecycle(cfg: SimConfig, steps: usize) {
    let sim = Sim::start(cfg);
    lwf::set_bad(lwf::Bad::None);
    let drv = sim.load_driver(lwf::DriverEntry);
    let nic = sim.add_adapter(AdapterConfig::default());
    nic.set_config("Mode", ConfigValue::Str("2".into()));
    nic.attach().unwrap();
    assert_eq!(lwf::MODE_SEEN.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(nic.state(), ModuleState::Paused);
    // A send while paused is completed with NDIS_STATUS_PAUSED.
    nic.send(&NblShape::default());
    assert_eq!(nic.counters().proto_completed_paused, 1);
    nic.restart().unwrap();
    let traffic = Traffic {
        steps_per_cpu: steps,
        send: NblShape {
            nbls: 3,
            nbs_per_nbl: 2,
            frame_len: 90,
            mdl_lengths: vec![14, 20, 40],
            data_offset: 6,
            ieee8021q: 0x35,
            ..NblShape::default()
        },
        receive: NblShape {
            nbls: 2,
            frame_len: 64,
            mdl_lengths: vec![30, 40],
            data_offset: 2,
            ..NblShape::default()
        },
        ..Traffic::default()
    };
    sim.run_traffic(&nic, &traffic);
    // OID, status and PnP pass through.
    let mut buf = [0u8; 8];
    let (st, bytes) = nic.oid_request(NdisRequestQueryInformation, 0x0001_0106, &mut buf);
    assert_eq!((st, bytes, buf), (NDIS_STATUS_SUCCESS, 8, [0x5A; 8]));
    nic.configure(|c| c.pend_oids = true);
    let (st, _) = nic.oid_request(NdisRequestSetInformation, 0x0001_010E, &mut buf);
    assert_eq!(st, NDIS_STATUS_SUCCESS);
    nic.indicate_status(NDIS_STATUS_LINK_STATE);
    assert_eq!(nic.net_pnp_event(NetEventQueryPower), NDIS_STATUS_SUCCESS);
    // Pause under traffic left in flight, restart, more traffic, then pause/detach/unload.
    nic.pause().unwrap();
    nic.restart().unwrap();
    sim.run_traffic(
        &nic,
        &Traffic {
            steps_per_cpu: steps / 2,
            seed: 7,
            ..traffic.clone()
        },
    );
    nic.drain();
    let c = nic.counters();
    assert!(c.proto_sent_nbls > 0 && c.mp_indicated_nbls > 0, "{c:?}");
    assert_eq!(c.proto_sent_nbls, c.proto_completed_nbls);
    assert_eq!(c.proto_completed_paused, 1);
    // Everything but the one send made while paused (sequence 1, 60 bytes) reached the wire intact.
    let paused = ndis_sim::stack::frame_digest(&ndis_sim::stack::make_frame(1, 60));
    assert_eq!(c.proto_sent_digest, c.wire_digest.wrapping_add(paused));
    assert_eq!(c.mp_indicated_nbls, c.mp_returned_nbls);
    assert_eq!(c.mp_indicated_digest, c.proto_received_digest);
    assert_eq!(c.statuses, vec![NDIS_STATUS_LINK_STATE]);
    assert_eq!(c.pnp_events, vec![NetEventQueryPower]);
    assert_eq!(nic.outstanding(), 0);
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    let report = sim.finish();
    assert!(report.findings.is_empty());
    assert!(report.log.iter().any(|l| l.contains("detached")));
}

#[test]
#[cfg_attr(miri, ignore = "threads: the deterministic tests cover Miri")]
fn passthrough_lwf_full_lifecycle_threads_on_four_cpus() {
    full_lifecycle(
        SimConfig {
            cpus: 4,
            ..SimConfig::default()
        },
        300,
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "long under Miri; miri_smoke_lifecycle covers the same paths"
)]
fn passthrough_lwf_full_lifecycle_deterministic() {
    full_lifecycle(
        SimConfig {
            cpus: 2,
            deterministic: true,
            seed: 42,
            ..SimConfig::default()
        },
        100,
    );
}

#[test]
fn wire_frames_equal_sent_frames_in_order() {
    lwf::set_bad(lwf::Bad::None);
    let sim = Sim::start(SimConfig {
        cpus: 2,
        deterministic: true,
        ..SimConfig::default()
    });
    let _drv = sim.load_driver(lwf::DriverEntry);
    let nic = sim.add_adapter(AdapterConfig::default());
    nic.attach().unwrap();
    nic.restart().unwrap();
    let shape = NblShape {
        nbls: 2,
        nbs_per_nbl: 2,
        frame_len: 100,
        mdl_lengths: vec![1, 13, 86],
        data_offset: 0,
        ieee8021q: 0,
        ..NblShape::default()
    };
    nic.send_with_flags(&shape, NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK);
    ndis_sim::kernel::at_irql(DISPATCH_LEVEL, || nic.send(&shape));
    assert_eq!(
        nic.counters().send_flags_seen,
        NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK | NDIS_SEND_FLAGS_DISPATCH_LEVEL
    );
    assert_eq!(nic.wire_frames().len(), 8);
    assert_eq!(nic.pending_sends(), 4);
    ndis_sim::kernel::at_irql(DISPATCH_LEVEL, || nic.complete_sends(4, 99));
    let seqs: Vec<u64> = nic
        .wire_frames()
        .iter()
        .map(|f| u64::from_le_bytes(f.bytes[14..22].try_into().unwrap()))
        .collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    assert_eq!(
        nic.wire_frames()[0].bytes,
        ndis_sim::stack::make_frame(1, 100)
    );
    ndis_sim::kernel::at_irql(DISPATCH_LEVEL, || {
        nic.indicate(
            &NblShape {
                nbls: 3,
                ..NblShape::default()
            },
            NDIS_RECEIVE_FLAGS_RESOURCES,
        )
    });
    assert_eq!(nic.protocol_frames().len(), 3);
    assert_eq!(nic.counters().mp_returned_nbls, 3);
    sim.finish();
}

/// The Miri subset: every lifecycle step and both data paths once, on two virtual CPUs, one thread.
#[test]
fn miri_smoke_lifecycle() {
    let sim = Sim::start(SimConfig {
        cpus: 2,
        deterministic: true,
        ..SimConfig::default()
    });
    lwf::set_bad(lwf::Bad::None);
    let drv = sim.load_driver(lwf::DriverEntry);
    let nic = sim.add_adapter(AdapterConfig::default());
    nic.attach().unwrap();
    nic.restart().unwrap();
    let shape = NblShape {
        nbls: 2,
        frame_len: 40,
        mdl_lengths: vec![10, 36],
        data_offset: 6,
        ..NblShape::default()
    };
    nic.send(&shape);
    kernel::bind_thread_to_cpu(1);
    kernel::at_irql(DISPATCH_LEVEL, || {
        nic.send(&shape);
        nic.indicate(&shape, 0);
        nic.indicate(&shape, NDIS_RECEIVE_FLAGS_RESOURCES);
        nic.complete_sends(4, 5);
    });
    kernel::bind_thread_to_cpu(0);
    nic.return_receives(2);
    let c = nic.counters();
    assert_eq!(
        (c.proto_completed_success, c.wire_digest),
        (4, c.proto_sent_digest)
    );
    assert_eq!(
        (c.mp_returned_nbls, c.proto_received_digest),
        (4, c.mp_indicated_digest)
    );
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    assert!(sim.finish().findings.is_empty());
}

/// Pause/restart churn from the main thread while runner threads keep traffic going on 3 CPUs.
#[test]
#[cfg_attr(miri, ignore = "threads: the deterministic tests cover Miri")]
fn lifecycle_churn_while_traffic_runs() {
    let sim = Sim::start(SimConfig {
        cpus: 3,
        ..SimConfig::default()
    });
    lwf::set_bad(lwf::Bad::None);
    let drv = sim.load_driver(lwf::DriverEntry);
    let nic = sim.add_adapter(AdapterConfig::default());
    nic.attach().unwrap();
    nic.restart().unwrap();
    let t = Traffic {
        steps_per_cpu: 20,
        seed: 11,
        ..Traffic::default()
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        // Traffic in rounds until the lifecycle loop is done, so every cycle overlaps it.
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                sim.run_traffic(&nic, &t);
            }
        });
        for _ in 0..30 {
            // Let traffic flow while Running before each pause, however the host schedules the
            // threads: wait until the traffic thread has sent and indicated something more.
            let (sent, indicated) = {
                let c = nic.counters();
                (c.proto_sent_nbls, c.mp_indicated_nbls)
            };
            loop {
                let c = nic.counters();
                if c.proto_sent_nbls > sent && c.mp_indicated_nbls > indicated {
                    break;
                }
                std::thread::yield_now();
            }
            nic.pause().unwrap();
            assert_eq!(nic.outstanding(), 0);
            nic.restart().unwrap();
            std::thread::yield_now();
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    nic.drain();
    let c = nic.counters();
    assert_eq!(c.proto_sent_nbls, c.proto_completed_nbls);
    assert_eq!(c.mp_indicated_nbls, c.mp_returned_nbls);
    assert_eq!(c.proto_sent_digest, c.wire_digest);
    assert!(c.proto_sent_nbls > 20 && c.mp_indicated_nbls > 20, "{c:?}");
    let lifecycle = sim.log().iter().filter(|l| l.contains(": paused")).count();
    assert_eq!(lifecycle, 30);
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

/// Frames given from outside (`send_frames` / `indicate_frames`, what a capture replay uses) reach the
/// wire and the protocol byte for byte, in order, laid out over the requested MDL shape, with the last
/// NBL holding the remainder.
#[test]
fn given_frames_arrive_in_order_byte_for_byte() {
    let sim = Sim::start(SimConfig {
        deterministic: true,
        ..SimConfig::default()
    });
    lwf::set_bad(lwf::Bad::None);
    let drv = sim.load_driver(lwf::DriverEntry);
    // Frames up to a few KB: a jumbo miniport (FRAME_TOO_LONG judges against MtuSize + 14).
    let nic = sim.add_adapter(AdapterConfig {
        mtu_size: 9000,
        ..AdapterConfig::default()
    });
    nic.attach().unwrap();
    nic.restart().unwrap();
    let frames: Vec<Vec<u8>> = (0..5usize)
        .map(|k| (0..60 + k * 700).map(|i| (i * 31 + k) as u8).collect())
        .collect();
    let shape = NblShape {
        nbs_per_nbl: 2,
        mdl_lengths: vec![10, 30],
        data_offset: 4,
        ..NblShape::default()
    };
    assert_eq!(nic.send_frames(&shape, &frames, 0), 3);
    assert_eq!(nic.indicate_frames(&shape, &frames, 0), 3);
    nic.drain();
    let wire: Vec<Vec<u8>> = nic.wire_frames().into_iter().map(|f| f.bytes).collect();
    let up: Vec<Vec<u8>> = nic.protocol_frames().into_iter().map(|f| f.bytes).collect();
    assert_eq!(wire, frames);
    assert_eq!(up, frames);
    let c = nic.counters();
    assert_eq!((c.proto_sent_nbs, c.mp_indicated_nbs), (5, 5));
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}
