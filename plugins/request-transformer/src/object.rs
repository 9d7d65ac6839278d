//! A JSON object body as its top-level fields, each value kept as the JSON text it came as: the
//! edits only touch top-level fields, so nothing below them is built as a tree (a body of
//! megabytes parses in a few milliseconds and in little more memory than itself), and the values
//! left alone are written back exactly, digits and all. `response-transformer` compiles this file too.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;

use serde::de::{Deserializer as _, Error as _, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A field's value: JSON text, from the body or made by an edit.
#[derive(Debug, Clone)]
pub enum Field<'a> {
    Raw(&'a RawValue),
    Made(String),
}

impl Field<'_> {
    pub fn json(&self) -> &str {
        match self {
            Field::Raw(raw) => raw.get().trim(),
            Field::Made(text) => text,
        }
    }

    /// Lua's truth, as Kong tests a field: only `false` is false (cjson's `null` is true).
    pub fn is_false(&self) -> bool {
        self.json() == "false"
    }

    /// Kong's `append_value`: an array gets one more element, a string becomes `[old, new]`, and
    /// anything else (a number, a boolean, null, an object) is replaced by `[new]`.
    pub fn appended(existing: Option<&Field<'_>>, value: &str) -> Field<'static> {
        let text = existing.map(Field::json).unwrap_or("");
        let made = if let Some(open) = text.strip_suffix(']').filter(|t| t.starts_with('[')) {
            if open[1..].trim().is_empty() { format!("[{value}]") } else { format!("{open},{value}]") }
        } else if text.starts_with('"') {
            format!("[{text},{value}]")
        } else {
            format!("[{value}]")
        };
        Field::Made(made)
    }
}

/// Why a body is not read as an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unread {
    /// Not JSON, or not an object.
    NotAnObject,
    /// More top-level fields than the limit given.
    TooManyFields,
}

/// The fields in their order; a repeated name keeps its last value (as cjson reads it).
#[derive(Debug, Default)]
pub struct Object<'a> {
    fields: Vec<(String, Field<'a>)>,
}

