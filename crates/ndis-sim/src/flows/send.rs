//! The send path: the protocol sends (FilterSendNetBufferLists), the miniport takes what the filter
//! passes down and completes it (FilterSendNetBufferListsComplete), the protocol gets its NBLs back.

use super::build::build_nbls;
use super::{checked, digest_add, link};
use crate::abi::Callback;
use crate::fault::splitmix64;
use crate::kernel::{self, current_irql};
use crate::mem::{self};
use crate::nbl::{self, Creator, Dir, Holder};
use crate::stack::{stack, top_backfill, Frame, ModuleState, NblShape};
use crate::verifier::{self, rules};
use ndis_sys::*;

/// The protocol sends a chain built from `shape` at the caller's IRQL. Returns the NBL count.
pub(crate) fn protocol_send(id: usize, shape: &NblShape, extra_flags: u32) -> usize {
    protocol_send_frames(id, shape, None, extra_flags)
}

/// [`protocol_send`] with the NBs carrying `frames` (in order) when given.
pub(crate) fn protocol_send_frames(
    id: usize,
    shape: &NblShape,
    frames: Option<&[Vec<u8>]>,
    extra_flags: u32,
) -> usize {
    let (pool, src) = {
        let s = stack();
        (s.adapters[id].proto_pool, s.adapters[id].proto_pool)
    };
    // The protocol leaves the DataBackFillSize the stack below asked for in front of each frame.
    let honour = stack().adapters[id].cfg.protocol_honours_data_backfill;
    let shape = &NblShape {
        data_offset: shape.data_offset + if honour { top_backfill(id).0 } else { 0 },
        ..shape.clone()
    };
    let (list, digest, nbs) = build_nbls(id, pool, Creator::Protocol(id), shape, src, frames);
    {
        let mut s = stack();
        let a = &mut s.adapters[id];
        for &n in &list {
            // SAFETY: fresh simulator NBL.
            a.sent.insert(n as usize, unsafe { nbl::snapshot(n) });
        }
        a.counters.proto_sent_nbls += list.len() as u64;
        a.counters.proto_sent_nbs += nbs;
        a.counters.proto_sent_digest = a.counters.proto_sent_digest.wrapping_add(digest);
    }
    let flags = extra_flags
        | if current_irql() >= DISPATCH_LEVEL {
            NDIS_SEND_FLAGS_DISPATCH_LEVEL
        } else {
            0
        };
    let h = handler!(id, SendNetBufferListsHandler);
    let in_stack = {
        let s = stack();
        !matches!(
            s.adapters[id].state,
            ModuleState::Detached | ModuleState::Attaching
        )
    };
    // In a call from here on (before the filter holds them: race.rs, where the line is).
    let call = crate::race::mark_in_call(id, &list);
    for &n in &list {
        nbl::with_nbl(n, |r| {
            r.holder = Holder::Filter;
            r.since_ms = crate::clock::now_ms();
            r.timed_out = false;
            r.dir = Dir::Send;
        });
    }
    let head = link(&list);
    match h {
        Some((f, abi, ctx)) if in_stack => {
            // SAFETY: the registered FilterSendNetBufferLists with its module context.
            checked("FilterSendNetBufferLists", || unsafe {
                f.invoke(abi, (ctx, head, 0u32, flags))
            });
        }
        _ => miniport_accept(id, head, flags),
    }
    crate::race::unmark_in_call(id, &list, call);
    list.len()
}

/// What [`AdapterConfig::neighbor_header_bytes`] makes a neighbouring driver do to one NB it holds.
///
/// # Safety
/// `nb` must be a valid NB the caller (the simulated neighbour) owns.
pub(super) unsafe fn neighbor_header_round_trip(nb: *mut NET_BUFFER, bytes: u32) {
    if bytes == 0 {
        return;
    }
    // SAFETY: the caller owns the NB; NDIS's default allocator and free routine, as such drivers use.
    unsafe {
        if ndis_sys::NdisRetreatNetBufferDataStart(nb, bytes, 0, None) == NDIS_STATUS_SUCCESS {
            ndis_sys::NdisAdvanceNetBufferDataStart(nb, bytes, TRUE, None);
        }
    }
}

