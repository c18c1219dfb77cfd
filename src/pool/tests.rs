//! Unit tests and the proptest reference model of the pool, on the host platform. All of them also run
//! under Miri (`cargo +nightly miri test -p mdlpool --lib pool::`), with fewer proptest cases there.
extern crate std;

use super::host::HostPlatform;
use super::*;
use proptest::prelude::*;
use std::collections::HashMap;
use std::vec::Vec;

fn small_config() -> PoolConfig {
    PoolConfig {
        magazine_size: 4,
        depot_limit: 2,
        ..PoolConfig::default()
    }
}

/// Regions a pool allocates for itself (pool struct, per-CPU caches, counters, magazines).
const POOL_REGIONS: usize = 4;

/// Data pointer and length of an MDL from the pool.
fn data(mdl: *mut MDL) -> (*mut u8, usize) {
    // SAFETY: a live MDL from the pool.
    unsafe {
        (
            (*mdl).MappedSystemVa.cast::<u8>(),
            (*mdl).ByteCount as usize,
        )
    }
}

fn fill(mdl: *mut MDL, tag: u8) {
    let (p, n) = data(mdl);
    // SAFETY: the MDL describes n writable bytes at p, owned by the caller.
    unsafe { core::ptr::write_bytes(p, tag, n) };
}

fn check(mdl: *mut MDL, tag: u8) {
    let (p, n) = data(mdl);
    // SAFETY: as in fill.
    let bytes = unsafe { core::slice::from_raw_parts(p, n) };
    assert!(
        bytes.iter().all(|&b| b == tag),
        "block contents changed while in flight (aliased block?)"
    );
}

#[test]
fn allocate_sets_bytecount_and_builds_mdl() {
    let pool = Pool::create(HostPlatform::new(2, true), &small_config()).unwrap();
    for &size in &[1u32, 14, 64, 65, 100, 2048, 2049, 9000] {
        let mdl = pool.allocate(size);
        assert!(!mdl.is_null());
        // SAFETY: a live MDL from the pool.
        unsafe {
            assert_eq!(
                (*mdl).ByteCount,
                size,
                "ByteCount must equal the request (no rounding)"
            );
            assert!((*mdl).Next.is_null());
            assert_ne!((*mdl).MdlFlags & ndis_sys::MDL_SOURCE_IS_NONPAGED_POOL, 0);
            let va = ndis_sys::MmGetMdlVirtualAddress(mdl);
            assert_eq!(va, (*mdl).MappedSystemVa);
            let pages = ndis_sys::ADDRESS_AND_SIZE_TO_SPAN_PAGES(va, size as usize);
            assert!(
                ((*mdl).Size as usize) >= 0x30 + 8 * pages,
                "PFN array too small for the span"
            );
            if size <= 2048 {
                assert_eq!(pages, 1, "a class block must not straddle a page");
            }
            fill(mdl, 0xA5);
            pool.free(mdl).unwrap();
        }
    }
    let r = pool.snapshot();
    assert_eq!(r.total.in_flight, 0);
    assert_eq!(r.oversize().total_allocates, 2);
    assert_eq!(
        r.oversize().live_blocks,
        0,
        "oversize blocks are never cached"
    );
    let rep = pool.destroy();
    assert!(rep.is_clean(), "{rep:?}");
}

#[test]
fn reused_block_gets_new_bytecount_and_cleared_next() {
    let pool = Pool::create(HostPlatform::new(1, true), &small_config()).unwrap();
    let a = pool.allocate(100);
    // SAFETY: ours; simulate NDIS chaining it.
    unsafe { (*a).Next = a };
    // SAFETY: in flight.
    unsafe { pool.free(a).unwrap() };
    let b = pool.allocate(90);
    assert_eq!(a, b, "LIFO reuse of the same class block");
    // SAFETY: live.
    unsafe {
        assert_eq!((*b).ByteCount, 90);
        assert!((*b).Next.is_null());
        pool.free(b).unwrap();
    }
}

#[test]
fn invalid_sizes_fail_and_are_counted() {
    let pool = Pool::create(HostPlatform::new(1, true), &small_config()).unwrap();
    assert!(pool.allocate(0).is_null());
    assert!(pool.allocate(pool.config().max_request + 1).is_null());
    let s = pool.snapshot();
    assert_eq!(s.total.failures, 2);
    assert_eq!(s.total.in_flight, 0);
}

