//! The allow-list of known exports (`xtask/known-exports/<module>.txt`): the only
//! modules and names `mdlpool.sys` may import. See `known-exports/README.md`
//! for the evidence behind each name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The modules a kernel driver of this project may import from, as their
/// allow-list files are named.
pub const MODULES: &[&str] = &["ntoskrnl.exe", "hal.dll", "ndis.sys"];

/// Known exports per module (module names lowercased).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownExports {
    modules: BTreeMap<String, BTreeSet<String>>,
}

impl KnownExports {
    /// The directory holding the allow-list files in this repository.
    pub fn default_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("known-exports")
    }

    /// Load `<dir>/<module>.txt` for every module in [`MODULES`].
    pub fn load(dir: &Path) -> Result<KnownExports, String> {
        let mut known = KnownExports::default();
        for module in MODULES {
            let path = dir.join(format!("{module}.txt"));
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            known.add_list(module, &text)?;
        }
        Ok(known)
    }

    /// Load the repository's own lists.
    pub fn load_default() -> Result<KnownExports, String> {
        Self::load(&Self::default_dir())
    }

    /// Add the names of one list file (one per line, `#` comments).
    pub fn add_list(&mut self, module: &str, text: &str) -> Result<(), String> {
        let set = self.modules.entry(module.to_ascii_lowercase()).or_default();
        for (i, line) in text.lines().enumerate() {
            let name = line.split('#').next().unwrap_or("").trim();
            if name.is_empty() {
                continue;
            }
            if name.contains(char::is_whitespace) || !name.is_ascii() {
                return Err(format!(
                    "{module}.txt line {}: {name:?} is not one export name",
                    i + 1
                ));
            }
            if !set.insert(name.to_string()) {
                return Err(format!(
                    "{module}.txt line {}: {name} is listed twice",
                    i + 1
                ));
            }
        }
        Ok(())
    }

    /// Is `module` one of the allowed modules (case-insensitive)?
    pub fn has_module(&self, module: &str) -> bool {
        self.modules.contains_key(&module.to_ascii_lowercase())
    }

    /// Is `name` a known export of `module`? (Module case-insensitive, name exact.)
    pub fn contains(&self, module: &str, name: &str) -> bool {
        self.modules
            .get(&module.to_ascii_lowercase())
            .is_some_and(|s| s.contains(name))
    }

    /// Number of names known for a module.
    pub fn len(&self, module: &str) -> usize {
        self.modules
            .get(&module.to_ascii_lowercase())
            .map_or(0, BTreeSet::len)
    }

    /// Is the list empty?
    pub fn is_empty(&self) -> bool {
        self.modules.values().all(BTreeSet::is_empty)
    }
}

/// Routines declared in a Rust source file inside `extern` blocks that carry a
/// `link(name = "<module>" ...)` attribute: (module, name) pairs. A light
/// textual scan, used by a test to keep `crates/ndis-sys/src/ffi.rs` and the
/// allow-list in step before a routine is first called.
pub fn declared_imports(source: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut module: Option<String> = None;
    let mut depth = 0usize;
    let mut block_depth: Option<usize> = None;
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or("");
        if let Some(pos) = code.find("link(name = \"") {
            let rest = &code[pos + "link(name = \"".len()..];
            if let Some(end) = rest.find('"') {
                module = Some(rest[..end].to_string());
            }
        }
        let trimmed = code.trim_start();
        if block_depth.is_none()
            && module.is_some()
            && trimmed.contains("extern \"")
            && trimmed.contains('{')
        {
            block_depth = Some(depth);
        }
        if let (Some(_), Some(m)) = (block_depth, &module) {
            for kw in ["pub fn ", "pub(crate) fn ", "fn "] {
                if let Some(p) = trimmed.find(kw) {
                    let rest = &trimmed[p + kw.len()..];
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        out.push((m.clone(), name));
                    }
                    break;
                }
            }
        }
        for c in code.chars() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if block_depth == Some(depth) {
                        block_depth = None;
                        module = None;
                    }
                }
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_lists_load_and_are_not_empty() {
        let known = KnownExports::load_default().unwrap();
        for m in MODULES {
            assert!(known.len(m) > 0, "{m}");
        }
        assert!(known.contains("NTOSKRNL.EXE", "memcpy"));
        assert!(known.contains("ndis.sys", "NdisFRegisterFilterDriver"));
        assert!(
            !known.contains("ndis.sys", "ndisfregisterfilterdriver"),
            "names are case-sensitive"
        );
        assert!(!known.has_module("http.sys"));
    }

    #[test]
    fn duplicate_and_malformed_names_are_rejected() {
        let mut k = KnownExports::default();
        assert!(k.add_list("x.sys", "A\nA\n").is_err());
        let mut k = KnownExports::default();
        assert!(k.add_list("x.sys", "A B\n").is_err());
    }

    #[test]
    fn declared_imports_scan() {
        let src = r#"
#[cfg_attr(target_os = "windows", link(name = "ndis.sys", kind = "raw-dylib", modifiers = "+verbatim"))]
extern "system" {
    pub fn NdisA(x: u32) -> u32;
    /// doc
    pub fn NdisB(
        y: u32,
    );
}
pub fn not_an_import() {}
#[cfg_attr(target_os = "windows", link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim"))]
extern "C" { pub fn memcpy(); }
"#;
        let got = declared_imports(src);
        let want: Vec<(String, String)> = [
            ("ndis.sys", "NdisA"),
            ("ndis.sys", "NdisB"),
            ("ntoskrnl.exe", "memcpy"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    /// Every routine ndis-sys declares for a windows target must be a known
    /// export of the module it is declared against, so that calling it for the
    /// first time cannot produce an image that fails to load.
    #[test]
    fn every_routine_declared_in_ndis_sys_is_a_known_export() {
        let ffi = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/ndis-sys/src");
        let known = KnownExports::load_default().unwrap();
        let mut checked = 0;
        let mut missing = Vec::new();
        for entry in std::fs::read_dir(&ffi).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (module, name) in declared_imports(&text) {
                checked += 1;
                if !known.contains(&module, &name) {
                    missing.push(format!("{}: {module}!{name}", path.display()));
                }
            }
        }
        assert!(
            checked > 0,
            "no raw-dylib declarations found under {}",
            ffi.display()
        );
        assert!(
            missing.is_empty(),
            "declared but not in xtask/known-exports: {missing:#?}"
        );
    }
}
