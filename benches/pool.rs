//! Pool benchmarks: mdlpool's per-CPU pool against its peers, in one run, on the same block lifecycle:
//! get a block whose MDL describes N bytes (ByteCount = N, Next = NULL, built for nonpaged pool), touch
//! it (write the 16 bytes at its tail, where a retreat puts headers, and read one back), free it.
//!
//! Peers (all serve the same block shape, `[MDL + PFN | data]`, built once unless said otherwise):
//! - `floor`: what the pattern cannot avoid, with no pool logic at all: in `same_cpu`, `burst` and
//!   `contended` a bare per-thread `Vec` pop/push of pre-built blocks; in `cross_cpu` the bare hand-off
//!   (`run_handoff_floor`: pre-built blocks written on CPU 0, unlinked and freed on CPU 1, returned to
//!   CPU 0 in the same batches);
//! - `lookaside`: one shared Windows lookaside model (tagged Treiber stack, depth cap 256, plain
//!   counters on the list head's line, i.e. one LOOKASIDE_LIST_EX for all CPUs);
//! - `arrayqueue`: crossbeam `ArrayQueue` of block pointers (capacity 256);
//! - `mutex_vec`: `Mutex<Vec>` of block pointers (capacity 256);
//! - `system_ndis`: NDIS's default allocator shape on the system allocator (malloc of MDL + data, MDL
//!   initialised and built on every request, freed on every free);
//! - `mimalloc_ndis`: the same shape on mimalloc.
//!
//! Scenarios: `same_cpu` (one thread, alloc + touch + free pairs), `burst` (one thread, 256 allocations
//! then 256 frees: more than a magazine), `cross_cpu` (CPU 0 allocates and touches, CPU 1 frees: the
//! send/complete and receive/return pattern; blocks travel in batches of 64, and the freeing side first
//! reads the MDL's ByteCount and Next as NDIS's advance does), `contended` (two threads
//! each running same_cpu pairs at once). Reported times are per block (one get + touch + free).
//!
//! Same conditions for every peer: `same_cpu` and `burst` run on ONE spawned worker thread pinned to
//! core 0 (the floor's `Vec`, its blocks and every peer's calls all live there; criterion's main thread
//! only drives), and besides criterion's samples, which measure one peer after another, those two
//! scenarios are measured interleaved (`interleaved`): rounds in which the floor and every peer run in
//! turn, each peer's per-round ratio to the floor giving the same-CPU ratios.
//!
//! `cargo xtask bench` runs this and writes BENCHMARKS.md; the facts this binary measures besides
//! times (retained memory, caps, working-set bound) go to `$MDLPOOL_BENCH_FACTS`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use crossbeam_queue::ArrayQueue;
use mdlpool::pool::{Platform, Pool, PoolConfig};
use ndis_sys::MDL;
use std::alloc::System;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::Duration;

/// CPU time consumed by the calling thread. The machine this runs on is shared (other builds run on the
/// same two cores), so every scenario is timed in per-thread CPU time rather than wall time: time the
/// thread spends descheduled is not charged to the peer being measured, while its own cache misses and
/// cache-line transfers are.
#[derive(Clone, Copy)]
struct Instant(Duration);
impl Instant {
    fn now() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid out-pointer; CLOCK_THREAD_CPUTIME_ID is supported on Linux.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        Self(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }
    fn elapsed(&self) -> Duration {
        Self::now().0.saturating_sub(self.0)
    }
}

/// Pins the calling thread to one core (best effort).
fn pin(core: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET stays in bounds for core < CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        libc::CPU_SET(core % 1024, &mut set);
        libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

#[path = "../src/pool/host.rs"]
mod host;
use host::HostPlatform;

#[path = "pool/peers.rs"]
mod peers;
use peers::*;

const N: u32 = 128;
const BURST: usize = 256;
const BATCH: usize = 64;
const CAP: usize = 256;
/// Batches in circulation in the hand-off floor (as many as `run_cross` keeps in flight).
const HANDOFF_VECS: usize = 4;

// ---------------------------------------------------------------------------------------------------
// Scenarios.

#[inline(always)]
fn pair(p: &dyn Peer) {
    let m = p.get(N);
    touch(m);
    p.put(m);
}

fn run_pairs(p: &dyn Peer, iters: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        pair(p);
    }
    t.elapsed()
}

