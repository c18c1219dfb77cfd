//! Sends whose MDLs describe locked pages not mapped into system space (ndis-sim's
//! `NblShape::locked_unmapped`: a raw-socket or packet-capture sender's user buffers). Their
//! `MappedSystemVa` must not be used until MmGetSystemAddressForMdlSafe maps them; ndis-sim reports a
//! write through it (UNMAPPED_MDL_ACCESS) and misuse of MmMapLockedPagesSpecifyCache
//! (MDL_MAPPING_MISUSE). The filter must map them the documented way and transform them like any other
//! send — not complete them with NDIS_STATUS_RESOURCES — and when the mapping fails, complete that NBL
//! with NDIS_STATUS_RESOURCES having changed nothing.
mod filter_common;
use filter_common::*;
use ndis_sim::{AllocSite, FaultRule, NblShape};
use ndis_sys::DISPATCH_LEVEL;

fn shapes() -> Vec<NblShape> {
    let base = NblShape {
        nbls: 2,
        nbs_per_nbl: 2,
        locked_unmapped: true,
        ..NblShape::default()
    };
    vec![
        // Room for the tag in place; the addresses straddle two MDLs.
        NblShape {
            mdl_lengths: vec![10, 80],
            data_offset: 4,
            ..base.clone()
        },
        // No room: the tag comes from a pool block in front of the user buffer.
        NblShape {
            data_offset: 0,
            ..base.clone()
        },
        // Many small user MDLs.
        NblShape {
            mdl_lengths: vec![3, 5, 7, 11, 13, 200],
            data_offset: 3,
            ..base
        },
    ]
}

#[test]
fn vlan_tags_sends_from_locked_unmapped_user_buffers() {
    let (sim, drv) = start(2);
    let nic = running_adapter(
        &sim,
        &[mode("vlan"), int("VlanId", 42), int("VlanPriority", 5)],
    );
    let before = filter_stats();
    let mut nbs = 0u64;
    for shape in shapes() {
        nic.send(&shape);
        ndis_sim::kernel::at_irql(DISPATCH_LEVEL, || nic.send(&shape));
        nbs += 2 * (shape.nbls * shape.nbs_per_nbl) as u64;
    }
    nic.drain();
    let c = nic.counters();
    assert_eq!(
        c.proto_completed_success, c.proto_sent_nbls,
        "nothing completed with RESOURCES"
    );
    assert_eq!(c.wire_nbs, nbs);
    for f in nic.wire_frames() {
        assert_eq!(&f.bytes[12..16], &[0x81, 0x00, 0xA0, 42], "tag inserted");
    }
    let s = filter_stats();
    assert_eq!(s.send_nbs_transformed - before.send_nbs_transformed, nbs);
    assert_eq!(s.send_nbls_failed - before.send_nbls_failed, 0);
    let (mapped, released) = ndis_sim::mapping::mapping_counts();
    assert!(mapped > 0, "the filter mapped the user buffers");
    assert_eq!(mapped, released, "every mapping released with its MDL");
    assert_eq!(pool_in_flight(), 0);
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

#[test]
fn exercise_passes_locked_unmapped_sends_unchanged() {
    let (sim, drv) = start(2);
    let nic = running_adapter(&sim, &[mode("exercise")]);
    for shape in shapes() {
        nic.send(&shape);
    }
    nic.drain();
    let c = nic.counters();
    assert_eq!(c.proto_completed_success, c.proto_sent_nbls);
    assert_eq!(c.wire_digest, c.proto_sent_digest);
    assert_eq!(pool_in_flight(), 0);
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

#[test]
fn a_failed_mapping_completes_that_nbl_with_resources_unchanged() {
    let (sim, drv) = start(1);
    let nic = running_adapter(&sim, &[mode("vlan"), int("VlanId", 42)]);
    // Each NBL maps the user MDL holding its EtherType (the frame check), then, after the in-place
    // retreat, the one holding its addresses: the 1st mapping fails before any change, the 3rd after
    // the retreat (the NB must be rolled back).
    sim.inject(AllocSite::MapLockedPages, FaultRule::Nth(0));
    sim.inject(AllocSite::MapLockedPages, FaultRule::Nth(2));
    let before = filter_stats();
    let shape = NblShape {
        nbls: 8,
        mdl_lengths: vec![10, 80],
        data_offset: 4,
        locked_unmapped: true,
        ..NblShape::default()
    };
    nic.send(&shape);
    nic.drain();
    let c = nic.counters();
    assert_eq!(
        c.proto_completed_other, 2,
        "the two NBLs whose mapping failed"
    );
    assert_eq!(
        c.proto_completed_success, 6,
        "the others were tagged and sent"
    );
    let s = filter_stats();
    assert_eq!(
        s.send_nbls_failed - before.send_nbls_failed,
        c.proto_completed_other
    );
    assert_eq!(pool_in_flight(), 0);
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    // Each failed NBL went back exactly as it came (NB_NOT_RESTORED / DATA_CORRUPTED otherwise).
    sim.finish();
}
