//! acl behind key-auth and basic-auth in a real gateway: a DB-less node (`GATEWAY_BIN`) loads the
//! three components from disk (`wasm_plugins_path`) and proxies to an upstream that echoes the
//! headers it got. Build the three first:
//! `cargo build --release --target wasm32-wasip2 -p key-auth -p basic-auth -p acl`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ALICE: &str = "6f3c2a5e-1b7d-4c11-9a8e-0d2b4e6f8a01";
const ALICE_KEY: &str = "0b7c5d2e-3f4a-4b6c-8d9e-1f2a3b4c5d01";
const ANON: &str = "9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a502";
const GUEST: &str = "3d2c1b0a-9f8e-4d7c-a6b5-c4d3e2f1a003";

const CONSUMERS: &str = r#"
consumers:
- username: alice
  id: 6f3c2a5e-1b7d-4c11-9a8e-0d2b4e6f8a01
  keyauth_credentials:
  - id: 0b7c5d2e-3f4a-4b6c-8d9e-1f2a3b4c5d01
    key: alice-key
  basicauth_credentials:
  - username: alice-login
    password: alice-password
  acls:
  - group: users
    id: 22222222-0000-4000-8000-000000000001
  - group: admins
    id: 11111111-0000-4000-8000-000000000001
- username: bob
  keyauth_credentials:
  - key: bob-key
  acls:
  - group: users
- username: carol
  keyauth_credentials:
  - key: carol-key
- username: dave
  keyauth_credentials:
  - key: dave-key
  acls:
  - group: banned
  - group: users
- username: anonymous-user
  id: 9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a502
- username: guest
  id: 3d2c1b0a-9f8e-4d7c-a6b5-c4d3e2f1a003
  acls:
  - group: guests
"#;

const ROUTES: &str = r#"
  routes:
  - name: allow
    paths: [/allow]
    plugins:
    - name: key-auth
    - name: acl
      config: {allow: [admins, ops]}
  - name: deny
    paths: [/deny]
    plugins:
    - name: key-auth
    - name: acl
      config: {deny: [banned]}
  - name: hide
    paths: [/hide]
    plugins:
    - name: key-auth
      config: {hide_credentials: true}
    - name: acl
      config: {allow: [users], hide_groups_header: true}
  - name: anonymous
    paths: [/anonymous]
    plugins:
    - name: key-auth
      config: {anonymous: anonymous-user}
    - name: acl
      config: {allow: [admins]}
  - name: guest
    paths: [/guest]
    plugins:
    - name: key-auth
      config: {anonymous: 3d2c1b0a-9f8e-4d7c-a6b5-c4d3e2f1a003}
    - name: acl
      config: {allow: [guests, admins]}
  - name: either
    paths: [/either]
    plugins:
    - name: key-auth
      config: {anonymous: anonymous-user}
    - name: basic-auth
      config: {anonymous: anonymous-user, hide_credentials: true}
  - name: basic
    paths: [/basic]
    plugins:
    - name: basic-auth
    - name: acl
      config: {allow: [admins]}
"#;

/// The upstream: answers every request with the request's headers as a JSON object.
struct Echo {
    addr: SocketAddr,
}

impl Echo {
    fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || echo(stream));
            }
        });
        Echo { addr }
    }
}

fn echo(stream: TcpStream) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut reader = BufReader::new(stream);
    loop {
        let mut headers = BTreeMap::new();
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let Some((name, value)) = line.trim_end().split_once(':') else { break };
            let (name, value) = (name.to_ascii_lowercase(), value.trim().to_string());
            if name == "content-length" {
                length = value.parse().unwrap_or(0);
            }
            headers.entry(name).or_insert_with(Vec::new).push(value);
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let json = json!({"headers": headers}).to_string();
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
            json.len()
        );
        if reader.get_mut().write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// A DB-less gateway with key-auth, basic-auth and acl loaded from disk, stopped when dropped.
