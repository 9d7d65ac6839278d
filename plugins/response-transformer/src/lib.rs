//! Kong's `response-transformer` plugin: edits the response on its way to the client. In
//! `header_filter`, the headers (remove, rename, replace, add, append, in Kong's order); in
//! `body_filter`, the top-level fields of a JSON object body. A JSON body is buffered in the
//! instance (which serves one request at a time) up to [`BODY_CAP`], edited at its end, and sent
//! in one piece; past the cap (or past [`MAX_FIELDS`] fields) the response fails rather than go
//! out unedited.

// The request-transformer's JSON object editing, shared as a file rather than a crate of its own.
#[path = "../../request-transformer/src/object.rs"]
mod object;
mod parse;

use std::cell::RefCell;
use std::collections::HashSet;

use gateway_pdk::{FieldError, Phase, Plugin, Request, Response, host};
use object::{Field, Object};
use parse::{JsonType, json_text, split};
use serde::{Deserialize, Deserializer, Serialize};

/// The most response body buffered for JSON edits: a body this size is edited well within a
/// plugin call's time budget (docs/plugins.md, response-transformer).
pub const BODY_CAP: usize = 2 << 20;
/// The most top-level fields a body may have to be edited, for the same reason.
pub const MAX_FIELDS: usize = 10_000;

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Names {
    pub json: Vec<String>,
    pub headers: Vec<String>,
}

/// `replace`, `add` and `append`: entries with values, and the JSON type of each `json` value.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Values {
    pub json: Vec<String>,
    pub json_types: Vec<JsonType>,
    pub headers: Vec<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    #[serde(deserialize_with = "record")]
    pub remove: Names,
    #[serde(deserialize_with = "record")]
    pub rename: Names,
    #[serde(deserialize_with = "record")]
    pub replace: Values,
    #[serde(deserialize_with = "record")]
    pub add: Values,
    #[serde(deserialize_with = "record")]
    pub append: Values,
}

/// A record given as `null` is the record with its defaults, as Kong fills it.
fn record<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(deserializer: D) -> Result<T, D::Error> {
    Ok(Option::deserialize(deserializer)?.unwrap_or_default())
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Kong's schema rules beyond the fields' types, with its messages. Header names and values are
/// also checked where Kong checks them only when a response comes (and then fails it).
pub fn validate(config: &Config) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut each = |path: &str, entries: &[String], check: &dyn Fn(&str) -> Option<String>| {
        for (i, entry) in entries.iter().enumerate() {
            let message = if entry.is_empty() { Some("length must be at least 1".to_string()) } else { check(entry) };
            if let Some(message) = message {
                errors.push(FieldError::new(format!("{path}[{i}]"), message));
            }
        }
    };
    let any = |_: &str| None;
    let colon = |entry: &str| match split(entry) {
        Some(_) if entry.contains(':') => None,
        _ => Some(format!("invalid value: {entry}")),
    };
    let header_name = |entry: &str| match split(entry) {
        Some((name, _)) if is_header_name(name) => None,
        Some((name, _)) => Some(format!("'{name}' is not a valid header")),
        None => Some(format!("invalid value: {entry}")),
    };
    let header_rename = |entry: &str| {
        colon(entry).or_else(|| {
            let (old, new) = split(entry)?;
            [old, new].into_iter().find(|n| !is_header_name(n)).map(|n| format!("'{n}' is not a valid header"))
        })
    };
    let header_value = |entry: &str| {
        colon(entry).or_else(|| header_name(entry)).or_else(|| {
            let (_, value) = split(entry)?;
            (!value.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)))
                .then(|| format!("'{value}' is not a valid header value"))
        })
    };
    each("remove.json", &config.remove.json, &any);
    each("remove.headers", &config.remove.headers, &header_name);
    each("rename.json", &config.rename.json, &colon);
    each("rename.headers", &config.rename.headers, &header_rename);
    for (op, values) in [("replace", &config.replace), ("add", &config.add), ("append", &config.append)] {
        each(&format!("{op}.json"), &values.json, &colon);
        each(&format!("{op}.headers"), &values.headers, &header_value);
    }
    errors
}

