//! The secrets in consumer credentials: keys and JWT secrets generated when a writer gives none
//! (Kong's 32 alphanumeric characters, here from the operating system's CSPRNG), and basic-auth
//! passwords, which are stored only as a salted SHA-256 hash: `sha256$<salt hex>$<digest hex>`,
//! the digest being SHA-256(salt ‖ password). A fast hash, as Kong's (SHA-1 salted with the
//! consumer id): it is checked on every request, and the configuration that holds it also holds
//! keys and JWT secrets in clear, so it must be kept secret either way (docs/security.md).
//!
//! In a configuration read whole (a declarative file, `POST /config`, the Admin API's own records),
//! a password already in a stored form is kept: ours, or Kong's (40 lowercase hex digits, SHA-1 of
//! the password and the consumer's id), so a configuration exported from Kong moves here with its
//! passwords working (the `basic-auth` plugin checks both forms). A password written through the
//! Admin API's credential endpoints is always a clear one and is hashed whatever it looks like
//! ([`seal_written`]), as Kong's Admin API does.

use sha2::{Digest, Sha256};

const ALPHANUMERIC: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const PREFIX: &str = "sha256$";

/// `n` random bytes from the operating system (through uuid's v4 generator, which reads it).
fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        out.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    out.truncate(n);
    out
}

/// A new key or secret: 32 alphanumeric characters (about 190 random bits).
pub fn random_token() -> String {
    let mut token = String::with_capacity(32);
    while token.len() < 32 {
        // Bytes of 248 and up would bias the draw: they are skipped.
        for b in random_bytes(48) {
            if token.len() == 32 {
                break;
            }
            if b < 248 {
                token.push(ALPHANUMERIC[usize::from(b % 62)] as char);
            }
        }
    }
    token
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(salt: &str, password: &str) -> String {
    let mut sha = Sha256::new();
    sha.update(salt.as_bytes());
    sha.update(password.as_bytes());
    hex(&sha.finalize())
}

/// The stored form of `password`, with a fresh salt.
pub fn hash_password(password: &str) -> String {
    let salt = hex(&random_bytes(16));
    format!("{PREFIX}{salt}${}", digest(&salt, password))
}

/// What an Admin API write (`POST`, `PUT`, `PATCH` of one entity) says in clear and the store must
/// not keep so: a basic-auth `password`, hashed here whatever it looks like. Anything that is not
/// a string is left for the schema to refuse.
pub fn seal_written(kind: super::Kind, entity: &mut serde_json::Map<String, serde_json::Value>) {
    if kind == super::Kind::BasicauthCredentials
        && let Some(serde_json::Value::String(password)) = entity.get_mut("password")
    {
        *password = hash_password(password);
    }
}

/// Whether `value` is already a stored hash, ours or Kong's (a configuration exported and read back
/// in keeps it).
pub fn is_password_hash(value: &str) -> bool {
    is_ours(value) || is_kongs(value)
}

fn is_kongs(value: &str) -> bool {
    value.len() == 40 && value.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_ours(value: &str) -> bool {
    let Some(rest) = value.strip_prefix(PREFIX) else { return false };
    let Some((salt, digest)) = rest.split_once('$') else { return false };
    let lower_hex = |s: &str| s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    salt.len() == 32 && digest.len() == 64 && lower_hex(salt) && lower_hex(digest)
}

/// Whether `password` is the one `stored` was made from (in constant time over the digest).
pub fn verify_password(stored: &str, password: &str) -> bool {
    if !is_ours(stored) {
        return false;
    }
    let (salt, expected) = stored[PREFIX.len()..].split_once('$').unwrap_or_default();
    let actual = digest(salt, password);
    actual.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_32_alphanumerics_and_differ() {
        let a = random_token();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, random_token());
    }

    #[test]
    fn passwords_hash_with_a_salt_and_verify() {
        let stored = hash_password("s3cret");
        assert!(is_password_hash(&stored), "{stored}");
        assert!(!stored.contains("s3cret"));
        assert_ne!(stored, hash_password("s3cret"), "a fresh salt each time");
        assert!(verify_password(&stored, "s3cret"));
        assert!(!verify_password(&stored, "s3cret "));
        assert!(!verify_password("s3cret", "s3cret"), "a clear password is never a stored one");
        assert!(!is_password_hash("sha256$abc$def"));
        let kong = "0b9c2625dc21ef05f6ad4ddf47c5f203837aa32c";
        assert!(is_password_hash(kong), "Kong's SHA-1 form is kept");
        assert!(!is_password_hash(&kong.to_uppercase()));
        assert!(!is_password_hash(&kong[1..]));
    }
}
