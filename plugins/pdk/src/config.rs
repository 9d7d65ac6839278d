//! A plugin's configuration: the JSON of the plugin entity's `config`, read into the plugin's own
//! `Config` type, every problem reported at its field's path *relative to `config`* (`header_name`,
//! `rules[2].x`; empty for the configuration as a whole) with Kong's messages, and written back with
//! every default filled in. serde stops at the first problem, so the offending field is dropped and
//! the read repeated, to list them all.

use std::fmt;
use std::ops::Deref;

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, Expected, IntoDeserializer, Unexpected, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_path_to_error::Segment;

use crate::FieldError;

/// Problems listed for one configuration at most.
const MAX_ERRORS: usize = 32;

const REQUIRED: &str = "required field missing";

impl FieldError {
    /// A problem at `path`, relative to `config` (empty: the configuration as a whole).
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { path: path.into(), message: message.into() }
    }
}

/// `json` read into `C` and checked by `validate`, written back with its defaults filled in.
pub fn check<C: DeserializeOwned + Serialize>(
    json: &str,
    validate: fn(&C) -> Vec<FieldError>,
) -> Result<String, Vec<FieldError>> {
    let config = parse_valid(json, validate)?;
    serde_json::to_string(&config).map_err(|e| vec![FieldError::new("", e.to_string())])
}

/// `json` read into `C` and checked by `validate` (whose checks run only on a configuration that
/// reads), or every problem found.
pub fn parse_valid<C: DeserializeOwned>(json: &str, validate: fn(&C) -> Vec<FieldError>) -> Result<C, Vec<FieldError>> {
    let config = parse(json)?;
    match validate(&config) {
        errors if errors.is_empty() => Ok(config),
        errors => Err(errors),
    }
}

/// `json` read into `C`, or every problem found.
pub fn parse<C: DeserializeOwned>(json: &str) -> Result<C, Vec<FieldError>> {
    let mut value: Value =
        serde_json::from_str(json).map_err(|e| vec![FieldError::new("", format!("invalid JSON: {e}"))])?;
    if !value.is_object() {
        return Err(vec![FieldError::new("", "expected a record")]);
    }
    let mut errors = Vec::new();
    loop {
        match serde_path_to_error::deserialize::<_, C>(De(&value)) {
            Ok(config) if errors.is_empty() => return Ok(config),
            Ok(_) => return Err(errors),
            Err(e) => {
                let segments: Vec<Segment> = e.path().iter().cloned().collect();
                let problem = e.into_inner();
                let mut path = render(&segments);
                if let Problem::MissingField(field) = problem {
                    path = if path.is_empty() { field.to_string() } else { format!("{path}.{field}") };
                }
                // A dropped field that is required comes back as missing: said once is enough.
                if !errors.iter().any(|e: &FieldError| e.path == path) {
                    errors.push(FieldError::new(path, problem.to_string()));
                }
                // A missing field cannot be dropped; anything else can, to look further.
                let dropped = !matches!(problem, Problem::MissingField(_)) && drop_at(&mut value, &segments);
                if !dropped || errors.len() >= MAX_ERRORS {
                    return Err(errors);
                }
            }
        }
    }
}

/// Every error on one line, for `configure`, which the host calls only with checked configurations.
pub fn describe(errors: &[FieldError]) -> String {
    let each =
        errors.iter().map(|e| if e.path.is_empty() { e.message.clone() } else { format!("{}: {}", e.path, e.message) });
    format!("invalid configuration: {}", each.collect::<Vec<_>>().join("; "))
}

/// `rules[2].x`, as the host joins it onto `config`.
fn render(segments: &[Segment]) -> String {
    let mut path = String::new();
    for segment in segments {
        match segment {
            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            Segment::Map { key } => push_name(&mut path, key),
            Segment::Enum { variant } => push_name(&mut path, variant),
            Segment::Unknown => push_name(&mut path, "?"),
        }
    }
    path
}

fn push_name(path: &mut String, name: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(name);
}

/// Removes the object member at `segments`; false if it does not end in one.
fn drop_at(value: &mut Value, segments: &[Segment]) -> bool {
    let Some((Segment::Map { key }, parents)) = segments.split_last() else { return false };
    let mut at = value;
    for segment in parents {
        at = match (segment, at) {
            (Segment::Map { key }, Value::Object(map)) => match map.get_mut(key) {
                Some(next) => next,
                None => return false,
            },
            (Segment::Seq { index }, Value::Array(items)) => match items.get_mut(*index) {
                Some(next) => next,
                None => return false,
            },
            _ => return false,
        };
    }
    at.as_object_mut().is_some_and(|map| map.remove(key).is_some())
}

/// Why a field does not read, in Kong's words.
#[derive(Debug)]
pub enum Problem {
    Message(String),
    /// Reported at the field's path (serde reports it at the parent's).
    MissingField(&'static str),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Message(message) => f.write_str(message),
            Problem::MissingField(_) => f.write_str(REQUIRED),
        }
    }
}

