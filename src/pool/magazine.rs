//! The per-CPU magazine layer: each CPU's loaded/previous magazine pair per class and the allocation and
//! free paths through it (`pop`/`push` and their exchanges with the depot).
//!
//! Owns: the magazine layout (header + block pointer slots, padded to whole cache lines by
//! `Pool::create`) and the per-CPU [`ClassCache`] that keeps the loaded magazine's fill beside its
//! pointer. Must not be touched by any CPU but its owner except while the pool is quiescent. IRQL:
//! DISPATCH_LEVEL on the owning CPU (the callers in `mod.rs` raise).

use super::block::{self, BlockHeader};
use super::stats::{self, ClassCounters};
use super::sync::UnsafeCell;
use super::{Platform, Pool, MAX_CLASSES};
use core::ptr::null_mut;
use core::sync::atomic::Ordering as CoreOrdering;

/// A magazine: header, then `capacity` block pointers. Lives in the pool's magazine region.
#[repr(C)]
pub(super) struct Magazine {
    /// Link in a depot list.
    pub(super) next: *mut Magazine,
    pub(super) count: u32,
    pub(super) capacity: u32,
}

pub(super) const MAG_HEADER: usize = core::mem::size_of::<Magazine>();

impl Magazine {
    #[inline(always)]
    pub(super) fn slots(this: *mut Magazine) -> *mut *mut BlockHeader {
        this.cast::<u8>().wrapping_add(MAG_HEADER).cast()
    }
}

/// One CPU's magazines for one class, with the loaded magazine's fill and capacity kept here, beside the
/// pointer, so that the fast path reads and writes one line for its magazine state (the slot it pops or
/// pushes is the only magazine memory it touches). While a magazine is loaded, `count`/`capacity` here
/// are its true values and its own header's are stale; every exchange (`pop_slow`, `push_slow`) and every
/// drain writes them back first ([`ClassCache::stash`]) and reloads them after ([`ClassCache::reload`]).
///
/// `prev_count` is a copy of the previous magazine's fill (its header stays the truth; `reload` copies
/// it). With it the fast path writes this CPU's `depth` counter as a value it already holds, `count +
/// prev_count`, instead of reading the counter back and adjusting it: the counter means what it always
/// meant (blocks in this CPU's two magazines of the class), but no longer chains each allocation's and
/// free's update through memory behind the previous one's.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct ClassCache {
    pub(super) loaded: *mut Magazine,
    pub(super) previous: *mut Magazine,
    pub(super) count: u32,
    pub(super) capacity: u32,
    pub(super) prev_count: u32,
}

impl ClassCache {
    /// Writes the loaded magazine's fill and capacity back into its header.
    ///
    /// # Safety
    /// `loaded` is a real magazine owned by this cache.
    #[inline(always)]
    pub(super) unsafe fn stash(&mut self) {
        // SAFETY: (caller) the loaded magazine is ours.
        unsafe {
            (*self.loaded).count = self.count;
            (*self.loaded).capacity = self.capacity;
        }
    }

    /// Takes the loaded magazine's fill and capacity, and the previous magazine's fill, from their
    /// headers.
    ///
    /// # Safety
    /// `loaded` and `previous` are real magazines owned by this cache.
    #[inline(always)]
    pub(super) unsafe fn reload(&mut self) {
        // SAFETY: (caller) both magazines are ours.
        unsafe {
            self.count = (*self.loaded).count;
            self.capacity = (*self.loaded).capacity;
            self.prev_count = (*self.previous).count;
        }
    }

    /// Blocks in both magazines: what this CPU's `depth` counter of the class holds.
    #[inline(always)]
    fn depth(&self) -> u64 {
        self.count as u64 + self.prev_count as u64
    }
}

/// One CPU's magazines for every class, on their own cache lines.
#[repr(C, align(64))]
pub(super) struct CpuCache {
    pub(super) classes: UnsafeCell<[ClassCache; MAX_CLASSES]>,
}

impl<P: Platform> Pool<P> {
    #[inline(always)]
    pub(super) unsafe fn pop(&self, cpu: usize, class: usize) -> *mut BlockHeader {
        let ctr = self.counters_of(cpu, class);
        stats::add(&ctr.total_allocates, 1);
        // SAFETY: cpu < ncpu (caller).
        let cache = unsafe { &*self.caches.add(cpu) };
        cache.classes.with_mut(|cc| {
            // SAFETY: exclusive per-CPU access (caller); class < nclass <= MAX_CLASSES (the class table
            // holds only indices of classes in use), so the entry and its magazines are real.
            unsafe {
                let cc = (*cc).get_unchecked_mut(class);
                let n = cc.count;
                if n != 0 {
                    cc.count = n - 1;
                    stats::set(&ctr.depth, cc.depth());
                    return *Magazine::slots(cc.loaded).add(n as usize - 1);
                }
                cc.stash();
                let b = self.pop_slow(class, cc, ctr);
                cc.reload();
                b
            }
        })
    }