fn run_burst(p: &dyn Peer, iters: u64) -> Duration {
    let mut held = [core::ptr::null_mut::<MDL>(); BURST];
    let rounds = iters.div_ceil(BURST as u64).max(1);
    let t = Instant::now();
    for _ in 0..rounds {
        for h in held.iter_mut() {
            *h = p.get(N);
            touch(*h);
        }
        for &h in held.iter() {
            p.put(h);
        }
    }
    // per block: scale to the requested iteration count
    t.elapsed()
        .mul_f64(iters as f64 / (rounds * BURST as u64) as f64)
}

/// Two threads (CPU 0 and CPU 1) run `body(cpu, iters)` at once; returns the slower thread's time.
fn duo(iters: u64, setup: impl Fn(usize) + Sync, body: impl Fn(usize, u64) + Sync) -> Duration {
    let barrier = Barrier::new(2);
    let times: Vec<Duration> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|cpu| {
                let (barrier, setup, body) = (&barrier, &setup, &body);
                s.spawn(move || {
                    pin(cpu);
                    HostPlatform::bind_cpu(cpu);
                    setup(cpu);
                    barrier.wait();
                    let t = Instant::now();
                    body(cpu, iters);
                    t.elapsed()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    times.into_iter().max().unwrap()
}

/// CPU 0 allocates and touches, CPU 1 frees; blocks travel in batches of BATCH through a pair of
/// bounded channels (the batch buffers are recycled, so the transfer does not allocate). Only the pool
/// work is timed (wall clock around each batch's allocate+touch loop on CPU 0 and free loop on CPU 1, so
/// the channel hand-off, which stands for the NBL's trip through the stack, is not charged); the result
/// is the per-block sum of both sides: one cross-CPU get + touch + free.
fn run_cross(p: &dyn Peer, iters: u64) -> Duration {
    let batches = iters.div_ceil(BATCH as u64).max(1);
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<usize>>(4);
    let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel::<Vec<usize>>(8);
    for _ in 0..4 {
        empty_tx.send(Vec::with_capacity(BATCH)).unwrap();
    }
    let full_rx = Mutex::new(full_rx);
    let empty_rx = Mutex::new(empty_rx);
    let work = [AtomicU64::new(0), AtomicU64::new(0)];
    duo(
        batches,
        |_| {},
        |cpu, batches| {
            let mut spent = Duration::ZERO;
            if cpu == 0 {
                let rx = empty_rx.lock().unwrap();
                for _ in 0..batches {
                    let mut v = rx.recv().unwrap();
                    let t = std::time::Instant::now();
                    for _ in 0..BATCH {
                        let m = p.get(N);
                        touch(m);
                        v.push(m as usize);
                    }
                    spent += t.elapsed();
                    full_tx.send(v).unwrap();
                }
            } else {
                let rx = full_rx.lock().unwrap();
                for _ in 0..batches {
                    let mut v = rx.recv().unwrap();
                    let t = std::time::Instant::now();
                    for m in v.drain(..) {
                        let m = m as *mut MDL;
                        complete(m);
                        p.put(m);
                    }
                    spent += t.elapsed();
                    let _ = empty_tx.send(v);
                }
            }
            work[cpu].store(spent.as_nanos() as u64, Ordering::Relaxed);
        },
    );
    let total = work[0].load(Ordering::Relaxed) + work[1].load(Ordering::Relaxed);
    Duration::from_nanos(total).mul_f64(iters as f64 / (batches * BATCH as u64) as f64)
}

/// The cross-CPU floor: the bare hand-off. `HANDOFF_VECS` batches of pre-built blocks circulate between
/// CPU 0 and CPU 1 in the same batches of BATCH and through the same channels as `run_cross`. CPU 0 takes
/// each block of a returned batch and does what an allocation changes (Next, ByteCount) and the touch;
/// CPU 1 does NDIS's unlink read and the free's one write to the block's first line (a free list's link
/// word), then sends the batch back for reuse. No per-CPU lookup, class lookup, counters or checks: only
/// the cache-line transfers the pattern cannot avoid. Timed exactly like `run_cross`.
fn run_handoff_floor(iters: u64) -> Duration {
    let batches = iters.div_ceil(BATCH as u64).max(1);
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<usize>>(HANDOFF_VECS);
    let (back_tx, back_rx) = std::sync::mpsc::sync_channel::<Vec<usize>>(HANDOFF_VECS);
    for _ in 0..HANDOFF_VECS {
        back_tx
            .send((0..BATCH).map(|_| new_block(&System)).collect())
            .unwrap();
    }
    let full_rx = Mutex::new(full_rx);
    let back_rx = Mutex::new(back_rx);
    let work = [AtomicU64::new(0), AtomicU64::new(0)];
    duo(
        batches,
        |_| {},
        |cpu, batches| {
            let mut spent = Duration::ZERO;
            if cpu == 0 {
                let rx = back_rx.lock().unwrap();
                for _ in 0..batches {
                    let v = rx.recv().unwrap();
                    let t = std::time::Instant::now();
                    for &b in &v {
                        touch(hand_out(b, N));
                    }
                    spent += t.elapsed();
                    full_tx.send(v).unwrap();
                }
            } else {
                let rx = full_rx.lock().unwrap();
                for _ in 0..batches {
                    let v = rx.recv().unwrap();
                    let t = std::time::Instant::now();
                    for &b in &v {
                        let m = b as *mut MDL;
                        complete(m);
                        // SAFETY: the block is ours until the batch goes back.
                        unsafe { (*m).Next = core::ptr::null_mut() };
                    }
                    spent += t.elapsed();
                    let _ = back_tx.send(v);
                }
            }
            work[cpu].store(spent.as_nanos() as u64, Ordering::Relaxed);
        },
    );
    // Every batch is back on the return channel (or was never taken): free the blocks.
    let rx = back_rx.into_inner().unwrap();
    let rest = full_rx.into_inner().unwrap();
    for v in rx.try_iter().chain(rest.try_iter()) {
        for b in v {
            free_block(&System, b);
        }
    }
    let total = work[0].load(Ordering::Relaxed) + work[1].load(Ordering::Relaxed);
    Duration::from_nanos(total).mul_f64(iters as f64 / (batches * BATCH as u64) as f64)
}

/// A job for the bench worker: runs on the worker thread and returns its measured time.
type Job<'a> = Box<dyn FnOnce() -> Duration + Send + 'a>;

/// One spawned thread, pinned to a core and bound to the pool's CPU index of that core, that runs the
/// single-thread scenarios (same CPU, burst) for every peer, the floor included: all of them then run on
/// the same kind of thread, with the same stack, TLS and allocator arena, whatever criterion's main thread
/// has been doing.
struct Worker<'a> {
    jobs: std::sync::mpsc::Sender<Job<'a>>,
    done: std::sync::mpsc::Receiver<Duration>,
}

impl<'a> Worker<'a> {
    fn spawn<'env>(s: &'a std::thread::Scope<'a, 'env>, core: usize) -> Self {
        let (jobs, rx) = std::sync::mpsc::channel::<Job<'a>>();
        let (tx, done) = std::sync::mpsc::channel();
        s.spawn(move || {
            pin(core);
            HostPlatform::bind_cpu(core);
            for job in rx {
                if tx.send(job()).is_err() {
                    break;
                }
            }
        });
        Self { jobs, done }
    }

    /// Runs `f` on the worker and returns the time it reports.
    fn run(&self, f: impl FnOnce() -> Duration + Send + 'a) -> Duration {
        self.jobs.send(Box::new(f)).expect("bench worker gone");
        self.done.recv().expect("bench worker gone")
    }

    /// Runs `f` on the worker (set-up and tear-down that must happen on its thread) and returns its value.
    fn call<R: Send + 'a>(&self, f: impl FnOnce() -> R + Send + 'a) -> R {
        let (tx, rx) = std::sync::mpsc::channel();
        self.run(move || {
            let _ = tx.send(f());
            Duration::ZERO
        });
        rx.recv().expect("bench worker gone")
    }
}

