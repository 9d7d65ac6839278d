//! Request bodies as Kong accepts them: JSON, YAML, or form fields with Kong's notation
//! (`paths[]=/a`, `paths[1]=/b`, `service.id=…`, `config.minute=5`), whose string values are turned
//! into the types the entity's fields have.
//!
//! Bodies come from anyone who can reach the Admin API, so reading them is bounded: the size by
//! `nginx_admin_client_max_body_size` (413), the nesting by [`MAX_DEPTH`] and the number of values
//! by the body's length (400, naming the limit), checked while parsing so that neither the parser's
//! stack nor YAML aliases can run away. Whatever is accepted here can be stored, exported and read
//! back by every other reader of the configuration (they allow 128 levels).

use std::cell::Cell;
use std::fmt;

use http_body_util::BodyExt;
use hyper::body::Bytes;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value, json};
use std::time::Duration;

use crate::catalog::ApiError;

/// The deepest a body may nest (objects and arrays): `{}` is 1 deep, `{"a": {}}` 2. Stored entities
/// gain a few levels of wrapping (records, declarative documents, cluster messages), and every
/// reader stops at 128, so the cap leaves room for them.
pub const MAX_DEPTH: usize = 64;

/// A body that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is larger than {limit} bytes (nginx_admin_client_max_body_size)")]
    TooLarge { limit: usize },
    #[error("the request body nests deeper than {limit} levels (the Admin API's nesting limit)")]
    TooDeep { limit: usize },
    #[error("the request body expands to more than {limit} values and bytes of text (YAML aliases repeat too much)")]
    TooManyValues { limit: usize },
    #[error("{0}")]
    MediaType(String),
    #[error("Cannot parse {format} body: {message}")]
    Syntax { format: &'static str, message: String },
    #[error("cannot read the body: {0}")]
    Read(String),
    #[error("the client sent nothing of its body for nginx_http_client_body_timeout {0:?}")]
    Stalled(Duration),
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> ApiError {
        let status = match e {
            BodyError::TooLarge { .. } => 413,
            BodyError::Stalled(_) => 408,
            BodyError::MediaType(_) => 415,
            _ => 400,
        };
        ApiError { status, body: json!({ "message": e.to_string() }) }
    }
}

/// The formats a write may be sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
    Form,
}

impl Format {
    /// The format a `Content-Type` names. Anything else (`text/plain`, `multipart/form-data`, no
    /// type at all) is refused: browsers may send those cross-site without asking first.
    pub fn of(content_type: Option<&str>) -> Result<Format, BodyError> {
        let Some(content_type) = content_type else {
            return Err(BodyError::MediaType(
                "a request body needs a Content-Type: application/json, application/yaml or application/x-www-form-urlencoded".into(),
            ));
        };
        let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match mime.as_str() {
            "application/json" => Ok(Format::Json),
            m if m.starts_with("application/") && m.ends_with("+json") => Ok(Format::Json),
            "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => Ok(Format::Yaml),
            "application/x-www-form-urlencoded" => Ok(Format::Form),
            "multipart/form-data" => {
                Err(BodyError::MediaType("multipart bodies are not supported: send JSON or a urlencoded form".into()))
            }
            _ => Err(BodyError::MediaType(format!(
                "unsupported Content-Type {mime:?}: send application/json, application/yaml or application/x-www-form-urlencoded"
            ))),
        }
    }
}

/// Reads a whole body of at most `limit` bytes, pausing at most `stall` between two reads. A
/// declared `Content-Length` over the limit is refused before anything is read.
pub async fn read<B>(body: B, content_length: Option<u64>, limit: usize, stall: Duration) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if content_length.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = std::pin::pin!(body);
    let mut out = bytes::BytesMut::new();
    loop {
        match tokio::time::timeout(stall, body.as_mut().frame()).await {
            Err(_) => return Err(BodyError::Stalled(stall)),
            Ok(None) => return Ok(out.freeze()),
            Ok(Some(Err(e))) => return Err(BodyError::Read(e.to_string())),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if out.len() + data.len() > limit {
                        return Err(BodyError::TooLarge { limit });
                    }
                    out.extend_from_slice(&data);
                }
            }
        }
    }
}

