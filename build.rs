//! Build script for the `mdlpool` driver crate.
//!
//! On every host except Windows-with-the-`wdk`-feature this does nothing.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
