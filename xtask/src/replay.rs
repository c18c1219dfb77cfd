//! `cargo xtask simulate --pcap FILE`: a capture (pcap or pcapng, read by `pcap-parser`) replayed
//! through the shipped amd64 `mdlpool.sys`, loaded by sysrun into ndis-sim. Every Ethernet frame of
//! the capture is sent down by the simulated protocol *and* indicated up by the simulated miniport,
//! in capture order, in small NBL chains over varying MDL layouts, from the virtual CPUs in turn
//! (completions and returns shuffled, on the next CPU); the frames that reach the wire and the
//! protocol are checked byte for byte against what the mode must make of the input (exercise and
//! passthrough: identical; vlan: an 802.1Q tag inserted as configured or as the NBL asks, and
//! re-inserted inline on receive). Then pause, detach, unload: zero verifier findings, nothing
//! leaked, per-protocol counts (classified by `etherparse`) and the pool table printed.
//!
//! Owns only the replay flow, the capture reading and the model of the expected frames; loading is
//! sysrun's, the checks of the data path's contract are ndis-sim's.

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_parser::traits::PcapNGPacketBlock;
use pcap_parser::{Block, Linktype, PcapBlockOwned, PcapError};
use std::collections::BTreeMap;
use std::path::Path;

/// The Ethernet frames of a capture, in capture order.
#[derive(Debug)]
pub struct Capture {
    /// "pcap" or "pcapng".
    pub format: &'static str,
    pub frames: Vec<Vec<u8>>,
    /// Frames whose captured length is below their length on the wire (replayed as captured).
    pub truncated: usize,
}

/// Reads every Ethernet frame of a pcap or pcapng file. Refuses other link types (a frame the filter
/// sees is always an Ethernet frame) and damaged files.
pub fn read_capture(path: &Path) -> Result<Capture, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // Large enough for any block of a capture with a snap length up to 256 KiB.
    let mut reader = pcap_parser::create_reader(1 << 20, file)
        .map_err(|e| format!("{}: not a pcap or pcapng file ({e})", path.display()))?;
    let mut cap = Capture {
        format: "pcap",
        frames: Vec::new(),
        truncated: 0,
    };
    let mut legacy_link: Option<Linktype> = None;
    let mut ng_links: Vec<Linktype> = Vec::new();
    let bad_link = |l: Linktype| {
        format!(
            "{}: link type {} is not Ethernet (LINKTYPE_ETHERNET = 1)",
            path.display(),
            l.0
        )
    };
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => legacy_link = Some(h.network),
                    PcapBlockOwned::Legacy(b) => {
                        let l = legacy_link.unwrap_or(Linktype::ETHERNET);
                        if l != Linktype::ETHERNET {
                            return Err(bad_link(l));
                        }
                        cap.truncated += usize::from(b.caplen < b.origlen);
                        cap.frames.push(b.data.to_vec());
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                        cap.format = "pcapng";
                        ng_links.clear();
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        ng_links.push(idb.linktype)
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let l = ng_links.get(epb.if_id as usize).copied().ok_or_else(|| {
                            format!("{}: packet of undescribed interface", path.display())
                        })?;
                        if l != Linktype::ETHERNET {
                            return Err(bad_link(l));
                        }
                        cap.truncated += usize::from(epb.caplen < epb.origlen);
                        cap.frames.push(epb.packet_data().to_vec());
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        let l = ng_links.first().copied().unwrap_or(Linktype::ETHERNET);
                        if l != Linktype::ETHERNET {
                            return Err(bad_link(l));
                        }
                        cap.frames.push(spb.packet_data().to_vec());
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => reader
                .refill()
                .map_err(|e| format!("{}: {e}", path.display()))?,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    Ok(cap)
}

