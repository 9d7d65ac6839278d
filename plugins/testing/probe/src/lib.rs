//! A plugin that shows the end-to-end tests what ran (never bundled). `access` sets the request
//! headers `X-Probe: <tag>` (so the upstream sees which scope's configuration won) and
//! `X-Probe-Client: <client ip as the host reports it>`, and the shared
//! context's `probe` to the tag, and with `exit_status` ends the request with that status,
//! `exit_body` and `X-Probe-Exit: 1`; `header_filter` sets the response header `X-Probe-Seen` to the
//! context's `probe`; `log` writes `probe log status=<status> tag=<tag>` at info. With
//! `read_body: N` it asks for the request body (up to N bytes) and tells the upstream what it got
//! in `X-Probe-Body` (`<length>`, or `too-large <n>`); with `set_body` it replaces the body.
//! With `response_headers` (`[[name, value], ...]`) it sets them ahead of the response in one
//! `set-response-headers` call, and a refusal goes upstream in `X-Probe-Refused`; with `counter`
//! it adds one to that node counter and sends the count upstream in `X-Probe-Count`; with
//! `key` it authenticates by that key-auth key and sends `X-Probe-Key: found` or `unknown`.

use gateway_pdk::{Body, Exit, FieldError, Flow, LogLevel, Phase, Plugin, Request, Response, host};
use serde::{Deserialize, Serialize};

#[derive(Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Probe {
    exit_status: Option<u16>,
    exit_body: Option<String>,
    tag: Option<String>,
    read_body: Option<u32>,
    set_body: Option<String>,
    response_headers: Option<Vec<(String, String)>>,
    counter: Option<String>,
    key: Option<String>,
}

impl Plugin for Probe {
    type Config = Self;
    const NAME: &'static str = "probe";
    const PRIORITY: i32 = 500;
    const PHASES: &'static [Phase] = &[Phase::Access, Phase::HeaderFilter, Phase::Log];

    fn validate(config: &Self) -> Vec<FieldError> {
        match config.exit_status {
            Some(status) if !(100..=599).contains(&status) => {
                vec![FieldError::new("exit_status", "value should be between 100 and 599")]
            }
            _ => Vec::new(),
        }
    }

    fn configure(config: Self) -> Result<Self, String> {
        Ok(config)
    }

    fn access(&self, req: &Request) -> Result<Flow, String> {
        if let Some(tag) = &self.tag {
            req.set_header("X-Probe", tag)?;
            req.set_header("X-Probe-Client", &req.client_ip())?;
            host::ctx_set("probe", tag);
        }
        if let Some(max) = self.read_body {
            let seen = match req.body() {
                Body::Unread => return Ok(Flow::ReadBody(max)),
                Body::Complete(body) => body.len().to_string(),
                Body::TooLarge(n) => format!("too-large {n}"),
            };
            req.set_header("X-Probe-Body", &seen)?;
        }
        if let Some(body) = &self.set_body {
            req.set_body(body.as_bytes())?;
        }
        if let Some(headers) = &self.response_headers
            && let Err(refused) = host::set_response_headers(headers)
        {
            req.set_header("X-Probe-Refused", &refused)?;
        }
        if let Some(counter) = &self.counter {
            req.set_header("X-Probe-Count", &host::incr(counter, 1, 60).to_string())?;
        }
        if let Some(key) = &self.key {
            let found = host::authenticate_key(req, "keyauth_credentials", key)?;
            req.set_header("X-Probe-Key", if found { "found" } else { "unknown" })?;
        }
        Ok(match self.exit_status {
            Some(status) => Flow::Respond(Exit {
                status,
                headers: vec![("X-Probe-Exit".into(), "1".into())],
                body: self.exit_body.clone().unwrap_or_default().into_bytes(),
            }),
            None => Flow::Proceed,
        })
    }

    fn header_filter(&self, _req: &Request, res: &Response) -> Result<(), String> {
        res.set_header("X-Probe-Seen", &host::ctx_get("probe").unwrap_or_default())
    }

    fn log(&self, _req: &Request, res: &Response) {
        let tag = self.tag.as_deref().unwrap_or_default();
        host::log(LogLevel::Info, &format!("probe log status={} tag={tag}", res.status()));
    }
}

gateway_pdk::plugin!(Probe);
