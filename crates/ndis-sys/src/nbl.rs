//! NET_BUFFER, NET_BUFFER_LIST, their context area, accessor macros, info indices and flags
//! (ndis-contract.md §1.2–§1.6).

use crate::mdl::MDL;
use crate::types::*;

/// `NET_BUFFER_DATA_LENGTH`: a ULONG overlaying the low half of an 8-byte SIZE_T.
#[repr(C)]
#[derive(Clone, Copy)]
pub union NET_BUFFER_DATA_LENGTH {
    pub DataLength: u32,
    pub stDataLength: SIZE_T,
}

/// `NET_BUFFER` (x64 size 0xB0). The leading union's `SLIST_HEADER` view is not modelled; its
/// 16-byte alignment is, through `align(16)`.
#[repr(C, align(16))]
pub struct NET_BUFFER {
    pub Next: *mut NET_BUFFER,
    pub CurrentMdl: *mut MDL,
    pub CurrentMdlOffset: u32,
    pub NbDataLength: NET_BUFFER_DATA_LENGTH,
    pub MdlChain: *mut MDL,
    pub DataOffset: u32,
    /// Tail padding of the 0x30-byte leading union (its SLIST_HEADER view is 16-byte aligned).
    pub _DataOffsetPad: u32,
    pub ChecksumBias: u16,
    pub Reserved: u16,
    pub NdisPoolHandle: NDIS_HANDLE,
    pub NdisReserved: [PVOID; 2],
    pub ProtocolReserved: [PVOID; 6],
    pub MiniportReserved: [PVOID; 4],
    pub DataPhysicalAddress: PHYSICAL_ADDRESS,
    /// `SharedMemoryInfo` / `ScatterGatherList` union.
    pub SharedMemoryInfo: PVOID,
}

impl NET_BUFFER {
    /// `NET_BUFFER_DATA_LENGTH(nb)`.
    #[inline]
    pub fn DataLength(&self) -> u32 {
        // SAFETY: every bit pattern is a valid u32; the low half of the union is DataLength.
        unsafe { self.NbDataLength.DataLength }
    }

    /// Sets `NET_BUFFER_DATA_LENGTH(nb)` (the ULONG view, as ndis.sys does).
    #[inline]
    pub fn SetDataLength(&mut self, v: u32) {
        self.NbDataLength.DataLength = v;
    }
}

/// `NDIS_NET_BUFFER_LIST_INFO` count for an NDIS 6.80+ x64 driver (no NDIS_WRAPPER).
pub const MaxNetBufferListInfo: usize = 27;

/// `NET_BUFFER_LIST` as an NDIS 6.80 driver sees it (x64 size 0x170). ndis.sys itself allocates
/// 0x180 (two more info slots).
#[repr(C, align(16))]
pub struct NET_BUFFER_LIST {
    pub Next: *mut NET_BUFFER_LIST,
    pub FirstNetBuffer: *mut NET_BUFFER,
    pub Context: *mut NET_BUFFER_LIST_CONTEXT,
    pub ParentNetBufferList: *mut NET_BUFFER_LIST,
    pub NdisPoolHandle: NDIS_HANDLE,
    pub _Pad0: usize,
    pub NdisReserved: [PVOID; 2],
    pub ProtocolReserved: [PVOID; 4],
    pub MiniportReserved: [PVOID; 2],
    pub Scratch: PVOID,
    pub SourceHandle: NDIS_HANDLE,
    pub NblFlags: u32,
    pub ChildRefCount: i32,
    pub Flags: u32,
    /// `Status` / `NdisReserved2`.
    pub Status: i32,
    pub NetBufferListInfo: [PVOID; MaxNetBufferListInfo],
}

/// `NET_BUFFER_LIST_CONTEXT` header (size 0x10); `ContextData` follows at offset 0x10.
/// `Size` is the whole context space, used and unused; `Offset` is the unused space in front of the
/// used data, which runs from `ContextData + Offset` to the end (ns-nbl-net_buffer_list_context).
#[repr(C, align(16))]
pub struct NET_BUFFER_LIST_CONTEXT {
    pub Next: *mut NET_BUFFER_LIST_CONTEXT,
    pub Size: u16,
    pub Offset: u16,
}

