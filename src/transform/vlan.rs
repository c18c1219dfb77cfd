//! The `vlan` transform: software 802.1Q.
//!
//! Send: insert a tag taken from the NBL's `Ieee8021QNetBufferListInfo` (or, when that is empty, the
//! configured VlanId / VlanPriority) into each NB's frame: retreat 4 bytes, move the 12 address bytes
//! forward through the cursor and write TPID 0x8100 + TCI behind them. The caller clears the OOB info
//! (so the NIC does not tag again) and restores it at completion. Frames already tagged (TPID 0x8100 or
//! 0x88A8 at offset 12) are left alone.
//! Receive (optional): re-insert a tag the NIC stripped into the OOB info, the same way.
//!
//! Undo ([`remove_inserted`]) puts back every byte the insert wrote in the caller's buffer, in the
//! data range and in the unused space in front of it (in place: the 12 address bytes move back and the
//! 4 bytes in front get their saved values; new head: nothing of the caller's was written), so the
//! caller's buffer is bit-for-bit as it was; the restore (`nb/retreat.rs`) then gives back the retreat.

use super::TransformError;
use crate::nb::{self, MdlHandlers, RetreatRecord};
use crate::ndis::{MdlPos, NetBuffer};
use ndis_sys::{MDL, NDIS_NET_BUFFER_LIST_8021Q_INFO, NDIS_STATUS_INVALID_LENGTH, NET_BUFFER};

/// 802.1Q TPID.
pub const TPID_8021Q: u16 = 0x8100;
/// 802.1ad (QinQ) TPID: also counts as "already tagged".
pub const TPID_8021AD: u16 = 0x88A8;
/// Bytes of destination + source MAC address.
pub const ADDR_BYTES: u32 = 12;
/// Bytes of a tag.
pub const TAG_BYTES: u32 = 4;
/// Shortest frame the transform touches (addresses + EtherType).
pub const MIN_FRAME: u32 = 14;

/// An 802.1Q tag control field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlanTag {
    /// PCP, 0..=7.
    pub priority: u8,
    /// CFI/DEI bit, 0 or 1.
    pub cfi: u8,
    /// VID, 0..=4095 (4095 reserved; the registry allows 0..=4094).
    pub vlan_id: u16,
}

impl VlanTag {
    /// The 16-bit TCI: `PCP:3 | DEI:1 | VID:12`.
    pub const fn tci(self) -> u16 {
        ((self.priority as u16 & 7) << 13) | ((self.cfi as u16 & 1) << 12) | (self.vlan_id & 0xFFF)
    }

    /// Decodes a TCI.
    pub const fn from_tci(tci: u16) -> Self {
        Self {
            priority: (tci >> 13) as u8,
            cfi: ((tci >> 12) & 1) as u8,
            vlan_id: tci & 0xFFF,
        }
    }

    /// The tag bytes on the wire: TPID 0x8100 then TCI, big-endian.
    pub const fn wire(self) -> [u8; 4] {
        let t = self.tci();
        [0x81, 0x00, (t >> 8) as u8, t as u8]
    }

    /// The tag an NBL's `Ieee8021QNetBufferListInfo` asks for, or `None` when it is empty (VlanId 0 and
    /// priority 0: nothing to insert). Any IRQL.
    pub fn from_info(info: NDIS_NET_BUFFER_LIST_8021Q_INFO) -> Option<Self> {
        let tag = Self {
            priority: info.UserPriority(),
            cfi: info.CanonicalFormatId(),
            vlan_id: info.VlanId(),
        };
        (tag.vlan_id != 0 || tag.priority != 0).then_some(tag)
    }

    /// The OOB encoding of this tag. Any IRQL.
    pub fn to_info(self) -> NDIS_NET_BUFFER_LIST_8021Q_INFO {
        NDIS_NET_BUFFER_LIST_8021Q_INFO::new(self.priority, self.cfi, self.vlan_id)
    }

    /// The configured tag (registry VlanId / VlanPriority), or `None` when both are 0. Any IRQL.
    pub fn configured(vlan_id: u16, priority: u8) -> Option<Self> {
        (vlan_id != 0 || priority != 0).then_some(Self {
            priority,
            cfi: 0,
            vlan_id,
        })
    }
}

