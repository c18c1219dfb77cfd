//! Reading a PFX (PKCS#12, RFC 7292) the user brings: `--sign <pfx>`, password
//! in `MDLPOOL_PFX_PASSWORD`.
//!
//! Supported: the integrity MAC with HMAC-SHA-256 or HMAC-SHA-1 (checked
//! first, so a wrong password is reported as such), safe contents that are
//! plain or PBES2-encrypted (PBKDF2 + AES-CBC: what OpenSSL 3 writes by
//! default and what Windows writes with `Export-PfxCertificate
//! -CryptoAlgorithmOption AES256_SHA256`), shrouded (PBES2) or plain key bags,
//! and X.509 certificate bags. The legacy PKCS#12 PBE schemes (3DES, RC2-40:
//! older Windows exports, `openssl pkcs12 -legacy`) are refused with a message
//! saying how to re-export. The certificate whose public key matches the
//! (RSA) private key is the signer.

use cms::content_info::ContentInfo;
use cms::encrypted_data::EncryptedData;
use der::asn1::OctetString;
use der::{Any, Decode, Encode};
use hmac::{Hmac, Mac};
use pkcs12::kdf::{derive_key_utf8, Pkcs12KeyType};
use rsa::pkcs8::DecodePrivateKey;
use rsa::RsaPrivateKey;
use x509_cert::Certificate;

use super::keys::SigningIdentity;

const ID_DATA: const_oid::ObjectIdentifier = const_oid::db::rfc5911::ID_DATA;
const ID_ENCRYPTED_DATA: const_oid::ObjectIdentifier = const_oid::db::rfc5911::ID_ENCRYPTED_DATA;
const ID_SHA1: const_oid::ObjectIdentifier = const_oid::db::rfc5912::ID_SHA_1;

const RE_EXPORT: &str =
    "re-export it with AES-256 (OpenSSL 3: `openssl pkcs12 -export` without -legacy; \
     Windows: Export-PfxCertificate -CryptoAlgorithmOption AES256_SHA256)";

fn check_mac(pfx: &pkcs12::pfx::Pfx, auth_safe: &[u8], password: &str) -> Result<(), String> {
    let Some(mac) = &pfx.mac_data else {
        return Ok(());
    };
    let salt = mac.mac_salt.as_bytes();
    let alg = mac.mac.algorithm.oid;
    let computed = if alg == super::asn1::ID_SHA256 {
        let key =
            derive_key_utf8::<sha2::Sha256>(password, salt, Pkcs12KeyType::Mac, mac.iterations, 32)
                .map_err(|e| e.to_string())?;
        let mut h = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).map_err(|e| e.to_string())?;
        h.update(auth_safe);
        h.finalize().into_bytes().to_vec()
    } else if alg == ID_SHA1 {
        let key =
            derive_key_utf8::<sha1::Sha1>(password, salt, Pkcs12KeyType::Mac, mac.iterations, 20)
                .map_err(|e| e.to_string())?;
        let mut h = <Hmac<sha1::Sha1> as Mac>::new_from_slice(&key).map_err(|e| e.to_string())?;
        h.update(auth_safe);
        h.finalize().into_bytes().to_vec()
    } else {
        return Err(format!(
            "MAC digest {alg} is not supported (SHA-256 or SHA-1); {RE_EXPORT}"
        ));
    };
    if computed != mac.mac.digest.as_bytes() {
        return Err(format!(
            "the PFX's integrity check failed: wrong password? (read from {})",
            super::PFX_PASSWORD_ENV
        ));
    }
    Ok(())
}

fn octets(any: &Any) -> Result<Vec<u8>, String> {
    Ok(any
        .decode_as::<OctetString>()
        .map_err(|e| format!("expected an OCTET STRING: {e}"))?
        .as_bytes()
        .to_vec())
}

/// The value inside a SafeBag's `[0] EXPLICIT` wrapper.
fn bag_value(bag: &pkcs12::safe_bag::SafeBag) -> Result<Any, String> {
    let wrapper = Any::from_der(&bag.bag_value).map_err(|e| format!("bag value: {e}"))?;
    Any::from_der(wrapper.value()).map_err(|e| format!("bag value: {e}"))
}

