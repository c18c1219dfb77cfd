//! mdlpool: an NDIS 6 lightweight filter that hands NDIS its own `NetAllocateMdl` / `NetFreeMdl`
//! pair, backed by a per-CPU lookaside pool, on every retreat/advance it makes on the send and
//! receive paths.
//!
//! This file owns the crate root: the module map, `DriverEntry` and `DriverUnload`. It must not
//! contain data-path logic (that lives in `filter/`, `nb.rs`, `transform/`) and never names the
//! simulator: every kernel call goes through `ndis-sys`.
#![no_std]

// Host builds (tests, Miri, benchmarks, the host cdylib cargo also produces) link std for its panic
// handler and allocator; kernel builds get both from ndis-sys::rt or wdk-panic/wdk-alloc.
#[cfg(not(target_os = "windows"))]
extern crate std;

pub mod driver;
pub mod filter;
pub mod names;

pub use driver::{DriverEntry, DriverUnload};
