//! Filter module contexts and the Attaching → Paused → Restarting → Running → Pausing → Paused →
//! Detached state machine. At this stage no data-path handler is registered, so NDIS bypasses the
//! module for sends, receives, OIDs and status; pause therefore has nothing outstanding.

#![allow(non_snake_case)] // handlers keep their NDIS names (FilterAttach, ...)

use crate::names::POOL_TAG;
use core::sync::atomic::{AtomicU32, Ordering};
use ndis_sys::*;

/// Module states (ndis-contract.md §3.2).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleState {
    Attaching = 0,
    Paused = 1,
    Restarting = 2,
    Running = 3,
    Pausing = 4,
}

/// One filter module (one per adapter the filter binds to).
#[repr(C)]
pub struct FilterModule {
    pub ndis_filter_handle: NDIS_HANDLE,
    pub state: AtomicU32,
}

impl FilterModule {
    pub fn state(&self) -> u32 {
        self.state.load(Ordering::Acquire)
    }
    fn set_state(&self, s: ModuleState) {
        self.state.store(s as u32, Ordering::Release);
    }
}

/// FilterAttach. PASSIVE_LEVEL.
///
/// # Safety
/// Called by NDIS with valid parameters.
pub unsafe extern "system" fn FilterAttach(
    ndis_filter_handle: NDIS_HANDLE,
    _driver_context: NDIS_HANDLE,
    _params: *mut NDIS_FILTER_ATTACH_PARAMETERS,
) -> NDIS_STATUS {
    // SAFETY: PASSIVE_LEVEL nonpaged allocation with the driver's tag; zeroed by ExAllocatePool2.
    let module = unsafe {
        ExAllocatePool2(
            POOL_FLAG_NON_PAGED,
            core::mem::size_of::<FilterModule>(),
            POOL_TAG,
        )
    } as *mut FilterModule;
    if module.is_null() {
        return NDIS_STATUS_RESOURCES;
    }
    // SAFETY: `module` is a fresh, suitably aligned (16-byte pool alignment) block of the right size.
    unsafe {
        module.write(FilterModule {
            ndis_filter_handle,
            state: AtomicU32::new(ModuleState::Attaching as u32),
        });
    }
    let mut attrs = NDIS_FILTER_ATTRIBUTES {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_FILTER_ATTRIBUTES,
            NDIS_FILTER_ATTRIBUTES_REVISION_1,
            NDIS_SIZEOF_FILTER_ATTRIBUTES_REVISION_1,
        ),
        Flags: 0,
    };
    // SAFETY: PASSIVE_LEVEL, inside FilterAttach, with the handle NDIS gave us.
    let status =
        unsafe { NdisFSetAttributes(ndis_filter_handle, module as NDIS_HANDLE, &mut attrs) };
    if status != NDIS_STATUS_SUCCESS {
        // SAFETY: the module was never published to NDIS; free our own block.
        unsafe { ExFreePoolWithTag(module as PVOID, POOL_TAG) };
        return status;
    }
    // SAFETY: `module` is live until FilterDetach.
    unsafe { (*module).set_state(ModuleState::Paused) };
    NDIS_STATUS_SUCCESS
}

/// FilterDetach. PASSIVE_LEVEL, only in Paused. Cannot fail.
///
/// # Safety
/// `ctx` is the module context given to NdisFSetAttributes.
pub unsafe extern "system" fn FilterDetach(ctx: NDIS_HANDLE) {
    // SAFETY: NDIS calls detach once per module, after which it never uses the context again.
    unsafe { ExFreePoolWithTag(ctx, POOL_TAG) };
}

/// FilterRestart. PASSIVE_LEVEL, only in Paused.
///
/// # Safety
/// `ctx` is a live module context.
pub unsafe extern "system" fn FilterRestart(
    ctx: NDIS_HANDLE,
    _params: *mut NDIS_FILTER_RESTART_PARAMETERS,
) -> NDIS_STATUS {
    // SAFETY: NDIS passes the live context.
    let module = unsafe { &*(ctx as *const FilterModule) };
    module.set_state(ModuleState::Restarting);
    module.set_state(ModuleState::Running);
    NDIS_STATUS_SUCCESS
}

/// FilterPause. PASSIVE_LEVEL, only in Running. Nothing of ours is outstanding at this stage.
///
/// # Safety
/// `ctx` is a live module context.
pub unsafe extern "system" fn FilterPause(
    ctx: NDIS_HANDLE,
    _params: *mut NDIS_FILTER_PAUSE_PARAMETERS,
) -> NDIS_STATUS {
    // SAFETY: NDIS passes the live context.
    let module = unsafe { &*(ctx as *const FilterModule) };
    module.set_state(ModuleState::Pausing);
    module.set_state(ModuleState::Paused);
    NDIS_STATUS_SUCCESS
}
