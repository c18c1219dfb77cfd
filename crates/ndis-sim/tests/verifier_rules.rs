//! Every verifier rule fires on a deliberately bad filter (tests/common/lwf.rs with one `Bad` knob)
//! or a deliberately bad call, and `finish` accepts it only because the test announced it.

#[path = "common/lwf.rs"]
mod lwf;

use lwf::Bad;
use ndis_sim::*;
use ndis_sys::*;

/// Runs the standard scenario with one misbehaviour and checks exactly the announced rules fired.
fn scenario(bad: Bad, expect: &[&'static str]) {
    let sim = Sim::start(SimConfig {
        cpus: 2,
        deterministic: true,
        ..SimConfig::default()
    });
    // The knob is global: set it only while holding the simulation lock.
    lwf::set_bad(bad);
    for r in expect {
        sim.expect_finding(r);
    }
    let drv = sim.load_driver(lwf::DriverEntry);
    let nic = sim.add_adapter(AdapterConfig {
        timeout_ticks: 50,
        ..AdapterConfig::default()
    });
    nic.attach().unwrap();
    if bad != Bad::NoSetAttributes {
        nic.restart().unwrap();
        let shape = NblShape {
            nbls: 2,
            frame_len: 80,
            mdl_lengths: vec![20, 66],
            data_offset: 6,
            ..NblShape::default()
        };
        nic.send(&shape);
        kernel::at_irql(DISPATCH_LEVEL, || nic.send(&shape));
        kernel::at_irql(DISPATCH_LEVEL, || {
            nic.indicate(&shape, 0);
            nic.indicate(&shape, NDIS_RECEIVE_FLAGS_RESOURCES);
        });
        if bad != Bad::PauseWithHeldSend {
            nic.drain();
        }
        let mut buf = [0u8; 4];
        nic.oid_request(NdisRequestQueryInformation, 0x0001_0106, &mut buf);
        // Long enough for the held-NBL timeouts (50 ticks = 500 ms).
        sim.advance_clock(600);
        if nic.state() == ModuleState::Running {
            let _ = nic.pause();
        }
    }
    nic.detach();
    sim.unload(drv);
    lwf::set_bad(Bad::None);
    let report = sim.finish();
    let mut fired: Vec<&str> = report.findings.iter().map(|f| f.rule).collect();
    fired.sort();
    fired.dedup();
    let mut want = expect.to_vec();
    want.sort();
    assert_eq!(fired, want, "findings: {:#?}", report.findings);
}

#[test]
fn dispatch_flag_mismatch() {
    scenario(Bad::WrongDispatchFlag, &[rules::DISPATCH_FLAG_MISMATCH]);
}

#[test]
fn double_complete() {
    scenario(Bad::CompleteTwice, &[rules::DOUBLE_COMPLETE]);
}

#[test]
fn nbl_touched_after_handoff() {
    scenario(
        Bad::TouchAfterSend,
        &[rules::NBL_TOUCHED_AFTER_HANDOFF, rules::NBL_NOT_RESTORED],
    );
}

#[test]
fn leaked_pool_at_unload() {
    scenario(Bad::LeakPool, &[rules::LEAKED_POOL]);
}

#[test]
fn set_attributes_missing() {
    scenario(
        Bad::NoSetAttributes,
        &[
            rules::SET_ATTRIBUTES_MISSING,
            rules::LEAKED_POOL,
            rules::LEAKED_NBL,
        ],
    );
}

#[test]
fn nb_not_restored() {
    scenario(Bad::NotRestored, &[rules::NB_NOT_RESTORED]);
}

#[test]
fn irql_too_high() {
    scenario(Bad::HighIrqlAlloc, &[rules::IRQL_TOO_HIGH]);
}

#[test]
fn timeout_pause() {
    scenario(Bad::PauseNeverCompletes, &[rules::TIMEOUT_PAUSE]);
}

#[test]
fn resources_nbl_returned() {
    scenario(Bad::ReturnResources, &[rules::RESOURCES_NBL_KEPT]);
}

#[test]
fn leaked_nbl_pool() {
    scenario(Bad::LeakNblPool, &[rules::LEAKED_NBL]);
}

#[test]
fn state_forbids_receive() {
    scenario(Bad::OriginateWhilePaused, &[rules::STATE_FORBIDS_RECEIVE]);
}

#[test]
fn pause_with_outstanding() {
    scenario(
        Bad::PauseWithHeldSend,
        &[
            rules::TIMEOUT_SEND,
            rules::PAUSE_WITH_OUTSTANDING,
            rules::LEAKED_NBL,
        ],
    );
}

#[test]
fn irql_not_restored() {
    scenario(Bad::IrqlNotRestored, &[rules::IRQL_NOT_RESTORED]);
}

#[test]
fn mdl_bytecount_mismatch() {
    scenario(
        Bad::ByteCountMismatch,
        &[
            rules::MDL_BYTECOUNT_MISMATCH,
            rules::NB_NOT_RESTORED,
            rules::LEAKED_POOL,
            // Its retreat also leaves the MAC header across two MDLs.
            rules::MAC_HEADER_SPLIT,
        ],
    );
}

#[test]
fn mdl_not_nonpaged() {
    scenario(Bad::UnbuiltMdl, &[rules::MDL_NOT_NONPAGED]);
}

#[test]
// Under Miri freed blocks go straight back (Miri reports the write itself, as undefined behaviour).
#[cfg_attr(miri, ignore)]
fn write_after_free() {
    scenario(Bad::WriteAfterFree, &[rules::FREED_POOL_MODIFIED]);
}

#[test]
fn pool_overrun() {
    scenario(Bad::OverrunAlloc, &[rules::POOL_OVERRUN]);
}

/// A stale pointer freed while its block is still held freed is a double free, even after other blocks
/// of the same size came and went (the host allocator cannot hand its address out again meanwhile).
#[test]
// Under Miri freed blocks go straight back, so an address may come back at once.
#[cfg_attr(miri, ignore)]
fn stale_free_after_other_frees_is_a_double_free() {
    let sim = Sim::start(SimConfig {
        cpus: 1,
        deterministic: true,
        ..SimConfig::default()
    });
    sim.expect_finding(rules::BAD_POOL_FREE);
    // SAFETY: deliberate misuse of the simulated pool; nothing is dereferenced by the test.
    unsafe {
        let stale = ExAllocatePool2(POOL_FLAG_NON_PAGED, 48, 0x4142_4344);
        ExFreePool(stale);
        for _ in 0..64 {
            let p = ExAllocatePool2(POOL_FLAG_NON_PAGED, 48, 0x4142_4344);
            assert_ne!(
                p, stale,
                "a freed block's address was handed out while it is held freed"
            );
            ExFreePool(p);
        }
        ExFreePool(stale);
    }
    let f = sim.findings();
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(
        f[0].detail
            .contains("double free (the block was freed before"),
        "{f:?}"
    );
    sim.finish();
}

#[test]
fn pool_misuse_rules() {
    let sim = Sim::start(SimConfig {
        cpus: 1,
        deterministic: true,
        ..SimConfig::default()
    });
    for r in [
        rules::BAD_POOL_FREE,
        rules::POOL_TAG_MISMATCH,
        rules::EXECUTABLE_POOL,
        rules::ADVANCE_UNDERFLOW,
    ] {
        sim.expect_finding(r);
    }
    // SAFETY: deliberate misuse of the simulated pool; nothing is dereferenced by the test.
    unsafe {
        let p = ExAllocatePool2(POOL_FLAG_NON_PAGED, 32, 0x4142_4344);
        ExFreePoolWithTag(p, 0x1111_1111);
        ExFreePool(p);
        let x = ExAllocatePool2(POOL_FLAG_NON_PAGED_EXECUTE, 32, 0x4142_4344);
        ExFreePool(x);
    }
    let t = testkit::TestNbl::single(&[60], 0, 60);
    // SAFETY: valid NB; advancing past its data is the deliberate error.
    unsafe { NdisAdvanceNetBufferDataStart(t.nb(0), 61, FALSE, None) };
    // SAFETY: restore the NB so the test NBL is freed intact.
    unsafe {
        (*t.nb(0)).DataOffset = 0;
        (*t.nb(0)).SetDataLength(60);
    }
    drop(t);
    sim.finish();
}

#[test]
fn leaked_mdl_at_unload() {
    let sim = Sim::start(SimConfig {
        cpus: 1,
        deterministic: true,
        ..SimConfig::default()
    });
    lwf::set_bad(Bad::None);
    sim.expect_finding(rules::LEAKED_MDL);
    sim.expect_finding(rules::LEAKED_POOL);
    let drv = sim.load_driver(lwf::DriverEntry);
    // SAFETY: allocations the "driver" makes and forgets.
    unsafe {
        let buf = ExAllocatePool2(POOL_FLAG_NON_PAGED, 64, 0x4142_4344);
        let mdl = NdisAllocateMdl(1 as NDIS_HANDLE, buf, 64);
        assert!(!mdl.is_null());
    }
    sim.unload(drv);
    sim.finish();
}

#[test]
fn unexpected_finding_fails_finish() {
    let r = std::panic::catch_unwind(|| {
        let sim = Sim::start(SimConfig {
            cpus: 1,
            deterministic: true,
            ..SimConfig::default()
        });
        // SAFETY: a deliberate bad free.
        unsafe { ExFreePool(0x1000 as PVOID) };
        sim.finish();
    });
    let msg = r
        .expect_err("finish must fail")
        .downcast::<String>()
        .unwrap();
    assert!(msg.contains("BAD_POOL_FREE object=0x1000"), "{msg}");
}

#[test]
fn expected_finding_that_never_fires_fails_finish() {
    let r = std::panic::catch_unwind(|| {
        let sim = Sim::start(SimConfig {
            cpus: 1,
            deterministic: true,
            ..SimConfig::default()
        });
        sim.expect_finding(rules::DOUBLE_RETURN);
        sim.finish();
    });
    let msg = r
        .expect_err("finish must fail")
        .downcast::<String>()
        .unwrap();
    assert!(
        msg.contains("expected finding DOUBLE_RETURN never fired"),
        "{msg}"
    );
}

#[test]
fn fault_injection_by_count_rate_and_predicate() {
    let sim = Sim::start(SimConfig {
        cpus: 1,
        deterministic: true,
        ..SimConfig::default()
    });
    sim.inject(AllocSite::Pool, FaultRule::Nth(1));
    sim.inject(
        AllocSite::Pool,
        FaultRule::When(std::sync::Arc::new(|r: &AllocRequest| r.size == 777)),
    );
    // SAFETY: plain allocations, freed below.
    unsafe {
        let a = ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, 0x4142_4344);
        let b = ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, 0x4142_4344);
        let c = ExAllocatePool2(POOL_FLAG_NON_PAGED, 777, 0x4142_4344);
        assert!(!a.is_null() && b.is_null() && c.is_null());
        ExFreePool(a);
    }
    sim.clear_injection(AllocSite::Pool);
    sim.inject(
        AllocSite::Pool,
        FaultRule::Rate {
            per_million: 500_000,
            seed: 3,
        },
    );
    let mut failed = 0;
    for _ in 0..200 {
        // SAFETY: as above.
        unsafe {
            let p = ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, 0x4142_4344);
            if p.is_null() {
                failed += 1;
            } else {
                ExFreePool(p);
            }
        }
    }
    assert!((60..140).contains(&failed), "{failed}");
    assert_eq!(sim.alloc_stats(AllocSite::Pool), (203, 2 + failed));
    sim.finish();
}

