//! The receive path: the miniport indicates (FilterReceiveNetBufferLists), the protocol receives
//! what the filter passes up and returns it (FilterReturnNetBufferLists), the miniport takes its
//! NBLs back.

use super::build::build_nbls;
use super::send::{break_restore, neighbor_header_round_trip, verify_seal};
use super::{checked, digest_add, link};
use crate::abi::Callback;
use crate::kernel::{self, current_irql};
use crate::nbl::{self, Creator, Dir, Holder};
use crate::stack::{stack, Frame, ModuleState, NblShape};
use crate::verifier::{self, rules};
use ndis_sys::*;

/// The miniport indicates a chain built from `shape` with `flags` (DISPATCH_LEVEL added from the
/// IRQL). Returns the NBL count.
pub(crate) fn miniport_indicate(id: usize, shape: &NblShape, flags: u32) -> usize {
    miniport_indicate_frames(id, shape, None, flags)
}

/// [`miniport_indicate`] with the NBs carrying `frames` (in order) when given.
pub(crate) fn miniport_indicate_frames(
    id: usize,
    shape: &NblShape,
    frames: Option<&[Vec<u8>]>,
    flags: u32,
) -> usize {
    let pool = stack().adapters[id].mp_pool;
    let (list, digest, nbs) = build_nbls(id, pool, Creator::Miniport(id), shape, pool, frames);
    let resources = flags & NDIS_RECEIVE_FLAGS_RESOURCES != 0;
    {
        let mut s = stack();
        let a = &mut s.adapters[id];
        for &n in &list {
            // SAFETY: fresh simulator NBL.
            a.mp_out.insert(n as usize, unsafe { nbl::snapshot(n) });
        }
        a.counters.mp_indicated_nbls += list.len() as u64;
        a.counters.mp_indicated_nbs += nbs;
        a.counters.mp_indicated_digest = a.counters.mp_indicated_digest.wrapping_add(digest);
    }
    let flags = flags
        | if current_irql() >= DISPATCH_LEVEL {
            NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL
        } else {
            0
        };
    let call = crate::race::mark_in_call(id, &list);
    for &n in &list {
        nbl::with_nbl(n, |r| {
            r.holder = Holder::Filter;
            r.since_ms = crate::clock::now_ms();
            r.timed_out = false;
            r.dir = Dir::Receive;
            r.resources = resources;
        });
    }
    let head = link(&list);
    let h = handler!(id, ReceiveNetBufferListsHandler);
    let in_stack = !matches!(
        stack().adapters[id].state,
        ModuleState::Detached | ModuleState::Attaching
    );
    match h {
        Some((f, abi, ctx)) if in_stack => {
            // SAFETY: the registered FilterReceiveNetBufferLists with its module context.
            checked("FilterReceiveNetBufferLists", || unsafe {
                f.invoke(abi, (ctx, head, 0u32, list.len() as u32, flags))
            });
        }
        _ => protocol_receive(id, head, list.len() as u32, flags),
    }
    crate::race::unmark_in_call(id, &list, call);
    if resources {
        // Ownership is back now: every NBL must be in the filter's hands, in the original order.
        let mut kept = false;
        for &n in &list {
            let held = nbl::nbl_record(n).map(|r| r.holder);
            if held != Some(Holder::Filter) {
                verifier::report(rules::RESOURCES_NBL_KEPT, n as usize,
                    format!("FilterReceiveNetBufferLists returned while a RESOURCES NBL is held by {held:?}"));
                kept = true;
            }
        }
        if kept {
            return list.len();
        }
        for (i, &n) in list.iter().enumerate() {
            // SAFETY: NBLs back in the miniport's hands.
            let next = unsafe { (*n).Next };
            let want = list.get(i + 1).copied().unwrap_or(std::ptr::null_mut());
            if next != want {
                verifier::report(
                    rules::NBL_NOT_RESTORED,
                    n as usize,
                    "RESOURCES indication: original NBL linked list not restored",
                );
            }
        }
        for &n in &list {
            miniport_take_back(id, n, "receive (RESOURCES) completion");
        }
    }
    list.len()
}

pub(crate) fn miniport_take_back(id: usize, n: *mut NET_BUFFER_LIST, context: &str) {
    let snap = stack().adapters[id].mp_out.remove(&(n as usize));
    let Some(snap) = snap else {
        verifier::report(
            rules::DOUBLE_RETURN,
            n as usize,
            "returned to the miniport but not outstanding",
        );
        return;
    };
    nbl::with_nbl(n, |r| {
        r.holder = Holder::Miniport;
        r.resources = false;
    });
    // SAFETY: the miniport's own NBL, back in its hands.
    unsafe { nbl::check_restored(context, n, &snap) };
    stack().adapters[id].counters.mp_returned_nbls += 1;
    // SAFETY: as above; nothing else references it now.
    unsafe { nbl::free_sim_nbl(n) };
}

