//! A running node: prepares the prefix, proves the wasm engine, binds the listeners its role
//! serves, and stops them all gracefully on SIGINT or SIGTERM.
//!
//! The proxy owns the runtime the node starts on. Everything else that can take a while (the
//! Admin API, the control plane's links, a data plane's link, building each new configuration)
//! runs on a small runtime of its own ([`CONTROL_THREADS`] threads named `gw-control`, with its own
//! blocking pool), so a large `POST /config` or a burst of data planes never holds up a proxy
//! worker.

pub mod components;
pub mod limits;
pub mod listener;
pub mod logging;
pub mod tls;

/// The node's shutdown signal lives low, in [`crate::shutdown`], so the parts it stops need not import `node`.
pub use crate::shutdown;
use crate::{prefix, server};

use std::time::Duration;

use tokio::task::JoinSet;

use std::sync::Arc;

use tokio::sync::watch;

use crate::admin::AdminApi;
use crate::catalog::{Catalog, CatalogError};
use crate::cluster::cache::{Cached, ConfigCache};
use crate::cluster::cp::dp_certificates::{DpCertError, DpCertificates};
use crate::cluster::cp::{ControlPlane, Door, Registry};
use crate::cluster::dial::Dialer;
use crate::cluster::dp::DataPlane;
use crate::cluster::tls::{CpTls, DpTls};
use crate::conf::{Database, Role, Settings};
use crate::entities::{DeclarativeError, PluginRegistry};
use crate::proxy::tls::TlsSetupError;
use crate::proxy::{Proxy, SnapshotError};
use crate::status::StatusApi;
use crate::store::Store;
use crate::store::lmdb::LmdbStore;
use crate::wasm;
use crate::workers::Workers;

/// The store's directory under `prefix`.
pub const STORE_DIR: &str = "entities.lmdb";

/// How long in-flight requests may take to finish once a stop is asked for (Kong's `quit` default).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Worker threads of the control runtime (Admin API, cluster links, configuration builds).
pub const CONTROL_THREADS: usize = 2;

