//! Kong's `ip-restriction` plugin: in `access`, a client whose address is on `deny` is refused, and
//! so is one not on `allow` when `allow` is given (deny is checked first, so it wins). The answer is
//! Kong's error answer (`kong.response.error`): 403 "IP address not allowed: <ip>", or the
//! configured `status` and `message`. The lists are parsed once, when the instance is configured.

mod cidr;

use std::net::IpAddr;

use gateway_pdk::{FieldError, Flow, LogLevel, Phase, Plugin, Protocol, Request};
use serde::{Deserialize, Serialize};

use cidr::{Cidr, Matcher};

/// What Kong answers when the client's address is not an IP address (a unix socket).
const NO_ADDRESS: &str = "Cannot identify the client IP address, unix domain sockets are not supported.";

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub allow: Option<Vec<Cidr>>,
    pub deny: Option<Vec<Cidr>>,
    pub status: Option<u16>,
    pub message: Option<String>,
}

pub struct IpRestriction {
    allow: Matcher,
    deny: Matcher,
    status: u16,
    message: Option<String>,
}

impl Plugin for IpRestriction {
    type Config = Config;
    const NAME: &'static str = "ip-restriction";
    const PRIORITY: i32 = 990;
    const PHASES: &'static [Phase] = &[Phase::Access];
    /// Kong's: its schema's default lists `tcp` and `tls` too, so every export of this plugin
    /// names them. Routes here refuse those protocols, so no such traffic reaches a plugin: they
    /// are accepted as written and enforce nothing that exists. (A stream proxy would have to
    /// give this plugin its `preread` check first.)
    const PROTOCOLS: &'static [Protocol] =
        &[Protocol::Grpc, Protocol::Grpcs, Protocol::Http, Protocol::Https, Protocol::Tcp, Protocol::Tls];

    fn validate(config: &Config) -> Vec<FieldError> {
        validate(config)
    }

    fn configure(config: Config) -> Result<Self, String> {
        Ok(IpRestriction {
            allow: Matcher::new(config.allow.iter().flatten()),
            deny: Matcher::new(config.deny.iter().flatten()),
            status: config.status.unwrap_or(403),
            message: config.message,
        })
    }

    fn access(&self, req: &Request) -> Result<Flow, String> {
        let client = req.client_ip();
        let Ok(ip) = client.parse::<IpAddr>() else {
            return gateway_pdk::error_answer(req, 403, Some(NO_ADDRESS), []);
        };
        let refused = self.deny.matches(ip) || (!self.allow.is_empty() && !self.allow.matches(ip));
        if !refused {
            return Ok(Flow::Proceed);
        }
        let message = match &self.message {
            Some(message) => message.clone(),
            None => format!("IP address not allowed: {client}"),
        };
        gateway_pdk::log(LogLevel::Warn, &message);
        gateway_pdk::error_answer(req, self.status, Some(&message), [])
    }
}

/// Kong's schema rules beyond the fields' types. `status` must be one `kong.response.error` can
/// send (Kong accepts any number and fails the request with a 500 at run time instead).
pub fn validate(config: &Config) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(status) = config.status
        && !(400..=599).contains(&status)
    {
        errors.push(FieldError::new("status", "value should be between 400 and 599"));
    }
    let nonempty = |list: &Option<Vec<Cidr>>| list.as_ref().is_some_and(|l| !l.is_empty());
    if !nonempty(&config.allow) && !nonempty(&config.deny) {
        errors
            .push(FieldError::new("", "at least one of these fields must be non-empty: 'config.allow', 'config.deny'"));
    }
    errors
}

gateway_pdk::plugin!(IpRestriction);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_pdk::config;
    use serde_json::{Value, json};

    fn check(json: &str) -> Result<Value, Vec<(String, String)>> {
        config::check::<Config>(json, validate)
            .map(|filled| serde_json::from_str(&filled).unwrap())
            .map_err(|errors| errors.into_iter().map(|e| (e.path, e.message)).collect())
    }

    #[test]
    fn kongs_schema() {
        assert_eq!(
            check(r#"{"allow": ["10.0.0.0/8"]}"#).unwrap(),
            json!({"allow": ["10.0.0.0/8"], "deny": null, "status": null, "message": null})
        );
        assert!(check(r#"{"deny": ["::1"], "status": 401, "message": "go away"}"#).is_ok());
        let neither = vec![(
            String::new(),
            "at least one of these fields must be non-empty: 'config.allow', 'config.deny'".to_string(),
        )];
        assert_eq!(check("{}").unwrap_err(), neither);
        assert_eq!(check(r#"{"allow": [], "deny": null}"#).unwrap_err(), neither);
        assert_eq!(
            check(r#"{"allow": ["10.0.0.0/8", "10.0.0.0/33"]}"#).unwrap_err(),
            vec![("allow[1]".to_string(), "invalid ip or cidr range: '10.0.0.0/33'".to_string())]
        );
        assert_eq!(
            check(r#"{"deny": ["1.2.3.4"], "status": 200}"#).unwrap_err(),
            vec![("status".to_string(), "value should be between 400 and 599".to_string())]
        );
        assert_eq!(check(r#"{"deny": ["1.2.3.4"], "whitelist": []}"#).unwrap_err()[0].0, "whitelist");
    }
}
