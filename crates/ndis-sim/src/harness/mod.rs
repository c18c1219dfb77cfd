//! The harness a test drives (layer 5): [`Sim`] starts a simulation and resets every table,
//! [`SimGuard`] holds it (fault injection, findings, the clock, the final report); drivers are
//! loaded and unloaded in `driver.rs`, adapters driven in `adapter.rs`, traffic run in
//! `traffic.rs`.

use crate::abi::{self, Abi};
use crate::mapping;
use crate::verifier::rules;
use crate::{clock, configuration, fault, flows, kernel, mem, nbl, outstanding, race, stack};
use crate::{timers, verifier, wire};
use crate::{AdapterConfig, ConfigValue, Counters, Finding, Frame, LifecycleError, ModuleState};
use crate::{AllocSite, FaultRule, Lifecycle, NblShape, PauseRecord};
use ndis_sys::*;
use std::sync::{Mutex, MutexGuard};

mod adapter;
mod driver;
mod traffic;

pub use adapter::Adapter;
pub use driver::Driver;
pub use traffic::Traffic;

/// `NDIS_STATUS_RESET_START` status indication (ndis.h).
pub const NDIS_STATUS_RESET_START: NDIS_STATUS = 0x4001_0004;
/// `NDIS_STATUS_RESET_END` status indication (ndis.h).
pub const NDIS_STATUS_RESET_END: NDIS_STATUS = 0x4001_0005;

/// How a simulation is set up.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Virtual CPUs (1..=256).
    pub cpus: usize,
    /// CPUs per processor group (KeGetCurrentProcessorNumberEx's Group/Number split), 1..=64.
    pub cpus_per_group: usize,
    /// One thread, seeded schedule (Miri and reproducible failures).
    pub deterministic: bool,
    /// Seed of the deterministic schedule and of completion-order shuffles.
    pub seed: u64,
    /// What NdisGetVersion reports.
    pub ndis_version: u32,
    /// Echo the log and findings to stderr as they happen.
    pub echo: bool,
    /// Whether lifecycle calls, OIDs, status/PnP and clock advances race traffic as on a real
    /// machine (the default, [`Lifecycle::Concurrent`]) or are serialised against it (the original
    /// simulator, [`Lifecycle::Serialised`]); see [`race`].
    pub lifecycle: Lifecycle,
    /// Deterministic mode with [`Lifecycle::Concurrent`] only: at each preemption point one in this
    /// many draws of the seeded schedule runs another CPU's event there (0 = never; see [`race`]).
    pub interleave_one_in: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            cpus: 2,
            cpus_per_group: 64,
            deterministic: false,
            seed: 0x5EED,
            ndis_version: NDIS_RUNTIME_VERSION_689,
            echo: std::env::var_os("NDIS_SIM_ECHO").is_some(),
            lifecycle: Lifecycle::default(),
            interleave_one_in: 0,
        }
    }
}

static SESSION: Mutex<()> = Mutex::new(());

/// The simulation entry point.
pub struct Sim;

impl Sim {
    /// Starts a simulation: takes the process-wide lock (tests in one binary serialise), resets every
    /// table, configures the virtual CPUs. The calling thread becomes virtual CPU 0 at PASSIVE_LEVEL.
    pub fn start(config: SimConfig) -> SimGuard {
        let lock = SESSION.lock().unwrap_or_else(|e| e.into_inner());
        // A previous test that panicked may have left objects behind; drop them first.
        teardown_all();
        kernel::configure(config.cpus, config.cpus_per_group, config.deterministic);
        race::configure(config.lifecycle, config.interleave_one_in, config.seed);
        verifier::reset(config.echo);
        fault::reset();
        nbl::reset();
        clock::reset();
        timers::reset();
        configuration::reset();
        mapping::reset();
        stack::reset(config.ndis_version);
        flows::install();
        SimGuard {
            _lock: Some(lock),
            config,
            finished: false,
            drivers: Mutex::new(Vec::new()),
        }
    }
}

fn teardown_all() {
    stack::teardown();
    timers::free_all();
    configuration::free_all();
    nbl::reset();
    mem::free_all();
    flows::lifecycle::free_attach_strings();
}

/// What [`SimGuard::finish`] found.
#[derive(Clone, Debug)]
pub struct Report {
    /// Every finding, expected or not.
    pub findings: Vec<Finding>,
    /// The per-test log (DbgPrintEx lines, lifecycle, findings, injected faults).
    pub log: Vec<String>,
}

