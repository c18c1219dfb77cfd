//! Virtual CPUs and IRQL: the bottom of the simulated machine.
//!
//! A virtual CPU is an index `0..cpus`. Every host thread is bound to one (default 0; runner threads
//! bind themselves with [`bind_thread_to_cpu`]) and has its own IRQL. Raising from below DISPATCH_LEVEL
//! to DISPATCH_LEVEL or above takes the CPU's *dispatch ownership*, which only one thread can hold at a
//! time: code at DISPATCH_LEVEL on CPU k therefore runs exclusively on CPU k, which is exactly the
//! guarantee per-CPU data relies on in the kernel, while PASSIVE_LEVEL code on one CPU may interleave.
//!
//! Layer 1, the bottom: owns the per-thread CPU/IRQL state; imports nothing of the crate, reports
//! nothing (the IRQL checks that report are in [`crate::verifier`], which imports this module) and
//! calls no driver code.

use ndis_sys::*;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Most virtual CPUs a simulation can have.
pub const MAX_CPUS: usize = 256;

static CPU_COUNT: AtomicUsize = AtomicUsize::new(1);
static CPUS_PER_GROUP: AtomicUsize = AtomicUsize::new(64);
static DETERMINISTIC: AtomicBool = AtomicBool::new(false);
static NEXT_TOKEN: AtomicUsize = AtomicUsize::new(1);
static OWNERS: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];

thread_local! {
    static CPU: Cell<usize> = const { Cell::new(0) };
    static IRQL: Cell<KIRQL> = const { Cell::new(PASSIVE_LEVEL) };
    static TOKEN: usize = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn configure(cpus: usize, per_group: usize, deterministic: bool) {
    assert!(
        (1..=MAX_CPUS).contains(&cpus),
        "cpus must be 1..={MAX_CPUS}"
    );
    assert!(
        (1..=64).contains(&per_group),
        "cpus_per_group must be 1..=64"
    );
    CPU_COUNT.store(cpus, Ordering::SeqCst);
    CPUS_PER_GROUP.store(per_group, Ordering::SeqCst);
    DETERMINISTIC.store(deterministic, Ordering::SeqCst);
    for o in OWNERS.iter() {
        o.store(0, Ordering::SeqCst);
    }
    CPU.with(|c| c.set(0));
    IRQL.with(|i| i.set(PASSIVE_LEVEL));
}

/// Number of virtual CPUs of the running simulation.
pub fn cpu_count() -> usize {
    CPU_COUNT.load(Ordering::Relaxed)
}

/// The virtual CPU the calling thread runs on.
pub fn current_cpu() -> usize {
    CPU.with(|c| c.get())
}

/// The calling thread's current IRQL.
pub fn current_irql() -> KIRQL {
    IRQL.with(|i| i.get())
}

/// Binds the calling thread to virtual CPU `cpu`. The thread must be below DISPATCH_LEVEL (a thread
/// at DISPATCH_LEVEL is pinned, as in the kernel).
pub fn bind_thread_to_cpu(cpu: usize) {
    assert!(
        cpu < cpu_count(),
        "virtual CPU {cpu} does not exist ({} configured)",
        cpu_count()
    );
    assert!(
        current_irql() < DISPATCH_LEVEL,
        "cannot migrate a thread at DISPATCH_LEVEL"
    );
    CPU.with(|c| c.set(cpu));
}

fn token() -> usize {
    TOKEN.with(|t| *t)
}

fn acquire_cpu(cpu: usize) {
    let me = token();
    let slot = &OWNERS[cpu];
    let mut spins: u64 = 0;
    let mut since: Option<Instant> = None;
    loop {
        match slot.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return,
            Err(owner) if owner == me => return,
            Err(_) => {}
        }
        if DETERMINISTIC.load(Ordering::Relaxed) {
            eprintln!("ndis-sim: virtual CPU {cpu} is held at DISPATCH_LEVEL by another thread in deterministic mode; aborting");
            std::process::abort();
        }
        spins += 1;
        if spins.is_multiple_of(1024) {
            // A diagnostic, not an assertion: a thread stuck this long means a lost lower.
            let t = *since.get_or_insert_with(Instant::now);
            if t.elapsed() > Duration::from_secs(120) {
                eprintln!(
                    "ndis-sim: virtual CPU {cpu} dispatch ownership never released; aborting"
                );
                std::process::abort();
            }
        }
        std::thread::yield_now();
    }
}

fn release_cpu(cpu: usize) {
    let _ = OWNERS[cpu].compare_exchange(token(), 0, Ordering::Release, Ordering::Relaxed);
}

/// Sets the calling thread's IRQL, taking or releasing its CPU's dispatch ownership on a crossing.
pub fn set_irql(new: KIRQL) {
    let old = current_irql();
    let cpu = current_cpu();
    if old < DISPATCH_LEVEL && new >= DISPATCH_LEVEL {
        acquire_cpu(cpu);
    } else if old >= DISPATCH_LEVEL && new < DISPATCH_LEVEL {
        release_cpu(cpu);
    }
    IRQL.with(|i| i.set(new));
}

/// Runs `f` at `irql` (raising or lowering as needed) and restores the previous IRQL afterwards.
pub fn at_irql<R>(irql: KIRQL, f: impl FnOnce() -> R) -> R {
    let old = current_irql();
    set_irql(irql);
    let r = f();
    set_irql(old);
    r
}

/// Runs `f` as if on another virtual CPU: the calling thread's CPU and IRQL are switched to `cpu` at
/// `irql` (taking `cpu`'s dispatch ownership when `irql` >= DISPATCH_LEVEL) and put back afterwards,
/// without lowering the caller's own IRQL or giving up its CPU. The deterministic interleaving
/// ([`crate::race`]) uses it to run an event of another CPU at a preemption point inside a driver
/// call; a test filter can use it to act "from another CPU" at a chosen point. `cpu` must differ
/// from the caller's CPU.
pub fn on_other_cpu<R>(cpu: usize, irql: KIRQL, f: impl FnOnce() -> R) -> R {
    let (old_cpu, old_irql) = (current_cpu(), current_irql());
    assert_ne!(cpu, old_cpu, "on_other_cpu needs another CPU");
    CPU.with(|c| c.set(cpu));
    IRQL.with(|i| i.set(PASSIVE_LEVEL));
    set_irql(irql);
    let r = f();
    set_irql(PASSIVE_LEVEL);
    CPU.with(|c| c.set(old_cpu));
    IRQL.with(|i| i.set(old_irql));
    r
}

/// Whether the simulation runs in deterministic mode.
pub(crate) fn deterministic() -> bool {
    DETERMINISTIC.load(Ordering::Relaxed)
}

/// CPUs per processor group (KeGetCurrentProcessorNumberEx's Group/Number split).
pub(crate) fn cpus_per_group() -> usize {
    CPUS_PER_GROUP.load(Ordering::Relaxed)
}