#[test]
fn state_forbids_send() {
    scenario(Bad::OriginateSendWhilePausing, &[rules::STATE_FORBIDS_SEND]);
}

#[test]
fn timeout_oid() {
    scenario(Bad::OidNeverCompletes, &[rules::TIMEOUT_OID]);
}

#[test]
fn timeout_restart() {
    lwf_restart_pends();
}

fn lwf_restart_pends() {
    let sim = Sim::start(SimConfig {
        cpus: 1,
        deterministic: true,
        ..SimConfig::default()
    });
    lwf::set_bad(Bad::RestartPends);
    sim.expect_finding(rules::TIMEOUT_RESTART);
    let drv = sim.load_driver(lwf::DriverEntry);
    let nic = sim.add_adapter(AdapterConfig {
        timeout_ticks: 20,
        ..AdapterConfig::default()
    });
    nic.attach().unwrap();
    assert_eq!(nic.restart(), Err(LifecycleError::Timeout));
    assert_eq!(nic.state(), ModuleState::Paused);
    nic.detach();
    sim.unload(drv);
    lwf::set_bad(Bad::None);
    sim.finish();
}

#[test]
fn state_forbids_complete() {
    scenario(
        Bad::PauseCompleteAndSuccess,
        &[rules::STATE_FORBIDS_COMPLETE],
    );
}