/// Rounds and blocks per peer per round of the interleaved measurement.
const ROUNDS: usize = 41;
const ROUND_BLOCKS: u64 = 50_000;

/// The same-thread scenarios measured interleaved: `ROUNDS` rounds, each running the floor and every
/// peer for `ROUND_BLOCKS` blocks in turn (the starting peer rotates), so every peer is compared with
/// the floor measured a few milliseconds apart on the same thread. The absolute speed of a few-ns loop
/// on this shared machine drifts by up to 2x between seconds (the same block at the same address,
/// measured again, takes 2.5 or 4.9 ns), which criterion's one-peer-after-the-other samples fold into
/// their ratios; a per-round ratio cancels it. Returns facts lines: per peer, the median ns per block
/// and the median and quartiles of its per-round ratio to the floor.
fn interleaved(scenario: &str, peers: &Peers, run: fn(&dyn Peer, u64) -> Duration) -> String {
    Floor::prime();
    let mut list: Vec<(&str, &dyn Peer)> = vec![("floor", &Floor)];
    list.extend(peers.list());
    let n = list.len();
    // `cargo bench` passes --bench; `cargo test --benches` runs each benchmark once, and so this once.
    let (rounds, blocks) = if std::env::args().any(|a| a == "--bench") {
        (ROUNDS, ROUND_BLOCKS)
    } else {
        (1, 256)
    };
    let mut ns = vec![Vec::with_capacity(rounds); n];
    for round in 0..rounds {
        for k in 0..n {
            let i = (round + k) % n;
            let d = run(list[i].1, blocks);
            ns[i].push(d.as_nanos() as f64 / blocks as f64);
        }
    }
    Floor::release();
    let quartiles = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let at = |q: usize| v[(v.len() - 1) * q / 4];
        (at(1), at(2), at(3))
    };
    let mut out = format!("interleaved_rounds={rounds}\ninterleaved_round_blocks={blocks}\n");
    for (i, (name, _)) in list.iter().enumerate() {
        let ratios: Vec<f64> = (0..rounds).map(|r| ns[i][r] / ns[0][r]).collect();
        let (_, med_ns, _) = quartiles(ns[i].clone());
        let (q1, med, q3) = quartiles(ratios);
        out.push_str(&format!(
            "interleaved_{scenario}_{name}_ns={med_ns:.3}\ninterleaved_{scenario}_{name}_ratio={med:.3}\ninterleaved_{scenario}_{name}_ratio_q1={q1:.3}\ninterleaved_{scenario}_{name}_ratio_q3={q3:.3}\n"
        ));
    }
    out
}

