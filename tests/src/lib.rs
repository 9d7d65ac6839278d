//! The harness of the end-to-end tests: it owns temp dirs, free ports, the `gateway` processes a
//! test starts (stopped by pid on drop) and their logs, so each test reads like the user's story.

pub mod browser;
pub mod peers;
pub mod pki;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any single wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The compile cache the nodes of this build's tests share: `<target>/<profile>/e2e-wasm-cache`,
/// holding every bundled component before the first node of this test process starts.
pub fn shared_wasm_cache() -> PathBuf {
    use std::os::unix::fs::DirBuilderExt;
    static CACHE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CACHE
        .get_or_init(|| {
            let dir = gateway_bin().parent().expect("the binary lives in a directory").join("e2e-wasm-cache");
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => panic!("creating {}: {e}", dir.display()),
            }
            precompile_into(&dir);
            dir
        })
        .clone()
}

/// `gateway precompile` on the built-in defaults into `cache`, once per test process. Without it,
/// the first nodes that tests start together after a plugin changed would each compile every
/// bundled component at once, on a machine busy with the other tests, against their start-up
/// deadline. With the cache warm this takes a few milliseconds per component.
fn precompile_into(cache: &Path) {
    let prefix = tempfile::tempdir().expect("a prefix for gateway precompile");
    let out = Command::new(gateway_bin())
        .arg("precompile")
        .current_dir(prefix.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KONG_PREFIX", prefix.path())
        .env("KONG_WASM_CACHE_PATH", cache)
        .envs(ERROR_LOGS_TO_STDERR)
        .envs(NODE_DEFAULTS)
        .output()
        .expect("running gateway precompile");
    assert!(out.status.success(), "gateway precompile into {}: {}", cache.display(), stderr(&out));
}

/// The `gateway` binary of this build. `cargo test --workspace` builds it before any test runs
/// (the `gateway` package has an integration test, which makes cargo build its binary).
pub fn gateway_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    // Tests live in <target>/<profile>/deps/, binaries (the benches) in <target>/<profile>/.
    let mut dir = exe.parent().expect("a binary lives in a directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().expect("deps/ lives in a profile directory");
    }
    let bin = dir.join("gateway");
    assert!(bin.is_file(), "{} is missing: run the tests with `cargo test --workspace`", bin.display());
    bin
}

/// The repository's root, for shipped files such as `conf/`.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the repository root").to_path_buf()
}

/// A port on 127.0.0.1 that was free a moment ago.
///
/// Ports come from below the kernel's ephemeral range (32768 and up on Linux), so an outgoing
/// connection of another test cannot take one between this call and the bind of the process it is
/// meant for, and the suite never hands out the same port twice (a process-wide counter, started at
/// a place that depends on the pid so that two test binaries do not walk in step).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN)
}

/// Polls `check` until it returns `Some` or the deadline passes.
pub fn poll<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `gateway` with `args` to completion.
pub fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(gateway_bin());
    cmd.current_dir(dir).args(args).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd.envs(ERROR_LOGS_TO_STDERR).envs(NODE_DEFAULTS);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running gateway")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The node's messages on stderr, where the tests read them (Kong's defaults are files under the
/// prefix; a test of those passes its own values).
pub const ERROR_LOGS_TO_STDERR: [(&str, &str); 4] = [
    ("KONG_PROXY_ERROR_LOG", "/dev/stderr"),
    ("KONG_ADMIN_ERROR_LOG", "/dev/stderr"),
    ("KONG_STATUS_ERROR_LOG", "/dev/stderr"),
    ("KONG_ADMIN_GUI_ERROR_LOG", "/dev/stderr"),
];

/// What every node a test starts runs with unless the test says otherwise (its `env` wins, and
/// `KONG_*` variables win over the file): no console, whose default address (127.0.0.1:8002)
/// nodes running side by side would fight over. A test of the console passes
/// `KONG_ADMIN_GUI_LISTEN` with a free port.
pub const NODE_DEFAULTS: [(&str, &str); 1] = [("KONG_ADMIN_GUI_LISTEN", "off")];

/// A `gateway` process started in the background, with its stderr collected.
pub struct Gateway {
    child: Child,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Gateway {
    /// Starts `gateway ARGS` in `dir` with a clean environment plus `env`.
    ///
    /// Nodes share one compile cache (`wasm_cache_path`, in the target dir), so each component is
    /// compiled once per build rather than at every start; a test of the cache itself passes
    /// `KONG_WASM_CACHE_PATH` empty (the cache in the node's prefix) or its own.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Gateway {
        Gateway::start_via(&[], dir, args, env)
    }

