//! The retreat policy: the [`RetreatRecord`] of the five NET_BUFFER fields a retreat can change, the
//! retreat and advance through a chosen [`MdlHandlers`] pair, parking the retreat's MDL off the
//! chain, the exact [`restore`], and the recovery ([`as_handed_on`], [`reconstruct`]) from a
//! neighbour that broke the restore contract.
//!
//! ## Restore
//! Before a retreat the caller captures a [`RetreatRecord`] of the five fields NDIS may change
//! (`MdlChain`, `DataOffset`, `DataLength`, `CurrentMdl`, `CurrentMdlOffset`). [`restore`] puts all five
//! back exactly. If the retreat prepended an MDL (the chain head differs from the recorded one), that MDL
//! must go back to the allocator that produced it:
//! - `NdisAdvanceNetBufferDataStart(FreeMdl = TRUE, handler)` frees *every* leading MDL that lies wholly
//!   in unused space, whoever allocated it. It is used only when the recorded head MDL still holds the
//!   recorded data start (`ByteCount > DataOffset`, or it is the NB's inline MDL, which NDIS never
//!   frees), i.e. when the only MDL it can free is the one the retreat inserted ([`Restore::Advanced`]).
//! - Otherwise (the caller's chain began with a fully unused MDL) the filter advances with
//!   `FreeMdl = FALSE`, unlinks the inserted MDL by hand and frees it itself ([`Restore::Unlinked`]).
//!
//! IRQL: every routine here runs at IRQL <= DISPATCH_LEVEL (that of the NB/MDL routines it calls); none
//! blocks or allocates except through the MDL handler it is given.
//!
//! Owns: every retreat/advance the filter makes. Must not: read or write frame bytes (`cursor.rs`)
//! or touch NBL-level state (`filter/`).

use super::cursor::NbError;
use crate::ndis::MdlPos;
use core::ptr;
use ndis_sys::*;

/// The five NET_BUFFER fields a retreat/advance can change, captured before the retreat and put back
/// exactly by [`restore`], plus the retreat's MDL while it is parked off the chain ([`park`]), plus
/// what the vlan transform needs to undo its byte writes exactly (`front`, `vlan`). 48 bytes,
/// pointer-aligned (it lives in the NBL context area).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetreatRecord {
    pub mdl_chain: *mut MDL,
    pub current_mdl: *mut MDL,
    pub current_mdl_offset: u32,
    pub data_length: u32,
    pub data_offset: u32,
    /// Bytes the data start currently lies *before* the recorded one (what [`restore`] must advance):
    /// the retreat delta, minus what the transform already advanced back.
    pub outstanding: u32,
    /// The retreat's MDL while [`park`] keeps it off the NB's chain (the NB then equals the record);
    /// NULL otherwise. [`restore`] links it back and gives it back through the handlers.
    pub parked: *mut MDL,
    /// vlan, tag inserted in place: the 4 bytes in front of the caller's data start that the tag's
    /// address move overwrote (the caller's unused space), written back by the undo.
    pub front: [u8; 4],
    /// What the vlan transform did to this NB (`transform::vlan::Inserted` as u32; 0 = nothing).
    pub vlan: u32,
}

const _: () = assert!(core::mem::size_of::<RetreatRecord>() == 48);

impl RetreatRecord {
    /// Captures the five fields of `nb`. Any IRQL.
    ///
    /// # Safety
    /// `nb` must be a valid NET_BUFFER.
    #[inline]
    pub unsafe fn capture(nb: *const NET_BUFFER) -> Self {
        // SAFETY: the caller guarantees a valid NB.
        unsafe {
            Self {
                mdl_chain: (*nb).MdlChain,
                current_mdl: (*nb).CurrentMdl,
                current_mdl_offset: (*nb).CurrentMdlOffset,
                data_length: (*nb).DataLength(),
                data_offset: (*nb).DataOffset,
                outstanding: 0,
                parked: ptr::null_mut(),
                front: [0; 4],
                vlan: 0,
            }
        }
    }

    /// Writes the five fields back. Any IRQL.
    ///
    /// # Safety
    /// `nb` must be a valid NET_BUFFER owned by the caller.
    #[inline]
    pub unsafe fn apply(&self, nb: *mut NET_BUFFER) {
        // SAFETY: the caller guarantees a valid, owned NB.
        unsafe {
            (*nb).MdlChain = self.mdl_chain;
            (*nb).CurrentMdl = self.current_mdl;
            (*nb).CurrentMdlOffset = self.current_mdl_offset;
            (*nb).SetDataLength(self.data_length);
            (*nb).DataOffset = self.data_offset;
        }
    }