fn run_contended(p: &dyn Peer, iters: u64, floor: bool) -> Duration {
    duo(
        iters,
        |_| {
            if floor {
                Floor::prime()
            }
        },
        |_, iters| {
            for _ in 0..iters {
                pair(p);
            }
            if floor {
                Floor::release()
            }
        },
    )
}

// ---------------------------------------------------------------------------------------------------

fn pool_config() -> PoolConfig {
    PoolConfig::default()
}

fn new_pool() -> PoolPeer {
    PoolPeer(Pool::create(BenchPlatform(HostPlatform::new(2, false)), &pool_config()).unwrap())
}

struct Peers {
    pool: PoolPeer,
    lookaside: Lookaside,
    queue: QueuePeer,
    mutex: MutexPeer,
    system: NdisDefault<System>,
    mimalloc: NdisDefault<mimalloc::MiMalloc>,
}

fn peers() -> Peers {
    Peers {
        pool: new_pool(),
        lookaside: Lookaside::new(),
        queue: QueuePeer(ArrayQueue::new(CAP)),
        mutex: MutexPeer(Mutex::new(Vec::with_capacity(CAP))),
        system: NdisDefault(&System),
        mimalloc: NdisDefault(&MIMALLOC),
    }
}

impl Peers {
    fn list(&self) -> [(&'static str, &dyn Peer); 6] {
        [
            ("pool", &self.pool),
            ("lookaside", &self.lookaside),
            ("arrayqueue", &self.queue),
            ("mutex_vec", &self.mutex),
            ("system_ndis", &self.system),
            ("mimalloc_ndis", &self.mimalloc),
        ]
    }

    fn release(self) -> Facts {
        self.lookaside.drain();
        while let Some(b) = self.queue.0.pop() {
            free_block(&System, b);
        }
        for b in self.mutex.0.lock().unwrap().drain(..) {
            free_block(&System, b);
        }
        let s = self.pool.0.snapshot();
        let f = Facts {
            in_flight_end: s.total.in_flight,
        };
        assert!(self.pool.0.destroy().in_flight_blocks == 0);
        f
    }
}

#[derive(Default, Debug)]
struct Facts {
    in_flight_end: u64,
}

fn bench(c: &mut Criterion) {
    pin(0);
    HostPlatform::bind_cpu(0);
    let peers = peers();
    let mut max_retained = 0u64;
    let cap = peers.pool.0.retention_cap_bytes();

    let mut interleaved_facts = String::new();
    std::thread::scope(|s| {
        let worker = Worker::spawn(s, 0);
        for (scenario, run) in [
            ("same_cpu", run_pairs as fn(&dyn Peer, u64) -> Duration),
            ("burst", run_burst),
        ] {
            let mut g = c.benchmark_group(format!("pool_{scenario}"));
            g.bench_function(BenchmarkId::from_parameter("floor"), |b| {
                worker.call(Floor::prime);
                b.iter_custom(|iters| worker.run(move || run(&Floor, iters)));
                worker.call(Floor::release);
            });
            for (name, p) in peers.list() {
                g.bench_function(BenchmarkId::from_parameter(name), |b| {
                    b.iter_custom(|iters| worker.run(move || run(p, iters)))
                });
            }
            g.finish();
            let peers = &peers;
            interleaved_facts.push_str(&worker.call(move || interleaved(scenario, peers, run)));
        }
    });
    max_retained = max_retained.max(peers.pool.0.snapshot().total.retained_bytes);

    let mut g = c.benchmark_group("pool_cross_cpu");
    g.bench_function(BenchmarkId::from_parameter("floor"), |b| {
        b.iter_custom(run_handoff_floor)
    });
    for (name, p) in peers.list() {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                let d = run_cross(p, iters);
                if name == "pool" {
                    max_retained = max_retained.max(peers.pool.0.snapshot().total.retained_bytes);
                }
                d
            })
        });
    }
    g.finish();

    let cs = peers.pool.0.snapshot();
    let cross_facts = format!(
        "pool_after_cross: allocates={} system_allocs={} allocate_misses={} free_misses={} depot_exchanges={}",
        cs.total.total_allocates,
        cs.total.system_allocs,
        cs.total.allocate_misses,
        cs.total.free_misses,
        cs.total.depot_gets + cs.total.depot_puts
    );

    let mut g = c.benchmark_group("pool_contended");
    g.bench_function(BenchmarkId::from_parameter("floor"), |b| {
        b.iter_custom(|iters| run_contended(&Floor, iters, true))
    });
    for (name, p) in peers.list() {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                let d = run_contended(p, iters, false);
                if name == "pool" {
                    max_retained = max_retained.max(peers.pool.0.snapshot().total.retained_bytes);
                }
                d
            })
        });
    }
    g.finish();

    HostPlatform::bind_cpu(0);
    let facts = peers.release();
    let trim = burst_trim_facts();
    let out = format!(
        "retention_cap_bytes={cap}\nmax_retained_bytes={max_retained}\nin_flight_end={}\n{cross_facts}\n{trim}{interleaved_facts}",
        facts.in_flight_end
    );
    println!("pool facts:\n{out}");
    let path = std::env::var("MDLPOOL_BENCH_FACTS")
        .unwrap_or_else(|_| format!("{}/pool-bench-facts.txt", env!("CARGO_TARGET_TMPDIR")));
    std::fs::write(&path, out).expect("write facts");
}

