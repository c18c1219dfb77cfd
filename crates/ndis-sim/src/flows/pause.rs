//! Pausing a filter module: the protocol above drains, FilterPause (pended or not, optionally with
//! NBLs held across it and given back on the clock), then the miniport below quiesces; and
//! NdisFDeregisterFilterDriver's pause-then-detach of each module.

use crate::abi::Callback;
use crate::kernel::{self};
use crate::ndisf::check_pause_outstanding;
use crate::stack::{self, stack, state_of, ModuleState};
use crate::verifier::{self, rules};
use ndis_sys::*;

use super::lifecycle::{detach_flow, miniport_quiesce, passive, LifecycleError};

/// Pauses the protocol above (its sends completed, its held receives returned), then FilterPause.
/// Running → Pausing → Paused. In concurrent mode ([`crate::race`]) the protocol stops sending and
/// its sends complete, FilterPause runs while the miniport still indicates and completes, and once
/// the pause completed the miniport is paused too (no new indications; every one in progress and
/// every indicated NBL back). With the deterministic interleaving, the FilterPause call itself lands
/// at a preemption point the schedule picks.
pub(crate) fn pause_flow(id: usize) -> Result<(), LifecycleError> {
    assert_eq!(
        state_of(id),
        ModuleState::Running,
        "pause needs a running module"
    );
    let hold = stack().adapters[id].cfg.pause_hold.clone();
    stack().adapters[id].pause_record = stack::PauseRecord::default();
    if stack().driver.is_none() {
        return Err(LifecycleError::NoDriver);
    }
    match &hold {
        // NDIS pauses overlying drivers first: the protocol stops sending and its sends complete
        // before the filter is paused (serialised mode: its held receives are returned too, so
        // nothing is in flight when FilterPause runs).
        None => {
            let concurrent = crate::race::concurrent();
            if concurrent {
                stack().adapters[id].race.proto_open = false;
            }
            crate::flows::wait_until(
                id,
                rules::TIMEOUT_SEND,
                "protocol sends (before pausing the filter)",
                || {
                    let s = stack();
                    let a = &s.adapters[id];
                    if concurrent {
                        a.race.sending == 0 && a.sent.is_empty()
                    } else {
                        a.sent.is_empty() && a.proto_held.is_empty()
                    }
                },
            );
        }
        // Only the kinds not held are drained; the rest stay out across FilterPause.
        Some(h) => {
            stack().adapters[id].race.proto_open = false;
            if !h.sends {
                kernel::at_irql(DISPATCH_LEVEL, || {
                    while crate::flows::pump_sends_at_current_irql(id, usize::MAX, None) != 0 {}
                });
            }
            if !h.receives {
                kernel::at_irql(DISPATCH_LEVEL, || {
                    while crate::flows::return_some(id, usize::MAX) != 0 {}
                });
            }
            let mut s = stack();
            let a = &mut s.adapters[id];
            a.pause_record.held_sends = a.mp_pending.len();
            a.pause_record.held_receives = a.proto_held.len();
        }
    }
    let st = match crate::race::scheduled_pause(id) {
        Some(st) => st,
        None => pause_call(id),
    };
    pause_finish(id, st, hold.as_ref())
}

/// FilterPause itself (PASSIVE_LEVEL): Running → Pausing; when it returns NDIS_STATUS_SUCCESS the
/// pause is complete at that instant (judged, then Paused). Returns FilterPause's status.
pub(crate) fn pause_call(id: usize) -> NDIS_STATUS {
    let (f, abi, ctx) = {
        let s = stack();
        let d = s.driver.as_ref().expect("a module implies a driver");
        (
            d.chars.PauseHandler.expect("validated"),
            d.abi,
            s.adapters[id].module_ctx as NDIS_HANDLE,
        )
    };
    {
        let mut s = stack();
        let a = &mut s.adapters[id];
        a.state = ModuleState::Pausing;
        a.race.pause_in_call = true;
        a.pause_pending = true;
        a.pause_done = false;
    }
    // SAFETY: all-zero is valid for this plain-data structure.
    let mut p: NDIS_FILTER_PAUSE_PARAMETERS = unsafe { std::mem::zeroed() };
    p.Header = NDIS_OBJECT_HEADER::new(
        NDIS_OBJECT_TYPE_FILTER_PAUSE_PARAMETERS,
        NDIS_FILTER_PAUSE_PARAMETERS_REVISION_1,
        NDIS_SIZEOF_FILTER_PAUSE_PARAMETERS_REVISION_1,
    );
    p.PauseReason = NDIS_PAUSE_NDIS_INTERNAL;
    // SAFETY: the registered FilterPause; `p` lives across the call.
    let st = passive("FilterPause", || unsafe {
        f.invoke(abi, (ctx, &mut p as *mut _))
    });
    {
        let mut s = stack();
        let a = &mut s.adapters[id];
        // Receives NDIS issues from now on are new to a Pausing filter (RECEIVE_PASSED_WHILE_PAUSING):
        // the filter changes its own state somewhere inside FilterPause, so one issued while
        // FilterPause still ran may have met it Running (race.rs: `begun`).
        a.race.begun += 1;
        a.race.pause_in_call = false;
        a.pause_record.status = Some(st);
    }
    if st == NDIS_STATUS_SUCCESS {
        if !stack().adapters[id].pause_done {
            check_pause_outstanding(id);
            // The module is Paused from this instant (the line of race.rs).
            crate::race::pause_completed(id);
        } else {
            verifier::report(
                rules::STATE_FORBIDS_COMPLETE,
                id,
                "NdisFPauseComplete called and FilterPause also returned SUCCESS",
            );
        }
    }
    st
}

