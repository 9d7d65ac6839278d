//! Kong's own kong.conf keys that the gateway does not honour (the ones it does are in
//! [`super::keys::KEYS`]): each with Kong's default and why it does nothing here. A file or a
//! `KONG_*` variable that sets one loads with a warning naming the reason, never "unknown key".
//! Where ignoring a value would leave the node less safe than the file says (TLS versions and
//! suites, certificates, which headers are shown), only Kong's default is accepted: any other value
//! is refused, because a setting accepted and not enforced fails open.

/// What the gateway does with a Kong key it does not honour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Nothing in this gateway it could apply to: warned, whatever the value.
    NotApplicable,
    /// To be honoured later; until then warned, whatever the value.
    Later,
    /// To be honoured later; a value other than Kong's default would promise something the node
    /// does not do (and be less safe): only Kong's default is accepted.
    LaterDefaultOnly,
}

pub struct KongKey {
    pub name: &'static str,
    /// Kong's default as `kong.conf.default` writes it (`""` for none).
    pub default: &'static str,
    pub handling: Handling,
    /// One line: why, and what the node does instead.
    pub reason: &'static str,
}

use Handling::{LaterDefaultOnly, NotApplicable};

const fn k(name: &'static str, default: &'static str, handling: Handling, reason: &'static str) -> KongKey {
    KongKey { name, default, handling, reason }
}

const STREAM: &str = "no stream (TCP/TLS) proxy here: HTTP only";
const TRACING: &str = "no OpenTelemetry tracing here (see /metrics and /analytics)";
const NO_LUA: &str = "no Lua in this gateway (plugins are WebAssembly components)";
const NO_NGINX: &str = "no nginx in this gateway: an nginx buffer setting";
const DB_CACHE: &str = "no database cache: each configuration version is held whole in memory";
const PG: &str = "PostgreSQL is not supported yet (database = postgres is refused)";
const CONSOLE_API: &str =
    "the console calls the Admin API through its own origin (`/api`), so no other address or CORS opening is needed";

