//! Filter module contexts and the Attaching → Paused → Restarting → Running → Pausing → Paused →
//! Detached state machine (ndis-contract.md §3.2), with the accounting that makes a pause complete only
//! when nothing of ours is outstanding.
//!
//! **Outstanding references.** `outstanding` counts (a) one *bias* reference while the module is
//! Restarting/Running, (b) one reference per data-path callback in progress, taken *before* the Running
//! check, and (c) one per NBL that carries this filter's context and is currently below (send) or above
//! (receive) the filter. FilterPause sets Pausing, marks a pause pending and drops the bias. Whoever
//! drops the count to zero while a pause is pending (FilterPause itself, or the last send-complete /
//! return / callback) claims the pending flag, sets Paused and — if it is not FilterPause — calls
//! NdisFPauseComplete. Because callbacks take their reference before they look at the state, a callback
//! that raced with FilterPause either sees Pausing (and backs out) or holds the pause open until it is
//! done; so when the pause completes, no pool block and no NBL context of ours is outstanding.
//!
//! Owns: the module context (allocation, the module list used by statistics and tests, detach), the
//! publication of the data-path settings from attach/restart to every CPU's data path
//! ([`AtomicConfig`], read as [`DataPathConfig`]), the one statement of why NDIS's module context may
//! be used as `&FilterModule`
//! ([`FilterModule::from_ctx`]), the one choice of MDL handler pair ([`handler_pair`]),
//! attach/restart/pause/detach. Must not: touch NBLs (send.rs / receive.rs) or the pool's internals
//! (a module's pool keys go to `pool_service::apply_module_limits`).
//!
//! IRQL: the lifecycle handlers at PASSIVE_LEVEL; the references and the module list at IRQL <=
//! DISPATCH_LEVEL (the list's lock is the driver's `SpinLock`, held at DISPATCH_LEVEL); each other
//! routine's at its definition.

#![allow(non_snake_case)] // handlers keep their NDIS names (FilterAttach, ...)

use super::config::{self, DataPathSettings};
use super::stats::{FilterStats, FilterStatsSnapshot};
use crate::names::tags::MODULE as MODULE_TAG;
use crate::nb::MdlHandlers;
use crate::sync::{SpinLock, SpinLockGuard};
use crate::transform::offload::{self, AtomicNicCaps, NicCaps};
use crate::transform::Mode;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU32, Ordering};
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

/// `"MdlPFlt1"`: marks a live module context (for the debugger scripts).
pub const MODULE_MAGIC: u64 = u64::from_le_bytes(*b"MdlPFlt1");

/// The data-path settings, published by attach/restart (`store`) while any CPU's data path reads
/// them (`load`): one atomic word per field group, so a reader sees each group whole.
#[derive(Default)]
pub struct AtomicConfig {
    mode: AtomicU32,
    exercise_bytes: AtomicU32,
    exercise_backfill: AtomicU32,
    vlan: AtomicU32,
}

/// The per-callback view of the configuration: the module's data-path settings and the NIC's
/// capabilities.
#[derive(Clone, Copy, Debug)]
pub struct DataPathConfig {
    pub settings: DataPathSettings,
    /// The NIC's offload capabilities and MTU (vlan mode's offload / frame-size decisions).
    pub nic: NicCaps,
}

impl AtomicConfig {
    fn store(&self, c: &DataPathSettings) {
        self.mode.store(c.mode as u32, Ordering::Relaxed);
        self.exercise_bytes
            .store(c.exercise_bytes, Ordering::Relaxed);
        self.exercise_backfill
            .store(c.exercise_backfill, Ordering::Relaxed);
        let vlan = c.vlan_id as u32
            | (c.vlan_priority as u32) << 16
            | (c.vlan_receive_inline as u32) << 24;
        self.vlan.store(vlan, Ordering::Relaxed);
    }

    /// Any IRQL.
    pub fn load(&self) -> DataPathSettings {
        let vlan = self.vlan.load(Ordering::Relaxed);
        DataPathSettings {
            mode: Mode::from_u32(self.mode.load(Ordering::Relaxed)).unwrap_or(Mode::Passthrough),
            exercise_bytes: self.exercise_bytes.load(Ordering::Relaxed),
            exercise_backfill: self.exercise_backfill.load(Ordering::Relaxed),
            vlan_id: (vlan & 0xFFFF) as u16,
            vlan_priority: ((vlan >> 16) & 0xFF) as u8,
            vlan_receive_inline: (vlan >> 24) & 1 != 0,
        }
    }
}

