//! PoolMagazineSize / PoolDepotLimit / PoolTrimIntervalMs take effect on the driver-wide pool when a
//! module attaches or restarts (`pool_service::apply_module_limits`), on ndis-sim: the depot limit bounds what
//! a burst leaves behind, the magazine fill sizes the magazines, the trim interval re-arms the trim
//! timer; the module attached/restarted last wins, with a once-only note when modules disagree and
//! when a value is above the pool's allocated room.
mod filter_common;
use filter_common::*;
use mdlpool::pool::{Limits, PoolSnapshot};
use ndis_sim::NblShape;

fn limits() -> Limits {
    mdlpool::mdl_handlers::installed()
        .expect("pool installed")
        .limits()
}

fn snap() -> PoolSnapshot {
    mdlpool::mdl_handlers::snapshot().expect("pool installed")
}

/// `n` single-NB sends in flight at once (one pool block each in exercise mode), then all completed:
/// every block is freed on the completing CPU (the pump runs on this thread's CPU 0).
fn burst(nic: &ndis_sim::Adapter, n: usize) {
    nic.send(&NblShape {
        nbls: n,
        frame_len: 60,
        ..NblShape::default()
    });
    assert_eq!(pool_in_flight(), n as u64);
    nic.drain();
    assert_eq!(pool_in_flight(), 0);
}

/// Lines of the per-test log containing `needle`.
fn log_lines(sim: &ndis_sim::SimGuard, needle: &str) -> usize {
    sim.log().iter().filter(|l| l.contains(needle)).count()
}

#[test]
fn defaults_are_in_force_without_keys() {
    let (sim, drv) = start(2);
    let nic = running_adapter(&sim, &[mode("exercise")]);
    assert_eq!(
        limits(),
        Limits {
            magazine_fill: 32,
            depot_limit: 64,
            trim_interval_ms: 1000
        }
    );
    burst(&nic, 600);
    let s = snap();
    // 600 blocks, all kept: CPU 0's previous magazine full (32), its loaded one with the last 24,
    // 17 full depot magazines of 32.
    assert_eq!(s.total.retained_blocks, 600);
    assert_eq!((s.total.depot_full, s.total.depot_blocks), (17, 17 * 32));
    assert_eq!(s.total.free_misses, 0);
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

#[test]
fn depot_limit_bounds_retention() {
    let (sim, drv) = start(2);
    let nic = running_adapter(&sim, &[mode("exercise"), int("PoolDepotLimit", 4)]);
    assert_eq!(limits().depot_limit, 4);
    assert_eq!(snap().depot_limit, 4);
    burst(&nic, 600);
    let s = snap();
    assert_eq!(s.total.depot_full, 4);
    assert_eq!(s.total.retained_blocks, 64 + 4 * 32);
    assert_eq!(s.total.free_misses, 600 - 64 - 4 * 32);
    // Lowered to 0 at the next restart: the depot is released at once and keeps nothing afterwards.
    nic.pause().unwrap();
    nic.set_config("PoolDepotLimit", ndis_sim::ConfigValue::Int(0));
    nic.restart().unwrap();
    let s = snap();
    assert_eq!((s.total.depot_full, s.total.retained_blocks), (0, 64));
    burst(&nic, 300);
    assert_eq!(snap().total.retained_blocks, 64);
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

#[test]
fn magazine_size_sizes_the_magazines() {
    let (sim, drv) = start(2);
    let nic = running_adapter(&sim, &[mode("exercise"), int("PoolMagazineSize", 8)]);
    assert_eq!(limits().magazine_fill, 8);
    assert_eq!(snap().magazine_size, 8);
    // The CPU's own pair takes the new fill at its first magazine exchange; after that (and a flush
    // of what was cached before), every magazine holds 8.
    burst(&nic, 100);
    mdlpool::mdl_handlers::installed().unwrap().flush();
    burst(&nic, 600);
    let s = snap();
    assert_eq!(s.total.depot_full, 64, "the default depot limit, full");
    assert_eq!(s.total.depot_blocks, 64 * 8);
    assert_eq!(s.total.retained_blocks, 2 * 8 + 64 * 8);
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

#[test]
fn trim_interval_changes_the_timer_period() {
    for (interval, trimmed_after_450ms) in [(None, false), (Some(200), true)] {
        let (sim, drv) = start(2);
        let mut keys = vec![mode("exercise")];
        if let Some(ms) = interval {
            keys.push(int("PoolTrimIntervalMs", ms));
        }
        let nic = running_adapter(&sim, &keys);
        assert_eq!(limits().trim_interval_ms, interval.unwrap_or(1000));
        burst(&nic, 600);
        assert!(snap().total.depot_blocks > 0);
        // Idle: with a 200 ms timer, the tick at 200 ms measures the interval and the one at 400 ms
        // releases the unused depot; the default 1000 ms timer has not fired yet.
        sim.advance_clock(450);
        let s = snap();
        assert_eq!(s.total.trimmed > 0, trimmed_after_450ms, "{interval:?}");
        assert_eq!(
            s.total.depot_blocks == 0,
            trimmed_after_450ms,
            "{interval:?}"
        );
        nic.pause().unwrap();
        nic.detach();
        sim.unload(drv);
        sim.finish();
    }
}

#[test]
fn the_module_started_last_wins_and_disagreement_is_noted_once() {
    let (sim, drv) = start(2);
    let note = "pool keys differ between modules";
    let a = running_adapter(&sim, &[mode("exercise"), int("PoolDepotLimit", 0)]);
    assert_eq!(limits().depot_limit, 0);
    let b = running_adapter(&sim, &[mode("exercise"), int("PoolDepotLimit", 10)]);
    assert_eq!(limits().depot_limit, 10, "b attached/restarted last");
    assert_eq!(log_lines(&sim, note), 1);
    a.pause().unwrap();
    a.restart().unwrap();
    assert_eq!(limits().depot_limit, 0, "a restarted last");
    assert_eq!(log_lines(&sim, note), 1, "once only");
    // A module restarting with its own unchanged values is no disagreement.
    for nic in [&a, &b] {
        nic.pause().unwrap();
        nic.detach();
    }
    sim.unload(drv);
    sim.finish();
}

#[test]
fn values_above_the_allocated_room_are_clamped_and_noted() {
    let (sim, drv) = start(2);
    let nic = running_adapter(
        &sim,
        &[
            mode("exercise"),
            int("PoolMagazineSize", 256),
            int("PoolDepotLimit", 4096),
        ],
    );
    let l = limits();
    assert_eq!(
        (l.magazine_fill, l.depot_limit),
        (
            mdlpool::driver::POOL_MAGAZINE_CAPACITY,
            mdlpool::driver::POOL_DEPOT_CAPACITY
        )
    );
    assert_eq!(log_lines(&sim, "above the pool's room"), 1);
    nic.pause().unwrap();
    nic.restart().unwrap();
    assert_eq!(log_lines(&sim, "above the pool's room"), 1, "once only");
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}
