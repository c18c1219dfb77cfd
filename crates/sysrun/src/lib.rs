//! sysrun: loads the built amd64 `mdlpool.sys` — the file people install — into a Linux x86_64
//! process and runs it against ndis-sim, so the shipped machine code (its import table, the Windows
//! x64 calling convention, CR8 IRQL accesses) is exercised, not only the source.
//!
//! Module map:
//! - [`pe`]: read and vet the file (amd64, native subsystem, sections, relocations, imports, exports,
//!   CodeView); refuse anything else with a [`LoadError`] naming file, place and reason.
//! - [`loader`]: map it at a fresh address, relocate, bind imports to ndis-sim's win64 entries,
//!   protect each section (never W+X).
//! - [`trap`]: the fault handler that emulates `mov cr8` and names the function of any other fault.
//! - [`stats`]: the exported stats root read from the image, as the dump `windbg/mdlpool.js` renders.
//! - [`symbols`]: function names from the PDB.
//! - [`callsite`]: import thunks recording which image instruction called the running routine.
//! - [`driver`]: a mapped image as a driver of an ndis-sim simulation (DriverEntry/DriverUnload, win64).
//! - [`sites`]: the hook that lets ndis-sim name the driver function behind each finding.
//!
//! sysrun never links the driver's source: everything it knows about the driver comes from the file.
//! It needs an x86_64 Linux host (it executes amd64 code and uses Linux signal contexts); on any
//! other host the crate is empty, so the workspace and `cargo xtask` still build there.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

pub mod callsite;
pub mod driver;
pub mod error;
pub mod loader;
pub mod pe;
pub mod sites;
pub mod stats;
pub mod symbols;
#[doc(hidden)]
pub mod testing;
pub mod trap;

pub use driver::SysDriver;
pub use error::{LoadError, LoadErrorKind};
pub use loader::LoadedImage;
pub use pe::PeImage;
