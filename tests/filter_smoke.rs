//! The simplest end-to-end run: exercise mode, one send and one receive, unload.
mod filter_common;
use filter_common::*;
use ndis_sim::NblShape;

#[test]
fn exercise_send_and_receive_round_trip() {
    let (sim, drv) = start(2);
    let nic = running_adapter(&sim, &[]);
    nic.send(&NblShape::default());
    assert_eq!(pool_in_flight(), 1);
    nic.indicate(&NblShape::default(), 0);
    nic.drain();
    let c = nic.counters();
    assert_eq!(c.wire_digest, c.proto_sent_digest);
    assert_eq!(c.proto_received_digest, c.mp_indicated_digest);
    assert_eq!(pool_in_flight(), 0);
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}

#[test]
fn the_trim_timer_runs_every_interval_and_stops_at_unload() {
    let (sim, drv) = start(2);
    let nic = running_adapter(&sim, &[]);
    nic.send(&NblShape {
        nbls: 8,
        ..NblShape::default()
    });
    nic.drain();
    let fired = sim.advance_clock(3_500);
    assert_eq!(fired, 3, "the 1000 ms timer fired {fired} times in 3.5 s");
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    // The simulator reports a timer still set or never freed at unload as a finding.
    sim.finish();
}

#[test]
fn the_driver_loads_without_a_trim_timer() {
    let (sim, drv) = {
        let sim = ndis_sim::Sim::start(ndis_sim::SimConfig::default());
        sim.inject(ndis_sim::AllocSite::Timer, ndis_sim::FaultRule::From(0));
        let drv = sim.load_driver(mdlpool::DriverEntry);
        (sim, drv)
    };
    let nic = running_adapter(&sim, &[]);
    nic.send(&NblShape::default());
    nic.drain();
    assert_eq!(sim.advance_clock(2_000), 0);
    nic.pause().unwrap();
    nic.detach();
    sim.unload(drv);
    sim.finish();
}
