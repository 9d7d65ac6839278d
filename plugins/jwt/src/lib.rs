//! Kong's `jwt` plugin: in `access`, finds a JSON Web Token in the request (query arguments,
//! cookies, `Authorization: Bearer`), looks up the consumer's `jwt_secrets` credential named by its
//! `iss` claim (or `key_claim_name`), checks that the credential's algorithm is the token's, the
//! signature, and the `exp`/`nbf` claims, then identifies the consumer to the upstream. Kong's
//! answers, bodies and `WWW-Authenticate` headers; `anonymous` lets failures through as a
//! consumer of the operator's choosing.

mod token;
mod verify;

use gateway_pdk::auth::{self, Proof};
use gateway_pdk::{Exit, FieldError, Flow, Phase, Plugin, Request, host};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};

use token::{BadToken, Collector, Found, Jwt, Tokens};
use verify::Algorithm;

/// Kong's `Content-Type` for the JSON bodies it makes.
const JSON: &str = "application/json; charset=utf-8";
/// Kong's ceiling for `maximum_expiration`: a year.
const MAX_EXPIRATION: f64 = 31_536_000.0;
/// Where Kong leaves the token for later plugins (`kong.ctx.shared.authenticated_jwt_token`).
const SHARED_TOKEN: &str = "authenticated_jwt_token";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Claim {
    Exp,
    Nbf,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    #[serde(deserialize_with = "null_as_default")]
    pub uri_param_names: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub cookie_names: Vec<String>,
    pub key_claim_name: String,
    pub secret_is_base64: bool,
    pub claims_to_verify: Option<Vec<Claim>>,
    pub anonymous: Option<String>,
    pub run_on_preflight: bool,
    #[serde(serialize_with = "whole_as_integer")]
    pub maximum_expiration: f64,
    #[serde(deserialize_with = "null_as_default")]
    pub header_names: Vec<String>,
    pub realm: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            uri_param_names: vec!["jwt".into()],
            cookie_names: Vec::new(),
            key_claim_name: "iss".into(),
            secret_is_base64: false,
            claims_to_verify: None,
            anonymous: None,
            run_on_preflight: true,
            maximum_expiration: 0.0,
            header_names: vec!["authorization".into()],
            realm: None,
        }
    }
}

/// Kong's optional set fields: `null` (which Kong keeps, and then fails on) is an empty list.
fn null_as_default<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::deserialize(deserializer)?.unwrap_or_default())
}

/// Kong's `number` as Kong writes it back: `60`, not `60.0`.
fn whole_as_integer<S: serde::Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        serializer.serialize_i64(*value as i64)
    } else {
        serializer.serialize_f64(*value)
    }
}

/// Kong's schema rules beyond the fields' types, with its messages.
pub fn validate(config: &Config) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (field, names) in [
        ("uri_param_names", &config.uri_param_names),
        ("cookie_names", &config.cookie_names),
        ("header_names", &config.header_names),
    ] {
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() {
                errors.push(FieldError::new(format!("{field}[{i}]"), "length must be at least 1"));
            }
        }
    }
    if config.key_claim_name.is_empty() {
        errors.push(FieldError::new("key_claim_name", "length must be at least 1"));
    }
    if config.anonymous.as_deref() == Some("") {
        errors.push(FieldError::new("anonymous", "length must be at least 1"));
    }
    match config.realm.as_deref() {
        Some("") => errors.push(FieldError::new("realm", "length must be at least 1")),
        // It goes into a quoted header parameter: nothing may end the quote or the header.
        Some(realm) if realm.bytes().any(|b| b.is_ascii_control() || b == b'"' || b == b'\\') => {
            errors.push(FieldError::new("realm", "must not contain control characters, '\"' or '\\'"))
        }
        _ => {}
    }
    if !(0.0..=MAX_EXPIRATION).contains(&config.maximum_expiration) {
        errors.push(FieldError::new("maximum_expiration", "value should be between 0 and 31536000"));
    } else if config.maximum_expiration > 0.0
        // Kong's conditional rule: only a list that is there must name `exp`. Without one the
        // limit still holds: a token without `exp` exceeds it (see `access`).
        && config.claims_to_verify.as_ref().is_some_and(|claims| !claims.contains(&Claim::Exp))
    {
        errors.push(FieldError::new("claims_to_verify", "expected to contain: exp"));
    }
    errors
}

/// A configured instance: the configuration, with what each answer needs made once.
pub struct JwtAuth {
    config: Config,
    /// The claims to check, each once (Kong's set).
    claims: Vec<Claim>,
    /// `WWW-Authenticate` without and with `error="invalid_token"`.
    challenge: String,
    challenge_invalid: String,
}

