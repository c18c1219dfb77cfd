//! What the simulated miniport checks in each send it takes, beyond the NB/MDL consistency that
//! `nbl/checks.rs` checks: the things a real NIC's transmit path relies on when it parses the frame.
//!
//! Owns: the MAC-header contiguity rule (MAC_HEADER_SPLIT, here) and the task-offload frames and
//! judge (`offload.rs`). Must not: change the NBL or call the driver. A routine of layer 3.
//!
//! Evidence (INFERRED from documented API behaviour): a miniport reads the MAC header with
//! `NdisGetDataBuffer(nb, 14 or 18, NULL, 1, 0)`, which is DOCUMENTED to return NULL when the bytes
//! are not contiguous in one MDL (learn.microsoft.com, NdisGetDataBuffer: "If the requested data in
//! the buffer is contiguous, ... Otherwise, if Storage is NULL, ... returns NULL"); miniports commonly
//! pass no storage for the header and drop (or mis-parse) such frames. The TCP/IP stack hands frames
//! down with the MAC header in the first MDL, so a frame that left the protocol contiguous and arrives
//! split was split by a filter. A frame the protocol itself handed down split is not judged.

pub(crate) use crate::nbl::head_contiguous;
pub use crate::nbl::mac_header_len;
use crate::nbl::NblSnap;
use crate::verifier::{self, rules};
use ndis_sys::*;

mod offload;

pub use offload::*;

/// Judges NB number `i` of an NBL the miniport takes (called only for NBs whose fields are
/// consistent). `sent` is the protocol's hand-out snapshot of the NBL (None for an NBL the filter
/// originated).
///
/// # Safety
/// `nb` must be a valid NB with a valid chain.
pub(crate) unsafe fn judge_nb(i: usize, nb: *const NET_BUFFER, sent: Option<&NblSnap>) {
    // SAFETY: caller's guarantee.
    let Some(frame) = (unsafe { crate::nbl::nb_frame(nb) }) else {
        return;
    };
    let hdr = mac_header_len(&frame);
    if frame.len() < hdr {
        return;
    }
    let was_contiguous = sent
        .and_then(|s| s.nbs.get(i))
        .is_none_or(|s| s.mac_contiguous);
    // SAFETY: caller's guarantee.
    if was_contiguous && !unsafe { head_contiguous(nb, hdr) } {
        verifier::report(
            rules::MAC_HEADER_SPLIT,
            nb as usize,
            format!(
                "send reaching the miniport: the {hdr}-byte MAC header is not in the MDL that \
                 holds the data start (the protocol handed it down in one MDL)"
            ),
        );
    }
}
