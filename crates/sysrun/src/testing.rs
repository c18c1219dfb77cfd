//! Locating (or building) the images the binary-level tests load: the shipped amd64 package
//! (`target/package/amd64/mdlpool.sys`, written by `cargo xtask package --target amd64`) and the
//! deliberately misbehaving test driver under `crates/sysrun/tests/bad-driver`.
//!
//! Nested builds use their own target directory (`<target>/sysrun-build`) so they never wait on the
//! lock of the `cargo test` that runs them. Owns nothing else.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

// The workspace root and target directory live in the `workspace-paths` crate (xtask uses the
// same); re-exported for the tests that name them through `testing`.
pub use workspace_paths::{target_dir, workspace_root};

/// Where `cargo xtask package --target amd64` writes the driver image.
pub fn package_sys_path() -> PathBuf {
    target_dir()
        .join("package")
        .join("amd64")
        .join("mdlpool.sys")
}

fn nested_target() -> PathBuf {
    target_dir().join("sysrun-build")
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// The amd64 `mdlpool.sys` to test: `$SYSRUN_SYS` if set, else the package in the target
/// directory, else one built now with `cargo xtask package --target amd64` (in a nested target
/// directory). Errors say how to build it by hand.
pub fn package_sys() -> Result<PathBuf, String> {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(p) = std::env::var_os("SYSRUN_SYS") {
            return Ok(PathBuf::from(p));
        }
        let p = package_sys_path();
        if p.is_file() {
            return Ok(p);
        }
        let nested = nested_target();
        let built = nested.join("package").join("amd64").join("mdlpool.sys");
        eprintln!(
            "sysrun: no package at {}; building one with `cargo xtask package --target amd64` (target dir {})",
            p.display(),
            nested.display()
        );
        let status = Command::new(cargo())
            .current_dir(workspace_root())
            .env("CARGO_TARGET_DIR", &nested)
            .args(["xtask", "package", "--target", "amd64"])
            .status()
            .map_err(|e| format!("running cargo: {e}"))?;
        if !status.success() || !built.is_file() {
            return Err(format!(
                "building the amd64 package failed ({status}); run `cargo xtask package --target amd64` and look at its errors"
            ));
        }
        Ok(built)
    })
    .clone()
}

/// The linker arguments of a WDM driver image, as `cargo xtask package` uses them.
const DRIVER_LINK_ARGS: &[&str] = &[
    "/DRIVER",
    "/SUBSYSTEM:NATIVE,10.0",
    "/ENTRY:DriverEntry",
    "/NODEFAULTLIB",
    "/NXCOMPAT",
    "/DYNAMICBASE",
    "/DEBUG:FULL",
];

/// Builds `crates/sysrun/tests/bad-driver` for x86_64-pc-windows-msvc (once per process) and
/// returns the path of its `.sys`, with its `.pdb` beside it.
pub fn bad_driver_sys() -> Result<PathBuf, String> {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(p) = std::env::var_os("SYSRUN_BAD_SYS") {
            return Ok(PathBuf::from(p));
        }
        let root = workspace_root();
        let nested = nested_target();
        let manifest = root.join("crates/sysrun/tests/bad-driver/Cargo.toml");
        let mut cmd = Command::new(cargo());
        cmd.current_dir(&root)
            .env("CARGO_TARGET_DIR", &nested)
            .args([
                "rustc",
                "--quiet",
                "--manifest-path",
                manifest.to_str().ok_or("non-UTF-8 path")?,
                "--lib",
                "--crate-type",
                "cdylib",
                "--release",
                "--target",
                "x86_64-pc-windows-msvc",
                "--",
            ]);
        for a in DRIVER_LINK_ARGS {
            cmd.arg("-C").arg(format!("link-arg={a}"));
        }
        let status = cmd.status().map_err(|e| format!("running cargo: {e}"))?;
        if !status.success() {
            return Err(format!(
                "building the bad test driver failed ({status}): {cmd:?}"
            ));
        }
        let out = nested.join("x86_64-pc-windows-msvc").join("release");
        let dir = nested.join("bad-driver");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let sys = dir.join("sysrun_bad_driver.sys");
        // Copy under a temporary name and rename, so a concurrent reader (another test process)
        // never sees a half-written file.
        for (from, to) in [
            ("sysrun_bad_driver.pdb", dir.join("sysrun_bad_driver.pdb")),
            ("sysrun_bad_driver.dll", sys.clone()),
        ] {
            let tmp = to.with_extension(format!("tmp{}", std::process::id()));
            std::fs::copy(out.join(from), &tmp).map_err(|e| format!("copying {from}: {e}"))?;
            std::fs::rename(&tmp, &to).map_err(|e| format!("renaming {}: {e}", tmp.display()))?;
        }
        Ok(sys)
    })
    .clone()
}
