//! Where the retreat records live: the NBL context area.
//!
//! **Decision (DESIGN §5 "Retreat record").** Each NBL the filter transforms gets one context block from
//! `NdisAllocateNetBufferListContext(nbl, round_up(48 + 48 * NumberOfNetBuffers, 16), 0, NBL_CONTEXT_TAG)`:
//! a 48-byte [`NblContextHeader`] followed by one 48-byte [`RetreatRecord`] per NB, in NB order, the
//! total rounded up to MEMORY_ALLOCATION_ALIGNMENT (16; with today's sizes it already is one): context
//! sizes must be multiples of it so that the next driver's context data stays 16-aligned
//! (ndis-contract.md §6 "NBL context space"; ndis-sim's NBL_CONTEXT_MISALIGNED). The size fits the
//! routine's `USHORT` for up to [`MAX_NBS`] NBs (an NBL with more is completed with
//! NDIS_STATUS_RESOURCES / dropped, counted). FilterRestart raises the ContextBackFillSize of the
//! restart attributes by [`context_size`]`(1)`, so drivers above leave room for the common one-NB NBL
//! and NDIS carves it instead of allocating.
//! NDIS carves the block out of the NBL's context backfill when the allocator of the NBL left room
//! (protocols and NDIS NBL pools normally do), and only otherwise allocates; the filter itself never
//! allocates on the hot path except from the pool. The context is the only per-NBL storage a filter
//! owns while the NBL is below (send) or above (receive) it: `Scratch`, `ProtocolReserved` and
//! `MiniportReserved` belong to other layers then, and the pool block exists only when the retreat
//! allocated, which a fast-path retreat does not.
//!
//! The header names the module that wrote it, the NBL itself and a magic, so the completion and return
//! paths recognise their own NBLs among ones passed through untouched (whose top context, if any,
//! belongs to another driver) without any list or lock; it also keeps the NBL's original
//! `Ieee8021QNetBufferListInfo` when a transform cleared it, and the offload infos the vlan transform
//! moved.
//!
//! Owns: the context layout, its allocation and free. Must not: retreat or restore (nb/, transform/).
//! IRQL: <= DISPATCH_LEVEL everywhere.

use crate::names::tags::NBL_CONTEXT as NBL_CONTEXT_TAG;
use crate::nb::RetreatRecord;
use crate::ndis::NetBuffers;
use ndis_sys::*;

/// `"MdlC"`: a context block written by this filter.
pub const CONTEXT_MAGIC: u32 = u32::from_le_bytes(*b"MdlC");

/// Flags of [`NblContextHeader::flags`].
pub mod flags {
    /// The exercise transform ran on every NB.
    pub const EXERCISE: u16 = 0x1;
    /// The vlan transform ran (NBs whose record has a non-zero `vlan` carry an inserted tag).
    pub const VLAN: u16 = 0x2;
    /// `Ieee8021QNetBufferListInfo` was cleared (or set to the configured tag for the NIC to
    /// insert); `saved_8021q` holds the original.
    pub const OOB_CLEARED: u16 = 0x4;
    /// The checksum / LSO / USO infos were moved by 4 for an in-band tag; `saved_offload` holds the
    /// originals.
    pub const OFFLOAD_SHIFTED: u16 = 0x8;
}

/// The header of the filter's context block. 48 bytes, pointer-aligned.
#[repr(C)]
pub struct NblContextHeader {
    pub magic: u32,
    /// Number of records that follow (= the NBL's NB count).
    pub nb_count: u16,
    pub flags: u16,
    /// The NBL this block belongs to (the recognition check compares it).
    pub nbl: *const NET_BUFFER_LIST,
    /// The NBL's `Ieee8021QNetBufferListInfo` before the transform cleared it.
    pub saved_8021q: PVOID,
    /// The NBL's TcpIpChecksum / TcpLargeSend / UdpSegmentationOffload infos before the vlan
    /// transform moved their offsets.
    pub saved_offload: [PVOID; 3],
}

