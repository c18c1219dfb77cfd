//! The send path: FilterSendNetBufferLists, FilterSendNetBufferListsComplete,
//! FilterCancelSendNetBufferLists (ndis-contract.md §3.3, DESIGN §5 "Send").
//!
//! Not Running → every NBL is completed with NDIS_STATUS_PAUSED. Otherwise each NBL is transformed; an
//! NBL any of whose NBs failed is rolled back and completed with NDIS_STATUS_RESOURCES; the rest are
//! forwarded in their original order with the caller's flags. Send-complete restores our NBLs (fields,
//! MDLs, OOB info) before completing them upward and passes the others through untouched. The
//! *_DISPATCH_LEVEL flags are translated from the caller's flags, never computed from the IRQL.
//!
//! Owns: the send-side list handling (chains walked with `ndis::NblChain`, sorted into
//! `ndis::NblQueue`s). Must not: retreat/restore directly (datapath.rs does). IRQL: each handler's at
//! its definition (<= DISPATCH_LEVEL).

#![allow(non_snake_case)]

use super::datapath::{restore_and_hand_on, transform_nbl, Outcome, Path};
use super::module::FilterModule;
use super::stats::{Direction, Tally};
use crate::ndis::{NblChain, NblQueue};
use core::sync::atomic::Ordering;
use ndis_sys::*;

/// FilterSendNetBufferLists. IRQL <= DISPATCH_LEVEL (DISPATCH_LEVEL exactly when `send_flags` has
/// NDIS_SEND_FLAGS_DISPATCH_LEVEL).
///
/// # Safety
/// Called by NDIS with a live module context and a valid NBL chain it hands over.
pub unsafe extern "system" fn FilterSendNetBufferLists(
    ctx: NDIS_HANDLE,
    nbls: *mut NET_BUFFER_LIST,
    port: NDIS_PORT_NUMBER,
    send_flags: u32,
) {
    // SAFETY: NDIS passes this module's context to its handlers (FilterModule::from_ctx).
    let module = unsafe { FilterModule::from_ctx(ctx) };
    let handle = module.ndis_filter_handle;
    let complete_flags = if NDIS_TEST_SEND_AT_DISPATCH_LEVEL(send_flags) {
        NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL
    } else {
        0
    };
    // The in-call reference comes before the state check (module.rs explains why).
    module.acquire(1);
    if !module.is_running() {
        let mut n = 0u64;
        // SAFETY: the chain NDIS handed over is ours until completed.
        for p in unsafe { NblChain::new(nbls) } {
            // SAFETY: an NBL of that chain.
            unsafe { (*p).Status = NDIS_STATUS_PAUSED };
            n += 1;
        }
        module
            .stats
            .send_nbls_paused
            .fetch_add(n, Ordering::Relaxed);
        // SAFETY: completing NBLs NDIS gave us, with the caller's IRQL flag.
        unsafe { NdisFSendNetBufferListsComplete(handle, nbls, complete_flags) };
        module.release_from_data_path(1);
        return;
    }
    let cfg = module.data_path_config();
    let handlers = module.handlers();
    let mut tally = Tally::default();
    let mut forward = NblQueue::new();
    let mut failed = NblQueue::new();
    let mut ours = 0i64;
    // SAFETY: the chain is ours until forwarded or completed.
    for p in unsafe { NblChain::new(nbls) } {
        // SAFETY: a valid NBL we own, with NBs and MDLs from the protocol above (mapped).
        match unsafe { transform_nbl(p, &cfg, Path::Send, handlers, &mut tally) } {
            Outcome::Transformed => {
                ours += 1;
                // SAFETY: owned NBL, in no other list.
                unsafe { forward.push(p) };
            }
            // SAFETY: as above.
            Outcome::Untouched => unsafe { forward.push(p) },
            Outcome::Failed => {
                // SAFETY: as above; the NBL is back as it came.
                unsafe {
                    (*p).Status = NDIS_STATUS_RESOURCES;
                    failed.push(p);
                }
            }
        }
    }
    tally.commit(&module.stats, Direction::Send);
    // Our NBLs hold the pause open from before they leave (a completion may come back inside the call).
    module.acquire(ours);
    if !failed.is_empty() {
        // SAFETY: NBLs we own, rolled back; the caller's IRQL flag.
        unsafe { NdisFSendNetBufferListsComplete(handle, failed.head(), complete_flags) };
    }
    if !forward.is_empty() {
        // SAFETY: forwarding in order with the caller's port and flags; ownership passes down.
        unsafe { NdisFSendNetBufferLists(handle, forward.head(), port, send_flags) };
    }
    module.release_from_data_path(1);
}

/// FilterSendNetBufferListsComplete. IRQL <= DISPATCH_LEVEL (as `flags` says).
///
/// # Safety
/// Called by NDIS with a live module context and NBLs this module forwarded.
pub unsafe extern "system" fn FilterSendNetBufferListsComplete(
    ctx: NDIS_HANDLE,
    nbls: *mut NET_BUFFER_LIST,
    flags: u32,
) {
    // SAFETY: NDIS passes this module's context to its handlers (FilterModule::from_ctx).
    let module = unsafe { FilterModule::from_ctx(ctx) };
    // SAFETY: the completed chain is ours again until completed upward, which the closure does with
    // NDIS's flags.
    unsafe {
        restore_and_hand_on(module, nbls, Direction::Send, |handle, nbls| {
            NdisFSendNetBufferListsComplete(handle, nbls, flags)
        })
    };
}

/// FilterCancelSendNetBufferLists. IRQL <= DISPATCH_LEVEL. The filter queues nothing, so it only
/// propagates the cancellation.
///
/// # Safety
/// Called by NDIS with a live module context.
pub unsafe extern "system" fn FilterCancelSendNetBufferLists(ctx: NDIS_HANDLE, cancel_id: PVOID) {
    // SAFETY: NDIS passes this module's context to its handlers (FilterModule::from_ctx).
    let module = unsafe { FilterModule::from_ctx(ctx) };
    // SAFETY: propagating the caller's cancel id.
    unsafe { NdisFCancelSendNetBufferLists(module.ndis_filter_handle, cancel_id) };
}
