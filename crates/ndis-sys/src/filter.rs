//! The NDIS 6 filter contract: object types, filter characteristics, attach/restart/pause parameters,
//! OID requests, status indications, PnP events, configuration and timer objects (ndis-contract.md §3).

use crate::nbl::NET_BUFFER_LIST;
use crate::status::NDIS_STATUS;
use crate::types::*;

// NDIS_OBJECT_TYPE_* (ntddndis.h).
pub const NDIS_OBJECT_TYPE_DEFAULT: u8 = 0x80;
pub const NDIS_OBJECT_TYPE_MINIPORT_INIT_PARAMETERS: u8 = 0x81;
pub const NDIS_OBJECT_TYPE_DEVICE_OBJECT_ATTRIBUTES: u8 = 0x85;
pub const NDIS_OBJECT_TYPE_FILTER_DRIVER_CHARACTERISTICS: u8 = 0x8B;
pub const NDIS_OBJECT_TYPE_FILTER_PARTIAL_CHARACTERISTICS: u8 = 0x8C;
pub const NDIS_OBJECT_TYPE_FILTER_ATTRIBUTES: u8 = 0x8D;
pub const NDIS_OBJECT_TYPE_OID_REQUEST: u8 = 0x96;
pub const NDIS_OBJECT_TYPE_TIMER_CHARACTERISTICS: u8 = 0x97;
pub const NDIS_OBJECT_TYPE_STATUS_INDICATION: u8 = 0x98;
pub const NDIS_OBJECT_TYPE_FILTER_ATTACH_PARAMETERS: u8 = 0x99;
pub const NDIS_OBJECT_TYPE_FILTER_PAUSE_PARAMETERS: u8 = 0x9A;
pub const NDIS_OBJECT_TYPE_FILTER_RESTART_PARAMETERS: u8 = 0x9B;
pub const NDIS_OBJECT_TYPE_RESTART_GENERAL_ATTRIBUTES: u8 = 0xA2;
pub const NDIS_OBJECT_TYPE_OFFLOAD: u8 = 0xA7;
pub const NDIS_OBJECT_TYPE_CONFIGURATION_OBJECT: u8 = 0xA9;

// Filter characteristics revisions and sizes.
pub const NDIS_FILTER_CHARACTERISTICS_REVISION_1: u8 = 1;
pub const NDIS_FILTER_CHARACTERISTICS_REVISION_2: u8 = 2;
pub const NDIS_FILTER_CHARACTERISTICS_REVISION_3: u8 = 3;
pub const NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_1: u16 = 0xC8;
pub const NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_2: u16 = 0xE0;
pub const NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_3: u16 = 0xF0;
pub const NDIS_FILTER_DRIVER_MANDATORY: u32 = 0x1;
pub const NDIS_FILTER_DRIVER_SUPPORTS_CURRENT_MAC_ADDRESS_CHANGE: u32 = 0x2;
pub const NDIS_FILTER_DRIVER_SUPPORTS_L2_MTU_SIZE_CHANGE: u32 = 0x4;

pub const NDIS_FILTER_ATTRIBUTES_REVISION_1: u8 = 1;
pub const NDIS_SIZEOF_FILTER_ATTRIBUTES_REVISION_1: u16 = 8;

pub const NDIS_FILTER_ATTACH_PARAMETERS_REVISION_1: u8 = 1;
pub const NDIS_FILTER_ATTACH_PARAMETERS_REVISION_2: u8 = 2;
pub const NDIS_FILTER_ATTACH_PARAMETERS_REVISION_3: u8 = 3;
pub const NDIS_FILTER_ATTACH_PARAMETERS_REVISION_4: u8 = 4;
pub const NDIS_SIZEOF_FILTER_ATTACH_PARAMETERS_REVISION_1: u16 = 0xA4;
pub const NDIS_SIZEOF_FILTER_ATTACH_PARAMETERS_REVISION_2: u16 = 0xB0;
pub const NDIS_SIZEOF_FILTER_ATTACH_PARAMETERS_REVISION_3: u16 = 0xC8;
pub const NDIS_SIZEOF_FILTER_ATTACH_PARAMETERS_REVISION_4: u16 = 0xE0;
pub const NDIS_FILTER_ATTACH_FLAGS_IGNORE_MANDATORY: u32 = 1;