/// Whether the EtherType/TPID field is a VLAN tag.
pub const fn is_tag_tpid(tpid: u16) -> bool {
    tpid == TPID_8021Q || tpid == TPID_8021AD
}

/// Whether the NB's frame already carries a tag. IRQL <= DISPATCH_LEVEL.
pub fn is_tagged(nb: NetBuffer) -> Result<bool, nb::NbError> {
    let mut t = [0u8; 2];
    nb::read_at(nb, ADDR_BYTES, &mut t)?;
    Ok(is_tag_tpid(u16::from_be_bytes(t)))
}

/// Writes the tag into an NB whose data start has just been retreated by [`TAG_BYTES`]: the addresses
/// move 4 bytes toward the new data start and the tag follows them. Cursor-only (no NDIS call); the
/// NB must be retreated by exactly 4 bytes over a frame of >= 14 bytes (otherwise the frame's bytes
/// are wrong, never memory: the cursor stays inside the data). IRQL <= DISPATCH_LEVEL.
pub fn tag_retreated(nb: NetBuffer, tag: VlanTag) -> Result<(), nb::NbError> {
    let mut addrs = [0u8; ADDR_BYTES as usize];
    // The original addresses now start at offset 4.
    nb::read_at(nb, TAG_BYTES, &mut addrs)?;
    // Bytes 0..16 are retreated space plus the caller's address bytes, which the caller owns until
    // completion and which [`remove_inserted`] puts back.
    nb::write_at(nb, 0, &addrs)?;
    nb::write_at(nb, ADDR_BYTES, &tag.wire())
}

/// How [`insert`] put a tag into an NB (kept in [`RetreatRecord::vlan`]).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// Nothing was inserted.
    Nothing = 0,
    /// In place: retreated 4 bytes inside the MDL holding the data start, addresses moved 4 bytes
    /// forward, tag written behind them; the 4 overwritten bytes in front are in `rec.front`.
    InPlace = 1,
    /// New head: a retreat made NDIS allocate an MDL holding the whole rewritten header (addresses,
    /// tag, EtherType) plus the rest of the caller's MDL that held frame byte 14, and the NB's chain
    /// was relinked to skip the caller's bytes in front of that point: no caller byte is written.
    NewHead = 2,
}

impl Inserted {
    /// From the record's encoding. Any IRQL.
    pub fn of(rec: &RetreatRecord) -> Self {
        match rec.vlan {
            1 => Inserted::InPlace,
            2 => Inserted::NewHead,
            _ => Inserted::Nothing,
        }
    }
}

/// Bytes of the rewritten MAC header: addresses, tag, EtherType.
pub const TAGGED_HEADER: u32 = ADDR_BYTES + TAG_BYTES + 2;