/// A header edit: its lower-case name and its value (empty for none).
struct HeaderOp {
    name: String,
    value: String,
}

/// A JSON edit: the field and its value as JSON text, already of its `json_types` type (`None`:
/// skipped, as Kong skips a value that is not a number).
struct JsonOp {
    name: String,
    value: Option<String>,
}

/// Where the body of the response in flight is.
enum Body {
    /// Not edited: every chunk passes.
    Through,
    /// Being gathered for the JSON edits.
    Buffering(Vec<u8>),
}

pub struct ResponseTransformer {
    remove_headers: Vec<String>,
    rename_headers: Vec<HeaderOp>,
    replace_headers: Vec<HeaderOp>,
    add_headers: Vec<HeaderOp>,
    append_headers: Vec<HeaderOp>,
    remove_json: Vec<String>,
    rename_json: Vec<(String, String)>,
    replace_json: Vec<JsonOp>,
    add_json: Vec<JsonOp>,
    append_json: Vec<JsonOp>,
    json_edits: bool,
    body: RefCell<Body>,
}

fn header_ops(entries: &[String]) -> Vec<HeaderOp> {
    entries
        .iter()
        .filter_map(|entry| split(entry))
        .map(|(name, value)| HeaderOp { name: header_key(name), value: value.to_string() })
        .collect()
}

/// A configured header name as Kong's response headers take it (`ngx.header`): lower case here,
/// and `_` for `-`, so `x_powered_by` names `X-Powered-By`.
fn header_key(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

fn json_ops(values: &Values) -> Vec<JsonOp> {
    values
        .json
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| split(entry).map(|(name, value)| (i, name, value)))
        .map(|(i, name, value)| JsonOp {
            name: name.to_string(),
            value: json_text(value, values.json_types.get(i).copied()),
        })
        .collect()
}

impl Plugin for ResponseTransformer {
    type Config = Config;
    const NAME: &'static str = "response-transformer";
    const PRIORITY: i32 = 800;
    const PHASES: &'static [Phase] = &[Phase::HeaderFilter, Phase::BodyFilter];

    fn validate(config: &Config) -> Vec<FieldError> {
        validate(config)
    }

    fn configure(config: Config) -> Result<Self, String> {
        let names = |entries: &[String]| -> Vec<String> {
            entries.iter().filter_map(|entry| split(entry)).map(|(name, _)| name.to_string()).collect()
        };
        let json_edits =
            [&config.remove.json, &config.rename.json, &config.replace.json, &config.add.json, &config.append.json]
                .iter()
                .any(|list| !list.is_empty());
        Ok(ResponseTransformer {
            remove_headers: names(&config.remove.headers).iter().map(|n| header_key(n)).collect(),
            rename_headers: header_ops(&config.rename.headers)
                .into_iter()
                .map(|op| HeaderOp { value: header_key(&op.value), ..op })
                .collect(),
            replace_headers: header_ops(&config.replace.headers),
            add_headers: header_ops(&config.add.headers),
            append_headers: header_ops(&config.append.headers),
            remove_json: names(&config.remove.json),
            rename_json: config
                .rename
                .json
                .iter()
                .filter_map(|entry| split(entry))
                .map(|(old, new)| (old.to_string(), new.to_string()))
                .collect(),
            replace_json: json_ops(&config.replace),
            add_json: json_ops(&config.add),
            append_json: json_ops(&config.append),
            json_edits,
            body: RefCell::new(Body::Through),
        })
    }

