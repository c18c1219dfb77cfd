//! A small reader for Windows INF text, and the stamping step (what `stampinf`
//! does on a WDK host): `$ARCH$`, `DriverVer`, `CatalogFile`.
//!
//! The reader follows the INF syntax rules the verifier relies on: `[section]`
//! headers, `key = value, value` lines, `;` comments outside quotes, `\` line
//! continuation, `"..."` quoting with `""` as an escaped quote, `%token%`
//! substitution from `[Strings]` (`%%` is a literal `%`), case-insensitive
//! section names and keys.

use std::collections::HashMap;

/// One logical line of a section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The text before `=`, if the line has one (trimmed, not lowercased).
    pub key: Option<String>,
    /// The comma-separated fields after `=` (or of the whole line), unquoted,
    /// trimmed and with `%strings%` substituted.
    pub values: Vec<String>,
    /// 1-based line number of the first physical line.
    pub line_no: usize,
}

impl Line {
    /// The key, lowercased, or "".
    pub fn key_lower(&self) -> String {
        self.key.as_deref().unwrap_or("").to_ascii_lowercase()
    }
    /// Field `i`, or "".
    pub fn value(&self, i: usize) -> &str {
        self.values.get(i).map(String::as_str).unwrap_or("")
    }
}

/// A section and its lines in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub lines: Vec<Line>,
}

impl Section {
    /// Every line whose key equals `key` (case-insensitive).
    pub fn entries<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Line> + 'a {
        self.lines.iter().filter(move |l| {
            l.key
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case(key))
        })
    }
    /// The first line with this key.
    pub fn entry<'a>(&'a self, key: &'a str) -> Option<&'a Line> {
        self.entries(key).next()
    }
    /// All fields of every line with this key (for directives such as
    /// `AddReg = a, b` that may repeat).
    pub fn list(&self, key: &str) -> Vec<String> {
        self.entries(key)
            .flat_map(|l| l.values.iter().cloned())
            .filter(|v| !v.is_empty())
            .collect()
    }
}

/// A parsed INF.
#[derive(Clone, Debug, Default)]
pub struct Inf {
    pub sections: Vec<Section>,
}

/// A syntax problem in the INF text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line_no: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line_no, self.message)
    }
}

/// Strip a trailing comment (`;` outside quotes) and report whether the line
/// ends with a continuation backslash.
fn strip_comment(line: &str) -> (&str, bool) {
    let mut in_quotes = false;
    let mut end = line.len();
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ';' if !in_quotes => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let text = line[..end].trim_end();
    match text.strip_suffix('\\') {
        Some(rest) => (rest, true),
        None => (text, false),
    }
}

/// Split on commas outside quotes; unquote each field.
fn split_fields(text: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields.into_iter().map(|f| f.trim().to_string()).collect()
}

