//! The plugin's `config`, Kong's schema field for field, and Kong's checks on it. Only the `local`
//! policy runs here: `cluster` and `redis` are refused (accepting them unenforced would let every
//! node count alone while the user believes in a shared limit), and so is any Redis setting but
//! the inert default Kong writes into every export.

use gateway_pdk::{FieldError, HeaderName};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Number, Value};

use crate::calendar::Period;

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub second: Option<Number>,
    pub minute: Option<Number>,
    pub hour: Option<Number>,
    pub day: Option<Number>,
    pub month: Option<Number>,
    pub year: Option<Number>,
    pub limit_by: LimitBy,
    pub header_name: Option<HeaderName>,
    pub path: Option<String>,
    pub policy: Policy,
    pub fault_tolerant: bool,
    #[serde(deserialize_with = "null_is_default")]
    pub redis: Redis,
    pub hide_client_headers: bool,
    pub error_code: u16,
    pub error_message: Option<String>,
    pub sync_rate: Number,
    // Kong's deprecated shorthands for `redis.*`: taken only when null or equal to the field's
    // default (Kong writes them, filled in from `redis.*`, into every export and Admin API
    // answer), never written back.
    #[serde(skip_serializing)]
    pub redis_host: Option<Value>,
    #[serde(skip_serializing)]
    pub redis_port: Option<Value>,
    #[serde(skip_serializing)]
    pub redis_password: Option<Value>,
    #[serde(skip_serializing)]
    pub redis_username: Option<Value>,
    #[serde(skip_serializing)]
    pub redis_ssl: Option<Value>,
    #[serde(skip_serializing)]
    pub redis_ssl_verify: Option<Value>,
    #[serde(skip_serializing)]
    pub redis_server_name: Option<Value>,
    #[serde(skip_serializing)]
    pub redis_timeout: Option<Value>,
    #[serde(skip_serializing)]
    pub redis_database: Option<Value>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            second: None,
            minute: None,
            hour: None,
            day: None,
            month: None,
            year: None,
            limit_by: LimitBy::Consumer,
            header_name: None,
            path: None,
            policy: Policy::Local,
            fault_tolerant: true,
            redis: Redis::default(),
            hide_client_headers: false,
            error_code: 429,
            error_message: Some("API rate limit exceeded".into()),
            sync_rate: Number::from(-1),
            redis_host: None,
            redis_port: None,
            redis_password: None,
            redis_username: None,
            redis_ssl: None,
            redis_ssl_verify: None,
            redis_server_name: None,
            redis_timeout: None,
            redis_database: None,
        }
    }
}

impl Config {
    /// The configured limits, shortest period first.
    pub fn limits(&self) -> impl Iterator<Item = (Period, f64)> + '_ {
        Period::ALL.into_iter().filter_map(|period| self.limit(period).map(|limit| (period, limit)))
    }

    pub fn limit(&self, period: Period) -> Option<f64> {
        let limit = match period {
            Period::Second => &self.second,
            Period::Minute => &self.minute,
            Period::Hour => &self.hour,
            Period::Day => &self.day,
            Period::Month => &self.month,
            Period::Year => &self.year,
        };
        limit.as_ref().and_then(Number::as_f64)
    }

    /// Kong's `-1`: counters written at once, the only way of the local policy.
    fn realtime(&self) -> bool {
        self.sync_rate.as_f64() == Some(-1.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitBy {
    Consumer,
    Credential,
    Ip,
    Service,
    Header,
    Path,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    Local,
    Cluster,
    Redis,
}

/// Kong's `redis` record, as every export writes it. Only its defaults (or nulls) are taken.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Redis {
    pub host: Value,
    pub port: Value,
    pub timeout: Value,
    pub username: Value,
    pub password: Value,
    pub database: Value,
    pub ssl: Value,
    pub ssl_verify: Value,
    pub server_name: Value,
}

impl Default for Redis {
    fn default() -> Self {
        Redis {
            host: Value::Null,
            port: 6379.into(),
            timeout: 2000.into(),
            username: Value::Null,
            password: Value::Null,
            database: 0.into(),
            ssl: false.into(),
            ssl_verify: false.into(),
            server_name: Value::Null,
        }
    }
}

impl Redis {
    /// The fields holding something other than their default or null.
    fn set_fields(&self) -> Vec<&'static str> {
        let default = Redis::default();
        let fields = [
            ("host", &self.host, &default.host),
            ("port", &self.port, &default.port),
            ("timeout", &self.timeout, &default.timeout),
            ("username", &self.username, &default.username),
            ("password", &self.password, &default.password),
            ("database", &self.database, &default.database),
            ("ssl", &self.ssl, &default.ssl),
            ("ssl_verify", &self.ssl_verify, &default.ssl_verify),
            ("server_name", &self.server_name, &default.server_name),
        ];
        fields.into_iter().filter(|(_, value, default)| !inert(value, default)).map(|(n, _, _)| n).collect()
    }
}