/// The body of an entity write as a JSON value; an empty body is `{}`.
pub fn decode(kind: &str, content_type: Option<&str>, bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    Ok(match Format::of(content_type)? {
        Format::Form => form(kind, bytes)?,
        Format::Json => json(bytes)?,
        Format::Yaml => yaml(bytes)?,
    })
}

/// A declarative document (`POST /config`) as a JSON value: JSON or YAML, or a form whose `config`
/// field holds the document's text.
pub fn document(content_type: Option<&str>, bytes: &[u8]) -> Result<Value, BodyError> {
    match Format::of(content_type)? {
        Format::Json => json(bytes),
        Format::Yaml => yaml(bytes),
        Format::Form => {
            let text = url::form_urlencoded::parse(bytes)
                .find(|(k, _)| k == "config")
                .map(|(_, v)| v.into_owned())
                .ok_or_else(|| BodyError::Syntax { format: "form", message: "expected a 'config' field".into() })?;
            yaml(text.as_bytes())
        }
    }
}

/// JSON text as a value, within the limits.
pub fn json(bytes: &[u8]) -> Result<Value, BodyError> {
    let budget = Budget::new(bytes.len());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Bounded { depth: MAX_DEPTH, budget: &budget }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| budget.explain("JSON", e.to_string()))?;
    Ok(value)
}

/// YAML text (JSON is YAML too) as a value, within the limits.
pub fn yaml(bytes: &[u8]) -> Result<Value, BodyError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| BodyError::Syntax { format: "YAML", message: "the body is not UTF-8".into() })?;
    let budget = Budget::new(bytes.len());
    Bounded { depth: MAX_DEPTH, budget: &budget }
        .deserialize(yaml_serde::Deserializer::from_str(text))
        .map_err(|e| budget.explain("YAML", e.to_string()))
}

/// What a bounded parse may still spend, and which bound stopped it.
struct Budget {
    values: Cell<usize>,
    limit: usize,
    hit: Cell<Option<BodyError>>,
}

impl Budget {
    /// A document of `len` bytes holds at most about `len` values and bytes of text unless
    /// aliases repeat parts of it: each value costs one, each string (keys too) its length more.
    /// Twice the length leaves room for any honest document.
    fn new(len: usize) -> Budget {
        let limit = len.saturating_mul(2).saturating_add(16);
        Budget { values: Cell::new(limit), limit, hit: Cell::new(None) }
    }

    fn spend<E: serde::de::Error>(&self) -> Result<(), E> {
        self.spend_n(1)
    }

    fn spend_n<E: serde::de::Error>(&self, n: usize) -> Result<(), E> {
        match self.values.get().checked_sub(n) {
            Some(left) => {
                self.values.set(left);
                Ok(())
            }
            None => Err(self.stop(BodyError::TooManyValues { limit: self.limit })),
        }
    }

    fn stop<E: serde::de::Error>(&self, why: BodyError) -> E {
        let message = why.to_string();
        self.hit.set(Some(why));
        E::custom(message)
    }

    /// The error to report: the bound that stopped the parse, else the parser's own.
    fn explain(&self, format: &'static str, message: String) -> BodyError {
        self.hit.take().unwrap_or(BodyError::Syntax { format, message })
    }
}

/// Deserialises any self-describing input into a [`Value`] no deeper than `depth`.
struct Bounded<'a> {
    depth: usize,
    budget: &'a Budget,
}

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.budget.spend()?;
        deserializer.deserialize_any(self)
    }
}

impl Bounded<'_> {
    /// The depth left for the items of an array or object opened here.
    fn open<E: serde::de::Error>(&self) -> Result<usize, E> {
        self.depth.checked_sub(1).ok_or_else(|| self.budget.stop(BodyError::TooDeep { limit: MAX_DEPTH }))
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.budget.spend_n(v.len())?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.budget.spend_n(v.len())?;
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.open()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Bounded { depth, budget: self.budget })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.open()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.budget.spend_n(key.len())?;
            let value = map.next_value_seed(Bounded { depth, budget: self.budget })?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
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
        // Kong reads a form's `ttl` as a number.
        ("keyauth_credentials", "ttl") => Integer,
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

