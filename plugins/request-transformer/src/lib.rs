//! Kong's `request-transformer` plugin: in `access`, edits the request before it goes upstream,
//! in Kong's order: the path (`replace.uri`), the method (`http_method`), the headers, the body
//! (JSON, form or multipart fields), then the query string; within each, remove, rename, replace, add,
//! append. Values may read the request's headers and query arguments (see [`entry`]). The body is
//! read only when body edits are configured and the request's `Content-Type` is one they apply to.

mod args;
mod body;
mod entry;
mod multipart;
mod object;

use std::collections::HashSet;

use gateway_pdk::{Body, Exit, FieldError, Flow, LogLevel, Phase, Plugin, Request};
use serde::{Deserialize, Deserializer, Serialize};

use args::Args;
use entry::{Env, Template};

/// The most body this plugin reads to edit: a body this size is edited well within a plugin
/// call's time budget (docs/plugins.md, request-transformer, has the measurements).
pub const BODY_CAP: u32 = 2 << 20;

/// The `body`, `headers` and `querystring` lists of one operation.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Lists {
    pub body: Vec<String>,
    pub headers: Vec<String>,
    pub querystring: Vec<String>,
}

/// `replace` also takes the path.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplaceLists {
    pub body: Vec<String>,
    pub headers: Vec<String>,
    pub querystring: Vec<String>,
    pub uri: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub http_method: Option<String>,
    #[serde(deserialize_with = "record")]
    pub remove: Lists,
    #[serde(deserialize_with = "record")]
    pub rename: Lists,
    #[serde(deserialize_with = "record")]
    pub replace: ReplaceLists,
    #[serde(deserialize_with = "record")]
    pub add: Lists,
    #[serde(deserialize_with = "record")]
    pub append: Lists,
}

/// A record given as `null` is the record with its defaults, as Kong fills it.
fn record<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(deserializer: D) -> Result<T, D::Error> {
    Ok(Option::deserialize(deserializer)?.unwrap_or_default())
}

/// What Kong's schema checks in one list's entries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// `remove.body`, `remove.querystring`: any name.
    Name,
    /// `remove.headers`: a header name.
    HeaderName,
    /// `rename.headers`: `old:new`, both header names.
    HeaderRename,
    /// `replace|add|append.headers`: `name:value`, a header name and a value.
    HeaderValue,
    /// The body and query string lists of rename, replace, add and append: `name:value`, a value
    /// required.
    NameValue,
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Text a header value may carry (what the host accepts).
fn is_header_text(text: &str) -> bool {
    text.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// Kong's messages for one entry, or `None` if it is good.
fn check_entry(entry: &str, rule: Rule) -> Option<String> {
    if entry.is_empty() {
        return Some("length must be at least 1".into());
    }
    let Some((name, value)) = entry::split(entry) else {
        return Some(format!("invalid value: {entry}"));
    };
    let not_header = |name: &str| Some(format!("'{name}' is not a valid header"));
    match rule {
        Rule::Name => None,
        Rule::HeaderName => (!is_header_name(name)).then(|| not_header(name)).flatten(),
        Rule::HeaderRename | Rule::HeaderValue if !entry.contains(':') => Some(format!("invalid value: {entry}")),
        Rule::HeaderRename if !is_header_name(name) => not_header(name),
        Rule::HeaderRename => (!is_header_name(value)).then(|| not_header(value)).flatten(),
        Rule::HeaderValue if !is_header_name(name) => not_header(name),
        Rule::HeaderValue => match Template::parse(value) {
            Err(unsupported) => Some(unsupported.to_string()),
            Ok(template) => template
                .0
                .iter()
                .any(|piece| matches!(piece, entry::Piece::Text(text) if !is_header_text(text)))
                .then(|| format!("'{value}' is not a valid header value")),
        },
        Rule::NameValue if value.is_empty() => Some(format!("key '{name}' has no value")),
        Rule::NameValue => Template::parse(value).err().map(|unsupported| unsupported.to_string()),
    }
}

/// Kong's schema rules beyond the fields' types, with its messages.
pub fn validate(config: &Config) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(method) = &config.http_method
        && (method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()))
    {
        errors.push(FieldError::new("http_method", format!("invalid value: {method}")));
    }
    let r = &config.replace;
    let lists: [(&str, &[String], Rule); 15] = [
        ("remove.body", &config.remove.body, Rule::Name),
        ("remove.headers", &config.remove.headers, Rule::HeaderName),
        ("remove.querystring", &config.remove.querystring, Rule::Name),
        ("rename.body", &config.rename.body, Rule::NameValue),
        ("rename.headers", &config.rename.headers, Rule::HeaderRename),
        ("rename.querystring", &config.rename.querystring, Rule::NameValue),
        ("replace.body", &r.body, Rule::NameValue),
        ("replace.headers", &r.headers, Rule::HeaderValue),
        ("replace.querystring", &r.querystring, Rule::NameValue),
        ("add.body", &config.add.body, Rule::NameValue),
        ("add.headers", &config.add.headers, Rule::HeaderValue),
        ("add.querystring", &config.add.querystring, Rule::NameValue),
        ("append.body", &config.append.body, Rule::NameValue),
        ("append.headers", &config.append.headers, Rule::HeaderValue),
        ("append.querystring", &config.append.querystring, Rule::NameValue),
    ];
    for (path, entries, rule) in lists {
        for (i, entry) in entries.iter().enumerate() {
            if let Some(message) = check_entry(entry, rule) {
                errors.push(FieldError::new(format!("{path}[{i}]"), message));
            }
        }
    }
    match r.uri.as_deref() {
        Some("") => errors.push(FieldError::new("replace.uri", "length must be at least 1")),
        Some(uri) => {
            if let Err(unsupported) = Template::parse(uri) {
                errors.push(FieldError::new("replace.uri", unsupported.to_string()));
            }
        }
        None => {}
    }
    errors
}