/// Why the request is not authenticated: Kong's 401 with a `message`, or with the failed claims
/// as the body.
#[derive(Debug, Clone, PartialEq)]
enum Denial {
    /// No token at all: the bare challenge.
    NoToken,
    Message(String),
    Claims(Map<String, Value>),
}

/// The fields of a `jwt_secrets` credential this plugin reads.
#[derive(Deserialize)]
struct Secret {
    key: String,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    algorithm: Option<String>,
    #[serde(default)]
    rsa_public_key: Option<String>,
}

impl Plugin for JwtAuth {
    type Config = Config;
    const NAME: &'static str = "jwt";
    const PRIORITY: i32 = 1450;
    const PHASES: &'static [Phase] = &[Phase::Access];
    /// Kong's `no_consumer`.
    const CONSUMER_SCOPE: bool = false;

    fn validate(config: &Config) -> Vec<FieldError> {
        validate(config)
    }

    fn configure(config: Config) -> Result<Self, String> {
        let mut claims = Vec::new();
        for claim in config.claims_to_verify.iter().flatten() {
            if !claims.contains(claim) {
                claims.push(*claim);
            }
        }
        let (challenge, challenge_invalid) = match &config.realm {
            Some(realm) => {
                (format!("Bearer realm=\"{realm}\""), format!("Bearer realm=\"{realm}\", error=\"invalid_token\""))
            }
            None => ("Bearer".to_string(), "Bearer error=\"invalid_token\"".to_string()),
        };
        Ok(JwtAuth { config, claims, challenge, challenge_invalid })
    }

    fn access(&self, req: &Request) -> Result<Flow, String> {
        if !self.config.run_on_preflight && req.method() == "OPTIONS" {
            return Ok(Flow::Proceed);
        }
        let Some(anonymous) = &self.config.anonymous else {
            return Ok(match self.authenticate(req)? {
                Ok(()) => Flow::Proceed,
                Err(denial) => Flow::Respond(self.unauthorized(denial)),
            });
        };
        // With `anonymous`, authentication plugins are alternatives: one that already
        // identified a credential settles it.
        if host::credential_id().is_some() || self.authenticate(req)?.is_ok() {
            return Ok(Flow::Proceed);
        }
        match auth::anonymous_consumer(anonymous) {
            Some(consumer) => {
                auth::set_consumer(req, &consumer.id, None)?;
                Ok(Flow::Proceed)
            }
            None => {
                let message = format!("anonymous consumer {anonymous} is configured but doesn't exist");
                gateway_pdk::log(gateway_pdk::LogLevel::Err, &message);
                gateway_pdk::error_answer(req, 500, Some(&message), [])
            }
        }
    }
}