#[test]
fn foreign_and_double_frees_are_refused_and_reported_once() {
    let pool = Pool::create(HostPlatform::new(1, true), &small_config()).unwrap();
    // A foreign MDL inside a larger buffer (the kernel guarantees the MDL's page is readable; Miri needs
    // the 32 bytes before it to be in the same allocation).
    #[repr(C, align(64))]
    struct Foreign([u8; 256]);
    let mut buf = std::boxed::Box::new(Foreign([0x11; 256]));
    let foreign = buf.0.as_mut_ptr().wrapping_add(64).cast::<MDL>();
    // SAFETY: readable memory around the fake MDL.
    assert_eq!(unsafe { pool.free(foreign) }, Err(Rejected::Foreign));
    // SAFETY: as above.
    assert_eq!(unsafe { pool.free(foreign) }, Err(Rejected::Foreign));
    assert!(
        buf.0.iter().all(|&b| b == 0x11),
        "a foreign MDL's memory must not be written"
    );

    let a = pool.allocate(64);
    // SAFETY: in flight.
    unsafe { pool.free(a).unwrap() };
    // SAFETY: a cached block of ours: the double free is detected without UB.
    assert_eq!(unsafe { pool.free(a) }, Err(Rejected::NotInFlight));

    let other = Pool::create(HostPlatform::new(1, true), &small_config()).unwrap();
    let b = other.allocate(64);
    // SAFETY: b is a live block of another pool: foreign here.
    assert_eq!(unsafe { pool.free(b) }, Err(Rejected::Foreign));
    // SAFETY: in flight in `other`.
    unsafe { other.free(b).unwrap() };

    let s = pool.snapshot();
    assert_eq!((s.foreign_frees, s.double_frees), (3, 1));
    assert_eq!(s.total.in_flight, 0);
    let reports = pool.platform().reports();
    assert_eq!(reports.len(), 2, "one report per kind: {reports:?}");
}

#[test]
fn fault_injection_every_nth_and_rate() {
    let mut cfg = small_config();
    cfg.fault.fail_every_nth = 3;
    let pool = Pool::create(HostPlatform::new(1, true), &cfg).unwrap();
    let got: Vec<_> = (0..9).map(|_| pool.allocate(64)).collect();
    let nulls: Vec<bool> = got.iter().map(|m| m.is_null()).collect();
    assert_eq!(
        nulls,
        [false, false, true, false, false, true, false, false, true]
    );
    for m in got.into_iter().filter(|m| !m.is_null()) {
        // SAFETY: in flight.
        unsafe { pool.free(m).unwrap() };
    }
    let s = pool.snapshot();
    assert_eq!(
        (s.total.failures, s.total.injected, s.total.in_flight),
        (3, 3, 0)
    );
    drop(pool);

    let mut cfg = small_config();
    cfg.fault = FaultConfig {
        fail_every_nth: 0,
        fail_rate_ppm: 250_000,
        seed: 7,
    };
    let pool = Pool::create(HostPlatform::new(1, true), &cfg).unwrap();
    let n = if cfg!(miri) { 200 } else { 4000 };
    let mut failed = 0;
    for _ in 0..n {
        let m = pool.allocate(128);
        if m.is_null() {
            failed += 1;
        } else {
            // SAFETY: in flight.
            unsafe { pool.free(m).unwrap() };
        }
    }
    assert!(
        failed > n / 8 && failed < n / 2,
        "about a quarter should fail: {failed}/{n}"
    );
    assert_eq!(pool.snapshot().total.injected, failed as u64);
    assert!(
        !PoolConfig::default().fault.armed(),
        "fault injection is off by default"
    );
}

#[test]
fn system_allocation_failure_returns_null() {
    let pool = Pool::create(HostPlatform::new(1, true), &small_config()).unwrap();
    pool.platform()
        .fail_allocs
        .store(true, core::sync::atomic::Ordering::Relaxed);
    assert!(pool.allocate(64).is_null());
    assert!(pool.allocate(5000).is_null());
    pool.platform()
        .fail_allocs
        .store(false, core::sync::atomic::Ordering::Relaxed);
    let s = pool.snapshot();
    assert_eq!(
        (s.total.failures, s.total.in_flight, s.total.live_blocks),
        (2, 0, 0)
    );
}