const HEADER_BYTES: usize = core::mem::size_of::<NblContextHeader>();
const RECORD_BYTES: usize = core::mem::size_of::<RetreatRecord>();
const _: () =
    assert!(HEADER_BYTES == 48 && HEADER_BYTES.is_multiple_of(core::mem::size_of::<PVOID>()));
const _: () = assert!(RECORD_BYTES.is_multiple_of(core::mem::size_of::<PVOID>()));

/// MEMORY_ALLOCATION_ALIGNMENT: every context size is a multiple of it.
const ALIGN: usize = MEMORY_ALLOCATION_ALIGNMENT;
/// The largest multiple of [`ALIGN`] a `USHORT` holds.
const MAX_CONTEXT: usize = u16::MAX as usize / ALIGN * ALIGN;
/// Most NBs per NBL the context can describe (`ContextSize` is a USHORT).
pub const MAX_NBS: usize = (MAX_CONTEXT - HEADER_BYTES) / RECORD_BYTES;

/// The context size for `nb_count` NBs (header + records rounded up to a multiple of
/// MEMORY_ALLOCATION_ALIGNMENT), or `None` above [`MAX_NBS`]. Any IRQL.
pub const fn context_size(nb_count: usize) -> Option<u16> {
    if nb_count > MAX_NBS {
        return None;
    }
    let raw = HEADER_BYTES + RECORD_BYTES * nb_count;
    Some(raw.div_ceil(ALIGN).saturating_mul(ALIGN) as u16)
}

/// Number of NBs in an NBL. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `nbl` must be a valid NBL.
pub unsafe fn nb_count(nbl: *const NET_BUFFER_LIST) -> usize {
    // SAFETY: valid NBL (caller contract); the walk only reads its NBs' `Next`.
    unsafe { NetBuffers::of(nbl) }.count()
}

/// The filter's context on one NBL: the header and the records, in the NBL's context area.
pub struct NblContext {
    header: *mut NblContextHeader,
}

impl NblContext {
    /// Allocates the context for `nbl` (one record per NB, zeroed). `Err` with the NDIS status when
    /// NDIS could not allocate it, or NDIS_STATUS_RESOURCES for too many NBs. IRQL <= DISPATCH_LEVEL.
    ///
    /// # Safety
    /// `nbl` must be a valid NBL owned by the caller.
    pub unsafe fn allocate(nbl: *mut NET_BUFFER_LIST, flags: u16) -> Result<Self, NDIS_STATUS> {
        // SAFETY: valid NBL.
        let n = unsafe { nb_count(nbl) };
        let size = context_size(n).ok_or(NDIS_STATUS_RESOURCES)?;
        // SAFETY: valid, owned NBL; size and backfill are multiples of MEMORY_ALLOCATION_ALIGNMENT.
        let status = unsafe { NdisAllocateNetBufferListContext(nbl, size, 0, NBL_CONTEXT_TAG) };
        if status != NDIS_STATUS_SUCCESS {
            return Err(status);
        }
        // SAFETY: the allocation succeeded, so Context is non-NULL and its data holds `size` bytes,
        // aligned to MEMORY_ALLOCATION_ALIGNMENT.
        let data = unsafe { NET_BUFFER_LIST_CONTEXT_DATA_START(nbl) };
        let header = data as *mut NblContextHeader;
        // SAFETY: `data` holds `size` writable bytes: the header, then `n` records.
        unsafe {
            header.write(NblContextHeader {
                magic: CONTEXT_MAGIC,
                nb_count: n as u16,
                flags,
                nbl,
                saved_8021q: core::ptr::null_mut(),
                saved_offload: [core::ptr::null_mut(); 3],
            });
            core::ptr::write_bytes(data.add(HEADER_BYTES), 0, RECORD_BYTES * n);
        }
        Ok(Self { header })
    }

