//! The signing identity: the project's self-signed test certificate (made once
//! under `target/sign/`, reused afterwards so a test machine trusts it once), or
//! a certificate and key the user brings in a PFX.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use der::{Decode, Encode};
use rand_core::{OsRng, RngCore};
use rsa::pkcs1v15::{Signature, SigningKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;
use spki::{DecodePublicKey, EncodePublicKey, SubjectPublicKeyInfoOwned};
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::pkix::ExtendedKeyUsage;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;

use super::asn1::ID_KP_CODE_SIGNING;

/// The subject of the generated test certificate.
pub const TEST_SUBJECT: &str = "CN=mdlpool test signing (cargo xtask)";
/// File names under `target/sign/`.
pub const TEST_KEY_FILE: &str = "mdlpool-test.key.pem";
pub const TEST_CERT_FILE: &str = "mdlpool-test.cer";
/// RSA modulus size of the generated key.
pub const TEST_KEY_BITS: usize = 2048;

/// A private key and the certificate of its public key.
#[derive(Clone)]
pub struct SigningIdentity {
    pub key: RsaPrivateKey,
    pub cert: Certificate,
}

/// Shows the certificate's subject, never the key.
impl std::fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningIdentity")
            .field("subject", &self.subject())
            .finish_non_exhaustive()
    }
}

impl SigningIdentity {
    /// The certificate as DER (what `mdlpool-test.cer` holds).
    pub fn cert_der(&self) -> Vec<u8> {
        self.cert
            .to_der()
            .expect("a decoded certificate re-encodes")
    }

    /// The subject, as RFC 4514 text.
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    /// SHA-256 of the certificate's DER (`certutil -dump` shows it as "Cert Hash(sha256)").
    pub fn sha256_thumbprint(&self) -> String {
        use sha2::Digest;
        super::hex(&Sha256::digest(self.cert_der()))
    }

    /// Does the certificate carry this key's public half?
    pub fn key_matches(&self) -> bool {
        let Ok(cert_spki) = self.cert.tbs_certificate.subject_public_key_info.to_der() else {
            return false;
        };
        RsaPublicKey::from(&self.key)
            .to_public_key_der()
            .is_ok_and(|d| d.as_bytes() == cert_spki.as_slice())
    }
}

/// Where the test certificate and key live: `<target>/sign/`.
pub fn test_dir() -> PathBuf {
    workspace_paths::target_dir().join("sign")
}

/// Load the test identity from `dir`, creating it first if it is not there.
/// Returns the identity and whether it was created now.
pub fn test_identity(dir: &Path) -> Result<(SigningIdentity, bool), String> {
    let key_path = dir.join(TEST_KEY_FILE);
    let cert_path = dir.join(TEST_CERT_FILE);
    if key_path.exists() && cert_path.exists() {
        let pem = std::fs::read_to_string(&key_path)
            .map_err(|e| format!("reading {}: {e}", key_path.display()))?;
        let key = RsaPrivateKey::from_pkcs8_pem(&pem)
            .map_err(|e| format!("{}: not a PKCS#8 RSA key: {e}", key_path.display()))?;
        let der = std::fs::read(&cert_path)
            .map_err(|e| format!("reading {}: {e}", cert_path.display()))?;
        let cert = Certificate::from_der(&der)
            .map_err(|e| format!("{}: not a DER certificate: {e}", cert_path.display()))?;
        let id = SigningIdentity { key, cert };
        if !id.key_matches() {
            return Err(format!(
                "{} does not hold the public key of {}; delete both to make a new test certificate",
                cert_path.display(),
                key_path.display()
            ));
        }
        return Ok((id, false));
    }
    let id = create_test_identity(SystemTime::now())?;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let pem = id
        .key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| format!("encoding the key: {e}"))?;
    write_private(&key_path, pem.as_bytes())?;
    std::fs::write(&cert_path, id.cert_der())
        .map_err(|e| format!("writing {}: {e}", cert_path.display()))?;
    Ok((id, true))
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    f.write_all(bytes)
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// A new RSA-2048 key and a self-signed certificate for it: subject
/// [`TEST_SUBJECT`], valid from a day before `now` for 10 years, basic
/// constraints `cA = FALSE`, key usage digitalSignature (+ nonRepudiation),
/// extended key usage code signing, subject/authority key identifiers.
pub fn create_test_identity(now: SystemTime) -> Result<SigningIdentity, String> {
    let key = RsaPrivateKey::new(&mut OsRng, TEST_KEY_BITS)
        .map_err(|e| format!("generating an RSA key: {e}"))?;
    let cert = self_signed(&key, TEST_SUBJECT, now)?;
    Ok(SigningIdentity { key, cert })
}

/// A self-signed code-signing certificate for `key`.
pub fn self_signed(
    key: &RsaPrivateKey,
    subject: &str,
    now: SystemTime,
) -> Result<Certificate, String> {
    let subject = Name::from_str(subject).map_err(|e| format!("subject {subject:?}: {e}"))?;
    let mut serial = [0u8; 16];
    OsRng.fill_bytes(&mut serial);
    serial[0] &= 0x7f; // positive
    serial[0] |= 0x01; // and no leading zero byte to strip
    let serial = SerialNumber::new(&serial).map_err(|e| e.to_string())?;
    let since = now
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .saturating_sub(Duration::from_secs(86_400));
    let until = since + Duration::from_secs(10 * 365 * 86_400);
    let validity = Validity {
        not_before: Time::try_from(UNIX_EPOCH + since).map_err(|e| e.to_string())?,
        not_after: Time::try_from(UNIX_EPOCH + until).map_err(|e| e.to_string())?,
    };
    let public = RsaPublicKey::from(key);
    let spki_der = public
        .to_public_key_der()
        .map_err(|e| format!("encoding the public key: {e}"))?;
    let spki =
        SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes()).map_err(|e| e.to_string())?;
    let signer = SigningKey::<Sha256>::new(key.clone());
    let mut builder = CertificateBuilder::new(
        Profile::Leaf {
            issuer: subject.clone(),
            enable_key_agreement: false,
            enable_key_encipherment: false,
        },
        serial,
        validity,
        subject,
        spki,
        &signer,
    )
    .map_err(|e| format!("certificate: {e}"))?;
    builder
        .add_extension(&ExtendedKeyUsage(vec![ID_KP_CODE_SIGNING]))
        .map_err(|e| format!("certificate EKU: {e}"))?;
    builder
        .build::<Signature>()
        .map_err(|e| format!("signing the certificate: {e}"))
}

/// Does `cert` allow code signing (EKU present and lists code signing)?
pub fn has_code_signing_eku(cert: &Certificate) -> bool {
    use der::Decode as _;
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE)
        .any(|e| {
            ExtendedKeyUsage::from_der(e.extn_value.as_bytes())
                .is_ok_and(|eku| eku.0.contains(&ID_KP_CODE_SIGNING))
        })
}

/// Re-encode a public key check helper for tests: the RSA public key of a certificate.
pub fn cert_public_key(cert: &Certificate) -> Result<RsaPublicKey, String> {
    let der = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())?;
    RsaPublicKey::from_public_key_der(&der).map_err(|e| e.to_string())
}
