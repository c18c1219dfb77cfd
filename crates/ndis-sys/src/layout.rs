//! `const` assertions pinning sizes and field offsets to the published x64 values
//! (ndis-contract.md §1, §3; arm64 Windows has the same LLP64 layout for every structure here).
//! They hold on any 64-bit target, which is what lets ndis-sim on an x86_64 host share memory with a
//! real amd64 `.sys`.
#![allow(dead_code)]

use crate::filter::*;
use crate::mdl::MDL;
use crate::nbl::*;
use crate::types::*;
use core::mem::{offset_of, size_of};

macro_rules! assert_layout {
    ($ty:ty, size = $size:expr $(, $field:ident = $off:expr)* $(,)?) => {
        const _: () = assert!(size_of::<$ty>() == $size, concat!("size of ", stringify!($ty)));
        $(const _: () = assert!(offset_of!($ty, $field) == $off, concat!(stringify!($ty), ".", stringify!($field)));)*
    };
}

#[cfg(target_pointer_width = "64")]
mod x64 {
    use super::*;

    assert_layout!(
        UNICODE_STRING,
        size = 0x10,
        Length = 0,
        MaximumLength = 2,
        Buffer = 8
    );
    assert_layout!(
        PROCESSOR_NUMBER,
        size = 4,
        Group = 0,
        Number = 2,
        Reserved = 3
    );
    assert_layout!(
        DRIVER_OBJECT,
        size = 0x150,
        DriverStart = 0x18,
        DriverSize = 0x20,
        DriverExtension = 0x30,
        DriverName = 0x38,
        DriverInit = 0x58,
        DriverUnload = 0x68,
        MajorFunction = 0x70
    );

    assert_layout!(
        MDL,
        size = 0x30,
        Next = 0,
        Size = 8,
        MdlFlags = 0xA,
        AllocationProcessorNumber = 0xC,
        Process = 0x10,
        MappedSystemVa = 0x18,
        StartVa = 0x20,
        ByteCount = 0x28,
        ByteOffset = 0x2C
    );

    assert_layout!(
        NET_BUFFER,
        size = 0xB0,
        Next = 0,
        CurrentMdl = 8,
        CurrentMdlOffset = 0x10,
        NbDataLength = 0x18,
        MdlChain = 0x20,
        DataOffset = 0x28,
        ChecksumBias = 0x30,
        Reserved = 0x32,
        NdisPoolHandle = 0x38,
        NdisReserved = 0x40,
        ProtocolReserved = 0x50,
        MiniportReserved = 0x80,
        DataPhysicalAddress = 0xA0,
        SharedMemoryInfo = 0xA8
    );
    const _: () = assert!(core::mem::align_of::<NET_BUFFER>() == 16);

    assert_layout!(
        NET_BUFFER_LIST,
        size = 0x170,
        Next = 0,
        FirstNetBuffer = 8,
        Context = 0x10,
        ParentNetBufferList = 0x18,
        NdisPoolHandle = 0x20,
        NdisReserved = 0x30,
        ProtocolReserved = 0x40,
        MiniportReserved = 0x60,
        Scratch = 0x70,
        SourceHandle = 0x78,
        NblFlags = 0x80,
        ChildRefCount = 0x84,
        Flags = 0x88,
        Status = 0x8C,
        NetBufferListInfo = 0x90
    );
    assert_layout!(
        NET_BUFFER_LIST_CONTEXT,
        size = 0x10,
        Next = 0,
        Size = 8,
        Offset = 0xA
    );

