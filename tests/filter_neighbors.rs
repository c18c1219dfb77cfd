//! The NBs the filter hands on must be safe in the hands of ordinary neighbours: drivers below (the
//! miniport) and above (the protocol) that add a header in place with NDIS's default allocator and
//! remove it with `NdisAdvanceNetBufferDataStart(FreeMdl = TRUE, NULL)`. Such an advance frees every
//! leading MDL lying wholly in unused space, whoever allocated it, so an NB handed on with a pool block
//! at the head of its chain would lose that block to NDIS's default free (the simulator reports it as a
//! bad pool free / foreign MDL free, and the pool would report the block in flight forever).
mod filter_common;
use filter_common::*;
use ndis_sim::NblShape;
use ndis_sys::NDIS_RECEIVE_FLAGS_RESOURCES;

fn run(mode_name: &str, cpus: usize) {
    let (sim, drv) = start(cpus);
    let nic = running_adapter(&sim, &[mode(mode_name)]);
    nic.configure(|c| c.neighbor_header_bytes = 14);
    let shapes = [
        NblShape::default(),
        NblShape {
            nbls: 3,
            nbs_per_nbl: 2,
            mdl_lengths: vec![14, 20, 200],
            ..NblShape::default()
        },
    ];
    for shape in &shapes {
        nic.send(shape);
        nic.indicate(shape, 0);
        nic.indicate(shape, NDIS_RECEIVE_FLAGS_RESOURCES);
    }
    nic.drain();
    let c = nic.counters();
    assert_eq!(
        c.wire_digest, c.proto_sent_digest,
        "the wire saw the frames the protocol sent"
    );
    assert_eq!(
        c.proto_received_digest, c.mp_indicated_digest,
        "the protocol saw the frames indicated"
    );
    assert_eq!(
        pool_in_flight(),
        0,
        "every pool block came back to the pool"
    );
    assert_eq!(
        pool_bad_frees(),
        (0, 0),
        "no foreign or double free reached NetFreeMdl"
    );
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    // Any MDL of the filter's freed by the neighbours' default free routine is a finding here.
    sim.finish();
}

#[test]
fn exercise_nbs_survive_neighbours_that_retreat_and_free_advance() {
    run("exercise", 2);
}

#[test]
fn vlan_nbs_survive_neighbours_that_retreat_and_free_advance() {
    run("vlan", 2);
}
