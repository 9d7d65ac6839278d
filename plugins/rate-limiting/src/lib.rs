//! Kong's `rate-limiting` plugin with its `local` policy: in `access`, each request is counted
//! against the configured limits (per second, minute, hour, day, month, year) of the entity it is
//! limited by (`limit_by`, with Kong's fall-backs to the client's address); past a limit it gets
//! Kong's 429 error answer "API rate limit exceeded" with `Retry-After`, and every answer carries
//! Kong's `RateLimit-*` and `X-RateLimit-*` headers unless `hide_client_headers`. Counters are the
//! node's (`host::incr`), shared by its workers.

mod calendar;
mod config;
mod limiter;

use gateway_pdk::{CallIds, FieldError, Flow, Phase, Plugin, Request, host, uuid_string};

use config::{Config, LimitBy};
use limiter::{Counters, Limiter};

pub struct RateLimiting {
    limiter: Limiter,
    limit_by: LimitBy,
    /// `header_name`, and the same with `-` for `_` (Kong's header lookup takes either).
    header_name: Option<(String, Option<String>)>,
    path: Option<String>,
    error_code: u16,
    /// The refusal's message (`None`: Kong's text for `error_code`).
    error_message: Option<String>,
    /// Kong's headers, written over by each request (an instance serves one call at a time).
    headers: std::cell::RefCell<limiter::Headers>,
}

impl Plugin for RateLimiting {
    type Config = Config;
    const NAME: &'static str = "rate-limiting";
    const PRIORITY: i32 = 910;
    const PHASES: &'static [Phase] = &[Phase::Access];

    fn validate(config: &Config) -> Vec<FieldError> {
        config::validate(config)
    }

    fn configure(config: Config) -> Result<Self, String> {
        // Counters are named per request by the plugin entity (see `access`): one instance serves
        // every entity configured alike.
        Ok(RateLimiting {
            limiter: Limiter::new("", config.limits(), !config.hide_client_headers),
            limit_by: config.limit_by,
            header_name: config.header_name.map(|h| {
                let dashed = h.contains('_').then(|| h.replace('_', "-"));
                (h.as_str().to_string(), dashed)
            }),
            path: config.path,
            error_code: config.error_code,
            error_message: config.error_message,
            headers: Default::default(),
        })
    }

    fn access(&self, req: &Request) -> Result<Flow, String> {
        // Kong names counters by the plugin entity's route and service; here by the entity itself,
        // so two entities never share a budget and one entity's budget covers what it applies to.
        // The entity, the request's ids and the clock in one call, ids as numbers (no allocation
        // by the host in this plugin).
        let ids = host::ids();
        let entity = ids.plugin.map(uuid_string).unwrap_or_default();
        let now = i64::try_from(ids.now_ms / 1000).unwrap_or(i64::MAX);
        let identifier = self.identifier(&Caller { req, ids: &ids });
        let mut headers = self.headers.borrow_mut();
        let allowed = self.limiter.check_into(&mut HostCounters, &entity, &identifier, now, &mut headers);
        if !allowed {
            let headers = headers.list.clone();
            return gateway_pdk::error_answer(req, self.error_code, self.error_message.as_deref(), headers);
        }
        if !headers.list.is_empty() {
            // Kong sets them in `access` too (`kong.response.set_headers`): no header_filter call.
            host::set_response_headers(&headers.list)?;
        }
        Ok(Flow::Proceed)
    }
}

impl RateLimiting {
    /// Kong's `get_identifier`: the entity `limit_by` names, else the client's address.
    fn identifier(&self, client: &impl Client) -> String {
        let found = match self.limit_by {
            LimitBy::Ip => None,
            LimitBy::Service => client.service(),
            LimitBy::Consumer => client.consumer().or_else(|| client.credential()),
            LimitBy::Credential => client.credential(),
            LimitBy::Header => self.header_name.as_ref().and_then(|(name, dashed)| {
                client.header(name).or_else(|| dashed.as_deref().and_then(|dashed| client.header(dashed)))
            }),
            // Normalised as Kong's `kong.request.get_path()` (and the router) normalise it:
            // `/%72eq`, `//req` and `/x/../req` are `/req`, so none escapes the path's budget.
            LimitBy::Path => {
                Some(router_core::normalize_path(&client.path())).filter(|path| Some(path) == self.path.as_ref())
            }
        };
        found.unwrap_or_else(|| client.ip())
    }
}

/// What a request says about who sent it: the ids of its service, consumer and credential, its
/// headers, path and address.
trait Client {
    fn service(&self) -> Option<String>;
    fn consumer(&self) -> Option<String>;
    fn credential(&self) -> Option<String>;
    fn header(&self, name: &str) -> Option<String>;
    /// As received (not normalised).
    fn path(&self) -> String;
    fn ip(&self) -> String;
}

/// The request being limited, with the ids its call runs with.
struct Caller<'a> {
    req: &'a Request,
    ids: &'a CallIds,
}

impl Client for Caller<'_> {
    fn service(&self) -> Option<String> {
        self.ids.service.map(uuid_string)
    }

    fn consumer(&self) -> Option<String> {
        self.ids.consumer.map(uuid_string)
    }

    fn credential(&self) -> Option<String> {
        self.ids.credential.map(uuid_string)
    }

    fn header(&self, name: &str) -> Option<String> {
        self.req.header(name)
    }

    fn path(&self) -> String {
        self.req.path()
    }

    fn ip(&self) -> String {
        self.req.client_ip()
    }
}

