//! The per-NBL transform and restore shared by the send and receive paths: allocate the context,
//! capture a record per NB, run the module's transform on each NB, roll the whole NBL back if any NB
//! fails; and the exact restore at completion/return (DESIGN §5), with the one restore loop over a
//! chain ([`restore_chain`], [`restore_and_hand_on`]) that send-complete, return and the synchronous
//! receive runs share.
//!
//! Owns: NBL-level transform policy (which tag, which NBLs are left alone, OOB info clear/restore) and
//! which handler pair restores an NBL. Must not: choose where NBLs go (send.rs / receive.rs decide, and
//! hand [`restore_and_hand_on`] the NDIS call that passes them on), or take module references (it only
//! drops, after the hand-on, those our restored NBLs held). IRQL: <= DISPATCH_LEVEL everywhere; no allocation except the pool (through the
//! retreat) and NDIS's NBL context.

use super::context::{flags, NblContext};
use super::module::{handler_pair, DataPathConfig, FilterModule};
use super::stats::{Direction, Tally};
use crate::nb::{self, MdlHandlers, Restore};
use crate::ndis::{NblChain, NetBuffer, NetBuffers};
use crate::transform::offload::{self, Plan};
use crate::transform::{exercise, vlan, vlan::VlanTag, Mode, TransformError};
use core::sync::atomic::{AtomicU8, Ordering};
use ndis_sys::*;

/// Context flag: this NBL was transformed with NDIS's default allocator (benchmark baseline), so it
/// must be restored with it too.
const NDIS_DEFAULT_HANDLERS: u16 = 0x8000;

/// What happened to one NBL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Transformed: it carries our context and must be restored at completion/return.
    Transformed,
    /// Left as it was (nothing to do): no context.
    Untouched,
    /// A NB failed; the NBL is back as it was, without context: complete it with RESOURCES / drop it.
    Failed,
}

/// Direction-specific policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    Send,
    Receive,
}

/// The NBL's TcpIpChecksum / TcpLargeSend / UdpSegmentationOffload infos.
fn offload_infos(nbl: *const NET_BUFFER_LIST) -> [usize; 3] {
    // SAFETY: valid NBL owned by the caller (callers' contract); the indices are in range.
    offload::SLOTS.map(|i| unsafe { NET_BUFFER_LIST_INFO(nbl, i) } as usize)
}

/// The longest NB of an NBL. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `nbl` must be a valid NBL the caller owns.
unsafe fn longest_nb(nbl: *const NET_BUFFER_LIST) -> u32 {
    // SAFETY: valid, owned NBL (caller contract).
    unsafe { NetBuffers::of(nbl) }
        .map(NetBuffer::data_length)
        .max()
        .unwrap_or(0)
}

fn ieee8021q(nbl: *const NET_BUFFER_LIST) -> NDIS_NET_BUFFER_LIST_8021Q_INFO {
    // SAFETY: valid NBL owned by the caller (callers' contract); the index is in range.
    let v = unsafe { NET_BUFFER_LIST_INFO(nbl, info::Ieee8021QNetBufferListInfo) };
    NDIS_NET_BUFFER_LIST_8021Q_INFO { Value: v as usize }
}

