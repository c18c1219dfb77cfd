//! sysrun-bad-driver: a tiny NDIS filter that breaks rules on purpose, so sysrun's tests can check
//! that the verifier names the rule and, through the PDB, the function of this binary that broke it.
//!
//! - `DriverEntry` registers a filter whose send path retreats every NB by 4 bytes and whose
//!   send-complete path hands the NBLs up *without* advancing back (an NB not restored).
//! - Exported helpers the tests call directly through win64: CR8 round trips through every
//!   register, an allocation at HIGH_LEVEL (IRQL violation), and a privileged instruction other
//!   than a CR8 move.
//!
//! Never shipped; only built by sysrun's tests for x86_64-pc-windows-msvc.
#![no_std]
#![allow(non_snake_case, clippy::missing_safety_doc)]

use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};
use ndis_sys::*;

static FILTER_DRIVER: AtomicPtr<core::ffi::c_void> = AtomicPtr::new(ptr::null_mut());
static NAME: &[u16] = utf16!("sysrunbad");
static UNIQUE: &[u16] = utf16!("{0b5f1d2e-3c4a-4e6f-9a8b-7c6d5e4f3a2b}");
const TAG: u32 = u32::from_le_bytes(*b"SrBd");

/// Per-module context: just the NDIS handle.
#[repr(C)]
struct Module {
    handle: NDIS_HANDLE,
}

#[no_mangle]
pub unsafe extern "system" fn DriverEntry(
    driver: *mut DRIVER_OBJECT,
    _path: *mut UNICODE_STRING,
) -> NTSTATUS {
    let mut chars = NDIS_FILTER_DRIVER_CHARACTERISTICS {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_FILTER_DRIVER_CHARACTERISTICS,
            NDIS_FILTER_CHARACTERISTICS_REVISION_2,
            NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_2,
        ),
        MajorNdisVersion: 6,
        MinorNdisVersion: 30,
        MajorDriverVersion: 1,
        MinorDriverVersion: 0,
        Flags: 0,
        FriendlyName: NDIS_STRING::from_static(NAME),
        UniqueName: NDIS_STRING::from_static(UNIQUE),
        ServiceName: NDIS_STRING::from_static(NAME),
        SetOptionsHandler: None,
        SetFilterModuleOptionsHandler: None,
        AttachHandler: Some(BadAttach),
        DetachHandler: Some(BadDetach),
        RestartHandler: Some(BadRestart),
        PauseHandler: Some(BadPause),
        SendNetBufferListsHandler: Some(BadSend),
        SendNetBufferListsCompleteHandler: Some(BadSendComplete),
        CancelSendNetBufferListsHandler: None,
        ReceiveNetBufferListsHandler: None,
        ReturnNetBufferListsHandler: None,
        OidRequestHandler: None,
        OidRequestCompleteHandler: None,
        CancelOidRequestHandler: None,
        DevicePnPEventNotifyHandler: None,
        NetPnPEventHandler: None,
        StatusHandler: None,
        DirectOidRequestHandler: None,
        DirectOidRequestCompleteHandler: None,
        CancelDirectOidRequestHandler: None,
        SynchronousOidRequestHandler: None,
        SynchronousOidRequestCompleteHandler: None,
    };
    let mut handle: NDIS_HANDLE = ptr::null_mut();
    // SAFETY: the I/O manager's driver object, valid for the driver's lifetime; set before
    // registering, as the ndislwf sample does.
    unsafe { (*driver).DriverUnload = Some(BadUnload) };
    let status =
        // SAFETY: PASSIVE_LEVEL in DriverEntry; NDIS copies the characteristics (static strings) before returning.
        unsafe { NdisFRegisterFilterDriver(driver, ptr::null_mut(), &mut chars, &mut handle) };
    if status != NDIS_STATUS_SUCCESS {
        return status;
    }
    FILTER_DRIVER.store(handle, Ordering::Release);
    STATUS_SUCCESS
}

unsafe extern "system" fn BadUnload(_driver: *mut DRIVER_OBJECT) {
    let h = FILTER_DRIVER.swap(ptr::null_mut(), Ordering::AcqRel);
    if !h.is_null() {
        // SAFETY: PASSIVE_LEVEL in DriverUnload; the handle registration returned.
        unsafe { NdisFDeregisterFilterDriver(h) };
    }
}

unsafe extern "system" fn BadAttach(
    handle: NDIS_HANDLE,
    _driver_context: NDIS_HANDLE,
    _params: *mut NDIS_FILTER_ATTACH_PARAMETERS,
) -> NDIS_STATUS {
    // SAFETY: plain nonpaged allocation at PASSIVE_LEVEL (FilterAttach).
    let m = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, core::mem::size_of::<Module>(), TAG) }
        as *mut Module;
    if m.is_null() {
        return NDIS_STATUS_RESOURCES;
    }
    // SAFETY: `m` is a fresh, non-NULL block of Module size.
    unsafe { m.write(Module { handle }) };
    let mut attrs = NDIS_FILTER_ATTRIBUTES {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_FILTER_ATTRIBUTES,
            NDIS_FILTER_ATTRIBUTES_REVISION_1,
            NDIS_SIZEOF_FILTER_ATTRIBUTES_REVISION_1,
        ),
        Flags: 0,
    };
    // SAFETY: FilterAttach's own handle and a live context block.
    let status = unsafe { NdisFSetAttributes(handle, m.cast(), &mut attrs) };
    if status != NDIS_STATUS_SUCCESS {
        // SAFETY: the block allocated above with this tag, not handed to NDIS.
        unsafe { ExFreePoolWithTag(m.cast(), TAG) };
    }
    status
}

