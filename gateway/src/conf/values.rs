//! Typed values of kong.conf: each parser turns one raw string into a type that carries its rules,
//! or says in one phrase why it cannot. The loader adds where the value came from.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::listen::split_host_port;
use crate::tls::{PemSource, TrustSource};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Traditional,
    ControlPlane,
    DataPlane,
}

impl Role {
    /// The name kong.conf uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Traditional => "traditional",
            Role::ControlPlane => "control_plane",
            Role::DataPlane => "data_plane",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    Lmdb,
    Off,
}

impl Database {
    pub fn as_str(self) -> &'static str {
        match self {
            Database::Lmdb => "lmdb",
            Database::Off => "off",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterMtls {
    Shared,
    Pki,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterOcsp {
    Off,
    On,
    Optional,
}

/// Kong's (nginx's) log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Notice,
    Warn,
    Error,
    Crit,
    Alert,
    Emerg,
}

impl LogLevel {
    /// tracing has five levels: `notice` shares `info`, and the levels above `error` share `error`.
    pub fn tracing_level(self) -> tracing::Level {
        match self {
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Info | LogLevel::Notice => tracing::Level::INFO,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Error | LogLevel::Crit | LogLevel::Alert | LogLevel::Emerg => tracing::Level::ERROR,
        }
    }
}

pub fn parse_role(v: &str) -> Result<Role, String> {
    one_of(
        v,
        &[("traditional", Role::Traditional), ("control_plane", Role::ControlPlane), ("data_plane", Role::DataPlane)],
    )
}

pub fn parse_database(v: &str) -> Result<Database, String> {
    match v {
        "postgres" | "cassandra" => Err(format!("`{v}` is not supported yet; use lmdb (embedded) or off (DB-less)")),
        _ => one_of(v, &[("lmdb", Database::Lmdb), ("off", Database::Off)]),
    }
}

pub fn parse_cluster_mtls(v: &str) -> Result<ClusterMtls, String> {
    match v {
        "pki_check_cn" => Err("`pki_check_cn` is a Kong Enterprise mode; use pki".into()),
        _ => one_of(v, &[("shared", ClusterMtls::Shared), ("pki", ClusterMtls::Pki)]),
    }
}

pub fn parse_cluster_ocsp(v: &str) -> Result<ClusterOcsp, String> {
    one_of(v, &[("off", ClusterOcsp::Off), ("on", ClusterOcsp::On), ("optional", ClusterOcsp::Optional)])
}

pub fn parse_log_level(v: &str) -> Result<LogLevel, String> {
    one_of(
        v,
        &[
            ("debug", LogLevel::Debug),
            ("info", LogLevel::Info),
            ("notice", LogLevel::Notice),
            ("warn", LogLevel::Warn),
            ("error", LogLevel::Error),
            ("crit", LogLevel::Crit),
            ("alert", LogLevel::Alert),
            ("emerg", LogLevel::Emerg),
        ],
    )
}

fn one_of<T: Copy>(v: &str, choices: &[(&str, T)]) -> Result<T, String> {
    choices.iter().find(|(name, _)| *name == v).map(|&(_, t)| t).ok_or_else(|| {
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        format!("must be one of: {}", names.join(", "))
    })
}

/// `plugins`: names, `bundled` for the built-in ones, or `off` for none.
pub fn parse_plugins(v: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item {
            "off" => {}
            "bundled" => out.extend(crate::wasm::bundled::PLUGINS.iter().map(|(name, _)| name.to_string())),
            name if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') => out.push(name.into()),
            name => return Err(format!("{name:?} is not a plugin name")),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A path that must name an existing directory.
pub fn parse_existing_dir(v: &str) -> Result<std::path::PathBuf, String> {
    let path = std::path::PathBuf::from(v);
    if path.is_dir() { Ok(path) } else { Err(format!("no such directory: {}", path.display())) }
}

/// A path that must name an existing file.
pub fn parse_existing_file(v: &str) -> Result<std::path::PathBuf, String> {
    let path = std::path::PathBuf::from(v);
    if path.is_file() { Ok(path) } else { Err(format!("no such file: {}", path.display())) }
}

/// `on`/`true` and `off`/`false`. Kong reads anything else as false; we refuse it, since a typo
/// silently turning a security setting off is worse than a failed start.
pub fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err("must be on, off, true or false".into()),
    }
}

/// A size such as `2048m`: digits with an optional `k`, `m` or `g` suffix (powers of 1024).
pub fn parse_size(v: &str) -> Result<u64, String> {
    const HINT: &str = "must be a size such as 2048m (a number with an optional k, m or g suffix)";
    let (digits, factor) = match v.char_indices().last() {
        Some((i, 'k' | 'K')) => (&v[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&v[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&v[..i], 1 << 30),
        _ => (v, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HINT.into());
    }
    let n: u64 = digits.parse().map_err(|_| HINT.to_string())?;
    let bytes = n.checked_mul(factor).ok_or("is too large")?;
    if bytes == 0 {
        return Err("must be greater than zero".into());
    }
    Ok(bytes)
}

/// A whole number no smaller than `min`.
pub fn parse_integer(v: &str, min: u64) -> Result<u64, String> {
    let n: u64 = v.parse().map_err(|_| "must be a whole number".to_string())?;
    if n < min {
        return Err(format!("must be at least {min}"));
    }
    Ok(n)
}

/// `nginx_worker_processes`: `auto` (`None`) or a number of workers.
pub fn parse_worker_processes(v: &str) -> Result<Option<usize>, String> {
    if v == "auto" {
        return Ok(None);
    }
    match v.parse::<usize>() {
        Ok(n @ 1..=512) => Ok(Some(n)),
        _ => Err("must be `auto` or a number of workers from 1 to 512".into()),
    }
}

/// `auto` or a count of at least 1 (`nginx_events_worker_connections`,
/// `nginx_main_worker_rlimit_nofile`); `None` is `auto`.
pub fn parse_auto_count(v: &str) -> Result<Option<u64>, String> {
    if v == "auto" {
        return Ok(None);
    }
    match v.parse::<u64>() {
        Ok(n @ 1..=1_048_576) => Ok(Some(n)),
        _ => Err("must be `auto` or a number from 1 to 1048576".into()),
    }
}

/// An access log setting (`proxy_access_log` ...): where lines go and in which format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogSpec {
    pub destination: crate::logs::Destination,
    pub format: crate::logs::Format,
}

/// `off` (`None`), or a path (relative ones under `prefix`; `/dev/stdout` and `/dev/stderr` as
/// the process's own) optionally followed by a format name, `default` when none is given. Kong
/// also accepts the names of formats injected with `nginx_http_log_format`; those are nginx
/// directives we do not read, so they are refused rather than silently replaced.
pub fn parse_access_log(
    v: &str,
    prefix: &std::path::Path,
    default: crate::logs::Format,
) -> Result<Option<AccessLogSpec>, String> {
    use crate::logs::Format;
    let mut words = v.split_whitespace();
    let path = words.next().ok_or("must be `off` or a path")?;
    if path == "off" && words.next().is_none() {
        return Ok(None);
    }
    let format = match (words.next(), words.next()) {
        (None, _) => default,
        (Some(name), None) => Format::named(name).ok_or_else(|| {
            format!(
                "log format `{name}` is not one the gateway writes: use `combined` or `kong_log_format`, or name none"
            )
        })?,
        (Some(_), Some(_)) => return Err("must be a path, optionally followed by a format name".into()),
    };
    Ok(Some(AccessLogSpec { destination: log_destination(path, prefix), format }))
}

/// Where a log goes: `/dev/stdout` and `/dev/stderr` as the process's own, any other path as a
/// file (relative ones under `prefix`).
pub fn log_destination(path: &str, prefix: &std::path::Path) -> crate::logs::Destination {
    use crate::logs::Destination;
    match path {
        "/dev/stdout" => Destination::Stdout,
        "/dev/stderr" => Destination::Stderr,
        path => Destination::File(prefix.join(path)),
    }
}

/// An error log setting (`proxy_error_log` ...): a path. nginx has no `off` here either: it would
/// write to a file named `off`, so the word is refused rather than taken as a file name.
pub fn parse_error_log(v: &str, prefix: &std::path::Path) -> Result<crate::logs::Destination, String> {
    match v.split_whitespace().collect::<Vec<_>>()[..] {
        ["off"] => Err("an error log cannot be turned off: name a file, /dev/stderr or /dev/null".into()),
        [path] => Ok(log_destination(path, prefix)),
        _ => Err("must be one path".into()),
    }
}

/// A positive number of seconds, fractions allowed.
pub fn parse_seconds(v: &str) -> Result<Duration, String> {
    let secs: f64 = v.parse().map_err(|_| "must be a number of seconds".to_string())?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err("must be greater than zero".into());
    }
    Duration::try_from_secs_f64(secs).map_err(|_| "is too large".to_string())
}

/// `host:port` with no scheme or path, as `cluster_control_plane` is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

pub fn parse_host_port(v: &str) -> Result<HostPort, String> {
    if v.contains('/') && !v.contains("://") {
        return Err("write host:port, without a path".into());
    }
    let (host, port) = split_host_port(v)?;
    if host == "*" {
        return Err("`*` is not an address to connect to".into());
    }
    Ok(HostPort { host, port })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyScheme {
    Http,
    Https,
}

/// `proxy_server`: where a data plane's CONNECT tunnel starts.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyServer {
    pub scheme: ProxyScheme,
    pub host: String,
    pub port: u16,
    pub credentials: Option<Credentials>,
}

/// Basic-auth credentials for the forward proxy, percent-decoded. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

/// Kong's `headers`: which of the gateway's own headers responses carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResponseHeaders {
    /// `Via` on proxied responses.
    pub via: bool,
    /// `Server`: on proxied responses when the upstream sent none; on the gateway's own answers
    /// always (and removed when off).
    pub server: bool,
    pub proxy_latency: bool,
    pub response_latency: bool,
    pub upstream_latency: bool,
    pub admin_latency: bool,
    pub upstream_status: bool,
    pub request_id: bool,
}

/// `headers`: a list of Kong's names (any case), `server_tokens` (`Via` and `Server`),
/// `latency_tokens` (the four latency headers) or `off`. As in Kong, `off` first turns every one
/// off and an `off` later in the list is ignored.
pub fn parse_headers(v: &str) -> Result<ResponseHeaders, String> {
    let mut h = ResponseHeaders::default();
    let items: Vec<String> = v.split(',').map(|i| i.trim().to_ascii_lowercase()).filter(|i| !i.is_empty()).collect();
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            "off" if i == 0 => return Ok(ResponseHeaders::default()),
            "off" => {}
            "server_tokens" => (h.via, h.server) = (true, true),
            "latency_tokens" => {
                (h.proxy_latency, h.response_latency, h.upstream_latency, h.admin_latency) = (true, true, true, true)
            }
            "via" => h.via = true,
            "server" => h.server = true,
            "x-kong-proxy-latency" => h.proxy_latency = true,
            "x-kong-response-latency" => h.response_latency = true,
            "x-kong-upstream-latency" => h.upstream_latency = true,
            "x-kong-admin-latency" => h.admin_latency = true,
            "x-kong-upstream-status" => h.upstream_status = true,
            "x-kong-request-id" => h.request_id = true,
            _ => {
                return Err(format!(
                    "invalid entry `{item}`: must be a list of off, server_tokens, latency_tokens, Via, Server, X-Kong-Proxy-Latency, X-Kong-Response-Latency, X-Kong-Upstream-Latency, X-Kong-Admin-Latency, X-Kong-Upstream-Status, X-Kong-Request-Id"
                ));
            }
        }
    }
    Ok(h)
}

