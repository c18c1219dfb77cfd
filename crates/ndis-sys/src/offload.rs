//! Task-offload metadata: the per-NBL transmit information (`TcpIpChecksumNetBufferListInfo`,
//! `TcpLargeSendNetBufferListInfo`, `UdpSegmentationOffloadInfo`) and the miniport's offload
//! capabilities (`NDIS_OFFLOAD`, handed to a filter in `NDIS_FILTER_ATTACH_PARAMETERS::
//! DefaultOffloadConfiguration`).
//!
//! Written from the documented definitions (learn.microsoft.com: ns-nblchecksum-
//! ndis_tcp_ip_checksum_net_buffer_list_info, ns-nbllso-ndis_tcp_large_send_offload_net_buffer_list_info,
//! ns-nbluso-ndis_udp_segmentation_offload_net_buffer_list_info, ns-ntddndis-_ndis_offload and its
//! member structures). The per-NBL infos are pointer-sized unions whose bit fields occupy the low 32
//! bits (MSVC packs ULONG bit fields from bit 0); they are kept here as the raw `Value` with accessors.
//! The `NDIS_OFFLOAD` offsets are pinned below against a public x64 type dump of the header
//! (Checksum 0x04, LsoV1 0x24, IPsecV1 0x34, LsoV2 0x50, Flags 0x6C, IPsecV2 0x70, Rsc 0x90,
//! EncapsulatedPacketTaskOffloadGre 0x94, ...Vxlan 0x9C, EncapsulationTypes 0xB0; revision 6 adds
//! Rfc6877Xlat 0xB4 and UdpSegmentation 0xB8, size 0xD4).

use crate::types::NDIS_OBJECT_HEADER;

/// `UdpSegmentationOffloadInfo` (= `TcpRecvSegCoalesceInfo`, NDIS 6.83+; nblinfo.h).
pub const UdpSegmentationOffloadInfo: usize = crate::nbl::info::TcpRecvSegCoalesceInfo;

pub const NDIS_TCP_LARGE_SEND_OFFLOAD_V1_TYPE: u32 = 0;
pub const NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE: u32 = 1;
pub const NDIS_TCP_LARGE_SEND_OFFLOAD_IPv4: u32 = 0;
pub const NDIS_TCP_LARGE_SEND_OFFLOAD_IPv6: u32 = 1;
pub const NDIS_UDP_SEGMENTATION_OFFLOAD_IPV4: u32 = 0;
pub const NDIS_UDP_SEGMENTATION_OFFLOAD_IPV6: u32 = 1;

/// `NDIS_ENCAPSULATION_*` (ntddndis.h): which frame formats an offload handles.
pub const NDIS_ENCAPSULATION_NOT_SUPPORTED: u32 = 0;
pub const NDIS_ENCAPSULATION_NULL: u32 = 0x1;
pub const NDIS_ENCAPSULATION_IEEE_802_3: u32 = 0x2;
/// 802.1p/q tags in the frame (in-band).
pub const NDIS_ENCAPSULATION_IEEE_802_3_P_AND_Q: u32 = 0x4;
/// 802.1p/q tags in the NBL's `Ieee8021QNetBufferListInfo` (the NIC inserts them).
pub const NDIS_ENCAPSULATION_IEEE_802_3_P_AND_Q_IN_OOB: u32 = 0x8;
pub const NDIS_ENCAPSULATION_IEEE_LLC_SNAP_ROUTED: u32 = 0x10;

/// `NDIS_OFFLOAD_SUPPORTED` for the 2-bit capability fields.
pub const NDIS_OFFLOAD_NOT_SUPPORTED: u32 = 0;
pub const NDIS_OFFLOAD_SUPPORTED: u32 = 1;

/// `NDIS_MAC_OPTION_8021Q_VLAN` (restart attributes' `MacOptions`): the NIC inserts/strips 802.1Q
/// tags given in `Ieee8021QNetBufferListInfo`.
pub const NDIS_MAC_OPTION_8021Q_VLAN: u32 = 0x200;
pub const NDIS_MAC_OPTION_8021P_PRIORITY: u32 = 0x40;

