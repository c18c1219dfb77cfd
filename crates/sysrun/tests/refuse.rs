//! Broken driver images are refused with an error naming the file, the place and the reason — never
//! a crash. Each case edits a copy of the shipped amd64 package (see `sysrun::testing::package_sys`).
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use sysrun::{LoadErrorKind, LoadedImage, PeImage};

fn package() -> (std::path::PathBuf, Vec<u8>) {
    let p = sysrun::testing::package_sys().unwrap_or_else(|e| panic!("{e}"));
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    (p, bytes)
}

fn write_copy(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let dir = sysrun::testing::target_dir().join("sysrun-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

/// File offsets of (COFF header, optional header, section table, section count).
fn headers(b: &[u8]) -> (usize, usize, usize, usize) {
    let nt = u32_at(b, 0x3c) as usize;
    let coff = nt + 4;
    let nsec = u16_at(b, coff + 2) as usize;
    let opt = coff + 20;
    let sect = opt + u16_at(b, coff + 16) as usize;
    (coff, opt, sect, nsec)
}

fn section_header(b: &[u8], name: &str) -> usize {
    let (_, _, sect, nsec) = headers(b);
    (0..nsec)
        .map(|i| sect + i * 40)
        .find(|&h| {
            b[h..h + 8].starts_with(name.as_bytes()) && (name.len() == 8 || b[h + name.len()] == 0)
        })
        .unwrap_or_else(|| panic!("no section {name}"))
}

#[test]
fn the_package_itself_loads_and_binds_every_import() {
    let (path, _) = package();
    let image = LoadedImage::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let pe = image.pe();
    assert!(!pe.imports.is_empty());
    for imp in &pe.imports {
        assert!(
            ndis_sim::find_export(Some(&imp.module), &imp.name).is_some(),
            "{}!{} bound but not in the table",
            imp.module,
            imp.name
        );
    }
    assert!(
        !pe.relocations.is_empty(),
        "a /DYNAMICBASE image has base relocations"
    );
    assert!(
        image.base() as u64 != pe.image_base,
        "mapped at a fresh address, not the preferred base"
    );
    let entry = image
        .describe(image.entry())
        .expect("entry inside the image");
    assert!(
        entry.contains("DriverEntry"),
        "PDB names the entry point: {entry}"
    );
    assert!(
        image.symbols_error().is_none(),
        "{:?}",
        image.symbols_error()
    );
}

#[test]
fn an_import_ndis_sim_lacks_is_refused_by_name() {
    let (_, mut b) = package();
    // Rename the first ndis.sys import in the hint/name table (same length, so nothing moves).
    let image = PeImage::parse("x.sys", b.clone()).unwrap();
    let victim = image
        .imports
        .iter()
        .find(|i| i.module == "ndis.sys")
        .expect("an ndis.sys import")
        .name
        .clone();
    let needle = format!("{victim}\0");
    let at = b
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .expect("import name in the file");
    let renamed = format!("{}Q", &victim[..victim.len() - 1]);
    b[at..at + renamed.len()].copy_from_slice(renamed.as_bytes());
    let path = write_copy("renamed-import.sys", &b);
    let err = LoadedImage::load(&path).unwrap_err();
    assert_eq!(err.kind, LoadErrorKind::UnknownImport);
    assert_eq!(err.place, format!("import ndis.sys!{renamed}"));
    let text = err.to_string();
    assert!(text.starts_with(&path.display().to_string()), "{text}");
    assert!(text.contains("ndis-sim does not export"), "{text}");
}

#[test]
fn a_writable_executable_section_is_refused() {
    let (_, mut b) = package();
    let h = section_header(&b, ".data");
    let flags = u32_at(&b, h + 36) | 0x2000_0000; // IMAGE_SCN_MEM_EXECUTE
    b[h + 36..h + 40].copy_from_slice(&flags.to_le_bytes());
    let path = write_copy("wx-section.sys", &b);
    let err = LoadedImage::load(&path).unwrap_err();
    assert_eq!(err.kind, LoadErrorKind::WritableExecutable);
    assert_eq!(err.place, "section .data");
    assert!(err.to_string().contains("writable and executable"), "{err}");
}

#[test]
fn a_truncated_file_is_refused() {
    let (_, b) = package();
    // Cut inside the section data.
    let half = write_copy("truncated-half.sys", &b[..b.len() / 2]);
    let err = LoadedImage::load(&half).unwrap_err();
    assert!(
        matches!(err.kind, LoadErrorKind::Malformed(ref m) if m.contains("truncated")),
        "{err}"
    );
    assert!(err.place.starts_with("section "), "{err}");
    // Cut inside the headers.
    let tiny = write_copy("truncated-headers.sys", &b[..200]);
    let err = LoadedImage::load(&tiny).unwrap_err();
    assert!(matches!(err.kind, LoadErrorKind::Malformed(_)), "{err}");
    // Empty.
    let empty = write_copy("empty.sys", &[]);
    let err = LoadedImage::load(&empty).unwrap_err();
    assert!(matches!(err.kind, LoadErrorKind::Malformed(_)), "{err}");
    assert!(err.to_string().contains("empty.sys"));
}

#[test]
fn other_machines_and_subsystems_are_refused() {
    let (_, b) = package();
    let (coff, opt, _, _) = headers(&b);
    let mut arm = b.clone();
    arm[coff..coff + 2].copy_from_slice(&0xAA64u16.to_le_bytes());
    let err = LoadedImage::load(write_copy("arm64-machine.sys", &arm)).unwrap_err();
    assert_eq!(err.kind, LoadErrorKind::WrongMachine(0xAA64));
    let mut gui = b.clone();
    gui[opt + 68..opt + 70].copy_from_slice(&2u16.to_le_bytes()); // IMAGE_SUBSYSTEM_WINDOWS_GUI
    let err = LoadedImage::load(write_copy("gui-subsystem.sys", &gui)).unwrap_err();
    assert_eq!(err.kind, LoadErrorKind::WrongSubsystem(2));
    assert!(
        err.to_string().contains("not a kernel-mode driver"),
        "{err}"
    );
}

#[test]
fn an_unsupported_relocation_type_is_refused() {
    let (_, mut b) = package();
    let h = section_header(&b, ".reloc");
    let raw = u32_at(&b, h + 20) as usize;
    // First entry of the first block: type in the top 4 bits. HIGHLOW (3) is a 32-bit relocation.
    let entry = u16_at(&b, raw + 8);
    let page = u32_at(&b, raw);
    b[raw + 8..raw + 10].copy_from_slice(&((3u16 << 12) | (entry & 0x0fff)).to_le_bytes());
    let err = LoadedImage::load(write_copy("highlow-reloc.sys", &b)).unwrap_err();
    assert_eq!(err.kind, LoadErrorKind::UnsupportedRelocation(3));
    assert_eq!(
        err.place,
        format!(
            "relocation at RVA {:#x} (block {page:#x})",
            page + (entry & 0xfff) as u32
        )
    );
}
