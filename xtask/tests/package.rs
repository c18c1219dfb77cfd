//! The package verifier against the real built package, and against
//! deliberately broken copies of it.
//!
//! The driver is built through the same code path as `cargo xtask package`
//! (once per architecture per test run). When a windows rustup target is not
//! installed and cannot be added, the tests that need it say so loudly and
//! return; everything else about them runs on any Linux host.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use object::read::pe::PeFile64;
use object::LittleEndian as LE;
use xtask::known::KnownExports;
use xtask::package::{self, Built};
use xtask::verify::{self, Arch, Report};

fn built(arch: Arch) -> Option<&'static Built> {
    static AMD64: OnceLock<Option<Built>> = OnceLock::new();
    static ARM64: OnceLock<Option<Built>> = OnceLock::new();
    let cell = match arch {
        Arch::Amd64 => &AMD64,
        Arch::Arm64 => &ARM64,
    };
    cell.get_or_init(|| {
        if !package::target_available(arch) {
            eprintln!(
                "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                 !!! SKIPPED: rustup target {} is not installed and cannot be added;\n\
                 !!! the package tests for {} did not run.\n\
                 !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
                arch.triple(),
                arch.name()
            );
            return None;
        }
        Some(package::build(arch, false).unwrap_or_else(|e| panic!("building the {} package: {e}", arch.name())))
    })
    .as_ref()
}

fn known() -> KnownExports {
    KnownExports::load_default().unwrap()
}

fn verify(arch: Arch, sys: &[u8], pdb: &[u8], inf: &str) -> Report {
    verify::verify_package(arch, sys, pdb, inf, &known())
}

fn failed(report: &Report) -> BTreeSet<&'static str> {
    report.failed_ids()
}

