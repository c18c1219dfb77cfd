//! What is outstanding: the NBLs a module still holds or changed, judged at a pause
//! (PAUSE_WITH_OUTSTANDING), at detach, and against the simulated timeouts as the clock advances
//! (TIMEOUT_SEND / TIMEOUT_RECEIVE).
//!
//! A routine of layer 3, reading the stack's state, the NBL registry and [`crate::race`]'s
//! in-call records; it changes nothing but the NBL records' timed-out marks.

use crate::nbl::{self, Creator, Holder};
use crate::stack::stack;
use crate::verifier::{self, rules};
use ndis_sys::*;

/// NBLs in flight through the module of adapter `id` that a pause must not leave behind.
pub(crate) fn outstanding(id: usize) -> Vec<(usize, String)> {
    let mut v = Vec::new();
    for (addr, r) in nbl::all_nbls() {
        let mine = match r.creator {
            Creator::Driver => r.adapter == id && r.holder != Holder::Filter,
            Creator::Protocol(a) => {
                a == id && r.holder != Holder::Creator && r.holder != Holder::Protocol
            }
            Creator::Miniport(a) => a == id && r.holder == Holder::Filter && !r.resources,
        };
        if mine {
            v.push((
                addr,
                format!("{:?} NBL held by {:?} ({:?})", r.creator, r.holder, r.dir),
            ));
        }
    }
    v
}

/// What a pause must not leave behind on adapter `id`: the filter's own NBLs not back in its hands;
/// sends from above or receives from below held by the filter (non-RESOURCES); and NBLs the filter
/// handed on (a protocol send the miniport holds, a miniport receive the protocol holds) that still
/// carry the filter's changes (NBL context, NB list, MDL chain, offsets or OOB info differ from what
/// their owner handed out): the filter could only undo those in a callback after it said Paused.
/// Unchanged pass-through NBLs below/above are NDIS's concern, not the filter's.
pub fn pause_outstanding(id: usize) -> Vec<(usize, String)> {
    let mut v = Vec::new();
    for (addr, _) in nbl::all_nbls() {
        // Judged with the in-call records and the queues frozen (stack lock, then the NBL
        // registry): other CPUs move NBLs on meanwhile, and a call marks its NBLs before the filter
        // holds them. An NBL is read only when nobody else can be changing or freeing it: in a call
        // on this CPU, or queued at the miniport / held by the protocol. One inside a call in
        // progress on another CPU is left to be judged when that call hands it on (race.rs).
        let s = stack();
        let Some(a) = s.adapters.get(id) else { break };
        let Some(r) = nbl::nbl_record(addr as *const NET_BUFFER_LIST) else {
            continue;
        };
        let elsewhere = crate::race::in_call_elsewhere(&a.race, addr);
        let readable = !elsewhere
            && (a.race.in_call.contains_key(&addr)
                || a.mp_pending.contains(&addr)
                || a.proto_held.contains(&addr));
        let changed = |send: bool| {
            let snap = if send {
                a.sent.get(&addr)
            } else {
                a.mp_out.get(&addr)
            };
            // SAFETY: a registered simulator NBL its owner has not freed, that no other CPU is
            // changing (`readable`, under the stack lock that every hand-off and free takes).
            readable
                && snap.is_some_and(|snap| unsafe {
                    nbl::carries_changes(addr as *const NET_BUFFER_LIST, snap)
                })
        };
        let mine = match r.creator {
            Creator::Driver => r.adapter == id && r.holder != Holder::Filter,
            Creator::Protocol(a) if a == id => match r.holder {
                Holder::Filter => !elsewhere,
                Holder::Miniport => changed(true),
                _ => false,
            },
            Creator::Miniport(a) if a == id => match r.holder {
                Holder::Filter => !r.resources && !elsewhere,
                Holder::Protocol => !r.resources && changed(false),
                _ => false,
            },
            _ => false,
        };
        drop(s);
        if mine {
            v.push((
                addr,
                format!("{:?} NBL held by {:?} ({:?})", r.creator, r.holder, r.dir),
            ));
        }
    }
    v
}

pub(crate) fn check_held_timeouts(now_ms: u64) {
    let limits: Vec<u64> = stack()
        .adapters
        .iter()
        .map(|a| a.cfg.timeout_ticks as u64 * 10)
        .collect();
    let mut late = Vec::new();
    for (addr, _) in nbl::all_nbls() {
        // The record as it is now, with the in-call records frozen (other CPUs move NBLs on).
        let (r, in_call) = {
            let s = stack();
            let r = nbl::nbl_record(addr as *const NET_BUFFER_LIST);
            let in_call = r.as_ref().is_some_and(|r| {
                let id = match r.creator {
                    Creator::Protocol(a) | Creator::Miniport(a) => a,
                    Creator::Driver => r.adapter,
                };
                s.adapters
                    .get(id)
                    .is_some_and(|a| a.race.in_call.contains_key(&addr))
            });
            (r, in_call)
        };
        let Some(r) = r else { continue };
        if r.holder != Holder::Filter || r.timed_out {
            continue;
        }
        let (id, rule) = match r.creator {
            Creator::Protocol(a) => (a, rules::TIMEOUT_SEND),
            Creator::Miniport(a) if !r.resources => (a, rules::TIMEOUT_RECEIVE),
            _ => continue,
        };
        // Concurrent mode: an NBL inside a call still in progress on another thread is being
        // handled, not kept; the host may simply not have scheduled that thread while others
        // advanced the clock (a callback that never returns is not this rule's to judge).
        if crate::race::concurrent() && in_call {
            continue;
        }
        if let Some(&limit) = limits.get(id) {
            if now_ms.saturating_sub(r.since_ms) > limit {
                late.push((addr, rule, now_ms - r.since_ms));
            }
        }
    }
    for (addr, rule, held) in late {
        nbl::with_nbl(addr as *const NET_BUFFER_LIST, |r| r.timed_out = true);
        verifier::report(
            rule,
            addr,
            format!("held by the filter for {held} ms of simulated time"),
        );
    }
}