/// `headers_upstream`: whether upstream requests carry `X-Kong-Request-Id` (`off` or that name).
pub fn parse_headers_upstream(v: &str) -> Result<bool, String> {
    let items: Vec<String> = v.split(',').map(|i| i.trim().to_ascii_lowercase()).filter(|i| !i.is_empty()).collect();
    let mut request_id = false;
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            "off" if i == 0 => return Ok(false),
            "off" => {}
            "x-kong-request-id" => request_id = true,
            _ => return Err(format!("invalid entry `{item}`: must be off or X-Kong-Request-Id")),
        }
    }
    Ok(request_id)
}

/// The formats of the gateway's own error answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Json,
    Html,
    Xml,
    Plain,
}

impl ErrorType {
    pub const ALL: [ErrorType; 4] = [ErrorType::Json, ErrorType::Html, ErrorType::Xml, ErrorType::Plain];

    pub fn mime(self) -> &'static str {
        match self {
            ErrorType::Json => "application/json",
            ErrorType::Html => "text/html",
            ErrorType::Xml => "application/xml",
            ErrorType::Plain => "text/plain",
        }
    }

    /// Its `error_template_*` key.
    pub fn key(self) -> &'static str {
        match self {
            ErrorType::Json => "error_template_json",
            ErrorType::Html => "error_template_html",
            ErrorType::Xml => "error_template_xml",
            ErrorType::Plain => "error_template_plain",
        }
    }
}

