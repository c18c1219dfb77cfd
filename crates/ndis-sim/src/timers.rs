//! NDIS timer objects (NdisAllocateTimerObject, NdisSetTimerObject, NdisCancelTimerObject,
//! NdisFreeTimerObject) and the timer DPCs KeFlushQueuedDpcs waits for.
//!
//! A routine of layer 3. Timers fire only when the clock advances ([`crate::clock`]; the caller
//! then calls `fire_due`), at DISPATCH_LEVEL on the advancing thread's CPU, through the convention
//! they were registered with.

use crate::abi::{caller_abi, Abi, Callback};
use crate::cpu;
use crate::mem::{self, Owner};
use crate::verifier::{self, check_irql, rules};
use ndis_sys::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

/// Timer DPCs taken due (queued) and not yet returned, on any thread (KeFlushQueuedDpcs waits for
/// them).
static DPCS_IN_FLIGHT: AtomicU64 = AtomicU64::new(0);

/// `KeFlushQueuedDpcs`'s wait: returns once every timer DPC queued or running on another thread when
/// it was called has returned (they run on the threads that advance the clock; in the deterministic
/// mode nothing else runs meanwhile).
pub(crate) fn flush_queued_dpcs() {
    if cpu::deterministic() {
        return;
    }
    while DPCS_IN_FLIGHT.load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
}

#[derive(Clone)]
struct Timer {
    abi: Abi,
    func: NDIS_TIMER_FUNCTION,
    context: usize,
    due: Option<u64>,
    period_ms: u32,
    set_context: usize,
    freed: bool,
}

static TIMERS: LazyLock<Mutex<HashMap<usize, Timer>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn timers() -> std::sync::MutexGuard<'static, HashMap<usize, Timer>> {
    TIMERS.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn reset() {
    DPCS_IN_FLIGHT.store(0, Ordering::SeqCst);
    timers().clear();
}

/// Fires the timers due at `now` (100 ns units, what [`crate::clock::advance_ms`] returned) at
/// DISPATCH_LEVEL on the calling thread's CPU; returns how many fired.
pub(crate) fn fire_due(now: u64) -> usize {
    let mut fired = 0;
    loop {
        let due: Option<(usize, Timer)> = {
            let mut m = timers();
            let hit = m
                .iter()
                .find(|(_, t)| !t.freed && t.due.is_some_and(|d| d <= now))
                .map(|(h, t)| (*h, t.clone()));
            if let Some((h, t)) = &hit {
                DPCS_IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
                let e = m.get_mut(h).expect("present");
                e.due = if t.period_ms > 0 {
                    Some(t.due.unwrap_or(now) + t.period_ms as u64 * 10_000)
                } else {
                    None
                };
            }
            hit
        };
        let Some((h, t)) = due else { break };
        if let Some(f) = t.func {
            cpu::at_irql(DISPATCH_LEVEL, || {
                // SAFETY: the timer function and context the driver registered, called at DISPATCH_LEVEL.
                unsafe {
                    f.invoke(
                        t.abi,
                        (
                            std::ptr::null_mut(),
                            t.set_context as PVOID,
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                        ),
                    )
                };
                if cpu::current_irql() != DISPATCH_LEVEL {
                    verifier::report(
                        rules::IRQL_NOT_RESTORED,
                        h,
                        "timer function returned at another IRQL",
                    );
                    cpu::set_irql(DISPATCH_LEVEL);
                }
            });
        }
        DPCS_IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        fired += 1;
        if fired > 10_000 {
            break;
        }
    }
    fired
}

/// Timer objects the driver still holds: (handle, what).
pub(crate) fn driver_leftovers() -> Vec<(usize, &'static str)> {
    timers()
        .iter()
        .filter(|(_, t)| !t.freed)
        .map(|(h, _)| (*h, "timer object not freed"))
        .collect()
}

/// Frees every timer block (end of a simulation).
pub(crate) fn free_all() {
    for (h, _) in timers().drain() {
        mem::raw_free(h as *mut u8);
    }
}

