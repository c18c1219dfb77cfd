//! The receive path: FilterReceiveNetBufferLists and FilterReturnNetBufferLists (ndis-contract.md
//! §3.4, DESIGN §5 "Receive").
//!
//! Without NDIS_RECEIVE_FLAGS_RESOURCES: each NBL is transformed; NBLs that failed are rolled back and
//! returned to the miniport at once (NdisFReturnNetBufferLists, the documented drop); the others are
//! indicated up with the right count and the caller's flags, and restored in FilterReturnNetBufferLists
//! before they go back down. With the flag: the NBLs are NDIS's again as soon as the callback returns,
//! so each run of kept NBLs is indicated (synchronously) with the flag, restored right after the
//! indication returns, and relinked, so the original chain is handed back in its original order;
//! failed NBLs are simply not indicated (the documented drop for CANNOT_PEND receives).
//! NDIS_RETURN_FLAGS_DISPATCH_LEVEL is derived from NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL, never from the
//! IRQL. While the module is Pausing or Paused nothing is passed up: receives are returned at once, or
//! (with NDIS_RECEIVE_FLAGS_RESOURCES) dropped.
//!
//! Owns: the receive-side list handling (chains walked with `ndis::NblChain`, sorted into
//! `ndis::NblQueue`s). Must not: retreat/restore directly (datapath.rs does). IRQL: each handler's at
//! its definition (<= DISPATCH_LEVEL).

#![allow(non_snake_case)]

use super::datapath::{restore_and_hand_on, restore_chain, transform_nbl, Outcome, Path};
use super::module::{FilterModule, ModuleState};
use super::stats::{Direction, Tally};
use crate::ndis::{NblChain, NblQueue};
use crate::transform::Mode;
use core::sync::atomic::Ordering;
use ndis_sys::*;

