//! Kong's `request-size-limiting` plugin: in `access`, a request whose body is larger than
//! `allowed_payload_size` (in `size_unit`s) gets Kong's 413 error answer "Request size
//! limit exceeded" (417 when the client sent `Expect: 100-continue`). A request with a
//! `Content-Length` is judged by it, before any of the body is read; one without (chunked) has
//! its body read up to the limit and no further. With `require_content_length`, a request that
//! has neither a `Content-Length` nor `Transfer-Encoding: chunked` gets Kong's 411.

use gateway_pdk::{Body, Flow, Phase, Plugin, Request};
use serde::{Deserialize, Serialize};

const TOO_LARGE: &str = "Request size limit exceeded";
const LENGTH_REQUIRED: &str = "A valid Content-Length header is required";

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub allowed_payload_size: u64,
    pub size_unit: SizeUnit,
    pub require_content_length: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config { allowed_payload_size: 128, size_unit: SizeUnit::Megabytes, require_content_length: false }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SizeUnit {
    Megabytes,
    Kilobytes,
    Bytes,
}

impl SizeUnit {
    /// Kong's factors: binary kilo- and megabytes.
    fn bytes(self) -> u64 {
        match self {
            SizeUnit::Bytes => 1,
            SizeUnit::Kilobytes => 1024,
            SizeUnit::Megabytes => 1024 * 1024,
        }
    }
}

pub struct RequestSizeLimiting {
    allowed: u64,
    require_content_length: bool,
}

impl Plugin for RequestSizeLimiting {
    type Config = Config;
    const NAME: &'static str = "request-size-limiting";
    const PRIORITY: i32 = 951;
    const PHASES: &'static [Phase] = &[Phase::Access];

    fn configure(config: Config) -> Result<Self, String> {
        Ok(RequestSizeLimiting {
            allowed: config.allowed_payload_size.saturating_mul(config.size_unit.bytes()),
            require_content_length: config.require_content_length,
        })
    }

    fn access(&self, req: &Request) -> Result<Flow, String> {
        if let Some(length) = req.header("content-length").as_deref().and_then(content_length) {
            return self.judge(req, length);
        }
        if self.require_content_length && req.header("transfer-encoding").as_deref() != Some("chunked") {
            return gateway_pdk::error_answer(req, 411, Some(LENGTH_REQUIRED), []);
        }
        match req.body() {
            // The host reads at most this much (and caps it further), so a body never has to be
            // held whole to learn that it is too large.
            Body::Unread => Ok(Flow::ReadBody(u32::try_from(self.allowed).unwrap_or(u32::MAX))),
            Body::Complete(body) => self.judge(req, body.len() as u64),
            // Longer than what was read: past this limit, or past a smaller one an earlier plugin
            // read it with, and then its real size is unknown. Refused either way.
            Body::TooLarge(_) => self.too_large(req),
        }
    }
}

impl RequestSizeLimiting {
    fn judge(&self, req: &Request, length: u64) -> Result<Flow, String> {
        if length > self.allowed { self.too_large(req) } else { Ok(Flow::Proceed) }
    }

    fn too_large(&self, req: &Request) -> Result<Flow, String> {
        let expects_continue = req.header("expect").is_some_and(|e| e.trim().eq_ignore_ascii_case("100-continue"));
        gateway_pdk::error_answer(req, if expects_continue { 417 } else { 413 }, Some(TOO_LARGE), [])
    }
}

/// A `Content-Length` value: decimal digits, surrounding blanks allowed. Anything else is no
/// length, and the body is measured instead.
pub fn content_length(value: &str) -> Option<u64> {
    let digits = value.trim_matches([' ', '\t']);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

gateway_pdk::plugin!(RequestSizeLimiting);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_pdk::config;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn check(json: &str) -> Result<Value, Vec<(String, String)>> {
        config::check::<Config>(json, |_| Vec::new())
            .map(|filled| serde_json::from_str(&filled).unwrap())
            .map_err(|errors| errors.into_iter().map(|e| (e.path, e.message)).collect())
    }

    #[test]
    fn kongs_schema() {
        assert_eq!(
            check("{}").unwrap(),
            json!({"allowed_payload_size": 128, "size_unit": "megabytes", "require_content_length": false})
        );
        assert!(check(r#"{"allowed_payload_size": 10, "size_unit": "kilobytes"}"#).is_ok());
        assert_eq!(
            check(r#"{"size_unit": "gigabytes"}"#).unwrap_err(),
            [("size_unit".to_string(), "expected one of: megabytes, kilobytes, bytes".to_string())]
        );
        assert_eq!(check(r#"{"allowed_payload_size": -1}"#).unwrap_err()[0].0, "allowed_payload_size");
        assert_eq!(check(r#"{"allowed_payload_size": 1.5}"#).unwrap_err()[0].1, "expected an integer");
        assert_eq!(check(r#"{"require_content_length": "yes"}"#).unwrap_err()[0].0, "require_content_length");
    }

    #[test]
    fn units_are_binary() {
        let limit = |json: &str| RequestSizeLimiting::configure(config::parse(json).unwrap()).unwrap().allowed;
        assert_eq!(limit("{}"), 128 * 1024 * 1024);
        assert_eq!(limit(r#"{"allowed_payload_size": 3, "size_unit": "kilobytes"}"#), 3072);
        assert_eq!(limit(r#"{"allowed_payload_size": 3, "size_unit": "bytes"}"#), 3);
        assert_eq!(limit(r#"{"allowed_payload_size": 18446744073709551615}"#), u64::MAX);
    }

    #[test]
    fn content_lengths() {
        assert_eq!(content_length("0"), Some(0));
        assert_eq!(content_length(" 42 "), Some(42));
        for bad in ["", " ", "-1", "+1", "1e3", "0x10", "1 2", "99999999999999999999999"] {
            assert_eq!(content_length(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn content_length_reads_exactly_the_decimals(n in any::<u64>(), pad in "[ \t]{0,2}") {
            prop_assert_eq!(content_length(&format!("{pad}{n}{pad}")), Some(n));
        }

        #[test]
        fn only_plain_decimals_are_lengths(value in "[ \t0-9a-f+-]{0,24}") {
            let digits = value.trim_matches([' ', '\t']);
            let plain = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
            prop_assert_eq!(content_length(&value).is_some(), plain && digits.parse::<u64>().is_ok());
        }
    }
}