/// Transforms one NBL (its `Next` is irrelevant here). IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `nbl` must be a valid NBL the caller owns, with mapped MDLs.
pub unsafe fn transform_nbl(
    nbl: *mut NET_BUFFER_LIST,
    cfg: &DataPathConfig,
    path: Path,
    handlers: MdlHandlers,
    tally: &mut Tally,
) -> Outcome {
    let handler_flag = if handlers.allocate.is_none() {
        NDIS_DEFAULT_HANDLERS
    } else {
        0
    };
    let mut oob_only = false;
    let (tag, kind) = match cfg.settings.mode {
        Mode::Passthrough => {
            tally.passthrough_nbls += 1;
            return Outcome::Untouched;
        }
        Mode::Exercise => (None, flags::EXERCISE),
        Mode::Vlan => {
            let from_oob = VlanTag::from_info(ieee8021q(nbl));
            let tag = match path {
                Path::Send => from_oob.or_else(|| {
                    VlanTag::configured(cfg.settings.vlan_id, cfg.settings.vlan_priority)
                }),
                Path::Receive if cfg.settings.vlan_receive_inline => from_oob,
                Path::Receive => None,
            };
            let read_only = match path {
                Path::Send => NDIS_NBL_FLAGS_SEND_READ_ONLY,
                Path::Receive => NDIS_NBL_FLAGS_RECV_READ_ONLY,
            };
            // SAFETY: valid NBL.
            if tag.is_none() || unsafe { (*nbl).NblFlags } & read_only != 0 {
                tally.vlan_untouched_nbls += 1;
                return Outcome::Untouched;
            }
            if path == Path::Send {
                // Offloads and frame size decide how the tag goes in (transform/offload.rs).
                // SAFETY: valid NBL.
                let longest = unsafe { longest_nb(nbl) };
                match offload::plan(offload_infos(nbl), longest, &cfg.nic) {
                    Plan::InBand => {}
                    // The NIC inserts the protocol's own OOB tag: nothing to do.
                    Plan::Oob if from_oob.is_some() => {
                        tally.vlan_untouched_nbls += 1;
                        return Outcome::Untouched;
                    }
                    Plan::Oob => oob_only = true,
                    Plan::Untagged => {
                        tally.vlan_untouched_nbls += 1;
                        return Outcome::Untouched;
                    }
                }
            }
            (tag, flags::VLAN)
        }
    };
    // SAFETY: valid, owned NBL.
    let mut ctx = match unsafe { NblContext::allocate(nbl, kind | handler_flag) } {
        Ok(c) => c,
        Err(_) => {
            tally.context_failures += 1;
            tally.nbls_failed += 1;
            return Outcome::Failed;
        }
    };
    let mut i = 0usize;
    let mut inserted = 0u32;
    let mut written = 0u64;
    let mut failure: Option<TransformError> = None;
    // SAFETY: valid, owned NBL (caller contract): its NBs are NetBuffers.
    for nbh in unsafe { NetBuffers::of(nbl) } {
        let nbp = nbh.as_ptr();
        let Some(rec) = ctx.record(i) else { break };
        // SAFETY: a NetBuffer (valid, owned).
        *rec = unsafe { nb::RetreatRecord::capture(nbp) };
        let r = match tag {
            // The NIC inserts the tag: the record only lets the restore check the NB.
            Some(_) if oob_only => Ok(()),
            // SAFETY: valid, owned, mapped NB; `rec` freshly captured.
            None => unsafe {
                exercise::apply(
                    nbp,
                    rec,
                    cfg.settings.exercise_bytes,
                    cfg.settings.exercise_backfill,
                    handlers,
                )
            }
            .map(|b| {
                written += b as u64;
            }),
            // SAFETY: as above.
            Some(t) => unsafe { vlan::insert(nbp, rec, t, handlers) }.map(|did| {
                if did {
                    inserted += 1;
                    written += vlan::TAG_BYTES as u64;
                } else {
                    tally.vlan_already_tagged += 1;
                }
            }),
        };
        if let Err(e) = r {
            // The failing NB: untouched after a failed retreat; otherwise retreated (a vlan tag may be
            // half written only if an MDL was unmapped) — put its fields back without the vlan undo.
            if !matches!(e, TransformError::Retreat(_)) {
                // SAFETY: valid, owned NB with this record.
                let r = unsafe { nb::restore(nbp, rec, handlers) };
                count_restore(r, tally);
            }
            failure = Some(e);
            break;
        }
        i += 1;
    }
    if let Some(e) = failure {
        match e {
            TransformError::Retreat(_) => tally.retreat_failures += 1,
            TransformError::PatternMismatch => tally.pattern_mismatches += 1,
            TransformError::Access(_) => {}
        }
        // SAFETY: the first `i` NBs were transformed with these records.
        unsafe { undo_nbs(nbl, &mut ctx, i, tally) };
        // SAFETY: the context was allocated on this NBL and is still its top block.
        unsafe { ctx.free(nbl) };
        tally.nbls_failed += 1;
        return Outcome::Failed;
    }
    if kind == flags::VLAN && oob_only {
        let oob = ieee8021q(nbl);
        let h = ctx.header_mut();
        h.saved_8021q = oob.Value as PVOID;
        h.flags |= flags::OOB_CLEARED;
        let t = tag.map(|t| t.to_info().Value).unwrap_or(0);
        // SAFETY: valid, owned NBL.
        unsafe { SET_NET_BUFFER_LIST_INFO(nbl, info::Ieee8021QNetBufferListInfo, t as PVOID) };
        tally.nbls_transformed += 1;
        tally.nbs_transformed += i as u64;
        return Outcome::Transformed;
    }
    if kind == flags::VLAN {
        let infos = offload_infos(nbl);
        if inserted != 0 && offload::any_offload(infos) && inserted as usize != i {
            // Some frames of an offloaded NBL were already tagged: one set of offsets cannot fit
            // both kinds; leave it all as it was.
            // SAFETY: as below.
            unsafe { undo_nbs(nbl, &mut ctx, i, tally) };
            // SAFETY: as below.
            unsafe { ctx.free(nbl) };
            tally.vlan_untouched_nbls += 1;
            return Outcome::Untouched;
        }
        if inserted != 0 && offload::any_offload(infos) {
            // `plan` chose InBand only if every offset fits.
            if let Some(shifted) = offload::shift_offsets(infos) {
                let h = ctx.header_mut();
                for (k, &slot) in offload::SLOTS.iter().enumerate() {
                    h.saved_offload[k] = infos[k] as PVOID;
                    // SAFETY: valid, owned NBL.
                    unsafe { SET_NET_BUFFER_LIST_INFO(nbl, slot, shifted[k] as PVOID) };
                }
                h.flags |= flags::OFFLOAD_SHIFTED;
            }
        }
        if inserted == 0 {
            // Every frame was already tagged: nothing of ours is in the NBL.
            // SAFETY: as above; the records only hold untouched NBs.
            unsafe { undo_nbs(nbl, &mut ctx, i, tally) };
            // SAFETY: as above.
            unsafe { ctx.free(nbl) };
            tally.vlan_untouched_nbls += 1;
            return Outcome::Untouched;
        }
        let oob = ieee8021q(nbl);
        if oob.Value != 0 {
            let h = ctx.header_mut();
            h.saved_8021q = oob.Value as PVOID;
            h.flags |= flags::OOB_CLEARED;
            // SAFETY: valid, owned NBL.
            unsafe {
                SET_NET_BUFFER_LIST_INFO(
                    nbl,
                    info::Ieee8021QNetBufferListInfo,
                    core::ptr::null_mut(),
                )
            };
        }
    }
    tally.nbls_transformed += 1;
    tally.nbs_transformed += i as u64;
    tally.bytes_written += written;
    Outcome::Transformed
}

