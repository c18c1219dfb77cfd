//! The NatVis's side: the types `windbg/mdlpool.natvis` is written for and every identifier its
//! expressions use, classified as a top-level member, a member after `.`/`->`, a type name in a cast,
//! or a declared variable.
//!
//! Owns: [`NatvisType`] and [`parse_natvis`] (with the C keywords an expression may use). Must not:
//! look at the PDB or decide what passes.

use std::collections::BTreeSet;

/// The NatVis file name, in `windbg/` and in each package.
pub const NATVIS_FILE: &str = "mdlpool.natvis";

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