pub const NDIS_OFFLOAD_REVISION_6: u8 = 6;
/// `RTL_SIZEOF_THROUGH_FIELD(NDIS_OFFLOAD, UdpSegmentation)`.
pub const NDIS_SIZEOF_NDIS_OFFLOAD_REVISION_6: u16 = 0xD4;
/// `RTL_SIZEOF_THROUGH_FIELD(NDIS_OFFLOAD, Flags)`.
pub const NDIS_SIZEOF_NDIS_OFFLOAD_REVISION_1: u16 = 0x70;

const fn bits(v: usize, at: u32, width: u32) -> u32 {
    ((v as u64 >> at) & ((1u64 << width) - 1)) as u32
}

const fn with_bits(v: usize, at: u32, width: u32, x: u32) -> usize {
    let mask = ((1u64 << width) - 1) << at;
    ((v as u64 & !mask) | (((x as u64) << at) & mask)) as usize
}

/// `NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO.Transmit`: `IsIPv4:1, IsIPv6:1, TcpChecksum:1,
/// UdpChecksum:1, IpHeaderChecksum:1, Reserved:11, TcpHeaderOffset:10`.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO {
    pub Value: usize,
}

impl NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO {
    pub const fn IsIPv4(self) -> u32 {
        bits(self.Value, 0, 1)
    }
    pub const fn IsIPv6(self) -> u32 {
        bits(self.Value, 1, 1)
    }
    pub const fn TcpChecksum(self) -> u32 {
        bits(self.Value, 2, 1)
    }
    pub const fn UdpChecksum(self) -> u32 {
        bits(self.Value, 3, 1)
    }
    pub const fn IpHeaderChecksum(self) -> u32 {
        bits(self.Value, 4, 1)
    }
    /// Offset of the TCP (or UDP) header from the start of the frame.
    pub const fn TcpHeaderOffset(self) -> u32 {
        bits(self.Value, 16, 10)
    }
    pub const fn with_TcpHeaderOffset(self, off: u32) -> Self {
        Self {
            Value: with_bits(self.Value, 16, 10, off),
        }
    }
    /// A transmit request.
    pub const fn transmit(
        v4: bool,
        v6: bool,
        tcp: bool,
        udp: bool,
        ip: bool,
        l4_offset: u32,
    ) -> Self {
        let mut v = 0usize;
        v = with_bits(v, 0, 1, v4 as u32);
        v = with_bits(v, 1, 1, v6 as u32);
        v = with_bits(v, 2, 1, tcp as u32);
        v = with_bits(v, 3, 1, udp as u32);
        v = with_bits(v, 4, 1, ip as u32);
        v = with_bits(v, 16, 10, l4_offset);
        Self { Value: v }
    }
}

/// The accessors the LSO and USO per-NBL infos share: both put `MSS:20` at bit 0, the transport
/// header's offset (`$offset`, 10 bits) at bit 20 and `IPVersion:1` at bit 31, and both count as set
/// when their low 32 bits are not all zero (`NET_BUFFER_LIST_IS_USO_SET`, and the same test for LSO).
macro_rules! segmentation_nbl_info {
    ($ty:ident, $offset:ident, $with_offset:ident) => {
        impl $ty {
            pub const fn MSS(self) -> u32 {
                bits(self.Value, 0, 20)
            }
            /// Offset of the transport header from the start of the frame.
            pub const fn $offset(self) -> u32 {
                bits(self.Value, 20, 10)
            }
            pub const fn $with_offset(self, off: u32) -> Self {
                Self {
                    Value: with_bits(self.Value, 20, 10, off),
                }
            }
            /// `IPVersion` (LSOv2 and USO; for LSOv1 the reserved bit).
            pub const fn IPVersion(self) -> u32 {
                bits(self.Value, 31, 1)
            }
            /// Whether a transmit request is present (the low 32 bits are not all zero).
            pub const fn is_set(self) -> bool {
                self.Value as u32 != 0
            }
            /// `MSS`, the transport header's offset and `IPVersion` packed, the rest zero.
            const fn packed(mss: u32, offset: u32, ipv6: bool) -> usize {
                with_bits(
                    with_bits(with_bits(0, 0, 20, mss), 20, 10, offset),
                    31,
                    1,
                    ipv6 as u32,
                )
            }
        }
    };
}

