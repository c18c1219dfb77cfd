//! The debugger script's side: the names `windbg/mdlpool.js` declares it reads (its LAYOUT section),
//! read from the text without running it.
//!
//! Owns: [`ScriptLayout`] and [`parse_script`]. Must not: look at the PDB or decide what passes.

/// The debugger script file name, in `windbg/` and in each package.
pub const SCRIPT_FILE: &str = "mdlpool.js";

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
