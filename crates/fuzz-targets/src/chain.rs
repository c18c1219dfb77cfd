//! An independent view of an NB's MDL chain for the targets' models: walks `MdlChain` / `Next`
//! and reads/writes each MDL's mapped bytes directly (never through `mdlpool::nb`).

use ndis_sys::*;

/// Upper bound on chain length the walkers accept (a cycle would otherwise never end).
const MAX_MDLS: usize = 4096;

/// The MDLs of `nb`'s chain, head first.
///
/// # Safety
/// `nb` must be a valid NET_BUFFER with a valid chain.
pub unsafe fn mdls(nb: *const NET_BUFFER) -> Vec<*mut MDL> {
    let mut v = Vec::new();
    // SAFETY: caller's guarantee.
    let mut m = unsafe { (*nb).MdlChain };
    while !m.is_null() {
        assert!(
            v.len() < MAX_MDLS,
            "MDL chain longer than {MAX_MDLS}: cycle?"
        );
        v.push(m);
        // SAFETY: a live MDL of the chain.
        m = unsafe { (*m).Next };
    }
    v
}

/// The bytes an MDL describes.
///
/// # Safety
/// `m` must be a valid, mapped MDL.
pub unsafe fn mdl_bytes<'a>(m: *const MDL) -> &'a mut [u8] {
    // SAFETY: caller's guarantee: MappedSystemVa maps ByteCount bytes.
    unsafe {
        let va = (*m).MappedSystemVa as *mut u8;
        assert!(!va.is_null(), "unmapped MDL in a target's chain");
        core::slice::from_raw_parts_mut(va, (*m).ByteCount as usize)
    }
}

/// Every MDL's bytes, in chain order.
///
/// # Safety
/// As [`mdls`]; every MDL mapped.
pub unsafe fn snapshot(list: &[*mut MDL]) -> Vec<Vec<u8>> {
    // SAFETY: caller's guarantee.
    list.iter()
        .map(|&m| unsafe { mdl_bytes(m) }.to_vec())
        .collect()
}

/// The whole chain's bytes, concatenated.
///
/// # Safety
/// As [`snapshot`].
pub unsafe fn flat(nb: *const NET_BUFFER) -> Vec<u8> {
    // SAFETY: caller's guarantee.
    unsafe { snapshot(&mdls(nb)) }.concat()
}

/// The NB's data bytes `[DataOffset, DataOffset + DataLength)`.
///
/// # Safety
/// As [`snapshot`].
pub unsafe fn data(nb: *const NET_BUFFER) -> Vec<u8> {
    // SAFETY: caller's guarantee.
    let (all, off, len) = unsafe { (flat(nb), (*nb).DataOffset, (*nb).DataLength()) };
    all[off as usize..off as usize + len as usize].to_vec()
}

/// Writes `bytes` into the chain starting at chain offset `at`.
///
/// # Safety
/// As [`snapshot`]; the chain must hold `at + bytes.len()` bytes.
pub unsafe fn write(nb: *const NET_BUFFER, at: usize, bytes: &[u8]) {
    let mut pos = 0usize;
    // SAFETY: caller's guarantee.
    for m in unsafe { mdls(nb) } {
        // SAFETY: as above.
        let b = unsafe { mdl_bytes(m) };
        for (i, x) in b.iter_mut().enumerate() {
            let p = pos + i;
            if p >= at && p < at + bytes.len() {
                *x = bytes[p - at];
            }
        }
        pos += b.len();
    }
}

/// The five NET_BUFFER fields a retreat/advance may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fields {
    pub mdl_chain: usize,
    pub current_mdl: usize,
    pub current_mdl_offset: u32,
    pub data_offset: u32,
    pub data_length: u32,
}

/// Reads the five fields.
///
/// # Safety
/// `nb` must be a valid NET_BUFFER.
pub unsafe fn fields(nb: *const NET_BUFFER) -> Fields {
    // SAFETY: caller's guarantee.
    unsafe {
        Fields {
            mdl_chain: (*nb).MdlChain as usize,
            current_mdl: (*nb).CurrentMdl as usize,
            current_mdl_offset: (*nb).CurrentMdlOffset,
            data_offset: (*nb).DataOffset,
            data_length: (*nb).DataLength(),
        }
    }
}

/// Whether CurrentMdl + CurrentMdlOffset locate DataOffset in the chain (NDIS's invariant).
///
/// # Safety
/// As [`mdls`].
pub unsafe fn current_is_consistent(nb: *const NET_BUFFER) -> bool {
    // SAFETY: caller's guarantee.
    let (cur, off, data_offset) =
        unsafe { ((*nb).CurrentMdl, (*nb).CurrentMdlOffset, (*nb).DataOffset) };
    let mut pos = 0u64;
    // SAFETY: as above.
    for m in unsafe { mdls(nb) } {
        if m == cur {
            return pos + off as u64 == data_offset as u64;
        }
        // SAFETY: live MDL.
        pos += unsafe { (*m).ByteCount } as u64;
    }
    cur.is_null() && pos + off as u64 == data_offset as u64
}

/// Every (CurrentMdl, CurrentMdlOffset) pair that locates `data_offset` with the offset inside its
/// MDL (`0..=ByteCount`): the equivalent normalisations a driver may be handed.
///
/// # Safety
/// As [`mdls`].
pub unsafe fn current_choices(nb: *const NET_BUFFER) -> Vec<(*mut MDL, u32)> {
    // SAFETY: caller's guarantee.
    let data_offset = unsafe { (*nb).DataOffset } as u64;
    let mut v = Vec::new();
    let mut pos = 0u64;
    // SAFETY: as above.
    for m in unsafe { mdls(nb) } {
        // SAFETY: live MDL.
        let bc = unsafe { (*m).ByteCount } as u64;
        if pos <= data_offset && data_offset <= pos + bc {
            v.push((m, (data_offset - pos) as u32));
        }
        pos += bc;
    }
    v
}

/// The frame with an 802.1Q tag inserted after the addresses when `tci` is given, the frame has at
/// least 14 bytes and is not already tagged (TPID 0x8100 or 0x88A8): IEEE 802.1Q's wire format.
pub fn vlan_model(frame: &[u8], tci: Option<u16>) -> Vec<u8> {
    match tci {
        Some(t) if frame.len() >= 14 && !matches!(&frame[12..14], [0x81, 0x00] | [0x88, 0xA8]) => {
            let mut v = frame[..12].to_vec();
            v.extend_from_slice(&[0x81, 0x00, (t >> 8) as u8, t as u8]);
            v.extend_from_slice(&frame[12..]);
            v
        }
        _ => frame.to_vec(),
    }
}
