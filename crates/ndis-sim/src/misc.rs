//! The simulated clock, NDIS timer objects, and configuration (NdisOpenConfigurationEx /
//! NdisReadConfiguration over a per-module key/value map).
//!
//! Timers fire only when the clock advances (the pump, the runners, or [`crate::SimGuard::advance_clock`]),
//! at DISPATCH_LEVEL on the advancing thread's CPU, through the convention they were registered with.

use crate::abi::{caller_abi, Abi, Callback};
use crate::kernel::{self, check_irql};
use crate::mem::{self, Owner};
use crate::stack::{self, stack, ConfigValue};
use crate::verifier::{self, rules};
use ndis_sys::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

/// Simulated time in 100 ns units.
static CLOCK: AtomicU64 = AtomicU64::new(0);
/// Timer DPCs taken due (queued) and not yet returned, on any thread (KeFlushQueuedDpcs waits for
/// them).
static DPCS_IN_FLIGHT: AtomicU64 = AtomicU64::new(0);

/// `KeFlushQueuedDpcs`'s wait: returns once every timer DPC queued or running on another thread when
/// it was called has returned (they run on the threads that advance the clock; in the deterministic
/// mode nothing else runs meanwhile).
pub(crate) fn flush_queued_dpcs() {
    if crate::kernel::deterministic() {
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

#[derive(Default)]
struct Misc {
    timers: HashMap<usize, Timer>,
    configs: HashMap<usize, ConfigHandle>,
    driver_config: BTreeMap<String, ConfigValue>,
}

struct ConfigHandle {
    values: BTreeMap<String, ConfigValue>,
    /// Parameters and string buffers handed out, freed at close.
    blocks: Vec<usize>,
}

static MISC: LazyLock<Mutex<Misc>> = LazyLock::new(|| Mutex::new(Misc::default()));

fn misc() -> std::sync::MutexGuard<'static, Misc> {
    MISC.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn reset() {
    CLOCK.store(0, Ordering::SeqCst);
    crate::config_reads::reset();
    DPCS_IN_FLIGHT.store(0, Ordering::SeqCst);
    *misc() = Misc::default();
}

/// Current simulated time in milliseconds.
pub fn now_ms() -> u64 {
    CLOCK.load(Ordering::SeqCst) / 10_000
}

pub(crate) fn set_driver_config(key: &str, v: ConfigValue) {
    misc().driver_config.insert(key.to_ascii_lowercase(), v);
}

/// Advances the clock and fires due timers; returns how many fired.
pub(crate) fn advance_clock_ms(ms: u64) -> usize {
    let now = CLOCK.fetch_add(ms * 10_000, Ordering::SeqCst) + ms * 10_000;
    let mut fired = 0;
    loop {
        let due: Option<(usize, Timer)> = {
            let mut m = misc();
            let hit = m
                .timers
                .iter()
                .find(|(_, t)| !t.freed && t.due.is_some_and(|d| d <= now))
                .map(|(h, t)| (*h, t.clone()));
            if let Some((h, t)) = &hit {
                DPCS_IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
                let e = m.timers.get_mut(h).expect("present");
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
            kernel::at_irql(DISPATCH_LEVEL, || {
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
                if kernel::current_irql() != DISPATCH_LEVEL {
                    verifier::report(
                        rules::IRQL_NOT_RESTORED,
                        h,
                        "timer function returned at another IRQL",
                    );
                    kernel::set_irql(DISPATCH_LEVEL);
                }
            });
        }
        DPCS_IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        fired += 1;
        if fired > 10_000 {
            break;
        }
    }
    stack::check_held_timeouts(now / 10_000);
    fired
}

/// Timer objects and configuration handles the driver still holds: (handle, what).
pub(crate) fn driver_leftovers() -> Vec<(usize, &'static str)> {
    let m = misc();
    let mut v: Vec<(usize, &'static str)> = m
        .timers
        .iter()
        .filter(|(_, t)| !t.freed)
        .map(|(h, _)| (*h, "timer object not freed"))
        .collect();
    v.extend(
        m.configs
            .keys()
            .map(|h| (*h, "configuration handle not closed")),
    );
    v
}

/// Frees every timer/config block (end of a simulation).
pub(crate) fn free_all() {
    let mut m = misc();
    for (h, _) in m.timers.drain() {
        mem::raw_free(h as *mut u8);
    }
    for (h, c) in m.configs.drain() {
        for b in c.blocks {
            mem::raw_free(b as *mut u8);
        }
        mem::raw_free(h as *mut u8);
    }
}

fn utf16_to_string(s: *const NDIS_STRING) -> Option<String> {
    if s.is_null() {
        return None;
    }
    // SAFETY: the driver passes a valid NDIS_STRING whose Buffer holds Length bytes.
    unsafe {
        let s = &*s;
        if s.Buffer.is_null() {
            return Some(String::new());
        }
        let units = std::slice::from_raw_parts(s.Buffer, s.Length as usize / 2);
        Some(String::from_utf16_lossy(units))
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
        misc().timers.insert(h, Timer { abi: caller_abi(), func: c.TimerFunction, context: c.FunctionContext as usize,
            due: None, period_ms: 0, set_context: c.FunctionContext as usize, freed: false });
        // SAFETY: valid out pointer.
        unsafe { *out = h as NDIS_HANDLE };
        NDIS_STATUS_SUCCESS
    }

    /// `NdisSetTimerObject`: IRQL <= DISPATCH_LEVEL; DueTime in 100 ns (negative = relative).
    /// Returns TRUE when the timer was already queued.
    fn NdisSetTimerObject(timer: NDIS_HANDLE, due: LARGE_INTEGER, period_ms: u32, ctx: PVOID) -> BOOLEAN {
        check_irql("NdisSetTimerObject", DISPATCH_LEVEL, timer as usize);
        let now = CLOCK.load(Ordering::SeqCst);
        let mut m = misc();
        let Some(t) = m.timers.get_mut(&(timer as usize)).filter(|t| !t.freed) else {
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
        let mut m = misc();
        match m.timers.get_mut(&(timer as usize)) {
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
        let t = misc().timers.remove(&(timer as usize));
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

    /// `NdisOpenConfigurationEx`: PASSIVE_LEVEL. NdisHandle is a filter module handle (its map) or
    /// the filter driver handle (the driver's map).
    fn NdisOpenConfigurationEx(obj: *mut NDIS_CONFIGURATION_OBJECT, out: *mut NDIS_HANDLE) -> NDIS_STATUS {
        check_irql("NdisOpenConfigurationEx", PASSIVE_LEVEL, obj as usize);
        if obj.is_null() || out.is_null() {
            return NDIS_STATUS_INVALID_PARAMETER;
        }
        // SAFETY: the driver passes a valid configuration object.
        let o = unsafe { &*obj };
        if o.Header.Type != NDIS_OBJECT_TYPE_CONFIGURATION_OBJECT || o.Header.Size < NDIS_SIZEOF_CONFIGURATION_OBJECT_REVISION_1 {
            verifier::report(rules::BAD_OBJECT, obj as usize, "NdisOpenConfigurationEx: bad NDIS_OBJECT_HEADER");
            return NDIS_STATUS_INVALID_PARAMETER;
        }
        let values = if let Some(id) = stack::adapter_of_any(o.NdisHandle) {
            stack().adapters[id].config.clone()
        } else if stack::driver_handle() == Some(o.NdisHandle as usize) {
            misc().driver_config.clone()
        } else {
            verifier::report(rules::BAD_HANDLE, o.NdisHandle as usize, "NdisOpenConfigurationEx: NdisHandle is neither a filter module nor the driver handle");
            return NDIS_STATUS_INVALID_PARAMETER;
        };
        if crate::fault::should_fail(crate::fault::AllocSite::Config, 0, 0) {
            return NDIS_STATUS_RESOURCES;
        }
        let h = mem::raw_alloc(Owner::Sim, POOL_FLAG_PAGED, 64, mem::SIM_TAG) as usize;
        misc().configs.insert(h, ConfigHandle { values, blocks: Vec::new() });
        // SAFETY: valid out pointer.
        unsafe { *out = h as NDIS_HANDLE };
        NDIS_STATUS_SUCCESS
    }

    /// `NdisReadConfiguration`: PASSIVE_LEVEL. The value is converted as [`crate::config_reads`]
    /// documents (either documented reading, per simulation); the parameter stays valid until
    /// NdisCloseConfiguration.
    fn NdisReadConfiguration(status: *mut NDIS_STATUS, value: *mut *mut NDIS_CONFIGURATION_PARAMETER,
        handle: NDIS_HANDLE, keyword: *mut NDIS_STRING, ty: u32) {
        check_irql("NdisReadConfiguration", PASSIVE_LEVEL, handle as usize);
        // PASSIVE_LEVEL: the caller holds no spin lock; other CPUs' traffic may run here.
        crate::race::preemption_point("NdisReadConfiguration", false);
        if status.is_null() || value.is_null() {
            verifier::report(rules::BAD_OBJECT, handle as usize, "NdisReadConfiguration: NULL out pointer");
            return;
        }
        let key = utf16_to_string(keyword).unwrap_or_default().to_ascii_lowercase();
        let found = {
            let m = misc();
            match m.configs.get(&(handle as usize)) {
                None => None.ok_or(true),
                Some(c) => c.values.get(&key).cloned().ok_or(false),
            }
        };
        let v = match found {
            Err(bad) => {
                if bad {
                    verifier::report(rules::BAD_HANDLE, handle as usize, "NdisReadConfiguration: not an open configuration handle");
                }
                // SAFETY: valid out pointers (checked).
                unsafe { *status = NDIS_STATUS_FAILURE; *value = std::ptr::null_mut(); }
                return;
            }
            Ok(v) => v,
        };
        let p = mem::raw_alloc(Owner::Sim, POOL_FLAG_PAGED, std::mem::size_of::<NDIS_CONFIGURATION_PARAMETER>(), mem::SIM_TAG) as *mut NDIS_CONFIGURATION_PARAMETER;
        let mut blocks = vec![p as usize];
        let ok = match crate::config_reads::convert(&v, ty) {
            crate::config_reads::Converted::Integer(t, i) => {
                // SAFETY: fresh parameter block.
                unsafe { (*p).ParameterType = t; (*p).ParameterData.IntegerData = i; }
                true
            }
            crate::config_reads::Converted::String(units) => {
                let buf = mem::raw_alloc(Owner::Sim, POOL_FLAG_PAGED, units.len() * 2 + 2, mem::SIM_TAG) as *mut u16;
                blocks.push(buf as usize);
                // SAFETY: fresh blocks sized for the string (plus a NUL) and the parameter.
                unsafe {
                    std::ptr::copy_nonoverlapping(units.as_ptr(), buf, units.len());
                    (*p).ParameterType = NdisParameterString;
                    (*p).ParameterData.StringData = NDIS_STRING { Length: (units.len() * 2) as u16, MaximumLength: (units.len() * 2 + 2) as u16, Buffer: buf };
                }
                true
            }
            crate::config_reads::Converted::Failure => false,
        };
        if let Some(c) = misc().configs.get_mut(&(handle as usize)) {
            c.blocks.extend(blocks);
        }
        // SAFETY: valid out pointers (checked).
        unsafe {
            *status = if ok { NDIS_STATUS_SUCCESS } else { NDIS_STATUS_FAILURE };
            *value = if ok { p } else { std::ptr::null_mut() };
        }
    }

    /// `NdisCloseConfiguration`: PASSIVE_LEVEL; frees every parameter read through the handle.
    fn NdisCloseConfiguration(handle: NDIS_HANDLE) {
        check_irql("NdisCloseConfiguration", PASSIVE_LEVEL, handle as usize);
        let c = misc().configs.remove(&(handle as usize));
        match c {
            Some(c) => {
                for b in c.blocks {
                    mem::raw_free(b as *mut u8);
                }
                mem::raw_free(handle as *mut u8);
            }
            None => verifier::report(rules::BAD_HANDLE, handle as usize, "NdisCloseConfiguration: not an open configuration handle"),
        }
    }
}
