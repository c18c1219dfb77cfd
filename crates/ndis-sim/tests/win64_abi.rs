//! The win64 side of the export table, as `sysrun` will use it for a real image: a filter whose
//! handlers are `extern "win64"` functions, calling NDIS only through the table's win64 entries,
//! is registered, attached, run, detached and unloaded, and every callback reaches it as win64.
#![cfg(all(target_arch = "x86_64", not(miri)))]

use ndis_sim::*;
use ndis_sys::*;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering::SeqCst};

static CALLBACKS: AtomicUsize = AtomicUsize::new(0);
static FREES: AtomicUsize = AtomicUsize::new(0);
static DRIVER_HANDLE: AtomicPtr<core::ffi::c_void> = AtomicPtr::new(core::ptr::null_mut());
static FILTER_HANDLE: AtomicPtr<core::ffi::c_void> = AtomicPtr::new(core::ptr::null_mut());

/// The win64 entry of an export, as a typed function pointer.
macro_rules! w64 {
    ($name:literal : fn($($t:ty),*) $(-> $r:ty)?) => {{
        let e = find_export(None, $name).unwrap_or_else(|| panic!("{} missing from the export table", $name));
        // SAFETY: the table's win64 entry of this routine has exactly this signature.
        unsafe { std::mem::transmute::<usize, unsafe extern "win64" fn($($t),*) $(-> $r)?>(e.win64) }
    }};
}

/// Stores a win64 function into a characteristics slot typed as a system pointer (what a PE
/// image's data looks like to the simulator).
macro_rules! as_slot {
    ($f:expr) => {
        slot($f as *const ())
    };
}

/// Reinterprets a function address as a handler slot's type (a pointer-sized function pointer).
fn slot<T: Copy>(addr: *const ()) -> Option<T> {
    assert_eq!(std::mem::size_of::<T>(), std::mem::size_of::<*const ()>());
    // SAFETY: T is a pointer-sized function pointer type (asserted); the simulator calls it back
    // as win64 because the driver registered through the win64 entry.
    Some(unsafe { std::mem::transmute_copy::<*const (), T>(&addr) })
}

unsafe extern "win64" fn driver_entry(
    drv: *mut DRIVER_OBJECT,
    _reg: *mut UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: zeroed characteristics are valid.
    let mut c: NDIS_FILTER_DRIVER_CHARACTERISTICS = unsafe { core::mem::zeroed() };
    c.Header = NDIS_OBJECT_HEADER::new(
        NDIS_OBJECT_TYPE_FILTER_DRIVER_CHARACTERISTICS,
        NDIS_FILTER_CHARACTERISTICS_REVISION_3,
        NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_3,
    );
    c.MajorNdisVersion = 6;
    c.MinorNdisVersion = 80;
    c.AttachHandler = as_slot!(attach as unsafe extern "win64" fn(_, _, _) -> _);
    c.DetachHandler = as_slot!(detach as unsafe extern "win64" fn(_));
    c.RestartHandler = as_slot!(restart as unsafe extern "win64" fn(_, _) -> _);
    c.PauseHandler = as_slot!(pause as unsafe extern "win64" fn(_, _) -> _);
    c.SendNetBufferListsHandler = as_slot!(send as unsafe extern "win64" fn(_, _, _, _));
    c.SendNetBufferListsCompleteHandler =
        as_slot!(send_complete as unsafe extern "win64" fn(_, _, _));
    let register = w64!("NdisFRegisterFilterDriver": fn(*mut DRIVER_OBJECT, NDIS_HANDLE, *mut NDIS_FILTER_DRIVER_CHARACTERISTICS, *mut NDIS_HANDLE) -> NDIS_STATUS);
    let mut h = core::ptr::null_mut();
    // SAFETY: our driver object; the unload routine is set before registering.
    unsafe { (*drv).DriverUnload = as_slot!(unload as unsafe extern "win64" fn(_)) };
    // SAFETY: valid arguments.
    let st = unsafe { register(drv, core::ptr::null_mut(), &mut c, &mut h) };
    DRIVER_HANDLE.store(h, SeqCst);
    let dbg = w64!("DbgPrintEx": fn(u32, u32, *const u8, usize, usize, usize, usize, usize, usize, usize, usize) -> u32);
    // SAFETY: NUL-terminated format and string; one argument per conversion (the fifth on the stack).
    unsafe {
        dbg(
            DPFLTR_IHVNETWORK_ID,
            0,
            c"win64 entry says %d, %s, %llx, %u%%, %X\n".as_ptr().cast(),
            -42i32 as u32 as usize,
            c"five".as_ptr() as usize,
            0x1_0000_0000,
            7,
            0xAB,
            0,
            0,
            0,
        )
    };
    st
}

