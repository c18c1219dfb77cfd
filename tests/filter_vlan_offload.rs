//! vlan mode on a NIC with transmit offloads (src/transform/offload.rs): every offload kind (checksum,
//! LSOv1, LSOv2, USO) × IPv4/IPv6 × TCP/UDP (with IP options / an IPv6 extension header) × the MDL
//! layouts that take every insert path (DataOffset 0, 2, 4, headroom in one MDL, MAC header split by
//! the caller), the tag from the NBL's 802.1Q info or from the configuration, on three NICs: one that
//! parses in-band tags (the filter tags the frame and moves the offsets), one that only inserts tags
//! from the OOB info (the filter hands the tag over), one that does neither (the NBL goes untagged
//! and is counted). Plain frames at exactly the maximum frame size, too. ndis-sim's miniport judges
//! every NBL (OFFLOAD_OFFSET_WRONG, OFFLOAD_MISMATCH, FRAME_TOO_LONG, MAC_HEADER_SPLIT) and every
//! completion (NB, OOB infos, frame bytes and the unused bytes in front restored exactly); each
//! scenario must end with zero findings.
mod filter_common;
use filter_common::*;
use ndis_sim::wire::{offload_frame, NicOffload, OffloadKind, OffloadShape};
use ndis_sim::{AdapterConfig, Frame, NblShape};
use ndis_sys::*;

const P_AND_Q: u32 = NDIS_ENCAPSULATION_IEEE_802_3 | NDIS_ENCAPSULATION_IEEE_802_3_P_AND_Q;
const IN_OOB: u32 = NDIS_ENCAPSULATION_IEEE_802_3 | NDIS_ENCAPSULATION_IEEE_802_3_P_AND_Q_IN_OOB;
const PLAIN: u32 = NDIS_ENCAPSULATION_IEEE_802_3;

fn nic(encapsulation: u32) -> NicOffload {
    NicOffload {
        encapsulation,
        ..NicOffload::default()
    }
}

/// (name, MDL lengths, DataOffset).
fn layouts() -> Vec<(&'static str, Vec<u32>, u32)> {
    vec![
        ("offset-0", vec![], 0),
        ("offset-2", vec![], 2),
        ("offset-4", vec![], 4),
        ("headroom-32", vec![], 32),
        ("mac-header-split-by-caller", vec![42, 8], 36),
    ]
}

/// Every offload kind × IP version × L4 protocol the kind allows, alternating IP options.
fn offloads() -> Vec<OffloadShape> {
    let mut v = Vec::new();
    for (kind, udps) in [
        (OffloadKind::Checksum, &[false, true][..]),
        (OffloadKind::LsoV1, &[false][..]),
        (OffloadKind::LsoV2, &[false][..]),
        (OffloadKind::Uso, &[true][..]),
    ] {
        for ipv6 in [false, true] {
            if kind == OffloadKind::LsoV1 && ipv6 {
                continue; // LSOv1 is IPv4 only.
            }
            for &udp in udps {
                let mut o = OffloadShape {
                    kind,
                    ipv6,
                    udp,
                    options: (v.len() % 2) == 1,
                    mss: 0,
                    pretagged: None,
                };
                o.mss = o.mss_for(1500);
                v.push(o);
            }
        }
    }
    v
}

/// A checksum frame at exactly the maximum size; LSO/USO: 20 segments' worth of payload.
fn frame_len(o: &OffloadShape) -> usize {
    match o.kind {
        OffloadKind::Checksum => 1514,
        _ => o.header_len() + 20 * o.mss as usize,
    }
}

/// The original (untagged) frame of a frame the miniport saw.
fn original(f: &Frame, o: &OffloadShape, tagged: bool) -> Vec<u8> {
    let at = o.header_len() + if tagged { 4 } else { 0 };
    let seq = u64::from_le_bytes(f.bytes[at..at + 8].try_into().unwrap());
    let len = f.bytes.len() - if tagged { 4 } else { 0 };
    offload_frame(seq, len, o).0
}

/// What the NBL should look like at the miniport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Tag in the frame, OOB info cleared.
    InBand,
    /// Frame untouched, tag in the OOB info.
    Oob,
    /// Frame untouched, OOB info as the protocol sent it.
    Untagged,
}