impl std::error::Error for Problem {}

impl de::Error for Problem {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Problem::Message(message.to_string())
    }

    /// A field that takes null is an `Option`, which never gets here: null is a required field left out.
    fn invalid_type(got: Unexpected<'_>, expected: &dyn Expected) -> Self {
        match got {
            Unexpected::Unit => Problem::Message(REQUIRED.into()),
            _ => Problem::Message(format!("expected {}", noun(&expected.to_string()))),
        }
    }

    fn invalid_value(got: Unexpected<'_>, expected: &dyn Expected) -> Self {
        let expected = expected.to_string();
        match (got, integer_range(&expected)) {
            (Unexpected::Unsigned(_) | Unexpected::Signed(_), Some((min, max))) => {
                Problem::Message(format!("value should be between {min} and {max}"))
            }
            _ => Problem::Message(format!("expected {}", noun(&expected))),
        }
    }

    fn invalid_length(len: usize, expected: &dyn Expected) -> Self {
        Problem::Message(format!("expected {expected}, got {len} elements"))
    }

    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        Problem::Message(format!("expected one of: {}", expected.join(", ")))
    }

    fn unknown_field(_: &str, _: &'static [&'static str]) -> Self {
        Problem::Message("unknown field".into())
    }

    fn missing_field(field: &'static str) -> Self {
        Problem::MissingField(field)
    }

    fn duplicate_field(_: &'static str) -> Self {
        Problem::Message("duplicate field".into())
    }
}

/// Kong's name for what serde's visitors expect (`u16` is "an integer").
fn noun(expected: &str) -> String {
    let noun = match expected {
        _ if integer_range(expected).is_some() => "an integer",
        "f32" | "f64" => "a number",
        "a borrowed string" | "a string" | "a character" => "a string",
        "a sequence" | "a tuple" => "an array",
        "a map" => "a map",
        "unit" => "null",
        _ if expected.starts_with("struct ") => "a record",
        _ => return expected.to_string(),
    };
    noun.to_string()
}

fn integer_range(rust_type: &str) -> Option<(i128, i128)> {
    Some(match rust_type {
        "u8" => (0, u8::MAX.into()),
        "u16" => (0, u16::MAX.into()),
        "u32" => (0, u32::MAX.into()),
        "u64" | "usize" => (0, u64::MAX.into()),
        "i8" => (i8::MIN.into(), i8::MAX.into()),
        "i16" => (i16::MIN.into(), i16::MAX.into()),
        "i32" => (i32::MIN.into(), i32::MAX.into()),
        "i64" | "isize" => (i64::MIN.into(), i64::MAX.into()),
        _ => return None,
    })
}

/// A JSON value as a serde deserializer whose errors are [`Problem`]s.
#[derive(Clone, Copy)]
struct De<'a>(&'a Value);

fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Unexpected::Unsigned(u),
            (_, Some(i)) => Unexpected::Signed(i),
            _ => Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

