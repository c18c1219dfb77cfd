//! The Windows kernel + NDIS 6 ABI that mdlpool needs, written by hand from the documented definitions
//! (see `shared/reference/ndis-contract.md` in the design notes).
//!
//! What this crate owns: `#[repr(C)]` layouts, constants, header-macro / FORCEINLINE equivalents as
//! `#[inline]` functions, and one `extern "system"` declaration of every routine the driver imports.
//! What it must not do: contain driver logic, or name the simulator. On Windows targets the imports carry
//! `raw-dylib` link attributes; on every other target they carry none and the final link resolves them
//! against `ndis-sim`, which defines the same symbols.
//!
//! Windows integer types map to fixed widths (ULONG = `u32`, never `c_ulong`), so on an x86_64 host every
//! structure has exactly its x64 Windows layout; `layout` pins that with `const` assertions.
#![no_std]
#![allow(
    non_snake_case,
    non_camel_case_types,
    non_upper_case_globals,
    clippy::upper_case_acronyms
)]

pub mod ffi;
pub mod filter;
pub mod irql;
mod layout;
pub mod mdl;
pub mod nbl;
pub mod offload;
pub mod rt;
pub mod status;
pub mod types;

pub use ffi::*;
pub use filter::*;
pub use irql::*;
pub use mdl::*;
pub use nbl::*;
pub use offload::*;
pub use status::*;
pub use types::*;
