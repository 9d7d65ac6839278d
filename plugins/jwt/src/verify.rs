//! Signature checks for the algorithms a `jwt_secrets` credential may name: HMAC with SHA-2 over
//! the secret, RSASSA-PKCS1-v1_5 and ECDSA (P-256, P-384; JWS's raw `r || s` signatures) over the
//! credential's `rsa_public_key` (a PEM SubjectPublicKeyInfo, checked by the host when written).

use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Verifier;
use rsa::pkcs8::der::Decode;
use rsa::{BigUint, RsaPublicKey};
use sha2::{Sha256, Sha384, Sha512};

/// The largest RSA modulus accepted, in bits (a bound on the work one request can ask for).
const MAX_RSA_BITS: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    ES256,
    ES384,
}

impl Algorithm {
    pub fn parse(name: &str) -> Option<Algorithm> {
        Some(match name {
            "HS256" => Algorithm::HS256,
            "HS384" => Algorithm::HS384,
            "HS512" => Algorithm::HS512,
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            "ES256" => Algorithm::ES256,
            "ES384" => Algorithm::ES384,
            _ => return None,
        })
    }

    /// Whether the credential's `secret` (not its public key) verifies.
    pub fn is_symmetric(self) -> bool {
        matches!(self, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
    }
}

/// A public key that does not read: the credential is broken, not the token.
#[derive(Debug, thiserror::Error)]
#[error("the credential's rsa_public_key is not a public key for {algorithm:?}: {reason}")]
pub struct BadKey {
    algorithm: Algorithm,
    reason: String,
}

/// Whether `signature` signs `input` under `key` (the secret's bytes for HS*, the PEM public key
/// otherwise).
pub fn verify(algorithm: Algorithm, input: &[u8], signature: &[u8], key: &[u8]) -> Result<bool, BadKey> {
    let bad = |reason: String| BadKey { algorithm, reason };
    Ok(match algorithm {
        Algorithm::HS256 => hmac::<Hmac<Sha256>>(key, input, signature),
        Algorithm::HS384 => hmac::<Hmac<Sha384>>(key, input, signature),
        Algorithm::HS512 => hmac::<Hmac<Sha512>>(key, input, signature),
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => {
            let key = rsa_key(key).map_err(bad)?;
            let Ok(signature) = rsa::pkcs1v15::Signature::try_from(signature) else { return Ok(false) };
            match algorithm {
                Algorithm::RS256 => rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key).verify(input, &signature).is_ok(),
                Algorithm::RS384 => rsa::pkcs1v15::VerifyingKey::<Sha384>::new(key).verify(input, &signature).is_ok(),
                _ => rsa::pkcs1v15::VerifyingKey::<Sha512>::new(key).verify(input, &signature).is_ok(),
            }
        }
        Algorithm::ES256 => {
            use p256::pkcs8::DecodePublicKey;
            let pem = std::str::from_utf8(key).map_err(|e| bad(e.to_string()))?;
            let key = p256::ecdsa::VerifyingKey::from_public_key_pem(pem).map_err(|e| bad(e.to_string()))?;
            // JWS: exactly 64 bytes, r then s.
            p256::ecdsa::Signature::from_slice(signature).is_ok_and(|s| key.verify(input, &s).is_ok())
        }
        Algorithm::ES384 => {
            use p384::pkcs8::DecodePublicKey;
            let pem = std::str::from_utf8(key).map_err(|e| bad(e.to_string()))?;
            let key = p384::ecdsa::VerifyingKey::from_public_key_pem(pem).map_err(|e| bad(e.to_string()))?;
            p384::ecdsa::Signature::from_slice(signature).is_ok_and(|s| key.verify(input, &s).is_ok())
        }
    })
}

/// Constant-time comparison of the MAC.
fn hmac<M: Mac + hmac::digest::KeyInit>(key: &[u8], input: &[u8], signature: &[u8]) -> bool {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(input);
    mac.verify_slice(signature).is_ok()
}

