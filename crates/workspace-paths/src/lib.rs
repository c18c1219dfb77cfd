//! Where the checkout is, for the host tools that read or write its files at run time: xtask
//! (packages, the INX copy, the WinDbg files) and sysrun (the package it loads, its nested builds).
//!
//! Owns: the workspace root and the cargo target directory. Must not: depend on anything (it is a
//! leaf both tools link; the driver never links it).

use std::path::{Path, PathBuf};

/// The workspace root: the folder of the root `Cargo.toml` (this crate lives in `crates/<name>/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("workspace-paths lives in crates/ of the workspace")
        .to_path_buf()
}

/// The cargo target directory: `$CARGO_TARGET_DIR` (a relative one taken from the workspace root)
/// or `<root>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let p = PathBuf::from(d);
            if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            }
        }
        _ => workspace_root().join("target"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"), "{manifest}");
        assert!(workspace_root().join("crates/workspace-paths").is_dir());
    }
}