pub const NDIS_FILTER_RESTART_PARAMETERS_REVISION_1: u8 = 1;
pub const NDIS_SIZEOF_FILTER_RESTART_PARAMETERS_REVISION_1: u16 = 0x2C;
pub const NDIS_FILTER_PAUSE_PARAMETERS_REVISION_1: u8 = 1;
pub const NDIS_SIZEOF_FILTER_PAUSE_PARAMETERS_REVISION_1: u16 = 0xC;
pub const NDIS_PAUSE_NDIS_INTERNAL: u32 = 0x1;
pub const NDIS_PAUSE_LOW_POWER: u32 = 0x2;
pub const NDIS_PAUSE_BIND_PROTOCOL: u32 = 0x4;
pub const NDIS_PAUSE_UNBIND_PROTOCOL: u32 = 0x8;
pub const NDIS_PAUSE_ATTACH_FILTER: u32 = 0x10;
pub const NDIS_PAUSE_DETACH_FILTER: u32 = 0x20;

pub const NDIS_OID_REQUEST_REVISION_1: u8 = 1;
pub const NDIS_OID_REQUEST_REVISION_2: u8 = 2;
pub const NDIS_SIZEOF_OID_REQUEST_REVISION_1: u16 = 0xEC;
pub const NDIS_SIZEOF_OID_REQUEST_REVISION_2: u16 = 0xF8;
pub const NDIS_OID_REQUEST_NDIS_RESERVED_SIZE: usize = 16;

pub const NDIS_STATUS_INDICATION_REVISION_1: u8 = 1;
pub const NDIS_SIZEOF_STATUS_INDICATION_REVISION_1: u16 = 0x70;

pub const NDIS_CONFIGURATION_OBJECT_REVISION_1: u8 = 1;
pub const NDIS_SIZEOF_CONFIGURATION_OBJECT_REVISION_1: u16 = 0x18;
pub const NDIS_CONFIG_FLAG_FILTER_INSTANCE_CONFIGURATION: u32 = 0x1;

pub const NDIS_TIMER_CHARACTERISTICS_REVISION_1: u8 = 1;
pub const NDIS_SIZEOF_TIMER_CHARACTERISTICS_REVISION_1: u16 = 0x18;

/// `NDIS_MEDIUM` values used here.
pub const NdisMedium802_3: u32 = 0;
pub const NdisMediumWan: u32 = 2;
pub const NdisMediumWirelessWan: u32 = 9;
pub const NdisMediumNative802_11: u32 = 16;

/// `NDIS_REQUEST_TYPE` values.
pub const NdisRequestQueryInformation: u32 = 0;
pub const NdisRequestSetInformation: u32 = 1;
pub const NdisRequestQueryStatistics: u32 = 2;
pub const NdisRequestMethod: u32 = 12;

/// `NET_PNP_EVENT_CODE` values.
pub const NetEventSetPower: u32 = 0;
pub const NetEventQueryPower: u32 = 1;
pub const NetEventQueryRemoveDevice: u32 = 2;
pub const NetEventCancelRemoveDevice: u32 = 3;
pub const NetEventReconfigure: u32 = 4;
pub const NetEventBindList: u32 = 5;
pub const NetEventBindsComplete: u32 = 6;
pub const NetEventPnPCapabilities: u32 = 7;
pub const NetEventPause: u32 = 8;
pub const NetEventRestart: u32 = 9;
pub const NetEventPortActivation: u32 = 10;
pub const NetEventPortDeactivation: u32 = 11;
pub const NetEventIMReEnableDevice: u32 = 12;

