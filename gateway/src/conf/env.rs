//! `KONG_<KEY>` environment overrides, the highest figment layer. Only known keys are read, and
//! values are taken as they are: Kong strips no comments from environment values.

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

use super::keys::KEYS;

/// The metadata name of environment values in the figment merge.
pub const ENV_SOURCE: &str = "environment";

#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// (key, value) for every known key whose variable is set.
    values: Vec<(String, String)>,
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
        let values = KEYS
            .iter()
            .filter_map(|k| {
                let name = var_name(k.name);
                vars.iter().rev().find(|(var, _)| *var == name).map(|(_, v)| (k.name.to_string(), v.clone()))
            })
            .collect();
        Environment { values }
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
