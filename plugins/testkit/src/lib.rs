//! Test a plugin from `cargo test`, without starting a gateway: [`Plugin::built`] finds the
//! component this crate builds, and [`Plugin::run`] sends one request through it with
//! `gateway plugin run` (the same host that runs plugins in the gateway), returning what each
//! phase did: the request as it would go upstream, the plugin's own response, the response the
//! client would get, its log lines.
//!
//! ```no_run
//! use gateway_plugin_test::{Plugin, Request};
//! use serde_json::json;
//!
//! let plugin = Plugin::built().unwrap();
//! let outcome = plugin.run(json!({"header_value": "hi"}), Request::get("/")).unwrap();
//! assert_eq!(outcome.upstream_header("x-template"), Some("hi"));
//! ```
//!
//! Build the component first (`cargo build --release`), then run the tests on the host:
//! `cargo test --target host-tuple`. The `gateway` binary is found through `GATEWAY_BIN` or `PATH`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{Value, json};

/// Why a test could not run the plugin (not what the plugin did: that is in [`Outcome`]).
#[derive(Debug)]
pub enum Error {
    /// The component is missing or older than the sources: build it.
    NotBuilt(String),
    /// No `gateway` binary to run it with.
    NoGateway(String),
    /// `gateway plugin run` refused (the component is not a plugin, the input is wrong).
    Refused(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NotBuilt(why) | Error::NoGateway(why) | Error::Refused(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Error {}

/// A plugin component to test.
#[derive(Debug, Clone)]
pub struct Plugin {
    wasm: PathBuf,
    gateway: PathBuf,
    /// Where `gateway plugin run` keeps the compiled component between runs.
    cache: Option<PathBuf>,
}

/// A request to send through the plugin.
#[derive(Debug, Clone)]
pub struct Request {
    input: Value,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Request {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        Request { input: json!({"method": method, "path": path, "query": query, "headers": []}) }
    }

    pub fn get(path: &str) -> Request {
        Request::new("GET", path)
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        if let Some(headers) = self.input["headers"].as_array_mut() {
            headers.push(json!([name, value]));
        }
        self
    }

    /// `https` instead of `http`.
    pub fn https(mut self) -> Request {
        self.input["scheme"] = json!("https");
        self
    }

    pub fn client_ip(mut self, ip: &str) -> Request {
        self.input["client_ip"] = json!(ip);
        self
    }

    /// The request body, handed to the plugin when it asks for it (`Flow::ReadBody`).
    pub fn body(mut self, body: &str) -> Request {
        self.input["body"] = json!(body);
        self
    }

    /// The request as `gateway plugin run` reads it (for [`Plugin::run_input`]).
    pub fn input(&self) -> &Value {
        &self.input
    }
}

/// One message as the plugin left it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Message {
    pub method: Option<String>,
    pub path: Option<String>,
    pub query: Option<String>,
    pub status: Option<u16>,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl Message {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body of a JSON error answer (the gateway's, as Kong's `kong.response.error` makes it)
    /// without its `request_id`, which is checked to be one (32 hex digits). Panics when the body
    /// is no such answer.
    pub fn error_json(&self) -> Value {
        assert_eq!(self.header("content-type"), Some("application/json; charset=utf-8"), "{self:?}");
        let mut body: Value = serde_json::from_str(self.body.as_deref().unwrap_or_default())
            .unwrap_or_else(|e| panic!("the answer is not JSON ({e}): {self:?}"));
        let id = body.as_object_mut().and_then(|o| o.remove("request_id"));
        let id = id.as_ref().and_then(Value::as_str).unwrap_or_default();
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "no request_id: {self:?}");
        body
    }
}

/// What the plugin did with one request.
#[derive(Debug, Clone, Deserialize)]
pub struct Outcome {
    /// The configuration with its defaults filled in.
    pub config: Option<Value>,
    /// The fields `check-config` refused, as (path relative to `config`, message).
    #[serde(default)]
    pub config_errors: Vec<FieldError>,
    /// The request as it would go upstream (`None` if the plugin answered itself or failed).
    pub request: Option<Message>,
    /// The plugin's own response, if it ended the request.
    pub exit: Option<Message>,
    /// The response the client would get.
    pub response: Option<Message>,
    /// The consumer the plugin identified, and the id of the credential it named.
    pub consumer: Option<String>,
    pub credential: Option<String>,
    /// Set when the plugin failed the request (the gateway would answer 500).
    pub error: Option<String>,
    #[serde(default)]
    pub logs: Vec<String>,
    #[serde(default)]
    pub shared: std::collections::HashMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl Outcome {
    /// Header `name` of the request sent upstream.
    pub fn upstream_header(&self, name: &str) -> Option<&str> {
        self.request.as_ref()?.header(name)
    }

    /// Header `name` of the response the client gets.
    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.response.as_ref()?.header(name)
    }

    /// The status the client gets.
    pub fn status(&self) -> Option<u16> {
        self.response.as_ref()?.status
    }
}

impl Plugin {
    /// The component this crate builds (`cargo build --release`), refused if any file under
    /// `src/` is newer than it, so a test never runs yesterday's plugin.
    pub fn built() -> Result<Plugin, Error> {
        let manifest = PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .ok_or_else(|| Error::NotBuilt("CARGO_MANIFEST_DIR is not set: run the tests with cargo".into()))?,
        );
        let name = std::env::var("CARGO_PKG_NAME").unwrap_or_default().replace('-', "_");
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| manifest.join("target"), PathBuf::from);
        let wasm = target.join("wasm32-wasip2/release").join(format!("{name}.wasm"));
        let built = modified(&wasm).ok_or_else(|| {
            Error::NotBuilt(format!("{} is missing: run `cargo build --release` first", wasm.display()))
        })?;
        if let Some(newer) = newest(&manifest.join("src")).filter(|(t, _)| *t > built) {
            return Err(Error::NotBuilt(format!(
                "{} is newer than {}: run `cargo build --release` first",
                newer.1.display(),
                wasm.display()
            )));
        }
        let mut plugin = Plugin::at(wasm)?;
        plugin.cache = Some(target.join("plugin-run"));
        Ok(plugin)
    }

