//! Every routine the driver imports, declared once. On Windows targets each block links with
//! `raw-dylib` against the module that exports it; elsewhere the names resolve against ndis-sim.
//! IRQL requirements are those of the documented routine (ndis-contract.md §2.1, §3.1).

use crate::filter::*;
use crate::mdl::{
    KernelMode, MmCached, KPROCESSOR_MODE, MDL, MDL_MAPPED_TO_SYSTEM_VA,
    MDL_SOURCE_IS_NONPAGED_POOL, MEMORY_CACHING_TYPE,
};
use crate::nbl::*;
use crate::status::NDIS_STATUS;
use crate::types::*;

#[cfg_attr(
    target_os = "windows",
    link(name = "ndis.sys", kind = "raw-dylib", modifiers = "+verbatim")
)]
extern "system" {
    // --- Filter registration and module lifecycle (PASSIVE_LEVEL unless noted) ---
    pub fn NdisFRegisterFilterDriver(
        DriverObject: *mut DRIVER_OBJECT,
        FilterDriverContext: NDIS_HANDLE,
        FilterDriverCharacteristics: *mut NDIS_FILTER_DRIVER_CHARACTERISTICS,
        NdisFilterDriverHandle: *mut NDIS_HANDLE,
    ) -> NDIS_STATUS;
    pub fn NdisFDeregisterFilterDriver(NdisFilterDriverHandle: NDIS_HANDLE);
    pub fn NdisFSetAttributes(
        NdisFilterHandle: NDIS_HANDLE,
        FilterModuleContext: NDIS_HANDLE,
        FilterAttributes: *mut NDIS_FILTER_ATTRIBUTES,
    ) -> NDIS_STATUS;
    pub fn NdisFRestartComplete(NdisFilterHandle: NDIS_HANDLE, Status: NDIS_STATUS);
    /// IRQL <= DISPATCH_LEVEL.
    pub fn NdisFPauseComplete(NdisFilterHandle: NDIS_HANDLE);
    pub fn NdisGetVersion() -> u32;

    // --- Data path (IRQL <= DISPATCH_LEVEL) ---
    pub fn NdisFSendNetBufferLists(
        NdisFilterHandle: NDIS_HANDLE,
        NetBufferLists: *mut NET_BUFFER_LIST,
        PortNumber: NDIS_PORT_NUMBER,
        SendFlags: u32,
    );
    pub fn NdisFSendNetBufferListsComplete(
        NdisFilterHandle: NDIS_HANDLE,
        NetBufferLists: *mut NET_BUFFER_LIST,
        SendCompleteFlags: u32,
    );
    pub fn NdisFCancelSendNetBufferLists(NdisFilterHandle: NDIS_HANDLE, CancelId: PVOID);
    pub fn NdisFIndicateReceiveNetBufferLists(
        NdisFilterHandle: NDIS_HANDLE,
        NetBufferLists: *mut NET_BUFFER_LIST,
        PortNumber: NDIS_PORT_NUMBER,
        NumberOfNetBufferLists: u32,
        ReceiveFlags: u32,
    );
    pub fn NdisFReturnNetBufferLists(
        NdisFilterHandle: NDIS_HANDLE,
        NetBufferLists: *mut NET_BUFFER_LIST,
        ReturnFlags: u32,
    );

    // --- OIDs, status, PnP ---
    /// IRQL <= DISPATCH_LEVEL.
    pub fn NdisAllocateCloneOidRequest(
        SourceHandle: NDIS_HANDLE,
        OidRequest: *mut NDIS_OID_REQUEST,
        PoolTag: u32,
        CloneOidRequest: *mut *mut NDIS_OID_REQUEST,
    ) -> NDIS_STATUS;
    /// IRQL <= DISPATCH_LEVEL.
    pub fn NdisFreeCloneOidRequest(SourceHandle: NDIS_HANDLE, OidRequest: *mut NDIS_OID_REQUEST);
    /// IRQL <= DISPATCH_LEVEL.
    pub fn NdisFOidRequest(
        NdisFilterHandle: NDIS_HANDLE,
        OidRequest: *mut NDIS_OID_REQUEST,
    ) -> NDIS_STATUS;
    /// IRQL <= DISPATCH_LEVEL.
    pub fn NdisFOidRequestComplete(
        NdisFilterHandle: NDIS_HANDLE,
        OidRequest: *mut NDIS_OID_REQUEST,
        Status: NDIS_STATUS,
    );
    /// IRQL <= DISPATCH_LEVEL.
    pub fn NdisFCancelOidRequest(NdisFilterHandle: NDIS_HANDLE, RequestId: PVOID);
    /// IRQL <= DISPATCH_LEVEL.
    pub fn NdisFIndicateStatus(
        NdisFilterHandle: NDIS_HANDLE,
        StatusIndication: *mut NDIS_STATUS_INDICATION,
    );
    pub fn NdisFNetPnPEvent(
        NdisFilterHandle: NDIS_HANDLE,
        NetPnPEventNotification: *mut NET_PNP_EVENT_NOTIFICATION,
    ) -> NDIS_STATUS;
    pub fn NdisFDevicePnPEventNotify(
        NdisFilterHandle: NDIS_HANDLE,
        NetDevicePnPEvent: *mut NET_DEVICE_PNP_EVENT,
    );

    // --- NET_BUFFER / NBL / MDL (IRQL <= DISPATCH_LEVEL) ---
    pub fn NdisRetreatNetBufferDataStart(
        NetBuffer: *mut NET_BUFFER,
        DataOffsetDelta: u32,
        DataBackFill: u32,
        AllocateMdlHandler: NET_BUFFER_ALLOCATE_MDL_HANDLER,
    ) -> NDIS_STATUS;
    pub fn NdisAdvanceNetBufferDataStart(
        NetBuffer: *mut NET_BUFFER,
        DataOffsetDelta: u32,
        FreeMdl: BOOLEAN,
        FreeMdlHandler: NET_BUFFER_FREE_MDL_HANDLER,
    );
    pub fn NdisRetreatNetBufferListDataStart(
        NetBufferList: *mut NET_BUFFER_LIST,
        DataOffsetDelta: u32,
        DataBackFill: u32,
        AllocateMdlHandler: NET_BUFFER_ALLOCATE_MDL_HANDLER,
        FreeMdlHandler: NET_BUFFER_FREE_MDL_HANDLER,
    ) -> NDIS_STATUS;
    pub fn NdisAdvanceNetBufferListDataStart(
        NetBufferList: *mut NET_BUFFER_LIST,
        DataOffsetDelta: u32,
        FreeMdl: BOOLEAN,
        FreeMdlHandler: NET_BUFFER_FREE_MDL_HANDLER,
    );
    pub fn NdisAdjustNetBufferCurrentMdl(NetBuffer: *mut NET_BUFFER);
    pub fn NdisGetDataBuffer(
        NetBuffer: *mut NET_BUFFER,
        BytesNeeded: u32,
        Storage: PVOID,
        AlignMultiple: u32,
        AlignOffset: u32,
    ) -> PVOID;
    pub fn NdisAllocateNetBufferListPool(
        NdisHandle: NDIS_HANDLE,
        Parameters: *mut NET_BUFFER_LIST_POOL_PARAMETERS,
    ) -> NDIS_HANDLE;
    pub fn NdisFreeNetBufferListPool(PoolHandle: NDIS_HANDLE);
    pub fn NdisAllocateNetBufferAndNetBufferList(
        PoolHandle: NDIS_HANDLE,
        ContextSize: u16,
        ContextBackFill: u16,
        MdlChain: *mut MDL,
        DataOffset: u32,
        DataLength: SIZE_T,
    ) -> *mut NET_BUFFER_LIST;
    pub fn NdisAllocateNetBufferList(
        PoolHandle: NDIS_HANDLE,
        ContextSize: u16,
        ContextBackFill: u16,
    ) -> *mut NET_BUFFER_LIST;
    pub fn NdisFreeNetBufferList(NetBufferList: *mut NET_BUFFER_LIST);
    pub fn NdisAllocateNetBufferPool(
        NdisHandle: NDIS_HANDLE,
        Parameters: *mut NET_BUFFER_POOL_PARAMETERS,
    ) -> NDIS_HANDLE;
    pub fn NdisFreeNetBufferPool(PoolHandle: NDIS_HANDLE);
    pub fn NdisAllocateNetBuffer(
        PoolHandle: NDIS_HANDLE,
        MdlChain: *mut MDL,
        DataOffset: u32,
        DataLength: SIZE_T,
    ) -> *mut NET_BUFFER;
    pub fn NdisFreeNetBuffer(NetBuffer: *mut NET_BUFFER);
    pub fn NdisAllocateNetBufferListContext(
        NetBufferList: *mut NET_BUFFER_LIST,
        ContextSize: u16,
        ContextBackFill: u16,
        PoolTag: u32,
    ) -> NDIS_STATUS;
    pub fn NdisFreeNetBufferListContext(NetBufferList: *mut NET_BUFFER_LIST, ContextSize: u16);
    pub fn NdisAllocateMdl(NdisHandle: NDIS_HANDLE, VirtualAddress: PVOID, Length: u32)
        -> *mut MDL;
    pub fn NdisFreeMdl(Mdl: *mut MDL);
    pub fn NdisAllocateMemoryWithTagPriority(
        NdisHandle: NDIS_HANDLE,
        Length: u32,
        Tag: u32,
        Priority: u32,
    ) -> PVOID;
    pub fn NdisFreeMemory(VirtualAddress: PVOID, Length: u32, MemoryFlags: u32);

    // --- Configuration (PASSIVE_LEVEL) ---
    pub fn NdisOpenConfigurationEx(
        ConfigObject: *mut NDIS_CONFIGURATION_OBJECT,
        ConfigurationHandle: *mut NDIS_HANDLE,
    ) -> NDIS_STATUS;
    pub fn NdisReadConfiguration(
        Status: *mut NDIS_STATUS,
        ParameterValue: *mut *mut NDIS_CONFIGURATION_PARAMETER,
        ConfigurationHandle: NDIS_HANDLE,
        Keyword: *mut NDIS_STRING,
        ParameterType: u32,
    );
    pub fn NdisCloseConfiguration(ConfigurationHandle: NDIS_HANDLE);

    // --- Timer objects ---
    /// PASSIVE_LEVEL.
    pub fn NdisAllocateTimerObject(
        NdisHandle: NDIS_HANDLE,
        TimerCharacteristics: *mut NDIS_TIMER_CHARACTERISTICS,
        pTimerObject: *mut NDIS_HANDLE,
    ) -> NDIS_STATUS;
    /// IRQL <= DISPATCH_LEVEL. `DueTime` is in 100 ns units, negative = relative.
    pub fn NdisSetTimerObject(
        TimerObject: NDIS_HANDLE,
        DueTime: LARGE_INTEGER,
        MillisecondsPeriod: u32,
        FunctionContext: PVOID,
    ) -> BOOLEAN;
    /// IRQL <= DISPATCH_LEVEL.
    pub fn NdisCancelTimerObject(TimerObject: NDIS_HANDLE) -> BOOLEAN;
    /// PASSIVE_LEVEL.
    pub fn NdisFreeTimerObject(TimerObject: NDIS_HANDLE);
}