#[test]
fn pause_failed() {
    scenario(Bad::PauseFails, &[rules::PAUSE_FAILED]);
}

#[test]
fn double_return() {
    scenario(Bad::ReturnTwice, &[rules::DOUBLE_RETURN]);
}

#[test]
fn oid_clone_freed_after_completion() {
    scenario(Bad::OidCompleteBeforeFree, &[rules::OID_MISUSE]);
}

#[test]
fn receive_count_mismatch() {
    scenario(Bad::WrongReceiveCount, &[rules::RECEIVE_COUNT_MISMATCH]);
}

#[test]
fn not_deregistered() {
    scenario(Bad::NoDeregister, &[rules::NOT_DEREGISTERED]);
}

#[test]
fn data_corrupted() {
    scenario(Bad::CorruptData, &[rules::DATA_CORRUPTED]);
}

#[test]
fn nb_inconsistent() {
    scenario(Bad::OffByOneMdlOffset, &[rules::NB_INCONSISTENT]);
}

#[test]
fn timeout_receive() {
    scenario(
        Bad::HoldReceives,
        &[
            rules::TIMEOUT_RECEIVE,
            rules::PAUSE_WITH_OUTSTANDING,
            rules::LEAKED_NBL,
        ],
    );
}

#[test]
fn state_forbids_status() {
    scenario(
        Bad::StatusDuringAttach,
        &[rules::STATE_FORBIDS_STATUS, rules::STATE_FORBIDS_OID],
    );
}