unsafe extern "win64" fn unload(_drv: *mut DRIVER_OBJECT) {
    CALLBACKS.fetch_add(1, SeqCst);
    let dereg = w64!("NdisFDeregisterFilterDriver": fn(NDIS_HANDLE));
    // SAFETY: our registration handle.
    unsafe { dereg(DRIVER_HANDLE.load(SeqCst)) };
}

unsafe extern "win64" fn attach(
    handle: NDIS_HANDLE,
    _d: NDIS_HANDLE,
    _p: *mut NDIS_FILTER_ATTACH_PARAMETERS,
) -> NDIS_STATUS {
    CALLBACKS.fetch_add(1, SeqCst);
    FILTER_HANDLE.store(handle, SeqCst);
    let set = w64!("NdisFSetAttributes": fn(NDIS_HANDLE, NDIS_HANDLE, *mut NDIS_FILTER_ATTRIBUTES) -> NDIS_STATUS);
    let mut a = NDIS_FILTER_ATTRIBUTES {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_FILTER_ATTRIBUTES,
            NDIS_FILTER_ATTRIBUTES_REVISION_1,
            NDIS_SIZEOF_FILTER_ATTRIBUTES_REVISION_1,
        ),
        Flags: 0,
    };
    // SAFETY: inside attach.
    unsafe { set(handle, 0x1234 as NDIS_HANDLE, &mut a) }
}

unsafe extern "win64" fn detach(ctx: NDIS_HANDLE) {
    assert_eq!(ctx as usize, 0x1234);
    CALLBACKS.fetch_add(1, SeqCst);
}

unsafe extern "win64" fn restart(
    _ctx: NDIS_HANDLE,
    _p: *mut NDIS_FILTER_RESTART_PARAMETERS,
) -> NDIS_STATUS {
    CALLBACKS.fetch_add(1, SeqCst);
    NDIS_STATUS_SUCCESS
}

unsafe extern "win64" fn pause(
    _ctx: NDIS_HANDLE,
    _p: *mut NDIS_FILTER_PAUSE_PARAMETERS,
) -> NDIS_STATUS {
    CALLBACKS.fetch_add(1, SeqCst);
    NDIS_STATUS_SUCCESS
}

unsafe extern "win64" fn alloc_mdl(size: *mut u32) -> *mut MDL {
    CALLBACKS.fetch_add(1, SeqCst);
    let pool = w64!("ExAllocatePool2": fn(POOL_FLAGS, SIZE_T, u32) -> PVOID);
    let build = w64!("MmBuildMdlForNonPagedPool": fn(*mut MDL));
    // SAFETY: NDIS's in/out size; one nonpaged block for MDL + data, built.
    unsafe {
        let sz = *size as usize;
        let hdr = (MmSizeOfMdl(0xFFF as *const _, sz) + 7) & !7;
        let p = pool(POOL_FLAG_NON_PAGED, hdr + sz, 0x3436_5720) as *mut u8;
        MmInitializeMdl(p as *mut MDL, p.add(hdr) as PVOID, sz);
        build(p as *mut MDL);
        p as *mut MDL
    }
}

unsafe extern "win64" fn free_mdl(mdl: *mut MDL) {
    FREES.fetch_add(1, SeqCst);
    let free = w64!("ExFreePool": fn(PVOID));
    // SAFETY: an MDL alloc_mdl made.
    unsafe { free(mdl as PVOID) };
}

unsafe extern "win64" fn send(
    _ctx: NDIS_HANDLE,
    nbls: *mut NET_BUFFER_LIST,
    port: u32,
    flags: u32,
) {
    CALLBACKS.fetch_add(1, SeqCst);
    let retreat = w64!("NdisRetreatNetBufferListDataStart": fn(*mut NET_BUFFER_LIST, u32, u32, NET_BUFFER_ALLOCATE_MDL_HANDLER, NET_BUFFER_FREE_MDL_HANDLER) -> NDIS_STATUS);
    let advance = w64!("NdisAdvanceNetBufferListDataStart": fn(*mut NET_BUFFER_LIST, u32, BOOLEAN, NET_BUFFER_FREE_MDL_HANDLER));
    let down = w64!("NdisFSendNetBufferLists": fn(NDIS_HANDLE, *mut NET_BUFFER_LIST, u32, u32));
    // SAFETY: NBLs we own; the handlers are win64 functions (the simulator knows from the entry).
    unsafe {
        let mut n = nbls;
        while !n.is_null() {
            let st = retreat(
                n,
                32,
                0,
                as_slot!(alloc_mdl as unsafe extern "win64" fn(_) -> _),
                as_slot!(free_mdl as unsafe extern "win64" fn(_)),
            );
            assert_eq!(st, NDIS_STATUS_SUCCESS);
            advance(
                n,
                32,
                TRUE,
                as_slot!(free_mdl as unsafe extern "win64" fn(_)),
            );
            n = (*n).Next;
        }
        down(FILTER_HANDLE.load(SeqCst), nbls, port, flags);
    }
}