/// Find `=` outside quotes.
fn find_equals(text: &str) -> Option<usize> {
    let mut in_quotes = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '=' if !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

impl Inf {
    /// Parse INF text. `[Strings]` tokens are substituted in every field.
    pub fn parse(text: &str) -> Result<Inf, ParseError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // Pass 1: logical lines grouped by section, raw.
        let mut raw: Vec<(String, Vec<(usize, String)>)> = Vec::new();
        let mut pending: Option<(usize, String)> = None;
        for (idx, physical) in text.lines().enumerate() {
            let line_no = idx + 1;
            let (body, continues) = strip_comment(physical);
            let (start, mut acc) = pending.take().unwrap_or((line_no, String::new()));
            acc.push_str(body.trim_start());
            if continues {
                pending = Some((start, acc));
                continue;
            }
            let logical = acc.trim().to_string();
            if logical.is_empty() {
                continue;
            }
            if logical.starts_with('[') {
                let Some(close) = logical.find(']') else {
                    return Err(ParseError {
                        line_no: start,
                        message: "section header without ']'".into(),
                    });
                };
                raw.push((logical[1..close].trim().to_string(), Vec::new()));
                continue;
            }
            match raw.last_mut() {
                Some((_, lines)) => lines.push((start, logical)),
                None => {
                    return Err(ParseError {
                        line_no: start,
                        message: "text before the first section".into(),
                    })
                }
            }
        }
        if let Some((start, _)) = pending {
            return Err(ParseError {
                line_no: start,
                message: "continuation at end of file".into(),
            });
        }
        // Strings table (last definition wins, as Setup does).
        let mut strings: HashMap<String, String> = HashMap::new();
        for (name, lines) in &raw {
            if name.eq_ignore_ascii_case("Strings") {
                for (_, l) in lines {
                    if let Some(eq) = find_equals(l) {
                        let key = l[..eq].trim().to_ascii_lowercase();
                        let value = split_fields(&l[eq + 1..])
                            .into_iter()
                            .next()
                            .unwrap_or_default();
                        strings.insert(key, value);
                    }
                }
            }
        }
        let mut sections = Vec::with_capacity(raw.len());
        for (name, lines) in raw {
            let is_strings = name.eq_ignore_ascii_case("Strings");
            let mut out = Vec::with_capacity(lines.len());
            for (line_no, l) in lines {
                let (key, rest) = match find_equals(&l) {
                    Some(eq) => (
                        Some(substitute(l[..eq].trim(), &strings, line_no)?),
                        &l[eq + 1..],
                    ),
                    None => (None, l.as_str()),
                };
                let mut values = Vec::new();
                for f in split_fields(rest) {
                    values.push(if is_strings {
                        f
                    } else {
                        substitute(&f, &strings, line_no)?
                    });
                }
                out.push(Line {
                    key,
                    values,
                    line_no,
                });
            }
            sections.push(Section { name, lines: out });
        }
        Ok(Inf { sections })
    }

    /// The section with this name (case-insensitive). Setup merges repeated
    /// sections; so does this, in file order.
    pub fn section(&self, name: &str) -> Option<Section> {
        let mut found: Option<Section> = None;
        for s in self
            .sections
            .iter()
            .filter(|s| s.name.eq_ignore_ascii_case(name))
        {
            match &mut found {
                Some(f) => f.lines.extend(s.lines.iter().cloned()),
                None => found = Some(s.clone()),
            }
        }
        found
    }
}

/// One Ndi parameter (`HKR, <params>\<name>, <entry>, 0, "<value>"` lines, and its
/// `<params>\<name>\enum` values): what the Advanced property page shows and the class installer
/// writes as the default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NdiParam {
    /// The registry value name (as the INF spells it).
    pub name: String,
    /// `type`, lowercased (`enum`, `dword`, ...; empty if the INF gives none).
    pub ty: String,
    /// `default`, as written.
    pub default: String,
    /// `min` / `max`, as written.
    pub min: Option<String>,
    pub max: Option<String>,
    /// The `\enum` value names, in file order.
    pub enums: Vec<String>,
    /// `ParamDesc`, with `%strings%` substituted.
    pub desc: String,
}

/// Every Ndi parameter under `HKR, <params>\...` in `sections`, in file order (`params` is the
/// parameter key, e.g. `FilterAdapterParams`; compared case-insensitively).
pub fn ndi_params<'a>(
    sections: impl IntoIterator<Item = &'a Section>,
    params: &str,
) -> Vec<NdiParam> {
    let prefix = format!("{}\\", params.to_ascii_lowercase());
    let mut out: Vec<NdiParam> = Vec::new();
    for line in sections.into_iter().flat_map(|s| s.lines.iter()) {
        let subkey = line.value(1);
        if !line.value(0).eq_ignore_ascii_case("HKR")
            || !subkey.to_ascii_lowercase().starts_with(&prefix)
        {
            continue;
        }
        let rest = &subkey[prefix.len()..];
        let (name, is_enum) = match rest.len().checked_sub(5) {
            Some(n)
                if rest
                    .get(n..)
                    .is_some_and(|t| t.eq_ignore_ascii_case("\\enum")) =>
            {
                (&rest[..n], true)
            }
            _ => (rest, false),
        };
        let idx = match out.iter().position(|p| p.name.eq_ignore_ascii_case(name)) {
            Some(i) => i,
            None => {
                out.push(NdiParam {
                    name: name.to_string(),
                    ..NdiParam::default()
                });
                out.len() - 1
            }
        };
        let p = &mut out[idx];
        let (entry, value) = (line.value(2).to_string(), line.value(4).to_string());
        if is_enum {
            p.enums.push(entry);
            continue;
        }
        match entry.to_ascii_lowercase().as_str() {
            "type" => p.ty = value.to_ascii_lowercase(),
            "default" => p.default = value,
            "min" => p.min = Some(value),
            "max" => p.max = Some(value),
            "paramdesc" => p.desc = value,
            _ => {}
        }
    }
    out
}

