//! The WinDbg files against the PDB: `windbg/mdlpool.natvis` and `windbg/mdlpool.js` name types and
//! fields of the driver (the statistics root and the pool's counter rows); a rename in Rust that is not
//! made there too would leave the debugger view silently broken on the test machine. This module reads
//! the PDB's type stream and fails the package when:
//! - the root symbol (`MdlPoolStats`) is not a public of the PDB;
//! - a type the script or the NatVis names is not in the PDB (`windbg.js.types`, `windbg.natvis.types`);
//! - a field the script reads is not a member of its type (`windbg.js.fields`);
//! - an identifier in a NatVis expression is neither a member of the `<Type>` it is written for (nor a
//!   declared `<Variable>` or a C keyword), nor, after `.`/`->`, a member of some type reachable from the
//!   NatVis types (`windbg.natvis.fields`).
//!
//! It also copies the two files into each package (see `package::write`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::{Path, PathBuf};

use pdb::FallibleIterator;

use crate::verify::{Check, Report};

/// The NatVis file name, in `windbg/` and in each package.
pub const NATVIS_FILE: &str = "mdlpool.natvis";
/// The debugger script file name, in `windbg/` and in each package.
pub const SCRIPT_FILE: &str = "mdlpool.js";

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

/// What the script declares it reads (its LAYOUT section): for every `var <X>_TYPE = "..."` the fields
/// of `var <X>_FIELDS = [...]` (entries `"name"` or `["name", ...]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScriptLayout {
    pub root_symbol: String,
    pub root_type: String,
    pub counter_type: String,
    pub root_fields: Vec<String>,
    pub counter_fields: Vec<String>,
    /// Every (type, fields) pair, the two above included.
    pub types: Vec<(String, Vec<String>)>,
}

fn js_string_var(js: &str, var: &str) -> Result<String, String> {
    let key = format!("var {var} = \"");
    let start = js
        .find(&key)
        .ok_or_else(|| format!("{SCRIPT_FILE}: no `{key}...\"`"))?
        + key.len();
    let end = js[start..]
        .find('"')
        .ok_or_else(|| format!("{SCRIPT_FILE}: unterminated {var}"))?;
    Ok(js[start..start + end].to_string())
}

fn js_array_body<'a>(js: &'a str, var: &str) -> Result<&'a str, String> {
    let key = format!("var {var} = [");
    let start = js
        .find(&key)
        .ok_or_else(|| format!("{SCRIPT_FILE}: no `{key}`"))?
        + key.len();
    let end = js[start..]
        .find("];")
        .ok_or_else(|| format!("{SCRIPT_FILE}: unterminated {var}"))?;
    Ok(&js[start..start + end])
}

/// The quoted strings of `body` that open an entry (`"x"` or `["x", ...]`), in order.
fn quoted_entries(body: &str, first_of_tuple: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = body;
    let opener = if first_of_tuple { "[\"" } else { "\"" };
    while let Some(i) = rest.find(opener) {
        let s = &rest[i + opener.len()..];
        let Some(j) = s.find('"') else { break };
        out.push(s[..j].to_string());
        rest = &s[j + 1..];
        if first_of_tuple {
            // skip to the end of this tuple
            match rest.find(']') {
                Some(k) => rest = &rest[k + 1..],
                None => break,
            }
        }
    }
    out
}

/// Reads the script's LAYOUT section.
pub fn parse_script(js: &str) -> Result<ScriptLayout, String> {
    let mut types = Vec::new();
    let mut rest = js;
    while let Some(i) = rest.find("_TYPE = \"") {
        let line_start = rest[..i].rfind("var ").map(|k| k + 4);
        let prefix = line_start.map(|k| &rest[k..i]).unwrap_or("");
        rest = &rest[i + 1..];
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            continue;
        }
        let ty = js_string_var(js, &format!("{prefix}_TYPE"))?;
        let body = js_array_body(js, &format!("{prefix}_FIELDS"))?;
        let tuples = body.trim_start().starts_with('[');
        types.push((ty, quoted_entries(body, tuples)));
    }
    let find = |ty: &str| types.iter().find(|(t, _)| t == ty).map(|(_, f)| f.clone());
    let root_type = js_string_var(js, "ROOT_TYPE")?;
    let counter_type = js_string_var(js, "COUNTER_TYPE")?;
    Ok(ScriptLayout {
        root_symbol: js_string_var(js, "ROOT_SYMBOL")?,
        root_fields: find(&root_type).unwrap_or_default(),
        counter_fields: find(&counter_type).unwrap_or_default(),
        root_type,
        counter_type,
        types,
    })
}