/// `NdisGetVersion()` encodings: `(major << 16) | minor`.
pub const NDIS_RUNTIME_VERSION_630: u32 = 0x0006_001E;
pub const NDIS_RUNTIME_VERSION_640: u32 = 0x0006_0028;
pub const NDIS_RUNTIME_VERSION_650: u32 = 0x0006_0032;
pub const NDIS_RUNTIME_VERSION_660: u32 = 0x0006_003C;
pub const NDIS_RUNTIME_VERSION_670: u32 = 0x0006_0046;
pub const NDIS_RUNTIME_VERSION_680: u32 = 0x0006_0050;
pub const NDIS_RUNTIME_VERSION_681: u32 = 0x0006_0051;
pub const NDIS_RUNTIME_VERSION_682: u32 = 0x0006_0052;
pub const NDIS_RUNTIME_VERSION_683: u32 = 0x0006_0053;
pub const NDIS_RUNTIME_VERSION_684: u32 = 0x0006_0054;
pub const NDIS_RUNTIME_VERSION_685: u32 = 0x0006_0055;
pub const NDIS_RUNTIME_VERSION_686: u32 = 0x0006_0056;
pub const NDIS_RUNTIME_VERSION_687: u32 = 0x0006_0057;
pub const NDIS_RUNTIME_VERSION_688: u32 = 0x0006_0058;
pub const NDIS_RUNTIME_VERSION_689: u32 = 0x0006_0059;

// Handler typedefs (ndis.h, filter section). IRQL per ndis-contract.md §3.1.
pub type FILTER_SET_OPTIONS = Option<
    unsafe extern "system" fn(
        NdisDriverHandle: NDIS_HANDLE,
        DriverContext: NDIS_HANDLE,
    ) -> NDIS_STATUS,
>;
pub type FILTER_SET_MODULE_OPTIONS =
    Option<unsafe extern "system" fn(FilterModuleContext: NDIS_HANDLE) -> NDIS_STATUS>;
pub type FILTER_ATTACH = Option<
    unsafe extern "system" fn(
        NdisFilterHandle: NDIS_HANDLE,
        FilterDriverContext: NDIS_HANDLE,
        AttachParameters: *mut NDIS_FILTER_ATTACH_PARAMETERS,
    ) -> NDIS_STATUS,
>;
pub type FILTER_DETACH = Option<unsafe extern "system" fn(FilterModuleContext: NDIS_HANDLE)>;
pub type FILTER_RESTART = Option<
    unsafe extern "system" fn(
        FilterModuleContext: NDIS_HANDLE,
        RestartParameters: *mut NDIS_FILTER_RESTART_PARAMETERS,
    ) -> NDIS_STATUS,
>;
pub type FILTER_PAUSE = Option<
    unsafe extern "system" fn(
        FilterModuleContext: NDIS_HANDLE,
        PauseParameters: *mut NDIS_FILTER_PAUSE_PARAMETERS,
    ) -> NDIS_STATUS,
>;
pub type FILTER_SEND_NET_BUFFER_LISTS = Option<
    unsafe extern "system" fn(
        FilterModuleContext: NDIS_HANDLE,
        NetBufferLists: *mut NET_BUFFER_LIST,
        PortNumber: NDIS_PORT_NUMBER,
        SendFlags: u32,
    ),
>;
pub type FILTER_SEND_NET_BUFFER_LISTS_COMPLETE = Option<
    unsafe extern "system" fn(
        FilterModuleContext: NDIS_HANDLE,
        NetBufferLists: *mut NET_BUFFER_LIST,
        SendCompleteFlags: u32,
    ),
>;
pub type FILTER_CANCEL_SEND_NET_BUFFER_LISTS =
    Option<unsafe extern "system" fn(FilterModuleContext: NDIS_HANDLE, CancelId: PVOID)>;