/// One filter module (one per adapter the filter binds to).
#[repr(C)]
pub struct FilterModule {
    pub magic: u64,
    pub ndis_filter_handle: NDIS_HANDLE,
    pub state: AtomicU32,
    pause_pending: AtomicBool,
    outstanding: AtomicI64,
    pub config: AtomicConfig,
    /// The PoolTrimIntervalMs this module last read, as read (the pool's own `limits()` holds the
    /// interval in force, clamped), for reports.
    pub pool_trim_interval_ms: AtomicU32,
    /// The clone of the OID request in flight (NDIS serialises OIDs per module), or NULL.
    pub(crate) pending_oid: AtomicPtr<NDIS_OID_REQUEST>,
    /// `RequestId` of the original request in flight, for FilterCancelOidRequest (compared as a value,
    /// never dereferenced), valid while `oid_in_flight`.
    pub(crate) pending_oid_id: AtomicPtr<core::ffi::c_void>,
    pub(crate) oid_in_flight: AtomicBool,
    pub stats: FilterStats,
    /// The NIC's offload capabilities (attach) and MtuSize / MacOptions (restart).
    pub nic: AtomicNicCaps,
}

impl FilterModule {
    /// A module of `ndis_filter_handle` in `state`: nothing outstanding, no pause pending, no OID in
    /// flight, the default configuration and NIC capabilities, zero statistics. Any IRQL.
    #[inline(always)]
    fn new(ndis_filter_handle: NDIS_HANDLE, state: ModuleState) -> Self {
        FilterModule {
            magic: MODULE_MAGIC,
            ndis_filter_handle,
            state: AtomicU32::new(state as u32),
            pause_pending: AtomicBool::new(false),
            outstanding: AtomicI64::new(0),
            config: AtomicConfig::default(),
            pool_trim_interval_ms: AtomicU32::new(0),
            pending_oid: AtomicPtr::new(core::ptr::null_mut()),
            pending_oid_id: AtomicPtr::new(core::ptr::null_mut()),
            oid_in_flight: AtomicBool::new(false),
            stats: FilterStats::new_const(),
            nic: AtomicNicCaps::default(),
        }
    }

    /// The module behind the `FilterModuleContext` NDIS passes to this filter's handlers. Any IRQL.
    ///
    /// **Why a shared reference is sound** (the one statement of this invariant): FilterAttach gives
    /// NDIS (NdisFSetAttributes) a pointer to a `FilterModule` it allocated and initialised; NDIS
    /// passes exactly that pointer to every Filter* handler of the module, and only between
    /// FilterAttach's success and FilterDetach's return; FilterDetach frees it only after the module
    /// is Paused, when no send/receive/OID/status callback of it is running or can start. Every field
    /// written after attach is atomic or interior-mutable, so `&FilterModule` for the length of one
    /// handler call is valid.
    ///
    /// # Safety
    /// `ctx` must be the module context NDIS passed to the running Filter* handler (not
    /// FilterDetach's, which owns and frees it), and the reference not kept past that handler.
    #[inline]
    pub unsafe fn from_ctx<'a>(ctx: NDIS_HANDLE) -> &'a FilterModule {
        // SAFETY: the invariant above: a live, initialised module for the handler's duration.
        unsafe { &*(ctx as *const FilterModule) }
    }

    /// Current state. Any IRQL.
    pub fn state(&self) -> u32 {
        self.state.load(Ordering::SeqCst)
    }

    fn set_state(&self, s: ModuleState) {
        self.state.store(s as u32, Ordering::SeqCst);
    }

    /// The data-path configuration with the NIC's capabilities. Any IRQL.
    pub fn data_path_config(&self) -> DataPathConfig {
        DataPathConfig {
            settings: self.config.load(),
            nic: self.nic.load(),
        }
    }

    /// Whether the data path may transform and forward. Any IRQL.
    pub fn is_running(&self) -> bool {
        self.state() == ModuleState::Running as u32
    }

    /// Takes `n` references (before the Running check, or before an NBL of ours leaves the filter).
    /// Any IRQL.
    #[inline]
    pub fn acquire(&self, n: i64) {
        if n != 0 {
            self.outstanding.fetch_add(n, Ordering::SeqCst);
        }
    }

    /// Drops `n` references; returns true if this call claimed a pending pause (the count reached zero
    /// while Pausing). The caller must then complete the pause ([`Self::release_from_data_path`] does).
    #[inline]
    fn release_claims_pause(&self, n: i64) -> bool {
        if n == 0 {
            return false;
        }
        let before = self.outstanding.fetch_sub(n, Ordering::SeqCst);
        before == n && self.pause_pending.swap(false, Ordering::SeqCst)
    }

