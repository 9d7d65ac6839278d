//! Kong's `correlation-id` plugin: every request carries an id in `header_name`, the client's own if
//! it sent a non-empty one, else a new one sent upstream; `echo_downstream` also returns it to the
//! client. The id is left in the request's shared context as `correlation_id` (Kong puts it in the
//! log serializer under that name).
//!
//! Kong's generators, per configured instance where Kong's are per nginx worker: `uuid` (a random
//! UUID v4), `uuid#counter` (a random UUID chosen once, then `#1`, `#2`, ...) and `tracker`, whose
//! parts are Kong's where the request handle has them (see [`tracker`]).

use std::cell::Cell;

use gateway_pdk::{Flow, HeaderName, Phase, Plugin, Request, Response, host};
use serde::{Deserialize, Serialize};

/// The shared-context key holding the request's id.
pub const CTX_KEY: &str = "correlation_id";

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Kong's is any string; a name no request can carry is refused here instead of failing every request.
    pub header_name: HeaderName,
    pub generator: Generator,
    pub echo_downstream: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            header_name: HeaderName::from_static("Kong-Request-ID"),
            generator: Generator::UuidCounter,
            echo_downstream: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub enum Generator {
    #[serde(rename = "uuid")]
    Uuid,
    #[serde(rename = "uuid#counter")]
    UuidCounter,
    #[serde(rename = "tracker")]
    Tracker,
}

pub struct CorrelationId {
    config: Config,
    /// `uuid#counter`'s fixed part, Kong's per-worker UUID.
    base: String,
    /// Stands for the nginx worker's pid in `tracker` ids.
    instance: u32,
    /// Requests that got a generated id from this instance.
    counter: Cell<u64>,
}

impl Plugin for CorrelationId {
    type Config = Config;
    const NAME: &'static str = "correlation-id";
    const PRIORITY: i32 = 100001;
    const PHASES: &'static [Phase] = &[Phase::Access, Phase::HeaderFilter];

    fn configure(config: Config) -> Result<Self, String> {
        let mut instance = [0; 4];
        getrandom::fill(&mut instance).map_err(|e| format!("no randomness for an instance id: {e}"))?;
        Ok(CorrelationId {
            config,
            base: random_uuid()?,
            instance: u32::from_le_bytes(instance),
            counter: Cell::new(0),
        })
    }

    fn access(&self, req: &Request) -> Result<Flow, String> {
        let name = &self.config.header_name;
        let id = match given(req.header(name)) {
            Some(id) => id,
            None => {
                let id = self.generate(req)?;
                req.set_header(name, &id)?;
                id
            }
        };
        host::ctx_set(CTX_KEY, &id);
        Ok(Flow::Proceed)
    }

    /// Also when `access` did not run (the request ended before it): then the client's id, or a new one.
    fn header_filter(&self, req: &Request, res: &Response) -> Result<(), String> {
        if !self.config.echo_downstream {
            return Ok(());
        }
        let name = &self.config.header_name;
        let id = match given(host::ctx_get(CTX_KEY)).or_else(|| given(req.header(name))) {
            Some(id) => id,
            None => self.generate(req)?,
        };
        res.set_header(name, &id)
    }
}

impl CorrelationId {
    fn generate(&self, req: &Request) -> Result<String, String> {
        match self.config.generator {
            Generator::Uuid => random_uuid(),
            Generator::UuidCounter => Ok(format!("{}#{}", self.base, self.next())),
            Generator::Tracker => {
                Ok(tracker(&req.host(), req.port(), self.instance, &req.client_ip(), self.next(), host::now()))
            }
        }
    }

    fn next(&self) -> u64 {
        let n = self.counter.get().wrapping_add(1);
        self.counter.set(n);
        n
    }
}

/// A header value the client sent, unless it is empty or blank (nginx strips the blanks; Kong then
/// sees an empty header and makes an id).
fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn random_uuid() -> Result<String, String> {
    let mut bytes = [0; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a UUID: {e}"))?;
    Ok(uuid_v4(bytes))
}

/// A UUID v4 from 16 random bytes, lower-case and hyphenated as Kong writes it.
pub fn uuid_v4(random: [u8; 16]) -> String {
    uuid::Builder::from_random_bytes(random).into_uuid().hyphenated().to_string()
}

/// Kong's `tracker` id is `server_addr-server_port-worker_pid-connection-connection_requests-time`.
/// The request handle has none of the first five, so each slot holds the nearest thing it has: the
/// host and port the client addressed, this instance's random id, the client's address, and this
/// instance's request count; the time is Kong's, seconds with milliseconds.
pub fn tracker(host: &str, port: u16, instance: u32, client: &str, count: u64, now: f64) -> String {
    format!("{host}-{port}-{instance}-{client}-{count}-{now:.3}")
}

gateway_pdk::plugin!(CorrelationId);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_pdk::config;

    fn check(json: &str) -> Result<serde_json::Value, Vec<(String, String)>> {
        config::check::<Config>(json, <CorrelationId as Plugin>::validate)
            .map(|filled| serde_json::from_str(&filled).unwrap())
            .map_err(|errors| errors.into_iter().map(|e| (e.path, e.message)).collect())
    }

    #[test]
    fn kongs_defaults() {
        assert_eq!(
            check("{}").unwrap(),
            serde_json::json!({"header_name": "Kong-Request-ID", "generator": "uuid#counter", "echo_downstream": false})
        );
        let filled = check(r#"{"generator": "tracker", "echo_downstream": true, "header_name": "X-Id"}"#).unwrap();
        assert_eq!(filled["generator"], "tracker");
    }

    #[test]
    fn kongs_refusals() {
        let err = |path: &str, message: &str| Err(vec![(path.to_string(), message.to_string())]);
        assert_eq!(check(r#"{"generator": null}"#), err("generator", "required field missing"));
        assert_eq!(check(r#"{"generator": "v7"}"#), err("generator", "expected one of: uuid, uuid#counter, tracker"));
        assert_eq!(check(r#"{"echo_downstream": "yes"}"#), err("echo_downstream", "expected a boolean"));
        assert_eq!(check(r#"{"echo": true}"#), err("echo", "unknown field"));
        assert!(check(r#"{"header_name": "Bad Name"}"#).is_err());
    }

    #[test]
    fn ids_look_like_kongs() {
        let id = uuid_v4([0xab; 16]);
        assert_eq!(id, "abababab-abab-4bab-abab-abababababab");
        assert_eq!(id.len(), 36);
        assert_eq!(
            tracker("example.test", 8000, 42, "10.0.0.1", 7, 1_700_000_000.25),
            "example.test-8000-42-10.0.0.1-7-1700000000.250"
        );
    }

    #[test]
    fn empty_and_blank_ids_are_not_kept() {
        assert_eq!(given(Some("foobar".into())).as_deref(), Some("foobar"));
        assert_eq!(given(Some(String::new())), None);
        assert_eq!(given(Some(" ".into())), None);
        assert_eq!(given(None), None);
    }
}