/// The names one NatVis `<Type>` uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NatvisType {
    pub name: String,
    /// Identifiers not after `.`/`->`: must be members of this type (or variables/keywords).
    pub top: BTreeSet<String>,
    /// Identifiers after `.`/`->`.
    pub members: BTreeSet<String>,
    /// `a::b::C` names used in expressions (casts).
    pub type_refs: BTreeSet<String>,
    /// `<Variable Name=...>` declared in it.
    pub variables: BTreeSet<String>,
}

const KEYWORDS: &[&str] = &[
    "sizeof", "unsigned", "signed", "__int64", "__int32", "int", "long", "short", "char", "bool",
    "float", "double", "void", "true", "false", "this", "nullptr",
];

fn unescape_xml(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The value of attribute `attr` in the tag text `tag` (`<Item Name="x" Condition="y">`).
fn attribute(tag: &str, attr: &str) -> Option<String> {
    let key = format!(" {attr}=\"");
    let start = tag.find(&key)? + key.len();
    let end = tag[start..].find('"')?;
    Some(unescape_xml(&tag[start..start + end]))
}

/// Strips a trailing `,format` specifier (`{x,d}`).
fn strip_format(expr: &str) -> &str {
    match expr.rfind(',') {
        Some(i)
            if expr[i + 1..]
                .trim()
                .chars()
                .all(|c| c.is_ascii_alphabetic()) =>
        {
            &expr[..i]
        }
        _ => expr,
    }
}

/// The `{...}` parts of a DisplayString or a Name.
fn braced(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        let Some(j) = rest[i..].find('}') else { break };
        out.push(strip_format(&rest[i + 1..i + j]).to_string());
        rest = &rest[i + j + 1..];
    }
    out
}

/// Adds the identifiers of one expression to `t`.
fn scan_expression(expr: &str, t: &mut NatvisType) {
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'\'' {
            // string / char literal
            i += 1;
            while i < b.len() && b[i] != c {
                i += 1;
            }
            i += 1;
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
        } else if c == b'$' {
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            loop {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                if expr[i..].starts_with("::") {
                    i += 2;
                    continue;
                }
                // generic arguments of a qualified type name, e.g. AtomicPtr<a::B>
                if expr[start..i].contains("::") && expr[i..].starts_with('<') {
                    let mut depth = 0;
                    while i < b.len() {
                        match b[i] {
                            b'<' => depth += 1,
                            b'>' => {
                                depth -= 1;
                                if depth == 0 {
                                    i += 1;
                                    break;
                                }
                            }
                            _ => {}
                        }
                        i += 1;
                    }
                }
                break;
            }
            let word = &expr[start..i];
            let before = expr[..start].trim_end();
            if word.contains("::") {
                t.type_refs.insert(word.to_string());
            } else if before.ends_with('.') || before.ends_with("->") {
                t.members.insert(word.to_string());
            } else if !KEYWORDS.contains(&word) {
                t.top.insert(word.to_string());
            }
        } else {
            i += 1;
        }
    }
}