    /// Whether `nb`'s five fields equal the record. Any IRQL.
    ///
    /// # Safety
    /// `nb` must be a valid NET_BUFFER.
    #[inline]
    pub unsafe fn matches(&self, nb: *const NET_BUFFER) -> bool {
        // SAFETY: the caller guarantees a valid NB.
        let now = unsafe { Self::capture(nb) };
        now.mdl_chain == self.mdl_chain
            && now.current_mdl == self.current_mdl
            && now.current_mdl_offset == self.current_mdl_offset
            && now.data_length == self.data_length
            && now.data_offset == self.data_offset
    }
}

/// The MDL handler pair given to retreat/advance. `None`/`None` is NDIS's default allocator (used only
/// by the data-path benchmark as the baseline).
#[derive(Clone, Copy)]
pub struct MdlHandlers {
    pub allocate: NET_BUFFER_ALLOCATE_MDL_HANDLER,
    pub free: NET_BUFFER_FREE_MDL_HANDLER,
}

impl MdlHandlers {
    /// NDIS's own allocator (NULL handlers): `ndisAllocateMdlInternal` / `ExFreePool`.
    pub const NDIS_DEFAULT: Self = Self {
        allocate: None,
        free: None,
    };

    /// Frees an MDL this pair allocated, outside an advance (the manual unlink). IRQL <= DISPATCH_LEVEL.
    ///
    /// # Safety
    /// `mdl` must have been produced by this pair's allocator and be unlinked from every chain.
    unsafe fn free_unlinked(&self, mdl: *mut MDL) {
        match self.free {
            // SAFETY: the handler frees exactly the MDLs its allocator produced (caller contract).
            Some(free) => unsafe { free(mdl) },
            // NDIS's default allocator puts the MDL and its data in one ExAllocatePool2 block and its
            // default free is ExFreePool on the MDL (ndis-contract.md §5). Our retreats never leave an
            // MDL mapped with MDL_PARTIAL_HAS_BEEN_MAPPED, so no unmap is needed first.
            // SAFETY: `mdl` is the start of that block (caller contract).
            None => unsafe { ExFreePool(mdl as PVOID) },
        }
    }
}

/// How a retreat was satisfied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retreated {
    /// From the NB's unused space (`DataOffset >= delta`): no MDL was allocated.
    InPlace,
    /// NDIS called the allocator and prepended the new MDL.
    Allocated,
}

/// `NdisRetreatNetBufferDataStart(nb, delta, backfill, handlers.allocate)` and, on success,
/// `rec.outstanding += delta`. On failure (NDIS_STATUS_RESOURCES: the allocator returned NULL) the NB is
/// untouched. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `nb` must be a valid NET_BUFFER owned by the caller; `rec` must have been captured from it before its
/// first retreat.
pub unsafe fn retreat(
    nb: *mut NET_BUFFER,
    rec: &mut RetreatRecord,
    delta: u32,
    backfill: u32,
    handlers: MdlHandlers,
) -> Result<Retreated, NDIS_STATUS> {
    // SAFETY: the caller guarantees a valid NB.
    let before = unsafe { (*nb).MdlChain };
    // SAFETY: valid, owned NB; the handler (or NDIS's default) runs at the caller's IRQL <= DISPATCH.
    let status = unsafe { NdisRetreatNetBufferDataStart(nb, delta, backfill, handlers.allocate) };
    if status != NDIS_STATUS_SUCCESS {
        return Err(status);
    }
    rec.outstanding = rec.outstanding.wrapping_add(delta);
    // SAFETY: as above.
    if unsafe { (*nb).MdlChain } == before {
        Ok(Retreated::InPlace)
    } else {
        Ok(Retreated::Allocated)
    }
}

/// `NdisAdvanceNetBufferDataStart(nb, delta, FreeMdl = FALSE)` and `rec.outstanding -= delta`: moves the
/// data start forward again without freeing anything (the exercise transform keeps its block in the
/// chain as unused space this way). IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `nb` must be a valid NET_BUFFER owned by the caller with at least `delta` data bytes, and
/// `delta <= rec.outstanding`.
pub unsafe fn advance_keep(nb: *mut NET_BUFFER, rec: &mut RetreatRecord, delta: u32) {
    // SAFETY: valid, owned NB with enough data (caller contract).
    unsafe { NdisAdvanceNetBufferDataStart(nb, delta, FALSE, None) };
    rec.outstanding = rec.outstanding.wrapping_sub(delta);
}