impl<'a> Object<'a> {
    /// `text` as one JSON object of at most `max_fields` fields.
    pub fn parse(text: &'a [u8], max_fields: usize) -> Result<Object<'a>, Unread> {
        let too_many = Cell::new(false);
        let mut deserializer = serde_json::Deserializer::from_slice(text);
        let read = (&mut deserializer).deserialize_map(ObjectVisitor { max_fields, too_many: &too_many });
        match read.and_then(|object| deserializer.end().map(|()| object)) {
            Ok(object) => Ok(object),
            Err(_) if too_many.get() => Err(Unread::TooManyFields),
            Err(_) => Err(Unread::NotAnObject),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Field<'a>> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn remove(&mut self, name: &str) -> Option<Field<'a>> {
        let at = self.fields.iter().position(|(n, _)| n == name)?;
        Some(self.fields.remove(at).1)
    }

    /// Sets `name`, in its place if it is there, else at the end.
    pub fn insert(&mut self, name: &str, value: Field<'a>) {
        match self.fields.iter_mut().find(|(n, _)| n == name) {
            Some((_, field)) => *field = value,
            None => self.fields.push((name.to_string(), value)),
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(self.fields.iter().map(|(n, v)| n.len() + v.json().len() + 4).sum::<usize>() + 2);
        out.push(b'{');
        for (i, (name, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(string(name).as_bytes());
            out.push(b':');
            out.extend_from_slice(value.json().as_bytes());
        }
        out.push(b'}');
        out
    }
}

/// `text` as a JSON string.
pub fn string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

struct ObjectVisitor<'c> {
    max_fields: usize,
    too_many: &'c Cell<bool>,
}

impl<'de> Visitor<'de> for ObjectVisitor<'_> {
    type Value = Object<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Object<'de>, M::Error> {
        let mut fields: Vec<(String, Field<'de>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        while let Some(name) = map.next_key::<String>()? {
            let value: &'de RawValue = map.next_value()?;
            match index.get(&name) {
                Some(&at) => fields[at].1 = Field::Raw(value),
                None if fields.len() == self.max_fields => {
                    self.too_many.set(true);
                    return Err(M::Error::custom("too many fields"));
                }
                None => {
                    index.insert(name.clone(), fields.len());
                    fields.push((name, Field::Raw(value)));
                }
            }
        }
        Ok(Object { fields })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn edited(text: &str, edit: impl FnOnce(&mut Object)) -> String {
        let mut object = Object::parse(text.as_bytes(), 100).unwrap();
        edit(&mut object);
        String::from_utf8(object.to_vec()).unwrap()
    }

    #[test]
    fn only_objects_parse() {
        for text in ["[]", "1", "\"s\"", "null", "", "{", "{} x", "{\"a\":}", "{\"a\":1,}"] {
            assert_eq!(Object::parse(text.as_bytes(), 100).unwrap_err(), Unread::NotAnObject, "{text}");
        }
        assert!(Object::parse(b" {} ", 100).is_ok());
        assert_eq!(Object::parse(br#"{"a":1,"b":2,"c":3}"#, 2).unwrap_err(), Unread::TooManyFields);
        assert!(Object::parse(br#"{"a":1,"b":2,"a":3}"#, 2).is_ok(), "a repeated name is one field");
    }

    #[test]
    fn fields_left_alone_are_written_as_they_came() {
        let text = r#"{"b": 12345678901234567890123, "a": {"deep": [1.50, "x"]}, "c": "\u00e9"}"#;
        assert_eq!(edited(text, |_| {}), r#"{"b":12345678901234567890123,"a":{"deep": [1.50, "x"]},"c":"\u00e9"}"#);
        assert_eq!(edited(r#"{"a":1,"a":2}"#, |_| {}), r#"{"a":2}"#, "the last of a repeated name");
    }

    #[test]
    fn edits() {
        assert_eq!(edited(r#"{"a":1,"b":2}"#, |o| assert!(o.remove("a").is_some())), r#"{"b":2}"#);
        assert_eq!(edited(r#"{"a":1,"b":2}"#, |o| o.insert("a", Field::Made("\"x\"".into()))), r#"{"a":"x","b":2}"#);
        assert_eq!(edited(r#"{}"#, |o| o.insert("k\"", Field::Made("true".into()))), r#"{"k\"":true}"#);
        let appended = |existing: &str| {
            let text = format!("{{\"f\":{existing}}}");
            let object = Object::parse(text.as_bytes(), 100).unwrap();
            Field::appended(object.get("f"), "\"n\"").json().to_string()
        };
        assert_eq!(appended("[1, 2]"), r#"[1, 2,"n"]"#);
        assert_eq!(appended("[ ]"), r#"["n"]"#);
        assert_eq!(appended("\"s\""), r#"["s","n"]"#);
        assert_eq!(appended("5"), r#"["n"]"#);
        assert_eq!(appended("{\"x\":1}"), r#"["n"]"#);
        assert_eq!(Field::appended(None, "1").json(), "[1]");
        assert!(Object::parse(br#"{"f":false}"#, 1).unwrap().get("f").unwrap().is_false());
        assert!(!Object::parse(br#"{"f":null}"#, 1).unwrap().get("f").unwrap().is_false());
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in ".{0,120}") {
            if let Ok(object) = Object::parse(text.as_bytes(), 100) {
                let _ = object.to_vec();
            }
        }

        #[test]
        fn an_object_reads_back_the_same(map in proptest::collection::btree_map("[a-z\"\\\\]{0,6}", any::<i64>(), 0..8), nested in any::<bool>()) {
            let value = if nested { json!({"outer": map}) } else { json!(map) };
            let text = serde_json::to_vec(&value).unwrap();
            let written = Object::parse(&text, 100).unwrap().to_vec();
            prop_assert_eq!(serde_json::from_slice::<Value>(&written).unwrap(), value);
        }

        #[test]
        fn appended_values_are_json(existing in proptest::option::of(prop_oneof![
            Just("[]".to_string()), Just("[1]".to_string()), Just("\"s\"".to_string()), Just("3".to_string()), Just("{}".to_string())
        ])) {
            let text = existing.map(|e| format!("{{\"f\":{e}}}")).unwrap_or_else(|| "{}".into());
            let object = Object::parse(text.as_bytes(), 100).unwrap();
            let field = Field::appended(object.get("f"), "\"v\"");
            let parsed: Value = serde_json::from_str(field.json()).unwrap();
            prop_assert!(parsed.as_array().is_some_and(|a| a.last() == Some(&json!("v"))));
        }
    }
}
