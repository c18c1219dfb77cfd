//! # ndis-sim — a strict simulated NDIS 6 + Windows kernel
//!
//! ndis-sim defines, with `#[no_mangle] pub extern "system" fn`, every kernel and NDIS routine that
//! `ndis-sys` imports, so a test binary links the unchanged driver source against it, and runs the
//! driver as Driver Verifier would judge it: any violation becomes a *finding* that fails the test.
//! The same routines are reachable through an `extern "win64"` table ([`exports()`]) for a real
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
//! ## Where things live: the layers
//! The modules stand in five layers, bottom to top; a module imports only its own layer or lower
//! ones, with no loop (`tests/layers.rs` holds the table and fails on an import running back up).
//!
//! | layer | modules | what |
//! |---|---|---|
//! | 1 the machine | [`abi`], [`cpu`], [`verifier`] | calling conventions, `sim_exports!` and driver callbacks; virtual CPUs and IRQL; findings, the log and the IRQL checks |
//! | 2 memory and time | [`fault`], [`mem`], [`mapping`], [`clock`] | fault injection; pool, MDLs, lookaside; MDL mappings; the clock (it only counts: advancing it returns the time, the caller fires timers and judges held NBLs) |
//! | 3 routines over state | [`stack`], [`race`], [`nbl`], [`wire`], [`neighbor`], [`outstanding`], [`kernel`], [`timers`], [`configuration`], [`config_reads`], [`ndisf`] | the state-only stack and its race records; the NBL registry, allocation, retreat/advance and checks; the miniport's frame and offload checks; what is outstanding at pause/detach/timeout; the kernel, timer, configuration and NdisF* routines the driver calls |
//! | 4 flows | `flows` (crate-private) | what calls INTO the driver on NDIS's behalf: sends and completions, indications and returns, attach/restart/pause/detach, OIDs, status, PnP, background pumping, the schedule's other-CPU events |
//! | 5 top | [`exports()`], the harness ([`Sim`], [`SimGuard`], [`Adapter`], [`Traffic`]), [`testkit`], [`bench_only`] | the name → routine table; what a test drives |
//!
//! Where a routine's effect is another simulated driver's action (NdisFSendNetBufferLists reaching
//! the miniport, NdisFDeregisterFilterDriver pausing modules) or another CPU's event at a
//! preemption point, it calls through handlers the flows install at [`Sim::start`]
//! (`stack::Upcalls`, `race::Events`), as NDIS calls a real miniport through its registered
//! handlers; the routines never import the flows.
//!
//! Dependencies point one way: ndis-sim → ndis-sys. It never names the driver.

#![allow(non_snake_case, non_upper_case_globals, clippy::missing_safety_doc)]
// Miri checks C-variadic agreement, so there DbgPrintEx is defined variadic (Miri is always nightly).
#![cfg_attr(miri, feature(c_variadic))]

pub mod abi;
pub mod bench_only;
pub mod churn;
pub mod clock;
pub mod config_reads;
pub mod configuration;
pub mod cpu;
pub mod exports;
pub mod fault;
pub(crate) mod flows;
mod harness;
pub mod kernel;
pub mod mapping;
pub mod mem;
pub mod nbl;
pub mod ndisf;
pub mod neighbor;
pub mod outstanding;
pub mod race;
pub mod stack;
pub mod testkit;
pub mod timers;
pub mod verifier;
pub mod wire;

pub use abi::{Abi, Export};
pub use config_reads::{set_config_reads, ConfigReads};
pub use exports::{exports, find_export};
pub use fault::{AllocRequest, AllocSite, FaultRule};
pub use flows::lifecycle::LifecycleError;
pub use harness::{
    Adapter, Driver, Report, Sim, SimConfig, SimGuard, Traffic, NDIS_STATUS_RESET_END,
    NDIS_STATUS_RESET_START,
};
pub use neighbor::{BreakHow, RestoreBreaker};
pub use race::Lifecycle;
pub use stack::{
    AdapterConfig, ConfigValue, Counters, Frame, ModuleState, NblShape, PauseHold, PauseRecord,
};
pub use verifier::{rules, Finding};