/// Load the signer certificate and its RSA key from a PFX.
pub fn load(bytes: &[u8], password: &str) -> Result<SigningIdentity, String> {
    let pfx = pkcs12::pfx::Pfx::from_der(bytes).map_err(|e| format!("not a PFX (PKCS#12): {e}"))?;
    if pfx.auth_safe.content_type != ID_DATA {
        return Err("only password-integrity PFX files are supported".into());
    }
    let auth_safe = octets(&pfx.auth_safe.content)?;
    check_mac(&pfx, &auth_safe, password)?;
    let infos: Vec<ContentInfo> =
        Vec::from_der(&auth_safe).map_err(|e| format!("AuthenticatedSafe: {e}"))?;

    let mut keys = Vec::new();
    let mut certs = Vec::new();
    for ci in infos {
        let safe_contents = if ci.content_type == ID_DATA {
            octets(&ci.content)?
        } else if ci.content_type == ID_ENCRYPTED_DATA {
            let ed: EncryptedData = ci
                .content
                .decode_as()
                .map_err(|e| format!("EncryptedData: {e}"))?;
            let alg_der = ed
                .enc_content_info
                .content_enc_alg
                .to_der()
                .map_err(|e| e.to_string())?;
            let scheme = pkcs5::EncryptionScheme::from_der(&alg_der)
                .map_err(|_| format!("the PFX uses a legacy encryption scheme; {RE_EXPORT}"))?;
            let ct = ed
                .enc_content_info
                .encrypted_content
                .ok_or("EncryptedData without content")?;
            scheme
                .decrypt(password, ct.as_bytes())
                .map_err(|e| format!("decrypting the PFX: {e} (wrong password?)"))?
        } else {
            return Err(format!("unsupported PFX content type {}", ci.content_type));
        };
        let bags: Vec<pkcs12::safe_bag::SafeBag> =
            Vec::from_der(&safe_contents).map_err(|e| format!("SafeContents: {e}"))?;
        for bag in bags {
            if bag.bag_id == pkcs12::PKCS_12_PKCS8_KEY_BAG_OID {
                let v = bag_value(&bag)?.to_der().map_err(|e| e.to_string())?;
                let epki = pkcs8::EncryptedPrivateKeyInfo::try_from(v.as_slice())
                    .map_err(|e| format!("shrouded key bag: {e}"))?;
                let doc = epki.decrypt(password).map_err(|_| {
                    format!(
                        "the PFX's key uses a legacy scheme or the password is wrong; {RE_EXPORT}"
                    )
                })?;
                keys.push(
                    RsaPrivateKey::from_pkcs8_der(doc.as_bytes())
                        .map_err(|e| format!("the PFX's key is not an RSA key: {e}"))?,
                );
            } else if bag.bag_id == pkcs12::PKCS_12_KEY_BAG_OID {
                let v = bag_value(&bag)?.to_der().map_err(|e| e.to_string())?;
                keys.push(
                    RsaPrivateKey::from_pkcs8_der(&v)
                        .map_err(|e| format!("the PFX's key is not an RSA key: {e}"))?,
                );
            } else if bag.bag_id == pkcs12::PKCS_12_CERT_BAG_OID {
                let cb: pkcs12::cert_type::CertBag = bag_value(&bag)?
                    .decode_as()
                    .map_err(|e| format!("certificate bag: {e}"))?;
                if cb.cert_id == pkcs12::PKCS_12_X509_CERT_OID {
                    certs.push(
                        Certificate::from_der(cb.cert_value.as_bytes())
                            .map_err(|e| format!("certificate in the PFX: {e}"))?,
                    );
                }
            }
        }
    }
    let key = match keys.len() {
        0 => return Err("the PFX holds no private key".into()),
        1 => keys.remove(0),
        n => return Err(format!("the PFX holds {n} private keys; expected one")),
    };
    certs
        .into_iter()
        .map(|cert| SigningIdentity {
            key: key.clone(),
            cert,
        })
        .find(SigningIdentity::key_matches)
        .ok_or_else(|| "no certificate in the PFX matches its private key".to_string())
}
