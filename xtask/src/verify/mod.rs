//! The package verifier: library functions over (PE bytes, PDB bytes, INF text)
//! that return a report of named checks, each passed or failed with a clear
//! message. `cargo xtask package` refuses to write a package that fails any
//! check; the tests feed it deliberately broken inputs.
//!
//! One module per input: [`pe`] (the image; `object` crate), [`pdb`] (its PDB;
//! `pdb` crate), [`inf`] (the stamped INF), [`names`] (names the INF and the
//! image must share); the pool tags' checks are [`crate::pool_tags`]. They all
//! write into a [`report::Report`]. The only byte-level work is the PE checksum
//! (a sum, not a parse) and the search for the driver's UTF-16LE name strings.

pub mod inf;
pub mod names;
pub mod pdb;
pub mod pe;
pub mod report;

pub use self::inf::{verify_inf, verify_min_build};
pub use self::names::verify_names;
pub use self::pdb::verify_pdb;
pub use self::pe::{checksum_offset, fix_checksum, pe_checksum, verify_pe};
pub use self::report::{Check, Facts, Report};
pub use crate::arch::{Arch, ARM64_HAL_IRQL};
use crate::known::KnownExports;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_reported_not_panicked_on() {
        let known = KnownExports::default();
        let r = verify_package(Arch::Amd64, b"MZ not really", b"nope", "not an inf", &known);
        let failed = r.failed_ids();
        assert!(failed.contains("pe.parse"), "{failed:?}");
        assert!(failed.contains("pdb.parse"), "{failed:?}");
        assert!(!r.ok());
    }
}
