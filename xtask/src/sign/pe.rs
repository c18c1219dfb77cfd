//! Authenticode for the PE image: the image hash (google's `authenticode`
//! crate, over an adapter to the `object` crate this xtask already uses),
//! embedding the signature as a `WIN_CERTIFICATE` in the certificate table,
//! and reading it back.
//!
//! Layout written (the PE/COFF specification, "The Attribute Certificate
//! Table"): the image is padded with zeros to a multiple of 8 bytes (the
//! padding is part of the hash), then one `WIN_CERTIFICATE { dwLength,
//! wRevision = 0x0200, wCertificateType = WIN_CERT_TYPE_PKCS_SIGNED_DATA,
//! bCertificate = ContentInfo DER }` padded to 8 bytes; the security data
//! directory holds its file offset and padded size; the PE checksum is
//! recomputed last (neither field is hashed).

use std::ops::Range;

use authenticode::{AttributeCertificateIterator, PeOffsetError, PeOffsets, PeTrait};
use der::Encode;
use object::pe;
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64};
use object::LittleEndian as LE;
use sha2::{Digest, Sha256};

use super::asn1::{self, alg_with_null, SpcLink, SpcPeImageData};
use super::keys::SigningIdentity;
use super::pkcs7;

const WIN_CERT_REVISION_2_0: u16 = 0x0200;
const WIN_CERT_TYPE_PKCS_SIGNED_DATA: u16 = 0x0002;

/// A parsed PE32+ image, as `authenticode::PeTrait` wants it.
pub struct Image<'a> {
    data: &'a [u8],
    sections: Vec<Range<usize>>,
    cert_table: Option<Range<usize>>,
    offsets: PeOffsets,
}

impl<'a> Image<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self, String> {
        let file = PeFile64::parse(data).map_err(|e| format!("not a PE32+ image: {e}"))?;
        let nt_offset = file.dos_header().nt_headers_offset() as usize;
        // Signature (4) + IMAGE_FILE_HEADER (20): the optional header.
        let opt = nt_offset + 4 + 20;
        let opt_fixed = std::mem::size_of::<pe::ImageOptionalHeader64>();
        let dir_size = std::mem::size_of::<pe::ImageDataDirectory>();
        let security_dir = opt + opt_fixed + dir_size * pe::IMAGE_DIRECTORY_ENTRY_SECURITY;
        let oh = file.nt_headers().optional_header();
        if (oh.number_of_rva_and_sizes() as usize) <= pe::IMAGE_DIRECTORY_ENTRY_SECURITY {
            return Err("the image has no security data directory slot".into());
        }
        let offsets = PeOffsets {
            check_sum: opt + 64,
            after_check_sum: opt + 68,
            security_data_dir: security_dir,
            after_security_data_dir: security_dir + dir_size,
            after_header: oh.size_of_headers() as usize,
        };
        let sections = file
            .section_table()
            .iter()
            .map(|s| {
                let start = s.pointer_to_raw_data.get(LE) as usize;
                start..start + s.size_of_raw_data.get(LE) as usize
            })
            .collect();
        let cert_table = file
            .data_directory(pe::IMAGE_DIRECTORY_ENTRY_SECURITY)
            .map(|d| {
                let start = d.virtual_address.get(LE) as usize;
                start..start + d.size.get(LE) as usize
            })
            .filter(|r| !r.is_empty());
        Ok(Self {
            data,
            sections,
            cert_table,
            offsets,
        })
    }

    /// The certificate table's file range, if the image has one.
    pub fn cert_table(&self) -> Option<Range<usize>> {
        self.cert_table.clone()
    }
}

impl PeTrait for Image<'_> {
    fn data(&self) -> &[u8] {
        self.data
    }
    fn num_sections(&self) -> usize {
        self.sections.len()
    }
    fn section_data_range(&self, index: usize) -> Result<Range<usize>, PeOffsetError> {
        self.sections.get(index - 1).cloned().ok_or(PeOffsetError)
    }
    fn certificate_table_range(&self) -> Result<Option<Range<usize>>, PeOffsetError> {
        Ok(self.cert_table.clone())
    }
    fn offsets(&self) -> Result<PeOffsets, PeOffsetError> {
        Ok(self.offsets.clone())
    }
}

/// The SHA-256 Authenticode hash of an image (signed or not).
pub fn authenticode_sha256(image: &[u8]) -> Result<[u8; 32], String> {
    let img = Image::parse(image)?;
    let mut h = Sha256::new();
    authenticode::authenticode_digest(&img, &mut h)
        .map_err(|e| format!("authenticode hash: {e}"))?;
    Ok(h.finalize().into())
}

/// DER of the `SpcIndirectDataContent` naming a PE image by its SHA-256
/// Authenticode hash (the Authenticode signature's content, and the value of
/// a catalog member's SPC_INDIRECT_DATA attribute).
pub fn pe_indirect_data(hash: &[u8]) -> Result<Vec<u8>, String> {
    let image_data = SpcPeImageData {
        flags: der::asn1::BitString::from_bytes(&[]).map_err(|e| e.to_string())?,
        file: Some(SpcLink::empty_file()),
    };
    indirect_data(asn1::SPC_PE_IMAGE_DATA, &image_data, hash)
}

/// DER of the `SpcIndirectDataContent` of a flat file (what makecat writes
/// for an INF: type SPC_CAB_DATA_OBJID, value an empty file link).
pub fn flat_indirect_data(hash: &[u8]) -> Result<Vec<u8>, String> {
    indirect_data(asn1::SPC_CAB_DATA, &SpcLink::empty_file(), hash)
}

