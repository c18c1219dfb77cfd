//! The driver catalog (`mdlpool.cat`) as inf2cat writes it, and its reader.
//!
//! A catalog is a PKCS#7 SignedData whose content is a CTL
//! ([`asn1::CertificateTrustList`]) with subject usage `szOID_CATALOG_LIST`
//! and, here, subject algorithm `szOID_CATALOG_LIST_MEMBER_V2`: every member
//! is named by its SHA-256 hash (the raw 32 bytes) and carries
//!
//! - `SPC_INDIRECT_DATA`: an SpcIndirectDataContent with the same hash —
//!   `SPC_PE_IMAGE_DATA` + the Authenticode hash for the `.sys`,
//!   `SPC_CAB_DATA_OBJID` + an empty file link + the flat SHA-256 of the
//!   whole file for the `.inf` (what Windows' flat-file SIP hashes);
//! - `CAT_MEMBERINFO2`: an empty `[0]` for a PE member, `[2]` for a flat one
//!   (OBSERVED in a Microsoft v2 catalog: PE members `[0]`, flat `[2]`);
//! - name/value attributes `File` (the file name) and `OSAttr` (`2:10.0`).
//!
//! The catalog attributes (CTL extensions, each a `CAT_NAMEVALUE`) are `OS`
//! (`_v100_X64` / `_v100_ARM64`), `OSAttr` (`2:10.0`) and `HWID1` (the INF's
//! component id, lower case as inf2cat writes hardware ids).
//!
//! Members are ordered by their identifier bytes, ascending (OBSERVED in
//! Microsoft's catalogs: members sorted by hash).
//!
//! SHA-1 companions: not written. A v2 (SHA-256) catalog is supported from
//! Windows 8 on (DOCUMENTED: `New-FileCatalog -CatalogVersion 2`), the driver
//! needs Windows 10 2004 or later, and the image's own signature is SHA-256,
//! so no SHA-1 lookup is needed (INFERRED; not tried on Windows here).

use der::asn1::{Any, OctetString, SetOfVec, UtcTime};
use der::{Decode, Encode, Tag, TagNumber};
use sha2::{Digest, Sha256};
use x509_cert::attr::Attribute;
use x509_cert::ext::Extension;

use super::asn1::{self, alg_with_null, CatNameValue, CertificateTrustList, TrustedSubject};
use super::keys::SigningIdentity;
use super::pe;
use super::pkcs7;
use crate::arch::Arch;

/// How a member was hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberKind {
    /// A PE image: Authenticode hash, SPC_PE_IMAGE_DATA.
    Pe,
    /// Any other file: SHA-256 of the whole file, SPC_CAB_DATA_OBJID.
    Flat,
}

/// One file of the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub file: String,
    pub kind: MemberKind,
    pub sha256: [u8; 32],
    /// `OSAttr` of the member.
    pub os_attr: String,
}

/// The catalog-wide attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogAttrs {
    pub os: String,
    pub os_attr: String,
    pub hwids: Vec<String>,
}

/// inf2cat's `OS` value for `/os:10_X64` and the arm64 counterpart, and the
/// `OSAttr` of Windows 10 (platform 2 = NT, version 10.0).
pub fn os_for(arch: Arch) -> (&'static str, &'static str) {
    match arch {
        Arch::Amd64 => ("_v100_X64", "2:10.0"),
        Arch::Arm64 => ("_v100_ARM64", "2:10.0"),
    }
}

/// The member for a file's bytes.
pub fn member(file: &str, kind: MemberKind, bytes: &[u8], os_attr: &str) -> Result<Member, String> {
    let sha256 = match kind {
        MemberKind::Pe => pe::authenticode_sha256(bytes)?,
        MemberKind::Flat => Sha256::digest(bytes).into(),
    };
    Ok(Member {
        file: file.to_string(),
        kind,
        sha256,
        os_attr: os_attr.to_string(),
    })
}

fn set_of_one(value: Any) -> Result<SetOfVec<Any>, String> {
    let mut s = SetOfVec::new();
    s.insert(value).map_err(|e| e.to_string())?;
    Ok(s)
}

fn namevalue_attr(name: &str, value: &str) -> Result<Attribute, String> {
    let nv = CatNameValue::new(name, value).map_err(|e| e.to_string())?;
    Ok(Attribute {
        oid: asn1::CAT_NAMEVALUE,
        values: set_of_one(Any::encode_from(&nv).map_err(|e| e.to_string())?)?,
    })
}

