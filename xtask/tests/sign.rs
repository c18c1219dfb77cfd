//! Catalog and test signing (`xtask::sign`) over the real built packages, and
//! the signature checks against deliberately tampered copies.
//!
//! The driver is built through the same code path as `cargo xtask package`
//! (once per architecture per test run); a fresh test identity is generated
//! once per test run (never the one under target/sign/).

use std::sync::OnceLock;

use der::{Decode, Encode};
use rsa::traits::PublicKeyParts;
use xtask::package::{self, Built};
use xtask::sign::{self, catalog, keys, pe, pkcs7, SigningIdentity};
use xtask::verify::Arch;

const WHEN: u64 = 1_780_000_000; // a fixed catalog time (2026-05-28)

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
                "\n!!! SKIPPED: rustup target {} is not installed and cannot be added;\n\
                 !!! the signing tests for {} did not run.\n",
                arch.triple(),
                arch.name()
            );
            return None;
        }
        Some(
            package::build(arch, false).unwrap_or_else(|e| panic!("building {}: {e}", arch.name())),
        )
    })
    .as_ref()
}

fn identity() -> &'static SigningIdentity {
    static ID: OnceLock<SigningIdentity> = OnceLock::new();
    ID.get_or_init(|| keys::create_test_identity(std::time::SystemTime::now()).unwrap())
}

fn signed(arch: Arch) -> Option<&'static sign::Signed> {
    static AMD64: OnceLock<Option<sign::Signed>> = OnceLock::new();
    static ARM64: OnceLock<Option<sign::Signed>> = OnceLock::new();
    let cell = match arch {
        Arch::Amd64 => &AMD64,
        Arch::Arm64 => &ARM64,
    };
    cell.get_or_init(|| {
        let b = built(arch)?;
        Some(sign::sign_package(arch, &b.sys, &b.inf, identity(), "test".into(), WHEN).unwrap())
    })
    .as_ref()
}

fn verify(
    arch: Arch,
    sys: &[u8],
    inf: &[u8],
    cat: &[u8],
    cer: &[u8],
) -> Result<sign::PackageSignature, String> {
    sign::verify_package(arch, sys, inf, cat, Some(cer))
}

#[test]
fn signed_packages_pass_every_verifier_check_and_the_signature_check() {
    for arch in Arch::ALL {
        let (Some(b), Some(s)) = (built(arch), signed(arch)) else {
            continue;
        };
        // The signed image still passes every image/PDB/INF check (checksum included).
        let mut signed_built = b.clone();
        signed_built.sys = s.sys.clone();
        let report = package::verify_built(&signed_built).unwrap();
        assert!(report.ok(), "{}: {}", arch.name(), report.failure_text());
        // The signature is appended; the image before it is the unsigned one, padded to 8.
        assert!(s.sys.len() > b.sys.len());
        assert_eq!(&s.sys[..0x40], &b.sys[..0x40]);
        let table = pe::Image::parse(&s.sys).unwrap().cert_table().unwrap();
        assert_eq!(table.start % 8, 0);
        assert_eq!(table.end, s.sys.len());
        assert_eq!(table.len() % 8, 0);

        let ok = verify(arch, &s.sys, b.inf.as_bytes(), &s.cat, &s.cer).unwrap();
        assert_eq!(ok.members.len(), 2);
        // The Authenticode hash of the signed image equals that of the unsigned
        // one padded to 8 bytes: the signature, its directory entry and the
        // checksum are outside the hash.
        let mut padded = b.sys.clone();
        padded.resize(padded.len().next_multiple_of(8), 0);
        assert_eq!(
            pe::authenticode_sha256(&s.sys).unwrap(),
            pe::authenticode_sha256(&padded).unwrap()
        );
    }
}

#[test]
fn the_catalog_lists_the_inf_files_in_hash_order_with_inf2cat_attributes() {
    for arch in Arch::ALL {
        let (Some(b), Some(s)) = (built(arch), signed(arch)) else {
            continue;
        };
        let read = catalog::read(&s.cat).unwrap();
        assert_eq!(read.members.len(), 2);
        assert!(read.members[0].identifier < read.members[1].identifier);
        let files: Vec<_> = read
            .members
            .iter()
            .map(|m| m.file.clone().unwrap())
            .collect();
        assert!(
            files.contains(&"mdlpool.inf".to_string())
                && files.contains(&"mdlpool.sys".to_string())
        );
        for m in &read.members {
            assert_eq!(m.identifier.len(), 32, "SHA-256 member ids");
            assert_eq!(m.indirect_sha256.as_deref(), Some(m.identifier.as_slice()));
            assert_eq!(m.os_attr.as_deref(), Some("2:10.0"));
            let want = if m.file.as_deref() == Some("mdlpool.sys") {
                sign::asn1::SPC_PE_IMAGE_DATA
            } else {
                sign::asn1::SPC_CAB_DATA
            };
            assert_eq!(m.indirect_type, Some(want));
        }
        let inf_member = read
            .members
            .iter()
            .find(|m| m.file.as_deref() == Some("mdlpool.inf"))
            .unwrap();
        use sha2::Digest;
        assert_eq!(
            inf_member.identifier,
            sha2::Sha256::digest(b.inf.as_bytes()).to_vec()
        );
        let (os, _) = catalog::os_for(arch);
        assert_eq!(
            read.attrs,
            vec![
                ("OS".to_string(), os.to_string()),
                ("OSAttr".to_string(), "2:10.0".to_string()),
                ("HWID1".to_string(), xtask::names::COMPONENT_ID.to_string()),
            ]
        );
        assert_eq!(read.signed.content_type, sign::asn1::MS_CTL);
    }
}