fn substitute(
    field: &str,
    strings: &HashMap<String, String>,
    line_no: usize,
) -> Result<String, ParseError> {
    if !field.contains('%') {
        return Ok(field.to_string());
    }
    let mut out = String::new();
    let mut rest = field;
    while let Some(start) = rest.find('%') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('%') else {
            return Err(ParseError {
                line_no,
                message: format!("unterminated %token% in {field:?}"),
            });
        };
        let token = &after[..end];
        if token.is_empty() {
            out.push('%');
        } else if token.chars().all(|c| c.is_ascii_digit()) {
            // DIRIDs such as %13% stay as they are.
            out.push('%');
            out.push_str(token);
            out.push('%');
        } else {
            match strings.get(&token.to_ascii_lowercase()) {
                Some(v) => out.push_str(v),
                None => {
                    return Err(ParseError {
                        line_no,
                        message: format!("%{token}% is not defined in [Strings]"),
                    })
                }
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The lowest Windows build a `[Manufacturer]` TargetOSVersion decoration
/// (`NT[arch][.[major][.[minor][.[productType][.[suiteMask][.[build]]]]]]`)
/// installs on for the architecture `arch` (`amd64`, `arm64`), or `None` when
/// the decoration is for another architecture (or not an `NT` decoration).
/// An undecorated version, or one before Windows 10, gives 0 (any build); a
/// Windows 10 version without a build number gives 10240, its first build.
pub fn target_os_min_build(decoration: &str, arch: &str) -> Option<u32> {
    let d = decoration.trim().to_ascii_lowercase();
    let rest = d.strip_prefix("nt")?;
    let (dec_arch, version) = match rest.split_once('.') {
        Some((a, v)) => (a, Some(v)),
        None => (rest, None),
    };
    if !dec_arch.is_empty() && dec_arch != arch.to_ascii_lowercase() {
        return None;
    }
    let Some(version) = version else {
        return Some(0);
    };
    let parts: Vec<&str> = version.split('.').collect();
    let num = |i: usize| parts.get(i).and_then(|p| p.parse::<u32>().ok());
    match (num(0), num(1), num(4)) {
        (None, _, _) => Some(0),
        (Some(major), _, _) if major < 10 => Some(0),
        (Some(_), _, Some(build)) => Some(build),
        (Some(_), _, None) => Some(10240),
    }
}

/// Inputs of the stamping step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp<'a> {
    /// `amd64` or `arm64` (replaces `$ARCH$`).
    pub arch: &'a str,
    /// `MM/DD/YYYY`.
    pub date: String,
    /// `w.x.y.z`.
    pub version: String,
    /// Catalog file name.
    pub catalog: &'a str,
}

/// Stamp an `.inx` template into an `.inf`: replace `$ARCH$`, and set
/// `DriverVer` and `CatalogFile` in `[Version]` (replacing any existing
/// entries, inserting them after `Provider`/at the end of the section
/// otherwise). Line endings become CRLF, as INF tools expect.
pub fn stamp(template: &str, s: &Stamp<'_>) -> Result<String, String> {
    let template = template.strip_prefix('\u{feff}').unwrap_or(template);
    let mut out: Vec<String> = Vec::new();
    let mut in_version = false;
    let mut seen_version = false;
    let mut inserted = false;
    let stamped = [
        format!("DriverVer   = {},{}", s.date, s.version),
        format!("CatalogFile = {}", s.catalog),
    ];
    for line in template.lines() {
        let line = line.replace("$ARCH$", s.arch);
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            if in_version && !inserted {
                insert_before_trailing_blank(&mut out, &stamped);
                inserted = true;
            }
            in_version = trimmed.to_ascii_lowercase().starts_with("[version]");
            seen_version |= in_version;
            out.push(line);
            continue;
        }
        if in_version {
            let key = trimmed
                .split('=')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if key == "driverver" || key == "catalogfile" {
                continue;
            }
        }
        out.push(line);
    }
    if in_version && !inserted {
        insert_before_trailing_blank(&mut out, &stamped);
    }
    if !seen_version {
        return Err("the template has no [Version] section".into());
    }
    let mut text = out.join("\r\n");
    text.push_str("\r\n");
    Ok(text)
}

fn insert_before_trailing_blank(out: &mut Vec<String>, lines: &[String]) {
    let mut at = out.len();
    while at > 0 && (out[at - 1].trim().is_empty() || out[at - 1].trim_start().starts_with(';')) {
        at -= 1;
    }
    for (i, l) in lines.iter().enumerate() {
        out.insert(at + i, l.clone());
    }
}

/// `MM/DD/YYYY` for a UNIX time (UTC), the DriverVer date format.
pub fn driver_ver_date(unix_seconds: u64) -> String {
    let (y, m, d) = civil_from_days((unix_seconds / 86_400) as i64);
    format!("{m:02}/{d:02}/{y:04}")
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (the usual era-based conversion).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// DriverVer version `w.x.y.z` from a Cargo version `a.b.c[-pre][+build]`.
pub fn driver_ver_version(cargo_version: &str) -> Result<String, String> {
    let core = cargo_version.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 {
        return Err(format!(
            "package version {cargo_version:?} is not major.minor.patch"
        ));
    }
    for p in &parts {
        match p.parse::<u32>() {
            Ok(v) if v <= 65_535 => {}
            _ => {
                return Err(format!(
                    "version component {p:?} of {cargo_version:?} is not 0..=65535"
                ))
            }
        }
    }
    Ok(format!("{}.{}.{}.0", parts[0], parts[1], parts[2]))
}

/// INF text as UTF-8 or UTF-16LE with BOM (stampinf keeps the encoding of its input).
pub fn decode_inf(bytes: &[u8]) -> Result<String, String> {
    if let Some(rest) = bytes.strip_prefix(&[0xff, 0xfe]) {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16(&units).map_err(|e| format!("INF is not valid UTF-16LE: {e}"));
    }
    String::from_utf8(bytes.to_vec())
        .map_err(|e| format!("INF is neither UTF-8 nor UTF-16LE with a BOM: {e}"))
}

#[cfg(test)]
mod decode_tests {
    use super::decode_inf;

    #[test]
    fn inf_decoding() {
        assert_eq!(decode_inf(b"[Version]").unwrap(), "[Version]");
        assert_eq!(decode_inf(&[0xff, 0xfe, b'[', 0, b'V', 0]).unwrap(), "[V");
        assert!(decode_inf(&[0xc3, 0x28]).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_keys_quotes_comments_and_strings() {
        let text = "[Version]\nSignature = \"$Windows NT$\" ; comment\nClass=NetService\n\n\
                    [A]\nHKR, Ndi, Service,, \"svc; not a comment\"\nX = %Name%, \"a\"\"b\", \\\n  tail\n\
                    CopyFiles = %13%\\x.sys\n[Strings]\nName = \"Hello, world\"\n";
        let inf = Inf::parse(text).unwrap();
        let v = inf.section("version").unwrap();
        assert_eq!(v.entry("signature").unwrap().value(0), "$Windows NT$");
        assert_eq!(v.entry("CLASS").unwrap().value(0), "NetService");
        let a = inf.section("A").unwrap();
        assert_eq!(a.lines[0].key, None);
        assert_eq!(
            a.lines[0].values,
            vec!["HKR", "Ndi", "Service", "", "svc; not a comment"]
        );
        assert_eq!(
            a.entry("x").unwrap().values,
            vec!["Hello, world", "a\"b", "tail"]
        );
        assert_eq!(a.entry("copyfiles").unwrap().value(0), "%13%\\x.sys");
    }

    #[test]
    fn ndi_params_gather_type_default_range_enum_and_description() {
        let text =
            "[A]\nHKR, Params\\Mode, ParamDesc, 0, %M%\nHKR, Params\\Mode, type, 0, \"enum\"\n\
                    HKR, Params\\Mode, default, 0, \"a\"\nHKR, Params\\Mode\\enum, a, 0, \"A\"\n\
                    HKR, params\\mode\\ENUM, b, 0, \"B\"\nHKR, Params\\N, type, 0, \"DWORD\"\n\
                    HKR, Params\\N, min, 0, \"1\"\nHKR, Params\\N, max, 0, \"9\"\n\
                    HKR, Ndi, Service, 0, \"x\"\n[Strings]\nM = \"the mode\"\n";
        let inf = Inf::parse(text).unwrap();
        let p = ndi_params(&inf.sections, "params");
        assert_eq!(p.len(), 2, "{p:#?}");
        assert_eq!(
            (p[0].name.as_str(), p[0].ty.as_str(), p[0].default.as_str()),
            ("Mode", "enum", "a")
        );
        assert_eq!(
            (p[0].enums.clone(), p[0].desc.as_str()),
            (vec!["a".into(), "b".into()], "the mode")
        );
        assert_eq!(
            (p[1].ty.as_str(), p[1].min.as_deref(), p[1].max.as_deref()),
            ("dword", Some("1"), Some("9"))
        );
    }

    #[test]
    fn undefined_string_token_is_an_error() {
        let err = Inf::parse("[A]\nx = %Nope%\n").unwrap_err();
        assert!(err.message.contains("%Nope%"), "{err}");
    }

    #[test]
    fn stamp_sets_arch_driverver_and_catalog() {
        let t = "[Version]\nSignature=\"$Windows NT$\"\nDriverVer=01/01/1999,1.0.0.0\n\n[M]\nx=NT$ARCH$\n";
        let s = Stamp {
            arch: "arm64",
            date: "11/27/2026".into(),
            version: "0.1.0.0".into(),
            catalog: "m.cat",
        };
        let out = stamp(t, &s).unwrap();
        let inf = Inf::parse(&out).unwrap();
        let v = inf.section("Version").unwrap();
        assert_eq!(
            v.entry("DriverVer").unwrap().values,
            vec!["11/27/2026", "0.1.0.0"]
        );
        assert_eq!(v.entries("DriverVer").count(), 1);
        assert_eq!(v.entry("CatalogFile").unwrap().value(0), "m.cat");
        assert_eq!(
            inf.section("M").unwrap().entry("x").unwrap().value(0),
            "NTarm64"
        );
        assert!(out.contains("\r\n"));
    }

    #[test]
    fn target_os_decorations_give_their_lowest_build() {
        assert_eq!(
            target_os_min_build("NTamd64.10.0...19041", "amd64"),
            Some(19041)
        );
        assert_eq!(
            target_os_min_build("ntARM64.10.0...25319", "arm64"),
            Some(25319)
        );
        assert_eq!(target_os_min_build("NTamd64", "amd64"), Some(0));
        assert_eq!(target_os_min_build("NT", "arm64"), Some(0));
        assert_eq!(target_os_min_build("NT.10.0...19041", "arm64"), Some(19041));
        assert_eq!(target_os_min_build("NTamd64.6.3", "amd64"), Some(0));
        assert_eq!(target_os_min_build("NTamd64.10.0", "amd64"), Some(10240));
        assert_eq!(target_os_min_build("NTamd64.10.0...19041", "arm64"), None);
        assert_eq!(target_os_min_build("NTx86", "amd64"), None);
        assert_eq!(target_os_min_build("Standard", "amd64"), None);
    }

    #[test]
    fn dates_and_versions() {
        assert_eq!(driver_ver_date(0), "01/01/1970");
        assert_eq!(driver_ver_date(951_782_400), "02/29/2000");
        assert_eq!(driver_ver_date(1_795_737_600), "11/27/2026");
        assert_eq!(driver_ver_version("0.1.0").unwrap(), "0.1.0.0");
        assert_eq!(driver_ver_version("1.2.3-beta.1").unwrap(), "1.2.3.0");
        assert!(driver_ver_version("1.2").is_err());
        assert!(driver_ver_version("1.70000.0").is_err());
    }
}
