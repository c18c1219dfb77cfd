//! Reading a PFX (PKCS#12) the user brings: `--sign <pfx>`.

use super::keys::SigningIdentity;

/// Load the first certificate and RSA key of a PFX.
pub fn load(_bytes: &[u8], _password: &str) -> Result<SigningIdentity, String> {
    Err("PFX input is not implemented yet".into())
}