/// The protocol receives a chain (from NdisFIndicateReceiveNetBufferLists or a bypassed stack).
pub(crate) fn protocol_receive(id: usize, head: *mut NET_BUFFER_LIST, count: u32, flags: u32) {
    // SAFETY: registered NBLs (checked by the caller).
    let list = unsafe { nbl::nbl_chain(head) };
    if list.len() as u32 != count {
        verifier::report(
            rules::RECEIVE_COUNT_MISMATCH,
            head as usize,
            format!("NumberOfNetBufferLists {count}, chain has {}", list.len()),
        );
    }
    let cpu = kernel::current_cpu();
    let neighbor = stack().adapters[id].cfg.neighbor_header_bytes;
    let mut frames = Vec::new();
    let mut originated = 0;
    for &n in &list {
        if nbl::nbl_record(n).is_some_and(|r| r.creator == Creator::Driver) {
            originated += 1;
        }
        // SAFETY: registered NBL held by the protocol; walks are bounded.
        unsafe {
            for nb in nbl::nbs_of(n) {
                nbl::check_nb_consistent("receive reaching the protocol", nb);
                neighbor_header_round_trip(nb, neighbor);
                let bytes = nbl::nb_frame(nb).unwrap_or_default();
                let mac_contiguous =
                    crate::wire::head_contiguous(nb, crate::wire::mac_header_len(&bytes));
                frames.push(Frame {
                    bytes,
                    ieee8021q: (*n).NetBufferListInfo[info::Ieee8021QNetBufferListInfo] as usize,
                    mac_contiguous,
                    offload: crate::wire::OFFLOAD_INFO_SLOTS
                        .map(|i| (*n).NetBufferListInfo[i] as usize),
                    cpu,
                });
            }
        }
    }
    let inline = {
        let mut s = stack();
        let a = &mut s.adapters[id];
        a.counters.receive_flags_seen |= flags;
        a.counters.proto_received_nbls += list.len() as u64;
        a.counters.proto_received_nbs += frames.len() as u64;
        a.counters.filter_originated_receives += originated;
        for f in &frames {
            a.counters.proto_received_digest =
                digest_add(a.counters.proto_received_digest, &f.bytes);
        }
        let room = a.cfg.capture_limit.saturating_sub(a.proto_rx.len());
        a.proto_rx.extend(frames.into_iter().take(room));
        a.cfg.return_inline
    };
    if flags & NDIS_RECEIVE_FLAGS_RESOURCES != 0 {
        for &n in &list {
            verify_seal(n, "held by the protocol (RESOURCES receive)");
            nbl::with_nbl(n, |r| {
                r.seal = None;
                r.holder = Holder::Filter;
                r.since_ms = crate::clock::now_ms();
                r.timed_out = false;
            });
        }
        return;
    }
    if inline {
        protocol_return(id, list.iter().map(|&n| n as usize).collect());
    } else {
        stack().adapters[id]
            .proto_held
            .extend(list.iter().map(|&n| n as usize));
    }
}

/// The protocol returns receives it held (at the caller's IRQL).
pub(crate) fn protocol_return(id: usize, nbls: Vec<usize>) {
    if nbls.is_empty() {
        return;
    }
    let all: Vec<*mut NET_BUFFER_LIST> = nbls.iter().map(|&a| a as *mut NET_BUFFER_LIST).collect();
    let call = crate::race::mark_in_call(id, &all);
    let mut list = Vec::new();
    for &a in &nbls {
        let n = a as *mut NET_BUFFER_LIST;
        verify_seal(n, "held by the protocol (receive)");
        break_restore(id, n, false);
        nbl::with_nbl(n, |r| {
            r.seal = None;
            r.holder = Holder::Filter;
            r.since_ms = crate::clock::now_ms();
            r.timed_out = false;
        });
        list.push(n);
    }
    stack().adapters[id].counters.proto_returned_nbls += list.len() as u64;
    let flags = if current_irql() >= DISPATCH_LEVEL {
        NDIS_RETURN_FLAGS_DISPATCH_LEVEL
    } else {
        0
    };
    let h = handler!(id, ReturnNetBufferListsHandler);
    match h {
        Some((f, abi, ctx)) => {
            let head = link(&list);
            // SAFETY: the registered FilterReturnNetBufferLists with its module context.
            checked("FilterReturnNetBufferLists", || unsafe {
                f.invoke(abi, (ctx, head, flags))
            });
        }
        None => {
            for n in list {
                if nbl::nbl_record(n).is_some_and(|r| r.creator == Creator::Driver) {
                    verifier::report(
                        rules::BAD_OBJECT,
                        n as usize,
                        "the filter indicated its own NBL without a ReturnNetBufferLists handler",
                    );
                } else {
                    miniport_take_back(id, n, "receive return");
                }
            }
        }
    }
    crate::race::unmark_in_call(id, &all, call);
}

/// The protocol returns up to `n` held receives at the caller's IRQL.
pub(crate) fn return_some(id: usize, n: usize) -> usize {
    let rets: Vec<usize> = {
        let mut s = stack();
        let a = &mut s.adapters[id];
        let k = a.proto_held.len().min(n);
        if k != 0 {
            crate::race::claim_taken(&mut a.race);
        }
        a.proto_held.drain(..k).collect()
    };
    let k = rets.len();
    protocol_return(id, rets);
    if k != 0 {
        crate::race::release(id);
    }
    k
}