fn form(kind: &str, bytes: &[u8]) -> Result<Value, BodyError> {
    let mut root = Map::new();
    for (key, value) in url::form_urlencoded::parse(bytes) {
        let (key, value) = (key.into_owned(), value.into_owned());
        // `a.b.c` nests objects; a trailing `[]` or `[n]` on the last part makes an array. The
        // body, each object on the way and that array are one level each.
        if key.split('.').count() + 1 > MAX_DEPTH {
            return Err(BodyError::TooDeep { limit: MAX_DEPTH });
        }
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
    Ok(Value::Object(root))
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
    fn json_and_yaml_and_errors() {
        assert_eq!(decode("services", Some("application/json"), b" ").unwrap(), json!({}));
        assert_eq!(decode("services", None, b"").unwrap(), json!({}));
        assert_eq!(decode("services", Some("application/json"), br#"{"host":"a"}"#).unwrap(), json!({"host": "a"}));
        assert_eq!(
            decode("services", Some("application/yaml; charset=utf-8"), b"host: a\nport: 81\n").unwrap(),
            json!({"host": "a", "port": 81})
        );
        let e = decode("services", Some("application/json"), b"{nope").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.body["message"].as_str().unwrap().starts_with("Cannot parse JSON body"));
        let e = decode("services", Some("application/json"), br#"{"a":1} trailing"#).unwrap_err();
        assert_eq!(e.status, 400);
    }

    #[test]
    fn only_json_yaml_and_forms_are_accepted() {
        for refused in [None, Some("text/plain"), Some("multipart/form-data; boundary=x"), Some("application/xml")] {
            let e = decode("services", refused, br#"{"host":"a"}"#).unwrap_err();
            assert_eq!(e.status, 415, "{refused:?}: {e:?}");
        }
        assert_eq!(Format::of(Some("Application/JSON")), Ok(Format::Json));
        assert_eq!(Format::of(Some("application/merge-patch+json")), Ok(Format::Json));
        assert_eq!(Format::of(Some("text/yaml")), Ok(Format::Yaml));
    }

    fn nested_json(depth: usize) -> String {
        "[".repeat(depth) + &"]".repeat(depth)
    }

    #[test]
    fn nesting_is_capped_in_every_format() {
        let deepest = nested_json(MAX_DEPTH);
        assert!(json(deepest.as_bytes()).is_ok());
        assert!(yaml(deepest.as_bytes()).is_ok());
        let object = "{\"a\":".repeat(MAX_DEPTH - 1) + "{}" + &"}".repeat(MAX_DEPTH - 1);
        assert!(json(object.as_bytes()).is_ok());
        let too_deep = BodyError::TooDeep { limit: MAX_DEPTH };
        assert_eq!(json(nested_json(MAX_DEPTH + 1).as_bytes()), Err(too_deep.clone()));
        assert_eq!(yaml(nested_json(MAX_DEPTH + 1).as_bytes()), Err(too_deep.clone()));
        // Far deeper than any parser's own stack guard: still the same answer, no overflow.
        assert_eq!(json(nested_json(100_000).as_bytes()), Err(too_deep.clone()));
        assert_eq!(yaml(nested_json(100_000).as_bytes()), Err(too_deep.clone()));
        let block = (0..MAX_DEPTH + 1).map(|i| format!("{}a:\n", "  ".repeat(i))).collect::<String>();
        assert_eq!(yaml(block.as_bytes()), Err(too_deep.clone()));

        let form_key = |parts: usize| vec!["a"; parts].join(".") + "[]=1";
        let value = decode("plugins", Some("application/x-www-form-urlencoded"), form_key(MAX_DEPTH - 1).as_bytes());
        assert_eq!(depth(&value.unwrap()), MAX_DEPTH);
        let e = decode("plugins", Some("application/x-www-form-urlencoded"), form_key(MAX_DEPTH).as_bytes());
        assert_eq!(e.unwrap_err().status, 400);
        // The 100 KB key that used to overflow the stack.
        let e = decode("plugins", Some("application/x-www-form-urlencoded"), form_key(50_000).as_bytes()).unwrap_err();
        assert_eq!(e.body["message"], too_deep.to_string());
        assert!(too_deep.to_string().contains("64 levels"), "{too_deep}");
    }

    fn depth(v: &Value) -> usize {
        match v {
            Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
            Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    #[test]
    fn yaml_aliases_cannot_multiply_a_body() {
        let mut doc = String::from("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n");
        for (name, prev) in [("b", "a"), ("c", "b"), ("d", "c"), ("e", "d"), ("f", "e"), ("g", "f")] {
            doc.push_str(&format!("{name}: &{name} [{}]\n", vec![format!("*{prev}"); 10].join(", ")));
        }
        assert_eq!(yaml(doc.as_bytes()), Err(BodyError::TooManyValues { limit: 2 * doc.len() + 16 }));
        // Aliases of one long string, each copied again: refused by the bytes they would take.
        let long = "x".repeat(10_000);
        let doc = format!("a: &a \"{long}\"\nb: [{}]\n", vec!["*a"; 100].join(", "));
        assert_eq!(yaml(doc.as_bytes()), Err(BodyError::TooManyValues { limit: 2 * doc.len() + 16 }));
        // A few aliases are fine.
        assert_eq!(yaml(b"a: &x [1]\nb: *x\n").unwrap(), json!({"a": [1], "b": [1]}));
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_413() {
        let body = http_body_util::Full::new(Bytes::from(vec![b'x'; 100]));
        let stall = Duration::from_secs(60);
        assert_eq!(read(body.clone(), None, 100, stall).await.unwrap().len(), 100);
        assert_eq!(read(body.clone(), None, 99, stall).await, Err(BodyError::TooLarge { limit: 99 }));
        assert_eq!(read(body, Some(1 << 40), 1000, stall).await, Err(BodyError::TooLarge { limit: 1000 }));
        assert_eq!(ApiError::from(BodyError::TooLarge { limit: 1 }).status, 413);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_is_408() {
        // A body that sends one chunk, then nothing: the reader gives up after the pause allowed.
        let (sender, body) = {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<hyper::body::Frame<Bytes>, std::io::Error>>(1);
            (tx, http_body_util::StreamBody::new(tokio_stream_from(rx)))
        };
        sender.send(Ok(hyper::body::Frame::data(Bytes::from_static(b"{")))).await.unwrap();
        let stall = Duration::from_secs(5);
        let read = read(body, None, 100, stall).await;
        assert_eq!(read, Err(BodyError::Stalled(stall)));
        assert_eq!(ApiError::from(read.unwrap_err()).status, 408);
        drop(sender);
    }

    /// A stream over a channel's receiver, without another dependency.
    fn tokio_stream_from<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    #[test]
    fn documents_come_as_json_yaml_or_a_config_field() {
        let yaml_doc = "_format_version: '3.0'\nservices: []\n";
        assert_eq!(document(Some("application/yaml"), yaml_doc.as_bytes()).unwrap()["_format_version"], "3.0");
        let form = format!("config={}", url::form_urlencoded::byte_serialize(yaml_doc.as_bytes()).collect::<String>());
        assert_eq!(
            document(Some("application/x-www-form-urlencoded"), form.as_bytes()).unwrap()["_format_version"],
            "3.0"
        );
        assert!(matches!(document(Some("text/plain"), b"x"), Err(BodyError::MediaType(_))));
    }
}

/// Random input never panics a body reader: every failure is an error value.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    const FORM: &str = "application/x-www-form-urlencoded";

    /// Form keys built from Kong's notation, so the interesting paths are reached often.
    fn form_body() -> impl Strategy<Value = String> {
        let part = prop_oneof!["[a-z_]{0,6}", Just("config".to_string()), Just("headers".to_string())];
        let key = (
            prop::collection::vec(part, 1..6),
            prop_oneof![Just(String::new()), Just("[]".to_string()), "\\[[0-9]{0,3}\\]", "\\[.{0,3}"],
        )
            .prop_map(|(parts, suffix)| parts.join(".") + &suffix);
        let pair = (key, ".{0,8}").prop_map(|(k, v)| {
            let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            format!("{}={}", enc(&k), enc(&v))
        });
        prop::collection::vec(pair, 0..8).prop_map(|pairs| pairs.join("&"))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn forms_never_panic(body in form_body(), kind in prop_oneof![Just("routes"), Just("services"), Just("plugins")]) {
            let _ = decode(kind, Some(FORM), body.as_bytes());
        }

        #[test]
        fn raw_forms_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode("routes", Some(FORM), &bytes);
        }

        #[test]
        fn json_and_yaml_never_panic(text in ".{0,200}") {
            let _ = decode("services", Some("application/json"), text.as_bytes());
            let _ = decode("services", Some("application/yaml"), text.as_bytes());
        }

        #[test]
        fn yaml_like_text_never_panics(text in "([-:&*!\\[\\]{}, \n|>'\"#a-z0-9]){0,200}") {
            let _ = yaml(text.as_bytes());
        }

        #[test]
        fn accepted_values_are_within_the_depth(text in "[\\[\\]{}\"a:1,]{0,300}") {
            if let Ok(value) = json(text.as_bytes()) {
                prop_assert!(tests_depth(&value) <= MAX_DEPTH);
            }
        }
    }

    /// Declarative documents shaped like Kong's, with random values where the entity fields are.
    fn document_value() -> impl Strategy<Value = Value> {
        let field = prop::sample::select(vec![
            "name",
            "id",
            "host",
            "port",
            "path",
            "url",
            "protocol",
            "paths",
            "hosts",
            "methods",
            "snis",
            "service",
            "route",
            "consumer",
            "config",
            "headers",
            "tags",
            "target",
            "weight",
            "upstream",
            "cert",
            "key",
            "certificate",
            "username",
            "custom_id",
            "enabled",
            "strip_path",
            "regex_priority",
            "retries",
            "_format_version",
            "services",
            "routes",
            "plugins",
            "upstreams",
            "targets",
            "certificates",
            "ca_certificates",
            "consumers",
            "protocols",
            "slots",
            "instance_name",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            prop_oneof![
                Just("3.0".to_string()),
                Just("http:a".to_string()),
                Just("http://a.test/p".to_string()),
                "[a-z0-9:/.%~\\[\\]@?#-]{0,16}",
            ]
            .prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(field.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        fn declarative_documents_never_panic(mut doc in document_value(), version in any::<bool>()) {
            if version && let Value::Object(map) = &mut doc {
                map.insert("_format_version".into(), json!("3.0"));
            }
            let _ = crate::entities::parse_value(&doc);
            let text = doc.to_string();
            let _ = document(Some("application/json"), text.as_bytes()).map(|v| crate::entities::parse_value(&v));
            let _ = crate::entities::parse_str(&text, false, "random");
        }

        #[test]
        fn entity_bodies_never_panic_the_catalog(body in document_value(), kind in prop::sample::select(crate::entities::Kind::ALL.to_vec())) {
            let catalog = crate::catalog::Catalog::open(None, std::sync::Arc::new(crate::entities::plugins::testing::registry())).unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let target = |key| crate::catalog::Target { kind, parent: None, key };
            let _ = runtime.block_on(catalog.create(target(None), body.clone()));
            let key = body.get("name").and_then(Value::as_str).unwrap_or("x").to_string();
            let _ = runtime.block_on(catalog.update(target(Some(&key)), body.clone()));
            let _ = runtime.block_on(catalog.upsert(target(Some(&key)), body));
        }
    }

    fn tests_depth(v: &Value) -> usize {
        match v {
            Value::Array(items) => 1 + items.iter().map(tests_depth).max().unwrap_or(0),
            Value::Object(map) => 1 + map.values().map(tests_depth).max().unwrap_or(0),
            _ => 0,
        }
    }
}
