//! Every transform in both directions over MDL layouts that make the retreat take each of its paths
//! (ndis-contract.md §2.3): the fast path inside one MDL, the fast path straddling two MDLs, an
//! allocation with old DataOffset 0, an allocation with DataOffset > 0 (header split between the new
//! MDL and the old chain's unused bytes), and chains that begin with a wholly unused foreign MDL (the
//! restore must not let a FreeMdl advance free it). The protocol and the miniport must see byte-exact
//! frames (exercise: the original frame; vlan: the tagged frame on the wire / to the protocol), the
//! simulator checks every NB is restored exactly, and the pool ends with nothing in flight.
mod filter_common;
use filter_common::*;
use ndis_sim::{stack::make_frame, Adapter, Frame, NblShape, SimGuard};

/// (name, MDL lengths, DataOffset) of each layout.
fn layouts() -> Vec<(&'static str, Vec<u32>, u32)> {
    vec![
        ("headroom-in-one-mdl", vec![], 32),
        ("straddling-fast-path", vec![34, 200], 36),
        ("alloc-offset-0", vec![], 0),
        ("alloc-offset-2-split", vec![], 2),
        ("foreign-unused-head", vec![8, 200], 8),
        ("foreign-unused-head-alloc", vec![2, 200], 2),
        ("zero-length-head", vec![0, 200], 0),
        ("many-small-mdls", vec![3, 5, 7, 11, 13, 200], 3),
        ("offset-4-exactly", vec![], 4),
        ("header-split-by-caller", vec![42, 8, 200], 36),
        ("offset-2-header-alone-in-its-mdl", vec![16, 200], 2),
    ]
}

fn shape(lens: &[u32], off: u32, nbls: usize, nbs: usize) -> NblShape {
    NblShape {
        nbls,
        nbs_per_nbl: nbs,
        frame_len: 60,
        mdl_lengths: lens.to_vec(),
        data_offset: off,
        ieee8021q: 0,
        ..NblShape::default()
    }
}

/// The untagged original of a frame the simulator made (its sequence number is at bytes 14..22, or
/// 18..26 once tagged).
fn original_of(bytes: &[u8], tagged: bool) -> Vec<u8> {
    let at = if tagged { 18 } else { 14 };
    let seq = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    make_frame(seq, bytes.len() - if tagged { 4 } else { 0 })
}