    fn header_filter(&self, _req: &Request, res: &Response) -> Result<(), String> {
        let original_type = res.header("content-type");
        self.edit_headers(res)?;
        let edit_body = self.json_edits && res.header("content-type").is_some_and(|ct| parse::is_json(&ct));
        // The body changes length: Kong drops Content-Length for a JSON response it edits.
        if self.json_edits && (edit_body || original_type.is_some_and(|ct| parse::is_json(&ct))) {
            res.remove_header("content-length");
        }
        *self.body.borrow_mut() = if edit_body { Body::Buffering(Vec::new()) } else { Body::Through };
        if !edit_body {
            // Nothing to edit in this body: no body_filter calls, and the upstream's
            // Content-Length stays (Kong keeps it unless it edits JSON).
            host::pass_body()?;
        }
        Ok(())
    }

    fn body_filter(&self, _res: &Response, chunk: Vec<u8>, eof: bool) -> Result<Vec<u8>, String> {
        let step = feed(&mut self.body.borrow_mut(), chunk, eof, BODY_CAP);
        Ok(match step {
            Step::Pass(chunk) => chunk,
            Step::Hold => Vec::new(),
            // A body that cannot be edited is not sent unedited (a `remove` would leak what it
            // removes): the response fails, cut short after its head.
            Step::Overflow => {
                return Err(format!("the JSON response body is over {BODY_CAP} bytes: too large to transform"));
            }
            Step::Whole(body) => match self.edit_json(&body) {
                Ok(edited) => edited,
                // Not an object: no top-level fields to edit (Kong's edits do nothing to it either).
                Err(Unedited::NotAnObject) => body,
                Err(Unedited::TooManyFields) => {
                    return Err(format!("the JSON response body has over {MAX_FIELDS} fields: too many to transform"));
                }
            },
        })
    }
}

/// What to do with one chunk of the body.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Send it on: this body is not edited.
    Pass(Vec<u8>),
    /// Keep it: the body is being gathered.
    Hold,
    /// The body outgrew `cap`: it cannot be edited (what was gathered is dropped).
    Overflow,
    /// The whole body, to edit and send.
    Whole(Vec<u8>),
}

fn feed(state: &mut Body, chunk: Vec<u8>, eof: bool, cap: usize) -> Step {
    let Body::Buffering(buffer) = state else { return Step::Pass(chunk) };
    if buffer.len() + chunk.len() > cap {
        *state = Body::Through;
        return Step::Overflow;
    }
    buffer.extend_from_slice(&chunk);
    if !eof {
        return Step::Hold;
    }
    let body = std::mem::take(buffer);
    *state = Body::Through;
    Step::Whole(body)
}

impl ResponseTransformer {
    /// Kong's header edits. Whether a header is there is decided on the headers as they came, as
    /// Kong's `header_filter` reads them once.
    fn edit_headers(&self, res: &Response) -> Result<(), String> {
        if self.remove_headers.is_empty()
            && self.rename_headers.is_empty()
            && self.replace_headers.is_empty()
            && self.add_headers.is_empty()
            && self.append_headers.is_empty()
        {
            return Ok(());
        }
        let present: HashSet<String> = res.header_names().into_iter().collect();
        let renamed: Vec<(&HeaderOp, Vec<String>)> = self
            .rename_headers
            .iter()
            .filter(|op| present.contains(&op.name))
            .map(|op| (op, res.header_values(&op.name)))
            .collect();
        for name in &self.remove_headers {
            res.remove_header(name);
        }
        for (op, values) in renamed {
            if op.value.is_empty() || op.value.eq_ignore_ascii_case(&op.name) {
                continue;
            }
            res.remove_header(&op.value);
            for value in &values {
                res.add_header(&op.value, value)?;
            }
            res.remove_header(&op.name);
        }
        for op in self.replace_headers.iter().filter(|op| present.contains(&op.name) && !op.value.is_empty()) {
            res.set_header(&op.name, &op.value)?;
        }
        for op in self.add_headers.iter().filter(|op| !present.contains(&op.name) && !op.value.is_empty()) {
            res.set_header(&op.name, &op.value)?;
        }
        for op in self.append_headers.iter().filter(|op| !op.value.is_empty()) {
            res.add_header(&op.name, &op.value)?;
        }
        Ok(())
    }