    /// Drops `n` references from a data-path callback; if that completes a pending pause, sets Paused
    /// and calls NdisFPauseComplete. The module must not be touched after this returns (it may be
    /// detached as soon as the pause completes). IRQL <= DISPATCH_LEVEL.
    #[inline]
    pub fn release_from_data_path(&self, n: i64) {
        if self.release_claims_pause(n) {
            let handle = self.ndis_filter_handle;
            self.set_state(ModuleState::Paused);
            // SAFETY: the pause pending on this module is completed exactly once (the claim above).
            unsafe { NdisFPauseComplete(handle) };
        }
    }

    /// References currently held (bias + callbacks + NBLs). Any IRQL.
    pub fn outstanding(&self) -> i64 {
        self.outstanding.load(Ordering::SeqCst)
    }

    /// The MDL handler pair for new retreats. Any IRQL.
    pub fn handlers(&self) -> MdlHandlers {
        current_handlers()
    }
}

/// When set, new retreats use NDIS's default allocator (NULL handlers) instead of the pool: the
/// baseline of the data-path benchmark. Never set by the driver itself.
static USE_NDIS_DEFAULT_ALLOCATOR: AtomicBool = AtomicBool::new(false);

/// Benchmark knob: make new retreats use NDIS's default allocator (`true`) or the pool (`false`).
/// NBLs already transformed are restored with the pair that transformed them. Any IRQL.
#[doc(hidden)]
pub fn use_ndis_default_allocator(on: bool) {
    USE_NDIS_DEFAULT_ALLOCATOR.store(on, Ordering::Relaxed);
}

/// The pool's handler pair.
pub const POOL_HANDLERS: MdlHandlers = MdlHandlers {
    allocate: Some(crate::mdl_handlers::NetAllocateMdl),
    free: Some(crate::mdl_handlers::NetFreeMdl),
};

/// The one place the handler pair is chosen: NDIS's default allocator (NULL handlers, the
/// benchmark's baseline) when `ndis_default`, the pool's pair otherwise. Any IRQL.
#[inline]
pub fn handler_pair(ndis_default: bool) -> MdlHandlers {
    if ndis_default {
        MdlHandlers::NDIS_DEFAULT
    } else {
        POOL_HANDLERS
    }
}

/// The pair new retreats use. Any IRQL.
pub fn current_handlers() -> MdlHandlers {
    handler_pair(USE_NDIS_DEFAULT_ALLOCATOR.load(Ordering::Relaxed))
}

// ---------------------------------------------------------------------------------------------
// The module list (statistics, debugger, tests). Fixed size, no allocation.

/// Most modules tracked for statistics at once (more still work; they are just not listed).
pub const MAX_LISTED_MODULES: usize = 64;
/// The module list: a slot holds a live module (attach inserts, detach clears under the list lock);
/// the debugger-visible statistics root (`src/stats/mod.rs`) points at it.
pub static MODULES: [AtomicPtr<FilterModule>; MAX_LISTED_MODULES] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_LISTED_MODULES];
/// Serialises list changes against readers (the driver's one spin lock type, `src/sync.rs`).
static MODULES_LOCK: SpinLock<()> = SpinLock::new(());
/// Counters of modules that have detached (so totals survive detach).
pub static DETACHED_TOTALS: FilterStats = FilterStats::new_const();

fn lock_list() -> SpinLockGuard<'static, ()> {
    MODULES_LOCK.lock()
}

fn list_insert(m: *mut FilterModule) {
    let _g = lock_list();
    for slot in MODULES.iter() {
        if slot.load(Ordering::Relaxed).is_null() {
            slot.store(m, Ordering::Relaxed);
            return;
        }
    }
}

fn list_remove(m: *mut FilterModule) {
    let _g = lock_list();
    for slot in MODULES.iter() {
        if slot.load(Ordering::Relaxed) == m {
            slot.store(core::ptr::null_mut(), Ordering::Relaxed);
        }
    }
    // SAFETY: `m` is live until its detach frees it, after this.
    unsafe { (*m).stats.accumulate_into(&DETACHED_TOTALS) };
}

/// Calls `f` for every attached module, under the list lock (at DISPATCH_LEVEL). IRQL <= DISPATCH.
pub fn for_each_module(mut f: impl FnMut(&FilterModule)) {
    let _g = lock_list();
    for slot in MODULES.iter() {
        let m = slot.load(Ordering::Relaxed);
        if !m.is_null() {
            // SAFETY: listed modules are live: detach unlinks under this lock before freeing.
            f(unsafe { &*m });
        }
    }
}

