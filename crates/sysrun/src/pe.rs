//! Reading and vetting a driver image file: headers, sections, base relocations, imports, exports and
//! the CodeView record that names its PDB. Nothing here maps memory or runs code: a file that is not
//! an amd64 native image, is truncated, asks for W+X memory, or uses a relocation type or a feature
//! the loader does not handle is refused here with a [`LoadError`] naming the file, the place and the
//! reason.
//!
//! This module owns the parsed description ([`PeImage`]); binding the imports to ndis-sim and mapping
//! the image belong to `loader`.

use crate::error::{LoadError, LoadErrorKind};
use object::pe;
use object::read::pe::{ExportTarget, Import, PeFile64};
use object::LittleEndian as LE;
use std::path::{Path, PathBuf};

/// `IMAGE_REL_BASED_ABSOLUTE`: padding entry, skipped.
const REL_ABSOLUTE: u16 = 0;
/// `IMAGE_REL_BASED_DIR64`: add the load delta to the 64-bit word at the RVA.
const REL_DIR64: u16 = 10;

/// One section of the image, with the access it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Section name (`.text`, `.rdata`, `.data`, `INIT` …).
    pub name: String,
    /// RVA of the first byte.
    pub rva: u32,
    /// Size in memory (VirtualSize, or the raw size when VirtualSize is 0).
    pub virtual_size: u32,
    /// Offset of the initialised bytes in the file.
    pub raw_offset: u32,
    /// Number of initialised bytes in the file (the rest of the section is zero).
    pub raw_size: u32,
    /// `IMAGE_SCN_MEM_READ`.
    pub read: bool,
    /// `IMAGE_SCN_MEM_WRITE`.
    pub write: bool,
    /// `IMAGE_SCN_MEM_EXECUTE`.
    pub execute: bool,
}

/// One imported routine: the module and name, and the RVA of its IAT slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSlot {
    /// The DLL name as written in the import directory (`ndis.sys`, `ntoskrnl.exe`, `hal.dll`).
    pub module: String,
    /// The routine name.
    pub name: String,
    /// RVA of the 8-byte IAT slot the loader fills with the routine's address.
    pub iat_rva: u32,
}

/// The CodeView (RSDS) record: which PDB matches this image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeView {
    /// The PDB's GUID, in the byte order the PDB information stream stores it.
    pub guid: [u8; 16],
    /// The PDB age.
    pub age: u32,
    /// The PDB path the linker recorded.
    pub path: String,
}

/// A vetted image file, ready to be mapped.
#[derive(Debug, Clone)]
pub struct PeImage {
    /// The file it came from.
    pub path: PathBuf,
    /// The file's bytes.
    pub data: Vec<u8>,
    /// The preferred base address (`ImageBase`).
    pub image_base: u64,
    /// `SizeOfImage`.
    pub size_of_image: u32,
    /// `SizeOfHeaders`.
    pub size_of_headers: u32,
    /// RVA of the entry point (`DriverEntry` for a driver linked with /ENTRY:DriverEntry).
    pub entry_rva: u32,
    /// The sections, in file order.
    pub sections: Vec<Section>,
    /// RVAs of the DIR64 base relocations.
    pub relocations: Vec<u32>,
    /// Every imported routine.
    pub imports: Vec<ImportSlot>,
    /// Named exports and their RVAs.
    pub exports: Vec<(String, u32)>,
    /// The CodeView record, when the image has one.
    pub codeview: Option<CodeView>,
}

impl PeImage {
    /// Reads and vets the image at `path`.
    pub fn read(path: impl AsRef<Path>) -> Result<PeImage, LoadError> {
        let path = path.as_ref();
        let data = std::fs::read(path)
            .map_err(|e| LoadError::new(path, "file", LoadErrorKind::Io(e.to_string())))?;
        PeImage::parse(path, data)
    }

