//! Reading NBLs, NBs and MDL chains, bounded and never outside an MDL's ByteCount: chain walks,
//! frame and headroom bytes, the MAC header's contiguity.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------
// MDL chain helpers (bounded; never read outside an MDL's ByteCount)

/// The system VA an MDL maps (MappedSystemVa when built/mapped, else StartVa + ByteOffset).
///
/// # Safety
/// `mdl` must be a valid MDL header.
pub(crate) unsafe fn mdl_va(mdl: *const MDL) -> *mut u8 {
    // SAFETY: the caller guarantees a valid header.
    let m = unsafe { &*mdl };
    if m.MdlFlags & (MDL_MAPPED_TO_SYSTEM_VA | MDL_SOURCE_IS_NONPAGED_POOL) != 0 {
        m.MappedSystemVa as *mut u8
    } else {
        (m.StartVa as usize + m.ByteOffset as usize) as *mut u8
    }
}

/// The observed CurrentMdl walk: skip MDLs while `off >= ByteCount`.
///
/// # Safety
/// The chain from `mdl` must consist of valid MDL headers.
pub(super) unsafe fn walk(mut mdl: *mut MDL, mut off: u32) -> (*mut MDL, u32) {
    // SAFETY: the caller guarantees valid headers along the chain.
    unsafe {
        while !mdl.is_null() && off >= (*mdl).ByteCount {
            off -= (*mdl).ByteCount;
            mdl = (*mdl).Next;
        }
    }
    (mdl, off)
}

/// Reads `len` bytes at chain offset `from` of an MDL chain, or None when the chain is too short.
///
/// # Safety
/// The chain's MDLs must be valid and describe readable memory.
pub(crate) unsafe fn read_chain(
    mut mdl: *const MDL,
    mut from: usize,
    len: usize,
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(len);
    let mut hops = 0;
    while out.len() < len {
        if mdl.is_null() || hops > MAX_CHAIN {
            return None;
        }
        hops += 1;
        // SAFETY: valid header (caller's guarantee).
        let bc = unsafe { (*mdl).ByteCount } as usize;
        if from >= bc {
            from -= bc;
        } else {
            let take = (bc - from).min(len - out.len());
            // SAFETY: [from, from+take) lies inside the MDL's ByteCount bytes of mapped memory.
            let src = unsafe { std::slice::from_raw_parts(mdl_va(mdl).add(from), take) };
            out.extend_from_slice(src);
            from = 0;
        }
        // SAFETY: as above.
        mdl = unsafe { (*mdl).Next };
    }
    Some(out)
}

/// The NB's frame bytes `[DataOffset, DataOffset + DataLength)`.
///
/// # Safety
/// `nb` must be a valid NB with a valid chain.
pub(crate) unsafe fn nb_frame(nb: *const NET_BUFFER) -> Option<Vec<u8>> {
    // SAFETY: caller's guarantee.
    unsafe {
        read_chain(
            (*nb).MdlChain,
            (*nb).DataOffset as usize,
            (*nb).DataLength() as usize,
        )
    }
}

/// The bytes of an NB's chain in front of its data start (`[0, DataOffset)`): its unused space.
///
/// # Safety
/// As [`nb_frame`].
pub(crate) unsafe fn nb_headroom(nb: *const NET_BUFFER) -> Option<Vec<u8>> {
    // SAFETY: caller's guarantee.
    unsafe { read_chain((*nb).MdlChain, 0, (*nb).DataOffset as usize) }
}

/// The NBs of an NBL, bounded.
///
/// # Safety
/// `nbl` must be a valid NBL with a valid NB list.
pub(crate) unsafe fn nbs_of(nbl: *const NET_BUFFER_LIST) -> Vec<*mut NET_BUFFER> {
    let mut v = Vec::new();
    // SAFETY: caller's guarantee.
    let mut nb = unsafe { (*nbl).FirstNetBuffer };
    while !nb.is_null() && v.len() <= MAX_CHAIN {
        v.push(nb);
        // SAFETY: caller's guarantee.
        nb = unsafe { (*nb).Next };
    }
    v
}

/// The NBLs of a chain, bounded.
///
/// # Safety
/// The chain must consist of valid NBLs.
pub(crate) unsafe fn nbl_chain(mut nbl: *mut NET_BUFFER_LIST) -> Vec<*mut NET_BUFFER_LIST> {
    let mut v = Vec::new();
    while !nbl.is_null() && v.len() < 1 << 20 {
        v.push(nbl);
        // SAFETY: caller's guarantee.
        nbl = unsafe { (*nbl).Next };
    }
    v
}

/// Bytes of the MAC header of `frame`: 14, or 18 when bytes 12..14 are an 802.1Q/802.1ad TPID.
pub fn mac_header_len(frame: &[u8]) -> usize {
    match frame.get(12..14) {
        Some([0x81, 0x00]) | Some([0x88, 0xA8]) => 18,
        _ => 14,
    }
}

/// Whether the first `len` data bytes of `nb` lie in one MDL (the one holding the data start).
///
/// # Safety
/// `nb` must be a valid NB whose chain consists of valid MDLs.
pub(crate) unsafe fn head_contiguous(nb: *const NET_BUFFER, len: usize) -> bool {
    // SAFETY: caller's guarantee.
    let (mut m, mut off) = unsafe { ((*nb).CurrentMdl as *const MDL, (*nb).CurrentMdlOffset) };
    let mut hops = 0;
    while !m.is_null() && hops < MAX_CHAIN {
        // SAFETY: caller's guarantee.
        let bc = unsafe { (*m).ByteCount };
        if off < bc {
            return (bc - off) as usize >= len;
        }
        off -= bc;
        // SAFETY: as above.
        m = unsafe { (*m).Next };
        hops += 1;
    }
    false
}
