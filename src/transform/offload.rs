//! How the vlan transform treats an NBL that asks the NIC for a transmit offload (checksum, LSOv1,
//! LSOv2, USO) or whose tagged frame would exceed the NIC's maximum frame size, from the NIC's
//! advertised capabilities (DESIGN §5 "Transforms", README "Configuration").
//!
//! The per-NBL offload infos locate the TCP/UDP header by its offset from the start of the frame, and
//! the NIC finds the IP header behind the MAC header it parses. An in-band tag moves both by 4 bytes,
//! so a tagged offloaded frame is correct only if (a) the offsets are moved by 4 as well and (b) the
//! NIC parses tagged frames for that offload (`NDIS_ENCAPSULATION_IEEE_802_3_P_AND_Q` in its
//! `NDIS_OFFLOAD` entry for the offload and IP version). Decision per NBL ([`plan`]):
//! 1. every offload the NBL asks for handles in-band tags (P_AND_Q), and each frame (each segment for
//!    LSO/USO) fits the maximum size once tagged → **tag in the frame**, move the offsets by 4
//!    ([`shift_offsets`]) and put the NBL's original infos back at completion;
//! 2. otherwise, if the NIC inserts tags itself (`P_AND_Q_IN_OOB` for those offloads, or
//!    `NDIS_MAC_OPTION_8021Q_VLAN`) → leave the frame alone and **hand the tag to the NIC** in
//!    `Ieee8021QNetBufferListInfo` (the documented alternative);
//! 3. otherwise → **leave the NBL untagged** and count it (`vlan_untouched_nbls`): a frame the NIC
//!    would checksum or segment at the wrong bytes, or drop for its size, is worse than an untagged
//!    one.
//!
//! Maximum frame size: `MtuSize` (bytes after the MAC header, from the restart attributes; 1500, the
//! Ethernet value, when the miniport reported none) + 14, and + 4 for a tagged frame when the NIC
//! handles in-band 802.1Q frames (P_AND_Q in any offload entry; IEEE 802.3ac extends the maximum by
//! the tag). LSO/USO segments are the TCP/IP transport's MSS plus headers, which it sizes to the
//! MTU untagged, so a tagged segment needs that extension.
//!
//! Owns: the decision and the offset arithmetic, and reading MTU / MAC options out of the general
//! restart attributes (found with `ndis::GeneralAttributes`, the walk `filter/restart.rs` uses too).
//! Must not: touch NBLs (datapath.rs applies it). IRQL: pure, any IRQL, except
//! [`from_restart_attributes`] (PASSIVE_LEVEL, FilterRestart).

use crate::ndis::GeneralAttributes;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use ndis_sys::*;

/// The NIC's transmit offload capabilities as far as the vlan transform needs them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicCaps {
    /// NDIS_ENCAPSULATION_* per offload and IP version, 0 when not supported:
    /// [checksum v4, checksum v6, LSOv1 (v4), LSOv2 v4, LSOv2 v6, USO v4, USO v6].
    pub encapsulation: [u32; 7],
    /// `NDIS_MAC_OPTION_8021Q_VLAN` was reported (the NIC inserts tags from the OOB info).
    pub mac_8021q: bool,
    /// MtuSize (bytes after the MAC header); 0 = not reported (1500 assumed).
    pub mtu: u32,
}

/// [`NicCaps`] readable from any CPU: written at attach (offload configuration) and at each restart
/// (MtuSize, MacOptions), read by the data path.
#[derive(Default)]
pub struct AtomicNicCaps {
    encapsulation: [AtomicU32; 7],
    mac_8021q: AtomicBool,
    mtu: AtomicU32,
}

impl AtomicNicCaps {
    /// Any IRQL.
    pub fn store_offload(&self, c: &NicCaps) {
        for (a, v) in self.encapsulation.iter().zip(c.encapsulation) {
            a.store(v, Ordering::Relaxed);
        }
    }

    /// Any IRQL.
    pub fn store_restart(&self, mtu: u32, mac_8021q: bool) {
        self.mtu.store(mtu, Ordering::Relaxed);
        self.mac_8021q.store(mac_8021q, Ordering::Relaxed);
    }

    /// Any IRQL.
    pub fn load(&self) -> NicCaps {
        NicCaps {
            encapsulation: core::array::from_fn(|i| self.encapsulation[i].load(Ordering::Relaxed)),
            mac_8021q: self.mac_8021q.load(Ordering::Relaxed),
            mtu: self.mtu.load(Ordering::Relaxed),
        }
    }
}

