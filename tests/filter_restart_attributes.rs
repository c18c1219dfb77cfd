//! FilterRestart's restart attributes (NDIS_RESTART_GENERAL_ATTRIBUTES): the filter raises
//! ContextBackFillSize by its NBL context (one NB) and DataBackFillSize by what its mode needs in
//! front of a frame beyond what it deliberately makes NDIS allocate (0 today); ndis-sim's protocol then
//! allocates its NBLs with that room, so NdisAllocateNetBufferListContext carves the filter's
//! context out of the backfill instead of allocating a block (counted by
//! `ndis_sim::nbl::context_allocations`). NBLs whose context does not fit (more NBs) still take the
//! allocating path.
mod filter_common;
use filter_common::*;
use ndis_sim::nbl::context_allocations;
use ndis_sim::NblShape;
use ndis_sys::*;

fn one_nb(nbls: usize) -> NblShape {
    NblShape {
        nbls,
        frame_len: 80,
        mdl_lengths: vec![14, 66],
        ..NblShape::default()
    }
}

#[test]
fn exercise_raises_context_backfill_and_the_protocol_nbls_are_carved() {
    let (sim, drv) = start(2);
    let nic = running_adapter(&sim, &[mode("exercise")]);
    let before = context_allocations();
    nic.send(&one_nb(4));
    nic.drain();
    let after = context_allocations();
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (4, 0),
        "four carves from the protocol's context backfill, no block allocated"
    );
    // Exercise retreats past DataOffset on purpose: data backfill would not spare an allocation.
    assert_eq!(nic.restart_backfill(), (0, 96));
    // The miniport's receive NBLs come with the stack's context backfill as well.
    ndis_sim::kernel::at_irql(DISPATCH_LEVEL, || nic.indicate(&one_nb(3), 0));
    nic.drain();
    let after_rx = context_allocations();
    assert_eq!((after_rx.0 - after.0, after_rx.1 - after.1), (3, 0));
    // Two NBs need 112 bytes: more than the backfill, so NDIS allocates (the other path).
    nic.send(&NblShape {
        nbs_per_nbl: 2,
        ..one_nb(1)
    });
    nic.drain();
    let last = context_allocations();
    assert_eq!((last.0 - after_rx.0, last.1 - after_rx.1), (0, 1));
    assert_eq!(
        nic.counters().proto_completed_success,
        5,
        "every send completed"
    );
    assert_eq!(pool_in_flight(), 0);
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

#[test]
fn each_mode_states_its_needs_at_every_restart() {
    let (sim, drv) = start(2);
    let nic = running_adapter(&sim, &[mode("vlan")]);
    // vlan: the context for the restore record; no data backfill, since the tag's 4-byte retreat is
    // the allocation vlan mode exercises (filter/restart.rs).
    assert_eq!(nic.restart_backfill(), (0, 96));
    // A tagged send from the protocol: the tag is inserted through the pool, the context is carved.
    let before = context_allocations();
    let served = pool_served();
    nic.send(&NblShape {
        ieee8021q: info(2, 7),
        ..one_nb(2)
    });
    let wire = nic.wire_frames();
    assert_eq!(wire.len(), 2);
    assert_eq!(&wire[0].bytes[12..16], &[0x81, 0x00, 0x40, 0x07]);
    assert_eq!(pool_served() - served, 2, "one pool block per tag");
    nic.drain();
    let after = context_allocations();
    assert_eq!((after.0 - before.0, after.1 - before.1), (2, 0));
    nic.pause().unwrap();
    let (k, v) = mode("passthrough");
    nic.set_config(k, v);
    nic.restart().unwrap();
    assert_eq!(nic.restart_backfill(), (0, 0), "passthrough needs nothing");
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

#[test]
fn the_raise_adds_to_what_the_miniport_reports() {
    let (sim, drv) = start(2);
    let nic = sim.add_adapter(ndis_sim::AdapterConfig {
        lower_data_backfill: 8,
        lower_context_backfill: 32,
        ..ndis_sim::AdapterConfig::default()
    });
    let (k, v) = mode("exercise");
    nic.set_config(k, v);
    nic.attach().unwrap();
    nic.restart().unwrap();
    assert_eq!(
        nic.restart_backfill(),
        (8, 128),
        "the miniport's 8 + 0; 32 + 96"
    );
    // The protocol leaves the 8 bytes of data backfill in front of its frames: exercise still
    // retreats past them (DataOffset + ExerciseBytes), so every NB still takes a pool block.
    let served = pool_served();
    nic.send(&one_nb(2));
    assert_eq!(pool_served() - served, 2);
    nic.drain();
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}