    /// [`Gateway::start`] through a program that `exec`s it (e.g. `prlimit --nofile=S:H --`), so
    /// the gateway keeps the child's pid.
    pub fn start_via(wrapper: &[&str], dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let mut cmd = match wrapper.split_first() {
            None => Command::new(gateway_bin()),
            Some((program, rest)) => {
                let mut cmd = Command::new(program);
                cmd.args(rest).arg(gateway_bin());
                cmd
            }
        };
        cmd.current_dir(dir)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KONG_WASM_CACHE_PATH", shared_wasm_cache())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd.envs(ERROR_LOGS_TO_STDERR).envs(NODE_DEFAULTS);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("starting gateway");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[gateway] {line}");
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Gateway { child, log, reader: Some(reader) }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process has written to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`; fails early if the process exits first.
    pub fn wait_for_log(&mut self, needle: &str) {
        poll(&format!("`{needle}` in the gateway log"), DEADLINE, || {
            if self.log().contains(needle) {
                return Some(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("gateway exited ({status}) before logging `{needle}`:\n{}", self.log());
            }
            None
        })
    }

    /// Like [`Gateway::wait_for_log`], but a process that exits first is an `Err` holding its log
    /// (a caller may retry a start that lost a free port to another process).
    pub fn try_wait_for_log(&mut self, needle: &str) -> Result<(), String> {
        poll(&format!("`{needle}` in the gateway log"), DEADLINE, || {
            if self.log().contains(needle) {
                return Some(Ok(()));
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return Some(Err(self.log()));
            }
            None
        })
    }

    /// Sends a signal by name (`TERM`, `INT`, ...) to this process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args(["-s", name, &self.pid().to_string()]).status().expect("running kill");
        assert!(status.success(), "kill -s {name} {} failed", self.pid());
    }

    /// Waits for the process to exit, at most `deadline`.
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let status = poll("the gateway to exit", deadline, || self.child.try_wait().expect("waiting for gateway"));
        // The pipe is closed now: once the reader ends, the log holds everything the process wrote.
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        status
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A minimal HTTP/1.1 response, enough to check status APIs.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

impl HttpResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// `GET path` on `addr` with `Connection: close`.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
    Ok(HttpResponse { status, body: body.to_string() })
}

/// A temp dir holding a kong.conf made of `lines`; returns the dir and the file's path.
pub fn conf_dir(lines: &[String]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("creating a temp dir");
    let path = dir.path().join("kong.conf");
    std::fs::write(&path, lines.join("\n") + "\n").expect("writing kong.conf");
    (dir, path)
}

/// A small HTTP/1.1 upstream for proxy tests, on a free port: it answers every request with JSON
/// describing what it received (`port`, `method`, `path`, `headers`, `body_len`, and `body`: the
/// first 64 KiB as text), keeps connections alive, reads request bodies (`Content-Length` or
/// chunked) as a stream (counting, storing no more than that), waits before reading
/// the body of `/noread/<ms>` and before answering `/slow/<ms>`, streams `<n>` bytes for `/bytes/<n>`, and answers a request carrying `Upgrade` with
/// 101 and then echoes raw bytes back. Its threads end with the test process.
pub struct EchoServer {
    pub addr: SocketAddr,
    /// Requests whose head has been read so far.
    pub seen: Arc<std::sync::atomic::AtomicUsize>,
    /// Connections open now.
    pub open: Arc<std::sync::atomic::AtomicUsize>,
}

impl EchoServer {
    pub fn start() -> EchoServer {
        EchoServer::serve(Some)
    }

    /// The same over TLS with `cert` (PEM chain) and `key`, speaking HTTP/1.1.
    pub fn start_tls(cert: &str, key: &str) -> EchoServer {
        use rustls_pki_types::pem::PemObject;
        let chain = rustls_pki_types::CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<Vec<_>, _>>();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("the echo server's key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain.expect("the echo server's certificate"), key)
            .expect("the echo server's TLS config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        EchoServer::serve(move |stream| {
            let conn = rustls::ServerConnection::new(config.clone()).ok()?;
            Some(rustls::StreamOwned::new(conn, stream))
        })
    }

    fn serve<S: Read + Write + Send + 'static>(wrap: impl Fn(TcpStream) -> Option<S> + Send + 'static) -> EchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the echo server");
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (counter, connections) = (seen.clone(), open.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let connections = connections.clone();
                match wrap(stream) {
                    Some(stream) => {
                        let stream: Box<dyn ReadWrite> = Box::new(stream);
                        let counter = counter.clone();
                        std::thread::spawn(move || {
                            echo_connection(stream, addr.port(), &counter);
                            connections.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        });
                    }
                    None => {
                        connections.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            }
        });
        EchoServer { addr, seen, open }
    }
}

/// The first 64 KiB written to it; the rest is counted by the caller and dropped.
#[derive(Default)]
struct KeptPrefix(Vec<u8>);

impl Write for KeptPrefix {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = (64 * 1024usize).saturating_sub(self.0.len());
        self.0.extend_from_slice(&buf[..buf.len().min(room)]);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads a chunked body (and its trailers); `None` if the stream breaks or lies.
fn read_chunked(reader: &mut impl BufRead, kept: &mut KeptPrefix) -> Option<u64> {
    let mut total = 0u64;
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let size = u64::from_str_radix(size.trim().split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            loop {
                let mut trailer = String::new();
                if reader.read_line(&mut trailer).ok()? == 0 || trailer.trim().is_empty() {
                    return Some(total);
                }
            }
        }
        if std::io::copy(&mut reader.take(size), kept).ok()? != size {
            return None;
        }
        total += size;
        let mut end = String::new();
        reader.read_line(&mut end).ok()?;
    }
}

trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

fn echo_connection(stream: Box<dyn ReadWrite>, port: u16, seen: &std::sync::atomic::AtomicUsize) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut headers = serde_json::Map::new();
        let mut content_length = 0u64;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let name = name.trim().to_ascii_lowercase();
                let value = value.trim().to_string();
                if name == "content-length" {
                    content_length = value.parse().unwrap_or(0);
                }
                match headers.get_mut(&name) {
                    Some(serde_json::Value::String(existing)) => *existing = format!("{existing}, {value}"),
                    _ => {
                        headers.insert(name, serde_json::Value::String(value));
                    }
                }
            }
        }
        if headers.contains_key("upgrade") {
            let protocol = headers["upgrade"].as_str().unwrap_or_default().to_string();
            let key = headers.get("sec-websocket-key").and_then(|v| v.as_str()).unwrap_or_default().to_string();
            let head = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: {protocol}\r\nConnection: Upgrade\r\nX-Echo-Key: {key}\r\n\r\n"
            );
            if reader.get_mut().write_all(head.as_bytes()).is_err() {
                return;
            }
            let mut chunk = vec![0u8; 64 * 1024];
            while let Ok(n @ 1..) = reader.read(&mut chunk) {
                if reader.get_mut().write_all(&chunk[..n]).is_err() {
                    return;
                }
            }
            return;
        }
        if let Some(ms) = path.strip_prefix("/noread/").and_then(|ms| ms.parse::<u64>().ok()) {
            std::thread::sleep(Duration::from_millis(ms));
        }
        let chunked = headers.get("transfer-encoding").and_then(|v| v.as_str()).is_some_and(|v| v.contains("chunked"));
        let mut kept = KeptPrefix::default();
        let received = if chunked {
            match read_chunked(&mut reader, &mut kept) {
                Some(n) => n,
                None => return,
            }
        } else {
            match std::io::copy(&mut (&mut reader).take(content_length), &mut kept) {
                Ok(n) if n == content_length => n,
                _ => return,
            }
        };
        if let Some(ms) = path.strip_prefix("/slow/").and_then(|ms| ms.parse::<u64>().ok()) {
            std::thread::sleep(Duration::from_millis(ms));
        }
        if let Some(n) = path.strip_prefix("/bytes/").and_then(|n| n.parse::<u64>().ok()) {
            let head =
                format!("HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {n}\r\n\r\n");
            let mut body = std::io::repeat(b'x').take(n);
            let writer = reader.get_mut();
            if writer.write_all(head.as_bytes()).is_err() || std::io::copy(&mut body, writer).is_err() {
                return;
            }
            continue;
        }
        let body = String::from_utf8_lossy(&kept.0).into_owned();
        let json = serde_json::json!({ "port": port, "method": method, "path": path, "headers": headers, "body_len": received, "body": body });
        let json = json.to_string();
        // `X-Echo-Set-<name>: <value>` asks for a response header `<name>: <value>` (response
        // plugins' tests need headers from the upstream).
        let extra: String = headers
            .iter()
            .filter_map(|(name, value)| Some((name.strip_prefix("x-echo-set-")?, value.as_str()?)))
            .map(|(name, value)| format!("{name}: {value}\r\n"))
            .collect();
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\n\r\n{json}",
            json.len()
        );
        if reader.get_mut().write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// A DB-less node serving a declarative file, with its proxy on a free port.
pub struct DbLess {
    pub gateway: Gateway,
    pub proxy: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl DbLess {
    /// Starts a node serving `yaml`; `extra` kong.conf lines are appended (and win).
    pub fn start(yaml: &str, extra: &[String]) -> DbLess {
        DbLess::start_at(free_port(), yaml, extra)
    }

    pub fn start_at(port: u16, yaml: &str, extra: &[String]) -> DbLess {
        let dir = DbLess::dir(port, yaml, extra);
        let mut gateway = Gateway::start(dir.path(), &["-c", "kong.conf"], &[]);
        gateway.wait_for_log("gateway started");
        DbLess { gateway, proxy: SocketAddr::from(([127, 0, 0, 1], port)), dir }
    }

    /// A temp dir with a DB-less kong.conf (proxy on `port`, debug headers on) and `yaml` as kong.yml.
    pub fn dir(port: u16, yaml: &str, extra: &[String]) -> tempfile::TempDir {
        let mut lines = vec![
            "database = off".into(),
            "declarative_config = kong.yml".into(),
            "prefix = servroot".into(),
            format!("proxy_listen = 127.0.0.1:{port}"),
            "admin_listen = off".into(),
            "status_listen = off".into(),
            "allow_debug_header = on".into(),
        ];
        lines.extend_from_slice(extra);
        let (dir, _) = conf_dir(&lines);
        std::fs::write(dir.path().join("kong.yml"), yaml).expect("writing kong.yml");
        dir
    }
}

/// A component from `plugins/testing/`, built by the gateway's build script beside the bundled ones.
pub fn wasm_fixture(crate_name: &str) -> PathBuf {
    let bin = gateway_bin();
    let target = bin
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .expect("the gateway binary lives in a cargo target dir");
    let file = target.join("wasm-plugins/wasm32-wasip2/release").join(format!("{}.wasm", crate_name.replace('-', "_")));
    assert!(file.is_file(), "{} is missing: gateway/build.rs builds it", file.display());
    file
}

/// A process's peak resident memory (`VmHWM`), in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reading /proc/PID/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib * 1024
}

/// A response with its headers, for proxy tests.
#[derive(Debug)]
pub struct Exchange {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Exchange {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// Sends one HTTP/1.1 request (`Connection: close`) with extra headers and reads the whole answer.
pub fn http_request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Exchange> {
    http_send(addr, method, path, headers, None)
}

/// A JSON request (`body` serialised, with its content type).
pub fn http_json(addr: SocketAddr, method: &str, path: &str, body: &serde_json::Value) -> Exchange {
    let text = body.to_string();
    http_send(addr, method, path, &[("Content-Type", "application/json")], Some(text.as_bytes()))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// A form request (`a=1&paths[]=/x`), as `curl -d` sends it.
pub fn http_form(addr: SocketAddr, method: &str, path: &str, form: &str) -> Exchange {
    http_send(addr, method, path, &[("Content-Type", "application/x-www-form-urlencoded")], Some(form.as_bytes()))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Sends one request with an optional body and reads the whole answer.
pub fn http_send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<Exchange> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes())?;
    if let Some(body) = body {
        stream.write_all(body)?;
    }
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    exchange_of(&raw)
}

/// A `POST` to `path` whose body goes in `chunks` (`Transfer-Encoding: chunked`, no
/// `Content-Length`), and the whole answer. A refusal may come, and the connection close, before
/// all of the body is written: the answer is read all the same.
pub fn http_send_chunked(addr: SocketAddr, path: &str, chunks: &[&str]) -> std::io::Result<Exchange> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(DEADLINE))?;
    let mut request =
        format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    for chunk in chunks {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");
    let _ = stream.write_all(request.as_bytes());
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    exchange_of(&raw)
}

/// An HTTP/1.1 answer as read off the wire: status, headers, and the body (de-chunked).
fn exchange_of(raw: &[u8]) -> std::io::Result<Exchange> {
    let raw = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_string(), v.trim().to_string())).collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked { dechunk(body)? } else { body.to_string() };
    Ok(Exchange { status, headers, body })
}

/// A chunked body's data.
fn dechunk(mut raw: &str) -> std::io::Result<String> {
    let bad = || std::io::Error::other("a malformed chunked body");
    let mut out = String::new();
    loop {
        let (size, rest) = raw.split_once("\r\n").ok_or_else(bad)?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or_default().trim(), 16).map_err(|_| bad())?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).ok_or_else(bad)?);
        raw = rest.get(size..).and_then(|r| r.strip_prefix("\r\n")).ok_or_else(bad)?;
    }
}

/// Connects to `addr`, sends nothing, and returns how long the server kept the connection open
/// (it must close it, by EOF or reset, within [`DEADLINE`]).
pub fn silent_connection_lifetime(addr: SocketAddr) -> Duration {
    let mut silent = TcpStream::connect(addr).expect("connecting");
    silent.set_read_timeout(Some(DEADLINE)).unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let read = silent.read(&mut buf);
    assert!(matches!(read, Ok(0) | Err(_)), "closed: {read:?}");
    let lived = started.elapsed();
    assert!(lived < DEADLINE, "closed within the deadline");
    lived
}
