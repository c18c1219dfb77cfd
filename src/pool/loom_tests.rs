//! loom models of the pool's cross-CPU interactions: depot exchanges on the allocation and free sides
//! racing each other, cross-CPU frees, trim and flush. Each thread is one CPU (its per-CPU cache is
//! touched by that thread only, as DISPATCH_LEVEL guarantees in the kernel); the depot lock, the
//! per-CPU cells and the depot lists are loom-checked. The invariants: every free of a handed-out block
//! succeeds (a block handed out twice would fail its second free as "not in flight"), no two live
//! handouts alias, and after `flush_all` no block is left alive and every constructed block was freed.
//!
//! Run: `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test --release -p mdlpool --lib loom`.
extern crate std;

use super::*;
use core::ffi::c_void;
use core::fmt;
use loom::sync::atomic::AtomicUsize as LoomUsize;
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::Cell;
use std::vec::Vec;

loom::thread_local! {
    static CPU: Cell<usize> = Cell::new(0);
}

/// Threads as CPUs; memory from the global allocator (page-aligned so no block crosses a page).
struct LoomPlatform {
    cpus: usize,
    live: std::sync::Arc<std::sync::atomic::AtomicIsize>,
}

fn bind(cpu: usize) {
    CPU.with(|c| c.set(cpu));
}

fn layout(bytes: usize) -> Layout {
    Layout::from_size_align(bytes, 4096).unwrap()
}

// SAFETY: each model thread binds a distinct CPU index; regions are page-aligned (never cross a page
// when smaller than one); build_mdl writes only the MDL header and one PFN for a small block.
unsafe impl Platform for LoomPlatform {
    fn max_cpus(&self) -> usize {
        self.cpus
    }
    fn raise_to_dispatch(&self) -> u8 {
        0
    }
    fn lower_irql(&self, _old: u8) {}
    fn current_cpu(&self) -> usize {
        CPU.with(|c| c.get())
    }
    fn alloc_block(&self, bytes: usize) -> *mut u8 {
        self.live.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: non-zero size.
        unsafe { alloc_zeroed(layout(bytes)) }
    }
    unsafe fn free_block(&self, block: *mut u8, bytes: usize) {
        self.live.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: allocated by alloc_block(bytes) with the same layout.
        unsafe { dealloc(block, layout(bytes)) }
    }
    unsafe fn build_mdl(&self, mdl: *mut MDL, va: *mut u8, len: usize) {
        // SAFETY: room for the MDL is guaranteed by the caller.
        unsafe {
            ndis_sys::MmInitializeMdl(mdl, va.cast::<c_void>(), len);
            (*mdl).MappedSystemVa = va.cast();
            (*mdl).MdlFlags |= ndis_sys::MDL_SOURCE_IS_NONPAGED_POOL;
        }
    }
    fn report(&self, _args: fmt::Arguments<'_>) {}
}

fn tiny_config() -> PoolConfig {
    PoolConfig {
        magazine_size: 1,
        depot_limit: 1,
        ..PoolConfig::default()
    }
    .with_classes(&[64])
    .unwrap()
}

struct Shared {
    pool: *mut Pool<LoomPlatform>,
}
// SAFETY: the pool is Sync; the pointer stays valid until the model's end (threads are joined first).
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

fn new_pool(
    cpus: usize,
) -> (
    std::sync::Arc<Shared>,
    std::sync::Arc<std::sync::atomic::AtomicIsize>,
) {
    let live = std::sync::Arc::new(std::sync::atomic::AtomicIsize::new(0));
    let platform = LoomPlatform {
        cpus,
        live: live.clone(),
    };
    let handle = Pool::create(platform, &tiny_config()).unwrap();
    (
        std::sync::Arc::new(Shared {
            pool: handle.into_raw(),
        }),
        live,
    )
}

fn pool(s: &Shared) -> &Pool<LoomPlatform> {
    // SAFETY: valid until `finish`.
    unsafe { &*s.pool }
}

fn free_ok(p: &Pool<LoomPlatform>, m: *mut MDL) {
    // SAFETY: `m` is in flight and owned by the calling thread.
    assert_eq!(
        unsafe { p.free(m) },
        Ok(()),
        "a handed-out block could not be freed: handed out twice?"
    );
}

fn finish(s: std::sync::Arc<Shared>, live: std::sync::Arc<std::sync::atomic::AtomicIsize>) {
    bind(0);
    let p = pool(&s);
    let snap = p.snapshot();
    assert_eq!(snap.total.in_flight, 0);
    assert_eq!(snap.double_frees, 0);
    assert_eq!(
        snap.total.system_allocs,
        snap.total.live_blocks + snap.total.system_frees
    );
    // SAFETY: all model threads have been joined: quiescent; the pointer came from into_raw.
    let report = unsafe { PoolHandle::from_raw(s.pool) }.unwrap().destroy();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        live.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "platform memory not all returned"
    );
}

