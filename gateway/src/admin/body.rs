//! Request bodies as Kong accepts them: JSON, or form fields with Kong's notation (`paths[]=/a`,
//! `paths[1]=/b`, `service.id=…`, `config.minute=5`), whose string values are turned into the types the
//! entity's fields have.

use serde_json::{Map, Value};

use crate::catalog::ApiError;

/// The body as a JSON object; an empty body is `{}`.
pub fn decode(kind: &str, content_type: Option<&str>, bytes: &[u8]) -> Result<Value, ApiError> {
    let mime = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    match mime.as_str() {
        "application/x-www-form-urlencoded" => Ok(form(kind, bytes)),
        "multipart/form-data" => Err(ApiError {
            status: 415,
            body: serde_json::json!({ "message": "multipart bodies are not supported: send JSON or a urlencoded form" }),
        }),
        _ => serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("Cannot parse JSON body: {e}"))),
    }
}

/// Fields that hold arrays, integers or booleans, per kind (the rest are strings or objects).
fn field_type(kind: &str, field: &str) -> FieldType {
    use FieldType::*;
    match (kind, field) {
        (_, "tags") => Array,
        (
            "services",
            "port" | "retries" | "connect_timeout" | "write_timeout" | "read_timeout" | "tls_verify_depth",
        ) => Integer,
        ("services", "enabled" | "tls_verify") => Boolean,
        ("services", "ca_certificates") => Array,
        ("routes", "protocols" | "methods" | "hosts" | "paths" | "snis") => Array,
        ("routes", "regex_priority" | "https_redirect_status_code") => Integer,
        ("routes", "strip_path" | "preserve_host" | "request_buffering" | "response_buffering") => Boolean,
        ("plugins", "protocols") => Array,
        ("plugins", "enabled") => Boolean,
        ("upstreams", "slots") => Integer,
        ("targets", "weight") => Integer,
        ("certificates", "snis") => Array,
        _ => Text,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum FieldType {
    Text,
    Array,
    Integer,
    Boolean,
}

fn form(kind: &str, bytes: &[u8]) -> Value {
    let mut root = Map::new();
    for (key, value) in url::form_urlencoded::parse(bytes) {
        let (key, value) = (key.into_owned(), value.into_owned());
        // `a.b.c` nests objects; a trailing `[]` or `[n]` on the last part makes an array.
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        let (last, index) = match last.find('[') {
            Some(i) if last.ends_with(']') => (&last[..i], Some(last[i + 1..last.len() - 1].to_string())),
            _ => (last, None),
        };
        let mut at = &mut root;
        for part in &parts {
            let child = at.entry(part.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            at = child.as_object_mut().expect("made an object");
        }
        let top = parts.first().copied().unwrap_or(last);
        let nested_config = parts.first() == Some(&"config");
        let kind_of = if parts.is_empty() { field_type(kind, last) } else { FieldType::Text };
        let typed = if nested_config { guess(&value) } else { coerce(&value, kind_of) };
        let headers = kind == "routes" && top == "headers";
        match index {
            Some(index) => {
                let list = at.entry(last.to_string()).or_insert_with(|| Value::Array(Vec::new()));
                if !list.is_array() {
                    *list = Value::Array(vec![list.clone()]);
                }
                let items = list.as_array_mut().expect("made an array");
                match index.parse::<usize>() {
                    Ok(i) if i >= 1 && i <= items.len() + 1 => {
                        // Kong numbers form array items from 1.
                        if i > items.len() {
                            items.push(typed);
                        } else {
                            items[i - 1] = typed;
                        }
                    }
                    _ => items.push(typed),
                }
            }
            None if kind_of == FieldType::Array || headers => {
                let list = at.entry(last.to_string()).or_insert_with(|| Value::Array(Vec::new()));
                match list {
                    Value::Array(items) => items.push(Value::String(value)),
                    other => *other = Value::Array(vec![Value::String(value)]),
                }
            }
            None => {
                at.insert(last.to_string(), typed);
            }
        }
    }
    Value::Object(root)
}

fn coerce(value: &str, kind: FieldType) -> Value {
    match kind {
        FieldType::Integer => value.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::String(value.into())),
        FieldType::Boolean => match value {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(value.into()),
        },
        FieldType::Text | FieldType::Array => Value::String(value.into()),
    }
}

/// Plugin configuration values from a form: numbers and booleans as such, else text.
fn guess(value: &str) -> Value {
    match value {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => value
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| value.parse::<f64>().map(Value::from))
            .unwrap_or_else(|_| Value::String(value.into())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn kong_form_notation() {
        let body = b"name=r&paths[]=/a&paths[]=/b&hosts=x.test&service.id=abc&strip_path=false&regex_priority=3&headers.x-v=v1";
        let value = decode("routes", Some("application/x-www-form-urlencoded"), body).unwrap();
        assert_eq!(
            value,
            json!({
                "name": "r",
                "paths": ["/a", "/b"],
                "hosts": ["x.test"],
                "service": {"id": "abc"},
                "strip_path": false,
                "regex_priority": 3,
                "headers": {"x-v": ["v1"]},
            })
        );
        let value = decode(
            "plugins",
            Some("application/x-www-form-urlencoded"),
            b"name=rate&config.minute=5&config.policy=local",
        )
        .unwrap();
        assert_eq!(value, json!({"name": "rate", "config": {"minute": 5, "policy": "local"}}));
        let value =
            decode("services", Some("application/x-www-form-urlencoded"), b"name=s&url=http%3A%2F%2Fa.test&port=81")
                .unwrap();
        assert_eq!(value, json!({"name": "s", "url": "http://a.test", "port": 81}));
    }

    #[test]
    fn json_and_errors() {
        assert_eq!(decode("services", Some("application/json"), b" ").unwrap(), json!({}));
        assert_eq!(decode("services", None, br#"{"host":"a"}"#).unwrap(), json!({"host": "a"}));
        let e = decode("services", Some("application/json"), b"{nope").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.body["message"].as_str().unwrap().starts_with("Cannot parse JSON body"));
    }
}
