//! Kong's `cors` plugin. A preflight request (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) is answered in `access` with Kong's 200 and
//! `Access-Control-Allow-*` headers, or, with `preflight_continue`, passed to the upstream
//! untouched. Every other response gets `Access-Control-Allow-Origin` (and credentials, exposed
//! headers) in `header_filter`. Which origin is allowed is decided in [`origins`].

mod origins;

use gateway_pdk::{Exit, FieldError, Flow, Phase, Plugin, Request, Response};
use serde::{Deserialize, Serialize};

use origins::{Allowed, Origins};

const ALLOW_ORIGIN: &str = "Access-Control-Allow-Origin";
const ALLOW_CREDENTIALS: &str = "Access-Control-Allow-Credentials";
const ALLOW_HEADERS: &str = "Access-Control-Allow-Headers";
const ALLOW_METHODS: &str = "Access-Control-Allow-Methods";
const ALLOW_PRIVATE_NETWORK: &str = "Access-Control-Allow-Private-Network";
const EXPOSE_HEADERS: &str = "Access-Control-Expose-Headers";
const MAX_AGE: &str = "Access-Control-Max-Age";

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub origins: Option<Vec<String>>,
    pub headers: Option<Vec<String>>,
    pub exposed_headers: Option<Vec<String>>,
    pub methods: Option<Vec<Method>>,
    pub max_age: Option<serde_json::Number>,
    pub credentials: bool,
    pub private_network: bool,
    pub preflight_continue: bool,
    pub allow_origin_absent: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            origins: None,
            headers: None,
            exposed_headers: None,
            methods: Some(Method::ALL.to_vec()),
            max_age: None,
            credentials: false,
            private_network: false,
            preflight_continue: false,
            allow_origin_absent: true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Head,
    Put,
    Patch,
    Post,
    Delete,
    Options,
    Trace,
    Connect,
}

impl Method {
    const ALL: [Method; 9] = [
        Method::Get,
        Method::Head,
        Method::Put,
        Method::Patch,
        Method::Post,
        Method::Delete,
        Method::Options,
        Method::Trace,
        Method::Connect,
    ];

    fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Connect => "CONNECT",
        }
    }
}

pub struct Cors {
    origins: Origins,
    /// `headers` joined, if any were given (else the request's are echoed).
    allow_headers: Option<String>,
    expose_headers: Option<String>,
    allow_methods: String,
    max_age: Option<String>,
    credentials: bool,
    private_network: bool,
    preflight_continue: bool,
    allow_origin_absent: bool,
}

impl Plugin for Cors {
    type Config = Config;
    const NAME: &'static str = "cors";
    const PRIORITY: i32 = 2000;
    const PHASES: &'static [Phase] = &[Phase::Access, Phase::HeaderFilter];
    /// Kong's `no_consumer`.
    const CONSUMER_SCOPE: bool = false;

    fn validate(config: &Config) -> Vec<FieldError> {
        validate(config)
    }

    fn configure(config: Config) -> Result<Self, String> {
        let joined = |list: Option<Vec<String>>| list.filter(|l| !l.is_empty()).map(|l| l.join(","));
        let methods = config.methods.unwrap_or_else(|| Method::ALL.to_vec());
        Ok(Cors {
            origins: Origins::new(config.origins.as_deref().unwrap_or_default())?,
            allow_headers: joined(config.headers),
            expose_headers: joined(config.exposed_headers),
            allow_methods: methods.iter().map(|m| m.name()).collect::<Vec<_>>().join(","),
            max_age: config.max_age.as_ref().map(number),
            credentials: config.credentials,
            private_network: config.private_network,
            preflight_continue: config.preflight_continue,
            allow_origin_absent: config.allow_origin_absent,
        })
    }

    fn access(&self, req: &Request) -> Result<Flow, String> {
        let Some(origin) = preflight_origin(req) else { return Ok(Flow::Proceed) };
        if self.preflight_continue {
            return Ok(Flow::Proceed);
        }
        let mut headers = Headers::default();
        self.allow_origin(&mut headers, Some(&origin));
        let allow_headers = self.allow_headers.clone().or_else(|| req.header("access-control-request-headers"));
        if let Some(allow_headers) = allow_headers {
            headers.set(ALLOW_HEADERS, allow_headers);
        }
        headers.set(ALLOW_METHODS, self.allow_methods.clone());
        if let Some(max_age) = &self.max_age {
            headers.set(MAX_AGE, max_age.clone());
        }
        if self.private_network && req.header("access-control-request-private-network").as_deref() == Some("true") {
            headers.set(ALLOW_PRIVATE_NETWORK, "true".into());
        }
        Ok(Flow::Respond(Exit { status: 200, headers: headers.list, body: Vec::new() }))
    }

    fn header_filter(&self, req: &Request, res: &Response) -> Result<(), String> {
        // A preflight was answered above, or handed to the upstream whose answer stands.
        if preflight_origin(req).is_some() {
            return Ok(());
        }
        let origin = req.header("origin").filter(|o| !o.is_empty());
        if origin.is_none() && !self.allow_origin_absent {
            return Ok(());
        }
        let mut headers = Headers::default();
        let allowed = self.allow_origin(&mut headers, origin.as_deref());
        if let Some(expose) = &self.expose_headers {
            headers.set(EXPOSE_HEADERS, expose.clone());
        }
        if allowed == Allowed::Nobody {
            res.remove_header(ALLOW_ORIGIN);
        }
        for (name, value) in headers.list {
            if name == "Vary" {
                res.add_header(&name, &value)?;
            } else {
                res.set_header(&name, &value)?;
            }
        }
        Ok(())
    }
}

