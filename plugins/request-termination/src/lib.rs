//! Kong's `request-termination` plugin: in `access`, ends the request with a response of its own,
//! before the upstream: `status_code` with `{"message": ...}` (`message`, else Kong's default for the
//! status), or the raw `body` with `content_type`, or with `echo` the request itself as JSON. With
//! `trigger`, only requests carrying that header or query argument are ended.

use gateway_pdk::{Exit, FieldError, Flow, HeaderName, Phase, Plugin, Request, host};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Kong's `Content-Type` for the JSON bodies it makes.
const JSON: &str = "application/json; charset=utf-8";

/// Query arguments an echo lists at most (nginx's `lua_max_uri_args`, which Kong reads them with).
const MAX_ECHOED_ARGS: usize = 100;

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub status_code: i64,
    pub message: Option<String>,
    pub content_type: Option<String>,
    pub body: Option<String>,
    pub echo: bool,
    pub trigger: Option<HeaderName>,
}

impl Default for Config {
    fn default() -> Self {
        Config { status_code: 503, message: None, content_type: None, body: None, echo: false, trigger: None }
    }
}

pub struct RequestTermination {
    /// The answer, made once; `None` for an echo, which is made per request.
    exit: Option<Exit>,
    status: u16,
    message: Option<String>,
    trigger: Option<HeaderName>,
}

impl Plugin for RequestTermination {
    type Config = Config;
    const NAME: &'static str = "request-termination";
    const PRIORITY: i32 = 2;
    const PHASES: &'static [Phase] = &[Phase::Access];

    fn validate(config: &Config) -> Vec<FieldError> {
        validate(config)
    }

    fn configure(config: Config) -> Result<Self, String> {
        let status = u16::try_from(config.status_code).map_err(|_| "status_code out of range".to_string())?;
        let message = config.message.clone().or_else(|| default_message(status).map(str::to_string));
        Ok(RequestTermination {
            exit: (!config.echo).then(|| answer(status, &config)),
            status,
            message,
            trigger: config.trigger,
        })
    }

    fn access(&self, req: &Request) -> Result<Flow, String> {
        if let Some(trigger) = &self.trigger
            && !triggered(req, trigger)
        {
            return Ok(Flow::Proceed);
        }
        let exit = match &self.exit {
            Some(exit) => exit.clone(),
            None => json_exit(self.status, &self.echo(req)),
        };
        Ok(Flow::Respond(exit))
    }
}

impl RequestTermination {
    /// Kong's echo, less what the request handle does not give a plugin: the request's headers,
    /// body and URI captures, and the `kong` node block; the route and service are their id and name.
    fn echo(&self, req: &Request) -> Value {
        let mut echo = Map::new();
        if let Some(message) = &self.message {
            echo.insert("message".into(), message.clone().into());
        }
        let request = json!({
            "scheme": req.scheme(),
            "host": req.host(),
            "port": req.port(),
            "query": query(&req.raw_query()),
            "method": req.method(),
            "path": req.path(),
        });
        echo.insert("request".into(), request);
        for (key, entity) in [("matched_route", host::route()), ("matched_service", host::service())] {
            if let Some(entity) = entity {
                echo.insert(key.into(), json!({ "id": entity.id, "name": entity.name }));
            }
        }
        Value::Object(echo)
    }
}

/// Kong's schema rules beyond the fields' types, with its messages; the rules across fields name
/// the configuration as a whole, and only the first that fails is said, as Kong does.
pub fn validate(config: &Config) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if !(100..=599).contains(&config.status_code) {
        errors.push(FieldError::new("status_code", "value should be between 100 and 599"));
    }
    if let Some(content_type) = &config.content_type
        && content_type.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        // Kong takes any string; one that cannot be a header would fail every request instead.
        errors.push(FieldError::new("content_type", "must not contain control characters"));
    }
    let present = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.is_empty());
    let (message, content_type, body) =
        (present(&config.message), present(&config.content_type), present(&config.body));
    let whole = if message && (content_type || body) {
        Some("message cannot be used with content_type or body")
    } else if content_type && !body {
        Some("content_type requires a body")
    } else if config.echo && (content_type || body) {
        Some("echo cannot be used with content_type and body")
    } else {
        None
    };
    errors.extend(whole.map(|message| FieldError::new("", message)));
    errors
}

