//! The configuration in force for every value driver.inx itself declares, written the way the INF
//! declares it. The INF's `FilterAdapterParams\<key>` entries are Ndi params (`type` enum or dword,
//! `default`, `min`, `max`, `enum` values); such values are stored as REG_SZ text (the Advanced
//! property page and the class installer write strings), so each is written here as
//! `ConfigValue::Str`. The test reads the keys, types and values from driver.inx (through xtask's INF
//! reader), so a key added to or changed in the INF is tested without editing this file — and a key
//! the test does not know how to observe fails it.
//!
//! Each value is checked under both documented readings of NdisReadConfiguration that ndis-sim
//! implements (`ndis_sim::ConfigReads`): the requested type honoured, a REG_SZ read as an integer
//! converted like RtlUnicodeStringToInteger (a name such as `vlan` is then 0); and the requested type
//! ignored, a REG_SZ coming back as an integer only when numeric, else as a string with its NUL.
mod filter_common;
#[allow(dead_code)]
#[path = "../xtask/src/inf.rs"]
mod inf;

use filter_common::*;
use mdlpool::transform::Mode;
use ndis_sim::{set_config_reads, AdapterConfig, ConfigReads, ConfigValue};

/// Every `FilterAdapterParams\<key>` Ndi param of driver.inx, in file order.
fn inf_params() -> Vec<inf::NdiParam> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/driver.inx"))
        .expect("driver.inx");
    let parsed = inf::Inf::parse(&text).expect("driver.inx parses");
    let params = inf::ndi_params(&parsed.sections, "FilterAdapterParams");
    assert!(
        params.len() >= 9,
        "driver.inx declares the keys: {params:#?}"
    );
    params
}

/// The configuration in force, as (key, value) text, for the one attached module.
fn in_force() -> Vec<(&'static str, String)> {
    let mut cfg = None;
    mdlpool::filter::for_each_module(|m| cfg = Some(m.config.load()));
    let cfg = cfg.expect("one module attached");
    let limits = mdlpool::mdl_handlers::installed()
        .expect("pool installed")
        .limits();
    // Spelled out here, not taken from the driver's key table, so that a table whose value order
    // disagreed with `Mode`'s discriminants would fail this test.
    let mode = match cfg.mode {
        Mode::Exercise => "exercise",
        Mode::Vlan => "vlan",
        Mode::Passthrough => "passthrough",
    };
    let mut trim = 0;
    mdlpool::filter::for_each_module(|m| {
        trim = m
            .pool_trim_interval_ms
            .load(std::sync::atomic::Ordering::Relaxed)
    });
    vec![
        ("Mode", mode.to_string()),
        ("ExerciseBytes", cfg.exercise_bytes.to_string()),
        ("ExerciseBackfill", cfg.exercise_backfill.to_string()),
        ("VlanId", cfg.vlan_id.to_string()),
        ("VlanPriority", cfg.vlan_priority.to_string()),
        (
            "VlanReceiveInline",
            (cfg.vlan_receive_inline as u32).to_string(),
        ),
        ("PoolMagazineSize", limits.magazine_fill.to_string()),
        ("PoolDepotLimit", limits.depot_limit.to_string()),
        ("PoolTrimIntervalMs", trim.to_string()),
    ]
}

/// What the module must show for `key` = `value`: the value itself, except that the pool keys are
/// clamped to the room the pool allocated (README "Configuration").
fn expected(key: &str, value: &str) -> String {
    let n = || value.parse::<u32>().expect("numeric INF value");
    match key {
        "PoolMagazineSize" => n().min(mdlpool::driver::POOL_MAGAZINE_CAPACITY).to_string(),
        "PoolDepotLimit" => n().min(mdlpool::driver::POOL_DEPOT_CAPACITY).to_string(),
        _ => value.to_string(),
    }
}

fn run(reads: ConfigReads) {
    let params = inf_params();
    let (sim, drv) = start(1);
    set_config_reads(reads);
    for p in &params {
        let values: Vec<String> = match p.ty.as_str() {
            "enum" => {
                assert!(!p.enums.is_empty(), "{}: enum without values", p.name);
                assert!(
                    p.enums.contains(&p.default),
                    "{}: default not an enum value",
                    p.name
                );
                p.enums.clone()
            }
            "dword" | "int" | "word" | "long" => {
                let mut v = vec![p.default.clone()];
                v.extend(p.min.clone());
                v.extend(p.max.clone());
                v
            }
            other => panic!("{}: INF type {other:?} not covered by this test", p.name),
        };
        for value in values {
            let before = filter_stats().config_bad_values;
            let nic = sim.add_adapter(AdapterConfig::default());
            nic.set_config(&p.name, ConfigValue::Str(value.clone()));
            nic.attach().expect("attach");
            nic.restart().expect("restart");
            let force = in_force();
            let got = force
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&p.name))
                .unwrap_or_else(|| panic!("the test cannot observe INF key {}", p.name));
            assert_eq!(
                got.1,
                expected(&p.name, &value),
                "{reads:?}: {} = {value:?} (REG_SZ) is not the value in force",
                p.name
            );
            assert_eq!(
                filter_stats().config_bad_values,
                before,
                "{reads:?}: {} = {value:?} (REG_SZ) counted as a bad value",
                p.name
            );
            nic.pause().unwrap();
            nic.detach();
        }
    }
    sim.unload(drv);
    sim.finish();
}

#[test]
fn every_inf_value_as_the_inf_writes_it_is_in_force_when_ndis_honours_the_requested_type() {
    run(ConfigReads::AsRequested);
}

#[test]
fn every_inf_value_as_the_inf_writes_it_is_in_force_when_ndis_ignores_the_requested_type() {
    run(ConfigReads::ByValue);
}