/// Whether a Redis setting is null or its default (numbers compared as numbers: `6379.0` is
/// `6379`), which the local policy may accept because it has nothing to enforce.
fn inert(value: &Value, default: &Value) -> bool {
    match (value, default) {
        (Value::Null, _) => true,
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => value == default,
    }
}

fn null_is_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(deserializer: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

const NOT_LOCAL: &str = "only the local policy is available: counters are kept per node (cluster and redis are not \
                         implemented, and accepting them would not enforce a shared limit)";
const REDIS_UNUSED: &str = "only the redis policy uses it, and this gateway has only the local policy: leave it \
                            at its default";

/// Kong's schema rules beyond the fields' types, with its messages where Kong has one.
pub fn validate(config: &Config) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for period in Period::ALL {
        if let Some(limit) = config.limit(period)
            && limit <= 0.0
        {
            errors.push(FieldError::new(period.name(), "value must be greater than 0"));
        }
    }
    if config.policy != Policy::Local {
        errors.push(FieldError::new("policy", NOT_LOCAL));
    }
    for field in config.redis.set_fields() {
        errors.push(FieldError::new(format!("redis.{field}"), REDIS_UNUSED));
    }
    let default = Redis::default();
    let shorthands = [
        ("redis_host", &config.redis_host, &default.host),
        ("redis_port", &config.redis_port, &default.port),
        ("redis_password", &config.redis_password, &default.password),
        ("redis_username", &config.redis_username, &default.username),
        ("redis_ssl", &config.redis_ssl, &default.ssl),
        ("redis_ssl_verify", &config.redis_ssl_verify, &default.ssl_verify),
        ("redis_server_name", &config.redis_server_name, &default.server_name),
        ("redis_timeout", &config.redis_timeout, &default.timeout),
        ("redis_database", &config.redis_database, &default.database),
    ];
    for (name, value, default) in shorthands {
        if value.as_ref().is_some_and(|v| !inert(v, default)) {
            errors.push(FieldError::new(name, REDIS_UNUSED));
        }
    }
    // Kong accepts any positive number and fails every limited request with a 500 at run time
    // unless `kong.response.error` can send it.
    if !(400..=599).contains(&config.error_code) {
        errors.push(FieldError::new("error_code", "value should be between 400 and 599"));
    }
    if let Some(path) = &config.path
        && let Err(message) = check_path(path)
    {
        errors.push(FieldError::new("path", message));
    }
    if config.limit_by == LimitBy::Header && config.header_name.is_none() {
        errors.push(FieldError::new("header_name", "required field missing"));
    }
    if config.limit_by == LimitBy::Path && config.path.is_none() {
        errors.push(FieldError::new("path", "required field missing"));
    }
    if !errors.is_empty() {
        return errors;
    }
    if config.limits().next().is_none() {
        errors.push(FieldError::new(
            "",
            "at least one of these fields must be non-empty: 'config.second', 'config.minute', 'config.hour', \
             'config.day', 'config.month', 'config.year'",
        ));
    } else if let Some(message) = order_error(config) {
        errors.push(FieldError::new("", message));
    } else if !config.realtime() {
        errors.push(FieldError::new("", "sync_rate can only be used with the redis policy"));
    }
    errors
}