/// The protocol of a frame, for the summary: what `etherparse` makes of it.
pub fn classify(frame: &[u8]) -> &'static str {
    let Ok(p) = SlicedPacket::from_ethernet(frame) else {
        return "unparsed";
    };
    let fragment = match &p.net {
        Some(NetSlice::Ipv4(v4)) => v4.is_payload_fragmented(),
        Some(NetSlice::Ipv6(v6)) => v6.is_payload_fragmented(),
        _ => false,
    };
    let v6 = matches!(p.net, Some(NetSlice::Ipv6(_)));
    match (&p.net, &p.transport) {
        (Some(NetSlice::Arp(_)), _) => "ARP",
        (_, Some(TransportSlice::Icmpv6(i))) => match i.type_u8() {
            133..=137 => "ICMPv6 neighbour discovery",
            _ => "ICMPv6",
        },
        (_, Some(TransportSlice::Icmpv4(_))) if fragment => "IPv4 fragment (ICMP)",
        (_, Some(TransportSlice::Icmpv4(_))) => "ICMP",
        (_, Some(TransportSlice::Igmp(_))) => "IGMP",
        (_, Some(TransportSlice::Tcp(_))) if v6 => "TCP/IPv6",
        (_, Some(TransportSlice::Tcp(_))) => "TCP/IPv4",
        (_, Some(TransportSlice::Udp(_))) if fragment => "IPv4 fragment (UDP)",
        (_, Some(TransportSlice::Udp(_))) if v6 => "UDP/IPv6",
        (_, Some(TransportSlice::Udp(_))) => "UDP/IPv4",
        (Some(NetSlice::Ipv4(_)), None) if fragment => "IPv4 fragment",
        (Some(NetSlice::Ipv6(_)), None) if fragment => "IPv6 fragment",
        (Some(_), _) => "other IP",
        (None, _) => "other",
    }
}

/// What the vlan transform must put on the wire for `frame` given `tci` (None: leaves it alone): the
/// tag after the 12 address bytes, unless the frame is shorter than 14 bytes or already tagged
/// (TPID 0x8100 / 0x88A8). Written from 802.1Q, independently of the driver's code.
pub fn vlan_expected(frame: &[u8], tci: Option<u16>) -> Vec<u8> {
    let Some(tci) = tci else {
        return frame.to_vec();
    };
    if frame.len() < 14 || matches!((frame[12], frame[13]), (0x81, 0x00) | (0x88, 0xA8)) {
        return frame.to_vec();
    }
    let mut v = Vec::with_capacity(frame.len() + 4);
    v.extend_from_slice(&frame[..12]);
    v.extend_from_slice(&[0x81, 0x00, (tci >> 8) as u8, tci as u8]);
    v.extend_from_slice(&frame[12..]);
    v
}

/// Frames per protocol, and their bytes.
#[derive(Default)]
pub struct Tally {
    pub by_protocol: BTreeMap<&'static str, (u64, u64)>,
    pub largest: usize,
    pub over_1514: u64,
}

impl Tally {
    pub fn add(&mut self, frame: &[u8]) {
        let e = self.by_protocol.entry(classify(frame)).or_default();
        e.0 += 1;
        e.1 += frame.len() as u64;
        self.largest = self.largest.max(frame.len());
        self.over_1514 += u64::from(frame.len() > 1514);
    }

    pub fn render(&self) -> String {
        let mut s = format!("{:<28} {:>8} {:>10}\n", "protocol", "frames", "bytes");
        for (p, (n, b)) in &self.by_protocol {
            s.push_str(&format!("{p:<28} {n:>8} {b:>10}\n"));
        }
        s.push_str(&format!(
            "largest frame {} bytes; {} frames above 1514 bytes (jumbo)",
            self.largest, self.over_1514
        ));
        s
    }
}

/// MDL layouts the replay cycles through: (MDL lengths, DataOffset). One MDL; the Ethernet header
/// alone in the first MDL; a small foreign head with 2 unused bytes; 64 bytes of headroom (the
/// retreat's fast path).
const LAYOUTS: [(&[u32], u32); 4] = [(&[], 0), (&[14], 0), (&[6, 40], 2), (&[], 64)];

/// The tag the protocol asks for through the NBL's 802.1Q info on every other vlan send chain, and
/// the NIC-stripped tag the miniport reports on every other receive chain.
const OOB_SEND: (u8, u16) = (5, 7);
const OOB_RECEIVE: (u8, u16) = (1, 100);
/// The module's configured VlanPriority / VlanId (used when the NBL asks for nothing).
const CONFIGURED: (u8, u16) = (3, 42);

fn tci((prio, vid): (u8, u16)) -> u16 {
    (prio as u16) << 13 | vid
}