/// `NET_BUFFER_LIST_CONTEXT_DATA_START(nbl)`.
///
/// # Safety
/// `nbl` must be a valid NBL with a non-NULL `Context`.
#[inline]
pub unsafe fn NET_BUFFER_LIST_CONTEXT_DATA_START(nbl: *const NET_BUFFER_LIST) -> *mut u8 {
    // SAFETY: the caller guarantees a valid NBL with a context header; data follows the header.
    unsafe {
        let ctx = (*nbl).Context;
        (ctx.add(1) as *mut u8).add((*ctx).Offset as usize)
    }
}

/// `NET_BUFFER_LIST_CONTEXT_DATA_SIZE(nbl)`: as the header defines it, the block's `Size` — the
/// whole context space, not the used part (that is `Size - Offset`).
///
/// # Safety
/// `nbl` must be a valid NBL with a non-NULL `Context`.
#[inline]
pub unsafe fn NET_BUFFER_LIST_CONTEXT_DATA_SIZE(nbl: *const NET_BUFFER_LIST) -> u16 {
    // SAFETY: the caller guarantees a valid NBL with a context header.
    unsafe { (*(*nbl).Context).Size }
}

/// `NDIS_NET_BUFFER_LIST_INFO` indices (x64, NDIS 6.80, no NDIS_WRAPPER).
pub mod info {
    pub const TcpIpChecksumNetBufferListInfo: usize = 0;
    pub const IPsecOffloadV1NetBufferListInfo: usize = 1;
    pub const TcpLargeSendNetBufferListInfo: usize = 2;
    pub const ClassificationHandleNetBufferListInfo: usize = 3;
    pub const Ieee8021QNetBufferListInfo: usize = 4;
    pub const NetBufferListCancelId: usize = 5;
    pub const MediaSpecificInformation: usize = 6;
    pub const NetBufferListFrameType: usize = 7;
    pub const NetBufferListHashValue: usize = 8;
    pub const NetBufferListHashInfo: usize = 9;
    pub const WfpNetBufferListInfo: usize = 10;
    pub const IPsecOffloadV2TunnelNetBufferListInfo: usize = 11;
    pub const IPsecOffloadV2HeaderNetBufferListInfo: usize = 12;
    pub const NetBufferListCorrelationId: usize = 13;
    pub const NetBufferListFilteringInfo: usize = 14;
    pub const MediaSpecificInformationEx: usize = 15;
    pub const NblOriginalInterfaceIfIndex: usize = 16;
    pub const TcpReceiveBytesTransferred: usize = 17;
    pub const SwitchForwardingReserved: usize = 18;
    pub const SwitchForwardingDetail: usize = 19;
    pub const VirtualSubnetInfo: usize = 20;
    pub const IMReserved: usize = 21;
    pub const TcpRecvSegCoalesceInfo: usize = 22;
    pub const RscTcpTimestampDelta: usize = 23;
    pub const GftOffloadInformation: usize = 24;
    pub const GftFlowEntryId: usize = 25;
    pub const NetBufferListInfoReserved3: usize = 26;
}

/// `NDIS_NET_BUFFER_LIST_8021Q_INFO`, stored in the pointer-sized info slot:
/// `TagHeader{UserPriority:3, CanonicalFormatId:1, VlanId:12, Reserved:16}` packed from bit 0.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NDIS_NET_BUFFER_LIST_8021Q_INFO {
    pub Value: usize,
}

impl NDIS_NET_BUFFER_LIST_8021Q_INFO {
    #[inline]
    pub const fn new(user_priority: u8, cfi: u8, vlan_id: u16) -> Self {
        Self {
            Value: (user_priority as usize & 0x7)
                | ((cfi as usize & 0x1) << 3)
                | ((vlan_id as usize & 0xFFF) << 4),
        }
    }
    #[inline]
    pub const fn UserPriority(self) -> u8 {
        (self.Value & 0x7) as u8
    }
    #[inline]
    pub const fn CanonicalFormatId(self) -> u8 {
        ((self.Value >> 3) & 0x1) as u8
    }
    #[inline]
    pub const fn VlanId(self) -> u16 {
        ((self.Value >> 4) & 0xFFF) as u16
    }
}

