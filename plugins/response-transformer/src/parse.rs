//! The small parsers of this plugin: `name:value` entries, JSON values by `json_types`, media
//! types (is the response JSON?). All take input
//! from the configuration or the upstream; none panics (see the property tests).

use serde_json::{Number, Value};

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

/// The JSON value an entry's value stands for: a string, unless its `json_types` says otherwise;
/// `boolean` is `true` for the text `true` and `false` for anything else, `number` is Lua's
/// `tonumber` (`None` if the text is not a number: the entry is then skipped, as in Kong).
pub fn json_value(text: &str, json_type: Option<JsonType>) -> Option<Value> {
    match json_type.unwrap_or(JsonType::String) {
        JsonType::String => Some(Value::String(text.to_string())),
        JsonType::Boolean => Some(Value::Bool(text == "true")),
        JsonType::Number => number(text).map(Value::Number),
    }
}

/// Lua's `tonumber` on a string: decimal (integer, fraction, exponent) or `0x` hexadecimal,
/// surrounding whitespace allowed.
fn number(text: &str) -> Option<Number> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if let Some(hex) = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        let value = i64::from_str_radix(hex, 16).ok().filter(|_| !hex.starts_with(['+', '-']))?;
        return Some(Number::from(if negative { -value } else { value }));
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    if let Ok(integer) = text.parse::<i64>() {
        return Some(Number::from(integer));
    }
    text.parse::<f64>().ok().and_then(Number::from_f64)
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
    use serde_json::json;

    #[test]
    fn entries_split_as_kongs_pattern() {
        assert_eq!(split("a:b"), Some(("a", "b")));
        assert_eq!(split("a::b:c"), Some(("a", "b:c")));
        assert_eq!(split("a"), Some(("a", "")));
        assert_eq!(split(":a"), None);
    }

    #[test]
    fn json_values_by_type() {
        assert_eq!(json_value("v", None), Some(json!("v")));
        assert_eq!(json_value("a\"b/c", Some(JsonType::String)), Some(json!("a\"b/c")));
        assert_eq!(json_value("true", Some(JsonType::Boolean)), Some(json!(true)));
        assert_eq!(json_value("yes", Some(JsonType::Boolean)), Some(json!(false)));
        assert_eq!(json_value("42", Some(JsonType::Number)), Some(json!(42)));
        assert_eq!(json_value(" -1.5e3 ", Some(JsonType::Number)), Some(json!(-1500.0)));
        assert_eq!(json_value("0x1F", Some(JsonType::Number)), Some(json!(31)));
        assert_eq!(json_value("-0x10", Some(JsonType::Number)), Some(json!(-16)));
        assert_eq!(json_value("abc", Some(JsonType::Number)), None);
        assert_eq!(json_value("", Some(JsonType::Number)), None);
        assert_eq!(json_value("inf", Some(JsonType::Number)), None);
        assert_eq!(json_value("1e999", Some(JsonType::Number)), None);
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
            let _ = json_value(&text, Some(JsonType::Number));
        }

        #[test]
        fn numbers_read_back(n in any::<i64>()) {
            prop_assert_eq!(json_value(&n.to_string(), Some(JsonType::Number)), Some(json!(n)));
        }

        #[test]
        fn json_with_parameters(sub in "[a-z]{1,10}", value in "[a-z0-9-]{1,10}") {
            let content_type = format!("application/{sub}+json; charset={value}");
            prop_assert!(is_json(&content_type));
        }
    }
}
