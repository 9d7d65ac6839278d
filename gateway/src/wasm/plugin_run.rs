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
    /// Consumers a plugin may identify with `set-consumer` and find, in Kong's declarative
    /// shape, with their credentials nested (`keyauth_credentials`, `basicauth_credentials`,
    /// `jwt_secrets`, `acls`).
    pub consumers: Vec<serde_json::Value>,
    /// The consumer (id or username, one of `consumers`) an earlier plugin already identified,
    /// and the credential id it named.
    pub consumer: Option<String>,
    pub credential: Option<String>,
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
    /// The request body, handed to a plugin that asks for it (`flow::read-body`).
    pub body: Option<String>,
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
            body: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The body in these chunks instead (`body_filter` is called once per chunk, `eof` on the
    /// last).
    pub chunks: Option<Vec<String>>,
}

impl Default for InResponse {
    fn default() -> Self {
        InResponse { status: 200, headers: Vec::new(), body: String::new(), chunks: None }
    }
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
    /// The consumer the plugin identified, by id, and the credential it named.
    pub consumer: Option<String>,
    pub credential: Option<String>,
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
    let document = serde_json::json!({ "_format_version": "3.0", "consumers": input.consumers });
    let entities = crate::entities::parse_value(&document).map_err(|errors| {
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        RunError::Input(errors.join("; "))
    })?;
    let entity =
        super::plugin::PluginEntity { id: uuid::Uuid::nil().to_string(), route: None, service: None, consumer: None };
    let directory = Arc::new(Directory::new(&entities).with_entities(vec![entity]));
    let consumer = match &input.consumer {
        None => None,
        Some(key) => {
            let found = directory
                .consumer_by_id_or_username(key)
                .ok_or_else(|| RunError::Input(format!("consumer {key:?} is not one of `consumers`")))?;
            Some(found.id)
        }
    };
    let call = CallContext {
        entity: Some(0),
        consumer,
        credential: input.credential.clone(),
        directory: Some(Arc::new(super::plugin::LocalDirectory(directory))),
        logs: Some(Vec::new()),
        request_id: Some(crate::logs::RequestId::new()),
        ..CallContext::default()
    };
    instance.set_call(call);
    let r = input.request;
    let mut request = RequestHandle {
        method: hyper::Method::from_bytes(r.method.as_bytes())
            .map_err(|_| RunError::Input(format!("request.method: {:?} is not a method", r.method)))?,
        scheme: match r.scheme.as_str() {
            "http" => "http",
            "https" => "https",
            other => return Err(RunError::Input(format!("request.scheme: {other:?} is neither http nor https"))),
        },
        host: r.host,
        port: r.port,
        path: r.path,
        query: r.query,
        headers: headers_of(&r.headers).map_err(RunError::Input)?,
        client_ip: match r.client_ip.parse() {
            Ok(ip) => super::plugin::ClientIp::Ip(ip),
            Err(_) => super::plugin::ClientIp::Text(r.client_ip),
        },
        body: crate::proxy::phases::BodyState::Unread,
        new_body: None,
        body_settable: true,
        host_set: false,
    };
    let client_body = r.body.map(String::into_bytes).unwrap_or_default();
    let phases = plugin.descriptor.phases.clone();
    let declared = |p: Phase| phases.contains(&p);
    let failed = |phase: &str, failure: PluginFailure| Some(format!("{phase}: {failure}"));
    let mut exit = None;
    'phases: for phase in [Phase::Rewrite, Phase::Access].into_iter().filter(|p| declared(*p)) {
        let mut read = false;
        loop {
            match instance.request_phase(phase, &mut request) {
                Ok(Flow::Proceed) => break,
                Ok(Flow::ReadBody(_)) if read => {
                    out.error = Some(format!(
                        "{}: asked for the request body again once it had it",
                        super::plugin::phase_name(phase)
                    ));
                    break 'phases;
                }
                Ok(Flow::ReadBody(max)) => {
                    read = true;
                    if matches!(request.body, crate::proxy::phases::BodyState::Unread) {
                        let max = u64::from(max).min(crate::proxy::client_body::PLUGIN_BODY_CAP);
                        request.body = if client_body.len() as u64 > max {
                            crate::proxy::phases::BodyState::TooLarge(client_body.len() as u64)
                        } else {
                            crate::proxy::phases::BodyState::Complete(client_body.clone().into())
                        };
                    }
                }
                Ok(Flow::Respond(e)) => {
                    exit = Some(e);
                    break 'phases;
                }
                Err(failure) => {
                    out.error = failed(super::plugin::phase_name(phase), failure);
                    break 'phases;
                }
            }
        }
    }
    request.body_settable = false;
    let (mut response, chunks) = match (&exit, input.upstream) {
        (Some(e), _) => (
            ResponseHandle { status: e.status, headers: headers_of(&e.headers).map_err(RunError::Input)? },
            vec![e.body.clone()],
        ),
        (None, upstream) => {
            let u = upstream.unwrap_or_default();
            let chunks = match u.chunks {
                Some(chunks) => chunks.into_iter().map(String::into_bytes).collect(),
                None => vec![u.body.into_bytes()],
            };
            (ResponseHandle { status: u.status, headers: headers_of(&u.headers).map_err(RunError::Input)? }, chunks)
        }
    };
    out.exit = exit.map(|e| OutMessage {
        status: Some(e.status),
        headers: e.headers,
        body: Some(String::from_utf8_lossy(&e.body).into_owned()),
        ..OutMessage::default()
    });
    let mut body = Vec::new();
    if out.error.is_none() {
        if out.exit.is_none() {
            let sent = match (&request.new_body, &request.body) {
                (Some(new), _) => Some(new.to_vec()),
                (None, _) if !client_body.is_empty() => Some(client_body.clone()),
                _ => None,
            };
            out.request = Some(OutMessage {
                method: Some(request.method.to_string()),
                path: Some(request.path.clone()),
                query: Some(request.query.clone()),
                headers: list_of(&request.headers),
                body: sent.map(|b| String::from_utf8_lossy(&b).into_owned()),
                ..OutMessage::default()
            });
        }
        // Headers set ahead of the response (`set-response-headers`), then `header_filter`.
        let ahead = |instance: &mut super::plugin::PluginInstance, response: &mut ResponseHandle| {
            for (name, value) in instance.call_mut().response_headers.drain(..) {
                response.headers.insert(name, value);
            }
        };
        ahead(&mut instance, &mut response);
        instance.call_mut().body_passed = Some(false);
        if declared(Phase::HeaderFilter)
            && let Err(failure) = instance.header_filter(&mut request, &mut response)
        {
            out.error = failed("header_filter", failure);
        }
        ahead(&mut instance, &mut response);
        // `pass-body`: the body goes out as it came, as the proxy sends it.
        let filtered = declared(Phase::BodyFilter) && instance.call_mut().body_passed != Some(true);
        instance.call_mut().body_passed = None;
        instance.call_mut().head_sent = true;
        let last = chunks.len().saturating_sub(1);
        for (i, chunk) in chunks.into_iter().enumerate() {
            if out.error.is_some() {
                break;
            }
            if !filtered {
                body.extend_from_slice(&chunk);
                continue;
            }
            match instance.body_filter(&mut response, &chunk, i == last) {
                Ok(filtered) => body.extend_from_slice(&filtered),
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
    out.consumer = call.consumer.map(|c| c.to_string());
    out.credential = call.credential;
    out.logs = call.logs.unwrap_or_default();
    out.shared = call.shared;
    Ok(out)
}