pub type FILTER_RECEIVE_NET_BUFFER_LISTS = Option<
    unsafe extern "system" fn(
        FilterModuleContext: NDIS_HANDLE,
        NetBufferLists: *mut NET_BUFFER_LIST,
        PortNumber: NDIS_PORT_NUMBER,
        NumberOfNetBufferLists: u32,
        ReceiveFlags: u32,
    ),
>;
pub type FILTER_RETURN_NET_BUFFER_LISTS = Option<
    unsafe extern "system" fn(
        FilterModuleContext: NDIS_HANDLE,
        NetBufferLists: *mut NET_BUFFER_LIST,
        ReturnFlags: u32,
    ),
>;
pub type FILTER_OID_REQUEST = Option<
    unsafe extern "system" fn(
        FilterModuleContext: NDIS_HANDLE,
        OidRequest: *mut NDIS_OID_REQUEST,
    ) -> NDIS_STATUS,
>;
pub type FILTER_OID_REQUEST_COMPLETE = Option<
    unsafe extern "system" fn(
        FilterModuleContext: NDIS_HANDLE,
        OidRequest: *mut NDIS_OID_REQUEST,
        Status: NDIS_STATUS,
    ),
>;
pub type FILTER_CANCEL_OID_REQUEST =
    Option<unsafe extern "system" fn(FilterModuleContext: NDIS_HANDLE, RequestId: PVOID)>;
pub type FILTER_DEVICE_PNP_EVENT_NOTIFY = Option<
    unsafe extern "system" fn(
        FilterModuleContext: NDIS_HANDLE,
        NetDevicePnPEvent: *mut NET_DEVICE_PNP_EVENT,
    ),
>;
pub type FILTER_NET_PNP_EVENT = Option<
    unsafe extern "system" fn(
        FilterModuleContext: NDIS_HANDLE,
        NetPnPEventNotification: *mut NET_PNP_EVENT_NOTIFICATION,
    ) -> NDIS_STATUS,
>;
pub type FILTER_STATUS = Option<
    unsafe extern "system" fn(
        FilterModuleContext: NDIS_HANDLE,
        StatusIndication: *mut NDIS_STATUS_INDICATION,
    ),
>;
pub type FILTER_DIRECT_OID_REQUEST = FILTER_OID_REQUEST;
pub type FILTER_DIRECT_OID_REQUEST_COMPLETE = FILTER_OID_REQUEST_COMPLETE;
pub type FILTER_CANCEL_DIRECT_OID_REQUEST = FILTER_CANCEL_OID_REQUEST;
pub type FILTER_SYNCHRONOUS_OID_REQUEST = Option<
    unsafe extern "system" fn(
        FilterModuleContext: NDIS_HANDLE,
        OidRequest: *mut NDIS_OID_REQUEST,
        CallContext: *mut PVOID,
    ) -> NDIS_STATUS,
>;
pub type FILTER_SYNCHRONOUS_OID_REQUEST_COMPLETE = Option<
    unsafe extern "system" fn(
        FilterModuleContext: NDIS_HANDLE,
        OidRequest: *mut NDIS_OID_REQUEST,
        Status: *mut NDIS_STATUS,
        CallContext: PVOID,
    ),
>;