/// Inserts `tag` into the NB's frame so that the whole rewritten MAC header (18 bytes) lies in the
/// MDL that holds the data start — the MDL a miniport parses the header from. `rec` must be freshly
/// captured from `nb`. `Ok(false)`: the frame was already tagged (or shorter than a MAC header) and
/// nothing was done. On `Err(Retreat)` the NB is untouched; on another `Err` the caller must
/// [`nb::restore`] it. IRQL <= DISPATCH_LEVEL.
///
/// Two ways, decided from the caller's layout:
/// - **in place** when the MDL holding the data start has 4 unused bytes in front of it and holds the
///   whole 14-byte header: a 4-byte retreat there (NDIS's fast path, no allocation), the 4 bytes it
///   exposes saved in `rec.front` first; the header then spans `[off-4, off+14)` of that one MDL.
/// - **new head** otherwise (DataOffset < 4, a leading MDL holding only part of the header, a
///   header split by the caller): a plain 4-byte retreat would leave the header split across a tiny
///   new MDL and the caller's, so the retreat instead asks NDIS for `DataOffset + 18 + rest` bytes,
///   where `rest` is what the caller's MDL holding frame byte 14 has from there on (NDIS allocates
///   exactly the shortfall, `18 + rest`, through the pool). The new MDL gets the rewritten header and
///   a copy of `rest`, and its `Next` is set to the caller's MDL after that one (or to that one when
///   frame byte 14 starts it). The caller's bytes are not written at all; the undo relinks the chain
///   and the ordinary restore gives the MDL back. The copy is at most one MDL's worth of the frame.
///
/// # Safety
/// `nb` must be a valid NET_BUFFER owned by the caller whose MDLs are mapped.
pub unsafe fn insert(
    nb: *mut NET_BUFFER,
    rec: &mut RetreatRecord,
    tag: VlanTag,
    handlers: MdlHandlers,
) -> Result<bool, TransformError> {
    // SAFETY: a valid, owned, mapped NB (caller contract): NetBuffer's invariant.
    let net = unsafe { NetBuffer::new_unchecked(nb) };
    let len = net.data_length();
    if len < MIN_FRAME || is_tagged(net)? {
        return Ok(false);
    }
    let MdlPos {
        mdl: cur,
        offset: off,
    } = net.data_start();
    // SAFETY: `cur` is the NB's live CurrentMdl when not NULL.
    let in_place = !cur.is_null()
        && off >= TAG_BYTES
        && unsafe { (*cur).ByteCount } as u64 >= off as u64 + MIN_FRAME as u64;
    if in_place {
        // SAFETY: valid, owned NB; `rec` was captured from it. DataOffset >= CurrentMdlOffset >= 4,
        // so NDIS retreats in place, inside `cur`.
        unsafe { nb::retreat(nb, rec, TAG_BYTES, 0, handlers) }.map_err(TransformError::Retreat)?;
        rec.vlan = Inserted::InPlace as u32;
        // The 4 bytes just exposed are the caller's unused space; read before the write.
        nb::read_at(net, 0, &mut rec.front)?;
        // Retreated by exactly 4 over a frame of >= 14 bytes.
        tag_retreated(net, tag)?;
        return Ok(true);
    }
    // New head. Frame byte 14 lies in MDL `m` at offset `q` (it exists: len >= 14; when len == 14
    // there is no such byte and nothing is copied).
    // SAFETY: NetBuffer's invariant: the NB's chain is valid.
    let (rest, next) = match unsafe { net.data_start().seek(MIN_FRAME) } {
        Some(MdlPos { mdl: m, offset: q }) if len > MIN_FRAME => {
            if q == 0 {
                (0, m)
            } else {
                // SAFETY: a live MDL of the chain.
                let (count, after) = unsafe { ((*m).ByteCount, (*m).Next) };
                (core::cmp::min(count - q, len - MIN_FRAME), after)
            }
        }
        _ => (0, core::ptr::null_mut()),
    };
    let need = TAGGED_HEADER + rest;
    // SAFETY: valid NB.
    let data_offset = unsafe { (*nb).DataOffset };
    let delta = data_offset
        .checked_add(need)
        .ok_or(TransformError::Retreat(NDIS_STATUS_INVALID_LENGTH))?;
    // SAFETY: valid, owned NB; `rec` was captured from it. `delta > DataOffset`, so NDIS allocates
    // exactly `need` bytes (no backfill) and prepends that MDL.
    unsafe { nb::retreat(nb, rec, delta, 0, handlers) }.map_err(TransformError::Retreat)?;
    rec.vlan = Inserted::NewHead as u32;
    // SAFETY: valid NB.
    let (head, cur, hoff) = unsafe { ((*nb).MdlChain, (*nb).CurrentMdl, (*nb).CurrentMdlOffset) };
    if head.is_null() || cur != head {
        return Err(TransformError::Access(nb::NbError::Inconsistent));
    }
    // SAFETY: `head` is the MDL the retreat just prepended (not NULL, checked).
    let count = unsafe { (*head).ByteCount };
    if count as u64 != hoff as u64 + need as u64 {
        return Err(TransformError::Access(nb::NbError::Inconsistent));
    }
    // The caller's frame now starts `delta` bytes after the data start.
    let mut hdr = [0u8; MIN_FRAME as usize];
    nb::read_at(net, delta, &mut hdr)?;
    let mut tagged = [0u8; TAGGED_HEADER as usize];
    tagged[..ADDR_BYTES as usize].copy_from_slice(&hdr[..ADDR_BYTES as usize]);
    tagged[ADDR_BYTES as usize..(ADDR_BYTES + TAG_BYTES) as usize].copy_from_slice(&tag.wire());
    tagged[(ADDR_BYTES + TAG_BYTES) as usize..].copy_from_slice(&hdr[ADDR_BYTES as usize..]);
    // Frame bytes [0, need) are the new MDL's (our block); the caller's are only read.
    nb::write_at(net, 0, &tagged)?;
    let mut chunk = [0u8; 64];
    let mut done = 0u32;
    while done < rest {
        let n = core::cmp::min(rest - done, chunk.len() as u32);
        let buf = &mut chunk[..n as usize];
        // As above: read the caller's bytes after its header, write into our block.
        nb::read_at(net, delta + MIN_FRAME + done, buf)?;
        nb::write_at(net, TAGGED_HEADER + done, buf)?;
        done += n;
    }
    // SAFETY: valid, owned NB and our own MDL; `next` is the caller's MDL that follows the copied
    // bytes (or NULL when the frame ends there). CurrentMdl/CurrentMdlOffset/DataOffset already
    // locate the data start in `head`.
    unsafe {
        (*head).Next = next;
        (*nb).SetDataLength(len + TAG_BYTES);
    }
    Ok(true)
}

