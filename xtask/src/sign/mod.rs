//! Catalog and signatures for the package (`cargo xtask package --sign ...`).
//!
//! - [`keys`]: the test certificate (made once under `target/sign/`) or a PFX;
//! - [`pe`]: the Authenticode hash and the embedded signature of `mdlpool.sys`;
//! - [`catalog`]: `mdlpool.cat`, a signed CTL listing the files of the INF;
//! - [`pkcs7`]: the SignedData both use, and its verifier;
//! - [`asn1`]: the Microsoft structures, as `der` types.
//!
//! Everything here is checked back by this module ([`verify_package`]) and,
//! in CI, by tools that share no code with it (osslsigncode, and signify in
//! `.ci/check_catalog.py`).

pub mod asn1;
pub mod catalog;
pub mod keys;
pub mod pe;
pub mod pfx;
pub mod pkcs7;

use std::path::{Path, PathBuf};

use crate::arch::Arch;
use crate::inf::Inf;
use crate::names;

pub use keys::SigningIdentity;

/// What `--sign` asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignMode {
    /// No catalog, no signature: the package as before.
    Off,
    /// The project's test certificate under `target/sign/` (made once).
    Test,
    /// A certificate + key from a PFX; its password in [`PFX_PASSWORD_ENV`].
    Pfx(PathBuf),
}

/// The environment variable holding the PFX password (empty if unset).
pub const PFX_PASSWORD_ENV: &str = "MDLPOOL_PFX_PASSWORD";
/// The certificate file written into a test-signed package.
pub const CER_FILE: &str = "mdlpool-test.cer";

