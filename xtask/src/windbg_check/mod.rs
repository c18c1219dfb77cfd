//! The WinDbg files against the PDB: `windbg/mdlpool.natvis` and `windbg/mdlpool.js` name types and
//! fields of the driver (the statistics root and the pool's counter rows); a rename in Rust that is not
//! made there too would leave the debugger view silently broken on the test machine. This module reads
//! the PDB's type stream and fails the package when:
//! - the root symbol (`MdlPoolStats`) is not a public of the PDB;
//! - a type the script or the NatVis names is not in the PDB (`windbg.js.types`, `windbg.natvis.types`);
//! - a field the script reads is not a member of its type (`windbg.js.fields`);
//! - an identifier in a NatVis expression is neither a member of the `<Type>` it is written for (nor a
//!   declared `<Variable>` or a C keyword), nor, after `.`/`->`, a member of some type reachable from the
//!   NatVis types (`windbg.natvis.fields`).
//!
//! It also copies the two files into each package (see `package::write`).
//!
//! Layout, from the top down (none imports one above it; this file only re-exports): `files.rs` (the
//! files in `windbg/`, their check against a built PDB, the copy into a package); `checks.rs` (the
//! `windbg.*` checks: what passes); the sides they compare, each reading one thing and deciding
//! nothing: `type_db.rs` (the PDB's structures, members and publics), `script.rs` (the names the
//! script declares), `natvis.rs` (the names the NatVis expressions use). Must not: know the driver's
//! types (every name comes from the two files and the PDB).

mod checks;
mod files;
mod natvis;
mod script;
mod type_db;

pub use checks::{checks, verify_windbg};
pub use files::{copy_into, verify_workspace_files, windbg_dir};
pub use natvis::{parse_natvis, NatvisType, NATVIS_FILE};
pub use script::{parse_script, ScriptLayout, SCRIPT_FILE};
pub use type_db::{Field, StructInfo, TypeDb};
