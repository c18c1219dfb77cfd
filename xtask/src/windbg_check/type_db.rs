//! The PDB's side: its structures with their members (and the structure each member leads to), its
//! public symbols and the types of its global data, read from the type and symbol streams with the
//! `pdb` crate.
//!
//! Owns: [`TypeDb`] and the questions the checks ask it (a public's type, a member of a type, the
//! types reachable from some roots). Must not: know the script's or the NatVis's syntax (`script.rs`,
//! `natvis.rs`) or decide what passes (`mod.rs`'s checks).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;

use pdb::FallibleIterator;

/// One member of a structure, as the PDB describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub offset: u64,
    /// The structure reached through this member (directly, as an array element, or through a
    /// pointer), if any.
    pub target: Option<String>,
}

/// One structure of the PDB's type stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StructInfo {
    pub size: u64,
    pub fields: Vec<Field>,
}

/// The structures of a PDB by name, its public symbols, and the types of its global data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeDb {
    pub types: BTreeMap<String, StructInfo>,
    pub publics: BTreeSet<String>,
    /// (section, offset) of each public symbol.
    pub public_at: BTreeMap<String, (u16, u32)>,
    /// The structure type of each global data symbol, by (section, offset).
    pub data_types: BTreeMap<(u16, u32), Vec<String>>,
}

impl TypeDb {
    /// Reads every complete structure (with its members) and every public symbol of a PDB.
    pub fn from_pdb(bytes: &[u8]) -> Result<TypeDb, String> {
        let mut pdb =
            pdb::PDB::open(Cursor::new(bytes)).map_err(|e| format!("not a readable PDB: {e}"))?;
        let info = pdb
            .type_information()
            .map_err(|e| format!("no type stream: {e}"))?;
        let mut finder = info.finder();
        let mut iter = info.iter();
        let mut classes = Vec::new();
        while let Some(item) = iter.next().map_err(|e| format!("type stream: {e}"))? {
            finder.update(&iter);
            if let Ok(pdb::TypeData::Class(c)) = item.parse() {
                if !c.properties.forward_reference() {
                    if let Some(fields) = c.fields {
                        classes.push((c.name.to_string().into_owned(), c.size, fields));
                    }
                }
            }
        }
        let mut db = TypeDb::default();
        for (name, size, fields) in classes {
            if db.types.contains_key(&name) {
                continue;
            }
            let mut out = Vec::new();
            let mut next = Some(fields);
            while let Some(index) = next.take() {
                let Ok(pdb::TypeData::FieldList(list)) = finder.find(index).and_then(|t| t.parse())
                else {
                    break;
                };
                for f in list.fields {
                    if let pdb::TypeData::Member(m) = f {
                        out.push(Field {
                            name: m.name.to_string().into_owned(),
                            offset: m.offset,
                            target: struct_behind(&finder, m.field_type, 0),
                        });
                    }
                }
                next = list.continuation;
            }
            db.types.insert(name, StructInfo { size, fields: out });
        }
        let symbols = pdb
            .global_symbols()
            .map_err(|e| format!("no global symbol stream: {e}"))?;
        let mut it = symbols.iter();
        while let Some(sym) = it.next().map_err(|e| format!("symbol stream: {e}"))? {
            match sym.parse() {
                Ok(pdb::SymbolData::Public(p)) => {
                    let name = p.name.to_string().into_owned();
                    db.public_at
                        .insert(name.clone(), (p.offset.section, p.offset.offset));
                    db.publics.insert(name);
                }
                Ok(pdb::SymbolData::Data(d)) if d.global => {
                    if let Some(ty) = struct_behind(&finder, d.type_index, 0) {
                        db.data_types
                            .entry((d.offset.section, d.offset.offset))
                            .or_default()
                            .push(ty);
                    }
                }
                _ => {}
            }
        }
        Ok(db)
    }

    /// Whether the public symbol `name` is global data of structure type `ty` (the debugger can then
    /// show it typed).
    pub fn public_has_type(&self, name: &str, ty: &str) -> bool {
        self.public_at
            .get(name)
            .and_then(|at| self.data_types.get(at))
            .is_some_and(|types| types.iter().any(|t| t == ty))
    }

    /// The member `field` of structure `ty`.
    pub fn field(&self, ty: &str, field: &str) -> Option<&Field> {
        self.types.get(ty)?.fields.iter().find(|f| f.name == field)
    }

    /// Every structure reachable from `roots` through members (the roots included, if present).
    pub fn reachable<'a>(&self, roots: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = roots.into_iter().map(str::to_string).collect();
        while let Some(t) = todo.pop() {
            let Some(info) = self.types.get(&t) else {
                continue;
            };
            if !seen.insert(t) {
                continue;
            }
            todo.extend(info.fields.iter().filter_map(|f| f.target.clone()));
        }
        seen
    }
}

/// The structure a member's type leads to (through arrays, pointers and modifiers).
fn struct_behind(
    finder: &pdb::TypeFinder<'_>,
    index: pdb::TypeIndex,
    depth: u32,
) -> Option<String> {
    if depth > 8 {
        return None;
    }
    match finder.find(index).ok()?.parse().ok()? {
        pdb::TypeData::Class(c) => Some(c.name.to_string().into_owned()),
        pdb::TypeData::Array(a) => struct_behind(finder, a.element_type, depth + 1),
        pdb::TypeData::Pointer(p) => struct_behind(finder, p.underlying_type, depth + 1),
        pdb::TypeData::Modifier(m) => struct_behind(finder, m.underlying_type, depth + 1),
        _ => None,
    }
}