/// Takes the retreat's MDL off the NB once the data start is back where it was recorded
/// (`rec.outstanding == 0`), and puts the five recorded fields back, so that the NB handed to another
/// driver has exactly the caller's geometry while the MDL stays allocated (in flight) in `rec.parked`
/// until [`restore`]. Handing an NB on with our MDL still at the head of its chain, wholly in unused
/// space, would let any driver below or above that retreats in place and then advances with
/// FreeMdl = TRUE free our MDL with its own handler (ndis-contract.md §2.3 point 4). Only puts the
/// recorded fields back (CurrentMdl may come back from the advance in another normalisation) when
/// the retreat allocated no MDL. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `nb` must be a valid NET_BUFFER owned by the caller, `rec` captured from it before the retreat.
pub unsafe fn park(nb: *mut NET_BUFFER, rec: &mut RetreatRecord) -> Result<(), NbError> {
    // SAFETY: the caller guarantees a valid NB.
    let (head, data_offset, data_length) =
        unsafe { ((*nb).MdlChain, (*nb).DataOffset, (*nb).DataLength()) };
    if rec.outstanding != 0 || data_length != rec.data_length || !rec.parked.is_null() {
        return Err(NbError::Inconsistent);
    }
    if head == rec.mdl_chain {
        if data_offset != rec.data_offset {
            return Err(NbError::Inconsistent);
        }
        // Nothing to take off, but the advance back may have left CurrentMdl in another (equivalent)
        // normalisation: hand the NB on with the caller's exact fields.
        // SAFETY: valid, owned NB; same chain and data start as recorded.
        unsafe { rec.apply(nb) };
        return Ok(());
    }
    if head.is_null() {
        return Err(NbError::Inconsistent);
    }
    // SAFETY: `head` is the NB's live chain head (the MDL the retreat prepended).
    let (next, count) = unsafe { ((*head).Next, (*head).ByteCount) };
    if next != rec.mdl_chain || data_offset as u64 != count as u64 + rec.data_offset as u64 {
        return Err(NbError::Inconsistent);
    }
    // SAFETY: valid, owned NB and our own MDL; the recorded chain is still linked behind it.
    unsafe {
        (*head).Next = ptr::null_mut();
        rec.apply(nb);
    }
    rec.parked = head;
    Ok(())
}

/// How [`restore`] gave back the retreat's MDL, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restore {
    /// The retreat allocated nothing; only the fields were put back.
    NoMdl,
    /// `Advance(FreeMdl = TRUE, handler)` freed exactly the retreat's MDL.
    Advanced,
    /// The caller's chain began with a wholly unused MDL that a FreeMdl advance would also have freed;
    /// advanced with FreeMdl = FALSE, unlinked and freed the retreat's MDL by hand.
    Unlinked,
}

/// Whether `NdisAdvanceNetBufferDataStart(FreeMdl = TRUE)` back to `rec` would free nothing but the MDL
/// the retreat prepended: the recorded head MDL must still hold the recorded data start, or be the NB's
/// inline MDL (which NDIS never frees), or be absent. Pure; any IRQL.
///
/// # Safety
/// `nb` and `rec.mdl_chain` (if not NULL) must be valid.
pub unsafe fn free_advance_is_safe(nb: *const NET_BUFFER, rec: &RetreatRecord) -> bool {
    let head = rec.mdl_chain;
    if head.is_null() {
        return true;
    }
    // NDIS skips an MDL placed inline right after the NET_BUFFER (`MdlChain == &nb[1]`).
    if core::ptr::eq(head, nb.wrapping_add(1) as *const MDL) {
        return true;
    }
    // SAFETY: the caller guarantees the recorded head is a valid MDL.
    unsafe { (*head).ByteCount > rec.data_offset }
}