/// Undoes [`insert`] on an NB still as the insert left it, so that [`nb::restore`] can then put the
/// recorded fields back and give back the retreat's MDL: in place, the 12 address bytes go back to
/// where the caller had them and the 4 bytes in front get their saved values (every byte the
/// insert wrote is then as it was); new head, the new MDL is relinked in front of the caller's
/// whole chain and DataLength set back to the retreat's, which is exactly the state right after the
/// retreat. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `nb` must be a valid NET_BUFFER owned by the caller whose MDLs are mapped (NetBuffer's
/// invariant), which the filter tagged with `rec`.
pub unsafe fn remove_inserted(nb: *mut NET_BUFFER, rec: &RetreatRecord) -> Result<(), nb::NbError> {
    match Inserted::of(rec) {
        Inserted::Nothing => Ok(()),
        Inserted::InPlace => {
            // SAFETY: NetBuffer's invariant holds for `nb` (caller contract).
            let net = unsafe { NetBuffer::new_unchecked(nb) };
            let mut addrs = [0u8; ADDR_BYTES as usize];
            // Still retreated by 4: the addresses go back, then the 4 bytes in front.
            nb::read_at(net, 0, &mut addrs)?;
            nb::write_at(net, TAG_BYTES, &addrs)?;
            nb::write_at(net, 0, &rec.front)
        }
        Inserted::NewHead => {
            // SAFETY: valid, owned NB.
            let (head, len) = unsafe { ((*nb).MdlChain, (*nb).DataLength()) };
            if head.is_null()
                || head == rec.mdl_chain
                || len != rec.data_length.wrapping_add(TAG_BYTES)
            {
                return Err(nb::NbError::Inconsistent);
            }
            // SAFETY: `head` is our MDL; the recorded chain is the caller's, still intact.
            unsafe {
                (*head).Next = rec.mdl_chain;
                (*nb).SetDataLength(rec.data_length.wrapping_add(rec.outstanding));
            }
            Ok(())
        }
    }
}

