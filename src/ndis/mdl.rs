//! [`MdlPos`]: a position in an MDL chain, the unit the `nb/` cursor walks in (an NB's data start is
//! `CurrentMdl` at `CurrentMdlOffset`; a retreat record keeps one too).
//!
//! Owns: walking an MDL chain's `Next` links to a byte offset. Must not: map, allocate or free MDLs.
//! IRQL: any.

use ndis_sys::MDL;

/// `offset` bytes into the buffer `mdl` describes. A plain value: what it may be used for is said by
/// the routine that takes it (the cursor needs `mdl` to start a readable MDL chain).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MdlPos {
    pub mdl: *mut MDL,
    pub offset: u32,
}

impl MdlPos {
    /// NDIS's normalisation of a data start `offset` bytes into the chain `chain`: skip every MDL the
    /// offset passes wholly, but never past the chain's last MDL (NdisAdvance/Retreat leave
    /// `CurrentMdl` on the last MDL when the data start is its end). Any IRQL.
    ///
    /// # Safety
    /// `chain` must be NULL or start a NULL-terminated chain of readable MDLs.
    #[inline]
    pub unsafe fn locate(chain: *mut MDL, offset: u32) -> Self {
        let (mut mdl, mut offset) = (chain, offset);
        // SAFETY: every MDL reached is one of the caller's readable chain; the walk stops at its end.
        unsafe {
            while !mdl.is_null() && offset >= (*mdl).ByteCount && !(*mdl).Next.is_null() {
                offset -= (*mdl).ByteCount;
                mdl = (*mdl).Next;
            }
        }
        Self { mdl, offset }
    }

    /// The position `n` bytes after this one: the MDL holding that byte and the offset inside it
    /// (MDLs that end before it, zero-length ones included, are passed), or `None` when the chain
    /// ends first. Any IRQL.
    ///
    /// # Safety
    /// `self.mdl` must be NULL or start a NULL-terminated chain of readable MDLs.
    #[inline]
    pub unsafe fn seek(self, n: u32) -> Option<Self> {
        let mut mdl = self.mdl;
        let mut skip = self.offset as u64 + n as u64;
        while !mdl.is_null() {
            // SAFETY: an MDL of the caller's readable chain.
            let count = unsafe { (*mdl).ByteCount } as u64;
            if skip < count {
                return Some(Self {
                    mdl,
                    offset: skip as u32,
                });
            }
            skip -= count;
            // SAFETY: as above.
            mdl = unsafe { (*mdl).Next };
        }
        None
    }
}