/// Reads the `<Type>` blocks of a NatVis file and the names their expressions use.
pub fn parse_natvis(xml: &str) -> Result<Vec<NatvisType>, String> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<Type ") {
        let end = rest[i..]
            .find("</Type>")
            .ok_or_else(|| format!("{NATVIS_FILE}: <Type> without </Type>"))?
            + i;
        let block = &rest[i..end];
        rest = &rest[end + "</Type>".len()..];
        let open_end = block
            .find('>')
            .ok_or_else(|| format!("{NATVIS_FILE}: malformed <Type>"))?;
        let name = attribute(&block[..open_end], "Name")
            .ok_or_else(|| format!("{NATVIS_FILE}: <Type> without Name"))?;
        let mut t = NatvisType {
            name,
            ..Default::default()
        };
        // Walk the tags of the block.
        let mut pos = open_end + 1;
        while let Some(lt) = block[pos..].find('<') {
            let tag_start = pos + lt;
            let Some(gt) = block[tag_start..].find('>') else {
                break;
            };
            let tag = &block[tag_start..tag_start + gt + 1];
            pos = tag_start + gt + 1;
            if tag.starts_with("</") || tag.starts_with("<!--") {
                if tag.starts_with("<!--") {
                    if let Some(close) = block[tag_start..].find("-->") {
                        pos = tag_start + close + 3;
                    }
                }
                continue;
            }
            let elem: String = tag[1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            for attr in ["Condition", "InitialValue"] {
                if let Some(v) = attribute(tag, attr) {
                    scan_expression(&v, &mut t);
                }
            }
            if let Some(n) = attribute(tag, "Name") {
                if elem == "Variable" {
                    t.variables.insert(n);
                } else {
                    for e in braced(&n) {
                        scan_expression(&e, &mut t);
                    }
                }
            }
            if tag.ends_with("/>") {
                continue;
            }
            let text_end = block[pos..]
                .find('<')
                .map(|k| pos + k)
                .unwrap_or(block.len());
            let text = unescape_xml(&block[pos..text_end]);
            match elem.as_str() {
                "DisplayString" => {
                    for e in braced(&text) {
                        scan_expression(&e, &mut t);
                    }
                }
                "Item" | "Size" | "ValuePointer" | "ValueNode" | "Exec" | "ExpandedItem"
                | "HeadPointer" | "NextPointer" | "Value" | "Index" => {
                    scan_expression(strip_format(&text), &mut t)
                }
                _ => {}
            }
        }
        out.push(t);
    }
    if out.is_empty() {
        return Err(format!("{NATVIS_FILE}: no <Type> elements"));
    }
    Ok(out)
}

fn check(id: &'static str, passed: bool, detail: impl Into<String>) -> Check {
    Check {
        id,
        passed,
        detail: detail.into(),
    }
}

