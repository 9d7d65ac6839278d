//! Every kong.conf key the gateway reads, with Kong's default, its type and what it does. This
//! table is the single source for the built-in defaults, for unknown-key detection and for
//! `docs/configuration.md` (a test keeps the two in step).

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

pub struct Key {
    pub name: &'static str,
    /// Kong's default, as kong.conf would spell it; `None` is Kong's `NONE` (unset).
    pub default: Option<&'static str>,
    pub kind: &'static str,
    pub doc: &'static str,
}

const LISTEN: &str = "listen list";

pub const KEYS: &[Key] = &[
    Key {
        name: "role",
        default: Some("traditional"),
        kind: "`traditional` | `control_plane` | `data_plane`",
        doc: "What the node serves: proxy and Admin API; Admin API and the cluster listeners; or proxy fed by a control plane.",
    },
    Key {
        name: "database",
        default: Some("lmdb"),
        kind: "`lmdb` | `off`",
        doc: "Where a traditional node or control plane keeps its entities: the embedded LMDB store under `prefix`, or `off` (DB-less, from `declarative_config`). Data planes must use `off`. Kong's `postgres` is not supported yet.",
    },
    Key {
        name: "prefix",
        default: Some("/usr/local/kong/"),
        kind: "path",
        doc: "The node's working directory, created 0700 when missing. Everything the node writes lives under it.",
    },
    Key {
        name: "log_level",
        default: Some("notice"),
        kind: "`debug` | `info` | `notice` | `warn` | `error` | `crit` | `alert` | `emerg`",
        doc: "Lowest level written to the error logs (`proxy_error_log`, `admin_error_log`, `status_error_log`). `notice` logs what `info` does; `crit`, `alert` and `emerg` log what `error` does.",
    },
    Key {
        name: "proxy_listen",
        default: Some("0.0.0.0:8000 reuseport backlog=16384, 0.0.0.0:8443 http2 ssl reuseport backlog=16384"),
        kind: LISTEN,
        doc: "Addresses the proxy accepts traffic on, each `host:port` followed by flags (`ssl`, `http2`, `bind`, `reuseport`, `backlog=N`, `ipv6only=on|off`, `so_keepalive=on|off|idle:interval:count`; `proxy_protocol` and `deferred` are refused). `off` disables the proxy. Required on a data plane.",
    },
    Key {
        name: "admin_listen",
        default: Some("127.0.0.1:8001 reuseport backlog=16384, 127.0.0.1:8444 http2 ssl reuseport backlog=16384"),
        kind: LISTEN,
        doc: "Addresses of the Admin API, with the flags of `proxy_listen` (`ssl` serves `admin_ssl_cert`). Loopback by default: expose it only behind something that authenticates. Required on a control plane; ignored on a data plane.",
    },
    Key {
        name: "status_listen",
        default: Some("127.0.0.1:8007 reuseport backlog=16384"),
        kind: LISTEN,
        doc: "Addresses of the status API (`/status`, `/status/ready`, and `/metrics`), with the flags of `proxy_listen` (`ssl` serves `status_ssl_cert`). `off` disables it (and a proxying node then counts no request metrics).",
    },
    Key {
        name: "admin_gui_listen",
        default: Some("127.0.0.1:8002, 127.0.0.1:8445 ssl"),
        kind: LISTEN,
        doc: "Addresses of the console, a web page for the node and its cluster (data planes, certificates, entities, analytics), with the flags of `proxy_listen` (`ssl` serves `admin_gui_ssl_cert`). The page reaches the Admin API through its own origin (`/api/...`, with the Admin API's guards against other sites and DNS rebinding; `admin_allowed_hosts` applies), so it is served only where the Admin API is (`admin_listen` not `off`), never on a data plane, and its `/api` answers loopback clients only while `admin_listen` is loopback only. Loopback by default (Kong's is `0.0.0.0`): the console can change everything the Admin API can. `off` disables it.",
    },
    Key {
        name: "cluster_listen",
        default: Some("0.0.0.0:8005"),
        kind: LISTEN,
        doc: "Control plane: where data planes connect for configuration (always mutual TLS, so `ssl` and `http2` are refused; the socket flags of `proxy_listen` apply).",
    },
    Key {
        name: "cluster_telemetry_listen",
        default: Some("0.0.0.0:8006"),
        kind: LISTEN,
        doc: "Control plane: where data planes send telemetry (always mutual TLS).",
    },
    Key {
        name: "cluster_control_plane",
        default: Some("127.0.0.1:8005"),
        kind: "`host:port`",
        doc: "Data plane: the control plane's cluster listener, without a scheme.",
    },
    Key {
        name: "cluster_telemetry_endpoint",
        default: Some("127.0.0.1:8006"),
        kind: "`host:port`",
        doc: "Data plane: the control plane's telemetry listener, without a scheme.",
    },
    Key {
        name: "trusted_ips",
        default: None,
        kind: "list of IP addresses or CIDR blocks",
        doc: "Peers whose forwarding headers are believed: from them `X-Forwarded-For`/`Forwarded` are appended to and `X-Forwarded-Proto/Host/Port/Path/Prefix` kept, and the client address is read from `real_ip_header`. From any other peer all of these are replaced by the gateway's own values. `0.0.0.0/0, ::/0` trusts everyone. Unset: nobody.",
    },
    Key {
        name: "real_ip_header",
        default: Some("X-Real-IP"),
        kind: "header name",
        doc: "The header a trusted peer names the client's address in (nginx's realip module; the last address when it holds a list). `proxy_protocol` is refused: listeners do not speak the PROXY protocol.",
    },
    Key {
        name: "real_ip_recursive",
        default: Some("off"),
        kind: "boolean",
        doc: "With a list in `real_ip_header`: take the last address that is not in `trusted_ips` rather than the last one.",
    },
    Key {
        name: "nginx_http_client_header_timeout",
        default: Some("60s"),
        kind: "nginx time (`60s`, `500ms`, `5m`)",
        doc: "How long a client may take to send a whole request head. The connection is then closed.",
    },
    Key {
        name: "nginx_http_client_body_timeout",
        default: Some("60s"),
        kind: "nginx time",
        doc: "How long a client may pause between two reads of its request body: then the request gets 408 and its upstream connection is closed.",
    },
    Key {
        name: "nginx_worker_processes",
        default: Some("auto"),
        kind: "`auto` | number (1 to 512)",
        doc: "How many proxy worker threads serve client connections: `auto` is one per CPU core. Each is a single-threaded event loop, as an nginx worker process is; a connection stays on the worker that took it.",
    },
    Key {
        name: "nginx_events_worker_connections",
        default: Some("auto"),
        kind: "`auto` | number",
        doc: "Client connections each proxy worker serves at once (all workers together: this times `nginx_worker_processes`); further connections wait in the listen backlog until one closes. `auto` is the open-file limit (`ulimit -n`) found at start, from 1024 to 16384, as Kong computes it.",
    },
    Key {
        name: "nginx_main_worker_rlimit_nofile",
        default: Some("auto"),
        kind: "`auto` | number",
        doc: "Open files per proxy worker. The gateway is one process holding every worker, so at start it raises its own soft limit to this times `nginx_worker_processes`, plus 1024 for listeners, logs and stores (never lowering it); when the hard limit stops it, it runs with the hard limit, and says so when the number was set (not for `auto`). `auto` as for `nginx_events_worker_connections`.",
    },
    Key {
        name: "proxy_access_log",
        default: Some("logs/access.log"),
        kind: "`off` | path [format]",
        doc: "One line per proxied request in Kong's `kong_log_format` (nginx's `combined` followed by `kong_request_id: \"...\"`), or in `combined` when the path is followed by that name. A relative path is under `prefix`; `/dev/stdout` and `/dev/stderr` are the process's own. Times are in UTC. Lines are written off the request path, at least every 200 ms; SIGUSR1 reopens the file (for logrotate). Other format names (Kong's `nginx_http_log_format` injections) are refused.",
    },
    Key {
        name: "admin_access_log",
        default: Some("logs/admin_access.log"),
        kind: "`off` | path [format]",
        doc: "One line per Admin API request, in nginx's `combined` format; as `proxy_access_log` otherwise.",
    },
    Key {
        name: "status_access_log",
        default: Some("off"),
        kind: "`off` | path [format]",
        doc: "One line per status API request, in nginx's `combined` format; as `proxy_access_log` otherwise.",
    },
    Key {
        name: "admin_gui_access_log",
        default: Some("logs/admin_gui_access.log"),
        kind: "`off` | path [format]",
        doc: "One line per console request (its pages and its `/api` calls), in nginx's `combined` format; as `proxy_access_log` otherwise.",
    },
    Key {
        name: "proxy_error_log",
        default: Some("logs/error.log"),
        kind: "path",
        doc: "Where the node's messages at `log_level` go once its configuration is read: the proxy's, the cluster link's, start and stop (everything but the Admin and status APIs'). A relative path is under `prefix`; `/dev/stderr` and `/dev/stdout` are the process's own (what containers want: `KONG_PROXY_ERROR_LOG=/dev/stderr`). A node whose log is a file says where on stderr when it starts. SIGUSR1 reopens the file. Problems found before the configuration is read go to stderr.",
    },
    Key {
        name: "admin_error_log",
        default: Some("logs/error.log"),
        kind: "path",
        doc: "Where the Admin API's own messages go; as `proxy_error_log` (one file when both name it).",
    },
    Key {
        name: "status_error_log",
        default: Some("logs/status_error.log"),
        kind: "path",
        doc: "Where the status API's own messages go; as `proxy_error_log`.",
    },
    Key {
        name: "admin_gui_error_log",
        default: Some("logs/admin_gui_error.log"),
        kind: "path",
        doc: "Where the console's own messages go; as `proxy_error_log`.",
    },
    Key {
        name: "nginx_http_keepalive_timeout",
        default: Some("75s"),
        kind: "nginx time",
        doc: "How long an idle keep-alive connection (HTTP/1.1 or HTTP/2) waits for its next request before it is closed.",
    },
    Key {
        name: "nginx_http_send_timeout",
        default: Some("60s"),
        kind: "nginx time",
        doc: "How long a write to a client that does not read its response may wait: then the connection is closed (and its upstream connection with it).",
    },
    Key {
        name: "nginx_http_client_max_body_size",
        default: Some("0"),
        kind: "nginx size (`0` = unlimited, `10m`)",
        doc: "Largest request body the proxy forwards: over it the request gets 413 (at once when `Content-Length` says so, else when the limit is crossed). Kong's default `0` is unlimited.",
    },
    Key {
        name: "nginx_http_large_client_header_buffers",
        default: Some("4 8k"),
        kind: "number and size",
        doc: "The largest request head is their product (32 KiB by default); a larger one gets 431.",
    },
    Key {
        name: "cluster_mtls",
        default: Some("shared"),
        kind: "`shared` | `pki`",
        doc: "How control plane and data planes authenticate each other: one shared certificate pinned by both sides, or certificates issued by `cluster_ca_cert`.",
    },
    Key {
        name: "cluster_cert",
        default: None,
        kind: "path or inline PEM",
        doc: "The node's cluster certificate (and, in `pki` mode, its intermediates). Required on control and data planes.",
    },
    Key {
        name: "cluster_cert_key",
        default: None,
        kind: "path or inline PEM",
        doc: "The private key of `cluster_cert`. Required on control and data planes. Never logged.",
    },
    Key {
        name: "cluster_ca_cert",
        default: None,
        kind: "path or inline PEM",
        doc: "`pki` mode: the CA that issues cluster certificates. Required on a `pki` control plane; a data plane adds it to the roots it trusts for the control plane.",
    },
    Key {
        name: "cluster_server_name",
        default: None,
        kind: "string",
        doc: "`pki` mode: the SNI a data plane sends and the name it requires in the control plane's certificate. Unset: the host of `cluster_control_plane`. Shared mode always uses `kong_clustering`.",
    },
    Key {
        name: "cluster_telemetry_server_name",
        default: None,
        kind: "string",
        doc: "`pki` mode: the SNI for the telemetry link. Unset: `cluster_server_name`.",
    },
    Key {
        name: "cluster_ocsp",
        default: Some("off"),
        kind: "`on` | `off` | `optional`",
        doc: "Control plane, `pki` mode: check data plane certificates with the OCSP responder named in their AIA extension. `on` rejects on any responder error; `optional` only on a revoked answer.",
    },
    Key {
        name: "cluster_use_proxy",
        default: Some("off"),
        kind: "boolean",
        doc: "Data plane: reach the control plane through the CONNECT proxy in `proxy_server`.",
    },
    Key {
        name: "proxy_server",
        default: None,
        kind: "`http[s]://[user:pass@]host[:port]`",
        doc: "The forward proxy for `cluster_use_proxy`. Userinfo is percent-decoded (write `#` as `%23`). No path, query or fragment. Credentials are never logged.",
    },
    Key {
        name: "proxy_server_ssl_verify",
        default: Some("on"),
        kind: "boolean",
        doc: "Verify an `https://` proxy's certificate against `lua_ssl_trusted_certificate`. Kong's code defaults to `on` (its docs say `off`); we keep the safe one.",
    },
    Key {
        name: "lua_ssl_trusted_certificate",
        default: Some("system"),
        kind: "list of `system`, paths or inline PEM",
        doc: "Roots trusted for outbound TLS: `https` upstream services, the forward proxy and, in `pki` mode, the control plane. `system` is the operating system's store.",
    },
    Key {
        name: "lua_ssl_verify_depth",
        default: Some("1"),
        kind: "integer",
        doc: "Kong's chain depth for outbound TLS. Accepted for compatibility; our verifier checks whole chains.",
    },
    Key {
        name: "cluster_max_payload",
        default: Some("16777216"),
        kind: "integer (bytes, ≥ 4194304)",
        doc: "Largest cluster message accepted or sent, in either direction.",
    },
    Key {
        name: "cluster_dp_labels",
        default: None,
        kind: "list of `key:value`",
        doc: "Data plane: up to 10 labels reported to the control plane. Keys and values are 1–63 characters of letters, digits, `_`, `.`, `:` or `-`, starting and ending with a letter or digit; keys may not start with `kong`, `konnect`, `insomnia`, `mesh` or `kic`.",
    },
    Key {
        name: "cluster_data_plane_purge_delay",
        default: Some("1209600"),
        kind: "integer (seconds, ≥ 60)",
        doc: "Control plane: how long a data plane that stopped reporting stays listed.",
    },
    Key {
        name: "analytics_flush_interval",
        default: Some("1"),
        kind: "number (seconds, > 0)",
        doc: "How often analytics are flushed: a data plane sends them to its control plane, a traditional node writes them to its own store.",
    },
    Key {
        name: "analytics_buffer_size_limit",
        default: Some("100000"),
        kind: "integer (> 0)",
        doc: "Analytics records a node keeps between flushes (a data plane: while the telemetry link is down); the oldest are dropped and counted beyond it.",
    },
    Key {
        name: "analytics",
        default: Some("on"),
        kind: "boolean",
        doc: "Ours, not Kong's: collect traffic analytics (calls, status classes, latencies, bytes per service, route, consumer and node). A traditional node keeps its own; a data plane sends them to its control plane. `GET /analytics` and `GET /analytics/billing` on the Admin API read them.",
    },
    Key {
        name: "analytics_component",
        default: None,
        kind: "path",
        doc: "Ours, not Kong's: a WebAssembly component (world `analytics-component` in `wit/analytics.wit`) that folds request records into aggregates instead of the bundled one. Read and compiled at start; a component that cannot be loaded stops the start.",
    },
    Key {
        name: "analytics_retention_days",
        default: Some("7"),
        kind: "integer (days, ≥ 1)",
        doc: "Ours, not Kong's: how long a traditional node or a control plane keeps per-minute analytics. Monthly billing counts are kept for good.",
    },
    Key {
        name: "declarative_config",
        default: None,
        kind: "path",
        doc: "A declarative file (`_format_version: \"3.0\"`, YAML or JSON) served by a DB-less node, or by a data plane until its control plane answers.",
    },
    Key {
        name: "declarative_config_string",
        default: None,
        kind: "YAML or JSON text",
        doc: "A declarative configuration given inline (as `KONG_DECLARATIVE_CONFIG_STRING` in containers), served as `declarative_config` would be when that is unset (Kong's order). Never printed.",
    },
    Key {
        name: "node_id",
        default: None,
        kind: "UUID",
        doc: "This node's id (the Admin API's `node_id`, what a data plane reports to its control plane). Unset: a random id made at the first start and kept in `prefix/node_id`.",
    },
    Key {
        name: "router_flavor",
        default: Some("traditional_compatible"),
        kind: "`traditional_compatible` | `traditional`",
        doc: "Kong's route matching by `paths`, `hosts`, `methods`, `headers` and `snis`: both flavours give the same answers, the bundled router's. `expressions` is refused (routes with an `expression` field are not supported).",
    },
    Key {
        name: "headers",
        default: Some("server_tokens, latency_tokens, X-Kong-Request-Id"),
        kind: "list of `off`, `server_tokens`, `latency_tokens` or header names",
        doc: "The gateway's own response headers. Proxied responses: `Via` (`1.1 gateway/VERSION`, added to the upstream's), `Server` (only when the upstream sent none), `X-Kong-Proxy-Latency` and `X-Kong-Upstream-Latency` (ms), `X-Kong-Upstream-Status`. The gateway's own answers (no route, errors, plugin exits): `Server` (replaced; removed when not listed) and `X-Kong-Response-Latency`. Both: `X-Kong-Request-Id` (the access log's `kong_request_id`). `server_tokens` is `Via` and `Server`; `latency_tokens` the latency headers; `off` first turns all of them off (a later `off` is ignored, as in Kong). `X-Kong-Admin-Latency` is on the Admin API's answers.",
    },
    Key {
        name: "headers_upstream",
        default: Some("X-Kong-Request-Id"),
        kind: "`off` | `X-Kong-Request-Id`",
        doc: "Upstream requests carry `X-Kong-Request-Id`, the request's id (replacing one the client sent).",
    },
    Key {
        name: "error_default_type",
        default: Some("text/plain"),
        kind: "`application/json` | `application/xml` | `text/html` | `text/plain`",
        doc: "The format of the gateway's error answers (a client error, an upstream failure, a failed plugin) when the request has neither an `Accept` nor a `Content-Type` naming one. `Accept` is read as Kong reads it: the type with the highest `q` wins (the first on a tie; `text/*` is plain, `application/*` and `*/*` JSON, anything else JSON). Answers Kong makes with `kong.response.error` (no route matched, `Please use HTTPS protocol`, the bundled plugins' refusals) follow `Accept`, else JSON.",
    },
    Key {
        name: "error_template_html",
        default: None,
        kind: "path",
        doc: "A template for HTML error answers instead of Kong's: the first `%s` is the message, the second the request id; `%%` is a literal `%`. Read at start: a missing file, another `%` directive or more than two `%s` stops the start.",
    },
    Key {
        name: "error_template_json",
        default: None,
        kind: "path",
        doc: "As `error_template_html`, for JSON error answers.",
    },
    Key {
        name: "error_template_xml",
        default: None,
        kind: "path",
        doc: "As `error_template_html`, for XML error answers.",
    },
    Key {
        name: "error_template_plain",
        default: None,
        kind: "path",
        doc: "As `error_template_html`, for plain-text error answers.",
    },
    Key {
        name: "upstream_keepalive_pool_size",
        default: Some("512"),
        kind: "integer (≥ 0)",
        doc: "Idle connections kept for reuse per upstream (address and TLS server name) on each proxy worker. `0` keeps none: every request opens a connection.",
    },
    Key {
        name: "upstream_keepalive_max_requests",
        default: Some("10000"),
        kind: "integer (≥ 0)",
        doc: "Requests one upstream connection serves before it is closed. `0`: any number.",
    },
    Key {
        name: "upstream_keepalive_idle_timeout",
        default: Some("60"),
        kind: "seconds (≥ 0)",
        doc: "How long an idle upstream connection is kept for reuse before it is closed. `0`: for as long as the upstream keeps it open.",
    },
    Key {
        name: "new_dns_client",
        default: Some("off"),
        kind: "boolean",
        doc: "Which of Kong's DNS key sets the proxy's resolver reads: `off` the `dns_*` keys, `on` the `resolver_*` keys (Kong's newer client: SRV only for `_service._proto.name` names, A before AAAA, empty answers cached as errors). Setting a key of the other set is warned about. Either way one cache serves every worker.",
    },
    Key {
        name: "dns_resolver",
        default: None,
        kind: "list of `ip[:port]`",
        doc: "Name servers the proxy asks for upstream host names (services' hosts, targets, SRV targets); port 53 when none is given, IPv6 as `[::1]:53`. Unset: those of `/etc/resolv.conf`, whose `search`, `domain`, `ndots`, `timeout` and `attempts` are always used. The cluster link to the control plane still uses the system resolver.",
    },
    Key {
        name: "dns_hostsfile",
        default: Some("/etc/hosts"),
        kind: "path",
        doc: "The hosts file, read once at start; its names win over DNS. Must exist.",
    },
    Key {
        name: "dns_order",
        default: Some("LAST,SRV,A,CNAME"),
        kind: "list of `LAST`, `SRV`, `A`, `AAAA`, `CNAME`",
        doc: "The record types tried in turn for a name. `LAST` is the type that last worked for it. `SRV` gives a target name and port (the lowest priority, spread by weight); `A`/`AAAA` addresses, taken in turn; `CNAME` another name.",
    },
    Key {
        name: "dns_valid_ttl",
        default: None,
        kind: "seconds",
        doc: "Caches every answer this long instead of its TTL.",
    },
    Key {
        name: "dns_stale_ttl",
        default: Some("3600"),
        kind: "seconds",
        doc: "How long an answer past its TTL is still served while one background query refreshes it; a failed refresh keeps it and is retried after `dns_error_ttl`. This is what keeps known upstreams reachable through a DNS outage.",
    },
    Key {
        name: "dns_cache_size",
        default: Some("10000"),
        kind: "integer (≥ 1)",
        doc: "Answers kept (one per name and record type, errors and not-found included); the least recently used goes first.",
    },
    Key {
        name: "dns_not_found_ttl",
        default: Some("30"),
        kind: "seconds",
        doc: "How long \"no such name\" and empty answers are cached.",
    },
    Key {
        name: "dns_error_ttl",
        default: Some("1"),
        kind: "seconds",
        doc: "How long a failed query (timeout, server failure) is cached.",
    },
    Key {
        name: "dns_no_sync",
        default: Some("off"),
        kind: "boolean",
        doc: "`on`: every cache miss sends its own query; `off`: concurrent misses for one name and type wait for one query.",
    },
    Key {
        name: "resolver_address",
        default: None,
        kind: "list of `ip[:port]`",
        doc: "`dns_resolver` when `new_dns_client = on`.",
    },
    Key {
        name: "resolver_hosts_file",
        default: Some("/etc/hosts"),
        kind: "path",
        doc: "`dns_hostsfile` when `new_dns_client = on`.",
    },
    Key {
        name: "resolver_family",
        default: Some("A,SRV"),
        kind: "list of `A`, `AAAA`, `SRV`",
        doc: "With `new_dns_client = on`: the record types asked. SRV only for names of the `_service._proto.name` form, else A, then AAAA.",
    },
    Key {
        name: "resolver_valid_ttl",
        default: None,
        kind: "seconds",
        doc: "`dns_valid_ttl` when `new_dns_client = on`.",
    },
    Key {
        name: "resolver_error_ttl",
        default: Some("1"),
        kind: "seconds",
        doc: "With `new_dns_client = on`: how long failed queries and empty answers are cached.",
    },
    Key {
        name: "resolver_stale_ttl",
        default: Some("3600"),
        kind: "seconds",
        doc: "`dns_stale_ttl` when `new_dns_client = on`.",
    },
    Key {
        name: "resolver_lru_cache_size",
        default: Some("10000"),
        kind: "integer (≥ 1)",
        doc: "`dns_cache_size` when `new_dns_client = on`.",
    },
    Key {
        name: "vaults",
        default: Some("bundled"),
        kind: "`bundled` | `env` | `off`",
        doc: "The vaults `{vault://...}` references are resolved with: Kong's `env` vault (`bundled` is it here; Kong's other vaults are refused by name). `off` refuses every reference.",
    },
    Key {
        name: "vault_env_prefix",
        default: None,
        kind: "string",
        doc: "Put before the name of every env vault reference: with `SECRET_`, `{vault://env/db-pass}` reads `SECRET_DB_PASS`. A reference `{vault://env/NAME}` reads the variable `NAME` in upper case with `-` as `_`; `{vault://env/NAME/KEY}` the string field `KEY` of the JSON object it holds. References work in any kong.conf value (or item of a list value), from the file or a `KONG_*` variable. They are resolved when the configuration is read; a missing variable stops the start naming the key, and errors show the reference, never the secret. Certificates' `cert`, `key`, `cert_alt` and `key_alt` (Kong's referenceable entity fields) take references too: stored and shown as written, resolved by each node that serves them (a data plane in its own environment); a traditional node refuses a certificate whose reference it cannot resolve, a DB-less node or data plane refuses the configuration.",
    },
    Key {
        name: "ssl_cipher_suite",
        default: Some("intermediate"),
        kind: "`modern` | `intermediate` | `custom`",
        doc: "What the proxy's `ssl` listeners offer, Mozilla's profiles as Kong has them: `modern` is TLS 1.3 only; `intermediate` TLS 1.2 and 1.3 with ECDHE and AES-GCM or ChaCha20-Poly1305 (Kong's list without its DHE suites, which rustls does not have); `custom` TLS 1.3 and the TLS 1.2 suites of `ssl_ciphers`. `ssl_protocols` narrows any of them. Kong's `old` and `fips` are refused: rustls has no TLS 1.0/1.1, CBC or FIPS module.",
    },
    Key {
        name: "ssl_ciphers",
        default: None,
        kind: "OpenSSL cipher names, `:`-separated",
        doc: "With `ssl_cipher_suite = custom`: the TLS 1.2 suites offered, in order, among ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES256-GCM-SHA384, ECDHE-RSA-AES256-GCM-SHA384, ECDHE-ECDSA-CHACHA20-POLY1305, ECDHE-RSA-CHACHA20-POLY1305; any other name is refused. TLS 1.3 suites are always offered (as OpenSSL's `ssl_ciphers` leaves them alone). Ignored, with a warning, with another suite.",
    },
    Key {
        name: "ssl_protocols",
        default: Some("TLSv1.2 TLSv1.3"),
        kind: "`TLSv1.2`, `TLSv1.3`",
        doc: "The TLS versions the proxy's `ssl` listeners speak, within what `ssl_cipher_suite` allows. `TLSv1` and `TLSv1.1` are refused (rustls does not speak them).",
    },
    Key {
        name: "ssl_prefer_server_ciphers",
        default: Some("on"),
        kind: "boolean",
        doc: "With `ssl_cipher_suite = custom`: the order of `ssl_ciphers` wins over the client's. `modern` and `intermediate` let the client choose, as in Kong.",
    },
    Key {
        name: "ssl_session_tickets",
        default: Some("on"),
        kind: "boolean",
        doc: "Issue stateless TLS session tickets (TLS 1.2 and 1.3; keys rotated every 12 hours). `off`: sessions resume only from the server's cache.",
    },
    Key {
        name: "ssl_session_cache_size",
        default: Some("10m"),
        kind: "size",
        doc: "The server's cache of TLS sessions for resumption, sized as nginx sizes it: about 4000 sessions per megabyte.",
    },
    Key {
        name: "ssl_session_timeout",
        default: Some("1d"),
        kind: "time (`s`, `m`, `h`, `d`; 1s to 7d)",
        doc: "How long a TLS session may be resumed, from a ticket (its lifetime hint) or the server's cache: tickets and cached sessions carry the time they were made and are refused once older; ticket keys are replaced every half of it.",
    },
    Key {
        name: "ssl_cert",
        default: None,
        kind: "list of paths or inline PEM",
        doc: "The proxy's default certificates: served by `ssl` listeners when no certificate entity matches the SNI, instead of the self-signed one made in `prefix/ssl`. Several (one per key type, e.g. RSA and ECDSA): each client gets the first it can verify.",
    },
    Key {
        name: "ssl_cert_key",
        default: None,
        kind: "list of paths or inline PEM",
        doc: "The private keys of `ssl_cert`, in the same order. Never logged.",
    },
    Key {
        name: "client_ssl",
        default: Some("off"),
        kind: "boolean",
        doc: "Present `client_ssl_cert` to `https` upstreams that ask for a client certificate (mutual TLS to upstreams).",
    },
    Key {
        name: "client_ssl_cert",
        default: None,
        kind: "path or inline PEM",
        doc: "The client certificate (and chain) `client_ssl` presents, to upstreams of services without a `client_certificate` of their own.",
    },
    Key {
        name: "client_ssl_cert_key",
        default: None,
        kind: "path or inline PEM",
        doc: "The private key of `client_ssl_cert`; set both or neither. Never logged.",
    },
    Key {
        name: "allow_debug_header",
        default: Some("off"),
        kind: "boolean",
        doc: "Answer a request carrying `Kong-Debug: 1` with `Kong-Route-Id`, `Kong-Route-Name`, `Kong-Service-Id` and `Kong-Service-Name` response headers.",
    },
    Key {
        name: "plugins",
        default: Some("bundled"),
        kind: "list of `bundled`, `off` or plugin names",
        doc: "The plugins this node offers. A data plane reports them (with their versions) to its control plane, which sends configuration only to data planes that offer every plugin the configuration uses. `bundled` stands for the plugins built into the gateway (listed in docs/plugins.md: `acl`, `basic-auth`, `correlation-id`, `cors`, `ip-restriction`, `jwt`, `key-auth`, `prometheus`, `rate-limiting`, `request-size-limiting`, `request-termination`, `request-transformer`, `response-transformer`); any other name must be a component `NAME.wasm` in `wasm_plugins_path`.",
    },
    Key {
        name: "wasm_plugins_path",
        default: None,
        kind: "directory",
        doc: "Where user plugins live: each `NAME.wasm` (a component of the `plugin-component` world in `wit/plugin.wit`) is plugin `NAME`, run once `plugins` names it. Read and compiled at start.",
    },
    Key {
        name: "wasm_cache_path",
        default: None,
        kind: "directory",
        doc: "Where the node keeps compiled WebAssembly components (its compile cache), created 0700 when missing. Nodes that share it (the same user, the same gateway build) compile each component once between them; an entry that is damaged or from another build is ignored and rebuilt, never trusted. Unset: `wasm-cache` in `prefix`.",
    },
    Key {
        name: "wasm_plugin_timeout",
        default: Some("100"),
        kind: "milliseconds",
        doc: "The CPU time one plugin call (one phase of one request) may use. A call that runs longer is stopped, and only its request fails (500).",
    },
    Key {
        name: "wasm_plugin_max_memory",
        default: Some("64m"),
        kind: "size",
        doc: "The linear memory one plugin instance may grow to. An instance that needs more fails its request (500) and is replaced.",
    },
    Key {
        name: "router_component",
        default: None,
        kind: "path",
        doc: "A WebAssembly component (world `router-component` in `wit/router.wit`) that makes the route decisions instead of the bundled router. Read and compiled at start; a component that cannot be loaded stops the start.",
    },
    Key {
        name: "lmdb_map_size",
        default: Some("2048m"),
        kind: "size (`k`, `m`, `g` suffixes)",
        doc: "The largest the LMDB store (or a data plane's cache) may grow.",
    },
    Key {
        name: "admin_allowed_hosts",
        default: None,
        kind: "list of host names (`*.example.com` for any name under it)",
        doc: "Names the Admin API answers to, besides IP addresses, `localhost` and the host names in `admin_listen`. A request for any other `Host` gets 403: a guard against DNS rebinding, where a web page points its own name at your Admin API.",
    },
    Key {
        name: "nginx_admin_client_max_body_size",
        default: Some("10m"),
        kind: "size (`k`, `m`, `g` suffixes)",
        doc: "Largest request body the Admin API reads (413 beyond it), `POST /config` included. Kong's key and default.",
    },
    Key {
        name: "admin_ssl_cert",
        default: None,
        kind: "path or inline PEM",
        doc: "The certificate (and chain) of `ssl` listeners in `admin_listen`. Unset: a self-signed certificate made once under `prefix/ssl`.",
    },
    Key {
        name: "admin_ssl_cert_key",
        default: None,
        kind: "path or inline PEM",
        doc: "The private key of `admin_ssl_cert`; set both or neither. Never logged.",
    },
    Key {
        name: "status_ssl_cert",
        default: None,
        kind: "path or inline PEM",
        doc: "The certificate (and chain) of `ssl` listeners in `status_listen`. Unset: a self-signed certificate made once under `prefix/ssl`.",
    },
    Key {
        name: "status_ssl_cert_key",
        default: None,
        kind: "path or inline PEM",
        doc: "The private key of `status_ssl_cert`; set both or neither. Never logged.",
    },
    Key {
        name: "admin_gui_ssl_cert",
        default: None,
        kind: "path or inline PEM",
        doc: "The certificate (and chain) of `ssl` listeners in `admin_gui_listen`. Unset: a self-signed certificate made once under `prefix/ssl`.",
    },
    Key {
        name: "admin_gui_ssl_cert_key",
        default: None,
        kind: "path or inline PEM",
        doc: "The private key of `admin_gui_ssl_cert`; set both or neither. Never logged.",
    },
];

pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// The known key closest to a misspelt one, when it is close enough to be a likely typo.
pub fn suggest(name: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|k| (strsim::damerau_levenshtein(name, k.name), k.name))
        .filter(|&(distance, known)| distance <= 2 + known.len() / 12)
        .min()
        .map(|(_, known)| known)
}

/// The metadata name of the built-in defaults in the figment merge.
pub const DEFAULTS_SOURCE: &str = "built-in defaults";

/// Kong's defaults as the lowest figment layer.
pub struct Defaults;

impl Provider for Defaults {
    fn metadata(&self) -> Metadata {
        Metadata::named(DEFAULTS_SOURCE)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let dict: Dict =
            KEYS.iter().filter_map(|k| k.default.map(|d| (k.name.to_string(), Value::from(d.to_string())))).collect();
        Ok(Profile::Default.collect(dict))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_suggest_the_known_key() {
        assert_eq!(suggest("cluster_contol_plane"), Some("cluster_control_plane"));
        assert_eq!(suggest("proxy_lisen"), Some("proxy_listen"));
        assert_eq!(suggest("rol"), Some("role"));
        assert_eq!(suggest("something_else_entirely"), None);
    }

    #[test]
    fn keys_are_unique_and_not_also_unhonoured() {
        for (i, k) in KEYS.iter().enumerate() {
            assert!(KEYS[i + 1..].iter().all(|o| o.name != k.name), "{} twice", k.name);
            assert!(super::super::kong_keys::find(k.name).is_none(), "{} is both honoured and not", k.name);
        }
    }
}
