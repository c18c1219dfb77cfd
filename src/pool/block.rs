//! One pool block: a single nonpaged allocation laid out as `[BlockHeader | MDL + PFN array | data]`.
//!
//! Owns: the layout, construction (the MDL is built once, here), destruction, and the check that turns
//! an `MDL*` handed back by NDIS into one of our headers (or rejects it as foreign). It must not touch
//! magazines or statistics.
//!
//! Layout (x64, offsets from the start of the allocation):
//! - `0x00` [`BlockHeader`] (16 bytes): magic (with the owning pool's serial), in-flight state, data
//!   capacity, class, data offset;
//! - `0x10` `MDL` (0x30 bytes; header + MDL fill one 64-byte line when the block is line-aligned, so an
//!   allocation's writes to the state, `Next` and `ByteCount` touch one line), then its PFN array (8 bytes
//!   per page);
//! - data, 16-byte aligned, right after the PFN array (`0x50` for a block below a page: one PFN).
//!
//! A block of a size class is smaller than a page, so (by the platform contract) it never crosses a page
//! boundary: its data spans exactly one page and its MDL has exactly one PFN. An oversize block has a PFN
//! array sized for the worst-case span of its data.

use super::platform::Platform;
use core::ffi::c_void;
use core::sync::atomic::{AtomicU32, Ordering};
use ndis_sys::{ADDRESS_AND_SIZE_TO_SPAN_PAGES, MDL, PAGE_SIZE};

/// `"MdlP"`: marks a live pool block (cached or in flight); each pool mixes its own serial into the high
/// half, so blocks of another pool (or of an earlier pool at the same address) are not taken for its own.
/// Together with the 32-bit in-flight `state` a foreign MDL must match 64 bits to pass.
pub(crate) const BLOCK_MAGIC: u32 = u32::from_le_bytes(*b"MdlP");
/// Written over the magic when a block is returned to the system, so a stale pointer fails the check.
pub(crate) const DEAD_MAGIC: u32 = u32::from_le_bytes(*b"dead");
/// Class index of an oversize (uncached) block.
pub(crate) const OVERSIZE_CLASS: u16 = 0xFFFF;
/// `state` of a block held by the pool (in a magazine or the depot).
pub(crate) const STATE_CACHED: u32 = 0x4341_4348; // "HCAC"
/// `state` of a block handed out and not yet freed.
pub(crate) const STATE_IN_FLIGHT: u32 = 0x464C_4954; // "TILF"

/// Bytes of the header; the MDL starts here.
pub const HEADER_BYTES: usize = 16;
const MDL_BYTES: usize = core::mem::size_of::<MDL>();
const PFN_BYTES: usize = 8;

/// The header at the start of every block.
#[repr(C, align(16))]
pub(crate) struct BlockHeader {
    /// The pool's block magic while the block exists.
    pub(crate) magic: u32,
    /// [`STATE_CACHED`] or [`STATE_IN_FLIGHT`]: a relaxed atomic, so that even a racing double free by a
    /// buggy caller is detected (best effort) without undefined behaviour.
    pub(crate) state: AtomicU32,
    /// Data capacity in bytes (the class size, or the requested size of an oversize block).
    pub(crate) capacity: u32,
    /// Size-class index, or [`OVERSIZE_CLASS`].
    pub(crate) class: u16,
    /// Offset of the data from the start of the block (the whole allocation is `data_offset + capacity`).
    pub(crate) data_offset: u16,
}

const _: () = assert!(core::mem::size_of::<BlockHeader>() == HEADER_BYTES);
const _: () = assert!(MDL_BYTES == 0x30);

/// PFN entries reserved for a block whose data has `capacity` bytes.
#[inline]
pub(crate) const fn pfn_slots(capacity: usize, small: bool) -> usize {
    if small {
        1
    } else {
        // Worst case: the data starts at the last byte of a page.
        capacity.div_ceil(PAGE_SIZE) + 1
    }
}

/// Offset of the data from the block start.
#[inline]
pub(crate) const fn data_offset(pfns: usize) -> usize {
    (HEADER_BYTES + MDL_BYTES + PFN_BYTES * pfns).next_multiple_of(16)
}

/// Smallest `MappedSystemVa - mdl` of our blocks (a class block: one PFN).
const MIN_DATA_DISTANCE: usize = data_offset(1) - HEADER_BYTES;
/// Largest `MappedSystemVa - mdl` of our blocks (an oversize block of the largest accepted request).
const MAX_DATA_DISTANCE: usize =
    data_offset(pfn_slots(super::MAX_REQUEST_LIMIT as usize, false)) - HEADER_BYTES;

/// Whole allocation size of a small (class) block with `capacity` data bytes.
#[inline]
pub const fn class_block_bytes(capacity: usize) -> usize {
    data_offset(1) + capacity
}

impl BlockHeader {
    /// The block's MDL.
    #[inline(always)]
    pub(crate) fn mdl(this: *mut BlockHeader) -> *mut MDL {
        this.cast::<u8>().wrapping_add(HEADER_BYTES).cast::<MDL>()
    }
}

