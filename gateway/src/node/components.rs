//! The node's WebAssembly components (the start-up probe, the router, the plugins), compiled
//! through the compile cache. On a first start, when the cache is empty, the compiling runs in a
//! child process (`gateway precompile`): cranelift's working memory (over 100 MB for the bundled
//! components) then goes back to the system when the child exits, instead of staying with the
//! allocator of a node that only ever needs the compiled code. The node itself then loads every
//! component from the cache, as it does on every later start.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::NodeError;
use crate::conf::Settings;
use crate::wasm::analytics::CompiledAnalytics;
use crate::wasm::health::ProbeReport;
use crate::wasm::plugin_set::{Limits, PluginSet};
use crate::wasm::router::CompiledRouter;
use crate::wasm::{self, WasmRuntime};

/// How long a first start waits for its compiling child before compiling by itself.
const CHILD_DEADLINE: Duration = Duration::from_secs(600);

/// What the components are made from, taken from the settings.
pub struct Inputs {
    cache_dir: PathBuf,
    router_file: Option<PathBuf>,
    /// The analytics component: none when the node folds no analytics; the bundled one unless a
    /// file is named.
    analytics: Option<Option<PathBuf>>,
    enabled: Vec<String>,
    plugin_dir: Option<PathBuf>,
    limits: Limits,
    workers: usize,
    errors: crate::conf::ErrorTemplates,
}

impl Inputs {
    /// For a node with `workers` proxy workers (each gets its own plugin instances).
    pub fn new(settings: &Settings, workers: usize) -> Inputs {
        Inputs {
            cache_dir: settings.wasm_cache_path.clone().unwrap_or_else(|| wasm::cache::default_dir(&settings.prefix)),
            router_file: settings.router_component.clone(),
            analytics: (settings.analytics && settings.role != crate::conf::Role::ControlPlane)
                .then(|| settings.analytics_component.clone()),
            enabled: settings.plugins.clone(),
            plugin_dir: settings.wasm_plugins_path.clone(),
            errors: settings.error_templates.clone(),
            limits: Limits {
                timeout: settings.wasm_plugin_timeout,
                memory: usize::try_from(settings.wasm_plugin_max_memory).unwrap_or(usize::MAX),
            },
            workers,
        }
    }
}

/// The loaded components.
pub struct Components {
    pub runtime: WasmRuntime,
    pub report: ProbeReport,
    pub router: Arc<CompiledRouter>,
    pub plugins: Arc<PluginSet>,
    pub analytics: Option<Arc<CompiledAnalytics>>,
}

/// Loads every component, compiling what the cache does not hold; on a first start the
/// compiling is done by a child process (`conf` is the file the node was started with). Blocks:
/// call it on a blocking thread.
pub fn load(inputs: &Inputs, conf: Option<&Path>) -> Result<Components, NodeError> {
    let runtime = WasmRuntime::with_cache_dir(&inputs.cache_dir)?;
    if first_start(&runtime) {
        compile_in_child(conf);
    }
    load_with(runtime, inputs)
}

/// `gateway precompile`: compiles every component the settings name into the compile cache.
pub fn precompile(settings: &Settings) -> Result<(), NodeError> {
    crate::prefix::ensure(&settings.prefix)?;
    let inputs = Inputs::new(settings, 1);
    let runtime = WasmRuntime::with_cache_dir(&inputs.cache_dir)?;
    load_with(runtime, &inputs).map(|_| ())
}

fn load_with(runtime: WasmRuntime, inputs: &Inputs) -> Result<Components, NodeError> {
    let report = wasm::health::probe(&runtime)?;
    let router = match &inputs.router_file {
        None => CompiledRouter::new(&runtime, "router", wasm::bundled::ROUTER)?,
        Some(file) => {
            let name = file.display().to_string();
            let wasm =
                std::fs::read(file).map_err(|source| NodeError::RouterComponent { file: name.clone(), source })?;
            let router = CompiledRouter::new(&runtime, &name, &wasm)?;
            tracing::info!(file = %name, "router component loaded");
            router
        }
    };
    let analytics = match &inputs.analytics {
        None => None,
        Some(None) => Some(CompiledAnalytics::new(&runtime, "analytics", wasm::bundled::ANALYTICS)?),
        Some(Some(file)) => {
            let name = file.display().to_string();
            let wasm =
                std::fs::read(file).map_err(|source| NodeError::AnalyticsComponent { file: name.clone(), source })?;
            let analytics = CompiledAnalytics::new(&runtime, &name, &wasm)?;
            tracing::info!(file = %name, "analytics component loaded");
            Some(analytics)
        }
    };
    let plugins = PluginSet::load(
        &runtime,
        &inputs.enabled,
        inputs.plugin_dir.as_deref(),
        (inputs.limits, inputs.workers),
        inputs.errors.clone(),
    )?;
    Ok(Components { runtime, report, router, plugins: Arc::new(plugins), analytics })
}

/// The cache holds no entry for the start-up probe, which every start compiles: this build has
/// not run with this cache before.
fn first_start(runtime: &WasmRuntime) -> bool {
    runtime.cache().is_some_and(|cache| !cache.entry_path(wasm::bundled::HEALTH).is_file())
}

/// Runs `gateway precompile` with this node's configuration and waits for it. Whatever happens to
/// the child, the node goes on: it loads what the child cached and compiles the rest itself (a
/// component that does not compile fails the start there, with the node's own error).
fn compile_in_child(conf: Option<&Path>) {
    let started = Instant::now();
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => {
            tracing::warn!(%error, "first start: cannot find this executable; compiling the components in the node");
            return;
        }
    };
    let mut command = Command::new(exe);
    command.arg("precompile").stdin(Stdio::null()).stdout(Stdio::null());
    if let Some(conf) = conf {
        command.arg("-c").arg(conf);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            tracing::warn!(%error, "first start: cannot start `gateway precompile`; compiling the components in the node");
            return;
        }
    };
    tracing::info!(pid = child.id(), "first start: compiling the components in a child process");
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => {
                tracing::info!(
                    elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "first start: components compiled"
                );
                return;
            }
            Ok(Some(status)) => {
                tracing::warn!(%status, "first start: `gateway precompile` failed; the node compiles what is missing");
                return;
            }
            Ok(None) if started.elapsed() < CHILD_DEADLINE => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                tracing::warn!(deadline = ?CHILD_DEADLINE, "first start: `gateway precompile` is still running; stopping it");
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "first start: cannot wait for `gateway precompile`");
                return;
            }
        }
    }
}
