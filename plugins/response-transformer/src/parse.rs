//! The small parsers of this plugin: `name:value` entries, JSON values by `json_types`, media
//! types (is the response JSON?). All take input
//! from the configuration or the upstream; none panics (see the property tests).

use serde_json::Value;

/// Kong's `^([^:]+):*(.-)$`: the name up to the first `:`, the value after every `:` that follows.
pub fn split(entry: &str) -> Option<(&str, &str)> {
    let end = entry.find(':').unwrap_or(entry.len());
    if end == 0 {
        return None;
    }
    Some((&entry[..end], entry[end..].trim_start_matches(':')))
}

/// Kong's `json_types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonType {
    Boolean,
    Number,
    String,
}

/// The JSON text of the value an entry's value stands for: a string, unless its `json_types` says
/// otherwise; `boolean` is `true` for the text `true` and `false` for anything else, `number` is
/// Lua's `tonumber` printed as Kong's cjson prints numbers (`%.14g`: `1e3` is `1000`, not
/// `1000.0`), and `None` if the text is not a number (the entry is then skipped, as in Kong).
pub fn json_text(text: &str, json_type: Option<JsonType>) -> Option<String> {
    match json_type.unwrap_or(JsonType::String) {
        JsonType::String => Some(Value::String(text.to_string()).to_string()),
        JsonType::Boolean => Some((text == "true").to_string()),
        JsonType::Number => number(text).map(|n| {
            let mut text = String::new();
            gateway_pdk::push_lua_number(&mut text, n);
            text
        }),
    }
}

/// Lua's `tonumber` on a string (a double, as every LuaJIT number is): decimal (integer,
/// fraction, exponent) or `0x` hexadecimal, surrounding whitespace allowed; `None` for anything
/// else and for what is not finite.
fn number(text: &str) -> Option<f64> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if let Some(hex) = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        let value = i64::from_str_radix(hex, 16).ok().filter(|_| !hex.starts_with(['+', '-']))?;
        return Some(if negative { -value } else { value } as f64);
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Kong's test for a JSON response: one of the comma-separated media types of `Content-Type` is
/// `application/json` or `application/<anything>+json` (parameters allowed, as RFC 2045 writes
/// them; anything else after the type makes it no media type at all).
pub fn is_json(content_type: &str) -> bool {
    content_type.split(',').any(|part| {
        media_type(part.trim()).is_some_and(|(kind, subtype)| {
            kind.eq_ignore_ascii_case("application")
                && (subtype.eq_ignore_ascii_case("json")
                    || (subtype.len() >= 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json")))
        })
    })
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii() && !b.is_ascii_control() && !b"()<>@,;:\\\"/[]?={} \t".contains(&b)
}

fn token(text: &str) -> (&str, &str) {
    let end = text.bytes().position(|b| !is_token_byte(b)).unwrap_or(text.len());
    text.split_at(end)
}

/// `type/subtype *(;param=value)`, nothing else.
fn media_type(text: &str) -> Option<(&str, &str)> {
    let (kind, rest) = token(text);
    let (subtype, mut rest) = token(rest.strip_prefix('/')?);
    if kind.is_empty() || subtype.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        rest = rest.trim_start_matches([' ', '\t']).strip_prefix(';')?.trim_start_matches([' ', '\t']);
        let (attribute, after) = token(rest);
        if attribute.is_empty() {
            return None;
        }
        let after = after.strip_prefix('=')?;
        rest = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.bytes().position(|b| b == b'"' || (b.is_ascii_control() && b != b'\t'))?;
                quoted[end..].strip_prefix('"')?
            }
            None => {
                let (value, after) = token(after);
                if value.is_empty() {
                    return None;
                }
                after
            }
        };
    }
    Some((kind, subtype))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn entries_split_as_kongs_pattern() {
        assert_eq!(split("a:b"), Some(("a", "b")));
        assert_eq!(split("a::b:c"), Some(("a", "b:c")));
        assert_eq!(split("a"), Some(("a", "")));
        assert_eq!(split(":a"), None);
    }

    #[test]
    fn json_values_by_type() {
        assert_eq!(json_text("v", None).as_deref(), Some("\"v\""));
        assert_eq!(json_text("a\"b/c", Some(JsonType::String)).as_deref(), Some(r#""a\"b/c""#));
        assert_eq!(json_text("true", Some(JsonType::Boolean)).as_deref(), Some("true"));
        assert_eq!(json_text("yes", Some(JsonType::Boolean)).as_deref(), Some("false"));
        for (text, kong) in [
            ("42", "42"),
            (" -1.5e3 ", "-1500"),
            ("1000.0", "1000"),
            ("0x1F", "31"),
            ("-0x10", "-16"),
            ("0.1", "0.1"),
            ("1.25", "1.25"),
            ("3.14159265358979", "3.1415926535898"),
            ("0.0001", "0.0001"),
            ("0.00001", "1e-05"),
            ("99999999999999", "99999999999999"),
            ("100000000000000", "1e+14"),
            ("12345678901234567", "1.2345678901235e+16"),
            ("1e300", "1e+300"),
            ("-0", "-0"),
            ("0", "0"),
        ] {
            assert_eq!(json_text(text, Some(JsonType::Number)).as_deref(), Some(kong), "{text}");
        }
        for not in ["abc", "", "inf", "nan", "1e999", "0x", "--1"] {
            assert_eq!(json_text(not, Some(JsonType::Number)), None, "{not}");
        }
    }

    #[test]
    fn json_media_types_as_kong_reads_them() {
        for yes in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"utf-8\"",
            "application/problem+json",
            "application/+json",
            "text/html, application/json",
            "  application/json  ",
        ] {
            assert!(is_json(yes), "{yes}");
        }
        for no in [
            "",
            "text/json",
            "application/jsonx",
            "application/json;",
            "application/json; charset",
            "application/json x",
            "*",
            "*/*",
            "json",
            "application/json; a=\"unterminated",
        ] {
            assert!(!is_json(no), "{no}");
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic(text in ".{0,80}") {
            let _ = split(&text);
            let _ = is_json(&text);
            let _ = json_text(&text, Some(JsonType::Number));
        }

        #[test]
        fn numbers_print_as_valid_json_within_14_digits(n in any::<f64>().prop_filter("finite", |n| n.is_finite())) {
            let text = json_text(&format!("{n:e}"), Some(JsonType::Number)).unwrap();
            let back: f64 = serde_json::from_str(&text).unwrap();
            prop_assert!((back - n).abs() <= n.abs() * 1e-13, "{n} printed {text}");
        }

        #[test]
        fn integers_below_1e14_print_as_integers(n in -99_999_999_999_999i64..100_000_000_000_000) {
            prop_assert_eq!(json_text(&n.to_string(), Some(JsonType::Number)), Some(n.to_string()));
        }

        #[test]
        fn json_with_parameters(sub in "[a-z]{1,10}", value in "[a-z0-9-]{1,10}") {
            let content_type = format!("application/{sub}+json; charset={value}");
            prop_assert!(is_json(&content_type));
        }
    }
}
