//! RSA keys for RS256 (ID tokens), through aws-lc-rs: generation, and the parts of a PKCS#8
//! key that jsonwebtoken and the JWKS need. (Not the `rsa` crate: RUSTSEC-2023-0071, see
//! server/README, "Keys".)

use anyhow::{Context, Result};
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use jsonwebtoken::EncodingKey;

/// A new 2048-bit RSA key, unencrypted PKCS#8 DER.
pub(super) fn generate() -> Result<Vec<u8>> {
    let key = KeyPair::generate(KeySize::Rsa2048)
        .map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
    let der = key
        .as_der()
        .map_err(|_| anyhow::anyhow!("encoding an RSA key failed"))?;
    Ok(der.as_ref().to_vec())
}

/// An RSA private key: the signing key and the public modulus and exponent (base64url).
pub(super) struct RsaKey {
    pub encoding: EncodingKey,
    pub n: String,
    pub e: String,
}

/// The key in unencrypted PKCS#8 DER; at least 2048 bits.
pub(super) fn from_pkcs8(der: &[u8]) -> Result<RsaKey> {
    let pair =
        KeyPair::from_pkcs8(der).map_err(|e| anyhow::anyhow!("not an RSA PKCS#8 key: {e}"))?;
    anyhow::ensure!(
        pair.public_modulus_len() >= 256,
        "an RS256 key must have at least 2048 bits"
    );
    // jsonwebtoken takes the PKCS#1 RSAPrivateKey inside the PKCS#8 wrapper.
    let info = pkcs8::PrivateKeyInfo::try_from(der).context("parsing PKCS#8")?;
    let public = pair.public_key();
    Ok(RsaKey {
        encoding: EncodingKey::from_rsa_der(info.private_key),
        n: B64URL.encode(public.modulus().big_endian_without_leading_zero()),
        e: B64URL.encode(public.exponent().big_endian_without_leading_zero()),
    })
}
