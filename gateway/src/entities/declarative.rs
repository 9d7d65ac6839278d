//! Kong's declarative format (`_format_version: "3.0"`, YAML or JSON) into a validated [`Config`].
//! Entities may nest under their parent or stand flat with references by name or id. Every error
//! is collected with its entity path; a file with any error yields no config at all.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use uuid::Uuid;

use super::kind::Kind;
use super::plugins::{PluginRegistry, not_enabled};
use super::schema::{ErrorKind, Errors, FieldError, Obj, index, join, type_name};
use super::secrets;
use super::types::*;
use super::validate;
use crate::conf::vault::{Reference, is_reference};

/// Ids of entities that have none are UUIDv5 in this namespace, from the entity's natural key, so
/// the same file always gives the same ids.
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_3c2e_9b7d_4e0a_8c55_0d2b_7e4f_a913);

#[derive(Debug, thiserror::Error)]
pub enum DeclarativeError {
    #[error("cannot read declarative config {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("declarative config {origin} is not valid {format}: {message}")]
    Syntax { origin: String, format: &'static str, message: String },
    #[error("{}", render(origin, errors))]
    Invalid { origin: String, errors: Vec<FieldError> },
}

fn render(origin: &str, errors: &[FieldError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let n = errors.len();
    format!(
        "declarative config {origin} is invalid ({n} error{}):\n{}",
        if n == 1 { "" } else { "s" },
        lines.join("\n")
    )
}

/// The config in Kong's flattened declarative form (`_format_version: "3.0"`), which
/// [`parse_value`] reads back into an equal config.
pub fn to_declarative(config: &Config) -> Value {
    let mut value = serde_json::to_value(config).expect("a config always serialises");
    if let Value::Object(map) = &mut value {
        map.insert("_format_version".into(), Value::String("3.0".into()));
    }
    value
}

/// Reads and validates a declarative file: JSON if the name ends in `json`, else YAML (YAML also
/// reads JSON). Plugins must be among the bundled ones.
pub fn parse_file(path: &Path) -> Result<Config, DeclarativeError> {
    parse_file_with(path, PluginRegistry::bundled())
}

/// [`parse_file`], accepting the plugins of `plugins`.
pub fn parse_file_with(path: &Path, plugins: &PluginRegistry) -> Result<Config, DeclarativeError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| DeclarativeError::Read { path: path.to_path_buf(), source })?;
    let json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    parse_str_with(&text, json, &path.display().to_string(), plugins)
}

/// Parses `text` (JSON when `json`, else YAML); `origin` names it in errors.
pub fn parse_str(text: &str, json: bool, origin: &str) -> Result<Config, DeclarativeError> {
    parse_str_with(text, json, origin, PluginRegistry::bundled())
}

/// [`parse_str`], accepting the plugins of `plugins`.
pub fn parse_str_with(
    text: &str,
    json: bool,
    origin: &str,
    plugins: &PluginRegistry,
) -> Result<Config, DeclarativeError> {
    let value: Value = if json {
        serde_json::from_str(text).map_err(|e| DeclarativeError::Syntax {
            origin: origin.into(),
            format: "JSON",
            message: e.to_string(),
        })?
    } else {
        yaml_serde::from_str(text).map_err(|e| DeclarativeError::Syntax {
            origin: origin.into(),
            format: "YAML",
            message: e.to_string(),
        })?
    };
    parse_value_with(&value, plugins).map_err(|errors| DeclarativeError::Invalid { origin: origin.into(), errors })
}

/// Validates an already-parsed document; plugins must be among the bundled ones.
pub fn parse_value(doc: &Value) -> Result<Config, Vec<FieldError>> {
    parse_value_with(doc, PluginRegistry::bundled())
}

/// [`parse_value`], accepting the plugins of `plugins`.
pub fn parse_value_with(doc: &Value, plugins: &PluginRegistry) -> Result<Config, Vec<FieldError>> {
    match older_format(doc) {
        Some(migrated) => parse_current(&migrated, plugins),
        None => parse_current(doc, plugins),
    }
}

/// Kong 3's reading of a file in an older format (`_format_version` `"1.1"` or `"2.1"`, as Kong
/// 1.x/2.x and decK wrote them): the same entities, except that a route path was a regex whenever
/// it held anything but letters, digits and `._~/%-`, where Kong 3 wants the regex marked with
/// `~`. Each route path is rewritten as Kong 3 rewrites it (plain ones normalised, regexes
/// prefixed) and each change is named in a warning; the document then reads as `"3.0"`.
/// `None` for any other document.
fn older_format(doc: &Value) -> Option<Value> {
    let version = doc.get("_format_version")?.as_str()?;
    if version != "1.1" && version != "2.1" {
        return None;
    }
    let mut doc = doc.clone();
    let mut changes = Vec::new();
    if let Some(routes) = doc.get_mut("routes") {
        migrate_routes(routes, "routes", &mut changes);
    }
    if let Some(services) = doc.get_mut("services").and_then(Value::as_array_mut) {
        for (i, service) in services.iter_mut().enumerate() {
            if let Some(routes) = service.get_mut("routes") {
                migrate_routes(routes, &format!("services[{i}].routes"), &mut changes);
            }
        }
    }
    for change in &changes {
        tracing::warn!("_format_version {version}: {change}");
    }
    doc["_format_version"] = Value::String("3.0".into());
    Some(doc)
}

/// Rewrites the `paths` of each route in `routes` (an array at `at`), noting each change.
fn migrate_routes(routes: &mut Value, at: &str, changes: &mut Vec<String>) {
    let Some(routes) = routes.as_array_mut() else { return };
    for (i, route) in routes.iter_mut().enumerate() {
        let name = route.get("name").and_then(Value::as_str).map(|n| format!(" ({n})")).unwrap_or_default();
        let Some(paths) = route.get_mut("paths").and_then(Value::as_array_mut) else { continue };
        for (j, path) in paths.iter_mut().enumerate() {
            let Some(old) = path.as_str() else { continue };
            let new = migrate_path(old);
            if new != old {
                let what = if new.starts_with('~') { "a regex, now marked" } else { "normalised" };
                changes.push(format!("{at}[{i}]{name}.paths[{j}]: {old:?} is {what}: {new:?}"));
                *path = Value::String(new);
            }
        }
    }
}

/// Kong 3's migration of one pre-3.0 route path.
fn migrate_path(path: &str) -> String {
    if path.bytes().all(|b| b.is_ascii_alphanumeric() || b"._~/%-".contains(&b)) {
        router_core::normalize_path(path)
    } else {
        format!("~{}", percent_decoded_regex(path))
    }
}

