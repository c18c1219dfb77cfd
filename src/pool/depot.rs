//! The depot (one per class: lists of full and empty magazines behind a spin lock) and what returns
//! cached blocks to the system: release of depot magazines, Bonwick's working-set trim, flush.
//!
//! Owns: the depot lists and their counts, the working-set low-water mark, draining magazines. Must not
//! hold the depot lock for more than a few list operations, nor call the platform's allocator under it.
//! IRQL: the depot lock is taken at DISPATCH_LEVEL; `trim`/`flush` are callable at <= DISPATCH_LEVEL.

use super::block;
use super::magazine::Magazine;
use super::stats;
use super::sync::SpinLocked;
use super::{Platform, Pool};
use core::ptr::null_mut;

/// What one trim or flush released.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Released {
    pub blocks: u64,
    pub bytes: u64,
}

pub(super) struct DepotLists {
    pub(super) full: *mut Magazine,
    pub(super) empty: *mut Magazine,
    pub(super) nfull: u32,
    pub(super) nempty: u32,
    /// Fewest full magazines seen since the last trim (Bonwick's working-set low-water mark).
    pub(super) min_full: u32,
}

/// Per-class depot: lists of full and empty magazines behind a spin lock taken at DISPATCH_LEVEL.
#[repr(C, align(64))]
pub(super) struct Depot {
    pub(super) lists: SpinLocked<DepotLists>,
}

impl<P: Platform> Pool<P> {
    /// Runs `f` on a class's depot lists under its spin lock. Callers are at DISPATCH_LEVEL.
    #[inline]
    pub(super) fn with_depot<R>(&self, class: usize, f: impl FnOnce(&mut DepotLists) -> R) -> R {
        self.depots[class]
            .lists
            .with(|| self.platform.spin_wait(), f)
    }

    /// Returns every block of a magazine to the system; returns the count.
    ///
    /// # Safety
    /// The caller owns `mag` exclusively (taken off a depot list, or a quiescent CPU's cache).
    unsafe fn drain(&self, mag: *mut Magazine) -> u64 {
        // SAFETY: exclusive ownership of the magazine and of the cached blocks in it.
        unsafe {
            let n = (*mag).count;
            for i in 0..n as usize {
                block::destroy(&self.platform, *Magazine::slots(mag).add(i));
            }
            (*mag).count = 0;
            n as u64
        }
    }

    /// Takes up to `max` full magazines off a class's depot (all of them if `max` is None), returns their
    /// blocks to the system and puts the emptied magazines back on the empty list. Returns blocks released.
    pub(super) fn release_depot(&self, class: usize, max: Option<u32>) -> u64 {
        let taken = self.with_depot(class, |d| {
            let n = max.unwrap_or(d.nfull).min(d.nfull);
            let head = d.full;
            let mut tail = null_mut();
            let mut cur = head;
            for _ in 0..n {
                tail = cur;
                // SAFETY: `cur` is one of the nfull magazines on the list (n <= nfull).
                cur = unsafe { (*cur).next };
            }
            d.full = cur;
            d.nfull -= n;
            d.min_full = d.nfull;
            if n == 0 {
                return (null_mut(), null_mut(), 0);
            }
            // SAFETY: `tail` is the n-th magazine; cut the list after it.
            unsafe { (*tail).next = null_mut() };
            (head, tail, n)
        });
        let (head, tail, n) = taken;
        if n == 0 {
            return 0;
        }
        let mut released = 0;
        let mut cur = head;
        while !cur.is_null() {
            // SAFETY: the detached list is ours alone.
            unsafe {
                released += self.drain(cur);
                cur = (*cur).next;
            }
        }
        self.live_sub(class, released);
        self.with_depot(class, |d| {
            // SAFETY: splice the detached (now empty) list onto the empty list.
            unsafe { (*tail).next = d.empty };
            d.empty = head;
            d.nempty += n;
        });
        released
    }

    /// Bonwick's working-set trim, for a timer tick every `trim_interval_ms`: releases, per class, the
    /// full depot magazines that were not needed since the previous trim (the low-water mark of the full
    /// list), then restarts the measurement. An idle pool therefore returns its depot to the system within
    /// two ticks and keeps at most the per-CPU tier. IRQL <= DISPATCH_LEVEL, any CPU.
    pub fn trim(&self) -> Released {
        self.on_cpu(|cpu| {
            let mut out = Released::default();
            for class in 0..self.nclass {
                let low = self.with_depot(class, |d| d.min_full);
                let n = self.release_depot(class, Some(low));
                let ctr = self.counters_of(cpu, class);
                stats::add(&ctr.system_frees, n);
                stats::add(&ctr.trimmed, n);
                out.blocks += n;
                out.bytes += n * self.block_bytes[class] as u64;
            }
            out
        })
        .unwrap_or_default()
    }

    /// Like `ExFlushLookasideListEx`: returns to the system every block in the depot and in the calling
    /// CPU's magazines. Other CPUs' magazines are theirs alone while traffic runs; see
    /// [`Pool::flush_all`]. IRQL <= DISPATCH_LEVEL.
    pub fn flush(&self) -> Released {
        self.on_cpu(|cpu| {
            let mut out = Released::default();
            for class in 0..self.nclass {
                // SAFETY: DISPATCH_LEVEL on `cpu`: its cache is ours.
                let n = unsafe { self.drain_cpu(cpu, class) } + self.release_depot(class, None);
                let ctr = self.counters_of(cpu, class);
                stats::add(&ctr.system_frees, n);
                stats::add(&ctr.flushed, n);
                out.blocks += n;
                out.bytes += n * self.block_bytes[class] as u64;
            }
            out
        })
        .unwrap_or_default()
    }

    /// Empties one CPU's two magazines of a class; adjusts its depth; returns blocks released.
    ///
    /// # Safety
    /// Nobody else uses CPU `cpu`'s cache during the call.
    unsafe fn drain_cpu(&self, cpu: usize, class: usize) -> u64 {
        // SAFETY: cpu < ncpu (callers); exclusive access (caller).
        let cache = unsafe { &*self.caches.add(cpu) };
        let n = cache.classes.with_mut(|cc| {
            // SAFETY: exclusive access to the cache and its magazines.
            unsafe {
                let cc = &mut (*cc)[class];
                cc.stash();
                let n = self.drain(cc.loaded) + self.drain(cc.previous);
                cc.reload();
                n
            }
        });
        stats::sub(&self.counters_of(cpu, class).depth, n);
        self.live_sub(class, n);
        n
    }

    /// Returns every cached block (all CPUs' magazines and the depot) to the system.
    ///
    /// # Safety
    /// The pool is quiescent: no allocate/free/trim/flush runs concurrently on any CPU.
    pub unsafe fn flush_all(&self) -> Released {
        let mut out = Released::default();
        for class in 0..self.nclass {
            let mut n = 0;
            for cpu in 0..self.ncpu {
                // SAFETY: quiescent pool (caller), so every CPU's cache is ours.
                let k = unsafe { self.drain_cpu(cpu, class) };
                let ctr = self.counters_of(cpu, class);
                stats::add(&ctr.system_frees, k);
                stats::add(&ctr.flushed, k);
                n += k;
            }
            let k = self.release_depot(class, None);
            let ctr = self.counters_of(0, class);
            stats::add(&ctr.system_frees, k);
            stats::add(&ctr.flushed, k);
            n += k;
            out.blocks += n;
            out.bytes += n * self.block_bytes[class] as u64;
        }
        out
    }
}