fn info((prio, vid): (u8, u16)) -> usize {
    ndis_sys::NDIS_NET_BUFFER_LIST_8021Q_INFO::new(prio, 0, vid).Value
}

/// Replays `frames` through the image at `sys` in `mode`; returns the number of frames checked each
/// way and the pool statistics read from the image after unload. Fails on a wrong frame, a verifier finding, or anything left behind.
pub fn replay_mode(
    sys: &Path,
    frames: &[Vec<u8>],
    mode: &str,
    cpus: usize,
) -> Result<(u64, u64, sysrun::stats::StatsDump), String> {
    replay_mode_with(sys, frames, mode, cpus, vlan_expected)
}

/// [`replay_mode`] with the model of the expected frames given (the tests give a wrong one to prove
/// the check fails).
fn replay_mode_with(
    sys: &Path,
    frames: &[Vec<u8>],
    mode: &str,
    cpus: usize,
    model: fn(&[u8], Option<u16>) -> Vec<u8>,
) -> Result<(u64, u64, sysrun::stats::StatsDump), String> {
    use ndis_sim::{kernel, AdapterConfig, ConfigValue, NblShape, Sim, SimConfig};
    use ndis_sys::{DISPATCH_LEVEL, NDIS_RECEIVE_FLAGS_RESOURCES, PASSIVE_LEVEL};

    let image = sysrun::LoadedImage::load(sys).map_err(|e| e.to_string())?;
    let sim = Sim::start(SimConfig {
        cpus,
        ..SimConfig::default()
    });
    let mut drv = sysrun::SysDriver::start(&sim, image).map_err(|e| e.to_string())?;
    // The capture's NIC: its MtuSize is what the largest captured frame needs (at least Ethernet's
    // 1500), so a jumbo capture replays on a jumbo miniport (ndis-sim's FRAME_TOO_LONG judges the
    // rest; a tagged frame gets the 4 bytes 802.1Q encapsulation allows).
    let largest = frames.iter().map(Vec::len).max().unwrap_or(0);
    let mtu_size = (largest.saturating_sub(14) as u32).max(1500);
    let nic = sim.add_adapter(AdapterConfig {
        mtu_size,
        ..AdapterConfig::default()
    });
    nic.set_config("Mode", ConfigValue::Str(mode.into()));
    if mode == "vlan" {
        nic.set_config("VlanPriority", ConfigValue::Int(CONFIGURED.0 as u32));
        nic.set_config("VlanId", ConfigValue::Int(CONFIGURED.1 as u32));
        nic.set_config("VlanReceiveInline", ConfigValue::Int(1));
    }
    nic.attach().map_err(|e| format!("FilterAttach: {e:?}"))?;
    nic.restart().map_err(|e| format!("FilterRestart: {e:?}"))?;

    let mut checked = (0u64, 0u64);
    let mut failure: Option<String> = None;
    let mut start = 0usize;
    let mut k = 0usize;
    while start < frames.len() && failure.is_none() {
        // Chains of 1..=4 frames, 1 or 2 NBs per NBL, each chain from the next virtual CPU.
        let n = (1 + k % 4).min(frames.len() - start);
        let chunk = &frames[start..start + n];
        let (lens, off) = LAYOUTS[k % LAYOUTS.len()];
        let vlan = mode == "vlan";
        let send_oob = vlan && k % 2 == 1;
        let recv_oob = vlan && k % 3 != 2;
        let shape = |oob: usize| NblShape {
            nbs_per_nbl: 1 + (k / 4) % 2,
            mdl_lengths: lens.to_vec(),
            data_offset: off,
            ieee8021q: oob,
            ..NblShape::default()
        };
        let cpu = k % cpus;
        kernel::bind_thread_to_cpu(cpu);
        let irql = if k.is_multiple_of(3) {
            PASSIVE_LEVEL
        } else {
            DISPATCH_LEVEL
        };
        kernel::at_irql(irql, || {
            nic.send_frames(&shape(if send_oob { info(OOB_SEND) } else { 0 }), chunk, 0)
        });
        let flags = if k % 5 == 4 {
            NDIS_RECEIVE_FLAGS_RESOURCES
        } else {
            0
        };
        kernel::at_irql(DISPATCH_LEVEL, || {
            nic.indicate_frames(
                &shape(if recv_oob { info(OOB_RECEIVE) } else { 0 }),
                chunk,
                flags,
            )
        });
        // Completions and returns on the next CPU, in shuffled order.
        kernel::bind_thread_to_cpu((k + 1) % cpus);
        kernel::at_irql(DISPATCH_LEVEL, || {
            nic.complete_sends(usize::MAX, k as u64 + 1);
            nic.return_receives(usize::MAX);
        });
        let (send_tci, recv_tci) = if vlan {
            (
                Some(tci(if send_oob { OOB_SEND } else { CONFIGURED })),
                recv_oob.then(|| tci(OOB_RECEIVE)),
            )
        } else {
            (None, None)
        };
        let wire = nic.wire_frames();
        let up = nic.protocol_frames();
        nic.clear_captures();
        if wire.len() != n || up.len() != n {
            failure = Some(format!(
                "frames {start}..{}: {} reached the wire and {} the protocol, {n} each expected",
                start + n,
                wire.len(),
                up.len()
            ));
            break;
        }
        for (i, f) in chunk.iter().enumerate() {
            let want_wire = model(f, send_tci);
            let want_up = model(f, recv_tci);
            if wire[i].bytes != want_wire {
                failure = Some(format!(
                    "frame {} ({}, {} bytes, layout {lens:?}+{off}) differs on the wire in mode {mode}",
                    start + i,
                    classify(f),
                    f.len()
                ));
            } else if want_wire.len() != f.len() && wire[i].ieee8021q != 0 {
                failure = Some(format!(
                    "frame {}: tagged in software but the NBL still asks the NIC to tag ({:#x})",
                    start + i,
                    wire[i].ieee8021q
                ));
            } else if up[i].bytes != want_up {
                failure = Some(format!(
                    "frame {} ({}, {} bytes, layout {lens:?}+{off}) differs at the protocol in mode {mode}",
                    start + i,
                    classify(f),
                    f.len()
                ));
            }
            if failure.is_some() {
                break;
            }
        }
        checked.0 += n as u64;
        checked.1 += n as u64;
        start += n;
        k += 1;
    }
    kernel::bind_thread_to_cpu(0);
    nic.drain();
    let outstanding = nic.outstanding();
    nic.pause().map_err(|e| format!("FilterPause: {e:?}"))?;
    nic.detach();
    drv.unload(&sim);
    let findings = sim.findings();
    let dump = sysrun::stats::read(drv.image());
    drop(drv);
    if let Some(f) = failure {
        return Err(f);
    }
    if outstanding != 0 {
        return Err(format!(
            "{outstanding} NBLs still outstanding after the replay"
        ));
    }
    if !findings.is_empty() {
        let list: Vec<String> = findings.iter().map(|f| format!("  {f}")).collect();
        return Err(format!(
            "{} ndis-sim verifier finding(s) against the loaded image:\n{}",
            findings.len(),
            list.join("\n")
        ));
    }
    // Leaks (NBLs, MDLs, pool, timers, configuration handles) are findings of finish().
    sim.finish();
    Ok((checked.0, checked.1, dump?))
}

