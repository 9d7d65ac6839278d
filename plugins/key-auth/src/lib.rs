//! Kong's `key-auth` plugin: the client proves who it is with an API key, looked for under each of
//! `key_names` in the request headers, the query string and (with `key_in_body`) the body; the key
//! names a `keyauth_credentials` entity, whose consumer the request then belongs to, with Kong's
//! `X-Consumer-*` headers upstream. Without a good key the request ends with Kong's 401, unless
//! `anonymous` names a consumer to carry on as. `hide_credentials` keeps the key from the upstream.

mod body;
mod query;

use gateway_pdk::auth;
use gateway_pdk::{Body, FieldError, Flow, HeaderName, Phase, Plugin, Request, host};
use serde::{Deserialize, Serialize};

use body::Format;

/// The largest body `key_in_body` reads. Kong reads only bodies that fit nginx's client body
/// buffer (8 KiB by default) and finds no key in longer ones; here the bound is larger but still
/// keeps a hostile body's cost to microseconds.
pub const MAX_BODY: u32 = 64 * 1024;

const NO_KEY: &str = "No API key found in request";
const DUPLICATE: &str = "Duplicate API key found";
const UNAUTHORIZED: &str = "Unauthorized";

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub key_names: Vec<HeaderName>,
    pub hide_credentials: bool,
    pub anonymous: Option<String>,
    pub key_in_header: bool,
    pub key_in_query: bool,
    pub key_in_body: bool,
    pub run_on_preflight: bool,
    pub realm: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            key_names: vec![HeaderName::from_static("apikey")],
            hide_credentials: false,
            anonymous: None,
            key_in_header: true,
            key_in_query: true,
            key_in_body: false,
            run_on_preflight: true,
            realm: None,
        }
    }
}

/// What a request holds under one key name (Kong reads a repeated name as a table: a duplicate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Absent,
    /// Present but not a string (a query flag without `=`, a JSON number): passed over.
    Ignored,
    Key(String),
    Duplicate,
}

impl Found {
    /// Two occurrences of one name.
    fn and(self, other: Found) -> Found {
        match (self, other) {
            (Found::Absent, other) | (other, Found::Absent) => other,
            _ => Found::Duplicate,
        }
    }
}

pub struct KeyAuth {
    config: Config,
    /// Each key name and, when it has `_`, the same with `-` (Kong reads header names that way).
    header_names: Vec<Vec<String>>,
    www_authenticate: String,
}

/// What one request proves.
enum Verdict {
    /// The body is needed first.
    ReadBody,
    /// A key (maybe empty) under `key_names[name]`.
    Key {
        name: usize,
        key: String,
    },
    Refused(&'static str),
}

impl Plugin for KeyAuth {
    type Config = Config;
    const NAME: &'static str = "key-auth";
    const PRIORITY: i32 = 1250;
    const PHASES: &'static [Phase] = &[Phase::Access];
    /// Kong's `no_consumer`.
    const CONSUMER_SCOPE: bool = false;

    fn validate(config: &Config) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if config.anonymous.as_deref() == Some("") {
            errors.push(FieldError::new("anonymous", "length must be at least 1"));
        }
        if let Some(realm) = &config.realm {
            errors.extend(realm_error(realm).map(|message| FieldError::new("realm", message)));
        }
        errors
    }

    fn configure(config: Config) -> Result<Self, String> {
        let header_names = config
            .key_names
            .iter()
            .map(|name| {
                let dashed = name.replace('_', "-");
                if dashed == name.as_str() { vec![dashed] } else { vec![dashed, name.to_string()] }
            })
            .collect();
        let www_authenticate = match &config.realm {
            Some(realm) => format!("Key realm=\"{}\"", quote(realm)),
            None => "Key".into(),
        };
        Ok(KeyAuth { config, header_names, www_authenticate })
    }

    fn access(&self, req: &Request) -> Result<Flow, String> {
        if !self.config.run_on_preflight && req.method() == "OPTIONS" {
            return Ok(Flow::Proceed);
        }
        // With `anonymous`, authentication plugins are alternatives: one that already succeeded
        // is enough.
        if self.config.anonymous.is_some() && host::credential_id().is_some() {
            return Ok(Flow::Proceed);
        }
        let refused = match self.verdict(req) {
            Verdict::ReadBody => return Ok(Flow::ReadBody(MAX_BODY)),
            Verdict::Key { name, key } => {
                if self.config.hide_credentials {
                    self.hide(req, name)?;
                }
                if key.is_empty() {
                    NO_KEY
                } else if auth::authenticate_key(req, "keyauth_credentials", &key)? {
                    return Ok(Flow::Proceed);
                } else {
                    UNAUTHORIZED
                }
            }
            Verdict::Refused(message) => message,
        };
        match &self.config.anonymous {
            None => gateway_pdk::error_answer(req, 401, Some(refused), [challenge(&self.www_authenticate)]),
            Some(anonymous) => match auth::anonymous_consumer(anonymous) {
                Some(consumer) => {
                    auth::set_consumer(req, &consumer.id, None)?;
                    Ok(Flow::Proceed)
                }
                None => {
                    let message = format!("anonymous consumer {anonymous} is configured but doesn't exist");
                    host::log(gateway_pdk::LogLevel::Err, &message);
                    gateway_pdk::error_answer(req, 500, Some(&message), [])
                }
            },
        }
    }
}

