//! The host end of the `plugin-component` world (`wit/plugin.wit`): loading a plugin component,
//! reading what it is (`metadata`) and checking configurations with it (`check-config`), and the
//! host side of what plugins import: the request and response resources, logs, the per-node
//! counters and key-value store, the clocks and the per-request shared context.
//!
//! Running configured instances in the request phases is [`super::plugin_runner`]'s job; a call
//! made outside a request (`metadata`, `check-config`) sees no route, service or consumer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::Store;
use wasmtime::component::{HasSelf, Resource};

use super::sandbox::Sandbox;
use super::{WasmError, WasmRuntime, chain};

wasmtime::component::bindgen!({
    world: "plugin-component",
    path: "../wit",
    with: {
        "gateway:api/http.request": RequestHandle,
        "gateway:api/http.response": ResponseHandle,
    },
});

pub use self::gateway::api::types::{
    Body, CallIds, ConsumerInfo, Credential, Descriptor, EntityRef, FieldError, Flow, LogLevel, Phase, PluginEntity,
    Proof, Protocol,
};
use crate::proxy::phases::BodyState;

/// A phase's name as Kong writes it.
pub fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Rewrite => "rewrite",
        Phase::Access => "access",
        Phase::HeaderFilter => "header_filter",
        Phase::BodyFilter => "body_filter",
        Phase::Log => "log",
    }
}

/// A protocol's name as Kong writes it.
pub fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Http => "http",
        Protocol::Https => "https",
        Protocol::Grpc => "grpc",
        Protocol::Grpcs => "grpcs",
        Protocol::Tcp => "tcp",
        Protocol::Tls => "tls",
        Protocol::Udp => "udp",
        Protocol::Ws => "ws",
        Protocol::Wss => "wss",
    }
}

/// How long `metadata` or `check-config` may take.
const CHECK_BUDGET: Duration = Duration::from_secs(1);
/// Memory a plugin instance may grow to (`wasm_plugin_max_memory`'s default).
pub const MEMORY_LIMIT: usize = 64 << 20;

/// A request as a plugin sees it, owned by the host.
#[derive(Debug, Default)]
pub struct RequestHandle {
    pub method: hyper::Method,
    /// `http` or `https`.
    pub scheme: &'static str,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub query: String,
    pub headers: hyper::HeaderMap,
    /// Printed only when a plugin asks (`client-ip`).
    pub client_ip: ClientIp,
    /// The body, when a plugin asked for it.
    pub body: BodyState,
    /// What a plugin put in place of the body (`set-body`); only in `rewrite` and `access`.
    pub new_body: Option<hyper::body::Bytes>,
    /// Whether `set-body` is allowed (the request has not gone upstream yet).
    pub body_settable: bool,
    /// A plugin set the Host header (to any value, the one it had included): Kong's
    /// `upstream_host`, which the proxy then sends upstream.
    pub host_set: bool,
}

/// The client's address as a plugin is told it: an IP address, or (`gateway plugin run`, which
/// tests what a plugin does with a client that has none, such as a unix socket's) any text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ClientIp {
    #[default]
    Unknown,
    Ip(std::net::IpAddr),
    Text(String),
}

impl ClientIp {
    fn text(&self) -> String {
        match self {
            ClientIp::Unknown => String::new(),
            ClientIp::Ip(ip) => ip.to_string(),
            ClientIp::Text(text) => text.clone(),
        }
    }
}

/// A response as a plugin sees it, owned by the host.
#[derive(Debug, Default)]
pub struct ResponseHandle {
    pub status: u16,
    pub headers: hyper::HeaderMap,
}

/// What the host knows about the call in progress: the request's route, service and consumer and
/// its shared context. Empty outside a request (`metadata`, `check-config`).
#[derive(Debug, Default)]
pub struct CallContext {
    pub plugin: String,
    /// The plugin entity the call runs for: its index in the directory's entities.
    pub entity: Option<usize>,
    /// The ids of the request's route, service and consumer; their names are the directory's
    /// (nothing is formatted per request unless a plugin asks).
    pub route: Option<uuid::Uuid>,
    pub service: Option<uuid::Uuid>,
    pub consumer: Option<uuid::Uuid>,
    /// The plugin called `set-consumer` (the runner then updates the request's consumer).
    pub consumer_changed: bool,
    /// The credential the consumer was identified by, if the plugin named one.
    pub credential: Option<String>,
    pub shared: HashMap<String, String>,
    /// The configuration's consumers, for `set-consumer`; `None` outside a request.
    pub directory: Option<DirectoryHandle>,
    /// Headers set ahead of the response (`set-response-headers`), for the runner to put on it.
    pub response_headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    /// The response head has gone to the client (`body_filter`, `log`): too late for headers.
    pub head_sent: bool,
    /// In `header_filter` only: whether the plugin called `pass-body` (it leaves this response's
    /// body alone). `None` in every other phase, where `pass-body` fails.
    pub body_passed: Option<bool>,
    /// The request's id (Kong's `request_id` in error answers); `None` outside a request.
    pub request_id: Option<crate::logs::RequestId>,
    /// When set, the plugin's log lines are kept here (`LEVEL message`) instead of logged
    /// (`gateway plugin run`).
    pub logs: Option<Vec<String>>,
}

/// A configuration's directory as one thread holds it: an `Arc` of its own around the shared one.
/// A call context clones this per request; cloning the shared `Arc` would write a reference count
/// every worker writes too. Aligned to its own cache lines so two threads' handles never share one.
#[repr(align(128))]
#[derive(Debug)]
pub struct LocalDirectory(pub Arc<Directory>);

impl std::ops::Deref for LocalDirectory {
    type Target = Directory;
    fn deref(&self) -> &Directory {
        &self.0
    }
}

/// See [`LocalDirectory`].
pub type DirectoryHandle = Arc<LocalDirectory>;

/// A consumer's id as the host is given it: text from a plugin, or a credential's consumer as the
/// directory holds it (no text to parse).
#[derive(Debug, Clone, Copy)]
enum ConsumerId<'a> {
    Text(&'a str),
    Id(uuid::Uuid),
}

impl std::fmt::Display for ConsumerId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConsumerId::Text(text) => f.write_str(text),
            ConsumerId::Id(id) => id.fmt(f),
        }
    }
}

impl CallContext {
    /// The consumer with this id and its upstream header values.
    fn known(&self, id: ConsumerId<'_>) -> Result<&Known, String> {
        let Some(directory) = &self.directory else {
            return Err(format!("no request is in progress to associate consumer {id} with"));
        };
        let found = match id {
            ConsumerId::Text(text) => directory.known(text),
            ConsumerId::Id(id) => directory.consumers.get(&id),
        };
        found.ok_or_else(|| format!("no consumer has id {id}"))
    }

    /// An entity as the contract names it: its id and its name in the directory.
    fn named(
        &self,
        id: Option<uuid::Uuid>,
        name: impl Fn(&Directory, uuid::Uuid) -> Option<String>,
    ) -> Option<EntityRef> {
        let id = id?;
        Some(EntityRef { id: id.to_string(), name: self.directory.as_deref().and_then(|d| name(d, id)) })
    }

    /// `authenticate-key`'s lookup: the id of the live credential of `kind` whose key is `key`,
    /// and its consumer's. The id copied rather than the directory's reference count written: that
    /// count is a cache line every worker would write.
    fn key_owner(&self, kind: &str, key: &str) -> Option<(String, uuid::Uuid)> {
        let found = self.directory.as_deref()?.credential(kind, key)?;
        Some((found.id.clone(), uuid::Uuid::parse_str(&found.consumer.id).ok()?))
    }

    /// Whether `count` more headers may be set ahead of the response now.
    fn may_set_ahead(&self, count: usize) -> Result<(), String> {
        if self.head_sent {
            return Err("the response head has been sent: set its headers in rewrite, access or header_filter".into());
        }
        if self.response_headers.len().saturating_add(count) > MAX_RESPONSE_HEADERS {
            return Err(format!("a request keeps at most {MAX_RESPONSE_HEADERS} headers set ahead of its response"));
        }
        Ok(())
    }

    /// The request now belongs to `consumer`, proved by the credential `credential` (if any).
    fn associate(&mut self, consumer: uuid::Uuid, credential: Option<String>) {
        self.consumer = Some(consumer);
        self.credential = credential;
        self.consumer_changed = true;
    }
}

