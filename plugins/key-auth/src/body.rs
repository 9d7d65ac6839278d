//! The request body as Kong's `key_in_body` reads it (`kong.request.get_body`): by its
//! `Content-Type`, `application/x-www-form-urlencoded` fields, the members of a JSON object, or
//! `multipart/form-data` parts; and the body with one field taken out for `hide_credentials`,
//! everything else left as sent (Kong re-encodes the whole body instead).
//!
//! The body is the client's: nothing here panics or allocates beyond a small multiple of it,
//! whatever it holds. A body that does not parse has no fields, as in Kong.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::Found;

/// Form fields read at most (Kong reads them with `ngx.req.get_post_args`, whose default is 100).
pub const MAX_FORM_ARGS: usize = 100;
/// The longest multipart boundary RFC 2046 allows.
const MAX_BOUNDARY: usize = 70;

/// The body formats Kong reads fields from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Form,
    Json,
    Multipart { boundary: String },
}

impl Format {
    /// The format a `Content-Type` names, as Kong matches it: the media type (before any `;`),
    /// case-insensitive, starting with one Kong reads; a multipart type needs its boundary.
    pub fn of(content_type: &str) -> Option<Format> {
        let lower = content_type.to_ascii_lowercase();
        let media = lower.split(';').next().unwrap_or_default();
        if media.starts_with("application/x-www-form-urlencoded") {
            Some(Format::Form)
        } else if media.starts_with("application/json") {
            Some(Format::Json)
        } else if media.starts_with("multipart/form-data") {
            let boundary = param(content_type, "boundary")?;
            (!boundary.is_empty() && boundary.len() <= MAX_BOUNDARY).then_some(Format::Multipart { boundary })
        } else {
            None
        }
    }

    /// What `body` holds under `name`.
    pub fn find(&self, body: &[u8], name: &str) -> Found {
        match self {
            Format::Form => form_fields(body)
                .take(MAX_FORM_ARGS)
                .filter(|f| f.name == name)
                .map(|f| f.found)
                .fold(Found::Absent, Found::and),
            Format::Json => match json_members(body) {
                Some(members) => {
                    members.iter().filter(|m| m.0 == name).map(|m| json_found(m.1)).fold(Found::Absent, Found::and)
                }
                None => Found::Absent,
            },
            Format::Multipart { boundary } => match multipart_parts(body, boundary) {
                Some(parts) => parts
                    .iter()
                    .filter(|p| p.name.as_deref() == Some(name))
                    .map(|p| p.found())
                    .fold(Found::Absent, Found::and),
                None => Found::Absent,
            },
        }
    }

    /// `body` without field `name`, or `None` if it has no such field (or does not parse).
    pub fn strip(&self, body: &[u8], name: &str) -> Option<Vec<u8>> {
        match self {
            Format::Form => {
                let mut removed = false;
                let kept: Vec<&[u8]> = form_fields(body)
                    .filter(|f| {
                        let hit = f.name == name;
                        removed |= hit;
                        !hit
                    })
                    .map(|f| f.raw)
                    .collect();
                removed.then(|| kept.join(&b'&'))
            }
            Format::Json => {
                let members = json_members(body)?;
                if !members.iter().any(|m| m.0 == name) {
                    return None;
                }
                let mut out = Vec::with_capacity(body.len());
                out.push(b'{');
                for (key, value) in members.iter().filter(|m| m.0 != name) {
                    if out.len() > 1 {
                        out.push(b',');
                    }
                    out.extend_from_slice(serde_json::to_string(key).ok()?.as_bytes());
                    out.push(b':');
                    out.extend_from_slice(value.get().as_bytes());
                }
                out.push(b'}');
                Some(out)
            }
            Format::Multipart { boundary } => {
                let parts = multipart_parts(body, boundary)?;
                if !parts.iter().any(|p| p.name.as_deref() == Some(name)) {
                    return None;
                }
                let mut out = Vec::with_capacity(body.len());
                let mut at = 0;
                for part in parts.iter().filter(|p| p.name.as_deref() == Some(name)) {
                    out.extend_from_slice(&body[at..part.span.0]);
                    at = part.span.1;
                }
                out.extend_from_slice(&body[at..]);
                Some(out)
            }
        }
    }
}

