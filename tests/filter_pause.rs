//! The pended-pause path on ndis-sim's pause-hold option (`AdapterConfig::pause_hold`): FilterPause
//! runs while the miniport still holds sends the filter transformed and/or the protocol still holds
//! receives it transformed; they come back later, one at a time on the simulated clock, from another
//! virtual CPU. The filter must return NDIS_STATUS_PENDING, complete sends arriving while Pausing
//! with NDIS_STATUS_PAUSED, and call NdisFPauseComplete exactly once, from the last send-complete /
//! return, with nothing of its own outstanding (the simulator's PAUSE_WITH_OUTSTANDING and
//! STATE_FORBIDS_COMPLETE rules judge that; `finish` fails on any finding).
mod filter_common;
use filter_common::*;
use ndis_sim::{AdapterConfig, ModuleState, NblShape, PauseHold, Sim, SimConfig};
use ndis_sys::*;

/// Module references held now (bias + callbacks + NBLs of ours), summed over modules.
fn module_refs() -> i64 {
    let mut n = 0;
    mdlpool::filter::for_each_module(|m| n += m.outstanding());
    n
}

fn shape(nbls: usize) -> NblShape {
    NblShape {
        nbls,
        nbs_per_nbl: 2,
        frame_len: 90,
        mdl_lengths: vec![14, 40],
        ..NblShape::default()
    }
}

/// One adapter in `mode`, its pause holding what `hold` says; running.
fn adapter(sim: &ndis_sim::SimGuard, m: &str, hold: PauseHold) -> ndis_sim::Adapter {
    let nic = sim.add_adapter(AdapterConfig {
        pause_hold: Some(hold),
        ..AdapterConfig::default()
    });
    let (k, v) = mode(m);
    nic.set_config(k, v);
    nic.attach().unwrap();
    nic.restart().unwrap();
    nic
}