/// How the gateway words its own error answers: `error_default_type` and the
/// `error_template_*` files (by [`ErrorType`], `None`: Kong's template).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorTemplates {
    pub default_type: ErrorType,
    pub custom: [Option<std::sync::Arc<str>>; 4],
}

impl Default for ErrorTemplates {
    fn default() -> Self {
        ErrorTemplates { default_type: ErrorType::Plain, custom: Default::default() }
    }
}

impl ErrorTemplates {
    pub fn custom(&self, kind: ErrorType) -> Option<&str> {
        self.custom[kind as usize].as_deref()
    }
}

/// `error_default_type`: one of Kong's four MIME types.
pub fn parse_error_default_type(v: &str) -> Result<ErrorType, String> {
    ErrorType::ALL
        .into_iter()
        .find(|t| t.mime() == v)
        .ok_or_else(|| "must be one of: application/json, application/xml, text/html, text/plain".into())
}

/// The largest error template read.
pub const MAX_ERROR_TEMPLATE: u64 = 64 * 1024;

/// An `error_template_*` file: read at start, UTF-8, at most [`MAX_ERROR_TEMPLATE`] bytes, with at
/// most two `%s` (the message, then the request id) and `%%` for a literal `%` (Kong fills it with
/// Lua's `string.format`); any other `%` directive is refused here rather than failing requests.
pub fn parse_error_template(v: &str) -> Result<std::sync::Arc<str>, String> {
    use std::io::Read;
    let file = std::fs::File::open(v).map_err(|e| format!("cannot read {v}: {e}"))?;
    let mut text = String::new();
    file.take(MAX_ERROR_TEMPLATE + 1).read_to_string(&mut text).map_err(|e| format!("cannot read {v}: {e}"))?;
    if text.len() as u64 > MAX_ERROR_TEMPLATE {
        return Err(format!("{v} is larger than {MAX_ERROR_TEMPLATE} bytes"));
    }
    let mut placeholders = 0;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('s') => placeholders += 1,
                Some('%') => {}
                other => {
                    return Err(format!(
                        "{v}: `%{}` is not a placeholder: use %s (the message, then the request id) and %% for a literal %",
                        other.map(String::from).unwrap_or_default()
                    ));
                }
            }
        }
    }
    if placeholders > 2 {
        return Err(format!("{v} has {placeholders} `%s`: at most two (the message, then the request id)"));
    }
    Ok(std::sync::Arc::from(text))
}

