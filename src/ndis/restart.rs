//! [`GeneralAttributes`]: the walk over the restart attributes list NDIS passes to FilterRestart
//! (ns-ndis-_ndis_restart_attributes), yielding the `OID_GEN_MINIPORT_RESTART_ATTRIBUTES` entries
//! (ns-ndis-_ndis_restart_general_attributes). Both readers (`transform/offload.rs`: MTU and MAC
//! options) and the writer (`filter/restart.rs`: backfill) use it.
//!
//! Owns: following the list's `Next` links, bounded. Must not: read or write the attributes
//! themselves. IRQL: PASSIVE_LEVEL (FilterRestart).

use core::iter::FusedIterator;
use ndis_sys::{NDIS_RESTART_ATTRIBUTES, OID_GEN_MINIPORT_RESTART_ATTRIBUTES};

/// Most entries followed: a longer list is one no NDIS builds (a loop, or garbage).
const MAX_ENTRIES: usize = 64;

/// The general restart attributes entries of one list, as `(Data, DataLength)`: `Data` points at
/// `DataLength` bytes of NDIS_RESTART_GENERAL_ATTRIBUTES following the entry's 0x10-byte header
/// (8-aligned at least). At most 64 entries of the list are visited.
///
/// **Invariant** (established by [`GeneralAttributes::new`]): every entry still ahead is a valid
/// entry of NDIS's NULL-terminated list, valid and writable for the duration of FilterRestart.
pub struct GeneralAttributes {
    next: *mut NDIS_RESTART_ATTRIBUTES,
    hops: usize,
}

impl GeneralAttributes {
    /// Walks the list starting at `head` (NULL: none). PASSIVE_LEVEL.
    ///
    /// # Safety
    /// `head` must be NULL or the `RestartAttributes` NDIS passed to the running FilterRestart, and the
    /// iterator and what it yields used only during that call.
    #[inline]
    pub unsafe fn new(head: *mut NDIS_RESTART_ATTRIBUTES) -> Self {
        Self {
            next: head,
            hops: 0,
        }
    }
}

impl Iterator for GeneralAttributes {
    type Item = (*mut u8, u32);

    fn next(&mut self) -> Option<(*mut u8, u32)> {
        while !self.next.is_null() && self.hops < MAX_ENTRIES {
            let entry = self.next;
            // SAFETY: GeneralAttributes' invariant: a valid entry of the list.
            let (oid, len, next) = unsafe { ((*entry).Oid, (*entry).DataLength, (*entry).Next) };
            self.next = next;
            self.hops += 1;
            if oid == OID_GEN_MINIPORT_RESTART_ATTRIBUTES {
                // SAFETY: as above; Data follows the entry's header.
                return Some((unsafe { NDIS_RESTART_ATTRIBUTES::data(entry) }, len));
            }
        }
        self.hops = MAX_ENTRIES;
        None
    }
}

impl FusedIterator for GeneralAttributes {}
