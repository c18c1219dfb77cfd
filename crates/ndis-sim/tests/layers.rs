//! ndis-sim's layering, checked from its own source: every module of `src/` has a layer in
//! [`LAYERS`], and a module may name (`crate::…`, `$crate::…`, `crate::sim_exports!`) only modules of
//! its own layer or a lower one, with no loop among them. A new module fails this test until it is
//! given a layer; an import running back up fails it with the file and line.
//!
//! The layers, bottom to top (the crate doc of `src/lib.rs` describes each):
//! 1. the machine: calling conventions, virtual CPUs/IRQL, the verifier;
//! 2. memory, fault injection, MDL mappings, the clock;
//! 3. the routines the driver calls, over a state-only stack;
//! 4. the simulated protocol/miniport flows that call into the driver;
//! 5. the export table and the test/bench helpers (and the crate root, which declares and re-exports
//!    every module and holds the harness types, so it is not judged).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every top-level module of `src/` and its layer.
const LAYERS: &[(&str, u8)] = &[
    ("abi", 1),
    ("cpu", 1),
    ("verifier", 1),
    ("fault", 2),
    ("mem", 2),
    ("mapping", 2),
    ("clock", 2),
    ("config_reads", 3),
    ("neighbor", 3),
    ("nbl", 3),
    ("wire", 3),
    ("stack", 3),
    ("race", 3),
    ("outstanding", 3),
    ("timers", 3),
    ("kernel", 3),
    ("configuration", 3),
    ("ndisf", 3),
    ("flows", 4),
    ("exports", 5),
    ("testkit", 5),
    ("bench_only", 5),
    ("churn", 5),
    ("harness", 5),
];

/// The modules the crate root declares and re-exports from: not judged.
const ROOT: &str = "lib";

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src readable") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`nbl/chain.rs` → `nbl`, `lib.rs` → `lib`).
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("non-empty");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// The code of a line without its `//` comment (doc comments included).
fn code_of(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules a line of code names through `crate::`.
fn named_modules(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // `crate::{a, b::{c, d}, e}`: the first segment of each top-level item.
            let mut depth = 0;
            let mut start = true;
            for (k, ch) in group.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && !c.is_whitespace() => {
                        start = false;
                        let id = ident_at(&group[k..]);
                        if !id.is_empty() {
                            out.push(id.to_string());
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let id = ident_at(after);
            if id == "sim_exports" {
                out.push("abi".to_string());
            } else if !id.is_empty() {
                out.push(id.to_string());
            }
        }
        rest = after;
    }
    out
}

/// What the crate root re-exports: name → the module it comes from (`pub use stack::{A, B}` →
/// A and B → `stack`), so `crate::A` counts as naming `stack`.
fn root_reexports(src: &Path) -> BTreeMap<String, String> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs readable");
    let mut out = BTreeMap::new();
    let mut stmt = String::new();
    for line in lib.lines().map(code_of) {
        if stmt.is_empty() && !line.trim_start().starts_with("pub use ") {
            continue;
        }
        stmt.push_str(line);
        if !line.contains(';') {
            continue;
        }
        let body = stmt
            .trim()
            .trim_start_matches("pub use ")
            .trim_end_matches(';');
        let module = ident_at(body).to_string();
        let names = body.rsplit(['{', ':']).next().unwrap_or("");
        for name in names.trim_end_matches('}').split(',') {
            let name = name.split(" as ").last().unwrap_or("").trim();
            if !name.is_empty() {
                out.insert(name.to_string(), module.clone());
            }
        }
        stmt.clear();
    }
    out
}

/// (from module, to module) → the first place it is named. A file's unit tests (from its
/// `#[cfg(test)]` on) are not read: they may drive the whole simulator.
fn edges(src: &Path) -> BTreeMap<(String, String), String> {
    let mut files = Vec::new();
    rs_files(src, &mut files);
    files.sort();
    let modules = modules_of(src);
    let reexports = root_reexports(src);
    let mut out = BTreeMap::new();
    for f in files {
        let from = top_module(src, &f);
        let text = std::fs::read_to_string(&f).expect("source readable");
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            for name in named_modules(code_of(line)) {
                let to = if modules.contains(&name) {
                    name
                } else {
                    match reexports.get(&name) {
                        Some(m) => m.clone(),
                        None => continue,
                    }
                };
                if to != from {
                    out.entry((from.clone(), to)).or_insert_with(|| {
                        format!("{}:{}", f.strip_prefix(src).unwrap().display(), n + 1)
                    });
                }
            }
        }
    }
    out
}

