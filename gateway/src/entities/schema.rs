//! A small field walker for untyped entity input (declarative files, later Admin API bodies): it
//! reads typed fields out of a JSON object, records every error with the field's full path
//! (`services[2].routes[0].paths[1]`) instead of stopping at the first, and flags unknown fields.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

use super::kind::Kind;

/// One thing wrong with the input, at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
    pub kind: ErrorKind,
}

/// What kind of fault an error is, so callers (the Admin API's 400/404/409) decide by kind, never
/// by the message's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// A value is wrong, missing, or not a known field.
    Field,
    /// A value of a unique `field` (`id` included) is already used by the entity at `first`.
    Unique { field: String, first: String },
    /// A reference names no entity of kind `to` by `by` (`id`, `name`, `username`…).
    Reference { to: Kind, by: &'static str, value: String },
    /// A plugin entity names a plugin this node does not run (the value may be fine elsewhere).
    PluginNotRunnable { plugin: String },
}

impl ErrorKind {
    /// Whether this is about the value itself (Kong's schema violation), not about other entities.
    pub fn is_field(&self) -> bool {
        matches!(self, ErrorKind::Field | ErrorKind::PluginNotRunnable { .. })
    }
}

impl FieldError {
    /// A field error: a wrong, missing or unknown value.
    pub fn field(path: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError { path: path.into(), message: message.into(), kind: ErrorKind::Field }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Collected errors. Parsing goes on after an error so that all of them are reported at once.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::field(path, message));
    }

    pub fn push_kind(&mut self, path: impl Into<String>, message: impl Into<String>, kind: ErrorKind) {
        self.0.push(FieldError { path: path.into(), message: message.into(), kind });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `parent.child` (or `child` at the top); an empty name shows as `""`.
pub fn join(parent: &str, child: &str) -> String {
    let child = if child.is_empty() { "\"\"" } else { child };
    if parent.is_empty() { child.to_string() } else { format!("{parent}.{child}") }
}

/// `parent[index]`.
pub fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// Kong's name for a JSON type, for "expected a string, got a number".
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The fields of one object being read.
pub struct Obj<'a> {
    pub path: String,
    map: &'a Map<String, Value>,
    read: BTreeSet<&'a str>,
}

impl<'a> Obj<'a> {
    /// `value` as an object, or an error at `path`.
    pub fn new(path: String, value: &'a Value, errors: &mut Errors) -> Option<Obj<'a>> {
        match value {
            Value::Object(map) => Some(Obj { path, map, read: BTreeSet::new() }),
            other => {
                errors.push(path, format!("expected an object, got {}", type_name(other)));
                None
            }
        }
    }

    pub fn path_of(&self, field: &str) -> String {
        join(&self.path, field)
    }

    /// The raw value of `field`; JSON null counts as absent, as in Kong.
    pub fn raw(&mut self, field: &str) -> Option<&'a Value> {
        let (key, value) = self.map.get_key_value(field)?;
        self.read.insert(key.as_str());
        if value.is_null() { None } else { Some(value) }
    }

    pub fn has(&self, field: &str) -> bool {
        self.map.get(field).is_some_and(|v| !v.is_null())
    }

    /// Marks fields as known without reading them (accepted for compatibility, not used).
    pub fn accept(&mut self, fields: &[&str]) {
        for field in fields {
            self.raw(field);
        }
    }

    pub fn string(&mut self, field: &str, errors: &mut Errors) -> Option<String> {
        match self.raw(field)? {
            Value::String(s) => Some(s.clone()),
            other => {
                errors.push(self.path_of(field), format!("expected a string, got {}", type_name(other)));
                None
            }
        }
    }

    pub fn bool(&mut self, field: &str, default: bool, errors: &mut Errors) -> bool {
        match self.raw(field) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                errors.push(self.path_of(field), format!("expected a boolean, got {}", type_name(other)));
                default
            }
        }
    }

    /// An integer within `min..=max`, or `default` when absent.
    pub fn int(&mut self, field: &str, min: i64, max: i64, default: i64, errors: &mut Errors) -> i64 {
        match self.raw(field) {
            None => default,
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) if (min..=max).contains(&i) => i,
                Some(_) => {
                    errors.push(self.path_of(field), format!("value should be between {min} and {max}"));
                    default
                }
                None => {
                    errors.push(self.path_of(field), "expected an integer");
                    default
                }
            },
            Some(other) => {
                errors.push(self.path_of(field), format!("expected an integer, got {}", type_name(other)));
                default
            }
        }
    }

    /// An array of strings (each element checked).
    pub fn strings(&mut self, field: &str, errors: &mut Errors) -> Vec<String> {
        let path = self.path_of(field);
        match self.raw(field) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| match item {
                    Value::String(s) => Some(s.clone()),
                    other => {
                        errors.push(index(&path, i), format!("expected a string, got {}", type_name(other)));
                        None
                    }
                })
                .collect(),
            Some(other) => {
                errors.push(path, format!("expected an array, got {}", type_name(other)));
                Vec::new()
            }
        }
    }

    /// An array of objects, as (path, value) pairs.
    pub fn array(&mut self, field: &str, errors: &mut Errors) -> Vec<(String, &'a Value)> {
        let path = self.path_of(field);
        match self.raw(field) {
            None => Vec::new(),
            Some(Value::Array(items)) => items.iter().enumerate().map(|(i, v)| (index(&path, i), v)).collect(),
            Some(other) => {
                errors.push(path, format!("expected an array, got {}", type_name(other)));
                Vec::new()
            }
        }
    }

    /// Reports every field that was never read as unknown.
    pub fn finish(self, errors: &mut Errors) {
        for key in self.map.keys() {
            if !self.read.contains(key.as_str()) {
                errors.push(join(&self.path, key), "unknown field");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_are_typed_and_every_error_has_its_path() {
        let value = json!({"a": "x", "b": 3, "c": [1, "y"], "d": true, "e": null, "zz": 1});
        let mut errors = Errors::default();
        let mut obj = Obj::new("services[0]".into(), &value, &mut errors).unwrap();
        assert_eq!(obj.string("a", &mut errors).as_deref(), Some("x"));
        assert_eq!(obj.string("b", &mut errors), None);
        assert_eq!(obj.strings("c", &mut errors), vec!["y".to_string()]);
        assert!(obj.bool("d", false, &mut errors));
        assert_eq!(obj.int("e", 0, 10, 7, &mut errors), 7);
        obj.finish(&mut errors);
        let text: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            vec![
                "services[0].b: expected a string, got a number",
                "services[0].c[0]: expected a string, got a number",
                "services[0].zz: unknown field",
            ]
        );
    }

    #[test]
    fn integers_are_range_checked() {
        let value = json!({"port": 70000, "retries": 1.5});
        let mut errors = Errors::default();
        let mut obj = Obj::new("s".into(), &value, &mut errors).unwrap();
        assert_eq!(obj.int("port", 1, 65535, 80, &mut errors), 80);
        assert_eq!(obj.int("retries", 0, 32767, 5, &mut errors), 5);
        assert_eq!(errors.0[0].to_string(), "s.port: value should be between 1 and 65535");
        assert_eq!(errors.0[1].to_string(), "s.retries: expected an integer");
    }
}
