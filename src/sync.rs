//! The driver's one spin lock: [`SpinLock`], a value behind a test-and-test-and-set lock word, held at
//! DISPATCH_LEVEL as the kernel's own spin locks are.
//!
//! Owns: the lock word, the two ways to take it ([`SpinLock::lock`], which raises to DISPATCH_LEVEL and
//! returns a [`SpinLockGuard`] that releases the lock and lowers the IRQL on drop; [`SpinLock::with`],
//! for a caller already at DISPATCH_LEVEL), and the lock's loom model. Must not know what any lock
//! protects: the pool's depots, the driver-wide pool's configuration and the filter's module list each
//! hold their own `SpinLock`.
//!
//! IRQL rule (that of `KeAcquireSpinLock` / `KeAcquireSpinLockAtDpcLevel`): a holder runs at
//! DISPATCH_LEVEL for a few instructions, never blocks, never waits on anything but another holder of
//! the same lock, and never takes a lock it already holds. `lock` is called at IRQL <= DISPATCH_LEVEL
//! and keeps DISPATCH_LEVEL until the guard is dropped; `with` is called at DISPATCH_LEVEL and leaves
//! the IRQL alone. At DISPATCH_LEVEL a holder cannot be preempted on its CPU, so no waiter spins on the
//! CPU of the holder it waits for. A guard is not `Send`: it is dropped on the CPU whose IRQL it raised.
//!
//! loom (`--cfg loom`, the pool's unit tests): the lock word is modelled by loom's `Mutex` (a spinning
//! thread makes loom's scheduler explode; the word's own acquire/release pairing is the textbook
//! test-and-test-and-set, while what loom checks is everything the lock protects). loom objects exist
//! only inside a model run and `new` stays a `const fn` for the locks that are statics, so the model
//! mutex is made when the lock is first taken; only locks made inside a model are taken under loom.

use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
#[cfg(not(all(test, loom)))]
use core::sync::atomic::{AtomicBool, Ordering};
use ndis_sys::{KeLowerIrql, KeRaiseIrqlToDpcLevel, KIRQL};

/// A value behind a spin lock, held at DISPATCH_LEVEL (the IRQL rule in the module header).
pub struct SpinLock<T> {
    #[cfg(not(all(test, loom)))]
    locked: AtomicBool,
    #[cfg(all(test, loom))]
    model: std::sync::OnceLock<loom::sync::Mutex<()>>,
    value: core::cell::UnsafeCell<T>,
}

// SAFETY: the lock serialises every access to the value (a guard, or `with`'s closure), so sharing the
// lock hands the value to one thread at a time; that moves it between threads, hence `T: Send`.
unsafe impl<T: Send> Sync for SpinLock<T> {}

/// Exclusive access to a [`SpinLock`]'s value, from [`SpinLock::lock`]. Dropping it releases the lock,
/// then lowers the IRQL back to what `lock` found.
pub struct SpinLockGuard<'a, T> {
    lock: &'a SpinLock<T>,
    held: core::mem::ManuallyDrop<Held<'a>>,
    /// The IRQL `lock` raised from.
    old_irql: KIRQL,
    /// Not `Send`: the guard is dropped on the CPU whose IRQL it raised.
    _cpu: PhantomData<*const ()>,
}

/// What holding the lock word is: nothing to keep, or under loom the model mutex's guard.
#[cfg(not(all(test, loom)))]
type Held<'a> = PhantomData<&'a ()>;
#[cfg(all(test, loom))]
type Held<'a> = loom::sync::MutexGuard<'a, ()>;

impl<T> SpinLock<T> {
    /// An unlocked lock around `value` (usable in a `static`). Any IRQL.
    pub const fn new(value: T) -> Self {
        Self {
            #[cfg(not(all(test, loom)))]
            locked: AtomicBool::new(false),
            #[cfg(all(test, loom))]
            model: std::sync::OnceLock::new(),
            value: core::cell::UnsafeCell::new(value),
        }
    }

