//! `HostPlatform`: the pool's [`Platform`] on a host (Miri, proptest, stress tests, benchmarks), with
//! threads standing for CPUs. Test and benchmark code only: compiled into the library under `cfg(test)`
//! and included by path (`#[path = ".../src/pool/host.rs"]`) from `tests/` and `benches/`, inside a module
//! whose parent re-exports the pool API.
//!
//! CPU binding: each thread that uses a pool calls [`HostPlatform::bind_cpu`] with an index no other
//! thread uses concurrently (that is the host's stand-in for DISPATCH_LEVEL pinning); an unbound thread
//! is CPU 0. With `checked` set, every raise verifies that no other thread is inside the same CPU slot and
//! panics if one is (test misuse, not a pool error).

// Each includer (lib unit tests, tests/, benches/) uses a different part of this file.
#![allow(dead_code)]

extern crate std;

use super::Platform;
use core::ffi::c_void;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use ndis_sys::{
    MmInitializeMdl, ADDRESS_AND_SIZE_TO_SPAN_PAGES, MDL, MDL_SOURCE_IS_NONPAGED_POOL, PAGE_SIZE,
};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::boxed::Box;
use std::cell::Cell;
use std::collections::HashMap;
use std::string::{String, ToString};
use std::sync::{Arc, Mutex};
use std::vec::Vec;

std::thread_local! {
    static CPU: Cell<usize> = const { Cell::new(0) };
    static THREAD_TOKEN: Cell<u64> = const { Cell::new(0) };
}

static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

fn thread_token() -> u64 {
    THREAD_TOKEN.with(|t| {
        if t.get() == 0 {
            t.set(NEXT_TOKEN.fetch_add(1, Ordering::Relaxed));
        }
        t.get()
    })
}

/// Memory accounting of a [`HostPlatform`], shared (`Arc`) so a test can read it after the pool that
/// owns the platform is destroyed.
#[derive(Default)]
pub struct Tracker {
    live_allocs: AtomicUsize,
    live_bytes: AtomicUsize,
    total_allocs: AtomicU64,
    /// Live regions (address -> (pointer, bytes)) when the platform is `checked`.
    regions: Mutex<HashMap<usize, (SendPtr, usize)>>,
}

struct SendPtr(*mut u8);
// SAFETY: the pointer is only dereferenced (freed) by `free_all`, by whoever owns the regions then.
unsafe impl Send for SendPtr {}

impl Tracker {
    /// Regions allocated and not yet freed.
    pub fn live_allocs(&self) -> usize {
        self.live_allocs.load(Ordering::Relaxed)
    }

    /// Bytes allocated and not yet freed.
    pub fn live_bytes(&self) -> usize {
        self.live_bytes.load(Ordering::Relaxed)
    }

    /// Regions ever allocated.
    pub fn total_allocs(&self) -> u64 {
        self.total_allocs.load(Ordering::Relaxed)
    }

    /// Frees every region still live (blocks a destroyed pool reported as leaked); returns how many.
    /// Only for `checked` platforms, which record regions.
    ///
    /// # Safety
    /// Nothing uses those regions any more.
    pub unsafe fn free_all(&self) -> usize {
        let regions: Vec<_> = self
            .regions
            .lock()
            .map(|mut r| r.drain().collect())
            .unwrap_or_default();
        for (_, (p, bytes)) in &regions {
            self.live_allocs.fetch_sub(1, Ordering::Relaxed);
            self.live_bytes.fetch_sub(*bytes, Ordering::Relaxed);
            // SAFETY: allocated by alloc_block(bytes) with this layout, unused (caller).
            unsafe { dealloc(p.0, HostPlatform::layout_for(*bytes)) };
        }
        regions.len()
    }
}

/// Host platform: threads are CPUs, memory comes from the global allocator.
pub struct HostPlatform {
    cpus: usize,
    checked: bool,
    /// Per-CPU slot occupant (thread token) while raised; only used when `checked`.
    occupant: Box<[AtomicU64]>,
    tracker: Arc<Tracker>,
    /// When set, `alloc_block` fails (simulated pool exhaustion).
    pub fail_allocs: AtomicBool,
    reports: Mutex<Vec<String>>,
}

impl HostPlatform {
    /// A platform with `cpus` CPU slots. `checked` adds the slot-exclusivity check (an atomic per raise)
    /// and records every live region; leave it off in benchmarks.
    pub fn new(cpus: usize, checked: bool) -> Self {
        Self {
            cpus,
            checked,
            occupant: (0..cpus.max(1)).map(|_| AtomicU64::new(0)).collect(),
            tracker: Arc::new(Tracker::default()),
            fail_allocs: AtomicBool::new(false),
            reports: Mutex::new(Vec::new()),
        }
    }

    /// Makes the calling thread CPU `cpu` (for every HostPlatform).
    pub fn bind_cpu(cpu: usize) {
        CPU.with(|c| c.set(cpu));
    }