fn set(ids: &[&'static str]) -> BTreeSet<&'static str> {
    ids.iter().copied().collect()
}

/// The failure text must name the offending thing, so a person can act on it.
fn assert_message_mentions(report: &Report, id: &str, needle: &str) {
    let text: Vec<&str> = report
        .failures()
        .filter(|c| c.id == id)
        .map(|c| c.detail.as_str())
        .collect();
    assert!(
        text.iter().any(|t| t.contains(needle)),
        "[{id}] should mention {needle:?}: {text:?}"
    );
}

fn rva_to_offset(sys: &[u8], rva: u32) -> usize {
    let file = PeFile64::parse(sys).unwrap();
    file.section_table()
        .pe_file_range_at(rva)
        .expect("rva inside a section")
        .0 as usize
}

/// File offset of the NUL-terminated name of the import descriptor for `dll`.
fn import_dll_name_offset(sys: &[u8], dll: &str) -> usize {
    let file = PeFile64::parse(sys).unwrap();
    let table = file.import_table().unwrap().unwrap();
    let mut descriptors = table.descriptors().unwrap();
    while let Some(d) = descriptors.next().unwrap() {
        let name = table.name(d.name.get(LE)).unwrap();
        if name.eq_ignore_ascii_case(dll.as_bytes()) {
            return rva_to_offset(sys, d.name.get(LE));
        }
    }
    panic!("the image does not import {dll}");
}

/// File offset of the name (after the hint) of the import-by-name `func`.
fn import_name_offset(sys: &[u8], func: &str) -> usize {
    type Nt = object::pe::ImageNtHeaders64;
    let file = PeFile64::parse(sys).unwrap();
    let table = file.import_table().unwrap().unwrap();
    let mut descriptors = table.descriptors().unwrap();
    while let Some(d) = descriptors.next().unwrap() {
        let mut thunks = table.thunks(d.original_first_thunk.get(LE)).unwrap();
        while let Some(thunk) = thunks.next::<Nt>().unwrap() {
            use object::read::pe::ImageThunkData;
            if thunk.is_ordinal() {
                continue;
            }
            let (_, name) = table.hint_name(thunk.address()).unwrap();
            if name == func.as_bytes() {
                return rva_to_offset(sys, thunk.address()) + 2;
            }
        }
    }
    panic!("the image does not import {func}");
}

fn nt_offset(sys: &[u8]) -> usize {
    PeFile64::parse(sys)
        .unwrap()
        .dos_header()
        .nt_headers_offset() as usize
}

/// Offset of a field of the optional header (PE32+ layout).
fn optional_header_field(sys: &[u8], field_offset: usize) -> usize {
    nt_offset(sys) + 4 + 20 + field_offset
}

fn patch(sys: &mut [u8], at: usize, bytes: &[u8]) {
    sys[at..at + bytes.len()].copy_from_slice(bytes);
    verify::fix_checksum(sys);
}

// ---------------------------------------------------------------------------

#[test]
fn the_real_packages_pass_every_check() {
    for arch in Arch::ALL {
        let Some(b) = built(arch) else { continue };
        let report = verify(arch, &b.sys, &b.pdb, &b.inf);
        assert!(
            report.ok(),
            "{} package failed:\n{}",
            arch.name(),
            report.failure_text()
        );
        assert!(
            report.passed_count() >= 40,
            "suspiciously few checks ran: {}",
            report.passed_count()
        );
        let f = &report.facts;
        assert!(!f.imports.is_empty());
        assert!(f
            .imports
            .iter()
            .any(|(m, n)| m == "ndis.sys" && n == "NdisFRegisterFilterDriver"));
        assert_eq!(
            f.entry_rva, f.driver_entry_rva,
            "entry point is DriverEntry"
        );
        assert!(f.pdb_type_records > 0);
    }
}

#[test]
fn an_import_from_a_forbidden_dll_fails() {
    let Some(b) = built(Arch::Amd64) else { return };
    let mut sys = b.sys.clone();
    let at = import_dll_name_offset(&sys, "ndis.sys");
    patch(&mut sys, at, b"http.sys"); // same length: only the module changes
    let report = verify(Arch::Amd64, &sys, &b.pdb, &b.inf);
    assert_eq!(
        failed(&report),
        set(&["pe.imports.modules"]),
        "{}",
        report.failure_text()
    );
    assert_message_mentions(&report, "pe.imports.modules", "http.sys");
}

#[test]
fn an_import_of_an_unknown_export_fails() {
    let Some(b) = built(Arch::Amd64) else { return };
    // Rename the first name imported from ndis.sys by changing its last letter: same
    // length, same module, a name no kernel exports.
    let real = verify(Arch::Amd64, &b.sys, &b.pdb, &b.inf);
    let (_, name) = real
        .facts
        .imports
        .iter()
        .find(|(m, _)| m == "ndis.sys")
        .expect("an ndis.sys import");
    let mut renamed = name.clone().into_bytes();
    let last = renamed.len() - 1;
    renamed[last] = if renamed[last] == b'Q' { b'Z' } else { b'Q' };
    let renamed = String::from_utf8(renamed).unwrap();
    let mut sys = b.sys.clone();
    let at = import_name_offset(&sys, name);
    patch(&mut sys, at, renamed.as_bytes());
    let report = verify(Arch::Amd64, &sys, &b.pdb, &b.inf);
    assert_eq!(
        failed(&report),
        set(&["pe.imports.known"]),
        "{}",
        report.failure_text()
    );
    assert_message_mentions(&report, "pe.imports.known", &format!("ndis.sys!{renamed}"));
}

#[test]
fn an_allow_list_without_the_name_fails_the_real_image() {
    let Some(b) = built(Arch::Amd64) else { return };
    let mut known = KnownExports::default();
    known.add_list("ntoskrnl.exe", "memcpy\n").unwrap();
    known.add_list("hal.dll", "").unwrap();
    known
        .add_list("ndis.sys", "NdisFRegisterFilterDriver\n")
        .unwrap();
    let report = verify::verify_package(Arch::Amd64, &b.sys, &b.pdb, &b.inf, &known);
    assert_eq!(
        failed(&report),
        set(&["pe.imports.known"]),
        "{}",
        report.failure_text()
    );
    assert_message_mentions(&report, "pe.imports.known", "NdisFDeregisterFilterDriver");
}

#[test]
fn an_inf_without_characteristics_fails() {
    let Some(b) = built(Arch::Amd64) else { return };
    // Drop the Characteristics line of the first install section only.
    let mut dropped = false;
    let inf: String = b
        .inf
        .split_inclusive('\n')
        .filter(|l| {
            if !dropped && l.trim_start().starts_with("Characteristics") {
                dropped = true;
                return false;
            }
            true
        })
        .collect();
    assert!(dropped);
    let report = verify(Arch::Amd64, &b.sys, &b.pdb, &inf);
    assert_eq!(
        failed(&report),
        set(&["inf.characteristics"]),
        "{}",
        report.failure_text()
    );
    assert_message_mentions(&report, "inf.characteristics", "no Characteristics");
}

#[test]
fn an_inf_with_ncf_filter_set_fails() {
    let Some(b) = built(Arch::Amd64) else { return };
    let inf = b.inf.replacen(
        "Characteristics  = 0x40000",
        "Characteristics  = 0x40400",
        1,
    );
    assert_ne!(inf, b.inf);
    let report = verify(Arch::Amd64, &b.sys, &b.pdb, &inf);
    assert_eq!(
        failed(&report),
        set(&["inf.characteristics"]),
        "{}",
        report.failure_text()
    );
}

#[test]
fn a_mismatched_service_name_fails() {
    let Some(b) = built(Arch::Amd64) else { return };
    // Ndi\Service names another service than AddService/DelService.
    let inf = b.inf.replace(
        "Service,          0x00000000, \"mdlpool\"",
        "Service,          0x00000000, \"mdlpol2\"",
    );
    assert_ne!(inf, b.inf);
    let report = verify(Arch::Amd64, &b.sys, &b.pdb, &inf);
    assert_eq!(
        failed(&report),
        set(&["inf.service_names_agree"]),
        "{}",
        report.failure_text()
    );
    assert_message_mentions(&report, "inf.service_names_agree", "mdlpol2");

    // The INF consistently uses a name the driver does not register with.
    let inf = b
        .inf
        .replace("mdlpool,", "otherlwf,")
        .replace("\"mdlpool\"", "\"otherlwf\"");
    let report = verify(Arch::Amd64, &b.sys, &b.pdb, &inf);
    assert_eq!(
        failed(&report),
        set(&["inf.service_names_agree", "names.service"]),
        "{}",
        report.failure_text()
    );
    assert_message_mentions(&report, "names.service", "NOT in the INF");
}

#[test]
fn a_mismatched_unique_name_fails() {
    let Some(b) = built(Arch::Amd64) else { return };
    let inf = b.inf.replace(
        "{6f1c3e2a-9b4d-4c7e-8a51-2d0f7b93c4e1}",
        "{00000000-9b4d-4c7e-8a51-2d0f7b93c4e1}",
    );
    let report = verify(Arch::Amd64, &b.sys, &b.pdb, &inf);
    assert_eq!(
        failed(&report),
        set(&["inf.netcfginstanceid", "names.unique"]),
        "{}",
        report.failure_text()
    );
}

#[test]
fn inf_lwf_rules_each_fail_on_their_own() {
    let Some(b) = built(Arch::Amd64) else { return };
    let cases: &[(&str, &str, &[&'static str])] = &[
        (
            "Class       = NetService",
            "Class       = Net",
            &["inf.version.class"],
        ),
        (
            "FilterType,       0x00010001, 2",
            "FilterType,       0x00010001, 1",
            &["inf.ndi.filtertype"],
        ),
        (
            "FilterRunType,    0x00010001, 2",
            "FilterRunType,    0x00010001, 1",
            &["inf.ndi.filterruntype"],
        ),
        ("\"noupper\"", "\"ndis5\"", &["inf.ndi.upperrange"]),
        ("\"nolower\"", "\"ethernet\"", &["inf.ndi.lowerrange"]),
        (
            "Driver.CopyFiles.DriverStore = 13",
            "Driver.CopyFiles.DriverStore = 12",
            &["inf.dirid13"],
        ),
        (
            "PnpLockdown = 1",
            "PnpLockdown = 0",
            &["inf.version.pnplockdown"],
        ),
        (
            "DelService = mdlpool, 0x200",
            "; no DelService",
            &["inf.delservice"],
        ),
        (
            "default,   0, \"14\"",
            "default,   0, \"15\"",
            &["inf.config_defaults"],
        ),
        (
            "max,       0, \"4094\"",
            "max,       0, \"4095\"",
            &["inf.config_params"],
        ),
    ];
    for (from, to, want) in cases {
        assert!(
            b.inf.contains(from),
            "the stamped INF no longer contains {from:?}"
        );
        let inf = b.inf.replacen(from, to, 1);
        let report = verify(Arch::Amd64, &b.sys, &b.pdb, &inf);
        assert_eq!(
            failed(&report),
            set(want),
            "mutation {from:?} -> {to:?}:\n{}",
            report.failure_text()
        );
    }
}

#[test]
fn pe_header_rules_each_fail_on_their_own() {
    let Some(b) = built(Arch::Amd64) else { return };
    // Subsystem (optional header offset 68) = WINDOWS_GUI.
    let mut sys = b.sys.clone();
    let at = optional_header_field(&sys, 68);
    patch(&mut sys, at, &2u16.to_le_bytes());
    assert_eq!(
        failed(&verify(Arch::Amd64, &sys, &b.pdb, &b.inf)),
        set(&["pe.subsystem"])
    );

    // DllCharacteristics (offset 70) without NX_COMPAT.
    let mut sys = b.sys.clone();
    let at = optional_header_field(&sys, 70);
    let dllc = u16::from_le_bytes([sys[at], sys[at + 1]]) & !0x0100;
    patch(&mut sys, at, &dllc.to_le_bytes());
    assert_eq!(
        failed(&verify(Arch::Amd64, &sys, &b.pdb, &b.inf)),
        set(&["pe.nx_compat"])
    );

    // Entry point (offset 16) moved off DriverEntry, still inside .text.
    let mut sys = b.sys.clone();
    let at = optional_header_field(&sys, 16);
    let entry = u32::from_le_bytes(sys[at..at + 4].try_into().unwrap());
    patch(&mut sys, at, &(entry + 1).to_le_bytes());
    assert_eq!(
        failed(&verify(Arch::Amd64, &sys, &b.pdb, &b.inf)),
        set(&["pe.entry_is_driver_entry"])
    );

    // A code section that is also writable.
    let mut sys = b.sys.clone();
    let text_flags_at = {
        let file = PeFile64::parse(&sys[..]).unwrap();
        let s = file
            .section_table()
            .iter()
            .find(|s| s.raw_name() == b".text")
            .expect(".text");
        (&s.characteristics as *const _ as usize) - (sys.as_ptr() as usize)
    };
    let flags =
        u32::from_le_bytes(sys[text_flags_at..text_flags_at + 4].try_into().unwrap()) | 0x8000_0000;
    patch(&mut sys, text_flags_at, &flags.to_le_bytes());
    let report = verify(Arch::Amd64, &sys, &b.pdb, &b.inf);
    assert_eq!(
        failed(&report),
        set(&["pe.no_wx_section"]),
        "{}",
        report.failure_text()
    );
    assert_message_mentions(&report, "pe.no_wx_section", ".text");

    // Wrong machine for the architecture.
    assert!(failed(&verify(Arch::Arm64, &b.sys, &b.pdb, &b.inf)).contains("pe.machine"));

    // A TLS directory (data directory 9, at optional header offset 112 + 9 * 8).
    let mut sys = b.sys.clone();
    let at = optional_header_field(&sys, 112 + 9 * 8);
    patch(&mut sys, at, &[0x00, 0x10, 0, 0, 0x28, 0, 0, 0]);
    assert_eq!(
        failed(&verify(Arch::Amd64, &sys, &b.pdb, &b.inf)),
        set(&["pe.no_tls"])
    );

    // Sections not page-aligned (SectionAlignment at offset 32).
    let mut sys = b.sys.clone();
    let at = optional_header_field(&sys, 32);
    patch(&mut sys, at, &0x200u32.to_le_bytes());
    assert_eq!(
        failed(&verify(Arch::Amd64, &sys, &b.pdb, &b.inf)),
        set(&["pe.alignment"])
    );

    // A stale checksum.
    let mut sys = b.sys.clone();
    let at = optional_header_field(&sys, 64);
    sys[at] ^= 0xff;
    assert_eq!(
        failed(&verify(Arch::Amd64, &sys, &b.pdb, &b.inf)),
        set(&["pe.checksum"])
    );
}

#[test]
fn a_pdb_of_another_build_fails() {
    let (Some(a), Some(r)) = (built(Arch::Amd64), built(Arch::Arm64)) else {
        return;
    };
    let report = verify(Arch::Amd64, &a.sys, &r.pdb, &a.inf);
    assert!(
        failed(&report).contains("pdb.matches_image"),
        "{}",
        report.failure_text()
    );
    let report = verify(
        Arch::Amd64,
        &a.sys,
        b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0 truncated",
        &a.inf,
    );
    assert!(
        failed(&report).contains("pdb.parse"),
        "{}",
        report.failure_text()
    );
}

#[test]
fn the_inf_is_stamped_for_its_architecture() {
    for arch in Arch::ALL {
        let Some(b) = built(arch) else { continue };
        assert!(!b.inf.contains("$ARCH$"));
        assert!(b.inf.contains(&format!("NT{}.10.0...25319", arch.name())));
        let other = Arch::ALL.into_iter().find(|a| *a != arch).unwrap();
        let report = verify(other, &b.sys, &b.pdb, &b.inf);
        assert!(
            failed(&report).contains("inf.manufacturer.targets"),
            "{}",
            report.failure_text()
        );
    }
}

/// File offset of the `Name` field (an RVA) of the import descriptor for `dll`.
fn import_descriptor_name_field(sys: &[u8], dll: &str) -> usize {
    let file = PeFile64::parse(sys).unwrap();
    let dir = file
        .data_directory(object::pe::IMAGE_DIRECTORY_ENTRY_IMPORT)
        .expect("an import directory");
    let start = rva_to_offset(sys, dir.virtual_address.get(LE));
    // IMAGE_IMPORT_DESCRIPTOR: 20 bytes, Name at +12; a zeroed one ends the table.
    for at in (start..).step_by(20) {
        let name_rva = u32::from_le_bytes(sys[at + 12..at + 16].try_into().unwrap());
        assert_ne!(name_rva, 0, "the image does not import {dll}");
        let off = rva_to_offset(sys, name_rva);
        let end = off + sys[off..].iter().position(|&b| b == 0).unwrap();
        if sys[off..end].eq_ignore_ascii_case(dll.as_bytes()) {
            return at + 12;
        }
    }
    unreachable!()
}

#[test]
fn the_arm64_image_imports_its_irql_routines_from_hal_dll() {
    let Some(b) = built(Arch::Arm64) else { return };
    let report = verify(Arch::Arm64, &b.sys, &b.pdb, &b.inf);
    let mut irql: Vec<(String, String)> = report
        .facts
        .imports
        .iter()
        .filter(|(_, n)| n.contains("Irql"))
        .cloned()
        .collect();
    irql.sort();
    let want: Vec<(String, String)> = ["KeGetCurrentIrql", "KfLowerIrql", "KfRaiseIrql"]
        .iter()
        .map(|n| ("hal.dll".to_string(), n.to_string()))
        .collect();
    assert_eq!(irql, want);
    let Some(amd) = built(Arch::Amd64) else {
        return;
    };
    let report = verify(Arch::Amd64, &amd.sys, &amd.pdb, &amd.inf);
    assert!(
        !report.facts.imports.iter().any(|(_, n)| n.contains("Irql")),
        "x64 reads and writes CR8 inline: {:?}",
        report.facts.imports
    );
}

/// The same image with its hal.dll descriptor pointed at the ntoskrnl.exe name:
/// KeGetCurrentIrql / KfRaiseIrql / KfLowerIrql now come from ntoskrnl.exe, which
/// does not export them on arm64. Refused by the allow-list and by the IRQL rule.
#[test]
fn an_arm64_image_importing_irql_routines_from_ntoskrnl_is_refused() {
    let Some(b) = built(Arch::Arm64) else { return };
    let mut sys = b.sys.clone();
    let hal = import_descriptor_name_field(&sys, "hal.dll");
    let nt = import_descriptor_name_field(&sys, "ntoskrnl.exe");
    let nt_name: [u8; 4] = sys[nt..nt + 4].try_into().unwrap();
    patch(&mut sys, hal, &nt_name);
    let report = verify(Arch::Arm64, &sys, &b.pdb, &b.inf);
    assert!(report
        .facts
        .imports
        .contains(&("ntoskrnl.exe".to_string(), "KfRaiseIrql".to_string())));
    assert_eq!(
        failed(&report),
        set(&["pe.imports.known", "pe.imports.irql_module"]),
        "{}",
        report.failure_text()
    );
    assert_message_mentions(
        &report,
        "pe.imports.irql_module",
        "ntoskrnl.exe!KeGetCurrentIrql",
    );
    assert_message_mentions(&report, "pe.imports.known", "ntoskrnl.exe!KfLowerIrql");
    assert_message_mentions(
        &report,
        "pe.imports.known",
        "on arm64 it is exported by hal.dll",
    );

    // The IRQL rule does not lean on the allow-list: a list that (wrongly) gave
    // ntoskrnl.exe the three names for arm64 still does not let the image through.
    let mut lenient = KnownExports::default();
    for m in xtask::known::MODULES {
        let dir = KnownExports::default_dir();
        let text = std::fs::read_to_string(dir.join(format!("{m}.txt"))).unwrap();
        let text = if *m == "ntoskrnl.exe" {
            text.replace("arch=amd64", "") + "KfLowerIrql\n"
        } else {
            text
        };
        lenient.add_list(m, &text).unwrap();
    }
    let report = verify::verify_package(Arch::Arm64, &sys, &b.pdb, &b.inf, &lenient);
    assert_eq!(
        failed(&report),
        set(&["pe.imports.irql_module"]),
        "{}",
        report.failure_text()
    );
}

/// An amd64 image that imports an IRQL routine (here: an ntoskrnl.exe import renamed
/// to KfRaiseIrql, an x64 export) is refused: x64 drivers use CR8 inline.
#[test]
fn an_amd64_image_importing_an_irql_routine_is_refused() {
    let Some(b) = built(Arch::Amd64) else { return };
    let real = verify(Arch::Amd64, &b.sys, &b.pdb, &b.inf);
    let (_, victim) = real
        .facts
        .imports
        .iter()
        .find(|(m, n)| {
            m == "ntoskrnl.exe" && n.len() >= "KfRaiseIrql".len() && n != "ExAllocatePool2"
        })
        .expect("an ntoskrnl.exe import with a long enough name");
    let mut sys = b.sys.clone();
    let at = import_name_offset(&sys, victim);
    let mut name = b"KfRaiseIrql".to_vec();
    name.resize(victim.len(), 0);
    patch(&mut sys, at, &name);
    let report = verify(Arch::Amd64, &sys, &b.pdb, &b.inf);
    assert_eq!(
        failed(&report),
        set(&["pe.imports.irql_module"]),
        "{}",
        report.failure_text()
    );
    assert_message_mentions(
        &report,
        "pe.imports.irql_module",
        "ntoskrnl.exe!KfRaiseIrql",
    );
}

/// The INF may not install the driver on builds whose kernel lacks an import:
/// ExAllocatePool2 needs 19041, so an INF whose older models section targets any
/// earlier build (or none, undecorated) is refused for both architectures.
#[test]
fn an_inf_targeting_builds_older_than_the_imports_need_is_refused() {
    for arch in Arch::ALL {
        let Some(b) = built(arch) else { continue };
        let ok = verify(arch, &b.sys, &b.pdb, &b.inf);
        assert!(ok.ok(), "{}", ok.failure_text());
        let dec = format!("NT{}.10.0...19041", arch.name());
        assert!(b.inf.contains(&dec), "the stamped INF targets {dec}");
        for older in [
            format!("NT{}.10.0...18362", arch.name()),
            format!("NT{}.10.0", arch.name()),
            format!("NT{}", arch.name()),
        ] {
            let inf = b.inf.replace(&dec, &older);
            let report = verify(arch, &b.sys, &b.pdb, &inf);
            assert_eq!(
                failed(&report),
                set(&["inf.min_build"]),
                "{older}: {}",
                report.failure_text()
            );
            assert_message_mentions(&report, "inf.min_build", "ntoskrnl.exe!ExAllocatePool2");
            assert_message_mentions(&report, "inf.min_build", "19041");
        }
        // A newer floor is fine.
        let inf = b
            .inf
            .replace(&dec, &format!("NT{}.10.0...22000", arch.name()));
        let report = verify(arch, &b.sys, &b.pdb, &inf);
        assert!(report.ok(), "{}", report.failure_text());
    }
}
