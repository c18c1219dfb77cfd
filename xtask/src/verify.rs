//! The package verifier: library functions over (PE bytes, PDB bytes, INF text)
//! that return a report of named checks, each passed or failed with a clear
//! message. `cargo xtask package` refuses to write a package that fails any
//! check; the tests feed it deliberately broken inputs.
//!
//! PE reading is done with the `object` crate, PDB reading with the `pdb`
//! crate; the only byte-level work here is the PE checksum (a sum, not a
//! parse) and the search for the driver's UTF-16LE name strings.

use std::collections::BTreeSet;
use std::io::Cursor;

use object::pe;
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64};
use object::LittleEndian as LE;
use object::Object;
use pdb::FallibleIterator;

use crate::inf::{Inf, Section};
use crate::known::KnownExports;
use crate::names;

/// Target architecture of a package.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::Amd64, Arch::Arm64];

    /// The INF / WDK architecture name (`$ARCH$`, package directory).
    pub fn name(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The Rust target triple.
    pub fn triple(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64-pc-windows-msvc",
            Arch::Arm64 => "aarch64-pc-windows-msvc",
        }
    }

    /// IMAGE_FILE_MACHINE_*.
    pub fn machine(self) -> u16 {
        match self {
            Arch::Amd64 => pe::IMAGE_FILE_MACHINE_AMD64.0,
            Arch::Arm64 => pe::IMAGE_FILE_MACHINE_ARM64.0,
        }
    }

    pub fn parse(s: &str) -> Option<Arch> {
        match s.to_ascii_lowercase().as_str() {
            "amd64" | "x64" | "x86_64" => Some(Arch::Amd64),
            "arm64" | "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

/// The IRQL routines an arm64 image imports, all from hal.dll (NTHALAPI on
/// arm64; KeRaiseIrql / KeLowerIrql are macros over the Kf pair there). See
/// `known-exports/README.md`.
pub const ARM64_HAL_IRQL: [&str; 3] = ["KeGetCurrentIrql", "KfRaiseIrql", "KfLowerIrql"];

/// Every kernel IRQL routine name the rule below looks at.
const IRQL_ROUTINES: [&str; 7] = [
    "KeGetCurrentIrql",
    "KfRaiseIrql",
    "KfLowerIrql",
    "KeRaiseIrql",
    "KeLowerIrql",
    "KeRaiseIrqlToDpcLevel",
    "KeRaiseIrqlToSynchLevel",
];

/// One check and its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// Stable identifier, e.g. `pe.imports.known`.
    pub id: &'static str,
    pub passed: bool,
    /// What was found (for a failure: what is wrong and what was expected).
    pub detail: String,
}

/// Facts gathered while verifying, for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// (module, name) of every import, in table order.
    pub imports: Vec<(String, String)>,
    /// Names the image exports.
    pub exports: Vec<String>,
    pub entry_rva: Option<u32>,
    pub driver_entry_rva: Option<u32>,
    pub sections: usize,
    pub pdb_publics: usize,
    pub pdb_type_records: usize,
}

/// The outcome of verifying one package.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<Check>,
    pub facts: Facts,
}