#[test]
fn an_inf_changed_after_signing_fails() {
    let arch = Arch::Amd64;
    let (Some(b), Some(s)) = (built(arch), signed(arch)) else {
        return;
    };
    let inf = b.inf.replace(
        "FilterRunType,    0x00010001, 2",
        "FilterRunType,    0x00010001, 1",
    );
    assert_ne!(inf, b.inf, "the tamper edit must change the INF");
    let e = verify(arch, &s.sys, inf.as_bytes(), &s.cat, &s.cer).unwrap_err();
    assert!(e.contains("mdlpool.inf: catalog hash"), "{e}");
}

#[test]
fn an_image_changed_after_signing_fails() {
    let arch = Arch::Amd64;
    let (Some(b), Some(s)) = (built(arch), signed(arch)) else {
        return;
    };
    let mut sys = s.sys.clone();
    // One byte of the first section's data (hashed by Authenticode).
    let first_section = 0x400;
    sys[first_section] ^= 0x01;
    xtask::verify::fix_checksum(&mut sys);
    let e = pe::verify_image(&sys).unwrap_err();
    assert!(
        e.contains("differs from the image's Authenticode hash"),
        "{e}"
    );
    let e = verify(arch, &sys, b.inf.as_bytes(), &s.cat, &s.cer).unwrap_err();
    assert!(e.contains("mdlpool.sys"), "{e}");
}

#[test]
fn a_tampered_signature_is_refused() {
    let arch = Arch::Amd64;
    let (Some(_), Some(s)) = (built(arch), signed(arch)) else {
        return;
    };
    // Flip a bit of the RSA signature value inside the embedded WIN_CERTIFICATE.
    let ci = pe::embedded_signature(&s.sys).unwrap();
    let sd: cms::signed_data::SignedData = cms::content_info::ContentInfo::from_der(&ci)
        .unwrap()
        .content
        .decode_as()
        .unwrap();
    let sig = sd.signer_infos.0.as_slice()[0]
        .signature
        .as_bytes()
        .to_vec();
    let at = s
        .sys
        .windows(sig.len())
        .position(|w| w == sig.as_slice())
        .unwrap();
    let mut sys = s.sys.clone();
    sys[at + 17] ^= 0x80;
    xtask::verify::fix_checksum(&mut sys);
    let e = pe::verify_image(&sys).unwrap_err();
    assert_eq!(e, "the RSA signature over the signed attributes is invalid");

    // The same in the catalog.
    assert!(pkcs7::verify(&s.cat).is_ok());
    let sd: cms::signed_data::SignedData = cms::content_info::ContentInfo::from_der(&s.cat)
        .unwrap()
        .content
        .decode_as()
        .unwrap();
    let sig = sd.signer_infos.0.as_slice()[0]
        .signature
        .as_bytes()
        .to_vec();
    let at = s
        .cat
        .windows(sig.len())
        .position(|w| w == sig.as_slice())
        .unwrap();
    let mut cat = s.cat.clone();
    cat[at] ^= 0x01;
    let e = catalog::read(&cat).unwrap_err();
    assert_eq!(e, "the RSA signature over the signed attributes is invalid");
}

#[test]
fn a_catalog_whose_content_changed_is_refused() {
    let arch = Arch::Amd64;
    let (Some(_), Some(s)) = (built(arch), signed(arch)) else {
        return;
    };
    // Change one byte of a member hash inside the CTL: the messageDigest no longer matches.
    let read = catalog::read(&s.cat).unwrap();
    let id = &read.members[0].identifier;
    let at = s
        .cat
        .windows(id.len())
        .position(|w| w == id.as_slice())
        .unwrap();
    let mut cat = s.cat.clone();
    cat[at] ^= 0x01;
    let e = catalog::read(&cat).unwrap_err();
    assert!(e.contains("messageDigest"), "{e}");
}

