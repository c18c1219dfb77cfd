//! The cursor: every byte the filter reads or writes in a frame goes through [`read_at`] /
//! [`write_at`] / [`check_at`] / [`fill_at`], which walk the NB's MDL chain from its data start (an
//! [`MdlPos`]) piece by piece, mapping each MDL on first use.
//!
//! Owns: MDL-chain byte access. Must not: retreat, advance or restore (`retreat.rs`), or decide what
//! to write (`transform/`). IRQL <= DISPATCH_LEVEL (MmGetSystemAddressForMdlSafe's); no allocation.

use crate::ndis::{MdlPos, NetBuffer};
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

/// Walks from `start` (the NB's data start, `CurrentMdl` at `CurrentMdlOffset`) forward by `skip`
/// bytes and then calls `f(ptr, len, done)` for each contiguous piece of the next `len` bytes.
///
/// # Safety
/// `start.mdl` must start a valid MDL chain whose MDLs describe memory valid for the NB's data, mapped
/// or locked (mapped here on first use).
#[inline]
unsafe fn for_each_piece(
    start: MdlPos,
    skip: u32,
    len: usize,
    mut f: impl FnMut(*mut u8, usize, usize),
) -> Result<(), NbError> {
    let mut mdl = start.mdl;
    let mut skip = skip as u64 + start.offset as u64;
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
        let start = skip as usize;
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

/// The data start of `nb` if `len` bytes from `offset` bytes after it lie inside its data.
#[inline]
fn data_start_for(nb: NetBuffer, offset: u32, len: usize) -> Result<MdlPos, NbError> {
    if (offset as u64) + len as u64 > nb.data_length() as u64 {
        return Err(NbError::TooShort);
    }
    Ok(nb.data_start())
}

/// Copies `buf.len()` bytes starting `offset` bytes after the NB's data start into `buf`.
/// IRQL <= DISPATCH_LEVEL.
pub fn read_at(nb: NetBuffer, offset: u32, buf: &mut [u8]) -> Result<(), NbError> {
    let start = data_start_for(nb, offset, buf.len())?;
    let dst = buf.as_mut_ptr();
    // SAFETY: NetBuffer's invariant: the NB's chain is valid and mapped or locked. Each piece lies
    // inside one MDL's buffer and `done + n <= buf.len()`, so the copy stays inside both.
    unsafe {
        for_each_piece(start, offset, buf.len(), |p, n, done| {
            ptr::copy_nonoverlapping(p as *const u8, dst.add(done), n)
        })
    }
}

/// Copies `data` into the NB starting `offset` bytes after its data start. The bytes are the
/// holder's to write (NetBuffer's invariant: it owns the NB; the data start and length bound the
/// write). IRQL <= DISPATCH_LEVEL.
pub fn write_at(nb: NetBuffer, offset: u32, data: &[u8]) -> Result<(), NbError> {
    let start = data_start_for(nb, offset, data.len())?;
    let src = data.as_ptr();
    // SAFETY: as in `read_at`; the holder owns the bytes written (NetBuffer's invariant).
    unsafe {
        for_each_piece(start, offset, data.len(), |p, n, done| {
            ptr::copy_nonoverlapping(src.add(done), p, n)
        })
    }
}

/// Calls `f(byte_index, byte)` for `len` bytes starting `offset` bytes after the data start, and
/// returns `Ok(true)` if `f` returned true for every byte. IRQL <= DISPATCH_LEVEL.
pub fn check_at(
    nb: NetBuffer,
    offset: u32,
    len: usize,
    mut f: impl FnMut(usize, u8) -> bool,
) -> Result<bool, NbError> {
    let start = data_start_for(nb, offset, len)?;
    let mut ok = true;
    // SAFETY: as in `read_at`; each piece is read only.
    unsafe {
        for_each_piece(start, offset, len, |p, n, done| {
            for i in 0..n {
                ok &= f(done + i, *p.add(i));
            }
        })?;
    }
    Ok(ok)
}

/// Fills `len` bytes starting `offset` bytes after the data start with `f(byte_index)`.
/// IRQL <= DISPATCH_LEVEL.
pub fn fill_at(
    nb: NetBuffer,
    offset: u32,
    len: usize,
    mut f: impl FnMut(usize) -> u8,
) -> Result<(), NbError> {
    let start = data_start_for(nb, offset, len)?;
    // SAFETY: as in `write_at`.
    unsafe {
        for_each_piece(start, offset, len, |p, n, done| {
            for i in 0..n {
                *p.add(i) = f(done + i);
            }
        })
    }
}