/// One `name=value` pair of a form body.
struct FormField<'a> {
    name: String,
    found: Found,
    raw: &'a [u8],
}

fn form_fields(body: &[u8]) -> impl Iterator<Item = FormField<'_>> {
    body.split(|b| *b == b'&').filter(|raw| !raw.is_empty()).map(|raw| {
        let (name, value) = match raw.iter().position(|b| *b == b'=') {
            Some(at) => (&raw[..at], Some(&raw[at + 1..])),
            None => (raw, None),
        };
        let found = match value {
            Some(value) => Found::Key(decode(value)),
            None => Found::Ignored,
        };
        FormField { name: decode(name), found, raw }
    })
}

fn decode(part: &[u8]) -> String {
    let mut pair = Vec::with_capacity(part.len() + 2);
    pair.extend_from_slice(b"x=");
    pair.extend_from_slice(part);
    form_urlencoded::parse(&pair).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// The members of a JSON object body, in order and with their values as sent; `None` if the body
/// is not a JSON object (Kong finds no fields in an array or anything else).
fn json_members(body: &[u8]) -> Option<Vec<(String, &RawValue)>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut de = serde_json::Deserializer::from_str(text);
    let members = de.deserialize_map(Members).ok()?;
    de.end().ok()?;
    Some(members)
}

struct Members;

impl<'de> Visitor<'de> for Members {
    type Value = Vec<(String, &'de RawValue)>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry::<String, &'de RawValue>()? {
            members.push(member);
        }
        Ok(members)
    }
}

/// A JSON member as Kong's key-auth sees it: a string is a key, an array or object a duplicate
/// (Kong's "table"), anything else is passed over.
fn json_found(value: &RawValue) -> Found {
    match value.get().as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(value.get()).map_or(Found::Ignored, Found::Key),
        Some(b'[' | b'{') => Found::Duplicate,
        _ => Found::Ignored,
    }
}

/// One part of a multipart body: its form field name, its content, and the bytes it spans from its
/// delimiter up to the next one (what to cut to remove it).
struct Part<'a> {
    name: Option<String>,
    content: &'a [u8],
    span: (usize, usize),
}

impl Part<'_> {
    fn found(&self) -> Found {
        std::str::from_utf8(self.content).map_or(Found::Ignored, |s| Found::Key(s.to_string()))
    }
}

/// The parts of a multipart body (RFC 2046), or `None` if it is not one: no delimiter, a part
/// without its header block, or no closing delimiter.
fn multipart_parts<'a>(body: &'a [u8], boundary: &str) -> Option<Vec<Part<'a>>> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut starts = Vec::new();
    let mut at = 0;
    let closed = loop {
        let start = next_delimiter(body, delimiter, at)?;
        let after = start + delimiter.len();
        if body[after..].starts_with(b"--") {
            starts.push(start);
            break true;
        }
        let line = after + body[after..].iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
        if body[line..].starts_with(b"\r\n") {
            starts.push(start);
            at = line + 2;
        } else {
            at = after;
        }
    };
    if !closed {
        return None;
    }
    let mut parts = Vec::with_capacity(starts.len().saturating_sub(1));
    for pair in starts.windows(2) {
        let (start, next) = (pair[0], pair[1]);
        let line_end = start + find(&body[start..next], b"\r\n")? + 2;
        // The part ends before the CRLF that belongs to the next delimiter.
        let part = body.get(line_end..next.checked_sub(2)?)?;
        let (headers, content) = if part.starts_with(b"\r\n") {
            (&part[..0], &part[2..])
        } else {
            let split = find(part, b"\r\n\r\n")?;
            (&part[..split], &part[split + 4..])
        };
        parts.push(Part { name: disposition_name(headers), content, span: (start, next) });
    }
    Some(parts)
}

