//! kong.conf and `KONG_*` environment variables become one typed [`Settings`]. Values are merged
//! with figment (built-in defaults < file < environment); every value is then parsed into its type,
//! and every problem found is reported at once with where the value came from.

pub mod client;
mod dns;
pub mod env;
pub mod keys;
pub mod kong_keys;
pub mod listen;
pub mod proxy_tls;
pub mod syntax;
pub mod values;
pub mod vault;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;

pub use crate::tls::{PemSource, TrustSource};
pub use client::{ClientLimits, ClientTrust};
pub use env::Environment;
pub use listen::ListenSpec;
pub use syntax::ConfFile;
pub use values::{
    AccessLogSpec, ClusterMtls, ClusterOcsp, Credentials, Database, ErrorTemplates, ErrorType, HostPort, InlineConfig,
    Keepalive, LogLevel, ProxyScheme, ProxyServer, ResponseHeaders, Role,
};

/// Where Kong looks for a configuration file when none is given.
pub const DEFAULT_PATHS: &[&str] = &["/etc/kong/kong.conf", "/etc/kong.conf"];

/// The node's configuration, typed. Nothing downstream re-checks these values.
#[derive(Debug, Clone)]
pub struct Settings {
    pub role: Role,
    pub database: Database,
    pub prefix: PathBuf,
    pub log_level: LogLevel,
    pub proxy_listen: Vec<ListenSpec>,
    pub admin_listen: Vec<ListenSpec>,
    /// The console (`admin_gui_listen`); never served on a data plane.
    pub admin_gui_listen: Vec<ListenSpec>,
    pub status_listen: Vec<ListenSpec>,
    pub cluster_listen: Vec<ListenSpec>,
    pub cluster_telemetry_listen: Vec<ListenSpec>,
    pub cluster_control_plane: HostPort,
    pub cluster_telemetry_endpoint: HostPort,
    pub cluster_mtls: ClusterMtls,
    pub cluster_cert: Option<PemSource>,
    pub cluster_cert_key: Option<PemSource>,
    pub cluster_ca_cert: Option<PemSource>,
    pub cluster_server_name: Option<String>,
    pub cluster_telemetry_server_name: Option<String>,
    pub cluster_ocsp: ClusterOcsp,
    pub cluster_use_proxy: bool,
    pub proxy_server: Option<ProxyServer>,
    pub proxy_server_ssl_verify: bool,
    pub lua_ssl_trusted_certificate: Vec<TrustSource>,
    pub lua_ssl_verify_depth: u64,
    pub cluster_max_payload: u64,
    pub cluster_dp_labels: BTreeMap<String, String>,
    pub cluster_data_plane_purge_delay: Duration,
    pub analytics_flush_interval: Duration,
    pub analytics_buffer_size_limit: u64,
    /// Whether the node collects analytics (ours: `analytics`).
    pub analytics: bool,
    pub analytics_component: Option<PathBuf>,
    pub analytics_retention_days: u64,
    pub declarative_config: Option<PathBuf>,
    /// A declarative configuration given inline, used when `declarative_config` is unset.
    pub declarative_config_string: Option<InlineConfig>,
    /// A fixed node id (else one made once and kept in `prefix/node_id`).
    pub node_id: Option<uuid::Uuid>,
    pub lmdb_map_size: u64,
    pub allow_debug_header: bool,
    /// Which of the gateway's own headers responses carry (`headers`).
    pub headers: ResponseHeaders,
    /// Whether upstream requests carry `X-Kong-Request-Id` (`headers_upstream`).
    pub upstream_request_id: bool,
    /// How the gateway words its own error answers.
    pub error_templates: ErrorTemplates,
    /// How upstream connections are kept for reuse.
    pub upstream_keepalive: Keepalive,
    /// How upstream host names are resolved and cached (`dns_*`, `resolver_*`).
    pub dns: crate::dns::Settings,
    /// The vaults `{vault://...}` references in entity fields are resolved with.
    pub vaults: vault::Vaults,
    /// What the proxy's `ssl` listeners offer and serve by default.
    pub proxy_tls: proxy_tls::ProxyTls,
    /// The certificate and key presented to upstreams that ask for one (`client_ssl`).
    pub client_ssl: Option<(PemSource, PemSource)>,
    /// Names the Admin API answers to besides IP literals, `localhost` and its listen hosts.
    pub admin_allowed_hosts: Vec<String>,
    /// `nginx_admin_client_max_body_size`, in bytes.
    pub admin_max_body: u64,
    /// The certificate and key of `ssl` Admin API listeners (both or neither).
    pub admin_ssl: Option<(PemSource, PemSource)>,
    /// The certificate and key of `ssl` status listeners (both or neither).
    pub status_ssl: Option<(PemSource, PemSource)>,
    /// The certificate and key of `ssl` console listeners (both or neither).
    pub admin_gui_ssl: Option<(PemSource, PemSource)>,
    /// The plugins this node offers (`bundled` expanded).
    pub plugins: Vec<String>,
    /// Where user plugins (`NAME.wasm`) live.
    pub wasm_plugins_path: Option<PathBuf>,
    /// Where compiled components are kept (else `<prefix>/wasm-cache`).
    pub wasm_cache_path: Option<PathBuf>,
    /// Proxy worker threads (`nginx_worker_processes`); `None` is `auto`: one per core.
    pub worker_processes: Option<usize>,
    /// Client connections each worker serves at once (`nginx_events_worker_connections`); `None`
    /// is `auto`: the open-file limit found at start, from 1024 to 16384.
    pub worker_connections: Option<usize>,
    /// Open files per worker (`nginx_main_worker_rlimit_nofile`); `None` is `auto`, as above.
    pub worker_rlimit_nofile: Option<u64>,
    /// Access logs of the proxy, the Admin API and the status API; `None` is `off`.
    pub proxy_access_log: Option<AccessLogSpec>,
    pub admin_access_log: Option<AccessLogSpec>,
    pub status_access_log: Option<AccessLogSpec>,
    pub admin_gui_access_log: Option<AccessLogSpec>,
    /// Where the node's own messages go: the proxy's and everything else, the Admin API's, the
    /// status API's and the console's (see `logs::error`).
    pub proxy_error_log: crate::logs::Destination,
    pub admin_error_log: crate::logs::Destination,
    pub status_error_log: crate::logs::Destination,
    pub admin_gui_error_log: crate::logs::Destination,
    /// The CPU time one plugin call may use.
    pub wasm_plugin_timeout: Duration,
    /// The linear memory one plugin instance may grow to, in bytes.
    pub wasm_plugin_max_memory: u64,
    /// What the proxy accepts from clients: timeouts and sizes.
    pub client_limits: ClientLimits,
    /// Whose forwarding headers the proxy believes.
    pub client_trust: ClientTrust,
    /// A router component to use instead of the bundled one.
    pub router_component: Option<PathBuf>,
    /// The file these settings were read from, if any.
    pub source: Option<PathBuf>,
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File {
        path: PathBuf,
        line: usize,
    },
    /// The whole file, for problems that belong to no single line.
    FileAsWhole {
        path: PathBuf,
    },
    Env {
        var: String,
    },
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::FileAsWhole { path } => write!(f, "{}", path.display()),
            Origin::Env { var } => write!(f, "environment variable {var}"),
            Origin::Default => f.write_str("built-in defaults"),
        }
    }
}

