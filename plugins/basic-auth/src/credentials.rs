//! The two halves of Basic authentication: reading `Basic <base64(username:password)>` from a
//! client's header, and checking a password against the stored form the gateway keeps
//! (`sha256$<salt hex>$<digest hex>`, digest = SHA-256(salt hex ‖ password)). Both take any bytes
//! a client sends without panicking, and the comparison takes the same time wherever it differs.

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use gateway_pdk::hex;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The longest credentials part read (nginx's default limit for one header line is 8 KiB).
const MAX_ENCODED: usize = 8 * 1024;

/// Standard base64 as nginx's decoder (Kong's `ngx.decode_base64`) reads it: padding optional,
/// and the unused low bits of the last character ignored rather than required to be zero.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// A username and password a client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given {
    pub username: String,
    pub password: Vec<u8>,
}

/// The credentials of an `Authorization`-style header value: the `Basic` scheme (any case), then
/// base64 of `username:password` (the username up to the first `:`, not empty; the password may
/// hold anything). `None` for anything else.
pub fn parse(value: &str) -> Option<Given> {
    let value = value.trim_matches(|c: char| c == ' ' || c == '\t');
    let scheme = value.get(..5)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let encoded = value[5..].trim_start_matches([' ', '\t']);
    if encoded.is_empty() || encoded.len() > MAX_ENCODED {
        return None;
    }
    let decoded = BASE64.decode(encoded).ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    if colon == 0 {
        return None;
    }
    let username = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some(Given { username, password: decoded[colon + 1..].to_vec() })
}

/// Whether `password` is the one `stored` was made from: the gateway's `sha256$salt$digest`, or
/// Kong's own hash, kept from a Kong export (40 hex digits: SHA-1(password ‖ consumer id)). A
/// stored value of any other form never matches.
pub fn verify(stored: &str, password: &[u8], consumer_id: &str) -> bool {
    if stored.len() == 40 && stored.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        let mut sha = sha1::Sha1::new();
        sha.update(password);
        sha.update(consumer_id.as_bytes());
        return hex(&sha.finalize()).as_bytes().ct_eq(stored.as_bytes()).into();
    }
    let Some((salt, expected)) = stored.strip_prefix("sha256$").and_then(|rest| rest.split_once('$')) else {
        return false;
    };
    if expected.len() != 64 {
        return false;
    }
    let mut sha = Sha256::new();
    sha.update(salt.as_bytes());
    sha.update(password);
    let actual = hex(&sha.finalize());
    actual.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// `Basic base64(username:password)`, as a client makes it (for tests).