/// `NDIS_FILTER_DRIVER_CHARACTERISTICS` (all three revisions; REVISION_3 size 0xF0).
#[repr(C)]
pub struct NDIS_FILTER_DRIVER_CHARACTERISTICS {
    pub Header: NDIS_OBJECT_HEADER,
    pub MajorNdisVersion: u8,
    pub MinorNdisVersion: u8,
    pub MajorDriverVersion: u8,
    pub MinorDriverVersion: u8,
    pub Flags: u32,
    pub FriendlyName: NDIS_STRING,
    pub UniqueName: NDIS_STRING,
    pub ServiceName: NDIS_STRING,
    pub SetOptionsHandler: FILTER_SET_OPTIONS,
    pub SetFilterModuleOptionsHandler: FILTER_SET_MODULE_OPTIONS,
    pub AttachHandler: FILTER_ATTACH,
    pub DetachHandler: FILTER_DETACH,
    pub RestartHandler: FILTER_RESTART,
    pub PauseHandler: FILTER_PAUSE,
    pub SendNetBufferListsHandler: FILTER_SEND_NET_BUFFER_LISTS,
    pub SendNetBufferListsCompleteHandler: FILTER_SEND_NET_BUFFER_LISTS_COMPLETE,
    pub CancelSendNetBufferListsHandler: FILTER_CANCEL_SEND_NET_BUFFER_LISTS,
    pub ReceiveNetBufferListsHandler: FILTER_RECEIVE_NET_BUFFER_LISTS,
    pub ReturnNetBufferListsHandler: FILTER_RETURN_NET_BUFFER_LISTS,
    pub OidRequestHandler: FILTER_OID_REQUEST,
    pub OidRequestCompleteHandler: FILTER_OID_REQUEST_COMPLETE,
    pub CancelOidRequestHandler: FILTER_CANCEL_OID_REQUEST,
    pub DevicePnPEventNotifyHandler: FILTER_DEVICE_PNP_EVENT_NOTIFY,
    pub NetPnPEventHandler: FILTER_NET_PNP_EVENT,
    pub StatusHandler: FILTER_STATUS,
    pub DirectOidRequestHandler: FILTER_DIRECT_OID_REQUEST,
    pub DirectOidRequestCompleteHandler: FILTER_DIRECT_OID_REQUEST_COMPLETE,
    pub CancelDirectOidRequestHandler: FILTER_CANCEL_DIRECT_OID_REQUEST,
    pub SynchronousOidRequestHandler: FILTER_SYNCHRONOUS_OID_REQUEST,
    pub SynchronousOidRequestCompleteHandler: FILTER_SYNCHRONOUS_OID_REQUEST_COMPLETE,
}

/// `NDIS_FILTER_ATTRIBUTES` (size 8).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDIS_FILTER_ATTRIBUTES {
    pub Header: NDIS_OBJECT_HEADER,
    pub Flags: u32,
}

/// `NDIS_FILTER_ATTACH_PARAMETERS` through revision 4 (size 0xE0).
#[repr(C)]
pub struct NDIS_FILTER_ATTACH_PARAMETERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub IfIndex: NET_IFINDEX,
    pub NetLuid: u64,
    pub FilterModuleGuidName: *mut NDIS_STRING,
    pub BaseMiniportIfIndex: NET_IFINDEX,
    pub BaseMiniportInstanceName: *mut NDIS_STRING,
    pub BaseMiniportName: *mut NDIS_STRING,
    pub MediaConnectState: u32,
    pub MediaDuplexState: u32,
    pub XmitLinkSpeed: u64,
    pub RcvLinkSpeed: u64,
    pub MiniportMediaType: u32,
    pub MiniportPhysicalMediaType: u32,
    pub MiniportMediaSpecificAttributes: NDIS_HANDLE,
    pub DefaultOffloadConfiguration: PVOID,
    pub MacAddressLength: u16,
    pub CurrentMacAddress: [u8; 32],
    pub BaseMiniportNetLuid: u64,
    pub LowerIfIndex: NET_IFINDEX,
    pub LowerIfNetLuid: u64,
    pub Flags: u32,
    // Revision 2 (NDIS 6.1).
    pub HDSplitCurrentConfig: PVOID,
    // Revision 3 (NDIS 6.20).
    pub ReceiveFilterCapabilities: PVOID,
    pub MiniportPhysicalDeviceObject: PVOID,
    pub NicSwitchCapabilities: PVOID,
    // Revision 4 (NDIS 6.30).
    pub BaseMiniportIfConnectorPresent: BOOLEAN,
    pub SriovCapabilities: PVOID,
    pub NicSwitchArray: PVOID,
}

