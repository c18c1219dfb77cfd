//! Virtual CPUs, IRQL, processor numbers, spin locks, timers on the simulated clock, configuration,
//! NBL contexts and DbgPrintEx capture, through the ndis-sys imports.

#[path = "common/lwf.rs"]
mod lwf;

use ndis_sim::*;
use ndis_sys::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

#[test]
fn processor_numbers_follow_the_virtual_cpu_and_groups() {
    let sim = Sim::start(SimConfig {
        cpus: 5,
        cpus_per_group: 2,
        deterministic: true,
        ..SimConfig::default()
    });
    // SAFETY: plain queries.
    unsafe {
        assert_eq!(KeQueryMaximumProcessorCountEx(ALL_PROCESSOR_GROUPS), 5);
        assert_eq!(KeQueryMaximumProcessorCountEx(0), 2);
        assert_eq!(KeQueryMaximumProcessorCountEx(2), 1);
        assert_eq!(KeQueryMaximumProcessorCountEx(3), 0);
        for cpu in 0..5 {
            kernel::bind_thread_to_cpu(cpu);
            let mut pn = PROCESSOR_NUMBER::default();
            assert_eq!(KeGetCurrentProcessorNumberEx(&mut pn), cpu as u32);
            assert_eq!((pn.Group, pn.Number), ((cpu / 2) as u16, (cpu % 2) as u8));
        }
    }
    kernel::bind_thread_to_cpu(0);
    assert_eq!(KeGetCurrentIrql(), PASSIVE_LEVEL);
    let old = KeRaiseIrql(DISPATCH_LEVEL);
    assert_eq!((old, KeGetCurrentIrql()), (PASSIVE_LEVEL, DISPATCH_LEVEL));
    KeLowerIrql(old);
    assert_eq!(KeGetCurrentIrql(), PASSIVE_LEVEL);
    sim.finish();
}

#[test]
#[cfg_attr(miri, ignore = "threads")]
fn dispatch_level_is_exclusive_per_cpu_and_spin_locks_exclude() {
    let sim = Sim::start(SimConfig {
        cpus: 2,
        ..SimConfig::default()
    });
    static INSIDE: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];
    static OVERLAPS: AtomicUsize = AtomicUsize::new(0);
    struct Shared(std::cell::UnsafeCell<(KSPIN_LOCK, u64)>);
    // SAFETY: the counter is only touched under the simulated spin lock.
    unsafe impl Sync for Shared {}
    let shared = Shared(std::cell::UnsafeCell::new((0, 0)));
    std::thread::scope(|s| {
        for t in 0..4usize {
            let shared = &shared;
            s.spawn(move || {
                let cpu = t % 2;
                kernel::bind_thread_to_cpu(cpu);
                for _ in 0..500 {
                    let old = KeRaiseIrql(DISPATCH_LEVEL);
                    if INSIDE[cpu].swap(true, SeqCst) {
                        OVERLAPS.fetch_add(1, SeqCst);
                    }
                    // SAFETY: the lock word and counter live in `shared` for the whole scope.
                    unsafe {
                        let p = shared.0.get();
                        KeAcquireSpinLockAtDpcLevel(&mut (*p).0);
                        (*p).1 += 1;
                        KeReleaseSpinLockFromDpcLevel(&mut (*p).0);
                    }
                    INSIDE[cpu].store(false, SeqCst);
                    KeLowerIrql(old);
                    // SAFETY: as above; the raise-to-DPC form from PASSIVE_LEVEL.
                    unsafe {
                        let p = shared.0.get();
                        let irql = KeAcquireSpinLockRaiseToDpc(&mut (*p).0);
                        (*p).1 += 1;
                        KeReleaseSpinLock(&mut (*p).0, irql);
                    }
                }
            });
        }
    });
    assert_eq!(
        OVERLAPS.load(SeqCst),
        0,
        "two threads were at DISPATCH_LEVEL on one virtual CPU"
    );
    // SAFETY: the threads are joined.
    assert_eq!(unsafe { (*shared.0.get()).1 }, 4000);
    sim.finish();
}

static FIRED: AtomicUsize = AtomicUsize::new(0);
static FIRED_IRQL: AtomicUsize = AtomicUsize::new(99);

unsafe extern "system" fn timer_fn(_s1: PVOID, ctx: PVOID, _s2: PVOID, _s3: PVOID) {
    assert_eq!(ctx as usize, 0xC0FFEE);
    FIRED.fetch_add(1, SeqCst);
    FIRED_IRQL.store(KeGetCurrentIrql() as usize, SeqCst);
}

