//! A thin safe layer over the `ndis-sys` ABI for the data path (`filter/`, `nb/`, `transform/`): a few
//! `Copy` handle types whose invariants are stated once, here, so that the code using them writes
//! `// SAFETY:` comments that point at a type's invariant instead of restating a caller contract.
//!
//! - [`nbl`]: [`NblChain`], the walk over a `Next`-linked NBL chain, and [`NblQueue`], a counted
//!   NULL-terminated queue built in order without allocation.
//! - [`net_buffer`]: [`NetBuffer`], a `#[repr(transparent)]` handle on a NET_BUFFER the holder owns,
//!   and [`NetBuffers`], the walk over an NBL's NBs.
//! - [`mdl`]: [`MdlPos`], a position in an MDL chain (an MDL and a byte offset into it), the cursor's
//!   unit.
//! - [`restart`]: [`GeneralAttributes`], the walk over FilterRestart's restart attributes list.
//!
//! Owns: the invariants of these handles and the only hand-written walks of NDIS's linked lists that
//! the data path uses. Must not: decide anything (no policy, no statistics), allocate, or call an
//! NDIS routine. IRQL: any (every routine here only reads or writes link fields of structures the
//! caller owns); each type's users run at IRQL <= DISPATCH_LEVEL.
//!
//! Every iterator and accessor is `#[inline]` and compiles to the pointer walk it replaces: no bounds
//! checks, no allocation.

pub mod mdl;
pub mod nbl;
pub mod net_buffer;
pub mod restart;

pub use mdl::MdlPos;
pub use nbl::{NblChain, NblQueue};
pub use net_buffer::{NetBuffer, NetBuffers};
pub use restart::GeneralAttributes;
