//! STAND-IN for `wdk-sys` 0.5.2 (see Cargo.toml): the items wdk 0.5.0, wdk-alloc 0.4.2 and
//! wdk-panic 0.5.0 use for a WDM driver, declared with the WDK's C types (ntdef.h / wdm.h
//! widths: ULONG = u32, SIZE_T = ULONG64 on 64-bit targets, POOL_FLAGS = ULONG64). Nothing else.
//! It is never linked: the check runs `cargo check`.
#![no_std]
#![allow(non_camel_case_types, non_snake_case, clippy::missing_safety_doc)]

pub type CHAR = i8;
pub type UCHAR = u8;
pub type ULONG = u32;
pub type ULONG64 = u64;
pub type SIZE_T = ULONG64;
pub type PVOID = *mut core::ffi::c_void;
pub type PCSTR = *const CHAR;
pub type NTSTATUS = i32;
pub type KIRQL = UCHAR;
pub type POOL_FLAGS = ULONG64;

/// wdm.h: `POOL_FLAG_NON_PAGED` (0x40).
pub const POOL_FLAG_NON_PAGED: POOL_FLAGS = 0x0000_0000_0000_0040;
/// wdm.h: `APC_LEVEL`.
pub const APC_LEVEL: u32 = 1;

/// ntdef.h `NT_SUCCESS`.
#[must_use]
pub const fn NT_SUCCESS(nt_status: NTSTATUS) -> bool {
    nt_status >= 0
}

/// wdm.h `PAGED_CODE()`: in a checked build, the caller runs at or below APC_LEVEL.
#[macro_export]
macro_rules! PAGED_CODE {
    () => {
        debug_assert!(unsafe { $crate::ntddk::KeGetCurrentIrql() <= $crate::APC_LEVEL as u8 });
    };
}

pub mod ntddk {
    use super::*;

    extern "C" {
        pub fn DbgPrint(Format: PCSTR, ...) -> ULONG;
    }

    extern "system" {
        pub fn ExAllocatePool2(Flags: POOL_FLAGS, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID;
        pub fn ExFreePool(P: PVOID);
        pub fn KeGetCurrentIrql() -> KIRQL;
    }
}