    /// The allocation slow path. The caller has stashed `cc` (magazine headers are current) and reloads it
    /// after.
    #[cold]
    #[inline(never)]
    unsafe fn pop_slow(
        &self,
        class: usize,
        cc: &mut ClassCache,
        ctr: &ClassCounters,
    ) -> *mut BlockHeader {
        // SAFETY: (whole function) the caller gives exclusive access to this CPU's cache `cc`; magazines
        // reached through it or popped from the depot are exclusively ours.
        unsafe {
            if (*cc.previous).count == 0 {
                let previous = cc.previous;
                let full = self.with_depot(class, |d| {
                    let full = d.full;
                    if full.is_null() {
                        return full;
                    }
                    d.full = (*full).next;
                    d.nfull -= 1;
                    d.min_full = d.min_full.min(d.nfull);
                    (*previous).next = d.empty;
                    d.empty = previous;
                    d.nempty += 1;
                    full
                });
                if full.is_null() {
                    stats::add(&ctr.allocate_misses, 1);
                    let b = block::construct(
                        &self.platform,
                        self.magic,
                        class as u16,
                        self.class_size[class] as usize,
                    );
                    if b.is_null() {
                        stats::add(&ctr.failures, 1);
                    } else {
                        stats::add(&ctr.system_allocs, 1);
                        self.live_add(class);
                    }
                    return b;
                }
                (*full).next = null_mut();
                stats::add(&ctr.depot_gets, 1);
                stats::add(&ctr.depth, (*full).count as u64);
                cc.previous = cc.loaded;
                cc.loaded = full;
            } else {
                core::mem::swap(&mut cc.loaded, &mut cc.previous);
            }
            let mag = cc.loaded;
            let n = (*mag).count - 1;
            (*mag).count = n;
            stats::sub(&ctr.depth, 1);
            *Magazine::slots(mag).add(n as usize)
        }
    }

    #[inline(always)]
    pub(super) unsafe fn push(&self, cpu: usize, class: usize, block: *mut BlockHeader) {
        let ctr = self.counters_of(cpu, class);
        stats::add(&ctr.total_frees, 1);
        // SAFETY: cpu < ncpu (caller).
        let cache = unsafe { &*self.caches.add(cpu) };
        cache.classes.with_mut(|cc| {
            // SAFETY: exclusive per-CPU access (caller); class < nclass <= MAX_CLASSES (free checked the
            // block's class), so the entry and its magazines are real.
            unsafe {
                let cc = (*cc).get_unchecked_mut(class);
                let n = cc.count;
                if n < cc.capacity {
                    *Magazine::slots(cc.loaded).add(n as usize) = block;
                    cc.count = n + 1;
                    stats::set(&ctr.depth, cc.depth());
                    return;
                }
                cc.stash();
                self.push_slow(class, cc, ctr, block);
                cc.reload();
            }
        })
    }

    /// The free slow path. The caller has stashed `cc` (magazine headers are current) and reloads it after.
    #[cold]
    #[inline(never)]
    unsafe fn push_slow(
        &self,
        class: usize,
        cc: &mut ClassCache,
        ctr: &ClassCounters,
        block: *mut BlockHeader,
    ) {
        // The limits, read once per exchange (never on the fast path); always within what was allocated.
        let fill = self.fill_limit.load(CoreOrdering::Relaxed);
        let depot_limit = self.depot_limit_now.load(CoreOrdering::Relaxed);
        // SAFETY: (whole function) exclusive access to this CPU's cache `cc` (caller); magazines reached
        // through it or popped from the depot are exclusively ours.
        unsafe {
            // This CPU's pair picks up the current fill limit (1..=allocated slots).
            (*cc.loaded).capacity = fill;
            (*cc.previous).capacity = fill;
            if (*cc.previous).count < (*cc.previous).capacity {
                core::mem::swap(&mut cc.loaded, &mut cc.previous);
            } else {
                let previous = cc.previous;
                let empty = self.with_depot(class, |d| {
                    let empty = d.empty;
                    if empty.is_null() || d.nfull >= depot_limit {
                        return null_mut();
                    }
                    d.empty = (*empty).next;
                    d.nempty -= 1;
                    (*previous).next = d.full;
                    d.full = previous;
                    d.nfull += 1;
                    empty
                });
                if empty.is_null() {
                    stats::add(&ctr.free_misses, 1);
                    block::destroy(&self.platform, block);
                    stats::add(&ctr.system_frees, 1);
                    self.live_sub(class, 1);
                    return;
                }
                (*empty).next = null_mut();
                (*empty).capacity = fill;
                stats::add(&ctr.depot_puts, 1);
                stats::sub(&ctr.depth, (*previous).count as u64);
                cc.previous = cc.loaded;
                cc.loaded = empty;
            }
            let mag = cc.loaded;
            let n = (*mag).count;
            *Magazine::slots(mag).add(n as usize) = block;
            (*mag).count = n + 1;
            stats::add(&ctr.depth, 1);
        }
    }
}
