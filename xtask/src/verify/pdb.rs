//! PDB checks (`pe.codeview`, `pdb.*`): the image's PDB by GUID/age, `DriverEntry` at the entry
//! point, types present. PDB reading is done with the `pdb` crate.

use std::io::Cursor;

use object::read::pe::PeFile64;
use object::Object;
use pdb::FallibleIterator;

use super::report::Report;
use crate::names;

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