    assert_layout!(
        NDIS_OBJECT_HEADER,
        size = 4,
        Type = 0,
        Revision = 1,
        Size = 2
    );
    assert_layout!(
        NDIS_FILTER_DRIVER_CHARACTERISTICS,
        size = 0xF0,
        MajorNdisVersion = 4,
        MinorNdisVersion = 5,
        MajorDriverVersion = 6,
        MinorDriverVersion = 7,
        Flags = 8,
        FriendlyName = 0x10,
        UniqueName = 0x20,
        ServiceName = 0x30,
        SetOptionsHandler = 0x40,
        SetFilterModuleOptionsHandler = 0x48,
        AttachHandler = 0x50,
        DetachHandler = 0x58,
        RestartHandler = 0x60,
        PauseHandler = 0x68,
        SendNetBufferListsHandler = 0x70,
        SendNetBufferListsCompleteHandler = 0x78,
        CancelSendNetBufferListsHandler = 0x80,
        ReceiveNetBufferListsHandler = 0x88,
        ReturnNetBufferListsHandler = 0x90,
        OidRequestHandler = 0x98,
        OidRequestCompleteHandler = 0xA0,
        CancelOidRequestHandler = 0xA8,
        DevicePnPEventNotifyHandler = 0xB0,
        NetPnPEventHandler = 0xB8,
        StatusHandler = 0xC0,
        DirectOidRequestHandler = 0xC8,
        DirectOidRequestCompleteHandler = 0xD0,
        CancelDirectOidRequestHandler = 0xD8,
        SynchronousOidRequestHandler = 0xE0,
        SynchronousOidRequestCompleteHandler = 0xE8
    );
    const _: () = assert!(
        NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_1 as usize
            == offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, StatusHandler) + 8
    );
    const _: () = assert!(
        NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_2 as usize
            == offset_of!(
                NDIS_FILTER_DRIVER_CHARACTERISTICS,
                CancelDirectOidRequestHandler
            ) + 8
    );
    const _: () = assert!(
        NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_3 as usize
            == size_of::<NDIS_FILTER_DRIVER_CHARACTERISTICS>()
    );

    assert_layout!(NDIS_FILTER_ATTRIBUTES, size = 8, Flags = 4);
    assert_layout!(
        NDIS_FILTER_ATTACH_PARAMETERS,
        size = 0xE0,
        IfIndex = 4,
        NetLuid = 8,
        FilterModuleGuidName = 0x10,
        BaseMiniportIfIndex = 0x18,
        BaseMiniportInstanceName = 0x20,
        BaseMiniportName = 0x28,
        MediaConnectState = 0x30,
        MediaDuplexState = 0x34,
        XmitLinkSpeed = 0x38,
        RcvLinkSpeed = 0x40,
        MiniportMediaType = 0x48,
        MiniportPhysicalMediaType = 0x4C,
        MiniportMediaSpecificAttributes = 0x50,
        DefaultOffloadConfiguration = 0x58,
        MacAddressLength = 0x60,
        CurrentMacAddress = 0x62,
        BaseMiniportNetLuid = 0x88,
        LowerIfIndex = 0x90,
        LowerIfNetLuid = 0x98,
        Flags = 0xA0,
        HDSplitCurrentConfig = 0xA8,
        ReceiveFilterCapabilities = 0xB0,
        MiniportPhysicalDeviceObject = 0xB8,
        NicSwitchCapabilities = 0xC0,
        BaseMiniportIfConnectorPresent = 0xC8,
        SriovCapabilities = 0xD0,
        NicSwitchArray = 0xD8
    );
    const _: () = assert!(
        NDIS_SIZEOF_FILTER_ATTACH_PARAMETERS_REVISION_1 as usize
            == offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, Flags) + 4
    );
    const _: () = assert!(
        NDIS_SIZEOF_FILTER_ATTACH_PARAMETERS_REVISION_2 as usize
            == offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, HDSplitCurrentConfig) + 8
    );
    const _: () = assert!(
        NDIS_SIZEOF_FILTER_ATTACH_PARAMETERS_REVISION_3 as usize
            == offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, NicSwitchCapabilities) + 8
    );
    const _: () = assert!(
        NDIS_SIZEOF_FILTER_ATTACH_PARAMETERS_REVISION_4 as usize
            == size_of::<NDIS_FILTER_ATTACH_PARAMETERS>()
    );

    assert_layout!(
        NDIS_FILTER_RESTART_PARAMETERS,
        size = 0x30,
        MiniportMediaType = 4,
        MiniportPhysicalMediaType = 8,
        RestartAttributes = 0x10,
        LowerIfIndex = 0x18,
        LowerIfNetLuid = 0x20,
        Flags = 0x28
    );
    assert_layout!(
        NDIS_RESTART_ATTRIBUTES,
        size = 0x10,
        Next = 0,
        Oid = 8,
        DataLength = 0xC
    );
    // OBSERVED: the x64 offsets of a public PDB type dump of ndis.sys (MtuSize 0x4 ...
    // ContextBackFillSize 0x44, SupportedOidList 0x48, size 0x58).
    assert_layout!(
        NDIS_RESTART_GENERAL_ATTRIBUTES,
        size = 0x58,
        MtuSize = 4,
        MaxXmitLinkSpeed = 8,
        MaxRcvLinkSpeed = 0x10,
        LookaheadSize = 0x18,
        MacOptions = 0x1C,
        SupportedPacketFilters = 0x20,
        MaxMulticastListSize = 0x24,
        RecvScaleCapabilities = 0x28,
        AccessType = 0x30,
        Flags = 0x34,
        ConnectionType = 0x38,
        SupportedStatistics = 0x3C,
        DataBackFillSize = 0x40,
        ContextBackFillSize = 0x44,
        SupportedOidList = 0x48,
        SupportedOidListLength = 0x50,
        MaxLookaheadSizeAccessed = 0x54
    );
    const _: () = assert!(
        offset_of!(NDIS_RESTART_GENERAL_ATTRIBUTES, SupportedOidListLength) + 4
            == NDIS_SIZEOF_RESTART_GENERAL_ATTRIBUTES_REVISION_1 as usize
    );
    const _: () = assert!(
        size_of::<NDIS_RESTART_GENERAL_ATTRIBUTES>()
            == NDIS_SIZEOF_RESTART_GENERAL_ATTRIBUTES_REVISION_2 as usize
    );
    assert_layout!(
        NDIS_FILTER_PAUSE_PARAMETERS,
        size = 0xC,
        Flags = 4,
        PauseReason = 8
    );

    assert_layout!(
        NDIS_OID_QUERY_SET_INFORMATION,
        size = 0x20,
        Oid = 0,
        InformationBuffer = 8,
        InformationBufferLength = 0x10,
        BytesWrittenOrRead = 0x14,
        BytesNeeded = 0x18
    );
    assert_layout!(
        NDIS_OID_METHOD_INFORMATION,
        size = 0x28,
        InformationBuffer = 8,
        InputBufferLength = 0x10,
        OutputBufferLength = 0x14,
        MethodId = 0x18,
        BytesWritten = 0x1C,
        BytesRead = 0x20,
        BytesNeeded = 0x24
    );
    assert_layout!(
        NDIS_OID_REQUEST,
        size = 0xF8,
        RequestType = 4,
        PortNumber = 8,
        Timeout = 0xC,
        RequestId = 0x10,
        RequestHandle = 0x18,
        DATA = 0x20,
        NdisReserved = 0x48,
        MiniportReserved = 0xC8,
        SourceReserved = 0xD8,
        SupportedRevision = 0xE8,
        Reserved1 = 0xE9,
        Reserved2 = 0xEA,
        SwitchId = 0xEC,
        VPortId = 0xF0,
        Flags = 0xF4
    );
    const _: () = assert!(
        NDIS_SIZEOF_OID_REQUEST_REVISION_1 as usize == offset_of!(NDIS_OID_REQUEST, Reserved2) + 2
    );
    const _: () = assert!(
        NDIS_SIZEOF_OID_REQUEST_REVISION_2 as usize == offset_of!(NDIS_OID_REQUEST, Flags) + 4
    );

    assert_layout!(
        NDIS_STATUS_INDICATION,
        size = 0x70,
        SourceHandle = 8,
        PortNumber = 0x10,
        StatusCode = 0x14,
        Flags = 0x18,
        DestinationHandle = 0x20,
        RequestId = 0x28,
        StatusBuffer = 0x30,
        StatusBufferSize = 0x38,
        Guid = 0x3C,
        NdisReserved = 0x50
    );
    assert_layout!(
        NET_PNP_EVENT,
        size = 0x98,
        NetEvent = 0,
        Buffer = 8,
        BufferLength = 0x10,
        NdisReserved = 0x18,
        TransportReserved = 0x38,
        TdiReserved = 0x58,
        TdiClientReserved = 0x78
    );
    assert_layout!(
        NET_PNP_EVENT_NOTIFICATION,
        size = 0xA0,
        PortNumber = 4,
        NetPnPEvent = 8
    );

    assert_layout!(
        NDIS_CONFIGURATION_OBJECT,
        size = 0x18,
        NdisHandle = 8,
        Flags = 0x10
    );
    const _: () = assert!(
        NDIS_SIZEOF_CONFIGURATION_OBJECT_REVISION_1 as usize
            == size_of::<NDIS_CONFIGURATION_OBJECT>()
    );
    assert_layout!(
        NDIS_CONFIGURATION_PARAMETER,
        size = 0x18,
        ParameterType = 0,
        ParameterData = 8
    );
    assert_layout!(
        NDIS_TIMER_CHARACTERISTICS,
        size = 0x18,
        AllocationTag = 4,
        TimerFunction = 8,
        FunctionContext = 0x10
    );
    const _: () = assert!(
        NDIS_SIZEOF_TIMER_CHARACTERISTICS_REVISION_1 as usize
            == size_of::<NDIS_TIMER_CHARACTERISTICS>()
    );
    assert_layout!(
        NET_BUFFER_LIST_POOL_PARAMETERS,
        size = 0x14,
        ProtocolId = 4,
        fAllocateNetBuffer = 5,
        ContextSize = 6,
        PoolTag = 8,
        DataSize = 0xC,
        Flags = 0x10
    );
    assert_layout!(
        NET_BUFFER_POOL_PARAMETERS,
        size = 0xC,
        PoolTag = 4,
        DataSize = 8
    );
}