/// A regex path with its percent-escapes decoded as Kong 3 decodes them: reserved characters stay
/// escaped (in upper case), regex metacharacters become escaped literals, anything else its
/// character.
pub(super) fn percent_decoded_regex(path: &str) -> String {
    const RESERVED: &[u8] = b"!*'();:@&=+$,/?%#[]";
    const META: &[u8] = b".^-{}\\|";
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'%' && i + 3 <= bytes.len())
            .then(|| {
                std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .flatten();
        match escape {
            Some(b) if RESERVED.contains(&b) || !b.is_ascii_graphic() => {
                out.push_str(&format!("%{b:02X}"));
                i += 3;
            }
            Some(b) if META.contains(&b) => {
                out.push('\\');
                out.push(char::from(b));
                i += 3;
            }
            Some(b) => {
                out.push(char::from(b));
                i += 3;
            }
            None => {
                let c = path[i..].chars().next().expect("i is on a char boundary");
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

fn parse_current(doc: &Value, plugins: &PluginRegistry) -> Result<Config, Vec<FieldError>> {
    let mut b = Builder::new(plugins);
    let Some(mut top) = Obj::new(String::new(), doc, &mut b.errors) else {
        b.errors.0[0].path = "(root)".into();
        return Err(b.errors.0);
    };
    match top.string("_format_version", &mut b.errors).as_deref() {
        Some("3.0") => {}
        Some(other) => {
            b.errors.push("_format_version", format!("unsupported version {other:?}: expected one of: 1.1, 2.1, 3.0"))
        }
        None if top.has("_format_version") => {}
        None => b.errors.push("_format_version", "required field missing (use \"3.0\")"),
    }
    top.bool("_transform", true, &mut b.errors);
    top.accept(&["_comment", "_workspace"]);
    for kind in Kind::ALL {
        for (path, v) in top.array(kind.name(), &mut b.errors) {
            match kind {
                Kind::Services => b.service(path, v),
                Kind::Routes => b.route(path, v, None),
                Kind::Consumers => b.consumer(path, v),
                Kind::Plugins => b.plugin(path, v, None),
                Kind::Upstreams => b.upstream(path, v),
                Kind::Targets => b.target(path, v, None),
                Kind::Certificates => b.certificate(path, v),
                Kind::Snis => b.sni(path, v, None),
                Kind::CaCertificates => b.ca_certificate(path, v),
                Kind::KeyauthCredentials | Kind::BasicauthCredentials | Kind::JwtSecrets | Kind::Acls => {
                    b.credential(kind, path, v, None)
                }
            }
        }
    }
    top.finish(&mut b.errors);
    b.finish()
}

/// A reference as written: an id, or a unique field of the entity it names (`{"name": …}`,
/// `{"username": …}`, or a bare string for the kind's first unique field).
#[derive(Debug, Clone)]
enum RawRef {
    Id(Uuid),
    Field(&'static str, String),
}

impl fmt::Display for RawRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawRef::Id(id) => write!(f, "id {id}"),
            RawRef::Field(field, value) => write!(f, "{field} {value:?}"),
        }
    }
}

/// A reference not yet resolved, with the path it was written at.
#[derive(Debug, Clone)]
enum Link {
    Resolved(Uuid),
    Pending { raw: RawRef, path: String },
}

struct Builder<'r> {
    plugin_schemas: &'r PluginRegistry,
    errors: Errors,
    /// Each service, with its `client_certificate` until it is resolved.
    services: Vec<(String, Service, Option<Link>)>,
    routes: Vec<(String, Route, Option<Link>)>,
    consumers: Vec<(String, Consumer)>,
    plugins: Vec<(String, Plugin, [Option<Link>; 3])>,
    upstreams: Vec<(String, Upstream)>,
    targets: Vec<(String, Target, Link)>,
    certificates: Vec<(String, Certificate)>,
    snis: Vec<(String, Sni, Link)>,
    ca_certificates: Vec<(String, CaCertificate)>,
    credentials: Vec<(String, Credential, Link)>,
}

/// A consumer credential being read; its consumer is resolved in [`Builder::finish`].
enum Credential {
    Key(KeyauthCredential),
    Basic(BasicauthCredential),
    Jwt(JwtSecret),
    Acl(Acl),
}

/// The kinds a consumer may nest, besides plugins.
const CREDENTIALS: [Kind; 4] = [Kind::KeyauthCredentials, Kind::BasicauthCredentials, Kind::JwtSecrets, Kind::Acls];

/// Fields Kong exports or accepts that the gateway does not use yet.
const UPSTREAM_ACCEPTED: &[&str] = &[
    "hash_on",
    "hash_fallback",
    "hash_on_header",
    "hash_fallback_header",
    "hash_on_cookie",
    "hash_on_cookie_path",
    "hash_on_query_arg",
    "hash_fallback_query_arg",
    "hash_on_uri_capture",
    "hash_fallback_uri_capture",
    "healthchecks",
    "host_header",
    "client_certificate",
    "use_srv_name",
];
const TIMESTAMPS: &[&str] = &["created_at", "updated_at"];

impl<'r> Builder<'r> {
    fn new(plugin_schemas: &'r PluginRegistry) -> Self {
        Builder {
            plugin_schemas,
            errors: Errors::default(),
            services: Vec::new(),
            routes: Vec::new(),
            consumers: Vec::new(),
            plugins: Vec::new(),
            upstreams: Vec::new(),
            targets: Vec::new(),
            certificates: Vec::new(),
            snis: Vec::new(),
            ca_certificates: Vec::new(),
            credentials: Vec::new(),
        }
    }

    /// The entity's `id`, or a UUIDv5 from `key` when it has none.
    fn id(&mut self, obj: &mut Obj, kind: Kind, key: impl FnOnce() -> String) -> Uuid {
        match obj.string("id", &mut self.errors) {
            Some(text) => Uuid::parse_str(&text).unwrap_or_else(|_| {
                self.errors.push(obj.path_of("id"), "expected a valid UUID");
                Uuid::nil()
            }),
            None => Uuid::new_v5(&ID_NAMESPACE, format!("{kind}:{}", key()).as_bytes()),
        }
    }

    fn name(&mut self, obj: &mut Obj, field: &str) -> Option<String> {
        let name = obj.string(field, &mut self.errors)?;
        if let Err(message) = validate::name(&name) {
            self.errors.push(obj.path_of(field), message);
        }
        Some(name)
    }

    fn tags(&mut self, obj: &mut Obj) -> Vec<String> {
        obj.accept(TIMESTAMPS);
        obj.strings("tags", &mut self.errors)
    }

    /// The reference in `field` to an entity of kind `to`: `{"id": …}`, `{"<unique field>": …}`,
    /// or a string (an id, or the value of the kind's first unique field).
    fn reference(&mut self, obj: &mut Obj, field: &str, to: Kind) -> Option<Link> {
        let path = obj.path_of(field);
        let fields = to.descriptor().keys;
        let expected = || {
            let mut shapes = vec!["{\"id\": …}".to_string()];
            shapes.extend(fields.iter().map(|f| format!("{{\"{f}\": …}}")));
            format!("expected {}", shapes.join(" or "))
        };
        let raw = match obj.raw(field)? {
            Value::String(s) => match (Uuid::parse_str(s), fields.first()) {
                (Ok(id), _) => RawRef::Id(id),
                (Err(_), Some(first)) => RawRef::Field(first, s.clone()),
                (Err(_), None) => {
                    self.errors.push(path, "expected a valid UUID");
                    return None;
                }
            },
            Value::Object(map) => {
                let unknown: Vec<&String> =
                    map.keys().filter(|k| *k != "id" && !fields.contains(&k.as_str())).collect();
                if !unknown.is_empty() {
                    for key in unknown {
                        self.errors.push(join(&path, key), "unknown field");
                    }
                    return None;
                }
                if let Some(id) = map.get("id").filter(|v| !v.is_null()) {
                    match id.as_str().map(Uuid::parse_str) {
                        Some(Ok(id)) => RawRef::Id(id),
                        _ => {
                            self.errors.push(join(&path, "id"), "expected a valid UUID");
                            return None;
                        }
                    }
                } else if let Some((name, value)) =
                    fields.iter().find_map(|f| map.get(*f).filter(|v| !v.is_null()).map(|v| (*f, v)))
                {
                    match value.as_str() {
                        Some(value) => RawRef::Field(name, value.to_string()),
                        None => {
                            self.errors.push(join(&path, name), "expected a string");
                            return None;
                        }
                    }
                } else {
                    self.errors.push(path, expected());
                    return None;
                }
            }
            _ => {
                self.errors.push(path, expected());
                return None;
            }
        };
        Some(Link::Pending { raw, path })
    }

    fn service(&mut self, path: String, value: &Value) {
        let Some(mut obj) = Obj::new(path.clone(), value, &mut self.errors) else { return };
        let name = self.name(&mut obj, "name");
        let key = name.clone().unwrap_or_else(|| canonical(value));
        let id = self.id(&mut obj, Kind::Services, || key);
        let mut protocol = Protocol::Http;
        let mut host = String::new();
        let mut port = None;
        let mut url_path = None;
        if let Some(url) = obj.string("url", &mut self.errors) {
            for conflict in ["protocol", "host", "port", "path"] {
                if obj.raw(conflict).is_some() {
                    self.errors.push(obj.path_of(conflict), "cannot be set together with url");
                }
            }
            match validate::service_url(&url) {
                Ok(parts) => {
                    (protocol, host, port, url_path) = (parts.protocol, parts.host, Some(parts.port), parts.path)
                }
                Err(message) => self.errors.push(obj.path_of("url"), message),
            }
        } else {
            if let Some(p) = obj.string("protocol", &mut self.errors) {
                match validate::protocol(&p) {
                    Ok(p) => protocol = p,
                    Err(message) => self.errors.push(obj.path_of("protocol"), message),
                }
            }
            match obj.string("host", &mut self.errors) {
                Some(h) => match validate::host(&h) {
                    Ok(()) => host = h,
                    Err(message) => self.errors.push(obj.path_of("host"), message),
                },
                None if !obj.has("host") => self.errors.push(obj.path_of("host"), "required field missing"),
                None => {}
            }
            if obj.has("port") {
                port = Some(obj.int("port", 1, 65535, 80, &mut self.errors) as u16);
            }
            if let Some(p) = obj.string("path", &mut self.errors) {
                match validate::service_path(&p) {
                    Ok(()) => url_path = Some(p),
                    Err(message) => self.errors.push(obj.path_of("path"), message),
                }
            }
        }
        let timeout =
            |b: &mut Self, obj: &mut Obj, field| obj.int(field, 1, i32::MAX as i64, 60_000, &mut b.errors) as u32;
        let service = Service {
            id,
            name,
            protocol,
            host,
            port: port.unwrap_or(80),
            path: url_path,
            retries: obj.int("retries", 0, 32767, 5, &mut self.errors) as u32,
            connect_timeout: timeout(self, &mut obj, "connect_timeout"),
            write_timeout: timeout(self, &mut obj, "write_timeout"),
            read_timeout: timeout(self, &mut obj, "read_timeout"),
            enabled: obj.bool("enabled", true, &mut self.errors),
            tags: self.tags(&mut obj),
            tls_verify: None,
            ca_certificates: Vec::new(),
            client_certificate: None,
        };
        let (service, client_certificate) = self.upstream_tls(&mut obj, service);
        for (child, v) in obj.array("routes", &mut self.errors) {
            self.route(child, v, Some(id));
        }
        for (child, v) in obj.array("plugins", &mut self.errors) {
            self.plugin(child, v, Some((Kind::Services, id)));
        }
        obj.finish(&mut self.errors);
        self.services.push((path, service, client_certificate));
    }

    /// A service's upstream TLS fields, Kong's: only for `https` services (else they must be
    /// null); `tls_verify` may not be `false` (upstream certificates are always verified) and
    /// `tls_verify_depth` is not supported, so both are refused rather than ignored.
    fn upstream_tls(&mut self, obj: &mut Obj, mut service: Service) -> (Service, Option<Link>) {
        const FIELDS: [&str; 4] = ["client_certificate", "tls_verify", "tls_verify_depth", "ca_certificates"];
        if service.protocol != Protocol::Https {
            for field in FIELDS {
                let empty_list = obj.raw(field).is_some_and(|v| v.as_array().is_some_and(Vec::is_empty));
                if obj.has(field) && !empty_list {
                    self.errors.push(obj.path_of(field), "value must be null unless protocol is https");
                }
            }
            return (service, None);
        }
        match obj.raw("tls_verify") {
            None => {}
            Some(Value::Bool(true)) => service.tls_verify = Some(true),
            Some(Value::Bool(false)) => self.errors.push(
                obj.path_of("tls_verify"),
                "upstream certificates are always verified here: false is not supported",
            ),
            Some(other) => {
                self.errors.push(obj.path_of("tls_verify"), format!("expected a boolean, got {}", type_name(other)))
            }
        }
        if obj.raw("tls_verify_depth").is_some() {
            obj.int("tls_verify_depth", 0, 64, 0, &mut self.errors);
            self.errors.push(
                obj.path_of("tls_verify_depth"),
                "not supported yet: the chain depth is not limited; leave it null",
            );
        }
        for (i, id) in obj.strings("ca_certificates", &mut self.errors).iter().enumerate() {
            match Uuid::parse_str(id) {
                Ok(id) => service.ca_certificates.push(id),
                Err(_) => self.errors.push(index(&obj.path_of("ca_certificates"), i), "expected a valid UUID"),
            }
        }
        let client_certificate = self.reference(obj, "client_certificate", Kind::Certificates);
        (service, client_certificate)
    }

    fn route(&mut self, path: String, value: &Value, parent: Option<Uuid>) {
        let Some(mut obj) = Obj::new(path.clone(), value, &mut self.errors) else { return };
        let name = self.name(&mut obj, "name");
        let key = match (&name, parent) {
            (Some(name), _) => name.clone(),
            (None, Some(service)) => format!("{service}/{}", canonical(value)),
            (None, None) => canonical(value),
        };
        let id = self.id(&mut obj, Kind::Routes, || key);
        let service = match parent {
            Some(service) => {
                if obj.has("service") {
                    self.errors.push(obj.path_of("service"), "a route nested in a service belongs to that service");
                }
                obj.raw("service");
                Some(Link::Resolved(service))
            }
            None => self.reference(&mut obj, "service", Kind::Services),
        };
        let protocols = self.protocols(&mut obj, &[Protocol::Http, Protocol::Https]);
        let methods = obj.strings("methods", &mut self.errors);
        for (i, m) in methods.iter().enumerate() {
            if let Err(message) = validate::method(m) {
                self.errors.push(index(&obj.path_of("methods"), i), message);
            }
        }
        let hosts: Vec<String> = obj.strings("hosts", &mut self.errors);
        for (i, h) in hosts.iter().enumerate() {
            if let Err(message) = validate::route_host(h) {
                self.errors.push(index(&obj.path_of("hosts"), i), message);
            }
        }
        let hosts = hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect();
        let paths = obj.strings("paths", &mut self.errors);
        for (i, p) in paths.iter().enumerate() {
            if let Err(message) = validate::route_path(p) {
                self.errors.push(index(&obj.path_of("paths"), i), message);
            }
        }
        let headers = self.headers(&mut obj);
        let snis: Vec<String> = obj.strings("snis", &mut self.errors);
        for (i, s) in snis.iter().enumerate() {
            if let Err(message) = validate::sni(s) {
                self.errors.push(index(&obj.path_of("snis"), i), message);
            }
        }
        if !snis.is_empty() && !protocols.contains(&Protocol::Https) {
            self.errors.push(obj.path_of("snis"), "'snis' can only be set when 'protocols' includes 'https'");
        }
        let snis = snis.into_iter().map(|s| s.trim_end_matches('.').to_ascii_lowercase()).collect();
        for unsupported in ["sources", "destinations"] {
            if obj.raw(unsupported).is_some_and(|v| v.as_array().is_none_or(|a| !a.is_empty())) {
                self.errors.push(obj.path_of(unsupported), "only for tcp and tls routes, which are not supported");
            }
        }
        let path_handling = match obj.string("path_handling", &mut self.errors).as_deref() {
            None | Some("v0") => PathHandling::V0,
            Some("v1") => PathHandling::V1,
            Some(_) => {
                self.errors.push(obj.path_of("path_handling"), "expected one of: v0, v1");
                PathHandling::V0
            }
        };
        let redirect = obj.int("https_redirect_status_code", 0, 999, 426, &mut self.errors) as u16;
        if ![426, 301, 302, 307, 308].contains(&redirect) {
            self.errors.push(obj.path_of("https_redirect_status_code"), "expected one of: 426, 301, 302, 307, 308");
        }
        let route = Route {
            id,
            name,
            protocols,
            methods,
            hosts,
            paths,
            headers,
            snis,
            strip_path: obj.bool("strip_path", true, &mut self.errors),
            preserve_host: obj.bool("preserve_host", false, &mut self.errors),
            regex_priority: obj.int("regex_priority", i32::MIN as i64, i32::MAX as i64, 0, &mut self.errors) as i32,
            path_handling,
            https_redirect_status_code: redirect,
            request_buffering: obj.bool("request_buffering", true, &mut self.errors),
            response_buffering: obj.bool("response_buffering", true, &mut self.errors),
            service: None,
            tags: self.tags(&mut obj),
        };
        if route.methods.is_empty()
            && route.hosts.is_empty()
            && route.headers.is_empty()
            && route.paths.is_empty()
            && route.snis.is_empty()
        {
            self.errors.push(path.clone(), "must set one of 'methods', 'hosts', 'headers', 'paths', 'snis'");
        }
        for (child, v) in obj.array("plugins", &mut self.errors) {
            self.plugin(child, v, Some((Kind::Routes, id)));
        }
        obj.finish(&mut self.errors);
        self.routes.push((path, route, service));
    }

    fn protocols(&mut self, obj: &mut Obj, default: &[Protocol]) -> Vec<Protocol> {
        if !obj.has("protocols") {
            obj.raw("protocols");
            return default.to_vec();
        }
        let mut out = Vec::new();
        for (i, p) in obj.strings("protocols", &mut self.errors).iter().enumerate() {
            match validate::protocol(p) {
                Ok(p) if !out.contains(&p) => out.push(p),
                Ok(_) => {}
                Err(message) => self.errors.push(index(&obj.path_of("protocols"), i), message),
            }
        }
        if out.is_empty() && self.errors.is_empty() {
            self.errors.push(obj.path_of("protocols"), "must not be empty");
        }
        out.sort();
        out
    }

    /// A plugin's `protocols`: each one the plugin supports. When absent, Kong's default (those
    /// of `grpc, grpcs, http, https` the plugin supports, else all it supports).
    fn plugin_protocols(&mut self, obj: &mut Obj, supported: &[PluginProtocol]) -> Vec<PluginProtocol> {
        if !obj.has("protocols") {
            obj.raw("protocols");
            let default: Vec<PluginProtocol> =
                PluginProtocol::DEFAULT.into_iter().filter(|p| supported.contains(p)).collect();
            return if default.is_empty() { supported.to_vec() } else { default };
        }
        let mut out = Vec::new();
        let before = self.errors.0.len();
        for (i, p) in obj.strings("protocols", &mut self.errors).iter().enumerate() {
            match PluginProtocol::parse(p) {
                Some(p) if supported.contains(&p) => {
                    if !out.contains(&p) {
                        out.push(p)
                    }
                }
                _ => {
                    let names: Vec<&str> = supported.iter().map(|p| p.as_str()).collect();
                    self.errors
                        .push(index(&obj.path_of("protocols"), i), format!("expected one of: {}", names.join(", ")))
                }
            }
        }
        if out.is_empty() && self.errors.0.len() == before {
            self.errors.push(obj.path_of("protocols"), "must not be empty");
        }
        out.sort();
        out
    }

    fn headers(&mut self, obj: &mut Obj) -> BTreeMap<String, Vec<String>> {
        let path = obj.path_of("headers");
        let mut out = BTreeMap::new();
        match obj.raw("headers") {
            None => {}
            Some(Value::Object(map)) => {
                for (name, values) in map {
                    let field = join(&path, name);
                    if name.eq_ignore_ascii_case("host") {
                        self.errors.push(
                            field,
                            "cannot contain 'host' header, which must be specified in the 'hosts' attribute",
                        );
                        continue;
                    }
                    let values: Vec<String> = match values {
                        Value::String(s) => vec![s.clone()],
                        Value::Array(items) if !items.is_empty() => {
                            items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()
                        }
                        _ => {
                            self.errors.push(field, "expected a non-empty array of strings");
                            continue;
                        }
                    };
                    for (i, v) in values.iter().enumerate() {
                        if let Err(message) = validate::header_value(v) {
                            self.errors.push(index(&field, i), message);
                        }
                    }
                    out.insert(name.to_ascii_lowercase(), values);
                }
            }
            Some(_) => self.errors.push(path, "expected an object of header names to arrays of values"),
        }
        out
    }

    fn consumer(&mut self, path: String, value: &Value) {
        let Some(mut obj) = Obj::new(path.clone(), value, &mut self.errors) else { return };
        let username = obj.string("username", &mut self.errors);
        let custom_id = obj.string("custom_id", &mut self.errors);
        if username.is_none() && custom_id.is_none() {
            self.errors.push(path.clone(), "at least one of these fields must be non-empty: 'custom_id', 'username'");
        }
        let key = username.clone().map(|u| format!("u:{u}")).or_else(|| custom_id.clone().map(|c| format!("c:{c}")));
        let id = self.id(&mut obj, Kind::Consumers, || key.unwrap_or_default());
        let consumer = Consumer { id, username, custom_id, tags: self.tags(&mut obj) };
        for (child, v) in obj.array("plugins", &mut self.errors) {
            self.plugin(child, v, Some((Kind::Consumers, id)));
        }
        for kind in CREDENTIALS {
            for (child, v) in obj.array(kind.name(), &mut self.errors) {
                self.credential(kind, child, v, Some(id));
            }
        }
        obj.finish(&mut self.errors);
        self.consumers.push((path, consumer));
    }

    /// A consumer credential of `kind`; `consumer` is the consumer it is nested in, if any.
    fn credential(&mut self, kind: Kind, path: String, value: &Value, consumer: Option<Uuid>) {
        let Some(mut obj) = Obj::new(path.clone(), value, &mut self.errors) else { return };
        let link = match consumer {
            Some(id) => {
                if obj.raw("consumer").is_some() {
                    self.errors
                        .push(obj.path_of("consumer"), "a credential nested in a consumer belongs to that consumer");
                }
                Link::Resolved(id)
            }
            None => match self.reference(&mut obj, "consumer", Kind::Consumers) {
                Some(link) => link,
                None => {
                    if !obj.has("consumer") {
                        self.errors.push(obj.path_of("consumer"), "required field missing");
                    }
                    Link::Resolved(Uuid::nil())
                }
            },
        };
        let consumer_key = match &link {
            Link::Resolved(id) => id.to_string(),
            Link::Pending { raw, .. } => raw.to_string(),
        };
        let required = |b: &mut Self, obj: &mut Obj, field: &str| match obj.string(field, &mut b.errors) {
            Some(v) if v.is_empty() => {
                b.errors.push(obj.path_of(field), "length must be at least 1");
                None
            }
            Some(v) => Some(v),
            None => {
                if !obj.has(field) {
                    b.errors.push(obj.path_of(field), "required field missing");
                }
                None
            }
        };
        // A key or secret left out is made up, as Kong does; one given empty is refused.
        let generated = |b: &mut Self, obj: &mut Obj, field: &str| match obj.raw(field) {
            None => secrets::random_token(),
            Some(_) => required(b, obj, field).unwrap_or_default(),
        };
        let credential = match kind {
            Kind::KeyauthCredentials => {
                // Kong's DB-less form: when the key expires, in seconds since the epoch (0: never).
                let expires_at = match obj.raw("ttl") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(obj.int("ttl", 0, i64::from(u32::MAX) * 4, 0, &mut self.errors)).filter(|&t| t > 0),
                };
                let key = generated(self, &mut obj, "key");
                let id = self.id(&mut obj, kind, || format!("{consumer_key}|{key}"));
                Credential::Key(KeyauthCredential {
                    id,
                    consumer: Ref { id: Uuid::nil() },
                    key,
                    expires_at,
                    tags: self.tags(&mut obj),
                })
            }
            Kind::BasicauthCredentials => {
                let username = required(self, &mut obj, "username").unwrap_or_default();
                let password = required(self, &mut obj, "password").unwrap_or_default();
                let password =
                    if secrets::is_password_hash(&password) { password } else { secrets::hash_password(&password) };
                let id = self.id(&mut obj, kind, || format!("{consumer_key}|{username}"));
                Credential::Basic(BasicauthCredential {
                    id,
                    consumer: Ref { id: Uuid::nil() },
                    username,
                    password,
                    tags: self.tags(&mut obj),
                })
            }
            Kind::JwtSecrets => {
                let key = generated(self, &mut obj, "key");
                let secret = generated(self, &mut obj, "secret");
                let algorithm = match obj.string("algorithm", &mut self.errors) {
                    None => JwtAlgorithm::HS256,
                    Some(name) => JwtAlgorithm::parse(&name).unwrap_or_else(|| {
                        let known: Vec<&str> = JwtAlgorithm::ALL.iter().map(|a| a.as_str()).collect();
                        self.errors.push(
                            obj.path_of("algorithm"),
                            format!("expected one of: {} ({name:?} is not supported)", known.join(", ")),
                        );
                        JwtAlgorithm::HS256
                    }),
                };
                let rsa_public_key = obj.string("rsa_public_key", &mut self.errors);
                match (&rsa_public_key, algorithm.is_asymmetric()) {
                    (None, true) if !obj.has("rsa_public_key") => self.errors.push(
                        obj.path_of("rsa_public_key"),
                        format!("required field missing (algorithm {})", algorithm.as_str()),
                    ),
                    (Some(pem), true) => {
                        if let Err(message) = validate::jwt_public_key(pem, algorithm) {
                            self.errors.push(obj.path_of("rsa_public_key"), message);
                        }
                    }
                    _ => {}
                }
                let id = self.id(&mut obj, kind, || format!("{consumer_key}|{key}"));
                Credential::Jwt(JwtSecret {
                    id,
                    consumer: Ref { id: Uuid::nil() },
                    key,
                    secret,
                    algorithm,
                    rsa_public_key,
                    tags: self.tags(&mut obj),
                })
            }
            Kind::Acls => {
                let group = required(self, &mut obj, "group").unwrap_or_default();
                let id = self.id(&mut obj, kind, || format!("{consumer_key}|{group}"));
                Credential::Acl(Acl { id, consumer: Ref { id: Uuid::nil() }, group, tags: self.tags(&mut obj) })
            }
            other => unreachable!("{other} is not a credential kind"),
        };
        obj.finish(&mut self.errors);
        self.credentials.push((path, credential, link));
    }

    /// A plugin; `parent` is the entity it is nested in, if any.
    fn plugin(&mut self, path: String, value: &Value, parent: Option<(Kind, Uuid)>) {
        let Some(mut obj) = Obj::new(path.clone(), value, &mut self.errors) else { return };
        let name = match obj.string("name", &mut self.errors) {
            Some(name) => name,
            None => {
                if !obj.has("name") {
                    self.errors.push(obj.path_of("name"), "required field missing");
                }
                String::new()
            }
        };
        let mut links: [Option<Link>; 3] = [None, None, None];
        for (slot, link) in Kind::Plugins.descriptor().links.iter().enumerate() {
            let field = link.field;
            links[slot] = match parent {
                Some((kind, id)) if kind == link.to => {
                    if obj.has(field) {
                        self.errors
                            .push(obj.path_of(field), format!("a plugin nested in a {field} belongs to that {field}"));
                    }
                    obj.raw(field);
                    Some(Link::Resolved(id))
                }
                _ => self.reference(&mut obj, field, link.to),
            };
        }
        let instance_name = self.name(&mut obj, "instance_name");
        let mut config = match obj.raw("config") {
            None => Value::Object(Default::default()),
            Some(v @ Value::Object(_)) => v.clone(),
            Some(_) => {
                self.errors.push(obj.path_of("config"), "expected an object");
                Value::Object(Default::default())
            }
        };
        let supported = self.plugin_schemas.get(&name).map_or(PluginProtocol::DEFAULT.to_vec(), |s| s.protocols());
        let protocols = self.plugin_protocols(&mut obj, &supported);
        if !name.is_empty() {
            match self.plugin_schemas.get(&name) {
                None => self.errors.push_kind(
                    obj.path_of("name"),
                    not_enabled(&name),
                    ErrorKind::PluginNotRunnable { plugin: name.clone() },
                ),
                Some(schema) if !schema.consumer_scope() && links[2].is_some() => {
                    // Kong's `no_consumer`: the plugin runs before a consumer is known.
                    self.errors.push(
                        obj.path_of("consumer"),
                        format!("plugin '{name}' cannot be applied to a consumer: value must be null"),
                    );
                }
                Some(schema) => match schema.check(&config) {
                    Ok(checked) => config = checked,
                    Err(errors) => {
                        let at = obj.path_of("config");
                        for e in errors {
                            let path = if e.path.is_empty() { at.clone() } else { join(&at, &e.path) };
                            self.errors.push_kind(path, e.message, e.kind);
                        }
                    }
                },
            }
        }
        let scope_key: Vec<String> = links
            .iter()
            .map(|l| match l {
                Some(Link::Resolved(id)) => id.to_string(),
                Some(Link::Pending { raw, .. }) => raw.to_string(),
                None => String::new(),
            })
            .collect();
        let key = format!("{name}|{}|{}", scope_key.join("|"), instance_name.clone().unwrap_or_default());
        let id = self.id(&mut obj, Kind::Plugins, || key);
        let plugin = Plugin {
            id,
            name,
            instance_name,
            config,
            enabled: obj.bool("enabled", true, &mut self.errors),
            protocols,
            service: None,
            route: None,
            consumer: None,
            tags: self.tags(&mut obj),
        };
        // Kong writes `ordering: null` in exported files; dynamic ordering itself is not
        // implemented, so a value is refused rather than stored and ignored.
        if let Some(ordering) = obj.raw("ordering")
            && !ordering.is_null()
        {
            self.errors.push(
                obj.path_of("ordering"),
                "dynamic plugin ordering is not supported: plugins run in their priority order",
            );
        }
        obj.finish(&mut self.errors);
        self.plugins.push((path, plugin, links));
    }

    fn upstream(&mut self, path: String, value: &Value) {
        let Some(mut obj) = Obj::new(path.clone(), value, &mut self.errors) else { return };
        let name = match obj.string("name", &mut self.errors) {
            Some(name) => {
                if let Err(message) = validate::host(&name) {
                    self.errors.push(obj.path_of("name"), message);
                }
                name
            }
            None => {
                if !obj.has("name") {
                    self.errors.push(obj.path_of("name"), "required field missing");
                }
                String::new()
            }
        };
        let key = name.clone();
        let id = self.id(&mut obj, Kind::Upstreams, || key);
        let algorithm = obj.string("algorithm", &mut self.errors).unwrap_or_else(|| "round-robin".into());
        if algorithm != "round-robin" {
            self.errors.push(obj.path_of("algorithm"), "only round-robin is supported");
        }
        let upstream = Upstream {
            id,
            name,
            algorithm,
            slots: obj.int("slots", 10, 65536, 10_000, &mut self.errors) as u32,
            tags: self.tags(&mut obj),
        };
        obj.accept(UPSTREAM_ACCEPTED);
        for (child, v) in obj.array("targets", &mut self.errors) {
            self.target(child, v, Some(id));
        }
        obj.finish(&mut self.errors);
        self.upstreams.push((path, upstream));
    }

    fn target(&mut self, path: String, value: &Value, parent: Option<Uuid>) {
        let Some(mut obj) = Obj::new(path.clone(), value, &mut self.errors) else { return };
        let target = match obj.string("target", &mut self.errors) {
            Some(t) => match validate::target(&t) {
                Ok(normalized) => normalized,
                Err(message) => {
                    self.errors.push(obj.path_of("target"), message);
                    t
                }
            },
            None => {
                if !obj.has("target") {
                    self.errors.push(obj.path_of("target"), "required field missing");
                }
                String::new()
            }
        };
        let upstream = match parent {
            Some(id) => {
                obj.raw("upstream");
                Link::Resolved(id)
            }
            None => match self.reference(&mut obj, "upstream", Kind::Upstreams) {
                Some(link) => link,
                None => {
                    if !obj.has("upstream") {
                        self.errors.push(obj.path_of("upstream"), "required field missing");
                    }
                    Link::Resolved(Uuid::nil())
                }
            },
        };
        let upstream_key = match &upstream {
            Link::Resolved(id) => id.to_string(),
            Link::Pending { raw, .. } => raw.to_string(),
        };
        let key = format!("{upstream_key}|{target}");
        let id = self.id(&mut obj, Kind::Targets, || key);
        let entity = Target {
            id,
            upstream: Ref { id: Uuid::nil() },
            target,
            weight: obj.int("weight", 0, 65535, 100, &mut self.errors) as u32,
            tags: self.tags(&mut obj),
        };
        obj.finish(&mut self.errors);
        self.targets.push((path, entity, upstream));
    }

    fn certificate(&mut self, path: String, value: &Value) {
        let Some(mut obj) = Obj::new(path.clone(), value, &mut self.errors) else { return };
        let pem = |b: &mut Self, obj: &mut Obj, field: &str, required: bool| {
            let v = obj.string(field, &mut b.errors);
            if v.is_none() && required && !obj.has(field) {
                b.errors.push(obj.path_of(field), "required field missing");
            }
            v
        };
        let cert = pem(self, &mut obj, "cert", true).unwrap_or_default();
        let key = pem(self, &mut obj, "key", true).unwrap_or_default();
        let cert_alt = pem(self, &mut obj, "cert_alt", false);
        let key_alt = pem(self, &mut obj, "key_alt", false);
        let mut algorithms = [None, None];
        for (slot, (c, k, c_field, k_field, mismatch)) in [
            (Some(&cert), Some(&key), "cert", "key", "certificate does not match key"),
            (cert_alt.as_ref(), key_alt.as_ref(), "cert_alt", "key_alt", "alternative certificate does not match key"),
        ]
        .into_iter()
        .enumerate()
        {
            let (Some(c), Some(k)) = (c, k) else { continue };
            if c.is_empty() || k.is_empty() {
                continue;
            }
            // A vault reference (Kong's referenceable fields) is resolved by each node that
            // serves the certificate; here only its form is checked.
            let references = [(c, c_field), (k, k_field)].into_iter().filter(|(v, _)| is_reference(v));
            let mut referenced = false;
            for (value, field) in references {
                referenced = true;
                match Reference::parse(value) {
                    Ok(reference) if reference.vault != "env" => self.errors.push(
                        obj.path_of(field),
                        format!("{reference}: only the env vault is available here, not `{}`", reference.vault),
                    ),
                    Ok(_) => {}
                    Err(e) => self.errors.push(obj.path_of(field), e.to_string()),
                }
            }
            if referenced {
                continue;
            }
            match validate::cert_pair(c, k) {
                Ok(algorithm) => algorithms[slot] = Some(algorithm),
                Err(e) => match e.fault {
                    validate::PairFault::Cert => self.errors.push(obj.path_of(c_field), e.message),
                    validate::PairFault::Key => self.errors.push(obj.path_of(k_field), e.message),
                    validate::PairFault::Mismatch => self.errors.push(path.clone(), mismatch),
                },
            }
        }
        if cert_alt.is_some() != key_alt.is_some() {
            self.errors.push(path.clone(), "cert_alt and key_alt must be given together");
        }
        if let [Some(a), Some(b)] = &algorithms
            && a == b
        {
            self.errors.push(
                path.clone(),
                "certificate and alternative certificate need to have different type (e.g. RSA and ECDSA), the provided certificates were both of the same type",
            );
        }
        let digest = validate::digest(&cert);
        let id = self.id(&mut obj, Kind::Certificates, || digest);
        let certificate = Certificate { id, cert, key, cert_alt, key_alt, tags: self.tags(&mut obj) };
        let snis_path = obj.path_of("snis");
        match obj.raw("snis") {
            None => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let item = match item {
                        Value::String(name) => serde_json::json!({ "name": name }),
                        other => other.clone(),
                    };
                    self.sni(index(&snis_path, i), &item, Some(id));
                }
            }
            Some(_) => self.errors.push(snis_path, "expected an array of names"),
        }
        obj.finish(&mut self.errors);
        self.certificates.push((path, certificate));
    }

    fn sni(&mut self, path: String, value: &Value, parent: Option<Uuid>) {
        let Some(mut obj) = Obj::new(path.clone(), value, &mut self.errors) else { return };
        let name = match obj.string("name", &mut self.errors) {
            Some(name) => {
                if let Err(message) = validate::sni(&name) {
                    self.errors.push(obj.path_of("name"), message);
                }
                name.trim_end_matches('.').to_ascii_lowercase()
            }
            None => {
                if !obj.has("name") {
                    self.errors.push(obj.path_of("name"), "required field missing");
                }
                String::new()
            }
        };
        let key = name.clone();
        let id = self.id(&mut obj, Kind::Snis, || key);
        let certificate = match parent {
            Some(id) => {
                obj.raw("certificate");
                Link::Resolved(id)
            }
            None => self.reference(&mut obj, "certificate", Kind::Certificates).unwrap_or_else(|| {
                if !obj.has("certificate") {
                    self.errors.push(obj.path_of("certificate"), "required field missing");
                }
                Link::Resolved(Uuid::nil())
            }),
        };
        let sni = Sni { id, name, certificate: Ref { id: Uuid::nil() }, tags: self.tags(&mut obj) };
        obj.finish(&mut self.errors);
        self.snis.push((path, sni, certificate));
    }

    fn ca_certificate(&mut self, path: String, value: &Value) {
        let Some(mut obj) = Obj::new(path.clone(), value, &mut self.errors) else { return };
        let cert = match obj.string("cert", &mut self.errors) {
            Some(cert) => cert,
            None => {
                if !obj.has("cert") {
                    self.errors.push(obj.path_of("cert"), "required field missing");
                }
                String::new()
            }
        };
        let cert_digest = if cert.is_empty() {
            String::new()
        } else {
            match validate::ca_certificate(&cert) {
                Ok(digest) => digest,
                Err(message) => {
                    self.errors.push(obj.path_of("cert"), message);
                    String::new()
                }
            }
        };
        if let Some(given) = obj.string("cert_digest", &mut self.errors)
            && !cert_digest.is_empty()
            && given != cert_digest
        {
            self.errors.push(obj.path_of("cert_digest"), "does not match the certificate");
        }
        let key = cert_digest.clone();
        let id = self.id(&mut obj, Kind::CaCertificates, || key);
        let entity = CaCertificate { id, cert, cert_digest, tags: self.tags(&mut obj) };
        obj.finish(&mut self.errors);
        self.ca_certificates.push((path, entity));
    }

    /// Resolves references, checks uniqueness, and sorts every list by id.
    fn finish(self) -> Result<Config, Vec<FieldError>> {
        let Builder {
            plugin_schemas: _,
            mut errors,
            services,
            routes,
            consumers,
            plugins,
            upstreams,
            targets,
            certificates,
            snis,
            ca_certificates,
            credentials,
        } = self;
        let service_ids =
            Lookup::new(Kind::Services, services.iter().map(|(_, s, _)| (s.id, vec![("name", s.name.clone())])));
        let route_ids =
            Lookup::new(Kind::Routes, routes.iter().map(|(_, r, _)| (r.id, vec![("name", r.name.clone())])));
        let consumer_ids = Lookup::new(
            Kind::Consumers,
            consumers
                .iter()
                .map(|(_, c)| (c.id, vec![("username", c.username.clone()), ("custom_id", c.custom_id.clone())])),
        );
        let upstream_ids =
            Lookup::new(Kind::Upstreams, upstreams.iter().map(|(_, u)| (u.id, vec![("name", Some(u.name.clone()))])));
        let certificate_ids = Lookup::new(Kind::Certificates, certificates.iter().map(|(_, c)| (c.id, Vec::new())));
        let ca_ids: HashSet<Uuid> = ca_certificates.iter().map(|(_, c)| c.id).collect();

        let services: Vec<(String, Service)> = services
            .into_iter()
            .map(|(path, mut service, link)| {
                service.client_certificate = certificate_ids.resolve(link, &mut errors);
                for (i, id) in service.ca_certificates.iter().enumerate() {
                    if !ca_ids.contains(id) {
                        errors
                            .push(index(&join(&path, "ca_certificates"), i), format!("no ca_certificate with id {id}"));
                    }
                }
                (path, service)
            })
            .collect();

        let routes: Vec<(String, Route)> = routes
            .into_iter()
            .map(|(path, mut route, link)| {
                route.service = service_ids.resolve(link, &mut errors);
                (path, route)
            })
            .collect();
        let plugins: Vec<(String, Plugin)> = plugins
            .into_iter()
            .map(|(path, mut plugin, [service, route, consumer])| {
                plugin.service = service_ids.resolve(service, &mut errors);
                plugin.route = route_ids.resolve(route, &mut errors);
                plugin.consumer = consumer_ids.resolve(consumer, &mut errors);
                (path, plugin)
            })
            .collect();
        let targets: Vec<(String, Target)> = targets
            .into_iter()
            .map(|(path, mut target, link)| {
                target.upstream = upstream_ids.resolve(Some(link), &mut errors).unwrap_or(Ref { id: Uuid::nil() });
                (path, target)
            })
            .collect();
        let mut keyauth_credentials = Vec::new();
        let mut basicauth_credentials = Vec::new();
        let mut jwt_secrets = Vec::new();
        let mut acls = Vec::new();
        for (path, mut credential, link) in credentials {
            let consumer = consumer_ids.resolve(Some(link), &mut errors).unwrap_or(Ref { id: Uuid::nil() });
            match &mut credential {
                Credential::Key(c) => c.consumer = consumer,
                Credential::Basic(c) => c.consumer = consumer,
                Credential::Jwt(c) => c.consumer = consumer,
                Credential::Acl(c) => c.consumer = consumer,
            }
            match credential {
                Credential::Key(c) => keyauth_credentials.push((path, c)),
                Credential::Basic(c) => basicauth_credentials.push((path, c)),
                Credential::Jwt(c) => jwt_secrets.push((path, c)),
                Credential::Acl(c) => acls.push((path, c)),
            }
        }
        let snis: Vec<(String, Sni)> = snis
            .into_iter()
            .map(|(path, mut sni, link)| {
                sni.certificate = certificate_ids.resolve(Some(link), &mut errors).unwrap_or(Ref { id: Uuid::nil() });
                (path, sni)
            })
            .collect();

        // Unique keys, reported at the later entity with the path of the earlier one.
        let mut unique = Unique::new(&mut errors);
        for (path, s) in &services {
            unique.check("service", path, "name", s.name.clone());
            unique.check("service", path, "id", Some(s.id.to_string()));
        }
        for (path, r) in &routes {
            unique.check("route", path, "name", r.name.clone());
            unique.check("route", path, "id", Some(r.id.to_string()));
        }
        for (path, c) in &consumers {
            unique.check("consumer", path, "username", c.username.clone());
            unique.check("consumer", path, "custom_id", c.custom_id.clone());
            unique.check("consumer", path, "id", Some(c.id.to_string()));
        }
        for (path, p) in &plugins {
            let scope = |r: Option<Ref>| r.map(|r| r.id.to_string()).unwrap_or_else(|| "-".into());
            let key = format!(
                "{} (service {}, route {}, consumer {})",
                p.instance_name.as_deref().unwrap_or(&p.name),
                scope(p.service),
                scope(p.route),
                scope(p.consumer)
            );
            unique.check("plugin", path, "name", Some(key));
            unique.check("plugin", path, "id", Some(p.id.to_string()));
        }
        for (path, u) in &upstreams {
            unique.check("upstream", path, "name", Some(u.name.clone()));
            unique.check("upstream", path, "id", Some(u.id.to_string()));
        }
        for (path, t) in &targets {
            unique.check("target", path, "target", Some(format!("{} of upstream {}", t.target, t.upstream.id)));
            unique.check("target", path, "id", Some(t.id.to_string()));
        }
        for (path, c) in &certificates {
            unique.check("certificate", path, "id", Some(c.id.to_string()));
        }
        for (path, s) in &snis {
            unique.check("sni", path, "name", Some(s.name.clone()));
            unique.check("sni", path, "id", Some(s.id.to_string()));
        }
        for (path, c) in &ca_certificates {
            unique.check("ca_certificate", path, "cert_digest", Some(c.cert_digest.clone()));
            unique.check("ca_certificate", path, "id", Some(c.id.to_string()));
        }
        for (path, c) in &keyauth_credentials {
            unique.check("keyauth_credential", path, "key", Some(c.key.clone()));
            unique.check("keyauth_credential", path, "id", Some(c.id.to_string()));
        }
        for (path, c) in &basicauth_credentials {
            unique.check("basicauth_credential", path, "username", Some(c.username.clone()));
            unique.check("basicauth_credential", path, "id", Some(c.id.to_string()));
        }
        for (path, c) in &jwt_secrets {
            unique.check("jwt_secret", path, "key", Some(c.key.clone()));
            unique.check("jwt_secret", path, "id", Some(c.id.to_string()));
        }
        for (path, c) in &acls {
            unique.check("acl", path, "group", Some(format!("{} of consumer {}", c.group, c.consumer.id)));
            unique.check("acl", path, "id", Some(c.id.to_string()));
        }
        if !errors.is_empty() {
            return Err(errors.0);
        }
        fn sorted<T>(items: Vec<(String, T)>, id: impl Fn(&T) -> Uuid) -> Vec<T> {
            let mut out: Vec<T> = items.into_iter().map(|(_, t)| t).collect();
            out.sort_by_key(|t| id(t));
            out
        }
        Ok(Config {
            services: sorted(services, |e| e.id),
            // Routes keep their order: among routes of equal priority the first one wins, so their
            // order is part of what the configuration means (and of its hash).
            routes: routes.into_iter().map(|(_, r)| r).collect(),
            consumers: sorted(consumers, |e| e.id),
            plugins: sorted(plugins, |e| e.id),
            upstreams: sorted(upstreams, |e| e.id),
            targets: sorted(targets, |e| e.id),
            certificates: sorted(certificates, |e| e.id),
            snis: sorted(snis, |e| e.id),
            ca_certificates: sorted(ca_certificates, |e| e.id),
            keyauth_credentials: sorted(keyauth_credentials, |e| e.id),
            basicauth_credentials: sorted(basicauth_credentials, |e| e.id),
            jwt_secrets: sorted(jwt_secrets, |e| e.id),
            acls: sorted(acls, |e| e.id),
        })
    }
}