/// `cargo xtask simulate --pcap FILE [--mode M]`: every mode when none is given.
pub fn run(sys: &Path, pcap: &Path, modes: &[&str], cpus: usize) -> Result<(), String> {
    let cap = read_capture(pcap)?;
    if cap.frames.is_empty() {
        return Err(format!("{}: no frames", pcap.display()));
    }
    let mut tally = Tally::default();
    for f in &cap.frames {
        tally.add(f);
    }
    println!(
        "simulate --pcap: {} ({}), {} Ethernet frames ({} truncated by the snap length); image {}; {} virtual CPUs",
        pcap.display(),
        cap.format,
        cap.frames.len(),
        cap.truncated,
        sys.display(),
        cpus
    );
    println!("{}", tally.render());
    for mode in modes {
        let (down, up, dump) = replay_mode(sys, &cap.frames, mode, cpus)?;
        println!(
            "mode {mode:<11}: {down} frames sent down and {up} indicated up, each checked byte for byte ({}); zero findings, nothing leaked",
            match *mode {
                "vlan" => "802.1Q tag inserted as configured / as the NBL asked, re-inserted inline on receive",
                _ => "identical to the capture",
            }
        );
        let script = workspace_paths::workspace_root()
            .join("windbg")
            .join("mdlpool.js");
        println!("{}\n", sysrun::stats::render_table(&dump, &script, false)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn captures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures")
    }

    #[test]
    fn committed_captures_read_in_both_formats_with_every_protocol() {
        let v4 = read_capture(&captures().join("ipv4.pcap")).unwrap();
        let v6 = read_capture(&captures().join("ipv6.pcapng")).unwrap();
        let jumbo = read_capture(&captures().join("jumbo-9000.pcapng")).unwrap();
        assert_eq!(
            (v4.format, v6.format, jumbo.format),
            ("pcap", "pcapng", "pcapng")
        );
        let mut t = Tally::default();
        for f in v4.frames.iter().chain(&v6.frames).chain(&jumbo.frames) {
            t.add(f);
        }
        for p in [
            "ARP",
            "ICMP",
            "TCP/IPv4",
            "UDP/IPv4",
            "IPv4 fragment",
            "ICMPv6",
            "ICMPv6 neighbour discovery",
            "TCP/IPv6",
            "UDP/IPv6",
        ] {
            assert!(
                t.by_protocol.keys().any(|k| k.starts_with(p)),
                "no {p} frame in the committed captures:\n{}",
                t.render()
            );
        }
        assert!(t.largest >= 9000 && t.over_1514 > 0, "{}", t.render());
        assert_eq!(v4.truncated + v6.truncated + jumbo.truncated, 0);
    }

    #[test]
    fn every_committed_capture_replays_through_the_shipped_image_in_every_mode() {
        let sys = sysrun::testing::package_sys().unwrap_or_else(|e| panic!("{e}"));
        for name in ["ipv4.pcap", "ipv6.pcapng", "jumbo-9000.pcapng"] {
            let cap = read_capture(&captures().join(name)).unwrap();
            for mode in ["exercise", "vlan", "passthrough"] {
                let (down, up, dump) = replay_mode(&sys, &cap.frames, mode, 2)
                    .unwrap_or_else(|e| panic!("{name} in {mode}: {e}"));
                assert_eq!(
                    (down, up),
                    (cap.frames.len() as u64, cap.frames.len() as u64)
                );
                assert_eq!(dump.totals().in_flight, 0, "{name} in {mode}");
            }
        }
    }

    #[test]
    fn a_frame_off_the_model_fails_the_replay() {
        // The image tags in vlan mode; a model that expects untagged frames must see the difference.
        fn never_tags(f: &[u8], _: Option<u16>) -> Vec<u8> {
            f.to_vec()
        }
        let sys = sysrun::testing::package_sys().unwrap_or_else(|e| panic!("{e}"));
        let cap = read_capture(&captures().join("ipv6.pcapng")).unwrap();
        let r = replay_mode_with(&sys, &cap.frames, "vlan", 2, never_tags);
        let Err(e) = r else {
            panic!("the wrong model must fail the replay");
        };
        assert!(e.contains("differs on the wire in mode vlan"), "{e}");
    }

    #[test]
    fn not_a_capture_is_refused() {
        let p = std::env::temp_dir().join(format!("mdlpool-notpcap-{}", std::process::id()));
        std::fs::write(&p, b"this is not a capture file at all, just some text").unwrap();
        let r = read_capture(&p);
        std::fs::remove_file(&p).unwrap();
        assert!(r.is_err());
    }

    #[test]
    fn vlan_model() {
        let f: Vec<u8> = (0..20u8).collect();
        let t = vlan_expected(&f, Some(0x602A));
        assert_eq!(&t[..12], &f[..12]);
        assert_eq!(&t[12..16], &[0x81, 0x00, 0x60, 0x2A]);
        assert_eq!(&t[16..], &f[12..]);
        assert_eq!(vlan_expected(&f[..13], Some(1)), f[..13].to_vec());
        let mut tagged = f.clone();
        tagged[12] = 0x88;
        tagged[13] = 0xA8;
        assert_eq!(vlan_expected(&tagged, Some(1)), tagged);
        assert_eq!(vlan_expected(&f, None), f);
    }
}
