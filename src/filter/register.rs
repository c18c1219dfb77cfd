//! Filling NDIS_FILTER_DRIVER_CHARACTERISTICS and calling NdisFRegisterFilterDriver /
//! NdisFDeregisterFilterDriver.

use super::{module, oid, receive, send, status};
use crate::names;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};
use ndis_sys::*;

static FILTER_DRIVER_HANDLE: AtomicPtr<core::ffi::c_void> = AtomicPtr::new(ptr::null_mut());

/// The handle NdisFRegisterFilterDriver returned (NULL when not registered). Any IRQL.
pub fn driver_handle() -> NDIS_HANDLE {
    FILTER_DRIVER_HANDLE.load(Ordering::Acquire)
}

/// NDIS versions this driver knows how to register as, highest first: (runtime version, minor).
const KNOWN_VERSIONS: &[(u32, u8)] = &[
    (NDIS_RUNTIME_VERSION_689, 89),
    (NDIS_RUNTIME_VERSION_688, 88),
    (NDIS_RUNTIME_VERSION_687, 87),
    (NDIS_RUNTIME_VERSION_686, 86),
    (NDIS_RUNTIME_VERSION_685, 85),
    (NDIS_RUNTIME_VERSION_684, 84),
    (NDIS_RUNTIME_VERSION_683, 83),
    (NDIS_RUNTIME_VERSION_682, 82),
    (NDIS_RUNTIME_VERSION_681, 81),
    (NDIS_RUNTIME_VERSION_680, 80),
    (NDIS_RUNTIME_VERSION_670, 70),
    (NDIS_RUNTIME_VERSION_660, 60),
    (NDIS_RUNTIME_VERSION_650, 50),
    (NDIS_RUNTIME_VERSION_640, 40),
    (NDIS_RUNTIME_VERSION_630, 30),
];

/// The (major, minor) NDIS version to register with on a system reporting `runtime`
/// (`NdisGetVersion()`): the highest known version not above it, or `None` below NDIS 6.30. Pure; any IRQL.
pub fn ndis_version_for(runtime: u32) -> Option<(u8, u8)> {
    KNOWN_VERSIONS
        .iter()
        .find(|(v, _)| *v <= runtime)
        .map(|&(_, minor)| (6, minor))
}

/// Registers the filter. PASSIVE_LEVEL, from DriverEntry.
///
/// # Safety
/// `driver_object` must be the driver's valid DRIVER_OBJECT; call once.
pub unsafe fn register(driver_object: *mut DRIVER_OBJECT) -> NDIS_STATUS {
    // SAFETY: NdisGetVersion has no preconditions.
    let runtime = unsafe { NdisGetVersion() };
    let Some((major, minor)) = ndis_version_for(runtime) else {
        log!(DPFLTR_ERROR_LEVEL, "NDIS {:#x} is older than 6.30", runtime);
        return NDIS_STATUS_BAD_VERSION;
    };
    let (revision, size) = if minor >= 80 {
        (
            NDIS_FILTER_CHARACTERISTICS_REVISION_3,
            NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_3,
        )
    } else {
        (
            NDIS_FILTER_CHARACTERISTICS_REVISION_2,
            NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_2,
        )
    };
    let mut chars = NDIS_FILTER_DRIVER_CHARACTERISTICS {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_FILTER_DRIVER_CHARACTERISTICS,
            revision,
            size,
        ),
        MajorNdisVersion: major,
        MinorNdisVersion: minor,
        MajorDriverVersion: 1,
        MinorDriverVersion: 0,
        Flags: 0,
        FriendlyName: NDIS_STRING::from_static(names::FRIENDLY_NAME_W),
        UniqueName: NDIS_STRING::from_static(names::UNIQUE_NAME_W),
        ServiceName: NDIS_STRING::from_static(names::SERVICE_NAME_W),
        SetOptionsHandler: None,
        SetFilterModuleOptionsHandler: None,
        AttachHandler: Some(module::FilterAttach),
        DetachHandler: Some(module::FilterDetach),
        RestartHandler: Some(module::FilterRestart),
        PauseHandler: Some(module::FilterPause),
        SendNetBufferListsHandler: Some(send::FilterSendNetBufferLists),
        SendNetBufferListsCompleteHandler: Some(send::FilterSendNetBufferListsComplete),
        CancelSendNetBufferListsHandler: Some(send::FilterCancelSendNetBufferLists),
        ReceiveNetBufferListsHandler: Some(receive::FilterReceiveNetBufferLists),
        ReturnNetBufferListsHandler: Some(receive::FilterReturnNetBufferLists),
        OidRequestHandler: Some(oid::FilterOidRequest),
        OidRequestCompleteHandler: Some(oid::FilterOidRequestComplete),
        CancelOidRequestHandler: Some(oid::FilterCancelOidRequest),
        DevicePnPEventNotifyHandler: Some(status::FilterDevicePnPEventNotify),
        NetPnPEventHandler: Some(status::FilterNetPnPEvent),
        StatusHandler: Some(status::FilterStatus),
        DirectOidRequestHandler: None,
        DirectOidRequestCompleteHandler: None,
        CancelDirectOidRequestHandler: None,
        SynchronousOidRequestHandler: None,
        SynchronousOidRequestCompleteHandler: None,
    };
    let mut handle: NDIS_HANDLE = ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; NDIS copies `chars` (whose strings are 'static) before returning and
    // writes the handle. The handle is published before registration returns because NDIS may call
    // FilterAttach from inside this call; attach only needs its own NdisFilterHandle argument.
    let status = unsafe {
        NdisFRegisterFilterDriver(driver_object, ptr::null_mut(), &mut chars, &mut handle)
    };
    if status == NDIS_STATUS_SUCCESS {
        FILTER_DRIVER_HANDLE.store(handle, Ordering::Release);
        log!(
            DPFLTR_INFO_LEVEL,
            "registered as NDIS 6.{} (system {:#x})",
            minor,
            runtime
        );
    }
    status
}

/// Deregisters the filter (NDIS pauses and detaches every module first). PASSIVE_LEVEL, from
/// DriverUnload.
///
/// # Safety
/// Call once, after a successful [`register`].
pub unsafe fn deregister() {
    let handle = FILTER_DRIVER_HANDLE.swap(ptr::null_mut(), Ordering::AcqRel);
    if !handle.is_null() {
        // SAFETY: PASSIVE_LEVEL, the handle NdisFRegisterFilterDriver returned.
        unsafe { NdisFDeregisterFilterDriver(handle) };
    }
}

#[cfg(test)]
mod tests {
    use super::ndis_version_for;

    #[test]
    fn picks_the_highest_known_version_not_above_the_system() {
        assert_eq!(ndis_version_for(0x0006_001E), Some((6, 30)));
        assert_eq!(ndis_version_for(0x0006_0052), Some((6, 82)));
        assert_eq!(ndis_version_for(0x0006_0060), Some((6, 89)));
        assert_eq!(ndis_version_for(0x0006_004F), Some((6, 70)));
        assert_eq!(ndis_version_for(0x0006_0014), None);
    }
}