impl Cors {
    /// Kong's `configure_origin` and `configure_credentials`: the origin (and credentials)
    /// headers for a request from `origin`, and which origin that allowed.
    fn allow_origin(&self, headers: &mut Headers, origin: Option<&str>) -> Allowed {
        let allowed = self.origins.allowed(origin);
        let mut vary = self.origins.varies();
        match &allowed {
            Allowed::Any => headers.set(ALLOW_ORIGIN, "*".into()),
            Allowed::Origin(allowed) => headers.set(ALLOW_ORIGIN, allowed.clone()),
            Allowed::Nobody => {}
        }
        if self.credentials {
            match (&allowed, origin) {
                // `*` cannot go with credentials: the request's own origin is allowed instead.
                (Allowed::Any, Some(origin)) => {
                    vary = true;
                    headers.set(ALLOW_ORIGIN, origin.to_string());
                    headers.set(ALLOW_CREDENTIALS, "true".into());
                }
                (Allowed::Any, None) => {}
                _ => headers.set(ALLOW_CREDENTIALS, "true".into()),
            }
        }
        if vary {
            headers.list.insert(0, ("Vary".into(), "Origin".into()));
        }
        allowed
    }
}

/// Headers in the order they are set, a name set twice keeping its last value.
#[derive(Default)]
struct Headers {
    list: Vec<(String, String)>,
}

impl Headers {
    fn set(&mut self, name: &str, value: String) {
        match self.list.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value,
            None => self.list.push((name.to_string(), value)),
        }
    }
}

/// The origin of a preflight request (Kong: `OPTIONS`, a non-empty `Origin`, and an
/// `Access-Control-Request-Method` header, whatever its value).
fn preflight_origin(req: &Request) -> Option<String> {
    if req.method() != "OPTIONS" {
        return None;
    }
    let origin = req.header("origin").filter(|o| !o.is_empty())?;
    req.header("access-control-request-method").map(|_| origin)
}

/// A number as Kong (Lua) prints it: whole numbers without a fraction.
fn number(value: &serde_json::Number) -> String {
    match value.as_f64() {
        Some(f) if value.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => value.to_string(),
    }
}

/// Kong's schema rules beyond the fields' types: each origin `*` or a regex. Header lists must be
/// header values (Kong takes any string, and a CR/LF there would fail every response instead).
pub fn validate(config: &Config) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, origin) in config.origins.iter().flatten().enumerate() {
        if let Err(message) = origins::check_entry(origin) {
            errors.push(FieldError::new(format!("origins[{i}]"), message));
        }
    }
    for (field, list) in [("headers", &config.headers), ("exposed_headers", &config.exposed_headers)] {
        for (i, value) in list.iter().flatten().enumerate() {
            if value.is_empty() {
                // Kong's default for every string in a schema.
                errors.push(FieldError::new(format!("{field}[{i}]"), "length must be at least 1"));
            } else if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                errors.push(FieldError::new(format!("{field}[{i}]"), "must not contain control characters"));
            }
        }
    }
    errors
}

gateway_pdk::plugin!(Cors);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_pdk::config;
    use serde_json::{Value, json};

    fn check(config: Value) -> Result<Value, Vec<(String, String)>> {
        config::check::<Config>(&config.to_string(), validate)
            .map(|filled| serde_json::from_str(&filled).unwrap())
            .map_err(|errors| errors.into_iter().map(|e| (e.path, e.message)).collect())
    }

    #[test]
    fn kongs_defaults() {
        assert_eq!(
            check(json!({})).unwrap(),
            json!({
                "origins": null, "headers": null, "exposed_headers": null,
                "methods": ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT"],
                "max_age": null, "credentials": false, "private_network": false, "preflight_continue": false,
                "allow_origin_absent": true
            })
        );
    }

    #[test]
    fn kongs_schema() {
        assert!(check(json!({"origins": ["*", "http://a.test", "https://(.*\\.)?b\\.test"], "max_age": 3600})).is_ok());
        assert_eq!(
            check(json!({"origins": ["http://a.test", "http://[bad"]})).unwrap_err(),
            [("origins[1]".to_string(), "'http://[bad' is not a valid regex".to_string())]
        );
        assert_eq!(check(json!({"methods": ["GET", "FETCH"]})).unwrap_err()[0].0, "methods[1]");
        assert_eq!(check(json!({"headers": ["X-A", "X-B\r\nSet-Cookie: a=b"]})).unwrap_err()[0].0, "headers[1]");
        assert_eq!(check(json!({"max_age": "1h"})).unwrap_err()[0].0, "max_age");
        let empty = |field: &str| vec![(format!("{field}[0]"), "length must be at least 1".to_string())];
        for field in ["origins", "headers", "exposed_headers"] {
            assert_eq!(check(json!({field: [""]})).unwrap_err(), empty(field), "{field}");
        }
        // Checked as it is matched (anchored), so what passes here also loads.
        assert_eq!(check(json!({"origins": ["(?x)a#c"]})).unwrap_err()[0].0, "origins[0]");
        assert!(Origins::new(&["(?x)a # a comment\n".to_string()]).is_ok());
        assert_eq!(
            check(json!({"credentials": null})).unwrap_err()[0],
            ("credentials".into(), "required field missing".into())
        );
    }

    #[test]
    fn numbers_print_as_kong_prints_them() {
        let n = |v: Value| number(&serde_json::from_value(v).unwrap());
        assert_eq!(n(json!(3600)), "3600");
        assert_eq!(n(json!(3600.0)), "3600");
        assert_eq!(n(json!(1.5)), "1.5");
    }
}
