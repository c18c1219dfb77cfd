//! STAND-IN for `wdk-build` 0.6.0 (see Cargo.toml): only what the build scripts of wdk 0.5.0,
//! wdk-panic 0.5.0 and wdk-alloc 0.4.2 call. Like the real `configure_wdk_library_build`, it
//! declares the `driver_model__driver_type` cfg and its allowed values, and sets it to the
//! driver's type; the real crate reads that from `cargo metadata` (`[package.metadata.wdk]`),
//! this one from `WDK_STANDIN_DRIVER_TYPE`, which the check sets from the same metadata.

use std::fmt;

/// The error type the build scripts name in their `main` signature.
#[derive(Debug)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

const DRIVER_TYPES: [&str; 3] = ["WDM", "KMDF", "UMDF"];

/// Emit `cfg(driver_model__driver_type = "...")` for a library build.
pub fn configure_wdk_library_build() -> Result<(), ConfigError> {
    println!("cargo::rerun-if-env-changed=WDK_STANDIN_DRIVER_TYPE");
    println!(
        r#"cargo::rustc-check-cfg=cfg(driver_model__driver_type, values("WDM","KMDF","UMDF"))"#
    );
    let driver_type = std::env::var("WDK_STANDIN_DRIVER_TYPE").map_err(|_| {
        ConfigError(
            "WDK_STANDIN_DRIVER_TYPE is not set (the check sets it from cargo metadata)".into(),
        )
    })?;
    if !DRIVER_TYPES.contains(&driver_type.as_str()) {
        return Err(ConfigError(format!("unknown driver type {driver_type:?}")));
    }
    println!(r#"cargo::rustc-cfg=driver_model__driver_type="{driver_type}""#);
    Ok(())
}
