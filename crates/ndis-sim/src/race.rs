//! Lifecycle, OIDs, status indications and timer DPCs racing the data path, as on a real machine.
//!
//! **Two modes** ([`Lifecycle`], chosen by [`crate::SimConfig::lifecycle`]; Concurrent by default):
//! - [`Lifecycle::Serialised`] (the original simulator): one reader/writer gate; every traffic operation
//!   holds it shared, every lifecycle step, OID, PnP event and clock advance of the harness holds it
//!   exclusively, so none of them ever overlaps a send, completion, indication or return.
//! - [`Lifecycle::Concurrent`]: no gate. Each adapter models the stack NDIS pauses and restarts
//!   (ndis-contract.md §3.2; learn.microsoft.com network/pausing-a-driver-stack and
//!   network/restarting-a-driver-stack, DOCUMENTED): to pause, NDIS pauses the protocol above (no new
//!   sends; its outstanding sends complete), then calls FilterPause while the miniport below still
//!   runs (receives, send completions and returns keep arriving on the other virtual CPUs while the
//!   module is Pausing), then pauses the miniport (no new indications; it waits for the indications in
//!   progress and for every indicated NBL to come back). To restart, the miniport runs first (receives
//!   arrive while the module is Restarting), then FilterRestart, then the protocol may send again.
//!   OIDs and status indications run whenever the module is attached (Paused, Restarting, Running,
//!   Pausing — network/filter-module-states-and-operations), concurrently with all of that; a detach
//!   waits for those in progress and admits no new ones. PnP events and the lifecycle calls are
//!   serialised with each other (NDIS starts no PnP operation while one is in progress), not with
//!   traffic. Timer DPCs fire on whichever thread advances the simulated clock, at DISPATCH_LEVEL.
//!
//! **Where the line is** (judging calls that raced a transition; learn.microsoft.com
//! network/pausing-a-filter-module and ddi nf-ndis-ndisfpausecomplete, DOCUMENTED: "After the driver
//! calls NdisFPauseComplete, the filter module is in the Paused state"; FilterPause: "after the filter
//! driver returns NDIS_STATUS_SUCCESS from FilterPause or calls NdisFPauseComplete, the pause operation
//! is complete"):
//! - The pause completes at one instant: the sim records it (state Paused, the adapter's *pause epoch*
//!   advanced) inside NdisFPauseComplete, or when FilterPause returns NDIS_STATUS_SUCCESS, under the
//!   stack lock.
//! - Every NDIS→filter data-path call (FilterSendNetBufferLists, FilterReceiveNetBufferLists,
//!   FilterSendNetBufferListsComplete, FilterReturnNetBufferLists) is *issued* at one instant too: when
//!   the sim claims it under the same lock (checking the module state for a new send or indication).
//!   Each NBL it carries is recorded with the pause epoch at issue and the issuing thread, until the
//!   callback returns.
//! - A filter that passes on (NdisFSendNetBufferLists / NdisFIndicateReceiveNetBufferLists) an NBL
//!   that NDIS issued to it *before* the pause completed, *unchanged*, after the pause completed, raced
//!   the transition legitimately: it may have entered its callback just before or just after the other
//!   CPU completed the pause and cannot tell; that hand-on is judged as if the module were still
//!   Pausing (FilterPause: "In the Pausing or Paused states ... the driver can pass on calls to its
//!   FilterReceiveNetBufferLists function"). An NBL that carries the filter's changes, an NBL the filter
//!   originated, or one issued after the pause completed is judged in the real state (Paused): the
//!   filter transformed or sent data after it told NDIS it had nothing outstanding, which no
//!   interleaving excuses (STATE_FORBIDS_SEND / STATE_FORBIDS_RECEIVE fire).
//! - PAUSE_WITH_OUTSTANDING does not count an NBL that is inside a data-path call still in progress on
//!   *another* thread and that carries no change of the filter: NDIS issued it, but the filter may not
//!   have entered its callback yet, so it cannot hold the pause open for it. Everything else counts as
//!   before (an NBL the filter changed, kept after its callback returned, or holds on the completing
//!   thread itself).
//!
//! **Deterministic interleaving** ([`crate::SimConfig::interleave_one_in`], deterministic mode only): one
//! host thread, and a schedule drawn from the seed decides where other CPUs' events land: between
//! traffic steps, while a lifecycle flow waits (a pause pending, a restart, an OID), and *inside*
//! driver calls at preemption points — the filter's hand-off calls (NdisFSendNetBufferLists,
//! NdisFIndicateReceiveNetBufferLists, NdisFSendNetBufferListsComplete, NdisFReturnNetBufferLists;
//! a driver should hold no spin lock of its own across them, as the ndislwf sample releases its lock
//! before each) and NdisReadConfiguration (called at PASSIVE_LEVEL, so no spin lock is held). There
//! the event runs on another virtual CPU ([`crate::kernel::on_other_cpu`]) before the routine
//! proceeds: a traffic step (indication, send completion, return), a status indication, a timer
//! tick, or — at a data-path hand-off, once the protocol has drained — the FilterPause call of a
//! pause that `Adapter::pause` armed instead of making it itself (if no preemption point takes it
//! within a few events, it is made at top level). The same seed makes the same calls in the same
//! order, so a race found once replays exactly; `finish` prints the seed with any finding.
//!
//! Owns: the mode, the gates, the claims and the judging over the per-adapter in-call records (the
//! records themselves are stack state, `stack::AdapterRace`), the schedule. A routine of layer 3:
//! the other CPUs' events it runs at preemption points and lifecycle waits are the flows' own
//! (`Events`, installed by `flows/` at [`crate::Sim::start`]); it never imports them.