#[test]
fn pause_pends_while_sends_are_below_and_completes_on_the_last_completion() {
    let (sim, drv) = start(2);
    let nic = adapter(
        &sim,
        "exercise",
        PauseHold {
            sends: true,
            sends_while_pausing: Some(shape(3)),
            release_every_ticks: 5,
            release_cpu: Some(1),
            ..PauseHold::default()
        },
    );
    nic.send(&shape(4));
    assert_eq!(nic.pending_sends(), 4);
    assert_eq!(pool_in_flight(), 8, "one block per NB below the filter");
    // Driver-wide totals include modules of earlier tests in this process: compare deltas.
    let before = filter_stats();
    nic.pause().unwrap();
    let r = nic.pause_record();
    assert_eq!(r.status, Some(NDIS_STATUS_PENDING), "{r:?}");
    assert_eq!((r.held_sends, r.held_receives, r.released), (4, 0, 4));
    assert_eq!(r.completes, 1, "NdisFPauseComplete exactly once");
    assert_eq!(r.released_at_complete, Some(4), "from the last completion");
    assert_eq!(r.outstanding_at_complete, Some(0), "nothing of ours left");
    assert_eq!(r.complete_cpu, Some(1), "from the completing CPU");
    assert_eq!(r.sent_while_pausing, 3);
    let c = nic.counters();
    assert_eq!(c.proto_completed_paused, 3, "sends while Pausing: PAUSED");
    assert_eq!(c.proto_completed_success, 4);
    assert_eq!(c.wire_nbls, 4, "nothing forwarded while Pausing");
    let after = filter_stats();
    assert_eq!(after.pauses_pended, before.pauses_pended + 1);
    assert_eq!(after.send_nbls_paused, before.send_nbls_paused + 3);
    assert_eq!(pool_in_flight(), 0);
    assert_eq!(module_refs(), 0);
    assert_eq!(nic.state(), ModuleState::Paused);
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

#[test]
fn pause_pends_while_receives_are_held_above_and_completes_on_the_last_return() {
    let (sim, drv) = start(2);
    let nic = adapter(
        &sim,
        "exercise",
        PauseHold {
            receives: true,
            release_every_ticks: 3,
            release_cpu: Some(0),
            ..PauseHold::default()
        },
    );
    kernel_dispatch(|| {
        nic.indicate(&shape(2), 0);
        nic.indicate(&shape(1), 0);
    });
    assert_eq!(nic.held_receives(), 3);
    assert_eq!(pool_in_flight(), 6);
    nic.pause().unwrap();
    let r = nic.pause_record();
    assert_eq!(r.status, Some(NDIS_STATUS_PENDING), "{r:?}");
    assert_eq!((r.held_sends, r.held_receives, r.released), (0, 3, 3));
    assert_eq!(r.completes, 1);
    assert_eq!(r.released_at_complete, Some(3));
    assert_eq!(r.outstanding_at_complete, Some(0));
    let c = nic.counters();
    assert_eq!(c.proto_returned_nbls, 3);
    assert_eq!(
        c.mp_returned_nbls, 3,
        "every receive back at the miniport, restored"
    );
    assert_eq!(pool_in_flight(), 0);
    assert_eq!(module_refs(), 0);
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

#[test]
fn sends_and_receives_held_together_then_restart_and_pause_again() {
    let (sim, drv) = start(4);
    let nic = adapter(
        &sim,
        "exercise",
        PauseHold {
            sends: true,
            receives: true,
            sends_while_pausing: Some(shape(1)),
            release_every_ticks: 1,
            release_cpu: Some(3),
            ..PauseHold::default()
        },
    );
    for round in 0..3u64 {
        nic.send(&shape(2));
        kernel_dispatch(|| nic.send(&shape(1)));
        kernel_dispatch(|| nic.indicate(&shape(2), 0));
        // A RESOURCES indication is synchronous: it is back before the pause and never held.
        kernel_dispatch(|| nic.indicate(&shape(1), NDIS_RECEIVE_FLAGS_RESOURCES));
        nic.pause().unwrap();
        let r = nic.pause_record();
        assert_eq!(r.status, Some(NDIS_STATUS_PENDING), "round {round}: {r:?}");
        assert_eq!((r.held_sends, r.held_receives), (3, 2), "round {round}");
        assert_eq!(r.completes, 1, "round {round}");
        assert_eq!(
            r.released_at_complete,
            Some(5),
            "round {round}: the last one"
        );
        assert_eq!(r.outstanding_at_complete, Some(0), "round {round}");
        assert_eq!(pool_in_flight(), 0, "round {round}");
        assert_eq!(module_refs(), 0, "round {round}");
        nic.restart().unwrap();
    }
    let c = nic.counters();
    assert_eq!(c.proto_completed_paused, 3);
    assert_eq!(c.proto_completed_success, 9);
    // Running again after the last restart: traffic flows and a drained pause completes at once.
    nic.send(&shape(2));
    nic.drain();
    assert_eq!(nic.counters().proto_completed_success, 11);
    nic.configure(|c| c.pause_hold = None);
    nic.pause().unwrap();
    assert_eq!(nic.pause_record().status, Some(NDIS_STATUS_SUCCESS));
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

#[test]
fn untransformed_nbls_below_do_not_hold_the_pause() {
    // Pass-through mode: the sends below and receives above carry nothing of ours, so FilterPause
    // completes at once (they are NDIS's to wait for), and the simulator agrees.
    let (sim, drv) = start(2);
    let nic = adapter(
        &sim,
        "passthrough",
        PauseHold {
            sends: true,
            receives: true,
            ..PauseHold::default()
        },
    );
    nic.send(&shape(2));
    nic.indicate(&shape(1), 0);
    assert_eq!(pool_in_flight(), 0);
    nic.pause().unwrap();
    let r = nic.pause_record();
    assert_eq!(r.status, Some(NDIS_STATUS_SUCCESS));
    assert_eq!((r.held_sends, r.held_receives, r.released), (2, 1, 3));
    assert_eq!(r.completes, 0);
    assert_eq!(r.outstanding_at_complete, Some(0));
    assert_eq!(nic.counters().proto_completed_success, 2);
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

#[test]
fn deterministic_single_thread_variant() {
    // The same pended pause in the simulator's deterministic mode (the Miri-friendly schedule).
    let sim = Sim::start(SimConfig {
        cpus: 2,
        deterministic: true,
        ..SimConfig::default()
    });
    let drv = sim.load_driver(mdlpool::DriverEntry);
    let nic = adapter(
        &sim,
        "exercise",
        PauseHold {
            sends: true,
            receives: true,
            sends_while_pausing: Some(shape(1)),
            release_every_ticks: 2,
            release_cpu: Some(1),
            ..PauseHold::default()
        },
    );
    nic.send(&shape(1));
    nic.indicate(&shape(1), 0);
    nic.pause().unwrap();
    let r = nic.pause_record();
    assert_eq!(r.status, Some(NDIS_STATUS_PENDING));
    assert_eq!((r.completes, r.released_at_complete), (1, Some(2)));
    assert_eq!(r.outstanding_at_complete, Some(0));
    assert_eq!(nic.counters().proto_completed_paused, 1);
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

#[test]
fn receives_arriving_while_pausing_or_paused_are_returned_not_passed_up() {
    // The miniport keeps indicating while the filter pauses (NDIS pauses top-down) and may indicate
    // to a Paused module: every mode must hand such receives back (NdisFReturnNetBufferLists), or drop
    // them when they carry NDIS_RECEIVE_FLAGS_RESOURCES, and never pass them up
    // (RECEIVE_PASSED_WHILE_PAUSING).
    for m in ["exercise", "vlan", "passthrough"] {
        for flags in [0, NDIS_RECEIVE_FLAGS_RESOURCES] {
            let (sim, drv) = start(2);
            let nic = adapter(
                &sim,
                m,
                PauseHold {
                    sends: true,
                    receives_while_pausing: Some((shape(2), flags)),
                    release_every_ticks: 1,
                    ..PauseHold::default()
                },
            );
            // A tagged send, so vlan mode transforms it too and the pause pends.
            nic.send(&NblShape {
                ieee8021q: info(1, 5),
                ..shape(1)
            });
            nic.pause().unwrap();
            let pended = nic.pause_record().status == Some(NDIS_STATUS_PENDING);
            assert_eq!(pended, m != "passthrough", "{m}: {:?}", nic.pause_record());
            assert_eq!(
                nic.pause_record().indicated_while_pausing,
                if pended { 2 } else { 0 }
            );
            assert_eq!(nic.state(), ModuleState::Paused);
            kernel_dispatch(|| nic.indicate(&shape(1), flags));
            let c = nic.counters();
            assert_eq!(pool_in_flight(), 0);
            nic.detach();
            sim.unload(drv);
            sim.finish();
            assert_eq!(
                c.proto_received_nbls, 0,
                "{m}/{flags:#x}: nothing passed up"
            );
            assert_eq!(
                c.mp_returned_nbls, c.mp_indicated_nbls,
                "{m}/{flags:#x}: every receive back at the miniport"
            );
        }
    }
}

fn kernel_dispatch<R>(f: impl FnOnce() -> R) -> R {
    ndis_sim::kernel::at_irql(DISPATCH_LEVEL, f)
}
