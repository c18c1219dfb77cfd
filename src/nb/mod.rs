//! NET_BUFFER / MDL chain access for the data path (DESIGN §5, ndis-contract.md §2.3), in two rooms:
//! - `cursor.rs`: reads and writes N bytes at (or at an offset from) the data start across any MDL
//!   chain, walking [`MdlPos`](crate::ndis::MdlPos) positions;
//! - `retreat.rs`: the retreat record, the retreat itself, parking, the exact restore and the
//!   recovery from a neighbour that broke the restore contract (the retreat policy).
//!
//! Both are re-exported here, so `crate::nb::read_at`, `crate::nb::restore`, … are the paths to use.
//!
//! Owns: every byte the filter reads or writes in a frame (all of it goes through [`read_at`] /
//! [`write_at`], because retreated headers are not contiguous in general: after an allocating retreat
//! with `DataOffset > 0` they are the tail of the new MDL plus the old chain's unused bytes, and even a
//! fast-path retreat can straddle MDLs), and every retreat/advance the filter makes.
//! Must not: decide *what* to write (that is `transform/`), or touch NBL-level state (`filter/`).
//!
//! How the restore gives the retreat's MDL back is told in `retreat.rs`.
//!
//! IRQL: every routine here runs at IRQL <= DISPATCH_LEVEL (that of the NB/MDL routines it calls); none
//! blocks or allocates except through the MDL handler it is given.

mod cursor;
mod retreat;
#[cfg(test)]
pub(crate) mod test_chains;
#[cfg(test)]
mod tests;

pub use cursor::{check_at, fill_at, read_at, write_at, NbError};
pub use retreat::{
    advance_keep, as_handed_on, free_advance_is_safe, park, reconstruct, restore, retreat,
    MdlHandlers, Restore, RetreatRecord, Retreated,
};
