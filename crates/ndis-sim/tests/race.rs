//! The proof that ndis-sim's concurrent lifecycle ([`Lifecycle::Concurrent`], `src/race.rs`) reaches
//! interleavings the serialised one cannot: a filter that counts its receives as outstanding only
//! after passing them up (`common/racy_lwf.rs`) passes every cycle under the serialised simulator
//! and is caught by the concurrent one, on threads and under the seeded deterministic schedule; the
//! same filter without the bug passes both. A race the schedule finds replays exactly from its seed.
#![cfg(not(miri))]

#[path = "common/racy_lwf.rs"]
mod racy_lwf;

use ndis_sim::churn::Churn;
use ndis_sim::{rules, AdapterConfig, Lifecycle, NblShape, Sim, SimConfig, SimGuard, Traffic};
use std::sync::atomic::Ordering;

fn traffic(r: u64) -> Traffic {
    Traffic {
        steps_per_cpu: 12,
        send: NblShape {
            nbls: 1,
            ..NblShape::default()
        },
        receive: NblShape {
            nbls: 1 + (r % 2) as usize,
            ..NblShape::default()
        },
        resources_one_in: 4,
        seed: r,
        ..Traffic::default()
    }
}

/// Threaded: a traffic thread on every CPU, while this thread pauses and restarts the module
/// `cycles` times (stopping early once something was found). Returns the distinct rules that fired.
fn threaded_cycles(lifecycle: Lifecycle, racy: bool, cycles: u64) -> (SimGuard, Vec<&'static str>) {
    let sim = Sim::start(SimConfig {
        cpus: 2,
        lifecycle,
        ..SimConfig::default()
    });
    // Set under the simulation's session lock (tests of this binary run one at a time from here).
    racy_lwf::RACY.store(racy, Ordering::SeqCst);
    let drv = sim.load_driver(racy_lwf::DriverEntry);
    let nic = sim.add_adapter(AdapterConfig::default());
    nic.attach().unwrap();
    nic.restart().unwrap();
    let churn = Churn::new(&sim, &nic, cycles, 0);
    let no_control: Option<fn(u64)> = None;
    churn.on_threads(traffic, no_control, |_, _, _paused| {
        sim.findings().is_empty()
    });
    nic.drain();
    if nic.state() == ndis_sim::ModuleState::Running {
        let _ = nic.pause();
    }
    nic.detach();
    sim.unload(drv);
    let mut fired: Vec<&'static str> = sim.findings().iter().map(|f| f.rule).collect();
    fired.sort_unstable();
    fired.dedup();
    (sim, fired)
}

const RACE_RULES: [&str; 2] = [rules::STATE_FORBIDS_RECEIVE, rules::PAUSE_WITH_OUTSTANDING];

#[test]
fn racy_filter_passes_the_serialised_simulator_on_threads() {
    let (sim, fired) = threaded_cycles(Lifecycle::Serialised, true, 400);
    assert!(fired.is_empty(), "{fired:?}");
    sim.finish();
}

/// A thread race: it catches the bug in most runs (usually within a few cycles) but not in every
/// one, so it is not part of the CI suite; the seeded-schedule test below is the deterministic proof.
/// `cargo test -p ndis-sim --test race -- --ignored` runs it.
#[test]
#[ignore = "thread timing: catches the race in most runs, not all (the seeded test is deterministic)"]
fn racy_filter_is_caught_by_the_concurrent_simulator_on_threads() {
    // A thread race: give it many cycles; it stops at the first finding (usually within a few).
    let (sim, fired) = threaded_cycles(Lifecycle::Concurrent, true, 20_000);
    eprintln!("concurrent, threads: {fired:?}");
    assert!(
        fired.iter().any(|r| RACE_RULES.contains(r)),
        "the race was never caught: {fired:?}"
    );
    for r in fired {
        sim.expect_finding(r);
    }
    sim.finish();
}