/// Kong's messages for the statuses it has one for.
pub fn default_message(status: u16) -> Option<&'static str> {
    Some(match status {
        401 => "Unauthorized",
        404 => "Not found",
        405 => "Method not allowed",
        500 => "An unexpected error occurred",
        502 => "Bad Gateway",
        503 => "Service unavailable",
        _ => return None,
    })
}

/// The answer of a configuration without `echo`: the raw body (with its content type, if one is
/// set), else the message as JSON, else nothing. As in Kong, an empty `body` or `message` given is
/// still sent.
pub fn answer(status: u16, config: &Config) -> Exit {
    if let Some(body) = &config.body {
        let headers = config.content_type.iter().map(|ct| ("Content-Type".to_string(), ct.clone())).collect();
        return Exit { status, headers, body: body.clone().into_bytes() };
    }
    match config.message.as_deref().or(default_message(status)) {
        Some(message) => json_exit(status, &json!({ "message": message })),
        None => Exit { status, headers: Vec::new(), body: Vec::new() },
    }
}

fn json_exit(status: u16, body: &Value) -> Exit {
    Exit { status, headers: vec![("Content-Type".into(), JSON.into())], body: body.to_string().into_bytes() }
}

/// Kong ends the request when the trigger is a request header (nginx drops names with `_`, and
/// Kong's header lookup reads `_` as `-`) or a query argument, whatever its value.
fn triggered(req: &Request, trigger: &str) -> bool {
    req.header(trigger).is_some()
        || (trigger.contains('_') && req.header(&trigger.replace('_', "-")).is_some())
        || req.query_arg(trigger).is_some()
}

/// The query arguments as Kong's `get_query` has them: a value, `true` for a name without `=`, and
/// a list for a repeated name.
pub fn query(raw: &str) -> Value {
    let mut args = Map::new();
    for pair in raw.split('&').filter(|pair| !pair.is_empty()).take(MAX_ECHOED_ARGS) {
        let Some((name, value)) = form_urlencoded::parse(pair.as_bytes()).next() else { continue };
        let value = if pair.contains('=') { value.into() } else { Value::Bool(true) };
        match args.get_mut(name.as_ref()) {
            None => {
                args.insert(name.into_owned(), value);
            }
            Some(Value::Array(list)) => list.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
        }
    }
    Value::Object(args)
}