use crate::fault::splitmix64;
use crate::kernel;
use crate::stack::{self, stack, AdapterRace, ModuleState};
use ndis_sys::*;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// How lifecycle calls, OIDs, PnP/status and clock advances relate to traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lifecycle {
    /// One gate: none of them ever overlaps a traffic operation (the original simulator; kept to
    /// show what it could not reach, `tests/race.rs`).
    Serialised,
    /// No gate: they run concurrently with traffic, as on a real machine (see the module docs).
    #[default]
    Concurrent,
}

static CONCURRENT: AtomicBool = AtomicBool::new(false);
static INTERLEAVE_ONE_IN: AtomicU32 = AtomicU32::new(0);
static SCHED_RNG: AtomicU64 = AtomicU64::new(0);

/// Traffic operations hold it shared; lifecycle steps hold it exclusively (serialised mode only).
static GATE: RwLock<()> = RwLock::new(());
/// Lifecycle flows and PnP events, with each other (concurrent mode).
static LIFECYCLE: Mutex<()> = Mutex::new(());

thread_local! {
    /// Nesting of injected events (at most one level).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Pause epoch of the data-path call this thread claimed last (its NBLs are marked with it).
    /// One entry per call this thread claimed and has not released (innermost last): an event
    /// injected or a clock tick run inside a call claims and releases its own without clobbering
    /// the outer call's.
    static ISSUE_EPOCH: std::cell::RefCell<Vec<(u64, u64)>> = const { std::cell::RefCell::new(Vec::new()) };
    static THREAD_ID: u64 = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
    /// Calls and OIDs/status this thread has claimed and not released.
    static OWN: Cell<usize> = const { Cell::new(0) };
}
static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

fn thread_id() -> u64 {
    THREAD_ID.with(|t| *t)
}

pub(crate) fn configure(mode: Lifecycle, interleave_one_in: u32, seed: u64) {
    CONCURRENT.store(mode == Lifecycle::Concurrent, Ordering::SeqCst);
    INTERLEAVE_ONE_IN.store(interleave_one_in, Ordering::SeqCst);
    SCHED_RNG.store(splitmix64(seed ^ 0x5C4E_D01E), Ordering::SeqCst);
    ARMED_PAUSE.lock().unwrap_or_else(|e| e.into_inner()).take();
}

/// Whether the simulation runs lifecycle concurrently with traffic.
pub fn concurrent() -> bool {
    CONCURRENT.load(Ordering::Relaxed)
}

/// Held by a traffic operation (serialised mode; `None` in concurrent mode).
pub(crate) fn gate_shared() -> Option<RwLockReadGuard<'static, ()>> {
    (!concurrent()).then(|| GATE.read().unwrap_or_else(|e| e.into_inner()))
}

