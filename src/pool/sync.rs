//! The synchronisation primitives the pool uses, swapped for loom's under `--cfg loom` (unit tests only).
//!
//! Owns: the `UnsafeCell` wrapper with closure access (the shape loom needs) and the spin-wait hint; it
//! names the depot's spin lock ([`SpinLocked`]), which is the driver's one spin lock type
//! (`crate::sync::SpinLock`, loom-modelled there). What loom checks is everything the lock protects and
//! every per-CPU cell. Must not define a lock of its own. Statistics counters are *not* routed through
//! here: they are single-writer relaxed counters with no ordering role, so they stay `core` atomics (and
//! keep their `#[repr(C)]` layout under every configuration).

/// The depot's lock: the driver's one spin lock type (`src/sync.rs`), taken at DISPATCH_LEVEL through
/// `SpinLock::with`, loom-modelled there.
pub(crate) use crate::sync::SpinLock as SpinLocked;

/// Relax inside a spin-wait loop. Under loom this yields to the model's scheduler, which is what makes a
/// spin loop explorable.
#[inline(always)]
pub(crate) fn spin_loop() {
    #[cfg(all(test, loom))]
    loom::thread::yield_now();
    #[cfg(not(all(test, loom)))]
    core::hint::spin_loop();
}

/// Interior mutability with closure-scoped access. Outside loom it compiles to a raw pointer.
#[cfg(not(all(test, loom)))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(all(test, loom)))]
impl<T> UnsafeCell<T> {
    #[inline(always)]
    pub(crate) const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a pointer to the contents; the caller's synchronisation makes the access exclusive.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(all(test, loom))]
pub(crate) use loom::cell::UnsafeCell;
