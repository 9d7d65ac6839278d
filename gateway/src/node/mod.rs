//! A running node: prepares the prefix, proves the wasm engine, binds the listeners its role
//! serves, and stops them all gracefully on SIGINT or SIGTERM.

pub mod http;
pub mod listener;
pub mod logging;
pub mod prefix;
pub mod shutdown;

use std::time::Duration;

use tokio::task::JoinSet;

use crate::conf::{Database, Role, Settings};
use crate::entities::DeclarativeError;
use crate::proxy::tls::TlsSetupError;
use crate::proxy::{Proxy, SnapshotError};
use crate::status::StatusApi;
use crate::wasm::router::CompiledRouter;
use crate::wasm::{self, WasmRuntime};

/// How long in-flight requests may take to finish once a stop is asked for (Kong's `quit` default).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

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
    Trust(#[from] crate::trust::TrustError),
    #[error("router_component {file}: {source}")]
    RouterComponent { file: String, source: std::io::Error },
}

/// Runs the node until a signal stops it. Returns once everything has drained.
pub async fn run(settings: Settings) -> Result<(), NodeError> {
    let mut signals = shutdown::Signals::install().map_err(NodeError::Signals)?;
    if prefix::ensure(&settings.prefix)? {
        tracing::info!(prefix = %settings.prefix.display(), "created prefix (mode 0700)");
    }

    let router_file = settings.router_component.clone();
    let (runtime, report, router) = tokio::task::spawn_blocking(move || -> Result<_, NodeError> {
        let runtime = WasmRuntime::new()?;
        let report = wasm::health::probe(&runtime)?;
        let router = match router_file {
            None => CompiledRouter::new(&runtime, "router", wasm::bundled::ROUTER)?,
            Some(file) => {
                let name = file.display().to_string();
                let wasm =
                    std::fs::read(&file).map_err(|source| NodeError::RouterComponent { file: name.clone(), source })?;
                let router = CompiledRouter::new(&runtime, &name, &wasm)?;
                tracing::info!(file = %name, "router component loaded");
                router
            }
        };
        Ok((runtime, report, router))
    })
    .await
    .expect("the wasm self-test does not panic")?;
    tracing::info!(
        component = %report.name,
        version = %report.version,
        elapsed_ms = report.elapsed.as_secs_f64() * 1000.0,
        "wasm engine ready"
    );

    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let upstream_tls = crate::trust::http1_client(&settings.lua_ssl_trusted_certificate)?;
    let proxy = Proxy::new(router, workers, settings.allow_debug_header, upstream_tls);
    if let (Database::Off, Some(file)) = (settings.database, &settings.declarative_config) {
        let config = crate::entities::parse_file(file)?;
        let snapshot = proxy
            .apply(config)
            .await
            .map_err(|source| NodeError::Config { file: file.display().to_string(), source })?;
        tracing::info!(file = %file.display(), hash = %snapshot.hash, "declarative config loaded");
    }

    let (trigger, shutdown) = shutdown::channel();
    let mut tasks = JoinSet::new();
    if settings.role != Role::ControlPlane {
        for spec in &settings.proxy_listen {
            let listener = listener::bind("proxy_listen", spec).await?;
            let tls = if spec.ssl {
                Some(crate::proxy::tls::acceptor(proxy.clone(), &settings.prefix, spec.http2)?)
            } else {
                None
            };
            tracing::info!(listen = %spec, "proxy listening");
            let proxy = proxy.clone();
            tasks.spawn(http::serve(
                "proxy",
                listener,
                tls,
                move |conn| proxy.service(conn),
                shutdown.clone(),
                DRAIN_TIMEOUT,
            ));
        }
    }
    let status = StatusApi::new(&settings, proxy.clone());
    for spec in &settings.status_listen {
        let listener = listener::bind("status_listen", spec).await?;
        tracing::info!(listen = %spec, "status API listening");
        let status = status.clone();
        tasks.spawn(http::serve("status", listener, None, move |_| status.service(), shutdown.clone(), DRAIN_TIMEOUT));
    }
    tracing::info!(role = %settings.role, version = crate::VERSION, "gateway started");

    let signal = signals.recv().await;
    tracing::info!(signal, "stopping: no new connections; in-flight requests get up to {DRAIN_TIMEOUT:?}");
    trigger.fire();
    while tasks.join_next().await.is_some() {}
    drop(runtime);
    tracing::info!("gateway stopped");
    Ok(())
}