#[test]
fn timers_fire_on_the_simulated_clock_at_dispatch_level() {
    let sim = Sim::start(SimConfig {
        cpus: 1,
        deterministic: true,
        ..SimConfig::default()
    });
    FIRED.store(0, SeqCst);
    let mut chars = NDIS_TIMER_CHARACTERISTICS {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_TIMER_CHARACTERISTICS,
            NDIS_TIMER_CHARACTERISTICS_REVISION_1,
            NDIS_SIZEOF_TIMER_CHARACTERISTICS_REVISION_1,
        ),
        AllocationTag: 0x726D_6954,
        TimerFunction: Some(timer_fn),
        FunctionContext: 0xC0FFEE as PVOID,
    };
    let mut t: NDIS_HANDLE = std::ptr::null_mut();
    // SAFETY: valid characteristics; PASSIVE_LEVEL.
    unsafe {
        assert_eq!(
            NdisAllocateTimerObject(1 as NDIS_HANDLE, &mut chars, &mut t),
            NDIS_STATUS_SUCCESS
        );
        assert_eq!(
            NdisSetTimerObject(t, -500_000, 0, std::ptr::null_mut()),
            FALSE
        );
    }
    sim.advance_clock(40);
    assert_eq!(FIRED.load(SeqCst), 0);
    sim.advance_clock(20);
    assert_eq!(
        (FIRED.load(SeqCst), FIRED_IRQL.load(SeqCst)),
        (1, DISPATCH_LEVEL as usize)
    );
    // SAFETY: our timer.
    unsafe { NdisSetTimerObject(t, -100_000, 10, std::ptr::null_mut()) };
    for _ in 0..10 {
        sim.advance_clock(10);
    }
    assert_eq!(FIRED.load(SeqCst), 11);
    // SAFETY: our timer.
    unsafe {
        assert_eq!(NdisCancelTimerObject(t), TRUE);
        NdisFreeTimerObject(t);
    }
    sim.advance_clock(100);
    assert_eq!(FIRED.load(SeqCst), 11);
    assert_eq!(sim.now_ms(), 260);
    sim.finish();
}

fn read(handle: NDIS_HANDLE, key: &'static [u16], ty: u32) -> Option<NDIS_CONFIGURATION_PARAMETER> {
    let mut obj = NDIS_CONFIGURATION_OBJECT {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_CONFIGURATION_OBJECT,
            NDIS_CONFIGURATION_OBJECT_REVISION_1,
            NDIS_SIZEOF_CONFIGURATION_OBJECT_REVISION_1,
        ),
        NdisHandle: handle,
        Flags: 0,
    };
    let mut ch: NDIS_HANDLE = std::ptr::null_mut();
    let mut k = UNICODE_STRING::from_static(key);
    let mut st = NDIS_STATUS_FAILURE;
    let mut p: *mut NDIS_CONFIGURATION_PARAMETER = std::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; valid objects; the parameter is copied out before the close.
    unsafe {
        assert_eq!(
            NdisOpenConfigurationEx(&mut obj, &mut ch),
            NDIS_STATUS_SUCCESS
        );
        NdisReadConfiguration(&mut st, &mut p, ch, &mut k, ty);
        let out = if st == NDIS_STATUS_SUCCESS {
            Some(std::ptr::read(p))
        } else {
            None
        };
        let out = out.map(|mut v| {
            if v.ParameterType == NdisParameterString {
                // Copy the string out before NdisCloseConfiguration frees it; keep its length in
                // characters (NULs included).
                let s = v.ParameterData.StringData;
                let units = std::slice::from_raw_parts(s.Buffer, s.Length as usize / 2).to_vec();
                v.ParameterData.IntegerData = String::from_utf16(&units).unwrap().len() as u32;
            }
            v
        });
        NdisCloseConfiguration(ch);
        out
    }
}

#[test]
fn configuration_reads_integers_hex_and_strings_per_module() {
    let sim = Sim::start(SimConfig {
        cpus: 1,
        deterministic: true,
        ..SimConfig::default()
    });
    lwf::set_bad(lwf::Bad::None);
    let drv = sim.load_driver(lwf::DriverEntry);
    let nic = sim.add_adapter(AdapterConfig::default());
    nic.set_config("ExerciseBytes", ConfigValue::Int(96));
    nic.set_config("VlanId", ConfigValue::Str("0x1F".into()));
    nic.set_config("VlanPriority", ConfigValue::Str("1F".into()));
    nic.set_config("Mode", ConfigValue::Str("exercise".into()));
    nic.attach().unwrap();
    let h = nic.filter_handle();
    let int = |k: &'static [u16], ty| {
        read(h, k, ty).map(|p| {
            assert!(
                p.ParameterType == NdisParameterInteger
                    || p.ParameterType == NdisParameterHexInteger
            );
            // SAFETY: the type tag says the integer arm.
            unsafe { p.ParameterData.IntegerData }
        })
    };
    // The requested type honoured (the default reading): REG_SZ through RtlUnicodeStringToInteger.
    assert_eq!(int(utf16!("exercisebytes"), NdisParameterInteger), Some(96));
    assert_eq!(
        int(utf16!("VlanPriority"), NdisParameterHexInteger),
        Some(0x1F)
    );
    assert_eq!(
        int(utf16!("VlanId"), NdisParameterHexInteger),
        Some(0),
        "base 16 given: no 0x prefix, the 'x' ends the number"
    );
    assert_eq!(
        int(utf16!("Mode"), NdisParameterInteger),
        Some(0),
        "not a number: 0, not a failure"
    );
    let p = read(h, utf16!("Mode"), NdisParameterString).unwrap();
    assert_eq!(p.ParameterType, NdisParameterString);
    // SAFETY: `read` stored the string's length in characters in the integer arm.
    assert_eq!(unsafe { p.ParameterData.IntegerData }, 8);
    // The requested type ignored (ReactOS): typed by the value.
    set_config_reads(ConfigReads::ByValue);
    assert_eq!(int(utf16!("VlanId"), NdisParameterString), Some(0x1F));
    assert_eq!(int(utf16!("exercisebytes"), NdisParameterString), Some(96));
    let p = read(h, utf16!("Mode"), NdisParameterInteger).unwrap();
    assert_eq!(p.ParameterType, NdisParameterString);
    // SAFETY: `read` stored the string's length in characters in the integer arm.
    let len = unsafe { p.ParameterData.IntegerData };
    assert_eq!(len, 9, "the NUL counted");
    assert!(read(h, utf16!("Missing"), NdisParameterInteger).is_none());
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

