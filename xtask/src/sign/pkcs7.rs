//! PKCS#7 / CMS SignedData as Authenticode and catalogs use it: version 1,
//! one SHA-256 signer identified by issuer and serial number, signed
//! attributes (contentType, messageDigest, SpcSpOpusInfo, SpcStatementType),
//! an RSA PKCS#1 v1.5 signature, and the signer's certificate. Built with the
//! `cms` crate's types and `der`'s encoder; checked back by [`verify`].
//!
//! As in PKCS#7 (and unlike CMS for `id-data`), the message digest covers the
//! *contents octets* of the encapsulated content: the DER of the
//! SpcIndirectDataContent / CTL SEQUENCE without its tag and length.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::ObjectIdentifier;
use der::asn1::{Any, OctetString, SetOfVec};
use der::{Decode, Encode};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::signature::{SignatureEncoding, Signer as _, Verifier as _};
use rsa::RsaPublicKey;
use sha2::{Digest, Sha256};
use spki::DecodePublicKey;
use x509_cert::attr::Attribute;
use x509_cert::Certificate;

use super::asn1::{self, alg_with_null, SpcSpOpusInfo};
use super::keys::SigningIdentity;

fn attr(oid: ObjectIdentifier, value: Any) -> Result<Attribute, String> {
    let mut values = SetOfVec::new();
    values.insert(value).map_err(|e| e.to_string())?;
    Ok(Attribute { oid, values })
}

fn any_of<T: Encode>(v: &T) -> Result<Any, String> {
    let der = v.to_der().map_err(|e| format!("encoding: {e}"))?;
    Any::from_der(&der).map_err(|e| format!("re-reading: {e}"))
}

/// Sign `content_der` (the DER of one SEQUENCE) as the encapsulated content
/// of type `content_type`; returns the DER of the ContentInfo.
pub fn sign(
    content_type: ObjectIdentifier,
    content_der: &[u8],
    id: &SigningIdentity,
) -> Result<Vec<u8>, String> {
    let content = Any::from_der(content_der).map_err(|e| format!("content is not DER: {e}"))?;
    let digest = Sha256::digest(content.value());

    let statement: asn1::SpcStatementType = vec![asn1::SPC_INDIVIDUAL_SP_KEY_PURPOSE];
    let mut signed_attrs = SetOfVec::new();
    for a in [
        attr(asn1::ID_CONTENT_TYPE, any_of(&content_type)?)?,
        attr(
            asn1::ID_MESSAGE_DIGEST,
            any_of(&OctetString::new(digest.to_vec()).map_err(|e| e.to_string())?)?,
        )?,
        attr(asn1::SPC_SP_OPUS_INFO, any_of(&SpcSpOpusInfo::default())?)?,
        attr(asn1::SPC_STATEMENT_TYPE, any_of(&statement)?)?,
    ] {
        signed_attrs.insert(a).map_err(|e| e.to_string())?;
    }
    // The signature covers the DER of the attributes as a SET OF (tag 0x31).
    let to_sign = signed_attrs.to_der().map_err(|e| e.to_string())?;
    let signing_key = SigningKey::<Sha256>::new(id.key.clone());
    let signature: Signature = signing_key
        .try_sign(&to_sign)
        .map_err(|e| format!("RSA signing failed: {e}"))?;

    let cert = &id.cert;
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: alg_with_null(asn1::ID_SHA256),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: alg_with_null(asn1::RSA_ENCRYPTION),
        signature: OctetString::new(signature.to_vec()).map_err(|e| e.to_string())?,
        unsigned_attrs: None,
    };
    let mut digest_algorithms = SetOfVec::new();
    digest_algorithms
        .insert(alg_with_null(asn1::ID_SHA256))
        .map_err(|e| e.to_string())?;
    let mut certs = SetOfVec::new();
    certs
        .insert(CertificateChoices::Certificate(cert.clone()))
        .map_err(|e| e.to_string())?;
    let mut signer_infos = SetOfVec::new();
    signer_infos
        .insert(signer_info)
        .map_err(|e| e.to_string())?;
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: content_type,
            econtent: Some(content),
        },
        certificates: Some(CertificateSet(certs)),
        crls: None,
        signer_infos: SignerInfos(signer_infos),
    };
    let ci = ContentInfo {
        content_type: asn1::ID_SIGNED_DATA,
        content: any_of(&signed_data)?,
    };
    ci.to_der()
        .map_err(|e| format!("encoding ContentInfo: {e}"))
}