/// Held by a lifecycle step, OID, PnP event or clock advance of the harness: the gate (serialised
/// mode), or the lifecycle lock when `lifecycle` (concurrent mode), or nothing.
pub(crate) enum Exclusive {
    Gate(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
    Lifecycle(#[allow(dead_code)] MutexGuard<'static, ()>),
    None,
}

pub(crate) fn exclusive(lifecycle: bool) -> Exclusive {
    if !concurrent() {
        Exclusive::Gate(GATE.write().unwrap_or_else(|e| e.into_inner()))
    } else if lifecycle {
        Exclusive::Lifecycle(LIFECYCLE.lock().unwrap_or_else(|e| e.into_inner()))
    } else {
        Exclusive::None
    }
}

fn with<R>(id: usize, f: impl FnOnce(&mut AdapterRace, ModuleState) -> R) -> R {
    let mut s = stack();
    let a = &mut s.adapters[id];
    let st = a.state;
    f(&mut a.race, st)
}

fn claimed(r: &mut AdapterRace) {
    r.calls += 1;
    OWN.with(|o| o.set(o.get() + 1));
    let e = (r.epoch, r.begun);
    ISSUE_EPOCH.with(|c| c.borrow_mut().push(e));
}

/// Claims a protocol send (concurrent mode: only while the protocol runs). Pair with [`release`].
pub(crate) fn claim_send(id: usize) -> bool {
    with(id, |r, st| {
        let ok = if concurrent() {
            r.proto_open && st == ModuleState::Running
        } else {
            st == ModuleState::Running
        };
        if ok {
            claimed(r);
            r.sending += 1;
        }
        ok
    })
}

/// Ends a claimed protocol send.
pub(crate) fn release_send(id: usize) {
    with(id, |r, _| r.sending = r.sending.saturating_sub(1));
    release(id);
}

/// Claims an OID or status indication of the harness (concurrent mode; `false` = not counted: the
/// serialised mode, or no module to reach). Waits while a detach is under way.
pub(crate) fn wait_claim_ctl(id: usize) -> bool {
    if !concurrent() {
        return false;
    }
    loop {
        if claim_ctl(id) {
            return true;
        }
        let idle = with(id, |r, st| {
            !r.detaching && matches!(st, ModuleState::Detached | ModuleState::Attaching)
        });
        if idle {
            return false;
        }
        std::thread::yield_now();
    }
}

/// Claims a miniport indication: the module is Restarting, Running or Pausing (receives are valid
/// there, network/filter-module-states-and-operations) and, in concurrent mode, the miniport runs.
pub(crate) fn claim_indicate(id: usize) -> bool {
    with(id, |r, st| {
        let ok = if concurrent() {
            r.mp_open
                && matches!(
                    st,
                    ModuleState::Restarting | ModuleState::Running | ModuleState::Pausing
                )
        } else {
            st == ModuleState::Running
        };
        if ok {
            claimed(r);
        }
        ok
    })
}

/// Claims a call for work just taken from a queue (completion, return). Call under the stack lock
/// that took it: `r` is that adapter's record.
pub(crate) fn claim_taken(r: &mut AdapterRace) {
    claimed(r);
}

/// Ends a claimed call.
pub(crate) fn release(id: usize) {
    with(id, |r, _| r.calls = r.calls.saturating_sub(1));
    OWN.with(|o| o.set(o.get().saturating_sub(1)));
    ISSUE_EPOCH.with(|c| {
        c.borrow_mut().pop();
    });
}

/// Claims an OID or status indication: the module is attached (not Attaching/Detached) and no
/// detach is under way. Bypassed (no module) calls need no claim. Pair with [`release_ctl`].
pub(crate) fn claim_ctl(id: usize) -> bool {
    with(id, |r, st| {
        let ok = !r.detaching && !matches!(st, ModuleState::Detached | ModuleState::Attaching);
        if ok {
            r.ctl += 1;
            OWN.with(|o| o.set(o.get() + 1));
        }
        ok
    })
}

pub(crate) fn release_ctl(id: usize) {
    with(id, |r, _| r.ctl = r.ctl.saturating_sub(1));
    OWN.with(|o| o.set(o.get().saturating_sub(1)));
}

/// Concurrent threaded mode: whether another thread has a call, OID or status indication in
/// progress. A lifecycle wait does not spend simulated time while it does (the timeouts judge what
/// the driver holds, not how the host schedules threads).
pub(crate) fn others_busy() -> bool {
    if !concurrent() || kernel::deterministic() {
        return false;
    }
    let total: usize = stack()
        .adapters
        .iter()
        .map(|a| a.race.calls + a.race.ctl)
        .sum();
    total > OWN.with(|o| o.get())
}

static CALL_SERIAL: AtomicU64 = AtomicU64::new(1);

/// Records the NBLs of a data-path call about to be issued to the filter; returns the call's serial
/// for [`unmark_in_call`].
pub(crate) fn mark_in_call(id: usize, list: &[*mut NET_BUFFER_LIST]) -> u64 {
    let t = thread_id();
    let cpu = kernel::current_cpu();
    let serial = CALL_SERIAL.fetch_add(1, Ordering::Relaxed);
    let issued = ISSUE_EPOCH.with(|c| c.borrow().last().copied());
    with(id, |r, _| {
        let (e, b) = issued.unwrap_or((r.epoch, r.begun));
        for &n in list {
            r.in_call.insert(n as usize, (e, t, cpu, serial, b));
        }
    });
    serial
}

/// The call `serial` carrying these NBLs returned (records of later calls at the same addresses
/// stay).
pub(crate) fn unmark_in_call(id: usize, list: &[*mut NET_BUFFER_LIST], serial: u64) {
    with(id, |r, _| {
        for &n in list {
            if r.in_call.get(&(n as usize)).is_some_and(|e| e.3 == serial) {
                r.in_call.remove(&(n as usize));
            }
        }
    });
}

/// The pause of adapter `id` completed now (NdisFPauseComplete, or FilterPause returned SUCCESS):
/// the module is Paused from this instant.
pub(crate) fn pause_completed(id: usize) {
    pause_completed_locked(&mut stack().adapters[id]);
}

/// [`pause_completed`] for an adapter record the caller holds under the stack lock.
pub(crate) fn pause_completed_locked(a: &mut stack::AdapterRec) {
    a.state = ModuleState::Paused;
    a.race.epoch += 1;
}

/// The state a filter's hand-on of `list` (not originated by it) is judged in: the real state,
/// except that NBLs NDIS issued to it before the pause completed and that carry no change of the
/// filter are judged as Pausing (the line of the module docs). `send`: a send from above (else a
/// receive from below).
pub(crate) fn judged_state(id: usize, list: &[*mut NET_BUFFER_LIST], send: bool) -> ModuleState {
    let (st, epoch, issued): (ModuleState, u64, Vec<Option<u64>>) = {
        let s = stack();
        let a = &s.adapters[id];
        (
            a.state,
            a.race.epoch,
            list.iter()
                .map(|&n| a.race.in_call.get(&(n as usize)).map(|e| e.0))
                .collect(),
        )
    };
    if st != ModuleState::Paused || list.is_empty() {
        return st;
    }
    let raced = issued.iter().all(|e| e.is_some_and(|e| e < epoch))
        && list
            .iter()
            .all(|&n| !stack::changed_since_handout(id, n as usize, send));
    if raced {
        ModuleState::Pausing
    } else {
        st
    }
}

/// Whether NDIS issued every NBL of `list` to the filter before the module's current pause's
/// FilterPause call returned: such a receive is not a *new* indication, since the filter may have
/// entered its callback while still Running, so passing it on while Pausing is no
/// RECEIVE_PASSED_WHILE_PAUSING
/// (learn.microsoft.com network/pausing-a-filter-module, DOCUMENTED: a Pausing filter "should
/// return new receive indications ... immediately"). NBLs in no NDIS call (kept by the filter
/// after its callback returned) count as not issued before.
pub(crate) fn issued_before_pause_began(id: usize, list: &[*mut NET_BUFFER_LIST]) -> bool {
    let s = stack();
    let a = &s.adapters[id];
    !list.is_empty()
        && (a.race.pause_in_call
            || list.iter().all(|&n| {
                a.race
                    .in_call
                    .get(&(n as usize))
                    .is_some_and(|e| e.4 < a.race.begun)
            }))
}

/// Where each NBL of a hand-on stands against the line (for a finding's detail): the pause epoch
/// it was issued in (or that it is in no NDIS call), the current epoch, and whether it carries the
/// filter's changes.
pub(crate) fn line_detail(id: usize, list: &[*mut NET_BUFFER_LIST], send: bool) -> String {
    let (epoch, issued): (u64, Vec<Option<(u64, u64)>>) = {
        let s = stack();
        let a = &s.adapters[id];
        (
            a.race.epoch,
            list.iter()
                .map(|&n| a.race.in_call.get(&(n as usize)).map(|e| (e.0, e.4)))
                .collect(),
        )
    };
    let begun = stack().adapters[id].race.begun;
    let each: Vec<String> = list
        .iter()
        .zip(issued)
        .map(|(&n, e)| {
            let changed = stack::changed_since_handout(id, n as usize, send);
            match e {
                Some((e, b)) => format!(
                    "issued in pause epoch {e} after {b} pause calls returned, changed {changed}"
                ),
                None => format!("in no NDIS call, changed {changed}"),
            }
        })
        .collect();
    format!(
        "pause epoch now {epoch}, {begun} pause calls returned; {}",
        each.join("; ")
    )
}

/// Whether `nbl` is inside a data-path call in progress on another CPU (another thread, or another
/// virtual CPU of an injected event); `r` is the adapter's record, read under the stack lock.
/// PAUSE_WITH_OUTSTANDING leaves such an NBL out when it carries no change of the filter.
pub(crate) fn in_call_elsewhere(r: &AdapterRace, nbl: usize) -> bool {
    r.in_call
        .get(&nbl)
        .is_some_and(|&(_, t, cpu, _, _)| t != thread_id() || cpu != kernel::current_cpu())
}

// ---------------------------------------------------------------------------------------------
// Deterministic interleaving

/// A pause whose FilterPause call waits for a preemption point (deterministic schedule).
static ARMED_PAUSE: Mutex<Option<usize>> = Mutex::new(None);
/// FilterPause calls made by the schedule: (adapter, status).
static FIRED_PAUSE: Mutex<Vec<(usize, NDIS_STATUS)>> = Mutex::new(Vec::new());

/// What the schedule runs as another CPU's work: the flows above install it ([`crate::flows`]), as
/// this module must not import them.
pub(crate) struct Events {
    /// One event of "another CPU" on an adapter, drawn from a number of the schedule: a miniport
    /// indication, send completions, protocol returns, a status indication or a clock tick.
    pub background: fn(usize, u64),
    /// The FilterPause call of a pause (returns FilterPause's status).
    pub pause_call: fn(usize) -> NDIS_STATUS,
}

static EVENTS: std::sync::OnceLock<Events> = std::sync::OnceLock::new();

/// Installs the schedule's events (once per process; always the same functions).
pub(crate) fn install_events(e: Events) {
    let _ = EVENTS.set(e);
}

fn events() -> &'static Events {
    EVENTS
        .get()
        .expect("Sim::start installs the schedule's events")
}

/// The next number of the schedule (deterministic: one thread draws them in program order).
pub(crate) fn next_random() -> u64 {
    let mut r = SCHED_RNG.load(Ordering::Relaxed);
    r = splitmix64(r);
    SCHED_RNG.store(r, Ordering::Relaxed);
    r
}

fn interleaving() -> bool {
    kernel::deterministic() && concurrent() && INTERLEAVE_ONE_IN.load(Ordering::Relaxed) != 0
}

fn nested() -> bool {
    DEPTH.with(|d| d.get()) != 0
}

/// A preemption point inside a driver call (`dispatch_safe`: the caller may be at DISPATCH_LEVEL and
/// is at a data-path hand-off, where an armed FilterPause may land; otherwise the caller is at
/// PASSIVE_LEVEL and only other CPUs' traffic may run). No-op outside the deterministic
/// interleaving, inside an injected event, or with one CPU.
pub(crate) fn preemption_point(site: &'static str, dispatch_safe: bool) {
    if !interleaving() || nested() || kernel::cpu_count() < 2 {
        return;
    }
    let one_in = INTERLEAVE_ONE_IN.load(Ordering::Relaxed) as u64;
    let r = next_random();
    if !r.is_multiple_of(one_in) {
        return;
    }
    let cpus = kernel::cpu_count();
    let here = kernel::current_cpu();
    let cpu = (here + 1 + ((r >> 8) as usize % (cpus - 1))) % cpus;
    let armed = if dispatch_safe {
        *ARMED_PAUSE.lock().unwrap_or_else(|e| e.into_inner())
    } else {
        None
    };
    DEPTH.with(|d| d.set(1));
    match armed {
        Some(id) if (r >> 16).is_multiple_of(2) => {
            ARMED_PAUSE.lock().unwrap_or_else(|e| e.into_inner()).take();
            crate::verifier::log(format!(
                "[sched] FilterPause (adapter {id}) on cpu{cpu} inside {site} on cpu{here}"
            ));
            let st = kernel::on_other_cpu(cpu, PASSIVE_LEVEL, || (events().pause_call)(id));
            FIRED_PAUSE
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((id, st));
        }
        _ => {
            let n = stack().adapters.len();
            if n > 0 {
                let id = (r >> 24) as usize % n;
                kernel::on_other_cpu(cpu, PASSIVE_LEVEL, || {
                    (events().background)(id, next_random())
                });
            }
        }
    }
    DEPTH.with(|d| d.set(0));
}

/// Schedule hook of the lifecycle waits (deterministic interleaving): runs a few other-CPU events
/// between two ticks of a wait.
pub(crate) fn wait_tick() {
    if !interleaving() || nested() {
        return;
    }
    let n = stack().adapters.len();
    if n == 0 {
        return;
    }
    let cpus = kernel::cpu_count();
    let home = kernel::current_cpu();
    let r = next_random();
    for k in 0..(r % 3) {
        let r = next_random();
        let cpu = (r >> 32) as usize % cpus;
        let id = (r >> 24) as usize % n;
        DEPTH.with(|d| d.set(1));
        if cpu == home {
            (events().background)(id, r);
        } else {
            kernel::on_other_cpu(cpu, PASSIVE_LEVEL, || (events().background)(id, r));
        }
        DEPTH.with(|d| d.set(0));
        let _ = k;
    }
}

/// Arms the FilterPause call of adapter `id` for the next data-path preemption point.
pub(crate) fn arm_pause(id: usize) {
    *ARMED_PAUSE.lock().unwrap_or_else(|e| e.into_inner()) = Some(id);
}

/// Disarms; returns the status of a FilterPause the schedule fired for `id`, if any.
pub(crate) fn take_fired_pause(id: usize) -> Option<NDIS_STATUS> {
    let mut a = ARMED_PAUSE.lock().unwrap_or_else(|e| e.into_inner());
    if *a == Some(id) {
        *a = None;
    }
    drop(a);
    let mut f = FIRED_PAUSE.lock().unwrap_or_else(|e| e.into_inner());
    let i = f.iter().position(|x| x.0 == id)?;
    Some(f.remove(i).1)
}

/// The FilterPause call of a pause under the deterministic interleaving: armed for the next
/// data-path preemption point, while other CPUs' events run at top level (up to a few), then made
/// here if none took it. `None` outside the interleaving (the caller calls FilterPause itself).
pub(crate) fn scheduled_pause(id: usize) -> Option<NDIS_STATUS> {
    if !interleaving() {
        return None;
    }
    arm_pause(id);
    let n = stack().adapters.len();
    let cpus = kernel::cpu_count();
    let home = kernel::current_cpu();
    let budget = next_random() % 12;
    for _ in 0..budget {
        if FIRED_PAUSE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|x| x.0 == id)
        {
            break;
        }
        let r = next_random();
        let cpu = (r >> 32) as usize % cpus;
        let other = (r >> 24) as usize % n;
        if cpu == home {
            (events().background)(other, r);
        } else {
            kernel::on_other_cpu(cpu, PASSIVE_LEVEL, || (events().background)(other, r));
        }
    }
    match take_fired_pause(id) {
        Some(st) => Some(st),
        None => {
            crate::verifier::log(format!("[sched] FilterPause (adapter {id}) at top level"));
            Some((events().pause_call)(id))
        }
    }
}