    /// Takes the lock as `KeAcquireSpinLock` does: raises to DISPATCH_LEVEL, then spins until the
    /// lock is free. IRQL <= DISPATCH_LEVEL; the guard keeps DISPATCH_LEVEL until it is dropped.
    #[inline]
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        let old_irql = KeRaiseIrqlToDpcLevel();
        let held = self.acquire(core::hint::spin_loop);
        SpinLockGuard {
            lock: self,
            held: core::mem::ManuallyDrop::new(held),
            old_irql,
            _cpu: PhantomData,
        }
    }

    /// Runs `f` on the value with the lock held, taken as `KeAcquireSpinLockAtDpcLevel` does: the caller
    /// is already at DISPATCH_LEVEL and the IRQL is left alone. `wait` is called on each spin while
    /// another holder has it (the pool waits through its `Platform`).
    #[inline]
    pub fn with<R>(&self, wait: impl Fn(), f: impl FnOnce(&mut T) -> R) -> R {
        let held = self.acquire(wait);
        // SAFETY: the lock is held (acquired above, released below), so this is the only reference.
        let r = f(unsafe { &mut *self.value.get() });
        self.release(held);
        r
    }

    #[cfg(not(all(test, loom)))]
    #[inline]
    fn acquire(&self, wait: impl Fn()) -> Held<'_> {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // Test-and-test-and-set: wait with plain loads so failed CASes do not bounce the line.
            while self.locked.load(Ordering::Relaxed) {
                wait();
            }
        }
        PhantomData
    }

    #[cfg(not(all(test, loom)))]
    #[inline]
    fn release(&self, _held: Held<'_>) {
        self.locked.store(false, Ordering::Release);
    }

    #[cfg(all(test, loom))]
    fn acquire(&self, _wait: impl Fn()) -> Held<'_> {
        let model = self.model.get_or_init(|| loom::sync::Mutex::new(()));
        model.lock().unwrap()
    }

    #[cfg(all(test, loom))]
    fn release(&self, held: Held<'_>) {
        drop(held);
    }
}

impl<T> Deref for SpinLockGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the lock, so no other reference to the value exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinLockGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference through the guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinLockGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `held` is taken out once, here, and the guard is not used afterwards.
        let held = unsafe { core::mem::ManuallyDrop::take(&mut self.held) };
        self.lock.release(held);
        KeLowerIrql(self.old_irql);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use ndis_sim::kernel::{at_irql, bind_thread_to_cpu};
    use ndis_sim::{Sim, SimConfig};
    use ndis_sys::{KeGetCurrentIrql, DISPATCH_LEVEL, PASSIVE_LEVEL};
    use std::vec::Vec;

    #[test]
    fn lock_raises_to_dispatch_and_its_guard_lowers_back() {
        let sim = Sim::start(SimConfig {
            cpus: 1,
            ..SimConfig::default()
        });
        bind_thread_to_cpu(0);
        let lock = SpinLock::new(5u32);
        assert_eq!(KeGetCurrentIrql(), PASSIVE_LEVEL);
        {
            let mut guard = lock.lock();
            assert_eq!(KeGetCurrentIrql(), DISPATCH_LEVEL, "held at DISPATCH_LEVEL");
            *guard += 1;
        }
        assert_eq!(KeGetCurrentIrql(), PASSIVE_LEVEL, "the IRQL lock found");
        // Taken at DISPATCH_LEVEL already: the guard returns there, not below.
        at_irql(DISPATCH_LEVEL, || {
            drop(lock.lock());
            assert_eq!(KeGetCurrentIrql(), DISPATCH_LEVEL);
        });
        // `with` leaves the IRQL alone and sees what the guard wrote.
        assert_eq!(lock.with(|| {}, |v| *v), 6);
        assert_eq!(KeGetCurrentIrql(), PASSIVE_LEVEL);
        sim.finish();
    }

    #[test]
    fn holders_exclude_each_other() {
        // A read-modify-write in two halves with a yield between: without exclusion increments are lost.
        let lock = SpinLock::new((0u64, 0u64));
        let threads = 4;
        let rounds = 2_000;
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        for _ in 0..rounds {
                            lock.with(std::thread::yield_now, |(a, b)| {
                                let seen = *a;
                                std::thread::yield_now();
                                *a = seen + 1;
                                *b += 1;
                            });
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join().unwrap();
            }
        });
        let total = (threads * rounds) as u64;
        assert_eq!(lock.with(|| {}, |v| *v), (total, total));
    }
}