/// Offsets in NDIS_RESTART_GENERAL_ATTRIBUTES (the data of an `OID_GEN_MINIPORT_RESTART_ATTRIBUTES`
/// restart attributes entry): MtuSize at 0x04, MacOptions at 0x1C on x64 and arm64.
const GENERAL_MTU_OFFSET: usize = 0x04;
const GENERAL_MAC_OPTIONS_OFFSET: usize = 0x1C;

/// (MtuSize, MacOptions has NDIS_MAC_OPTION_8021Q_VLAN) from FilterRestart's restart attributes,
/// or `None` when they carry no general attributes. PASSIVE_LEVEL (FilterRestart).
///
/// # Safety
/// `attrs` must be NULL or the head of the valid restart attributes list NDIS passed.
pub unsafe fn from_restart_attributes(attrs: *mut NDIS_RESTART_ATTRIBUTES) -> Option<(u32, bool)> {
    // SAFETY: NDIS's restart attributes list, used during FilterRestart (caller contract).
    let (data, _) = unsafe { GeneralAttributes::new(attrs) }
        .find(|&(_, len)| len as usize >= GENERAL_MAC_OPTIONS_OFFSET + 4)?;
    // SAFETY: GeneralAttributes yields Data with `len` readable bytes; the two ULONGs read lie inside
    // them (unaligned reads: the data is only guaranteed 8-aligned by NDIS).
    let (mtu, opts) = unsafe {
        (
            (data.add(GENERAL_MTU_OFFSET) as *const u32).read_unaligned(),
            (data.add(GENERAL_MAC_OPTIONS_OFFSET) as *const u32).read_unaligned(),
        )
    };
    Some((mtu, opts & NDIS_MAC_OPTION_8021Q_VLAN != 0))
}

/// Ethernet's MtuSize when the miniport reported none.
pub const DEFAULT_MTU: u32 = 1500;

impl NicCaps {
    /// From the `NDIS_OFFLOAD` a filter gets at attach (`DefaultOffloadConfiguration`); a header of
    /// another type or a short revision leaves the members it lacks unsupported. Any IRQL.
    ///
    /// # Safety
    /// `o` must be NULL or point to a readable NDIS_OFFLOAD of at least `o.Header.Size` bytes.
    pub unsafe fn from_ndis_offload(o: *const NDIS_OFFLOAD) -> Self {
        let mut caps = NicCaps::default();
        if o.is_null() {
            return caps;
        }
        // SAFETY: readable header (caller contract).
        let h = unsafe { (*o).Header };
        if h.Type != NDIS_OBJECT_TYPE_OFFLOAD {
            return caps;
        }
        let size = h.Size as usize;
        let has = |end: usize| size >= end;
        // SAFETY: each member is read only when the reported size covers it.
        unsafe {
            if has(core::mem::offset_of!(NDIS_OFFLOAD, IPsecV1)) {
                let c = (*o).Checksum;
                let tx4 = c.IPv4Transmit;
                let tx6 = c.IPv6Transmit;
                if tx4.TcpChecksum() | tx4.UdpChecksum() | tx4.IpChecksum() != 0 {
                    caps.encapsulation[0] = tx4.Encapsulation;
                }
                if tx6.TcpChecksum() | tx6.UdpChecksum() != 0 {
                    caps.encapsulation[1] = tx6.Encapsulation;
                }
                if (*o).LsoV1.MaxOffLoadSize != 0 {
                    caps.encapsulation[2] = (*o).LsoV1.Encapsulation;
                }
            }
            if has(core::mem::offset_of!(NDIS_OFFLOAD, Flags)) {
                let l = (*o).LsoV2;
                if l.IPv4.MaxOffLoadSize != 0 {
                    caps.encapsulation[3] = l.IPv4.Encapsulation;
                }
                if l.IPv6.MaxOffLoadSize != 0 {
                    caps.encapsulation[4] = l.IPv6.Encapsulation;
                }
            }
            if has(core::mem::size_of::<NDIS_OFFLOAD>()) {
                let u = (*o).UdpSegmentation;
                if u.IPv4.MaxOffLoadSize != 0 {
                    caps.encapsulation[5] = u.IPv4.Encapsulation;
                }
                if u.IPv6.MaxOffLoadSize != 0 {
                    caps.encapsulation[6] = u.IPv6.Encapsulation;
                }
            }
        }
        caps
    }

