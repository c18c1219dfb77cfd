//! Empty on purpose: this package exists only so that `cargo check -p mdlpool` in this workspace
//! resolves mdlpool with the `wdk` feature against the wdk-sys stand-in (see Cargo.toml).
#![no_std]
