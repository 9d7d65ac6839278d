//! `KONG_<KEY>` environment overrides, the highest figment layer. Only Kong's and our keys are read, and
//! values are taken as they are: Kong strips no comments from environment values.

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

use super::keys::KEYS;
use super::kong_keys::KONG_KEYS;

/// The metadata name of environment values in the figment merge.
pub const ENV_SOURCE: &str = "environment";

#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// (key, value) for every key whose variable is set: the gateway's and Kong's others (so
    /// those are warned about, or refused, as in a file).
    values: Vec<(String, String)>,
    /// Every variable, for the env vault (`{vault://env/NAME}`).
    pub all: Vec<(String, String)>,
}

/// `KONG_CLUSTER_CERT` for `cluster_cert`.
pub fn var_name(key: &str) -> String {
    format!("KONG_{}", key.to_ascii_uppercase())
}

impl Environment {
    pub fn from_process() -> Self {
        Self::from_vars(std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))))
    }

    /// From (variable, value) pairs; variables that name no known key are ignored.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let names = KEYS.iter().map(|k| k.name).chain(KONG_KEYS.iter().map(|k| k.name));
        let values = names
            .filter_map(|key| {
                let name = var_name(key);
                vars.iter().rev().find(|(var, _)| *var == name).map(|(_, v)| (key.to_string(), v.clone()))
            })
            .collect();
        Environment { values, all: vars }
    }
}

impl Provider for Environment {
    fn metadata(&self) -> Metadata {
        Metadata::named(ENV_SOURCE)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let dict: Dict = self.values.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect();
        Ok(Profile::Default.collect(dict))
    }
}