    /// Vets the image bytes `data` (named `path` in errors).
    pub fn parse(path: impl AsRef<Path>, data: Vec<u8>) -> Result<PeImage, LoadError> {
        let path = path.as_ref().to_path_buf();
        let err = |place: &str, kind: LoadErrorKind| LoadError::new(&path, place, kind);
        let malformed =
            |place: &str, what: &str| err(place, LoadErrorKind::Malformed(what.to_string()));

        // The PE32+ check comes first so a 32-bit or non-PE file is named as such, not as truncated.
        let magic = object::read::pe::optional_header_magic(&*data)
            .map_err(|e| malformed("header", &format!("not a PE file ({e})")))?;
        if magic != pe::IMAGE_NT_OPTIONAL_HDR64_MAGIC {
            // A PE32 image: read the machine from the file header to name it.
            let machine = pe_machine(&data).unwrap_or(0);
            return Err(err("header", LoadErrorKind::WrongMachine(machine)));
        }
        let file = PeFile64::parse(&*data).map_err(|e| malformed("header", &e.to_string()))?;
        let nt = file.nt_headers();
        let machine = nt.file_header.machine.get(LE).0;
        if machine != pe::IMAGE_FILE_MACHINE_AMD64.0 {
            return Err(err(
                "header (Machine)",
                LoadErrorKind::WrongMachine(machine),
            ));
        }
        let opt = &nt.optional_header;
        let subsystem = opt.subsystem.get(LE).0;
        if subsystem != pe::IMAGE_SUBSYSTEM_NATIVE.0 {
            return Err(err(
                "header (Subsystem)",
                LoadErrorKind::WrongSubsystem(subsystem),
            ));
        }
        let size_of_image = opt.size_of_image.get(LE);
        let size_of_headers = opt.size_of_headers.get(LE);
        let section_alignment = opt.section_alignment.get(LE);
        let entry_rva = opt.address_of_entry_point.get(LE);
        if section_alignment < 0x1000 || section_alignment % 0x1000 != 0 {
            return Err(err(
                "header (SectionAlignment)",
                LoadErrorKind::Unsupported(format!(
                    "section alignment {section_alignment:#x} is not a multiple of the 4 KiB page, so sections cannot have their own protections"
                )),
            ));
        }
        if size_of_headers as usize > data.len() {
            return Err(malformed(
                "header (SizeOfHeaders)",
                &format!(
                    "headers end at {size_of_headers:#x} but the file has {:#x} bytes",
                    data.len()
                ),
            ));
        }
        if size_of_headers >= size_of_image || size_of_image > 0x4000_0000 {
            return Err(malformed(
                "header (SizeOfImage)",
                &format!("implausible SizeOfImage {size_of_image:#x}"),
            ));
        }

        let mut sections = Vec::new();
        for s in file.section_table().iter() {
            let name = section_name(&s.name);
            let place = format!("section {name}");
            let flags = s.characteristics.get(LE).0;
            let rva = s.virtual_address.get(LE);
            let raw_offset = s.pointer_to_raw_data.get(LE);
            let raw_size = s.size_of_raw_data.get(LE);
            let mut virtual_size = s.virtual_size.get(LE);
            if virtual_size == 0 {
                virtual_size = raw_size;
            }
            let section = Section {
                name,
                rva,
                virtual_size,
                raw_offset,
                raw_size,
                read: flags & pe::IMAGE_SCN_MEM_READ.0 != 0,
                write: flags & pe::IMAGE_SCN_MEM_WRITE.0 != 0,
                execute: flags & pe::IMAGE_SCN_MEM_EXECUTE.0 != 0,
            };
            if section.write && section.execute {
                return Err(err(&place, LoadErrorKind::WritableExecutable));
            }
            if rva % section_alignment != 0 || rva < size_of_headers {
                return Err(malformed(
                    &place,
                    &format!("RVA {rva:#x} is not section-aligned or overlaps the headers"),
                ));
            }
            let end = rva as u64 + virtual_size as u64;
            if end > size_of_image as u64 {
                return Err(malformed(
                    &place,
                    &format!("ends at RVA {end:#x}, beyond SizeOfImage {size_of_image:#x}"),
                ));
            }
            if raw_size > 0 && raw_offset as u64 + raw_size as u64 > data.len() as u64 {
                return Err(malformed(
                    &place,
                    &format!(
                        "its {raw_size:#x} bytes at file offset {raw_offset:#x} run past the end of the file ({:#x} bytes): truncated",
                        data.len()
                    ),
                ));
            }
            if let Some(prev) = sections.last() {
                let prev: &Section = prev;
                if (prev.rva as u64 + prev.virtual_size as u64) > rva as u64 {
                    return Err(malformed(
                        &place,
                        &format!("overlaps section {}", prev.name),
                    ));
                }
            }
            sections.push(section);
        }
        if sections.is_empty() {
            return Err(malformed("section table", "the image has no sections"));
        }
        let in_exec_section = sections
            .iter()
            .any(|s| s.execute && entry_rva >= s.rva && entry_rva < s.rva + s.virtual_size);
        if !in_exec_section {
            return Err(malformed(
                "header (AddressOfEntryPoint)",
                &format!("entry point RVA {entry_rva:#x} is not inside an executable section"),
            ));
        }

        let dirs = file.data_directories();
        let table = file.section_table();
        for (idx, name) in [
            (pe::IMAGE_DIRECTORY_ENTRY_TLS, "TLS"),
            (pe::IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT, "delay-load import"),
        ] {
            if dirs
                .get(idx)
                .is_some_and(|d| d.virtual_address.get(LE) != 0)
            {
                return Err(err(
                    &format!("{name} directory"),
                    LoadErrorKind::Unsupported(format!(
                        "a kernel driver image cannot use a {name} directory"
                    )),
                ));
            }
        }

        // Base relocations.
        let mut relocations = Vec::new();
        let blocks = dirs
            .relocation_blocks(&*data, &table)
            .map_err(|e| malformed("relocation directory", &e.to_string()))?;
        if let Some(mut blocks) = blocks {
            while let Some(block) = blocks
                .next()
                .map_err(|e| malformed("relocation directory", &e.to_string()))?
            {
                let page = block.virtual_address();
                for r in block {
                    let rva = r.virtual_address;
                    match r.typ.0 {
                        REL_ABSOLUTE => {}
                        REL_DIR64 => {
                            if rva as u64 + 8 > size_of_image as u64 {
                                return Err(malformed(
                                    &format!("relocation at RVA {rva:#x}"),
                                    "target lies outside the image",
                                ));
                            }
                            relocations.push(rva);
                        }
                        other => {
                            return Err(err(
                                &format!("relocation at RVA {rva:#x} (block {page:#x})"),
                                LoadErrorKind::UnsupportedRelocation(other),
                            ))
                        }
                    }
                }
            }
        }

        // Imports.
        let mut imports = Vec::new();
        if let Some(it) = file
            .import_table()
            .map_err(|e| malformed("import directory", &e.to_string()))?
        {
            let mut descs = it
                .descriptors()
                .map_err(|e| malformed("import directory", &e.to_string()))?;
            while let Some(d) = descs
                .next()
                .map_err(|e| malformed("import directory", &e.to_string()))?
            {
                let module = it
                    .name(d.name.get(LE))
                    .map_err(|e| malformed("import directory (module name)", &e.to_string()))?;
                let module = String::from_utf8_lossy(module).into_owned();
                let place = format!("import directory ({module})");
                let first_thunk = d.first_thunk.get(LE);
                let lookup = match d.original_first_thunk.get(LE) {
                    0 => first_thunk,
                    x => x,
                };
                let mut thunks = it
                    .thunks(lookup)
                    .map_err(|e| malformed(&place, &e.to_string()))?;
                let mut index = 0u32;
                while let Some(t) = thunks
                    .next::<pe::ImageNtHeaders64>()
                    .map_err(|e| malformed(&place, &e.to_string()))?
                {
                    let iat_rva = first_thunk + index * 8;
                    let name = match it
                        .import::<pe::ImageNtHeaders64>(t)
                        .map_err(|e| malformed(&place, &e.to_string()))?
                    {
                        Import::Name(_, name) => String::from_utf8_lossy(name).into_owned(),
                        Import::Ordinal(o) => {
                            return Err(err(
                                &format!("import {module}!#{o}"),
                                LoadErrorKind::Unsupported(
                                    "import by ordinal (kernel drivers import by name)".into(),
                                ),
                            ))
                        }
                    };
                    if iat_rva as u64 + 8 > size_of_image as u64 {
                        return Err(malformed(
                            &format!("import {module}!{name}"),
                            "IAT slot lies outside the image",
                        ));
                    }
                    imports.push(ImportSlot {
                        module: module.clone(),
                        name,
                        iat_rva,
                    });
                    index += 1;
                }
            }
        }

        // Exports (the stats root, DriverEntry, DriverUnload …).
        let mut exports = Vec::new();
        if let Some(et) = file
            .export_table()
            .map_err(|e| malformed("export directory", &e.to_string()))?
        {
            for e in et
                .exports()
                .map_err(|e| malformed("export directory", &e.to_string()))?
            {
                if let (Some(name), ExportTarget::Address(rva)) = (e.name, e.target) {
                    exports.push((String::from_utf8_lossy(name).into_owned(), rva));
                }
            }
        }

        let codeview = codeview(&file, &data);

        Ok(PeImage {
            path,
            image_base: opt.image_base.get(LE),
            size_of_image,
            size_of_headers,
            entry_rva,
            sections,
            relocations,
            imports,
            exports,
            codeview,
            data,
        })
    }