/// Kong's upstream keep-alive settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle connections kept per upstream (address and TLS name) on each worker
    /// (`upstream_keepalive_pool_size`); 0 keeps none: every request opens a connection.
    pub pool_size: usize,
    /// Requests one connection serves before it is closed (`upstream_keepalive_max_requests`);
    /// 0: any number.
    pub max_requests: u64,
    /// How long an idle connection is kept (`upstream_keepalive_idle_timeout`); `None`: for good.
    pub idle_timeout: Option<std::time::Duration>,
}

impl Default for Keepalive {
    /// Kong's defaults: 512, 10000, 60 s.
    fn default() -> Self {
        Keepalive { pool_size: 512, max_requests: 10_000, idle_timeout: Some(std::time::Duration::from_secs(60)) }
    }
}

/// `upstream_keepalive_idle_timeout`: seconds (a fraction allowed), `0` for no limit.
pub fn parse_idle_timeout(v: &str) -> Result<Option<std::time::Duration>, String> {
    let secs: f64 = v.parse().map_err(|_| "must be a number of seconds (0: no limit)".to_string())?;
    if !(secs.is_finite() && secs >= 0.0) {
        return Err("must be a number of seconds (0: no limit)".into());
    }
    if secs == 0.0 {
        return Ok(None);
    }
    std::time::Duration::try_from_secs_f64(secs).map(Some).map_err(|_| "is too large".to_string())
}

/// A declarative configuration given inline (`declarative_config_string`): it may hold
/// credentials, so it is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct InlineConfig(pub String);

impl fmt::Debug for InlineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InlineConfig(<{} bytes>)", self.0.len())
    }
}

impl InlineConfig {
    /// JSON when it looks like a JSON object, else YAML (Kong takes either).
    pub fn is_json(&self) -> bool {
        self.0.trim_start().starts_with('{')
    }
}

/// `node_id`: a UUID, as Kong requires.
pub fn parse_node_id(v: &str) -> Result<uuid::Uuid, String> {
    uuid::Uuid::parse_str(v).map_err(|_| "must be a UUID (e.g. 6ba7b810-9dad-11d1-80b4-00c04fd430c8)".to_string())
}