/// What [`verify`] found in a valid SignedData.
#[derive(Clone, Debug)]
pub struct Verified {
    pub content_type: ObjectIdentifier,
    /// DER of the encapsulated content (the whole SEQUENCE).
    pub content_der: Vec<u8>,
    pub signer: Certificate,
}

fn find_attr(attrs: &[Attribute], oid: ObjectIdentifier) -> Result<&Any, String> {
    let mut found = attrs.iter().filter(|a| a.oid == oid);
    let a = found
        .next()
        .ok_or_else(|| format!("signed attribute {oid} missing"))?;
    if found.next().is_some() || a.values.len() != 1 {
        return Err(format!(
            "signed attribute {oid} must appear once with one value"
        ));
    }
    Ok(&a.values.as_slice()[0])
}

/// Check a ContentInfo/SignedData made by [`sign`] or by another signer of
/// the same shape: one signer, its certificate present, the messageDigest
/// attribute equal to the SHA-256 of the content octets, the contentType
/// attribute equal to the encapsulated type, and the RSA signature over the
/// signed attributes valid for the signer's public key. Trust (which
/// certificate is acceptable) is the caller's decision.
pub fn verify(der_bytes: &[u8]) -> Result<Verified, String> {
    let ci = ContentInfo::from_der(der_bytes).map_err(|e| format!("not a ContentInfo: {e}"))?;
    if ci.content_type != asn1::ID_SIGNED_DATA {
        return Err(format!(
            "content type {} is not signedData",
            ci.content_type
        ));
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| format!("not a SignedData: {e}"))?;
    let content = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or("the SignedData has no encapsulated content")?;
    let content_der = content.to_der().map_err(|e| e.to_string())?;
    let [si] = sd.signer_infos.0.as_slice() else {
        return Err(format!(
            "{} signer infos, expected exactly 1",
            sd.signer_infos.0.len()
        ));
    };
    if si.digest_alg.oid != asn1::ID_SHA256 {
        return Err(format!(
            "digest algorithm {} is not SHA-256",
            si.digest_alg.oid
        ));
    }
    let SignerIdentifier::IssuerAndSerialNumber(ias) = &si.sid else {
        return Err("the signer is not identified by issuer and serial number".into());
    };
    let signer = sd
        .certificates
        .as_ref()
        .and_then(|set| {
            set.0.iter().find_map(|c| match c {
                CertificateChoices::Certificate(c)
                    if c.tbs_certificate.issuer == ias.issuer
                        && c.tbs_certificate.serial_number == ias.serial_number =>
                {
                    Some(c.clone())
                }
                _ => None,
            })
        })
        .ok_or("the signer's certificate is not in the SignedData")?;
    let attrs = si.signed_attrs.as_ref().ok_or("no signed attributes")?;
    let ct: ObjectIdentifier = find_attr(attrs.as_slice(), asn1::ID_CONTENT_TYPE)?
        .decode_as()
        .map_err(|e| format!("contentType attribute: {e}"))?;
    if ct != sd.encap_content_info.econtent_type {
        return Err(format!(
            "contentType attribute {ct} differs from the content's type {}",
            sd.encap_content_info.econtent_type
        ));
    }
    let md: OctetString = find_attr(attrs.as_slice(), asn1::ID_MESSAGE_DIGEST)?
        .decode_as()
        .map_err(|e| format!("messageDigest attribute: {e}"))?;
    let computed = Sha256::digest(content.value());
    if md.as_bytes() != computed.as_slice() {
        return Err(format!(
            "messageDigest {} does not match the content's SHA-256 {}",
            super::hex(md.as_bytes()),
            super::hex(&computed)
        ));
    }
    let spki_der = signer
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())?;
    let public = RsaPublicKey::from_public_key_der(&spki_der)
        .map_err(|e| format!("the signer's key is not RSA: {e}"))?;
    let sig = Signature::try_from(si.signature.as_bytes())
        .map_err(|e| format!("signature value: {e}"))?;
    VerifyingKey::<Sha256>::new(public)
        .verify(&attrs.to_der().map_err(|e| e.to_string())?, &sig)
        .map_err(|_| "the RSA signature over the signed attributes is invalid".to_string())?;
    Ok(Verified {
        content_type: sd.encap_content_info.econtent_type,
        content_der,
        signer,
    })
}