unsafe extern "win64" fn send_complete(_ctx: NDIS_HANDLE, nbls: *mut NET_BUFFER_LIST, flags: u32) {
    CALLBACKS.fetch_add(1, SeqCst);
    let up = w64!("NdisFSendNetBufferListsComplete": fn(NDIS_HANDLE, *mut NET_BUFFER_LIST, u32));
    // SAFETY: completing what we were given.
    unsafe { up(FILTER_HANDLE.load(SeqCst), nbls, flags) };
}

#[test]
fn a_win64_driver_is_called_back_as_win64() {
    let sim = Sim::start(SimConfig {
        cpus: 2,
        deterministic: true,
        ..SimConfig::default()
    });
    CALLBACKS.store(0, SeqCst);
    FREES.store(0, SeqCst);
    // SAFETY: driver_entry is a win64 DriverEntry.
    let drv =
        unsafe { sim.load_driver_raw(driver_entry as *const () as usize, Abi::Win64) }.unwrap();
    let nic = sim.add_adapter(AdapterConfig::default());
    nic.attach().unwrap();
    nic.restart().unwrap();
    let shape = NblShape {
        nbls: 3,
        data_offset: 0,
        ..NblShape::default()
    };
    nic.send(&shape);
    kernel::at_irql(DISPATCH_LEVEL, || nic.send(&shape));
    nic.drain();
    let c = nic.counters();
    assert_eq!(
        (c.proto_completed_success, c.wire_digest),
        (6, c.proto_sent_digest)
    );
    assert_eq!(
        FREES.load(SeqCst),
        6,
        "every retreat MDL came back to the win64 NetFreeMdl"
    );
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    // attach, restart, 2 sends, 6 allocs, >=1 completion, pause, detach, unload.
    assert!(CALLBACKS.load(SeqCst) >= 14, "{}", CALLBACKS.load(SeqCst));
    let report = sim.finish();
    assert!(
        report
            .log
            .iter()
            .any(|l| l.contains("win64 entry says -42, five, 100000000, 7%, AB")),
        "{:?}",
        report.log
    );
    assert!(report.log.iter().any(|l| l.contains("registered (Win64)")));
}

#[test]
fn export_table_covers_every_ndis_sys_import() {
    let ffi = include_str!("../../ndis-sys/src/ffi.rs");
    let mut names = Vec::new();
    for line in ffi.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("pub fn ") {
            names.push(rest.split('(').next().unwrap().trim().to_string());
        }
    }
    assert!(names.len() > 40, "{names:?}");
    for n in &names {
        let e = find_export(None, n).unwrap_or_else(|| {
            panic!("{n} is imported by ndis-sys but missing from ndis-sim's table")
        });
        assert_ne!(e.win64, 0, "{n}");
    }
    // Each name appears once.
    let mut all: Vec<&str> = exports().iter().map(|e| e.name).collect();
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len());
    assert_eq!(
        find_export(Some("NDIS.SYS"), "NdisFSendNetBufferLists").map(|e| e.module),
        Some("ndis.sys")
    );
    assert_eq!(
        find_export(Some("ntoskrnl.exe"), "ExAllocatePool2").map(|e| e.module),
        Some("ntoskrnl.exe")
    );
    // The C runtime entries work through their win64 convention.
    let memcmp = w64!("memcmp": fn(*const u8, *const u8, usize) -> i32);
    let memset = w64!("memset": fn(*mut u8, i32, usize) -> *mut u8);
    let chkstk = w64!("__chkstk": fn());
    let mut a = [0u8; 4];
    // SAFETY: valid 4-byte buffers; __chkstk is a bare return.
    unsafe {
        memset(a.as_mut_ptr(), 7, 4);
        assert_eq!(memcmp(a.as_ptr(), [7u8, 7, 7, 7].as_ptr(), 4), 0);
        assert!(memcmp(a.as_ptr(), [7u8, 7, 8, 7].as_ptr(), 4) < 0);
        chkstk();
    }
}