/// An RSA public key from a PEM SubjectPublicKeyInfo, up to [`MAX_RSA_BITS`] (the `rsa` crate's
/// own reader stops at 4096).
fn rsa_key(pem: &[u8]) -> Result<RsaPublicKey, String> {
    let (label, der) = rsa::pkcs8::der::pem::decode_vec(pem).map_err(|e| e.to_string())?;
    if label != "PUBLIC KEY" {
        return Err(format!("a PEM {label}, not a PUBLIC KEY"));
    }
    let spki = rsa::pkcs8::SubjectPublicKeyInfoRef::from_der(&der).map_err(|e| e.to_string())?;
    if spki.algorithm.oid != rsa::pkcs1::ALGORITHM_OID {
        return Err("not an RSA key".into());
    }
    let raw = spki.subject_public_key.as_bytes().ok_or("the key's bit string is not whole bytes")?;
    let key = rsa::pkcs1::RsaPublicKey::from_der(raw).map_err(|e| e.to_string())?;
    let n = BigUint::from_bytes_be(key.modulus.as_bytes());
    let e = BigUint::from_bytes_be(key.public_exponent.as_bytes());
    RsaPublicKey::new_with_max_size(n, e, MAX_RSA_BITS).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::EncodePublicKey;
    use rsa::signature::{SignatureEncoding, Signer};

    fn hs256(key: &[u8], input: &[u8]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(key).unwrap();
        mac.update(input);
        mac.finalize().into_bytes().to_vec()
    }

    #[test]
    fn hmac_signatures() {
        let sig = hs256(b"secret", b"a.b");
        assert!(verify(Algorithm::HS256, b"a.b", &sig, b"secret").unwrap());
        assert!(!verify(Algorithm::HS256, b"a.c", &sig, b"secret").unwrap());
        assert!(!verify(Algorithm::HS256, b"a.b", &sig, b"other").unwrap());
        assert!(!verify(Algorithm::HS256, b"a.b", &sig[..31], b"secret").unwrap());
        assert!(!verify(Algorithm::HS384, b"a.b", &sig, b"secret").unwrap());
        assert!(!verify(Algorithm::HS512, b"a.b", b"", b"").unwrap());
    }

    #[test]
    fn rsa_signatures() {
        let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let pem = private.to_public_key().to_public_key_pem(Default::default()).unwrap();
        let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(private);
        let sig = signer.sign(b"a.b").to_vec();
        assert!(verify(Algorithm::RS256, b"a.b", &sig, pem.as_bytes()).unwrap());
        assert!(!verify(Algorithm::RS256, b"a.c", &sig, pem.as_bytes()).unwrap());
        assert!(!verify(Algorithm::RS384, b"a.b", &sig, pem.as_bytes()).unwrap());
        assert!(!verify(Algorithm::RS256, b"a.b", b"short", pem.as_bytes()).unwrap());
        assert!(!verify(Algorithm::RS256, b"a.b", &[0xff; 256], pem.as_bytes()).unwrap());
        assert!(verify(Algorithm::RS256, b"a.b", &sig, b"not a key").is_err());
        let ec = p256::ecdsa::SigningKey::random(&mut rand::thread_rng());
        let ec_pem = ec.verifying_key().to_public_key_pem(Default::default()).unwrap();
        assert!(verify(Algorithm::RS256, b"a.b", &sig, ec_pem.as_bytes()).is_err(), "an EC key for RS256");
    }

    #[test]
    fn ecdsa_signatures() {
        let key = p256::ecdsa::SigningKey::random(&mut rand::thread_rng());
        let pem = key.verifying_key().to_public_key_pem(Default::default()).unwrap();
        let sig: p256::ecdsa::Signature = key.sign(b"a.b");
        let raw = sig.to_bytes().to_vec();
        assert_eq!(raw.len(), 64);
        assert!(verify(Algorithm::ES256, b"a.b", &raw, pem.as_bytes()).unwrap());
        assert!(!verify(Algorithm::ES256, b"a.c", &raw, pem.as_bytes()).unwrap());
        assert!(!verify(Algorithm::ES256, b"a.b", &raw[..63], pem.as_bytes()).unwrap());
        assert!(!verify(Algorithm::ES256, b"a.b", &[0; 64], pem.as_bytes()).unwrap());
        let der = sig.to_der().as_bytes().to_vec();
        assert!(!verify(Algorithm::ES256, b"a.b", &der, pem.as_bytes()).unwrap(), "JWS takes raw r||s, not DER");
        assert!(verify(Algorithm::ES384, b"a.b", &raw, pem.as_bytes()).is_err(), "a P-256 key for ES384");

        let key = p384::ecdsa::SigningKey::random(&mut rand::thread_rng());
        let pem = key.verifying_key().to_public_key_pem(Default::default()).unwrap();
        let sig: p384::ecdsa::Signature = key.sign(b"a.b");
        assert!(verify(Algorithm::ES384, b"a.b", &sig.to_bytes(), pem.as_bytes()).unwrap());
        assert!(!verify(Algorithm::ES384, b"x", &sig.to_bytes(), pem.as_bytes()).unwrap());
    }
}
