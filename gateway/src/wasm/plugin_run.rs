//! `gateway plugin run`: one request through one plugin, without a gateway around it. The plugin
//! is configured (after its `check-config`), then called in each phase it declares, in Kong's
//! order, on a request and an upstream response given as JSON; the answer (JSON) says what each
//! phase left: the request as it would go upstream, the plugin's own response if it ended the
//! request, the response as it would reach the client, the log lines and the shared context.
//! The author's test kit (`plugins/testkit`) drives plugins through this from `cargo test`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::plugin::{
    CallContext, Directory, Flow, LoadedPlugin, NodeShared, Phase, PluginFailure, RequestHandle, ResponseHandle,
};
use super::{WasmError, WasmRuntime};

/// What to run: the configuration and the request (and the upstream's response, if it gets there).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunInput {
    pub config: serde_json::Value,
    pub request: InRequest,
    /// The upstream's answer when the plugin lets the request through (default: 200, no body).
    pub upstream: Option<InResponse>,
    /// Consumers a plugin may identify with `set-consumer`.
    pub consumers: Vec<InConsumer>,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InRequest {
    pub method: String,
    pub scheme: String,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub client_ip: String,
}

impl Default for InRequest {
    fn default() -> Self {
        InRequest {
            method: "GET".into(),
            scheme: "http".into(),
            host: "localhost".into(),
            port: 8000,
            path: "/".into(),
            query: String::new(),
            headers: Vec::new(),
            client_ip: "127.0.0.1".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Default for InResponse {
    fn default() -> Self {
        InResponse { status: 200, headers: Vec::new(), body: String::new() }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InConsumer {
    pub id: String,
    #[serde(default)]
    pub username: Option<String>,
}

/// What happened.
#[derive(Debug, Default, Serialize)]
pub struct RunOutput {
    /// The configuration with its defaults, as `check-config` answered.
    pub config: Option<serde_json::Value>,
    /// `check-config`'s refusal: path (relative to `config`) and message of each field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub config_errors: Vec<OutFieldError>,
    /// The request as it would go upstream (after `rewrite` and `access`).
    pub request: Option<OutMessage>,
    /// The plugin's own response, if it ended the request.
    pub exit: Option<OutMessage>,
    /// The response as it would reach the client (after `header_filter` and `body_filter`).
    pub response: Option<OutMessage>,
    /// The consumer the plugin identified, by id.
    pub consumer: Option<String>,
    /// The failure that ended the request (the gateway would answer 500): phase and reason.
    pub error: Option<String>,
    pub logs: Vec<String>,
    /// `ctx-set` values at the end.
    pub shared: HashMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct OutFieldError {
    pub path: String,
    pub message: String,
}

#[derive(Debug, Default, Serialize)]
pub struct OutMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

fn headers_of(list: &[(String, String)]) -> Result<hyper::HeaderMap, String> {
    let mut headers = hyper::HeaderMap::new();
    for (name, value) in list {
        let name = hyper::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a header name"))?;
        let value = hyper::header::HeaderValue::from_str(value)
            .map_err(|_| format!("the value of {name} is not a header value"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

fn list_of(headers: &hyper::HeaderMap) -> Vec<(String, String)> {
    headers.iter().map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect()
}

/// Why the run could not happen at all (the input or the component, not the plugin's behaviour).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the input: {0}")]
    Input(String),
    #[error(transparent)]
    Wasm(#[from] WasmError),
}

/// Runs `input` through the plugin `wasm`.
pub fn run(runtime: &WasmRuntime, name: &str, wasm: &[u8], input: RunInput) -> Result<RunOutput, RunError> {
    let plugin = LoadedPlugin::load(runtime, name, wasm)?;
    let mut out = RunOutput::default();
    let checked = match plugin.check_config(&input.config.to_string())? {
        Ok(checked) => checked,
        Err(errors) => {
            out.config_errors =
                errors.into_iter().map(|e| OutFieldError { path: e.path, message: e.message }).collect();
            return Ok(out);
        }
    };
    out.config = serde_json::from_str(&checked).ok();
    let shared = Arc::new(NodeShared::default());
    let mut instance = match plugin.configure(&checked, Duration::from_millis(100), super::plugin::MEMORY_LIMIT, shared)
    {
        Ok(instance) => instance,
        Err(failure) => {
            out.error = Some(failure.to_string());
            return Ok(out);
        }
    };
    let consumers: Vec<crate::entities::Consumer> = input
        .consumers
        .iter()
        .map(|c| {
            let id = c.id.parse().map_err(|_| RunError::Input(format!("consumer id {:?} is not a UUID", c.id)))?;
            Ok(crate::entities::Consumer { id, username: c.username.clone(), custom_id: None, tags: Vec::new() })
        })
        .collect::<Result<_, RunError>>()?;
    let call = CallContext {
        directory: Some(Arc::new(Directory::new(&consumers))),
        logs: Some(Vec::new()),
        ..CallContext::default()
    };
    instance.set_call(call);
    let r = input.request;
    let mut request = RequestHandle {
        method: r.method,
        scheme: r.scheme,
        host: r.host,
        port: r.port,
        path: r.path,
        query: r.query,
        headers: headers_of(&r.headers).map_err(RunError::Input)?,
        client_ip: r.client_ip,
    };
    let phases = plugin.descriptor.phases.clone();
    let declared = |p: Phase| phases.contains(&p);
    let failed = |phase: &str, failure: PluginFailure| Some(format!("{phase}: {failure}"));
    let mut exit = None;
    for phase in [Phase::Rewrite, Phase::Access].into_iter().filter(|p| declared(*p)) {
        match instance.request_phase(phase, &mut request) {
            Ok(Flow::Proceed) => {}
            Ok(Flow::Respond(e)) => {
                exit = Some(e);
                break;
            }
            Err(failure) => {
                out.error = failed(super::plugin::phase_name(phase), failure);
                break;
            }
        }
    }
    let (mut response, body) = match (&exit, input.upstream) {
        (Some(e), _) => (
            ResponseHandle { status: e.status, headers: headers_of(&e.headers).map_err(RunError::Input)? },
            e.body.clone(),
        ),
        (None, upstream) => {
            let u = upstream.unwrap_or_default();
            (
                ResponseHandle { status: u.status, headers: headers_of(&u.headers).map_err(RunError::Input)? },
                u.body.into_bytes(),
            )
        }
    };
    out.exit = exit.map(|e| OutMessage {
        status: Some(e.status),
        headers: e.headers,
        body: Some(String::from_utf8_lossy(&e.body).into_owned()),
        ..OutMessage::default()
    });
    let mut body = body;
    if out.error.is_none() {
        if out.exit.is_none() {
            out.request = Some(OutMessage {
                method: Some(request.method.clone()),
                path: Some(request.path.clone()),
                query: Some(request.query.clone()),
                headers: list_of(&request.headers),
                ..OutMessage::default()
            });
        }
        if declared(Phase::HeaderFilter)
            && let Err(failure) = instance.header_filter(&mut request, &mut response)
        {
            out.error = failed("header_filter", failure);
        }
        if out.error.is_none() && declared(Phase::BodyFilter) {
            match instance.body_filter(&mut response, &body, true) {
                Ok(filtered) => body = filtered,
                Err(failure) => out.error = failed("body_filter", failure),
            }
        }
        if out.error.is_none() {
            out.response = Some(OutMessage {
                status: Some(response.status),
                headers: list_of(&response.headers),
                body: Some(String::from_utf8_lossy(&body).into_owned()),
                ..OutMessage::default()
            });
        }
    }
    if declared(Phase::Log)
        && let Err(failure) = instance.log(&mut request, &mut response)
    {
        out.error.get_or_insert_with(|| format!("log: {failure}"));
    }
    let call = instance.take_call();
    out.consumer = call.consumer.map(|c| c.id);
    out.logs = call.logs.unwrap_or_default();
    out.shared = call.shared;
    Ok(out)
}