impl JwtAuth {
    /// Kong's `do_authentication`: `Ok(Err(_))` is a 401; `Err` a failure of the gateway's own.
    fn authenticate(&self, req: &Request) -> Result<Result<(), Denial>, String> {
        let token = match self.find_token(req) {
            Tokens::None => return Ok(Err(Denial::NoToken)),
            Tokens::Many => return Ok(Err(Denial::Message("Multiple tokens provided".into()))),
            Tokens::One(Found::Flag) => return Ok(Err(Denial::Message("Unrecognizable token".into()))),
            Tokens::One(Found::Text(token)) => token,
        };
        let jwt = match Jwt::decode(&token) {
            Ok(jwt) => jwt,
            Err(bad) => return Ok(Err(bad_token(bad))),
        };
        let name = &self.config.key_claim_name;
        // Kong's `claims[name] or header[name]`: a `false` claim falls back to the header.
        let key = match jwt.claims.get(name).filter(|v| **v != Value::Bool(false)).or_else(|| jwt.header.get(name)) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {
                return Ok(Err(Denial::Message(format!("No mandatory '{name}' in claims"))));
            }
            Some(Value::String(key)) if !key.is_empty() => key.as_str(),
            Some(_) => return Ok(Err(Denial::Message(format!("Invalid '{name}' in claims")))),
        };
        let Some(credential) = host::find_credential("jwt_secrets", key) else {
            return Ok(Err(Denial::Message(format!("No credentials found for given '{name}'"))));
        };
        let secret: Secret = serde_json::from_str(&credential.fields)
            .map_err(|e| format!("jwt secret {} does not read: {e}", credential.id))?;
        let algorithm_name = secret.algorithm.as_deref().unwrap_or("HS256");
        if jwt.alg != algorithm_name {
            return Ok(Err(Denial::Message("Invalid algorithm".into())));
        }
        let algorithm = Algorithm::parse(algorithm_name).ok_or_else(|| {
            format!("jwt secret {} names algorithm {algorithm_name}, which is not supported", credential.id)
        })?;
        let key_bytes = match (algorithm.is_symmetric(), self.config.secret_is_base64) {
            (true, true) => secret.secret.as_deref().and_then(token::base64url_decode),
            (true, false) => secret.secret.map(String::into_bytes),
            (false, _) => secret.rsa_public_key.map(String::into_bytes),
        };
        let Some(key_bytes) = key_bytes else {
            return Ok(Err(Denial::Message("Invalid key/secret".into())));
        };
        let verified = verify::verify(algorithm, jwt.signing_input.as_bytes(), &jwt.signature, &key_bytes)
            .map_err(|e| format!("jwt secret {}: {e}", credential.id))?;
        if !verified {
            return Ok(Err(Denial::Message("Invalid signature".into())));
        }
        let now = host::now().floor();
        let failed = check_claims(&jwt.claims, &self.claims, now);
        if !failed.is_empty() {
            return Ok(Err(Denial::Claims(failed)));
        }
        if self.config.maximum_expiration > 0.0 {
            let within = jwt
                .claims
                .get("exp")
                .and_then(Value::as_f64)
                .is_some_and(|exp| exp - now <= self.config.maximum_expiration);
            if !within {
                let mut errors = Map::new();
                errors.insert("exp".into(), "exceeds maximum allowed expiration".into());
                return Ok(Err(Denial::Claims(errors)));
            }
        }
        let Some(consumer) = host::find_consumer(&credential.consumer.id) else {
            return Ok(Err(Denial::Message(format!("Could not find consumer for '{name}={key}'"))));
        };
        auth::set_consumer(req, &consumer.id, Some(Proof { id: &credential.id, identifier: &secret.key }))?;
        host::ctx_set(SHARED_TOKEN, &token);
        Ok(Ok(()))
    }

    /// Kong's search: the query arguments, then the cookies, then the headers; distinct tokens.
    fn find_token(&self, req: &Request) -> Tokens {
        let mut found = Collector::default();
        if !self.config.uri_param_names.is_empty() {
            token::from_query(&req.raw_query(), &self.config.uri_param_names, &mut found);
        }
        if !self.config.cookie_names.is_empty() {
            let cookies = req.header_values("cookie");
            for name in &self.config.cookie_names {
                if let Some(value) = token::cookie(&cookies, name).filter(|v| !v.is_empty()) {
                    found.add(Found::Text(value.to_string()));
                }
            }
        }
        for name in &self.config.header_names {
            // Kong's header table reads `_` as `-`.
            let value =
                req.header(name).or_else(|| name.contains('_').then(|| req.header(&name.replace('_', "-"))).flatten());
            if let Some(token) = value.as_deref().and_then(token::bearer) {
                found.add(Found::Text(token.to_string()));
            }
        }
        found.finish()
    }

    fn unauthorized(&self, denial: Denial) -> Exit {
        let (body, challenge) = match denial {
            Denial::NoToken => (json!({"message": "Unauthorized"}), &self.challenge),
            Denial::Message(message) => (json!({ "message": message }), &self.challenge_invalid),
            Denial::Claims(errors) => (Value::Object(errors), &self.challenge_invalid),
        };
        json_exit(401, &body, challenge)
    }
}

fn bad_token(bad: BadToken) -> Denial {
    Denial::Message(format!("Bad token; {bad}"))
}

/// Kong's registered claim checks, at `now` (whole seconds): each claim must be a number, `exp`
/// in the future, `nbf` not.
fn check_claims(claims: &Map<String, Value>, to_verify: &[Claim], now: f64) -> Map<String, Value> {
    let mut errors = Map::new();
    for claim in to_verify {
        let (name, problem) = match claim {
            Claim::Exp => ("exp", claims.get("exp").map(Value::as_f64)),
            Claim::Nbf => ("nbf", claims.get("nbf").map(Value::as_f64)),
        };
        let message = match (claim, problem.flatten()) {
            (_, None) => "must be a number",
            (Claim::Exp, Some(exp)) if exp <= now => "token expired",
            (Claim::Nbf, Some(nbf)) if nbf > now => "token not valid yet",
            _ => continue,
        };
        errors.insert(name.into(), message.into());
    }
    errors
}

/// Kong's jwt answers its 401s with `kong.response.exit` and a table: JSON whatever the client
/// accepts, unlike the other authentication plugins' error answers.
fn json_exit(status: u16, body: &Value, challenge: &str) -> Exit {
    let headers =
        vec![("Content-Type".to_string(), JSON.to_string()), ("WWW-Authenticate".to_string(), challenge.to_string())];
    Exit { status, headers, body: body.to_string().into_bytes() }
}

