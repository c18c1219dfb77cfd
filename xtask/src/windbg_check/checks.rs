//! The `windbg.*` checks: the names the script and the NatVis use against the PDB's types and
//! publics, each a `Check` with its id, and what passes.
//!
//! Owns: the check ids and their verdicts. Must not: read files (`files.rs`) or parse the PDB, the
//! script or the NatVis (the sibling modules do).

use std::collections::BTreeSet;

use super::natvis::{parse_natvis, NATVIS_FILE};
use super::script::{parse_script, SCRIPT_FILE};
use super::type_db::TypeDb;
use crate::verify::report::{Check, Report};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::windbg_check::type_db::{Field, StructInfo};

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
