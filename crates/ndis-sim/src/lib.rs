//! # ndis-sim — a strict simulated NDIS 6 + Windows kernel
//!
//! ndis-sim defines, with `#[no_mangle] pub extern "system" fn`, every kernel and NDIS routine that
//! `ndis-sys` imports, so a test binary links the unchanged driver source against it, and runs the
//! driver as Driver Verifier would judge it: any violation becomes a *finding* that fails the test.
//! The same routines are reachable through an `extern "win64"` table ([`abi::exports`]) for a real
//! `.sys` image loaded by `sysrun`.
//!
//! ## Using it from a test
//! ```ignore
//! use ndis_sim::{Sim, SimConfig, AdapterConfig, NblShape, Traffic};
//! let sim = Sim::start(SimConfig { cpus: 2, ..SimConfig::default() }); // takes the global lock
//! let drv = sim.load_driver(my_driver::DriverEntry);                  // DriverEntry at PASSIVE
//! let nic = sim.add_adapter(AdapterConfig::default());
//! nic.set_config("Mode", ConfigValue::Str("exercise".into()));
//! nic.attach().unwrap();                                              // FilterAttach → Paused
//! nic.restart().unwrap();                                             // FilterRestart → Running
//! nic.send(&NblShape { nbls: 4, mdl_lengths: vec![14, 50], ..Default::default() });
//! nic.indicate(&NblShape::default(), ndis_sys::NDIS_RECEIVE_FLAGS_RESOURCES);
//! sim.run_traffic(&nic, &Traffic::default());                          // N virtual-CPU threads
//! nic.drain();                                                         // complete/return everything
//! assert_eq!(nic.counters().wire_digest, nic.counters().proto_sent_digest);
//! nic.pause().unwrap();                                                // protocol drains, FilterPause
//! nic.detach();                                                        // FilterDetach + leak checks
//! drv.unload();                                                        // DriverUnload + leak checks
//! sim.finish();                                                        // panics on any unexpected finding
//! ```
//! A test that provokes a rule on purpose calls [`SimGuard::expect_finding`] first; `finish` then
//! also fails if that rule did *not* fire.
//!
//! ## What is checked
//! The rule names are the constants of [`verifier::rules`]: IRQL per routine and per callback return,
//! *_DISPATCH_LEVEL flags against the real IRQL, NB/NBL restore-exact on completion and return, frame
//! bytes, NB consistency, MDL ByteCount vs `*BufferSize`, nonpaged/built MDLs, foreign-MDL frees,
//! double complete/return, NBLs touched after hand-off (sealed by checksum), state rules of the module
//! state machine, outstanding NBLs at pause, simulated timeouts, and leaks of NBLs, MDLs, pool, timers
//! and configuration handles at detach and unload; receives passed up by a Pausing/Paused module, NBL
//! context sizes that break MEMORY_ALLOCATION_ALIGNMENT, undocumented FilterAttach statuses, a
//! DriverUnload set only after registration and OID clones forwarded without their RequestId (each
//! rule's evidence is at its definition).
//!
//! ## NBL contexts and restart attributes
//! Context blocks are laid out as documented (`Size` = the whole space, `Offset` = the unused part in
//! front). The protocol's and the miniport's NBLs carry context data of their own plus the
//! ContextBackFillSize the stack asked for in the restart attributes FilterRestart received
//! ([`AdapterConfig::lower_context_backfill`], [`Adapter::restart_backfill`]); the protocol also
//! leaves the DataBackFillSize in front of its frames. [`nbl::context_allocations`] tells carves from
//! allocated blocks; [`mem::poolused`] groups live pool blocks by tag.
//!
//! ## Pausing with work outstanding
//! By default a pause stops the protocol above first and waits for its sends to complete (as NDIS
//! pauses overlying drivers first); receives the protocol holds, indications and send completions of
//! the miniport below go on while the module is Pausing ([`race`]; in [`Lifecycle::Serialised`]
//! mode the held receives are returned first too, so nothing is in flight when FilterPause runs). [`AdapterConfig::pause_hold`] = `Some(`[`PauseHold`]`)`
//! issues FilterPause while the miniport still holds sends and/or the protocol still holds
//! receives; optionally the protocol sends while the module is Pausing; the held NBLs are then
//! given back one at a time on the simulated clock, on a chosen virtual CPU. A pause that completes
//! while an NBL still carrying the filter's changes is below or above it is PAUSE_WITH_OUTSTANDING;
//! a second NdisFPauseComplete is STATE_FORBIDS_COMPLETE; none at all is TIMEOUT_PAUSE.
//! [`Adapter::pause_record`] tells what happened ([`PauseRecord`]).
//!
//! ## Virtual CPUs and determinism
//! [`SimConfig::cpus`] virtual CPUs; each host thread is bound to one ([`kernel::bind_thread_to_cpu`]),
//! raising to DISPATCH_LEVEL takes that CPU exclusively. With [`SimConfig::deterministic`] the
//! traffic runner uses one thread and a seeded schedule over the CPUs (the Miri mode).
//!
//! ## Lifecycle racing traffic
//! [`SimConfig::lifecycle`] = [`Lifecycle::Concurrent`] (the default): pause, restart, detach, attach,
//! OIDs, status indications and timer DPCs run concurrently with traffic on the other virtual CPUs
//! as on a real machine, and each rule judges calls that raced a transition at a documented line
//! ([`race`]). [`Lifecycle::Serialised`] keeps the original single gate. With `deterministic` and
//! [`SimConfig::interleave_one_in`], other CPUs' events (and a pause's FilterPause call) land at
//! seeded preemption points inside driver calls; the same seed replays the same run.
//!
//! Dependencies point one way: ndis-sim → ndis-sys. It never names the driver.