/// The name of the control runtime's threads, as `/proc/<pid>/task/*/comm` shows it.
pub const CONTROL_THREAD_NAME: &str = "gw-control";

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Prefix(#[from] prefix::PrefixError),
    #[error("wasm self-test failed: {0}")]
    Wasm(#[from] wasm::WasmError),
    #[error(transparent)]
    Bind(#[from] listener::BindError),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Declarative(#[from] DeclarativeError),
    #[error("declarative config {file}: {source}")]
    Config { file: String, source: SnapshotError },
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    #[error(transparent)]
    ListenerTls(#[from] tls::ListenerTlsError),
    #[error("cannot start the {what}: {source}")]
    Runtime { what: &'static str, source: std::io::Error },
    #[error(transparent)]
    AccessLog(#[from] crate::logs::access::OpenError),
    #[error(transparent)]
    Trust(#[from] crate::tls::trust::TrustError),
    #[error(transparent)]
    ClusterTls(#[from] crate::cluster::tls::ClusterTlsError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    DpCertificates(#[from] DpCertError),
    #[error("analytics_component {file}: {source}")]
    AnalyticsComponent { file: String, source: std::io::Error },
    #[error("router_component {file}: {source}")]
    RouterComponent { file: String, source: std::io::Error },
    #[error(transparent)]
    Plugins(#[from] wasm::plugin_set::PluginSetError),
    #[error("the proxy's DNS resolver: {0}")]
    Dns(String),
}

/// The node's entities: from the LMDB store under `prefix`, or in memory for DB-less nodes.
async fn open_catalog(settings: &Settings, plugins: PluginRegistry) -> Result<Catalog, NodeError> {
    let plugins = Arc::new(plugins);
    if settings.database != Database::Lmdb || settings.role == Role::DataPlane {
        return Ok(Catalog::open(None, plugins)?);
    }
    let path = settings.prefix.join(STORE_DIR);
    let map_size = settings.lmdb_map_size;
    // A control plane's data planes resolve references in their own vaults.
    let vaults = (settings.role == Role::Traditional).then(|| settings.vaults.clone());
    tokio::task::spawn_blocking(move || -> Result<Catalog, NodeError> {
        let store: Arc<dyn Store> = Arc::new(LmdbStore::open(&path, map_size)?);
        tracing::info!(path = %path.display(), "store opened");
        let catalog = Catalog::open(Some(store), plugins)?;
        Ok(match vaults {
            Some(vaults) => catalog.resolving_references(vaults),
            None => catalog,
        })
    })
    .await
    .expect("opening the store does not panic")
}

/// Serves every catalog change: the newest configuration is built and swapped into the proxy (a
/// burst of changes builds once), on the control runtime `on`. Returns the catalog version the
/// proxy serves.
fn apply_changes(on: &tokio::runtime::Handle, catalog: Arc<Catalog>, proxy: Arc<Proxy>) -> watch::Receiver<u64> {
    let mut changes = catalog.subscribe();
    let (served, receiver) = watch::channel(catalog.current().version);
    on.spawn(async move {
        while changes.changed().await.is_ok() {
            let state = catalog.current();
            if state.hash != proxy.current().hash {
                match proxy.apply((*state.config).clone()).await {
                    Ok(snapshot) => {
                        tracing::info!(hash = %snapshot.hash, version = state.version, "configuration applied")
                    }
                    // The catalog validated it, so this is rare (a router that refuses a table):
                    // the proxy keeps serving the previous configuration.
                    Err(error) => {
                        tracing::error!(%error, version = state.version, "configuration not applied; serving the previous one")
                    }
                }
            }
            served.send_replace(state.version);
        }
    });
    receiver
}

/// The data plane's start sequence: a cache whose hash verifies, else `declarative_config`, else
/// nothing (404 to every request) until the control plane sends a configuration. A cache that
/// cannot be used is set aside and logged; it never stops the node.
async fn data_plane_start(
    settings: &Settings,
    proxy: &Arc<Proxy>,
    plugins: &PluginRegistry,
) -> Result<ConfigCache, NodeError> {
    let plugins = plugins.clone();
    let prefix = settings.prefix.clone();
    let map_size = settings.lmdb_map_size;
    let registry = plugins.clone();
    let (cache, found) = tokio::task::spawn_blocking(move || ConfigCache::open(&prefix, map_size, &registry))
        .await
        .expect("opening the cache does not panic")?;
    match found {
        Cached::Config(config, hash) => match proxy.apply(*config).await {
            Ok(_) => {
                tracing::info!(%hash, "serving the cached configuration until the control plane answers");
                return Ok(cache);
            }
            Err(error) => tracing::error!(%error, "the cached configuration cannot be served"),
        },
        Cached::MovedAside { to, why } => tracing::error!(
            cache = %settings.prefix.join(crate::cluster::cache::CACHE_DIR).display(),
            moved_to = %to.display(),
            reason = %why,
            "the configuration cache was unusable: moved it aside and started without it"
        ),
        Cached::NotRunnable { plugins } => tracing::error!(
            plugins = %plugins.join(", "),
            "the cached configuration uses plugins this node does not run: not serving it (it is kept for when they are back)"
        ),
        Cached::Empty => {}
    }
    match declarative(settings, &plugins)? {
        Some((config, origin)) => {
            let snapshot =
                proxy.apply(config).await.map_err(|source| NodeError::Config { file: origin.clone(), source })?;
            tracing::info!(from = %origin, hash = %snapshot.hash, "serving declarative_config until the control plane answers");
        }
        None => tracing::warn!("no configuration yet: answering 404 until the control plane sends one"),
    }
    Ok(cache)
}

/// The declarative configuration a node starts from, and where it came from: `declarative_config`
/// (a file), else `declarative_config_string` (Kong's order).
fn declarative(
    settings: &Settings,
    plugins: &crate::entities::PluginRegistry,
) -> Result<Option<(crate::entities::Config, String)>, NodeError> {
    if let Some(file) = &settings.declarative_config {
        return Ok(Some((crate::entities::parse_file_with(file, plugins)?, file.display().to_string())));
    }
    let Some(inline) = &settings.declarative_config_string else { return Ok(None) };
    let origin = "declarative_config_string";
    Ok(Some((crate::entities::parse_str_with(&inline.0, inline.is_json(), origin, plugins)?, origin.to_string())))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

/// What `GET /` on the Admin API shows about this node (nothing secret).
fn node_info(settings: &Settings, node_id: uuid::Uuid) -> serde_json::Value {
    let hostname =
        std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let listens = |specs: &[crate::conf::ListenSpec]| specs.iter().map(ToString::to_string).collect::<Vec<_>>();
    serde_json::json!({
        "tagline": "Welcome to gateway",
        "version": crate::VERSION,
        "node_id": node_id,
        "hostname": hostname,
        "configuration": {
            "role": settings.role.as_str(),
            "database": settings.database.as_str(),
            "prefix": settings.prefix,
            "proxy_listen": listens(&settings.proxy_listen),
            "admin_listen": listens(&settings.admin_listen),
            "status_listen": listens(&settings.status_listen),
            "admin_gui_listen": listens(&settings.admin_gui_listen),
            "cluster_mtls": match settings.cluster_mtls {
                crate::conf::ClusterMtls::Shared => "shared",
                crate::conf::ClusterMtls::Pki => "pki",
            },
            "cluster_listen": listens(&settings.cluster_listen),
            "cluster_telemetry_listen": listens(&settings.cluster_telemetry_listen),
            "cluster_server_name": settings.cluster_server_name,
            "lmdb_map_size": settings.lmdb_map_size,
        },
        // When this node started (seconds since the epoch), for its uptime.
        "started_at": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })
}

/// The control runtime. Dropped from async code (the node's end, or a failed start), so it stops
/// without waiting for its threads.
struct ControlRuntime(Option<tokio::runtime::Runtime>);

impl ControlRuntime {
    fn handle(&self) -> tokio::runtime::Handle {
        self.0.as_ref().expect("present until dropped").handle().clone()
    }
}

impl Drop for ControlRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The cluster TLS a node re-reads on SIGHUP.
enum Reloadable {
    ControlPlane(Arc<CpTls>),
    DataPlane(Arc<DpTls>),
}

impl Reloadable {
    /// Re-reads the files; on any error keeps what it had and says why. Links already up are not
    /// touched: the next handshake uses the new material.
    async fn reload(&self) {
        let result = match self {
            Reloadable::ControlPlane(tls) => {
                let tls = tls.clone();
                tokio::task::spawn_blocking(move || tls.reload()).await
            }
            Reloadable::DataPlane(tls) => {
                let tls = tls.clone();
                tokio::task::spawn_blocking(move || tls.reload()).await
            }
        };
        match result {
            Ok(Ok(())) => tracing::info!(
                "SIGHUP: cluster certificate, key and trust reloaded; new links use them, links up now stay as they are"
            ),
            Ok(Err(error)) => {
                tracing::error!(%error, "SIGHUP: cannot reload the cluster TLS files; keeping the previous ones")
            }
            Err(_) => tracing::error!("SIGHUP: the reload was interrupted; keeping the previous cluster TLS"),
        }
    }
}

/// Runs the node until a signal stops it. Returns once everything has drained.
pub async fn run(settings: Settings) -> Result<(), NodeError> {
    let mut signals = shutdown::Signals::install().map_err(NodeError::Signals)?;
    if prefix::ensure(&settings.prefix)? {
        tracing::info!(prefix = %settings.prefix.display(), "created prefix (mode 0700)");
    }

    let workers =
        settings.worker_processes.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let worker_connections = limits::apply(settings.worker_rlimit_nofile, settings.worker_connections, workers);
    // Opened first, so a log that cannot be written fails the start at once.
    let access_logs = AccessLogs::open(&settings, workers)?;
    let inputs = components::Inputs::new(&settings, workers);
    let conf_file = settings.source.clone();
    let components::Components { runtime, report, router, plugins, analytics } =
        tokio::task::spawn_blocking(move || components::load(&inputs, conf_file.as_deref()))
            .await
            .expect("the wasm self-test does not panic")?;
    tracing::info!(
        component = %report.name,
        version = %report.version,
        elapsed_ms = report.elapsed.as_secs_f64() * 1000.0,
        "wasm engine ready"
    );

    let upstream_tls = Arc::new(crate::tls::trust::UpstreamTls::new(
        &settings.lua_ssl_trusted_certificate,
        settings.client_ssl.as_ref(),
    )?);
    let proxy = Proxy::new(
        router,
        workers,
        crate::proxy::ProxySettings {
            presentation: crate::proxy::answers::Presentation {
                allow_debug_header: settings.allow_debug_header,
                headers: settings.headers,
                upstream_request_id: settings.upstream_request_id,
                errors: settings.error_templates.clone(),
            },
            trust: settings.client_trust.clone(),
            limits: settings.client_limits.clone(),
            vaults: settings.vaults.clone(),
        },
        crate::proxy::upstream::Connector {
            tls: upstream_tls,
            keepalive: settings.upstream_keepalive,
            resolver: Arc::new(crate::dns::Resolver::new(settings.dns.clone()).map_err(NodeError::Dns)?),
        },
        plugins.clone(),
    );
    let catalog = Arc::new(open_catalog(&settings, plugins.registry()).await?);
    let serves_proxy = settings.role != Role::ControlPlane;
    let dp_cache = if settings.role == Role::DataPlane {
        Some(Arc::new(data_plane_start(&settings, &proxy, catalog.plugins()).await?))
    } else {
        None
    };
    if settings.role == Role::DataPlane {
        // The start sequence chose what to serve.
    } else if settings.database == Database::Off
        && let Some((config, origin)) = declarative(&settings, catalog.plugins())?
    {
        let snapshot =
            proxy.apply(config.clone()).await.map_err(|source| NodeError::Config { file: origin.clone(), source })?;
        catalog.load_config(&config);
        tracing::info!(from = %origin, hash = %snapshot.hash, "declarative config loaded");
    } else if settings.database == Database::Lmdb && serves_proxy {
        let state = catalog.current();
        let snapshot = proxy
            .apply((*state.config).clone())
            .await
            .map_err(|source| NodeError::Config { file: "in the store".into(), source })?;
        tracing::info!(hash = %snapshot.hash, entities = ?state.config.counts(), "configuration loaded from the store");
    }
    let control = ControlRuntime(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(CONTROL_THREADS)
            .thread_name(CONTROL_THREAD_NAME)
            .enable_all()
            .build()
            .map_err(|source| NodeError::Runtime { what: "control runtime", source })?,
    ));
    let on_control = control.handle();
    let on_proxy = tokio::runtime::Handle::current();
    let applied = serves_proxy.then(|| apply_changes(&on_control, catalog.clone(), proxy.clone()));
    let (trigger, shutdown) = shutdown::channel();
    let mut tasks = JoinSet::new();
    // The proxy's connections run on worker threads of their own, one per core (crate::workers).
    let proxy_workers = if serves_proxy && !settings.proxy_listen.is_empty() {
        Some(Arc::new(
            Workers::start(workers, "proxy-worker", worker_connections)
                .map_err(|source| NodeError::Runtime { what: "proxy worker threads", source })?,
        ))
    } else {
        None
    };
    // Kong's request metrics, counted only when a status listener can serve them.
    let metrics = (proxy_workers.is_some() && !settings.status_listen.is_empty()).then(|| {
        proxy.collect_facts();
        crate::metrics::Metrics::new(workers)
    });
    let node_id = match settings.node_id {
        Some(id) => id,
        None => prefix::node_id(&settings.prefix)?,
    };
    // Analytics: a traditional node folds its own requests' records and keeps the aggregates in
    // its analytics store; a control plane keeps its data planes' there.
    let analytics_store = if settings.analytics && settings.role != Role::DataPlane {
        let (prefix, days) = (settings.prefix.clone(), settings.analytics_retention_days);
        let store = tokio::task::spawn_blocking(move || crate::telemetry::store::AnalyticsStore::open(&prefix, days))
            .await
            .expect("opening the analytics store does not panic")?;
        Some(Arc::new(store))
    } else {
        None
    };
    // A node that proxies collects a record of each request for its analytics component.
    let collector = match (&analytics, &proxy_workers) {
        (Some(_), Some(_)) => {
            proxy.collect_facts();
            Some(Arc::new(crate::telemetry::Collector::new(workers, settings.analytics_buffer_size_limit)))
        }
        _ => None,
    };
    if let (Some(component), Some(store), Some(collector)) = (&analytics, &analytics_store, &collector) {
        let services = {
            let catalog = catalog.clone();
            Box::new(move || catalog.current().config.services.len() as u64) as Box<dyn Fn() -> u64 + Send>
        };
        let local = crate::telemetry::Local {
            collector: collector.clone(),
            folding: crate::telemetry::Folding::new(component.clone()),
            store: store.clone(),
            node: node_id,
            hostname: hostname(),
            services,
        };
        tasks.spawn_on(local.run(settings.analytics_flush_interval, shutdown.clone()), &on_control);
    }
    let counters = (metrics.is_some() || collector.is_some())
        .then(|| server::access_log::Counters { metrics: metrics.clone(), analytics: collector.clone() });
    if settings.role != Role::ControlPlane {
        for spec in &settings.proxy_listen {
            let listener = listener::bind("proxy_listen", spec).await?;
            let listener = listener::into_tokio(&on_proxy, "proxy_listen", spec, listener)?;
            let tls = if spec.ssl {
                Some(crate::proxy::tls::acceptor(proxy.clone(), &settings.prefix, spec.http2, &settings.proxy_tls)?)
            } else {
                None
            };
            tracing::info!(listen = %spec, "proxy listening");
            let proxy = proxy.clone();
            let options = server::ServeOptions {
                tls,
                http2: spec.http2,
                limits: settings.client_limits.clone(),
                workers: proxy_workers.clone(),
                access_log: access_logs.proxy.clone(),
                counters: counters.clone(),
            };
            tasks.spawn(server::serve(
                "proxy",
                listener,
                options,
                move |conn| proxy.service(conn),
                shutdown.clone(),
                DRAIN_TIMEOUT,
            ));
        }
    }
    let registry =
        (settings.role == Role::ControlPlane).then(|| Registry::new(settings.cluster_data_plane_purge_delay));
    let cp_link = dp_cache.is_some().then(|| Arc::new(std::sync::atomic::AtomicBool::new(false)));
    let telemetry_link = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scrape = Arc::new(crate::metrics::Scrape {
        node_id: node_id.to_string(),
        requests: metrics,
        workers: proxy_workers.clone(),
        control_plane_link: cp_link.clone(),
        data_planes: registry.clone().map(|registry| {
            Box::new(move || registry.rows().iter().map(data_plane_gauges).collect())
                as Box<dyn Fn() -> Vec<crate::metrics::DataPlane> + Send + Sync>
        }),
        wasm_traps: Some(runtime.traps().clone()),
        analytics: collector.clone(),
        telemetry_link: (dp_cache.is_some() && collector.is_some()).then(|| telemetry_link.clone()),
    });
    // What SIGHUP re-reads: the cluster certificate, key and trust files.
    let mut reloadable: Option<Reloadable> = None;
    let mut dp_certificates = None;
    if let Some(registry) = &registry {
        let tls = CpTls::new(&settings)?;
        if let Some(trust) = tls.trust() {
            let (prefix, trust) = (settings.prefix.clone(), trust.clone());
            let opened = tokio::task::spawn_blocking(move || DpCertificates::open(&prefix, trust))
                .await
                .expect("reading the trusted data plane certificates does not panic")?;
            dp_certificates = Some(Arc::new(opened));
        }
        reloadable = Some(Reloadable::ControlPlane(tls.clone()));
        let cp = ControlPlane::new(
            catalog.clone(),
            registry.clone(),
            tls,
            usize::try_from(settings.cluster_max_payload).unwrap_or(usize::MAX),
            crate::cluster::cp::ocsp_checker(&settings)?,
            plugins.versions().map(|(name, version)| (name.to_string(), version.to_string())).collect(),
        );
        for spec in &settings.cluster_listen {
            let listener = listener::bind("cluster_listen", spec).await?;
            let listener = listener::into_tokio(&on_control, "cluster_listen", spec, listener)?;
            tracing::info!(listen = %spec, "cluster listener ready for data planes");
            tasks.spawn_on(cp.clone().serve(listener, Door::Cluster, shutdown.clone()), &on_control);
        }
        // The data planes' analytics: only where they are kept.
        if let Some(store) = &analytics_store {
            let _ = cp.analytics.set(store.clone());
            for spec in &settings.cluster_telemetry_listen {
                let listener = listener::bind("cluster_telemetry_listen", spec).await?;
                let listener = listener::into_tokio(&on_control, "cluster_telemetry_listen", spec, listener)?;
                tracing::info!(listen = %spec, "telemetry listener ready for data planes");
                tasks.spawn_on(cp.clone().serve(listener, Door::Telemetry, shutdown.clone()), &on_control);
            }
        }
    }
    if let Some(cache) = dp_cache {
        let hostname = hostname();
        let dialer = Dialer::from_settings(&settings)?;
        reloadable = Some(Reloadable::DataPlane(dialer.cluster_tls.clone()));
        let dp = Arc::new(DataPlane {
            dialer,
            node_id,
            hostname,
            plugins: plugins
                .versions()
                .map(|(name, version)| crate::cluster::protocol::PluginInfo {
                    name: name.into(),
                    version: version.into(),
                })
                .collect(),
            registry: Arc::new(catalog.plugins().clone()),
            labels: settings.cluster_dp_labels.clone(),
            max_payload: usize::try_from(settings.cluster_max_payload).unwrap_or(usize::MAX),
            proxy: proxy.clone(),
            cache: Some(cache),
            link_up: cp_link.clone().unwrap_or_default(),
        });
        tracing::info!(control_plane = %settings.cluster_control_plane, node = %node_id, "data plane: linking to the control plane");
        if let (Some(component), Some(collector)) = (&analytics, &collector) {
            let link = crate::cluster::telemetry::TelemetryLink {
                dialer: dp.dialer.for_telemetry(&settings)?,
                node_id,
                hostname: dp.hostname.clone(),
                collector: collector.clone(),
                folding: Arc::new(std::sync::Mutex::new(crate::telemetry::Folding::new(component.clone()))),
                interval: settings.analytics_flush_interval,
                max_payload: usize::try_from(settings.cluster_max_payload).unwrap_or(usize::MAX),
                link_up: telemetry_link.clone(),
            };
            tracing::info!(endpoint = %settings.cluster_telemetry_endpoint, "data plane: sending analytics to the control plane");
            tasks.spawn_on(link.run(shutdown.clone()), &on_control);
        }
        tasks.spawn_on(dp.run(shutdown.clone()), &on_control);
    }
    if settings.role != Role::DataPlane && !settings.admin_listen.is_empty() {
        let edge = api_edge(&settings, &settings.admin_listen);
        let admin =
            AdminApi::new(catalog.clone(), applied.clone(), node_info(&settings, node_id), registry.clone(), edge);
        if let Some(certs) = &dp_certificates {
            admin.serve_dp_certificates(certs.clone());
        }
        admin.serve_metrics(scrape.clone());
        if let Some(store) = &analytics_store {
            admin.serve_analytics(store.clone());
        }
        let peers = crate::console::ApiPeers::of(&settings.admin_listen);
        for spec in settings.admin_gui_listen.iter().filter(|s| !crate::console::is_loopback(&s.host)) {
            if peers == crate::console::ApiPeers::LoopbackOnly {
                tracing::warn!(listen = %spec, "admin_gui_listen reaches beyond this machine while admin_listen is loopback only: the console's pages are served there, its Admin API calls only to loopback clients");
            }
        }
        let console = crate::console::Console::new(&admin, api_edge(&settings, &settings.admin_gui_listen), peers);
        let door = ApiListener {
            name: "console",
            label: "console",
            key: "admin_gui_listen",
            cert_key: "admin_gui_ssl_cert",
            specs: &settings.admin_gui_listen,
            pair: settings.admin_gui_ssl.as_ref(),
            access_log: access_logs.console.clone(),
        };
        door.serve(&settings, &on_control, &mut tasks, move |conn| console.service(conn.peer), &shutdown).await?;
        let door = ApiListener {
            name: "admin",
            label: "Admin API",
            key: "admin_listen",
            cert_key: "admin_ssl_cert",
            specs: &settings.admin_listen,
            pair: settings.admin_ssl.as_ref(),
            access_log: access_logs.admin.clone(),
        };
        door.serve(&settings, &on_control, &mut tasks, move |_| admin.service(), &shutdown).await?;
    }
    if settings.role != Role::DataPlane && settings.admin_listen.is_empty() && !settings.admin_gui_listen.is_empty() {
        tracing::info!(
            "the console (admin_gui_listen) is not served: it works through the Admin API, and admin_listen is off"
        );
    }
    let status = StatusApi::new(&settings, proxy.clone(), scrape.clone(), proxy_workers.clone());
    let door = ApiListener {
        name: "status",
        label: "status API",
        key: "status_listen",
        cert_key: "status_ssl_cert",
        specs: &settings.status_listen,
        pair: settings.status_ssl.as_ref(),
        access_log: access_logs.status.clone(),
    };
    door.serve(&settings, &on_proxy, &mut tasks, move |_| status.service(), &shutdown).await?;
    tracing::info!(role = %settings.role, version = crate::VERSION, "gateway started");

    let signal = loop {
        match signals.recv().await {
            shutdown::Signal::Stop(name) => break name,
            shutdown::Signal::Reload => match &reloadable {
                Some(what) => what.reload().await,
                None => tracing::info!("SIGHUP: nothing to reload (no cluster link)"),
            },
            shutdown::Signal::Reopen => access_logs.reopen(),
        }
    };
    tracing::info!(signal, "stopping: no new connections; in-flight requests get up to {DRAIN_TIMEOUT:?}");
    trigger.fire();
    while tasks.join_next().await.is_some() {}
    drop(control);
    drop(runtime);
    drop(access_logs);
    tracing::info!("gateway stopped");
    Ok(())
}

/// The door of the Admin API (or of its console) on `listen`: the names it answers to, the largest
/// body it reads, its clocks and Kong's headers.
fn api_edge(settings: &Settings, listen: &[crate::conf::ListenSpec]) -> crate::admin::edge::Edge {
    crate::admin::edge::Edge::new(
        listen,
        &settings.admin_allowed_hosts,
        usize::try_from(settings.admin_max_body).unwrap_or(usize::MAX),
    )
    .with_body_timeout(settings.client_limits.body_timeout)
    .with_headers(settings.headers)
}

/// One kind of API listener (the Admin API, the console, the status API): the settings that name
/// its addresses and certificate, and its access log. A new one is one more of these.
struct ApiListener<'a> {
    /// The server's name in its own messages.
    name: &'static str,
    /// What the start says is listening.
    label: &'static str,
    key: &'static str,
    cert_key: &'static str,
    specs: &'a [crate::conf::ListenSpec],
    pair: Option<&'a (crate::conf::PemSource, crate::conf::PemSource)>,
    access_log: Option<server::access_log::AccessLogging>,
}

impl ApiListener<'_> {
    /// Binds every address and serves `make`'s service on each, on `runtime`, until `shutdown`.
    async fn serve<M, S, B>(
        self,
        settings: &Settings,
        runtime: &tokio::runtime::Handle,
        tasks: &mut JoinSet<()>,
        make: M,
        shutdown: &shutdown::Shutdown,
    ) -> Result<(), NodeError>
    where
        M: Fn(crate::server::Conn) -> S + Clone + Send + Sync + 'static,
        S: hyper::service::Service<hyper::Request<hyper::body::Incoming>, Response = hyper::Response<B>>
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: hyper::body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        for spec in self.specs {
            let bound = listener::bind(self.key, spec).await?;
            let bound = listener::into_tokio(runtime, self.key, spec, bound)?;
            let tls = if spec.ssl {
                Some(tls::acceptor(self.cert_key, self.pair, &settings.prefix, spec.http2)?)
            } else {
                None
            };
            tracing::info!(listen = %spec, "{} listening", self.label);
            let options = server::ServeOptions {
                tls,
                http2: spec.http2,
                limits: settings.client_limits.clone(),
                workers: None,
                access_log: self.access_log.clone(),
                counters: None,
            };
            tasks.spawn_on(
                server::serve(self.name, bound, options, make.clone(), shutdown.clone(), DRAIN_TIMEOUT),
                runtime,
            );
        }
        Ok(())
    }
}

/// The node's access logs, kept open until it has stopped (dropping one writes what is left),
/// and what each listener logs through.
struct AccessLogs {
    open: Vec<crate::logs::AccessLog>,
    proxy: Option<server::access_log::AccessLogging>,
    admin: Option<server::access_log::AccessLogging>,
    status: Option<server::access_log::AccessLogging>,
    console: Option<server::access_log::AccessLogging>,
}

impl AccessLogs {
    /// The logs of the listeners this node runs; the proxy's with a buffer per worker.
    fn open(settings: &Settings, workers: usize) -> Result<AccessLogs, NodeError> {
        let mut logs = AccessLogs { open: Vec::new(), proxy: None, admin: None, status: None, console: None };
        let proxy = settings.role != Role::ControlPlane && !settings.proxy_listen.is_empty();
        if let Some(spec) = settings.proxy_access_log.as_ref().filter(|_| proxy) {
            logs.proxy = Some(logs.add("proxy_access_log", spec, workers, Some(settings.client_trust.clone()))?);
        }
        let admin = settings.role != Role::DataPlane && !settings.admin_listen.is_empty();
        if let Some(spec) = settings.admin_access_log.as_ref().filter(|_| admin) {
            logs.admin = Some(logs.add("admin_access_log", spec, 0, None)?);
        }
        if let Some(spec) = settings.status_access_log.as_ref().filter(|_| !settings.status_listen.is_empty()) {
            logs.status = Some(logs.add("status_access_log", spec, 0, None)?);
        }
        if let Some(spec) =
            settings.admin_gui_access_log.as_ref().filter(|_| admin && !settings.admin_gui_listen.is_empty())
        {
            logs.console = Some(logs.add("admin_gui_access_log", spec, 0, None)?);
        }
        Ok(logs)
    }

    fn add(
        &mut self,
        key: &'static str,
        spec: &crate::conf::AccessLogSpec,
        workers: usize,
        trust: Option<crate::conf::ClientTrust>,
    ) -> Result<server::access_log::AccessLogging, NodeError> {
        let log = crate::logs::AccessLog::open(key, spec.destination.clone(), spec.format, workers)?;
        let sink = log.sink();
        tracing::info!(log = key, destination = %spec.destination, "access log open");
        self.open.push(log);
        Ok(server::access_log::AccessLogging { sink, trust })
    }

    /// SIGUSR1: every file is reopened (after logrotate moved it), the error logs' too.
    fn reopen(&self) {
        logging::reopen();
        tracing::info!("SIGUSR1: reopened the error logs; reopening the access logs");
        for log in &self.open {
            log.sink().reopen();
        }
    }
}

/// A data plane row as Kong's exporter shows it.
fn data_plane_gauges(row: &crate::cluster::cp::DataPlaneRow) -> crate::metrics::DataPlane {
    use crate::cluster::protocol::SyncStatus;
    crate::metrics::DataPlane {
        id: row.id.to_string(),
        hostname: row.hostname.clone(),
        ip: row.ip.clone(),
        version: row.version.clone(),
        config_hash: row.config_hash.clone(),
        last_seen: row.last_seen,
        compatible: !matches!(
            row.sync_status,
            SyncStatus::KongVersionIncompatible
                | SyncStatus::PluginSetIncompatible
                | SyncStatus::PluginVersionIncompatible
        ),
    }
}