fn count_restore(r: Result<Restore, nb::NbError>, tally: &mut Tally) {
    match r {
        Ok(Restore::Advanced) => tally.restores_advanced += 1,
        Ok(Restore::Unlinked) => tally.restores_manual += 1,
        Ok(Restore::NoMdl) => {}
        Err(_) => tally.restores_inconsistent += 1,
    }
}

/// Tells the pool's in-flight blocks from other MDLs for [`nb::reconstruct`]. NDIS's default allocator
/// (the benchmark baseline) leaves no mark to tell its MDLs by, so none is claimed.
fn owner_probe(handlers: MdlHandlers) -> unsafe fn(*mut MDL) -> bool {
    unsafe fn none(_: *mut MDL) -> bool {
        false
    }
    if handlers.allocate.is_some() {
        crate::mdl_handlers::owns_in_flight
    } else {
        none
    }
}

/// Logs, once per driver load, that a neighbour broke the restore contract (each case is counted in
/// `restores_inconsistent`). Any IRQL <= DISPATCH_LEVEL.
fn note_broken_neighbour(recovered: bool) {
    static LOGGED: AtomicU8 = AtomicU8::new(0);
    let bit = if recovered { 1 } else { 2 };
    if LOGGED.fetch_or(bit, Ordering::Relaxed) & bit == 0 {
        if recovered {
            log!(
                DPFLTR_WARNING_LEVEL,
                "a neighbouring driver gave back an NB with its data start or MDL chain changed; restored from the retreat record (counted in restores_inconsistent)"
            );
        } else {
            log!(
                DPFLTR_ERROR_LEVEL,
                "a neighbouring driver gave back an NB without the pool block the filter retreated into; the NB was restored, the block is lost (counted in restores_inconsistent)"
            );
        }
    }
}