/// Every Kong 3.10 key of `kong.conf.default` the gateway does not honour, in that file's order,
/// and keys of other Kong versions a kong.conf may still carry.
pub const KONG_KEYS: &[KongKey] = &[
    k("proxy_stream_access_log", "logs/access.log basic", NotApplicable, STREAM),
    k("proxy_stream_error_log", "logs/error.log", NotApplicable, STREAM),
    k("opentelemetry_tracing", "off", NotApplicable, TRACING),
    k("tracing_instrumentations", "off", NotApplicable, TRACING),
    k("opentelemetry_tracing_sampling_rate", "1.0", NotApplicable, TRACING),
    k("tracing_sampling_rate", "0.01", NotApplicable, TRACING),
    k(
        "dedicated_config_processing",
        "on",
        NotApplicable,
        "configuration is always parsed and applied off the request path",
    ),
    k(
        "pluginserver_names",
        "",
        NotApplicable,
        "no external plugin servers: plugins are WebAssembly components (wasm_plugins_path)",
    ),
    k("port_maps", "", NotApplicable, "not supported: X-Forwarded-Port is the port the client connected to"),
    k("anonymous_reports", "on", NotApplicable, "the gateway sends no usage reports"),
    k("stream_listen", "off", NotApplicable, STREAM),
    k("nginx_user", "kong kong", NotApplicable, "the gateway runs as the user that starts it"),
    k("nginx_daemon", "on", NotApplicable, "the gateway runs in the foreground: let a service manager keep it"),
    k("mem_cache_size", "128m", NotApplicable, DB_CACHE),
    k("ssl_dhparam", "", NotApplicable, "rustls has no finite-field Diffie-Hellman: key exchange is always ECDHE"),
    k("debug_ssl_cert", "", NotApplicable, "no request-debugging listener here"),
    k("debug_ssl_cert_key", "", NotApplicable, "no request-debugging listener here"),
    k("nginx_http_client_header_buffer_size", "1k", NotApplicable, NO_NGINX),
    k("nginx_http_charset", "UTF-8", NotApplicable, "no nginx in this gateway: no charset is added to responses"),
    k("nginx_http_client_body_buffer_size", "8k", NotApplicable, NO_NGINX),
    k("nginx_admin_client_body_buffer_size", "10m", NotApplicable, NO_NGINX),
    k("nginx_http_lua_regex_match_limit", "100000", NotApplicable, NO_LUA),
    k("nginx_http_lua_regex_cache_max_entries", "8192", NotApplicable, NO_LUA),
    k(
        "nginx_http_keepalive_requests",
        "10000",
        NotApplicable,
        "a client connection serves requests until nginx_http_keepalive_timeout closes it idle",
    ),
    k("pg_host", "127.0.0.1", NotApplicable, PG),
    k("pg_port", "5432", NotApplicable, PG),
    k("pg_timeout", "5000", NotApplicable, PG),
    k("pg_user", "kong", NotApplicable, PG),
    k("pg_password", "", NotApplicable, PG),
    k("pg_database", "kong", NotApplicable, PG),
    k("pg_schema", "", NotApplicable, PG),
    k("pg_ssl", "off", NotApplicable, PG),
    k("pg_ssl_verify", "off", NotApplicable, PG),
    k("pg_max_concurrent_queries", "0", NotApplicable, PG),
    k("pg_semaphore_timeout", "60000", NotApplicable, PG),
    k("pg_keepalive_timeout", "", NotApplicable, PG),
    k("pg_pool_size", "", NotApplicable, PG),
    k("pg_backlog", "", NotApplicable, PG),
    k("pg_ro_host", "", NotApplicable, PG),
    k("pg_ro_port", "<pg_port>", NotApplicable, PG),
    k("pg_ro_timeout", "<pg_timeout>", NotApplicable, PG),
    k("pg_ro_user", "<pg_user>", NotApplicable, PG),
    k("pg_ro_password", "<pg_password>", NotApplicable, PG),
    k("pg_ro_database", "<pg_database>", NotApplicable, PG),
    k("pg_ro_schema", "<pg_schema>", NotApplicable, PG),
    k("pg_ro_ssl", "<pg_ssl>", NotApplicable, PG),
    k("pg_ro_ssl_verify", "<pg_ssl_verify>", NotApplicable, PG),
    k("pg_ro_max_concurrent_queries", "<pg_max_concurrent_queries>", NotApplicable, PG),
    k("pg_ro_semaphore_timeout", "<pg_semaphore_timeout>", NotApplicable, PG),
    k("pg_ro_keepalive_timeout", "<pg_keepalive_timeout>", NotApplicable, PG),
    k("pg_ro_pool_size", "<pg_pool_size>", NotApplicable, PG),
    k("pg_ro_backlog", "<pg_backlog>", NotApplicable, PG),
    k("lmdb_environment_path", "dbless.lmdb", NotApplicable, "a data plane's cache is always dbless.lmdb in prefix"),
    k("db_update_frequency", "5", NotApplicable, DB_CACHE),
    k("db_update_propagation", "0", NotApplicable, DB_CACHE),
    k("db_cache_ttl", "0", NotApplicable, DB_CACHE),
    k("db_cache_neg_ttl", "", NotApplicable, DB_CACHE),
    k("db_resurrect_ttl", "30", NotApplicable, DB_CACHE),
    k("db_cache_warmup_entities", "services", NotApplicable, DB_CACHE),
    k(
        "resolver_mem_cache_size",
        "5m",
        NotApplicable,
        "one process holds every worker, so there is one DNS cache, sized by resolver_lru_cache_size",
    ),
    k("worker_consistency", "eventual", NotApplicable, "a new configuration reaches every worker at once"),
    k("worker_state_update_frequency", "5", NotApplicable, "a new configuration reaches every worker at once"),
    k("lua_max_req_headers", "100", NotApplicable, NO_LUA),
    k("lua_max_resp_headers", "100", NotApplicable, NO_LUA),
    k("lua_max_uri_args", "100", NotApplicable, NO_LUA),
    k("lua_max_post_args", "100", NotApplicable, NO_LUA),
    k(
        "lua_ssl_protocols",
        "TLSv1.2 TLSv1.3",
        LaterDefaultOnly,
        "not honoured yet: outbound TLS is always TLS 1.2 or 1.3",
    ),
    k("lua_package_path", "./?.lua;./?/init.lua;", NotApplicable, NO_LUA),
    k("lua_package_cpath", "", NotApplicable, NO_LUA),
    k("lua_socket_pool_size", "256", NotApplicable, NO_LUA),
    k("untrusted_lua", "sandbox", NotApplicable, NO_LUA),
    k("untrusted_lua_sandbox_requires", "", NotApplicable, NO_LUA),
    k("untrusted_lua_sandbox_environment", "", NotApplicable, NO_LUA),
    k("openresty_path", "", NotApplicable, "no OpenResty in this gateway"),
    k("admin_gui_url", "", NotApplicable, CONSOLE_API),
    k(
        "admin_gui_path",
        "/",
        LaterDefaultOnly,
        "the console is served at the root of admin_gui_listen; another base path is not supported yet",
    ),
    k("admin_gui_api_url", "", NotApplicable, CONSOLE_API),
    k(
        "admin_gui_auth",
        "",
        LaterDefaultOnly,
        "not honoured yet: the console has no login of its own (Kong Enterprise's): keep admin_gui_listen on loopback or behind a proxy that authenticates",
    ),
    k(
        "admin_gui_csp_header",
        "off",
        NotApplicable,
        "the console always sends a strict Content-Security-Policy (its own origin only)",
    ),
    k(
        "wasm",
        "off",
        NotApplicable,
        "Kong's proxy-wasm filters are not loaded: this gateway's plugins are components (wasm_plugins_path)",
    ),
    k(
        "wasm_filters_path",
        "",
        NotApplicable,
        "Kong's proxy-wasm filters are not loaded: this gateway's plugins are components (wasm_plugins_path)",
    ),
    k(
        "wasm_filters",
        "bundled,user",
        NotApplicable,
        "Kong's proxy-wasm filters are not loaded: this gateway's plugins are components (wasm_plugins_path)",
    ),
    k("request_debug", "on", NotApplicable, "no request debugging here (allow_debug_header shows the route)"),
    k(
        "request_debug_token",
        "<random>",
        NotApplicable,
        "no request debugging here (allow_debug_header shows the route)",
    ),
    // Keys of other Kong versions.
    k("cluster_cjson", "off", NotApplicable, "the cluster protocol is the gateway's own"),
    k("cluster_rpc", "off", NotApplicable, "the cluster protocol is the gateway's own"),
    k("cluster_rpc_sync", "off", NotApplicable, "the cluster protocol is the gateway's own"),
    k("konnect_mode", "off", NotApplicable, "no Konnect here: a data plane links to its own control plane"),
    k("vitals", "off", NotApplicable, "no Vitals here (see /metrics and /analytics)"),
    k("client_max_body_size", "0", NotApplicable, "an old name: use nginx_http_client_max_body_size"),
    k("client_body_buffer_size", "8k", NotApplicable, NO_NGINX),
    k("router_consistency", "strict", NotApplicable, "a new configuration reaches every worker at once"),
    k("lua_ssl_trusted_certificate_combined", "", NotApplicable, NO_LUA),
];