#[cfg(test)]
pub fn encode(username: &str, password: &[u8]) -> String {
    let mut plain = username.as_bytes().to_vec();
    plain.push(b':');
    plain.extend_from_slice(password);
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(plain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn given(username: &str, password: &str) -> Option<Given> {
        Some(Given { username: username.into(), password: password.as_bytes().to_vec() })
    }

    #[test]
    fn basic_credentials_as_clients_send_them() {
        assert_eq!(parse("Basic YWxpY2U6czNjcmV0"), given("alice", "s3cret"));
        assert_eq!(parse("basic YWxpY2U6czNjcmV0"), given("alice", "s3cret"));
        assert_eq!(parse("BASIC   YWxpY2U6czNjcmV0  "), given("alice", "s3cret"));
        assert_eq!(parse("  Basic\tYWxpY2U6czNjcmV0"), given("alice", "s3cret"));
        assert_eq!(parse("BasicYWxpY2U6czNjcmV0"), given("alice", "s3cret"), "Kong's pattern needs no space");
        assert_eq!(parse("Basic YWxpY2U6"), given("alice", ""));
        assert_eq!(parse("Basic YWxpY2U6YTpi"), given("alice", "a:b"), "the password may hold ':'");
        assert_eq!(parse("Basic YQ"), None, "no ':'");
        assert_eq!(parse("Basic YWxpY2U6czNjcmV0"), parse("Basic YWxpY2U6czNjcmV0"));
        assert_eq!(parse("Basic YWxpY2U6cA"), given("alice", "p"), "unpadded");
        assert_eq!(parse("Basic YWxpY2U6cA=="), given("alice", "p"), "padded");
    }

    #[test]
    fn anything_else_is_no_credentials() {
        for value in [
            "",
            "Basic",
            "Basic ",
            "Bearer YWxpY2U6czNjcmV0",
            "Basic !!!!",
            "Basic YWxpY2U6czNjcmV0 extra",
            "Basic OnB3",
            "Basic /w==",
            "Basic /zpw",
            "Token Basic YWxpY2U6czNjcmV0",
            "Bäsic YWxpY2U6czNjcmV0",
        ] {
            assert_eq!(parse(value), None, "{value:?}");
        }
        assert_eq!(parse(&format!("Basic {}", "A".repeat(MAX_ENCODED + 4))), None);
    }

    const CONSUMER: &str = "5d0bc0ad-0000-4000-8000-000000000001";

    #[test]
    fn stored_passwords_verify() {
        let salt = "0123456789abcdef0123456789abcdef";
        let mut sha = Sha256::new();
        sha.update(salt.as_bytes());
        sha.update(b"s3cret");
        let stored = format!("sha256${salt}${}", hex(&sha.finalize()));
        assert!(verify(&stored, b"s3cret", CONSUMER));
        assert!(!verify(&stored, b"s3cret ", CONSUMER));
        assert!(!verify(&stored, b"", CONSUMER));
        assert!(!verify("s3cret", b"s3cret", CONSUMER), "a clear password is never a stored one");
        assert!(!verify("sha256$x$y", b"s3cret", CONSUMER));
        assert!(!verify(&stored.to_uppercase(), b"s3cret", CONSUMER));
    }

    #[test]
    fn kongs_own_hashes_verify_with_the_consumer_id() {
        // Kong's basic-auth: sha1(password .. consumer_id), hex.
        let mut sha = sha1::Sha1::new();
        sha.update(format!("s3cret{CONSUMER}").as_bytes());
        let kong = hex(&sha.finalize());
        assert!(verify(&kong, b"s3cret", CONSUMER));
        assert!(!verify(&kong, b"s3cret", "another-consumer"));
        assert!(!verify(&kong, kong.as_bytes(), CONSUMER), "the hash itself is not the password");
    }

    #[test]
    fn base64_is_read_as_nginx_reads_it() {
        let given = |value: &str| parse(value).map(|g| (g.username, g.password));
        let alice = Some(("alice".to_string(), b"pw".to_vec()));
        // base64("alice:pw") is YWxpY2U6cHc=; its last character carries two unused bits.
        assert_eq!(given("Basic YWxpY2U6cHc="), alice);
        assert_eq!(given("Basic YWxpY2U6cHc"), alice, "padding is optional");
        assert_eq!(given("Basic YWxpY2U6cHd="), alice, "unused bits that are not zero are ignored");
        assert_eq!(given("Basic YWxpY2U6cHc=anything"), None, "nginx ignores what follows the first =; refused here");
        assert_eq!(given("Basic YWxpY2U6cH"), Some(("alice".to_string(), b"p".to_vec())), "two characters make a byte");
        assert_eq!(given("Basic YWxpY2U6c"), None, "a dangling character is not base64");
        assert_eq!(given("Basic YWxp*2U6cHc="), None);
    }

    proptest! {
        #[test]
        fn hostile_values_never_panic(value in ".{0,300}") {
            let _ = parse(&value);
            let _ = parse(&format!("Basic {value}"));
            let _ = verify(&value, value.as_bytes(), &value);
        }

        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let encoded = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(&bytes));
            if let Some(g) = parse(&encoded) {
                prop_assert!(!g.username.is_empty() && !g.username.contains(':'));
            }
        }

        #[test]
        fn what_a_client_encodes_is_read_back(
            username in "[^:\u{0}]{1,30}",
            password in proptest::collection::vec(any::<u8>(), 0..60),
        ) {
            let g = parse(&encode(&username, &password)).unwrap();
            prop_assert_eq!(g.username, username);
            prop_assert_eq!(g.password, password);
        }
    }
}