#![allow(non_snake_case, non_upper_case_globals, clippy::missing_safety_doc)]
// Miri checks C-variadic agreement, so there DbgPrintEx is defined variadic (Miri is always nightly).
#![cfg_attr(miri, feature(c_variadic))]

pub mod abi;
pub mod bench_only;
pub mod config_reads;
pub mod fault;
pub mod filter;
pub mod kernel;
pub mod mapping;
pub mod mem;
pub mod misc;
pub mod nbl;
pub mod neighbor;
pub mod race;
pub mod stack;
pub mod testkit;
pub mod verifier;
pub mod wire;

pub use abi::{exports, find_export, Abi, Export};
pub use config_reads::{set_config_reads, ConfigReads};
pub use fault::{AllocRequest, AllocSite, FaultRule};
pub use filter::LifecycleError;
pub use neighbor::{BreakHow, RestoreBreaker};
pub use race::Lifecycle;
pub use stack::{
    AdapterConfig, ConfigValue, Counters, Frame, ModuleState, NblShape, PauseHold, PauseRecord,
};
pub use verifier::{rules, Finding};

use ndis_sys::*;
use std::sync::{Mutex, MutexGuard};

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
        misc::reset();
        mapping::reset();
        stack::reset(config.ndis_version);
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
    misc::free_all();
    nbl::reset();
    mem::free_all();
    filter::free_attach_strings();
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

/// A loaded driver (its DRIVER_OBJECT).
#[derive(Clone, Copy, Debug)]
pub struct Driver {
    object: usize,
    abi: Abi,
}

/// An adapter of the simulated stack: miniport below, protocol above, the filter module between.
#[derive(Clone, Copy, Debug)]
pub struct Adapter {
    id: usize,
}

