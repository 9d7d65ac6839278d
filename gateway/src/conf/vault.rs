//! Kong's `env` vault: a value written `{vault://env/NAME}` is the environment variable `NAME`
//! (upper case, `-` as `_`, after `vault_env_prefix`), and `{vault://env/NAME/KEY}` the field `KEY`
//! of the JSON object that variable holds. References in kong.conf values are resolved when the
//! configuration is read; what messages show is the reference, never the secret.

use std::fmt;

/// A `{vault://...}` reference, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub vault: String,
    pub resource: String,
    /// The field of a JSON value.
    pub key: Option<String>,
}

/// Why a reference has no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("`{0}` is not a vault reference: write {{vault://env/NAME}} or {{vault://env/NAME/KEY}}")]
    Malformed(String),
    #[error("only the env vault is available here, not `{0}`")]
    UnknownVault(String),
    #[error("vaults = off: references are not resolved")]
    Off,
    #[error("the environment variable {0} is not set")]
    Unset(String),
    #[error("the environment variable {var} holds no JSON object with a string field `{key}`")]
    NoKey { var: String, key: String },
}

/// Whether `value` is written as a reference (Kong's test: `{vault://` … `}`).
pub fn is_reference(value: &str) -> bool {
    value.starts_with("{vault://") && value.ends_with('}')
}

impl Reference {
    pub fn parse(value: &str) -> Result<Reference, VaultError> {
        let malformed = || VaultError::Malformed(value.to_string());
        let inner = value.strip_prefix("{vault://").and_then(|v| v.strip_suffix('}')).ok_or_else(malformed)?;
        let mut parts = inner.split('/');
        let vault = parts.next().filter(|v| !v.is_empty()).ok_or_else(malformed)?;
        let resource = parts.next().filter(|r| !r.is_empty()).ok_or_else(malformed)?;
        let key = parts.next().filter(|k| !k.is_empty()).map(str::to_string);
        if parts.next().is_some() || resource.contains(['?', '#']) {
            return Err(malformed());
        }
        Ok(Reference { vault: vault.to_string(), resource: resource.to_string(), key })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{vault://{}/{}", self.vault, self.resource)?;
        if let Some(key) = &self.key {
            write!(f, "/{key}")?;
        }
        f.write_str("}")
    }
}

/// The vaults a node resolves references with: Kong's `vaults` and `vault_env_prefix`.
#[derive(Clone, Default)]
pub struct Vaults {
    /// `vaults` names the env vault (`bundled`, `env`).
    pub env: bool,
    pub env_prefix: String,
    /// The process environment (or a test's).
    pub vars: Vec<(String, String)>,
}

impl fmt::Debug for Vaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vaults").field("env", &self.env).field("env_prefix", &self.env_prefix).finish_non_exhaustive()
    }
}

/// `vaults`: `bundled` (Kong's default) or a list naming `env`; `off` for none. Any other vault
/// Kong bundles is refused by name.
pub fn parse_vaults(v: &str) -> Result<bool, String> {
    let items: Vec<String> = v.split(',').map(|i| i.trim().to_ascii_lowercase()).filter(|i| !i.is_empty()).collect();
    let mut env = false;
    for item in &items {
        match item.as_str() {
            "off" if items.len() == 1 => return Ok(false),
            "bundled" | "env" => env = true,
            other => return Err(format!("`{other}`: only the env vault is available (bundled, env or off)")),
        }
    }
    Ok(env)
}

impl Vaults {
    /// The value `reference` stands for.
    pub fn resolve(&self, reference: &Reference) -> Result<String, VaultError> {
        if reference.vault != "env" {
            return Err(VaultError::UnknownVault(reference.vault.clone()));
        }
        if !self.env {
            return Err(VaultError::Off);
        }
        let var = format!("{}{}", self.env_prefix, reference.resource).replace('-', "_").to_ascii_uppercase();
        let value = self.vars.iter().rev().find(|(k, _)| *k == var).map(|(_, v)| v.clone());
        let value = value.ok_or_else(|| VaultError::Unset(var.clone()))?;
        match &reference.key {
            None => Ok(value),
            Some(key) => serde_json::from_str::<serde_json::Value>(&value)
                .ok()
                .and_then(|json| json.get(key).and_then(|v| v.as_str()).map(str::to_string))
                .ok_or_else(|| VaultError::NoKey { var, key: key.clone() }),
        }
    }

    /// `value` as it is used: a reference resolved, anything else as written.
    pub fn value_of(&self, value: &str) -> Result<String, VaultError> {
        if is_reference(value) { self.resolve(&Reference::parse(value)?) } else { Ok(value.to_string()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vaults(vars: &[(&str, &str)]) -> Vaults {
        Vaults {
            env: true,
            env_prefix: String::new(),
            vars: vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn env_references_read_the_environment_as_kong_names_it() {
        let v = vaults(&[("DB_PASS", "s3cret"), ("CREDS", r#"{"user":"u","password":"p"}"#)]);
        assert_eq!(v.value_of("{vault://env/db-pass}").unwrap(), "s3cret");
        assert_eq!(v.value_of("{vault://env/creds/password}").unwrap(), "p");
        assert_eq!(v.value_of("plain").unwrap(), "plain");
        assert_eq!(v.value_of("{vault://env/missing}"), Err(VaultError::Unset("MISSING".into())));
        assert!(matches!(v.value_of("{vault://env/creds/nope}"), Err(VaultError::NoKey { .. })));
        assert_eq!(v.value_of("{vault://aws/x}"), Err(VaultError::UnknownVault("aws".into())));
        assert!(matches!(v.value_of("{vault://env}"), Err(VaultError::Malformed(_))));
        let prefixed = Vaults { env_prefix: "secrets-".into(), ..vaults(&[("SECRETS_DB_PASS", "p2")]) };
        assert_eq!(prefixed.value_of("{vault://env/db-pass}").unwrap(), "p2");
        let off = Vaults { env: false, ..vaults(&[("DB_PASS", "s3cret")]) };
        assert_eq!(off.value_of("{vault://env/db-pass}"), Err(VaultError::Off));
        assert_eq!(
            Reference::parse("{vault://env/creds/password}").unwrap().to_string(),
            "{vault://env/creds/password}"
        );
    }

    #[test]
    fn vaults_setting() {
        assert_eq!(parse_vaults("bundled"), Ok(true));
        assert_eq!(parse_vaults("env"), Ok(true));
        assert_eq!(parse_vaults("off"), Ok(false));
        assert!(parse_vaults("aws").is_err());
    }
}