gateway_pdk::plugin!(JwtAuth);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_pdk::config;

    fn check(json: &str) -> Result<Value, Vec<(String, String)>> {
        config::check::<Config>(json, validate)
            .map(|filled| serde_json::from_str(&filled).unwrap())
            .map_err(|errors| errors.into_iter().map(|e| (e.path, e.message)).collect())
    }

    fn err(path: &str, message: &str) -> Result<Value, Vec<(String, String)>> {
        Err(vec![(path.to_string(), message.to_string())])
    }

    #[test]
    fn kongs_defaults() {
        assert_eq!(
            check("{}").unwrap(),
            json!({
                "uri_param_names": ["jwt"], "cookie_names": [], "key_claim_name": "iss",
                "secret_is_base64": false, "claims_to_verify": null, "anonymous": null,
                "run_on_preflight": true, "maximum_expiration": 0, "header_names": ["authorization"],
                "realm": null
            })
        );
    }

    /// Kong's spec/03-plugins/16-jwt/06-schema_spec.lua, and the schema's other rules.
    #[test]
    fn kongs_schema() {
        assert!(check(r#"{"maximum_expiration": 60, "claims_to_verify": ["exp", "nbf"]}"#).is_ok());
        let range = "value should be between 0 and 31536000";
        assert_eq!(
            check(r#"{"maximum_expiration": -1, "claims_to_verify": ["exp", "nbf"]}"#),
            err("maximum_expiration", range)
        );
        assert_eq!(
            check(r#"{"maximum_expiration": -1, "claims_to_verify": ["nbf"]}"#),
            err("maximum_expiration", range)
        );
        assert_eq!(
            check(r#"{"maximum_expiration": 31536001, "claims_to_verify": ["exp"]}"#),
            err("maximum_expiration", range)
        );
        assert_eq!(
            check(r#"{"maximum_expiration": 60, "claims_to_verify": ["nbf"]}"#),
            err("claims_to_verify", "expected to contain: exp")
        );
        assert!(check(r#"{"maximum_expiration": 60}"#).is_ok(), "Kong takes it: only a list there must name exp");
        assert_eq!(check(r#"{"claims_to_verify": ["iat"]}"#), err("claims_to_verify[0]", "expected one of: exp, nbf"));
        assert_eq!(check(r#"{"secret_is_base64": null}"#), err("secret_is_base64", "required field missing"));
        assert_eq!(check(r#"{"run_on_preflight": "yes"}"#), err("run_on_preflight", "expected a boolean"));
        assert_eq!(check(r#"{"key_claim_name": ""}"#), err("key_claim_name", "length must be at least 1"));
        assert_eq!(check(r#"{"anonymous": ""}"#), err("anonymous", "length must be at least 1"));
        assert_eq!(check(r#"{"cookie_names": ["a", ""]}"#), err("cookie_names[1]", "length must be at least 1"));
        assert_eq!(check(r#"{"header_names": [1]}"#), err("header_names[0]", "expected a string"));
        assert_eq!(check(r#"{"secret": "x"}"#), err("secret", "unknown field"));
        assert!(check(r#"{"realm": "r\"x"}"#).is_err());
        assert!(check(r#"{"realm": "api", "anonymous": "guest", "cookie_names": ["c"]}"#).is_ok());
        let nulls = check(r#"{"uri_param_names": null, "header_names": null, "cookie_names": null}"#).unwrap();
        assert_eq!(nulls["uri_param_names"], json!([]));
    }

    #[test]
    fn an_exported_configuration_reads_back() {
        let filled = check(r#"{"claims_to_verify": ["exp"], "maximum_expiration": 3600}"#).unwrap();
        assert_eq!(check(&filled.to_string()).unwrap(), filled);
    }

    #[test]
    fn registered_claims() {
        let claims = |v: Value| v.as_object().unwrap().clone();
        let both = [Claim::Exp, Claim::Nbf];
        assert!(check_claims(&claims(json!({"exp": 101, "nbf": 100})), &both, 100.0).is_empty());
        assert_eq!(
            Value::Object(check_claims(&claims(json!({"exp": 100})), &[Claim::Exp], 100.0)),
            json!({"exp": "token expired"})
        );
        assert_eq!(
            Value::Object(check_claims(&claims(json!({"nbf": 101})), &[Claim::Nbf], 100.0)),
            json!({"nbf": "token not valid yet"})
        );
        assert_eq!(
            Value::Object(check_claims(&claims(json!({"exp": "soon"})), &both, 100.0)),
            json!({"exp": "must be a number", "nbf": "must be a number"})
        );
        assert!(check_claims(&claims(json!({})), &[], 100.0).is_empty());
    }
}
