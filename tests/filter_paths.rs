//! The list-level behaviour of the data path: RESOURCES receives, multi-NB NBLs, chains whose NBLs
//! have different outcomes, completions/returns on other CPUs in any order, the dispatch flags, the
//! Paused state, and the OID / status / PnP pass-through.
mod filter_common;
use filter_common::*;
use mdlpool::pool::FaultConfig;
use ndis_sim::{kernel, stack::make_frame, AllocSite, FaultRule, NblShape};
use ndis_sys::*;

fn seq_of(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[14..22].try_into().unwrap())
}

fn teardown(sim: ndis_sim::SimGuard, nic: ndis_sim::Adapter, drv: ndis_sim::Driver) {
    nic.drain();
    assert_eq!(pool_in_flight(), 0);
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

#[test]
fn resources_receives_are_restored_before_the_callback_returns() {
    let (sim, drv) = start(2);
    let nic = running_adapter(&sim, &[]);
    let shape = NblShape {
        nbls: 5,
        mdl_lengths: vec![8, 100],
        data_offset: 8,
        ..NblShape::default()
    };
    kernel::at_irql(DISPATCH_LEVEL, || {
        nic.indicate(&shape, NDIS_RECEIVE_FLAGS_RESOURCES)
    });
    // Synchronous: everything is back with the miniport, restored, in the original list order (the
    // simulator checks order and restore-exact), and no block is in flight.
    assert_eq!(pool_in_flight(), 0);
    let c = nic.counters();
    assert_eq!(c.mp_returned_nbls, 5);
    assert_eq!(c.proto_received_nbls, 5);
    assert_eq!(c.proto_received_digest, c.mp_indicated_digest);
    teardown(sim, nic, drv);
}

#[test]
fn resources_receives_with_failures_drop_only_the_failed_nbls() {
    let (sim, drv) = start(2);
    // Every 3rd NetAllocateMdl fails: NBLs 3 and 6 of the chain are dropped.
    reinstall_pool_with_fault(FaultConfig {
        fail_every_nth: 3,
        ..FaultConfig::default()
    });
    let nic = running_adapter(&sim, &[]);
    kernel::at_irql(DISPATCH_LEVEL, || {
        nic.indicate(
            &NblShape {
                nbls: 7,
                ..NblShape::default()
            },
            NDIS_RECEIVE_FLAGS_RESOURCES,
        )
    });
    let c = nic.counters();
    assert_eq!(c.mp_returned_nbls, 7, "every NBL is back with the miniport");
    assert_eq!(
        c.proto_received_nbls, 5,
        "the two failed NBLs were not indicated"
    );
    let seqs: Vec<u64> = nic
        .protocol_frames()
        .iter()
        .map(|f| seq_of(&f.bytes))
        .collect();
    let mut sorted = seqs.clone();
    sorted.sort();
    assert_eq!(seqs, sorted, "kept NBLs go up in their original order");
    assert_eq!(pool_in_flight(), 0);
    teardown(sim, nic, drv);
}

#[test]
fn receive_failures_without_resources_are_returned_at_once() {
    let (sim, drv) = start(2);
    reinstall_pool_with_fault(FaultConfig {
        fail_every_nth: 2,
        ..FaultConfig::default()
    });
    let nic = running_adapter(&sim, &[]);
    let before = filter_stats();
    kernel::at_irql(DISPATCH_LEVEL, || {
        nic.indicate(
            &NblShape {
                nbls: 6,
                ..NblShape::default()
            },
            0,
        )
    });
    let c = nic.counters();
    assert_eq!(
        c.mp_returned_nbls, 3,
        "dropped NBLs are returned inside the indication"
    );
    assert_eq!(c.proto_received_nbls, 3);
    assert_eq!(
        filter_stats().recv_nbls_dropped - before.recv_nbls_dropped,
        3
    );
    assert_eq!(pool_in_flight(), 3);
    teardown(sim, nic, drv);
}

#[test]
fn multi_nb_nbls_and_mixed_outcome_chains_on_send() {
    let (sim, drv) = start(2);
    // 4 NBs per NBL, every 7th allocation fails: some NBLs fail after 1-3 of their NBs were
    // transformed (those are rolled back), the others go down in order.
    reinstall_pool_with_fault(FaultConfig {
        fail_every_nth: 7,
        ..FaultConfig::default()
    });
    let nic = running_adapter(&sim, &[]);
    let before = filter_stats();
    nic.send(&NblShape {
        nbls: 8,
        nbs_per_nbl: 4,
        mdl_lengths: vec![20, 30],
        data_offset: 6,
        ..NblShape::default()
    });
    let st = filter_stats();
    let failed = st.send_nbls_failed - before.send_nbls_failed;
    // 32 NBs + retries: allocations 7, 14, 21, 28 fail, each failing a different NBL.
    assert_eq!(failed, 4);
    assert_eq!(st.retreat_failures - before.retreat_failures, 4);
    let c = nic.counters();
    assert_eq!(
        c.proto_completed_other, 4,
        "failed NBLs complete with RESOURCES at once"
    );
    assert_eq!(c.wire_nbls, 4);
    assert_eq!(
        pool_in_flight(),
        16,
        "4 forwarded NBLs x 4 NBs hold one block each"
    );
    let seqs: Vec<u64> = nic.wire_frames().iter().map(|f| seq_of(&f.bytes)).collect();
    let mut sorted = seqs.clone();
    sorted.sort();
    assert_eq!(seqs, sorted, "forwarded in the caller's order");
    for f in nic.wire_frames() {
        assert_eq!(f.bytes, make_frame(seq_of(&f.bytes), 60));
    }
    nic.drain();
    assert_eq!(nic.counters().proto_completed_success, 4);
    teardown(sim, nic, drv);
}

#[test]
fn multi_nb_vlan_nbls() {
    let (sim, drv) = start(2);
    let nic = running_adapter(&sim, &[mode("vlan"), int("VlanId", 9)]);
    nic.send(&NblShape {
        nbls: 3,
        nbs_per_nbl: 5,
        data_offset: 2,
        ..NblShape::default()
    });
    assert_eq!(nic.counters().wire_nbs, 15);
    for f in nic.wire_frames() {
        let orig = make_frame(u64::from_le_bytes(f.bytes[18..26].try_into().unwrap()), 60);
        assert_eq!(f.bytes, tagged(&orig, tci(0, 9)));
    }
    teardown(sim, nic, drv);
}

#[test]
fn completions_and_returns_on_other_cpus_in_any_order() {
    let (sim, drv) = start(4);
    let nic = running_adapter(&sim, &[]);
    kernel::bind_thread_to_cpu(0);
    kernel::at_irql(DISPATCH_LEVEL, || {
        nic.send(&NblShape {
            nbls: 24,
            nbs_per_nbl: 2,
            ..NblShape::default()
        });
        nic.indicate(
            &NblShape {
                nbls: 24,
                ..NblShape::default()
            },
            0,
        );
    });
    assert_eq!(pool_in_flight(), 72);
    for (cpu, seed) in [(1, 11u64), (2, 22), (3, 33), (1, 44)] {
        kernel::bind_thread_to_cpu(cpu);
        kernel::at_irql(DISPATCH_LEVEL, || nic.complete_sends(6, seed));
        nic.return_receives(6);
    }
    kernel::bind_thread_to_cpu(0);
    assert_eq!(pool_in_flight(), 0);
    let c = nic.counters();
    assert_eq!(c.proto_completed_success, 24);
    assert_eq!(c.mp_returned_nbls, 24);
    teardown(sim, nic, drv);
}

#[test]
fn sends_while_paused_complete_with_paused() {
    let (sim, drv) = start(2);
    let nic = running_adapter(&sim, &[]);
    nic.pause().unwrap();
    let before = filter_stats().send_nbls_paused;
    nic.send(&NblShape {
        nbls: 3,
        ..NblShape::default()
    });
    let c = nic.counters();
    assert_eq!(c.proto_completed_paused, 3);
    assert_eq!(c.wire_nbls, 0);
    assert_eq!(filter_stats().send_nbls_paused - before, 3);
    nic.restart().unwrap();
    teardown(sim, nic, drv);
}

#[test]
fn oids_are_cloned_forwarded_and_completed() {
    let (sim, drv) = start(2);
    let nic = running_adapter(&sim, &[]);
    let before = filter_stats();
    let mut buf = [0u8; 8];
    // OID_GEN_MAXIMUM_FRAME_SIZE (query) and OID_GEN_CURRENT_PACKET_FILTER (set).
    let (st, _) = nic.oid_request(NdisRequestQueryInformation, 0x0001_0106, &mut buf);
    assert_eq!(st, NDIS_STATUS_SUCCESS);
    let (st, _) = nic.oid_request(NdisRequestSetInformation, 0x0001_010E, &mut buf[..4]);
    assert_eq!(st, NDIS_STATUS_SUCCESS);
    // The miniport pends: the clone completes later through FilterOidRequestComplete.
    nic.configure(|c| c.pend_oids = true);
    let (st, _) = nic.oid_request(NdisRequestQueryInformation, 0x0001_0106, &mut buf);
    assert_eq!(st, NDIS_STATUS_SUCCESS);
    // Cloning fails: the request fails with the clone's status, nothing is forwarded.
    sim.inject(AllocSite::CloneOid, FaultRule::Nth(3));
    let (st, _) = nic.oid_request(NdisRequestQueryInformation, 0x0001_0106, &mut buf);
    assert_eq!(st, NDIS_STATUS_RESOURCES);
    let s = filter_stats();
    assert_eq!(s.oids_forwarded - before.oids_forwarded, 3);
    assert_eq!(s.oid_clone_failures - before.oid_clone_failures, 1);
    assert_eq!(nic.counters().oids_completed, 4);
    teardown(sim, nic, drv);
}

#[test]
fn status_and_pnp_pass_through() {
    let (sim, drv) = start(2);
    let nic = running_adapter(&sim, &[]);
    nic.indicate_status(NDIS_STATUS_MEDIA_DISCONNECT);
    kernel::at_irql(DISPATCH_LEVEL, || {
        nic.indicate_status(NDIS_STATUS_MEDIA_CONNECT)
    });
    assert_eq!(
        nic.counters().statuses,
        vec![NDIS_STATUS_MEDIA_DISCONNECT, NDIS_STATUS_MEDIA_CONNECT]
    );
    assert_eq!(nic.net_pnp_event(NetEventQueryPower), NDIS_STATUS_SUCCESS);
    assert_eq!(nic.counters().pnp_events, vec![NetEventQueryPower]);
    teardown(sim, nic, drv);
}

#[test]
fn completions_and_returns_nested_inside_the_forwarding_call() {
    let (sim, drv) = start(2);
    let nic = sim.add_adapter(ndis_sim::AdapterConfig {
        complete_inline: true,
        return_inline: true,
        ..ndis_sim::AdapterConfig::default()
    });
    nic.attach().unwrap();
    nic.restart().unwrap();
    kernel::at_irql(DISPATCH_LEVEL, || {
        nic.send(&NblShape {
            nbls: 4,
            nbs_per_nbl: 2,
            ..NblShape::default()
        });
        nic.indicate(
            &NblShape {
                nbls: 4,
                ..NblShape::default()
            },
            0,
        );
    });
    // Everything came back inside the calls that forwarded it.
    assert_eq!(pool_in_flight(), 0);
    let c = nic.counters();
    assert_eq!(c.proto_completed_success, 4);
    assert_eq!(c.mp_returned_nbls, 4);
    let mut refs = 0;
    mdlpool::filter::for_each_module(|m| refs += m.outstanding());
    assert_eq!(refs, 1, "only the Running bias is left");
    teardown(sim, nic, drv);
}

#[test]
fn the_callers_send_and_receive_flags_are_handed_on() {
    let (sim, drv) = start(2);
    let nic = sim.add_adapter(ndis_sim::AdapterConfig {
        extra_receive_flags: NDIS_RECEIVE_FLAGS_SINGLE_ETHER_TYPE
            | NDIS_RECEIVE_FLAGS_PERFECT_FILTERED,
        ..ndis_sim::AdapterConfig::default()
    });
    nic.attach().unwrap();
    nic.restart().unwrap();
    kernel::at_irql(DISPATCH_LEVEL, || {
        nic.send_with_flags(&NblShape::default(), NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK);
        nic.indicate(
            &NblShape::default(),
            NDIS_RECEIVE_FLAGS_SINGLE_ETHER_TYPE | NDIS_RECEIVE_FLAGS_PERFECT_FILTERED,
        );
    });
    let c = nic.counters();
    let want_send = NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK | NDIS_SEND_FLAGS_DISPATCH_LEVEL;
    assert_eq!(c.send_flags_seen & want_send, want_send);
    let want_recv = NDIS_RECEIVE_FLAGS_SINGLE_ETHER_TYPE
        | NDIS_RECEIVE_FLAGS_PERFECT_FILTERED
        | NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL;
    assert_eq!(c.receive_flags_seen & want_recv, want_recv);
    teardown(sim, nic, drv);
}