/// One entry, parsed: its name and its value (for `remove`, empty).
pub struct Op {
    pub name: String,
    pub value: Template,
}

/// One operation's entries, parsed.
#[derive(Default)]
pub struct Ops {
    pub body: Vec<Op>,
    pub headers: Vec<Op>,
    pub querystring: Vec<Op>,
}

impl Ops {
    /// `lists` parsed; with `values` false (`remove`), anything after a `:` is left unread, as
    /// Kong renders it and then ignores it (and the config check does not look at it).
    fn parse(lists: &Lists, values: bool) -> Result<Ops, String> {
        let ops = |entries: &[String]| -> Result<Vec<Op>, String> {
            entries
                .iter()
                .map(|entry| {
                    let (name, value) = entry::split(entry).ok_or_else(|| format!("invalid entry {entry:?}"))?;
                    let value =
                        if values { Template::parse(value).map_err(|e| e.to_string())? } else { Template(Vec::new()) };
                    Ok(Op { name: name.to_string(), value })
                })
                .collect()
        };
        Ok(Ops { body: ops(&lists.body)?, headers: ops(&lists.headers)?, querystring: ops(&lists.querystring)? })
    }

    fn all(&self) -> impl Iterator<Item = &Op> {
        self.body.iter().chain(&self.headers).chain(&self.querystring)
    }
}

/// The request's `Content-Type`, as far as body edits care (Kong's substring tests, in its order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Json,
    Multipart,
    Form,
}

fn kind(content_type: Option<&str>) -> Option<Kind> {
    let content_type = content_type?.to_ascii_lowercase();
    if content_type.contains("application/json") {
        Some(Kind::Json)
    } else if content_type.contains("multipart/form-data") {
        Some(Kind::Multipart)
    } else if content_type.contains("application/x-www-form-urlencoded") {
        Some(Kind::Form)
    } else {
        None
    }
}

pub struct RequestTransformer {
    method: Option<String>,
    uri: Option<Template>,
    remove: Ops,
    rename: Ops,
    replace: Ops,
    add: Ops,
    append: Ops,
    /// The request headers the templates read (lower-case), and whether they read the query.
    template_headers: Vec<String>,
    template_query: bool,
    body_edits: bool,
    query_edits: bool,
}