crate::sim_exports! {
    module = "ndis.sys";

    /// `NdisAllocateTimerObject`: PASSIVE_LEVEL.
    fn NdisAllocateTimerObject(handle: NDIS_HANDLE, chars: *mut NDIS_TIMER_CHARACTERISTICS, out: *mut NDIS_HANDLE) -> NDIS_STATUS {
        check_irql("NdisAllocateTimerObject", PASSIVE_LEVEL, handle as usize);
        if chars.is_null() || out.is_null() {
            return NDIS_STATUS_INVALID_PARAMETER;
        }
        // SAFETY: the driver passes valid characteristics.
        let c = unsafe { &*chars };
        if c.Header.Type != NDIS_OBJECT_TYPE_TIMER_CHARACTERISTICS || c.Header.Size < NDIS_SIZEOF_TIMER_CHARACTERISTICS_REVISION_1 || c.TimerFunction.is_none() {
            verifier::report(rules::BAD_OBJECT, chars as usize, "NdisAllocateTimerObject: bad characteristics");
            return NDIS_STATUS_INVALID_PARAMETER;
        }
        if crate::fault::should_fail(crate::fault::AllocSite::Timer, 0, c.AllocationTag) {
            return NDIS_STATUS_RESOURCES;
        }
        let h = mem::raw_alloc(Owner::Sim, POOL_FLAG_NON_PAGED, 64, c.AllocationTag) as usize;
        timers().insert(h, Timer { abi: caller_abi(), func: c.TimerFunction, context: c.FunctionContext as usize,
            due: None, period_ms: 0, set_context: c.FunctionContext as usize, freed: false });
        // SAFETY: valid out pointer.
        unsafe { *out = h as NDIS_HANDLE };
        NDIS_STATUS_SUCCESS
    }

    /// `NdisSetTimerObject`: IRQL <= DISPATCH_LEVEL; DueTime in 100 ns (negative = relative).
    /// Returns TRUE when the timer was already queued.
    fn NdisSetTimerObject(timer: NDIS_HANDLE, due: LARGE_INTEGER, period_ms: u32, ctx: PVOID) -> BOOLEAN {
        check_irql("NdisSetTimerObject", DISPATCH_LEVEL, timer as usize);
        let now = crate::clock::now_100ns();
        let mut m = timers();
        let Some(t) = m.get_mut(&(timer as usize)).filter(|t| !t.freed) else {
            drop(m);
            verifier::report(rules::TIMER_MISUSE, timer as usize, "NdisSetTimerObject on a timer that is not allocated");
            return FALSE;
        };
        let was = t.due.is_some();
        let at = if due < 0 { now + (-due) as u64 } else { (due as u64).max(now) };
        t.due = Some(at.max(now + 1));
        t.period_ms = period_ms;
        t.set_context = if ctx.is_null() { t.context } else { ctx as usize };
        was as BOOLEAN
    }

    /// `NdisCancelTimerObject`: IRQL <= DISPATCH_LEVEL; TRUE when it was queued.
    fn NdisCancelTimerObject(timer: NDIS_HANDLE) -> BOOLEAN {
        check_irql("NdisCancelTimerObject", DISPATCH_LEVEL, timer as usize);
        let mut m = timers();
        match m.get_mut(&(timer as usize)) {
            Some(t) if !t.freed => {
                let was = t.due.take().is_some();
                t.period_ms = 0;
                was as BOOLEAN
            }
            _ => {
                drop(m);
                verifier::report(rules::TIMER_MISUSE, timer as usize, "NdisCancelTimerObject on a timer that is not allocated");
                FALSE
            }
        }
    }

    /// `NdisFreeTimerObject`: PASSIVE_LEVEL; the timer must not be set.
    fn NdisFreeTimerObject(timer: NDIS_HANDLE) {
        check_irql("NdisFreeTimerObject", PASSIVE_LEVEL, timer as usize);
        let t = timers().remove(&(timer as usize));
        match t {
            Some(t) => {
                if t.due.is_some() {
                    verifier::report(rules::TIMER_MISUSE, timer as usize, "NdisFreeTimerObject on a timer that is still set");
                }
                mem::raw_free(timer as *mut u8);
            }
            None => verifier::report(rules::TIMER_MISUSE, timer as usize, "NdisFreeTimerObject on a timer that is not allocated"),
        }
    }
}