#[test]
fn config_validation() {
    assert!(PoolConfig::default().validate().is_ok());
    let bad = |f: fn(&mut PoolConfig)| {
        let mut c = PoolConfig::default();
        f(&mut c);
        c.validate().is_err()
    };
    assert!(bad(|c| c.magazine_size = 0));
    assert!(bad(|c| c.magazine_size = MAX_MAGAZINE + 1));
    assert!(bad(|c| c.depot_limit = MAX_DEPOT_LIMIT + 1));
    assert!(bad(|c| c.trim_interval_ms = 0));
    assert!(bad(|c| c.class_count = 0));
    assert!(bad(|c| c.classes[1] = 64)); // not ascending
    assert!(bad(|c| c.classes[0] = 40)); // not a multiple of 16
    assert!(bad(|c| c.classes[5] = 4096)); // block would exceed a page
    assert!(bad(|c| c.max_request = 1000)); // below the largest class
    assert!(PoolConfig::default().with_classes(&[]).is_err());
    assert!(Pool::create(HostPlatform::new(0, true), &PoolConfig::default()).is_err());
    let tracker = HostPlatform::new(1, true).tracker();
    assert_eq!(tracker.live_allocs(), 0);
}

#[test]
fn burst_then_idle_trim_returns_to_working_set() {
    let cfg = PoolConfig {
        magazine_size: 8,
        depot_limit: 8,
        ..PoolConfig::default()
    };
    let pool = Pool::create(HostPlatform::new(2, true), &cfg).unwrap();
    HostPlatform::bind_cpu(0);
    let burst: Vec<_> = (0..100).map(|_| pool.allocate(200)).collect();
    for &m in &burst {
        // SAFETY: in flight.
        unsafe { pool.free(m).unwrap() };
    }
    let s = pool.snapshot();
    let class = &s.classes[2]; // 256-byte class
    assert_eq!(
        class.retained_blocks,
        16 + 64,
        "two magazines + the depot limit"
    );
    assert_eq!(class.free_misses, 100 - 80);
    assert!(s.total.retained_bytes <= pool.retention_cap_bytes());
    pool.trim(); // the burst interval: its low-water mark was 0, nothing released
    assert_eq!(pool.snapshot().classes[2].depot_blocks, 64);
    let released = pool.trim(); // an idle interval: the whole depot is surplus
    assert_eq!(released.blocks, 64);
    let s = pool.snapshot();
    assert_eq!(s.classes[2].depot_blocks, 0);
    assert!(s.total.retained_bytes <= pool.working_set_bound_bytes());
    assert_eq!(s.total.retained_blocks, 16);
}

#[test]
fn destroy_reports_in_flight_and_does_not_free_them() {
    let pool = Pool::create(HostPlatform::new(2, true), &small_config()).unwrap();
    let tracker = pool.platform().tracker();
    let kept = [
        pool.allocate(64),
        pool.allocate(2000),
        pool.allocate(10_000),
    ];
    let freed: Vec<_> = (0..20).map(|_| pool.allocate(128)).collect();
    for m in freed {
        // SAFETY: in flight.
        unsafe { pool.free(m).unwrap() };
    }
    for &m in &kept {
        fill(m, 0x5A);
    }
    let report = pool.destroy();
    assert_eq!(report.in_flight_blocks, 3);
    assert_eq!(report.live_blocks, 3);
    assert_eq!(report.in_flight_by_class[0], 1);
    assert_eq!(report.in_flight_by_class[5], 1);
    assert_eq!(report.in_flight_by_class[6], 1, "oversize row");
    assert!(!report.is_clean());
    // The in-flight blocks are untouched and still allocated; nothing else is.
    for &m in &kept {
        check(m, 0x5A);
    }
    assert_eq!(tracker.live_allocs(), 3);
    // SAFETY: the destroyed pool no longer references the leaked blocks; the test is done with them.
    assert_eq!(unsafe { tracker.free_all() }, 3);
}

