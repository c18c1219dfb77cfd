//! Basic Windows types with fixed widths, strings, processor numbers, the driver object and
//! `NDIS_OBJECT_HEADER` (the header every versioned NDIS structure starts with).

use core::ffi::c_void;

pub type UCHAR = u8;
pub type USHORT = u16;
pub type ULONG = u32;
pub type LONG = i32;
pub type ULONG64 = u64;
pub type ULONG_PTR = usize;
pub type SIZE_T = usize;
pub type BOOLEAN = u8;
pub type CSHORT = i16;
pub type PVOID = *mut c_void;
pub type HANDLE = *mut c_void;
pub type NDIS_HANDLE = *mut c_void;
pub type NTSTATUS = i32;
pub type KIRQL = u8;
/// A kernel spin lock is one pointer-sized word.
pub type KSPIN_LOCK = usize;
pub type NDIS_PORT_NUMBER = u32;
pub type NET_IFINDEX = u32;
pub type NDIS_OID = u32;
pub type PFN_NUMBER = u64;
pub type POOL_FLAGS = u64;
pub type PHYSICAL_ADDRESS = i64;

pub const TRUE: BOOLEAN = 1;
pub const FALSE: BOOLEAN = 0;

/// `UNICODE_STRING` / `NDIS_STRING`: lengths in bytes, buffer not necessarily NUL-terminated.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UNICODE_STRING {
    pub Length: u16,
    pub MaximumLength: u16,
    pub Buffer: *mut u16,
}
pub type NDIS_STRING = UNICODE_STRING;

impl UNICODE_STRING {
    /// An empty string.
    pub const EMPTY: Self = Self {
        Length: 0,
        MaximumLength: 0,
        Buffer: core::ptr::null_mut(),
    };

    /// Describes a static UTF-16 buffer (without its trailing NUL, if any).
    pub const fn from_static(units: &'static [u16]) -> Self {
        let mut len = units.len();
        if len > 0 && units[len - 1] == 0 {
            len -= 1;
        }
        Self {
            Length: (len * 2) as u16,
            MaximumLength: (units.len() * 2) as u16,
            Buffer: units.as_ptr() as *mut u16,
        }
    }
}

/// Builds a `'static` NUL-terminated UTF-16 array from an ASCII string literal at compile time.
#[macro_export]
macro_rules! utf16 {
    ($s:expr) => {{
        const S: &str = $s;
        const N: usize = S.len() + 1;
        const W: [u16; N] = {
            let b = S.as_bytes();
            let mut w = [0u16; N];
            let mut i = 0;
            while i < b.len() {
                assert!(b[i] < 0x80, "utf16! takes ASCII only");
                w[i] = b[i] as u16;
                i += 1;
            }
            w
        };
        &W
    }};
}

/// `PROCESSOR_NUMBER`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PROCESSOR_NUMBER {
    pub Group: u16,
    pub Number: u8,
    pub Reserved: u8,
}

/// `ALL_PROCESSOR_GROUPS` for KeQueryMaximumProcessorCountEx.
pub const ALL_PROCESSOR_GROUPS: u16 = 0xFFFF;

/// `GUID`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GUID {
    pub Data1: u32,
    pub Data2: u16,
    pub Data3: u16,
    pub Data4: [u8; 8],
}

/// `LARGE_INTEGER` (only the QuadPart view is used).
pub type LARGE_INTEGER = i64;

pub type PDRIVER_UNLOAD = Option<unsafe extern "system" fn(DriverObject: *mut DRIVER_OBJECT)>;
pub type PDRIVER_INITIALIZE = Option<
    unsafe extern "system" fn(
        DriverObject: *mut DRIVER_OBJECT,
        RegistryPath: *mut UNICODE_STRING,
    ) -> NTSTATUS,
>;

