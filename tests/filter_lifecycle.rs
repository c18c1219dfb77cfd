//! Registration and lifecycle edges: the NDIS version the filter registers with on systems from 6.30
//! to 6.89 (REVISION_3 characteristics from 6.80), refusal below 6.30 with the pool torn down again,
//! OIDs while Paused, and the per-NBL context limit on NB count.
mod filter_common;
use filter_common::*;
use ndis_sim::{NblShape, Sim, SimConfig};
use ndis_sys::*;

#[test]
fn registers_on_every_supported_ndis_version_and_runs() {
    for version in [
        NDIS_RUNTIME_VERSION_630,
        NDIS_RUNTIME_VERSION_650,
        NDIS_RUNTIME_VERSION_670,
        NDIS_RUNTIME_VERSION_680,
        NDIS_RUNTIME_VERSION_686,
        NDIS_RUNTIME_VERSION_689,
        0x0006_0063, // a future 6.99: the highest known version (6.89) is used
    ] {
        let sim = Sim::start(SimConfig {
            ndis_version: version,
            ..SimConfig::default()
        });
        let drv = sim.load_driver(mdlpool::DriverEntry);
        let nic = running_adapter(&sim, &[]);
        nic.send(&NblShape::default());
        nic.indicate(&NblShape::default(), 0);
        nic.drain();
        let c = nic.counters();
        assert_eq!(c.wire_digest, c.proto_sent_digest, "{version:#x}");
        nic.pause().unwrap();
        nic.detach();
        sim.unload(drv);
        // The simulator rejects a version above the system's or 6.80+ without REVISION_3 (finding +
        // BAD_VERSION), so a clean finish means the right pair was chosen.
        sim.finish();
    }
}

#[test]
fn refuses_systems_older_than_ndis_6_30_and_leaves_nothing_behind() {
    let sim = Sim::start(SimConfig {
        ndis_version: 0x0006_0014, // 6.20
        ..SimConfig::default()
    });
    let st = sim.try_load_driver(mdlpool::DriverEntry);
    assert_eq!(st.err(), Some(NDIS_STATUS_BAD_VERSION));
    // The pool installed before registration was destroyed again (the simulator checks for leaked
    // pool blocks after a failed DriverEntry).
    assert!(mdlpool::mdl_handlers::snapshot().is_none());
    sim.finish();
}

#[test]
fn oids_are_forwarded_while_paused() {
    let (sim, drv) = start(2);
    let nic = running_adapter(&sim, &[]);
    nic.pause().unwrap();
    let mut buf = [0u8; 4];
    let (st, _) = nic.oid_request(NdisRequestQueryInformation, 0x0001_0106, &mut buf);
    assert_eq!(st, NDIS_STATUS_SUCCESS);
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

#[test]
fn an_nbl_with_more_nbs_than_the_context_can_describe_fails_cleanly() {
    let max = mdlpool::filter::context::MAX_NBS;
    let (sim, drv) = start(2);
    let nic = running_adapter(&sim, &[]);
    nic.send(&NblShape {
        nbs_per_nbl: max,
        frame_len: 20,
        ..NblShape::default()
    });
    assert_eq!(
        pool_in_flight(),
        max as u64,
        "one block per NB at the limit"
    );
    nic.drain();
    nic.send(&NblShape {
        nbs_per_nbl: max + 1,
        frame_len: 20,
        ..NblShape::default()
    });
    let c = nic.counters();
    assert_eq!(c.proto_completed_success, 1);
    assert_eq!(c.proto_completed_other, 1, "completed with RESOURCES");
    assert_eq!(pool_in_flight(), 0);
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}