#[test]
fn the_correct_filter_passes_the_concurrent_simulator_on_threads() {
    let (sim, fired) = threaded_cycles(Lifecycle::Concurrent, false, 400);
    assert!(fired.is_empty(), "{fired:?}");
    sim.finish();
}

/// Deterministic: one thread, the schedule from `seed` (interleaving on or off). Returns the rules
/// that fired (in order, with the CPU) and the schedule's log lines.
fn seeded_cycles(
    lifecycle: Lifecycle,
    racy: bool,
    seed: u64,
    cycles: u64,
) -> (Vec<(&'static str, usize)>, Vec<String>) {
    let sim = Sim::start(SimConfig {
        cpus: 2,
        deterministic: true,
        seed,
        lifecycle,
        interleave_one_in: if lifecycle == Lifecycle::Concurrent {
            2
        } else {
            0
        },
        ..SimConfig::default()
    });
    racy_lwf::RACY.store(racy, Ordering::SeqCst);
    let drv = sim.load_driver(racy_lwf::DriverEntry);
    let nic = sim.add_adapter(AdapterConfig::default());
    nic.attach().unwrap();
    nic.restart().unwrap();
    for c in 0..cycles {
        sim.run_traffic(&nic, &traffic(seed ^ c));
        let _ = nic.pause();
        if !sim.findings().is_empty() {
            break;
        }
        nic.restart().unwrap();
    }
    nic.drain();
    if nic.state() == ndis_sim::ModuleState::Running {
        let _ = nic.pause();
    }
    nic.detach();
    sim.unload(drv);
    let found: Vec<(&'static str, usize)> =
        sim.findings().iter().map(|f| (f.rule, f.cpu)).collect();
    let sched: Vec<String> = sim
        .log()
        .into_iter()
        .filter(|l| l.starts_with("[sched]") || l.starts_with("[verifier]"))
        .map(|l| {
            // Addresses differ between runs; the rest must not.
            l.split("object=").next().unwrap_or_default().to_string()
        })
        .collect();
    let mut rules_fired: Vec<&'static str> = found.iter().map(|f| f.0).collect();
    rules_fired.sort_unstable();
    rules_fired.dedup();
    for r in rules_fired {
        sim.expect_finding(r);
    }
    sim.finish();
    (found, sched)
}

#[test]
fn the_seeded_schedule_catches_the_racy_filter_and_replays_it_exactly() {
    let mut caught = None;
    for seed in 1..=64u64 {
        let (found, sched) = seeded_cycles(Lifecycle::Concurrent, true, seed, 60);
        if found.iter().any(|f| RACE_RULES.contains(&f.0)) {
            caught = Some((seed, found, sched));
            break;
        }
    }
    let (seed, found, sched) = caught.expect("no seed in 1..=64 caught the race");
    eprintln!("seed {seed:#x} caught it: {found:?}");
    let again = seeded_cycles(Lifecycle::Concurrent, true, seed, 60);
    assert_eq!(again.0, found, "same seed, same findings");
    assert_eq!(again.1, sched, "same seed, same schedule");
    // The same seed without the interleaving (the serialised simulator): nothing to find.
    let (serial, _) = seeded_cycles(Lifecycle::Serialised, true, seed, 60);
    assert!(serial.is_empty(), "{serial:?}");
}

#[test]
fn the_correct_filter_passes_the_seeded_schedule() {
    for seed in 1..=16u64 {
        let (found, _) = seeded_cycles(Lifecycle::Concurrent, false, seed, 40);
        assert!(found.is_empty(), "seed {seed}: {found:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Where the line is (src/race.rs): a send NDIS issued before the pause completed and passed on
// unchanged after it raced the transition legitimately; changed, or issued after, it did not.

/// A module whose FilterPause pends, with the protocol sending one NBL while it is Pausing (the
/// pause-hold flow), in serialised or concurrent mode.
fn pausing_send(
    lifecycle: Lifecycle,
    send_mode: u32,
) -> (SimGuard, ndis_sim::Adapter, ndis_sim::Driver) {
    let sim = Sim::start(SimConfig {
        cpus: 2,
        lifecycle,
        ..SimConfig::default()
    });
    racy_lwf::RACY.store(false, Ordering::SeqCst);
    racy_lwf::SEND_MODE.store(send_mode, Ordering::SeqCst);
    let drv = sim.load_driver(racy_lwf::DriverEntry);
    let nic = sim.add_adapter(AdapterConfig {
        pause_hold: Some(ndis_sim::PauseHold {
            sends_while_pausing: Some(NblShape::default()),
            ..ndis_sim::PauseHold::default()
        }),
        ..AdapterConfig::default()
    });
    nic.attach().unwrap();
    nic.restart().unwrap();
    (sim, nic, drv)
}

fn end(sim: SimGuard, nic: ndis_sim::Adapter, drv: ndis_sim::Driver) {
    nic.drain();
    nic.detach();
    sim.unload(drv);
    racy_lwf::SEND_MODE.store(racy_lwf::SEND_NORMAL, Ordering::SeqCst);
    sim.finish();
}

#[test]
fn a_send_issued_before_the_pause_completed_and_passed_on_unchanged_raced_legitimately() {
    for lifecycle in [Lifecycle::Serialised, Lifecycle::Concurrent] {
        let (sim, nic, drv) = pausing_send(lifecycle, racy_lwf::SEND_RACE_UNCHANGED);
        nic.pause().unwrap();
        let r = nic.pause_record();
        assert_eq!((r.sent_while_pausing, r.completes), (1, 1), "{r:?}");
        assert_eq!(r.complete_cpu, Some(1), "completed from the other CPU");
        assert_eq!(
            nic.counters().wire_nbls,
            1,
            "forwarded after the pause completed"
        );
        assert!(
            sim.findings().is_empty(),
            "{lifecycle:?}: {:?}",
            sim.findings()
        );
        end(sim, nic, drv);
    }
}

#[test]
fn a_send_issued_before_the_pause_completed_but_changed_after_it_is_state_forbids_send() {
    let (sim, nic, drv) = pausing_send(Lifecycle::Concurrent, racy_lwf::SEND_RACE_CHANGED);
    sim.expect_finding(rules::STATE_FORBIDS_SEND);
    // The test filter's change is a retreat with NDIS's default allocator, which leaves the MAC
    // header across the new MDL and the protocol's (vlan's MAC_HEADER_SPLIT); not this test's point.
    sim.expect_finding(rules::MAC_HEADER_SPLIT);
    nic.pause().unwrap();
    assert_eq!(
        sim.finding_count(rules::STATE_FORBIDS_SEND),
        1,
        "{:?}",
        sim.findings()
    );
    end(sim, nic, drv);
}

#[test]
fn a_send_issued_after_the_pause_completed_is_state_forbids_send() {
    let sim = Sim::start(SimConfig {
        cpus: 2,
        lifecycle: Lifecycle::Concurrent,
        ..SimConfig::default()
    });
    racy_lwf::RACY.store(false, Ordering::SeqCst);
    racy_lwf::SEND_MODE.store(racy_lwf::SEND_ALWAYS_FORWARD, Ordering::SeqCst);
    let drv = sim.load_driver(racy_lwf::DriverEntry);
    let nic = sim.add_adapter(AdapterConfig::default());
    nic.attach().unwrap();
    nic.restart().unwrap();
    nic.pause().unwrap();
    assert!(sim.findings().is_empty(), "{:?}", sim.findings());
    // NDIS hands the Paused module a send (the harness's explicit call): forwarding it, even
    // unchanged, is on the wrong side of the line.
    sim.expect_finding(rules::STATE_FORBIDS_SEND);
    nic.send(&NblShape::default());
    assert_eq!(sim.finding_count(rules::STATE_FORBIDS_SEND), 1);
    end(sim, nic, drv);
}