/// Ids and unique field values of one kind of entity, for resolving references.
struct Lookup {
    kind: Kind,
    ids: HashSet<Uuid>,
    fields: HashMap<(&'static str, String), Uuid>,
}

impl Lookup {
    fn new(kind: Kind, entries: impl Iterator<Item = (Uuid, Vec<(&'static str, Option<String>)>)>) -> Lookup {
        let mut lookup = Lookup { kind, ids: HashSet::new(), fields: HashMap::new() };
        for (id, fields) in entries {
            lookup.ids.insert(id);
            for (field, value) in fields {
                if let Some(value) = value {
                    lookup.fields.entry((field, value)).or_insert(id);
                }
            }
        }
        lookup
    }

    fn resolve(&self, link: Option<Link>, errors: &mut Errors) -> Option<Ref> {
        match link? {
            Link::Resolved(id) => Some(Ref { id }),
            Link::Pending { raw, path } => {
                let found = match &raw {
                    RawRef::Id(id) => self.ids.contains(id).then_some(*id),
                    RawRef::Field(field, value) => self.fields.get(&(*field, value.clone())).copied(),
                };
                if found.is_none() {
                    let singular = self.kind.name().trim_end_matches('s');
                    let (by, value) = match &raw {
                        RawRef::Id(id) => ("id", id.to_string()),
                        RawRef::Field(field, value) => (*field, value.clone()),
                    };
                    let kind = ErrorKind::Reference { to: self.kind, by, value };
                    errors.push_kind(path, format!("no {singular} with {raw}"), kind);
                }
                found.map(|id| Ref { id })
            }
        }
    }
}

/// Detects values used twice for a unique field.
struct Unique<'e> {
    errors: &'e mut Errors,
    seen: HashMap<(String, String, String), String>,
    /// Entities that already clash on a name: a derived id clash there says nothing new.
    clashed: HashSet<String>,
}

impl<'e> Unique<'e> {
    fn new(errors: &'e mut Errors) -> Self {
        Unique { errors, seen: HashMap::new(), clashed: HashSet::new() }
    }