/// `NDIS_RESTART_ATTRIBUTES` header; `Data` follows at offset 0x10.
#[repr(C)]
pub struct NDIS_RESTART_ATTRIBUTES {
    pub Next: *mut NDIS_RESTART_ATTRIBUTES,
    pub Oid: NDIS_OID,
    pub DataLength: u32,
}

impl NDIS_RESTART_ATTRIBUTES {
    /// The `Data` bytes that follow the header (`DataLength` of them).
    ///
    /// # Safety
    /// `this` must point to a valid restart attributes entry.
    #[inline]
    pub unsafe fn data(this: *mut Self) -> *mut u8 {
        // SAFETY: the caller guarantees a valid entry; Data follows the 0x10-byte header.
        unsafe { (this as *mut u8).add(core::mem::size_of::<Self>()) }
    }
}

/// `OID_GEN_MINIPORT_RESTART_ATTRIBUTES`: an [`NDIS_RESTART_ATTRIBUTES`] entry whose `Data` is an
/// [`NDIS_RESTART_GENERAL_ATTRIBUTES`] (ntddndis.h).
pub const OID_GEN_MINIPORT_RESTART_ATTRIBUTES: NDIS_OID = 0x0001_021D;
/// NDIS 6.0 / 6.1 revision (through `SupportedOidListLength`).
pub const NDIS_RESTART_GENERAL_ATTRIBUTES_REVISION_1: u8 = 1;
/// NDIS 6.20+ revision (adds `MaxLookaheadSizeAccessed`).
pub const NDIS_RESTART_GENERAL_ATTRIBUTES_REVISION_2: u8 = 2;
/// `RTL_SIZEOF_THROUGH_FIELD(NDIS_RESTART_GENERAL_ATTRIBUTES, SupportedOidListLength)`.
pub const NDIS_SIZEOF_RESTART_GENERAL_ATTRIBUTES_REVISION_1: u16 = 0x54;
/// `RTL_SIZEOF_THROUGH_FIELD(NDIS_RESTART_GENERAL_ATTRIBUTES, MaxLookaheadSizeAccessed)`.
pub const NDIS_SIZEOF_RESTART_GENERAL_ATTRIBUTES_REVISION_2: u16 = 0x58;

/// `NDIS_RESTART_GENERAL_ATTRIBUTES` (x64 size 0x58): the general restart attributes a miniport
/// reports and each filter may change on the way up (ns-ndis-_ndis_restart_general_attributes; field
/// order from the documentation, offsets pinned in layout.rs).
#[repr(C)]
pub struct NDIS_RESTART_GENERAL_ATTRIBUTES {
    /// Type [`NDIS_OBJECT_TYPE_RESTART_GENERAL_ATTRIBUTES`].
    pub Header: NDIS_OBJECT_HEADER,
    pub MtuSize: u32,
    pub MaxXmitLinkSpeed: u64,
    pub MaxRcvLinkSpeed: u64,
    pub LookaheadSize: u32,
    pub MacOptions: u32,
    pub SupportedPacketFilters: u32,
    pub MaxMulticastListSize: u32,
    /// `PNDIS_RECEIVE_SCALE_CAPABILITIES` (zero-filled when RSS is not supported).
    pub RecvScaleCapabilities: PVOID,
    /// `NET_IF_ACCESS_TYPE`.
    pub AccessType: u32,
    pub Flags: u32,
    /// `NET_IF_CONNECTION_TYPE`.
    pub ConnectionType: u32,
    pub SupportedStatistics: u32,
    /// Data backfill (unused bytes in front of the frame) the drivers below need, in bytes.
    pub DataBackFillSize: u32,
    /// Context backfill (NBL context space) the drivers below need, in bytes.
    pub ContextBackFillSize: u32,
    /// `PNDIS_OID`.
    pub SupportedOidList: *mut NDIS_OID,
    pub SupportedOidListLength: u32,
    /// Revision 2.
    pub MaxLookaheadSizeAccessed: u32,
}