impl SignMode {
    pub fn parse(s: &str) -> SignMode {
        match s {
            "off" | "none" => SignMode::Off,
            "test" => SignMode::Test,
            pfx => SignMode::Pfx(PathBuf::from(pfx)),
        }
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Load the identity `mode` names. `None` for [`SignMode::Off`].
pub fn identity(mode: &SignMode) -> Result<Option<(SigningIdentity, String)>, String> {
    match mode {
        SignMode::Off => Ok(None),
        SignMode::Test => {
            let dir = keys::test_dir();
            let (id, created) = keys::test_identity(&dir)?;
            let how = if created {
                format!("test certificate created in {}", dir.display())
            } else {
                format!("test certificate from {}", dir.display())
            };
            Ok(Some((id, how)))
        }
        SignMode::Pfx(path) => {
            let bytes =
                std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            let password = std::env::var(PFX_PASSWORD_ENV).unwrap_or_default();
            let id =
                pfx::load(&bytes, &password).map_err(|e| format!("{}: {e}", path.display()))?;
            if !keys::has_code_signing_eku(&id.cert) {
                eprintln!(
                    "xtask: warning: the certificate in {} has no code-signing extended key usage",
                    path.display()
                );
            }
            Ok(Some((id, format!("certificate from {}", path.display()))))
        }
    }
}

/// The files a package's INF installs or names, with how each is hashed:
/// the INF itself (flat) and every file of `[SourceDisksFiles]` /
/// `[SourceDisksFiles.<arch>]` (`.sys`, `.dll`, `.exe` as PE images, others
/// flat). Sorted by name.
pub fn inf_files(arch: Arch, inf_text: &str) -> Result<Vec<(String, catalog::MemberKind)>, String> {
    let inf = Inf::parse(inf_text).map_err(|e| format!("{}: {e}", names::INF_FILE))?;
    let mut files = vec![names::INF_FILE.to_string()];
    for section in [
        "SourceDisksFiles".to_string(),
        format!("SourceDisksFiles.{}", arch.name()),
    ] {
        if let Some(s) = inf.section(&section) {
            for l in &s.lines {
                if let Some(k) = &l.key {
                    files.push(k.trim().to_ascii_lowercase());
                }
            }
        }
    }
    files.sort();
    files.dedup();
    Ok(files
        .into_iter()
        .map(|f| {
            let lower = f.to_ascii_lowercase();
            let kind = if [".sys", ".dll", ".exe"].iter().any(|e| lower.ends_with(e)) {
                catalog::MemberKind::Pe
            } else {
                catalog::MemberKind::Flat
            };
            (f, kind)
        })
        .collect())
}

/// The hardware / component ids of the INF's models sections (lower case,
/// first-seen order): what inf2cat writes as `HWID1..n`.
pub fn inf_hwids(inf_text: &str) -> Result<Vec<String>, String> {
    let inf = Inf::parse(inf_text).map_err(|e| format!("{}: {e}", names::INF_FILE))?;
    let mut ids: Vec<String> = Vec::new();
    let Some(mfg) = inf.section("Manufacturer") else {
        return Ok(ids);
    };
    for line in &mfg.lines {
        let Some(models) = line.values.first().filter(|v| !v.is_empty()) else {
            continue;
        };
        let mut sections = vec![models.clone()];
        sections.extend(line.values.iter().skip(1).map(|d| format!("{models}.{d}")));
        for name in sections {
            if let Some(s) = inf.section(&name) {
                for l in &s.lines {
                    for id in l.values.iter().skip(1) {
                        let id = id.to_ascii_lowercase();
                        if !id.is_empty() && !ids.contains(&id) {
                            ids.push(id);
                        }
                    }
                }
            }
        }
    }
    Ok(ids)
}

/// A signed package's extra content.
#[derive(Clone, Debug)]
pub struct Signed {
    /// The signed image (replaces the unsigned one).
    pub sys: Vec<u8>,
    pub cat: Vec<u8>,
    /// `mdlpool-test.cer`: the signer's certificate (DER).
    pub cer: Vec<u8>,
    pub members: Vec<catalog::Member>,
    pub signer: String,
    pub signer_sha256: String,
    pub source: String,
}

/// Sign the image and build the catalog over the files of `inf_text`.
/// `others` are the bytes of files the INF names other than the image and the
/// INF itself (none today).
pub fn sign_package(
    arch: Arch,
    sys: &[u8],
    inf_text: &str,
    id: &SigningIdentity,
    source: String,
    this_update: u64,
) -> Result<Signed, String> {
    let (signed_sys, _hash) = pe::sign_image(sys, id)?;
    let (os, os_attr) = catalog::os_for(arch);
    let mut members = Vec::new();
    for (file, kind) in inf_files(arch, inf_text)? {
        let bytes: &[u8] = if file.eq_ignore_ascii_case(names::INF_FILE) {
            inf_text.as_bytes()
        } else if file.eq_ignore_ascii_case(names::SYS_FILE) {
            &signed_sys
        } else {
            return Err(format!(
                "the INF names {file}, which the package does not build"
            ));
        };
        members.push(catalog::member(&file, kind, bytes, os_attr)?);
    }
    let attrs = catalog::CatalogAttrs {
        os: os.to_string(),
        os_attr: os_attr.to_string(),
        hwids: inf_hwids(inf_text)?,
    };
    let cat = catalog::build(&members, &attrs, this_update, id)?;
    Ok(Signed {
        sys: signed_sys,
        cat,
        cer: id.cert_der(),
        members,
        signer: id.subject(),
        signer_sha256: id.sha256_thumbprint(),
        source,
    })
}

/// What [`verify_package`] found.
#[derive(Clone, Debug)]
pub struct PackageSignature {
    pub signer: String,
    pub members: Vec<catalog::Member>,
}

/// Verify a signed package directory's files: the image's embedded signature
/// (valid, over the image's Authenticode hash), the catalog's signature, that
/// the catalog lists exactly the INF's files with the hashes of the files on
/// disk, that both are signed by the same certificate, and, if `trusted` is
/// given (the DER of `mdlpool-test.cer`), that it is that certificate.
pub fn verify_package(
    arch: Arch,
    sys: &[u8],
    inf_bytes: &[u8],
    cat: &[u8],
    trusted: Option<&[u8]>,
) -> Result<PackageSignature, String> {
    let (_, image_sig) = pe::verify_image(sys).map_err(|e| format!("{}: {e}", names::SYS_FILE))?;
    let inf_text = crate::inf::decode_inf(inf_bytes)?;
    let (_, os_attr) = catalog::os_for(arch);
    let mut expected = Vec::new();
    for (file, kind) in inf_files(arch, &inf_text)? {
        let bytes: &[u8] = if file.eq_ignore_ascii_case(names::INF_FILE) {
            inf_bytes
        } else if file.eq_ignore_ascii_case(names::SYS_FILE) {
            sys
        } else {
            return Err(format!("the INF names {file}, which is not in the package"));
        };
        expected.push(catalog::member(&file, kind, bytes, os_attr)?);
    }
    let read =
        catalog::verify_members(cat, &expected).map_err(|e| format!("{}: {e}", names::CAT_FILE))?;
    if read.signed.signer != image_sig.signer {
        return Err("the image and the catalog are signed by different certificates".into());
    }
    if let Some(trusted) = trusted {
        let der = der::Encode::to_der(&read.signed.signer).map_err(|e| e.to_string())?;
        if der != trusted {
            return Err(format!("the signer is not the certificate in {CER_FILE}"));
        }
    }
    Ok(PackageSignature {
        signer: read.signed.signer.tbs_certificate.subject.to_string(),
        members: expected,
    })
}

/// Write the catalog, the certificate and the signed image into `dir`.
pub fn write(dir: &Path, signed: &Signed) -> Result<(), String> {
    for (name, bytes) in [
        (names::SYS_FILE, signed.sys.as_slice()),
        (names::CAT_FILE, signed.cat.as_slice()),
        (CER_FILE, signed.cer.as_slice()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}
