//! A running node: prepares the prefix, proves the wasm engine, binds the listeners its role
//! serves, and stops them all gracefully on SIGINT or SIGTERM.

pub mod http;
pub mod listener;
pub mod logging;
pub mod prefix;
pub mod shutdown;

use std::time::Duration;

use tokio::task::JoinSet;

use crate::conf::Settings;
use crate::status::StatusApi;
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
}

/// Runs the node until a signal stops it. Returns once everything has drained.
pub async fn run(settings: Settings) -> Result<(), NodeError> {
    let mut signals = shutdown::Signals::install().map_err(NodeError::Signals)?;
    if prefix::ensure(&settings.prefix)? {
        tracing::info!(prefix = %settings.prefix.display(), "created prefix (mode 0700)");
    }

    let (runtime, report) = tokio::task::spawn_blocking(|| -> Result<_, wasm::WasmError> {
        let runtime = WasmRuntime::new()?;
        let report = wasm::health::probe(&runtime)?;
        Ok((runtime, report))
    })
    .await
    .expect("the wasm self-test does not panic")?;
    tracing::info!(
        component = %report.name,
        version = %report.version,
        elapsed_ms = report.elapsed.as_secs_f64() * 1000.0,
        "wasm engine ready"
    );

    let (trigger, shutdown) = shutdown::channel();
    let mut tasks = JoinSet::new();
    let status = StatusApi::new(&settings);
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
