//! Where a JWT is found in a request and what it says, as Kong's `jwt` plugin reads it: the query
//! arguments, cookies and headers it is configured to look in (a header holds `Bearer <token>`),
//! and the token split into its header, claims and signature. Everything here takes client input:
//! sizes are bounded and nothing panics (see the property tests).

use std::fmt;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

/// The longest token read; a longer one is refused before it is decoded.
pub const MAX_TOKEN: usize = 64 * 1024;
/// Query arguments read at most (nginx's `lua_max_uri_args`, which Kong reads them with).
pub const MAX_QUERY_ARGS: usize = 100;

/// base64url as Kong decodes it: padding optional, stray low bits ignored.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The signature algorithms Kong's parser knows. A token naming another is a bad token; one
/// naming a known algorithm this plugin does not verify can only fail the comparison with its
/// secret's algorithm, since secrets cannot name those (the host refuses them).
const KNOWN_ALGORITHMS: [&str; 13] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA",
];

/// One token value found in the request. A query argument given without `=` (`?jwt`) is Kong's
/// boolean `true`, which it reports as an unrecognizable token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Text(String),
    Flag,
}

/// What the request carries: no token, one, or several different ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tokens {
    None,
    One(Found),
    Many,
}

/// Collects distinct tokens, as Kong's set does.
#[derive(Default)]
pub struct Collector(Vec<Found>);

impl Collector {
    pub fn add(&mut self, found: Found) {
        // Two distinct tokens already settle the answer: no need to keep more.
        if self.0.len() < 2 && !self.0.contains(&found) {
            self.0.push(found);
        }
    }

    pub fn finish(mut self) -> Tokens {
        match self.0.len() {
            0 => Tokens::None,
            1 => Tokens::One(self.0.remove(0)),
            _ => Tokens::Many,
        }
    }
}

/// The values of the query arguments named in `names` (decoded; empty ones skipped), from the
/// first [`MAX_QUERY_ARGS`] arguments of `raw`.
pub fn from_query(raw: &str, names: &[String], into: &mut Collector) {
    for pair in raw.split('&').filter(|pair| !pair.is_empty()).take(MAX_QUERY_ARGS) {
        let Some((name, value)) = form_urlencoded::parse(pair.as_bytes()).next() else { continue };
        if !names.iter().any(|n| *n == name) {
            continue;
        }
        if !pair.contains('=') {
            into.add(Found::Flag);
        } else if !value.is_empty() {
            into.add(Found::Text(value.into_owned()));
        }
    }
}

/// The value of the first cookie called `name` (any case, as nginx's `$cookie_` matches) in
/// `Cookie` header values.
pub fn cookie<'a>(headers: &'a [String], name: &str) -> Option<&'a str> {
    headers.iter().flat_map(|h| h.split(';')).find_map(|pair| {
        let (n, v) = pair.split_once('=')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// PCRE's `\s`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// What Kong's `\s*[Bb]earer\s+(.+)` captures in a header value (unanchored: the first place it
/// matches). When only whitespace follows the word, the pattern backtracks and captures the last
/// whitespace character, which then fails to decode as a token, as in Kong.
pub fn bearer(value: &str) -> Option<&str> {
    let bytes = value.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if !matches!(b, b'B' | b'b') || !bytes[i + 1..].starts_with(b"earer") {
            continue;
        }
        let rest = &value[i + 6..];
        let spaces = rest.bytes().take_while(|b| is_space(*b)).count();
        if spaces == 0 {
            continue;
        }
        if spaces < rest.len() {
            return Some(&rest[spaces..]);
        }
        if spaces >= 2 {
            return Some(&rest[spaces - 1..]);
        }
    }
    None
}

/// Why a token does not decode: Kong's words after "Bad token; ".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadToken {
    InvalidJson,
    InvalidAlg,
    InvalidClaims,
    InvalidSignature,
    TooLarge,
}

impl fmt::Display for BadToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadToken::InvalidJson => "invalid JSON",
            BadToken::InvalidAlg => "invalid alg",
            BadToken::InvalidClaims => "invalid claims",
            BadToken::InvalidSignature => "invalid signature",
            BadToken::TooLarge => "too large",
        })
    }
}

/// A decoded token; its signature is not yet verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Jwt<'a> {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    /// The header's `alg`, one Kong knows.
    pub alg: String,
    /// `header.claims` as sent: what the signature signs.
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
}

