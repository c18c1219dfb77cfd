//! The two files in the workspace and in the package: where they are read from (`windbg/`), their
//! check against a built PDB, and the copy into each package directory (`package::write`).
//!
//! Owns: reading and copying the files. Must not: parse them or the PDB (the sibling modules do).

use std::path::{Path, PathBuf};

use super::checks::verify_windbg;
use super::natvis::NATVIS_FILE;
use super::script::SCRIPT_FILE;
use crate::verify::report::Report;

/// `windbg/` of the workspace.
pub fn windbg_dir() -> PathBuf {
    workspace_paths::workspace_root().join("windbg")
}

fn read_text(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// The checks over the workspace's `windbg/` files. Called from the package verification.
pub fn verify_workspace_files(pdb: &[u8], report: &mut Report) -> Result<(), String> {
    let dir = windbg_dir();
    let natvis = read_text(&dir.join(NATVIS_FILE))?;
    let js = read_text(&dir.join(SCRIPT_FILE))?;
    verify_windbg(pdb, &natvis, &js, report);
    Ok(())
}

/// Copies `windbg/mdlpool.natvis` and `windbg/mdlpool.js` into a package directory.
pub fn copy_into(dir: &Path) -> Result<(), String> {
    let src = windbg_dir();
    for name in [NATVIS_FILE, SCRIPT_FILE] {
        std::fs::copy(src.join(name), dir.join(name)).map_err(|e| {
            format!(
                "copying {} into {}: {e}",
                src.join(name).display(),
                dir.display()
            )
        })?;
    }
    Ok(())
}