#[test]
fn a_package_signed_by_another_certificate_is_refused() {
    let arch = Arch::Amd64;
    let (Some(b), Some(s)) = (built(arch), signed(arch)) else {
        return;
    };
    let other = keys::create_test_identity(std::time::SystemTime::now()).unwrap();
    let e = verify(arch, &s.sys, b.inf.as_bytes(), &s.cat, &other.cert_der()).unwrap_err();
    assert!(e.contains("is not the certificate"), "{e}");
    // And an image and a catalog from two different signers.
    let s2 = sign::sign_package(arch, &b.sys, &b.inf, &other, "other".into(), WHEN).unwrap();
    let e = sign::verify_package(arch, &s.sys, b.inf.as_bytes(), &s2.cat, None).unwrap_err();
    assert!(e.contains("different certificates"), "{e}");
}

#[test]
fn a_signed_image_is_not_signed_twice() {
    let Some(s) = signed(Arch::Amd64) else { return };
    let e = pe::sign_image(&s.sys, identity()).unwrap_err();
    assert!(e.contains("already has a certificate table"), "{e}");
}

#[test]
fn the_catalog_is_reproducible_for_the_same_files_and_time() {
    let arch = Arch::Amd64;
    let (Some(b), Some(s)) = (built(arch), signed(arch)) else {
        return;
    };
    let again = sign::sign_package(arch, &b.sys, &b.inf, identity(), "test".into(), WHEN).unwrap();
    // PKCS#1 v1.5 signatures are deterministic: same key, same bytes.
    assert_eq!(again.cat, s.cat);
    assert_eq!(again.sys, s.sys);
}

#[test]
fn the_test_certificate_is_an_rsa_2048_code_signing_certificate_made_once() {
    let dir = std::env::temp_dir().join(format!("mdlpool-sign-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (first, created) = keys::test_identity(&dir).unwrap();
    assert!(created);
    let (second, created_again) = keys::test_identity(&dir).unwrap();
    assert!(!created_again, "the second run reuses the certificate");
    assert_eq!(first.cert_der(), second.cert_der());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(keys::TEST_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key file is private");
    }
    let cert = &first.cert;
    assert!(keys::has_code_signing_eku(cert));
    assert_eq!(cert.tbs_certificate.issuer, cert.tbs_certificate.subject);
    assert_eq!(keys::cert_public_key(cert).unwrap().size() * 8, 2048);
    assert_eq!(first.subject(), keys::TEST_SUBJECT);
    // A mismatched pair is refused rather than silently replaced.
    let other = keys::create_test_identity(std::time::SystemTime::now()).unwrap();
    std::fs::write(dir.join(keys::TEST_CERT_FILE), other.cert.to_der().unwrap()).unwrap();
    assert!(keys::test_identity(&dir).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--sign <pfx>`: a PFX written by OpenSSL (the `openssl` command, from
/// Debian's `openssl` package, which `.ci/run` installs) from a fresh identity.
#[test]
fn a_pfx_written_by_openssl_is_read_and_a_wrong_password_or_legacy_pfx_refused() {
    use std::process::Command;
    if Command::new("openssl").arg("version").output().is_err() {
        panic!("the `openssl` command is needed for this test (apt-get install openssl)");
    }
    let dir = std::env::temp_dir().join(format!("mdlpool-pfx-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let id = identity();
    use rsa::pkcs8::EncodePrivateKey;
    let key_pem = id.key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    std::fs::write(dir.join("key.pem"), key_pem.as_bytes()).unwrap();
    let cert_pem = der::EncodePem::to_pem(&id.cert, der::pem::LineEnding::LF).unwrap();
    std::fs::write(dir.join("cert.pem"), cert_pem).unwrap();
    let export = |out: &str, extra: &[&str]| {
        let st = Command::new("openssl")
            .args([
                "pkcs12",
                "-export",
                "-inkey",
                "key.pem",
                "-in",
                "cert.pem",
                "-passout",
                "pass:s3cret",
                "-out",
                out,
            ])
            .args(extra)
            .current_dir(&dir)
            .status()
            .unwrap();
        assert!(st.success(), "openssl pkcs12 -export {extra:?}");
        std::fs::read(dir.join(out)).unwrap()
    };
    for (name, extra) in [
        ("default.pfx", &[][..]),
        (
            "sha1mac.pfx",
            &[
                "-macalg",
                "sha1",
                "-keypbe",
                "AES-128-CBC",
                "-certpbe",
                "AES-128-CBC",
            ][..],
        ),
    ] {
        let pfx = export(name, extra);
        let loaded = sign::pfx::load(&pfx, "s3cret").unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(loaded.cert_der(), id.cert_der(), "{name}");
        assert!(loaded.key_matches());
        let e = sign::pfx::load(&pfx, "wrong").unwrap_err();
        assert!(e.contains("wrong password"), "{name}: {e}");
    }
    let legacy = export("legacy.pfx", &["-legacy"]);
    let e = sign::pfx::load(&legacy, "s3cret").unwrap_err();
    assert!(e.contains("legacy"), "{e}");
    assert!(sign::pfx::load(b"not a pfx", "").is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