/// Puts the NB back exactly as `rec` recorded it and frees the MDL the retreat inserted (if any) with
/// the handler pair that allocated it; see the module docs for which way. On
/// `Err(NbError::Inconsistent)` (the NB does not look like the retreat left it) nothing is changed and
/// nothing is freed. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `nb` must be a valid NET_BUFFER owned by the caller, on which the filter made the retreats recorded in
/// `rec` with `handlers`, and which every lower driver has given back as it received it.
pub unsafe fn restore(
    nb: *mut NET_BUFFER,
    rec: &RetreatRecord,
    handlers: MdlHandlers,
) -> Result<Restore, NbError> {
    let parked = rec.parked;
    if !parked.is_null() {
        // The NB went on with the caller's geometry; it must have come back with it. Link our MDL back
        // in front of the recorded chain, wholly in unused space, so that the restore below gives it
        // back exactly as if it had stayed in the chain.
        // SAFETY: the caller guarantees a valid NB; `parked` is the live MDL `park` took off.
        unsafe {
            // CurrentMdl/CurrentMdlOffset may come back in another (equivalent) normalisation, e.g.
            // after a neighbour's own retreat and FreeMdl advance; they are rewritten from the record.
            if (*nb).MdlChain != rec.mdl_chain
                || (*nb).DataOffset != rec.data_offset
                || (*nb).DataLength() != rec.data_length
                || rec.outstanding != 0
            {
                return Err(NbError::Inconsistent);
            }
            (*parked).Next = rec.mdl_chain;
            (*nb).MdlChain = parked;
            (*nb).DataOffset = rec.data_offset.wrapping_add((*parked).ByteCount);
        }
    }
    // SAFETY: the caller guarantees a valid NB.
    let (head, data_offset, data_length) =
        unsafe { ((*nb).MdlChain, (*nb).DataOffset, (*nb).DataLength()) };
    let delta = rec.outstanding;
    // Consistency: the data start lies `outstanding` bytes before the recorded one.
    if data_length.wrapping_sub(delta) != rec.data_length || data_length < delta {
        return Err(NbError::Inconsistent);
    }
    if head == rec.mdl_chain {
        if data_offset.wrapping_add(delta) != rec.data_offset {
            return Err(NbError::Inconsistent);
        }
        if delta != 0 {
            // SAFETY: valid, owned NB with `delta` bytes more than recorded.
            unsafe { NdisAdvanceNetBufferDataStart(nb, delta, FALSE, None) };
        }
        // SAFETY: valid, owned NB.
        unsafe { rec.apply(nb) };
        return Ok(Restore::NoMdl);
    }
    // The retreat prepended exactly one MDL: `head`, followed by the recorded chain, and after the
    // advance the whole of it lies in unused space.
    if head.is_null() {
        return Err(NbError::Inconsistent);
    }
    // SAFETY: `head` is the NB's live chain head.
    let (next, count) = unsafe { ((*head).Next, (*head).ByteCount) };
    if next != rec.mdl_chain
        || (data_offset as u64 + delta as u64) != count as u64 + rec.data_offset as u64
    {
        return Err(NbError::Inconsistent);
    }
    let pair_matches = handlers.free.is_some() == handlers.allocate.is_some();
    // SAFETY: the recorded head is still linked behind `head`, hence valid.
    if pair_matches && unsafe { free_advance_is_safe(nb, rec) } {
        // SAFETY: valid, owned NB; the only leading MDL wholly in unused space after this advance is
        // `head`, which `handlers` allocated, so the free handler receives only its own MDL.
        unsafe { NdisAdvanceNetBufferDataStart(nb, delta, TRUE, handlers.free) };
        // The advance left MdlChain/DataOffset/DataLength as recorded and normalised CurrentMdl;
        // put back the caller's exact CurrentMdl/CurrentMdlOffset too.
        // SAFETY: valid, owned NB.
        unsafe { rec.apply(nb) };
        Ok(Restore::Advanced)
    } else {
        if delta != 0 {
            // SAFETY: valid, owned NB with `delta` bytes more than recorded; frees nothing.
            unsafe { NdisAdvanceNetBufferDataStart(nb, delta, FALSE, None) };
        }
        // SAFETY: valid, owned NB; unlinking `head` and writing the recorded fields back.
        unsafe {
            rec.apply(nb);
            (*head).Next = ptr::null_mut();
            handlers.free_unlinked(head);
        }
        Ok(Restore::Unlinked)
    }
}

/// Longest run of MDLs [`reconstruct`] walks looking for the retreat's MDL (a neighbour may have put
/// its own in front; more than a few would be an NB no driver builds).
const RECONSTRUCT_HOPS: usize = 8;