/// Restores the first `n` NBs of `nbl` from their records, last first. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `ctx` is the filter's context on `nbl`, the caller owns `nbl`, and record `k < n` describes NB `k`.
unsafe fn undo_nbs(nbl: *mut NET_BUFFER_LIST, ctx: &mut NblContext, n: usize, tally: &mut Tally) {
    let vlan = ctx.header().flags & flags::VLAN != 0;
    let handlers = handler_pair(ctx.header().flags & NDIS_DEFAULT_HANDLERS != 0);
    // The NB list is singly linked; walk it once per NB from the end (NBLs with several NBs are rare
    // and short), so each NB is restored after every NB behind it.
    for k in (0..n).rev() {
        // SAFETY: valid, owned NBL (caller contract).
        let nbh = unsafe { NetBuffers::of(nbl) }.nth(k);
        let Some(rec) = ctx.record(k) else { continue };
        let Some(nbh) = nbh else {
            tally.restores_inconsistent += 1;
            continue;
        };
        let nbp = nbh.as_ptr();
        let inserted = if vlan {
            vlan::Inserted::of(rec)
        } else {
            vlan::Inserted::Nothing
        };
        // A new-head tag relinked the chain past the caller's first MDLs: undo that first (it checks
        // the head is still ours and DataLength the tagged one), which leaves exactly the geometry
        // right after the retreat, the one `as_handed_on` knows. An in-place tag moved bytes only,
        // so its geometry is checked before they are moved back.
        if inserted == vlan::Inserted::NewHead {
            // SAFETY: this NB carries a tag we inserted as `rec` says.
            if unsafe { vlan::remove_inserted(nbp, rec) }.is_err()
                // A neighbour changed the NB: put our MDL back in front of the caller's chain, so
                // the recovery below sees an ordinary allocating retreat.
                // SAFETY: valid, owned NB tagged with `rec`'s new head; its chain is readable.
                && !unsafe { vlan::relink_new_head(nbp, rec, owner_probe(handlers)) }
            {
                tally.restores_inconsistent += 1;
                note_broken_neighbour(false);
                continue;
            }
        }
        // SAFETY: valid NB; the record is its own.
        if !unsafe { nb::as_handed_on(nbp, rec) } {
            // A neighbour broke the restore contract: the miniport completed (or the protocol
            // returned) the NB with its data start moved or its leading MDLs changed. Handing it on
            // as it is would give our owner an NB that is not its own (for vlan, with a pool block
            // at the head of its chain), and leaving it would leak the block for ever. The record
            // says everything we handed on, so rebuild that geometry and undo as usual: the owner
            // gets its exact NB (and bytes) back, the block goes back to the pool. Counted as a bad
            // restore and logged once; if the block is nowhere to be found the owner still gets its
            // fields back and the block stays in flight (the pool's leak report names it).
            // SAFETY: valid, owned NB; its chain is readable; the record is its own.
            let r = unsafe { nb::reconstruct(nbp, rec, owner_probe(handlers)) };
            tally.restores_inconsistent += 1;
            note_broken_neighbour(r.is_ok());
            if r.is_err() {
                continue;
            }
        }
        if inserted == vlan::Inserted::InPlace {
            // SAFETY: this NB carries a tag we inserted as `rec` says.
            if unsafe { vlan::remove_inserted(nbp, rec) }.is_err() {
                tally.restores_inconsistent += 1;
                continue;
            }
        }
        // SAFETY: valid, owned NB; the record is its own.
        let r = unsafe { nb::restore(nbp, rec, handlers) };
        count_restore(r, tally);
    }
}