/// Recovery for a new-head tag on an NB a neighbour changed before giving it back (see
/// `nb::reconstruct`): finds the retreat's MDL among the chain's first MDLs (`owns` tells ours) and
/// links the caller's recorded chain behind it again, which undoes the relink of the new head and
/// leaves the chain of an ordinary allocating retreat for `nb::reconstruct` to put into place.
/// Returns whether our MDL was found. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `nb` must be a valid NET_BUFFER owned by the caller, tagged with `rec` by [`insert`]'s new-head
/// path; every MDL reachable from its chain must be readable; `owns` must accept any such MDL.
pub unsafe fn relink_new_head(
    nb: *mut NET_BUFFER,
    rec: &RetreatRecord,
    owns: unsafe fn(*mut MDL) -> bool,
) -> bool {
    // SAFETY: valid NB (caller contract).
    let mut m = unsafe { (*nb).MdlChain };
    for _ in 0..8 {
        if m.is_null() || m == rec.mdl_chain {
            return false;
        }
        // SAFETY: `m` is reachable from the NB's chain (readable, caller contract).
        if unsafe { owns(m) } {
            // SAFETY: `m` is our MDL (the pool's, in flight for this retreat); the recorded chain is
            // the caller's, still intact behind the MDLs the new head skipped.
            unsafe { (*m).Next = rec.mdl_chain };
            return true;
        }
        // SAFETY: as above.
        m = unsafe { (*m).Next };
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nb::test_chains::Chain;
    use std::vec::Vec;

    #[test]
    fn tci_and_oob_encodings_round_trip() {
        let t = VlanTag {
            priority: 5,
            cfi: 1,
            vlan_id: 0xABC,
        };
        assert_eq!(t.tci(), 0xBABC);
        assert_eq!(VlanTag::from_tci(0xBABC), t);
        assert_eq!(t.wire(), [0x81, 0x00, 0xBA, 0xBC]);
        assert_eq!(VlanTag::from_info(t.to_info()), Some(t));
        assert_eq!(
            VlanTag::from_info(NDIS_NET_BUFFER_LIST_8021Q_INFO::default()),
            None
        );
        // Priority-only tags (VID 0) are real tags.
        assert_eq!(
            VlanTag::from_info(NDIS_NET_BUFFER_LIST_8021Q_INFO::new(3, 0, 0)).map(|t| t.priority),
            Some(3)
        );
        assert_eq!(VlanTag::configured(0, 0), None);
        assert_eq!(VlanTag::configured(4094, 7).unwrap().tci(), 0xEFFE);
    }

    fn frame(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(13) ^ 0x3C)
            .collect()
    }

    /// Builds a chain with 4 unused bytes ahead of `f`, split at `split` bytes into the chain.
    fn chain_with(f: &[u8], split: u32) -> Chain {
        let total = 4 + f.len() as u32;
        let c = Chain::new(&[split, total - split], 4, f.len() as u32);
        nb::write_at(c.net_buffer(), 0, f).unwrap();
        c
    }

    #[test]
    fn tag_and_untag_in_place_across_every_split() {
        let f = frame(40);
        let tag = VlanTag {
            priority: 2,
            cfi: 0,
            vlan_id: 100,
        };
        for split in 0..=24 {
            let mut c = chain_with(&f, split);
            let whole = c.flat();
            // SAFETY: (test) valid NB.
            let mut rec = unsafe { RetreatRecord::capture(c.nb()) };
            // What a fast-path retreat of 4 does.
            c.nb_mut().DataOffset -= 4;
            c.nb_mut().SetDataLength(44);
            c.normalise();
            rec.outstanding = 4;
            rec.vlan = Inserted::InPlace as u32;
            nb::read_at(c.net_buffer(), 0, &mut rec.front).unwrap();
            tag_retreated(c.net_buffer(), tag).unwrap();
            let mut wire = std::vec![0u8; 44];
            nb::read_at(c.net_buffer(), 0, &mut wire).unwrap();
            let mut expect = f[..12].to_vec();
            expect.extend_from_slice(&[0x81, 0x00, 0x40, 100]);
            expect.extend_from_slice(&f[12..]);
            assert_eq!(wire, expect, "split {split}");
            assert!(is_tagged(c.net_buffer()).unwrap());
            // SAFETY: (test) the NB is still retreated by 4.
            unsafe { remove_inserted(c.nb(), &rec) }.unwrap();
            c.nb_mut().DataOffset += 4;
            c.nb_mut().SetDataLength(40);
            c.normalise();
            assert_eq!(
                c.flat(),
                whole,
                "split {split}: every byte of the chain as it was"
            );
            let mut back = std::vec![0u8; 40];
            nb::read_at(c.net_buffer(), 0, &mut back).unwrap();
            assert_eq!(back, f, "split {split}: caller's bytes restored");
            assert!(!is_tagged(c.net_buffer()).unwrap());
        }
    }

    #[test]
    fn already_tagged_detection() {
        let mut f = frame(20);
        f[12] = 0x88;
        f[13] = 0xA8;
        let c = chain_with(&f, 10);
        assert!(is_tagged(c.net_buffer()).unwrap());
        f[12] = 0x08;
        f[13] = 0x00;
        let c = chain_with(&f, 13);
        assert!(!is_tagged(c.net_buffer()).unwrap());
    }
}