/// `NET_BUFFER_LIST_INFO(nbl, id)`.
///
/// # Safety
/// `nbl` must be a valid NBL and `id < MaxNetBufferListInfo`.
#[inline]
pub unsafe fn NET_BUFFER_LIST_INFO(nbl: *const NET_BUFFER_LIST, id: usize) -> PVOID {
    // SAFETY: the caller guarantees a valid NBL; `get` bounds the index.
    unsafe {
        (*nbl)
            .NetBufferListInfo
            .get(id)
            .copied()
            .unwrap_or(core::ptr::null_mut())
    }
}

/// `NET_BUFFER_LIST_INFO(nbl, id) = value`.
///
/// # Safety
/// `nbl` must be a valid NBL owned by the caller.
#[inline]
pub unsafe fn SET_NET_BUFFER_LIST_INFO(nbl: *mut NET_BUFFER_LIST, id: usize, value: PVOID) {
    // SAFETY: the caller guarantees a valid, owned NBL; `get_mut` bounds the index.
    if let Some(slot) = unsafe { (*nbl).NetBufferListInfo.get_mut(id) } {
        *slot = value;
    }
}

// NblFlags (public).
pub const NDIS_NBL_FLAGS_SEND_READ_ONLY: u32 = 0x1;
pub const NDIS_NBL_FLAGS_RECV_READ_ONLY: u32 = 0x2;
pub const NDIS_NBL_FLAGS_HD_SPLIT: u32 = 0x100;
pub const NDIS_NBL_FLAGS_IS_IPV4: u32 = 0x200;
pub const NDIS_NBL_FLAGS_IS_IPV6: u32 = 0x400;
pub const NDIS_NBL_FLAGS_IS_TCP: u32 = 0x800;
pub const NDIS_NBL_FLAGS_IS_UDP: u32 = 0x1000;
pub const NDIS_NBL_FLAGS_IS_LOOPBACK_PACKET: u32 = 0x8000;

// Flags masks (NDIS 6.30+).
pub const NBL_FLAGS_PROTOCOL_RESERVED: u32 = 0xFFF0_0003;
pub const NBL_FLAGS_MINIPORT_RESERVED: u32 = 0x0000_F000;
pub const NBL_FLAGS_SCRATCH: u32 = 0x000F_0000;
pub const NBL_FLAGS_NDIS_RESERVED: u32 = 0x0000_0FFC;

// Send / receive / return flags.
pub const NDIS_SEND_FLAGS_DISPATCH_LEVEL: u32 = 0x1;
pub const NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK: u32 = 0x2;
pub const NDIS_SEND_FLAGS_SINGLE_QUEUE: u32 = 0x4;
pub const NDIS_SEND_FLAGS_SWITCH_DESTINATION_GROUP: u32 = 0x10;
pub const NDIS_SEND_FLAGS_SWITCH_SINGLE_SOURCE: u32 = 0x20;
pub const NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL: u32 = 0x1;
pub const NDIS_SEND_COMPLETE_FLAGS_SINGLE_QUEUE: u32 = 0x2;
pub const NDIS_SEND_COMPLETE_FLAGS_SWITCH_SINGLE_SOURCE: u32 = 0x4;
pub const NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL: u32 = 0x1;
pub const NDIS_RECEIVE_FLAGS_RESOURCES: u32 = 0x2;
pub const NDIS_RECEIVE_FLAGS_SINGLE_ETHER_TYPE: u32 = 0x100;
pub const NDIS_RECEIVE_FLAGS_SINGLE_VLAN: u32 = 0x200;
pub const NDIS_RECEIVE_FLAGS_PERFECT_FILTERED: u32 = 0x400;
pub const NDIS_RECEIVE_FLAGS_SINGLE_QUEUE: u32 = 0x800;
pub const NDIS_RECEIVE_FLAGS_SHARED_MEMORY_INFO_VALID: u32 = 0x1000;
pub const NDIS_RECEIVE_FLAGS_MORE_NBLS: u32 = 0x2000;
pub const NDIS_RECEIVE_FLAGS_SWITCH_DESTINATION_GROUP: u32 = 0x4000;
pub const NDIS_RECEIVE_FLAGS_SWITCH_SINGLE_SOURCE: u32 = 0x8000;
pub const NDIS_RETURN_FLAGS_DISPATCH_LEVEL: u32 = 0x1;
pub const NDIS_RETURN_FLAGS_SINGLE_QUEUE: u32 = 0x2;
pub const NDIS_RETURN_FLAGS_SWITCH_SINGLE_SOURCE: u32 = 0x4;