/// The request as it was when the plugin started on it: what the templates read, so a header
/// removed or replaced is still rendered with its old value, as in Kong.
struct Snapshot {
    headers: Vec<(String, Option<String>)>,
    query: Vec<(String, String)>,
}

impl Env for Snapshot {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(n, _)| n == name).and_then(|(_, v)| v.clone())
    }

    fn query(&self, name: &str) -> Option<String> {
        self.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }
}

impl Plugin for RequestTransformer {
    type Config = Config;
    const NAME: &'static str = "request-transformer";
    const PRIORITY: i32 = 801;
    const PHASES: &'static [Phase] = &[Phase::Access];

    fn validate(config: &Config) -> Vec<FieldError> {
        validate(config)
    }

    fn configure(config: Config) -> Result<Self, String> {
        let replace_lists = Lists {
            body: config.replace.body,
            headers: config.replace.headers,
            querystring: config.replace.querystring,
        };
        let mut plugin = RequestTransformer {
            method: config.http_method,
            uri: config.replace.uri.as_deref().map(Template::parse).transpose().map_err(|e| e.to_string())?,
            remove: Ops::parse(&config.remove, false)?,
            rename: Ops::parse(&config.rename, true)?,
            replace: Ops::parse(&replace_lists, true)?,
            add: Ops::parse(&config.add, true)?,
            append: Ops::parse(&config.append, true)?,
            template_headers: Vec::new(),
            template_query: false,
            body_edits: false,
            query_edits: false,
        };
        let operations = [&plugin.remove, &plugin.rename, &plugin.replace, &plugin.add, &plugin.append];
        plugin.body_edits = operations.iter().any(|ops| !ops.body.is_empty());
        plugin.query_edits = operations.iter().any(|ops| !ops.querystring.is_empty());
        let mut headers = Vec::new();
        let mut query = false;
        let templates = operations.iter().flat_map(|ops| ops.all()).map(|op| &op.value).chain(plugin.uri.as_ref());
        for piece in templates.flat_map(|t| &t.0) {
            match piece {
                entry::Piece::Header(name) if !headers.contains(name) => headers.push(name.clone()),
                entry::Piece::Query(_) => query = true,
                _ => {}
            }
        }
        plugin.template_headers = headers;
        plugin.template_query = query;
        Ok(plugin)
    }

    fn access(&self, req: &Request) -> Result<Flow, String> {
        let kind = kind(req.header("content-type").as_deref());
        let to_query =
            self.method.as_deref().is_some_and(|m| matches!(m, "GET" | "HEAD" | "TRACE")) && kind == Some(Kind::Form);
        let edit_body = self.body_edits && kind.is_some();
        let body = if to_query || edit_body {
            match req.body() {
                Body::Unread => return Ok(Flow::ReadBody(BODY_CAP)),
                Body::Complete(bytes) => Some(bytes),
                // Edits that cannot be made must not be skipped (a `remove` would let the field
                // through); Kong would edit an empty body in its place and lose the client's.
                Body::TooLarge(_) if edit_body => return Ok(Flow::Respond(too_large())),
                Body::TooLarge(_) => None,
            }
        } else {
            None
        };
        let env = self.snapshot(req);
        if let Some(uri) = &self.uri {
            req.set_path(&escape_path(&uri.render(&env)))?;
        }
        if let Some(method) = &self.method {
            req.set_method(method);
            if let (true, Some(body)) = (to_query, &body) {
                let fields = body::form_fields(body);
                if !fields.is_empty() {
                    let raw = req.raw_query();
                    let mut query = Args::parse(raw.as_bytes());
                    for (name, val) in fields {
                        query.push(&name, val);
                    }
                    req.set_raw_query(&String::from_utf8_lossy(&query.encode()))?;
                }
            }
        }
        self.edit_headers(req, &env)?;
        if let (true, Some(body)) = (edit_body, &body) {
            let ops = body::BodyOps {
                remove: &self.remove,
                rename: &self.rename,
                replace: &self.replace,
                add: &self.add,
                append: &self.append,
            };
            let edited = match kind {
                Some(Kind::Json) => body::json(body, &ops, &env),
                Some(Kind::Multipart) => {
                    body::multipart(body, req.header("content-type").as_deref().unwrap_or_default(), &ops, &env)
                }
                _ => body::form(body, &ops, &env),
            };
            match edited {
                Ok(edited) => req.set_body(&edited)?,
                Err(body::Unedited::Unchanged) => {}
                Err(body::Unedited::TooBig) => return Ok(Flow::Respond(too_large())),
                Err(body::Unedited::Malformed) => return Ok(Flow::Respond(malformed())),
            }
        }
        if self.query_edits {
            self.edit_query(req, &env)?;
        }
        Ok(Flow::Proceed)
    }
}

