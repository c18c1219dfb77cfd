//! The driver-wide pool: the one [`Pool`] the handler pair serves from, its life from DriverEntry to
//! DriverUnload, the limits the filter's modules ask for, and the periodic working-set trim.
//!
//! Owns: the global pool slot ([`install`] / [`installed`] / [`uninstall`]), the configuration lock and
//! "the module attached or restarted last wins" ([`apply_module_limits`], with its once-only notes), the
//! trim timer ([`start_trim_timer`] / [`stop_trim_timer`], which calls [`trim_tick`]), and the
//! [`PoolObserver`] it tells when the pool is installed, changed or about to go (DriverEntry passes the
//! debugger statistics root's). Must not: contain pool logic (that is `pool/`), the NDIS handler pair
//! (`mdl_handlers.rs`), read the registry or know the filter's modules (the limits and the handles come
//! in as arguments), or name the statistics root.
//!
//! IRQL: install / uninstall / apply_module_limits / start_trim_timer / stop_trim_timer at
//! PASSIVE_LEVEL; installed / snapshot / trim_tick at IRQL <= DISPATCH_LEVEL; the configuration lock is
//! the driver's [`SpinLock`], held at DISPATCH_LEVEL for a few instructions.
//!
//! The pool is built before any registry access is possible (NDIS configuration needs a filter handle,
//! which exists only after registration, and NDIS may attach a module inside the register call), so
//! DriverEntry builds it with the INF defaults in force and room to raise magazine fill and depot limit
//! up to the capacities it chose. Each module's values are read and range-checked at FilterAttach and
//! FilterRestart and then applied here: the module attached or restarted *last* wins (a once-only note
//! is logged when a module's values replace different ones of another module, and when a value is above
//! the allocated room and clamped). The trim timer is re-armed when the interval changes.
//!
//! The trim timer is one driver-wide NDIS timer, allocated on the filter driver handle after
//! registration and periodic at the pool's `trim_interval_ms`.

use crate::pool::{
    KernelPlatform, LeakReport, Limits, Pool, PoolConfig, PoolError, PoolHandle, PoolSnapshot,
    Released,
};
use crate::sync::SpinLock;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};
use ndis_sys::*;

/// Who is told about the driver-wide pool's life (DriverEntry passes the statistics root's routines to
/// [`start`]). Each is called with the pool alive.
pub struct PoolObserver {
    /// A pool was installed, before any handler call can reach it. PASSIVE_LEVEL.
    pub installed: fn(&Pool<KernelPlatform>),
    /// The pool's limits changed or a trim ran. IRQL <= DISPATCH_LEVEL.
    pub changed: fn(&Pool<KernelPlatform>),
    /// The pool is quiescent and flushed and is about to be destroyed. PASSIVE_LEVEL.
    pub retiring: fn(&Pool<KernelPlatform>),
}

/// The installed pool, or NULL.
static POOL: AtomicPtr<Pool<KernelPlatform>> = AtomicPtr::new(core::ptr::null_mut());
/// Set while `install` is building a pool, so two installs cannot race.
static INSTALLING: AtomicBool = AtomicBool::new(false);
/// The observer given to [`start`] (NULL: none).
static OBSERVER: AtomicPtr<PoolObserver> = AtomicPtr::new(core::ptr::null_mut());

fn observer() -> Option<&'static PoolObserver> {
    let o = OBSERVER.load(Ordering::Acquire);
    // SAFETY: only `start` stores here, from a `&'static PoolObserver`.
    unsafe { o.as_ref() }
}

/// DriverEntry's install: a new load (the once-only notes and the last module's claim are forgotten),
/// `observer` is told of this and every later install, change and retirement, then [`install`].
/// PASSIVE_LEVEL.
pub fn start(config: &PoolConfig, observer: &'static PoolObserver) -> Result<(), PoolError> {
    NOTED_DISAGREE.store(false, Ordering::Relaxed);
    NOTED_CLAMPED.store(false, Ordering::Relaxed);
    TUNING.lock().owner = 0;
    OBSERVER.store(
        (observer as *const PoolObserver).cast_mut(),
        Ordering::Release,
    );
    install(config)
}

/// Creates the global pool (sized by `KeQueryMaximumProcessorCountEx(ALL_PROCESSOR_GROUPS)`) and makes
/// the handlers use it; the observer is told. Call before any retreat. PASSIVE_LEVEL.
pub fn install(config: &PoolConfig) -> Result<(), PoolError> {
    if INSTALLING.swap(true, Ordering::Acquire) {
        return Err(PoolError::AlreadyInstalled);
    }
    let result = if POOL.load(Ordering::Acquire).is_null() {
        Pool::create(KernelPlatform::new(), config).map(|handle| {
            if let Some(o) = observer() {
                (o.installed)(&handle);
            }
            POOL.store(handle.into_raw(), Ordering::Release);
        })
    } else {
        Err(PoolError::AlreadyInstalled)
    };
    INSTALLING.store(false, Ordering::Release);
    result
}