/// Allocates and constructs one block: header written, MDL built for `capacity` bytes of data.
/// Returns NULL if the platform has no memory or breaks the page-span promise.
/// IRQL <= DISPATCH_LEVEL.
pub(crate) fn construct<P: Platform>(
    platform: &P,
    magic: u32,
    class: u16,
    capacity: usize,
) -> *mut BlockHeader {
    let small = class != OVERSIZE_CLASS;
    let pfns = pfn_slots(capacity, small);
    let offset = data_offset(pfns);
    let bytes = offset + capacity;
    if bytes > u32::MAX as usize || offset > u16::MAX as usize || capacity == 0 {
        return core::ptr::null_mut();
    }
    let base = platform.alloc_block(bytes);
    if base.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: `offset < bytes`, so the data pointer stays inside the fresh allocation.
    let data = unsafe { base.add(offset) };
    // The MDL built below has one PFN per page the data spans; refuse rather than overrun the array.
    if ADDRESS_AND_SIZE_TO_SPAN_PAGES(data as *const c_void, capacity) > pfns {
        // SAFETY: `base` came from `alloc_block(bytes)` and was never handed out.
        unsafe { platform.free_block(base, bytes) };
        return core::ptr::null_mut();
    }
    let header = base.cast::<BlockHeader>();
    // SAFETY: `base` is a fresh, 16-byte-aligned, writable region of `bytes >= HEADER_BYTES` bytes.
    unsafe {
        header.write(BlockHeader {
            magic,
            state: AtomicU32::new(STATE_CACHED),
            capacity: capacity as u32,
            class,
            data_offset: offset as u16,
        });
    }
    let mdl = BlockHeader::mdl(header);
    // SAFETY: the MDL region holds `MDL_BYTES + PFN_BYTES * pfns` bytes, which is at least
    // `MmSizeOfMdl(data, capacity)` by the span check above; the data is nonpaged and lives as long as
    // the block.
    unsafe { platform.build_mdl(mdl, data, capacity) };
    header
}

/// Returns a cached (not in-flight) block to the system. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `block` is a live block of a pool on `platform`, owned exclusively by the caller.
pub(crate) unsafe fn destroy<P: Platform>(platform: &P, block: *mut BlockHeader) {
    // SAFETY: the caller owns the live block exclusively.
    let bytes = unsafe {
        (*block).magic = DEAD_MAGIC;
        (*block).data_offset as usize + (*block).capacity as usize
    };
    // SAFETY: the block was allocated by `construct` with exactly `bytes` bytes on this platform.
    unsafe { platform.free_block(block.cast::<u8>(), bytes) };
}

/// Why an MDL handed to the pool is not one of its in-flight blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Not a pool block at all (or of another pool).
    Foreign,
    /// A block of this pool that is not in flight: a double free.
    NotInFlight,
}

/// Finds the header of `mdl` if it is a live block of the pool whose block magic is `magic`.
///
/// First the MDL itself is checked: ours map their data at a fixed distance after the MDL
/// (`MappedSystemVa - mdl` is 16-aligned, at least the small-block distance and at most the largest
/// oversize one), which most foreign MDLs (data in a separate buffer) fail without anything outside the
/// MDL being read. Only then is the 16-byte block header right before the MDL read, and only when it lies
/// in the same page as the MDL (every block of ours satisfies this: a block below a page does not cross a
/// page, an oversize block is page-aligned with its header first), so a foreign MDL at the start of a
/// page never makes us touch the previous page.
///
/// # Safety
/// `mdl` points to a readable MDL, and the page holding it is readable from its start (always true for
/// kernel memory holding an MDL).
#[inline]
pub(crate) unsafe fn lookup(mdl: *mut MDL, magic: u32) -> Result<*mut BlockHeader, Rejected> {
    let addr = mdl as usize;
    if !addr.is_multiple_of(16) || addr & (PAGE_SIZE - 1) < HEADER_BYTES {
        return Err(Rejected::Foreign);
    }
    // SAFETY: `mdl` is a readable MDL (caller).
    let distance = unsafe { (*mdl).MappedSystemVa } as usize;
    let distance = distance.wrapping_sub(addr);
    if !(MIN_DATA_DISTANCE..=MAX_DATA_DISTANCE).contains(&distance) || !distance.is_multiple_of(16)
    {
        return Err(Rejected::Foreign);
    }
    let header = mdl
        .cast::<u8>()
        .wrapping_sub(HEADER_BYTES)
        .cast::<BlockHeader>();
    // SAFETY: the header is 16-aligned and lies in the same page as the MDL, which the caller
    // guarantees is readable; it is only read.
    let found = unsafe { (*header).magic };
    // The magic carries the pool's serial, so it alone identifies the owner.
    if found != magic {
        return Err(Rejected::Foreign);
    }
    Ok(header)
}

/// Marks a block in flight and sets the two MDL fields an allocation may change.
///
/// # Safety
/// `block` is a live cached block the caller now owns; `size <= capacity`.
#[inline(always)]
pub(crate) unsafe fn hand_out(block: *mut BlockHeader, size: u32) -> *mut MDL {
    let mdl = BlockHeader::mdl(block);
    // SAFETY: the caller owns the live block; its MDL was built at construction.
    unsafe {
        (*block).state.store(STATE_IN_FLIGHT, Ordering::Relaxed);
        (*mdl).Next = core::ptr::null_mut();
        (*mdl).ByteCount = size;
    }
    mdl
}

/// Marks a looked-up block as returned; fails (leaving it untouched) if it was not in flight.
///
/// # Safety
/// `block` came from [`lookup`].
#[inline(always)]
pub(crate) unsafe fn take_back(block: *mut BlockHeader) -> Result<(), Rejected> {
    // SAFETY: `lookup` found a live header.
    let state = unsafe { &(*block).state };
    if state.load(Ordering::Relaxed) != STATE_IN_FLIGHT {
        return Err(Rejected::NotInFlight);
    }
    state.store(STATE_CACHED, Ordering::Relaxed);
    Ok(())
}