/// `router_flavor`: Kong's two flavours that match routes by their `paths`, `hosts`, `methods`,
/// `headers` and `snis` fields give the same answers (that is what `traditional_compatible`
/// promises), and are what the bundled router does. `expressions` routes are not supported.
pub fn parse_router_flavor(v: &str) -> Result<(), String> {
    match v {
        "traditional_compatible" | "traditional" => Ok(()),
        "expressions" => Err("the expressions router is not supported: routes match by paths, hosts, methods, headers and snis (use traditional_compatible)".into()),
        _ => Err("must be one of: traditional_compatible, traditional".into()),
    }
}

/// The URL without its password: safe for logs and errors.
impl fmt::Display for ProxyServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            ProxyScheme::Http => "http",
            ProxyScheme::Https => "https",
        };
        write!(f, "{scheme}://")?;
        if self.credentials.is_some() {
            f.write_str("<credentials>@")?;
        }
        write!(f, "{}", HostPort { host: self.host.clone(), port: self.port })
    }
}

impl fmt::Debug for ProxyServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyServer({self})")
    }
}

pub fn parse_proxy_server(v: &str) -> Result<ProxyServer, String> {
    if v.contains('#') {
        return Err("must not contain `#` (it would start a fragment): write it as %23".into());
    }
    let url = url::Url::parse(v).map_err(|e| format!("is not a URL ({e})"))?;
    let scheme = match url.scheme() {
        "http" => ProxyScheme::Http,
        "https" => ProxyScheme::Https,
        other => return Err(format!("the scheme must be http or https, not `{other}`")),
    };
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(host) => host.to_string(),
        None => return Err("a host is required".into()),
    };
    if host.is_empty() {
        return Err("a host is required".into());
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err("must not have a path".into());
    }
    if url.query().is_some() {
        return Err("must not have a query".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment (write `#` in a password as %23)".into());
    }
    let decode =
        |s: &str| percent_decode(s).ok_or_else(|| "the credentials are not valid percent-encoded UTF-8".to_string());
    let credentials = match (url.username(), url.password()) {
        ("", None) => None,
        (user, password) => Some(Credentials { user: decode(user)?, password: decode(password.unwrap_or(""))? }),
    };
    let port = url.port_or_known_default().ok_or("a port is required")?;
    Ok(ProxyServer { scheme, host, port, credentials })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The value with any password in a URL replaced, for error messages about `proxy_server`.
pub fn redact_url(v: &str) -> String {
    match (v.find("://"), v.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}<credentials>{}", &v[..scheme_end + 3], &v[at..])
        }
        _ => v.to_string(),
    }
}

pub fn parse_trust_list(v: &str) -> Result<Vec<TrustSource>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            if item == "system" {
                return Ok(TrustSource::System);
            }
            let source = PemSource::parse(item);
            source.load_certs()?;
            Ok(TrustSource::Pem(source))
        })
        .collect()
}

/// `cluster_dp_labels`: `key:value` pairs under Kong's rules.
pub fn parse_labels(v: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (key, value) = item.split_once(':').ok_or_else(|| format!("label `{item}` must be written key:value"))?;
        check_label_part(key).map_err(|e| format!("label key `{key}` {e}"))?;
        check_label_part(value).map_err(|e| format!("label value `{value}` {e}"))?;
        let lower = key.to_ascii_lowercase();
        if let Some(reserved) = ["kong", "konnect", "insomnia", "mesh", "kic"].iter().find(|p| lower.starts_with(**p)) {
            return Err(format!("label key `{key}` must not start with `{reserved}` (reserved)"));
        }
        if labels.insert(key.to_string(), value.to_string()).is_some() {
            return Err(format!("label key `{key}` is given twice"));
        }
    }
    if labels.len() > 10 {
        return Err(format!("at most 10 labels are allowed, not {}", labels.len()));
    }
    Ok(labels)
}

