//! `cargo xtask inx`: put the INF template where cargo-wdk looks for it.
//!
//! cargo-wdk 0.2.0's package step copies `<package>.inx` from the package's
//! directory (for this project: `mdlpool.inx` at the workspace root) and has no
//! option to name another file; the project's template is `driver.inx`, which
//! `cargo xtask package` and the `cargo make` flow (Makefile.toml's
//! `copy-inx-to-output`) read. This writes `mdlpool.inx` as an exact copy of
//! `driver.inx` (stampinf then stamps it like any template); the copy is
//! git-ignored, so `driver.inx` stays the one source.

use std::path::{Path, PathBuf};

/// The template the project keeps.
pub const TEMPLATE: &str = "driver.inx";
/// The name cargo-wdk requires: `<package name with '-' as '_'>.inx`.
pub const CARGO_WDK_INX: &str = "mdlpool.inx";

/// What [`write`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Written,
    AlreadyCurrent,
}

/// Copy `<root>/driver.inx` to `<root>/mdlpool.inx` unless it is already an
/// exact copy.
pub fn write(root: &Path) -> Result<(PathBuf, Outcome), String> {
    let from = root.join(TEMPLATE);
    let to = root.join(CARGO_WDK_INX);
    let template = std::fs::read(&from).map_err(|e| format!("reading {}: {e}", from.display()))?;
    if std::fs::read(&to).is_ok_and(|current| current == template) {
        return Ok((to, Outcome::AlreadyCurrent));
    }
    std::fs::write(&to, &template).map_err(|e| format!("writing {}: {e}", to.display()))?;
    Ok((to, Outcome::Written))
}

/// The command.
pub fn run() -> Result<(), String> {
    let (path, outcome) = write(&workspace_paths::workspace_root())?;
    match outcome {
        Outcome::Written => println!("wrote {} (a copy of {TEMPLATE})", path.display()),
        Outcome::AlreadyCurrent => println!("{} is already a copy of {TEMPLATE}", path.display()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_exact_copy_and_refreshes_a_stale_one() {
        let dir = std::env::temp_dir().join(format!("mdlpool-inx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(TEMPLATE),
            "[Version]\r\nSignature=\"$Windows NT$\"\r\n",
        )
        .unwrap();
        let (path, outcome) = write(&dir).unwrap();
        assert_eq!(outcome, Outcome::Written);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            std::fs::read(dir.join(TEMPLATE)).unwrap()
        );
        assert_eq!(write(&dir).unwrap().1, Outcome::AlreadyCurrent);
        std::fs::write(dir.join(TEMPLATE), "[Version]\r\n").unwrap();
        assert_eq!(write(&dir).unwrap().1, Outcome::Written);
        assert_eq!(std::fs::read(&path).unwrap(), b"[Version]\r\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cargo_wdk_name_is_the_driver_package_name() {
        // cargo-wdk: `<package name with '-' replaced by '_'>.inx`.
        let manifest =
            std::fs::read_to_string(workspace_paths::workspace_root().join("Cargo.toml")).unwrap();
        let package = &manifest[manifest.find("\n[package]").expect("a [package]")..];
        let name = package
            .lines()
            .find_map(|l| l.strip_prefix("name = "))
            .expect("a package name")
            .trim_matches('"');
        assert_eq!(CARGO_WDK_INX, format!("{}.inx", name.replace('-', "_")));
    }
}