impl KeyAuth {
    /// Kong's search: each name in turn, in the headers, then the query string; the body only when
    /// neither has any of them (Kong looks in the body for each name before the next name's header:
    /// the same key is found unless a client sends two different ones). Nothing is changed here, so
    /// that the call after the body is read sees the request as it came.
    fn verdict(&self, req: &Request) -> Verdict {
        let body_format =
            || req.header("content-type").as_deref().and_then(Format::of).filter(|_| self.config.key_in_body);
        // Asked for only when no header has the key (one host call fewer for most requests).
        let mut raw_query: Option<String> = None;
        for (i, name) in self.config.key_names.iter().enumerate() {
            let mut found = Found::Absent;
            if self.config.key_in_header {
                for form in &self.header_names[i] {
                    found = req.header_values(form).into_iter().map(Found::Key).fold(found, Found::and);
                }
            }
            if found == Found::Absent && self.config.key_in_query {
                found = query::find(raw_query.get_or_insert_with(|| req.raw_query()), name);
            }
            match found {
                Found::Duplicate => return Verdict::Refused(DUPLICATE),
                Found::Key(key) => {
                    // Kong also takes the key's name out of the body when it hides credentials.
                    if self.config.hide_credentials && body_format().is_some() && matches!(req.body(), Body::Unread) {
                        return Verdict::ReadBody;
                    }
                    return Verdict::Key { name: i, key };
                }
                Found::Absent | Found::Ignored => {}
            }
        }
        let Some(format) = body_format() else { return Verdict::Refused(NO_KEY) };
        let body = match req.body() {
            Body::Unread => return Verdict::ReadBody,
            Body::Complete(body) => body,
            Body::TooLarge(_) => return Verdict::Refused(NO_KEY),
        };
        for (i, name) in self.config.key_names.iter().enumerate() {
            match format.find(&body, name) {
                Found::Duplicate => return Verdict::Refused(DUPLICATE),
                Found::Key(key) => return Verdict::Key { name: i, key },
                Found::Absent | Found::Ignored => {}
            }
        }
        Verdict::Refused(NO_KEY)
    }

    /// Kong's `hide_credentials`: the key's name out of the headers and the query string, and out of
    /// the body when the plugin reads bodies.
    fn hide(&self, req: &Request, name: usize) -> Result<(), String> {
        let key_name = &self.config.key_names[name];
        for form in &self.header_names[name] {
            req.remove_header(form);
        }
        if let Some(stripped) = query::strip(&req.raw_query(), key_name) {
            req.set_raw_query(&stripped)?;
        }
        if self.config.key_in_body
            && let Some(format) = req.header("content-type").as_deref().and_then(Format::of)
            && let Body::Complete(body) = req.body()
            && let Some(stripped) = format.strip(&body, key_name)
        {
            req.set_body(&stripped)?;
        }
        Ok(())
    }
}

/// Kong's challenge on a 401.
fn challenge(www_authenticate: &str) -> (String, String) {
    ("WWW-Authenticate".to_string(), www_authenticate.to_string())
}

/// Why a realm cannot go in a `WWW-Authenticate` header, if it cannot.
fn realm_error(realm: &str) -> Option<&'static str> {
    if realm.is_empty() {
        Some("length must be at least 1")
    } else if realm.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else {
        None
    }
}

/// `value` as the inside of an HTTP quoted-string (Kong writes it as is; a `"` in it would end the
/// realm early).
fn quote(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

gateway_pdk::plugin!(KeyAuth);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_pdk::config;
    use serde_json::{Value, json};

    fn check(json: Value) -> Result<Value, Vec<(String, String)>> {
        config::check::<Config>(&json.to_string(), <KeyAuth as Plugin>::validate)
            .map(|filled| serde_json::from_str(&filled).unwrap())
            .map_err(|errors| errors.into_iter().map(|e| (e.path, e.message)).collect())
    }

    #[test]
    fn kongs_defaults() {
        assert_eq!(
            check(json!({})).unwrap(),
            json!({
                "key_names": ["apikey"], "hide_credentials": false, "anonymous": null, "key_in_header": true,
                "key_in_query": true, "key_in_body": false, "run_on_preflight": true, "realm": null,
            })
        );
    }

    #[test]
    fn kongs_schema() {
        let err = |path: &str, message: &str| Err(vec![(path.to_string(), message.to_string())]);
        assert!(check(json!({"key_names": ["apikey", "x_api-Key2"], "realm": "api", "anonymous": "anon"})).is_ok());
        assert!(check(json!({"key_names": []})).is_ok());
        assert_eq!(check(json!({"key_names": null})), err("key_names", "required field missing"));
        assert_eq!(
            check(json!({"key_names": ["api key"]})),
            err("key_names[0]", "bad header name 'api key', allowed characters are A-Z, a-z, 0-9, '_', and '-'")
        );
        assert_eq!(check(json!({"anonymous": ""})), err("anonymous", "length must be at least 1"));
        assert_eq!(check(json!({"realm": ""})), err("realm", "length must be at least 1"));
        assert_eq!(check(json!({"realm": "a\r\nb"})), err("realm", "must not contain control characters"));
        assert_eq!(check(json!({"hide_credentials": "yes"})), err("hide_credentials", "expected a boolean"));
        assert_eq!(check(json!({"key_in_body": null})), err("key_in_body", "required field missing"));
        assert_eq!(check(json!({"keyname": "x"})), err("keyname", "unknown field"));
    }

    #[test]
    fn the_realm_is_quoted() {
        assert_eq!(quote(r#"a "b" \c"#), r#"a \"b\" \\c"#);
    }

    #[test]
    fn repeated_names_are_duplicates() {
        let key = || Found::Key("k".into());
        assert_eq!(Found::Absent.and(key()), key());
        assert_eq!(key().and(Found::Absent), key());
        assert_eq!(key().and(key()), Found::Duplicate);
        assert_eq!(Found::Ignored.and(key()), Found::Duplicate);
    }
}