/// Detaches the global pool from the handlers and destroys it: every cached block is freed, blocks still
/// in flight are reported (DbgPrintEx) and NOT freed. Returns the report, or None if no pool was
/// installed. Call from DriverUnload after NdisFDeregisterFilterDriver. PASSIVE_LEVEL.
///
/// # Safety
/// No NetAllocateMdl / NetFreeMdl / trim_tick / observer call may be running or start before this
/// returns (true after deregistration with the trim timer stopped: every filter module is detached and
/// no NDIS call can reach the handlers).
pub unsafe fn uninstall() -> Option<LeakReport> {
    let p = POOL.swap(core::ptr::null_mut(), Ordering::AcqRel);
    // SAFETY: `p` came from PoolHandle::into_raw in `install` and the slot no longer holds it.
    let handle: PoolHandle<KernelPlatform> = unsafe { PoolHandle::from_raw(p) }?;
    // Flush first (the pool is quiescent: see the contract above), so what the observer keeps for a
    // crash dump shows what unload returned to the system and what (if anything) leaked.
    // SAFETY: quiescent pool (this function's contract).
    unsafe { handle.flush_all() };
    if let Some(o) = observer() {
        (o.retiring)(&handle);
    }
    Some(handle.destroy())
}

/// The installed pool, for the handler pair, the observer and the trim timer. IRQL <= DISPATCH_LEVEL.
pub fn installed() -> Option<&'static Pool<KernelPlatform>> {
    let p = POOL.load(Ordering::Acquire);
    // SAFETY: a non-null slot holds a live pool; `uninstall`'s contract keeps it alive while callers use it.
    unsafe { p.as_ref() }
}

/// Snapshot of the installed pool's statistics. IRQL <= DISPATCH_LEVEL.
pub fn snapshot() -> Option<PoolSnapshot> {
    installed().map(|p| p.snapshot())
}

