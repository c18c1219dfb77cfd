//! The background work of "the rest of the machine": the miniport completing queued sends, the
//! protocol returning held receives, pended OIDs completing, and the clock advancing (timers fire,
//! held NBLs are judged against their timeouts); and the waits of the lifecycle flows.

use super::receive::protocol_return;
use super::send::complete_sends;
use crate::fault::splitmix64;
use crate::kernel;
use crate::stack::stack;
use crate::verifier;
use ndis_sys::*;

/// Completes pending sends, returns held receives and completes pended OIDs, at DISPATCH_LEVEL for
/// the data path. `max` bounds each kind; `rng` (when given) shuffles the completion order.
pub(crate) fn pump(id: usize, max: usize, rng: Option<&mut u64>) -> usize {
    let (mut sends, rets, oids) = {
        let mut s = stack();
        let a = &mut s.adapters[id];
        let ns = a.mp_pending.len().min(max);
        let sends: Vec<usize> = a.mp_pending.drain(..ns).collect();
        let nr = a.proto_held.len().min(max);
        let rets: Vec<usize> = a.proto_held.drain(..nr).collect();
        let no = a.mp_oids.len().min(max);
        let oids: Vec<usize> = a.mp_oids.drain(..no).collect();
        if !sends.is_empty() || !rets.is_empty() {
            crate::race::claim_taken(&mut a.race);
        }
        (sends, rets, oids)
    };
    let claimed = !sends.is_empty() || !rets.is_empty();
    if let Some(r) = rng {
        for i in (1..sends.len()).rev() {
            *r = splitmix64(*r);
            sends.swap(i, (*r % (i as u64 + 1)) as usize);
        }
    }
    let work = sends.len() + rets.len() + oids.len();
    kernel::at_irql(DISPATCH_LEVEL, || {
        complete_sends(id, sends);
        protocol_return(id, rets);
    });
    if claimed {
        crate::race::release(id);
    }
    for req in oids {
        crate::ndisf::miniport_complete_oid(id, req);
    }
    work
}

/// One tick of background work on every adapter, plus due timers and the clock.
pub(crate) fn tick_all() -> usize {
    let n = stack().adapters.len();
    let mut work = 0;
    for id in 0..n {
        work += pump(id, usize::MAX, None);
    }
    work += advance_clock_ms(10);
    work
}

/// Pumps until `done()` or the adapter's timeout; reports `rule` on timeout. Returns done().
pub(crate) fn wait_until(
    id: usize,
    rule: &'static str,
    what: &str,
    mut done: impl FnMut() -> bool,
) -> bool {
    let ticks = stack().adapters[id].cfg.timeout_ticks;
    let started = std::time::Instant::now();
    let mut used = 0;
    while used <= ticks {
        if done() {
            return true;
        }
        if crate::race::others_busy() && started.elapsed() < std::time::Duration::from_secs(120) {
            // Another CPU is inside a call: wait for it without spending simulated time.
            std::thread::yield_now();
            continue;
        }
        crate::race::wait_tick();
        tick_all();
        used += 1;
    }
    if done() {
        return true;
    }
    verifier::report(
        rule,
        id,
        format!("{what} did not complete within {ticks} simulated ticks of 10 ms"),
    );
    false
}

/// NdisFilterTimedDataSend / NdisFilterTimedDataReceive: a send from above or a receive from below
/// that stays in the filter's hands longer than the adapter's timeout.
/// Advances the simulated clock, fires the timers then due, then judges the NBLs held past their
/// timeout; returns how many timers fired. (The clock itself only counts time.)
pub(crate) fn advance_clock_ms(ms: u64) -> usize {
    let now = crate::clock::advance_ms(ms);
    let fired = crate::timers::fire_due(now);
    crate::outstanding::check_held_timeouts(now / 10_000);
    fired
}