#[test]
fn handle_object_lock_and_timer_misuse() {
    let sim = Sim::start(SimConfig {
        cpus: 1,
        deterministic: true,
        ..SimConfig::default()
    });
    lwf::set_bad(Bad::None);
    for r in [
        rules::BAD_HANDLE,
        rules::UNKNOWN_NBL,
        rules::BAD_OBJECT,
        rules::SPIN_LOCK_MISUSE,
        rules::TIMER_MISUSE,
    ] {
        sim.expect_finding(r);
    }
    let drv = sim.load_driver(lwf::DriverEntry);
    let nic = sim.add_adapter(AdapterConfig::default());
    nic.attach().unwrap();
    nic.restart().unwrap();
    // SAFETY: deliberate misuse; the simulator never dereferences the unknown NBL.
    unsafe {
        NdisFSendNetBufferLists(0x1234 as NDIS_HANDLE, std::ptr::null_mut(), 0, 0);
        let fake = Box::into_raw(Box::new(std::mem::zeroed::<NET_BUFFER_LIST>()));
        NdisFSendNetBufferLists(nic.filter_handle(), fake, 0, 0);
        drop(Box::from_raw(fake));
        let mut c: NDIS_FILTER_DRIVER_CHARACTERISTICS = std::mem::zeroed();
        let mut h = std::ptr::null_mut();
        let st = NdisFRegisterFilterDriver(drv.object(), std::ptr::null_mut(), &mut c, &mut h);
        assert_eq!(st, NDIS_STATUS_FAILURE, "a second registration is refused");
        let mut lock: KSPIN_LOCK = 0;
        KeReleaseSpinLock(&mut lock, PASSIVE_LEVEL);
        NdisFreeTimerObject(0x5678 as NDIS_HANDLE);
    }
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

/// A filter that pends its pause while sends are held below it but calls NdisFPauseComplete on the
/// first completion, with the other sends (still carrying its NBL context) below: the pause-hold
/// option of the simulator catches it, and the record shows it completed after one release of three.
#[test]
fn pause_completed_before_the_last_held_send_is_back() {
    let sim = Sim::start(SimConfig {
        cpus: 2,
        deterministic: true,
        ..SimConfig::default()
    });
    lwf::set_bad(Bad::PauseCompletesEarly);
    sim.expect_finding(rules::PAUSE_WITH_OUTSTANDING);
    let drv = sim.load_driver(lwf::DriverEntry);
    let nic = sim.add_adapter(AdapterConfig {
        pause_hold: Some(PauseHold {
            sends: true,
            release_every_ticks: 2,
            release_cpu: Some(1),
            ..PauseHold::default()
        }),
        ..AdapterConfig::default()
    });
    nic.attach().unwrap();
    nic.restart().unwrap();
    nic.send(&NblShape {
        nbls: 3,
        ..NblShape::default()
    });
    assert_eq!(nic.pending_sends(), 3);
    nic.pause().unwrap();
    let r = nic.pause_record();
    assert_eq!(r.status, Some(NDIS_STATUS_PENDING));
    assert_eq!((r.held_sends, r.released, r.completes), (3, 3, 1));
    assert_eq!(
        r.released_at_complete,
        Some(1),
        "completed after the first release"
    );
    assert_eq!(
        r.outstanding_at_complete,
        Some(2),
        "two marked sends still below"
    );
    assert_eq!(r.complete_cpu, Some(1));
    assert_eq!(
        sim.finding_count(rules::PAUSE_WITH_OUTSTANDING),
        2,
        "one finding per NBL left below"
    );
    nic.detach();
    sim.unload(drv);
    lwf::set_bad(Bad::None);
    let report = sim.finish();
    let fired: Vec<&str> = report.findings.iter().map(|f| f.rule).collect();
    assert!(
        fired.iter().all(|r| *r == rules::PAUSE_WITH_OUTSTANDING),
        "{fired:?}"
    );
}

/// The same well-behaved pass-through filter, paused while the miniport holds its sends and the
/// protocol holds its receives: it pends, completes exactly once after the last send is back, and
/// the simulator finds nothing (unchanged pass-through receives above are not the filter's).
#[test]
fn pause_hold_with_a_correct_filter_is_clean() {
    let sim = Sim::start(SimConfig {
        cpus: 2,
        deterministic: true,
        ..SimConfig::default()
    });
    lwf::set_bad(Bad::None);
    let drv = sim.load_driver(lwf::DriverEntry);
    let nic = sim.add_adapter(AdapterConfig {
        pause_hold: Some(PauseHold {
            sends: true,
            receives: true,
            sends_while_pausing: Some(NblShape::default()),
            release_every_ticks: 1,
            release_cpu: Some(1),
            ..PauseHold::default()
        }),
        ..AdapterConfig::default()
    });
    nic.attach().unwrap();
    nic.restart().unwrap();
    nic.send(&NblShape {
        nbls: 2,
        ..NblShape::default()
    });
    nic.indicate(&NblShape::default(), 0);
    nic.pause().unwrap();
    let r = nic.pause_record();
    assert_eq!(r.status, Some(NDIS_STATUS_PENDING));
    assert_eq!((r.held_sends, r.held_receives, r.released), (2, 1, 3));
    assert_eq!(r.completes, 1);
    assert_eq!(
        r.released_at_complete,
        Some(2),
        "after the second (last) send"
    );
    assert_eq!(r.outstanding_at_complete, Some(0));
    assert_eq!(r.sent_while_pausing, 1);
    assert_eq!(nic.counters().proto_completed_paused, 1);
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

/// Receives from below arriving while a pause is pended (the miniport still runs): a filter that
/// passes them up is RECEIVE_PASSED_WHILE_PAUSING, once per indication (one without and one with
/// NDIS_RECEIVE_FLAGS_RESOURCES); the correct filter returns the first and drops the second, and the
/// simulator finds nothing.
#[test]
fn receive_passed_while_pausing() {
    for (bad, want) in [(Bad::PassReceivesWhilePausing, 2), (Bad::None, 0)] {
        let sim = Sim::start(SimConfig {
            cpus: 2,
            deterministic: true,
            ..SimConfig::default()
        });
        lwf::set_bad(bad);
        if want != 0 {
            sim.expect_finding(rules::RECEIVE_PASSED_WHILE_PAUSING);
        }
        let drv = sim.load_driver(lwf::DriverEntry);
        let nic = sim.add_adapter(AdapterConfig {
            pause_hold: Some(PauseHold {
                sends: true,
                receives_while_pausing: Some((
                    NblShape {
                        nbls: 2,
                        ..NblShape::default()
                    },
                    0,
                )),
                release_every_ticks: 1,
                ..PauseHold::default()
            }),
            ..AdapterConfig::default()
        });
        nic.attach().unwrap();
        nic.restart().unwrap();
        nic.send(&NblShape::default());
        nic.pause().unwrap();
        assert_eq!(nic.pause_record().status, Some(NDIS_STATUS_PENDING));
        assert_eq!(nic.pause_record().indicated_while_pausing, 2);
        nic.restart().unwrap();
        nic.send(&NblShape::default());
        nic.configure(|c| {
            if let Some(h) = c.pause_hold.as_mut() {
                if let Some((_, f)) = h.receives_while_pausing.as_mut() {
                    *f = NDIS_RECEIVE_FLAGS_RESOURCES;
                }
            }
        });
        nic.pause().unwrap();
        let c = nic.counters();
        assert_eq!(c.mp_indicated_nbls, 4);
        assert_eq!(c.mp_returned_nbls, 4, "every receive back at the miniport");
        assert_eq!(
            c.proto_received_nbls,
            if want != 0 { 4 } else { 0 },
            "nothing passed up by the correct filter"
        );
        assert_eq!(sim.finding_count(rules::RECEIVE_PASSED_WHILE_PAUSING), want);
        nic.detach();
        sim.unload(drv);
        lwf::set_bad(Bad::None);
        sim.finish();
    }
}

/// Context sizes that are multiples of sizeof(PVOID) but not of MEMORY_ALLOCATION_ALIGNMENT (the
/// 24 + 40·n bytes a filter might ask for): NBL_CONTEXT_MISALIGNED on NdisAllocateNetBufferListContext
/// (size and backfill), NdisAllocateNetBufferList and NdisAllocateNetBufferListPool; 16-multiples are
/// clean and keep the data 16-aligned.
#[test]
fn nbl_context_misaligned() {
    let sim = Sim::start(SimConfig {
        cpus: 1,
        deterministic: true,
        ..SimConfig::default()
    });
    sim.expect_finding(rules::NBL_CONTEXT_MISALIGNED);
    // SAFETY: a pool and NBL of our own, freed below; PASSIVE_LEVEL.
    unsafe {
        let mut pp: NET_BUFFER_LIST_POOL_PARAMETERS = std::mem::zeroed();
        pp.Header = NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_DEFAULT,
            NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1,
            NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1,
        );
        pp.ContextSize = 24;
        pp.PoolTag = 0x6C6F_6F50;
        let pool = NdisAllocateNetBufferListPool(1 as NDIS_HANDLE, &mut pp);
        assert_eq!(sim.finding_count(rules::NBL_CONTEXT_MISALIGNED), 1);
        let nbl = NdisAllocateNetBufferList(pool, 0, 40);
        assert_eq!(sim.finding_count(rules::NBL_CONTEXT_MISALIGNED), 2);
        assert_eq!(
            NdisAllocateNetBufferListContext(nbl, 104, 0, 0x7874_6343),
            NDIS_STATUS_SUCCESS
        );
        assert_eq!(sim.finding_count(rules::NBL_CONTEXT_MISALIGNED), 3);
        NdisFreeNetBufferListContext(nbl, 104);
        assert_eq!(
            NdisAllocateNetBufferListContext(nbl, 112, 8, 0x7874_6343),
            NDIS_STATUS_SUCCESS
        );
        assert_eq!(sim.finding_count(rules::NBL_CONTEXT_MISALIGNED), 4);
        NdisFreeNetBufferListContext(nbl, 112);
        assert_eq!(
            NdisAllocateNetBufferListContext(nbl, 112, 16, 0x7874_6343),
            NDIS_STATUS_SUCCESS
        );
        assert_eq!(sim.finding_count(rules::NBL_CONTEXT_MISALIGNED), 4);
        assert_eq!(
            NET_BUFFER_LIST_CONTEXT_DATA_START(nbl) as usize % MEMORY_ALLOCATION_ALIGNMENT,
            0
        );
        NdisFreeNetBufferListContext(nbl, 112);
        NdisFreeNetBufferList(nbl);
        NdisFreeNetBufferListPool(pool);
    }
    sim.finish();
}

#[test]
fn unload_not_set_at_register() {
    scenario(Bad::UnloadSetLate, &[rules::UNLOAD_NOT_SET_AT_REGISTER]);
}

#[test]
fn oid_clone_request_id() {
    // The standard scenario forwards one OID.
    scenario(Bad::CloneRequestIdNotCopied, &[rules::OID_CLONE_REQUEST_ID]);
}

/// FilterAttach on a medium the filter does not handle: failing with NDIS_STATUS_FAILURE is clean,
/// an undocumented status (the INVALID_PARAMETER some filters return) is ATTACH_STATUS_UNDOCUMENTED.
#[test]
fn attach_status_undocumented() {
    for (bad, want) in [(Bad::AttachUndocumentedStatus, 1), (Bad::None, 0)] {
        let sim = Sim::start(SimConfig {
            cpus: 1,
            deterministic: true,
            ..SimConfig::default()
        });
        lwf::set_bad(bad);
        if want != 0 {
            sim.expect_finding(rules::ATTACH_STATUS_UNDOCUMENTED);
        }
        let drv = sim.load_driver(lwf::DriverEntry);
        let nic = sim.add_adapter(AdapterConfig {
            medium: 1, // NdisMedium802_5
            ..AdapterConfig::default()
        });
        let st = if want != 0 {
            NDIS_STATUS_INVALID_PARAMETER
        } else {
            NDIS_STATUS_FAILURE
        };
        assert_eq!(nic.attach(), Err(LifecycleError::Failed(st)));
        assert_eq!(sim.finding_count(rules::ATTACH_STATUS_UNDOCUMENTED), want);
        sim.unload(drv);
        lwf::set_bad(Bad::None);
        sim.finish();
    }
}

/// A neighbour that breaks the restore contract (`AdapterConfig::restore_breaker`): with a correct
/// pass-through filter in between, the miniport's moved data start reaches the protocol and the
/// protocol's reaches the miniport, and each is NB_NOT_RESTORED (the neighbour's own finding: a
/// filter that changed nothing cannot repair what it never recorded). Every variant changes the NB.
#[test]
fn neighbour_breaking_the_restore_contract_is_seen_across_a_pass_through_filter() {
    for how in [
        BreakHow::LeaveRetreated(4),
        BreakHow::LeaveAdvanced(4),
        BreakHow::DropUnusedMdls,
    ] {
        let sim = Sim::start(SimConfig {
            cpus: 1,
            deterministic: true,
            ..SimConfig::default()
        });
        lwf::set_bad(Bad::None);
        sim.expect_finding(rules::NB_NOT_RESTORED);
        let drv = sim.load_driver(lwf::DriverEntry);
        let nic = sim.add_adapter(AdapterConfig {
            restore_breaker: Some(RestoreBreaker {
                miniport: true,
                protocol: true,
                how,
            }),
            ..AdapterConfig::default()
        });
        nic.attach().unwrap();
        nic.restart().unwrap();
        // The first MDL lies wholly in unused space, so every variant has something to change.
        let shape = NblShape {
            mdl_lengths: vec![8, 80],
            data_offset: 8,
            ..NblShape::default()
        };
        nic.send(&shape);
        nic.indicate(&shape, 0);
        nic.drain();
        assert_eq!(nic.counters().neighbor_restore_breaks, 2, "{how:?}");
        nic.pause().unwrap();
        nic.detach();
        sim.unload(drv);
        let report = sim.finish();
        let fired: Vec<&str> = report.findings.iter().map(|f| f.rule).collect();
        assert_eq!(
            fired,
            vec![rules::NB_NOT_RESTORED, rules::NB_NOT_RESTORED],
            "{how:?}"
        );
    }
}

/// Sends whose MDLs describe locked pages not mapped into system space (`NblShape::locked_unmapped`),
/// at PASSIVE and DISPATCH_LEVEL, through the pass-through filter with knob `bad`. Returns the rules
/// that fired and (mappings made, released).
fn locked_unmapped_sends(bad: Bad, expect: &[&'static str]) -> (Vec<&'static str>, (u64, u64)) {
    let sim = Sim::start(SimConfig {
        cpus: 1,
        deterministic: true,
        ..SimConfig::default()
    });
    lwf::set_bad(bad);
    for r in expect {
        sim.expect_finding(r);
    }
    let drv = sim.load_driver(lwf::DriverEntry);
    let nic = sim.add_adapter(AdapterConfig::default());
    nic.attach().unwrap();
    nic.restart().unwrap();
    let shape = NblShape {
        nbls: 2,
        mdl_lengths: vec![20, 60],
        data_offset: 4,
        locked_unmapped: true,
        ..NblShape::default()
    };
    nic.send(&shape);
    kernel::at_irql(DISPATCH_LEVEL, || nic.send(&shape));
    nic.drain();
    let c = nic.counters();
    assert_eq!(
        c.wire_digest, c.proto_sent_digest,
        "the frames are unchanged"
    );
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    lwf::set_bad(Bad::None);
    let counts = ndis_sim::mapping::mapping_counts();
    let report = sim.finish();
    let mut fired: Vec<&'static str> = report.findings.iter().map(|f| f.rule).collect();
    fired.sort();
    fired.dedup();
    (fired, counts)
}

#[test]
fn unmapped_mdl_access() {
    let (fired, _) = locked_unmapped_sends(Bad::WriteUnmapped, &[rules::UNMAPPED_MDL_ACCESS]);
    assert_eq!(fired, vec![rules::UNMAPPED_MDL_ACCESS]);
}

#[test]
fn mdl_mapping_misuse() {
    let (fired, _) = locked_unmapped_sends(Bad::MapExecutableTwice, &[rules::MDL_MAPPING_MISUSE]);
    assert_eq!(fired, vec![rules::MDL_MAPPING_MISUSE]);
}

/// MmGetSystemAddressForMdlSafe maps each MDL once (4 sends), at PASSIVE and DISPATCH_LEVEL, and each
/// mapping is released when the protocol frees its MDL; nothing is reported.
#[test]
fn locked_unmapped_mdls_mapped_safely_are_clean() {
    let (fired, counts) = locked_unmapped_sends(Bad::MapSafely, &[]);
    assert!(fired.is_empty(), "{fired:?}");
    assert_eq!(counts, (4, 4));
}

#[test]
fn headroom_corrupted() {
    scenario(Bad::ScribbleHeadroom, &[rules::HEADROOM_CORRUPTED]);
}

#[test]
fn mac_header_split() {
    scenario(Bad::SplitMacHeader, &[rules::MAC_HEADER_SPLIT]);
}

/// A send-only scenario with offloaded frames: the bad filter's misbehaviour must fire exactly
/// `expect`.
fn offload_scenario(bad: Bad, shape: NblShape, expect: &[&'static str]) {
    let sim = Sim::start(SimConfig {
        cpus: 1,
        deterministic: true,
        ..SimConfig::default()
    });
    lwf::set_bad(bad);
    for r in expect {
        sim.expect_finding(r);
    }
    let drv = sim.load_driver(lwf::DriverEntry);
    let nic = sim.add_adapter(AdapterConfig::default());
    nic.attach().unwrap();
    nic.restart().unwrap();
    nic.send(&shape);
    nic.drain();
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    lwf::set_bad(Bad::None);
    let report = sim.finish();
    let mut fired: Vec<&str> = report.findings.iter().map(|f| f.rule).collect();
    fired.sort();
    fired.dedup();
    let mut want = expect.to_vec();
    want.sort();
    assert_eq!(fired, want, "findings: {:#?}", report.findings);
}

fn offloaded(kind: wire::OffloadKind, ipv6: bool, frame_len: usize) -> NblShape {
    NblShape {
        nbls: 2,
        frame_len,
        data_offset: 16,
        offload: Some({
            let mut o = wire::OffloadShape {
                kind,
                ipv6,
                udp: false,
                options: true,
                mss: 0,
                pretagged: None,
            };
            o.mss = o.mss_for(1500);
            o
        }),
        ..NblShape::default()
    }
}

#[test]
fn offload_offset_wrong() {
    offload_scenario(
        Bad::LsoOffsetOffBy4,
        offloaded(wire::OffloadKind::LsoV2, true, 6000),
        &[rules::OFFLOAD_OFFSET_WRONG],
    );
}

#[test]
fn offload_mismatch() {
    offload_scenario(
        Bad::ChecksumWrongIpVersion,
        offloaded(wire::OffloadKind::Checksum, false, 400),
        &[rules::OFFLOAD_MISMATCH],
    );
}

#[test]
fn frame_too_long() {
    // Exactly the maximum (MtuSize 1500 + 14) before the filter grows it.
    offload_scenario(
        Bad::GrowFrame,
        NblShape {
            frame_len: 1514,
            data_offset: 16,
            ..NblShape::default()
        },
        &[rules::FRAME_TOO_LONG],
    );
}

#[test]
fn offloaded_traffic_through_a_correct_filter_is_clean() {
    use wire::OffloadKind::*;
    for kind in [Checksum, LsoV1, LsoV2, Uso] {
        for ipv6 in [false, true] {
            if kind == LsoV1 && ipv6 {
                continue;
            }
            let len = if matches!(kind, Checksum) { 1514 } else { 6000 };
            offload_scenario(Bad::None, offloaded(kind, ipv6, len), &[]);
        }
    }
}