fn layer_of(m: &str) -> Option<u8> {
    LAYERS.iter().find(|(n, _)| *n == m).map(|(_, l)| *l)
}

/// Judges a module graph: names without a layer, imports running back up, loops.
fn judge(edges: &BTreeMap<(String, String), String>, modules: &BTreeSet<String>) -> Vec<String> {
    let mut bad = Vec::new();
    for m in modules {
        if m != ROOT && layer_of(m).is_none() {
            bad.push(format!("module `{m}` has no layer in LAYERS"));
        }
    }
    let judged = |m: &str| m != ROOT && modules.contains(m);
    for ((from, to), at) in edges {
        if !judged(from) || !judged(to) {
            continue;
        }
        if let (Some(lf), Some(lt)) = (layer_of(from), layer_of(to)) {
            if lt > lf {
                bad.push(format!(
                    "{at}: `{from}` (layer {lf}) imports `{to}` (layer {lt}): an import running back up"
                ));
            }
        }
    }
    // Loops among the judged modules (a depth-first search for a back edge).
    let next = |m: &str| -> Vec<String> {
        edges
            .keys()
            .filter(|(f, t)| f == m && judged(t))
            .map(|(_, t)| t.clone())
            .collect()
    };
    fn dfs(
        m: &str,
        next: &dyn Fn(&str) -> Vec<String>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        bad: &mut Vec<String>,
    ) {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_string());
            bad.push(format!("import loop: {}", cycle.join(" -> ")));
            return;
        }
        if !done.insert(m.to_string()) {
            return;
        }
        path.push(m.to_string());
        for n in next(m) {
            dfs(&n, next, path, done, bad);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for m in modules.iter().filter(|m| judged(m)) {
        dfs(m, &next, &mut Vec::new(), &mut done, &mut bad);
    }
    bad
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn modules_of(src: &Path) -> BTreeSet<String> {
    let mut files = Vec::new();
    rs_files(src, &mut files);
    files.iter().map(|f| top_module(src, f)).collect()
}

#[test]
#[cfg_attr(miri, ignore = "reads the source tree; Miri isolates the file system")]
fn every_module_imports_only_its_own_layer_or_lower_without_loops() {
    let src = src_dir();
    let bad = judge(&edges(&src), &modules_of(&src));
    assert!(
        bad.is_empty(),
        "ndis-sim's layering is broken:\n  {}",
        bad.join("\n  ")
    );
}

#[test]
#[cfg_attr(miri, ignore = "reads the source tree; Miri isolates the file system")]
fn the_table_names_only_modules_that_exist() {
    let modules = modules_of(&src_dir());
    for (m, _) in LAYERS {
        assert!(
            modules.contains(*m),
            "LAYERS names `{m}`, which src/ does not have"
        );
    }
}

/// The check itself can fail: a back-edge (the verifier naming the kernel, as it once did) and a
/// loop between two modules of one layer are both caught.
#[test]
#[cfg_attr(miri, ignore = "reads the source tree; Miri isolates the file system")]
fn a_back_edge_and_a_loop_are_caught() {
    let src = src_dir();
    let modules = modules_of(&src);
    let mut with_back_edge = edges(&src);
    with_back_edge.insert(
        ("verifier".into(), "kernel".into()),
        "verifier.rs:1 (injected)".into(),
    );
    let bad = judge(&with_back_edge, &modules);
    assert!(
        bad.iter()
            .any(|b| b.contains("`verifier` (layer 1) imports `kernel` (layer 3)")),
        "{bad:?}"
    );
    let mut with_loop = edges(&src);
    with_loop.insert(
        ("stack".into(), "race".into()),
        "stack.rs:1 (injected)".into(),
    );
    let bad = judge(&with_loop, &modules);
    assert!(bad.iter().any(|b| b.starts_with("import loop")), "{bad:?}");
    assert_eq!(
        named_modules("use crate::{cpu, verifier::{self, rules}};"),
        ["cpu", "verifier"]
    );
    assert_eq!(named_modules("crate::sim_exports! {"), ["abi"]);
    let reexports = root_reexports(&src);
    assert_eq!(
        reexports.get("SimGuard").map(String::as_str),
        Some("harness")
    );
    assert_eq!(
        reexports.get("ConfigValue").map(String::as_str),
        Some("stack")
    );
}