/// `NDIS_FILTER_RESTART_PARAMETERS` (through Flags: 0x2C; sizeof 0x30).
#[repr(C)]
pub struct NDIS_FILTER_RESTART_PARAMETERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub MiniportMediaType: u32,
    pub MiniportPhysicalMediaType: u32,
    pub RestartAttributes: *mut NDIS_RESTART_ATTRIBUTES,
    pub LowerIfIndex: NET_IFINDEX,
    pub LowerIfNetLuid: u64,
    pub Flags: u32,
}

/// `NDIS_FILTER_PAUSE_PARAMETERS` (size 0xC).
#[repr(C)]
pub struct NDIS_FILTER_PAUSE_PARAMETERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub Flags: u32,
    pub PauseReason: u32,
}

/// `QUERY_INFORMATION` / `SET_INFORMATION` arm of `NDIS_OID_REQUEST::DATA` (same shape; BytesRead for sets).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NDIS_OID_QUERY_SET_INFORMATION {
    pub Oid: NDIS_OID,
    pub InformationBuffer: PVOID,
    pub InformationBufferLength: u32,
    /// `BytesWritten` for queries, `BytesRead` for sets.
    pub BytesWrittenOrRead: u32,
    pub BytesNeeded: u32,
}

/// `METHOD_INFORMATION` arm of `NDIS_OID_REQUEST::DATA`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NDIS_OID_METHOD_INFORMATION {
    pub Oid: NDIS_OID,
    pub InformationBuffer: PVOID,
    pub InputBufferLength: u32,
    pub OutputBufferLength: u32,
    pub MethodId: u32,
    pub BytesWritten: u32,
    pub BytesRead: u32,
    pub BytesNeeded: u32,
}

/// `NDIS_OID_REQUEST::DATA`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union NDIS_OID_REQUEST_DATA {
    pub QUERY_INFORMATION: NDIS_OID_QUERY_SET_INFORMATION,
    pub SET_INFORMATION: NDIS_OID_QUERY_SET_INFORMATION,
    pub METHOD_INFORMATION: NDIS_OID_METHOD_INFORMATION,
}

/// `NDIS_OID_REQUEST` through revision 2 (size 0xF8). NDIS_OID_REQUEST_NDIS_RESERVED_SIZE = 16.
#[repr(C)]
pub struct NDIS_OID_REQUEST {
    pub Header: NDIS_OBJECT_HEADER,
    pub RequestType: u32,
    pub PortNumber: NDIS_PORT_NUMBER,
    pub Timeout: u32,
    pub RequestId: PVOID,
    pub RequestHandle: NDIS_HANDLE,
    pub DATA: NDIS_OID_REQUEST_DATA,
    pub NdisReserved: [PVOID; NDIS_OID_REQUEST_NDIS_RESERVED_SIZE],
    pub MiniportReserved: [PVOID; 2],
    pub SourceReserved: [PVOID; 2],
    pub SupportedRevision: u8,
    pub Reserved1: u8,
    pub Reserved2: u16,
    // Revision 2.
    pub SwitchId: u32,
    pub VPortId: u32,
    pub Flags: u32,
}

/// `NDIS_STATUS_INDICATION` (size 0x70).
#[repr(C)]
pub struct NDIS_STATUS_INDICATION {
    pub Header: NDIS_OBJECT_HEADER,
    pub SourceHandle: NDIS_HANDLE,
    pub PortNumber: NDIS_PORT_NUMBER,
    pub StatusCode: NDIS_STATUS,
    pub Flags: u32,
    pub DestinationHandle: NDIS_HANDLE,
    pub RequestId: PVOID,
    pub StatusBuffer: PVOID,
    pub StatusBufferSize: u32,
    pub Guid: GUID,
    pub NdisReserved: [PVOID; 4],
}

