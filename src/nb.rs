//! NET_BUFFER / MDL chain access for the data path: a cursor that reads and writes N bytes at (or at an
//! offset from) the data start across any MDL chain, the retreat record, the retreat itself, and the
//! exact restore (DESIGN §5, ndis-contract.md §2.3).
//!
//! Owns: every byte the filter reads or writes in a frame (all of it goes through [`read_at`] /
//! [`write_at`], because retreated headers are not contiguous in general: after an allocating retreat
//! with `DataOffset > 0` they are the tail of the new MDL plus the old chain's unused bytes, and even a
//! fast-path retreat can straddle MDLs), and every retreat/advance the filter makes.
//! Must not: decide *what* to write (that is `transform/`), or touch NBL-level state (`filter/`).
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

use core::ptr;
use ndis_sys::*;

/// Why an access or a restore could not be done. Never a panic: the data path turns these into counted
/// drops or failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NbError {
    /// The NB has fewer data bytes than the access needs.
    TooShort,
    /// The MDL chain ended before the access was done, or mapping an MDL's locked pages into system
    /// space (MmGetSystemAddressForMdlSafe) failed.
    Unmapped,
    /// The NB no longer looks like the retreat left it (a lower driver broke the contract); nothing was
    /// changed.
    Inconsistent,
}

/// Walks from `(mdl, off)` (the NB's `CurrentMdl` / `CurrentMdlOffset`) forward by `skip` bytes and then
/// calls `f(ptr, len, done)` for each contiguous piece of the next `len` bytes.
///
/// # Safety
/// `mdl` must start a valid MDL chain whose MDLs describe memory valid for the NB's data, mapped or
/// locked (mapped here on first use).
unsafe fn for_each_piece(
    mut mdl: *mut MDL,
    mut off: u32,
    skip: u32,
    len: usize,
    mut f: impl FnMut(*mut u8, usize, usize),
) -> Result<(), NbError> {
    let mut skip = skip as u64 + off as u64;
    off = 0;
    let mut done = 0usize;
    while done < len {
        if mdl.is_null() {
            return Err(NbError::Unmapped);
        }
        // SAFETY: `mdl` is a live MDL of the chain (caller contract).
        let count = unsafe { (*mdl).ByteCount } as u64;
        if skip >= count {
            skip -= count;
            // SAFETY: as above.
            mdl = unsafe { (*mdl).Next };
            continue;
        }
        // An MDL from above may describe locked pages not mapped into system space (a raw-socket or
        // capture sender's user buffer): its MappedSystemVa is not the buffer until the documented
        // macro maps it. MmGetSystemAddressForMdlSafe returns the existing mapping of a mapped or
        // nonpaged-pool MDL and otherwise maps it (MmMapLockedPagesSpecifyCache, KernelMode, allowed
        // at IRQL <= DISPATCH_LEVEL); the mapping belongs to the MDL and is released by its owner
        // when it unlocks/frees it. No-execute: the bytes are data. NULL: the mapping failed.
        // SAFETY: `mdl` is a live MDL of the NB's chain, describing locked or nonpaged pages (every
        // MDL in an NB handed to a driver does).
        let va =
            unsafe { MmGetSystemAddressForMdlSafe(mdl, NormalPagePriority | MdlMappingNoExecute) }
                as *mut u8;
        if va.is_null() {
            return Err(NbError::Unmapped);
        }
        let start = skip as usize + off as usize;
        let n = core::cmp::min(len - done, (count - skip) as usize);
        // `start + n <= ByteCount`, so the piece lies inside the MDL's buffer.
        f(va.wrapping_add(start), n, done);
        done += n;
        skip = 0;
        // SAFETY: as above.
        mdl = unsafe { (*mdl).Next };
    }
    Ok(())
}

