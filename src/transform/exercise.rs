//! The `exercise` transform: retreat by `DataOffset + ExerciseBytes` so NDIS must call NetAllocateMdl
//! (the shortfall is exactly `ExerciseBytes`, plus `ExerciseBackfill`), fill the new bytes with a
//! pattern through the cursor and read them back, then advance them away again with FreeMdl = FALSE and
//! park the block off the chain (`nb::park`): the NB goes on with exactly the caller's geometry while
//! the block stays allocated until the NBL is completed or returned, on whichever CPU that happens. The
//! restore (`nb/retreat.rs`) links it back and gives it back through NDIS's advance and NetFreeMdl.

use super::TransformError;
use crate::nb::{self, MdlHandlers, RetreatRecord};
use crate::ndis::NetBuffer;
use ndis_sys::NET_BUFFER;

/// The pattern byte `i` of an NB whose pattern seed is `seed`: never constant across an NB, and
/// different between NBs, so stale bytes from a previous use of a block do not read back as correct. Any IRQL.
#[inline]
pub fn pattern_byte(seed: u32, i: usize) -> u8 {
    let mut x = seed ^ (i as u32).wrapping_mul(0x9E37_79B1);
    x = (x ^ (x >> 15)).wrapping_mul(0x85EB_CA6B);
    x = (x ^ (x >> 13)).wrapping_mul(0xC2B2_AE35);
    (x ^ (x >> 16)) as u8
}

/// The seed for an NB (its address, mixed). Any IRQL.
#[inline]
pub fn seed_for(nb: *const NET_BUFFER) -> u32 {
    let a = nb as usize as u64;
    ((a >> 4) ^ (a >> 20)) as u32
}

/// Applies the transform to one NB. `rec` must be freshly captured from `nb`; on return `Ok` the NB's
/// data is as before and `rec.outstanding == 0`; on `Err(Retreat)` the NB is untouched; on any other
/// `Err` the caller must [`nb::restore`] it. Returns the number of bytes written. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `nb` must be a valid NET_BUFFER owned by the caller whose MDLs are mapped.
pub unsafe fn apply(
    nb: *mut NET_BUFFER,
    rec: &mut RetreatRecord,
    bytes: u32,
    backfill: u32,
    handlers: MdlHandlers,
) -> Result<u32, TransformError> {
    // SAFETY: valid NB (caller contract).
    let offset = unsafe { (*nb).DataOffset };
    let delta = offset.checked_add(bytes).ok_or(TransformError::Retreat(
        ndis_sys::NDIS_STATUS_INVALID_LENGTH,
    ))?;
    // SAFETY: valid, owned NB; `rec` was captured from it.
    unsafe { nb::retreat(nb, rec, delta, backfill, handlers) }.map_err(TransformError::Retreat)?;
    let seed = seed_for(nb);
    // SAFETY: a valid, owned, mapped NB (caller contract): NetBuffer's invariant.
    let net = unsafe { NetBuffer::new_unchecked(nb) };
    // The new bytes lie wholly inside the new MDL (the retreat allocated exactly their shortfall):
    // the first `bytes` bytes are our retreated space.
    nb::fill_at(net, 0, bytes as usize, |i| pattern_byte(seed, i))?;
    let ok = nb::check_at(net, 0, bytes as usize, |i, b| b == pattern_byte(seed, i))?;
    if !ok {
        return Err(TransformError::PatternMismatch);
    }
    // SAFETY: the NB has `delta` more bytes than recorded, and `delta == rec.outstanding`.
    unsafe { nb::advance_keep(nb, rec, delta) };
    // The block stays allocated until completion/return, but off the chain: the NB goes on with the
    // caller's exact geometry (see `nb::park`).
    // SAFETY: valid, owned NB; `rec` was captured from it and the data start is back where recorded.
    unsafe { nb::park(nb, rec) }.map_err(TransformError::from)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_not_constant_and_depends_on_the_seed() {
        let a: std::vec::Vec<u8> = (0..64).map(|i| pattern_byte(7, i)).collect();
        let b: std::vec::Vec<u8> = (0..64).map(|i| pattern_byte(8, i)).collect();
        assert_ne!(a, b);
        assert!(a.windows(2).any(|w| w[0] != w[1]));
    }
}