#[cfg_attr(
    target_os = "windows",
    link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")
)]
extern "system" {
    /// IRQL <= DISPATCH_LEVEL for nonpaged pool. Zeroed unless POOL_FLAG_UNINITIALIZED.
    pub fn ExAllocatePool2(Flags: POOL_FLAGS, NumberOfBytes: SIZE_T, Tag: u32) -> PVOID;
    /// IRQL <= DISPATCH_LEVEL.
    pub fn ExFreePoolWithTag(P: PVOID, Tag: u32);
    /// IRQL <= DISPATCH_LEVEL.
    pub fn ExFreePool(P: PVOID);
    /// IRQL <= DISPATCH_LEVEL. Fills the PFN array, sets MappedSystemVa and MDL_SOURCE_IS_NONPAGED_POOL.
    pub fn MmBuildMdlForNonPagedPool(MemoryDescriptorList: *mut MDL);
    /// Maps the locked pages an MDL describes into system space. IRQL <= DISPATCH_LEVEL with
    /// `AccessMode = KernelMode` (<= APC_LEVEL for UserMode). Returns NULL on failure when
    /// `BugCheckOnFailure` is FALSE (drivers must pass FALSE). Called only through
    /// [`crate::MmGetSystemAddressForMdlSafe`]; the mapping belongs to the MDL and is released when its
    /// owner unlocks/frees it.
    pub fn MmMapLockedPagesSpecifyCache(
        MemoryDescriptorList: *mut MDL,
        AccessMode: KPROCESSOR_MODE,
        CacheType: MEMORY_CACHING_TYPE,
        RequestedAddress: PVOID,
        BugCheckOnFailure: u32,
        Priority: u32,
    ) -> PVOID;
    /// Any IRQL. Returns the system-wide processor index.
    pub fn KeGetCurrentProcessorNumberEx(ProcNumber: *mut PROCESSOR_NUMBER) -> u32;
    /// Any IRQL.
    pub fn KeQueryMaximumProcessorCountEx(GroupNumber: u16) -> u32;
    /// Any IRQL.
    pub fn KeQueryActiveProcessorCountEx(GroupNumber: u16) -> u32;
    /// PASSIVE_LEVEL. Returns after every DPC queued on any processor (a cancelled timer's included) has run.
    pub fn KeFlushQueuedDpcs();
    /// IRQL <= DISPATCH_LEVEL; returns the previous IRQL, now DISPATCH_LEVEL.
    pub fn KeAcquireSpinLockRaiseToDpc(SpinLock: *mut KSPIN_LOCK) -> KIRQL;
    /// DISPATCH_LEVEL; lowers to `NewIrql`.
    pub fn KeReleaseSpinLock(SpinLock: *mut KSPIN_LOCK, NewIrql: KIRQL);
    /// DISPATCH_LEVEL.
    pub fn KeAcquireSpinLockAtDpcLevel(SpinLock: *mut KSPIN_LOCK);
    /// DISPATCH_LEVEL.
    pub fn KeReleaseSpinLockFromDpcLevel(SpinLock: *mut KSPIN_LOCK);
    /// Any IRQL. Does not return.
    pub fn KeBugCheckEx(
        BugCheckCode: u32,
        BugCheckParameter1: ULONG_PTR,
        BugCheckParameter2: ULONG_PTR,
        BugCheckParameter3: ULONG_PTR,
        BugCheckParameter4: ULONG_PTR,
    ) -> !;
}