/// `NDIS_TEST_SEND_AT_DISPATCH_LEVEL(flags)`.
#[inline]
pub const fn NDIS_TEST_SEND_AT_DISPATCH_LEVEL(flags: u32) -> bool {
    flags & NDIS_SEND_FLAGS_DISPATCH_LEVEL != 0
}
/// `NDIS_TEST_SEND_COMPLETE_AT_DISPATCH_LEVEL(flags)`.
#[inline]
pub const fn NDIS_TEST_SEND_COMPLETE_AT_DISPATCH_LEVEL(flags: u32) -> bool {
    flags & NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL != 0
}
/// `NDIS_TEST_RECEIVE_AT_DISPATCH_LEVEL(flags)`.
#[inline]
pub const fn NDIS_TEST_RECEIVE_AT_DISPATCH_LEVEL(flags: u32) -> bool {
    flags & NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL != 0
}
/// `NDIS_TEST_RECEIVE_CANNOT_PEND(flags)`.
#[inline]
pub const fn NDIS_TEST_RECEIVE_CANNOT_PEND(flags: u32) -> bool {
    flags & NDIS_RECEIVE_FLAGS_RESOURCES == NDIS_RECEIVE_FLAGS_RESOURCES
}
/// `NDIS_TEST_RECEIVE_CAN_PEND(flags)`.
#[inline]
pub const fn NDIS_TEST_RECEIVE_CAN_PEND(flags: u32) -> bool {
    flags & NDIS_RECEIVE_FLAGS_RESOURCES == 0
}
/// `NDIS_TEST_RETURN_AT_DISPATCH_LEVEL(flags)`.
#[inline]
pub const fn NDIS_TEST_RETURN_AT_DISPATCH_LEVEL(flags: u32) -> bool {
    flags & NDIS_RETURN_FLAGS_DISPATCH_LEVEL != 0
}

/// `NET_BUFFER_LIST_POOL_PARAMETERS` (revision 1 size 0x10, revision 2 adds Flags: 0x14).
#[repr(C)]
pub struct NET_BUFFER_LIST_POOL_PARAMETERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub ProtocolId: u8,
    pub fAllocateNetBuffer: BOOLEAN,
    pub ContextSize: u16,
    pub PoolTag: u32,
    pub DataSize: u32,
    pub Flags: u32,
}
pub const NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1: u8 = 1;
pub const NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_2: u8 = 2;
pub const NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1: u16 = 0x10;
pub const NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_2: u16 = 0x14;
pub const NDIS_PROTOCOL_ID_DEFAULT: u8 = 0;

/// `NET_BUFFER_POOL_PARAMETERS` (size 0xC).
#[repr(C)]
pub struct NET_BUFFER_POOL_PARAMETERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub PoolTag: u32,
    pub DataSize: u32,
}
pub const NET_BUFFER_POOL_PARAMETERS_REVISION_1: u8 = 1;
pub const NDIS_SIZEOF_NET_BUFFER_POOL_PARAMETERS_REVISION_1: u16 = 0xC;

/// Handler types for NdisRetreat/Advance (nblapi.h): both at IRQL <= DISPATCH_LEVEL.
pub type NET_BUFFER_ALLOCATE_MDL_HANDLER =
    Option<unsafe extern "system" fn(BufferSize: *mut u32) -> *mut MDL>;
pub type NET_BUFFER_FREE_MDL_HANDLER = Option<unsafe extern "system" fn(Mdl: *mut MDL)>;