    /// Kong's JSON edits on a JSON object body.
    fn edit_json(&self, body: &[u8]) -> Result<Vec<u8>, Unedited> {
        let mut fields = Object::parse(body, MAX_FIELDS).map_err(|unread| match unread {
            object::Unread::NotAnObject => Unedited::NotAnObject,
            object::Unread::TooManyFields => Unedited::TooManyFields,
        })?;
        self.edit_fields(&mut fields);
        Ok(fields.to_vec())
    }

    fn edit_fields(&self, fields: &mut Object<'_>) {
        for name in &self.remove_json {
            fields.remove(name);
        }
        for (old, new) in &self.rename_json {
            if !new.is_empty()
                && old != new
                && let Some(value) = fields.remove(old)
            {
                fields.insert(new, value);
            }
        }
        for op in &self.replace_json {
            if let Some(value) = &op.value
                && fields.get(&op.name).is_some_and(|f| !f.is_false())
            {
                fields.insert(&op.name, Field::Made(value.clone()));
            }
        }
        for op in &self.add_json {
            if let Some(value) = &op.value
                && fields.get(&op.name).is_none_or(Field::is_false)
            {
                fields.insert(&op.name, Field::Made(value.clone()));
            }
        }
        for op in &self.append_json {
            if let Some(value) = &op.value {
                let appended = Field::appended(fields.get(&op.name), value);
                fields.insert(&op.name, appended);
            }
        }
    }
}

/// Why a JSON response body is sent as it came.
#[derive(Debug, PartialEq, Eq)]
enum Unedited {
    /// Not JSON, or not an object (Kong fails on those, or sends them unedited).
    NotAnObject,
    /// More top-level fields than the instance's memory can hold beside the body.
    TooManyFields,
}