impl RequestTransformer {
    fn snapshot(&self, req: &Request) -> Snapshot {
        let headers = self.template_headers.iter().map(|name| (name.clone(), req.header(name))).collect();
        let mut query = Vec::new();
        if self.template_query {
            let raw = req.raw_query();
            let args = Args::parse(raw.as_bytes());
            for (name, _) in args.iter() {
                if !query.iter().any(|(n, _): &(String, String)| n == name) {
                    query.push((name.to_string(), args.first(name).unwrap_or_default()));
                }
            }
        }
        Snapshot { headers, query }
    }

    /// Kong's header edits. `Host` is not among the headers Kong edits, except that `replace` and
    /// `append` set it.
    fn edit_headers(&self, req: &Request, env: &Snapshot) -> Result<(), String> {
        let operations = [&self.remove, &self.rename, &self.replace, &self.add, &self.append];
        if operations.iter().all(|ops| ops.headers.is_empty()) {
            return Ok(());
        }
        let mut present: HashSet<String> = req.header_names().into_iter().collect();
        present.remove("host");
        for op in &self.remove.headers {
            let name = op.name.to_ascii_lowercase();
            if present.remove(&name) {
                req.remove_header(&name);
            }
        }
        for op in &self.rename.headers {
            let (old, new) = (op.name.to_ascii_lowercase(), op.value.render(env).to_ascii_lowercase());
            if old == new || !present.contains(&old) {
                continue;
            }
            let values = req.header_values(&old);
            req.remove_header(&old);
            req.remove_header(&new);
            for value in &values {
                req.add_header(&new, value)?;
            }
            present.remove(&old);
            present.insert(new);
        }
        for op in &self.replace.headers {
            let name = op.name.to_ascii_lowercase();
            if name != "host" && !present.contains(&name) {
                continue;
            }
            match op.value.render(env) {
                // nginx removes a header set to nothing.
                value if value.is_empty() => {
                    req.remove_header(&name);
                    present.remove(&name);
                }
                value => set_rendered(req, &name, &value, false),
            }
        }
        for op in &self.add.headers {
            let name = op.name.to_ascii_lowercase();
            let value = op.value.render(env);
            if name == "host" || present.contains(&name) || value.is_empty() {
                continue;
            }
            set_rendered(req, &name, &value, false);
            present.insert(name);
        }
        for op in &self.append.headers {
            let name = op.name.to_ascii_lowercase();
            let value = op.value.render(env);
            if value.is_empty() {
                continue;
            }
            set_rendered(req, &name, &value, name != "host");
            present.insert(name);
        }
        Ok(())
    }

    /// Kong's query string edits, on the query as the method change left it.
    fn edit_query(&self, req: &Request, env: &Snapshot) -> Result<(), String> {
        let raw = req.raw_query();
        let mut args = Args::parse(raw.as_bytes());
        for op in &self.remove.querystring {
            args.remove(&op.name);
        }
        for op in &self.rename.querystring {
            args.rename(&op.name, &op.value.render(env));
        }
        for op in &self.replace.querystring {
            args.replace(&op.name, &op.value.render(env));
        }
        for op in &self.add.querystring {
            args.add(&op.name, &op.value.render(env));
        }
        for op in &self.append.querystring {
            args.append(&op.name, &op.value.render(env));
        }
        let edited = args.encode();
        if edited != raw.as_bytes() {
            req.set_raw_query(&String::from_utf8_lossy(&edited))?;
        }
        Ok(())
    }
}