#[test]
fn cross_cpu_frees_and_stats_sum() {
    let pool = Pool::create(HostPlatform::new(2, true), &small_config()).unwrap();
    HostPlatform::bind_cpu(0);
    let v: Vec<_> = (0..30).map(|i| pool.allocate(1 + i * 50)).collect();
    HostPlatform::bind_cpu(1);
    for &m in &v {
        // SAFETY: in flight; freed "on CPU 1".
        unsafe { pool.free(m).unwrap() };
    }
    HostPlatform::bind_cpu(0);
    let c = pool.cpu_counters();
    let allocs0: u64 = c[0]
        .classes
        .iter()
        .map(|r| {
            r.total_allocates
                .load(core::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    let frees1: u64 = c[1]
        .classes
        .iter()
        .map(|r| r.total_frees.load(core::sync::atomic::Ordering::Relaxed))
        .sum();
    assert_eq!((allocs0, frees1), (30, 30));
    let s = pool.snapshot();
    assert_eq!(s.total.in_flight, 0);
    assert_eq!(s.total.total_allocates, 30);
    for r in s.size_classes() {
        assert_eq!(r.retained_blocks, r.depth + r.depot_blocks);
    }
    // SAFETY: single-threaded test: quiescent.
    let released = unsafe { pool.flush_all() };
    assert_eq!(
        released.blocks,
        s.size_classes()
            .iter()
            .map(|r| r.retained_blocks)
            .sum::<u64>()
    );
    assert_eq!(pool.platform().live_allocs(), POOL_REGIONS);
}

#[derive(Clone, Debug)]
enum Op {
    Alloc { cpu: usize, size: u32 },
    Free { cpu: usize, pick: usize },
    Trim { cpu: usize },
    Flush { cpu: usize },
    FlushAll,
}

fn op_strategy(cpus: usize) -> impl Strategy<Value = Op> {
    let size = prop_oneof![
        6 => 1u32..=2048,
        1 => 2049u32..=9000,
        1 => Just(0u32),
        1 => 65_537u32..=70_000,
    ];
    prop_oneof![
        8 => (0..cpus, size).prop_map(|(cpu, size)| Op::Alloc { cpu, size }),
        8 => (0..cpus, any::<usize>()).prop_map(|(cpu, pick)| Op::Free { cpu, pick }),
        1 => (0..cpus).prop_map(|cpu| Op::Trim { cpu }),
        1 => (0..cpus).prop_map(|cpu| Op::Flush { cpu }),
        1 => Just(Op::FlushAll),
    ]
}

/// Runs `ops` against the pool and a reference model (the set of in-flight blocks with their sizes and
/// fill tags), checking after every step: no duplicate handout, contents intact, in-flight exact, every
/// retained block accounted to a tier, retention within the caps, platform memory = pool regions + live
/// blocks; at the end `destroy` accounts for every block still in flight.
fn run_model(ops: &[Op], free_all_at_end: bool) {
    const CPUS: usize = 3;
    let cfg = PoolConfig {
        magazine_size: 3,
        depot_limit: 2,
        ..PoolConfig::default()
    };
    let pool = Pool::create(HostPlatform::new(CPUS, true), &cfg).unwrap();
    let tracker = pool.platform().tracker();
    let mut model: Vec<(*mut MDL, u32, u8)> = Vec::new();
    let mut tag = 0u8;
    let mut trims_since_op = 0;
    for op in ops {
        match *op {
            Op::Alloc { cpu, size } => {
                HostPlatform::bind_cpu(cpu);
                trims_since_op = 0;
                let m = pool.allocate(size);
                if size == 0 || size > cfg.max_request {
                    assert!(m.is_null());
                    continue;
                }
                assert!(!m.is_null());
                assert!(
                    model.iter().all(|&(x, _, _)| x != m),
                    "block handed out twice"
                );
                // SAFETY: live MDL.
                assert_eq!(unsafe { (*m).ByteCount }, size);
                tag = tag.wrapping_add(1);
                fill(m, tag);
                model.push((m, size, tag));
            }
            Op::Free { cpu, pick } => {
                if model.is_empty() {
                    continue;
                }
                HostPlatform::bind_cpu(cpu);
                trims_since_op = 0;
                let (m, _, t) = model.swap_remove(pick % model.len());
                check(m, t);
                // SAFETY: in flight, owned by the model.
                assert_eq!(unsafe { pool.free(m) }, Ok(()));
            }
            Op::Trim { cpu } => {
                HostPlatform::bind_cpu(cpu);
                pool.trim();
                trims_since_op += 1;
            }
            Op::Flush { cpu } => {
                HostPlatform::bind_cpu(cpu);
                pool.flush();
                let s = pool.snapshot();
                assert!(s.size_classes().iter().all(|r| r.depot_blocks == 0));
            }
            Op::FlushAll => {
                // SAFETY: single thread: quiescent.
                unsafe { pool.flush_all() };
                let s = pool.snapshot();
                assert_eq!(s.total.retained_blocks, 0);
            }
        }
        let s = pool.snapshot();
        assert_eq!(s.total.in_flight, model.len() as u64, "in-flight count");
        assert_eq!(s.double_frees + s.foreign_frees, 0);
        for (i, r) in s.size_classes().iter().enumerate() {
            assert_eq!(
                r.retained_blocks,
                r.depth + r.depot_blocks,
                "class {i}: a retained block in no tier"
            );
            assert!(
                r.retained_blocks <= pool.retention_cap_blocks(),
                "class {i} above its cap"
            );
            let expect = model
                .iter()
                .filter(|&&(_, sz, _)| pool.class_for(sz) == Ok(Some(i)))
                .count();
            assert_eq!(r.in_flight, expect as u64, "class {i} in flight");
        }
        assert_eq!(s.oversize().retained_blocks, 0);
        if trims_since_op >= 2 {
            assert!(
                s.size_classes().iter().all(|r| r.depot_blocks == 0),
                "idle trims leave no depot"
            );
        }
        assert_eq!(
            tracker.live_allocs(),
            POOL_REGIONS + s.total.live_blocks as usize,
            "platform memory"
        );
    }
    if free_all_at_end {
        for (m, _, t) in model.drain(..) {
            check(m, t);
            // SAFETY: in flight.
            unsafe { pool.free(m).unwrap() };
        }
    }
    let left = model.len() as u64;
    let report = pool.destroy();
    assert_eq!(report.in_flight_blocks, left);
    assert_eq!(report.live_blocks, left, "a block was lost");
    assert_eq!(
        tracker.live_allocs() as u64,
        left,
        "destroy freed an in-flight block or leaked a cached one"
    );
    for (m, _, t) in &model {
        check(*m, *t);
    }
    // SAFETY: the pool is gone; the model's blocks are no longer used.
    unsafe { tracker.free_all() };
    HostPlatform::bind_cpu(0);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 256 },
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    #[test]
    fn model_random_sequences(ops in proptest::collection::vec(op_strategy(3), 1..if cfg!(miri) { 40 } else { 300 }),
                              free_all in any::<bool>()) {
        run_model(&ops, free_all);
    }
}

#[test]
fn model_handout_distinct_over_many_cycles() {
    // A deterministic long sequence through every tier, also checked for aliasing via a map.
    let pool = Pool::create(HostPlatform::new(2, true), &small_config()).unwrap();
    let mut live: HashMap<usize, u8> = HashMap::new();
    let mut held = Vec::new();
    let rounds = if cfg!(miri) { 3 } else { 50 };
    for r in 0..rounds {
        HostPlatform::bind_cpu(r % 2);
        for i in 0..25u32 {
            let m = pool.allocate(1 + (i * 97) % 2048);
            assert!(live.insert(m as usize, r as u8).is_none());
            fill(m, r as u8);
            held.push(m);
        }
        HostPlatform::bind_cpu((r + 1) % 2);
        for m in held.drain(..) {
            check(m, live.remove(&(m as usize)).unwrap());
            // SAFETY: in flight.
            unsafe { pool.free(m).unwrap() };
        }
    }
    HostPlatform::bind_cpu(0);
    assert!(pool.destroy().is_clean());
}

/// Frees `n` blocks of 200 bytes (256-byte class) allocated on CPU 0 and returns the class row.
fn burst(pool: &Pool<HostPlatform>, n: usize) -> ClassSnapshot {
    HostPlatform::bind_cpu(0);
    let blocks: Vec<_> = (0..n).map(|_| pool.allocate(200)).collect();
    for &m in &blocks {
        // SAFETY: in flight.
        unsafe { pool.free(m).unwrap() };
    }
    pool.snapshot().classes[2]
}

#[test]
fn runtime_depot_limit_bounds_retention_and_releases_the_excess_at_once() {
    let cfg = PoolConfig {
        magazine_size: 8,
        depot_limit: 8,
        magazine_capacity: 16,
        depot_capacity: 12,
        ..PoolConfig::default()
    };
    let pool = Pool::create(HostPlatform::new(2, true), &cfg).unwrap();
    assert_eq!(
        pool.limits(),
        Limits {
            magazine_fill: 8,
            depot_limit: 8,
            trim_interval_ms: 1000
        }
    );
    let c = burst(&pool, 100);
    assert_eq!(
        c.retained_blocks,
        16 + 64,
        "two magazines + 8 full in the depot"
    );
    // Lowering the depot limit releases the surplus full magazines now.
    let applied = pool.set_limits(Limits {
        depot_limit: 3,
        ..pool.limits()
    });
    assert_eq!(applied.depot_limit, 3);
    let s = pool.snapshot();
    assert_eq!(
        (s.classes[2].depot_full, s.classes[2].depot_blocks),
        (3, 24)
    );
    assert_eq!(s.classes[2].trimmed, 40);
    assert_eq!(s.depot_limit, 3);
    // And bounds what a new burst can leave behind.
    let c = burst(&pool, 100);
    assert_eq!(c.retained_blocks, 16 + 24);
    // Raising it (within the allocated room) lets the depot keep more again.
    pool.set_limits(Limits {
        depot_limit: 12,
        ..pool.limits()
    });
    let c = burst(&pool, 200);
    assert_eq!(c.depot_full, 12);
    assert_eq!(c.retained_blocks, 16 + 96);
    assert!(pool.snapshot().total.retained_bytes <= pool.retention_cap_bytes());
    // Depot limit 0: nothing beyond the per-CPU pair.
    pool.set_limits(Limits {
        depot_limit: 0,
        ..pool.limits()
    });
    let c = burst(&pool, 100);
    assert_eq!((c.depot_full, c.retained_blocks), (0, 16));
}

#[test]
fn runtime_magazine_fill_applies_at_the_next_exchange_and_is_clamped_to_the_slots() {
    let cfg = PoolConfig {
        magazine_size: 8,
        depot_limit: 4,
        magazine_capacity: 16,
        ..PoolConfig::default()
    };
    let pool = Pool::create(HostPlatform::new(1, true), &cfg).unwrap();
    let applied = pool.set_limits(Limits {
        magazine_fill: 1000,
        depot_limit: 1000,
        trim_interval_ms: 1,
    });
    assert_eq!(
        applied,
        Limits {
            magazine_fill: 16,
            depot_limit: 4,
            trim_interval_ms: 10
        },
        "clamped to the allocated room and the interval range"
    );
    let c = burst(&pool, 200);
    // The CPU pair picked up 16 at its first exchange; every depot magazine was filled to 16.
    assert_eq!(c.depot_blocks, 4 * 16);
    assert_eq!(c.retained_blocks, 2 * 16 + 4 * 16);
    assert_eq!(pool.snapshot().magazine_size, 16);
    pool.set_limits(Limits {
        magazine_fill: 2,
        ..pool.limits()
    });
    // Emptied, the CPU's loaded magazine still carries its old fill limit until its next exchange:
    // it fills to 16 once, then goes to the depot; every later magazine is filled to 2.
    pool.flush();
    let c = burst(&pool, 200);
    assert_eq!(c.depot_blocks, 16 + 3 * 2);
    assert_eq!(c.retained_blocks, 2 * 2 + 16 + 3 * 2);
    // From then on, magazines of 2 only.
    pool.flush();
    let c = burst(&pool, 200);
    assert_eq!(c.depot_blocks, 4 * 2);
    assert_eq!(c.retained_blocks, 2 * 2 + 4 * 2);
    assert_eq!(
        pool.set_limits(Limits {
            magazine_fill: 0,
            ..pool.limits()
        })
        .magazine_fill,
        1
    );
}

#[test]
fn capacities_below_the_limits_are_refused() {
    let bad = |cfg: PoolConfig| Pool::create(HostPlatform::new(1, true), &cfg).is_err();
    assert!(bad(PoolConfig {
        magazine_size: 8,
        magazine_capacity: 4,
        ..PoolConfig::default()
    }));
    assert!(bad(PoolConfig {
        depot_limit: 8,
        depot_capacity: 4,
        ..PoolConfig::default()
    }));
    assert!(bad(PoolConfig {
        magazine_capacity: MAX_MAGAZINE + 1,
        ..PoolConfig::default()
    }));
}