    /// MtuSize in force.
    pub fn mtu(&self) -> u32 {
        if self.mtu == 0 {
            DEFAULT_MTU
        } else {
            self.mtu
        }
    }

    /// Whether the NIC handles in-band 802.1Q frames (P_AND_Q in any offload entry).
    pub fn handles_tagged_frames(&self) -> bool {
        self.encapsulation
            .iter()
            .any(|e| e & NDIS_ENCAPSULATION_IEEE_802_3_P_AND_Q != 0)
    }

    /// Longest frame the NIC takes, tagged or not.
    pub fn max_frame(&self, tagged: bool) -> u32 {
        self.mtu()
            + 14
            + if tagged && self.handles_tagged_frames() {
                4
            } else {
                0
            }
    }
}

/// Index into [`NicCaps::encapsulation`] of each offload an NBL asks for (up to 3).
fn requested(infos: [usize; 3]) -> ([usize; 3], usize) {
    let ck = NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO { Value: infos[0] };
    let lso = NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO { Value: infos[1] };
    let uso = NDIS_UDP_SEGMENTATION_OFFLOAD_NET_BUFFER_LIST_INFO { Value: infos[2] };
    let mut out = [0usize; 3];
    let mut n = 0;
    if ck.TcpChecksum() | ck.UdpChecksum() | ck.IpHeaderChecksum() != 0 {
        out[n] = if ck.IsIPv6() != 0 { 1 } else { 0 };
        n += 1;
    }
    if lso.is_set() {
        out[n] = if lso.Type() == NDIS_TCP_LARGE_SEND_OFFLOAD_V1_TYPE {
            2
        } else if lso.IPVersion() == NDIS_TCP_LARGE_SEND_OFFLOAD_IPv6 {
            4
        } else {
            3
        };
        n += 1;
    }
    if uso.is_set() {
        out[n] = if uso.IPVersion() == NDIS_UDP_SEGMENTATION_OFFLOAD_IPV6 {
            6
        } else {
            5
        };
        n += 1;
    }
    (out, n)
}

/// Whether the NBL asks for any transmit offload.
pub fn any_offload(infos: [usize; 3]) -> bool {
    requested(infos).1 != 0
}

/// Whether the NBL asks for segmentation (LSO/USO): then its NB is longer than a frame and the NIC
/// cuts it into frames of MSS + headers.
pub fn segments(infos: [usize; 3]) -> bool {
    NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO { Value: infos[1] }.is_set()
        || NDIS_UDP_SEGMENTATION_OFFLOAD_NET_BUFFER_LIST_INFO { Value: infos[2] }.is_set()
}

/// What to do with one NBL whose frames should carry a tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Insert the tag into every frame; move the offload offsets by 4 (`shift_offsets`).
    InBand,
    /// Leave the frames alone; the NIC inserts the tag from `Ieee8021QNetBufferListInfo`.
    Oob,
    /// Leave the NBL untagged (counted).
    Untagged,
}

/// The decision of the module docs for an NBL with `infos` whose longest NB is `longest` bytes.
pub fn plan(infos: [usize; 3], longest: u32, caps: &NicCaps) -> Plan {
    let (req, n) = requested(infos);
    let req = &req[..n];
    let all = |bit: u32| req.iter().all(|&k| caps.encapsulation[k] & bit != 0);
    let size_ok = segments(infos) || longest as u64 + 4 <= caps.max_frame(true) as u64;
    let offsets_fit = shift_offsets(infos).is_some();
    if all(NDIS_ENCAPSULATION_IEEE_802_3_P_AND_Q) && size_ok && offsets_fit {
        return Plan::InBand;
    }
    let oob = caps.mac_8021q
        || (n != 0 && all(NDIS_ENCAPSULATION_IEEE_802_3_P_AND_Q_IN_OOB))
        || (n == 0
            && caps
                .encapsulation
                .iter()
                .any(|e| e & NDIS_ENCAPSULATION_IEEE_802_3_P_AND_Q_IN_OOB != 0));
    if oob {
        Plan::Oob
    } else {
        Plan::Untagged
    }
}