/// `NET_PNP_EVENT`.
#[repr(C)]
pub struct NET_PNP_EVENT {
    pub NetEvent: u32,
    pub Buffer: PVOID,
    pub BufferLength: u32,
    pub NdisReserved: [ULONG_PTR; 4],
    pub TransportReserved: [ULONG_PTR; 4],
    pub TdiReserved: [ULONG_PTR; 4],
    pub TdiClientReserved: [ULONG_PTR; 4],
}

/// `NET_PNP_EVENT_NOTIFICATION`.
#[repr(C)]
pub struct NET_PNP_EVENT_NOTIFICATION {
    pub Header: NDIS_OBJECT_HEADER,
    pub PortNumber: NDIS_PORT_NUMBER,
    pub NetPnPEvent: NET_PNP_EVENT,
}
pub const NET_PNP_EVENT_NOTIFICATION_REVISION_1: u8 = 1;

/// `NET_DEVICE_PNP_EVENT` (only passed through).
#[repr(C)]
pub struct NET_DEVICE_PNP_EVENT {
    pub Header: NDIS_OBJECT_HEADER,
    pub PortNumber: NDIS_PORT_NUMBER,
    pub DevicePnPEvent: u32,
    pub InformationBuffer: PVOID,
    pub InformationBufferLength: u32,
    pub NdisReserved: [u8; 2 * core::mem::size_of::<PVOID>()],
}

/// `NDIS_CONFIGURATION_OBJECT` (size 0x18).
#[repr(C)]
pub struct NDIS_CONFIGURATION_OBJECT {
    pub Header: NDIS_OBJECT_HEADER,
    pub NdisHandle: NDIS_HANDLE,
    pub Flags: u32,
}

/// `NDIS_PARAMETER_TYPE` values.
pub const NdisParameterInteger: u32 = 0;
pub const NdisParameterHexInteger: u32 = 1;
pub const NdisParameterString: u32 = 2;
pub const NdisParameterMultiString: u32 = 3;
pub const NdisParameterBinary: u32 = 4;

/// `BINARY_DATA`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BINARY_DATA {
    pub Length: u16,
    pub Buffer: PVOID,
}

/// `NDIS_CONFIGURATION_PARAMETER::ParameterData`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union NDIS_CONFIGURATION_PARAMETER_DATA {
    pub IntegerData: u32,
    pub StringData: NDIS_STRING,
    pub BinaryData: BINARY_DATA,
}

/// `NDIS_CONFIGURATION_PARAMETER` (size 0x18).
#[repr(C)]
pub struct NDIS_CONFIGURATION_PARAMETER {
    pub ParameterType: u32,
    pub ParameterData: NDIS_CONFIGURATION_PARAMETER_DATA,
}

/// `NDIS_TIMER_FUNCTION`: called at DISPATCH_LEVEL.
pub type NDIS_TIMER_FUNCTION = Option<
    unsafe extern "system" fn(
        SystemSpecific1: PVOID,
        FunctionContext: PVOID,
        SystemSpecific2: PVOID,
        SystemSpecific3: PVOID,
    ),
>;

/// `NDIS_TIMER_CHARACTERISTICS` (size 0x18).
#[repr(C)]
pub struct NDIS_TIMER_CHARACTERISTICS {
    pub Header: NDIS_OBJECT_HEADER,
    pub AllocationTag: u32,
    pub TimerFunction: NDIS_TIMER_FUNCTION,
    pub FunctionContext: PVOID,
}

/// `NDIS_SPIN_LOCK`.
#[repr(C)]
pub struct NDIS_SPIN_LOCK {
    pub SpinLock: KSPIN_LOCK,
    pub OldIrql: KIRQL,
}
