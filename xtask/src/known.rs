//! The allow-list of known exports (`xtask/known-exports/<module>.txt`): the only
//! modules and names `mdlpool.sys` may import. See `known-exports/README.md`
//! for the evidence behind each name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::arch::Arch;

/// The modules a kernel driver of this project may import from, as their
/// allow-list files are named.
pub const MODULES: &[&str] = &["ntoskrnl.exe", "hal.dll", "ndis.sys"];

/// What the allow-list says about one exported name (the attributes after
/// the name on its line: `min=<build>`, `arch=<amd64|arm64>[,...]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Export {
    /// The first Windows build that exports the name (`min=19041`); `None`
    /// when it is older than any Windows 10 build.
    pub min_build: Option<u32>,
    /// The architectures whose module exports the name (`arch=arm64`);
    /// `None` for every architecture.
    pub arches: Option<BTreeSet<Arch>>,
}

impl Export {
    /// Is the name exported on `arch`?
    pub fn on(&self, arch: Arch) -> bool {
        self.arches.as_ref().is_none_or(|a| a.contains(&arch))
    }
}

/// Known exports per module (module names lowercased).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownExports {
    modules: BTreeMap<String, BTreeMap<String, Export>>,
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

    /// Add the names of one list file: one name per line, optionally followed
    /// by `min=<build>` and `arch=<arch>[,<arch>]`; `#` starts a comment.
    pub fn add_list(&mut self, module: &str, text: &str) -> Result<(), String> {
        let set = self.modules.entry(module.to_ascii_lowercase()).or_default();
        for (i, line) in text.lines().enumerate() {
            let mut words = line.split('#').next().unwrap_or("").split_whitespace();
            let Some(name) = words.next() else {
                continue;
            };
            let at = |msg: String| format!("{module}.txt line {}: {msg}", i + 1);
            if !name.is_ascii() || name.contains('=') {
                return Err(at(format!("{name:?} is not an export name")));
            }
            let mut export = Export::default();
            for word in words {
                match word.split_once('=') {
                    Some(("min", v)) if export.min_build.is_none() => {
                        export.min_build =
                            Some(v.parse().map_err(|_| {
                                at(format!("{name}: min={v:?} is not a build number"))
                            })?);
                    }
                    Some(("arch", v)) if export.arches.is_none() => {
                        let mut arches = BTreeSet::new();
                        for a in v.split(',') {
                            arches.insert(Arch::parse(a).ok_or_else(|| {
                                at(format!("{name}: arch {a:?} is not amd64 or arm64"))
                            })?);
                        }
                        export.arches = Some(arches);
                    }
                    _ => {
                        return Err(at(format!(
                            "{name}: {word:?} is not one min=<build> or arch=<arch>[,<arch>]"
                        )))
                    }
                }
            }
            if set.insert(name.to_string(), export).is_some() {
                return Err(at(format!("{name} is listed twice")));
            }
        }
        Ok(())
    }

    /// Is `module` one of the allowed modules (case-insensitive)?
    pub fn has_module(&self, module: &str) -> bool {
        self.modules.contains_key(&module.to_ascii_lowercase())
    }

    /// What the list says about `module!name` (module case-insensitive,
    /// name exact), on any architecture.
    pub fn get(&self, module: &str, name: &str) -> Option<&Export> {
        self.modules
            .get(&module.to_ascii_lowercase())
            .and_then(|m| m.get(name))
    }

    /// Is `name` a known export of `module` on some architecture?
    pub fn contains(&self, module: &str, name: &str) -> bool {
        self.get(module, name).is_some()
    }

    /// Is `name` a known export of `module` on `arch`?
    pub fn allows(&self, arch: Arch, module: &str, name: &str) -> bool {
        self.get(module, name).is_some_and(|e| e.on(arch))
    }

    /// The first Windows build exporting `module!name`, when the list names one.
    pub fn min_build(&self, module: &str, name: &str) -> Option<u32> {
        self.get(module, name).and_then(|e| e.min_build)
    }

    /// The modules that export `name` on `arch`, by the lists.
    pub fn modules_exporting(&self, arch: Arch, name: &str) -> Vec<String> {
        self.modules
            .iter()
            .filter(|(_, names)| names.get(name).is_some_and(|e| e.on(arch)))
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// Number of names known for a module.
    pub fn len(&self, module: &str) -> usize {
        self.modules
            .get(&module.to_ascii_lowercase())
            .map_or(0, BTreeMap::len)
    }

    /// Is the list empty?
    pub fn is_empty(&self) -> bool {
        self.modules.values().all(BTreeMap::is_empty)
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
        for bad in [
            "A\nA\n",
            "A B\n",
            "A min=x\n",
            "A min=1 min=2\n",
            "A arch=x86\n",
            "min=1\n",
        ] {
            let mut k = KnownExports::default();
            assert!(k.add_list("x.sys", bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn attributes_give_min_build_and_architectures() {
        let mut k = KnownExports::default();
        k.add_list(
            "hal.dll",
            "Plain\nNew min=19041 # comment\nArmOnly arch=arm64\nBoth arch=amd64,arm64 min=9200\n",
        )
        .unwrap();
        assert_eq!(k.min_build("HAL.DLL", "New"), Some(19041));
        assert_eq!(k.min_build("hal.dll", "Plain"), None);
        assert!(k.allows(Arch::Arm64, "hal.dll", "ArmOnly"));
        assert!(!k.allows(Arch::Amd64, "hal.dll", "ArmOnly"));
        assert!(k.contains("hal.dll", "ArmOnly"));
        assert!(
            k.allows(Arch::Amd64, "hal.dll", "Both") && k.allows(Arch::Arm64, "hal.dll", "Both")
        );
        assert_eq!(k.modules_exporting(Arch::Arm64, "ArmOnly"), vec!["hal.dll"]);
        assert!(k.modules_exporting(Arch::Amd64, "ArmOnly").is_empty());
    }

    /// The arm64 IRQL routines are hal.dll exports and nothing else lists them
    /// for arm64 (known-exports/README.md has the evidence).
    #[test]
    fn arm64_irql_routines_are_hal_exports_only() {
        let known = KnownExports::load_default().unwrap();
        for name in crate::arch::ARM64_HAL_IRQL {
            assert_eq!(
                known.modules_exporting(Arch::Arm64, name),
                vec!["hal.dll"],
                "{name}"
            );
        }
        for name in ["KeLowerIrql", "KeRaiseIrql", "KeRaiseIrqlToDpcLevel"] {
            assert!(
                known.modules_exporting(Arch::Arm64, name).is_empty(),
                "{name}"
            );
        }
        assert_eq!(
            known.min_build("ntoskrnl.exe", "ExAllocatePool2"),
            Some(19041)
        );
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