    /// The RVA of the named export.
    pub fn export_rva(&self, name: &str) -> Option<u32> {
        self.exports
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| *r)
    }

    /// The section containing `rva`.
    pub fn section_at(&self, rva: u32) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| rva >= s.rva && rva < s.rva + s.virtual_size)
    }
}

fn section_name(raw: &[u8; 8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(8);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// The machine field of a PE file of either width, for naming a refused PE32 image.
fn pe_machine(data: &[u8]) -> Option<u16> {
    let lfanew = u32::from_le_bytes(data.get(0x3c..0x40)?.try_into().ok()?) as usize;
    let m = data.get(lfanew + 4..lfanew + 6)?;
    Some(u16::from_le_bytes([m[0], m[1]]))
}

/// Reads the RSDS CodeView record from the debug directory, when present and well formed.
fn codeview<'d>(file: &PeFile64<'d, &'d [u8]>, data: &[u8]) -> Option<CodeView> {
    let dir = file.data_directory(pe::IMAGE_DIRECTORY_ENTRY_DEBUG)?;
    let table = file.section_table();
    let (off, _) = table.pe_file_range_at(dir.virtual_address.get(LE))?;
    let size = dir.size.get(LE) as usize;
    let entries = data.get(off as usize..(off as usize).checked_add(size)?)?;
    for e in entries.chunks_exact(28) {
        let typ = u32::from_le_bytes(e[12..16].try_into().ok()?);
        let len = u32::from_le_bytes(e[16..20].try_into().ok()?) as usize;
        let ptr = u32::from_le_bytes(e[24..28].try_into().ok()?) as usize;
        if typ != pe::IMAGE_DEBUG_TYPE_CODEVIEW.0 {
            continue;
        }
        let rec = data.get(ptr..ptr.checked_add(len)?)?;
        if rec.len() < 24 || &rec[0..4] != b"RSDS" {
            return None;
        }
        let mut guid = [0u8; 16];
        guid.copy_from_slice(&rec[4..20]);
        let age = u32::from_le_bytes(rec[20..24].try_into().ok()?);
        let name = &rec[24..];
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        return Some(CodeView {
            guid,
            age,
            path: String::from_utf8_lossy(&name[..end]).into_owned(),
        });
    }
    None
}