unsafe extern "system" fn BadDetach(context: NDIS_HANDLE) {
    // SAFETY: the context FilterAttach allocated with this tag; NDIS detached the module.
    unsafe { ExFreePoolWithTag(context, TAG) };
}

unsafe extern "system" fn BadRestart(
    _context: NDIS_HANDLE,
    _params: *mut NDIS_FILTER_RESTART_PARAMETERS,
) -> NDIS_STATUS {
    NDIS_STATUS_SUCCESS
}

unsafe extern "system" fn BadPause(
    _context: NDIS_HANDLE,
    _params: *mut NDIS_FILTER_PAUSE_PARAMETERS,
) -> NDIS_STATUS {
    NDIS_STATUS_SUCCESS
}

/// Retreats every NB by 4 bytes (NDIS's default allocator when there is no room) and sends on.
unsafe extern "system" fn BadSend(
    context: NDIS_HANDLE,
    nbls: *mut NET_BUFFER_LIST,
    port: NDIS_PORT_NUMBER,
    flags: u32,
) {
    let m = context as *mut Module;
    let mut nbl = nbls;
    while !nbl.is_null() {
        // SAFETY: NDIS hands the filter a valid NBL chain for the duration of the send.
        let mut nb = unsafe { (*nbl).FirstNetBuffer };
        while !nb.is_null() {
            // SAFETY: a valid NB of that chain; NULL handler = NDIS's default allocator.
            let _ = unsafe { NdisRetreatNetBufferDataStart(nb, 4, 0, None) };
            // SAFETY: as above.
            nb = unsafe { (*nb).Next };
        }
        // SAFETY: as above.
        nbl = unsafe { (*nbl).Next };
    }
    // SAFETY: the module context FilterAttach set; the NBLs go down in order.
    unsafe { NdisFSendNetBufferLists((*m).handle, nbls, port, flags) };
}

/// BUG (on purpose): completes upward without advancing the 4 bytes back.
unsafe extern "system" fn BadSendComplete(
    context: NDIS_HANDLE,
    nbls: *mut NET_BUFFER_LIST,
    flags: u32,
) {
    let m = context as *mut Module;
    // SAFETY: the module context FilterAttach set; the NBLs are the ones sent from above (the bug is that they are not restored).
    unsafe { NdisFSendNetBufferListsComplete((*m).handle, nbls, flags) };
}

/// Writes `value` to CR8 through every general register but rsp/rbp/rbx (reserved by the inline
/// asm rules), reading it back through the same register each time. Returns the sum of the values
/// read back (the caller checks it) — 14 round trips.
#[no_mangle]
pub unsafe extern "system" fn SysrunCr8Roundtrip(value: u64) -> u64 {
    let mut sum: u64 = 0;
    macro_rules! rt {
        ($r:tt) => {{
            let out: u64;
            // SAFETY: CR8 writes/reads of IRQLs 0..15 (the caller passes one); no memory effects.
            unsafe {
                core::arch::asm!(
                    concat!("mov cr8, ", $r),
                    concat!("xor ", $r, ", ", $r),
                    concat!("mov ", $r, ", cr8"),
                    inout($r) value => out,
                    options(nostack),
                )
            };
            sum += out;
        }};
    }
    rt!("rax");
    rt!("rcx");
    rt!("rdx");
    rt!("rsi");
    rt!("rdi");
    rt!("r8");
    rt!("r9");
    rt!("r10");
    rt!("r11");
    rt!("r12");
    rt!("r13");
    rt!("r14");
    rt!("r15");
    // rbx is reserved for LLVM; move through it by hand, saving it.
    let out: u64;
    // SAFETY: as above; rbx is saved and restored around its use.
    unsafe {
        core::arch::asm!(
            "xchg {v}, rbx",
            "mov cr8, rbx",
            "xor ebx, ebx",
            "mov rbx, cr8",
            "xchg {v}, rbx",
            v = inout(reg) value => out,
            options(nostack),
        )
    };
    sum += out;
    // Back to PASSIVE_LEVEL.
    KeLowerIrql(PASSIVE_LEVEL);
    sum
}

/// BUG (on purpose): allocates nonpaged pool at HIGH_LEVEL (ExAllocatePool2 requires
/// <= DISPATCH_LEVEL). Restores the IRQL and frees the block afterwards.
#[no_mangle]
pub unsafe extern "system" fn SysrunAllocateAtHighLevel() -> u32 {
    let old = KeRaiseIrql(HIGH_LEVEL);
    // SAFETY: deliberately at HIGH_LEVEL (the bug under test); the simulator reports it and still allocates.
    let p = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, 64, TAG) };
    KeLowerIrql(old);
    if !p.is_null() {
        // SAFETY: the block allocated above with this tag.
        unsafe { ExFreePoolWithTag(p, TAG) };
    }
    old as u32
}

/// Executes `mov rax, cr3`: privileged, and not something sysrun emulates.
#[no_mangle]
pub unsafe extern "system" fn SysrunReadCr3() -> u64 {
    let v: u64;
    // SAFETY: deliberately privileged: the test expects the run to stop here.
    unsafe { core::arch::asm!("mov {}, cr3", out(reg) v, options(nostack, nomem)) };
    v
}

/// BUG (on purpose): hands NDIS a NET_BUFFER pointer that points nowhere (0x10). (Not a tail
/// call, so the call site is this function's own `call` instruction.)
#[no_mangle]
pub unsafe extern "system" fn SysrunBadNbPointer() -> u32 {
    // SAFETY: deliberately violated (the test expects the run to stop inside NDIS).
    unsafe { NdisAdjustNetBufferCurrentMdl(core::hint::black_box(0x10) as *mut NET_BUFFER) };
    core::hint::black_box(7)
}