/// A traffic run ([`SimGuard::run_traffic`]).
#[derive(Clone, Debug)]
pub struct Traffic {
    /// Operations per virtual CPU.
    pub steps_per_cpu: usize,
    /// Virtual CPUs to run on (empty = all).
    pub cpus: Vec<usize>,
    /// Shape of protocol sends.
    pub send: NblShape,
    /// Shape of miniport indications.
    pub receive: NblShape,
    /// One indication in this many carries NDIS_RECEIVE_FLAGS_RESOURCES (0 = never).
    pub resources_one_in: u32,
    /// Seed (combined with the CPU index per thread).
    pub seed: u64,
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            steps_per_cpu: 200,
            cpus: Vec::new(),
            send: NblShape {
                nbls: 2,
                ..NblShape::default()
            },
            receive: NblShape {
                nbls: 2,
                ..NblShape::default()
            },
            resources_one_in: 4,
            seed: 1,
        }
    }
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
        misc::set_driver_config(key, value);
    }

    /// Advances the simulated clock (firing due timers at DISPATCH_LEVEL on this thread's CPU).
    pub fn advance_clock(&self, ms: u64) -> usize {
        let _g = race::exclusive(false);
        misc::advance_clock_ms(ms)
    }

    /// Simulated time in ms.
    pub fn now_ms(&self) -> u64 {
        misc::now_ms()
    }

    /// Loads a driver linked into the test binary: builds a DRIVER_OBJECT the way the I/O manager
    /// does and calls DriverEntry at PASSIVE_LEVEL. Panics when DriverEntry fails (use
    /// [`try_load_driver`](Self::try_load_driver) to test failures).
    pub fn load_driver(
        &self,
        entry: unsafe extern "system" fn(*mut DRIVER_OBJECT, *mut UNICODE_STRING) -> NTSTATUS,
    ) -> Driver {
        self.try_load_driver(entry)
            .unwrap_or_else(|st| panic!("DriverEntry failed with {st:#x}"))
    }

    /// Like [`load_driver`](Self::load_driver), returning DriverEntry's failure status.
    pub fn try_load_driver(
        &self,
        entry: unsafe extern "system" fn(*mut DRIVER_OBJECT, *mut UNICODE_STRING) -> NTSTATUS,
    ) -> Result<Driver, NTSTATUS> {
        // SAFETY: a Rust-linked DriverEntry has the system convention.
        unsafe { self.load_driver_with(entry, Abi::System) }
    }

    /// Loads a driver from an entry address in the given convention (a PE image mapped by sysrun uses
    /// [`Abi::Win64`]).
    ///
    /// # Safety
    /// `entry` must be a DriverEntry of convention `abi`.
    pub unsafe fn load_driver_raw(&self, entry: usize, abi: Abi) -> Result<Driver, NTSTATUS> {
        // SAFETY: the caller guarantees `entry` is a DriverEntry (the convention is handled by invoke).
        let f: unsafe extern "system" fn(*mut DRIVER_OBJECT, *mut UNICODE_STRING) -> NTSTATUS =
            unsafe { std::mem::transmute(entry) };
        // SAFETY: as above.
        unsafe { self.load_driver_with(f, abi) }
    }

    /// # Safety
    /// `f` must be a DriverEntry of convention `abi`.
    unsafe fn load_driver_with(
        &self,
        f: unsafe extern "system" fn(*mut DRIVER_OBJECT, *mut UNICODE_STRING) -> NTSTATUS,
        abi: Abi,
    ) -> Result<Driver, NTSTATUS> {
        let obj = mem::raw_alloc(
            mem::Owner::Sim,
            POOL_FLAG_NON_PAGED,
            std::mem::size_of::<DRIVER_OBJECT>(),
            mem::SIM_TAG,
        ) as *mut DRIVER_OBJECT;
        let name: &'static [u16] = ndis_sys::utf16!("\\Driver\\mdlpool");
        let reg: &'static [u16] =
            ndis_sys::utf16!("\\Registry\\Machine\\System\\CurrentControlSet\\Services\\mdlpool");
        let mut reg_path = UNICODE_STRING::from_static(reg);
        // SAFETY: fresh zeroed block of DRIVER_OBJECT size.
        unsafe {
            (*obj).Type = IO_TYPE_DRIVER;
            (*obj).Size = std::mem::size_of::<DRIVER_OBJECT>() as i16;
            (*obj).DriverName = UNICODE_STRING::from_static(name);
            (*obj).DriverInit = Some(f);
        }
        let _g = race::exclusive(true);
        verifier::log("[io] DriverEntry");
        // SAFETY: DriverEntry with a fresh driver object and registry path, at PASSIVE_LEVEL.
        let st = kernel::at_irql(PASSIVE_LEVEL, || unsafe {
            abi::Callback::invoke(f, abi, (obj, &mut reg_path as *mut _))
        });
        if kernel::current_irql() != PASSIVE_LEVEL {
            verifier::report(
                rules::IRQL_NOT_RESTORED,
                obj as usize,
                "DriverEntry returned above PASSIVE_LEVEL",
            );
            kernel::set_irql(PASSIVE_LEVEL);
        }
        if !NT_SUCCESS(st) {
            drop(_g);
            self.driver_leak_check("failed DriverEntry");
            return Err(st);
        }
        self.drivers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((obj as usize, abi, false));
        Ok(Driver {
            object: obj as usize,
            abi,
        })
    }

    /// Calls the driver's DriverUnload (PASSIVE_LEVEL), then checks it deregistered and leaked nothing.
    pub fn unload(&self, driver: Driver) {
        let obj = driver.object as *mut DRIVER_OBJECT;
        {
            let mut d = self.drivers.lock().unwrap_or_else(|e| e.into_inner());
            let e = d
                .iter_mut()
                .find(|e| e.0 == driver.object)
                .expect("a loaded driver");
            assert!(!e.2, "driver already unloaded");
            e.2 = true;
        }
        // SAFETY: our DRIVER_OBJECT.
        let unload = unsafe { (*obj).DriverUnload };
        {
            let _g = race::exclusive(true);
            verifier::log("[io] DriverUnload");
            match unload {
                Some(f) => {
                    // SAFETY: the driver's unload routine, at PASSIVE_LEVEL.
                    kernel::at_irql(PASSIVE_LEVEL, || unsafe {
                        abi::Callback::invoke(f, driver.abi, (obj,))
                    });
                }
                None => verifier::report(
                    rules::NOT_DEREGISTERED,
                    obj as usize,
                    "driver has no DriverUnload",
                ),
            }
            if stack::driver_handle().is_some() {
                verifier::report(
                    rules::NOT_DEREGISTERED,
                    obj as usize,
                    "DriverUnload returned with the filter driver still registered",
                );
            }
        }
        self.driver_leak_check("unload");
    }

    fn driver_leak_check(&self, when: &str) {
        for (addr, size, tag, origin) in mem::driver_blocks() {
            let tag_s = String::from_utf8_lossy(&tag.to_le_bytes()).into_owned();
            match origin {
                Some(o) => verifier::report(
                    rules::LEAKED_MDL,
                    addr,
                    format!("{when}: {o:?} MDL ({size} bytes) not freed"),
                ),
                None => verifier::report(
                    rules::LEAKED_POOL,
                    addr,
                    format!("{when}: pool block of {size} bytes, tag '{tag_s}' not freed"),
                ),
            }
        }
        for (pool, _, live) in nbl::driver_pools() {
            verifier::report(
                rules::LEAKED_NBL,
                pool,
                format!("{when}: NBL/NB pool not freed ({live} live)"),
            );
        }
        for (addr, r) in nbl::all_nbls() {
            if r.creator == nbl::Creator::Driver {
                verifier::report(
                    rules::LEAKED_NBL,
                    addr,
                    format!("{when}: driver NBL not freed (held by {:?})", r.holder),
                );
            }
        }
        for (h, what) in misc::driver_leftovers() {
            verifier::report(rules::LEAKED_POOL, h, format!("{when}: {what}"));
        }
    }

    /// Adds an adapter (no filter module on it yet).
    pub fn add_adapter(&self, cfg: AdapterConfig) -> Adapter {
        Adapter {
            id: stack::add_adapter(cfg),
        }
    }

    /// Runs traffic on `adapter` across virtual CPUs: protocol sends, miniport completions in random
    /// order, indications (some with NDIS_RECEIVE_FLAGS_RESOURCES), protocol returns, clock ticks.
    /// Threads per CPU, or one seeded thread in deterministic mode. Sends and receives happen only
    /// while the module runs; lifecycle steps may run concurrently from another thread.
    pub fn run_traffic(&self, adapter: &Adapter, t: &Traffic) {
        let cpus: Vec<usize> = if t.cpus.is_empty() {
            (0..kernel::cpu_count()).collect()
        } else {
            t.cpus.clone()
        };
        if self.config.deterministic {
            let mut rng = fault::splitmix64(t.seed ^ self.config.seed);
            let home = kernel::current_cpu();
            for _ in 0..t.steps_per_cpu * cpus.len() {
                rng = fault::splitmix64(rng);
                let cpu = cpus[(rng % cpus.len() as u64) as usize];
                kernel::bind_thread_to_cpu(cpu);
                traffic_step(adapter.id, t, &mut rng);
            }
            kernel::bind_thread_to_cpu(home);
        } else {
            std::thread::scope(|s| {
                for &cpu in &cpus {
                    let t = t.clone();
                    let id = adapter.id;
                    let seed = self.config.seed;
                    s.spawn(move || {
                        kernel::bind_thread_to_cpu(cpu);
                        let mut rng =
                            fault::splitmix64(t.seed ^ seed ^ (cpu as u64).wrapping_mul(0x9E37));
                        for _ in 0..t.steps_per_cpu {
                            traffic_step(id, &t, &mut rng);
                        }
                    });
                }
            });
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

fn traffic_step(id: usize, t: &Traffic, rng: &mut u64) {
    *rng = fault::splitmix64(*rng);
    let r = *rng;
    let _g = race::gate_shared();
    let dispatch = (r >> 8) & 1 == 1;
    let irql = if dispatch {
        DISPATCH_LEVEL
    } else {
        PASSIVE_LEVEL
    };
    match r % 8 {
        // A send only while the protocol runs, an indication only while the miniport may indicate
        // to the module: claimed under the stack lock (race.rs: where the line is).
        0 | 1 if race::claim_send(id) => {
            kernel::at_irql(irql, || stack::protocol_send(id, &t.send, 0));
            race::release_send(id);
        }
        2 | 3 => {
            let mut seed = r >> 16;
            stack::pump_sends(id, 1 + (r >> 20) as usize % 4, &mut seed);
        }
        4 | 5 if race::claim_indicate(id) => {
            let res =
                t.resources_one_in != 0 && (r >> 24).is_multiple_of(t.resources_one_in as u64);
            let flags = if res { NDIS_RECEIVE_FLAGS_RESOURCES } else { 0 };
            kernel::at_irql(DISPATCH_LEVEL, || {
                stack::miniport_indicate(id, &t.receive, flags)
            });
            race::release(id);
        }
        6 => {
            kernel::at_irql(irql, || stack::return_some(id, 1 + (r >> 20) as usize % 4));
        }
        _ => {
            misc::advance_clock_ms(1);
        }
    }
}

impl Driver {
    /// The DRIVER_OBJECT address.
    pub fn object(&self) -> *mut DRIVER_OBJECT {
        self.object as *mut DRIVER_OBJECT
    }
}

impl Adapter {
    /// Index of this adapter.
    pub fn id(&self) -> usize {
        self.id
    }

    fn lifecycle<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = race::exclusive(true);
        f()
    }

    /// FilterAttach (Detached → Paused).
    pub fn attach(&self) -> Result<(), LifecycleError> {
        self.lifecycle(|| filter::attach_flow(self.id))
    }

    /// FilterRestart (Paused → Running), waiting for NdisFRestartComplete when it pends.
    pub fn restart(&self) -> Result<(), LifecycleError> {
        self.lifecycle(|| filter::restart_flow(self.id))
    }

    /// Pauses the protocol (drains its sends/receives), then FilterPause (Running → Paused), waiting
    /// (with the simulated timeout) for NdisFPauseComplete when it pends. With
    /// [`AdapterConfig::pause_hold`] set, FilterPause runs while sends/receives are still out (see
    /// [`PauseHold`]).
    pub fn pause(&self) -> Result<(), LifecycleError> {
        self.lifecycle(|| filter::pause_flow(self.id))
    }

    /// What the last (or current) pause looked like: FilterPause's status, the NBLs held across it,
    /// NdisFPauseComplete calls and what was outstanding then.
    pub fn pause_record(&self) -> PauseRecord {
        stack::stack().adapters[self.id].pause_record.clone()
    }

    /// FilterDetach (Paused → Detached) and the per-module leak checks.
    pub fn detach(&self) {
        self.lifecycle(|| filter::detach_flow(self.id))
    }

    /// (DataBackFillSize, ContextBackFillSize) the drivers above the filter were told: what the
    /// filter left in the restart attributes of its last successful FilterRestart, or before any
    /// restart what the miniport reports ([`AdapterConfig::lower_data_backfill`],
    /// [`AdapterConfig::lower_context_backfill`]). The protocol allocates its NBLs with them.
    pub fn restart_backfill(&self) -> (u32, u32) {
        stack::top_backfill(self.id)
    }

    /// The module's state.
    pub fn state(&self) -> ModuleState {
        stack::stack().adapters[self.id].state
    }

    /// Sets a key in this module's configuration map (read by NdisReadConfiguration).
    pub fn set_config(&self, key: &str, value: ConfigValue) {
        stack::stack().adapters[self.id]
            .config
            .insert(key.to_ascii_lowercase(), value);
    }

    /// Changes the miniport/protocol behaviour.
    pub fn configure(&self, f: impl FnOnce(&mut AdapterConfig)) {
        f(&mut stack::stack().adapters[self.id].cfg);
    }

    /// The protocol sends one chain of `shape` at the caller's IRQL (NDIS_SEND_FLAGS_DISPATCH_LEVEL
    /// follows it). Returns the NBL count.
    pub fn send(&self, shape: &NblShape) -> usize {
        self.send_with_flags(shape, 0)
    }

    /// Like [`send`](Self::send) with extra NDIS_SEND_FLAGS_* bits.
    pub fn send_with_flags(&self, shape: &NblShape, flags: u32) -> usize {
        let _g = race::gate_shared();
        // Counted as a protocol send in progress when the protocol runs; sent regardless (the test
        // asked for it; a filter that is not Running completes it with NDIS_STATUS_PAUSED).
        let claimed = race::claim_send(self.id);
        let n = stack::protocol_send(self.id, shape, flags);
        if claimed {
            race::release_send(self.id);
        }
        n
    }

    /// The miniport indicates one chain of `shape` at the caller's IRQL with `flags`.
    pub fn indicate(&self, shape: &NblShape, flags: u32) -> usize {
        let _g = race::gate_shared();
        let claimed = race::claim_indicate(self.id);
        let n = stack::miniport_indicate(self.id, shape, flags);
        if claimed {
            race::release(self.id);
        }
        n
    }

    /// The protocol sends `frames` (NB k carries `frames[k]`) in NBLs of `shape.nbs_per_nbl` NBs, with
    /// `shape`'s MDL layout, DataOffset and 802.1Q info (its `nbls` and `frame_len` are ignored), at the
    /// caller's IRQL. Returns the NBL count. For traffic given from outside, e.g. a capture.
    pub fn send_frames(&self, shape: &NblShape, frames: &[Vec<u8>], flags: u32) -> usize {
        let _g = race::gate_shared();
        let claimed = race::claim_send(self.id);
        let n = stack::protocol_send_frames(self.id, shape, Some(frames), flags);
        if claimed {
            race::release_send(self.id);
        }
        n
    }

    /// The miniport indicates `frames` as [`send_frames`](Self::send_frames) lays them out, with
    /// `flags`, at the caller's IRQL.
    pub fn indicate_frames(&self, shape: &NblShape, frames: &[Vec<u8>], flags: u32) -> usize {
        let _g = race::gate_shared();
        let claimed = race::claim_indicate(self.id);
        let n = stack::miniport_indicate_frames(self.id, shape, Some(frames), flags);
        if claimed {
            race::release(self.id);
        }
        n
    }

    /// Sends queued at the miniport, in arrival order.
    pub fn pending_sends(&self) -> usize {
        stack::stack().adapters[self.id].mp_pending.len()
    }

    /// The miniport completes up to `n` queued sends at the caller's IRQL, in an order shuffled by
    /// `seed` (0 = arrival order).
    pub fn complete_sends(&self, n: usize, seed: u64) -> usize {
        let _g = race::gate_shared();
        let mut s = seed;
        stack::pump_sends_at_current_irql(self.id, n, if seed == 0 { None } else { Some(&mut s) })
    }

    /// Receives the protocol is holding (not yet returned).
    pub fn held_receives(&self) -> usize {
        stack::stack().adapters[self.id].proto_held.len()
    }

    /// The protocol returns up to `n` held receives at the caller's IRQL.
    pub fn return_receives(&self, n: usize) -> usize {
        let _g = race::gate_shared();
        stack::return_some(self.id, n)
    }

    /// Completes every queued send, returns every held receive, completes pended OIDs (at
    /// DISPATCH_LEVEL), until nothing is left.
    pub fn drain(&self) {
        let _g = race::gate_shared();
        for _ in 0..10_000 {
            if stack::pump(self.id, usize::MAX, None) == 0 {
                return;
            }
        }
    }

    /// The protocol issues an OID request (at PASSIVE_LEVEL) and waits for it (simulated timeout).
    /// Returns (status, BytesWritten/BytesRead).
    pub fn oid_request(
        &self,
        request_type: u32,
        oid: NDIS_OID,
        buffer: &mut [u8],
    ) -> (NDIS_STATUS, u32) {
        let _g = race::exclusive(false);
        let claimed = race::wait_claim_ctl(self.id);
        let r = filter::protocol_oid(self.id, request_type, oid, buffer);
        if claimed {
            race::release_ctl(self.id);
        }
        r
    }

    /// The miniport indicates a status (at the caller's IRQL).
    pub fn indicate_status(&self, code: NDIS_STATUS) {
        let _g = race::gate_shared();
        let claimed = race::wait_claim_ctl(self.id);
        filter::miniport_status(self.id, code);
        if claimed {
            race::release_ctl(self.id);
        }
    }

    /// The miniport's task offload configuration changes (e.g. LSO turned off through
    /// OID_TCP_OFFLOAD_PARAMETERS): from now on sends are judged against `nic`, and the miniport
    /// indicates NDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG with the new NDIS_OFFLOAD as its status
    /// buffer (DOCUMENTED: ndis-status-task-offload-current-config), at the caller's IRQL.
    pub fn change_offload(&self, nic: wire::NicOffload) {
        let _g = race::gate_shared();
        let claimed = race::wait_claim_ctl(self.id);
        stack::stack().adapters[self.id].cfg.nic_offload = nic;
        let mut o = nic.ndis_offload();
        filter::miniport_status_with(
            self.id,
            NDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG,
            &mut o as *mut NDIS_OFFLOAD as PVOID,
            std::mem::size_of::<NDIS_OFFLOAD>() as u32,
        );
        if claimed {
            race::release_ctl(self.id);
        }
    }

    /// NDIS sends a net PnP event down to the filter (PASSIVE_LEVEL); returns the filter's status.
    pub fn net_pnp_event(&self, code: u32) -> NDIS_STATUS {
        // NDIS starts no PnP operation while another (pause, restart, attach, detach) is under way.
        let _g = race::exclusive(true);
        filter::net_pnp(self.id, code)
    }

    /// The miniport loses the link: sends complete with NDIS_STATUS_MEDIA_DISCONNECTED from now on,
    /// and NDIS_STATUS_MEDIA_DISCONNECT is indicated.
    pub fn disconnect(&self) {
        self.configure(|c| c.send_status = NDIS_STATUS_MEDIA_DISCONNECTED);
        self.indicate_status(NDIS_STATUS_MEDIA_DISCONNECT);
    }

    /// The link comes back: sends succeed again and NDIS_STATUS_MEDIA_CONNECT is indicated.
    pub fn connect(&self) {
        self.configure(|c| c.send_status = NDIS_STATUS_SUCCESS);
        self.indicate_status(NDIS_STATUS_MEDIA_CONNECT);
    }

    /// The miniport resets: NDIS_STATUS_RESET_START, every queued send completed with
    /// NDIS_STATUS_RESET_IN_PROGRESS (at DISPATCH_LEVEL), NDIS_STATUS_RESET_END.
    pub fn reset(&self) {
        self.indicate_status(NDIS_STATUS_RESET_START);
        let old = stack::stack().adapters[self.id].cfg.send_status;
        self.configure(|c| c.send_status = NDIS_STATUS_RESET_IN_PROGRESS);
        {
            let _g = race::gate_shared();
            kernel::at_irql(DISPATCH_LEVEL, || {
                stack::pump_sends_at_current_irql(self.id, usize::MAX, None)
            });
        }
        self.configure(|c| c.send_status = old);
        self.indicate_status(NDIS_STATUS_RESET_END);
    }

    /// Counters so far.
    pub fn counters(&self) -> Counters {
        stack::stack().adapters[self.id].counters.clone()
    }

    /// Frames the miniport saw (up to the capture limit), in order.
    pub fn wire_frames(&self) -> Vec<Frame> {
        stack::stack().adapters[self.id].wire.clone()
    }

    /// Frames the protocol received (up to the capture limit), in order.
    pub fn protocol_frames(&self) -> Vec<Frame> {
        stack::stack().adapters[self.id].proto_rx.clone()
    }

    /// Forgets the captured wire and protocol frames (counters and digests are kept).
    pub fn clear_captures(&self) {
        let mut s = stack::stack();
        let a = &mut s.adapters[self.id];
        a.wire.clear();
        a.proto_rx.clear();
    }

    /// NBLs currently in flight through the module (what a pause would leave behind).
    pub fn outstanding(&self) -> usize {
        stack::outstanding(self.id).len()
    }

    /// The module's NdisFilterHandle (0 when detached).
    pub fn filter_handle(&self) -> NDIS_HANDLE {
        stack::stack().adapters[self.id].filter_handle as NDIS_HANDLE
    }

    /// The module context the filter gave NdisFSetAttributes.
    pub fn module_context(&self) -> NDIS_HANDLE {
        stack::stack().adapters[self.id].module_ctx as NDIS_HANDLE
    }
}
