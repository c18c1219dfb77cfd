//! Neighbours that break the restore contract (ndis-sim's `AdapterConfig::restore_breaker`): a
//! miniport that moves an NB's data start or drops leading MDLs before completing a send, a protocol
//! that does so before returning a receive. The filter must recover from its retreat record: hand the
//! NB back to its owner exactly as the owner handed it over, give every pool block back (none handed
//! on, none leaked), count each recovery in `restores_inconsistent` (RestoreBad) and log once — and
//! the run must end, through unload, with zero findings and no leak report.
mod filter_common;
use filter_common::*;
use ndis_sim::{BreakHow, NblShape, RestoreBreaker};

fn run(mode_name: &str, how: BreakHow, shape: &NblShape, receive: bool) {
    let (sim, drv) = start(1);
    let mut config = vec![mode(mode_name), int("VlanId", 7)];
    if receive {
        config.push(int("VlanReceiveInline", 1));
    }
    let nic = running_adapter(&sim, &config);
    nic.configure(|c| {
        c.restore_breaker = Some(RestoreBreaker {
            miniport: true,
            protocol: true,
            how,
        })
    });
    let before = filter_stats().restores_inconsistent;
    nic.send(shape);
    if receive {
        let mut rx = shape.clone();
        rx.ieee8021q = info(3, 7);
        nic.indicate(&rx, 0);
    }
    nic.drain();
    let c = nic.counters();
    let nbs = (shape.nbls * shape.nbs_per_nbl) as u64;
    let expected = if receive { 2 * nbs } else { nbs };
    assert_eq!(
        c.neighbor_restore_breaks, expected,
        "{mode_name} {how:?}: every NB was broken by a neighbour"
    );
    assert_eq!(
        filter_stats().restores_inconsistent - before,
        expected,
        "{mode_name} {how:?}: each recovery counted once (RestoreBad)"
    );
    assert_eq!(
        pool_in_flight(),
        0,
        "{mode_name} {how:?}: every pool block came back"
    );
    assert_eq!(pool_bad_frees(), (0, 0), "{mode_name} {how:?}");
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    // NB_NOT_RESTORED at the owner, a pool block handed back, LEAKED_POOL at unload: all findings.
    sim.finish();
}

/// The first MDL lies wholly in unused space and DataOffset leaves room to retreat in place.
fn unused_head() -> NblShape {
    NblShape {
        nbls: 2,
        nbs_per_nbl: 2,
        mdl_lengths: vec![8, 80],
        data_offset: 8,
        ..NblShape::default()
    }
}

#[test]
fn exercise_recovers_from_a_neighbour_that_leaves_the_nb_retreated() {
    run(
        "exercise",
        BreakHow::LeaveRetreated(4),
        &unused_head(),
        false,
    );
}

#[test]
fn exercise_recovers_from_a_neighbour_that_leaves_the_nb_advanced() {
    run(
        "exercise",
        BreakHow::LeaveAdvanced(6),
        &unused_head(),
        false,
    );
}

#[test]
fn exercise_recovers_from_a_neighbour_that_drops_unused_mdls() {
    run("exercise", BreakHow::DropUnusedMdls, &unused_head(), false);
}

#[test]
fn vlan_in_place_recovers_from_a_neighbour_that_leaves_the_nb_retreated() {
    // In place: 8 unused bytes in front of the data start inside the MDL that holds the whole MAC
    // header, so the tag goes in there and the neighbour's further retreat stays in place too.
    let shape = NblShape {
        nbls: 2,
        nbs_per_nbl: 2,
        mdl_lengths: vec![88],
        data_offset: 8,
        ..NblShape::default()
    };
    run("vlan", BreakHow::LeaveRetreated(4), &shape, true);
}

#[test]
fn vlan_allocated_recovers_from_a_neighbour_that_leaves_the_nb_advanced() {
    // DataOffset 0: the tag's 4 bytes come from a pool block at the head of the chain; the neighbour
    // advances past them, leaving the pool block wholly unused at the head.
    let shape = NblShape {
        nbls: 2,
        ..NblShape::default()
    };
    run("vlan", BreakHow::LeaveAdvanced(4), &shape, true);
}

#[test]
fn vlan_allocated_recovers_from_a_neighbour_that_leaves_the_nb_retreated_in_its_backfill() {
    // Not possible in place (DataOffset 0 and the pool block has no backfill): the neighbour's retreat
    // does nothing, so only the advance variant breaks these; a chain with room after the tag does.
    let shape = NblShape {
        nbls: 1,
        mdl_lengths: vec![2, 80],
        data_offset: 2,
        ..NblShape::default()
    };
    run("vlan", BreakHow::LeaveAdvanced(2), &shape, true);
}