    /// The calling thread's CPU index.
    pub fn bound_cpu() -> usize {
        CPU.with(|c| c.get())
    }

    /// The memory accounting (outlives the pool).
    pub fn tracker(&self) -> Arc<Tracker> {
        self.tracker.clone()
    }

    /// Regions allocated and not yet freed.
    pub fn live_allocs(&self) -> usize {
        self.tracker.live_allocs()
    }

    /// Diagnostics the pool reported.
    pub fn reports(&self) -> Vec<String> {
        self.reports.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The layout `alloc_block(bytes)` uses: a power-of-two alignment up to a page, so a region below a
    /// page never crosses a page boundary (as ExAllocatePool2 promises).
    pub fn layout_for(bytes: usize) -> Layout {
        let align = if bytes < PAGE_SIZE {
            bytes.next_power_of_two().clamp(16, PAGE_SIZE)
        } else {
            PAGE_SIZE
        };
        Layout::from_size_align(bytes.max(1), align).expect("layout")
    }
}

// SAFETY: one thread per CPU index (bind_cpu contract, enforced when `checked`); regions come from the
// global allocator with a power-of-two alignment up to a page, so below a page they never cross one; the
// MDL is written within MmSizeOfMdl bytes.
unsafe impl Platform for HostPlatform {
    fn max_cpus(&self) -> usize {
        self.cpus
    }

    #[inline(always)]
    fn raise_to_dispatch(&self) -> u8 {
        if self.checked {
            let cpu = Self::bound_cpu();
            if let Some(slot) = self.occupant.get(cpu) {
                let me = thread_token();
                let prev = slot.swap(me, Ordering::Acquire);
                assert!(
                    prev == 0 || prev == me,
                    "two threads inside CPU slot {cpu} at once"
                );
                return u8::from(prev == me);
            }
        }
        0
    }

    #[inline(always)]
    fn lower_irql(&self, old: u8) {
        if self.checked && old == 0 {
            if let Some(slot) = self.occupant.get(Self::bound_cpu()) {
                slot.store(0, Ordering::Release);
            }
        }
    }

    #[inline(always)]
    fn current_cpu(&self) -> usize {
        Self::bound_cpu()
    }

    fn alloc_block(&self, bytes: usize) -> *mut u8 {
        if self.fail_allocs.load(Ordering::Relaxed) {
            return core::ptr::null_mut();
        }
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc_zeroed(Self::layout_for(bytes)) };
        if !p.is_null() {
            let t = &self.tracker;
            t.live_allocs.fetch_add(1, Ordering::Relaxed);
            t.live_bytes.fetch_add(bytes, Ordering::Relaxed);
            t.total_allocs.fetch_add(1, Ordering::Relaxed);
            if self.checked {
                if let Ok(mut r) = t.regions.lock() {
                    r.insert(p as usize, (SendPtr(p), bytes));
                }
            }
        }
        p
    }

    unsafe fn free_block(&self, block: *mut u8, bytes: usize) {
        let t = &self.tracker;
        t.live_allocs.fetch_sub(1, Ordering::Relaxed);
        t.live_bytes.fetch_sub(bytes, Ordering::Relaxed);
        if self.checked {
            if let Ok(mut r) = t.regions.lock() {
                let known = r.remove(&(block as usize)).map(|(_, b)| b);
                assert_eq!(
                    known,
                    Some(bytes),
                    "free_block of a region not allocated with this size"
                );
            }
        }
        // SAFETY: the caller passes a region from alloc_block(bytes), allocated with this same layout.
        unsafe { dealloc(block, Self::layout_for(bytes)) };
    }

    unsafe fn build_mdl(&self, mdl: *mut MDL, va: *mut u8, len: usize) {
        // SAFETY: the caller guarantees room for MmSizeOfMdl(va, len) bytes at `mdl`.
        unsafe {
            MmInitializeMdl(mdl, va.cast::<c_void>(), len);
            // What MmBuildMdlForNonPagedPool does: no process, system VA = the buffer, PFNs filled (here the
            // virtual page numbers), SOURCE_IS_NONPAGED_POOL set.
            (*mdl).Process = core::ptr::null_mut();
            (*mdl).MappedSystemVa = va.cast::<c_void>();
            let pages = ADDRESS_AND_SIZE_TO_SPAN_PAGES(va as *const c_void, len);
            let pfns = mdl.add(1).cast::<u64>();
            let first = (va as usize / PAGE_SIZE) as u64;
            for i in 0..pages {
                pfns.add(i).write(first + i as u64);
            }
            (*mdl).MdlFlags |= MDL_SOURCE_IS_NONPAGED_POOL;
        }
    }

    fn report(&self, args: fmt::Arguments<'_>) {
        if let Ok(mut r) = self.reports.lock() {
            r.push(args.to_string());
        }
    }

    #[inline]
    fn spin_wait(&self) {
        std::thread::yield_now();
    }
}