impl<'a> Jwt<'a> {
    /// Decodes `token` as Kong's parser does, with its errors in its order: the header and claims
    /// must be base64url JSON (else "invalid JSON"), the header must name a known `alg`, the
    /// claims must be an object, the signature must be base64url.
    pub fn decode(token: &'a str) -> Result<Jwt<'a>, BadToken> {
        if token.len() > MAX_TOKEN {
            return Err(BadToken::TooLarge);
        }
        let mut parts = token.splitn(3, '.');
        let (Some(header_64), Some(claims_64), Some(signature_64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(BadToken::InvalidJson);
        };
        let json = |part: &str| -> Result<Value, BadToken> {
            let bytes = BASE64URL.decode(part).map_err(|_| BadToken::InvalidJson)?;
            serde_json::from_slice(&bytes).map_err(|_| BadToken::InvalidJson)
        };
        let header = json(header_64)?;
        let claims = json(claims_64)?;
        let signature = BASE64URL.decode(signature_64).ok();
        let Value::Object(header) = header else { return Err(BadToken::InvalidAlg) };
        let alg = match header.get("alg") {
            Some(Value::String(alg)) if KNOWN_ALGORITHMS.contains(&alg.as_str()) => alg.clone(),
            _ => return Err(BadToken::InvalidAlg),
        };
        let Value::Object(claims) = claims else { return Err(BadToken::InvalidClaims) };
        let signature = signature.ok_or(BadToken::InvalidSignature)?;
        let signing_input = &token[..header_64.len() + 1 + claims_64.len()];
        Ok(Jwt { header, claims, alg, signing_input, signature })
    }
}

/// base64url, as Kong decodes a `secret_is_base64` secret.
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    BASE64URL.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn token(header: &Value, claims: &Value, signature: &[u8]) -> String {
        format!("{}.{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()), b64(signature))
    }

    #[test]
    fn bearer_as_kongs_pattern() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer   abc def"), Some("abc def"));
        assert_eq!(bearer("  Bearer\tabc"), Some("abc"));
        assert_eq!(bearer("Token x, Bearer abc"), Some("abc"), "unanchored");
        assert_eq!(bearer("Bearerabc"), None);
        assert_eq!(bearer("Bearerx Bearer abc"), Some("abc"), "the first place it matches");
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer   "), Some(" "), "backtracks onto the last space");
        assert_eq!(bearer("BEARER abc"), None, "only the first letter's case varies");
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer(""), None);
        assert_eq!(bearer("Bearé Bearer x"), Some("x"));
    }

    #[test]
    fn query_values_as_kong_reads_them() {
        let names = vec!["jwt".to_string(), "token".to_string()];
        let found = |raw: &str| {
            let mut c = Collector::default();
            from_query(raw, &names, &mut c);
            c.finish()
        };
        assert_eq!(found(""), Tokens::None);
        assert_eq!(found("jwt=a.b.c"), Tokens::One(Found::Text("a.b.c".into())));
        assert_eq!(found("jwt=a%2Bb+c"), Tokens::One(Found::Text("a+b c".into())));
        assert_eq!(found("jwt="), Tokens::None);
        assert_eq!(found("jwt"), Tokens::One(Found::Flag));
        assert_eq!(found("jwt=x&token=x"), Tokens::One(Found::Text("x".into())), "a set");
        assert_eq!(found("jwt=x&jwt=y"), Tokens::Many);
        assert_eq!(found("other=x"), Tokens::None);
        let late = format!("{}&jwt=x", vec!["a=1"; MAX_QUERY_ARGS].join("&"));
        assert_eq!(found(&late), Tokens::None, "beyond the argument limit");
    }

