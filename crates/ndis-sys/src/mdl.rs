//! `MDL` and the wdm.h macros over it (ndis-contract.md §1.1).

use crate::types::*;
use core::ffi::c_void;

/// Memory descriptor list. A `PFN_NUMBER` array follows the structure at `(Mdl + 1)`.
#[repr(C)]
#[derive(Debug)]
pub struct MDL {
    pub Next: *mut MDL,
    /// Bytes of MDL header + PFN array.
    pub Size: CSHORT,
    pub MdlFlags: CSHORT,
    /// Named in newer ntoskrnl PDBs; padding in the WDK view.
    pub AllocationProcessorNumber: u16,
    pub Reserved: u16,
    pub Process: PVOID,
    pub MappedSystemVa: PVOID,
    /// Page-aligned.
    pub StartVa: PVOID,
    pub ByteCount: u32,
    /// Offset of the buffer within the first page.
    pub ByteOffset: u32,
}

pub const MDL_MAPPED_TO_SYSTEM_VA: i16 = 0x0001;
pub const MDL_PAGES_LOCKED: i16 = 0x0002;
pub const MDL_SOURCE_IS_NONPAGED_POOL: i16 = 0x0004;
pub const MDL_ALLOCATED_FIXED_SIZE: i16 = 0x0008;
pub const MDL_PARTIAL: i16 = 0x0010;
pub const MDL_PARTIAL_HAS_BEEN_MAPPED: i16 = 0x0020;
pub const MDL_IO_PAGE_READ: i16 = 0x0040;
pub const MDL_WRITE_OPERATION: i16 = 0x0080;
pub const MDL_PARENT_MAPPED_SYSTEM_VA: i16 = 0x0100;
pub const MDL_FREE_EXTRA_PTES: i16 = 0x0200;
pub const MDL_DESCRIBES_AWE: i16 = 0x0400;
pub const MDL_IO_SPACE: i16 = 0x0800;
pub const MDL_NETWORK_HEADER: i16 = 0x1000;
pub const MDL_MAPPING_CAN_FAIL: i16 = 0x2000;
pub const MDL_PAGE_CONTENTS_INVARIANT: i16 = 0x4000;
pub const MDL_INTERNAL: i16 = 0x8000_u16 as i16;

/// `BYTE_OFFSET(Va)`.
#[inline]
pub fn BYTE_OFFSET(va: *const c_void) -> u32 {
    (va as usize & (PAGE_SIZE - 1)) as u32
}

/// `PAGE_ALIGN(Va)`.
#[inline]
pub fn PAGE_ALIGN(va: *const c_void) -> PVOID {
    (va as usize & !(PAGE_SIZE - 1)) as PVOID
}

/// `ADDRESS_AND_SIZE_TO_SPAN_PAGES(Va, Size)`.
#[inline]
pub fn ADDRESS_AND_SIZE_TO_SPAN_PAGES(va: *const c_void, size: usize) -> usize {
    (BYTE_OFFSET(va) as usize + size + PAGE_SIZE - 1) >> PAGE_SHIFT
}

/// `MmSizeOfMdl(Base, Length)`: bytes needed for an MDL describing `[base, base+length)`. Any IRQL.
#[inline]
pub fn MmSizeOfMdl(base: *const c_void, length: usize) -> usize {
    core::mem::size_of::<MDL>()
        + core::mem::size_of::<PFN_NUMBER>() * ADDRESS_AND_SIZE_TO_SPAN_PAGES(base, length)
}

/// `MmInitializeMdl(Mdl, BaseVa, Length)`. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `mdl` must point to writable memory of at least `MmSizeOfMdl(base_va, length)` bytes (nonpaged in the kernel).
#[inline]
pub unsafe fn MmInitializeMdl(mdl: *mut MDL, base_va: *mut c_void, length: usize) {
    let size = MmSizeOfMdl(base_va, length);
    // SAFETY: the caller guarantees `mdl` is valid for writes of a whole MDL header.
    unsafe {
        mdl.write(MDL {
            Next: core::ptr::null_mut(),
            Size: size as CSHORT,
            MdlFlags: 0,
            AllocationProcessorNumber: 0,
            Reserved: 0,
            Process: core::ptr::null_mut(),
            MappedSystemVa: core::ptr::null_mut(),
            StartVa: PAGE_ALIGN(base_va),
            ByteCount: length as u32,
            ByteOffset: BYTE_OFFSET(base_va),
        });
    }
}