/// Working-set trim of the installed pool, then the observer is told; the trim timer calls it every
/// `trim_interval_ms`. IRQL <= DISPATCH_LEVEL.
pub fn trim_tick() -> Released {
    installed()
        .map(|p| {
            let released = p.trim();
            if let Some(o) = observer() {
                (o.changed)(p);
            }
            released
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Module limits: the last module attached or restarted wins.

/// The trim timer object (NULL when none). `Send`: an NDIS timer handle may be used from any CPU.
struct TimerObject(NDIS_HANDLE);
// SAFETY: the handle is an opaque NDIS object pointer, valid on any CPU; the lock serialises its use.
unsafe impl Send for TimerObject {}

/// What the configuration lock serialises: whose limits are in force and the trim timer's re-arm
/// against its teardown.
struct Tuning {
    /// The module handle whose limits were applied last (0 = DriverEntry's defaults).
    owner: usize,
    trim_timer: TimerObject,
}

static TUNING: SpinLock<Tuning> = SpinLock::new(Tuning {
    owner: 0,
    trim_timer: TimerObject(core::ptr::null_mut()),
});
static NOTED_DISAGREE: AtomicBool = AtomicBool::new(false);
static NOTED_CLAMPED: AtomicBool = AtomicBool::new(false);

/// Sets `timer` periodic at `period_ms`, first due `period_ms` from now.
///
/// # Safety
/// `timer` is a live timer object of ours (the configuration lock keeps teardown out).
unsafe fn arm(timer: NDIS_HANDLE, period_ms: u32) {
    // Relative due time, in 100 ns units.
    let due = -(period_ms as i64) * 10_000;
    // SAFETY: the caller's guarantee; IRQL <= DISPATCH_LEVEL.
    unsafe { NdisSetTimerObject(timer, due, period_ms, core::ptr::null_mut()) };
}

/// Applies the limits a module's PoolMagazineSize / PoolDepotLimit / PoolTrimIntervalMs ask for
/// (`module` is its NdisFilterHandle, called from FilterAttach and FilterRestart after its configuration
/// is read). The last caller wins; values above the allocated room are clamped. The depot limit applies
/// at once, the magazine fill at each CPU's next magazine exchange (see `Pool::set_limits`), the trim
/// interval by re-arming the trim timer. Logs once if another module's different values are replaced,
/// and once if a value was clamped. Returns the limits in force afterwards (None without a pool).
/// PASSIVE_LEVEL.
pub fn apply_module_limits(module: NDIS_HANDLE, want: Limits) -> Option<Limits> {
    let pool = installed()?;
    let (before, applied, previous_owner) = {
        let mut tuning = TUNING.lock();
        let before = pool.limits();
        let applied = pool.set_limits(want);
        let previous_owner = core::mem::replace(&mut tuning.owner, module as usize);
        let timer = tuning.trim_timer.0;
        if applied.trim_interval_ms != before.trim_interval_ms && !timer.is_null() {
            // SAFETY: our timer object: teardown takes it out under this lock before freeing it.
            unsafe { arm(timer, applied.trim_interval_ms) };
        }
        (before, applied, previous_owner)
    };
    if let Some(o) = observer() {
        (o.changed)(pool);
    }
    if previous_owner != 0
        && previous_owner != module as usize
        && applied != before
        && !NOTED_DISAGREE.swap(true, Ordering::Relaxed)
    {
        log!(
            DPFLTR_WARNING_LEVEL,
            "pool keys differ between modules; the pool is driver-wide and the module attached or restarted last wins: magazine {} depot {} trim {} ms (were {} / {} / {})",
            applied.magazine_fill,
            applied.depot_limit,
            applied.trim_interval_ms,
            before.magazine_fill,
            before.depot_limit,
            before.trim_interval_ms
        );
    }
    if applied != want && !NOTED_CLAMPED.swap(true, Ordering::Relaxed) {
        log!(
            DPFLTR_WARNING_LEVEL,
            "PoolMagazineSize {} / PoolDepotLimit {} above the pool's room ({} / {}): clamped to {} / {}",
            want.magazine_fill,
            want.depot_limit,
            pool.config().magazine_slots(),
            pool.config().depot_magazines(),
            applied.magazine_fill,
            applied.depot_limit
        );
    }
    Some(applied)
}

// ---------------------------------------------------------------------------------------------
// The trim timer.

/// Set while the timer is being torn down: a late callback does nothing.
static TRIM_STOPPING: AtomicBool = AtomicBool::new(false);
/// Timer callbacks currently running.
static TRIM_ACTIVE: AtomicU32 = AtomicU32::new(0);

/// The trim timer's function. DISPATCH_LEVEL (NDIS timer DPC).
unsafe extern "system" fn trim_timer(_s1: PVOID, _ctx: PVOID, _s2: PVOID, _s3: PVOID) {
    TRIM_ACTIVE.fetch_add(1, Ordering::SeqCst);
    if !TRIM_STOPPING.load(Ordering::SeqCst) {
        trim_tick();
    }
    TRIM_ACTIVE.fetch_sub(1, Ordering::SeqCst);
}

/// Allocates and starts the periodic trim timer on `filter_driver_handle`. PASSIVE_LEVEL. Without a
/// timer (allocation failed) the pool still works; it only keeps what its bounds allow.
///
/// # Safety
/// `filter_driver_handle` is the handle NdisFRegisterFilterDriver returned, and the filter stays
/// registered until [`stop_trim_timer`] has returned.
pub unsafe fn start_trim_timer(filter_driver_handle: NDIS_HANDLE) {
    let Some(pool) = installed() else {
        return;
    };
    TRIM_STOPPING.store(false, Ordering::SeqCst);
    let mut chars = NDIS_TIMER_CHARACTERISTICS {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_TIMER_CHARACTERISTICS,
            NDIS_TIMER_CHARACTERISTICS_REVISION_1,
            NDIS_SIZEOF_TIMER_CHARACTERISTICS_REVISION_1,
        ),
        AllocationTag: crate::names::tags::TIMER,
        TimerFunction: Some(trim_timer),
        FunctionContext: core::ptr::null_mut(),
    };
    let mut timer: NDIS_HANDLE = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; a registered filter driver handle (this function's contract); `chars`
    // and `timer` outlive the call.
    let status = unsafe { NdisAllocateTimerObject(filter_driver_handle, &mut chars, &mut timer) };
    if status != NDIS_STATUS_SUCCESS || timer.is_null() {
        log!(
            DPFLTR_WARNING_LEVEL,
            "trim timer not allocated ({:#x}); the pool is not trimmed",
            status as u32
        );
        return;
    }
    // Under the configuration lock, with the interval in force then: a module's limits applied
    // meanwhile (NDIS may attach inside registration) either came before (and are read here) or
    // re-arm the timer after.
    let mut tuning = TUNING.lock();
    tuning.trim_timer = TimerObject(timer);
    // SAFETY: a timer object we allocated, not yet set; teardown needs this lock.
    unsafe { arm(timer, pool.limits().trim_interval_ms) };
}

/// Cancels and frees the trim timer and waits for a callback still running; the last module's claim
/// on the limits is forgotten. PASSIVE_LEVEL.
pub fn stop_trim_timer() {
    TRIM_STOPPING.store(true, Ordering::SeqCst);
    let timer = {
        let mut tuning = TUNING.lock();
        tuning.owner = 0;
        core::mem::replace(&mut tuning.trim_timer, TimerObject(core::ptr::null_mut())).0
    };
    if !timer.is_null() {
        // SAFETY: our timer object, at PASSIVE_LEVEL: cancel stops the period; a DPC already queued or
        // running on another CPU is waited for by KeFlushQueuedDpcs before the object is freed (and
        // before unload can unmap the callback).
        unsafe {
            NdisCancelTimerObject(timer);
            KeFlushQueuedDpcs();
            NdisFreeTimerObject(timer);
        }
    }
    while TRIM_ACTIVE.load(Ordering::SeqCst) != 0 {
        core::hint::spin_loop();
    }
}