/// The miniport takes a send chain (from NdisFSendNetBufferLists or a bypassed stack).
pub(crate) fn miniport_accept(id: usize, head: *mut NET_BUFFER_LIST, flags: u32) {
    // SAFETY: a chain of registered NBLs (checked by the caller).
    let list = unsafe { nbl::nbl_chain(head) };
    let cpu = kernel::current_cpu();
    let neighbor = stack().adapters[id].cfg.neighbor_header_bytes;
    let mut frames = Vec::new();
    let mut originated = 0;
    for &n in &list {
        let rec = nbl::nbl_record(n);
        if rec.as_ref().is_some_and(|r| r.creator == Creator::Driver) {
            originated += 1;
        }
        // SAFETY: a registered NBL handed to the miniport; walks are bounded.
        unsafe {
            let (sent, nic, mtu) = {
                let s = stack();
                let a = &s.adapters[id];
                (
                    a.sent.get(&(n as usize)).cloned(),
                    a.cfg.nic_offload,
                    a.cfg.mtu_size,
                )
            };
            let infos = crate::wire::OFFLOAD_INFO_SLOTS.map(|i| (*n).NetBufferListInfo[i] as usize);
            for (i, nb) in nbl::nbs_of(n).into_iter().enumerate() {
                if nbl::check_nb_consistent("send reaching the miniport", nb) {
                    crate::wire::judge_nb(i, nb, sent.as_ref());
                    if let Some(f) = nbl::nb_frame(nb) {
                        crate::wire::judge_offload(nb as usize, &f, infos, &nic, mtu);
                    }
                }
                neighbor_header_round_trip(nb, neighbor);
                let mut m = (*nb).MdlChain;
                let mut hops = 0;
                while !m.is_null() && hops < nbl::MAX_CHAIN {
                    mem::check_mdl_nonpaged("send reaching the miniport", m);
                    crate::mapping::check_decoy(m, "send reaching the miniport");
                    m = (*m).Next;
                    hops += 1;
                }
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
        // Seal after the checks: from here on only the miniport may touch it.
        // SAFETY: as above.
        let seal = unsafe { nbl::seal_of(n) };
        nbl::with_nbl(n, |r| {
            r.holder = Holder::Miniport;
            r.seal = Some(seal);
            if r.dir == Dir::None {
                r.dir = Dir::Send;
            }
            r.adapter = id;
        });
    }
    let inline = {
        let mut s = stack();
        let a = &mut s.adapters[id];
        a.counters.send_flags_seen |= flags;
        a.counters.wire_nbls += list.len() as u64;
        a.counters.wire_nbs += frames.len() as u64;
        a.counters.filter_originated_sends += originated;
        for &n in &list {
            // SAFETY: registered NBLs the miniport holds now; read only.
            let (infos, oob) = unsafe {
                (
                    crate::wire::OFFLOAD_INFO_SLOTS.map(|i| (*n).NetBufferListInfo[i] as usize),
                    (*n).NetBufferListInfo[info::Ieee8021QNetBufferListInfo] as usize,
                )
            };
            for (k, hit) in crate::wire::offload_kinds(infos).iter().enumerate() {
                a.counters.wire_offload_nbls[k] += *hit as u64;
            }
            a.counters.wire_oob_tagged_nbls += (oob != 0) as u64;
        }
        a.counters.wire_tagged_nbs += frames
            .iter()
            .filter(|f| crate::wire::mac_header_len(&f.bytes) == 18)
            .count() as u64;
        for f in &frames {
            a.counters.wire_digest = digest_add(a.counters.wire_digest, &f.bytes);
        }
        let room = a.cfg.capture_limit.saturating_sub(a.wire.len());
        a.wire.extend(frames.into_iter().take(room));
        if !a.cfg.complete_inline {
            a.mp_pending.extend(list.iter().map(|&n| n as usize));
        }
        a.cfg.complete_inline
    };
    if inline {
        complete_sends(id, list.iter().map(|&n| n as usize).collect());
    }
}

/// [`AdapterConfig::restore_breaker`]: the miniport (`send`) or the protocol changes every NB of `n`
/// before giving it back.
pub(super) fn break_restore(id: usize, n: *mut NET_BUFFER_LIST, send: bool) {
    let Some(b) = stack().adapters[id].cfg.restore_breaker else {
        return;
    };
    if !(if send { b.miniport } else { b.protocol }) {
        return;
    }
    let who = if send { "the miniport" } else { "the protocol" };
    let mut broke = 0u64;
    // SAFETY: a registered NBL the neighbour still holds; walks are bounded.
    unsafe {
        for nb in nbl::nbs_of(n) {
            if crate::neighbor::break_nb(nb, b.how, who) {
                broke += 1;
            }
        }
    }
    stack().adapters[id].counters.neighbor_restore_breaks += broke;
}

pub(super) fn verify_seal(n: *mut NET_BUFFER_LIST, context: &str) {
    let seal = nbl::nbl_record(n).and_then(|r| r.seal);
    if let Some(seal) = seal {
        // SAFETY: a registered NBL the simulator holds.
        let now = unsafe { nbl::seal_of(n) };
        if now != seal {
            verifier::report(
                rules::NBL_TOUCHED_AFTER_HANDOFF,
                n as usize,
                format!("NBL/NB/MDL/frame changed while {context}"),
            );
        }
    }
}

/// The miniport completes the given sends (at the caller's IRQL), in the given order.
pub(crate) fn complete_sends(id: usize, nbls: Vec<usize>) {
    if nbls.is_empty() {
        return;
    }
    let status = stack().adapters[id].cfg.send_status;
    let mut to_filter = Vec::new();
    let mut to_proto = Vec::new();
    let h = handler!(id, SendNetBufferListsCompleteHandler);
    let all: Vec<*mut NET_BUFFER_LIST> = nbls.iter().map(|&a| a as *mut NET_BUFFER_LIST).collect();
    let call = crate::race::mark_in_call(id, &all);
    for &a in &nbls {
        let n = a as *mut NET_BUFFER_LIST;
        verify_seal(n, "held by the miniport (send)");
        break_restore(id, n, true);
        // SAFETY: a registered NBL the miniport holds.
        unsafe { (*n).Status = status };
        let creator = nbl::nbl_record(n).map(|r| r.creator);
        nbl::with_nbl(n, |r| {
            r.seal = None;
            r.holder = Holder::Filter;
            r.since_ms = crate::clock::now_ms();
            r.timed_out = false;
        });
        if h.is_some() || creator == Some(Creator::Driver) {
            to_filter.push(n);
        } else {
            to_proto.push(n);
        }
    }
    stack().adapters[id].counters.mp_completed_nbls += nbls.len() as u64;
    let flags = if current_irql() >= DISPATCH_LEVEL {
        NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL
    } else {
        0
    };
    if !to_filter.is_empty() {
        let head = link(&to_filter);
        match h {
            // SAFETY: the registered FilterSendNetBufferListsComplete with its module context.
            Some((f, abi, ctx)) => checked("FilterSendNetBufferListsComplete", || unsafe {
                f.invoke(abi, (ctx, head, flags))
            }),
            None => verifier::report(
                rules::BAD_OBJECT,
                head as usize,
                "the filter sent its own NBLs without a SendNetBufferListsComplete handler",
            ),
        }
    }
    if !to_proto.is_empty() {
        protocol_complete(id, &to_proto);
    }
    crate::race::unmark_in_call(id, &all, call);
}

/// The protocol gets its sends back: restore check, counters, free.
pub(crate) fn protocol_complete(id: usize, list: &[*mut NET_BUFFER_LIST]) {
    for &n in list {
        let snap = stack().adapters[id].sent.remove(&(n as usize));
        let Some(snap) = snap else {
            verifier::report(
                rules::DOUBLE_COMPLETE,
                n as usize,
                "completed to the protocol but not outstanding",
            );
            continue;
        };
        nbl::with_nbl(n, |r| r.holder = Holder::Protocol);
        // SAFETY: the protocol's own NBL, back in its hands.
        unsafe { nbl::check_restored("send completion", n, &snap) };
        // SAFETY: as above.
        let status = unsafe { (*n).Status };
        {
            let mut s = stack();
            let c = &mut s.adapters[id].counters;
            c.proto_completed_nbls += 1;
            match status {
                NDIS_STATUS_SUCCESS => c.proto_completed_success += 1,
                NDIS_STATUS_PAUSED => c.proto_completed_paused += 1,
                _ => c.proto_completed_other += 1,
            }
        }
        // SAFETY: the protocol's NBL; nothing else references it now.
        unsafe { nbl::free_sim_nbl(n) };
    }
}

/// Completes up to `n` queued sends at DISPATCH_LEVEL in a seeded order.
pub(crate) fn pump_sends(id: usize, n: usize, seed: &mut u64) -> usize {
    kernel::at_irql(DISPATCH_LEVEL, || {
        pump_sends_at_current_irql(id, n, Some(seed))
    })
}

/// Completes up to `n` queued sends at the caller's IRQL (shuffled when a seed is given).
pub(crate) fn pump_sends_at_current_irql(id: usize, n: usize, seed: Option<&mut u64>) -> usize {
    let mut sends: Vec<usize> = {
        let mut s = stack();
        let a = &mut s.adapters[id];
        let k = a.mp_pending.len().min(n);
        if k != 0 {
            crate::race::claim_taken(&mut a.race);
        }
        a.mp_pending.drain(..k).collect()
    };
    if let Some(r) = seed {
        for i in (1..sends.len()).rev() {
            *r = splitmix64(*r);
            sends.swap(i, (*r % (i as u64 + 1)) as usize);
        }
    }
    let k = sends.len();
    complete_sends(id, sends);
    if k != 0 {
        crate::race::release(id);
    }
    k
}
