//! Neighbours that break the restore contract ([`crate::AdapterConfig::restore_breaker`]).
//!
//! NDIS's contract for retreat/advance is symmetric: a driver that retreats an NB it was handed must
//! advance it back (and free what its retreat allocated) before it completes or returns the NB, so the
//! NB goes back exactly as it came (DOCUMENTED: "Retreat and Advance Operations" and
//! NdisRetreatNetBufferDataStart on learn.microsoft.com — the driver that retreated is the one that
//! advances; ndis-contract.md §2). A buggy lower driver (on send completion) or protocol (on return)
//! may still hand an NB back with its data start moved or leading MDLs dropped. Nothing in NDIS
//! repairs that (INFERRED: NdisMSendNetBufferListsComplete / NdisReturnNetBufferLists pass NBLs on
//! untouched; no documented check exists), so the filter in between receives the NB as the neighbour
//! left it. This module makes the simulated miniport and/or protocol do that, deliberately, so a test
//! can show what the filter does with it. Each break is logged and counted
//! ([`crate::Counters::neighbor_restore_breaks`]); the break itself is not a finding (it is the test's
//! premise), but whatever reaches the other neighbour unrestored is judged as always
//! (NB_NOT_RESTORED, DATA_CORRUPTED, leaks at unload).
//!
//! Owns: the misbehaviours. Must not call driver code.

use crate::verifier;
use ndis_sys::*;

/// How the misbehaving neighbour changes each NB before giving it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakHow {
    /// Retreats the data start by this many bytes in place (only when `DataOffset` allows it, so
    /// nothing is allocated) and never advances back: `DataOffset`, `DataLength` and `CurrentMdl*`
    /// differ from what it was handed.
    LeaveRetreated(u32),
    /// Advances the data start by this many bytes with `FreeMdl = FALSE` (only when `DataLength`
    /// exceeds it) and never retreats back, e.g. a driver that strips a header it consumed.
    LeaveAdvanced(u32),
    /// Drops the leading MDLs that lie wholly in unused space from `MdlChain` (lowering
    /// `DataOffset` by their lengths) without freeing them, as a driver that "normalises" chains would.
    DropUnusedMdls,
}

/// Which neighbours misbehave, and how ([`crate::AdapterConfig::restore_breaker`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestoreBreaker {
    /// The miniport changes each NB of a send before completing it.
    pub miniport: bool,
    /// The protocol changes each NB of a receive before returning it (receives indicated without
    /// NDIS_RECEIVE_FLAGS_RESOURCES; with the flag the protocol never owns the NBL).
    pub protocol: bool,
    /// The change.
    pub how: BreakHow,
}

/// Applies `how` to `nb`; returns whether the NB changed.
///
/// # Safety
/// `nb` must be a valid NB the simulated neighbour holds.
pub(crate) unsafe fn break_nb(nb: *mut NET_BUFFER, how: BreakHow, who: &str) -> bool {
    // SAFETY: the caller guarantees a valid, held NB; the NDIS routines are the simulator's own.
    let changed = unsafe {
        match how {
            BreakHow::LeaveRetreated(n) => {
                n != 0
                    && (*nb).DataOffset >= n
                    && NdisRetreatNetBufferDataStart(nb, n, 0, None) == NDIS_STATUS_SUCCESS
            }
            BreakHow::LeaveAdvanced(n) => {
                if n == 0 || (*nb).DataLength() <= n {
                    false
                } else {
                    NdisAdvanceNetBufferDataStart(nb, n, FALSE, None);
                    true
                }
            }
            BreakHow::DropUnusedMdls => {
                let mut changed = false;
                loop {
                    let head = (*nb).MdlChain;
                    if head.is_null() || (*head).Next.is_null() {
                        break;
                    }
                    let count = (*head).ByteCount;
                    if count > (*nb).DataOffset {
                        break;
                    }
                    (*nb).MdlChain = (*head).Next;
                    (*nb).DataOffset -= count;
                    changed = true;
                }
                if changed {
                    // Keep the NB self-consistent (CurrentMdl locates DataOffset) so only the
                    // contract, not the NB's shape, is broken.
                    let mut m = (*nb).MdlChain;
                    let mut off = (*nb).DataOffset;
                    while !m.is_null() && off >= (*m).ByteCount && !(*m).Next.is_null() {
                        off -= (*m).ByteCount;
                        m = (*m).Next;
                    }
                    (*nb).CurrentMdl = m;
                    (*nb).CurrentMdlOffset = off;
                }
                changed
            }
        }
    };
    if changed {
        verifier::log(format!(
            "{who} broke the restore contract on NB {nb:p} ({how:?}) before giving it back"
        ));
    }
    changed
}