/// Kong's rule that a longer period's limit is not below a shorter one's: the first pair that
/// breaks it, in Kong's words.
fn order_error(config: &Config) -> Option<String> {
    let limits: Vec<(Period, f64)> = config.limits().collect();
    for (i, (shorter, low)) in limits.iter().enumerate() {
        if let Some((longer, high)) = limits[i + 1..].iter().find(|(_, high)| high < low) {
            return Some(format!(
                "The limit for {}({high:.1}) cannot be lower than the limit for {}({low:.1})",
                longer.name(),
                shorter.name()
            ));
        }
    }
    None
}

/// Kong's `typedefs.path`: starts with `/`, no empty segment, only RFC 3986 characters, and every
/// `%` starts an escape.
pub fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("should start with: /".into());
    }
    if path.contains("//") {
        return Err("must not have empty segments".into());
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"._-~/%:@!$&'()*+,;=".contains(&b);
    if !path.bytes().all(allowed) {
        return Err(format!("invalid path: '{path}' (characters outside of the reserved list of RFC 3986 found)"));
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let escape = bytes.get(i + 1..i + 3).filter(|hex| hex.iter().all(u8::is_ascii_hexdigit));
            if escape.is_none() {
                let end = (i + 3).min(bytes.len());
                return Err(format!("invalid url-encoded value: '{}'", &path[i..end]));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_pdk::config;
    use proptest::prelude::*;
    use serde_json::json;

    fn check(config: Value) -> Result<Value, Vec<(String, String)>> {
        config::check::<Config>(&config.to_string(), validate)
            .map(|filled| serde_json::from_str(&filled).unwrap())
            .map_err(|errors| errors.into_iter().map(|e| (e.path, e.message)).collect())
    }

    fn err(path: &str, message: &str) -> Result<Value, Vec<(String, String)>> {
        Err(vec![(path.to_string(), message.to_string())])
    }

    #[test]
    fn kongs_defaults() {
        assert_eq!(
            check(json!({"minute": 5})).unwrap(),
            json!({
                "second": null, "minute": 5, "hour": null, "day": null, "month": null, "year": null,
                "limit_by": "consumer", "header_name": null, "path": null, "policy": "local",
                "fault_tolerant": true,
                "redis": {"host": null, "port": 6379, "timeout": 2000, "username": null, "password": null,
                          "database": 0, "ssl": false, "ssl_verify": false, "server_name": null},
                "hide_client_headers": false, "error_code": 429, "error_message": "API rate limit exceeded",
                "sync_rate": -1
            })
        );
    }

    /// Kong's spec/03-plugins/23-rate-limiting/01-schema_spec.lua, case by case.
    #[test]
    fn kongs_schema() {
        assert!(check(json!({"second": 10})).is_ok());
        assert!(check(json!({"second": 10, "minute": 20, "hour": 30, "day": 40, "month": 50, "year": 60})).is_ok());
        assert!(check(json!({"second": 10, "limit_by": "header", "header_name": "X-App-Version"})).is_ok());
        assert!(check(json!({"second": 10, "limit_by": "path", "path": "/request"})).is_ok());
        assert_eq!(
            check(json!({"second": 20, "hour": 10})),
            err("", "The limit for hour(10.0) cannot be lower than the limit for second(20.0)")
        );
        assert_eq!(
            check(json!({"second": 10, "minute": 20, "hour": 30, "day": 40, "month": 60, "year": 50})),
            err("", "The limit for year(50.0) cannot be lower than the limit for month(60.0)")
        );
        assert_eq!(
            check(json!({})),
            err(
                "",
                "at least one of these fields must be non-empty: 'config.second', 'config.minute', 'config.hour', \
                 'config.day', 'config.month', 'config.year'"
            )
        );
        assert_eq!(check(json!({"second": 10, "limit_by": "header"})), err("header_name", "required field missing"));
        assert_eq!(check(json!({"second": 10, "limit_by": "path"})), err("path", "required field missing"));
    }

    #[test]
    fn only_the_local_policy_is_taken() {
        assert!(check(json!({"second": 1, "policy": "local"})).is_ok());
        for policy in ["cluster", "redis"] {
            assert_eq!(check(json!({"second": 1, "policy": policy})), err("policy", NOT_LOCAL));
        }
        assert_eq!(
            check(json!({"second": 1, "policy": "memory"})),
            err("policy", "expected one of: local, cluster, redis")
        );
        // What a Kong export (or a GET of the plugin) writes for a local policy: the shorthands
        // filled in from `redis` (kong/db/schema/init.lua, `is_select`).
        let export = json!({"second": 1, "redis": {"host": null, "port": 6379, "timeout": 2000, "username": null,
            "password": null, "database": 0, "ssl": false, "ssl_verify": false, "server_name": null},
            "redis_host": null, "redis_port": 6379, "redis_timeout": 2000, "redis_username": null,
            "redis_password": null, "redis_database": 0, "redis_ssl": false, "redis_ssl_verify": false,
            "redis_server_name": null});
        assert!(check(export).is_ok());
        assert!(check(json!({"second": 1, "redis_port": 6379.0, "redis": {"port": 6379.0}})).is_ok());
        assert_eq!(check(json!({"second": 1, "redis_port": 6380})), err("redis_port", REDIS_UNUSED));
        assert_eq!(check(json!({"second": 1, "redis_ssl": true})), err("redis_ssl", REDIS_UNUSED));
        assert_eq!(check(json!({"second": 1, "redis_timeout": "2000"})), err("redis_timeout", REDIS_UNUSED));
        assert!(check(json!({"second": 1, "redis": null})).is_ok());
        assert_eq!(check(json!({"second": 1, "redis": {"host": "redis.internal"}})), err("redis.host", REDIS_UNUSED));
        assert_eq!(check(json!({"second": 1, "redis": {"ssl": true}})), err("redis.ssl", REDIS_UNUSED));
        assert_eq!(check(json!({"second": 1, "redis_host": "redis.internal"})), err("redis_host", REDIS_UNUSED));
        assert_eq!(check(json!({"second": 1, "redis": {"cluster": true}})), err("redis.cluster", "unknown field"));
        assert_eq!(
            check(json!({"second": 1, "sync_rate": 1})),
            err("", "sync_rate can only be used with the redis policy")
        );
    }

    #[test]
    fn fields_out_of_range() {
        assert_eq!(check(json!({"second": 0})), err("second", "value must be greater than 0"));
        assert_eq!(check(json!({"minute": -3})), err("minute", "value must be greater than 0"));
        assert_eq!(check(json!({"second": "ten"})), err("second", "expected a JSON number"));
        assert_eq!(
            check(json!({"second": 1, "error_code": 200})),
            err("error_code", "value should be between 400 and 599")
        );
        assert_eq!(check(json!({"second": 1, "limit_by": "cookie"})).unwrap_err()[0].0, "limit_by");
        assert_eq!(check(json!({"second": 1, "header_name": "a b"})).unwrap_err()[0].0, "header_name");
        assert!(check(json!({"second": 1, "error_message": null})).is_ok());
    }

    #[test]
    fn kongs_paths() {
        for good in ["/", "/request", "/a/b%2Fc", "/~user/x@y:z;a=b"] {
            assert_eq!(check_path(good), Ok(()), "{good}");
        }
        assert_eq!(check_path("request").unwrap_err(), "should start with: /");
        assert_eq!(check_path("/a//b").unwrap_err(), "must not have empty segments");
        assert_eq!(
            check_path("/a b").unwrap_err(),
            "invalid path: '/a b' (characters outside of the reserved list of RFC 3986 found)"
        );
        assert_eq!(check_path("/a%zzb").unwrap_err(), "invalid url-encoded value: '%zz'");
        assert_eq!(check_path("/a%2").unwrap_err(), "invalid url-encoded value: '%2'");
    }

    proptest! {
        #[test]
        fn path_checks_never_panic(path in "\\PC{0,40}") {
            let _ = check_path(&path);
        }

        #[test]
        fn a_checked_path_is_a_plain_rfc3986_path(path in "/[a-zA-Z0-9%/._~-]{0,20}") {
            if check_path(&path).is_ok() {
                prop_assert!(!path.contains("//"));
                let stripped: String = path.split('%').skip(1).map(|rest| rest.get(..2).unwrap_or("")).collect();
                prop_assert!(stripped.bytes().all(|b| b.is_ascii_hexdigit()));
            }
        }
    }
}