/// If `nbl` carries this filter's context, restores every NB exactly, puts back the OOB info, frees
/// the context and returns true; otherwise leaves it alone and returns false. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `nbl` must be a valid NBL the caller owns (being completed or returned to it).
pub unsafe fn restore_nbl(nbl: *mut NET_BUFFER_LIST, tally: &mut Tally) -> bool {
    // SAFETY: valid, owned NBL.
    let Some(mut ctx) = (unsafe { NblContext::find(nbl) }) else {
        return false;
    };
    let n = ctx.header().nb_count as usize;
    // SAFETY: the records describe the NBL's NBs in order.
    unsafe { undo_nbs(nbl, &mut ctx, n, tally) };
    if ctx.header().flags & flags::OOB_CLEARED != 0 {
        let saved = ctx.header().saved_8021q;
        // SAFETY: valid, owned NBL.
        unsafe { SET_NET_BUFFER_LIST_INFO(nbl, info::Ieee8021QNetBufferListInfo, saved) };
    }
    if ctx.header().flags & flags::OFFLOAD_SHIFTED != 0 {
        let saved = ctx.header().saved_offload;
        for (k, &slot) in offload::SLOTS.iter().enumerate() {
            // SAFETY: valid, owned NBL.
            unsafe { SET_NET_BUFFER_LIST_INFO(nbl, slot, saved[k]) };
        }
    }
    // SAFETY: our context is the NBL's top block (every lower/upper driver freed its own).
    unsafe { ctx.free(nbl) };
    true
}

/// Restores every NBL of the chain `nbls` that carries this filter's context ([`restore_nbl`]) and
/// returns how many did: the one restore loop of send-complete, return, and the receive path's
/// synchronous (NDIS_RECEIVE_FLAGS_RESOURCES) indications. The chain's links are left as they are.
/// IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `nbls` must be NULL or a chain of valid NBLs the caller owns (completed or returned to it).
#[inline]
pub unsafe fn restore_chain(nbls: *mut NET_BUFFER_LIST, tally: &mut Tally) -> i64 {
    // SAFETY: an owned chain (caller contract); restore_nbl changes no NBL's `Next`.
    unsafe { NblChain::new(nbls) }
        // SAFETY: each NBL of the owned chain.
        .map(|nbl| unsafe { restore_nbl(nbl, tally) } as i64)
        .sum()
}

/// Send-complete and return: restores the NBLs of ours in `nbls`, commits the tally for `direction`,
/// hands the chain on with `hand_on`, and then drops the references our NBLs held. IRQL <=
/// DISPATCH_LEVEL.
///
/// # Safety
/// `nbls` must be a chain NDIS completed or returned to `module`'s handler, and `hand_on` must pass
/// it on (ownership leaves with it).
#[inline]
pub unsafe fn restore_and_hand_on(
    module: &FilterModule,
    nbls: *mut NET_BUFFER_LIST,
    direction: Direction,
    hand_on: impl FnOnce(NDIS_HANDLE, *mut NET_BUFFER_LIST),
) {
    let mut tally = Tally::default();
    // SAFETY: the chain is ours until handed on (caller contract).
    let ours = unsafe { restore_chain(nbls, &mut tally) };
    tally.commit(&module.stats, direction);
    hand_on(module.ndis_filter_handle, nbls);
    module.release_from_data_path(ours);
}
