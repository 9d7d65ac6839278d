//! Kong's `basic-auth` plugin: the client proves who it is with a username and password in
//! `Proxy-Authorization` or `Authorization` (Kong's order); the username names a
//! `basicauth_credentials` entity whose stored password hash must match, and the request then
//! belongs to its consumer, with Kong's `X-Consumer-*` headers upstream. Otherwise Kong's 401 with
//! `WWW-Authenticate: Basic realm="..."`, unless `anonymous` names a consumer to carry on as.

mod credentials;

use gateway_pdk::auth::{self, Proof};
use gateway_pdk::{Credential, FieldError, Flow, LogLevel, Phase, Plugin, Request, host};
use serde::{Deserialize, Serialize};

use credentials::Given;

const UNAUTHORIZED: &str = "Unauthorized";
const PROXY_AUTHORIZATION: &str = "proxy-authorization";
const AUTHORIZATION: &str = "authorization";

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub anonymous: Option<String>,
    pub hide_credentials: bool,
    pub realm: String,
}

impl Default for Config {
    fn default() -> Self {
        Config { anonymous: None, hide_credentials: false, realm: "service".into() }
    }
}

pub struct BasicAuth {
    config: Config,
    www_authenticate: String,
}

impl Plugin for BasicAuth {
    type Config = Config;
    const NAME: &'static str = "basic-auth";
    const PRIORITY: i32 = 1100;
    const PHASES: &'static [Phase] = &[Phase::Access];
    /// Kong's `no_consumer`.
    const CONSUMER_SCOPE: bool = false;

    fn validate(config: &Config) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if config.anonymous.as_deref() == Some("") {
            errors.push(FieldError::new("anonymous", "length must be at least 1"));
        }
        if config.realm.is_empty() {
            errors.push(FieldError::new("realm", "length must be at least 1"));
        } else if config.realm.chars().any(char::is_control) {
            errors.push(FieldError::new("realm", "must not contain control characters"));
        }
        errors
    }

    fn configure(config: Config) -> Result<Self, String> {
        // Kong writes the realm as is; a `"` in it would end the quoted string early.
        let realm = config.realm.replace('\\', "\\\\").replace('"', "\\\"");
        Ok(BasicAuth { www_authenticate: format!("Basic realm=\"{realm}\""), config })
    }

    fn access(&self, req: &Request) -> Result<Flow, String> {
        // With `anonymous`, authentication plugins are alternatives: one that already succeeded
        // is enough.
        if self.config.anonymous.is_some() && host::credential_id().is_some() {
            return Ok(Flow::Proceed);
        }
        if let Some((credential, username)) = self.authenticate(req) {
            let proof = Proof { id: &credential.id, identifier: &username };
            auth::set_consumer(req, &credential.consumer.id, Some(proof))?;
            return Ok(Flow::Proceed);
        }
        match &self.config.anonymous {
            None => gateway_pdk::error_answer(req, 401, Some(UNAUTHORIZED), [challenge(&self.www_authenticate)]),
            Some(anonymous) => match auth::anonymous_consumer(anonymous) {
                Some(consumer) => {
                    auth::set_consumer(req, &consumer.id, None)?;
                    Ok(Flow::Proceed)
                }
                None => {
                    let message = format!("anonymous consumer {anonymous} is configured but doesn't exist");
                    host::log(LogLevel::Err, &message);
                    gateway_pdk::error_answer(req, 500, Some(&message), [])
                }
            },
        }
    }
}

impl BasicAuth {
    /// Kong's order: `Proxy-Authorization` first; `Authorization` only if that names no known
    /// username. A known username with the wrong password fails, whatever the other header holds.
    /// With `hide_credentials`, each header read is removed.
    fn authenticate(&self, req: &Request) -> Option<(Credential, String)> {
        let authorization = req.header(AUTHORIZATION);
        let proxy_authorization = req.header(PROXY_AUTHORIZATION);
        if authorization.is_none() && proxy_authorization.is_none() {
            return None;
        }
        let mut found = self.read(req, PROXY_AUTHORIZATION, proxy_authorization).and_then(lookup);
        if found.is_none() {
            found = lookup(self.read(req, AUTHORIZATION, authorization)?);
        }
        let (credential, given) = found?;
        let stored = serde_json::from_str::<serde_json::Value>(&credential.fields).ok()?;
        let stored = stored.get("password")?.as_str()?;
        credentials::verify(stored, &given.password, &credential.consumer.id).then_some((credential, given.username))
    }

    fn read(&self, req: &Request, name: &str, value: Option<String>) -> Option<Given> {
        if self.config.hide_credentials {
            req.remove_header(name);
        }
        credentials::parse(&value?)
    }
}

fn lookup(given: Given) -> Option<(Credential, Given)> {
    host::find_credential("basicauth_credentials", &given.username).map(|credential| (credential, given))
}

/// Kong's challenge on a 401.
fn challenge(www_authenticate: &str) -> (String, String) {
    ("WWW-Authenticate".to_string(), www_authenticate.to_string())
}

gateway_pdk::plugin!(BasicAuth);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_pdk::config;
    use serde_json::{Value, json};

    fn check(json: Value) -> Result<Value, Vec<(String, String)>> {
        config::check::<Config>(&json.to_string(), <BasicAuth as Plugin>::validate)
            .map(|filled| serde_json::from_str(&filled).unwrap())
            .map_err(|errors| errors.into_iter().map(|e| (e.path, e.message)).collect())
    }

    #[test]
    fn kongs_defaults() {
        assert_eq!(
            check(json!({})).unwrap(),
            json!({"anonymous": null, "hide_credentials": false, "realm": "service"})
        );
    }

    #[test]
    fn kongs_schema() {
        let err = |path: &str, message: &str| Err(vec![(path.to_string(), message.to_string())]);
        assert!(check(json!({"anonymous": "anon", "hide_credentials": true, "realm": "api"})).is_ok());
        assert_eq!(check(json!({"realm": null})), err("realm", "required field missing"));
        assert_eq!(check(json!({"realm": ""})), err("realm", "length must be at least 1"));
        assert_eq!(check(json!({"realm": "a\nb"})), err("realm", "must not contain control characters"));
        assert_eq!(check(json!({"anonymous": ""})), err("anonymous", "length must be at least 1"));
        assert_eq!(check(json!({"hide_credentials": 1})), err("hide_credentials", "expected a boolean"));
        assert_eq!(check(json!({"brute_force_protection": {}})), err("brute_force_protection", "unknown field"));
    }

    #[test]
    fn the_realm_is_quoted() {
        let plugin = BasicAuth::configure(Config { realm: r#"a "b" \c"#.into(), ..Config::default() }).unwrap();
        assert_eq!(plugin.www_authenticate, r#"Basic realm="a \"b\" \\c""#);
    }
}