/// A configuration version's consumers and their credentials, indexed for plugins that identify
/// them: by consumer id and username, by (credential kind, key), and by (kind, consumer). Built
/// once per configuration version, so a request looks up instead of scanning, and Kong's upstream
/// header values of each consumer and credential are made here rather than per request.
///
/// Its maps hash with a fast hash, not std's flood-resistant one: their keys are the operator's
/// (a client only looks up, and a lookup cannot lengthen a probe sequence), and a request looks
/// up a consumer and a credential in them.
#[derive(Debug, Default)]
pub struct Directory {
    consumers: FastMap<uuid::Uuid, Known>,
    /// Routes' and services' names by id (`host::route`, `host::service`).
    names: FastMap<uuid::Uuid, String>,
    usernames: FastMap<String, Arc<crate::entities::Consumer>>,
    /// By kind, then key.
    credentials: FastMap<&'static str, FastMap<String, Indexed>>,
    by_consumer: FastMap<(&'static str, String), Vec<Indexed>>,
    /// The plugin entities of the configuration, as plugins are told about them (`host::entity`).
    pub entities: Vec<PluginEntity>,
    /// Their ids as numbers (`host::ids`), by the same index.
    entity_ids: Vec<Option<(u64, u64)>>,
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A credential as the directory holds it: with when it stops working (a key-auth `ttl`).
#[derive(Debug, Clone)]
struct Indexed {
    credential: Arc<Credential>,
    /// Seconds since the Unix epoch.
    expires_at: Option<i64>,
}

impl Indexed {
    /// Whether it still works: the clock is read only for a credential that expires.
    fn live(&self) -> bool {
        self.expires_at.is_none_or(|at| crate::entities::unix_now() < at)
    }
}

/// A consumer and the values of Kong's upstream headers that name it (`authenticate`).
#[derive(Debug)]
struct Known {
    consumer: Arc<crate::entities::Consumer>,
    id: Result<hyper::header::HeaderValue, String>,
    custom_id: Option<Result<hyper::header::HeaderValue, String>>,
    username: Option<Result<hyper::header::HeaderValue, String>>,
}

impl Known {
    fn new(consumer: &crate::entities::Consumer) -> Known {
        Known {
            consumer: Arc::new(consumer.clone()),
            id: header_value(&consumer.id.to_string()),
            custom_id: consumer.custom_id.as_deref().map(header_value),
            username: consumer.username.as_deref().map(header_value),
        }
    }
}

impl Directory {
    pub fn new(config: &crate::entities::Config) -> Directory {
        let mut directory = Directory {
            consumers: config.consumers.iter().map(|c| (c.id, Known::new(c))).collect(),
            names: (config.routes.iter().filter_map(|r| Some((r.id, r.name.clone()?))))
                .chain(config.services.iter().filter_map(|s| Some((s.id, s.name.clone()?))))
                .collect(),
            ..Directory::default()
        };
        for known in directory.consumers.values() {
            if let Some(username) = &known.consumer.username {
                directory.usernames.insert(username.clone(), known.consumer.clone());
            }
        }
        for found in config.credentials() {
            let Some(known) = directory.consumers.get(&found.consumer) else { continue };
            let consumer = &known.consumer;
            let credential = Arc::new(Credential {
                id: found.id.to_string(),
                consumer: EntityRef { id: consumer.id.to_string(), name: consumer.username.clone() },
                fields: found.fields.to_string(),
            });
            let indexed = Indexed { credential, expires_at: found.expires_at };
            if let Some(key) = found.key {
                directory.credentials.entry(found.kind.name()).or_default().insert(key.to_string(), indexed.clone());
            }
            directory
                .by_consumer
                .entry((found.kind.name(), indexed.credential.consumer.id.clone()))
                .or_default()
                .push(indexed);
        }
        directory
    }

    /// This directory as a single thread's handle (tools and tests; the runner makes one per
    /// worker).
    pub fn handle(self) -> DirectoryHandle {
        Arc::new(LocalDirectory(Arc::new(self)))
    }

    /// The directory, with the plugin entities calls are told about by index.
    pub fn with_entities(self, entities: Vec<PluginEntity>) -> Directory {
        let entity_ids = entities.iter().map(|e| uuid(&e.id)).collect();
        Directory { entities, entity_ids, ..self }
    }

    pub fn consumer(&self, id: &str) -> Option<Arc<crate::entities::Consumer>> {
        self.known(id).map(|known| known.consumer.clone())
    }

    /// The consumer with this id, as a request refers to it (see [`ConsumerRef`]).
    ///
    /// [`ConsumerRef`]: crate::proxy::context::ConsumerRef
    pub fn consumer_ref(&self, id: uuid::Uuid) -> Option<crate::proxy::context::ConsumerRef> {
        let consumer = &self.consumers.get(&id)?.consumer;
        let label = match &consumer.username {
            Some(username) => Arc::from(username.as_str()),
            None => Arc::from(id.to_string()),
        };
        Some(crate::proxy::context::ConsumerRef { id, label })
    }

    fn known(&self, id: &str) -> Option<&Known> {
        self.consumers.get(&uuid::Uuid::parse_str(id).ok()?)
    }

    /// A route's or service's name.
    fn name(&self, id: uuid::Uuid) -> Option<String> {
        self.names.get(&id).cloned()
    }

    /// A consumer by id, else by username.
    pub fn consumer_by_id_or_username(&self, key: &str) -> Option<Arc<crate::entities::Consumer>> {
        self.consumer(key).or_else(|| self.usernames.get(key).cloned())
    }

    /// A credential by its kind's name (`keyauth_credentials`, ...) and key, unless it has
    /// expired; no allocation.
    pub fn credential(&self, kind: &str, key: &str) -> Option<&Arc<Credential>> {
        let kind = crate::entities::Kind::from_name(kind)?.name();
        self.credentials.get(kind)?.get(key).filter(|found| found.live()).map(|found| &found.credential)
    }

    /// A consumer's credentials of a kind, those that have expired left out.
    pub fn credentials_of(&self, kind: &str, consumer: &str) -> impl Iterator<Item = &Credential> {
        let kind = crate::entities::Kind::from_name(kind).map(|k| k.name());
        let found = kind.and_then(|kind| self.by_consumer.get(&(kind, consumer.to_string())));
        found.map_or(&[][..], Vec::as_slice).iter().filter(|c| c.live()).map(|c| &*c.credential)
    }
}

/// Per-node state every plugin instance shares: counters with expiry and a small key-value store
/// with TTLs, both bounded.
#[derive(Debug, Default)]
pub struct NodeShared {
    counters: Mutex<Bounded<i64>>,
    values: Mutex<Bounded<Vec<u8>>>,
    /// The node's error templates, for `error-answer`.
    pub errors: crate::conf::ErrorTemplates,
}

impl NodeShared {
    /// Nothing shared yet; plugins' error answers written with `errors`.
    pub fn new(errors: crate::conf::ErrorTemplates) -> NodeShared {
        NodeShared { errors, ..NodeShared::default() }
    }
}

/// Entries with an expiry, at most [`SHARED_CAPACITY`] of them. When full, expired entries are
/// swept (at most once a second: a sweep walks them all, and under a flood of new keys it must not
/// run per request); when that is not enough, the least recently used sixteenth is dropped, as
/// nginx's shared dictionaries (Kong's `local` counters) drop their least recently used entries.
/// So a client that makes up keys costs other clients their counts, never their requests.
#[derive(Debug)]
struct Bounded<T> {
    entries: HashMap<String, Kept<T>>,
    swept: Option<Instant>,
    /// When the node last said it was full (said at most once a minute).
    warned: Option<Instant>,
}

#[derive(Debug)]
struct Kept<T> {
    value: T,
    until: Instant,
    /// When it was last read or written.
    used: Instant,
}

impl<T> Default for Bounded<T> {
    fn default() -> Self {
        Bounded { entries: HashMap::new(), swept: None, warned: None }
    }
}

impl<T> Bounded<T> {
    /// Makes room for `key` if it is not there and the store is full: expired entries go first,
    /// then the least recently used.
    fn make_room(&mut self, key: &str, now: Instant, what: &str) {
        if self.entries.len() < SHARED_CAPACITY || self.entries.contains_key(key) {
            return;
        }
        if self.swept.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
            self.swept = Some(now);
            self.entries.retain(|_, kept| kept.until > now);
            if self.entries.len() < SHARED_CAPACITY {
                return;
            }
        }
        let mut used: Vec<Instant> = self.entries.values().map(|kept| kept.used).collect();
        let (_, &mut oldest_kept, _) = used.select_nth_unstable(EVICTED - 1);
        self.entries.retain(|_, kept| kept.used > oldest_kept);
        if self.warned.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60)) {
            self.warned = Some(now);
            tracing::warn!(
                capacity = SHARED_CAPACITY,
                "the plugins' shared {what} are full: the least recently used are dropped (their counts restart)"
            );
        }
    }
}

/// Entries kept at most, so that no plugin can grow the node's memory without bound.
const SHARED_CAPACITY: usize = 100_000;
/// How many of the least recently used entries go when the store is full of live ones.
const EVICTED: usize = SHARED_CAPACITY / 16;
/// The largest value the key-value store keeps.
const MAX_VALUE: usize = 64 * 1024;

impl NodeShared {
    /// Adds `delta` to the counter `key` (made, at zero, if it is not there: the only case that
    /// copies the key).
    fn incr(&self, key: &str, delta: i64, window: Duration) -> i64 {
        let now = Instant::now();
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = counters.entries.get_mut(key) {
            if entry.until <= now {
                entry.value = 0;
                entry.until = now + window;
            }
            entry.used = now;
            entry.value = entry.value.saturating_add(delta);
            return entry.value;
        }
        counters.make_room(key, now, "counters");
        counters.entries.insert(key.to_string(), Kept { value: delta, until: now + window, used: now });
        delta
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        let now = Instant::now();
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        let kept = values.entries.get_mut(key).filter(|kept| kept.until > now)?;
        kept.used = now;
        Some(kept.value.clone())
    }

    fn set(&self, key: String, value: Vec<u8>, ttl: Duration) {
        if value.len() > MAX_VALUE {
            return;
        }
        let now = Instant::now();
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        values.make_room(&key, now, "values");
        values.entries.insert(key, Kept { value, until: now + ttl, used: now });
    }
}

