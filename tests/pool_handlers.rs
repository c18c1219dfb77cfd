//! The NetAllocateMdl / NetFreeMdl pair on ndis-sim, through the kernel platform (KernelPlatform calls
//! ndis-sys, which ndis-sim answers: virtual CPUs, per-thread IRQL, its pool and its MDL build), and
//! through ndis-sim's own NdisRetreat/AdvanceNetBufferDataStart, whose verifier checks ByteCount against
//! `*BufferSize`, built nonpaged MDLs and IRQL.

use mdlpool::mdl_handlers::{
    calls_without_pool, install, snapshot, trim_tick, uninstall, NetAllocateMdl, NetFreeMdl,
};
use mdlpool::pool::{PoolConfig, PoolError, HEADER_BYTES};
use ndis_sim::kernel::{at_irql, bind_thread_to_cpu};
use ndis_sim::testkit::TestNbl;
use ndis_sim::{Sim, SimConfig};
use ndis_sys::*;

fn sim() -> ndis_sim::SimGuard {
    Sim::start(SimConfig {
        cpus: 2,
        ..SimConfig::default()
    })
}

fn alloc(size: u32) -> (*mut MDL, u32) {
    let mut s = size;
    // SAFETY: a valid in/out size.
    let m = unsafe { NetAllocateMdl(&mut s) };
    (m, s)
}

#[test]
fn handlers_allocate_free_any_cpu_any_irql() {
    let sim = sim();
    bind_thread_to_cpu(0);
    install(&PoolConfig::default()).unwrap();
    assert_eq!(
        install(&PoolConfig::default()),
        Err(PoolError::AlreadyInstalled)
    );
    let mut held = Vec::new();
    for (i, &size) in [1u32, 14, 60, 64, 100, 1500, 2048, 2049, 9000]
        .iter()
        .enumerate()
    {
        let irql = if i % 2 == 0 {
            PASSIVE_LEVEL
        } else {
            DISPATCH_LEVEL
        };
        let (m, s) = at_irql(irql, || alloc(size));
        assert!(!m.is_null());
        assert_eq!(s, size, "*BufferSize is never changed");
        // SAFETY: a live MDL from the pool.
        unsafe {
            assert_eq!((*m).ByteCount, size, "ByteCount == *BufferSize");
            assert!((*m).Next.is_null());
            assert_ne!((*m).MdlFlags & MDL_SOURCE_IS_NONPAGED_POOL, 0);
            assert_eq!(MmGetMdlVirtualAddress(m), (*m).MappedSystemVa);
            core::ptr::write_bytes((*m).MappedSystemVa.cast::<u8>(), 0xEE, size as usize);
        }
        held.push(m);
    }
    // Free on the other CPU (the completion side), alternately at PASSIVE and DISPATCH.
    bind_thread_to_cpu(1);
    for (i, m) in held.into_iter().enumerate() {
        let irql = if i % 2 == 0 {
            DISPATCH_LEVEL
        } else {
            PASSIVE_LEVEL
        };
        // SAFETY: in flight, from NetAllocateMdl.
        at_irql(irql, || unsafe { NetFreeMdl(m) });
    }
    bind_thread_to_cpu(0);
    // SAFETY: NULL arguments are refused without touching anything.
    unsafe {
        assert!(NetAllocateMdl(core::ptr::null_mut()).is_null());
        NetFreeMdl(core::ptr::null_mut());
    }
    let s = snapshot().unwrap();
    assert_eq!(s.total.in_flight, 0);
    assert_eq!(s.total.served(), 9);
    assert_eq!(s.oversize().total_allocates, 2);
    assert_eq!(s.cpus, 2);
    trim_tick();
    // SAFETY: nothing else calls the handlers in this test.
    let report = unsafe { uninstall() }.unwrap();
    assert!(report.is_clean(), "{report:?}");
    sim.finish();
}