fn indirect_data<T: Encode>(
    value_type: const_oid::ObjectIdentifier,
    value: &T,
    hash: &[u8],
) -> Result<Vec<u8>, String> {
    let idc = authenticode::SpcIndirectDataContent {
        data: authenticode::SpcAttributeTypeAndOptionalValue {
            value_type,
            value: der::Decode::from_der(&value.to_der().map_err(|e| e.to_string())?)
                .map_err(|e: der::Error| e.to_string())?,
        },
        message_digest: authenticode::DigestInfo {
            digest_algorithm: alg_with_null(asn1::ID_SHA256),
            digest: der::asn1::OctetString::new(hash).map_err(|e| e.to_string())?,
        },
    };
    idc.to_der()
        .map_err(|e| format!("encoding SpcIndirectDataContent: {e}"))
}

/// Authenticode-sign an unsigned image: returns the signed image (padded,
/// signature embedded, checksum recomputed) and its Authenticode hash.
pub fn sign_image(image: &[u8], id: &SigningIdentity) -> Result<(Vec<u8>, [u8; 32]), String> {
    if Image::parse(image)?.cert_table().is_some() {
        return Err("the image already has a certificate table".into());
    }
    let mut out = image.to_vec();
    out.resize(out.len().next_multiple_of(8), 0);
    let hash = authenticode_sha256(&out)?;
    let content = pe_indirect_data(&hash)?;
    let pkcs7 = pkcs7::sign(asn1::SPC_INDIRECT_DATA, &content, id)?;

    let table_offset = out.len();
    let length = u32::try_from(8 + pkcs7.len()).map_err(|_| "signature too large")?;
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&WIN_CERT_REVISION_2_0.to_le_bytes());
    out.extend_from_slice(&WIN_CERT_TYPE_PKCS_SIGNED_DATA.to_le_bytes());
    out.extend_from_slice(&pkcs7);
    out.resize(out.len().next_multiple_of(8), 0);
    let table_size = out.len() - table_offset;

    let dir = Image::parse(&out)?.offsets.security_data_dir;
    out[dir..dir + 4].copy_from_slice(&(table_offset as u32).to_le_bytes());
    out[dir + 4..dir + 8].copy_from_slice(&(table_size as u32).to_le_bytes());
    crate::verify::pe::fix_checksum(&mut out);
    Ok((out, hash))
}

/// The one embedded signature of a signed image (ContentInfo DER), checked
/// for the `WIN_CERTIFICATE` framing. Errors if there is none or more than one.
pub fn embedded_signature(image: &[u8]) -> Result<Vec<u8>, String> {
    let img = Image::parse(image)?;
    let table = img
        .cert_table()
        .ok_or("the image has no certificate table (not signed)")?;
    if table.end != image.len() {
        return Err(format!(
            "the certificate table ({}..{}) does not end the file ({} bytes)",
            table.start,
            table.end,
            image.len()
        ));
    }
    let mut certs = AttributeCertificateIterator::new(&img)
        .map_err(|e| format!("certificate table: {e}"))?
        .ok_or("no certificate table")?;
    let first = certs
        .next()
        .ok_or("the certificate table is empty")?
        .map_err(|e| format!("certificate table: {e}"))?;
    if certs.next().is_some() {
        return Err("more than one WIN_CERTIFICATE".into());
    }
    if first.revision != WIN_CERT_REVISION_2_0
        || first.certificate_type != WIN_CERT_TYPE_PKCS_SIGNED_DATA
    {
        return Err(format!(
            "WIN_CERTIFICATE revision 0x{:04x} type 0x{:04x}, expected 0x0200 / PKCS_SIGNED_DATA",
            first.revision, first.certificate_type
        ));
    }
    // Parsed by the authenticode crate as well: one signer, SPC content.
    authenticode::AuthenticodeSignature::from_bytes(first.data)
        .map_err(|e| format!("embedded signature: {e}"))?;
    let any = <der::Any as der::Decode>::from_der(first.data)
        .or_else(|_| {
            // Trailing alignment zeros are allowed inside bCertificate.
            let mut r = der::SliceReader::new(first.data).map_err(|e| e.to_string())?;
            <der::Any as der::Decode>::decode(&mut r).map_err(|e| e.to_string())
        })
        .map_err(|e| format!("embedded signature is not DER: {e}"))?;
    any.to_der().map_err(|e| e.to_string())
}

/// Check an image's embedded Authenticode signature: the signature itself
/// ([`pkcs7::verify`]), its content is an SpcIndirectDataContent for a PE
/// image whose SHA-256 digest equals the image's Authenticode hash. Returns
/// the hash and the signer.
pub fn verify_image(image: &[u8]) -> Result<([u8; 32], pkcs7::Verified), String> {
    let sig = embedded_signature(image)?;
    let v = pkcs7::verify(&sig)?;
    if v.content_type != asn1::SPC_INDIRECT_DATA {
        return Err(format!(
            "content type {} is not SPC_INDIRECT_DATA",
            v.content_type
        ));
    }
    let idc: authenticode::SpcIndirectDataContent = der::Decode::from_der(&v.content_der)
        .map_err(|e| format!("SpcIndirectDataContent: {e}"))?;
    if idc.data.value_type != asn1::SPC_PE_IMAGE_DATA {
        return Err(format!(
            "indirect data type {} is not SPC_PE_IMAGE_DATA",
            idc.data.value_type
        ));
    }
    if idc.message_digest.digest_algorithm.oid != asn1::ID_SHA256 {
        return Err("the image digest is not SHA-256".into());
    }
    let hash = authenticode_sha256(image)?;
    if idc.message_digest.digest.as_bytes() != hash {
        return Err(format!(
            "the signed image hash {} differs from the image's Authenticode hash {}",
            super::hex(idc.message_digest.digest.as_bytes()),
            super::hex(&hash)
        ));
    }
    Ok((hash, v))
}