/// The infos with every TCP/UDP header offset moved 4 bytes further (the tag sits in front of the IP
/// header), or `None` if an offset would not fit its 10 bits.
pub fn shift_offsets(infos: [usize; 3]) -> Option<[usize; 3]> {
    let mut out = infos;
    let ck = NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO { Value: infos[0] };
    if ck.TcpChecksum() | ck.UdpChecksum() != 0 {
        let off = ck.TcpHeaderOffset() + 4;
        if off > 0x3FF {
            return None;
        }
        out[0] = ck.with_TcpHeaderOffset(off).Value;
    }
    let lso = NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO { Value: infos[1] };
    if lso.is_set() {
        let off = lso.TcpHeaderOffset() + 4;
        if off > 0x3FF {
            return None;
        }
        out[1] = lso.with_TcpHeaderOffset(off).Value;
    }
    let uso = NDIS_UDP_SEGMENTATION_OFFLOAD_NET_BUFFER_LIST_INFO { Value: infos[2] };
    if uso.is_set() {
        let off = uso.UdpHeaderOffset() + 4;
        if off > 0x3FF {
            return None;
        }
        out[2] = uso.with_UdpHeaderOffset(off).Value;
    }
    Some(out)
}

/// The NBL info slots the three infos live in.
pub const SLOTS: [usize; 3] = [
    info::TcpIpChecksumNetBufferListInfo,
    info::TcpLargeSendNetBufferListInfo,
    UdpSegmentationOffloadInfo,
];

#[cfg(test)]
mod tests {
    use super::*;

    const P_AND_Q: u32 = NDIS_ENCAPSULATION_IEEE_802_3 | NDIS_ENCAPSULATION_IEEE_802_3_P_AND_Q;
    const OOB: u32 = NDIS_ENCAPSULATION_IEEE_802_3 | NDIS_ENCAPSULATION_IEEE_802_3_P_AND_Q_IN_OOB;

    fn caps(e: u32) -> NicCaps {
        NicCaps {
            encapsulation: [e; 7],
            mac_8021q: false,
            mtu: 1500,
        }
    }

    #[test]
    fn decisions_per_case() {
        let lso = [
            0,
            NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO::v2(1440, 54, false).Value,
            0,
        ];
        assert_eq!(plan(lso, 64000, &caps(P_AND_Q)), Plan::InBand);
        assert_eq!(plan(lso, 64000, &caps(OOB)), Plan::Oob);
        assert_eq!(
            plan(lso, 64000, &caps(NDIS_ENCAPSULATION_IEEE_802_3)),
            Plan::Untagged
        );
        // Plain frames: size decides.
        assert_eq!(plan([0; 3], 1514, &caps(P_AND_Q)), Plan::InBand);
        assert_eq!(
            plan([0; 3], 1510, &caps(NDIS_ENCAPSULATION_IEEE_802_3)),
            Plan::InBand
        );
        assert_eq!(
            plan([0; 3], 1511, &caps(NDIS_ENCAPSULATION_IEEE_802_3)),
            Plan::Untagged
        );
        assert_eq!(plan([0; 3], 1511, &caps(OOB)), Plan::Oob);
        let mut c = caps(0);
        c.mac_8021q = true;
        assert_eq!(plan([0; 3], 1514, &c), Plan::Oob);
        // A checksum frame at exactly the maximum.
        let ck = [
            NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO::transmit(true, false, true, false, true, 34)
                .Value,
            0,
            0,
        ];
        assert_eq!(plan(ck, 1514, &caps(P_AND_Q)), Plan::InBand);
        assert_eq!(plan(ck, 1514, &caps(OOB)), Plan::Oob);
    }

    #[test]
    fn offsets_move_by_four_and_nothing_else_changes() {
        let infos = [
            NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO::transmit(
                false, true, false, true, false, 62,
            )
            .Value,
            NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO::v1(536, 38).Value,
            NDIS_UDP_SEGMENTATION_OFFLOAD_NET_BUFFER_LIST_INFO::new(1232, 62, true).Value,
        ];
        let s = shift_offsets(infos).unwrap();
        assert_eq!(s[0], infos[0] + (4 << 16));
        assert_eq!(s[1], infos[1] + (4 << 20));
        assert_eq!(s[2], infos[2] + (4 << 20));
        let big = [
            0,
            NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO::v1(536, 1021).Value,
            0,
        ];
        assert_eq!(shift_offsets(big), None);
    }
}