gateway_pdk::plugin!(ResponseTransformer);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_pdk::config;
    use serde_json::{Value, json};

    fn check(json: &Value) -> Result<Value, Vec<(String, String)>> {
        config::check::<Config>(&json.to_string(), validate)
            .map(|filled| serde_json::from_str(&filled).unwrap())
            .map_err(|errors| errors.into_iter().map(|e| (e.path, e.message)).collect())
    }

    fn err(path: &str, message: &str) -> Result<Value, Vec<(String, String)>> {
        Err(vec![(path.to_string(), message.to_string())])
    }

    fn plugin(config: Value) -> ResponseTransformer {
        ResponseTransformer::configure(config::parse_valid(&config.to_string(), validate).unwrap()).unwrap()
    }

    #[test]
    fn kongs_defaults() {
        let names = json!({"json": [], "headers": []});
        let values = json!({"json": [], "json_types": [], "headers": []});
        assert_eq!(
            check(&json!({})).unwrap(),
            json!({"remove": names, "rename": names, "replace": values, "add": values, "append": values})
        );
    }

    #[test]
    fn kongs_schema() {
        assert!(check(&json!({"add": {"json": ["a:1"], "json_types": ["number"], "headers": ["x-a:b"]}})).is_ok());
        assert_eq!(check(&json!({"add": {"json": ["a"]}})), err("add.json[0]", "invalid value: a"));
        assert_eq!(check(&json!({"replace": {"headers": ["x-a"]}})), err("replace.headers[0]", "invalid value: x-a"));
        assert_eq!(
            check(&json!({"rename": {"headers": ["x-a:x b"]}})),
            err("rename.headers[0]", "'x b' is not a valid header")
        );
        assert_eq!(check(&json!({"rename": {"json": [":b"]}})), err("rename.json[0]", "invalid value: :b"));
        assert_eq!(
            check(&json!({"append": {"json_types": ["object"]}})),
            err("append.json_types[0]", "expected one of: boolean, number, string")
        );
        assert_eq!(check(&json!({"remove": {"json": [""]}})), err("remove.json[0]", "length must be at least 1"));
        assert_eq!(check(&json!({"remove": {"body": []}})), err("remove.body", "unknown field"));
        assert_eq!(
            check(&json!({"add": {"headers": ["x a:b"]}})),
            err("add.headers[0]", "'x a' is not a valid header")
        );
        assert!(check(&json!({"add": {"headers": ["x-a:\u{1}"]}})).is_err());
    }

    #[test]
    fn json_edits_in_kongs_order() {
        let transformer = plugin(json!({
            "remove": {"json": ["secret"]},
            "rename": {"json": ["old:new", "same:same"]},
            "replace": {"json": ["count:7", "off:x", "gone:x"], "json_types": ["number"]},
            "add": {"json": ["flag:true", "count:99", "off:added"], "json_types": ["boolean", "number"]},
            "append": {"json": ["list:b", "text:more", "n:1"], "json_types": ["string", "string", "number"]},
        }));
        let body =
            json!({"secret": "s", "old": 1, "same": 2, "count": 3, "off": false, "list": ["a"], "text": "t", "n": 5})
                .to_string();
        let edited = transformer.edit_json(body.as_bytes()).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&edited).unwrap(),
            json!({"new": 1, "same": 2, "count": 7, "off": "added", "flag": true, "list": ["a", "b"],
                   "text": ["t", "more"], "n": [1]})
        );
    }

    #[test]
    fn the_body_is_gathered_up_to_the_cap() {
        let mut state = Body::Buffering(Vec::new());
        assert_eq!(feed(&mut state, b"{\"a\":".to_vec(), false, 10), Step::Hold);
        assert_eq!(feed(&mut state, b"1}".to_vec(), true, 10), Step::Whole(b"{\"a\":1}".to_vec()));
        assert_eq!(feed(&mut state, b"next".to_vec(), false, 10), Step::Pass(b"next".to_vec()));

        let mut state = Body::Buffering(Vec::new());
        assert_eq!(feed(&mut state, b"123456".to_vec(), false, 10), Step::Hold);
        assert_eq!(feed(&mut state, b"7890x".to_vec(), false, 10), Step::Overflow);
        assert_eq!(feed(&mut state, b"rest".to_vec(), true, 10), Step::Pass(b"rest".to_vec()));

        let mut state = Body::Through;
        assert_eq!(feed(&mut state, b"x".to_vec(), true, 10), Step::Pass(b"x".to_vec()));
        let mut state = Body::Buffering(Vec::new());
        assert_eq!(feed(&mut state, Vec::new(), true, 10), Step::Whole(Vec::new()));
    }

    #[test]
    fn bodies_it_does_not_edit() {
        let transformer = plugin(json!({"add": {"json": ["a:b"]}}));
        assert_eq!(transformer.edit_json(b"[1]"), Err(Unedited::NotAnObject));
        assert_eq!(transformer.edit_json(b"not json"), Err(Unedited::NotAnObject));
        assert_eq!(transformer.edit_json(b""), Err(Unedited::NotAnObject));
        assert_eq!(transformer.edit_json(br#"{"x":1}"#).unwrap(), br#"{"x":1,"a":"b"}"#);
        let deep = format!("{{\"a\":[{}0]}}", "0,".repeat(MAX_FIELDS));
        assert!(transformer.edit_json(deep.as_bytes()).is_ok(), "nested values do not count");
        let wide: Vec<String> = (0..=MAX_FIELDS).map(|i| format!("\"k{i}\":0")).collect();
        let wide = format!("{{{}}}", wide.join(","));
        assert_eq!(transformer.edit_json(wide.as_bytes()), Err(Unedited::TooManyFields));
    }
}