    /// The component at `wasm`.
    pub fn at(wasm: impl Into<PathBuf>) -> Result<Plugin, Error> {
        Ok(Plugin { wasm: wasm.into(), gateway: gateway()?, cache: None })
    }

    /// Runs `request` through the plugin configured with `config`; the upstream answers 200.
    pub fn run(&self, config: Value, request: Request) -> Result<Outcome, Error> {
        self.run_input(json!({"config": config, "request": request.input}))
    }

    /// Runs `request` with these consumers known (Kong's declarative shape, credentials nested:
    /// `{"username": "alice", "keyauth_credentials": [{"key": "k1"}]}`).
    pub fn run_with_consumers(&self, config: Value, request: Request, consumers: Value) -> Result<Outcome, Error> {
        self.run_input(json!({"config": config, "request": request.input, "consumers": consumers}))
    }

    /// Runs `request` as if an earlier plugin had already identified `consumer` (an id or
    /// username of one of `consumers`) with the credential `credential` (an id).
    pub fn run_as(
        &self,
        config: Value,
        request: Request,
        consumers: Value,
        consumer: &str,
        credential: Option<&str>,
    ) -> Result<Outcome, Error> {
        self.run_input(json!({
            "config": config,
            "request": request.input,
            "consumers": consumers,
            "consumer": consumer,
            "credential": credential,
        }))
    }

    /// Runs `request`; the upstream answers with `status`, `headers` and `body`.
    pub fn run_upstream(
        &self,
        config: Value,
        request: Request,
        status: u16,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Outcome, Error> {
        let upstream = json!({"status": status, "headers": headers, "body": body});
        self.run_input(json!({"config": config, "request": request.input, "upstream": upstream}))
    }

    /// What `check-config` says of `config`: the configuration with its defaults, or the fields
    /// at fault.
    pub fn check(&self, config: Value) -> Result<Result<Value, Vec<FieldError>>, Error> {
        let outcome = self.run_input(json!({"config": config}))?;
        Ok(match outcome.config {
            Some(config) if outcome.config_errors.is_empty() => Ok(config),
            _ => Err(outcome.config_errors),
        })
    }

    /// `gateway plugin run` with a whole input document (see `gateway plugin run --help`).
    pub fn run_input(&self, input: Value) -> Result<Outcome, Error> {
        use std::io::Write;
        let mut command = Command::new(&self.gateway);
        command.args(["plugin", "run"]).arg(&self.wasm).args(["--input", "-"]);
        if let Some(cache) = &self.cache {
            command.arg("--cache").arg(cache);
        }
        let running = |e: std::io::Error| Error::NoGateway(format!("running {}: {e}", self.gateway.display()));
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(running)?;
        // The input goes on stdin: a command line cannot carry a large body.
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let text = input.to_string();
        let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
        let out = child.wait_with_output().map_err(running)?;
        let _ = writer.join();
        if !out.status.success() {
            return Err(Error::Refused(String::from_utf8_lossy(&out.stderr).trim().to_string()));
        }
        serde_json::from_slice(&out.stdout)
            .map_err(|e| Error::Refused(format!("`gateway plugin run` answered what this kit does not read: {e}")))
    }
}

/// The `gateway` binary: `GATEWAY_BIN`, else `gateway` on `PATH`.
fn gateway() -> Result<PathBuf, Error> {
    if let Some(bin) = std::env::var_os("GATEWAY_BIN") {
        return Ok(PathBuf::from(bin));
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("gateway"))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::NoGateway("no gateway binary: put it on PATH or set GATEWAY_BIN".into()))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The most recently changed file under `dir`.
fn newest(dir: &Path) -> Option<(SystemTime, PathBuf)> {
    let mut latest: Option<(SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let found = if path.is_dir() { newest(&path) } else { modified(&path).map(|t| (t, path)) };
        if let Some(found) = found
            && latest.as_ref().is_none_or(|(t, _)| found.0 > *t)
        {
            latest = Some(found);
        }
    }
    latest
}