fn finish(sim: SimGuard, nic: Adapter, drv: ndis_sim::Driver) {
    nic.drain();
    assert_eq!(
        pool_in_flight(),
        0,
        "pool blocks still in flight after drain"
    );
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

#[test]
fn exercise_both_directions_every_layout() {
    for (name, lens, off) in layouts() {
        let (sim, drv) = start(2);
        let nic = running_adapter(&sim, &[mode("exercise")]);
        let before = filter_stats();
        let served0 = pool_served();
        nic.send(&shape(&lens, off, 3, 2));
        nic.indicate(&shape(&lens, off, 3, 1), 0);
        // One block per NB, kept in the chain until completion / return.
        assert_eq!(pool_in_flight(), 9, "{name}");
        nic.drain();
        let c = nic.counters();
        assert_eq!(c.wire_nbs, 6, "{name}");
        assert_eq!(
            c.wire_digest, c.proto_sent_digest,
            "{name}: wire frames differ"
        );
        assert_eq!(
            c.proto_received_digest, c.mp_indicated_digest,
            "{name}: received frames differ"
        );
        assert_eq!(c.proto_completed_success, 3, "{name}");
        for f in nic.wire_frames().iter().chain(nic.protocol_frames().iter()) {
            assert_eq!(f.bytes, original_of(&f.bytes, false), "{name}");
        }
        let s = filter_stats();
        assert_eq!(pool_served() - served0, 9, "{name}");
        assert_eq!(
            s.send_nbs_transformed - before.send_nbs_transformed,
            6,
            "{name}"
        );
        assert_eq!(
            s.recv_nbs_transformed - before.recv_nbs_transformed,
            3,
            "{name}"
        );
        assert_eq!(s.bytes_written - before.bytes_written, 9 * 14, "{name}");
        let manual = s.restores_manual - before.restores_manual;
        let advanced = s.restores_advanced - before.restores_advanced;
        let foreign_head = lens.first().is_some_and(|&l| l <= off);
        if foreign_head {
            assert_eq!(
                (manual, advanced),
                (9, 0),
                "{name}: the foreign head forces the manual unlink"
            );
        } else {
            assert_eq!(
                (manual, advanced),
                (0, 9),
                "{name}: FreeMdl advance frees only our block"
            );
        }
        assert_eq!(pool_bad_frees(), (0, 0), "{name}");
        finish(sim, nic, drv);
    }
}

/// Whether the vlan transform tags this layout in place (the MDL holding the data start has 4 unused
/// bytes in front of it and holds the whole 14-byte header); otherwise it builds a new head MDL.
fn vlan_in_place(lens: &[u32], off: u32, frame: u32) -> bool {
    let mut lens = if lens.is_empty() {
        vec![off + frame]
    } else {
        lens.to_vec()
    };
    let sum: u32 = lens.iter().sum();
    if sum < off + frame {
        *lens.last_mut().unwrap() += off + frame - sum;
    }
    let mut at = off;
    for l in lens {
        if at < l {
            return at >= 4 && l >= at + 14;
        }
        at -= l;
    }
    false
}

fn check_tagged(frames: &[Frame], tci: u16, what: &str) {
    assert!(!frames.is_empty(), "{what}: no frames");
    for f in frames {
        assert_eq!(f.bytes.len(), 64, "{what}");
        assert_eq!(f.bytes, tagged(&original_of(&f.bytes, true), tci), "{what}");
        assert_eq!(
            f.ieee8021q, 0,
            "{what}: OOB info must be cleared when the tag is inline"
        );
        assert!(
            f.mac_contiguous,
            "{what}: the tagged MAC header must lie in the MDL holding the data start, whatever \
             the caller's layout"
        );
    }
}

#[test]
fn vlan_send_tags_from_oob_and_from_configuration_every_layout() {
    for (name, lens, off) in layouts() {
        let (sim, drv) = start(2);
        let nic = running_adapter(
            &sim,
            &[mode("vlan"), int("VlanId", 42), int("VlanPriority", 5)],
        );
        let before = filter_stats();
        // OOB info wins over the configured tag.
        let mut s = shape(&lens, off, 2, 2);
        s.ieee8021q = info(3, 100);
        nic.send(&s);
        check_tagged(&nic.wire_frames(), tci(3, 100), name);
        // No OOB info: the configured VlanId / priority.
        nic.send(&shape(&lens, off, 2, 1));
        let wire = nic.wire_frames();
        check_tagged(&wire[4..], tci(5, 42), name);
        let allocating = !vlan_in_place(&lens, off, 60);
        let in_flight = pool_in_flight();
        assert_eq!(in_flight, if allocating { 6 } else { 0 }, "{name}");
        nic.drain();
        let c = nic.counters();
        assert_eq!(c.proto_completed_success, 4, "{name}");
        let st = filter_stats();
        assert_eq!(
            st.send_nbs_transformed - before.send_nbs_transformed,
            6,
            "{name}"
        );
        assert_eq!(st.bytes_written - before.bytes_written, 6 * 4, "{name}");
        let manual = st.restores_manual - before.restores_manual;
        let foreign_head = lens.first().is_some_and(|&l| l <= off);
        assert_eq!(
            manual,
            if allocating && foreign_head { 6 } else { 0 },
            "{name}"
        );
        finish(sim, nic, drv);
    }
}

#[test]
fn vlan_send_without_any_tag_passes_frames_through() {
    let (sim, drv) = start(2);
    let nic = running_adapter(&sim, &[mode("vlan")]);
    let before = filter_stats().vlan_untouched_nbls;
    nic.send(&shape(&[], 0, 3, 1));
    assert_eq!(pool_in_flight(), 0);
    nic.drain();
    let c = nic.counters();
    assert_eq!(c.wire_digest, c.proto_sent_digest);
    assert_eq!(filter_stats().vlan_untouched_nbls - before, 3);
    finish(sim, nic, drv);
}

#[test]
fn vlan_receive_inline_reinserts_stripped_tags_every_layout() {
    for (name, lens, off) in layouts() {
        let (sim, drv) = start(2);
        let nic = running_adapter(&sim, &[mode("vlan"), int("VlanReceiveInline", 1)]);
        let mut s = shape(&lens, off, 3, 1);
        s.ieee8021q = info(6, 4094);
        nic.indicate(&s, 0);
        check_tagged(&nic.protocol_frames(), tci(6, 4094), name);
        // A frame without a stripped tag goes up unchanged.
        nic.indicate(&shape(&lens, off, 1, 1), 0);
        let up = nic.protocol_frames();
        assert_eq!(up[3].bytes, original_of(&up[3].bytes, false), "{name}");
        nic.drain();
        let c = nic.counters();
        assert_eq!(c.mp_returned_nbls, 4, "{name}");
        finish(sim, nic, drv);
    }
}

#[test]
fn vlan_receive_without_inline_is_untouched() {
    let (sim, drv) = start(2);
    let nic = running_adapter(&sim, &[mode("vlan")]);
    let mut s = shape(&[], 0, 2, 1);
    s.ieee8021q = info(1, 7);
    nic.indicate(&s, 0);
    for f in nic.protocol_frames() {
        assert_eq!(f.bytes, original_of(&f.bytes, false));
        assert_eq!(f.ieee8021q, info(1, 7));
    }
    nic.drain();
    finish(sim, nic, drv);
}

#[test]
fn passthrough_never_retreats() {
    let (sim, drv) = start(2);
    let nic = running_adapter(&sim, &[mode("passthrough")]);
    let served0 = pool_served();
    nic.send(&shape(&[], 0, 4, 2));
    nic.indicate(&shape(&[], 0, 4, 1), 0);
    nic.indicate(&shape(&[], 0, 2, 1), ndis_sys::NDIS_RECEIVE_FLAGS_RESOURCES);
    assert_eq!(pool_served(), served0);
    nic.drain();
    let c = nic.counters();
    assert_eq!(c.wire_digest, c.proto_sent_digest);
    assert_eq!(c.proto_received_digest, c.mp_indicated_digest);
    finish(sim, nic, drv);
}