/// The plugin part of a store's host state.
#[derive(Debug, Default)]
pub struct PluginHost {
    pub call: CallContext,
    pub shared: Arc<NodeShared>,
}

/// An entity id as the contract's `uuid` (two numbers); `None` for an id that is not a UUID.
fn uuid(id: &str) -> Option<(u64, u64)> {
    uuid::Uuid::parse_str(id).ok().map(|id| id.as_u64_pair())
}

/// Kong's upstream headers for an authenticated request (`authenticate`).
mod imports;

mod auth_headers {
    use hyper::header::HeaderName;

    pub const CONSUMER_ID: HeaderName = HeaderName::from_static("x-consumer-id");
    pub const CONSUMER_CUSTOM_ID: HeaderName = HeaderName::from_static("x-consumer-custom-id");
    pub const CONSUMER_USERNAME: HeaderName = HeaderName::from_static("x-consumer-username");
    pub const CREDENTIAL_IDENTIFIER: HeaderName = HeaderName::from_static("x-credential-identifier");
    pub const ANONYMOUS: HeaderName = HeaderName::from_static("x-anonymous-consumer");
}

/// The headers that tell the upstream who the consumer is: the five `authenticate` sets, and
/// acl's groups.
const IDENTITY: [&str; 6] = [
    "x-consumer-id",
    "x-consumer-custom-id",
    "x-consumer-username",
    "x-credential-identifier",
    "x-anonymous-consumer",
    "x-consumer-groups",
];

/// Removes a client's spelling of an identity header with `_` for `-` (`X_Consumer_Username`).
/// Upstreams that read headers CGI-style (`HTTP_X_CONSUMER_USERNAME`) cannot tell it from the
/// header the gateway set, so it could stand in for it. Kong forwards such a header; here it goes
/// once a consumer is set. One scan of the names; nothing is allocated when none is found.
fn remove_underscored_identity(headers: &mut hyper::HeaderMap) {
    let dashed_is_identity = |name: &str| {
        IDENTITY.iter().any(|identity| {
            identity.len() == name.len()
                && identity.bytes().zip(name.bytes()).all(|(i, n)| i == n || (i == b'-' && n == b'_'))
        })
    };
    let forged: Vec<hyper::header::HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().contains('_') && dashed_is_identity(name.as_str()))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
}

/// Names Kong's bundled plugins set on most requests and that `http` does not know: one of these,
/// in any case, costs no allocation (any other name not among `http`'s standard ones is lowered
/// into a copy of its own).
static KNOWN_NAMES: [hyper::header::HeaderName; 15] = {
    use hyper::header::HeaderName as N;
    [
        N::from_static("ratelimit-limit"),
        N::from_static("ratelimit-remaining"),
        N::from_static("ratelimit-reset"),
        N::from_static("x-ratelimit-limit-second"),
        N::from_static("x-ratelimit-limit-minute"),
        N::from_static("x-ratelimit-limit-hour"),
        N::from_static("x-ratelimit-limit-day"),
        N::from_static("x-ratelimit-limit-month"),
        N::from_static("x-ratelimit-limit-year"),
        N::from_static("x-ratelimit-remaining-second"),
        N::from_static("x-ratelimit-remaining-minute"),
        N::from_static("x-ratelimit-remaining-hour"),
        N::from_static("x-ratelimit-remaining-day"),
        N::from_static("x-ratelimit-remaining-month"),
        N::from_static("x-ratelimit-remaining-year"),
    ]
};

fn header_name(name: &str) -> Result<hyper::header::HeaderName, String> {
    if let Some(known) = KNOWN_NAMES.iter().find(|known| known.as_str().eq_ignore_ascii_case(name)) {
        return Ok(known.clone());
    }
    hyper::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("{name:?} is not a header name"))
}

fn header_value(value: &str) -> Result<hyper::header::HeaderValue, String> {
    hyper::header::HeaderValue::from_str(value).map_err(|_| "the value is not a valid header value".to_string())
}

/// `value` as a header value, in the string's own allocation (no copy).
fn owned_header_value(value: String) -> Result<hyper::header::HeaderValue, String> {
    hyper::header::HeaderValue::from_maybe_shared(hyper::body::Bytes::from(value))
        .map_err(|_| "the value is not a valid header value".to_string())
}

/// A header set ahead of the response (`set-response-headers`), checked.
fn ahead_header(name: &str, value: &str) -> Result<(hyper::header::HeaderName, hyper::header::HeaderValue), String> {
    let name = header_name(name)?;
    let value = header_value(value).map_err(|e| format!("{name}: {e}"))?;
    Ok((name, value))
}

/// A counter's window (`incr`): at least a second.
fn counter_window(seconds: u32) -> Duration {
    Duration::from_secs(u64::from(seconds.max(1)))
}

/// A header value as the contract hands it over: any value that is UTF-8 (`HeaderValue::to_str`
/// would take visible ASCII only, and hide a key or a name written in UTF-8 from the plugin).
fn text(value: &hyper::header::HeaderValue) -> Option<&str> {
    std::str::from_utf8(value.as_bytes()).ok()
}

fn first(headers: &hyper::HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(text).map(str::to_string)
}

fn all(headers: &hyper::HeaderMap, name: &str) -> Vec<String> {
    headers.get_all(name).iter().filter_map(text).map(str::to_string).collect()
}

/// Header names, each once, in the order first seen.
fn names(headers: &hyper::HeaderMap) -> Vec<String> {
    headers.keys().map(|k| k.as_str().to_string()).collect()
}

fn set(headers: &mut hyper::HeaderMap, name: &str, value: String, append: bool) -> Result<(), String> {
    let (name, value) = (header_name(name)?, owned_header_value(value)?);
    if append {
        headers.append(name, value);
    } else {
        headers.insert(name, value);
    }
    Ok(())
}

/// Whether a header name a plugin gave is `Host` (which, set, is Kong's `upstream_host`).
fn is_host(name: &str) -> bool {
    name.eq_ignore_ascii_case("host")
}

/// Sets (or, with no value, removes) each header in order; checks them all first, so either every
/// edit is made or none is.
fn set_many(headers: &mut hyper::HeaderMap, edits: Vec<(String, Option<String>)>) -> Result<(), String> {
    let mut checked = Vec::with_capacity(edits.len());
    for (name, value) in &edits {
        let name = header_name(name)?;
        let value = value.as_deref().map(header_value).transpose().map_err(|e| format!("{name}: {e}"))?;
        checked.push((name, value));
    }
    for (name, value) in checked {
        match value {
            Some(value) => {
                headers.insert(name, value);
            }
            None => {
                headers.remove(name);
            }
        }
    }
    Ok(())
}

impl Sandbox {
    /// `authenticate`'s work: the request now belongs to the consumer `consumer_id`, proved by
    /// `proof` (the credential's id and `X-Credential-Identifier`'s value) or, without one, the
    /// anonymous consumer; Kong's upstream headers follow. Nothing is changed when it fails.
    fn authenticate_as(
        &mut self,
        req: &Resource<RequestHandle>,
        consumer_id: ConsumerId<'_>,
        proof: Option<(String, Option<hyper::header::HeaderValue>)>,
    ) -> Result<(), String> {
        let known = self.plugin.call.known(consumer_id)?;
        // A copy per request rather than a clone: a clone would count references in the
        // directory's bytes, a cache line every worker then writes.
        let checked = |name: &hyper::header::HeaderName, value: Option<&Result<hyper::header::HeaderValue, String>>| {
            value
                .map(|v| match v {
                    Ok(v) => Ok(hyper::header::HeaderValue::from_bytes(v.as_bytes()).unwrap_or_else(|_| v.clone())),
                    Err(e) => Err(format!("{}: {e}", name.as_str())),
                })
                .transpose()
        };
        let (credential, identifier) = match proof {
            Some((id, identifier)) => (Some(id), identifier),
            None => (None, None),
        };
        let anonymous = credential.is_none().then(|| hyper::header::HeaderValue::from_static("true"));
        let headers = [
            (auth_headers::CONSUMER_ID, checked(&auth_headers::CONSUMER_ID, Some(&known.id))?),
            (auth_headers::CONSUMER_CUSTOM_ID, checked(&auth_headers::CONSUMER_CUSTOM_ID, known.custom_id.as_ref())?),
            (auth_headers::CONSUMER_USERNAME, checked(&auth_headers::CONSUMER_USERNAME, known.username.as_ref())?),
            (auth_headers::CREDENTIAL_IDENTIFIER, identifier),
            (auth_headers::ANONYMOUS, anonymous),
        ];
        let consumer = known.consumer.id;
        let request = self.request(req);
        request.headers.reserve(headers.len());
        for (name, value) in headers {
            match value {
                Some(value) => request.headers.insert(name, value),
                None => request.headers.remove(name),
            };
        }
        remove_underscored_identity(&mut request.headers);
        self.plugin.call.associate(consumer, credential);
        Ok(())
    }

    /// `authenticate-key` once the key's credential is found: `(credential id, consumer id)`.
    fn authenticate_by_key(
        &mut self,
        req: &Resource<RequestHandle>,
        (id, consumer): (String, uuid::Uuid),
    ) -> Result<bool, String> {
        let identifier = header_value(&id).map_err(|e| format!("{}: {e}", auth_headers::CREDENTIAL_IDENTIFIER))?;
        self.authenticate_as(req, ConsumerId::Id(consumer), Some((id, Some(identifier))))?;
        Ok(true)
    }