/// Sends two NBLs of `shape` through a vlan module (tag from the OOB info when `oob`, else from
/// VlanId 42 / priority 5) on a NIC with `nic` and `mtu`, checks the wire against `expect`, drains
/// and finishes with zero findings. Returns the per-offload-kind NBL counts the miniport saw.
fn run(
    name: &str,
    nic_offload: NicOffload,
    shape: NblShape,
    oob: bool,
    expect: Expect,
) -> [u64; 4] {
    let (sim, drv) = start(1);
    let nic = sim.add_adapter(AdapterConfig {
        nic_offload,
        ..AdapterConfig::default()
    });
    for (k, v) in [mode("vlan"), int("VlanId", 42), int("VlanPriority", 5)] {
        nic.set_config(k, v);
    }
    nic.attach().expect("attach");
    nic.restart().expect("restart");
    let mut s = shape.clone();
    let want_tci = if oob {
        s.ieee8021q = info(3, 100);
        tci(3, 100)
    } else {
        tci(5, 42)
    };
    let before = filter_stats().vlan_untouched_nbls;
    nic.send(&s);
    let wire = nic.wire_frames();
    assert_eq!(wire.len(), 2, "{name}");
    for f in &wire {
        let tagged = f.bytes[12..14] == [0x81, 0x00];
        match (expect, &shape.offload) {
            (Expect::InBand, _) => {
                assert!(tagged, "{name}: tag in the frame");
                assert_eq!(
                    u16::from_be_bytes([f.bytes[14], f.bytes[15]]),
                    want_tci,
                    "{name}"
                );
                assert_eq!(f.ieee8021q, 0, "{name}: OOB info cleared");
                assert!(f.mac_contiguous, "{name}: tagged MAC header in one MDL");
            }
            (Expect::Oob, _) => {
                assert!(!tagged, "{name}: frame untouched");
                assert_eq!(
                    f.ieee8021q,
                    info((want_tci >> 13) as u8, want_tci & 0xFFF),
                    "{name}"
                );
            }
            (Expect::Untagged, _) => {
                assert!(!tagged, "{name}: frame untouched");
                assert_eq!(f.ieee8021q, if oob { info(3, 100) } else { 0 }, "{name}");
            }
        }
        if let Some(o) = &shape.offload {
            let orig = original(f, o, tagged);
            let want = if tagged {
                tagged_frame(&orig, want_tci)
            } else {
                orig
            };
            assert_eq!(f.bytes, want, "{name}: the bytes on the wire");
        }
    }
    let untouched = filter_stats().vlan_untouched_nbls - before;
    assert_eq!(
        untouched,
        if expect == Expect::Untagged || (expect == Expect::Oob && oob) {
            2
        } else {
            0
        },
        "{name}: counted"
    );
    let counts = nic.counters().wire_offload_nbls;
    nic.drain();
    assert_eq!(pool_in_flight(), 0, "{name}");
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
    counts
}

fn tagged_frame(f: &[u8], tci: u16) -> Vec<u8> {
    tagged(f, tci)
}

fn offload_shape(o: &OffloadShape, lens: &[u32], off: u32) -> NblShape {
    let len = frame_len(o);
    let mut lens = lens.to_vec();
    if !lens.is_empty() {
        // The last MDL grows to hold the rest of the frame.
        lens.push(64);
    }
    NblShape {
        nbls: 2,
        frame_len: len,
        mdl_lengths: lens,
        data_offset: off,
        offload: Some(*o),
        ..NblShape::default()
    }
}

#[test]
fn nic_parsing_tags_gets_tagged_frames_with_moved_offsets_every_kind_and_layout() {
    let mut seen = [0u64; 4];
    for o in offloads() {
        for (lname, lens, off) in layouts() {
            for oob in [false, true] {
                let name = format!("{o:?} {lname} oob={oob}");
                let c = run(
                    &name,
                    nic(P_AND_Q),
                    offload_shape(&o, &lens, off),
                    oob,
                    Expect::InBand,
                );
                for k in 0..4 {
                    seen[k] += c[k];
                }
            }
        }
    }
    // Checksum: 4 shapes, LSOv1: 1, LSOv2: 2, USO: 2; × 5 layouts × 2 tag sources × 2 NBLs.
    assert_eq!(seen, [80, 20, 40, 40]);
}

#[test]
fn nic_inserting_from_oob_gets_the_tag_in_the_oob_info() {
    for o in offloads() {
        for (lname, lens, off) in layouts() {
            for oob in [false, true] {
                let name = format!("{o:?} {lname} oob={oob}");
                run(
                    &name,
                    nic(IN_OOB),
                    offload_shape(&o, &lens, off),
                    oob,
                    Expect::Oob,
                );
            }
        }
    }
}

#[test]
fn nic_without_802_1q_support_gets_offloaded_nbls_untagged_and_counted() {
    for o in offloads() {
        for oob in [false, true] {
            let name = format!("{o:?} oob={oob}");
            run(
                &name,
                nic(PLAIN),
                offload_shape(&o, &[], 32),
                oob,
                Expect::Untagged,
            );
        }
    }
}