/// The node's counters.
struct HostCounters;

impl Counters for HostCounters {
    fn incr(&mut self, key: &str, delta: i64, window: u32) -> i64 {
        host::incr(key, delta, window)
    }
}

gateway_pdk::plugin!(RateLimiting);

#[cfg(test)]
mod tests {
    use super::*;
    use calendar::Period;
    use std::collections::HashMap;

    struct Plain(HashMap<String, i64>);

    impl Counters for Plain {
        fn incr(&mut self, key: &str, delta: i64, _window: u32) -> i64 {
            let value = self.0.entry(key.to_string()).or_default();
            *value += delta;
            *value
        }
    }

    #[test]
    fn limit_plus_one_gets_kongs_429() {
        let config: Config = gateway_pdk::config::parse_valid(r#"{"second": 2}"#, config::validate).unwrap();
        assert_eq!(config.error_message.as_deref(), Some("API rate limit exceeded"));
        let limiter = Limiter::new("t", config.limits(), true);
        let mut counters = Plain(HashMap::new());
        let now = 1_700_000_000;
        assert!(limiter.check(&mut counters, "ip", now).allowed);
        assert!(limiter.check(&mut counters, "ip", now).allowed);
        let verdict = limiter.check(&mut counters, "ip", now);
        assert!(!verdict.allowed);
        assert_eq!(config.error_code, 429);
        let header = |name: &str| verdict.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(header("Retry-After"), Some("1"));
        assert_eq!(header("X-RateLimit-Limit-Second"), Some("2"));
        assert_eq!(header("X-RateLimit-Remaining-Second"), Some("0"));
        assert_eq!(header("RateLimit-Remaining"), Some("0"));
        assert_eq!(Period::Second.window(now), (now, now + 1));
    }

    #[derive(Default)]
    struct Known {
        service: Option<&'static str>,
        consumer: Option<&'static str>,
        credential: Option<&'static str>,
        header: Option<(&'static str, &'static str)>,
        path: Option<&'static str>,
    }

    impl Client for Known {
        fn service(&self) -> Option<String> {
            self.service.map(str::to_string)
        }
        fn consumer(&self) -> Option<String> {
            self.consumer.map(str::to_string)
        }
        fn credential(&self) -> Option<String> {
            self.credential.map(str::to_string)
        }
        fn header(&self, name: &str) -> Option<String> {
            self.header.filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_string())
        }
        fn path(&self) -> String {
            self.path.unwrap_or("/limited").into()
        }
        fn ip(&self) -> String {
            "10.0.0.1".into()
        }
    }

    fn plugin(config: &str) -> RateLimiting {
        RateLimiting::configure(gateway_pdk::config::parse_valid(config, config::validate).unwrap()).unwrap()
    }

    /// Kong's `get_identifier`, fall-backs included.
    #[test]
    fn what_each_limit_by_counts() {
        let everything = Known {
            service: Some("svc"),
            consumer: Some("alice"),
            credential: Some("cred"),
            header: Some(("X-Client", "c1")),
            path: None,
        };
        let nothing = Known::default();
        let cases = [
            (r#"{"second": 1, "limit_by": "consumer"}"#, "alice", "10.0.0.1"),
            (r#"{"second": 1, "limit_by": "credential"}"#, "cred", "10.0.0.1"),
            (r#"{"second": 1, "limit_by": "service"}"#, "svc", "10.0.0.1"),
            (r#"{"second": 1, "limit_by": "ip"}"#, "10.0.0.1", "10.0.0.1"),
            (r#"{"second": 1, "limit_by": "header", "header_name": "x-client"}"#, "c1", "10.0.0.1"),
            (r#"{"second": 1, "limit_by": "header", "header_name": "X_Client"}"#, "c1", "10.0.0.1"),
            (r#"{"second": 1, "limit_by": "path", "path": "/limited"}"#, "/limited", "/limited"),
            (r#"{"second": 1, "limit_by": "path", "path": "/other"}"#, "10.0.0.1", "10.0.0.1"),
        ];
        for (config, with_everything, with_nothing) in cases {
            let plugin = plugin(config);
            assert_eq!(plugin.identifier(&everything), with_everything, "{config}");
            assert_eq!(plugin.identifier(&nothing), with_nothing, "{config}");
        }
        // The path is compared as Kong's `get_path()` gives it, normalised: spellings of the
        // limited path the router matches the same way share its budget.
        for spelling in ["/%6Cimited", "//limited", "/x/../limited", "/./limited"] {
            let client = Known { path: Some(spelling), ..Known::default() };
            let plugin = plugin(r#"{"second": 1, "limit_by": "path", "path": "/limited"}"#);
            assert_eq!(plugin.identifier(&client), "/limited", "{spelling}");
        }
        let other = Known { path: Some("/limited/x"), ..Known::default() };
        assert_eq!(plugin(r#"{"second": 1, "limit_by": "path", "path": "/limited"}"#).identifier(&other), "10.0.0.1");
        // A consumer-less request identified by a credential alone is counted by the credential.
        let credential_only = Known { credential: Some("cred"), ..Known::default() };
        assert_eq!(plugin(r#"{"second": 1}"#).identifier(&credential_only), "cred");
    }
}