/// All WinDbg checks over a parsed PDB and the two files' texts.
pub fn checks(db: &TypeDb, natvis: &str, js: &str) -> Vec<Check> {
    let mut out = Vec::new();
    // The script's layout.
    match parse_script(js) {
        Err(e) => out.push(check("windbg.js.parse", false, e)),
        Ok(layout) => {
            out.push(check(
                "windbg.pdb.public",
                db.publics.contains(&layout.root_symbol),
                format!("public symbol {} (the statistics root)", layout.root_symbol),
            ));
            out.push(check(
                "windbg.pdb.root_type",
                db.public_has_type(&layout.root_symbol, &layout.root_type),
                format!(
                    "global data at {} has type {}",
                    layout.root_symbol, layout.root_type
                ),
            ));
            let mut missing_types = Vec::new();
            let mut missing_fields = Vec::new();
            for (ty, fields) in &layout.types {
                if !db.types.contains_key(ty.as_str()) {
                    missing_types.push(ty.clone());
                    continue;
                }
                for f in fields {
                    if db.field(ty, f).is_none() {
                        missing_fields.push(format!("{ty}.{f}"));
                    }
                }
            }
            out.push(check(
                "windbg.js.types",
                missing_types.is_empty(),
                if missing_types.is_empty() {
                    let names: Vec<&str> = layout.types.iter().map(|(t, _)| t.as_str()).collect();
                    format!("{SCRIPT_FILE}: {} are in the PDB", names.join(", "))
                } else {
                    format!(
                        "{SCRIPT_FILE} names types the PDB lacks: {}",
                        missing_types.join(", ")
                    )
                },
            ));
            let n: usize = layout.types.iter().map(|(_, f)| f.len()).sum();
            out.push(check(
                "windbg.js.fields",
                missing_fields.is_empty() && n > 0,
                if missing_fields.is_empty() {
                    format!("{SCRIPT_FILE}: all {n} fields it reads are members in the PDB")
                } else {
                    format!(
                        "{SCRIPT_FILE} reads fields the PDB type lacks: {}",
                        missing_fields.join(", ")
                    )
                },
            ));
        }
    }
    // The NatVis.
    match parse_natvis(natvis) {
        Err(e) => out.push(check("windbg.natvis.parse", false, e)),
        Ok(types) => {
            let mut missing_types = Vec::new();
            let mut missing_fields = Vec::new();
            let reachable = db.reachable(types.iter().map(|t| t.name.as_str()));
            let member_names: BTreeSet<&str> = reachable
                .iter()
                .flat_map(|t| db.types[t].fields.iter().map(|f| f.name.as_str()))
                .collect();
            let mut used = 0;
            for t in &types {
                if !db.types.contains_key(&t.name) {
                    missing_types.push(t.name.clone());
                    continue;
                }
                for r in &t.type_refs {
                    if !db.types.contains_key(r) {
                        missing_types.push(r.clone());
                    }
                }
                for id in &t.top {
                    used += 1;
                    if !t.variables.contains(id) && db.field(&t.name, id).is_none() {
                        missing_fields.push(format!("{}: {id}", t.name));
                    }
                }
                for m in &t.members {
                    used += 1;
                    if !member_names.contains(m.as_str()) {
                        missing_fields.push(format!("{}: .{m}", t.name));
                    }
                }
            }
            out.push(check(
                "windbg.natvis.types",
                missing_types.is_empty(),
                if missing_types.is_empty() {
                    format!(
                        "{NATVIS_FILE}: all {} visualised types are in the PDB",
                        types.len()
                    )
                } else {
                    format!(
                        "{NATVIS_FILE} names types the PDB lacks: {}",
                        missing_types.join(", ")
                    )
                },
            ));
            out.push(check(
                "windbg.natvis.fields",
                missing_fields.is_empty() && used > 0,
                if missing_fields.is_empty() {
                    format!("{NATVIS_FILE}: all {used} names in its expressions are PDB members or its variables")
                } else {
                    format!("{NATVIS_FILE} uses names no PDB type has: {}", missing_fields.join(", "))
                },
            ));
        }
    }
    out
}

/// The PDB checks over the given texts, appended to `report`.
pub fn verify_windbg(pdb: &[u8], natvis: &str, js: &str, report: &mut Report) {
    match TypeDb::from_pdb(pdb) {
        Ok(db) => report.checks.extend(checks(&db, natvis, js)),
        Err(e) => report.checks.push(check("windbg.pdb.types", false, e)),
    }
}

/// `windbg/` of the workspace.
pub fn windbg_dir() -> PathBuf {
    crate::package::workspace_root().join("windbg")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, target: Option<&str>) -> Field {
        Field {
            name: name.into(),
            offset: 0,
            target: target.map(str::to_string),
        }
    }

    /// A small PDB-like database with the shapes the real one has.
    fn db() -> TypeDb {
        let mut db = TypeDb::default();
        db.publics.insert("MdlPoolStats".into());
        db.public_at.insert("MdlPoolStats".into(), (3, 0));
        db.data_types.insert((3, 0), vec!["a::Root".into()]);
        db.types.insert(
            "core::sync::atomic::AtomicU64".into(),
            StructInfo {
                size: 8,
                fields: vec![field("v", Some("core::cell::UnsafeCell<u64>"))],
            },
        );
        db.types.insert(
            "core::cell::UnsafeCell<u64>".into(),
            StructInfo {
                size: 8,
                fields: vec![field("value", None)],
            },
        );
        db.types.insert(
            "a::Root".into(),
            StructInfo {
                size: 16,
                fields: vec![
                    field("state", Some("core::sync::atomic::AtomicU64")),
                    field("rows", Some("a::Row")),
                ],
            },
        );
        db.types.insert(
            "a::Row".into(),
            StructInfo {
                size: 8,
                fields: vec![field(
                    "total_allocates",
                    Some("core::sync::atomic::AtomicU64"),
                )],
            },
        );
        db
    }

    const JS: &str = r#"