/// Driver-wide statistics: every attached module plus every detached one. IRQL <= DISPATCH_LEVEL.
pub fn stats_totals() -> FilterStatsSnapshot {
    let total = FilterStats::new_const();
    DETACHED_TOTALS.accumulate_into(&total);
    for_each_module(|m| m.stats.accumulate_into(&total));
    total.snapshot()
}

// ---------------------------------------------------------------------------------------------
// Lifecycle handlers.

fn apply_config(module: &FilterModule, handle: NDIS_HANDLE) {
    // SAFETY: PASSIVE_LEVEL (attach/restart), the module's own NdisFilterHandle.
    let (cfg, report) = unsafe { config::read(handle) };
    module.config.store(&cfg.data_path);
    module
        .pool_trim_interval_ms
        .store(cfg.pool.trim_interval_ms, Ordering::Relaxed);
    // The pool is driver-wide: this module's pool keys apply now (the last attach/restart wins).
    let _ = crate::pool_service::apply_module_limits(handle, cfg.pool);
    if report.bad_values != 0 {
        module
            .stats
            .config_bad_values
            .fetch_add(report.bad_values as u64, Ordering::Relaxed);
    }
    if report.open_failed {
        module
            .stats
            .config_open_failures
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// FilterAttach. PASSIVE_LEVEL. Allocates the module, reads its configuration, sets the attributes.
/// Returns only NDIS_STATUS_SUCCESS, NDIS_STATUS_RESOURCES or NDIS_STATUS_FAILURE, as documented.
///
/// # Safety
/// Called by NDIS with valid parameters.
pub unsafe extern "system" fn FilterAttach(
    ndis_filter_handle: NDIS_HANDLE,
    _driver_context: NDIS_HANDLE,
    params: *mut NDIS_FILTER_ATTACH_PARAMETERS,
) -> NDIS_STATUS {
    if !params.is_null() {
        // SAFETY: NDIS passes valid attach parameters.
        let medium = unsafe { (*params).MiniportMediaType };
        if medium != NdisMedium802_3 {
            // The transforms assume Ethernet frames (INF FilterMediaTypes = ethernet). FilterAttach
            // may fail only with RESOURCES or FAILURE (ddi/ndis/nc-ndis-filter_attach).
            return NDIS_STATUS_FAILURE;
        }
    }
    // SAFETY: PASSIVE_LEVEL nonpaged allocation with the driver's tag; zeroed by ExAllocatePool2.
    let module = unsafe {
        ExAllocatePool2(
            POOL_FLAG_NON_PAGED,
            core::mem::size_of::<FilterModule>(),
            MODULE_TAG,
        )
    } as *mut FilterModule;
    if module.is_null() {
        return NDIS_STATUS_RESOURCES;
    }
    // SAFETY: `module` is a fresh, suitably aligned (16-byte pool alignment) block of the right size.
    unsafe {
        module.write(FilterModule::new(
            ndis_filter_handle,
            ModuleState::Attaching,
        ));
    }
    if !params.is_null() {
        // SAFETY: NDIS passes valid attach parameters; DefaultOffloadConfiguration is NULL or an
        // NDIS_OFFLOAD valid during FilterAttach, copied here.
        let caps = unsafe {
            NicCaps::from_ndis_offload((*params).DefaultOffloadConfiguration as *const NDIS_OFFLOAD)
        };
        // SAFETY: `module` was just written.
        unsafe { (*module).nic.store_offload(&caps) };
    }
    // SAFETY: live module, PASSIVE_LEVEL.
    apply_config(unsafe { &*module }, ndis_filter_handle);
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
        unsafe { ExFreePoolWithTag(module as PVOID, MODULE_TAG) };
        // Only the statuses FilterAttach documents go back to NDIS.
        return if status == NDIS_STATUS_RESOURCES {
            NDIS_STATUS_RESOURCES
        } else {
            NDIS_STATUS_FAILURE
        };
    }
    // SAFETY: `module` is live until FilterDetach.
    unsafe { (*module).set_state(ModuleState::Paused) };
    list_insert(module);
    NDIS_STATUS_SUCCESS
}

/// FilterDetach. PASSIVE_LEVEL, only in Paused. Cannot fail: frees the module.
///
/// # Safety
/// `ctx` is the module context given to NdisFSetAttributes.
pub unsafe extern "system" fn FilterDetach(ctx: NDIS_HANDLE) {
    let module = ctx as *mut FilterModule;
    list_remove(module);
    // SAFETY: live module; nothing of ours is outstanding in Paused (the pause completed only then).
    unsafe {
        (*module).magic = 0;
        ExFreePoolWithTag(ctx, MODULE_TAG);
    }
}

/// FilterRestart. PASSIVE_LEVEL, only in Paused. Re-reads the configuration, then starts the data path.
///
/// # Safety
/// `ctx` is a live module context.
pub unsafe extern "system" fn FilterRestart(
    ctx: NDIS_HANDLE,
    params: *mut NDIS_FILTER_RESTART_PARAMETERS,
) -> NDIS_STATUS {
    // SAFETY: NDIS passes this module's context to FilterRestart/FilterPause (FilterModule::from_ctx).
    let module = unsafe { FilterModule::from_ctx(ctx) };
    module.set_state(ModuleState::Restarting);
    // SAFETY: NDIS passes valid restart parameters whose attributes list is valid during the call.
    let general = (!params.is_null())
        .then(|| unsafe { offload::from_restart_attributes((*params).RestartAttributes) })
        .flatten();
    let (mtu, mac_8021q) = general.unwrap_or((0, false));
    module.nic.store_restart(mtu, mac_8021q);
    apply_config(module, module.ndis_filter_handle);
    // Tell the drivers above how much data/context backfill this mode wants (filter/restart.rs).
    // SAFETY: the restart parameters NDIS passed, PASSIVE_LEVEL.
    unsafe { super::restart::raise_backfill(params, module.config.load().mode) };
    module.pause_pending.store(false, Ordering::SeqCst);
    // The bias reference first, then Running: a send that sees Running always finds the bias held.
    module.acquire(1);
    module.set_state(ModuleState::Running);
    NDIS_STATUS_SUCCESS
}

/// FilterPause. PASSIVE_LEVEL, only in Running. Completes now if nothing of ours is outstanding,
/// otherwise returns NDIS_STATUS_PENDING and the last completion/return calls NdisFPauseComplete.
///
/// # Safety
/// `ctx` is a live module context.
pub unsafe extern "system" fn FilterPause(
    ctx: NDIS_HANDLE,
    _params: *mut NDIS_FILTER_PAUSE_PARAMETERS,
) -> NDIS_STATUS {
    // SAFETY: NDIS passes this module's context to FilterRestart/FilterPause (FilterModule::from_ctx).
    let module = unsafe { FilterModule::from_ctx(ctx) };
    module.set_state(ModuleState::Pausing);
    module.pause_pending.store(true, Ordering::SeqCst);
    module.stats.pauses_pended.fetch_add(1, Ordering::Relaxed);
    if module.release_claims_pause(1) {
        module.stats.pauses_pended.fetch_sub(1, Ordering::Relaxed);
        module.set_state(ModuleState::Paused);
        NDIS_STATUS_SUCCESS
    } else {
        NDIS_STATUS_PENDING
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module() -> FilterModule {
        FilterModule::new(core::ptr::null_mut(), ModuleState::Paused)
    }

    /// What FilterPause does, without NDIS: returns true when the pause completes synchronously.
    fn pause(m: &FilterModule) -> bool {
        m.set_state(ModuleState::Pausing);
        m.pause_pending.store(true, Ordering::SeqCst);
        m.release_claims_pause(1)
    }

    fn restart(m: &FilterModule) {
        m.pause_pending.store(false, Ordering::SeqCst);
        m.acquire(1);
        m.set_state(ModuleState::Running);
    }

    #[test]
    fn pause_with_nothing_outstanding_completes_at_once() {
        let m = module();
        restart(&m);
        assert!(pause(&m));
        assert_eq!(m.outstanding(), 0);
    }

    #[test]
    fn pause_pends_until_the_last_nbl_comes_back_and_is_claimed_once() {
        let m = module();
        restart(&m);
        m.acquire(1); // a send callback in progress
        m.acquire(3); // three NBLs of ours forwarded
        assert!(!m.release_claims_pause(1)); // the callback returns
        assert!(!pause(&m), "three NBLs outstanding: PENDING");
        assert!(!m.release_claims_pause(2));
        // A send racing with the pause takes its reference, sees Pausing and backs out.
        m.acquire(1);
        assert!(!m.is_running());
        assert!(!m.release_claims_pause(1));
        assert!(
            m.release_claims_pause(1),
            "the last completion completes the pause"
        );
        assert_eq!(m.outstanding(), 0);
        // Nothing can claim it twice.
        m.acquire(1);
        assert!(!m.release_claims_pause(1));
    }

    #[test]
    fn a_callback_that_outlives_the_pause_call_completes_it() {
        let m = module();
        restart(&m);
        m.acquire(1); // callback took its reference before the state changed
        assert!(!pause(&m));
        assert!(m.release_claims_pause(1));
        restart(&m);
        assert!(m.is_running());
        assert_eq!(m.outstanding(), 1, "only the bias");
    }
}
