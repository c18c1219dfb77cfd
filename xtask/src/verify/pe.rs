//! PE image checks (`pe.*`): machine, subsystem, DLL characteristics, sections, checksum, imports
//! against the allow-list, IRQL routines, delay imports; and the PE checksum itself (a sum, not a
//! parse). PE reading is done with the `object` crate.

use std::collections::BTreeSet;

use object::pe;
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64};
use object::LittleEndian as LE;

use super::report::Report;
use crate::arch::{Arch, ARM64_HAL_IRQL};
use crate::known::KnownExports;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_known_bytes() {
        // No PE headers: no checksum offset.
        assert_eq!(pe_checksum(&[0u8; 8]), None);
    }
}
