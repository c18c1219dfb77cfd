//! Multi-thread stress of the pool on the host platform: threads are CPUs, millions of operations in
//! release builds (fewer in debug), with cross-CPU frees, oversize requests and a concurrent trimmer.
//! Every block carries its owner's tag at both ends while in flight and is checked when freed; at the
//! end the counters must balance exactly and destroy must find nothing.
//!
//! Retention is judged on quiescent snapshots only: the workers stop at a barrier between phases (blocks
//! they hold or have queued for another CPU stay in flight, which a quiescent snapshot counts exactly)
//! and the main thread checks the caps there. A snapshot taken while workers run sums each CPU's
//! counters at a different moment, so its `in_flight` (and thus `retained`) can be off by the blocks
//! moving meanwhile; the trimmer, which runs throughout, checks only what its snapshot reads under the
//! depot lock (the depot tier's bound).
//!
//! Run: `cargo test --release -p mdlpool --test pool_stress`.

use mdlpool::pool::Platform;
use mdlpool::pool::{Pool, PoolConfig, PoolSnapshot};
use ndis_sys::MDL;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Barrier};

#[path = "../src/pool/host.rs"]
mod host;
use host::HostPlatform;

const WORKERS: usize = 4;
const TRIMMER_CPU: usize = WORKERS;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[derive(Clone, Copy)]
struct Held {
    mdl: usize,
    tag: u64,
}

fn region(mdl: *mut MDL) -> (*mut u8, usize) {
    // SAFETY: a live MDL from the pool.
    unsafe {
        (
            (*mdl).MappedSystemVa.cast::<u8>(),
            (*mdl).ByteCount as usize,
        )
    }
}

/// Writes the tag at both ends of the block (overlapping for small blocks).
fn stamp(mdl: *mut MDL, tag: u64) {
    let (p, n) = region(mdl);
    let bytes = tag.to_le_bytes();
    let k = n.min(8);
    // SAFETY: the MDL describes n writable bytes at p, owned by this thread.
    unsafe {
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), p, k);
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), p.add(n - k), k);
    }
}

fn verify(mdl: *mut MDL, tag: u64) {
    let (p, n) = region(mdl);
    let bytes = tag.to_le_bytes();
    let k = n.min(8);
    // SAFETY: as in stamp.
    let (head, tail) = unsafe {
        (
            core::slice::from_raw_parts(p, k),
            core::slice::from_raw_parts(p.add(n - k), k),
        )
    };
    if n >= 16 {
        assert_eq!(
            head,
            &bytes[..k],
            "block head overwritten while in flight: handed out twice?"
        );
    }
    assert_eq!(
        tail,
        &bytes[..k],
        "block tail overwritten while in flight: handed out twice?"
    );
}

fn ops_per_worker() -> u64 {
    if cfg!(debug_assertions) {
        20_000
    } else {
        600_000
    }
}

/// Phases of each worker's run; the retention caps are checked on a quiescent snapshot after each.
const PHASES: u64 = 8;

/// Retention within the caps. Only sound on a quiescent snapshot (no allocate/free running; a concurrent
/// trim only lowers `live_blocks`, which is read once).
fn check_tiers(pool: &Pool<HostPlatform>, s: &PoolSnapshot) {
    for r in s.size_classes() {
        assert!(
            r.retained_blocks <= pool.retention_cap_blocks(),
            "retention above the cap: {r:?}"
        );
    }
    assert!(s.total.retained_bytes <= pool.retention_cap_bytes());
}

/// What holds on any snapshot, even under traffic: each class's depot row is read under its lock, so its
/// full magazines are within the depot limit and their blocks within `depot_limit * M`.
fn check_depot(config: &PoolConfig, s: &PoolSnapshot) {
    for r in s.size_classes() {
        assert!(
            r.depot_full <= config.depot_limit as u64,
            "depot above its limit: {r:?}"
        );
        assert!(
            r.depot_blocks <= config.depot_limit as u64 * config.magazine_size as u64,
            "depot blocks above depot_limit * M: {r:?}"
        );
    }
}

