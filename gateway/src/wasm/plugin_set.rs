//! The plugins a node runs: the bundled ones and the user's (`wasm_plugins_path`), as the `plugins`
//! setting enables them, each compiled once at start. The set checks plugin entities at write time
//! (it is the node's [`PluginRegistry`]), tells the control plane what the node offers, and builds
//! the runner of each configuration version.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::Value;

use super::plugin::{LoadedPlugin, NodeShared, phase_name, protocol_name};
use super::plugin_runner::{Configured, WasmPhases};
use super::{WasmError, WasmRuntime};
use crate::conf::ErrorTemplates;
use crate::entities::{Config, FieldError, PluginProtocol, PluginRegistry, PluginSchema};
use crate::proxy::PhaseRunner;

/// What each plugin call and instance may use.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// CPU time per call (`wasm_plugin_timeout`).
    pub timeout: Duration,
    /// Linear memory per instance (`wasm_plugin_max_memory`).
    pub memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { timeout: Duration::from_millis(100), memory: super::plugin::MEMORY_LIMIT }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PluginSetError {
    #[error("plugin {name}: reading {}: {source}", path.display())]
    Read { name: String, path: PathBuf, source: std::io::Error },
    #[error("plugin {name}: {source}")]
    Load { name: String, source: WasmError },
    #[error(
        "plugin {name}: {} says it is plugin {said:?}; a file NAME.wasm must be plugin NAME",
        path.display()
    )]
    Misnamed { name: String, path: PathBuf, said: String },
    #[error("plugin {name}: it is not bundled and wasm_plugins_path holds no {name}.wasm")]
    Unknown { name: String },
}

/// The node's plugins, by name.
pub struct PluginSet {
    plugins: BTreeMap<String, Arc<LoadedPlugin>>,
    /// Counters and values every plugin instance on the node shares.
    shared: Arc<NodeShared>,
    limits: Limits,
    /// Instances each configured plugin keeps ready (one per proxy worker).
    pool: usize,
    /// Configured plugins of the versions built so far, by plugin and configuration: a new
    /// version takes over the instances (and the back-off) of an unchanged plugin entity.
    configured: Mutex<HashMap<(String, String), Weak<Configured>>>,
}

impl std::fmt::Debug for PluginSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.plugins.keys()).finish()
    }
}

impl PluginSet {
    /// No plugins.
    pub fn empty() -> PluginSet {
        PluginSet::new(BTreeMap::new(), Limits::default(), 1, ErrorTemplates::default())
    }

    fn new(
        plugins: BTreeMap<String, Arc<LoadedPlugin>>,
        limits: Limits,
        pool: usize,
        errors: ErrorTemplates,
    ) -> PluginSet {
        PluginSet {
            plugins,
            shared: Arc::new(NodeShared::new(errors)),
            limits,
            pool: pool.max(1),
            configured: Mutex::new(HashMap::new()),
        }
    }

    /// Loads the plugins named in `enabled`: bundled ones from the binary, the others from
    /// `dir/NAME.wasm`. Their error answers (`error-answer`) are written with `errors`.
    /// Blocking (compiles wasm).
    pub fn load(
        runtime: &WasmRuntime,
        enabled: &[String],
        dir: Option<&Path>,
        (limits, pool): (Limits, usize),
        errors: ErrorTemplates,
    ) -> Result<PluginSet, PluginSetError> {
        let mut plugins = BTreeMap::new();
        for name in enabled {
            let loaded = match super::bundled::PLUGINS.iter().find(|(bundled, _)| bundled == name) {
                Some((_, wasm)) => LoadedPlugin::load(runtime, name, wasm)
                    .map_err(|source| PluginSetError::Load { name: name.clone(), source })?,
                None => {
                    let path = dir
                        .map(|d| d.join(format!("{name}.wasm")))
                        .filter(|p| p.is_file())
                        .ok_or_else(|| PluginSetError::Unknown { name: name.clone() })?;
                    let wasm = std::fs::read(&path).map_err(|source| PluginSetError::Read {
                        name: name.clone(),
                        path: path.clone(),
                        source,
                    })?;
                    let loaded = LoadedPlugin::load(runtime, name, &wasm)
                        .map_err(|source| PluginSetError::Load { name: name.clone(), source })?;
                    if loaded.descriptor.name != *name {
                        return Err(PluginSetError::Misnamed {
                            name: name.clone(),
                            path,
                            said: loaded.descriptor.name.clone(),
                        });
                    }
                    loaded
                }
            };
            let d = &loaded.descriptor;
            let phases: Vec<&str> = d.phases.iter().map(|p| phase_name(*p)).collect();
            tracing::info!(
                plugin = %name,
                version = %d.version,
                priority = d.priority,
                phases = %phases.join(","),
                "plugin loaded"
            );
            plugins.insert(name.clone(), Arc::new(loaded));
        }
        Ok(PluginSet::new(plugins, limits, pool, errors))
    }