/// `NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO`: `LsoV1Transmit{MSS:20, TcpHeaderOffset:10,
/// Type:1, Reserved2:1}`, `LsoV2Transmit{MSS:20, TcpHeaderOffset:10, Type:1, IPVersion:1}`.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO {
    pub Value: usize,
}

segmentation_nbl_info!(
    NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO,
    TcpHeaderOffset,
    with_TcpHeaderOffset
);

impl NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO {
    /// `Transmit.Type`: [`NDIS_TCP_LARGE_SEND_OFFLOAD_V1_TYPE`] or `_V2_TYPE`.
    pub const fn Type(self) -> u32 {
        bits(self.Value, 30, 1)
    }
    pub const fn v1(mss: u32, tcp_offset: u32) -> Self {
        let v = Self::packed(mss, tcp_offset, false);
        Self {
            Value: with_bits(v, 30, 1, NDIS_TCP_LARGE_SEND_OFFLOAD_V1_TYPE),
        }
    }
    pub const fn v2(mss: u32, tcp_offset: u32, ipv6: bool) -> Self {
        let v = Self::packed(mss, tcp_offset, ipv6);
        Self {
            Value: with_bits(v, 30, 1, NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE),
        }
    }
}

/// `NDIS_UDP_SEGMENTATION_OFFLOAD_NET_BUFFER_LIST_INFO.Transmit`: `MSS:20, UdpHeaderOffset:10,
/// Reserved:1, IPVersion:1`.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NDIS_UDP_SEGMENTATION_OFFLOAD_NET_BUFFER_LIST_INFO {
    pub Value: usize,
}

segmentation_nbl_info!(
    NDIS_UDP_SEGMENTATION_OFFLOAD_NET_BUFFER_LIST_INFO,
    UdpHeaderOffset,
    with_UdpHeaderOffset
);

impl NDIS_UDP_SEGMENTATION_OFFLOAD_NET_BUFFER_LIST_INFO {
    pub const fn new(mss: u32, udp_offset: u32, ipv6: bool) -> Self {
        Self {
            Value: Self::packed(mss, udp_offset, ipv6),
        }
    }
}

/// One direction/version of `NDIS_TCP_IP_CHECKSUM_OFFLOAD`: `Encapsulation` then a ULONG of 2-bit
/// fields (IPv4: `IpOptionsSupported, TcpOptionsSupported, TcpChecksum, UdpChecksum, IpChecksum`;
/// IPv6: `IpExtensionHeadersSupported, TcpOptionsSupported, TcpChecksum, UdpChecksum`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NDIS_CHECKSUM_OFFLOAD_DIRECTION {
    pub Encapsulation: u32,
    pub Bits: u32,
}

impl NDIS_CHECKSUM_OFFLOAD_DIRECTION {
    /// IPv4: IpOptionsSupported (bits 0..2); IPv6: IpExtensionHeadersSupported.
    pub const fn IpOptionsSupported(self) -> u32 {
        self.Bits & 3
    }
    pub const fn TcpOptionsSupported(self) -> u32 {
        (self.Bits >> 2) & 3
    }
    pub const fn TcpChecksum(self) -> u32 {
        (self.Bits >> 4) & 3
    }
    pub const fn UdpChecksum(self) -> u32 {
        (self.Bits >> 6) & 3
    }
    /// IPv4 only.
    pub const fn IpChecksum(self) -> u32 {
        (self.Bits >> 8) & 3
    }
}

/// `NDIS_TCP_IP_CHECKSUM_OFFLOAD` (0x20).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NDIS_TCP_IP_CHECKSUM_OFFLOAD {
    pub IPv4Transmit: NDIS_CHECKSUM_OFFLOAD_DIRECTION,
    pub IPv4Receive: NDIS_CHECKSUM_OFFLOAD_DIRECTION,
    pub IPv6Transmit: NDIS_CHECKSUM_OFFLOAD_DIRECTION,
    pub IPv6Receive: NDIS_CHECKSUM_OFFLOAD_DIRECTION,
}