/// A running simulation; dropping it without [`finish`](SimGuard::finish) still checks (unless the
/// thread is already panicking).
pub struct SimGuard {
    _lock: Option<MutexGuard<'static, ()>>,
    config: SimConfig,
    finished: bool,
    drivers: Mutex<Vec<(usize, Abi, bool)>>,
}

impl SimGuard {
    /// The configuration this simulation started with.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Arms fault injection on an allocation routine.
    pub fn inject(&self, site: AllocSite, rule: FaultRule) {
        fault::arm(site, rule);
    }

    /// Disarms every rule of a site.
    pub fn clear_injection(&self, site: AllocSite) {
        fault::disarm(site);
    }

    /// (calls, injected failures) of an allocation routine so far.
    pub fn alloc_stats(&self, site: AllocSite) -> (u64, u64) {
        fault::stats(site)
    }

    /// Announces that this test provokes `rule`: its findings do not fail `finish`, and `finish`
    /// fails if it never fired.
    pub fn expect_finding(&self, rule: &'static str) {
        verifier::expect(rule);
    }

    /// Findings so far.
    pub fn findings(&self) -> Vec<Finding> {
        verifier::findings()
    }

    /// Findings of one rule so far.
    pub fn finding_count(&self, rule: &str) -> usize {
        verifier::count(rule)
    }

    /// The per-test log so far.
    pub fn log(&self) -> Vec<String> {
        verifier::log_lines()
    }

    /// Sets a value in the filter driver's own configuration (NdisOpenConfigurationEx on the driver
    /// handle).
    pub fn set_driver_config(&self, key: &str, value: ConfigValue) {
        configuration::set_driver_config(key, value);
    }

    /// Advances the simulated clock (firing due timers at DISPATCH_LEVEL on this thread's CPU).
    pub fn advance_clock(&self, ms: u64) -> usize {
        let _g = race::exclusive(false);
        flows::advance_clock_ms(ms)
    }

    /// Simulated time in ms.
    pub fn now_ms(&self) -> u64 {
        clock::now_ms()
    }

    /// Adds an adapter (no filter module on it yet).
    pub fn add_adapter(&self, cfg: AdapterConfig) -> Adapter {
        Adapter {
            id: stack::add_adapter(cfg),
        }
    }

    /// Unloads any driver still loaded, runs the leak checks, frees everything, and returns the
    /// report; panics listing every unexpected finding (rule + object), or an expected rule that
    /// never fired.
    pub fn finish(mut self) -> Report {
        self.finish_inner()
    }

    fn finish_inner(&mut self) -> Report {
        self.finished = true;
        let pending: Vec<(usize, Abi)> = self
            .drivers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|e| !e.2)
            .map(|e| (e.0, e.1))
            .collect();
        for (object, abi) in pending {
            self.unload(Driver { object, abi });
        }
        // Every block freed so far is checked for writes after its free before the findings are read.
        mem::drain_quarantine();
        let report = Report {
            findings: verifier::findings(),
            log: verifier::log_lines(),
        };
        let expected = verifier::expected();
        teardown_all();
        let unexpected: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| !expected.contains_key(f.rule))
            .collect();
        let missing: Vec<&&str> = expected
            .keys()
            .filter(|r| !report.findings.iter().any(|f| f.rule == **r))
            .collect();
        if !unexpected.is_empty() || !missing.is_empty() {
            let mut msg = format!(
                "ndis-sim verifier failed the test (seed {:#x}, {}, lifecycle {:?}, interleave 1/{}):\n",
                self.config.seed,
                if self.config.deterministic {
                    "deterministic: the same seed replays this run"
                } else {
                    "threaded: the seed fixes the traffic, not the thread timing"
                },
                self.config.lifecycle,
                self.config.interleave_one_in
            );
            for f in &unexpected {
                msg.push_str(&format!("  {f}\n"));
            }
            for r in &missing {
                msg.push_str(&format!("  expected finding {r} never fired\n"));
            }
            msg.push_str("last log lines:\n");
            for l in report.log.iter().rev().take(30).rev() {
                msg.push_str(&format!("  {l}\n"));
            }
            panic!("{msg}");
        }
        report
    }
}

impl Drop for SimGuard {
    fn drop(&mut self) {
        if !self.finished {
            if std::thread::panicking() {
                teardown_all();
            } else {
                self.finish_inner();
            }
        }
    }
}
