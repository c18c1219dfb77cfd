//! Function names for addresses in the image, from its PDB: procedures (with their lengths) from the
//! module streams, and public symbols as a fallback. Used to name the driver function behind a
//! verifier finding, a trapped instruction or a callback pointer.
//!
//! The PDB must match the image (CodeView GUID); a mismatched PDB is refused rather than trusted,
//! since wrong names are worse than none. This module owns only the symbol table; it is built before
//! the image runs, and lookups never allocate (the signal handler uses them).

use crate::pe::CodeView;
use pdb::FallibleIterator;
use std::path::{Path, PathBuf};

/// One function (or public symbol) of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// RVA of its first byte.
    pub rva: u32,
    /// Length in bytes, 0 when unknown (public symbols).
    pub len: u32,
    /// Its name as the PDB spells it (`mdlpool::driver::DriverEntry`, or a public's mangled name).
    pub name: String,
}

/// The image's symbols sorted by RVA.
#[derive(Debug, Clone, Default)]
pub struct Symbols {
    /// Where they came from.
    pub pdb_path: PathBuf,
    syms: Vec<Symbol>,
}

impl Symbols {
    /// Finds the PDB for the image at `image_path` (next to it with the same stem, then the path the
    /// CodeView record names) and reads its symbols. `codeview` is the image's record; when present,
    /// only a PDB with the same GUID is accepted.
    pub fn for_image(image_path: &Path, codeview: Option<&CodeView>) -> Result<Symbols, String> {
        let mut candidates = vec![image_path.with_extension("pdb")];
        if let Some(cv) = codeview {
            let recorded = PathBuf::from(cv.path.replace('\\', "/"));
            if !candidates.contains(&recorded) {
                candidates.push(recorded);
            }
        }
        let mut why = Vec::new();
        for c in &candidates {
            if !c.is_file() {
                why.push(format!("{}: not found", c.display()));
                continue;
            }
            match Symbols::load(c, codeview) {
                Ok(s) => return Ok(s),
                Err(e) => why.push(format!("{}: {e}", c.display())),
            }
        }
        Err(format!(
            "no usable PDB for {} ({})",
            image_path.display(),
            why.join("; ")
        ))
    }

    /// Reads the symbols of the PDB at `path`; with `expect`, refuses a PDB whose GUID differs.
    pub fn load(path: &Path, expect: Option<&CodeView>) -> Result<Symbols, String> {
        let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
        let mut pdb = pdb::PDB::open(file).map_err(|e| format!("not a PDB: {e}"))?;
        if let Some(cv) = expect {
            let info = pdb.pdb_information().map_err(|e| e.to_string())?;
            let (d1, d2, d3, d4) = info.guid.as_fields();
            let mut g = [0u8; 16];
            g[0..4].copy_from_slice(&d1.to_le_bytes());
            g[4..6].copy_from_slice(&d2.to_le_bytes());
            g[6..8].copy_from_slice(&d3.to_le_bytes());
            g[8..16].copy_from_slice(d4);
            if g != cv.guid {
                return Err(
                    "its GUID does not match the image's CodeView record (stale PDB)".into(),
                );
            }
        }
        let map = pdb.address_map().map_err(|e| e.to_string())?;
        let mut syms = Vec::new();

        // Procedures, with lengths, from every module.
        let di = pdb.debug_information().map_err(|e| e.to_string())?;
        let mut modules = di.modules().map_err(|e| e.to_string())?;
        while let Some(m) = modules.next().map_err(|e| e.to_string())? {
            let Some(info) = pdb.module_info(&m).map_err(|e| e.to_string())? else {
                continue;
            };
            let mut it = info.symbols().map_err(|e| e.to_string())?;
            while let Some(sym) = it.next().map_err(|e| e.to_string())? {
                if let Ok(pdb::SymbolData::Procedure(p)) = sym.parse() {
                    if let Some(rva) = p.offset.to_rva(&map) {
                        syms.push(Symbol {
                            rva: rva.0,
                            len: p.len,
                            name: p.name.to_string().into_owned(),
                        });
                    }
                }
            }
        }
        // Publics fill in what has no procedure record.
        let globals = pdb.global_symbols().map_err(|e| e.to_string())?;
        let mut it = globals.iter();
        while let Some(sym) = it.next().map_err(|e| e.to_string())? {
            if let Ok(pdb::SymbolData::Public(p)) = sym.parse() {
                if let Some(rva) = p.offset.to_rva(&map) {
                    if !syms.iter().any(|s| s.rva == rva.0) {
                        syms.push(Symbol {
                            rva: rva.0,
                            len: 0,
                            name: p.name.to_string().into_owned(),
                        });
                    }
                }
            }
        }
        syms.sort_by(|a, b| a.rva.cmp(&b.rva).then(b.len.cmp(&a.len)));
        syms.dedup_by(|later, earlier| later.rva == earlier.rva);
        Ok(Symbols {
            pdb_path: path.to_path_buf(),
            syms,
        })
    }

    /// The symbol containing `rva` and the offset into it. A symbol with a known length contains
    /// only its own bytes; one without (a public) covers up to the next symbol. Never allocates.
    pub fn lookup(&self, rva: u32) -> Option<(&str, u32)> {
        let idx = self.syms.partition_point(|s| s.rva <= rva);
        let s = self.syms.get(idx.checked_sub(1)?)?;
        if s.len != 0 && rva >= s.rva + s.len {
            return None;
        }
        Some((s.name.as_str(), rva - s.rva))
    }

    /// The RVA of the first symbol whose name equals `name` or ends with `::name`.
    pub fn find(&self, name: &str) -> Option<u32> {
        let suffix = format!("::{name}");
        self.syms
            .iter()
            .find(|s| s.name == name || s.name.ends_with(&suffix))
            .map(|s| s.rva)
    }

    /// Every symbol, sorted by RVA.
    pub fn all(&self) -> &[Symbol] {
        &self.syms
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.syms.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }
}