    fn request(&mut self, handle: &Resource<RequestHandle>) -> &mut RequestHandle {
        self.table.get_mut(handle).expect("the host hands out only live request handles")
    }

    fn response(&mut self, handle: &Resource<ResponseHandle>) -> &mut ResponseHandle {
        self.table.get_mut(handle).expect("the host hands out only live response handles")
    }
}

impl self::gateway::api::http::HostRequest for Sandbox {
    fn method(&mut self, r: Resource<RequestHandle>) -> String {
        self.request(&r).method.as_str().to_string()
    }

    fn set_method(&mut self, r: Resource<RequestHandle>, method: String) {
        if let Ok(method) = hyper::Method::from_bytes(method.as_bytes()) {
            self.request(&r).method = method;
        }
    }

    fn scheme(&mut self, r: Resource<RequestHandle>) -> String {
        self.request(&r).scheme.to_string()
    }

    fn host(&mut self, r: Resource<RequestHandle>) -> String {
        self.request(&r).host.clone()
    }

    fn port(&mut self, r: Resource<RequestHandle>) -> u16 {
        self.request(&r).port
    }

    fn path(&mut self, r: Resource<RequestHandle>) -> String {
        self.request(&r).path.clone()
    }

    fn set_path(&mut self, r: Resource<RequestHandle>, path: String) -> Result<(), String> {
        if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_control() || b == b' ' || b == b'?') {
            return Err(format!("{path:?} is not a request path"));
        }
        self.request(&r).path = path;
        Ok(())
    }

    fn raw_query(&mut self, r: Resource<RequestHandle>) -> String {
        self.request(&r).query.clone()
    }

    fn set_raw_query(&mut self, r: Resource<RequestHandle>, query: String) -> Result<(), String> {
        if query.bytes().any(|b| b.is_ascii_control() || b == b' ' || b == b'#') {
            return Err("the query has characters a request line cannot carry".into());
        }
        self.request(&r).query = query;
        Ok(())
    }

    fn query_arg(&mut self, r: Resource<RequestHandle>, name: String) -> Option<String> {
        let query = &self.request(&r).query;
        url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| *k == name).map(|(_, v)| v.into_owned())
    }

    fn header(&mut self, r: Resource<RequestHandle>, name: String) -> Option<String> {
        first(&self.request(&r).headers, &name)
    }

    fn header_values(&mut self, r: Resource<RequestHandle>, name: String) -> Vec<String> {
        all(&self.request(&r).headers, &name)
    }

    fn set_header(&mut self, r: Resource<RequestHandle>, name: String, value: String) -> Result<(), String> {
        let request = self.request(&r);
        let host = is_host(&name);
        set(&mut request.headers, &name, value, false)?;
        request.host_set |= host;
        Ok(())
    }

    fn add_header(&mut self, r: Resource<RequestHandle>, name: String, value: String) -> Result<(), String> {
        let request = self.request(&r);
        let host = is_host(&name);
        set(&mut request.headers, &name, value, true)?;
        request.host_set |= host;
        Ok(())
    }

    fn remove_header(&mut self, r: Resource<RequestHandle>, name: String) {
        self.request(&r).headers.remove(name.as_str());
    }

    fn set_headers(
        &mut self,
        r: Resource<RequestHandle>,
        headers: Vec<(String, Option<String>)>,
    ) -> Result<(), String> {
        let request = self.request(&r);
        let host = headers.iter().any(|(name, value)| value.is_some() && is_host(name));
        set_many(&mut request.headers, headers)?;
        request.host_set |= host;
        Ok(())
    }

    fn client_ip(&mut self, r: Resource<RequestHandle>) -> String {
        self.request(&r).client_ip.text()
    }

    fn header_names(&mut self, r: Resource<RequestHandle>) -> Vec<String> {
        names(&self.request(&r).headers)
    }

    fn body(&mut self, r: Resource<RequestHandle>) -> Body {
        let request = self.request(&r);
        match (&request.new_body, &request.body) {
            (Some(new), _) => Body::Complete(new.to_vec()),
            (None, BodyState::Unread) => Body::Unread,
            (None, BodyState::Complete(bytes)) => Body::Complete(bytes.to_vec()),
            (None, BodyState::TooLarge(n)) => Body::TooLarge(*n),
        }
    }

    fn set_body(&mut self, r: Resource<RequestHandle>, body: Vec<u8>) -> Result<(), String> {
        let request = self.request(&r);
        if !request.body_settable {
            return Err("the request body can only be replaced in rewrite and access".into());
        }
        request.new_body = Some(body.into());
        Ok(())
    }

    fn drop(&mut self, r: Resource<RequestHandle>) -> wasmtime::Result<()> {
        // The host owns requests; the guest's handle going away frees nothing of ours.
        let _ = r;
        Ok(())
    }
}

impl self::gateway::api::http::HostResponse for Sandbox {
    fn status(&mut self, r: Resource<ResponseHandle>) -> u16 {
        self.response(&r).status
    }

    fn set_status(&mut self, r: Resource<ResponseHandle>, status: u16) -> Result<(), String> {
        if !(100..=999).contains(&status) {
            return Err(format!("{status} is not an HTTP status"));
        }
        self.response(&r).status = status;
        Ok(())
    }

    fn header(&mut self, r: Resource<ResponseHandle>, name: String) -> Option<String> {
        first(&self.response(&r).headers, &name)
    }

    fn header_values(&mut self, r: Resource<ResponseHandle>, name: String) -> Vec<String> {
        all(&self.response(&r).headers, &name)
    }

    fn set_header(&mut self, r: Resource<ResponseHandle>, name: String, value: String) -> Result<(), String> {
        set(&mut self.response(&r).headers, &name, value, false)
    }

    fn add_header(&mut self, r: Resource<ResponseHandle>, name: String, value: String) -> Result<(), String> {
        set(&mut self.response(&r).headers, &name, value, true)
    }

    fn remove_header(&mut self, r: Resource<ResponseHandle>, name: String) {
        self.response(&r).headers.remove(name.as_str());
    }

    fn set_headers(
        &mut self,
        r: Resource<ResponseHandle>,
        headers: Vec<(String, Option<String>)>,
    ) -> Result<(), String> {
        set_many(&mut self.response(&r).headers, headers)
    }

    fn header_names(&mut self, r: Resource<ResponseHandle>) -> Vec<String> {
        names(&self.response(&r).headers)
    }

    fn drop(&mut self, r: Resource<ResponseHandle>) -> wasmtime::Result<()> {
        let _ = r;
        Ok(())
    }
}

impl self::gateway::api::http::Host for Sandbox {}
impl self::gateway::api::types::Host for Sandbox {}

/// The longest message an `error-answer` carries (longer ones are cut).
const MAX_ERROR_MESSAGE: usize = 4096;

/// Headers one request may have set ahead of its response, by all its plugins together.
const MAX_RESPONSE_HEADERS: usize = 256;

/// The most a plugin may write to the log in one line.
const MAX_LOG_LINE: usize = 2048;
/// The most log lines kept for `gateway plugin run`.
const MAX_KEPT_LOGS: usize = 1000;

fn log_level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Notice => "notice",
        LogLevel::Warn => "warn",
        LogLevel::Err => "err",
        LogLevel::Crit => "crit",
    }
}