/// CPU 1 frees blocks that CPU 0 allocated (pushing a full magazine into the depot) while CPU 0 allocates
/// (taking a full magazine from the depot or constructing) and CPU 2 trims the depot.
#[test]
fn loom_depot_exchange_cross_cpu_free_and_trim() {
    loom::model(|| {
        let (s, live) = new_pool(3);
        bind(0);
        let blocks: Vec<usize> = (0..3).map(|_| pool(&s).allocate(60) as usize).collect();
        assert!(blocks.iter().all(|&b| b != 0));

        let s1 = s.clone();
        let t1 = loom::thread::spawn(move || {
            bind(1);
            for b in blocks {
                free_ok(pool(&s1), b as *mut MDL);
            }
        });
        let s0 = s.clone();
        let t0 = loom::thread::spawn(move || {
            bind(0);
            let p = pool(&s0);
            let a = p.allocate(64);
            let b = p.allocate(1);
            assert!(!a.is_null() && !b.is_null() && a != b);
            free_ok(p, a);
            free_ok(p, b);
        });
        let s2 = s.clone();
        let t2 = loom::thread::spawn(move || {
            bind(2);
            pool(&s2).trim();
            pool(&s2).trim();
        });
        t0.join().unwrap();
        t1.join().unwrap();
        t2.join().unwrap();
        finish(s, live);
    });
}

/// Two CPUs each run an alloc/alloc/free/free cycle that forces depot traffic both ways, while a third
/// CPU flushes (depot + its own magazines). Counts how many blocks each CPU got, to check no aliasing.
#[test]
fn loom_two_cpus_cycle_with_flush() {
    loom::model(|| {
        let (s, live) = new_pool(3);
        let handed = std::sync::Arc::new(LoomUsize::new(0));
        let mut threads = Vec::new();
        for cpu in 0..2 {
            let s = s.clone();
            let handed = handed.clone();
            threads.push(loom::thread::spawn(move || {
                bind(cpu);
                let p = pool(&s);
                let a = p.allocate(32);
                let b = p.allocate(32);
                assert!(!a.is_null() && !b.is_null() && a != b);
                handed.fetch_add(2, loom::sync::atomic::Ordering::Relaxed);
                free_ok(p, a);
                free_ok(p, b);
                let c = p.allocate(32);
                assert!(!c.is_null());
                free_ok(p, c);
            }));
        }
        let s2 = s.clone();
        threads.push(loom::thread::spawn(move || {
            bind(2);
            pool(&s2).flush();
        }));
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(handed.load(loom::sync::atomic::Ordering::Relaxed), 4);
        finish(s, live);
    });
}

/// Sanity check that the model sees the per-CPU cells: two threads bound to the same CPU (what
/// DISPATCH_LEVEL rules out in the kernel) must be reported by loom as a race.
#[test]
#[should_panic(expected = "Causality violation")]
fn loom_detects_two_threads_on_one_cpu() {
    loom::model(|| {
        let (s, live) = new_pool(2);
        let s1 = s.clone();
        let t = loom::thread::spawn(move || {
            bind(0);
            let a = pool(&s1).allocate(32);
            free_ok(pool(&s1), a);
        });
        bind(0);
        let a = pool(&s).allocate(32);
        free_ok(pool(&s), a);
        t.join().unwrap();
        finish(s, live);
    });
}