#[test]
fn plain_frames_at_and_below_the_maximum_size() {
    let plain = |len: usize, off: u32| NblShape {
        nbls: 2,
        frame_len: len,
        data_offset: off,
        ..NblShape::default()
    };
    for (lname, lens, off) in layouts() {
        let mut s = plain(1514, off);
        s.mdl_lengths = if lens.is_empty() {
            lens.clone()
        } else {
            [lens.clone(), vec![64]].concat()
        };
        // A NIC that parses tags takes 1518-byte tagged frames.
        run(
            &format!("1514 {lname} P_AND_Q"),
            nic(P_AND_Q),
            s.clone(),
            false,
            Expect::InBand,
        );
        // Without 802.1Q support a tagged 1514-byte frame would be 1518 > 1514.
        run(
            &format!("1514 {lname} OOB"),
            nic(IN_OOB),
            s.clone(),
            false,
            Expect::Oob,
        );
        run(
            &format!("1514 {lname} plain"),
            nic(PLAIN),
            s.clone(),
            true,
            Expect::Untagged,
        );
        // 1510 + 4 fits anywhere.
        s.frame_len = 1510;
        run(
            &format!("1510 {lname} plain"),
            nic(PLAIN),
            s,
            false,
            Expect::InBand,
        );
    }
}

#[test]
fn already_tagged_offloaded_frames_and_multi_nb_checksum_nbls() {
    // The protocol tagged the frames itself (its offsets count the tag): left alone, on every NIC.
    for mut o in offloads() {
        o.pretagged = Some(tci(2, 9));
        let (sim, drv) = start(1);
        let nic = sim.add_adapter(AdapterConfig::default());
        for (k, v) in [mode("vlan"), int("VlanId", 42)] {
            nic.set_config(k, v);
        }
        nic.attach().unwrap();
        nic.restart().unwrap();
        let before = filter_stats();
        nic.send(&offload_shape(&o, &[], 32));
        for f in nic.wire_frames() {
            assert_eq!(
                &f.bytes[12..16],
                &[0x81, 0x00, 0x40, 9],
                "{o:?}: the protocol's own tag only"
            );
        }
        let after = filter_stats();
        assert_eq!(
            after.vlan_already_tagged - before.vlan_already_tagged,
            2,
            "{o:?}"
        );
        nic.drain();
        nic.pause().unwrap();
        nic.detach();
        sim.unload(drv);
        sim.finish();
    }
    // Checksum offload on NBLs of several NBs, each tagged and the one offset moved once.
    for o in offloads()
        .into_iter()
        .filter(|o| o.kind == OffloadKind::Checksum)
    {
        for (lname, lens, off) in layouts() {
            let mut s = offload_shape(&o, &lens, off);
            s.nbs_per_nbl = 3;
            s.frame_len = 700;
            let (sim, drv) = start(1);
            let nic = sim.add_adapter(AdapterConfig::default());
            nic.set_config("Mode", ndis_sim::ConfigValue::Str("vlan".into()));
            nic.set_config("VlanId", ndis_sim::ConfigValue::Int(42));
            nic.attach().unwrap();
            nic.restart().unwrap();
            nic.send(&s);
            let wire = nic.wire_frames();
            assert_eq!(wire.len(), 6, "{o:?} {lname}");
            for f in &wire {
                assert_eq!(&f.bytes[12..14], &[0x81, 0x00], "{o:?} {lname}");
            }
            nic.drain();
            nic.pause().unwrap();
            nic.detach();
            sim.unload(drv);
            sim.finish();
        }
    }
}

#[test]
fn offload_configuration_changes_are_followed() {
    let mut o = offloads()
        .into_iter()
        .find(|o| o.kind == OffloadKind::LsoV2)
        .unwrap();
    o.options = false;
    let (sim, drv) = start(1);
    let nic = sim.add_adapter(AdapterConfig::default());
    for (k, v) in [mode("vlan"), int("VlanId", 42)] {
        nic.set_config(k, v);
    }
    nic.attach().unwrap();
    nic.restart().unwrap();
    nic.send(&offload_shape(&o, &[], 32));
    // The NIC stops parsing in-band tags for its offloads (but inserts OOB tags now).
    nic.change_offload(nic_offload_in_oob());
    nic.send(&offload_shape(&o, &[], 32));
    let wire = nic.wire_frames();
    assert_eq!(wire.len(), 4);
    assert!(wire[..2].iter().all(|f| f.bytes[12..14] == [0x81, 0x00]));
    assert!(wire[2..]
        .iter()
        .all(|f| f.bytes[12..14] != [0x81, 0x00] && f.ieee8021q == info(0, 42)));
    assert_eq!(
        nic.counters().statuses,
        vec![NDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG],
        "the indication went on up"
    );
    nic.drain();
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

fn nic_offload_in_oob() -> NicOffload {
    nic(IN_OOB)
}