struct Node {
    child: Child,
    proxy: SocketAddr,
    _dir: tempfile::TempDir,
    _upstream: Echo,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn modified(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The time of the most recently changed file under `dir`.
fn newest(dir: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            if path.is_dir() { newest(&path) } else { modified(&path) }
        })
        .max()
}

fn gateway_bin() -> PathBuf {
    std::env::var_os("GATEWAY_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("gateway"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Node {
    fn start() -> Node {
        let upstream = Echo::start();
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        for name in ["key-auth", "basic-auth", "acl"] {
            let built = target_dir().join("wasm32-wasip2/release").join(format!("{}.wasm", name.replace('-', "_")));
            let sources = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(name).join("src");
            assert!(
                modified(&built) >= newest(&sources),
                "{} is missing or older than {}: build it first",
                built.display(),
                sources.display()
            );
            std::fs::copy(&built, plugins.join(format!("{name}.wasm"))).unwrap();
        }
        let yaml = format!(
            "_format_version: \"3.0\"\n{CONSUMERS}\nservices:\n- name: echo\n  url: http://{}\n{ROUTES}",
            upstream.addr
        );
        std::fs::write(dir.path().join("kong.yml"), yaml).unwrap();
        let port = free_port();
        let conf = [
            "database = off".to_string(),
            "declarative_config = kong.yml".into(),
            "prefix = servroot".into(),
            format!("proxy_listen = 127.0.0.1:{port}"),
            "admin_listen = off".into(),
            "status_listen = off".into(),
            "wasm_plugins_path = plugins".into(),
            "plugins = bundled, key-auth, basic-auth, acl".into(),
        ];
        std::fs::write(dir.path().join("kong.conf"), conf.join("\n")).unwrap();
        let mut child = Command::new(gateway_bin())
            .current_dir(dir.path())
            .args(["-c", "kong.conf"])
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the gateway (GATEWAY_BIN)");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[gateway] {line}");
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let node = Node { child, proxy: SocketAddr::from(([127, 0, 0, 1], port)), _dir: dir, _upstream: upstream };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !log.lock().unwrap().contains("gateway started") {
            assert!(Instant::now() < deadline, "the gateway did not start:\n{}", log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }

    /// `GET path` with `headers`: the status, and the JSON body (the upstream's echo, or the
    /// gateway's answer).
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut stream = TcpStream::connect(self.proxy).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let response = String::from_utf8_lossy(&response);
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
        let body = if chunked { dechunk(body) } else { body.to_string() };
        (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// Header `name` as the upstream got it.
fn seen<'a>(echo: &'a Value, name: &str) -> Option<&'a str> {
    let values = echo["headers"][name].as_array()?;
    assert_eq!(values.len(), 1, "{name} sent once: {values:?}");
    values[0].as_str()
}

fn forbidden() -> (u16, Value) {
    (403, json!({"message": "You cannot consume this service"}))
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

#[test]
fn acl_behind_authentication_plugins_in_a_real_gateway() {
    let node = Node::start();

    // allow: a consumer in an allowed group passes, with its groups upstream (Kong's ", ", in the
    // order of the acls' ids, as Kong pages them).
    let (status, echo) = node.get("/allow", &[("apikey", "alice-key"), ("X-Consumer-Groups", "forged")]);
    assert_eq!(status, 200, "{echo}");
    assert_eq!(seen(&echo, "x-consumer-groups"), Some("admins, users"));
    assert_eq!(seen(&echo, "x-consumer-id"), Some(ALICE));
    assert_eq!(seen(&echo, "x-consumer-username"), Some("alice"));
    assert_eq!(seen(&echo, "x-credential-identifier"), Some(ALICE_KEY));
    // ...one in no allowed group, or in none at all, is refused.
    assert_eq!(node.get("/allow", &[("apikey", "bob-key")]), forbidden());
    assert_eq!(node.get("/allow", &[("apikey", "carol-key")]), forbidden());
    // key-auth answers first when there is no good key.
    assert_eq!(node.get("/allow", &[]).0, 401);

    // deny: a consumer in a denied group is refused, any other passes (one without groups too).
    assert_eq!(node.get("/deny", &[("apikey", "dave-key")]), forbidden());
    let (status, echo) = node.get("/deny", &[("apikey", "bob-key")]);
    assert_eq!((status, seen(&echo, "x-consumer-groups")), (200, Some("users")));
    let (status, echo) = node.get("/deny", &[("apikey", "carol-key"), ("X-Consumer-Groups", "admins")]);
    assert_eq!((status, seen(&echo, "x-consumer-groups")), (200, Some("")), "Kong sends an empty list");

    // hide_groups_header: no groups upstream, not even forged ones; hide_credentials: no key.
    let (status, echo) = node.get("/hide", &[("apikey", "bob-key"), ("X-Consumer-Groups", "admins")]);
    assert_eq!(status, 200, "{echo}");
    assert_eq!(seen(&echo, "x-consumer-groups"), None);
    assert_eq!(seen(&echo, "apikey"), None);
    assert_eq!(seen(&echo, "x-consumer-username"), Some("bob"));

    // The anonymous consumer is checked by its own groups: none here is Kong's 401...
    assert_eq!(node.get("/anonymous", &[]), (401, json!({"message": "Unauthorized"})));
    assert_eq!(node.get("/anonymous", &[("apikey", "alice-key")]).0, 200);
    // ...and a member of an allowed group passes as anonymous.
    let (status, echo) = node.get("/guest", &[("apikey", "wrong")]);
    assert_eq!(status, 200, "{echo}");
    assert_eq!(seen(&echo, "x-consumer-id"), Some(GUEST));
    assert_eq!(seen(&echo, "x-anonymous-consumer"), Some("true"));
    assert_eq!(seen(&echo, "x-consumer-groups"), Some("guests"));

    // basic-auth then acl.
    let alice_basic = basic("alice-login", "alice-password");
    let (status, echo) = node.get("/basic", &[("Authorization", &alice_basic)]);
    assert_eq!((status, seen(&echo, "x-credential-identifier")), (200, Some("alice-login")));
    assert_eq!(seen(&echo, "x-consumer-groups"), Some("admins, users"));
    let (status, body) = node.get("/basic", &[("Authorization", &basic("alice-login", "wrong"))]);
    assert_eq!((status, body), (401, json!({"message": "Unauthorized"})));
}

#[test]
fn authentication_plugins_with_anonymous_are_alternatives() {
    let node = Node::start();
    // key-auth (1250) runs first: a good key is enough, and basic-auth (with anonymous) does not
    // turn the request back into the anonymous consumer's.
    let (status, echo) = node.get("/either", &[("apikey", "alice-key")]);
    assert_eq!(status, 200, "{echo}");
    assert_eq!(seen(&echo, "x-consumer-id"), Some(ALICE));
    assert_eq!(seen(&echo, "x-credential-identifier"), Some(ALICE_KEY));
    assert_eq!(seen(&echo, "x-anonymous-consumer"), None);
    // No key: key-auth goes on as anonymous, and basic-auth still authenticates.
    let (status, echo) = node.get("/either", &[("Authorization", &basic("alice-login", "alice-password"))]);
    assert_eq!(status, 200, "{echo}");
    assert_eq!(seen(&echo, "x-consumer-id"), Some(ALICE));
    assert_eq!(seen(&echo, "x-credential-identifier"), Some("alice-login"));
    assert_eq!(seen(&echo, "x-anonymous-consumer"), None);
    assert_eq!(seen(&echo, "authorization"), None, "hidden");
    // Neither: the anonymous consumer.
    let (status, echo) = node.get("/either", &[]);
    assert_eq!(status, 200, "{echo}");
    assert_eq!(seen(&echo, "x-consumer-id"), Some(ANON));
    assert_eq!(seen(&echo, "x-anonymous-consumer"), Some("true"));
}
