//! Shared helpers of the data-path tests (`tests/filter_*.rs`): load mdlpool into ndis-sim, set a
//! module's configuration, re-install the pool with fault injection, read the pool and filter
//! statistics, and the expected frames of each transform.
#![allow(dead_code)]

use mdlpool::pool::{FaultConfig, PoolConfig};
use ndis_sim::{Adapter, AdapterConfig, ConfigValue, Driver, Sim, SimConfig, SimGuard};

/// Starts a simulation with `cpus` virtual CPUs and loads the driver.
pub fn start(cpus: usize) -> (SimGuard, Driver) {
    let sim = Sim::start(SimConfig {
        cpus,
        ..SimConfig::default()
    });
    let drv = sim.load_driver(mdlpool::DriverEntry);
    (sim, drv)
}

/// Adds an adapter whose module gets `config` (key, value) before attach; attaches and restarts it.
pub fn running_adapter(sim: &SimGuard, config: &[(&str, ConfigValue)]) -> Adapter {
    let nic = sim.add_adapter(AdapterConfig::default());
    for (k, v) in config {
        nic.set_config(k, v.clone());
    }
    nic.attach().expect("attach");
    nic.restart().expect("restart");
    nic
}

pub fn mode(m: &str) -> (&'static str, ConfigValue) {
    ("Mode", ConfigValue::Str(m.into()))
}

pub fn int(key: &'static str, v: u32) -> (&'static str, ConfigValue) {
    (key, ConfigValue::Int(v))
}

/// Replaces the installed pool by one with `fault` armed (only while no module is attached, so no
/// handler call can be running). The driver's DriverUnload destroys it as usual.
pub fn reinstall_pool_with_fault(fault: FaultConfig) {
    // SAFETY: (test) called before any module exists, so no NetAllocateMdl/NetFreeMdl can run.
    let report = unsafe { mdlpool::mdl_handlers::uninstall() }.expect("a pool was installed");
    assert!(report.is_clean());
    let cfg = PoolConfig {
        fault,
        ..mdlpool::driver::default_pool_config()
    };
    mdlpool::mdl_handlers::install(&cfg).expect("install");
}

/// Pool blocks in flight now.
pub fn pool_in_flight() -> u64 {
    mdlpool::mdl_handlers::snapshot()
        .map(|s| s.total.in_flight)
        .unwrap_or(0)
}

/// Pool blocks served so far (successful NetAllocateMdl calls).
pub fn pool_served() -> u64 {
    mdlpool::mdl_handlers::snapshot()
        .map(|s| s.total.served())
        .unwrap_or(0)
}

/// Foreign / double frees the pool saw.
pub fn pool_bad_frees() -> (u64, u64) {
    mdlpool::mdl_handlers::snapshot()
        .map(|s| (s.foreign_frees, s.double_frees))
        .unwrap_or((0, 0))
}

/// The filter's driver-wide statistics.
pub fn filter_stats() -> mdlpool::filter::FilterStatsSnapshot {
    mdlpool::filter::stats_totals()
}

/// The frame `f` with an 802.1Q tag (TPID 0x8100, `tci`) inserted after the addresses.
pub fn tagged(f: &[u8], tci: u16) -> Vec<u8> {
    let mut v = f[..12].to_vec();
    v.extend_from_slice(&[0x81, 0x00, (tci >> 8) as u8, tci as u8]);
    v.extend_from_slice(&f[12..]);
    v
}

/// The `NDIS_NET_BUFFER_LIST_8021Q_INFO` value for (priority, vlan id).
pub fn info(priority: u8, vlan_id: u16) -> usize {
    ndis_sys::NDIS_NET_BUFFER_LIST_8021Q_INFO::new(priority, 0, vlan_id).Value
}

/// The TCI for (priority, vlan id).
pub fn tci(priority: u8, vlan_id: u16) -> u16 {
    (priority as u16) << 13 | vlan_id
}

/// A decimal or `0x` hexadecimal value from the environment; a malformed value is an error, not the
/// default (a typo must not silently rerun the default seed).
pub fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Err(_) => default,
        Ok(v) => match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => v.parse(),
        }
        .unwrap_or_else(|e| panic!("{name}={v}: {e}")),
    }
}

/// References the attached modules hold (each module's outstanding count), summed.
pub fn module_references() -> i64 {
    let mut n = 0;
    mdlpool::filter::for_each_module(|m| n += m.outstanding());
    n
}
