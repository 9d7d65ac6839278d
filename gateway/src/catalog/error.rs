//! Kong's Admin API error shapes: `{"message", "name", "code", "fields"}` with the HTTP status each
//! class gets, and the conversion from the validator's entity paths to Kong's nested `fields`.

use serde_json::{Map, Value, json};

use crate::entities::FieldError;

/// An answer other than success, with its status and Kong's body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub body: Value,
}

impl ApiError {
    pub fn not_found() -> ApiError {
        ApiError { status: 404, body: json!({ "message": "Not found" }) }
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError { status: 405, body: json!({ "message": "Method not allowed" }) }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError { status: 400, body: json!({ "message": message.into() }) }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError { status: 500, body: json!({ "message": message.into() }) }
    }

    /// 400 schema violation: every field at fault, nested as the entity is.
    pub fn schema(errors: &[(String, String)]) -> ApiError {
        let summary: Vec<String> = errors.iter().map(|(field, message)| format!("{field}: {message}")).collect();
        let message = match errors.len() {
            1 => format!("schema violation ({})", summary[0]),
            n => format!("{n} schema violations ({})", summary.join("; ")),
        };
        ApiError {
            status: 400,
            body: json!({ "code": 2, "name": "schema violation", "message": message, "fields": fields(errors) }),
        }
    }

    /// 409: a unique field's value is taken.
    pub fn unique(field: &str, value: &Value) -> ApiError {
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        ApiError {
            status: 409,
            body: json!({
                "code": 5,
                "name": "unique constraint violation",
                "message": format!("UNIQUE violation detected on '{{{field}={shown}}}'"),
                "fields": { field: value },
            }),
        }
    }

    /// 400: a reference by id to an entity that does not exist.
    pub fn foreign_key(field: &str, reference: &Value, kind: &str) -> ApiError {
        ApiError {
            status: 400,
            body: json!({
                "code": 4,
                "name": "foreign key violation",
                "message": format!("the foreign key '{}' does not reference an existing '{kind}' entity.", show_ref(reference)),
                "fields": { field: reference },
            }),
        }
    }

    /// 400: references by a unique field (`{"name": …}`) that name no entity: each as
    /// (field, unique field, value, referenced kind).
    pub fn unresolved(items: &[(String, &str, String, &str)]) -> ApiError {
        let mut fields = Map::new();
        let mut parts = Vec::new();
        for (field, by, value, kind) in items {
            let reason = format!(
                "the foreign key cannot be resolved with '{{{by}={}}}' for an existing '{kind}' entity",
                Value::String(value.clone())
            );
            parts.push(format!("{field}.{by}: {reason}"));
            let entry = fields.entry(field.clone()).or_insert_with(|| json!({}));
            entry[*by] = Value::String(reason);
        }
        let message = match parts.len() {
            1 => format!("foreign key unresolved ({})", parts[0]),
            n => format!("{n} foreign keys unresolved ({})", parts.join("; ")),
        };
        ApiError {
            status: 400,
            body: json!({ "code": 13, "name": "foreign keys unresolved", "message": message, "fields": fields }),
        }
    }

    /// 400: deleting an entity that others still reference.
    pub fn referenced_by(kind: &str, referrer_kind: &str) -> ApiError {
        ApiError {
            status: 400,
            body: json!({
                "code": 4,
                "name": "foreign key violation",
                "message": format!("an existing '{referrer_kind}' entity references this '{kind}' entity"),
                "fields": { "@referenced_by": referrer_kind },
            }),
        }
    }
}

fn show_ref(reference: &Value) -> String {
    match reference {
        Value::Object(map) => {
            let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{{{}}}", parts.join(","))
        }
        other => other.to_string(),
    }
}

/// Errors of the validator at paths under `prefix` (an entity's path in a document), each with
/// its path relative to it (`@entity` for the entity itself), and the others.
pub fn relative<'e>(errors: &'e [FieldError], prefix: &str) -> (Vec<(String, &'e FieldError)>, Vec<&'e FieldError>) {
    let mut mine = Vec::new();
    let mut others = Vec::new();
    for e in errors {
        if e.path == prefix {
            mine.push(("@entity".to_string(), e));
        } else if let Some(rest) = e.path.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) {
            mine.push((rest.to_string(), e));
        } else {
            others.push(e);
        }
    }
    (mine, others)
}

/// Kong's `fields`: `paths[1]` becomes `{"paths": [null, "…"]}`, `a.b` becomes `{"a": {"b": "…"}}`,
/// and errors at the entity itself gather under `@entity`.
pub fn fields(errors: &[(String, String)]) -> Value {
    let mut root = Value::Object(Map::new());
    for (path, message) in errors {
        if path == "@entity" {
            let list = root.as_object_mut().expect("root is an object").entry("@entity").or_insert(json!([]));
            if let Value::Array(items) = list {
                items.push(Value::String(message.clone()));
            }
            continue;
        }
        insert(&mut root, &segments(path), Value::String(message.clone()));
    }
    root
}

enum Segment {
    Key(String),
    Index(usize),
}

fn segments(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            out.push(Segment::Key(name.to_string()));
        }
        while let Some(close) = rest.find(']') {
            match rest[1..close].parse() {
                Ok(i) => out.push(Segment::Index(i)),
                Err(_) => out.push(Segment::Key(rest[1..close].to_string())),
            }
            rest = &rest[close + 1..];
        }
    }
    out
}

fn insert(at: &mut Value, path: &[Segment], leaf: Value) {
    let Some((first, rest)) = path.split_first() else {
        *at = leaf;
        return;
    };
    match first {
        Segment::Key(key) => {
            if !at.is_object() {
                *at = Value::Object(Map::new());
            }
            let child = at.as_object_mut().expect("made an object").entry(key.clone()).or_insert(Value::Null);
            insert(child, rest, leaf);
        }
        Segment::Index(i) => {
            if !at.is_array() {
                *at = Value::Array(Vec::new());
            }
            let items = at.as_array_mut().expect("made an array");
            if items.len() <= *i {
                items.resize(*i + 1, Value::Null);
            }
            insert(&mut items[*i], rest, leaf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kong_fields_nest_like_the_entity() {
        let errors = vec![
            ("paths[1]".to_string(), "must start with / or ~/".to_string()),
            ("headers.x-v[0]".to_string(), "bad".to_string()),
            ("host".to_string(), "required field missing".to_string()),
            ("@entity".to_string(), "must set one of 'methods', 'hosts'".to_string()),
        ];
        assert_eq!(
            fields(&errors),
            json!({
                "paths": [null, "must start with / or ~/"],
                "headers": {"x-v": ["bad"]},
                "host": "required field missing",
                "@entity": ["must set one of 'methods', 'hosts'"],
            })
        );
        let e = ApiError::schema(&errors[2..3]);
        assert_eq!(e.body["message"], "schema violation (host: required field missing)");
        assert_eq!(e.status, 400);
    }
}