/// Whether `nb` still has the geometry the filter handed on after the retreat(s) recorded in `rec`
/// (what [`restore`] expects): with the exercise block parked or nothing outstanding, the recorded
/// `MdlChain` / `DataOffset` / `DataLength`; with `outstanding = d` bytes retreated, those moved by `d`,
/// in place when the recorded `DataOffset >= d` (NDIS retreats in place exactly then), else behind one
/// MDL of ours prepended to the recorded chain. Any IRQL.
///
/// # Safety
/// `nb` must be a valid NET_BUFFER.
pub unsafe fn as_handed_on(nb: *const NET_BUFFER, rec: &RetreatRecord) -> bool {
    // SAFETY: the caller guarantees a valid NB.
    let (head, data_offset, data_length) =
        unsafe { ((*nb).MdlChain, (*nb).DataOffset, (*nb).DataLength()) };
    let d = rec.outstanding;
    if !rec.parked.is_null() || d == 0 {
        return head == rec.mdl_chain
            && data_offset == rec.data_offset
            && data_length == rec.data_length;
    }
    if data_length as u64 != rec.data_length as u64 + d as u64 {
        return false;
    }
    if rec.data_offset >= d {
        return head == rec.mdl_chain && data_offset == rec.data_offset - d;
    }
    if head.is_null() {
        return false;
    }
    // SAFETY: `head` is the NB's live chain head.
    let (next, count) = unsafe { ((*head).Next, (*head).ByteCount) };
    next == rec.mdl_chain && data_offset as u64 + d as u64 == count as u64 + rec.data_offset as u64
}

/// Sets `CurrentMdl` / `CurrentMdlOffset` from `MdlChain` / `DataOffset` with NDIS's walk.
///
/// # Safety
/// `nb` must be a valid NET_BUFFER owned by the caller whose chain covers `DataOffset`.
unsafe fn locate_current(nb: *mut NET_BUFFER) {
    // SAFETY: the caller guarantees a valid, owned NB whose chain is readable.
    unsafe {
        let at = MdlPos::locate((*nb).MdlChain, (*nb).DataOffset);
        (*nb).CurrentMdl = at.mdl;
        (*nb).CurrentMdlOffset = at.offset;
    }
}

/// Recovery from a neighbour that broke the restore contract: puts `nb` back into the geometry the
/// filter handed on (see [`as_handed_on`]), rebuilt from the record alone, so the ordinary undo
/// (`vlan::remove_inserted`, [`restore`]) then gives the owner its NB and bytes back exactly and the
/// retreat's MDL back to the pool. The retreat's MDL, when one was prepended and not parked, is looked
/// for among the first MDLs of the chain as the neighbour left it (`owns` tells ours); if it cannot be
/// found the owner's five fields are written back anyway (nothing of ours is handed back) and
/// `Err(Inconsistent)` says the block is lost (the pool reports it in flight at unload). Bytes a
/// neighbour wrote are not undone. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `nb` must be a valid NET_BUFFER owned by the caller on which the filter made the retreats recorded
/// in `rec`; every MDL reachable from its chain must be readable; `owns` must accept any such MDL.
pub unsafe fn reconstruct(
    nb: *mut NET_BUFFER,
    rec: &RetreatRecord,
    owns: unsafe fn(*mut MDL) -> bool,
) -> Result<(), NbError> {
    let d = rec.outstanding;
    if !rec.parked.is_null() || d == 0 {
        // SAFETY: valid, owned NB; the parked block (if any) is off the chain and [`restore`] links it.
        unsafe { rec.apply(nb) };
        return Ok(());
    }
    let data_length = rec.data_length.wrapping_add(d);
    if rec.data_offset >= d {
        // The retreat was in place: nothing of ours is in the chain.
        // SAFETY: valid, owned NB; the recorded chain covers the recorded data start.
        unsafe {
            (*nb).MdlChain = rec.mdl_chain;
            (*nb).DataOffset = rec.data_offset - d;
            (*nb).SetDataLength(data_length);
            locate_current(nb);
        }
        return Ok(());
    }
    // SAFETY: the caller guarantees a valid NB.
    let mut m = unsafe { (*nb).MdlChain };
    let mut hops = 0;
    while !m.is_null() && m != rec.mdl_chain && hops < RECONSTRUCT_HOPS {
        // SAFETY: `m` is reachable from the NB's chain (readable, caller contract).
        let (next, count) = unsafe { ((*m).Next, (*m).ByteCount) };
        // SAFETY: as above.
        if next == rec.mdl_chain && unsafe { owns(m) } {
            let Some(offset) = (count as u64 + rec.data_offset as u64)
                .checked_sub(d as u64)
                .and_then(|o| u32::try_from(o).ok())
            else {
                break;
            };
            // SAFETY: valid, owned NB; `m` is our MDL with the recorded chain behind it.
            unsafe {
                (*nb).MdlChain = m;
                (*nb).DataOffset = offset;
                (*nb).SetDataLength(data_length);
                locate_current(nb);
            }
            return Ok(());
        }
        m = next;
        hops += 1;
    }
    // SAFETY: valid, owned NB: the owner gets its own geometry back, without our MDL.
    unsafe { rec.apply(nb) };
    Err(NbError::Inconsistent)
}