#[test]
fn nbl_context_allocation_and_free() {
    let sim = Sim::start(SimConfig {
        cpus: 1,
        deterministic: true,
        ..SimConfig::default()
    });
    // SAFETY: a pool and NBL of our own, freed below; PASSIVE_LEVEL.
    unsafe {
        let mut pp: NET_BUFFER_LIST_POOL_PARAMETERS = std::mem::zeroed();
        pp.Header = NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_DEFAULT,
            NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1,
            NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1,
        );
        pp.ContextSize = 16;
        pp.PoolTag = 0x6C6F_6F50;
        let pool = NdisAllocateNetBufferListPool(1 as NDIS_HANDLE, &mut pp);
        let nbl = NdisAllocateNetBufferList(pool, 0, 16);
        let ctx0 = (*nbl).Context;
        // As documented: Size is the whole context space, Offset the unused part in front.
        assert_eq!(((*ctx0).Offset, (*ctx0).Size), (16, 16));
        // Fits the backfill: no new block.
        assert_eq!(
            NdisAllocateNetBufferListContext(nbl, 16, 0, 0x7874_6343),
            NDIS_STATUS_SUCCESS
        );
        assert_eq!(
            ((*nbl).Context, (*ctx0).Offset, (*ctx0).Size),
            (ctx0, 0, 16)
        );
        // Does not fit: a new block in front, with the backfill asked for left unused.
        assert_eq!(
            NdisAllocateNetBufferListContext(nbl, 32, 16, 0x7874_6343),
            NDIS_STATUS_SUCCESS
        );
        let ctx1 = (*nbl).Context;
        assert_ne!(ctx1, ctx0);
        assert_eq!(((*ctx1).Offset, (*ctx1).Size), (16, 48));
        // The header's macro returns Size, the whole space.
        assert_eq!(NET_BUFFER_LIST_CONTEXT_DATA_SIZE(nbl), 48);
        let start = NET_BUFFER_LIST_CONTEXT_DATA_START(nbl);
        assert_eq!(start as usize % MEMORY_ALLOCATION_ALIGNMENT, 0);
        // The next 16 bytes are carved from that block's backfill.
        assert_eq!(
            NdisAllocateNetBufferListContext(nbl, 16, 0, 0x7874_6343),
            NDIS_STATUS_SUCCESS
        );
        assert_eq!(((*nbl).Context, (*ctx1).Offset), (ctx1, 0));
        NdisFreeNetBufferListContext(nbl, 16);
        std::ptr::write_bytes(start, 0xAB, 32);
        NdisFreeNetBufferListContext(nbl, 32);
        assert_eq!((*nbl).Context, ctx0);
        NdisFreeNetBufferListContext(nbl, 16);
        NdisFreeNetBufferList(nbl);
        NdisFreeNetBufferListPool(pool);
    }
    sim.finish();
}

#[test]
fn dbgprintex_lines_go_to_the_test_log() {
    let sim = Sim::start(SimConfig {
        cpus: 1,
        deterministic: true,
        ..SimConfig::default()
    });
    ndis_sys::rt::log(DPFLTR_INFO_LEVEL, format_args!("pool ready, {} classes", 6));
    // SAFETY: NUL-terminated format and argument.
    unsafe {
        DbgPrintEx(
            DPFLTR_IHVNETWORK_ID,
            DPFLTR_ERROR_LEVEL,
            c"%s".as_ptr().cast(),
            c"raw line".as_ptr(),
        )
    };
    let log = sim.log();
    assert!(
        log.iter()
            .any(|l| l.ends_with("mdlpool: pool ready, 6 classes")),
        "{log:?}"
    );
    assert!(
        log.iter().any(|l| l.contains("[dbg 80/0 cpu0] raw line")),
        "{log:?}"
    );
    sim.finish();
}