    #[test]
    fn cookies() {
        let headers = vec!["a=1; JWT=tok ; b=2".to_string(), "jwt=second".to_string()];
        assert_eq!(cookie(&headers, "jwt"), Some("tok"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);
        assert_eq!(cookie(&[], "jwt"), None);
    }

    #[test]
    fn decoding_errors_in_kongs_order() {
        let good = token(&json!({"alg": "HS256", "typ": "JWT"}), &json!({"iss": "k"}), b"sig");
        let jwt = Jwt::decode(&good).unwrap();
        assert_eq!(jwt.alg, "HS256");
        assert_eq!(jwt.claims["iss"], "k");
        assert_eq!(jwt.signature, b"sig");
        assert_eq!(jwt.signing_input, good.rsplit_once('.').unwrap().0);

        assert_eq!(Jwt::decode("abc"), Err(BadToken::InvalidJson));
        assert_eq!(Jwt::decode("a.b"), Err(BadToken::InvalidJson));
        assert_eq!(Jwt::decode(""), Err(BadToken::InvalidJson));
        let no_json = format!("{}.{}.", b64(b"not json"), b64(b"{}"));
        assert_eq!(Jwt::decode(&no_json), Err(BadToken::InvalidJson));
        let none = token(&json!({"alg": "none"}), &json!({}), b"");
        assert_eq!(Jwt::decode(&none), Err(BadToken::InvalidAlg));
        let no_alg = token(&json!({"typ": "JWT"}), &json!({}), b"");
        assert_eq!(Jwt::decode(&no_alg), Err(BadToken::InvalidAlg));
        let array_header = token(&json!(["HS256"]), &json!({}), b"");
        assert_eq!(Jwt::decode(&array_header), Err(BadToken::InvalidAlg));
        let scalar_claims = token(&json!({"alg": "HS256"}), &json!(5), b"");
        assert_eq!(Jwt::decode(&scalar_claims), Err(BadToken::InvalidClaims));
        let bad_sig = format!("{}!!", token(&json!({"alg": "HS256"}), &json!({}), b""));
        assert_eq!(Jwt::decode(&bad_sig), Err(BadToken::InvalidSignature));
        let dotted_sig = format!("{}.x", token(&json!({"alg": "HS256"}), &json!({}), b"ab"));
        assert_eq!(Jwt::decode(&dotted_sig), Err(BadToken::InvalidSignature), "a fourth part stays in the signature");
        let padded = format!(
            "{}.{}.{}",
            base64::engine::general_purpose::URL_SAFE.encode(br#"{"alg":"RS256"}"#),
            base64::engine::general_purpose::URL_SAFE.encode(b"{}"),
            base64::engine::general_purpose::URL_SAFE.encode(b"s")
        );
        assert_eq!(Jwt::decode(&padded).unwrap().alg, "RS256", "padding is optional");
        let huge = "a".repeat(MAX_TOKEN + 1);
        assert_eq!(Jwt::decode(&huge), Err(BadToken::TooLarge));
        let unsupported = token(&json!({"alg": "PS256"}), &json!({}), b"");
        assert_eq!(Jwt::decode(&unsupported).unwrap().alg, "PS256", "known to Kong: fails later, on the secret");
    }

    #[test]
    fn base64_secrets() {
        assert_eq!(base64url_decode("c2VjcmV0"), Some(b"secret".to_vec()));
        assert_eq!(base64url_decode("c2VjcmV0Lw"), Some(b"secret/".to_vec()));
        assert_eq!(base64url_decode("not base64!"), None);
    }

    proptest! {
        #[test]
        fn decode_never_panics(text in ".{0,300}") {
            let _ = Jwt::decode(&text);
        }

        #[test]
        fn decode_never_panics_on_dotted_base64(parts in proptest::collection::vec("[A-Za-z0-9_=-]{0,40}", 0..5)) {
            let _ = Jwt::decode(&parts.join("."));
        }

        #[test]
        fn decode_reads_back_what_was_encoded(
            alg in proptest::sample::select(KNOWN_ALGORITHMS.to_vec()),
            iss in ".{0,40}",
            exp in proptest::num::i64::ANY,
            signature in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let claims = json!({"iss": iss, "exp": exp});
            let text = token(&json!({"alg": alg, "typ": "JWT"}), &claims, &signature);
            let jwt = Jwt::decode(&text).unwrap();
            prop_assert_eq!(jwt.alg, alg);
            prop_assert_eq!(Value::Object(jwt.claims), claims);
            prop_assert_eq!(jwt.signature, signature);
        }

        #[test]
        fn bearer_captures_a_nonempty_suffix(value in ".{0,80}") {
            if let Some(token) = bearer(&value) {
                prop_assert!(!token.is_empty());
                prop_assert!(value.ends_with(token));
            }
        }

        #[test]
        fn bearer_finds_the_token_after_the_word(prefix in "[a-z ]{0,10}", token in "[A-Za-z0-9._-]{1,40}") {
            let value = format!("{prefix} Bearer {token}");
            let expected = if prefix.contains("bearer ") { None } else { Some(token.as_str()) };
            if let Some(expected) = expected {
                prop_assert_eq!(bearer(&value), Some(expected));
            }
        }

        #[test]
        fn query_and_cookie_parsing_never_panic(raw in ".{0,200}") {
            let mut c = Collector::default();
            from_query(&raw, &["jwt".to_string()], &mut c);
            let _ = c.finish();
            let _ = cookie(std::slice::from_ref(&raw), "jwt");
        }
    }
}