// The wdm.h macro over the mapping import above; it lives beside the import it calls so that `mdl`
// (the MDL layout and the macros that need no import) never imports back from this file.
/// `MmGetSystemAddressForMdlSafe(Mdl, Priority)` (wdm.h macro): the MDL's `MappedSystemVa` when it is
/// already mapped into system space or describes nonpaged pool, else
/// `MmMapLockedPagesSpecifyCache(Mdl, KernelMode, MmCached, NULL, FALSE, Priority)`, which maps the
/// locked pages (and sets MDL_MAPPED_TO_SYSTEM_VA) or returns NULL. The MDL must describe locked pages.
/// IRQL <= DISPATCH_LEVEL (the KernelMode mapping's limit).
///
/// # Safety
/// `mdl` must point to a valid MDL describing locked-down pages.
#[inline]
pub unsafe fn MmGetSystemAddressForMdlSafe(mdl: *mut MDL, priority: u32) -> PVOID {
    // SAFETY: the caller guarantees `mdl` is a valid MDL.
    let flags = unsafe { (*mdl).MdlFlags };
    if flags & (MDL_MAPPED_TO_SYSTEM_VA | MDL_SOURCE_IS_NONPAGED_POOL) != 0 {
        // SAFETY: as above.
        unsafe { (*mdl).MappedSystemVa }
    } else {
        // SAFETY: a locked MDL (caller contract); kernel-mode mapping, no bugcheck on failure.
        unsafe {
            MmMapLockedPagesSpecifyCache(
                mdl,
                KernelMode,
                MmCached,
                core::ptr::null_mut(),
                0,
                priority,
            )
        }
    }
}

