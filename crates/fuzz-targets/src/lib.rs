//! The fuzz targets of mdlpool's data path, as plain functions over a byte string, so that the
//! cargo-fuzz crate (`fuzz/`, nightly, libFuzzer + AddressSanitizer) and the corpus regression test
//! (`tests/corpus.rs`, stable, `cargo test --workspace`) run the very same logic.
//!
//! - [`nb_cursor`]: `nb/` (retreat record, retreat, cursor reads/writes, advance, park, restore) over
//!   arbitrary MDL chains against ndis-sim's retreat/advance;
//! - [`transforms`]: exercise, vlan send and vlan receive-inline over arbitrary frames and chains,
//!   against an independent model of the bytes each must produce;
//! - [`filter_ops`]: the whole filter on ndis-sim driven by an operation sequence decoded from the
//!   input, ending with zero verifier findings and nothing leaked.
//!
//! Every target panics (a fuzzer crash) on a broken property; ndis-sim's `finish` panics on any
//! verifier finding. Each run starts its own simulation (ndis-sim is process-global: `Sim::start`
//! takes the process-wide session lock and resets every table), so runs are independent.
//!
//! The model here never calls the cursor under test: chain bytes are read and written by walking the
//! MDLs directly ([`chain`]).

pub mod chain;
mod filter_ops;
mod nb_cursor;
mod run;
mod transforms;

pub use filter_ops::filter_ops;
pub use nb_cursor::nb_cursor;
pub use transforms::transforms;

/// A target: runs one input, panics on a broken property.
pub type Target = fn(&[u8]);

/// The targets by name (the names of `fuzz/fuzz_targets/*.rs` and `fuzz/corpus/*`).
pub const TARGETS: [(&str, Target); 3] = [
    ("nb_cursor", nb_cursor),
    ("transforms", transforms),
    ("filter_ops", filter_ops),
];