impl self::gateway::api::host::Host for Sandbox {
    fn log(&mut self, level: LogLevel, message: String) {
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut end = MAX_LOG_LINE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        if let Some(logs) = &mut self.plugin.call.logs {
            if logs.len() < MAX_KEPT_LOGS {
                logs.push(format!("{} {message}", log_level_name(level)));
            }
            return;
        }
        let plugin = self.plugin.call.plugin.as_str();
        match level {
            LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            LogLevel::Info | LogLevel::Notice => tracing::info!(plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            LogLevel::Err | LogLevel::Crit => tracing::error!(plugin, "{message}"),
        }
    }

    fn entity(&mut self) -> Option<PluginEntity> {
        let call = &self.plugin.call;
        call.directory.as_ref()?.entities.get(call.entity?).cloned()
    }

    fn ids(&mut self) -> CallIds {
        let call = &self.plugin.call;
        let plugin = call.entity.and_then(|i| call.directory.as_ref()?.entity_ids.get(i).copied().flatten());
        CallIds {
            plugin,
            route: call.route.map(|id| id.as_u64_pair()),
            service: call.service.map(|id| id.as_u64_pair()),
            consumer: call.consumer.map(|id| id.as_u64_pair()),
            credential: call.credential.as_deref().and_then(uuid),
            now_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    fn route(&mut self) -> Option<EntityRef> {
        let call = &self.plugin.call;
        call.named(call.route, Directory::name)
    }

    fn service(&mut self) -> Option<EntityRef> {
        let call = &self.plugin.call;
        call.named(call.service, Directory::name)
    }

    fn consumer(&mut self) -> Option<EntityRef> {
        let call = &self.plugin.call;
        call.named(call.consumer, |d, id| d.consumers.get(&id)?.consumer.username.clone())
    }

    fn set_consumer(&mut self, consumer_id: String, credential_id: Option<String>) -> Result<(), String> {
        let consumer = self.plugin.call.known(ConsumerId::Text(&consumer_id))?.consumer.id;
        self.plugin.call.associate(consumer, credential_id);
        Ok(())
    }

    fn authenticate(
        &mut self,
        req: Resource<RequestHandle>,
        consumer_id: String,
        proof: Option<Proof>,
    ) -> Result<(), String> {
        let identifier = match &proof {
            Some(proof) => Some(
                header_value(&proof.identifier).map_err(|e| format!("{}: {e}", auth_headers::CREDENTIAL_IDENTIFIER))?,
            ),
            None => None,
        };
        self.authenticate_as(&req, ConsumerId::Text(&consumer_id), proof.map(|p| (p.id, identifier)))
    }

    fn authenticate_key(&mut self, req: Resource<RequestHandle>, kind: String, key: String) -> Result<bool, String> {
        match self.plugin.call.key_owner(&kind, &key) {
            Some(found) => self.authenticate_by_key(&req, found),
            None => Ok(false),
        }
    }

    fn credential_id(&mut self) -> Option<String> {
        self.plugin.call.credential.clone()
    }

    fn find_credential(&mut self, kind: String, key: String) -> Option<Credential> {
        let directory = self.plugin.call.directory.as_ref()?;
        directory.credential(&kind, &key).map(|c| Credential::clone(c))
    }

    fn consumer_credentials(&mut self, kind: String, consumer_id: String) -> Vec<Credential> {
        let Some(directory) = self.plugin.call.directory.as_ref() else { return Vec::new() };
        directory.credentials_of(&kind, &consumer_id).cloned().collect()
    }

    fn find_consumer(&mut self, id_or_username: String) -> Option<ConsumerInfo> {
        let directory = self.plugin.call.directory.as_ref()?;
        let consumer = directory.consumer_by_id_or_username(&id_or_username)?;
        Some(ConsumerInfo {
            id: consumer.id.to_string(),
            username: consumer.username.clone(),
            custom_id: consumer.custom_id.clone(),
        })
    }

    fn incr(&mut self, key: String, delta: i64, window_seconds: u32) -> i64 {
        self.plugin.shared.incr(&key, delta, counter_window(window_seconds))
    }

    fn kv_get(&mut self, key: String) -> Option<Vec<u8>> {
        self.plugin.shared.get(&key)
    }

    fn set_response_headers(&mut self, headers: Vec<(String, String)>) -> Result<(), String> {
        let call = &mut self.plugin.call;
        call.may_set_ahead(headers.len())?;
        let before = call.response_headers.len();
        for (name, value) in headers {
            match ahead_header(&name, &value) {
                Ok(header) => call.response_headers.push(header),
                Err(e) => {
                    call.response_headers.truncate(before);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn pass_body(&mut self) -> Result<(), String> {
        match &mut self.plugin.call.body_passed {
            Some(passed) => {
                *passed = true;
                Ok(())
            }
            None => Err("pass-body is for header_filter: the body's filters are decided with the head".into()),
        }
    }

    fn error_answer(
        &mut self,
        req: Resource<RequestHandle>,
        status: u16,
        message: Option<String>,
    ) -> Result<self::gateway::api::types::Exit, String> {
        use crate::proxy::answers;
        if !(400..=599).contains(&status) {
            return Err(format!("an error answer's status must be between 400 and 599, not {status}"));
        }
        let request = self.request(&req);
        let kind = answers::error_format(answers::Wishes::of(&request.headers).accept.as_ref().map(|v| v.as_bytes()));
        let message = match message {
            None => answers::status_message(status),
            Some(mut text) => {
                // The host writes it out (escaped, in a template) in its own memory: bounded.
                if text.len() > MAX_ERROR_MESSAGE {
                    let mut end = MAX_ERROR_MESSAGE;
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.truncate(end);
                }
                std::borrow::Cow::Owned(text)
            }
        };
        let id = self.plugin.call.request_id.unwrap_or(crate::logs::RequestId(0));
        let (content_type, body) = answers::render(&self.plugin.shared.errors, kind, &message, &id);
        Ok(self::gateway::api::types::Exit {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into_bytes(),
        })
    }

    fn kv_set(&mut self, key: String, value: Vec<u8>, ttl_seconds: u32) {
        self.plugin.shared.set(key, value, Duration::from_secs(u64::from(ttl_seconds.max(1))));
    }

    fn monotonic_ns(&mut self) -> u64 {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        u64::try_from(START.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn now(&mut self) -> f64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
    }

    fn ctx_get(&mut self, key: String) -> Option<String> {
        self.plugin.call.shared.get(&key).cloned()
    }

    fn ctx_set(&mut self, key: String, value: String) {
        self.plugin.call.shared.insert(key, value);
    }
}

/// A compiled plugin component and what it says it is.
pub struct LoadedPlugin {
    pub name: String,
    pub descriptor: Descriptor,
    /// Where this plugin's traps are counted.
    pub traps: super::engine::Traps,
    engine: wasmtime::Engine,
    pre: PluginComponentPre<Sandbox>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin").field("name", &self.name).field("descriptor", &self.descriptor).finish()
    }
}

impl LoadedPlugin {
    /// Compiles `wasm`, links it against the plugin world and reads its `metadata`.
    pub fn load(runtime: &WasmRuntime, name: &str, wasm: &[u8]) -> Result<LoadedPlugin, WasmError> {
        let engine = runtime.engine().clone();
        let component = runtime.compile(name, wasm)?;
        let instantiate = |e: wasmtime::Error| WasmError::Instantiate { component: name.into(), cause: chain(&e) };
        let mut linker = Sandbox::linker(&engine).map_err(instantiate)?;
        PluginComponent::add_to_linker::<Sandbox, HasSelf<Sandbox>>(&mut linker, |s| s).map_err(instantiate)?;
        imports::link_by_hand(&mut linker).map_err(instantiate)?;
        let pre = linker.instantiate_pre(&component).map_err(instantiate)?;
        let pre = PluginComponentPre::new(pre).map_err(|e| WasmError::Instantiate {
            component: name.into(),
            cause: format!("it is not a plugin (it does not export gateway:api/plugin): {}", chain(&e)),
        })?;
        let mut this = LoadedPlugin {
            name: name.into(),
            descriptor: Descriptor {
                name: String::new(),
                version: String::new(),
                priority: 0,
                phases: Vec::new(),
                protocols: Vec::new(),
                consumer_scope: true,
                default_config: String::new(),
            },
            traps: runtime.traps().clone(),
            engine,
            pre,
        };
        this.traps.register(name);
        let (mut store, bindings) = this.instance()?;
        let descriptor = bindings.gateway_api_plugin().call_metadata(&mut store).map_err(|e| WasmError::Call {
            component: name.into(),
            function: "metadata".into(),
            cause: store.data().failure(&e),
        })?;
        this.descriptor = descriptor;
        Ok(this)
    }

    /// A fresh instance in a store of its own, under the check budget.
    fn instance(&self) -> Result<(Store<Sandbox>, PluginComponent), WasmError> {
        let mut store = Store::new(&self.engine, Sandbox::with_memory_limit(MEMORY_LIMIT));
        store.limiter(|s| &mut s.limits);
        store.data_mut().plugin.call.plugin.clone_from(&self.name);
        store.set_epoch_deadline(WasmRuntime::deadline_ticks(CHECK_BUDGET));
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| WasmError::Instantiate { component: self.name.clone(), cause: chain(&e) })?;
        Ok((store, bindings))
    }

    /// The plugin's verdict on `config` (JSON): the configuration with its defaults filled in, or
    /// every field at fault.
    pub fn check_config(&self, config: &str) -> Result<Result<String, Vec<FieldError>>, WasmError> {
        let (mut store, bindings) = self.instance()?;
        bindings.gateway_api_plugin().call_check_config(&mut store, config).map_err(|e| WasmError::Call {
            component: self.name.clone(),
            function: "check-config".into(),
            cause: store.data().failure(&e),
        })
    }
}

/// Why a plugin call failed: its own error (`err` from a phase), or the sandbox stopping it (a
/// trap, the CPU budget, the memory cap). Either fails only the request; a trap also retires the
/// instance.
#[derive(Debug, thiserror::Error)]
pub enum PluginFailure {
    #[error("plugin {plugin} refused its configuration: {reason}")]
    Configure { plugin: String, reason: String },
    #[error("plugin {plugin} failed in {phase}: {reason}")]
    Failed { plugin: String, phase: &'static str, reason: String },
    #[error("plugin {plugin} trapped in {phase}: {cause}")]
    Trapped { plugin: String, phase: &'static str, cause: String },
    #[error(transparent)]
    Wasm(#[from] WasmError),
}

impl PluginFailure {
    /// A trap leaves the instance unusable: it must be dropped and a fresh one made.
    pub fn retires_instance(&self) -> bool {
        matches!(self, PluginFailure::Trapped { .. })
    }
}

/// One configured instance of a plugin in a store of its own, called once per phase it declares.
pub struct PluginInstance {
    plugin: String,
    store: Store<Sandbox>,
    bindings: PluginComponent,
    instance: wasmtime::component::ResourceAny,
    budget: super::engine::CpuBudget,
    /// The request's and response's places in the store's resource table (see `with_slots`).
    slots: (Resource<RequestHandle>, Resource<ResponseHandle>),
}

impl LoadedPlugin {
    /// An instance configured with `config` (a checked configuration, JSON), whose calls each get
    /// `budget` of CPU and whose memory is capped at `memory`.
    pub fn configure(
        &self,
        config: &str,
        budget: Duration,
        memory: usize,
        shared: Arc<NodeShared>,
    ) -> Result<PluginInstance, PluginFailure> {
        let mut store = Store::new(&self.engine, Sandbox::with_memory_limit(memory));
        store.limiter(|s| &mut s.limits);
        store.data_mut().plugin =
            PluginHost { call: CallContext { plugin: self.name.clone(), ..CallContext::default() }, shared };
        let budget = super::engine::CpuBudget::install(&mut store, budget);
        budget.start(&mut store);
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| WasmError::Instantiate { component: self.name.clone(), cause: chain(&e) })?;
        let trapped = |e: wasmtime::Error, store: &Store<Sandbox>| PluginFailure::Trapped {
            plugin: self.name.clone(),
            phase: "configure",
            cause: store.data().failure(&e),
        };
        let instance = match bindings.gateway_api_plugin().instance().call_configure(&mut store, config) {
            Ok(Ok(instance)) => instance,
            Ok(Err(reason)) => return Err(PluginFailure::Configure { plugin: self.name.clone(), reason }),
            Err(e) => return Err(trapped(e, &store)),
        };
        let table = &mut store.data_mut().table;
        let failed = |e: wasmtime::component::ResourceTableError| PluginFailure::Failed {
            plugin: self.name.clone(),
            phase: "configure",
            reason: e.to_string(),
        };
        let slots = (
            table.push(RequestHandle::default()).map_err(failed)?,
            table.push(ResponseHandle::default()).map_err(failed)?,
        );
        Ok(PluginInstance { plugin: self.name.clone(), store, bindings, instance, budget, slots })
    }
}

impl PluginInstance {
    /// Sets what the host tells the plugin about the request in progress.
    pub fn set_call(&mut self, call: CallContext) {
        let plugin = std::mem::take(&mut self.store.data_mut().plugin.call.plugin);
        self.store.data_mut().plugin.call = CallContext { plugin, ..call };
    }

    /// What the host knows about the call in progress, to read or change between calls.
    pub fn call_mut(&mut self) -> &mut CallContext {
        &mut self.store.data_mut().plugin.call
    }

    /// The request's shared context after the calls (to carry to the next plugin or phase).
    /// The plugin's name stays with the instance (its log lines carry it): the context returned has
    /// none, and nothing is allocated per call.
    pub fn take_call(&mut self) -> CallContext {
        let call = &mut self.store.data_mut().plugin.call;
        let plugin = std::mem::take(&mut call.plugin);
        std::mem::replace(call, CallContext { plugin, ..CallContext::default() })
    }

    fn failure(&self, phase: &'static str, e: wasmtime::Error) -> PluginFailure {
        PluginFailure::Trapped { plugin: self.plugin.clone(), phase, cause: self.store.data().failure(&e) }
    }

    fn failed(&self, phase: &'static str, reason: String) -> PluginFailure {
        PluginFailure::Failed { plugin: self.plugin.clone(), phase, reason }
    }

    /// Runs `call` with the request (and response) in this instance's slots: entries of its
    /// resource table made once, the request and response swapped in before the call and back out
    /// after it (no allocation per call), borrowed by the plugin for the call only.
    fn with_slots<R>(
        &mut self,
        phase: &'static str,
        req: Option<&mut RequestHandle>,
        res: Option<&mut ResponseHandle>,
        call: impl FnOnce(&mut Self, Resource<RequestHandle>, Resource<ResponseHandle>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginFailure> {
        let (rq, rs) = (self.slots.0.rep(), self.slots.1.rep());
        let swap = |this: &mut Self, req: &mut Option<&mut RequestHandle>, res: &mut Option<&mut ResponseHandle>| {
            let table = &mut this.store.data_mut().table;
            if let Some(req) = req.as_deref_mut() {
                std::mem::swap(table.get_mut(&this.slots.0)?, req);
            }
            if let Some(res) = res.as_deref_mut() {
                std::mem::swap(table.get_mut(&this.slots.1)?, res);
            }
            Ok::<_, wasmtime::component::ResourceTableError>(())
        };
        let (mut req, mut res) = (req, res);
        swap(self, &mut req, &mut res).map_err(|e| self.failed(phase, e.to_string()))?;
        self.budget.start(&mut self.store);
        let result = call(self, Resource::new_borrow(rq), Resource::new_borrow(rs));
        swap(self, &mut req, &mut res).map_err(|e| self.failed(phase, e.to_string()))?;
        result.map_err(|e| self.failure(phase, e))
    }

    /// Runs `rewrite` or `access` on `req`, which the plugin may change.
    pub fn request_phase(&mut self, phase: Phase, req: &mut RequestHandle) -> Result<Flow, PluginFailure> {
        let name = phase_name(phase);
        let result = self.with_slots(name, Some(req), None, |this, rq, _| {
            let api = this.bindings.gateway_api_plugin().instance();
            match phase {
                Phase::Rewrite => api.call_rewrite(&mut this.store, this.instance, rq),
                _ => api.call_access(&mut this.store, this.instance, rq),
            }
        })?;
        result.map_err(|reason| self.failed(name, reason))
    }

    /// Runs `header-filter` on the response head (and the request, read-only in spirit).
    pub fn header_filter(&mut self, req: &mut RequestHandle, res: &mut ResponseHandle) -> Result<(), PluginFailure> {
        let name = "header_filter";
        let result = self.with_slots(name, Some(req), Some(res), |this, rq, rs| {
            this.bindings.gateway_api_plugin().instance().call_header_filter(&mut this.store, this.instance, rq, rs)
        })?;
        result.map_err(|reason| self.failed(name, reason))
    }

    /// Runs `body-filter` on one chunk; returns the chunk to send instead.
    pub fn body_filter(&mut self, res: &mut ResponseHandle, chunk: &[u8], eof: bool) -> Result<Vec<u8>, PluginFailure> {
        let name = "body_filter";
        let result = self.with_slots(name, None, Some(res), |this, _, rs| {
            this.bindings.gateway_api_plugin().instance().call_body_filter(
                &mut this.store,
                this.instance,
                rs,
                chunk,
                eof,
            )
        })?;
        result.map_err(|reason| self.failed(name, reason))
    }

    /// Runs `log` once the response is done.
    pub fn log(&mut self, req: &mut RequestHandle, res: &mut ResponseHandle) -> Result<(), PluginFailure> {
        self.with_slots("log", Some(req), Some(res), |this, rq, rs| {
            this.bindings.gateway_api_plugin().instance().call_log(&mut this.store, this.instance, rq, rs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_finds_consumers_and_credentials_by_their_keys() {
        let doc = serde_json::json!({
            "_format_version": "3.0",
            "consumers": [
                {"username": "alice", "custom_id": "a-1",
                 "keyauth_credentials": [{"key": "k1"}, {"key": "k2"}],
                 "basicauth_credentials": [{"username": "al", "password": "pw"}],
                 "acls": [{"group": "gold"}, {"group": "silver"}]},
                {"custom_id": "no-name", "jwt_secrets": [{"key": "iss-1", "secret": "s"}]},
            ],
        });
        let config = crate::entities::parse_value(&doc).unwrap();
        let directory = Directory::new(&config);
        let alice = config.consumers.iter().find(|c| c.username.as_deref() == Some("alice")).unwrap();
        let found = directory.credential("keyauth_credentials", "k2").unwrap();
        assert_eq!(
            (found.consumer.id.clone(), found.consumer.name.clone()),
            (alice.id.to_string(), Some("alice".into()))
        );
        let fields: serde_json::Value = serde_json::from_str(&found.fields).unwrap();
        assert_eq!(fields["key"], "k2");
        assert!(directory.credential("keyauth_credentials", "k3").is_none());
        assert!(directory.credential("basicauth_credentials", "k1").is_none(), "kinds do not mix");
        assert!(directory.credential("nope", "k1").is_none());
        let basic = directory.credential("basicauth_credentials", "al").unwrap();
        assert!(!basic.fields.contains("\"pw\""), "only the hash: {}", basic.fields);
        let jwt = directory.credential("jwt_secrets", "iss-1").unwrap();
        assert_eq!(jwt.consumer.name, None);
        let groups: Vec<String> = directory
            .credentials_of("acls", &alice.id.to_string())
            .map(|c| {
                serde_json::from_str::<serde_json::Value>(&c.fields).unwrap()["group"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(groups.len(), 2);
        assert!(groups.contains(&"gold".to_string()) && groups.contains(&"silver".to_string()));
        assert_eq!(directory.credentials_of("acls", "someone-else").count(), 0);
        assert_eq!(directory.consumer_by_id_or_username("alice").map(|c| c.id), Some(alice.id));
        assert_eq!(directory.consumer_by_id_or_username(&alice.id.to_string()).map(|c| c.id), Some(alice.id));
        assert!(directory.consumer_by_id_or_username("a-1").is_none(), "custom_id is not a username");
        // A request's reference to its consumer: the id, and the username (else the id) as label.
        let named = directory.consumer_ref(alice.id).unwrap();
        assert_eq!((named.id, &*named.label), (alice.id, "alice"));
        let nameless = config.consumers.iter().find(|c| c.username.is_none()).unwrap();
        let unnamed = directory.consumer_ref(nameless.id).unwrap();
        assert_eq!(&*unnamed.label, nameless.id.to_string());
        assert!(directory.consumer_ref(uuid::Uuid::new_v4()).is_none());
    }

    /// The template plugin gateway/build.rs builds beside the bundled components.
    fn template() -> LoadedPlugin {
        let exe = std::env::current_exe().unwrap();
        let target = exe.ancestors().find(|d| d.join("CACHEDIR.TAG").is_file()).unwrap();
        let wasm = std::fs::read(target.join("wasm-plugins/wasm32-wasip2/release/template.wasm")).unwrap();
        LoadedPlugin::load(&WasmRuntime::new().unwrap(), "template", &wasm).unwrap()
    }

    #[test]
    fn a_configured_instance_changes_the_request_in_access() {
        let plugin = template();
        let shared = Arc::new(NodeShared::default());
        let config = r#"{"header_name":"X-Test","header_value":"yes"}"#;
        let mut instance = plugin.configure(config, Duration::from_millis(100), MEMORY_LIMIT, shared.clone()).unwrap();
        let mut req = RequestHandle { path: "/".into(), ..RequestHandle::default() };
        for _ in 0..3 {
            let flow = instance.request_phase(Phase::Access, &mut req).unwrap();
            assert!(matches!(flow, Flow::Proceed));
        }
        assert_eq!(req.headers.get("x-test").unwrap(), "yes");
        assert_eq!(req.path, "/", "the request comes back whole");
        let refused = plugin.configure("{", Duration::from_millis(100), MEMORY_LIMIT, shared);
        assert!(matches!(refused, Err(PluginFailure::Configure { .. })), "{:?}", refused.err());
    }

    #[test]
    fn several_headers_are_set_and_removed_in_one_call_all_or_nothing() {
        let mut headers = hyper::HeaderMap::new();
        headers.insert("x-old", "1".parse().unwrap());
        headers.insert("x-gone", "1".parse().unwrap());
        let edits = |list: &[(&str, Option<&str>)]| -> Vec<(String, Option<String>)> {
            list.iter().map(|(n, v)| (n.to_string(), v.map(str::to_string))).collect()
        };
        set_many(&mut headers, edits(&[("X-Old", Some("2")), ("X-Gone", None), ("X-New", Some("3"))])).unwrap();
        assert_eq!(headers.get("x-old").unwrap(), "2");
        assert_eq!(headers.get("x-new").unwrap(), "3");
        assert!(headers.get("x-gone").is_none());
        let before = headers.clone();
        let refused = set_many(&mut headers, edits(&[("X-Fine", Some("1")), ("X-Bad", Some("a\nb"))]));
        assert!(refused.unwrap_err().contains("x-bad"), "the header at fault is named");
        assert_eq!(headers, before, "nothing changed when one edit is refused");
        assert!(set_many(&mut headers, edits(&[("bad name", None)])).is_err());
    }

    #[test]
    fn response_headers_set_ahead_are_checked_capped_and_refused_once_the_head_is_sent() {
        use self::gateway::api::host::Host;
        let mut sandbox = Sandbox::new();
        let pair = |n: &str, v: &str| (n.to_string(), v.to_string());
        sandbox.set_response_headers(vec![pair("X-One", "1"), pair("X-Two", "2")]).unwrap();
        assert!(sandbox.set_response_headers(vec![pair("X-Three", "3"), pair("X-Bad", "a\nb")]).is_err());
        let kept: Vec<String> = sandbox.plugin.call.response_headers.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(kept, ["x-one", "x-two"], "a refused call keeps none of its headers");
        let many: Vec<(String, String)> = (0..MAX_RESPONSE_HEADERS).map(|i| pair(&format!("x-{i}"), "v")).collect();
        assert!(sandbox.set_response_headers(many).is_err(), "past the cap");
        assert_eq!(sandbox.plugin.call.response_headers.len(), 2);
        sandbox.plugin.call.head_sent = true;
        assert!(sandbox.set_response_headers(vec![pair("X-Late", "1")]).unwrap_err().contains("has been sent"));
    }

    #[test]
    fn setting_the_host_is_remembered_whatever_its_value() {
        use self::gateway::api::http::HostRequest;
        let mut sandbox = Sandbox::new();
        let mut headers = hyper::HeaderMap::new();
        headers.insert(hyper::header::HOST, "a.test".parse().unwrap());
        let handle = sandbox.table.push(RequestHandle { headers, ..RequestHandle::default() }).unwrap();
        let again = || Resource::<RequestHandle>::new_borrow(handle.rep());
        sandbox.set_headers(again(), vec![("Host".into(), None)]).unwrap();
        sandbox.remove_header(again(), "host".into());
        assert!(!sandbox.request(&handle).host_set, "removing is not setting (Kong's clear_header)");
        sandbox.set_header(again(), "x-other".into(), "1".into()).unwrap();
        assert!(!sandbox.request(&handle).host_set);
        sandbox.set_header(again(), "HOST".into(), "a.test".into()).unwrap();
        assert!(sandbox.request(&handle).host_set, "the value it had, set again");
    }

    #[test]
    fn identity_headers_spelled_with_underscores_are_removed() {
        let mut headers = hyper::HeaderMap::new();
        for name in
            ["x_consumer_username", "x-consumer_id", "X_Anonymous_Consumer", "x_consumer_groups", "x_other", "apikey"]
        {
            headers.insert(hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(), "v".parse().unwrap());
        }
        remove_underscored_identity(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["apikey", "x_other"]);
    }

    #[test]
    fn header_values_in_utf8_reach_the_plugin_and_other_bytes_do_not() {
        let mut headers = hyper::HeaderMap::new();
        headers.append("apikey", hyper::header::HeaderValue::from_bytes("clé-1".as_bytes()).unwrap());
        headers.append("apikey", hyper::header::HeaderValue::from_bytes(b"cl\xe9-2").unwrap());
        headers.append("apikey", hyper::header::HeaderValue::from_static("plain"));
        assert_eq!(first(&headers, "apikey").as_deref(), Some("clé-1"));
        assert_eq!(all(&headers, "apikey"), ["clé-1", "plain"], "Latin-1 is not a string the contract can carry");
        headers.insert("x-latin", hyper::header::HeaderValue::from_bytes(b"\xe9").unwrap());
        assert_eq!(first(&headers, "x-latin"), None);
    }

    #[test]
    fn pass_body_is_taken_in_header_filter_only() {
        use self::gateway::api::host::Host;
        let mut sandbox = Sandbox::new();
        assert!(sandbox.pass_body().unwrap_err().contains("header_filter"), "outside header_filter");
        sandbox.plugin.call.body_passed = Some(false);
        sandbox.pass_body().unwrap();
        assert_eq!(sandbox.plugin.call.body_passed, Some(true));
    }

    #[test]
    fn authenticate_sets_the_consumer_and_kongs_headers_in_one_call_or_changes_nothing() {
        use self::gateway::api::host::Host;
        let doc = serde_json::json!({
            "_format_version": "3.0",
            "consumers": [{"username": "alice", "custom_id": "a-1"}, {"custom_id": "c-2"}],
        });
        let config = crate::entities::parse_value(&doc).unwrap();
        let id_of = |custom: &str| {
            config.consumers.iter().find(|c| c.custom_id.as_deref() == Some(custom)).unwrap().id.to_string()
        };
        let (alice, nameless) = (id_of("a-1"), id_of("c-2"));
        let mut sandbox = Sandbox::new();
        sandbox.plugin.call.directory = Some(Directory::new(&config).handle());
        let mut forged = hyper::HeaderMap::new();
        for name in ["x-consumer-username", "x-anonymous-consumer", "x-credential-identifier"] {
            forged.insert(name, "forged".parse().unwrap());
        }
        let handle = sandbox.table.push(RequestHandle { headers: forged, ..RequestHandle::default() }).unwrap();
        let borrow = || Resource::<RequestHandle>::new_borrow(handle.rep());
        let proof = Proof { id: "cred-1".into(), identifier: "key-1".into() };

        sandbox.authenticate(borrow(), alice.clone(), Some(proof)).unwrap();
        let headers = &sandbox.table.get(&handle).unwrap().headers;
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(header("x-consumer-id"), Some(alice.clone()));
        assert_eq!(header("x-consumer-custom-id").as_deref(), Some("a-1"));
        assert_eq!(header("x-consumer-username").as_deref(), Some("alice"));
        assert_eq!(header("x-credential-identifier").as_deref(), Some("key-1"));
        assert_eq!(header("x-anonymous-consumer"), None, "a forged header is removed");
        let named = sandbox.consumer().unwrap();
        assert_eq!((named.id, named.name), (alice.clone(), Some("alice".into())));
        let call = &sandbox.plugin.call;
        assert_eq!(call.consumer.map(|c| c.to_string()), Some(alice.clone()));
        assert_eq!(call.credential.as_deref(), Some("cred-1"));
        assert!(call.consumer_changed);

        // The anonymous consumer: no credential, no username.
        sandbox.authenticate(borrow(), nameless.clone(), None).unwrap();
        let headers = &sandbox.table.get(&handle).unwrap().headers;
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(header("x-consumer-id"), Some(nameless.clone()));
        assert_eq!(header("x-anonymous-consumer").as_deref(), Some("true"));
        assert_eq!((header("x-consumer-username"), header("x-credential-identifier")), (None, None));
        assert_eq!(sandbox.plugin.call.credential, None);

        // An unknown consumer, or a value that cannot be a header: nothing changes.
        let before = sandbox.table.get(&handle).unwrap().headers.clone();
        let refused = sandbox.authenticate(borrow(), "no-such-id".into(), None).unwrap_err();
        assert!(refused.contains("no-such-id"), "{refused}");
        let bad = Proof { id: "cred-2".into(), identifier: "a\nb".into() };
        let refused = sandbox.authenticate(borrow(), id_of("a-1"), Some(bad)).unwrap_err();
        assert!(refused.contains("x-credential-identifier"), "{refused}");
        assert_eq!(sandbox.table.get(&handle).unwrap().headers, before);
        assert_eq!(sandbox.plugin.call.consumer.map(|c| c.to_string()), Some(nameless));

        sandbox.plugin.call.directory = None;
        assert!(sandbox.authenticate(borrow(), id_of("a-1"), None).is_err(), "outside a request");
    }

    #[test]
    fn authenticate_key_finds_the_credential_and_authenticates_with_it_or_changes_nothing() {
        use self::gateway::api::host::Host;
        let doc = serde_json::json!({
            "_format_version": "3.0",
            "consumers": [{"username": "alice", "keyauth_credentials": [{"key": "k-1"}],
                           "basicauth_credentials": [{"username": "al", "password": "p"}]}],
        });
        let config = crate::entities::parse_value(&doc).unwrap();
        let alice = config.consumers[0].id.to_string();
        let credential = config.credentials().find(|c| c.key == Some("k-1")).unwrap().id.to_string();
        let mut sandbox = Sandbox::new();
        sandbox.plugin.call.directory = Some(Directory::new(&config).handle());
        let mut forged = hyper::HeaderMap::new();
        forged.insert("x-anonymous-consumer", "true".parse().unwrap());
        let handle = sandbox.table.push(RequestHandle { headers: forged, ..RequestHandle::default() }).unwrap();
        let borrow = || Resource::<RequestHandle>::new_borrow(handle.rep());

        // No such key, or a key of another kind: nothing changes.
        let before = sandbox.table.get(&handle).unwrap().headers.clone();
        assert_eq!(sandbox.authenticate_key(borrow(), "keyauth_credentials".into(), "k-2".into()), Ok(false));
        assert_eq!(sandbox.authenticate_key(borrow(), "keyauth_credentials".into(), "al".into()), Ok(false));
        assert_eq!(sandbox.authenticate_key(borrow(), "no-such-kind".into(), "k-1".into()), Ok(false));
        assert_eq!(sandbox.table.get(&handle).unwrap().headers, before);
        assert!(sandbox.plugin.call.consumer.is_none() && !sandbox.plugin.call.consumer_changed);

        assert_eq!(sandbox.authenticate_key(borrow(), "keyauth_credentials".into(), "k-1".into()), Ok(true));
        let headers = &sandbox.table.get(&handle).unwrap().headers;
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(header("x-consumer-id"), Some(alice.clone()));
        assert_eq!(header("x-consumer-username").as_deref(), Some("alice"));
        assert_eq!(header("x-credential-identifier"), Some(credential.clone()), "key-auth's identifier is the id");
        assert_eq!(header("x-anonymous-consumer"), None, "a forged header is removed");
        let call = &sandbox.plugin.call;
        assert_eq!(call.consumer.map(|c| c.to_string()), Some(alice));
        assert_eq!(call.credential, Some(credential));
        assert!(call.consumer_changed);

        sandbox.plugin.call.directory = None;
        assert_eq!(sandbox.authenticate_key(borrow(), "keyauth_credentials".into(), "k-1".into()), Ok(false));
    }

    #[test]
    fn known_header_names_are_found_in_any_case_and_others_parsed() {
        for name in ["RateLimit-Limit", "x-ratelimit-remaining-minute", "X-RATELIMIT-LIMIT-YEAR"] {
            assert_eq!(header_name(name).unwrap().as_str(), name.to_ascii_lowercase());
        }
        assert_eq!(header_name("X-Custom").unwrap().as_str(), "x-custom");
        assert_eq!(header_name("retry-after").unwrap(), hyper::header::RETRY_AFTER);
        assert!(header_name("bad name").is_err());
        assert!(header_name("").is_err());
    }

    #[test]
    fn the_calls_ids_cross_as_numbers() {
        use self::gateway::api::host::Host;
        let doc = serde_json::json!({
            "_format_version": "3.0",
            "consumers": [{"username": "alice", "keyauth_credentials": [{"key": "k1"}]}],
        });
        let config = crate::entities::parse_value(&doc).unwrap();
        let alice = config.consumers[0].id;
        let mut sandbox = Sandbox::new();
        let none = sandbox.ids();
        assert_eq!((none.plugin, none.route, none.consumer, none.credential), (None, None, None, None));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        assert!(none.now_ms.abs_diff(now) < 60_000, "{} against {now}", none.now_ms);

        let directory = Directory::new(&config).with_entities(vec![PluginEntity {
            id: "7d2f9ab0-5b5e-4f37-9e39-0c7a4e1b2c3d".into(),
            route: None,
            service: None,
            consumer: None,
        }]);
        sandbox.plugin.call.directory = Some(directory.handle());
        sandbox.plugin.call.entity = Some(0);
        let credential = sandbox.find_credential("keyauth_credentials".into(), "k1".into()).unwrap();

        sandbox.plugin.call.consumer = Some(alice);
        sandbox.plugin.call.credential = Some(credential.id.clone());
        let ids = sandbox.ids();
        let entity = uuid::Uuid::parse_str("7d2f9ab0-5b5e-4f37-9e39-0c7a4e1b2c3d").unwrap();
        assert_eq!(ids.plugin, Some(entity.as_u64_pair()));
        assert_eq!(ids.consumer, Some(alice.as_u64_pair()));
        assert_eq!(ids.credential, Some(uuid::Uuid::parse_str(&credential.id).unwrap().as_u64_pair()));
        sandbox.plugin.call.credential = Some("not-a-uuid".into());
        assert_eq!(sandbox.ids().credential, None, "a credential id that is no UUID has no number");
    }

    #[test]
    fn an_expired_key_is_not_found() {
        let doc = serde_json::json!({
            "_format_version": "3.0",
            "consumers": [{"username": "a", "keyauth_credentials": [
                {"key": "old", "ttl": 1},
                {"key": "young", "ttl": crate::entities::unix_now() + 3600},
                {"key": "ageless"},
            ]}],
        });
        let directory = Directory::new(&crate::entities::parse_value(&doc).unwrap());
        assert!(directory.credential("keyauth_credentials", "old").is_none(), "expired in 1970");
        assert!(directory.credential("keyauth_credentials", "young").is_some());
        assert!(directory.credential("keyauth_credentials", "ageless").is_some());
        let consumer = directory.consumer_by_id_or_username("a").unwrap().id.to_string();
        assert_eq!(directory.credentials_of("keyauth_credentials", &consumer).count(), 2);
    }

    #[test]
    fn counters_add_up_within_their_window_and_restart_after_it() {
        let shared = NodeShared::default();
        assert_eq!(shared.incr("k", 2, Duration::from_secs(60)), 2);
        assert_eq!(shared.incr("k", 3, Duration::from_secs(60)), 5);
        assert_eq!(shared.incr("short", 1, Duration::ZERO), 1);
        assert_eq!(shared.incr("short", 1, Duration::ZERO), 1, "an expired window starts again at zero");
    }

    #[test]
    fn values_expire_and_oversized_ones_are_not_kept() {
        let shared = NodeShared::default();
        shared.set("a".into(), b"1".to_vec(), Duration::from_secs(60));
        assert_eq!(shared.get("a"), Some(b"1".to_vec()));
        shared.set("gone".into(), b"1".to_vec(), Duration::ZERO);
        assert_eq!(shared.get("gone"), None);
        shared.set("big".into(), vec![0; MAX_VALUE + 1], Duration::from_secs(60));
        assert_eq!(shared.get("big"), None);
    }

    #[test]
    fn the_shared_state_is_bounded_and_drops_the_least_recently_used_when_full() {
        let shared = NodeShared::default();
        for i in 0..SHARED_CAPACITY {
            shared.incr(&format!("k{i}"), 1, Duration::from_secs(60));
        }
        // k0 is used again: it is now among the most recently used.
        assert_eq!(shared.incr("k0", 1, Duration::from_secs(60)), 2);
        assert_eq!(
            shared.incr("one-more", 7, Duration::from_secs(60)),
            7,
            "a full store makes room: a new counter counts (Kong's counters never refuse either)"
        );
        let counters = shared.counters.lock().unwrap();
        assert!(counters.entries.len() <= SHARED_CAPACITY - EVICTED + 1, "{}", counters.entries.len());
        assert!(!counters.entries.contains_key("k1"), "the least recently used went");
        assert!(counters.entries.contains_key("k0") && counters.entries.contains_key("one-more"));
        assert!(counters.entries.contains_key(&format!("k{}", SHARED_CAPACITY - 1)), "recent ones stay");
        drop(counters);
        assert_eq!(shared.incr("k0", 1, Duration::from_secs(60)), 3, "the ones kept still count");
        // Values too.
        for i in 0..SHARED_CAPACITY + 1 {
            shared.set(format!("v{i}"), vec![1], Duration::from_secs(60));
        }
        assert_eq!(shared.get(&format!("v{SHARED_CAPACITY}")), Some(vec![1]));
        assert!(shared.values.lock().unwrap().entries.len() <= SHARED_CAPACITY);
    }
}