/// One IP version of `NDIS_TCP_LARGE_SEND_OFFLOAD_V2` / `NDIS_UDP_SEGMENTATION_OFFLOAD` (IPv4: 12
/// bytes, IPv6: 16, with a ULONG of bit fields; for IPv4 of LSOv2 `Bits` does not exist, see the
/// parent structures).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NDIS_SEGMENTATION_OFFLOAD_V4 {
    pub Encapsulation: u32,
    pub MaxOffLoadSize: u32,
    pub MinSegmentCount: u32,
}

/// `{Encapsulation, MaxOffLoadSize, MinSegmentCount, ULONG of bit fields}` (16 bytes): the IPv6 block
/// of `NDIS_TCP_LARGE_SEND_OFFLOAD_V2` / `NDIS_UDP_SEGMENTATION_OFFLOAD`, and the one (IPv4) block of
/// [`NDIS_TCP_LARGE_SEND_OFFLOAD_V1`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NDIS_SEGMENTATION_OFFLOAD_V6 {
    pub Encapsulation: u32,
    pub MaxOffLoadSize: u32,
    pub MinSegmentCount: u32,
    pub Bits: u32,
}

/// `NDIS_TCP_LARGE_SEND_OFFLOAD_V1` (0x10): IPv4 `{Encapsulation, MaxOffLoadSize, MinSegmentCount,
/// TcpOptions:2, IpOptions:2}`, the shape of [`NDIS_SEGMENTATION_OFFLOAD_V6`].
pub type NDIS_TCP_LARGE_SEND_OFFLOAD_V1 = NDIS_SEGMENTATION_OFFLOAD_V6;

/// `NDIS_TCP_LARGE_SEND_OFFLOAD_V2` and `NDIS_UDP_SEGMENTATION_OFFLOAD` (0x1C each) have the same
/// shape: an IPv4 and an IPv6 [`NDIS_SEGMENTATION_OFFLOAD_V4`] / [`NDIS_SEGMENTATION_OFFLOAD_V6`].
/// For USO, IPv4 is `{Encapsulation, MaxOffLoadSize, MinSegmentCount:6,
/// SubMssFinalSegmentSupported:1, ...}`, IPv6 the same plus `IpExtensionHeadersSupported:2`:
/// `MinSegmentCount` is the low 6 bits of the third ULONG.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NDIS_SEGMENTATION_OFFLOAD {
    pub IPv4: NDIS_SEGMENTATION_OFFLOAD_V4,
    pub IPv6: NDIS_SEGMENTATION_OFFLOAD_V6,
}

/// `NDIS_TCP_LARGE_SEND_OFFLOAD_V2` (0x1C).
pub type NDIS_TCP_LARGE_SEND_OFFLOAD_V2 = NDIS_SEGMENTATION_OFFLOAD;

/// `NDIS_UDP_SEGMENTATION_OFFLOAD` (0x1C).
pub type NDIS_UDP_SEGMENTATION_OFFLOAD = NDIS_SEGMENTATION_OFFLOAD;

/// `NDIS_OFFLOAD` through revision 6 (0xD4). The IPsec, RSC and encapsulated-packet members the
/// filter never reads are kept as opaque bytes of their documented sizes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDIS_OFFLOAD {
    pub Header: NDIS_OBJECT_HEADER,
    pub Checksum: NDIS_TCP_IP_CHECKSUM_OFFLOAD,
    pub LsoV1: NDIS_TCP_LARGE_SEND_OFFLOAD_V1,
    pub IPsecV1: [u32; 7],
    pub LsoV2: NDIS_TCP_LARGE_SEND_OFFLOAD_V2,
    pub Flags: u32,
    pub IPsecV2: [u32; 8],
    pub Rsc: [u8; 4],
    pub EncapsulatedPacketTaskOffloadGre: [u32; 2],
    pub EncapsulatedPacketTaskOffloadVxlan: [u32; 5],
    pub EncapsulationTypes: u8,
    pub Rfc6877Xlat: u32,
    pub UdpSegmentation: NDIS_UDP_SEGMENTATION_OFFLOAD,
}