fn subject(m: &Member) -> Result<TrustedSubject, String> {
    let (indirect, info_tag) = match m.kind {
        MemberKind::Pe => (pe::pe_indirect_data(&m.sha256)?, TagNumber::N0),
        MemberKind::Flat => (pe::flat_indirect_data(&m.sha256)?, TagNumber::N2),
    };
    let info = Any::new(
        Tag::ContextSpecific {
            constructed: false,
            number: info_tag,
        },
        Vec::new(),
    )
    .map_err(|e| e.to_string())?;
    let mut attrs = SetOfVec::new();
    for a in [
        Attribute {
            oid: asn1::CAT_MEMBERINFO2,
            values: set_of_one(info)?,
        },
        namevalue_attr("File", &m.file)?,
        namevalue_attr("OSAttr", &m.os_attr)?,
        Attribute {
            oid: asn1::SPC_INDIRECT_DATA,
            values: set_of_one(Any::from_der(&indirect).map_err(|e| e.to_string())?)?,
        },
    ] {
        attrs.insert(a).map_err(|e| e.to_string())?;
    }
    Ok(TrustedSubject {
        identifier: OctetString::new(m.sha256.to_vec()).map_err(|e| e.to_string())?,
        attributes: Some(attrs),
    })
}

fn ext(name: &str, value: &str) -> Result<Extension, String> {
    let nv = CatNameValue::new(name, value).map_err(|e| e.to_string())?;
    Ok(Extension {
        extn_id: asn1::CAT_NAMEVALUE,
        critical: false,
        extn_value: OctetString::new(nv.to_der().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?,
    })
}

/// The CTL (DER) listing `members`, sorted by identifier. `this_update` is
/// seconds since the Unix epoch; the list identifier is derived from the
/// member hashes so that the same files give the same catalog content.
pub fn ctl_der(
    members: &[Member],
    attrs: &CatalogAttrs,
    this_update: u64,
) -> Result<Vec<u8>, String> {
    let mut sorted: Vec<&Member> = members.iter().collect();
    sorted.sort_by_key(|m| m.sha256);
    let mut id = Sha256::new();
    for m in &sorted {
        id.update(m.sha256);
    }
    let list_identifier = id.finalize()[..16].to_vec();
    let mut extensions = vec![ext("OS", &attrs.os)?, ext("OSAttr", &attrs.os_attr)?];
    for (i, h) in attrs.hwids.iter().enumerate() {
        extensions.push(ext(&format!("HWID{}", i + 1), &h.to_ascii_lowercase())?);
    }
    let ctl = CertificateTrustList {
        subject_usage: vec![asn1::CATALOG_LIST],
        list_identifier: OctetString::new(list_identifier).map_err(|e| e.to_string())?,
        this_update: UtcTime::from_unix_duration(std::time::Duration::from_secs(this_update))
            .map_err(|e| format!("catalog time: {e}"))?,
        subject_algorithm: alg_with_null(asn1::CATALOG_LIST_MEMBER_V2),
        trusted_subjects: sorted
            .iter()
            .map(|m| subject(m))
            .collect::<Result<_, _>>()?,
        extensions: Some(extensions),
    };
    ctl.to_der().map_err(|e| format!("encoding the CTL: {e}"))
}

/// Build and sign the catalog; returns its bytes (`mdlpool.cat`).
pub fn build(
    members: &[Member],
    attrs: &CatalogAttrs,
    this_update: u64,
    id: &SigningIdentity,
) -> Result<Vec<u8>, String> {
    pkcs7::sign(asn1::MS_CTL, &ctl_der(members, attrs, this_update)?, id)
}

/// A member as read back from a catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadMember {
    pub identifier: Vec<u8>,
    pub file: Option<String>,
    pub os_attr: Option<String>,
    pub indirect_type: Option<const_oid::ObjectIdentifier>,
    pub indirect_sha256: Option<Vec<u8>>,
}

/// A catalog as read back by [`read`].
#[derive(Clone, Debug)]
pub struct ReadCatalog {
    pub signed: pkcs7::Verified,
    pub members: Vec<ReadMember>,
    pub attrs: Vec<(String, String)>,
}

fn namevalue_of(values: &SetOfVec<Any>) -> Option<CatNameValue> {
    values.as_slice().first()?.decode_as().ok()
}