/// Copies `buf.len()` bytes starting `offset` bytes after the NB's data start into `buf`.
/// IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `nb` must be a valid NET_BUFFER owned by the caller, whose MDLs describe live memory, mapped into
/// system space or locked (then mapped here through MmGetSystemAddressForMdlSafe).
pub unsafe fn read_at(nb: *const NET_BUFFER, offset: u32, buf: &mut [u8]) -> Result<(), NbError> {
    // SAFETY: the caller guarantees a valid NB.
    let (mdl, off, len) = unsafe { ((*nb).CurrentMdl, (*nb).CurrentMdlOffset, (*nb).DataLength()) };
    if (offset as u64) + buf.len() as u64 > len as u64 {
        return Err(NbError::TooShort);
    }
    let dst = buf.as_mut_ptr();
    // SAFETY: the chain is the caller's valid NB chain; each piece lies inside one MDL's buffer and
    // `done + n <= buf.len()`, so the copy stays inside both.
    unsafe {
        for_each_piece(mdl, off, offset, buf.len(), |p, n, done| {
            ptr::copy_nonoverlapping(p as *const u8, dst.add(done), n)
        })
    }
}

/// Copies `data` into the NB starting `offset` bytes after its data start. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// As [`read_at`]; the bytes written must be the caller's to write (data it owns or retreated space).
pub unsafe fn write_at(nb: *const NET_BUFFER, offset: u32, data: &[u8]) -> Result<(), NbError> {
    // SAFETY: the caller guarantees a valid NB.
    let (mdl, off, len) = unsafe { ((*nb).CurrentMdl, (*nb).CurrentMdlOffset, (*nb).DataLength()) };
    if (offset as u64) + data.len() as u64 > len as u64 {
        return Err(NbError::TooShort);
    }
    let src = data.as_ptr();
    // SAFETY: as in `read_at`; the caller owns the bytes written.
    unsafe {
        for_each_piece(mdl, off, offset, data.len(), |p, n, done| {
            ptr::copy_nonoverlapping(src.add(done), p, n)
        })
    }
}

/// Calls `f(byte_index, byte)` for `len` bytes starting `offset` bytes after the data start, and
/// returns `Ok(true)` if `f` returned true for every byte. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// As [`read_at`].
pub unsafe fn check_at(
    nb: *const NET_BUFFER,
    offset: u32,
    len: usize,
    mut f: impl FnMut(usize, u8) -> bool,
) -> Result<bool, NbError> {
    // SAFETY: the caller guarantees a valid NB.
    let (mdl, off, dl) = unsafe { ((*nb).CurrentMdl, (*nb).CurrentMdlOffset, (*nb).DataLength()) };
    if (offset as u64) + len as u64 > dl as u64 {
        return Err(NbError::TooShort);
    }
    let mut ok = true;
    // SAFETY: as in `read_at`; each piece is read only.
    unsafe {
        for_each_piece(mdl, off, offset, len, |p, n, done| {
            for i in 0..n {
                ok &= f(done + i, *p.add(i));
            }
        })?;
    }
    Ok(ok)
}

