//! The lifecycle churn the tests of a filter drive (mdlpool's `tests/filter_churn.rs` and
//! `tests/filter_race.rs`, sysrun's `tests/race.rs` with the shipped image, this crate's
//! `tests/race.rs` with its test filter): cycles of pause → what the test does while the module is
//! paused → restart, with traffic in between, on threads or under the seeded schedule. What a test
//! checks at each pause, how it reconfigures and what traffic it sends stay in the test; this module
//! owns only the loop, so every churn keeps the same order of calls.
//!
//! Owns: the cycle loop, its random number (`splitmix64` from the seed, one step a cycle) and the
//! threads. Must not: check anything itself or name a driver.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::fault::splitmix64;
use crate::LifecycleError;
use crate::{kernel, Adapter, SimGuard, Traffic};

/// One churn over an attached, running module.
pub struct Churn<'a> {
    pub sim: &'a SimGuard,
    pub nic: &'a Adapter,
    /// Pause/restart cycles.
    pub cycles: u64,
    /// The first state of the cycles' random number: cycle `n` sees `splitmix64` applied `n + 1`
    /// times to it.
    pub seed: u64,
}

/// What [`Churn::on_threads`] counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadedRun {
    /// Traffic rounds the traffic thread completed.
    pub rounds: u64,
    /// Events the control thread ran (0 without one).
    pub control_events: u64,
}

impl<'a> Churn<'a> {
    pub fn new(sim: &'a SimGuard, nic: &'a Adapter, cycles: u64, seed: u64) -> Self {
        Churn {
            sim,
            nic,
            cycles,
            seed,
        }
    }

    /// On threads: a thread runs `traffic(r)` for rounds `r = 1, 2, ...` on every virtual CPU; with
    /// `control`, another thread bound to CPU 1 runs `control(k)` for `k = 1, 2, ...` (OIDs, status
    /// indications, clock ticks), yielding after each. This thread, for each cycle: pauses, hands
    /// `at_pause(cycle, rng, outcome of the pause)` the paused module (stop the churn by returning
    /// false), restarts, and waits until the traffic thread completed one more round.
    pub fn on_threads<T, C, P>(
        &self,
        traffic: T,
        control: Option<C>,
        mut at_pause: P,
    ) -> ThreadedRun
    where
        T: Fn(u64) -> Traffic + Sync,
        C: Fn(u64) + Send,
        P: FnMut(u64, u64, Result<(), LifecycleError>) -> bool,
    {
        let (sim, nic) = (self.sim, self.nic);
        let stop = AtomicBool::new(false);
        let rounds = AtomicU64::new(0);
        let events = AtomicU64::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut r = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    r += 1;
                    sim.run_traffic(nic, &traffic(r));
                    rounds.store(r, Ordering::Relaxed);
                }
            });
            if let Some(control) = control {
                let (stop, events) = (&stop, &events);
                s.spawn(move || {
                    kernel::bind_thread_to_cpu(1);
                    let mut k = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        k += 1;
                        control(k);
                        events.store(k, Ordering::Relaxed);
                        std::thread::yield_now();
                    }
                });
            }
            let mut rng = self.seed;
            for cycle in 0..self.cycles {
                rng = splitmix64(rng);
                if !at_pause(cycle, rng, nic.pause()) {
                    break;
                }
                nic.restart().unwrap();
                // Let traffic run against the running module before the next pause.
                let seen = rounds.load(Ordering::Relaxed);
                while rounds.load(Ordering::Relaxed) < seen + 1 {
                    std::thread::yield_now();
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
        ThreadedRun {
            rounds: rounds.load(Ordering::Relaxed),
            control_events: events.load(Ordering::Relaxed),
        }
    }

    /// On this thread (with [`crate::SimConfig::deterministic`], the seeded schedule): for each
    /// cycle, runs `traffic(rng)`, then `before_pause(cycle, rng)` (OIDs on the running module),
    /// pauses, hands `at_pause(cycle, rng, outcome of the pause)` the paused module (stop the churn
    /// by returning false) and restarts.
    pub fn seeded<T, B, P>(&self, traffic: T, mut before_pause: B, mut at_pause: P)
    where
        T: Fn(u64) -> Traffic,
        B: FnMut(u64, u64),
        P: FnMut(u64, u64, Result<(), LifecycleError>) -> bool,
    {
        let mut rng = self.seed;
        for cycle in 0..self.cycles {
            rng = splitmix64(rng);
            self.sim.run_traffic(self.nic, &traffic(rng));
            before_pause(cycle, rng);
            if !at_pause(cycle, rng, self.nic.pause()) {
                break;
            }
            self.nic.restart().unwrap();
        }
    }
}
