//! The proxy: listeners on `proxy_listen`, the request pipeline (Kong's phases, see [`pipeline`]),
//! the upstream pool, and the current configuration snapshot (with its plugins' [`PhaseRunner`]),
//! swapped atomically so requests in flight finish on the one they began with and a bad
//! configuration never replaces a good one.

mod access;
pub mod answers;
pub mod client_body;
pub mod context;
mod forward;
pub mod forwarding;
mod log;
pub mod phases;
pub mod pipeline;
mod response;
mod rewrite;
mod route;
mod send;
pub mod snapshot;
pub mod tls;
mod tunnel;
pub mod upstream;

use std::convert::Infallible;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::conf::{ClientLimits, ClientTrust};
use crate::entities::Config;
use crate::server::Conn;
use crate::wasm::plugin_set::PluginSet;
use crate::wasm::router::CompiledRouter;
pub use phases::PhaseRunner;
pub use snapshot::{Snapshot, SnapshotError};
use upstream::{Pool, ProxyBody};

pub struct Proxy {
    snapshot: ArcSwap<Snapshot>,
    pool: Arc<Pool>,
    router: Arc<CompiledRouter>,
    /// Router instances per configuration version: one per worker thread.
    instances: usize,
    /// The plugins the node runs; each configuration version gets its runner from them.
    plugins: Arc<PluginSet>,
    /// What the gateway says itself: its headers, error answers and debug headers.
    pub presentation: answers::Presentation,
    /// Whose forwarding headers to believe.
    pub trust: ClientTrust,
    /// Body size and pace limits for clients.
    pub limits: ClientLimits,
    /// The vaults `{vault://...}` references in certificates are read from.
    vaults: crate::conf::vault::Vaults,
    /// Whether each response carries the request's [`crate::metrics::Facts`] for the listener to
    /// count (only when something serves the metrics).
    facts: std::sync::atomic::AtomicBool,
}

/// What the node's settings say about the proxy itself.
pub struct ProxySettings {
    /// What the gateway says itself: its headers, error answers and debug headers.
    pub presentation: answers::Presentation,
    /// Whose forwarding headers to believe.
    pub trust: ClientTrust,
    /// Body size and pace limits for clients.
    pub limits: ClientLimits,
    /// The vaults `{vault://...}` references in certificates are read from (on this node, so a
    /// data plane reads its own environment).
    pub vaults: crate::conf::vault::Vaults,
}

impl Proxy {
    /// `upstream` is how upstream connections are made and kept.
    pub fn new(
        router: Arc<CompiledRouter>,
        instances: usize,
        settings: ProxySettings,
        upstream: upstream::Connector,
        plugins: Arc<PluginSet>,
    ) -> Arc<Proxy> {
        let ProxySettings { presentation, trust, limits, vaults } = settings;
        Arc::new(Proxy {
            snapshot: ArcSwap::from_pointee(Snapshot::empty()),
            pool: Arc::new(Pool::new(upstream, instances)),
            router,
            instances,
            plugins,
            presentation,
            trust,
            limits,
            vaults,
            facts: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// From now on, responses carry their request's facts for the node's metrics.
    pub fn collect_facts(&self) {
        self.facts.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn collects_facts(&self) -> bool {
        self.facts.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The configuration being served now.
    pub fn current(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Compiles `config` and, if that works, makes it the one served. On error the current
    /// configuration stays. Compiling loads wasm, so it runs on a blocking thread.
    pub async fn apply(self: &Arc<Self>, config: Config) -> Result<Arc<Snapshot>, SnapshotError> {
        self.apply_with_phases(config, None).await
    }

    /// [`Self::apply`], with `phases` running this configuration's plugins instead of the runner
    /// the node's plugins make for it (`None`: theirs).
    pub async fn apply_with_phases(
        self: &Arc<Self>,
        config: Config,
        phases: Option<Arc<dyn PhaseRunner>>,
    ) -> Result<Arc<Snapshot>, SnapshotError> {
        let proxy = self.clone();
        let snapshot = tokio::task::spawn_blocking(move || {
            let phases = phases.or_else(|| proxy.plugins.runner(&config));
            Snapshot::build(config, &proxy.router, proxy.instances, &proxy.pool.tls, &proxy.vaults)
                .map(|s| Snapshot { phases, ..s })
        })
        .await
        .expect("building a snapshot does not panic")?;
        let snapshot = Arc::new(snapshot);
        self.snapshot.store(snapshot.clone());
        // Served from one router instance already; the others load in the background.
        let filling = snapshot.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(router) = &filling.router {
                router.fill();
            }
        });
        Ok(snapshot)
    }

    /// The service for one connection.
    pub fn service(
        self: &Arc<Self>,
        conn: Conn,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = Response<ProxyBody>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + use<>,
    >
    + Send
    + Sync
    + 'static
    + use<> {
        let proxy = self.clone();
        hyper::service::service_fn(move |req| {
            let proxy = proxy.clone();
            let conn = conn.clone();
            async move { Ok(pipeline::handle(proxy, conn, req).await) }
        })
    }
}