/// `IRP_MJ_MAXIMUM_FUNCTION + 1`.
pub const IRP_MJ_COUNT: usize = 28;
/// `IO_TYPE_DRIVER`, the `Type` of a DRIVER_OBJECT.
pub const IO_TYPE_DRIVER: i16 = 4;

/// `DRIVER_OBJECT` (wdm.h). The driver only reads it and sets `DriverUnload`.
#[repr(C)]
pub struct DRIVER_OBJECT {
    pub Type: i16,
    pub Size: i16,
    pub DeviceObject: PVOID,
    pub Flags: u32,
    pub DriverStart: PVOID,
    pub DriverSize: u32,
    pub DriverSection: PVOID,
    pub DriverExtension: PVOID,
    pub DriverName: UNICODE_STRING,
    pub HardwareDatabase: *mut UNICODE_STRING,
    pub FastIoDispatch: PVOID,
    pub DriverInit: PDRIVER_INITIALIZE,
    pub DriverStartIo: PVOID,
    pub DriverUnload: PDRIVER_UNLOAD,
    pub MajorFunction: [PVOID; IRP_MJ_COUNT],
}

pub const STATUS_SUCCESS: NTSTATUS = 0;
pub const STATUS_UNSUCCESSFUL: NTSTATUS = 0xC000_0001_u32 as i32;
pub const STATUS_INSUFFICIENT_RESOURCES: NTSTATUS = 0xC000_009A_u32 as i32;

/// `NT_SUCCESS(status)`.
#[inline]
pub const fn NT_SUCCESS(status: NTSTATUS) -> bool {
    status >= 0
}

/// IRQL levels.
pub const PASSIVE_LEVEL: KIRQL = 0;
pub const APC_LEVEL: KIRQL = 1;
pub const DISPATCH_LEVEL: KIRQL = 2;
pub const HIGH_LEVEL: KIRQL = 15;

/// ExAllocatePool2 flags (wdm.h).
pub const POOL_FLAG_USE_QUOTA: POOL_FLAGS = 0x1;
pub const POOL_FLAG_UNINITIALIZED: POOL_FLAGS = 0x2;
pub const POOL_FLAG_CACHE_ALIGNED: POOL_FLAGS = 0x8;
pub const POOL_FLAG_RAISE_ON_FAILURE: POOL_FLAGS = 0x20;
/// Nonpaged, no-execute.
pub const POOL_FLAG_NON_PAGED: POOL_FLAGS = 0x40;
pub const POOL_FLAG_NON_PAGED_EXECUTE: POOL_FLAGS = 0x80;
pub const POOL_FLAG_PAGED: POOL_FLAGS = 0x100;

/// DbgPrintEx component ids and levels (dpfilter.h).
pub const DPFLTR_IHVDRIVER_ID: u32 = 77;
pub const DPFLTR_IHVNETWORK_ID: u32 = 80;
pub const DPFLTR_ERROR_LEVEL: u32 = 0;
pub const DPFLTR_WARNING_LEVEL: u32 = 1;
pub const DPFLTR_TRACE_LEVEL: u32 = 2;
pub const DPFLTR_INFO_LEVEL: u32 = 3;

pub const PAGE_SIZE: usize = 0x1000;
/// `MEMORY_ALLOCATION_ALIGNMENT`: 16 on x64 and arm64 (ntdef.h). NBL context sizes and backfills
/// are multiples of it, so each driver's context data stays aligned to it.
pub const MEMORY_ALLOCATION_ALIGNMENT: usize = 16;
pub const PAGE_SHIFT: u32 = 12;

/// `NDIS_OBJECT_HEADER`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NDIS_OBJECT_HEADER {
    pub Type: u8,
    pub Revision: u8,
    pub Size: u16,
}

impl NDIS_OBJECT_HEADER {
    #[inline]
    pub const fn new(ty: u8, revision: u8, size: u16) -> Self {
        Self {
            Type: ty,
            Revision: revision,
            Size: size,
        }
    }
}