fn check_label_part(s: &str) -> Result<(), &'static str> {
    const RULE: &str =
        "must be 1-63 characters of letters, digits, _ . : -, starting and ending with a letter or digit";
    let bytes = s.as_bytes();
    let edge_ok = |b: u8| b.is_ascii_alphanumeric();
    let inner_ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-');
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && edge_ok(bytes[0])
        && edge_ok(bytes[bytes.len() - 1])
        && bytes.iter().all(|&b| inner_ok(b));
    if ok { Ok(()) } else { Err(RULE) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_are_on_off_true_false() {
        for (v, b) in [("on", true), ("true", true), ("ON", true), ("off", false), ("false", false)] {
            assert_eq!(parse_bool(v), Ok(b), "{v}");
        }
        assert!(parse_bool("yes").unwrap_err().contains("on, off, true or false"));
        assert!(parse_bool("1").is_err());
    }

    #[test]
    fn sizes_take_k_m_g_suffixes() {
        assert_eq!(parse_size("2048m"), Ok(2048 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in ["", "m", "12x", "1.5g", "-1m", "0", "99999999999999999999g"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn enums_list_their_choices() {
        assert_eq!(parse_role("data_plane"), Ok(Role::DataPlane));
        assert_eq!(parse_role("dp").unwrap_err(), "must be one of: traditional, control_plane, data_plane");
        assert!(parse_database("postgres").unwrap_err().contains("not supported yet"));
        assert_eq!(parse_database("off"), Ok(Database::Off));
        assert!(parse_cluster_mtls("pki_check_cn").unwrap_err().contains("Enterprise"));
        assert_eq!(parse_cluster_ocsp("optional"), Ok(ClusterOcsp::Optional));
    }

    #[test]
    fn notice_logs_like_info() {
        assert_eq!(parse_log_level("notice").unwrap().tracing_level(), tracing::Level::INFO);
        assert_eq!(parse_log_level("crit").unwrap().tracing_level(), tracing::Level::ERROR);
        assert!(parse_log_level("verbose").is_err());
    }

    #[test]
    fn numbers_have_minimums() {
        assert_eq!(parse_integer("4194304", 4194304), Ok(4194304));
        assert_eq!(parse_integer("100", 4194304).unwrap_err(), "must be at least 4194304");
        assert!(parse_integer("1e6", 0).is_err());
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("soon").is_err());
    }

    #[test]
    fn host_port_has_no_scheme_or_path() {
        assert_eq!(parse_host_port("cp.example:8005"), Ok(HostPort { host: "cp.example".into(), port: 8005 }));
        assert_eq!(parse_host_port("[::1]:8005").unwrap().to_string(), "[::1]:8005");
        assert!(parse_host_port("wss://cp:8005").unwrap_err().contains("without a scheme"));
        assert!(parse_host_port("cp:8005/x").unwrap_err().contains("without a path"));
        assert!(parse_host_port("cp").unwrap_err().contains("port is required"));
    }

    #[test]
    fn proxy_server_urls() {
        let p = parse_proxy_server("http://proxy.corp").unwrap();
        assert_eq!((p.scheme, p.host.as_str(), p.port, p.credentials), (ProxyScheme::Http, "proxy.corp", 80, None));
        let p = parse_proxy_server("https://proxy.corp").unwrap();
        assert_eq!(p.port, 443);
        let p = parse_proxy_server("https://us%40er:p%23ss@10.0.0.1:3128/").unwrap();
        let c = p.credentials.clone().unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str(), p.port), ("us@er", "p#ss", 3128));
        assert_eq!(p.to_string(), "https://<credentials>@10.0.0.1:3128");
        assert!(!format!("{p:?}").contains("p#ss"));
        for (bad, needle) in [
            ("socks5://h:1", "scheme must be http or https"),
            ("http://h:1/path", "must not have a path"),
            ("http://h:1?x=1", "must not have a query"),
            ("http://u:a#b@h:1", "write it as %23"),
            ("h:3128", "scheme must be http or https"),
            ("http://", "is not a URL"),
        ] {
            let err = parse_proxy_server(bad).unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn urls_are_redacted_for_errors() {
        assert_eq!(redact_url("http://u:secret@h:1/x"), "http://<credentials>@h:1/x");
        assert_eq!(redact_url("http://h:1"), "http://h:1");
    }

    #[test]
    fn labels_follow_kongs_rules() {
        let labels = parse_labels("region:eu-west-1, tier:gold").unwrap();
        assert_eq!(labels.get("region").map(String::as_str), Some("eu-west-1"));
        for (bad, needle) in [
            ("region", "key:value"),
            ("kong_x:y", "reserved"),
            ("a:-b", "must be 1-63"),
            ("a:b,a:c", "twice"),
            (&(0..11).map(|i| format!("k{i}:v")).collect::<Vec<_>>().join(","), "at most 10"),
            (&format!("k:{}", "v".repeat(64)), "must be 1-63"),
        ] {
            let err = parse_labels(bad).unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }
}