#[cfg_attr(
    target_os = "windows",
    link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")
)]
extern "C" {
    /// Any IRQL for the driver's use here (preformatted `"%s"` messages only; see [`crate::rt::log`]).
    pub fn DbgPrintEx(ComponentId: u32, Level: u32, Format: *const u8, ...) -> u32;
}

/// The bug check code mdlpool raises on a broken invariant (ASCII "MDLP").
pub const MDLPOOL_BUGCHECK: u32 = u32::from_be_bytes(*b"MDLP");

// Routines the compiler itself emits calls to on `*-pc-windows-msvc` (copies, fills and compares
// LLVM lowers to `memcpy`/`memset`/`memmove`/`memcmp`; stack probes for frames over 4 KiB to
// `__chkstk`). In user mode the CRT supplies them; a driver links with /NODEFAULTLIB, so they are
// imported from ntoskrnl.exe, which exports all five (xtask/known-exports/ntoskrnl.exe.txt).
// Declared only so that the raw-dylib import library defines them; Rust code never calls them.
// On other targets the C library provides them and nothing is declared here.
#[cfg(target_os = "windows")]
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
extern "C" {
    pub fn memcpy(
        dest: *mut core::ffi::c_void,
        src: *const core::ffi::c_void,
        n: usize,
    ) -> *mut core::ffi::c_void;
    pub fn memmove(
        dest: *mut core::ffi::c_void,
        src: *const core::ffi::c_void,
        n: usize,
    ) -> *mut core::ffi::c_void;
    pub fn memset(dest: *mut core::ffi::c_void, c: i32, n: usize) -> *mut core::ffi::c_void;
    pub fn memcmp(a: *const core::ffi::c_void, b: *const core::ffi::c_void, n: usize) -> i32;
    pub fn __chkstk();
}