#[cfg(target_pointer_width = "64")]
mod layout {
    use super::*;
    use core::mem::{offset_of, size_of};

    const _: () = assert!(size_of::<NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO>() == 8);
    const _: () = assert!(size_of::<NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO>() == 8);
    const _: () = assert!(size_of::<NDIS_UDP_SEGMENTATION_OFFLOAD_NET_BUFFER_LIST_INFO>() == 8);
    const _: () = assert!(size_of::<NDIS_TCP_IP_CHECKSUM_OFFLOAD>() == 0x20);
    const _: () = assert!(size_of::<NDIS_TCP_LARGE_SEND_OFFLOAD_V1>() == 0x10);
    const _: () = assert!(size_of::<NDIS_TCP_LARGE_SEND_OFFLOAD_V2>() == 0x1C);
    const _: () = assert!(size_of::<NDIS_UDP_SEGMENTATION_OFFLOAD>() == 0x1C);
    const _: () = assert!(offset_of!(NDIS_OFFLOAD, Checksum) == 0x04);
    const _: () = assert!(offset_of!(NDIS_OFFLOAD, LsoV1) == 0x24);
    const _: () = assert!(offset_of!(NDIS_OFFLOAD, IPsecV1) == 0x34);
    const _: () = assert!(offset_of!(NDIS_OFFLOAD, LsoV2) == 0x50);
    const _: () = assert!(offset_of!(NDIS_OFFLOAD, Flags) == 0x6C);
    const _: () = assert!(offset_of!(NDIS_OFFLOAD, IPsecV2) == 0x70);
    const _: () = assert!(offset_of!(NDIS_OFFLOAD, Rsc) == 0x90);
    const _: () = assert!(offset_of!(NDIS_OFFLOAD, EncapsulatedPacketTaskOffloadGre) == 0x94);
    const _: () = assert!(offset_of!(NDIS_OFFLOAD, EncapsulatedPacketTaskOffloadVxlan) == 0x9C);
    const _: () = assert!(offset_of!(NDIS_OFFLOAD, EncapsulationTypes) == 0xB0);
    const _: () = assert!(offset_of!(NDIS_OFFLOAD, Rfc6877Xlat) == 0xB4);
    const _: () = assert!(offset_of!(NDIS_OFFLOAD, UdpSegmentation) == 0xB8);
    const _: () =
        assert!(size_of::<NDIS_OFFLOAD>() == NDIS_SIZEOF_NDIS_OFFLOAD_REVISION_6 as usize);
    const _: () =
        assert!(offset_of!(NDIS_OFFLOAD, IPsecV2) == NDIS_SIZEOF_NDIS_OFFLOAD_REVISION_1 as usize);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_fields_follow_the_documented_order() {
        let lso = NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO::v2(1448, 54, true);
        assert_eq!(
            (
                lso.MSS(),
                lso.TcpHeaderOffset(),
                lso.Type(),
                lso.IPVersion()
            ),
            (1448, 54, 1, 1)
        );
        assert_eq!(lso.Value, 1448 | (54 << 20) | (1 << 30) | (1 << 31));
        assert_eq!(lso.with_TcpHeaderOffset(58).TcpHeaderOffset(), 58);
        let v1 = NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO::v1(536, 34);
        assert_eq!((v1.Type(), v1.TcpHeaderOffset()), (0, 34));
        let uso = NDIS_UDP_SEGMENTATION_OFFLOAD_NET_BUFFER_LIST_INFO::new(1472, 34, false);
        assert_eq!(uso.Value, 1472 | (34 << 20));
        let ck =
            NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO::transmit(true, false, true, false, true, 34);
        assert_eq!(ck.Value, 1 | 4 | 16 | (34 << 16));
        assert_eq!(ck.with_TcpHeaderOffset(38).TcpHeaderOffset(), 38);
    }
}