fn stress(config: PoolConfig) {
    let pool = Arc::new(Pool::create(HostPlatform::new(WORKERS + 1, true), &config).unwrap());
    let tracker = pool.platform().tracker();
    let served = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(WORKERS));
    // The workers and the main thread: quiescent points between phases.
    let phase = Arc::new(Barrier::new(WORKERS + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..WORKERS).map(|_| mpsc::channel::<Held>()).unzip();
    let mut rxs: Vec<Option<mpsc::Receiver<Held>>> = rxs.into_iter().map(Some).collect();

    let trimmer = {
        let pool = pool.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            HostPlatform::bind_cpu(TRIMMER_CPU);
            let mut rounds = 0u64;
            while !stop.load(Ordering::Relaxed) {
                pool.trim();
                check_depot(&config, &pool.snapshot());
                rounds += 1;
                std::thread::yield_now();
            }
            rounds
        })
    };

    let workers: Vec<_> = (0..WORKERS)
        .map(|cpu| {
            let pool = pool.clone();
            let served = served.clone();
            let barrier = barrier.clone();
            let phase = phase.clone();
            let to_next = txs[(cpu + 1) % WORKERS].clone();
            let inbox = rxs[cpu].take().unwrap();
            std::thread::spawn(move || {
                HostPlatform::bind_cpu(cpu);
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((cpu as u64 + 1) * 0x1234_5678_9ABC));
                let mut held: Vec<Held> = Vec::with_capacity(256);
                let mut seq = 0u64;
                let mut ok = 0u64;
                let free_one = |h: Held| {
                    verify(h.mdl as *mut MDL, h.tag);
                    // SAFETY: in flight and owned by this thread now.
                    assert_eq!(unsafe { pool.free(h.mdl as *mut MDL) }, Ok(()));
                };
                for op in 0..ops_per_worker() {
                    if op % (ops_per_worker() / PHASES) == 0 && op != 0 {
                        phase.wait(); // quiescent: the main thread checks the caps
                        phase.wait();
                    }
                    let r = rng.next();
                    if held.len() < 8 || (held.len() < 200 && r.is_multiple_of(2)) {
                        let size = match r >> 60 {
                            0 => 2049 + (r >> 8) as u32 % 7000,
                            _ => 1 + (r >> 8) as u32 % 2048,
                        };
                        let m = pool.allocate(size);
                        assert!(!m.is_null());
                        seq += 1;
                        let tag = ((cpu as u64) << 56) | seq;
                        stamp(m, tag);
                        ok += 1;
                        held.push(Held {
                            mdl: m as usize,
                            tag,
                        });
                    } else {
                        let h = held.swap_remove((r >> 16) as usize % held.len());
                        if r.is_multiple_of(3) {
                            to_next.send(h).unwrap(); // freed by the next CPU
                        } else {
                            free_one(h);
                        }
                    }
                    if r.is_multiple_of(16) {
                        while let Ok(h) = inbox.try_recv() {
                            free_one(h);
                        }
                    }
                }
                for h in held.drain(..) {
                    free_one(h);
                }
                drop(to_next);
                barrier.wait(); // every send is done
                while let Ok(h) = inbox.try_recv() {
                    free_one(h);
                }
                served.fetch_add(ok, Ordering::Relaxed);
            })
        })
        .collect();
    drop(txs);
    for _ in 1..PHASES {
        phase.wait();
        check_tiers(&pool, &pool.snapshot());
        phase.wait();
    }
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let trim_rounds = trimmer.join().unwrap();

    HostPlatform::bind_cpu(0);
    let s = pool.snapshot();
    let served = served.load(Ordering::Relaxed);
    assert_eq!(s.total.in_flight, 0);
    assert_eq!(s.total.served(), served);
    assert_eq!(s.total.total_frees, served);
    assert_eq!(
        (s.total.failures, s.foreign_frees, s.double_frees, s.bad_cpu),
        (0, 0, 0, 0)
    );
    for r in s.size_classes() {
        assert_eq!(
            r.retained_blocks,
            r.depth + r.depot_blocks,
            "every retained block in a tier: {r:?}"
        );
    }
    assert_eq!(s.oversize().live_blocks, 0);
    assert_eq!(
        s.total.system_allocs - s.total.system_frees,
        s.total.live_blocks
    );
    check_tiers(&pool, &s);
    eprintln!(
        "stress M={} depot={}: {} allocations, {} depot exchanges, {} system allocs, {} trim rounds, {} retained bytes",
        config.magazine_size,
        config.depot_limit,
        served,
        s.total.depot_gets + s.total.depot_puts,
        s.total.system_allocs,
        trim_rounds,
        s.total.retained_bytes
    );
    let pool = Arc::into_inner(pool).unwrap();
    let report = pool.destroy();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        tracker.live_allocs(),
        0,
        "platform memory left after destroy"
    );
}

#[test]
fn stress_small_magazines_cross_cpu() {
    stress(PoolConfig {
        magazine_size: 4,
        depot_limit: 4,
        ..PoolConfig::default()
    });
}

#[test]
fn stress_default_config_cross_cpu() {
    stress(PoolConfig::default());
}