/// FilterReceiveNetBufferLists. IRQL <= DISPATCH_LEVEL (DISPATCH_LEVEL exactly when the flags say so).
///
/// # Safety
/// Called by NDIS with a live module context and a valid NBL chain of `count` NBLs.
pub unsafe extern "system" fn FilterReceiveNetBufferLists(
    ctx: NDIS_HANDLE,
    nbls: *mut NET_BUFFER_LIST,
    port: NDIS_PORT_NUMBER,
    count: u32,
    receive_flags: u32,
) {
    // SAFETY: NDIS passes this module's context to its handlers (FilterModule::from_ctx).
    let module = unsafe { FilterModule::from_ctx(ctx) };
    let handle = module.ndis_filter_handle;
    module.acquire(1);
    let state = module.state();
    if state == ModuleState::Pausing as u32 || state == ModuleState::Paused as u32 {
        // A Pausing (or Paused) module passes nothing new up (network/pausing-a-filter-module):
        // receives that may pend go straight back to the miniport; NDIS_RECEIVE_FLAGS_RESOURCES ones
        // are dropped by returning from this callback, which gives them back to NDIS.
        if NDIS_TEST_RECEIVE_CAN_PEND(receive_flags) {
            let return_flags = if NDIS_TEST_RECEIVE_AT_DISPATCH_LEVEL(receive_flags) {
                NDIS_RETURN_FLAGS_DISPATCH_LEVEL
            } else {
                0
            };
            // SAFETY: returning, unchanged, the NBLs the miniport indicated, with the derived flag.
            unsafe { NdisFReturnNetBufferLists(handle, nbls, return_flags) };
        }
        module.release_from_data_path(1);
        return;
    }
    let cfg = module.data_path_config();
    // Re-inserting stripped tags inline makes the chain's EtherTypes and VLANs differ from what the
    // miniport's SINGLE_ETHER_TYPE / SINGLE_VLAN hints promised; clear those hints when that can happen.
    let receive_flags = if cfg.settings.mode == Mode::Vlan && cfg.settings.vlan_receive_inline {
        receive_flags & !(NDIS_RECEIVE_FLAGS_SINGLE_ETHER_TYPE | NDIS_RECEIVE_FLAGS_SINGLE_VLAN)
    } else {
        receive_flags
    };
    let transforms = match cfg.settings.mode {
        Mode::Exercise => true,
        Mode::Vlan => cfg.settings.vlan_receive_inline,
        Mode::Passthrough => false,
    };
    if !module.is_running() || !transforms {
        module
            .stats
            .passthrough_nbls
            .fetch_add(count as u64, Ordering::Relaxed);
        // SAFETY: passing the indication on unchanged.
        unsafe { NdisFIndicateReceiveNetBufferLists(handle, nbls, port, count, receive_flags) };
        module.release_from_data_path(1);
        return;
    }
    let handlers = module.handlers();
    let mut tally = Tally::default();
    if NDIS_TEST_RECEIVE_CAN_PEND(receive_flags) {
        let return_flags = if NDIS_TEST_RECEIVE_AT_DISPATCH_LEVEL(receive_flags) {
            NDIS_RETURN_FLAGS_DISPATCH_LEVEL
        } else {
            0
        };
        let mut keep = NblQueue::new();
        let mut drop = NblQueue::new();
        let mut ours = 0i64;
        // SAFETY: the chain is ours until indicated or returned.
        for p in unsafe { NblChain::new(nbls) } {
            // SAFETY: a valid NBL we own, with the miniport's mapped MDLs.
            match unsafe { transform_nbl(p, &cfg, Path::Receive, handlers, &mut tally) } {
                Outcome::Transformed => {
                    ours += 1;
                    // SAFETY: owned NBL, in no other list.
                    unsafe { keep.push(p) };
                }
                // SAFETY: as above.
                Outcome::Untouched => unsafe { keep.push(p) },
                // SAFETY: as above; rolled back.
                Outcome::Failed => unsafe { drop.push(p) },
            }
        }
        tally.commit(&module.stats, Direction::Receive);
        module.acquire(ours);
        if !drop.is_empty() {
            // SAFETY: returning NBLs the miniport indicated, rolled back, with the derived flag.
            unsafe { NdisFReturnNetBufferLists(handle, drop.head(), return_flags) };
        }
        if !keep.is_empty() {
            // SAFETY: indicating NBLs we own with their count and the caller's flags.
            unsafe {
                NdisFIndicateReceiveNetBufferLists(
                    handle,
                    keep.head(),
                    port,
                    keep.count(),
                    receive_flags,
                )
            };
        }
        module.release_from_data_path(1);
        return;
    }

    // NDIS_RECEIVE_FLAGS_RESOURCES: indicate runs of kept NBLs, restore each run after it comes back.
    let mut run_head: *mut NET_BUFFER_LIST = core::ptr::null_mut();
    let mut run_tail: *mut NET_BUFFER_LIST = core::ptr::null_mut();
    let mut run_len = 0u32;
    // SAFETY: the chain is ours for the duration of the callback.
    let mut chain = unsafe { NblChain::new(nbls) };
    loop {
        let p = chain.next().unwrap_or(core::ptr::null_mut());
        // SAFETY: a valid NBL we own for the callback.
        let failed = p.is_null()
            || unsafe { transform_nbl(p, &cfg, Path::Receive, handlers, &mut tally) }
                == Outcome::Failed;
        if failed {
            // Flush the run before `p` (a dropped NBL, or the end of the chain).
            if run_len != 0 {
                // SAFETY: cutting the chain after the run; relinked below.
                unsafe { (*run_tail).Next = core::ptr::null_mut() };
                // SAFETY: a synchronous indication (RESOURCES set): ownership is back on return.
                unsafe {
                    NdisFIndicateReceiveNetBufferLists(
                        handle,
                        run_head,
                        port,
                        run_len,
                        receive_flags,
                    )
                };
                // SAFETY: the run is ours again (its references were never taken: it never left).
                unsafe { restore_chain(run_head, &mut tally) };
                // SAFETY: relink the original chain.
                unsafe { (*run_tail).Next = p };
            }
            run_head = core::ptr::null_mut();
            run_len = 0;
            if p.is_null() {
                break;
            }
        } else {
            if run_head.is_null() {
                run_head = p;
            }
            run_tail = p;
            run_len += 1;
        }
    }
    tally.commit(&module.stats, Direction::Receive);
    module.release_from_data_path(1);
}

/// FilterReturnNetBufferLists. IRQL <= DISPATCH_LEVEL (as `return_flags` says).
///
/// # Safety
/// Called by NDIS with a live module context and NBLs this module indicated.
pub unsafe extern "system" fn FilterReturnNetBufferLists(
    ctx: NDIS_HANDLE,
    nbls: *mut NET_BUFFER_LIST,
    return_flags: u32,
) {
    // SAFETY: NDIS passes this module's context to its handlers (FilterModule::from_ctx).
    let module = unsafe { FilterModule::from_ctx(ctx) };
    // SAFETY: the returned chain is ours until returned to the miniport, which the closure does with
    // NDIS's flags.
    unsafe {
        restore_and_hand_on(module, nbls, Direction::Receive, |handle, nbls| {
            NdisFReturnNetBufferLists(handle, nbls, return_flags)
        })
    };
}