    /// Checks the natural keys of an entity, then its id.
    fn check(&mut self, kind: &str, path: &str, field: &str, value: Option<String>) {
        let Some(value) = value else { return };
        let key = (kind.to_string(), field.to_string(), value);
        match self.seen.get(&key) {
            Some(first) if field == "id" => {
                if !self.clashed.contains(path) {
                    let message = format!("duplicates {first} (same id {}): give one a distinct name or id", key.2);
                    let clash = ErrorKind::Unique { field: "id".into(), first: first.clone() };
                    self.errors.push_kind(path, message, clash);
                }
            }
            Some(first) => {
                let message = format!("{kind} {field} {:?} is already used at {first}", key.2);
                let clash = ErrorKind::Unique { field: field.to_string(), first: first.clone() };
                self.errors.push_kind(join(path, field), message, clash);
                self.clashed.insert(path.to_string());
            }
            None => {
                self.seen.insert(key, path.to_string());
            }
        }
    }
}

/// A stable text for an entity without a natural key: its JSON without nested children, keys sorted.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let flat: BTreeMap<&String, &Value> = map
                .iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "routes"
                            | "plugins"
                            | "targets"
                            | "snis"
                            | "keyauth_credentials"
                            | "basicauth_credentials"
                            | "jwt_secrets"
                            | "acls"
                    )
                })
                .collect();
            serde_json::to_string(&flat).unwrap_or_default()
        }
        other => other.to_string(),
    }
}
