//! The configuration hash: 32 hex digits that are equal exactly when two configurations are equal.
//! It is what data planes report and what `/status` shows.

use sha2::{Digest, Sha256};

use super::types::Config;

/// The hash of a config: SHA-256 of its canonical JSON (lists sorted by id, object keys sorted),
/// cut to 128 bits and written as 32 lower-case hex digits, the length of Kong's.
pub fn config_hash(config: &Config) -> String {
    if config.is_empty() {
        return EMPTY_HASH.to_string();
    }
    let value = serde_json::to_value(config).expect("a config always serialises");
    let canonical = serde_json::to_string(&value).expect("a JSON value always serialises");
    Sha256::digest(canonical.as_bytes())[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash of the empty configuration, as Kong reports it: 32 zeros.
pub const EMPTY_HASH: &str = "00000000000000000000000000000000";