/// A value that cannot be used, or a rule the settings break together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub origin: Origin,
    pub key: String,
    /// The offending value as safe to print (secrets redacted); `None` when the key is unset.
    pub value: Option<String>,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}: {} = \"{value}\": {}", self.origin, self.key, self.reason),
            None if self.key.is_empty() => write!(f, "{}: {}", self.origin, self.reason),
            None => write!(f, "{}: {}: {}", self.origin, self.key, self.reason),
        }
    }
}

/// Something worth telling the user that does not stop the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub origin: Origin,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}", render_problems(problems))]
    Invalid { problems: Vec<Problem>, warnings: Vec<Warning> },
}

fn render_problems(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    format!(
        "invalid configuration ({} problem{}):\n{}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        lines.join("\n")
    )
}

/// The file to read when the command line names none: the first of [`DEFAULT_PATHS`] that exists.
pub fn default_file() -> Option<PathBuf> {
    DEFAULT_PATHS.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Reads `file` (if any) and the process environment.
pub fn load(file: Option<&Path>) -> Result<Loaded, ConfError> {
    let conf = match file {
        Some(path) => {
            Some(ConfFile::read(path).map_err(|source| ConfError::Read { path: path.to_path_buf(), source })?)
        }
        None => None,
    };
    load_from(conf, Environment::from_process())
}

/// Merges and checks already-read sources; what [`load`] does after reading.
pub fn load_from(file: Option<ConfFile>, env: Environment) -> Result<Loaded, ConfError> {
    let mut figment = Figment::from(keys::Defaults);
    if let Some(file) = &file {
        figment = figment.merge(file.clone());
    }
    let vars = env.all.clone();
    figment = figment.merge(env);
    let raw: BTreeMap<String, String> = figment.extract().map_err(|e| ConfError::Invalid {
        problems: vec![Problem { origin: Origin::Default, key: String::new(), value: None, reason: e.to_string() }],
        warnings: vec![],
    })?;
    let mut cx = Checker {
        figment,
        file: file.as_ref(),
        raw,
        problems: Vec::new(),
        warnings: Vec::new(),
        references: BTreeMap::new(),
        vaults: vault::Vaults::default(),
    };
    cx.resolve_references(vars);
    cx.check_file();
    cx.check_kong_keys();
    let settings = cx.settings();
    cx.check_roles(&settings);
    cx.check_plugins(&settings);
    if cx.problems.is_empty() {
        Ok(Loaded { settings, warnings: cx.warnings })
    } else {
        Err(ConfError::Invalid { problems: cx.problems, warnings: cx.warnings })
    }
}

struct Checker<'a> {
    figment: Figment,
    file: Option<&'a ConfFile>,
    raw: BTreeMap<String, String>,
    problems: Vec<Problem>,
    warnings: Vec<Warning>,
    /// Keys whose value was written as vault references: what was written, printed in place of
    /// the value.
    references: BTreeMap<String, String>,
    vaults: vault::Vaults,
}