    pub fn get(&self, name: &str) -> Option<&Arc<LoadedPlugin>> {
        self.plugins.get(name)
    }

    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// Name and version of each plugin, as the node reports them.
    pub fn versions(&self) -> impl Iterator<Item = (&str, &str)> {
        self.plugins.iter().map(|(name, p)| (name.as_str(), p.descriptor.version.as_str()))
    }

    /// The registry plugin entities are checked against: each plugin's `check-config`.
    pub fn registry(&self) -> PluginRegistry {
        self.plugins
            .iter()
            .fold(PluginRegistry::default(), |r, (name, plugin)| r.with(name.clone(), Arc::new(Schema(plugin.clone()))))
    }

    /// The runner for `config`'s plugins, or `None` when it enables none. Blocking: configures
    /// one instance of each plugin entity not seen in an earlier version.
    pub fn runner(&self, config: &Config) -> Option<Arc<dyn PhaseRunner>> {
        if !config.plugins.iter().any(|p| p.enabled) {
            return None;
        }
        let mut known = self.configured.lock().unwrap_or_else(|p| p.into_inner());
        known.retain(|_, weak| weak.strong_count() > 0);
        let phases = WasmPhases::build(config, |name, checked| {
            let plugin = self.plugins.get(name)?;
            let key = (name.to_string(), checked.to_string());
            if let Some(existing) = known.get(&key).and_then(Weak::upgrade) {
                return Some(existing);
            }
            let configured =
                Arc::new(Configured::new(plugin.clone(), checked.to_string(), self.limits, self.shared.clone()));
            configured.prepare(self.pool);
            known.insert(key, Arc::downgrade(&configured));
            Some(configured)
        });
        Some(Arc::new(phases))
    }
}

/// A loaded plugin as the registry sees it: its `check-config` and its protocols.
struct Schema(Arc<LoadedPlugin>);

impl PluginSchema for Schema {
    fn check(&self, config: &Value) -> Result<Value, Vec<FieldError>> {
        let answer = self.0.check_config(&config.to_string()).map_err(|e| {
            vec![FieldError::field(String::new(), format!("the plugin failed to check its configuration: {e}"))]
        })?;
        match answer {
            Ok(checked) => serde_json::from_str(&checked).map_err(|e| {
                vec![FieldError::field(
                    String::new(),
                    format!("the plugin answered with a configuration that is not JSON: {e}"),
                )]
            }),
            Err(errors) => Err(errors.into_iter().map(|e| FieldError::field(e.path, e.message)).collect()),
        }
    }

    fn protocols(&self) -> Vec<PluginProtocol> {
        self.0.descriptor.protocols.iter().filter_map(|p| PluginProtocol::parse(protocol_name(*p))).collect()
    }

    fn version(&self) -> String {
        self.0.descriptor.version.clone()
    }

    fn priority(&self) -> i32 {
        self.0.descriptor.priority
    }

    fn consumer_scope(&self) -> bool {
        self.0.descriptor.consumer_scope
    }

    fn defaults(&self) -> serde_json::Value {
        serde_json::from_str(&self.0.descriptor.default_config).unwrap_or_else(|_| serde_json::json!({}))
    }
}
