//! The Microsoft ASN.1 structures of Authenticode and of driver catalogs, as
//! `der` derive types (the encoder and decoder are `der`'s), and their OIDs.
//!
//! Sources (read, not copied): the "Windows Authenticode Portable Executable
//! Signature Format" paper (SpcIndirectDataContent, SpcPeImageData, SpcLink,
//! SpcString, SpcSpOpusInfo, SpcStatementType); MS-CAESO and wintrust.h /
//! mscat.h (CTL, CAT_NAMEVALUE, CAT_MEMBERINFO2); osslsigncode's and signify's
//! readers of the same structures; and the structure of catalogs signed by
//! Microsoft, dumped with `openssl asn1parse` (OBSERVED: a Windows 10 package
//! catalog using `szOID_CATALOG_LIST_MEMBER_V2`, and an HLK-signed OEM driver
//! catalog with its `OS` / `HWID1` / `OSAttr` / `File` attributes).

use const_oid::ObjectIdentifier;
use der::asn1::{Any, BitString, BmpString, OctetString, UtcTime};
use der::{Choice, Sequence};
use spki::AlgorithmIdentifierOwned;

/// `SPC_INDIRECT_DATA_OBJID`: the content type of an Authenticode signature,
/// and the member attribute that carries a catalog member's hash.
pub const SPC_INDIRECT_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.4");
/// `SPC_PE_IMAGE_DATAOBJ`: the indirect data describes a PE image.
pub const SPC_PE_IMAGE_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.15");
/// `SPC_CAB_DATA_OBJID`: what makecat/inf2cat write for a flat file member
/// (value: an `SpcLink` naming an empty file), OBSERVED in both catalogs.
pub const SPC_CAB_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.25");
/// `SPC_SP_OPUS_INFO_OBJID` (signed attribute: program name / URL, empty here).
pub const SPC_SP_OPUS_INFO: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.12");
/// `SPC_STATEMENT_TYPE_OBJID` (signed attribute).
pub const SPC_STATEMENT_TYPE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.11");
/// `SPC_INDIVIDUAL_SP_KEY_PURPOSE_OBJID`: individual (not commercial) signer.
pub const SPC_INDIVIDUAL_SP_KEY_PURPOSE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.21");

/// `szOID_CTL`: the content type of a catalog's SignedData.
pub const MS_CTL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.10.1");
/// `szOID_CATALOG_LIST`: the CTL's subject usage for a catalog.
pub const CATALOG_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.1.1");
/// `szOID_CATALOG_LIST_MEMBER` (v1: SHA-1 members named by a UTF-16 hex tag).
pub const CATALOG_LIST_MEMBER: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.1.2");
/// `szOID_CATALOG_LIST_MEMBER2` (v2: SHA-256 members named by the raw hash).
pub const CATALOG_LIST_MEMBER_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.1.3");
/// `CAT_NAMEVALUE_OBJID`: a named attribute (member or catalog).
pub const CAT_NAMEVALUE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.2.1");
/// `CAT_MEMBERINFO2_OBJID`: which SIP hashed a v2 member.
pub const CAT_MEMBERINFO2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.2.3");

/// CMS / PKCS#9 and algorithm OIDs used here.
pub const ID_SIGNED_DATA: ObjectIdentifier = const_oid::db::rfc5911::ID_SIGNED_DATA;
pub const ID_CONTENT_TYPE: ObjectIdentifier = const_oid::db::rfc5911::ID_CONTENT_TYPE;
pub const ID_MESSAGE_DIGEST: ObjectIdentifier = const_oid::db::rfc5911::ID_MESSAGE_DIGEST;
pub const ID_SHA256: ObjectIdentifier = const_oid::db::rfc5912::ID_SHA_256;
pub const RSA_ENCRYPTION: ObjectIdentifier = const_oid::db::rfc5912::RSA_ENCRYPTION;
pub const ID_KP_CODE_SIGNING: ObjectIdentifier = const_oid::db::rfc5280::ID_KP_CODE_SIGNING;

/// `CRYPTCAT_ATTR_AUTHENTICATED | CRYPTCAT_ATTR_DATAASCII | CRYPTCAT_ATTR_NAMEASCII`,
/// the flags every name/value attribute of an inf2cat catalog carries (OBSERVED).
pub const CAT_ATTR_FLAGS: u32 = 0x1001_0001;