/// After FilterPause: the held NBLs given back ([`stack::PauseHold`]), the wait for a pended pause,
/// then (concurrent mode) the miniport paused.
fn pause_finish(
    id: usize,
    st: NDIS_STATUS,
    hold: Option<&stack::PauseHold>,
) -> Result<(), LifecycleError> {
    if let Some(h) = hold {
        release_held_across_pause(id, h, st == NDIS_STATUS_PENDING);
    }
    let result = match st {
        NDIS_STATUS_SUCCESS => Ok(()),
        NDIS_STATUS_PENDING => {
            if crate::flows::wait_until(id, rules::TIMEOUT_PAUSE, "pended pause", || {
                stack().adapters[id].pause_done
            }) {
                Ok(())
            } else {
                Err(LifecycleError::Timeout)
            }
        }
        other => {
            verifier::report(
                rules::PAUSE_FAILED,
                id,
                format!("FilterPause returned {other:#x}; pause cannot fail"),
            );
            Ok(())
        }
    };
    let mut s = stack();
    let a = &mut s.adapters[id];
    a.pause_pending = false;
    if a.state != ModuleState::Paused {
        // Timed out or failed: Paused from here on all the same.
        crate::race::pause_completed_locked(a);
    }
    drop(s);
    miniport_quiesce(id);
    verifier::log(format!("[ndis] adapter {id}: paused"));
    result
}

/// Steps 2 and 3 of [`stack::PauseHold`]: sends and receives while Pausing (when the pause pended), then the
/// held sends and receives given back one at a time on the simulated clock and the chosen CPU.
fn release_held_across_pause(id: usize, h: &stack::PauseHold, pended: bool) {
    if let (true, Some(shape)) = (pended, &h.sends_while_pausing) {
        let n = crate::flows::protocol_send(id, shape, 0);
        stack().adapters[id].pause_record.sent_while_pausing += n;
    }
    if let (true, Some((shape, flags))) = (pended, &h.receives_while_pausing) {
        // The miniport below is still running while the filter pauses (NDIS pauses top-down).
        let n = kernel::at_irql(DISPATCH_LEVEL, || {
            crate::flows::miniport_indicate(id, shape, *flags)
        });
        stack().adapters[id].pause_record.indicated_while_pausing += n;
    }
    let home = kernel::current_cpu();
    let cpu = h.release_cpu.unwrap_or(home);
    loop {
        let next = {
            let mut s = stack();
            let a = &mut s.adapters[id];
            if !a.mp_pending.is_empty() {
                Some((true, a.mp_pending.remove(0)))
            } else {
                a.proto_held.pop_front().map(|n| (false, n))
            }
        };
        let Some((send, n)) = next else { break };
        crate::flows::advance_clock_ms(10 * h.release_every_ticks as u64);
        // Counted first: a completion inside the give-back sees this NBL as given back.
        stack().adapters[id].pause_record.released += 1;
        kernel::bind_thread_to_cpu(cpu);
        kernel::at_irql(DISPATCH_LEVEL, || {
            if send {
                super::send::complete_sends(id, vec![n]);
            } else {
                crate::flows::protocol_return(id, vec![n]);
            }
        });
        kernel::bind_thread_to_cpu(home);
    }
}

/// NdisFDeregisterFilterDriver's work on one module: pause it if it runs, then detach it if it is
/// paused.
pub(crate) fn pause_and_detach(id: usize) {
    if state_of(id) == ModuleState::Running {
        let _ = pause_flow(id);
    }
    if state_of(id) == ModuleState::Paused {
        detach_flow(id);
    }
}