gateway_pdk::plugin!(RequestTermination);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_pdk::config;

    fn check(json: &str) -> Result<Value, Vec<(String, String)>> {
        config::check::<Config>(json, validate)
            .map(|filled| serde_json::from_str(&filled).unwrap())
            .map_err(|errors| errors.into_iter().map(|e| (e.path, e.message)).collect())
    }

    fn err(path: &str, message: &str) -> Result<Value, Vec<(String, String)>> {
        Err(vec![(path.to_string(), message.to_string())])
    }

    fn config(json: &str) -> Config {
        config::parse_valid(json, validate).unwrap()
    }

    #[test]
    fn kongs_defaults() {
        assert_eq!(
            check("{}").unwrap(),
            json!({"status_code": 503, "message": null, "content_type": null, "body": null, "echo": false, "trigger": null})
        );
    }

    /// Kong's spec/03-plugins/14-request-termination/01-schema_spec.lua, case by case.
    #[test]
    fn kongs_schema() {
        assert!(check(r#"{"status_code": 404}"#).is_ok());
        assert!(check(r#"{"message": "Not found"}"#).is_ok());
        assert!(check(r#"{"content_type": "text/html", "body": "<body><h1>Not found</h1>"}"#).is_ok());
        assert!(check(r#"{"body": "<body><h1>Not found</h1>"}"#).is_ok());
        assert!(check(r#"{"echo": true, "trigger": "header_name"}"#).is_ok());
        assert_eq!(check(r#"{"status_code": "abcd"}"#), err("status_code", "expected an integer"));
        assert_eq!(check(r#"{"status_code": null}"#), err("status_code", "required field missing"));
        assert_eq!(check(r#"{"status_code": 99}"#), err("status_code", "value should be between 100 and 599"));
        assert_eq!(check(r#"{"status_code": 600}"#), err("status_code", "value should be between 100 and 599"));
        let both = "message cannot be used with content_type or body";
        assert_eq!(check(r#"{"message": "error", "body": "test"}"#), err("", both));
        assert_eq!(check(r#"{"message": "error", "content_type": "text/html", "body": "test"}"#), err("", both));
        assert_eq!(check(r#"{"message": "error", "content_type": "text/html"}"#), err("", both));
        assert_eq!(check(r#"{"content_type": "text/html"}"#), err("", "content_type requires a body"));
        assert_eq!(
            check(r#"{"echo": true, "content_type": "text/html", "body": "<body><h1>Not found</h1>"}"#),
            err("", "echo cannot be used with content_type and body")
        );
        // Kong's is_present: an empty string is absent.
        assert!(check(r#"{"message": "", "body": "x"}"#).is_ok());
    }

    #[test]
    fn refused_beyond_kong() {
        assert_eq!(check(r#"{"trigger": "a b"}"#).unwrap_err()[0].0, "trigger");
        assert_eq!(
            check(r#"{"content_type": "text/html\r\nX-Evil: 1", "body": "x"}"#),
            err("content_type", "must not contain control characters")
        );
        assert_eq!(check(r#"{"status": 503}"#), err("status", "unknown field"));
    }

    #[test]
    fn kongs_answers() {
        let json_headers = vec![("Content-Type".to_string(), JSON.to_string())];
        let exit = answer(503, &config("{}"));
        assert_eq!(
            exit,
            Exit { status: 503, headers: json_headers.clone(), body: br#"{"message":"Service unavailable"}"#.to_vec() }
        );
        assert_eq!(answer(404, &config(r#"{"status_code": 404}"#)).body, br#"{"message":"Not found"}"#);
        assert_eq!(
            answer(406, &config(r#"{"status_code": 406, "message": "Invalid"}"#)).body,
            br#"{"message":"Invalid"}"#
        );
        let empty = answer(204, &config(r#"{"status_code": 204}"#));
        assert_eq!((empty.body.len(), empty.headers.len()), (0, 0));
        let html = answer(451, &config(r#"{"status_code": 451, "content_type": "text/html", "body": "<h1>no</h1>"}"#));
        assert_eq!(html.headers, vec![("Content-Type".to_string(), "text/html".to_string())]);
        assert_eq!(html.body, b"<h1>no</h1>");
        let raw = answer(503, &config(r#"{"body": "{\"code\": 1}"}"#));
        assert!(raw.headers.is_empty(), "no content type unless configured, as Kong");
        assert_eq!(raw.body, br#"{"code": 1}"#);
        let message = "a \"quoted\" message";
        let quoted = answer(503, &config(&json!({ "message": message }).to_string()));
        assert_eq!(serde_json::from_slice::<Value>(&quoted.body).unwrap(), json!({ "message": message }));
    }

    #[test]
    fn query_arguments_as_kong_reads_them() {
        assert_eq!(query(""), json!({}));
        assert_eq!(query("hello=there"), json!({"hello": "there"}));
        assert_eq!(
            query("a=1&a=2&a=3&flag&empty=&sp=a+b%21"),
            json!({"a": ["1", "2", "3"], "flag": true, "empty": "", "sp": "a b!"})
        );
        let many: Vec<String> = (0..500).map(|i| format!("k{i}=v")).collect();
        assert_eq!(query(&many.join("&")).as_object().unwrap().len(), MAX_ECHOED_ARGS);
    }
}