impl Checker<'_> {
    fn origin(&self, key: &str) -> Origin {
        let source = self.figment.find_metadata(key).map(|m| m.name.as_ref());
        match (source, self.file) {
            (Some(syntax::FILE_SOURCE), Some(file)) => match file.get(key) {
                Some(entry) => Origin::File { path: file.path.clone(), line: entry.line },
                None => Origin::FileAsWhole { path: file.path.clone() },
            },
            (Some(env::ENV_SOURCE), _) => Origin::Env { var: env::var_name(key) },
            _ => Origin::Default,
        }
    }

    /// The trimmed value of `key`; an empty value means unset, as in Kong.
    fn value(&self, key: &str) -> Option<String> {
        self.raw.get(key).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    fn problem(&mut self, key: &str, value: Option<&str>, reason: impl Into<String>) {
        let value = match self.references.get(key) {
            Some(written) => value.map(|_| written.clone()),
            None => value.map(|v| printable(key, v)),
        };
        self.problems.push(Problem { origin: self.origin(key), key: key.to_string(), value, reason: reason.into() });
    }

    /// A problem with `key` caused by the value of `cause` (for example a role that needs a key left
    /// unset): it points at where `cause` was set.
    fn problem_because(&mut self, cause: &str, key: &str, reason: impl Into<String>) {
        self.problems.push(Problem {
            origin: self.origin(cause),
            key: key.to_string(),
            value: None,
            reason: reason.into(),
        });
    }

    /// Whether `key` already has a problem, so rules about it do not report it twice.
    fn failed(&self, key: &str) -> bool {
        self.problems.iter().any(|p| p.key == key)
    }

    fn optional<T>(&mut self, key: &str, parse: impl Fn(&str) -> Result<T, String>) -> Option<T> {
        let value = self.value(key)?;
        match parse(&value) {
            Ok(t) => Some(t),
            Err(reason) => {
                self.problem(key, Some(&value), reason);
                None
            }
        }
    }

    /// A key with a built-in default that must not be left empty. On a problem, the default stands
    /// in so checking can go on and report everything.
    fn required<T>(&mut self, key: &str, parse: impl Fn(&str) -> Result<T, String>) -> T {
        let default = || {
            let text = keys::find(key).and_then(|k| k.default).expect("required keys have a default");
            parse(text).expect("built-in defaults parse")
        };
        if self.value(key).is_none() {
            if !self.failed(key) {
                self.problem(key, None, "must not be empty");
            }
            return default();
        }
        self.optional(key, &parse).unwrap_or_else(default)
    }

    /// A key with a built-in default that may be left empty: empty means the default.
    fn defaulted<T>(&mut self, key: &str, parse: impl Fn(&str) -> Result<T, String>) -> T {
        let default = || {
            let text = keys::find(key).and_then(|k| k.default).expect("defaulted keys have a default");
            parse(text).expect("built-in defaults parse")
        };
        self.optional(key, &parse).unwrap_or_else(default)
    }

    /// Kong's proxy TLS settings as one [`proxy_tls::ProxyTls`]: the suite decides (Mozilla's
    /// `modern`, `intermediate`), `ssl_protocols` narrows it, `custom` takes `ssl_ciphers` and
    /// `ssl_prefer_server_ciphers`; `ssl_cert`/`ssl_cert_key` pair up one by one.
    fn proxy_tls(&mut self) -> proxy_tls::ProxyTls {
        use proxy_tls::{CipherSuite, ProxyTls, TLS12_SUITES};
        let suite = self.required("ssl_cipher_suite", proxy_tls::parse_cipher_suite);
        let (p12, p13) = self.required("ssl_protocols", proxy_tls::parse_protocols);
        let prefer = self.required("ssl_prefer_server_ciphers", values::parse_bool);
        let ciphers = self.optional("ssl_ciphers", proxy_tls::parse_ciphers);
        let mut tls = ProxyTls::default();
        match suite {
            CipherSuite::Modern => {
                (tls.tls12, tls.tls13, tls.tls12_suites) = (false, p13, Vec::new());
            }
            CipherSuite::Intermediate => {
                (tls.tls12, tls.tls13, tls.tls12_suites) = (p12, p13, TLS12_SUITES.to_vec());
            }
            CipherSuite::Custom => {
                if ciphers.is_none() && !self.failed("ssl_ciphers") {
                    self.problem_because(
                        "ssl_cipher_suite",
                        "ssl_ciphers",
                        "ssl_cipher_suite = custom needs ssl_ciphers",
                    );
                }
                let suites = ciphers.clone().unwrap_or_default();
                (tls.tls12, tls.tls13, tls.prefer_server_ciphers) = (p12 && !suites.is_empty(), p13, prefer);
                tls.tls12_suites = suites;
            }
        }
        if suite != CipherSuite::Custom && ciphers.is_some() {
            self.warnings.push(Warning {
                origin: self.origin("ssl_ciphers"),
                message: "ssl_ciphers has no effect unless ssl_cipher_suite = custom".into(),
            });
        }
        if !tls.tls12 && !tls.tls13 && !self.failed("ssl_protocols") {
            let value = self.value("ssl_protocols");
            self.problem(
                "ssl_protocols",
                value.as_deref(),
                "leaves no protocol with this ssl_cipher_suite (modern is TLSv1.3 only; custom needs TLS 1.2 suites in ssl_ciphers for TLSv1.2)",
            );
        }
        tls.session_tickets = self.required("ssl_session_tickets", values::parse_bool);
        tls.session_cache = proxy_tls::sessions_in(self.required("ssl_session_cache_size", values::parse_size));
        tls.session_timeout = self.required("ssl_session_timeout", proxy_tls::parse_session_timeout);
        tls.default_certificates = self.default_certificates();
        tls
    }

    /// `client_ssl` with its pair: on needs both; a pair without it is warned about (it would
    /// present nothing).
    fn client_ssl(&mut self) -> Option<(PemSource, PemSource)> {
        let on = self.required("client_ssl", values::parse_bool);
        let pair = self.tls_pair("client_ssl_cert", "client_ssl_cert_key");
        match (on, pair) {
            (true, Some(pair)) => Some(pair),
            (true, None) => {
                if !self.failed("client_ssl_cert") && !self.failed("client_ssl_cert_key") {
                    self.problem_because(
                        "client_ssl",
                        "client_ssl_cert",
                        "client_ssl = on needs client_ssl_cert and client_ssl_cert_key",
                    );
                }
                None
            }
            (false, Some(_)) => {
                self.warnings.push(Warning {
                    origin: self.origin("client_ssl_cert"),
                    message: "client_ssl_cert has no effect unless client_ssl = on".into(),
                });
                None
            }
            (false, None) => None,
        }
    }

    /// `ssl_cert` and `ssl_cert_key`: lists of the same length, each key its certificate's.
    fn default_certificates(&mut self) -> Vec<(PemSource, PemSource)> {
        let certs = self.optional("ssl_cert", |v| {
            let list = proxy_tls::parse_pem_list(v);
            list.iter().try_for_each(|s| s.load_certs().map(|_| ()))?;
            Ok(list)
        });
        let keys = self.optional("ssl_cert_key", |v| {
            let list = proxy_tls::parse_pem_list(v);
            list.iter().try_for_each(|s| s.load_key().map(|_| ()))?;
            Ok(list)
        });
        match (certs, keys) {
            (Some(certs), Some(keys)) if certs.len() == keys.len() => {
                let pairs: Vec<(PemSource, PemSource)> = certs.into_iter().zip(keys).collect();
                for (i, (cert, key)) in pairs.iter().enumerate() {
                    if let Err(reason) = crate::certs::check_pair(cert, key) {
                        self.problem("ssl_cert_key", None, format!("item {}: {reason}", i + 1));
                    }
                }
                pairs
            }
            (Some(certs), Some(keys)) => {
                self.problem(
                    "ssl_cert_key",
                    None,
                    format!(
                        "ssl_cert lists {} certificates and ssl_cert_key {} keys: one key per certificate",
                        certs.len(),
                        keys.len()
                    ),
                );
                Vec::new()
            }
            (Some(_), None) if !self.failed("ssl_cert_key") => {
                self.problem_because("ssl_cert", "ssl_cert_key", "ssl_cert is set: set ssl_cert_key too");
                Vec::new()
            }
            (None, Some(_)) if !self.failed("ssl_cert") => {
                self.problem_because("ssl_cert_key", "ssl_cert", "ssl_cert_key is set: set ssl_cert too");
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// A certificate and its key for a TLS listener: both set and matching, or neither.
    fn tls_pair(&mut self, cert_key: &str, key_key: &str) -> Option<(PemSource, PemSource)> {
        let cert = self.optional(cert_key, |v| {
            let source = PemSource::parse(v);
            source.load_certs().map(|_| source)
        });
        let key = self.optional(key_key, |v| {
            let source = PemSource::parse(v);
            source.load_key().map(|_| source)
        });
        match (cert, key) {
            (Some(cert), Some(key)) => match crate::certs::check_pair(&cert, &key) {
                Ok(()) => Some((cert, key)),
                Err(reason) => {
                    self.problem(key_key, None, reason);
                    None
                }
            },
            (Some(_), None) if !self.failed(key_key) => {
                self.problem_because(cert_key, key_key, format!("{cert_key} is set: set {key_key} too"));
                None
            }
            (None, Some(_)) if !self.failed(cert_key) => {
                self.problem_because(key_key, cert_key, format!("{key_key} is set: set {cert_key} too"));
                None
            }
            _ => None,
        }
    }

    fn check_file(&mut self) {
        let Some(file) = self.file else { return };
        for error in &file.errors {
            self.problems.push(Problem {
                origin: Origin::File { path: file.path.clone(), line: error.line },
                key: String::new(),
                value: None,
                reason: format!("{}: `{}`", error.reason, error.text),
            });
        }
        for entry in &file.entries {
            let origin = Origin::File { path: file.path.clone(), line: entry.line };
            if keys::find(&entry.key).is_some() {
                continue;
            }
            if kong_keys::find(&entry.key).is_some() {
                // Warned about (or refused) with its reason by `check_kong_keys`, from a file or
                // the environment alike.
                continue;
            }
            let message = if let Some(reason) = kong_keys::family(&entry.key) {
                format!("{} does not apply here: {reason}; ignored", entry.key)
            } else if let Some(known) = keys::suggest(&entry.key) {
                format!("unknown key {} (did you mean {known}?); ignored", entry.key)
            } else {
                format!("unknown key {}; ignored", entry.key)
            };
            self.warnings.push(Warning { origin, message });
        }
        for (key, first, last) in file.duplicates() {
            self.warnings.push(Warning {
                origin: Origin::File { path: file.path.clone(), line: last },
                message: format!("{key} is also set on line {first}; this line wins"),
            });
        }
    }

    /// Resolves `{vault://...}` references in every value (a whole value, or items of a list)
    /// with the env vault (`vaults`, `vault_env_prefix`), keeping what was written for messages.
    fn resolve_references(&mut self, vars: Vec<(String, String)>) {
        let env = self.required("vaults", vault::parse_vaults);
        let env_prefix = self.value("vault_env_prefix").unwrap_or_default();
        self.vaults = vault::Vaults { env, env_prefix, vars };
        let written: Vec<(String, String)> = self
            .raw
            .iter()
            .filter(|(_, v)| v.contains("{vault://"))
            .map(|(k, v)| (k.clone(), v.trim().to_string()))
            .collect();
        for (key, value) in written {
            if key == "vaults" || key == "vault_env_prefix" {
                self.problem(&key, Some(&value), "the vault settings themselves cannot be references");
                continue;
            }
            self.references.insert(key.clone(), value.clone());
            let resolved: Result<String, vault::VaultError> = if vault::is_reference(&value) {
                self.vaults.value_of(&value)
            } else {
                value
                    .split(',')
                    .map(|item| self.vaults.value_of(item.trim()))
                    .collect::<Result<Vec<String>, _>>()
                    .map(|items| items.join(", "))
            };
            match resolved {
                Ok(resolved) => {
                    self.raw.insert(key, resolved);
                }
                Err(error) => {
                    self.problem(&key, Some(&value), error.to_string());
                    self.raw.remove(&key);
                }
            }
        }
    }

    /// Kong's keys the gateway does not honour: each set one is warned about once with its reason;
    /// where ignoring a value would fail open, a value other than Kong's default is refused.
    fn check_kong_keys(&mut self) {
        for key in kong_keys::KONG_KEYS {
            if !self.raw.contains_key(key.name) {
                continue;
            }
            let value = self.value(key.name);
            match (key.handling, value) {
                (kong_keys::Handling::LaterDefaultOnly, Some(value)) if !kong_keys::is_default(key, &value) => {
                    let default =
                        if key.default.is_empty() { "unset".to_string() } else { format!("`{}`", key.default) };
                    self.problem(
                        key.name,
                        Some(&value),
                        format!("{}; until it is, only Kong's default ({default}) is accepted", key.reason),
                    );
                }
                (kong_keys::Handling::NotApplicable, _) => self.warnings.push(Warning {
                    origin: self.origin(key.name),
                    message: format!("{} does not apply here: {}; ignored", key.name, key.reason),
                }),
                _ => self.warnings.push(Warning {
                    origin: self.origin(key.name),
                    message: format!("{}: {}; ignored", key.name, key.reason),
                }),
            }
        }
    }

    fn settings(&mut self) -> Settings {
        use values::*;
        let prefix = self.required("prefix", |v| Ok(PathBuf::from(v)));
        let prefix = std::path::absolute(&prefix).unwrap_or(prefix);
        use crate::logs::Format;
        let proxy_access_log = self.required("proxy_access_log", |v| parse_access_log(v, &prefix, Format::Kong));
        let admin_access_log = self.required("admin_access_log", |v| parse_access_log(v, &prefix, Format::Combined));
        let status_access_log = self.required("status_access_log", |v| parse_access_log(v, &prefix, Format::Combined));
        let admin_gui_access_log =
            self.required("admin_gui_access_log", |v| parse_access_log(v, &prefix, Format::Combined));
        let proxy_error_log = self.required("proxy_error_log", |v| parse_error_log(v, &prefix));
        let admin_error_log = self.required("admin_error_log", |v| parse_error_log(v, &prefix));
        let status_error_log = self.required("status_error_log", |v| parse_error_log(v, &prefix));
        let admin_gui_error_log = self.required("admin_gui_error_log", |v| parse_error_log(v, &prefix));
        let role = self.required("role", parse_role);
        self.required("router_flavor", parse_router_flavor);
        // Only a data plane dials its control plane: elsewhere Kong leaves these empty.
        let endpoint = |cx: &mut Self, key: &str| {
            if role == Role::DataPlane { cx.required(key, parse_host_port) } else { cx.defaulted(key, parse_host_port) }
        };
        let cluster_control_plane = endpoint(self, "cluster_control_plane");
        let cluster_telemetry_endpoint = endpoint(self, "cluster_telemetry_endpoint");
        Settings {
            role,
            database: self.required("database", parse_database),
            prefix,
            log_level: self.required("log_level", parse_log_level),
            proxy_listen: self
                .optional("proxy_listen", |v| listen::parse_listen_for("proxy_listen", v))
                .unwrap_or_default(),
            admin_listen: self
                .optional("admin_listen", |v| listen::parse_listen_for("admin_listen", v))
                .unwrap_or_default(),
            status_listen: self
                .optional("status_listen", |v| listen::parse_listen_for("status_listen", v))
                .unwrap_or_default(),
            admin_gui_listen: self
                .optional("admin_gui_listen", |v| listen::parse_listen_for("admin_gui_listen", v))
                .unwrap_or_default(),
            cluster_listen: self
                .optional("cluster_listen", |v| listen::parse_listen_for("cluster_listen", v))
                .unwrap_or_default(),
            cluster_telemetry_listen: self
                .optional("cluster_telemetry_listen", |v| listen::parse_listen_for("cluster_telemetry_listen", v))
                .unwrap_or_default(),
            cluster_control_plane,
            cluster_telemetry_endpoint,
            cluster_mtls: self.required("cluster_mtls", parse_cluster_mtls),
            cluster_cert: self.optional("cluster_cert", |v| {
                let source = PemSource::parse(v);
                source.load_certs().map(|_| source)
            }),
            cluster_cert_key: self.optional("cluster_cert_key", |v| {
                let source = PemSource::parse(v);
                source.load_key().map(|_| source)
            }),
            cluster_ca_cert: self.optional("cluster_ca_cert", |v| {
                let source = PemSource::parse(v);
                source.load_certs().map(|_| source)
            }),
            cluster_server_name: self.optional("cluster_server_name", parse_server_name),
            cluster_telemetry_server_name: self.optional("cluster_telemetry_server_name", parse_server_name),
            cluster_ocsp: self.required("cluster_ocsp", parse_cluster_ocsp),
            cluster_use_proxy: self.required("cluster_use_proxy", parse_bool),
            proxy_server: self.optional("proxy_server", parse_proxy_server),
            proxy_server_ssl_verify: self.required("proxy_server_ssl_verify", parse_bool),
            lua_ssl_trusted_certificate: self
                .optional("lua_ssl_trusted_certificate", parse_trust_list)
                .unwrap_or_default(),
            lua_ssl_verify_depth: self.required("lua_ssl_verify_depth", |v| parse_integer(v, 0)),
            cluster_max_payload: self.required("cluster_max_payload", |v| parse_integer(v, 4 * 1024 * 1024)),
            cluster_dp_labels: self.optional("cluster_dp_labels", parse_labels).unwrap_or_default(),
            cluster_data_plane_purge_delay: Duration::from_secs(
                self.required("cluster_data_plane_purge_delay", |v| parse_integer(v, 60)),
            ),
            analytics_flush_interval: self.required("analytics_flush_interval", parse_seconds),
            analytics_buffer_size_limit: self.required("analytics_buffer_size_limit", |v| parse_integer(v, 1)),
            analytics: self.required("analytics", parse_bool),
            analytics_component: self.optional("analytics_component", parse_existing_file),
            analytics_retention_days: self.required("analytics_retention_days", |v| parse_integer(v, 1)),
            declarative_config: self.optional("declarative_config", parse_existing_file),
            declarative_config_string: self.optional("declarative_config_string", |v| Ok(InlineConfig(v.to_string()))),
            node_id: self.optional("node_id", parse_node_id),
            lmdb_map_size: self.required("lmdb_map_size", parse_size),
            plugins: self.required("plugins", parse_plugins),
            wasm_plugins_path: self.optional("wasm_plugins_path", parse_existing_dir),
            wasm_cache_path: self.optional("wasm_cache_path", |v| Ok(PathBuf::from(v))),
            worker_processes: self.required("nginx_worker_processes", parse_worker_processes),
            worker_connections: self
                .required("nginx_events_worker_connections", parse_auto_count)
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            worker_rlimit_nofile: self.required("nginx_main_worker_rlimit_nofile", parse_auto_count),
            proxy_access_log,
            admin_access_log,
            status_access_log,
            admin_gui_access_log,
            proxy_error_log,
            admin_error_log,
            status_error_log,
            admin_gui_error_log,
            wasm_plugin_timeout: Duration::from_millis(self.required("wasm_plugin_timeout", |v| parse_integer(v, 1))),
            wasm_plugin_max_memory: self.required("wasm_plugin_max_memory", |v| {
                parse_size(v).and_then(|n| if n < 1 << 20 { Err("must be at least 1m".into()) } else { Ok(n) })
            }),
            router_component: self.optional("router_component", parse_existing_file),
            client_limits: ClientLimits {
                header_timeout: self.required("nginx_http_client_header_timeout", client::parse_nginx_time),
                body_timeout: self.required("nginx_http_client_body_timeout", client::parse_nginx_time),
                keepalive_timeout: self.required("nginx_http_keepalive_timeout", client::parse_nginx_time),
                send_timeout: self.required("nginx_http_send_timeout", client::parse_nginx_time),
                max_body_size: self.required("nginx_http_client_max_body_size", client::parse_max_body_size),
                max_header_bytes: self.required("nginx_http_large_client_header_buffers", client::parse_header_buffers),
            },
            client_trust: ClientTrust {
                trusted: self.optional("trusted_ips", client::parse_trusted_ips).unwrap_or_default(),
                real_ip_header: self.required("real_ip_header", client::parse_real_ip_header),
                real_ip_recursive: self.required("real_ip_recursive", parse_bool),
            },
            allow_debug_header: self.required("allow_debug_header", parse_bool),
            headers: self.defaulted("headers", parse_headers),
            upstream_request_id: self.defaulted("headers_upstream", parse_headers_upstream),
            vaults: self.vaults.clone(),
            proxy_tls: self.proxy_tls(),
            client_ssl: self.client_ssl(),
            upstream_keepalive: Keepalive {
                pool_size: self
                    .required("upstream_keepalive_pool_size", |v| parse_integer(v, 0))
                    .try_into()
                    .unwrap_or(usize::MAX),
                max_requests: self.required("upstream_keepalive_max_requests", |v| parse_integer(v, 0)),
                idle_timeout: self.required("upstream_keepalive_idle_timeout", parse_idle_timeout),
            },
            dns: self.dns(),
            error_templates: ErrorTemplates {
                default_type: self.required("error_default_type", parse_error_default_type),
                custom: ErrorType::ALL.map(|kind| self.optional(kind.key(), parse_error_template)),
            },
            admin_allowed_hosts: self.optional("admin_allowed_hosts", parse_host_names).unwrap_or_default(),
            admin_max_body: self.required("nginx_admin_client_max_body_size", parse_size),
            admin_ssl: self.tls_pair("admin_ssl_cert", "admin_ssl_cert_key"),
            status_ssl: self.tls_pair("status_ssl_cert", "status_ssl_cert_key"),
            admin_gui_ssl: self.tls_pair("admin_gui_ssl_cert", "admin_gui_ssl_cert_key"),
            source: self.file.map(|f| f.path.clone()),
        }
    }

    /// Every name in `plugins` is a bundled plugin or a `NAME.wasm` in `wasm_plugins_path`.
    fn check_plugins(&mut self, s: &Settings) {
        if self.failed("plugins") || self.failed("wasm_plugins_path") {
            return;
        }
        let unknown: Vec<&String> = s
            .plugins
            .iter()
            .filter(|name| !crate::wasm::bundled::PLUGINS.iter().any(|(bundled, _)| bundled == name))
            .filter(|name| s.wasm_plugins_path.as_ref().is_none_or(|dir| !dir.join(format!("{name}.wasm")).is_file()))
            .collect();
        if unknown.is_empty() {
            return;
        }
        let names: Vec<&str> = unknown.iter().map(|n| n.as_str()).collect();
        let hint = match &s.wasm_plugins_path {
            Some(dir) => format!("no bundled plugin has that name and {} holds no such NAME.wasm", dir.display()),
            None => format!(
                "the bundled plugins are {}; a user plugin needs wasm_plugins_path set to the directory holding NAME.wasm",
                crate::wasm::bundled::PLUGINS.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
            ),
        };
        let value = self.value("plugins");
        self.problem("plugins", value.as_deref(), format!("unknown plugin {}: {hint}", names.join(", ")));
    }

    /// Kong's rules for what each role needs and forbids.
    fn check_roles(&mut self, s: &Settings) {
        let role = self.value("role").unwrap_or_default();
        let hybrid = s.role != Role::Traditional;
        match s.role {
            Role::ControlPlane => {
                if s.admin_listen.is_empty() && !self.failed("admin_listen") {
                    self.problem(
                        "admin_listen",
                        None,
                        "a control plane needs the Admin API: it must not be empty or off",
                    );
                }
                if s.cluster_listen.is_empty() && !self.failed("cluster_listen") {
                    self.problem(
                        "cluster_listen",
                        None,
                        "a control plane needs cluster_listen: it must not be empty or off",
                    );
                }
                if s.cluster_telemetry_listen.is_empty() && !self.failed("cluster_telemetry_listen") {
                    self.problem(
                        "cluster_telemetry_listen",
                        None,
                        "a control plane needs cluster_telemetry_listen: it must not be empty or off",
                    );
                }
                if s.database == Database::Off {
                    self.problem("database", Some("off"), "a control plane needs a store: set database = lmdb");
                }
                if s.cluster_use_proxy {
                    self.problem(
                        "cluster_use_proxy",
                        self.value("cluster_use_proxy").as_deref(),
                        "only data planes reach their control plane through a proxy: turn it off on a control plane",
                    );
                }
                if s.cluster_mtls == ClusterMtls::Pki && s.cluster_ca_cert.is_none() {
                    self.problem_because(
                        "cluster_mtls",
                        "cluster_ca_cert",
                        "cluster_mtls = pki on a control plane needs cluster_ca_cert",
                    );
                }
            }
            Role::DataPlane => {
                if s.proxy_listen.is_empty() && !self.failed("proxy_listen") {
                    self.problem("proxy_listen", None, "a data plane needs proxy_listen: it must not be empty or off");
                }
                if s.database != Database::Off {
                    let value = self.value("database");
                    self.problem(
                        "database",
                        value.as_deref(),
                        "a data plane keeps its config in memory and its cache: set database = off",
                    );
                }
            }
            Role::Traditional => {
                if s.cluster_use_proxy {
                    self.warnings.push(Warning {
                        origin: self.origin("cluster_use_proxy"),
                        message: "cluster_use_proxy has no effect unless role = data_plane".into(),
                    });
                }
            }
        }
        self.check_ocsp(s);
        if s.role != Role::DataPlane && !s.cluster_dp_labels.is_empty() {
            let value = self.value("cluster_dp_labels");
            self.problem("cluster_dp_labels", value.as_deref(), "only data planes have labels");
        }
        if hybrid {
            for key in ["cluster_cert", "cluster_cert_key"] {
                if self.value(key).is_none() {
                    self.problem_because(
                        "role",
                        key,
                        format!(
                            "role = {role} needs cluster_cert and cluster_cert_key (make a pair with `gateway hybrid gen_cert`)"
                        ),
                    );
                }
            }
            if let (Some(cert), Some(key)) = (&s.cluster_cert, &s.cluster_cert_key)
                && let Err(reason) = crate::certs::check_pair(cert, key)
            {
                self.problem("cluster_cert_key", None, reason);
            }
        }
        for (key, listen, specs, pair) in [
            ("admin_ssl_cert", "admin_listen", &s.admin_listen, &s.admin_ssl),
            ("status_ssl_cert", "status_listen", &s.status_listen, &s.status_ssl),
            ("admin_gui_ssl_cert", "admin_gui_listen", &s.admin_gui_listen, &s.admin_gui_ssl),
        ] {
            if pair.is_some() && !specs.iter().any(|spec| spec.ssl) {
                self.warnings.push(Warning {
                    origin: self.origin(key),
                    message: format!("{key} has no effect: no address in {listen} has the `ssl` flag"),
                });
            }
        }
        if s.cluster_use_proxy && s.proxy_server.is_none() && self.value("proxy_server").is_none() {
            self.problem("cluster_use_proxy", Some("on"), "cluster_use_proxy is on but no proxy_server is configured");
        }
    }
}

impl Checker<'_> {
    /// `cluster_ocsp` checks data plane certificates on a control plane in pki mode. Accepting it
    /// where no check would run (shared mode pins one certificate) would fail open: refuse it.
    fn check_ocsp(&mut self, s: &Settings) {
        if s.cluster_ocsp == ClusterOcsp::Off {
            return;
        }
        let value = self.value("cluster_ocsp");
        match s.role {
            Role::ControlPlane if s.cluster_mtls != ClusterMtls::Pki => self.problem(
                "cluster_ocsp",
                value.as_deref(),
                "OCSP checks data plane certificates issued by a CA: it needs cluster_mtls = pki (shared mode pins one certificate); set cluster_ocsp = off or cluster_mtls = pki",
            ),
            Role::ControlPlane => {}
            _ => self.warnings.push(Warning {
                origin: self.origin("cluster_ocsp"),
                message: "cluster_ocsp has no effect unless role = control_plane (the control plane checks data plane certificates)".into(),
            }),
        }
    }
}

/// `admin_allowed_hosts`: DNS names, each optionally `*.` followed by a name.
fn parse_host_names(v: &str) -> Result<Vec<String>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let name = item.strip_prefix("*.").unwrap_or(item);
            let valid = !name.is_empty()
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                });
            if valid {
                Ok(item.to_ascii_lowercase())
            } else {
                Err(format!("{item:?} is not a host name (write names without scheme or port; `*.example.com` for any name under it)"))
            }
        })
        .collect()
}

/// A TLS server name: a DNS name (no scheme, port or spaces).
fn parse_server_name(v: &str) -> Result<String, String> {
    rustls_pki_types::ServerName::try_from(v)
        .map(|_| v.to_string())
        .map_err(|_| "must be a DNS name or IP address, without a scheme or port".into())
}

/// A value as it may be printed: URLs lose their credentials and inline keys are not shown.
fn printable(key: &str, value: &str) -> String {
    if value.contains("-----BEGIN") {
        "<inline PEM>".into()
    } else if key == "declarative_config_string" {
        "<inline configuration>".into()
    } else if key == "proxy_server" {
        values::redact_url(value)
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests;
