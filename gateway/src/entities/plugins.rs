//! Which plugins this node can run, and each one's configuration check. A plugin entity is
//! accepted only when its name is in the [`PluginRegistry`] the reader was given: storing a plugin
//! that no code enforces would leave a route open that its owner believes is protected. The
//! registry is the one seam where plugin implementations (bundled components, user plugins) plug
//! into validation; nothing else decides whether a plugin name is acceptable.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use serde_json::Value;

use super::schema::FieldError;
use super::types::PluginProtocol;

/// One plugin's configuration rules (the component's `check-config`, for wasm plugins).
pub trait PluginSchema: Send + Sync {
    /// `config` checked: the configuration with its defaults filled in, or every error with its
    /// path relative to `config` (an unknown field is an error, never ignored).
    fn check(&self, config: &Value) -> Result<Value, Vec<FieldError>>;

    /// The protocols the plugin can run on; a plugin entity may name only these.
    fn protocols(&self) -> Vec<PluginProtocol> {
        PluginProtocol::DEFAULT.to_vec()
    }

    /// The plugin's version, as the Admin API and the cluster report it.
    fn version(&self) -> String {
        crate::VERSION.to_string()
    }

    /// Its priority (higher runs first).
    fn priority(&self) -> i32 {
        0
    }

    /// Every field at its default, for schema listings (it may not pass `check` by itself).
    fn defaults(&self) -> Value {
        Value::Object(Default::default())
    }

    /// Whether an entity of it may be scoped to a consumer (false: Kong's `no_consumer`).
    fn consumer_scope(&self) -> bool {
        true
    }
}

/// Kong's `/plugins/schema/{name}` answer for `schema`, as far as a plugin's configuration check
/// tells it: the plugin entity's fields, and under `config` the fields of the default
/// configuration (with their types and defaults) and those the check requires.
pub fn describe(schema: &dyn PluginSchema) -> Value {
    use serde_json::json;
    let (defaults, required) = match schema.check(&json!({})) {
        Ok(defaults) => (defaults, Vec::new()),
        Err(errors) => (schema.defaults(), errors),
    };
    let mut config = record_fields(&defaults);
    for error in required {
        let name = error.path.split(['.', '[']).next().unwrap_or_default().to_string();
        if !name.is_empty() && !config.iter().any(|f| f.get(&name).is_some()) {
            config.push(json!({ name: { "type": "string", "required": true, "description": error.message } }));
        }
    }
    let protocols: Vec<&str> = schema.protocols().iter().map(|p| p.as_str()).collect();
    let default: Vec<&str> =
        PluginProtocol::DEFAULT.iter().map(|p| p.as_str()).filter(|p| protocols.contains(p)).collect();
    json!({ "fields": [
        { "id": { "type": "string", "uuid": true, "auto": true } },
        { "name": { "type": "string", "required": true } },
        { "instance_name": { "type": "string" } },
        { "consumer": { "type": "foreign", "reference": "consumers" } },
        { "route": { "type": "foreign", "reference": "routes" } },
        { "service": { "type": "foreign", "reference": "services" } },
        { "protocols": {
            "type": "set", "required": true,
            "default": if default.is_empty() { protocols.clone() } else { default },
            "elements": { "type": "string", "one_of": protocols },
        } },
        { "enabled": { "type": "boolean", "default": true } },
        { "tags": { "type": "set", "elements": { "type": "string" } } },
        { "config": { "type": "record", "required": true, "fields": config } },
    ] })
}

/// Kong's schema `fields` list for an object of default values.
fn record_fields(defaults: &Value) -> Vec<Value> {
    use serde_json::json;
    defaults
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| {
            let field = match value {
                Value::Null => json!({ "type": "string" }),
                Value::Bool(_) => json!({ "type": "boolean", "default": value }),
                Value::Number(n) if n.is_i64() || n.is_u64() => json!({ "type": "integer", "default": value }),
                Value::Number(_) => json!({ "type": "number", "default": value }),
                Value::String(_) => json!({ "type": "string", "default": value }),
                Value::Array(items) => {
                    let elements = match items.first() {
                        Some(Value::Number(_)) => "number",
                        Some(Value::Bool(_)) => "boolean",
                        _ => "string",
                    };
                    json!({ "type": "array", "default": value, "elements": { "type": elements } })
                }
                Value::Object(_) => json!({ "type": "record", "fields": record_fields(value) }),
            };
            json!({ name.clone(): field })
        })
        .collect()
}

/// The plugins a node can run, by name.
#[derive(Clone, Default)]
pub struct PluginRegistry {
    schemas: BTreeMap<String, Arc<dyn PluginSchema>>,
}

impl std::fmt::Debug for PluginRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.schemas.keys()).finish()
    }
}

static BUNDLED: LazyLock<PluginRegistry> = LazyLock::new(PluginRegistry::default);

impl PluginRegistry {
    /// The plugins built into the gateway (`plugins = bundled`): none yet.
    pub fn bundled() -> &'static PluginRegistry {
        &BUNDLED
    }

    /// This registry with `name` added (or replaced).
    pub fn with(mut self, name: impl Into<String>, schema: Arc<dyn PluginSchema>) -> PluginRegistry {
        self.schemas.insert(name.into(), schema);
        self
    }

    /// Only the plugins whose names are in `enabled` (the node's `plugins` setting, `bundled`
    /// already expanded): a plugin the operator did not enable is refused as Kong refuses it.
    pub fn only(&self, enabled: &[String]) -> PluginRegistry {
        let schemas = self
            .schemas
            .iter()
            .filter(|(name, _)| enabled.contains(name))
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        PluginRegistry { schemas }
    }

    pub fn get(&self, name: &str) -> Option<&dyn PluginSchema> {
        self.schemas.get(name).map(|s| s.as_ref())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.schemas.keys().map(String::as_str)
    }
}

/// Kong's message for a plugin name the node does not run (its `subschema_error`).
pub fn not_enabled(name: &str) -> String {
    format!("plugin '{name}' not enabled; add it to the 'plugins' configuration property")
}

#[cfg(test)]
pub(crate) mod testing {
    //! Small schemas for tests, standing in for real plugins.

    use super::*;

    /// Accepts an object whose only field is an optional integer `minute`.
    pub struct Minute;

    impl PluginSchema for Minute {
        fn check(&self, config: &Value) -> Result<Value, Vec<FieldError>> {
            let mut errors = Vec::new();
            for (key, value) in config.as_object().into_iter().flatten() {
                match key.as_str() {
                    "minute" if value.is_u64() => {}
                    "minute" => errors.push(FieldError::field(key.clone(), "expected an integer")),
                    _ => errors.push(FieldError::field(key.clone(), "unknown field")),
                }
            }
            if errors.is_empty() { Ok(config.clone()) } else { Err(errors) }
        }
    }

    /// A registry with `rate-limiting`, `key-auth` and `cors`, each with the [`Minute`] schema.
    pub fn registry() -> PluginRegistry {
        ["rate-limiting", "key-auth", "cors"]
            .into_iter()
            .fold(PluginRegistry::default(), |r, name| r.with(name, Arc::new(Minute)))
    }
}