/// Read a catalog: verify its signature ([`pkcs7::verify`]), check that it is
/// a v2 catalog list, and return its members and attributes.
pub fn read(cat: &[u8]) -> Result<ReadCatalog, String> {
    let signed = pkcs7::verify(cat)?;
    if signed.content_type != asn1::MS_CTL {
        return Err(format!(
            "content type {} is not szOID_CTL",
            signed.content_type
        ));
    }
    let ctl =
        CertificateTrustList::from_der(&signed.content_der).map_err(|e| format!("CTL: {e}"))?;
    if ctl.subject_usage != [asn1::CATALOG_LIST] {
        return Err("the CTL's subject usage is not szOID_CATALOG_LIST".into());
    }
    if ctl.subject_algorithm.oid != asn1::CATALOG_LIST_MEMBER_V2 {
        return Err(format!(
            "subject algorithm {} is not szOID_CATALOG_LIST_MEMBER_V2",
            ctl.subject_algorithm.oid
        ));
    }
    let mut members = Vec::new();
    for s in &ctl.trusted_subjects {
        let mut m = ReadMember {
            identifier: s.identifier.as_bytes().to_vec(),
            file: None,
            os_attr: None,
            indirect_type: None,
            indirect_sha256: None,
        };
        for a in s.attributes.iter().flat_map(|a| a.iter()) {
            if a.oid == asn1::CAT_NAMEVALUE {
                if let Some(nv) = namevalue_of(&a.values) {
                    match nv.tag.to_string().as_str() {
                        "File" => m.file = Some(nv.text()),
                        "OSAttr" => m.os_attr = Some(nv.text()),
                        _ => {}
                    }
                }
            } else if a.oid == asn1::SPC_INDIRECT_DATA {
                let idc: authenticode::SpcIndirectDataContent = a
                    .values
                    .as_slice()
                    .first()
                    .ok_or("empty SPC_INDIRECT_DATA attribute")?
                    .decode_as()
                    .map_err(|e| format!("member SpcIndirectDataContent: {e}"))?;
                if idc.message_digest.digest_algorithm.oid != asn1::ID_SHA256 {
                    return Err("a member's digest is not SHA-256".into());
                }
                m.indirect_type = Some(idc.data.value_type);
                m.indirect_sha256 = Some(idc.message_digest.digest.as_bytes().to_vec());
            }
        }
        members.push(m);
    }
    let mut attrs = Vec::new();
    for e in ctl.extensions.iter().flatten() {
        if e.extn_id == asn1::CAT_NAMEVALUE {
            let nv = CatNameValue::from_der(e.extn_value.as_bytes())
                .map_err(|e| format!("catalog attribute: {e}"))?;
            attrs.push((nv.tag.to_string(), nv.text()));
        }
    }
    Ok(ReadCatalog {
        signed,
        members,
        attrs,
    })
}

/// Check that `cat` is a validly signed catalog that lists exactly `expected`
/// (by file name, hash, hash kind and OSAttr), in identifier order, with each
/// identifier equal to its indirect-data hash. Returns the catalog read.
pub fn verify_members(cat: &[u8], expected: &[Member]) -> Result<ReadCatalog, String> {
    let read = read(cat)?;
    let mut problems = Vec::new();
    if !read
        .members
        .windows(2)
        .all(|w| w[0].identifier < w[1].identifier)
    {
        problems.push("members are not in ascending identifier order".to_string());
    }
    for m in &read.members {
        if m.indirect_sha256.as_deref() != Some(m.identifier.as_slice()) {
            problems.push(format!(
                "member {} ({:?}): identifier and indirect-data hash differ",
                super::hex(&m.identifier),
                m.file
            ));
        }
    }
    if read.members.len() != expected.len() {
        problems.push(format!(
            "{} members, expected {}",
            read.members.len(),
            expected.len()
        ));
    }
    for e in expected {
        let want_type = match e.kind {
            MemberKind::Pe => asn1::SPC_PE_IMAGE_DATA,
            MemberKind::Flat => asn1::SPC_CAB_DATA,
        };
        match read
            .members
            .iter()
            .find(|m| m.file.as_deref() == Some(&e.file))
        {
            None => problems.push(format!("{} is not in the catalog", e.file)),
            Some(m) => {
                if m.identifier != e.sha256 {
                    problems.push(format!(
                        "{}: catalog hash {} but the file's hash is {}",
                        e.file,
                        super::hex(&m.identifier),
                        super::hex(&e.sha256)
                    ));
                }
                if m.indirect_type != Some(want_type) {
                    problems.push(format!(
                        "{}: indirect data type {:?}",
                        e.file, m.indirect_type
                    ));
                }
                if m.os_attr.as_deref() != Some(e.os_attr.as_str()) {
                    problems.push(format!("{}: OSAttr {:?}", e.file, m.os_attr));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(read)
    } else {
        Err(problems.join("; "))
    }
}
