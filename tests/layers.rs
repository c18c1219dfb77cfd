//! The driver's modules stand in layers and no import runs back up (src/lib.rs lists them): every
//! `crate::<module>` a source file of `src/` names (in `use` lines and in paths, comments left out) must
//! be its own module or one of a lower layer. A module that is in no layer fails the test until it is
//! placed. This reads the sources as text; it runs nothing of the driver.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The driver's top-level modules, from the top layer down (src/lib.rs's module map, README "Layout").
const LAYERS: &[&[&str]] = &[
    &["driver"],
    &["stats"],
    &["filter"],
    &["mdl_handlers"],
    &["pool_service"],
    &["transform", "pool"],
    &["nb", "names", "sync"],
    &["ndis"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The top-level module a file of `src/` belongs to (`src/pool/mod.rs` → `pool`), None for lib.rs.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    if rel.components().count() > 1 {
        Some(first)
    } else {
        let stem = first.strip_suffix(".rs")?;
        (stem != "lib").then(|| stem.to_string())
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules `text` names as `crate::x` or inside `crate::{x, y::z, ...}`.
fn crate_modules(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The top-level names of the group: split at commas outside nested braces.
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.insert(ident(group[start..i].trim()));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(ident(group[start..i].trim()));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found.remove("");
    found
}

#[test]
fn no_import_runs_back_up() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut unplaced = BTreeSet::new();
    let mut upward = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let Some(own) = layer_of(&module) else {
            unplaced.insert(module);
            continue;
        };
        for used in crate_modules(&std::fs::read_to_string(file).unwrap()) {
            match layer_of(&used) {
                None => {
                    unplaced.insert(used);
                }
                Some(l) if used != module && l <= own => upward.push(format!(
                    "{} ({module}, layer {own}) names crate::{used} (layer {l})",
                    file.strip_prefix(&src).unwrap().display()
                )),
                Some(_) => {}
            }
        }
    }
    assert!(
        unplaced.is_empty(),
        "modules in no layer of tests/layers.rs (place them): {unplaced:?}"
    );
    assert!(
        upward.is_empty(),
        "imports that run sideways or back up:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_reader_sees_single_and_grouped_imports_and_skips_comments() {
    let text = "use crate::{\n    filter,\n    pool::{A, B},\n    stats,\n};\n\
                // crate::driver in a comment\n/// [`crate::sync`] in a doc comment\n\
                let x = crate::nb::f(crate::names::tags::T);\n";
    let got: Vec<String> = crate_modules(text).into_iter().collect();
    assert_eq!(got, ["filter", "names", "nb", "pool", "stats"]);
}
