//! The `vlan` transform: software 802.1Q.
//!
//! Send: insert a tag taken from the NBL's `Ieee8021QNetBufferListInfo` (or, when that is empty, the
//! configured VlanId / VlanPriority) into each NB's frame: retreat 4 bytes, move the 12 address bytes
//! forward through the cursor and write TPID 0x8100 + TCI behind them. The caller clears the OOB info
//! (so the NIC does not tag again) and restores it at completion. Frames already tagged (TPID 0x8100 or
//! 0x88A8 at offset 12) are left alone.
//! Receive (optional): re-insert a tag the NIC stripped into the OOB info, the same way.
//!
//! Undo ([`remove_inserted`]) moves the address bytes back: the 12 bytes now at the data start are a
//! copy of the originals, so the caller's buffer is bit-for-bit as it was, and the restore (nb.rs) then
//! advances the 4 bytes away.

use super::TransformError;
use crate::nb::{self, MdlHandlers, RetreatRecord};
use ndis_sys::{NDIS_NET_BUFFER_LIST_8021Q_INFO, NET_BUFFER};

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
///
/// # Safety
/// `nb` must be a valid NET_BUFFER owned by the caller whose MDLs are mapped.
pub unsafe fn is_tagged(nb: *const NET_BUFFER) -> Result<bool, nb::NbError> {
    let mut t = [0u8; 2];
    // SAFETY: valid NB (caller contract); read only.
    unsafe { nb::read_at(nb, ADDR_BYTES, &mut t) }?;
    Ok(is_tag_tpid(u16::from_be_bytes(t)))
}

/// Writes the tag into an NB whose data start has just been retreated by [`TAG_BYTES`]: the addresses
/// move 4 bytes toward the new data start and the tag follows them. Cursor-only (no NDIS call). IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `nb` must be valid, owned, mapped, and retreated by exactly 4 bytes over a frame of >= 14 bytes.
pub unsafe fn tag_retreated(nb: *const NET_BUFFER, tag: VlanTag) -> Result<(), nb::NbError> {
    let mut addrs = [0u8; ADDR_BYTES as usize];
    // SAFETY: valid NB; the original addresses now start at offset 4.
    unsafe { nb::read_at(nb, TAG_BYTES, &mut addrs) }?;
    // SAFETY: valid NB; bytes 0..16 are retreated space plus the caller's address bytes, which the
    // caller owns until completion and which [`remove_inserted`] puts back.
    unsafe {
        nb::write_at(nb, 0, &addrs)?;
        nb::write_at(nb, ADDR_BYTES, &tag.wire())
    }
}

/// Inserts `tag` into the NB's frame. `rec` must be freshly captured from `nb`. `Ok(false)`: the frame
/// was already tagged and nothing was done. On `Err(Retreat)` the NB is untouched; on another `Err`
/// the caller must [`nb::restore`] it. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `nb` must be a valid NET_BUFFER owned by the caller whose MDLs are mapped.
pub unsafe fn insert(
    nb: *mut NET_BUFFER,
    rec: &mut RetreatRecord,
    tag: VlanTag,
    backfill: u32,
    handlers: MdlHandlers,
) -> Result<bool, TransformError> {
    // SAFETY: valid NB.
    if unsafe { (*nb).DataLength() } < MIN_FRAME || unsafe { is_tagged(nb) }? {
        return Ok(false);
    }
    // SAFETY: valid, owned NB; `rec` was captured from it.
    unsafe { nb::retreat(nb, rec, TAG_BYTES, backfill, handlers) }
        .map_err(TransformError::Retreat)?;
    // SAFETY: retreated by exactly 4 over a frame of >= 14 bytes.
    unsafe { tag_retreated(nb, tag) }?;
    Ok(true)
}

/// Undoes [`tag_retreated`] on an NB still retreated by 4: copies the 12 address bytes back to where the
/// caller had them. The restore then advances the 4 bytes away. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// As [`tag_retreated`], on an NB the filter tagged.
pub unsafe fn remove_inserted(nb: *const NET_BUFFER) -> Result<(), nb::NbError> {
    let mut addrs = [0u8; ADDR_BYTES as usize];
    // SAFETY: valid, owned NB, still retreated by 4.
    unsafe {
        nb::read_at(nb, 0, &mut addrs)?;
        nb::write_at(nb, TAG_BYTES, &addrs)
    }
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
        // SAFETY: (test) valid chain.
        unsafe { nb::write_at(c.nb(), 0, f) }.unwrap();
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
            // What a fast-path retreat of 4 does.
            c.nb_mut().DataOffset -= 4;
            c.nb_mut().SetDataLength(44);
            c.normalise();
            // SAFETY: (test) retreated by 4 over a 40-byte frame.
            unsafe { tag_retreated(c.nb(), tag) }.unwrap();
            let mut wire = std::vec![0u8; 44];
            // SAFETY: (test) valid chain.
            unsafe { nb::read_at(c.nb(), 0, &mut wire) }.unwrap();
            let mut expect = f[..12].to_vec();
            expect.extend_from_slice(&[0x81, 0x00, 0x40, 100]);
            expect.extend_from_slice(&f[12..]);
            assert_eq!(wire, expect, "split {split}");
            // SAFETY: (test) as above.
            assert!(unsafe { is_tagged(c.nb()) }.unwrap());
            // SAFETY: (test) the NB is still retreated by 4.
            unsafe { remove_inserted(c.nb()) }.unwrap();
            c.nb_mut().DataOffset += 4;
            c.nb_mut().SetDataLength(40);
            c.normalise();
            let mut back = std::vec![0u8; 40];
            // SAFETY: (test) valid chain.
            unsafe { nb::read_at(c.nb(), 0, &mut back) }.unwrap();
            assert_eq!(back, f, "split {split}: caller's bytes restored");
            // SAFETY: (test) as above.
            assert!(!unsafe { is_tagged(c.nb()) }.unwrap());
        }
    }

    #[test]
    fn already_tagged_detection() {
        let mut f = frame(20);
        f[12] = 0x88;
        f[13] = 0xA8;
        let c = chain_with(&f, 10);
        // SAFETY: (test) valid chain.
        assert!(unsafe { is_tagged(c.nb()) }.unwrap());
        f[12] = 0x08;
        f[13] = 0x00;
        let c = chain_with(&f, 13);
        // SAFETY: (test) valid chain.
        assert!(!unsafe { is_tagged(c.nb()) }.unwrap());
    }
}