/// Where the next delimiter starts at or after `from`: at the very start of the body, or after a
/// CRLF.
fn next_delimiter(body: &[u8], delimiter: &[u8], from: usize) -> Option<usize> {
    if from == 0 && body.starts_with(delimiter) {
        return Some(0);
    }
    let mut at = from;
    loop {
        let crlf = at + find(body.get(at..)?, b"\r\n")?;
        if body[crlf + 2..].starts_with(delimiter) {
            return Some(crlf + 2);
        }
        at = crlf + 2;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The `name` of a part's `Content-Disposition: form-data; name="..."` header.
fn disposition_name(headers: &[u8]) -> Option<String> {
    let headers = std::str::from_utf8(headers).ok()?;
    headers.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("content-disposition") {
            return None;
        }
        let (kind, _) = value.split_once(';').unwrap_or((value, ""));
        if !kind.trim().eq_ignore_ascii_case("form-data") {
            return None;
        }
        param(value, "name")
    })
}

/// Parameter `wanted` of a header value (`type; a=b; c="d e"`), unquoted, case-insensitive by name.
pub fn param(value: &str, wanted: &str) -> Option<String> {
    let mut rest = value.split_once(';')?.1;
    loop {
        let (name, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (found, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => out.push(c),
                }
            }
            let after_quote = &quoted[end?..];
            (out, after_quote.split_once(';').map_or("", |(_, next)| next))
        } else {
            let (token, next) = after.split_once(';').unwrap_or((after, ""));
            (token.trim().to_string(), next)
        };
        if name.trim().eq_ignore_ascii_case(wanted) {
            return Some(found);
        }
        if next.is_empty() {
            return None;
        }
        rest = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn multipart(boundary: &str, parts: &[(&str, &str)]) -> Vec<u8> {
        let mut body = String::new();
        for (name, value) in parts {
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str(&format!("--{boundary}--\r\n"));
        body.into_bytes()
    }

    fn mp(boundary: &str) -> Format {
        Format::Multipart { boundary: boundary.into() }
    }

    #[test]
    fn formats_by_content_type_as_kong_matches_them() {
        assert_eq!(Format::of("application/x-www-form-urlencoded"), Some(Format::Form));
        assert_eq!(Format::of("Application/JSON; charset=utf-8"), Some(Format::Json));
        assert_eq!(Format::of("multipart/form-data; boundary=xyz"), Some(mp("xyz")));
        assert_eq!(Format::of("multipart/form-data; charset=x; BOUNDARY=\"a b;c\""), Some(mp("a b;c")));
        assert_eq!(Format::of("multipart/form-data"), None, "no boundary");
        assert_eq!(Format::of(&format!("multipart/form-data; boundary={}", "b".repeat(71))), None);
        assert_eq!(Format::of("text/plain"), None);
        assert_eq!(Format::of("application/problem+json"), None);
        assert_eq!(Format::of(""), None);
    }

    #[test]
    fn form_fields_as_kong_reads_them() {
        let f = Format::Form;
        assert_eq!(f.find(b"a=1&apikey=k%201", "apikey"), Found::Key("k 1".into()));
        assert_eq!(f.find(b"apikey", "apikey"), Found::Ignored);
        assert_eq!(f.find(b"apikey=1&apikey=2", "apikey"), Found::Duplicate);
        assert_eq!(f.find(b"", "apikey"), Found::Absent);
        assert_eq!(f.strip(b"a=1&apikey=k&b=%20", "apikey"), Some(b"a=1&b=%20".to_vec()));
        assert_eq!(f.strip(b"a=1", "apikey"), None);
    }

    #[test]
    fn json_members_as_kong_reads_them() {
        let j = Format::Json;
        assert_eq!(j.find(br#"{"apikey":"k1","n":1}"#, "apikey"), Found::Key("k1".into()));
        assert_eq!(j.find(br#"{"apikey":"k\u00e9"}"#, "apikey"), Found::Key("ké".into()));
        assert_eq!(j.find(br#"{"apikey":123}"#, "apikey"), Found::Ignored);
        assert_eq!(j.find(br#"{"apikey":null}"#, "apikey"), Found::Ignored);
        assert_eq!(j.find(br#"{"apikey":["a"]}"#, "apikey"), Found::Duplicate);
        assert_eq!(j.find(br#"{"apikey":{}}"#, "apikey"), Found::Duplicate);
        assert_eq!(j.find(br#"{"apikey":"a","apikey":"b"}"#, "apikey"), Found::Duplicate);
        assert_eq!(j.find(br#"["apikey"]"#, "apikey"), Found::Absent);
        assert_eq!(j.find(br#"{"apikey":"k1""#, "apikey"), Found::Absent);
        assert_eq!(j.find(br#"{"apikey":"k1"} x"#, "apikey"), Found::Absent);
        assert_eq!(j.find(b"\xff", "apikey"), Found::Absent);
        // Nesting is skipped over without recursion: any depth a bounded body holds is fine.
        let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
        assert_eq!(j.find(format!(r#"{{"a":{deep},"apikey":"k"}}"#).as_bytes(), "apikey"), Found::Key("k".into()));
    }

    #[test]
    fn json_stripping_keeps_the_other_members_as_sent() {
        let j = Format::Json;
        let body = br#" { "a" : 1.50000000000000000001 , "apikey":"k", "b": {"c": [1, 2]} } "#;
        assert_eq!(j.strip(body, "apikey").unwrap(), br#"{"a":1.50000000000000000001,"b":{"c": [1, 2]}}"#);
        assert_eq!(j.strip(br#"{"apikey":"k"}"#, "apikey").unwrap(), b"{}");
        assert_eq!(j.strip(br#"{"a":"k"}"#, "apikey"), None);
    }

    #[test]
    fn multipart_parts_as_kong_reads_them() {
        let body = multipart("XyZ", &[("a", "1"), ("apikey", "k1"), ("c", "x\r\ny")]);
        assert_eq!(mp("XyZ").find(&body, "apikey"), Found::Key("k1".into()));
        assert_eq!(mp("XyZ").find(&body, "c"), Found::Key("x\r\ny".into()));
        assert_eq!(mp("other").find(&body, "apikey"), Found::Absent);
        let twice = multipart("b", &[("apikey", "1"), ("apikey", "2")]);
        assert_eq!(mp("b").find(&twice, "apikey"), Found::Duplicate);
        let unclosed = b"--b\r\nContent-Disposition: form-data; name=\"apikey\"\r\n\r\nk\r\n";
        assert_eq!(mp("b").find(unclosed, "apikey"), Found::Absent);
        let with_preamble = [b"preamble\r\n".as_slice(), &multipart("b", &[("apikey", "k")])].concat();
        assert_eq!(mp("b").find(&with_preamble, "apikey"), Found::Key("k".into()));
        let file = b"--b\r\ncontent-disposition: form-data; filename=\"apikey\"; name=apikey\r\nContent-Type: text/plain\r\n\r\nk\r\n--b--";
        assert_eq!(mp("b").find(file, "apikey"), Found::Key("k".into()));
        let not_named = b"--b\r\nContent-Disposition: form-data; filename=\"apikey\"\r\n\r\nk\r\n--b--";
        assert_eq!(mp("b").find(not_named, "apikey"), Found::Absent);
        let binary = b"--b\r\nContent-Disposition: form-data; name=\"apikey\"\r\n\r\n\xff\r\n--b--";
        assert_eq!(mp("b").find(binary, "apikey"), Found::Ignored);
    }

    #[test]
    fn multipart_stripping_cuts_only_that_part() {
        let body = multipart("b", &[("a", "1"), ("apikey", "k1"), ("c", "3")]);
        let stripped = mp("b").strip(&body, "apikey").unwrap();
        assert_eq!(stripped, multipart("b", &[("a", "1"), ("c", "3")]));
        let first = multipart("b", &[("apikey", "k1"), ("c", "3")]);
        assert_eq!(mp("b").strip(&first, "apikey").unwrap(), multipart("b", &[("c", "3")]));
        assert_eq!(mp("b").strip(&body, "zzz"), None);
    }

    #[test]
    fn header_parameters() {
        assert_eq!(param("form-data; name=\"a\\\"b\"", "name").as_deref(), Some("a\"b"));
        assert_eq!(param("form-data; filename=\"x\"; name=y", "name").as_deref(), Some("y"));
        assert_eq!(param("form-data; filename=\"x;name=z\"", "name"), None);
        assert_eq!(param("form-data; name=\"unterminated", "name"), None);
        assert_eq!(param("form-data", "name"), None);
    }

    fn format() -> impl Strategy<Value = Format> {
        prop_oneof![Just(Format::Form), Just(Format::Json), "[a-zA-Z0-9'()+_,./:=?-]{1,70}".prop_map(|b| mp(&b))]
    }

    proptest! {
        #[test]
        fn hostile_bodies_never_panic(format in format(), body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = format.find(&body, "apikey");
            if let Some(stripped) = format.strip(&body, "apikey") {
                prop_assert_eq!(format.find(&stripped, "apikey"), Found::Absent);
            }
        }

        #[test]
        fn hostile_multipart_never_panics(body in "(--b|\r\n|Content-Disposition: form-data; name=\"apikey\"|k|--|\"|;| )*") {
            let f = mp("b");
            let _ = f.find(body.as_bytes(), "apikey");
            if let Some(stripped) = f.strip(body.as_bytes(), "apikey") {
                prop_assert_eq!(f.find(&stripped, "apikey"), Found::Absent);
            }
        }

        #[test]
        fn hostile_content_types_never_panic(ct in ".{0,100}") {
            let _ = Format::of(&ct);
        }

        #[test]
        fn a_key_is_found_and_stripped_in_every_format(
            others in proptest::collection::btree_map("[b-z][a-z]{0,5}", "[ -~]{0,10}", 0..5),
            key in "[ -~]{1,20}",
            boundary in "[a-zA-Z0-9]{1,70}",
        ) {
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let mut form: Vec<String> = others.iter().map(|(n, v)| format!("{n}={}", enc(v))).collect();
            let form_without = form.join("&");
            form.push(format!("apikey={}", enc(&key)));
            let mut json = serde_json::Map::new();
            for (n, v) in &others {
                json.insert(n.clone(), v.clone().into());
            }
            let json_without = serde_json::Value::Object(json.clone());
            json.insert("apikey".into(), key.clone().into());
            let mut parts: Vec<(&str, &str)> = others.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let parts_without = multipart(&boundary, &parts);
            parts.push(("apikey", &key));
            let cases = [
                (Format::Form, form.join("&").into_bytes()),
                (Format::Json, serde_json::to_vec(&json).unwrap()),
                (mp(&boundary), multipart(&boundary, &parts)),
            ];
            for (format, body) in cases {
                prop_assert_eq!(format.find(&body, "apikey"), Found::Key(key.clone()));
                let stripped = format.strip(&body, "apikey").unwrap();
                prop_assert_eq!(format.find(&stripped, "apikey"), Found::Absent);
                for (n, v) in &others {
                    prop_assert_eq!(format.find(&stripped, n), Found::Key(v.clone()));
                }
                match format {
                    Format::Form => prop_assert_eq!(&stripped, form_without.as_bytes()),
                    Format::Json => prop_assert_eq!(serde_json::from_slice::<serde_json::Value>(&stripped).unwrap(), json_without.clone()),
                    Format::Multipart { .. } => prop_assert_eq!(&stripped, &parts_without),
                }
            }
        }
    }
}