/// `MmGetMdlVirtualAddress(Mdl)`: `StartVa + ByteOffset`. Any IRQL.
///
/// # Safety
/// `mdl` must point to a valid MDL.
#[inline]
pub unsafe fn MmGetMdlVirtualAddress(mdl: *const MDL) -> PVOID {
    // SAFETY: the caller guarantees `mdl` is a valid MDL.
    unsafe { ((*mdl).StartVa as *mut u8).wrapping_add((*mdl).ByteOffset as usize) as PVOID }
}

/// `MmGetMdlByteCount(Mdl)`.
///
/// # Safety
/// `mdl` must point to a valid MDL.
#[inline]
pub unsafe fn MmGetMdlByteCount(mdl: *const MDL) -> u32 {
    // SAFETY: the caller guarantees `mdl` is a valid MDL.
    unsafe { (*mdl).ByteCount }
}

/// `MmGetMdlPfnArray(Mdl)`: the PFN array that follows the header.
///
/// # Safety
/// `mdl` must point to a valid MDL allocated with room for its PFN array.
#[inline]
pub unsafe fn MmGetMdlPfnArray(mdl: *mut MDL) -> *mut PFN_NUMBER {
    // SAFETY: the PFN array starts right after the header, inside the same allocation.
    unsafe { mdl.add(1) as *mut PFN_NUMBER }
}

/// `KPROCESSOR_MODE`: `KernelMode` / `UserMode` (wdm.h `MODE`, a CCHAR).
pub type KPROCESSOR_MODE = i8;
/// `KernelMode`.
pub const KernelMode: KPROCESSOR_MODE = 0;
/// `UserMode`.
pub const UserMode: KPROCESSOR_MODE = 1;
/// `MEMORY_CACHING_TYPE` (wdm.h enum).
pub type MEMORY_CACHING_TYPE = i32;
/// `MmNonCached`.
pub const MmNonCached: MEMORY_CACHING_TYPE = 0;
/// `MmCached`.
pub const MmCached: MEMORY_CACHING_TYPE = 1;
/// `MM_PAGE_PRIORITY` `LowPagePriority`.
pub const LowPagePriority: u32 = 0;
/// `MM_PAGE_PRIORITY` `NormalPagePriority`.
pub const NormalPagePriority: u32 = 16;
/// `MM_PAGE_PRIORITY` `HighPagePriority`.
pub const HighPagePriority: u32 = 32;
/// Priority flag (Windows 8+): map the pages no-write.
pub const MdlMappingNoWrite: u32 = 0x8000_0000;
/// Priority flag (Windows 8+): map the pages no-execute.
pub const MdlMappingNoExecute: u32 = 0x4000_0000;

/// The part of `MmGetSystemAddressForMdlSafe` that needs no mapping: the system VA of an MDL that is
/// already mapped or describes nonpaged pool, else NULL (the driver never maps other MDLs itself).
///
/// # Safety
/// `mdl` must point to a valid MDL.
#[inline]
pub unsafe fn MdlMappedSystemVa(mdl: *const MDL) -> PVOID {
    // SAFETY: the caller guarantees `mdl` is a valid MDL.
    let flags = unsafe { (*mdl).MdlFlags };
    if flags & (MDL_MAPPED_TO_SYSTEM_VA | MDL_SOURCE_IS_NONPAGED_POOL) != 0 {
        // SAFETY: as above.
        unsafe { (*mdl).MappedSystemVa }
    } else {
        core::ptr::null_mut()
    }
}
