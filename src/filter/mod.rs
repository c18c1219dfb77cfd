//! The lightweight filter: registration (the characteristics NDIS copies) and the module state
//! machine. Owns the filter driver handle and every module context; must not touch the pool's
//! internals (it only installs and removes it).

mod register;

pub mod module;

pub use register::{deregister, driver_handle, ndis_version_for, register};