var ROOT_SYMBOL = "MdlPoolStats";
var ROOT_TYPE = "a::Root";
var COUNTER_TYPE = "a::Row";
var ROOT_FIELDS = [
    ["state", 8, ""],
    ["rows", 0, "state"]
];
var COUNTER_FIELDS = [
    "total_allocates"
];
"#;

    const NATVIS: &str = r#"<?xml version="1.0"?>
<AutoVisualizer>
  <Type Name="a::Root">
    <DisplayString Condition="state.v.value == 2">running {rows.total_allocates.v.value,d}</DisplayString>
    <Expand>
      <CustomListItems>
        <Variable Name="s" InitialValue="(unsigned __int64)0"/>
        <Loop Condition="s &lt; state.v.value"><Exec>s += ((a::Row*)&amp;rows)->total_allocates.v.value</Exec></Loop>
        <Item Name="[{s}] x">s * 100.0</Item>
      </CustomListItems>
    </Expand>
  </Type>
</AutoVisualizer>
"#;

    fn failed(checks: &[Check]) -> BTreeSet<&'static str> {
        checks.iter().filter(|c| !c.passed).map(|c| c.id).collect()
    }

    #[test]
    fn consistent_files_pass() {
        let c = checks(&db(), NATVIS, JS);
        assert!(failed(&c).is_empty(), "{c:#?}");
        assert_eq!(c.len(), 6);
    }

    #[test]
    fn script_layout_is_read() {
        let l = parse_script(JS).unwrap();
        assert_eq!(l.root_fields, ["state", "rows"]);
        assert_eq!(l.counter_fields, ["total_allocates"]);
        assert_eq!(l.root_type, "a::Root");
        assert_eq!(l.types.len(), 2);
    }

    #[test]
    fn natvis_names_are_classified() {
        let t = &parse_natvis(NATVIS).unwrap()[0];
        assert!(t.top.contains("state") && t.top.contains("rows") && t.top.contains("s"));
        assert!(
            t.members.contains("total_allocates")
                && t.members.contains("v")
                && t.members.contains("value")
        );
        assert!(t.type_refs.contains("a::Row"));
        assert!(t.variables.contains("s"));
        assert!(
            !t.top.contains("d"),
            "format specifier taken for a name: {t:?}"
        );
    }

    #[test]
    fn renamed_script_field_fails() {
        let js = JS.replace("\"total_allocates\"", "\"total_allocs\"");
        let c = checks(&db(), NATVIS, &js);
        assert_eq!(failed(&c), ["windbg.js.fields"].into());
        assert!(c.iter().any(|c| c.detail.contains("a::Row.total_allocs")));
    }

    #[test]
    fn renamed_natvis_member_fails() {
        let natvis = NATVIS.replace("->total_allocates", "->total_allocs");
        let c = checks(&db(), &natvis, JS);
        assert_eq!(failed(&c), ["windbg.natvis.fields"].into());
        assert!(c.iter().any(|c| c.detail.contains(".total_allocs")));
    }

    #[test]
    fn renamed_natvis_top_level_field_fails() {
        let natvis = NATVIS.replace("state.v.value == 2", "status.v.value == 2");
        let c = checks(&db(), &natvis, JS);
        assert_eq!(failed(&c), ["windbg.natvis.fields"].into());
    }

    #[test]
    fn unknown_type_and_missing_public_fail() {
        let mut d = db();
        d.publics.clear();
        d.public_at.clear();
        let natvis = NATVIS.replace("(a::Row*)", "(a::Rows*)");
        let c = checks(&d, &natvis, JS);
        assert_eq!(
            failed(&c),
            [
                "windbg.pdb.public",
                "windbg.pdb.root_type",
                "windbg.natvis.types"
            ]
            .into()
        );
    }
}