#[test]
fn handlers_drive_ndis_retreat_and_advance() {
    let sim = sim();
    bind_thread_to_cpu(0);
    install(&PoolConfig::default()).unwrap();
    // One NB: two MDLs (14 + 50 bytes), data at offset 0, 64 bytes.
    let t = TestNbl::single(&[14, 50], 0, 64);
    let nb = t.nb(0);
    // SAFETY: a valid NB from the test kit; the handlers are the pool's pair.
    unsafe {
        let before = ((*nb).MdlChain, (*nb).DataOffset, (*nb).DataLength());
        let status = at_irql(DISPATCH_LEVEL, || {
            NdisRetreatNetBufferDataStart(nb, 40, 24, Some(NetAllocateMdl))
        });
        assert_eq!(status, NDIS_STATUS_SUCCESS);
        let head = (*nb).MdlChain;
        assert_ne!(head, before.0, "the retreat prepended a pool MDL");
        assert_eq!(
            (*head).ByteCount,
            64,
            "asked for DataBackFill + delta - DataOffset = 24 + 40 - 0"
        );
        assert_eq!((*nb).DataOffset, 24);
        assert_eq!(snapshot().unwrap().total.in_flight, 1);
        bind_thread_to_cpu(1);
        at_irql(DISPATCH_LEVEL, || {
            NdisAdvanceNetBufferDataStart(nb, 40, TRUE, Some(NetFreeMdl))
        });
        assert_eq!(
            ((*nb).MdlChain, (*nb).DataOffset, (*nb).DataLength()),
            before
        );
    }
    bind_thread_to_cpu(0);
    let s = snapshot().unwrap();
    assert_eq!(
        (s.total.in_flight, s.foreign_frees, s.double_frees),
        (0, 0, 0)
    );
    drop(t);
    // SAFETY: no other handler call runs.
    assert!(unsafe { uninstall() }.unwrap().is_clean());
    sim.finish();
}

#[test]
fn handlers_refuse_foreign_mdls_and_fail_cleanly() {
    let sim = sim();
    bind_thread_to_cpu(0);
    // With no pool installed: NULL and counted, never a crash.
    let (m, _) = alloc(64);
    assert!(m.is_null());
    let t = TestNbl::single(&[100], 0, 100);
    let foreign = t.mdls()[0];
    // SAFETY: a valid MDL owned by the test kit.
    unsafe { NetFreeMdl(foreign) };
    let (a0, f0) = calls_without_pool();
    assert!(a0 >= 1 && f0 >= 1);

    let mut cfg = PoolConfig::default();
    cfg.fault.fail_every_nth = 2;
    install(&cfg).unwrap();
    // A foreign MDL is never freed: counted (and reported once).
    // SAFETY: a valid MDL owned by the test kit.
    unsafe { NetFreeMdl(foreign) };
    // SAFETY: as above.
    unsafe { NetFreeMdl(foreign) };
    assert_eq!(snapshot().unwrap().foreign_frees, 2);
    // SAFETY: the foreign MDL's memory is intact.
    assert_eq!(unsafe { (*foreign).ByteCount }, 100);

    // Injected failure: the retreat fails with NDIS_STATUS_RESOURCES and the NB is untouched.
    let (ok, _) = alloc(64); // request 1 succeeds
    assert!(!ok.is_null());
    let nb = t.nb(0);
    // SAFETY: a valid NB; request 2 is the injected failure.
    unsafe {
        let before = (
            (*nb).MdlChain,
            (*nb).DataOffset,
            (*nb).DataLength(),
            (*nb).CurrentMdl,
        );
        let st = at_irql(DISPATCH_LEVEL, || {
            NdisRetreatNetBufferDataStart(nb, 20, 0, Some(NetAllocateMdl))
        });
        assert_eq!(st, NDIS_STATUS_RESOURCES);
        assert_eq!(
            (
                (*nb).MdlChain,
                (*nb).DataOffset,
                (*nb).DataLength(),
                (*nb).CurrentMdl
            ),
            before
        );
    }
    let s = snapshot().unwrap();
    assert_eq!((s.total.injected, s.total.in_flight), (1, 1));

    // Uninstall with a block still in flight: reported, not freed; a late free is only counted.
    // SAFETY: no other handler call runs.
    let report = unsafe { uninstall() }.unwrap();
    assert_eq!((report.in_flight_blocks, report.live_blocks), (1, 1));
    // SAFETY: the pool is gone; the late free must not touch it.
    unsafe { NetFreeMdl(ok) };
    assert_eq!(calls_without_pool().1, f0 + 1);
    // The leaked block is one nonpaged allocation starting HEADER_BYTES before its MDL: hand it back so
    // the simulator's pool-leak check passes.
    // SAFETY: the block is no longer referenced by anything.
    unsafe {
        ExFreePoolWithTag(
            ok.cast::<u8>().sub(HEADER_BYTES).cast(),
            u32::from_le_bytes(*b"MdlP"),
        )
    };
    drop(t);
    sim.finish();
}