/// The answer to a body too big to edit.
fn too_large() -> Exit {
    Exit {
        status: 413,
        headers: vec![("Content-Type".into(), "application/json; charset=utf-8".into())],
        body: br#"{"message":"Request body too large to transform"}"#.to_vec(),
    }
}

/// The answer to a `multipart/form-data` body that body edits apply to but that cannot be read as
/// one (or that an edit's value would break): sent on unedited, an upstream's lenient parser could
/// still find a field a `remove` was to take out.
fn malformed() -> Exit {
    Exit {
        status: 400,
        headers: vec![("Content-Type".into(), "application/json; charset=utf-8".into())],
        body: br#"{"message":"Invalid multipart/form-data body"}"#.to_vec(),
    }
}

/// Sets (or adds) a header to a value rendered from the request. A value no header may carry
/// (a decoded query argument with control characters) is left out rather than failing the request.
fn set_rendered(req: &Request, name: &str, value: &str, add: bool) {
    let done = if add { req.add_header(name, value) } else { req.set_header(name, value) };
    if done.is_err() {
        gateway_pdk::log(LogLevel::Debug, &format!("header {name}: the rendered value is not a header value"));
    }
}

/// The path as Kong's `set_path` sends it (`kong.tools.uri.escape`): every byte outside
/// `A-Za-z0-9-._~!#$&'()*+,/:;=?@[]%` percent-encoded, so a space or a non-ASCII character in
/// `replace.uri` (or in what a template put there) goes upstream escaped rather than failing the
/// request.
fn escape_path(path: &str) -> std::borrow::Cow<'_, str> {
    let kept = |b: u8| b.is_ascii_alphanumeric() || b"-._~!#$&'()*+,/:;=?@[]%".contains(&b);
    if path.bytes().all(kept) {
        return path.into();
    }
    let mut out = String::with_capacity(path.len() + 8);
    for b in path.bytes() {
        if kept(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.into()
}

gateway_pdk::plugin!(RequestTransformer);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_pdk::config;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn check(json: &Value) -> Result<Value, Vec<(String, String)>> {
        config::check::<Config>(&json.to_string(), validate)
            .map(|filled| serde_json::from_str(&filled).unwrap())
            .map_err(|errors| errors.into_iter().map(|e| (e.path, e.message)).collect())
    }

    fn err(path: &str, message: &str) -> Result<Value, Vec<(String, String)>> {
        Err(vec![(path.to_string(), message.to_string())])
    }

    #[test]
    fn kongs_defaults() {
        let lists = json!({"body": [], "headers": [], "querystring": []});
        assert_eq!(
            check(&json!({})).unwrap(),
            json!({
                "http_method": null, "remove": lists, "rename": lists,
                "replace": {"body": [], "headers": [], "querystring": [], "uri": null},
                "add": lists, "append": lists
            })
        );
        assert!(check(&json!({"remove": null, "add": {"headers": ["a:b"]}})).is_ok());
    }

    /// Kong's spec/03-plugins/36-request-transformer/01-schema_spec.lua, and the schema's other rules.
    #[test]
    fn kongs_schema() {
        assert!(check(&json!({"http_method": "GET"})).is_ok());
        assert_eq!(check(&json!({"http_method": "HELLO!"})), err("http_method", "invalid value: HELLO!"));
        assert_eq!(check(&json!({"http_method": "get"})), err("http_method", "invalid value: get"));
        assert!(check(&json!({"add": {"querystring": ["p1:$(query_params.user1)", "p2:value"]}})).is_ok());
        assert_eq!(
            check(&json!({"add": {"querystring": ["p2:"]}})),
            err("add.querystring[0]", "key 'p2' has no value")
        );
        assert_eq!(check(&json!({"rename": {"body": ["p2"]}})), err("rename.body[0]", "key 'p2' has no value"));
        assert!(check(&json!({"add": {"querystring": ["p2:$(uri_captures user2)"]}})).is_err());
        assert_eq!(
            check(&json!({"add": {"headers": ["x foo:bar"]}})),
            err("add.headers[0]", "'x foo' is not a valid header")
        );
        assert_eq!(check(&json!({"add": {"headers": ["x-foo"]}})), err("add.headers[0]", "invalid value: x-foo"));
        assert_eq!(
            check(&json!({"rename": {"headers": ["a:b c"]}})),
            err("rename.headers[0]", "'b c' is not a valid header")
        );
        assert_eq!(
            check(&json!({"remove": {"headers": ["a b"]}})),
            err("remove.headers[0]", "'a b' is not a valid header")
        );
        assert_eq!(check(&json!({"remove": {"body": [""]}})), err("remove.body[0]", "length must be at least 1"));
        assert_eq!(
            check(&json!({"remove": {"querystring": [":x"]}})),
            err("remove.querystring[0]", "invalid value: :x")
        );
        assert_eq!(check(&json!({"replace": {"uri": ""}})), err("replace.uri", "length must be at least 1"));
        assert_eq!(check(&json!({"add": {"headers": [1]}})), err("add.headers[0]", "expected a string"));
        assert_eq!(check(&json!({"add": {"cookies": []}})), err("add.cookies", "unknown field"));
        assert_eq!(check(&json!({"add": {"headers": null}})), err("add.headers", "required field missing"));
        assert_eq!(check(&json!({"replace": {"uri": "/x"}, "add": {"uri": "/y"}})), err("add.uri", "unknown field"));
        assert!(check(&json!({"add": {"headers": ["x:a\u{7}b"]}})).is_err(), "a control character in a header value");
    }

    #[test]
    fn lua_expressions_are_refused_where_kong_would_run_them() {
        for (path, config) in [
            ("replace.uri", json!({"replace": {"uri": "/users/$(uri_captures.user)"}})),
            ("add.headers[0]", json!({"add": {"headers": ["x-v:$(shared.my_version)"]}})),
            ("append.body[0]", json!({"append": {"body": ["x:$(type(headers.x))"]}})),
            ("rename.querystring[0]", json!({"rename": {"querystring": ["a:$(headers.b or 'c')"]}})),
        ] {
            let errors = check(&config).unwrap_err();
            assert_eq!(errors[0].0, path);
            assert!(errors[0].1.contains("is not supported"), "{errors:?}");
        }
        assert!(
            check(&json!({"add": {"headers": ["x-u:$(headers.user_agent)", "x-q:$(query_params[\"q\"])"]}})).is_ok()
        );
    }

    #[test]
    fn content_kinds_as_kong_tells_them() {
        assert_eq!(kind(Some("application/json; charset=utf-8")), Some(Kind::Json));
        assert_eq!(kind(Some("Application/JSON")), Some(Kind::Json));
        assert_eq!(kind(Some("application/x-www-form-urlencoded")), Some(Kind::Form));
        assert_eq!(kind(Some("multipart/form-data; boundary=x")), Some(Kind::Multipart));
        assert_eq!(kind(Some("text/plain")), None);
        assert_eq!(kind(None), None);
    }

    proptest! {
        #[test]
        fn entry_checks_never_panic(entry in ".{0,60}") {
            for rule in [Rule::Name, Rule::HeaderName, Rule::HeaderRename, Rule::HeaderValue, Rule::NameValue] {
                let _ = check_entry(&entry, rule);
            }
        }

        #[test]
        fn good_header_entries_pass(name in "[A-Za-z0-9_-]{1,20}", value in "[ -~&&[^$]]{1,30}") {
            prop_assert_eq!(check_entry(&format!("{name}:{value}"), Rule::HeaderValue), None);
        }
    }
}