/// A burst larger than the caches on CPU 0, freed on CPU 1, then idle trims: retained memory before and
/// after, against the working-set bound and the cap.
fn burst_trim_facts() -> String {
    let pool = Pool::create(HostPlatform::new(2, false), &pool_config()).unwrap();
    let blocks: Vec<usize> = (0..4096).map(|_| pool.allocate(N) as usize).collect();
    HostPlatform::bind_cpu(1);
    for b in blocks {
        // SAFETY: in flight.
        let _ = unsafe { pool.free(b as *mut MDL) };
    }
    HostPlatform::bind_cpu(0);
    let before = pool.snapshot().total.retained_bytes;
    let t1 = pool.trim();
    let t2 = pool.trim();
    let after = pool.snapshot().total.retained_bytes;
    let out = format!(
        "burst_blocks=4096\nretained_after_burst_bytes={before}\ntrim1_released_bytes={}\ntrim2_released_bytes={}\nretained_after_idle_trim_bytes={after}\nworking_set_bound_bytes={}\nburst_pool_cap_bytes={}\n",
        t1.bytes,
        t2.bytes,
        pool.working_set_bound_bytes(),
        pool.retention_cap_bytes()
    );
    assert!(pool.destroy().is_clean());
    out
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1200))
        .without_plots()
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