impl Report {
    fn check(&mut self, id: &'static str, passed: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            id,
            passed,
            detail: detail.into(),
        });
    }
    fn fail(&mut self, id: &'static str, detail: impl Into<String>) {
        self.check(id, false, detail);
    }
    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed)
    }
    /// Ids of the failed checks (sorted, deduplicated).
    pub fn failed_ids(&self) -> BTreeSet<&'static str> {
        self.failures().map(|c| c.id).collect()
    }
    pub fn ok(&self) -> bool {
        self.failures().next().is_none()
    }
    pub fn passed_count(&self) -> usize {
        self.checks.iter().filter(|c| c.passed).count()
    }
    /// Every failure, one per line, for an error message.
    pub fn failure_text(&self) -> String {
        self.failures()
            .map(|c| format!("  [{}] {}", c.id, c.detail))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Verify a whole package: the image, its PDB, the stamped INF and the names
/// that must agree between them.
pub fn verify_package(
    arch: Arch,
    sys: &[u8],
    pdb: &[u8],
    inf: &str,
    known: &KnownExports,
) -> Report {
    let mut report = Report::default();
    verify_pe(arch, sys, known, &mut report);
    verify_pdb(sys, pdb, &mut report);
    verify_inf(arch, inf, &mut report);
    verify_min_build(arch, inf, known, &mut report);
    verify_names(sys, inf, &mut report);
    crate::pool_tags::verify(arch, sys, &mut report);
    report
}

// ---------------------------------------------------------------------------
// PE
// ---------------------------------------------------------------------------

/// PE image checks: machine, subsystem, DLL characteristics, sections,
/// checksum, imports against the allow-list, delay imports.
pub fn verify_pe(arch: Arch, sys: &[u8], known: &KnownExports, report: &mut Report) {
    let file = match PeFile64::parse(sys) {
        Ok(f) => f,
        Err(e) => return report.fail("pe.parse", format!("not a PE32+ image: {e}")),
    };
    report.check("pe.parse", true, "PE32+ image");
    let nt = file.nt_headers();
    let fh = nt.file_header();
    let oh = nt.optional_header();

    let machine = fh.machine.get(LE).0;
    report.check(
        "pe.machine",
        machine == arch.machine(),
        format!(
            "machine 0x{machine:04x}, expected 0x{:04x} ({})",
            arch.machine(),
            arch.name()
        ),
    );

    let subsystem = oh.subsystem().0;
    report.check(
        "pe.subsystem",
        subsystem == pe::IMAGE_SUBSYSTEM_NATIVE.0,
        format!(
            "subsystem {subsystem}, expected {} (native)",
            pe::IMAGE_SUBSYSTEM_NATIVE.0
        ),
    );
    let ssv = (oh.major_subsystem_version(), oh.minor_subsystem_version());
    report.check(
        "pe.subsystem_version",
        ssv.0 >= 10,
        format!("subsystem version {}.{}, expected >= 10.0", ssv.0, ssv.1),
    );

    let dllc = oh.dll_characteristics().0;
    for (id, bit, what) in [
        (
            "pe.nx_compat",
            pe::IMAGE_DLLCHARACTERISTICS_NX_COMPAT,
            "NX_COMPAT (/NXCOMPAT)",
        ),
        (
            "pe.dynamic_base",
            pe::IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE,
            "DYNAMIC_BASE (/DYNAMICBASE)",
        ),
        (
            "pe.force_integrity",
            pe::IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY,
            "FORCE_INTEGRITY (/INTEGRITYCHECK)",
        ),
    ] {
        report.check(
            id,
            dllc & bit.0 != 0,
            format!("DllCharacteristics 0x{dllc:04x} must have {what}"),
        );
    }

    let entry = oh.address_of_entry_point();
    report.facts.entry_rva = Some(entry);
    report.check(
        "pe.entry_nonzero",
        entry != 0,
        format!("AddressOfEntryPoint 0x{entry:x}"),
    );

    // Sections: none both writable and executable; entry point inside an
    // executable section.
    let sections = file.section_table();
    report.facts.sections = sections.len();
    let mut wx = Vec::new();
    let mut entry_exec = false;
    for s in sections.iter() {
        let c = s.characteristics.get(LE).0;
        let name = String::from_utf8_lossy(s.raw_name()).to_string();
        if c & pe::IMAGE_SCN_MEM_WRITE.0 != 0 && c & pe::IMAGE_SCN_MEM_EXECUTE.0 != 0 {
            wx.push(name.clone());
        }
        let va = s.virtual_address.get(LE);
        let vs = s.virtual_size.get(LE).max(s.size_of_raw_data.get(LE));
        if entry >= va && entry < va.saturating_add(vs) && c & pe::IMAGE_SCN_MEM_EXECUTE.0 != 0 {
            entry_exec = true;
        }
    }
    report.check(
        "pe.no_wx_section",
        wx.is_empty(),
        if wx.is_empty() {
            "no section is both writable and executable".into()
        } else {
            format!("writable+executable sections: {wx:?}")
        },
    );
    report.check(
        "pe.entry_in_code",
        entry_exec,
        format!("entry point 0x{entry:x} must lie in an executable section"),
    );

    // Page-granular sections (the loader applies per-section protections) and no
    // thread-local storage (a driver image has no TLS callbacks or slots).
    let (sa, fa) = (oh.section_alignment(), oh.file_alignment());
    report.check(
        "pe.alignment",
        sa == 0x1000 && (fa == 0x200 || fa == 0x1000),
        format!("SectionAlignment 0x{sa:x} (expected 0x1000), FileAlignment 0x{fa:x} (expected 0x200 or 0x1000)"),
    );
    let tls = file
        .data_directories()
        .get(pe::IMAGE_DIRECTORY_ENTRY_TLS)
        .is_some_and(|d| d.virtual_address.get(LE) != 0 || d.size.get(LE) != 0);
    report.check(
        "pe.no_tls",
        !tls,
        if tls {
            "the image has a TLS directory (thread_local! or #[thread_local] in driver code)"
        } else {
            "no TLS directory"
        },
    );

    // Checksum: the kernel loader and code integrity expect a correct one.
    let stored = oh.check_sum();
    match pe_checksum(sys) {
        Some(computed) => report.check(
            "pe.checksum",
            stored == computed,
            format!("CheckSum 0x{stored:08x}, computed 0x{computed:08x} (link with /RELEASE)"),
        ),
        None => report.fail("pe.checksum", "cannot locate the CheckSum field"),
    }

    // Imports.
    let mut imports = Vec::new();
    let mut problems = Vec::new();
    match file.import_table() {
        Ok(Some(table)) => match collect_imports(&table) {
            Ok(list) => imports = list,
            Err(e) => problems.push(format!("unreadable import table: {e}")),
        },
        Ok(None) => {}
        Err(e) => problems.push(format!("unreadable import directory: {e}")),
    }
    report.check(
        "pe.imports.readable",
        problems.is_empty(),
        if problems.is_empty() {
            format!("{} imports", imports.len())
        } else {
            problems.join("; ")
        },
    );
    let mut bad_modules = BTreeSet::new();
    let mut unknown = Vec::new();
    let mut by_ordinal = Vec::new();
    for (module, name) in &imports {
        if !known.has_module(module) {
            bad_modules.insert(module.clone());
        } else if let Some(ord) = name.strip_prefix('#') {
            by_ordinal.push(format!("{module}!#{ord}"));
        } else if !known.allows(arch, module, name) {
            let mut notes = Vec::new();
            if known.contains(module, name) {
                notes.push(format!("{module} exports it on other architectures only"));
            }
            let elsewhere = known.modules_exporting(arch, name);
            if !elsewhere.is_empty() {
                notes.push(format!(
                    "on {} it is exported by {}",
                    arch.name(),
                    elsewhere.join(", ")
                ));
            }
            unknown.push(if notes.is_empty() {
                format!("{module}!{name}")
            } else {
                format!("{module}!{name} ({})", notes.join("; "))
            });
        }
    }
    report.check(
        "pe.imports.modules",
        bad_modules.is_empty(),
        if bad_modules.is_empty() {
            "imports only from ntoskrnl.exe / hal.dll / ndis.sys".to_string()
        } else {
            format!("imports from modules a driver may not use: {bad_modules:?} (allowed: ntoskrnl.exe, hal.dll, ndis.sys)")
        },
    );
    report.check(
        "pe.imports.known",
        unknown.is_empty(),
        if unknown.is_empty() {
            "every imported name is in xtask/known-exports".to_string()
        } else {
            format!("imported names not in xtask/known-exports (the kernel may not export them): {unknown:?}")
        },
    );
    // IRQL routines: x64 reads and writes CR8 inline (wdm.h FORCEINLINE), so an
    // amd64 image imports none; on arm64 they are hal.dll exports and only the
    // three NTHALAPI names exist (KeRaiseIrql / KeLowerIrql are macros).
    let irql_imports: Vec<(String, String)> = imports
        .iter()
        .filter(|(_, n)| IRQL_ROUTINES.contains(&n.as_str()))
        .cloned()
        .collect();
    let misplaced: Vec<String> = irql_imports
        .iter()
        .filter(|(m, n)| match arch {
            Arch::Amd64 => true,
            Arch::Arm64 => {
                !(m.eq_ignore_ascii_case("hal.dll") && ARM64_HAL_IRQL.contains(&n.as_str()))
            }
        })
        .map(|(m, n)| format!("{m}!{n}"))
        .collect();
    report.check(
        "pe.imports.irql_module",
        misplaced.is_empty(),
        match (arch, misplaced.is_empty()) {
            (Arch::Amd64, true) => "no IRQL routine imported (x64: CR8 inline)".to_string(),
            (Arch::Amd64, false) => format!(
                "the amd64 image imports IRQL routines {misplaced:?}; x64 drivers read and write CR8 inline"
            ),
            (Arch::Arm64, true) => format!(
                "IRQL routines imported from hal.dll only: {:?}",
                irql_imports.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>()
            ),
            (Arch::Arm64, false) => format!(
                "the arm64 image imports IRQL routines {misplaced:?}; on arm64 they must be hal.dll!{{{}}} (NTHALAPI)",
                ARM64_HAL_IRQL.join(", ")
            ),
        },
    );
    report.check(
        "pe.imports.by_name",
        by_ordinal.is_empty(),
        if by_ordinal.is_empty() {
            "no import by ordinal".to_string()
        } else {
            format!("imports by ordinal: {by_ordinal:?}")
        },
    );
    let delay = match file.delay_load_import_table() {
        Ok(Some(t)) => t
            .descriptors()
            .ok()
            .and_then(|mut d| d.next().ok().flatten())
            .is_some(),
        Ok(None) => false,
        Err(_) => true,
    };
    report.check(
        "pe.no_delay_imports",
        !delay,
        if delay {
            "the image has delay-load imports"
        } else {
            "no delay-load imports"
        },
    );
    report.facts.imports = imports;

    // Exports (informational; DriverEntry is usually exported by the cdylib).
    if let Ok(Some(exports)) = file.export_table() {
        if let Ok(list) = exports.exports() {
            report.facts.exports = list
                .iter()
                .filter_map(|e| e.name.map(|n| String::from_utf8_lossy(n).to_string()))
                .collect();
        }
    }
}

fn collect_imports(
    table: &object::read::pe::ImportTable<'_>,
) -> object::Result<Vec<(String, String)>> {
    type Nt = pe::ImageNtHeaders64;
    let mut out = Vec::new();
    let mut descriptors = table.descriptors()?;
    while let Some(d) = descriptors.next()? {
        let module = String::from_utf8_lossy(table.name(d.name.get(LE))?).to_string();
        let lookup = match d.original_first_thunk.get(LE) {
            0 => d.first_thunk.get(LE),
            rva => rva,
        };
        let mut thunks = table.thunks(lookup)?;
        while let Some(thunk) = thunks.next::<Nt>()? {
            let name = match table.import::<Nt>(thunk)? {
                object::read::pe::Import::Ordinal(o) => format!("#{o}"),
                object::read::pe::Import::Name(_hint, name) => {
                    String::from_utf8_lossy(name).to_string()
                }
            };
            out.push((module.clone(), name));
        }
    }
    Ok(out)
}

/// The PE image checksum (the algorithm of `CheckSumMappedFile`: a 16-bit
/// one's-complement-style sum over the file with the CheckSum field taken as
/// zero, plus the file length). `None` if the headers are too short.
pub fn pe_checksum(image: &[u8]) -> Option<u32> {
    let offset = checksum_offset(image)?;
    let mut sum: u64 = 0;
    let mut i = 0;
    while i < image.len() {
        let word = if i + 1 < image.len() {
            u16::from_le_bytes([image[i], image[i + 1]])
        } else {
            image[i] as u16
        };
        if !(i >= offset && i < offset + 4) {
            sum += word as u64;
            sum = (sum & 0xffff) + (sum >> 16);
        }
        i += 2;
    }
    sum = (sum & 0xffff) + (sum >> 16);
    Some((sum as u32).wrapping_add(image.len() as u32))
}

/// File offset of the optional header's CheckSum field.
pub fn checksum_offset(image: &[u8]) -> Option<usize> {
    let file = PeFile64::parse(image).ok()?;
    let nt_offset = file.dos_header().nt_headers_offset() as usize;
    // Signature (4) + IMAGE_FILE_HEADER (20) + offset of CheckSum in the
    // optional header (64, same for PE32 and PE32+).
    let off = nt_offset + 4 + 20 + 64;
    (off + 4 <= image.len()).then_some(off)
}

/// Recompute and store the checksum (for tests that mutate an image).
pub fn fix_checksum(image: &mut [u8]) {
    if let (Some(off), Some(sum)) = (checksum_offset(image), {
        let mut copy = image.to_vec();
        if let Some(off) = checksum_offset(&copy) {
            copy[off..off + 4].copy_from_slice(&[0; 4]);
        }
        pe_checksum(&copy)
    }) {
        image[off..off + 4].copy_from_slice(&sum.to_le_bytes());
    }
}

// ---------------------------------------------------------------------------
// PDB
// ---------------------------------------------------------------------------

/// PDB checks: it is the image's PDB (GUID/age of the CodeView record), it has
/// the public `DriverEntry` at the image's entry point, and it has types.
pub fn verify_pdb(sys: &[u8], pdb_bytes: &[u8], report: &mut Report) {
    let file = PeFile64::parse(sys).ok();
    let cv = file.as_ref().and_then(|f| f.pdb_info().ok().flatten());
    let (cv_guid, cv_age, cv_path) = match &cv {
        Some(cv) => (
            Some(cv.guid()),
            Some(cv.age()),
            String::from_utf8_lossy(cv.path()).into_owned(),
        ),
        None => (None, None, String::new()),
    };
    report.check(
        "pe.codeview",
        cv.is_some() && pdb_file_name(&cv_path).eq_ignore_ascii_case(names::PDB_FILE),
        format!(
            "CodeView record names {cv_path:?}, expected {}",
            names::PDB_FILE
        ),
    );

    let mut pdb = match pdb::PDB::open(Cursor::new(pdb_bytes)) {
        Ok(p) => p,
        Err(e) => return report.fail("pdb.parse", format!("not a readable PDB: {e}")),
    };
    report.check("pdb.parse", true, "MSF 7.0 PDB");

    match (pdb.pdb_information(), pdb.debug_information()) {
        (Ok(info), Ok(dbi)) => {
            let guid = info.guid.to_bytes_le();
            let age = dbi.age().unwrap_or(info.age);
            let matches = cv_guid == Some(guid) && cv_age == Some(age);
            report.check(
                "pdb.matches_image",
                matches,
                format!(
                    "PDB guid {} age {age}; image CodeView guid/age {:?}/{:?}",
                    info.guid,
                    cv_guid.map(hex),
                    cv_age
                ),
            );
        }
        (Err(e), _) | (_, Err(e)) => report.fail(
            "pdb.matches_image",
            format!("unreadable PDB info/DBI stream: {e}"),
        ),
    }

    let address_map = match pdb.address_map() {
        Ok(m) => Some(m),
        Err(e) => {
            report.fail("pdb.publics", format!("no address map: {e}"));
            None
        }
    };
    let mut driver_entry: Option<u32> = None;
    let mut publics = 0usize;
    match pdb.global_symbols() {
        Ok(symbols) => {
            let mut iter = symbols.iter();
            loop {
                match iter.next() {
                    Ok(Some(sym)) => {
                        if let Ok(pdb::SymbolData::Public(p)) = sym.parse() {
                            publics += 1;
                            if p.name.to_string() == "DriverEntry" {
                                driver_entry = address_map
                                    .as_ref()
                                    .and_then(|m| p.offset.to_rva(m))
                                    .map(|r| r.0);
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        report.fail("pdb.publics", format!("unreadable symbol record: {e}"));
                        break;
                    }
                }
            }
        }
        Err(e) => report.fail("pdb.publics", format!("no global symbol stream: {e}")),
    }
    report.facts.pdb_publics = publics;
    report.facts.driver_entry_rva = driver_entry;
    report.check(
        "pdb.driver_entry",
        driver_entry.is_some(),
        match driver_entry {
            Some(rva) => format!("public DriverEntry at RVA 0x{rva:x}"),
            None => "the PDB has no public symbol DriverEntry".to_string(),
        },
    );
    if let Some(rva) = driver_entry {
        let entry = report.facts.entry_rva;
        report.check(
            "pe.entry_is_driver_entry",
            entry == Some(rva),
            format!("AddressOfEntryPoint {entry:x?}, DriverEntry at 0x{rva:x}"),
        );
    }

    // Types: the count, and the one NDIS structure every build has (DriverEntry
    // registers with it), so that `dt mdlpool!...` works in WinDbg.
    let mut types = 0usize;
    let mut has_chars = false;
    match pdb.type_information() {
        Ok(info) => {
            types = info.len();
            let mut iter = info.iter();
            while let Ok(Some(t)) = iter.next() {
                if let Ok(pdb::TypeData::Class(c)) = t.parse() {
                    if c.name
                        .to_string()
                        .ends_with("NDIS_FILTER_DRIVER_CHARACTERISTICS")
                    {
                        has_chars = true;
                        break;
                    }
                }
            }
        }
        Err(e) => report.fail("pdb.types", format!("no type stream: {e}")),
    }
    report.check(
        "pdb.types.ndis",
        has_chars,
        "the PDB must describe NDIS_FILTER_DRIVER_CHARACTERISTICS (full debug info)",
    );
    report.facts.pdb_type_records = types;
    report.check(
        "pdb.types",
        types > 0,
        format!("{types} type records (link with /DEBUG:FULL)"),
    );
}

fn pdb_file_name(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

fn hex(bytes: [u8; 16]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------
// INF
// ---------------------------------------------------------------------------

/// The NDIS lightweight-filter INF rules, for the stamped INF of `arch`.
pub fn verify_inf(arch: Arch, text: &str, report: &mut Report) {
    let inf = match Inf::parse(text) {
        Ok(i) => i,
        Err(e) => return report.fail("inf.parse", format!("INF syntax: {e}")),
    };
    report.check("inf.parse", true, "INF syntax");
    // Without a BOM Setup reads an INF in the system's ANSI code page: keep it ASCII.
    let non_ascii: Vec<char> = text.chars().filter(|c| !c.is_ascii()).take(5).collect();
    report.check(
        "inf.ascii",
        non_ascii.is_empty(),
        format!("non-ASCII characters in the INF: {non_ascii:?}"),
    );
    if text.contains("$ARCH$") {
        report.fail("inf.stamped", "the INF still contains $ARCH$ (not stamped)");
    }

    // [Version]
    let Some(version) = inf.section("Version") else {
        return report.fail("inf.version", "no [Version] section");
    };
    let v = |k: &str| version.entry(k).map(|l| l.value(0).to_string());
    expect_eq_ci(
        report,
        "inf.version.signature",
        "[Version] Signature",
        v("Signature"),
        "$Windows NT$",
    );
    expect_eq_ci(
        report,
        "inf.version.class",
        "[Version] Class",
        v("Class"),
        "NetService",
    );
    expect_eq_ci(
        report,
        "inf.version.classguid",
        "[Version] ClassGUID",
        v("ClassGUID"),
        names::NETSERVICE_CLASS_GUID,
    );
    expect_eq_ci(
        report,
        "inf.version.catalog",
        "[Version] CatalogFile",
        v("CatalogFile"),
        names::CAT_FILE,
    );
    expect_eq_ci(
        report,
        "inf.version.pnplockdown",
        "[Version] PnpLockdown",
        v("PnpLockdown"),
        "1",
    );
    report.check(
        "inf.version.provider",
        v("Provider").is_some_and(|p| !p.is_empty()),
        "[Version] Provider must be set",
    );
    let dv = version
        .entry("DriverVer")
        .map(|l| l.values.clone())
        .unwrap_or_default();
    report.check(
        "inf.version.driverver",
        dv.len() == 2 && valid_driver_ver_date(&dv[0]) && valid_driver_ver_version(&dv[1]),
        format!("[Version] DriverVer {dv:?}, expected MM/DD/YYYY,w.x.y.z"),
    );

    // [Manufacturer] -> models sections for this arch: one for builds 25319 and
    // later (driver store), one for the older builds the driver supports.
    let new_dec = format!("nt{}.10.0...25319", arch.name());
    let models = manufacturer_models(&inf, arch);
    if inf.section("Manufacturer").is_none() {
        report.fail("inf.manufacturer", "no [Manufacturer] section");
    }
    let new_models = models
        .iter()
        .find(|(d, _, _)| *d == new_dec)
        .map(|(_, s, _)| s.clone());
    let old_models = models
        .iter()
        .filter(|(d, _, _)| *d != new_dec)
        .min_by_key(|(_, _, b)| *b)
        .map(|(_, s, _)| s.clone());
    report.check(
        "inf.manufacturer.targets",
        new_models.is_some() && old_models.is_some(),
        format!(
            "[Manufacturer] must target {new_dec} and an older NT{} decoration (found {:?})",
            arch.name(),
            models.iter().map(|m| &m.0).collect::<Vec<_>>()
        ),
    );

    let mut ndi_services = BTreeSet::new();
    let mut add_services = BTreeSet::new();
    let mut del_services = BTreeSet::new();
    let mut instance_ids = BTreeSet::new();
    for (models_name, dirid, tag) in [
        (new_models, "13", "10.0...25319"),
        (old_models, "12", "pre-25319"),
    ] {
        let Some(models_name) = models_name else {
            continue;
        };
        let Some(models) = inf.section(&models_name) else {
            report.fail(
                "inf.models",
                format!("[Manufacturer] names [{models_name}] but it does not exist"),
            );
            continue;
        };
        let Some(model) = models
            .lines
            .iter()
            .find(|l| l.value(1).eq_ignore_ascii_case(names::COMPONENT_ID))
        else {
            report.fail(
                "inf.models",
                format!(
                    "[{models_name}] has no model with component id {}",
                    names::COMPONENT_ID
                ),
            );
            continue;
        };
        report.check(
            "inf.models.description",
            model.key.as_deref() == Some(names::FRIENDLY_NAME),
            format!(
                "[{models_name}] description {:?}, expected {:?}",
                model.key,
                names::FRIENDLY_NAME
            ),
        );
        let install = model.value(0).to_string();
        verify_install(
            &inf,
            &install,
            dirid,
            tag,
            report,
            &mut ndi_services,
            &mut add_services,
            &mut del_services,
            &mut instance_ids,
        );
    }

    let expected = names::SERVICE_NAME.to_ascii_lowercase();
    report.check(
        "inf.service_names_agree",
        !ndi_services.is_empty()
            && ndi_services.iter().all(|s| *s == expected)
            && !add_services.is_empty()
            && add_services == ndi_services
            && del_services == ndi_services,
        format!(
            "Ndi\\Service {ndi_services:?}, AddService {add_services:?}, DelService {del_services:?}: all must be {:?}",
            names::SERVICE_NAME
        ),
    );
    let unique = names::UNIQUE_NAME.to_ascii_lowercase();
    report.check(
        "inf.netcfginstanceid",
        !instance_ids.is_empty() && instance_ids.iter().all(|i| *i == unique),
        format!(
            "NetCfgInstanceId {instance_ids:?}, expected {}",
            names::UNIQUE_NAME
        ),
    );
}

/// The models sections `[Manufacturer]` names for `arch`: (decoration
/// lowercased, section name, lowest Windows build it targets).
fn manufacturer_models(inf: &Inf, arch: Arch) -> Vec<(String, String, u32)> {
    let mut models = Vec::new();
    if let Some(m) = inf.section("Manufacturer") {
        for line in &m.lines {
            let Some(base) = line.values.first() else {
                continue;
            };
            for dec in line.values.iter().skip(1) {
                if let Some(build) = crate::inf::target_os_min_build(dec, arch.name()) {
                    models.push((dec.to_ascii_lowercase(), format!("{base}.{dec}"), build));
                }
            }
        }
    }
    models
}

/// The INF must not install the driver where it cannot load: its lowest
/// target build for `arch` (the TargetOSVersion decorations in
/// `[Manufacturer]`) must not be below the first build that exports every
/// routine the image imports (`min=` in the known-exports lists).
pub fn verify_min_build(arch: Arch, inf_text: &str, known: &KnownExports, report: &mut Report) {
    let need = report
        .facts
        .imports
        .iter()
        .filter_map(|(m, n)| known.min_build(m, n).map(|b| (b, format!("{m}!{n}"))))
        .max();
    let Ok(inf) = Inf::parse(inf_text) else {
        return report.fail("inf.min_build", "INF syntax error (see inf.parse)");
    };
    let lowest = manufacturer_models(&inf, arch)
        .into_iter()
        .min_by_key(|(_, _, b)| *b);
    match (lowest, need) {
        (None, _) => report.fail(
            "inf.min_build",
            format!("[Manufacturer] has no models decoration for {}", arch.name()),
        ),
        (Some((dec, _, low)), Some((need, import))) => report.check(
            "inf.min_build",
            low >= need,
            format!(
                "lowest target NT{} build {low} ([Manufacturer] {dec}); the image imports {import}, exported from build {need} on: the INF must not target older builds",
                arch.name()
            ),
        ),
        (Some((dec, _, low)), None) => report.check(
            "inf.min_build",
            true,
            format!("lowest target build {low} ({dec}); no import names a minimum build"),
        ),
    }
}

#[allow(clippy::too_many_arguments)]
fn verify_install(
    inf: &Inf,
    install: &str,
    dirid: &str,
    tag: &str,
    report: &mut Report,
    ndi_services: &mut BTreeSet<String>,
    add_services: &mut BTreeSet<String>,
    del_services: &mut BTreeSet<String>,
    instance_ids: &mut BTreeSet<String>,
) {
    let Some(sec) = inf.section(install) else {
        return report.fail(
            "inf.install",
            format!("install section [{install}] ({tag}) does not exist"),
        );
    };
    // Characteristics = NCF_LW_FILTER, never NCF_FILTER.
    match sec.entry("Characteristics").map(|l| parse_number(l.value(0))) {
        Some(Some(c)) => report.check(
            "inf.characteristics",
            c & names::NCF_LW_FILTER != 0 && c & names::NCF_FILTER == 0,
            format!("[{install}] Characteristics 0x{c:x}: must include NCF_LW_FILTER 0x40000 and not NCF_FILTER 0x400"),
        ),
        Some(None) => report.fail("inf.characteristics", format!("[{install}] Characteristics is not a number")),
        None => report.fail("inf.characteristics", format!("[{install}] has no Characteristics entry (expected 0x40000)")),
    }
    match sec.entry("NetCfgInstanceId") {
        Some(l) => {
            instance_ids.insert(l.value(0).to_ascii_lowercase());
        }
        None => report.fail(
            "inf.netcfginstanceid",
            format!("[{install}] has no NetCfgInstanceId"),
        ),
    }

    // AddReg: the Ndi keys.
    let addreg: Vec<Section> = sec
        .list("AddReg")
        .iter()
        .filter_map(|n| inf.section(n))
        .collect();
    let reg = |subkey: &str, value: &str| -> Option<(String, String)> {
        addreg.iter().flat_map(|s| s.lines.iter()).find_map(|l| {
            (l.value(0).eq_ignore_ascii_case("HKR")
                && l.value(1).eq_ignore_ascii_case(subkey)
                && l.value(2).eq_ignore_ascii_case(value))
            .then(|| (l.value(3).to_string(), l.value(4).to_string()))
        })
    };
    match reg("Ndi", "Service") {
        Some((_, s)) => {
            ndi_services.insert(s.to_ascii_lowercase());
        }
        None => report.fail(
            "inf.ndi.service",
            format!("[{install}] AddReg has no HKR,Ndi,Service"),
        ),
    }
    let dword = |subkey: &str, value: &str| {
        reg(subkey, value).and_then(|(flags, v)| {
            (parse_number(&flags) == Some(0x0001_0001))
                .then(|| parse_number(&v))
                .flatten()
        })
    };
    let ft = dword("Ndi", "FilterType");
    report.check(
        "inf.ndi.filtertype",
        ft == Some(names::FILTER_TYPE),
        format!(
            "[{install}] Ndi FilterType {ft:?} (REG_DWORD), expected {} (modifying)",
            names::FILTER_TYPE
        ),
    );
    let fc = reg("Ndi", "FilterClass").map(|r| r.1);
    report.check(
        "inf.ndi.filterclass",
        fc.as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case(names::FILTER_CLASS)),
        format!(
            "[{install}] Ndi FilterClass {fc:?}: a modifying filter must have one ({})",
            names::FILTER_CLASS
        ),
    );
    let frt = dword("Ndi", "FilterRunType");
    report.check(
        "inf.ndi.filterruntype",
        frt == Some(names::FILTER_RUN_TYPE),
        format!(
            "[{install}] Ndi FilterRunType {frt:?} (REG_DWORD), expected {} (optional)",
            names::FILTER_RUN_TYPE
        ),
    );
    for (id, value, want) in [
        ("inf.ndi.upperrange", "UpperRange", "noupper"),
        ("inf.ndi.lowerrange", "LowerRange", "nolower"),
        (
            "inf.ndi.filtermediatypes",
            "FilterMediaTypes",
            names::FILTER_MEDIA_TYPES,
        ),
    ] {
        let got = reg("Ndi\\Interfaces", value).map(|r| r.1);
        report.check(
            id,
            got.as_deref().is_some_and(|g| g.eq_ignore_ascii_case(want)),
            format!("[{install}] Ndi\\Interfaces {value} {got:?}, expected {want:?}"),
        );
    }
    // Configuration defaults.
    let mut missing = Vec::new();
    for key in names::CONFIG_KEYS {
        let sub = format!("FilterAdapterParams\\{}", key.name);
        match reg(&sub, "default") {
            Some((_, d)) if d == key.default => {}
            other => missing.push(format!(
                "{} (default {:?}, expected {:?})",
                key.name,
                other.map(|o| o.1),
                key.default
            )),
        }
    }
    report.check(
        "inf.config_defaults",
        missing.is_empty(),
        if missing.is_empty() {
            format!("[{install}] writes every configuration default")
        } else {
            format!("[{install}] configuration defaults wrong or missing: {missing:?}")
        },
    );

    // CopyFiles -> DestinationDirs DIRID.
    let copy = sec.list("CopyFiles");
    let dest = inf.section("DestinationDirs");
    let dirs: Vec<String> = copy
        .iter()
        .map(|c| {
            dest.as_ref()
                .and_then(|d| d.entry(c).or_else(|| d.entry("DefaultDestDir")))
                .map(|l| l.value(0).to_string())
                .unwrap_or_default()
        })
        .collect();
    report.check(
        if dirid == "13" {
            "inf.dirid13"
        } else {
            "inf.dirid12"
        },
        !dirs.is_empty() && dirs.iter().all(|d| d == dirid),
        format!("[{install}] ({tag}) CopyFiles {copy:?} go to DIRIDs {dirs:?}, expected {dirid}"),
    );

    // Services.
    let services = inf.section(&format!("{install}.Services"));
    let add = services
        .as_ref()
        .and_then(|s| s.entry("AddService"))
        .cloned();
    match add {
        Some(l) => {
            add_services.insert(l.value(0).to_ascii_lowercase());
            let svc_section = l.value(2).to_string();
            match inf.section(&svc_section) {
                Some(svc) => {
                    let get = |k: &str| {
                        svc.entry(k)
                            .map(|l| l.value(0).to_string())
                            .unwrap_or_default()
                    };
                    let binary = get("ServiceBinary");
                    let want_binary = format!("%{dirid}%\\{}", names::SYS_FILE);
                    report.check(
                        "inf.service.binary",
                        binary.eq_ignore_ascii_case(&want_binary),
                        format!(
                            "[{svc_section}] ServiceBinary {binary:?}, expected {want_binary:?}"
                        ),
                    );
                    report.check(
                        "inf.service.type",
                        parse_number(&get("ServiceType")) == Some(1),
                        format!(
                            "[{svc_section}] ServiceType {:?}, expected 1 (kernel driver)",
                            get("ServiceType")
                        ),
                    );
                    let start = parse_number(&get("StartType"));
                    report.check(
                        "inf.service.start",
                        matches!(start, Some(1) | Some(3)),
                        format!("[{svc_section}] StartType {start:?}, expected 1 (system) or 3 (demand)"),
                    );
                    report.check(
                        "inf.service.group",
                        get("LoadOrderGroup").eq_ignore_ascii_case("NDIS"),
                        format!(
                            "[{svc_section}] LoadOrderGroup {:?}, expected NDIS",
                            get("LoadOrderGroup")
                        ),
                    );
                }
                None => report.fail(
                    "inf.service",
                    format!("[{install}.Services] names [{svc_section}] but it does not exist"),
                ),
            }
        }
        None => report.fail(
            "inf.addservice",
            format!("[{install}.Services] has no AddService"),
        ),
    }
    match inf
        .section(&format!("{install}.Remove.Services"))
        .and_then(|s| s.entry("DelService").cloned())
    {
        Some(l) => {
            del_services.insert(l.value(0).to_ascii_lowercase());
        }
        None => report.fail(
            "inf.delservice",
            format!("[{install}.Remove.Services] has no DelService"),
        ),
    }
}

fn expect_eq_ci(
    report: &mut Report,
    id: &'static str,
    what: &str,
    got: Option<String>,
    want: &str,
) {
    report.check(
        id,
        got.as_deref().is_some_and(|g| g.eq_ignore_ascii_case(want)),
        format!("{what} {got:?}, expected {want:?}"),
    );
}

fn parse_number(s: &str) -> Option<u32> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn valid_driver_ver_date(s: &str) -> bool {
    let p: Vec<&str> = s.split('/').collect();
    p.len() == 3
        && p[0].len() == 2
        && p[1].len() == 2
        && p[2].len() == 4
        && p.iter().all(|x| x.chars().all(|c| c.is_ascii_digit()))
        && (1..=12).contains(&p[0].parse::<u32>().unwrap_or(0))
        && (1..=31).contains(&p[1].parse::<u32>().unwrap_or(0))
}

fn valid_driver_ver_version(s: &str) -> bool {
    let p: Vec<&str> = s.split('.').collect();
    p.len() == 4 && p.iter().all(|x| x.parse::<u16>().is_ok())
}

// ---------------------------------------------------------------------------
// Names that must agree between the INF and the image
// ---------------------------------------------------------------------------

/// The service name, unique name and friendly name the driver registers with
/// must be in the image (as UTF-16LE, as NDIS_STRINGs are) and must be what
/// the INF says.
pub fn verify_names(sys: &[u8], inf_text: &str, report: &mut Report) {
    let inf = Inf::parse(inf_text).ok();
    let inf_has = |pred: &dyn Fn(&crate::inf::Line) -> bool| -> bool {
        inf.as_ref()
            .is_some_and(|i| i.sections.iter().flat_map(|s| s.lines.iter()).any(pred))
    };
    for (id, name, what) in [
        ("names.service", names::SERVICE_NAME, "ServiceName"),
        ("names.unique", names::UNIQUE_NAME, "UniqueName"),
        ("names.friendly", names::FRIENDLY_NAME, "FriendlyName"),
    ] {
        let wide: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let in_image = sys.windows(wide.len()).any(|w| w == wide.as_slice());
        let in_inf = match id {
            "names.service" => inf_has(&|l| l.key_lower() == "addservice" && l.value(0) == name),
            "names.unique" => inf_has(&|l| {
                l.key_lower() == "netcfginstanceid" && l.value(0).eq_ignore_ascii_case(name)
            }),
            _ => inf_has(&|l| l.key.as_deref() == Some(name)),
        };
        report.check(
            id,
            in_image && in_inf,
            format!(
                "{what} {name:?}: {} the image (UTF-16LE), {} the INF",
                if in_image { "in" } else { "NOT in" },
                if in_inf { "in" } else { "NOT in" }
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_driver_ver_formats() {
        assert_eq!(parse_number("0x40000"), Some(0x40000));
        assert_eq!(parse_number("2"), Some(2));
        assert_eq!(parse_number("x"), None);
        assert!(valid_driver_ver_date("11/27/2026"));
        assert!(!valid_driver_ver_date("2026/11/27"));
        assert!(valid_driver_ver_version("0.1.0.0"));
        assert!(!valid_driver_ver_version("0.1.0"));
    }

    #[test]
    fn garbage_is_reported_not_panicked_on() {
        let known = KnownExports::default();
        let r = verify_package(Arch::Amd64, b"MZ not really", b"nope", "not an inf", &known);
        let failed = r.failed_ids();
        assert!(failed.contains("pe.parse"), "{failed:?}");
        assert!(failed.contains("pdb.parse"), "{failed:?}");
        assert!(!r.ok());
    }

    #[test]
    fn checksum_of_known_bytes() {
        // No PE headers: no checksum offset.
        assert_eq!(pe_checksum(&[0u8; 8]), None);
    }
}