/// Fills `len` bytes starting `offset` bytes after the data start with `f(byte_index)`.
/// IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// As [`write_at`].
pub unsafe fn fill_at(
    nb: *const NET_BUFFER,
    offset: u32,
    len: usize,
    mut f: impl FnMut(usize) -> u8,
) -> Result<(), NbError> {
    // SAFETY: the caller guarantees a valid NB.
    let (mdl, off, dl) = unsafe { ((*nb).CurrentMdl, (*nb).CurrentMdlOffset, (*nb).DataLength()) };
    if (offset as u64) + len as u64 > dl as u64 {
        return Err(NbError::TooShort);
    }
    // SAFETY: as in `write_at`.
    unsafe {
        for_each_piece(mdl, off, offset, len, |p, n, done| {
            for i in 0..n {
                *p.add(i) = f(done + i);
            }
        })
    }
}

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
    // SAFETY: the caller guarantees a valid, owned NB; the walk stops at the chain's end.
    unsafe {
        let mut m = (*nb).MdlChain;
        let mut off = (*nb).DataOffset;
        while !m.is_null() && off >= (*m).ByteCount && !(*m).Next.is_null() {
            off -= (*m).ByteCount;
            m = (*m).Next;
        }
        (*nb).CurrentMdl = m;
        (*nb).CurrentMdlOffset = off;
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

#[cfg(test)]
pub(crate) mod test_chains {
    //! Hand-built MDL chains over host memory for unit tests (no NDIS calls). The NB and the MDLs
    //! live behind raw pointers (from `Box::into_raw`) for the chain's lifetime, so the pointers the
    //! chain links through stay valid under Miri's borrow rules however the test edits them.
    use super::*;
    use std::boxed::Box;
    use std::vec::Vec;

    /// An NB over a chain of MDLs, each over its own buffer.
    pub struct Chain {
        nb: *mut NET_BUFFER,
        pub mdls: Vec<*mut MDL>,
        /// Owns the bytes the MDLs describe (only read through the MDLs).
        #[allow(dead_code)]
        pub bufs: Vec<Vec<u8>>,
    }

    impl Chain {
        /// MDLs of the given sizes; the data starts `data_offset` bytes into the chain and is
        /// `data_length` long. Buffer bytes are `0xA0 ^ index-in-chain`.
        pub fn new(sizes: &[u32], data_offset: u32, data_length: u32) -> Self {
            let mut bufs: Vec<Vec<u8>> = Vec::new();
            let mut k = 0u32;
            for &s in sizes {
                let mut b = Vec::with_capacity(s as usize);
                for _ in 0..s {
                    b.push(0xA0 ^ (k as u8));
                    k += 1;
                }
                bufs.push(b);
            }
            let mut mdls: Vec<*mut MDL> = Vec::new();
            for b in bufs.iter_mut() {
                // SAFETY: (test) an all-zero MDL header is a valid value of the plain-data struct.
                let mut m: Box<MDL> = Box::new(unsafe { core::mem::zeroed() });
                m.ByteCount = b.len() as u32;
                m.MappedSystemVa = b.as_mut_ptr() as PVOID;
                m.StartVa = PAGE_ALIGN(b.as_ptr() as _);
                m.ByteOffset = BYTE_OFFSET(b.as_ptr() as _);
                m.MdlFlags = MDL_SOURCE_IS_NONPAGED_POOL;
                mdls.push(Box::into_raw(m));
            }
            for i in 1..mdls.len() {
                // SAFETY: (test) both MDLs are live boxes owned by this chain.
                unsafe { (*mdls[i - 1]).Next = mdls[i] };
            }
            // SAFETY: (test) an all-zero NET_BUFFER is a valid empty NB.
            let nb: Box<NET_BUFFER> = Box::new(unsafe { core::mem::zeroed() });
            let nb = Box::into_raw(nb);
            // SAFETY: (test) the NB was just allocated.
            unsafe {
                (*nb).MdlChain = mdls.first().copied().unwrap_or(ptr::null_mut());
                (*nb).DataOffset = data_offset;
                (*nb).SetDataLength(data_length);
            }
            let chain = Chain { nb, mdls, bufs };
            chain.normalise();
            chain
        }

        /// Sets CurrentMdl/CurrentMdlOffset from DataOffset with NDIS's walk.
        pub fn normalise(&self) {
            // SAFETY: (test) the NB and its chain are ours and valid.
            unsafe {
                let mut off = (*self.nb).DataOffset;
                let mut m = (*self.nb).MdlChain;
                while !m.is_null() && off >= (*m).ByteCount {
                    off -= (*m).ByteCount;
                    m = (*m).Next;
                }
                (*self.nb).CurrentMdl = m;
                (*self.nb).CurrentMdlOffset = off;
            }
        }

        pub fn nb(&self) -> *mut NET_BUFFER {
            self.nb
        }

        /// The NB, for field edits in tests.
        pub fn nb_mut(&mut self) -> &mut NET_BUFFER {
            // SAFETY: (test) the NB is live while the chain is; `&mut self` makes this access unique.
            unsafe { &mut *self.nb }
        }

        /// MDL `i`, for field edits in tests.
        pub fn mdl_mut(&mut self, i: usize) -> &mut MDL {
            // SAFETY: (test) as `nb_mut`.
            unsafe { &mut *self.mdls[i] }
        }

        /// The whole chain's bytes, concatenated.
        pub fn flat(&self) -> Vec<u8> {
            let mut v = Vec::new();
            for &m in &self.mdls {
                // SAFETY: (test) each MDL maps its own live buffer of ByteCount bytes.
                unsafe {
                    let p = (*m).MappedSystemVa as *const u8;
                    v.extend_from_slice(core::slice::from_raw_parts(p, (*m).ByteCount as usize));
                }
            }
            v
        }
    }

    impl Drop for Chain {
        fn drop(&mut self) {
            // SAFETY: (test) every pointer came from Box::into_raw in `new` and is freed once.
            unsafe {
                drop(Box::from_raw(self.nb));
                for &m in &self.mdls {
                    drop(Box::from_raw(m));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_chains::Chain;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn read_spans_mdls_and_zero_length_ones() {
        // 5 | 0 | 3 | 8 bytes; data starts at 4 (inside the first MDL).
        let c = Chain::new(&[5, 0, 3, 8], 4, 12);
        let flat = c.flat();
        let mut buf = vec![0u8; 12];
        // SAFETY: (test) the chain is valid.
        unsafe { read_at(c.nb(), 0, &mut buf) }.unwrap();
        assert_eq!(buf, flat[4..16]);
        let mut part = vec![0u8; 5];
        // SAFETY: (test) as above.
        unsafe { read_at(c.nb(), 3, &mut part) }.unwrap();
        assert_eq!(part, flat[7..12]);
        let mut too_long = vec![0u8; 13];
        // SAFETY: (test) as above.
        let r = unsafe { read_at(c.nb(), 0, &mut too_long) };
        assert_eq!(r, Err(NbError::TooShort));
    }

    #[test]
    fn write_spans_every_split_position() {
        for split in 0..=10u32 {
            let total = 20u32;
            let c = Chain::new(&[split, 4, total - split - 4], 0, total);
            let data: Vec<u8> = (0..total as u8).map(|i| i.wrapping_mul(7)).collect();
            // SAFETY: (test) the chain is valid.
            unsafe { write_at(c.nb(), 0, &data) }.unwrap();
            assert_eq!(c.flat(), data, "split {split}");
            let mut back = vec![0u8; 6];
            // SAFETY: (test) as above.
            unsafe { read_at(c.nb(), 7, &mut back) }.unwrap();
            assert_eq!(back, data[7..13]);
        }
    }

    #[test]
    fn fill_and_check_round_trip() {
        let c = Chain::new(&[3, 3, 3, 3], 2, 10);
        // SAFETY: (test) the chain is valid.
        unsafe { fill_at(c.nb(), 1, 8, |i| 0x5A ^ i as u8) }.unwrap();
        // SAFETY: (test) as above.
        assert!(unsafe { check_at(c.nb(), 1, 8, |i, b| b == 0x5A ^ i as u8) }.unwrap());
        // SAFETY: (test) as above.
        assert!(!unsafe { check_at(c.nb(), 0, 9, |i, b| b == 0x5A ^ i as u8) }.unwrap());
        let flat = c.flat();
        assert_eq!(flat[2], 0xA0 ^ 2, "byte before the fill untouched");
        assert_eq!(flat[11], 0xA0 ^ 11, "byte after the fill untouched");
    }

    #[test]
    fn a_chain_that_ends_early_is_an_error_not_a_crash() {
        let mut c = Chain::new(&[4, 4], 0, 8);
        c.mdl_mut(0).Next = ptr::null_mut();
        let mut buf = [0u8; 8];
        // SAFETY: (test) the chain is valid (shorter than DataLength says).
        let r = unsafe { read_at(c.nb(), 0, &mut buf) };
        assert_eq!(r, Err(NbError::Unmapped));
    }

    #[test]
    fn record_captures_and_applies_all_five_fields() {
        let mut c = Chain::new(&[6, 6], 6, 6);
        // Not normalised on purpose: CurrentMdl at the end of the first MDL.
        let m0 = c.mdls[0];
        c.nb_mut().CurrentMdl = m0;
        c.nb_mut().CurrentMdlOffset = 6;
        // SAFETY: (test) the NB is valid.
        let rec = unsafe { RetreatRecord::capture(c.nb()) };
        c.normalise();
        c.nb_mut().DataOffset = 1;
        c.nb_mut().SetDataLength(11);
        c.nb_mut().MdlChain = ptr::null_mut();
        // SAFETY: (test) as above.
        assert!(!unsafe { rec.matches(c.nb()) });
        // SAFETY: (test) as above.
        unsafe { rec.apply(c.nb()) };
        // SAFETY: (test) as above.
        assert!(unsafe { rec.matches(c.nb()) });
        assert_eq!(c.nb_mut().CurrentMdl, m0);
        assert_eq!(c.nb_mut().CurrentMdlOffset, 6);
    }

    #[test]
    fn park_after_an_in_place_retreat_hands_on_the_callers_current_mdl() {
        // Found by the nb_cursor fuzz target: data start at the very end of the chain, the caller's
        // CurrentMdl is the last MDL with CurrentMdlOffset == ByteCount; after an in-place retreat and
        // the advance back, NDIS's walk leaves CurrentMdl NULL (an equivalent normalisation). The NB
        // handed on must carry the caller's exact five fields.
        let mut c = Chain::new(&[6, 6], 12, 0);
        let m1 = c.mdls[1];
        c.nb_mut().CurrentMdl = m1;
        c.nb_mut().CurrentMdlOffset = 6;
        // SAFETY: (test) valid NB.
        let mut rec = unsafe { RetreatRecord::capture(c.nb()) };
        c.normalise();
        assert!(c.nb_mut().CurrentMdl.is_null());
        // SAFETY: (test) valid NB; the data start is where recorded, no MDL was allocated.
        unsafe { park(c.nb(), &mut rec) }.unwrap();
        assert!(rec.parked.is_null());
        // SAFETY: (test) as above.
        let same = unsafe { rec.matches(c.nb()) };
        assert!(same, "park handed on another CurrentMdl");
        assert_eq!(c.nb_mut().CurrentMdl, m1);
        assert_eq!(c.nb_mut().CurrentMdlOffset, 6);
    }

    #[test]
    fn free_advance_is_safe_only_when_the_head_holds_the_data_start() {
        let c = Chain::new(&[8, 8], 3, 10);
        // SAFETY: (test) valid NB.
        let rec = unsafe { RetreatRecord::capture(c.nb()) };
        // SAFETY: (test) as above.
        assert!(unsafe { free_advance_is_safe(c.nb(), &rec) });
        let d = Chain::new(&[8, 8], 8, 8);
        // SAFETY: (test) valid NB.
        let rec = unsafe { RetreatRecord::capture(d.nb()) };
        // SAFETY: (test) as above.
        let safe = unsafe { free_advance_is_safe(d.nb(), &rec) };
        assert!(!safe, "fully unused foreign head");
        let e = Chain::new(&[0, 8], 0, 8);
        // SAFETY: (test) valid NB.
        let rec = unsafe { RetreatRecord::capture(e.nb()) };
        // SAFETY: (test) as above.
        let safe = unsafe { free_advance_is_safe(e.nb(), &rec) };
        assert!(!safe, "zero-length foreign head");
    }
}
