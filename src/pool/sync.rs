//! The synchronisation primitives the pool uses, swapped for loom's under `--cfg loom` (unit tests only).
//!
//! Owns: the `UnsafeCell` wrapper with closure access (the shape loom needs), the depot's spin lock
//! ([`SpinLocked`]) and the spin-wait hint. Under loom the spin lock is modelled by loom's `Mutex` (a
//! spinning thread makes loom's scheduler explode; the lock's own acquire/release pairing is the textbook
//! test-and-test-and-set, while what loom checks is everything the lock protects and every per-CPU cell). Statistics counters are *not* routed through
//! here: they are single-writer relaxed counters with no ordering role, so they stay `core` atomics (and
//! keep their `#[repr(C)]` layout under every configuration).

#[cfg(not(all(test, loom)))]
use core::sync::atomic::{AtomicBool, Ordering};

/// A value behind a spin lock. Callers hold it only at DISPATCH_LEVEL and only for a few instructions.
#[cfg(not(all(test, loom)))]
pub(crate) struct SpinLocked<T> {
    lock: AtomicBool,
    value: core::cell::UnsafeCell<T>,
}

#[cfg(not(all(test, loom)))]
impl<T> SpinLocked<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            lock: AtomicBool::new(false),
            value: core::cell::UnsafeCell::new(value),
        }
    }

    /// Runs `f` with the lock held; `wait` is called on each spin while another holder has it.
    #[inline]
    pub(crate) fn with<R>(&self, wait: impl Fn(), f: impl FnOnce(&mut T) -> R) -> R {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // Test-and-test-and-set: wait with plain loads so failed CASes do not bounce the line.
            while self.lock.load(Ordering::Relaxed) {
                wait();
            }
        }
        // SAFETY: the lock (acquired above, released below with Release) makes this access exclusive.
        let r = f(unsafe { &mut *self.value.get() });
        self.lock.store(false, Ordering::Release);
        r
    }
}

// SAFETY: access to the value is serialised by the lock.
#[cfg(not(all(test, loom)))]
unsafe impl<T: Send> Sync for SpinLocked<T> {}

/// loom model of [`SpinLocked`]: loom's mutex.
#[cfg(all(test, loom))]
pub(crate) struct SpinLocked<T>(loom::sync::Mutex<T>);

#[cfg(all(test, loom))]
impl<T> SpinLocked<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(loom::sync::Mutex::new(value))
    }

    pub(crate) fn with<R>(&self, _wait: impl Fn(), f: impl FnOnce(&mut T) -> R) -> R {
        let mut guard = self.0.lock().unwrap();
        f(&mut guard)
    }
}

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