/// `SpcString ::= CHOICE { unicode [0] IMPLICIT BMPString, ascii [1] IMPLICIT IA5String }`.
#[derive(Clone, Debug, Eq, PartialEq, Choice)]
pub enum SpcString {
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    Unicode(BmpString),
}

/// `SpcLink ::= CHOICE { url [0] IMPLICIT IA5String, moniker [1] IMPLICIT
/// SpcSerializedObject, file [2] EXPLICIT SpcString }`. Only `file` is written.
#[derive(Clone, Debug, Eq, PartialEq, Choice)]
pub enum SpcLink {
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", constructed = "true")]
    File(SpcString),
}

impl SpcLink {
    /// The empty file link signtool and makecat write (`file: unicode ""`).
    pub fn empty_file() -> Self {
        SpcLink::File(SpcString::Unicode(
            BmpString::from_utf8("").expect("the empty string is a BMPString"),
        ))
    }
}

/// `SpcPeImageData ::= SEQUENCE { flags SpcPeImageFlags DEFAULT { includeResources },
/// file [0] EXPLICIT SpcLink OPTIONAL }` (as written: flags present, file empty).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SpcPeImageData {
    pub flags: BitString,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub file: Option<SpcLink>,
}

/// `SpcSpOpusInfo ::= SEQUENCE { programName [0] EXPLICIT SpcString OPTIONAL,
/// moreInfo [1] EXPLICIT SpcLink OPTIONAL }` — written empty.
#[derive(Clone, Debug, Default, Eq, PartialEq, Sequence)]
pub struct SpcSpOpusInfo {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub program_name: Option<SpcString>,
}

/// `SpcStatementType ::= SEQUENCE OF OBJECT IDENTIFIER`.
pub type SpcStatementType = Vec<ObjectIdentifier>;

/// `CAT_NAMEVALUE ::= SEQUENCE { tag BMPString, flags INTEGER, value OCTET STRING }`
/// (the value is UTF-16LE text with a terminating NUL).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CatNameValue {
    pub tag: BmpString,
    pub flags: u32,
    pub value: OctetString,
}

impl CatNameValue {
    pub fn new(name: &str, value: &str) -> der::Result<Self> {
        Ok(Self {
            tag: BmpString::from_utf8(name)?,
            flags: CAT_ATTR_FLAGS,
            value: OctetString::new(utf16z(value))?,
        })
    }

    /// The value as text (UTF-16LE, NUL-terminated).
    pub fn text(&self) -> String {
        let units: Vec<u16> = self
            .value
            .as_bytes()
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        String::from_utf16_lossy(&units)
    }
}

/// UTF-16LE bytes of `s` followed by a NUL code unit.
pub fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain(std::iter::once(0))
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// `TrustedSubject ::= SEQUENCE { subjectIdentifier OCTET STRING,
/// subjectAttributes Attributes OPTIONAL }`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct TrustedSubject {
    pub identifier: OctetString,
    #[asn1(optional = "true")]
    pub attributes: Option<x509_cert::attr::Attributes>,
}

/// The CTL as makecat/inf2cat write it (MS-CAESO's `CertificateTrustList`
/// with `version` left at its default, a `listIdentifier`, no
/// `sequenceNumber` and no `nextUpdate` — the shape osslsigncode's reader
/// requires too):
///
/// ```text
/// CertificateTrustList ::= SEQUENCE {
///     subjectUsage      SEQUENCE OF OBJECT IDENTIFIER,   -- { szOID_CATALOG_LIST }
///     listIdentifier    OCTET STRING,
///     ctlThisUpdate     UTCTime,
///     subjectAlgorithm  AlgorithmIdentifier,             -- szOID_CATALOG_LIST_MEMBER(2)
///     trustedSubjects   SEQUENCE OF TrustedSubject,
///     ctlExtensions     [0] EXPLICIT Extensions OPTIONAL -- the catalog attributes
/// }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CertificateTrustList {
    pub subject_usage: Vec<ObjectIdentifier>,
    pub list_identifier: OctetString,
    pub this_update: UtcTime,
    pub subject_algorithm: AlgorithmIdentifierOwned,
    pub trusted_subjects: Vec<TrustedSubject>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub extensions: Option<x509_cert::ext::Extensions>,
}

/// `AlgorithmIdentifier { oid, NULL }` (the form every Microsoft structure
/// here uses, parameters present as NULL).
pub fn alg_with_null(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: Some(Any::from(der::asn1::Null)),
    }
}