impl<'de> de::Deserializer<'de> for De<'de> {
    type Error = Problem;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => visitor.visit_u64(u),
                (_, Some(i)) => visitor.visit_i64(i),
                _ => visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.iter().map(De));
                let read = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(read)
            }
            Value::Object(members) => {
                let mut map = MapDeserializer::new(members.iter().map(|(k, v)| (k.as_str(), De(v))));
                let read = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(read)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, Problem> {
        visitor.visit_newtype_struct(self)
    }

    /// Only an object is a record (serde would also take an array, field by field).
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Problem> {
        match self.0 {
            Value::Object(_) => self.deserialize_any(visitor),
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    /// Unit variants only, as strings: Kong's `one_of`.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Problem> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            Value::Null => Err(Problem::Message(REQUIRED.into())),
            _ => Err(de::Error::unknown_variant("", variants)),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct
        seq tuple tuple_struct map identifier ignored_any
    }
}

impl<'de> IntoDeserializer<'de, Problem> for De<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

/// An HTTP header name as Kong's schemas take one (`typedefs.header_name`): ASCII letters, digits,
/// `-` and `_`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct HeaderName(String);

impl HeaderName {
    /// `name` if it is a header name, else Kong's message saying why not.
    pub fn parse(name: impl Into<String>) -> Result<Self, String> {
        let name = name.into();
        if name.is_empty() {
            return Err("no header name provided".into());
        }
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(format!("bad header name '{name}', allowed characters are A-Z, a-z, 0-9, '_', and '-'"));
        }
        Ok(HeaderName(name))
    }

    /// A name known to be good, for defaults. Panics if it is not one.
    pub fn from_static(name: &'static str) -> Self {
        Self::parse(name).unwrap_or_else(|message| panic!("{message}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for HeaderName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for HeaderName {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        HeaderName::parse(String::deserialize(deserializer)?).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Serialize, Debug)]
    #[serde(default, deny_unknown_fields)]
    struct Config {
        header_name: HeaderName,
        count: u16,
        mode: Option<Mode>,
        rules: Vec<Rule>,
        note: Option<String>,
    }

    impl Default for Config {
        fn default() -> Self {
            Config { header_name: HeaderName::from_static("X-Test"), count: 3, mode: None, rules: vec![], note: None }
        }
    }

    #[derive(Deserialize, Serialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Rule {
        x: bool,
    }

    #[derive(Deserialize, Serialize, Debug)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Fast,
        Slow,
    }

    fn no_checks(_: &Config) -> Vec<FieldError> {
        Vec::new()
    }

    fn errors(json: &str) -> Vec<(String, String)> {
        check::<Config>(json, no_checks).unwrap_err().into_iter().map(|e| (e.path, e.message)).collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(p, m)| (p.to_string(), m.to_string())).collect()
    }

    #[test]
    fn defaults_are_filled_in() {
        let filled = check::<Config>(r#"{"count": 7}"#, no_checks).unwrap();
        assert_eq!(filled, r#"{"header_name":"X-Test","count":7,"mode":null,"rules":[],"note":null}"#);
        let again = check::<Config>(&filled, no_checks).unwrap();
        assert_eq!(again, filled, "a filled configuration reads back unchanged");
    }

    #[test]
    fn every_problem_is_listed_at_its_path_relative_to_config() {
        let got = errors(
            r#"{"bogus": 1, "count": "many", "header_name": "a b", "mode": "medium", "rules": [{"x": true}, {}]}"#,
        );
        let want = pairs(&[
            ("bogus", "unknown field"),
            ("count", "expected an integer"),
            ("header_name", "bad header name 'a b', allowed characters are A-Z, a-z, 0-9, '_', and '-'"),
            ("mode", "expected one of: fast, slow"),
            ("rules[1].x", "required field missing"),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn kongs_messages() {
        assert_eq!(errors(r#"{"bogus": 1}"#), pairs(&[("bogus", "unknown field")]));
        assert_eq!(errors(r#"{"count": 70000}"#), pairs(&[("count", "value should be between 0 and 65535")]));
        assert_eq!(errors(r#"{"count": -1}"#), pairs(&[("count", "value should be between 0 and 65535")]));
        assert_eq!(errors(r#"{"count": 1.5}"#), pairs(&[("count", "expected an integer")]));
        assert_eq!(errors(r#"{"count": null}"#), pairs(&[("count", "required field missing")]));
        assert_eq!(
            errors(r#"{"mode": null, "header_name": null}"#),
            pairs(&[("header_name", "required field missing")])
        );
        assert_eq!(errors(r#"{"rules": [null]}"#), pairs(&[("rules[0]", "required field missing")]));
        assert_eq!(errors(r#"{"header_name": ""}"#), pairs(&[("header_name", "no header name provided")]));
        assert_eq!(errors(r#"{"mode": 3}"#), pairs(&[("mode", "expected one of: fast, slow")]));
        assert_eq!(errors(r#"{"rules": {}}"#), pairs(&[("rules", "expected an array")]));
        assert_eq!(errors(r#"{"rules": [[true]]}"#), pairs(&[("rules[0]", "expected a record")]));
        assert_eq!(errors(r#"{"rules": [{"x": 1}]}"#), pairs(&[("rules[0].x", "expected a boolean")]));
        assert_eq!(errors(r#"{"note": 1}"#), pairs(&[("note", "expected a string")]));
        assert_eq!(errors("[]"), pairs(&[("", "expected a record")]));
        assert!(errors("{").first().is_some_and(|(path, m)| path.is_empty() && m.starts_with("invalid JSON")));
    }

    #[test]
    fn semantic_checks_run_on_a_configuration_that_reads() {
        fn even(config: &Config) -> Vec<FieldError> {
            if config.count.is_multiple_of(2) { vec![] } else { vec![FieldError::new("count", "must be even")] }
        }
        assert!(check::<Config>(r#"{"count": 2}"#, even).is_ok());
        let got = check::<Config>(r#"{"count": 3}"#, even).unwrap_err();
        assert_eq!((got[0].path.as_str(), got[0].message.as_str()), ("count", "must be even"));
        let got = check::<Config>(r#"{"count": 3, "bogus": 1}"#, even).unwrap_err();
        assert_eq!(got.len(), 1, "field errors first: {got:?}");
    }

    #[test]
    fn a_configuration_with_endless_problems_gets_a_bounded_list() {
        let members: Vec<String> = (0..1000).map(|i| format!("\"f{i}\": 1")).collect();
        let json = format!("{{{}}}", members.join(","));
        assert_eq!(errors(&json).len(), MAX_ERRORS);
    }

    #[test]
    fn header_names_are_kongs() {
        for good in ["X-Request-ID", "a_b", "0"] {
            assert_eq!(HeaderName::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "a b", "a:b", "é", "a\r\nb"] {
            assert!(HeaderName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn describe_puts_every_error_on_one_line() {
        let errors = [FieldError::new("", "whole"), FieldError::new("a.b", "part")];
        assert_eq!(describe(&errors), "invalid configuration: whole; a.b: part");
    }
}
