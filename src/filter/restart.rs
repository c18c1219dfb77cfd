//! What FilterRestart tells the drivers above through the restart attributes
//! (ns-ndis-_ndis_restart_attributes, ns-ndis-_ndis_restart_general_attributes; ndis-contract.md §6
//! "Restart attributes"): a filter may raise `DataBackFillSize` and `ContextBackFillSize`, and the
//! drivers above then allocate their NBLs with that much room.
//!
//! - `ContextBackFillSize` += the NBL context of a one-NB NBL ([`context_size`]`(1)`, a multiple of
//!   MEMORY_ALLOCATION_ALIGNMENT) in every mode that writes a retreat record, so
//!   NdisAllocateNetBufferListContext carves it from the NBL's backfill instead of allocating on the hot
//!   path. NBLs with more NBs still take NDIS's allocating path.
//! - `DataBackFillSize` += what the mode needs in front of a frame *beyond* the allocation it exercises
//!   ([`data_needed`] minus [`data_exercised`]). Today that is 0 in every mode, by design: `exercise`
//!   retreats past `DataOffset` on purpose, and `vlan`'s 4-byte tag retreat is the allocation vlan mode
//!   exercises — asking the protocol for those 4 bytes would make every insert a retreat in place and take
//!   the pool out of vlan mode on every sender that honours the attribute (tcpip). A transform that
//!   needs room it does not mean to take from the pool declares it in [`data_needed`].
//!
//! Owns: raising the general restart attributes' backfill (the entries found with
//! `ndis::GeneralAttributes`, the walk `transform/offload.rs` reads MTU and MAC options with). Must not:
//! touch module state.
//! IRQL: PASSIVE_LEVEL (FilterRestart).

use super::context::context_size;
use crate::ndis::GeneralAttributes;
use crate::transform::{vlan, Mode};
use ndis_sys::*;

/// Bytes `mode` writes in front of a frame's data on send. Any IRQL.
pub const fn data_needed(mode: Mode) -> u32 {
    match mode {
        // The pattern goes into the space the retreat past DataOffset allocates.
        Mode::Exercise => 0,
        Mode::Vlan => vlan::TAG_BYTES,
        Mode::Passthrough => 0,
    }
}

/// Of [`data_needed`], the bytes `mode` deliberately takes through a retreat that may allocate from
/// the pool (the point of the mode), which backfill must not pre-empt. Any IRQL.
pub const fn data_exercised(mode: Mode) -> u32 {
    match mode {
        Mode::Exercise => 0,
        Mode::Vlan => vlan::TAG_BYTES,
        Mode::Passthrough => 0,
    }
}

/// (data backfill, context backfill) the data path of `mode` asks the drivers above for. Any IRQL.
pub const fn backfill_needs(mode: Mode) -> (u32, u32) {
    let ctx = match (mode, context_size(1)) {
        (Mode::Passthrough, _) | (_, None) => 0,
        (_, Some(s)) => s as u32,
    };
    (data_needed(mode).saturating_sub(data_exercised(mode)), ctx)
}

/// Raises DataBackFillSize / ContextBackFillSize of the general restart attributes in `params` (if
/// NDIS passed any) by what `mode` needs; returns whether an entry was found. PASSIVE_LEVEL.
///
/// # Safety
/// `params` must be NULL or the restart parameters NDIS passed to FilterRestart.
pub unsafe fn raise_backfill(params: *mut NDIS_FILTER_RESTART_PARAMETERS, mode: Mode) -> bool {
    if params.is_null() {
        return false;
    }
    let (data, ctx) = backfill_needs(mode);
    let mut found = false;
    // SAFETY: NDIS's restart parameters, during FilterRestart (caller contract).
    let attrs = unsafe { GeneralAttributes::new((*params).RestartAttributes) };
    for (g, len) in attrs {
        if len as usize >= NDIS_SIZEOF_RESTART_GENERAL_ATTRIBUTES_REVISION_1 as usize {
            // SAFETY: GeneralAttributes yields Data with `len` writable bytes of
            // NDIS_RESTART_GENERAL_ATTRIBUTES, at least revision 1, which contains both fields
            // written; Data is 16-aligned after the header.
            unsafe {
                let g = g as *mut NDIS_RESTART_GENERAL_ATTRIBUTES;
                (*g).DataBackFillSize = (*g).DataBackFillSize.saturating_add(data);
                (*g).ContextBackFillSize = (*g).ContextBackFillSize.saturating_add(ctx);
            }
            found = true;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_per_mode_keep_the_context_aligned() {
        assert_eq!(backfill_needs(Mode::Exercise), (0, 96));
        assert_eq!(
            backfill_needs(Mode::Vlan),
            (0, 96),
            "the tag's retreat is what vlan exercises"
        );
        assert_eq!(data_needed(Mode::Vlan), 4);
        assert_eq!(backfill_needs(Mode::Passthrough), (0, 0));
        for m in [Mode::Exercise, Mode::Vlan, Mode::Passthrough] {
            assert_eq!(
                backfill_needs(m).1 as usize % MEMORY_ALLOCATION_ALIGNMENT,
                0
            );
        }
    }
}