/// Families of Kong keys not in [`KONG_KEYS`]: nginx directive injection and the databases.
pub const KONG_PREFIXES: &[(&str, &str)] = &[
    ("nginx_", "an nginx directive injection: no nginx in this gateway"),
    ("pg_", PG),
    ("cassandra_", "Cassandra is not supported (Kong 3 dropped it too)"),
    ("admin_gui_", "a Kong Manager (Enterprise) setting with no counterpart in this console"),
    ("vitals_", "no Vitals here (see /metrics and /analytics)"),
    ("portal_", "no developer portal here"),
    ("tracing_", TRACING),
];

pub fn find(name: &str) -> Option<&'static KongKey> {
    KONG_KEYS.iter().find(|key| key.name == name)
}

/// Why a Kong key not in [`KONG_KEYS`] does nothing here, if it belongs to a known family.
pub fn family(name: &str) -> Option<&'static str> {
    KONG_PREFIXES.iter().find(|(prefix, _)| name.starts_with(prefix)).map(|(_, reason)| *reason)
}

/// Whether `value` is Kong's default for `key`: the same words, compared without case, spaces
/// around commas or repeated spaces mattering.
pub fn is_default(key: &KongKey, value: &str) -> bool {
    fn words(s: &str) -> Vec<String> {
        s.split([',', ' ', '\t']).filter(|w| !w.is_empty()).map(str::to_ascii_lowercase).collect()
    }
    words(value) == words(key.default)
}