    /// The filter's context on `nbl`, if its top context block is one this filter wrote for it.
    /// IRQL <= DISPATCH_LEVEL.
    ///
    /// # Safety
    /// `nbl` must be a valid NBL owned by the caller.
    pub unsafe fn find(nbl: *mut NET_BUFFER_LIST) -> Option<Self> {
        // SAFETY: valid NBL.
        let ctx = unsafe { (*nbl).Context };
        if ctx.is_null() {
            return None;
        }
        // SAFETY: a non-NULL Context is a valid context header (NDIS invariant).
        let (size, offset) = unsafe { ((*ctx).Size, (*ctx).Offset) };
        // The block's area is `Size` bytes and NDIS fills it downward from its end, so the data start
        // (`Offset` bytes into the area) has `Size - Offset` bytes behind it. Everything read below must
        // lie inside them; an empty or nearly full top block is not ours.
        let room = (size as usize).saturating_sub(offset as usize);
        if room < HEADER_BYTES {
            return None;
        }
        // SAFETY: valid context; the data start holds at least HEADER_BYTES bytes (checked above).
        let header = unsafe { NET_BUFFER_LIST_CONTEXT_DATA_START(nbl) } as *mut NblContextHeader;
        // SAFETY: as above; read only.
        let (magic, count, owner) = unsafe { ((*header).magic, (*header).nb_count, (*header).nbl) };
        if magic != CONTEXT_MAGIC || !core::ptr::eq(owner, nbl) {
            return None;
        }
        match context_size(count as usize) {
            Some(need) if need as usize <= room => {}
            _ => return None,
        }
        Some(Self { header })
    }

    /// The header. Any IRQL.
    pub fn header(&self) -> &NblContextHeader {
        // SAFETY: `header` points into the live context block of an NBL the caller owns.
        unsafe { &*self.header }
    }

    /// The header, mutably. Any IRQL.
    pub fn header_mut(&mut self) -> &mut NblContextHeader {
        // SAFETY: as `header`; `&mut self` makes the access exclusive.
        unsafe { &mut *self.header }
    }

    /// Record `i` (`i < nb_count`). Any IRQL.
    pub fn record(&mut self, i: usize) -> Option<&mut RetreatRecord> {
        if i >= self.header().nb_count as usize {
            return None;
        }
        // SAFETY: records follow the header inside the block; `i < nb_count`; the block is
        // pointer-aligned and each record is 48 bytes, so the record is aligned.
        Some(unsafe {
            &mut *((self.header as *mut u8).add(HEADER_BYTES) as *mut RetreatRecord).add(i)
        })
    }

    /// Frees the context block (after the records were used). The magic is wiped first so a stale
    /// pointer cannot be recognised again. IRQL <= DISPATCH_LEVEL.
    ///
    /// # Safety
    /// `nbl` must be the NBL this context was allocated on, owned by the caller, whose top context is
    /// still this block.
    pub unsafe fn free(self, nbl: *mut NET_BUFFER_LIST) {
        let size = context_size(self.header().nb_count as usize).unwrap_or(0);
        // SAFETY: the header is live until the free below.
        unsafe { (*self.header).magic = 0 };
        // SAFETY: the same size that was allocated; this block is the NBL's top context.
        unsafe { NdisFreeNetBufferListContext(nbl, size) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_documented_rules() {
        assert_eq!(context_size(1), Some(96));
        assert_eq!(context_size(0), Some(48));
        assert_eq!(context_size(2), Some(144));
        for n in [0, 1, 2, 3, 17, MAX_NBS] {
            let s = context_size(n).unwrap() as usize;
            assert_eq!(s % MEMORY_ALLOCATION_ALIGNMENT, 0);
            assert!(s >= HEADER_BYTES + RECORD_BYTES * n);
        }
        assert_eq!(context_size(MAX_NBS + 1), None);
    }
}
